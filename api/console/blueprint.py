"""The console's blueprint, its headers and its error pages; the pages add their routes to :data:`bp`."""
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

