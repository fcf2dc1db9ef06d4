"""Evaluate: candidate policies judged off-policy on a window of the decision log.

The window is read through the export (:func:`bandit_push.decision_log.export`, closed decisions only) and
parsed by the same reader as ``bandit-push evaluate`` reads a file (:func:`bandit_push.ope.log.parse_lines`);
the estimates are :func:`bandit_push.ope.evaluate.evaluate`'s. At most :data:`MAX_DECISIONS` decisions are
read, so that a page stays a page: larger logs go through ``bandit-push export-log`` and ``evaluate``.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from itertools import islice
from typing import Any

from flask import render_template, request

from bandit_push_api.services import services
from bandit_push_api.console.blueprint import bp
from bandit_push_api.console.fmt import scale
from bandit_push import decision_log
from bandit_push.errors import InvalidArgument
from bandit_push.ope import evaluate as ev
from bandit_push.ope.log import parse_lines

MAX_DECISIONS = 50_000
BOOTSTRAP = 200  #: resamples behind each interval (the CLI's default is 1000; a page answers sooner)
DEFAULT_POLICIES = '[{"name": "thompson", "cost": 0.2},\n {"name": "ucb", "cost": 0.2},\n {"name": "cadence"}]'


def _time(field: str, default: float) -> float:
    """A ``datetime-local`` box (read as UTC) or epoch seconds; the default when empty."""
    text = request.args.get(field, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise InvalidArgument(f"{field} must be a date and time (UTC) or epoch seconds", field=field) from None


def _policies(text: str) -> list[Any]:
    try:
        configs = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"policies must be JSON: a list of policies like {{\"name\": \"thompson\"}} ({e})",
                              field="policies") from None
    configs = configs if isinstance(configs, list) else [configs]
    if not 1 <= len(configs) <= 10:
        raise InvalidArgument("policies must hold 1 to 10 candidate policies", field="policies")
    return configs


def run(s, since: float, until: float, now: float, configs: list[Any], clip: float | None) -> dict[str, Any]:
    """Observed value and each candidate's estimates on the window's closed decisions."""
    rows = decision_log.export(s.store, s.settings, since, until, now)
    lines = [json.dumps(r) for r in islice(rows, MAX_DECISIONS + 1)]
    if len(lines) > MAX_DECISIONS:
        raise InvalidArgument(f"the window holds more than {MAX_DECISIONS} closed decisions: narrow it, or use "
                              "bandit-push export-log and bandit-push evaluate", field="since")
    log = parse_lines(lines)  # InvalidLog (an InvalidArgument) when the window has no closed decision
    reports = [ev.evaluate(c, log, s.settings, clip=clip, n_bootstrap=BOOTSTRAP, field=f"policies[{i}]").to_json()
               for i, c in enumerate(configs)]
    return {"observed": ev.observed(log, n_bootstrap=BOOTSTRAP), "candidates": reports}


@bp.get("/evaluate")
def evaluate_page():
    s = services()
    now = time.time()
    window = s.settings.attribution_window_hours * 3600.0
    args = request.args
    form = {"since": args.get("since", ""), "until": args.get("until", ""),
            "policies": args.get("policies", DEFAULT_POLICIES), "clip": args.get("clip", "")}
    result, error, sc = None, None, None
    if "policies" in args:
        try:
            since = _time("since", now - s.settings.decision_ttl_hours * 3600.0)
            until = _time("until", now - window)
            if until <= since:
                raise InvalidArgument("until must be after since", field="until")
            clip = None
            if form["clip"].strip():
                try:
                    clip = float(form["clip"])
                except ValueError:
                    clip = float("nan")
                if not clip >= 1 or clip == float("inf"):
                    raise InvalidArgument("clip must be a number of at least 1 (the largest importance weight)",
                                          field="clip")
            result = run(s, since, until, now, _policies(form["policies"]), clip)
            values = [result["observed"]["per_decision"][k] for k in ("ci_low", "ci_high")]
            for c in result["candidates"]:
                for est in c["estimators"].values():
                    values += [est["per_decision"]["ci_low"], est["per_decision"]["ci_high"]]
            sc = scale(values, 320)
        except InvalidArgument as e:
            error = e
    return render_template("console/evaluate.html", form=form, result=result, error=error, scale=sc, now=now,
                           window_h=s.settings.attribution_window_hours, ttl_h=s.settings.decision_ttl_hours,
                           max_decisions=MAX_DECISIONS, bootstrap=BOOTSTRAP), 400 if error else 200
