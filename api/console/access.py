"""Who may see and change what in the console: the API's keys, kept in a signed cookie; CSRF tokens.

The cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS, path ``/console``) holds a random
nonce and, once signed in, the key itself, signed with :mod:`itsdangerous` (Flask's own signer) and
valid for :data:`MAX_AGE`. Every request checks the key again against the configured digests
(:class:`bandit_push_api.auth.Guard`), so a rotated key signs its users out; the signature only keeps the cookie
from being edited. ``read`` keys see every page, ``admin`` keys may also change things; gateway keys
cannot sign in. Without configured keys, as for the API, only loopback clients that did not come through
a proxy are served, as admin. Every POST carries a token derived from the cookie's nonce
(:func:`csrf_token`): another site can neither read the nonce nor make the browser send the cookie.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable

from flask import current_app, g, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bandit_push_api.auth import Guard, local_client
from bandit_push_api.console.blueprint import bp
from bandit_push.errors import Forbidden, Unauthenticated

COOKIE = "bp_console"
MAX_AGE = 12 * 3600  #: seconds a sign-in lasts
_OPEN_ENDPOINTS = {"console.static", "console.sign_in"}


@dataclass
class Visitor:
    """The request's visitor: the cookie's nonce, the key's scope (None: not signed in), whether keys exist."""

    nonce: str
    scope: str | None
    keyed: bool
    new_cookie: dict[str, Any] | None = None  #: set when the response must (re)write the cookie


def _guard() -> Guard:
    return current_app.extensions["bandit_push_guard"]


def _serializer() -> URLSafeTimedSerializer:
    ser = current_app.extensions.get("bandit_push_console_signer")
    if ser is None:
        # stable across processes and restarts, changed by a key rotation; no key: loopback only, nothing to sign
        guard = _guard()
        material = b"\0".join([b"bandit-push console", guard.settings.prefix.encode()]
                              + sorted(d for _, d in guard.keys))
        ser = URLSafeTimedSerializer(hashlib.sha256(material).digest(), salt="console-session")
        current_app.extensions["bandit_push_console_signer"] = ser
    return ser


def _read_cookie() -> dict[str, Any] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:  # also an expired one
        return None
    return data if isinstance(data, dict) and isinstance(data.get("n"), str) else None


def key_scope(key: str) -> str | None:
    """The scope of a configured API key (``gateway``, ``read`` or ``admin``), or None."""
    return _guard().scope_of_digest(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest())


CONSOLE_SCOPES = ("read", "admin")  #: the scopes that may sign in


def csrf_token() -> str:
    """The token every state-changing form of this visitor carries."""
    return hmac.new(_serializer().secret_key, b"csrf:" + g.console.nonce.encode(), "sha256").hexdigest()


@bp.app_template_global("console_csrf")
def _csrf_global() -> str:
    return csrf_token()


@bp.app_template_global("console_admin")
def is_admin() -> bool:
    """Whether the visitor may change things (the templates show the buttons only then)."""
    return g.console.scope == "admin"


@bp.before_request
def check() -> Any:
    """Identify the visitor; send those not signed in to the sign-in page; refuse a POST without its token."""
    if request.endpoint == "console.static":
        return None
    guard = _guard()
    data = _read_cookie()
    cookie = data or {"n": secrets.token_urlsafe(16)}
    if not guard.keys:
        if not local_client(request):
            raise Forbidden("no API keys are configured, so the console serves only loopback clients; "
                            "set BANDIT_PUSH_API_KEYS", code="auth_not_configured")
        scope = "admin"
    else:
        key = cookie.get("k")
        scope = key_scope(key) if isinstance(key, str) else None
        scope = scope if scope in CONSOLE_SCOPES else None
    g.console = Visitor(cookie["n"], scope, bool(guard.keys), new_cookie=None if data else cookie)
    if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), csrf_token()):
        raise Forbidden("the form's security token is missing or stale: reload the page and submit again",
                        field="csrf", code="csrf_failed")
    if scope is None and request.endpoint not in _OPEN_ENDPOINTS:
        if request.method == "GET":
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        raise Unauthenticated("sign in with an API key first", code="not_signed_in")
    return None


@bp.after_request
def _write_cookie(resp):
    visitor = g.get("console")
    if visitor is not None and visitor.new_cookie is not None:
        resp.set_cookie(COOKIE, _serializer().dumps(visitor.new_cookie), max_age=MAX_AGE, path=bp.url_prefix,
                        secure=request.is_secure, httponly=True, samesite="Strict")
    return resp


def admin_only(view: Callable) -> Callable:
    """A view that changes something: admin keys only (the page hides its buttons from read keys too)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.console.scope != "admin":
            raise Forbidden("this needs an admin key; you are signed in with a read key", code="insufficient_scope")
        return view(*args, **kwargs)
    return wrapped


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target and target.startswith(bp.url_prefix + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.experiments_page")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    visitor: Visitor = g.console
    target = _safe_next(request.values.get("next"))
    if not visitor.keyed:
        return redirect(target)
    error = None
    if request.method == "POST":
        key = request.form.get("key", "").strip()
        full = key_scope(key)
        if full in CONSOLE_SCOPES:
            # a fresh nonce at each sign-in: a token seen before it is worthless after
            visitor.new_cookie = {"n": secrets.token_urlsafe(16), "k": key}
            return redirect(target)
        error = ("a gateway key cannot sign in: the console needs a read or an admin key" if full
                 else "this is not a configured API key")
    return render_template("console/sign_in.html", error=error, next=target), 401 if error else 200


@bp.post("/sign-out")
def sign_out():
    g.console.new_cookie = {"n": secrets.token_urlsafe(16)}
    return redirect(url_for("console.sign_in"))
