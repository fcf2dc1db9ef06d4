"""Who may call what: API keys with scopes, the scope of every route, per-key rate limits.

One table, :data:`ROUTE_SCOPES`, maps route patterns to the scope they need; a route that no entry
covers needs ``admin`` (fail closed), and a test checks that every registered route has an entry.
Keys are kept only as SHA-256 digests (:func:`bandit_push.config.parse_api_keys`) and compared with
``hmac.compare_digest`` against every configured key. With no key configured, only loopback clients
that did not come through a proxy are served (the idea of Redis's protected mode); ``bandit-push serve``
and the gunicorn configuration (:mod:`bandit_push_api.gunicorn_conf`) refuse to bind anywhere else.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re

from flask import Flask, Request, g, request

from bandit_push import ratelimit
from bandit_push.config import KEYS_WARNED_ENV, Settings, is_loopback
from bandit_push.decide import RateLimit
from bandit_push.errors import Forbidden, RateLimited, Unauthenticated
from bandit_push.store import Store

log = logging.getLogger(__name__)

OPEN = "open"  #: no key needed
DEFAULT_SCOPE = "admin"  #: what a route no entry covers needs

#: (route pattern, scope). The longest pattern whose segments start the route's segments wins;
#: ``*`` stands for one path segment.
ROUTE_SCOPES: tuple[tuple[str, str], ...] = (
    ("/healthz", OPEN),
    ("/readyz", OPEN),
    ("/openapi.json", OPEN),
    ("/v1/decide", "gateway"),
    ("/v1/feedback", "gateway"),
    ("/v1/events", "gateway"),
    ("/v1/users", "gateway"),                # and /v1/users/<id>, /v1/users/<id>/items
    ("/v1/segments", "read"),
    ("/v1/decisions/export", "read"),
    ("/v1/decisions/*", "read"),
    ("/v1/experiments/*/report", "read"),
    ("/v1/experiments", "admin"),
    ("/v1/models", "admin"),
    ("/v1/jobs", "admin"),
    ("/console", OPEN),                      # the console checks its own signed cookie (api/console/access.py)
)

#: endpoints whose view takes the rate-limit token itself, from ``g.rate_limit``: decide folds it into its
#: one Redis round trip (its script), instead of paying a second one here
FOLDED = frozenset({"decide.decide"})

_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def scope_entry(rule: str) -> tuple[str, str] | None:
    """The :data:`ROUTE_SCOPES` entry that covers a Flask rule (``/v1/users/<path:user_id>``), or None."""
    parts = _segments(_PARAM.sub("*", rule))
    best = None
    for pattern, scope in ROUTE_SCOPES:
        pat = _segments(pattern)
        if len(pat) <= len(parts) and all(p == "*" or p == s for p, s in zip(pat, parts)):
            if best is None or len(pat) > len(_segments(best[0])):
                best = (pattern, scope)
    return best


def scope_of(rule: str) -> str:
    """The scope a route needs: its entry's, or ``admin`` for a route no entry covers."""
    entry = scope_entry(rule)
    return entry[1] if entry else DEFAULT_SCOPE


class Guard:
    """Checks one request: key, scope, rate limit. Built once per app from its settings."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.keys = [(scope, bytes.fromhex(digest)) for scope, digest in settings.api_keys]
        self._scopes: dict[str, str] = {}

    def scope_of_digest(self, digest: bytes) -> str | None:
        """The scope of the configured key with this SHA-256 digest, or None."""
        scope = None
        for key_scope, key_digest in self.keys:  # no early exit: the time does not tell which key matched
            if hmac.compare_digest(digest, key_digest):
                scope = key_scope
        return scope

    def check(self) -> None:
        rule = request.url_rule
        if rule is None:  # the route does not exist: 404/405 follow, revealing only the public contract
            return
        needed = self._scopes.get(rule.rule)
        if needed is None:
            needed = self._scopes[rule.rule] = scope_of(rule.rule)
        if needed == OPEN:
            return
        if not self.keys:
            if not local_client(request):
                raise Forbidden("no API keys are configured, so only loopback clients are served; "
                                "set BANDIT_PUSH_API_KEYS", code="auth_not_configured")
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("an API key is required: send Authorization: Bearer <key>",
                                  field="Authorization", code="missing_api_key")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        scope = self.scope_of_digest(digest)
        if scope is None:
            raise Unauthenticated("the API key is not valid", field="Authorization", code="invalid_api_key")
        if scope != "admin" and scope != needed:
            raise Forbidden(f"this endpoint needs a key of scope {needed!r} (or admin); this key is {scope!r}",
                            code="insufficient_scope")
        rate = self.settings.rate_limits.get(scope, 0.0)
        if rate > 0:
            limit = RateLimit(digest.hex()[:32], rate, self.settings.rate_bursts.get(scope, 1.0))
            if request.endpoint in FOLDED:  # the view takes the token inside its own single round trip
                g.rate_limit = limit
                return
            wait = ratelimit.take(self.store, limit.key_id, limit.rate, limit.burst)
            if wait is not None:
                raise RateLimited(f"this key's rate limit ({rate:g} requests/s) is spent; retry in {wait:.3f} s",
                                  retry_after=wait)


def local_client(req: Request) -> bool:
    """A loopback client that did not come through a proxy: a request relayed by a proxy on this host looks
    local, and forwarding headers give it away."""
    env = req.environ
    return is_loopback(req.remote_addr) and not (
        "HTTP_X_FORWARDED_FOR" in env or "HTTP_FORWARDED" in env or "HTTP_X_REAL_IP" in env)


def install(app: Flask, settings: Settings, store: Store) -> None:
    """Check every request before its view runs; say loudly when no key is configured."""
    guard = Guard(settings, store)
    app.extensions["bandit_push_guard"] = guard  # the console signs in with the same keys
    app.before_request(guard.check)
    if not settings.api_keys and not os.environ.get(KEYS_WARNED_ENV):  # (gunicorn's master warned once for all)
        log.warning("NO API KEYS CONFIGURED (BANDIT_PUSH_API_KEYS): serving loopback clients only, "
                    "without authentication or rate limits; every other client is refused")
