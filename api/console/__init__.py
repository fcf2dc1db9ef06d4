"""The growth team's console: server-rendered pages at ``/console/``, served by the API process.

Every page reads the domain functions the JSON API reads (:mod:`bandit_push.experiment_report`,
:mod:`bandit_push.segments`, :mod:`bandit_push.models`, :mod:`bandit_push.decision_log`,
:mod:`bandit_push.ope.evaluate`): the console formats their answers and computes no statistic of its own.
Access is the API's keys, through a signed cookie (:mod:`bandit_push_api.console.access`). The JavaScript it uses
(htmx, uPlot) is vendored under ``static/`` (versions and licences in ``VENDORED.md`` there).
"""
from __future__ import annotations

# the pages register their routes on the blueprint as they are imported
from bandit_push_api.console import access, decisions, evaluate, experiments, fmt, models, segments  # noqa: F401
from bandit_push_api.console.blueprint import bp

__all__ = ["bp"]
