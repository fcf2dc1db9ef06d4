"""Gunicorn configuration for the web process: refuse to bind beyond loopback without API keys.

Used as ``gunicorn -c python:bandit_push_api.gunicorn_conf 'bandit_push_api:create_app()'`` (Procfile, ``bandit-push serve``).
The app itself also refuses non-loopback clients when no key is configured (:mod:`bandit_push_api.auth`), so a
gunicorn started without this file is still closed; this makes the mistake fail at start, loudly.

Shutdown: on SIGTERM gunicorn stops accepting, lets each worker finish its request in flight, and
kills those still busy after ``graceful_timeout``, here ``shutdown_timeout_s`` (a ``--graceful-timeout``
on the command line wins).

gunicorn's own error answers (a request line too long: 414, a malformed request: 400) are JSON of the API's
error shape (:func:`json_error`), not its HTML page.

Each worker gets its number (``worker.age``) in ``BANDIT_PUSH_WORKER_ID`` before it loads the app, so that
with ``BANDIT_PUSH_SEED`` set the workers draw different (reproducible) random sequences.
"""
from __future__ import annotations

import json
import os
import sys

from gunicorn import util

from bandit_push.config import KEYS_WARNED_ENV, Settings, is_loopback
from bandit_push.errors import ConfigError

#: the API's error codes for the answers gunicorn gives itself, before the app sees the request
_GUNICORN_ERRORS = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
                    431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answer (a request line over ``limit_request_line``: 414, a malformed request: 400, ...)
    in the API's error shape, as JSON, instead of its HTML page: every answer a client gets is JSON."""
    body = {"error": _GUNICORN_ERRORS.get(status_int, "bad_request"),
            "message": f"{reason}: {mesg}" if mesg else reason}
    if status_int == 414:
        body["field"] = "path"
        body["message"] += "; no valid id makes a path this long"
    text = json.dumps(body)  # ASCII: its length is its length in bytes
    util.write_nonblock(sock, (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
                               f"Content-Type: application/json\r\nContent-Length: {len(text)}\r\n\r\n{text}")
                        .encode("latin-1"))


# gunicorn's workers write their own errors through this function of its util module (workers.base.handle_error);
# replaced here, in the master, before any worker is forked
util.write_error = json_error


def _graceful_timeout() -> int:
    try:
        return Settings.from_env().shutdown_timeout_s
    except ConfigError:
        return Settings.shutdown_timeout_s  # on_starting reports the bad setting and exits


graceful_timeout = _graceful_timeout()


def on_starting(server) -> None:
    """Gunicorn hook, before binding: exit non-zero if any bind address is not loopback and no key is set;
    with no key set, warn once for every worker."""
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"bandit-push: {e.message}", file=sys.stderr, flush=True)
        sys.exit(2)
    if settings.api_keys:
        return
    for address in server.cfg.address:
        host = address[0] if isinstance(address, tuple) else None  # a unix socket path is local
        if host is not None and not is_loopback(host):
            print(f"bandit-push: refusing to listen on {host}: no API keys configured (BANDIT_PUSH_API_KEYS); "
                  "without keys only loopback addresses are allowed", file=sys.stderr, flush=True)
            sys.exit(2)
    if not os.environ.get(KEYS_WARNED_ENV):  # once here, not once per worker (the workers inherit the variable)
        print("bandit-push: WARNING: no API keys configured (BANDIT_PUSH_API_KEYS): loopback clients only, "
              "no authentication, no rate limits", file=sys.stderr, flush=True)
        os.environ[KEYS_WARNED_ENV] = "1"


def post_fork(server, worker) -> None:
    """Gunicorn hook, in the new worker before it loads the app: its number, for its own random sequence."""
    from bandit_push_api.services import WORKER_ENV  # (in the worker, which loads the app next anyway)

    os.environ[WORKER_ENV] = str(worker.age)
