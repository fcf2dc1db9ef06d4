"""The growth team's console: server-rendered pages at ``/console/``, served by the API process.

Every page reads the domain functions the JSON API reads (:mod:`bandit_push.experiment_report`,
:mod:`bandit_push.segments`, :mod:`bandit_push.models`, :mod:`bandit_push.decision_log`,
:mod:`bandit_push.ope.evaluate`): the console formats their answers and computes no statistic of its own.
Access is the API's keys, through a signed cookie (:mod:`bandit_push_api.console.access`). The JavaScript it uses
(htmx, uPlot) is vendored under ``static/`` (versions and licences in ``VENDORED.md`` there).
"""
from __future__ import annotations

import redis
from flask import Blueprint, render_template, request
from werkzeug.exceptions import HTTPException

from bandit_push.errors import BanditPushError

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

# pages are never cached (they show live state); scripts and styles only from here; never framed
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@bp.after_request
def _headers(resp):
    for name, value in _HEADERS.items():
        resp.headers.setdefault(name, value)
    if request.endpoint != "console.static":
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(BanditPushError)
def _domain_error(err: BanditPushError):
    from bandit_push_api.errors import STATUS

    status = next((s for cls, s in STATUS.items() if isinstance(err, cls)), 400)
    return render_template("console/error.html", status=status, error=err), status


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    status = err.code or 500
    return render_template("console/error.html", status=status, error=BanditPushError(err.description or err.name)), status


@bp.errorhandler(redis.ConnectionError)
@bp.errorhandler(redis.TimeoutError)
def _redis_down(err: Exception):
    return render_template("console/error.html", status=503,
                           error=BanditPushError("the state store is unavailable; retry shortly")), 503


# the pages register their routes on bp
from bandit_push_api.console import access, decisions, evaluate, experiments, fmt, models, segments  # noqa: E402,F401
