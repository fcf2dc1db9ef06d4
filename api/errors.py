"""One table from domain errors to HTTP, and handlers that make every error JSON.

Shape: ``{"error": "<stable code>", "message": "<sentence>", "field": "<name>"}``.
"""
from __future__ import annotations

import logging
import math

import redis
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from bandit_push.errors import (BanditPushError, ConfigError, Conflict, Forbidden, InvalidArgument, InvalidBatch,
                                NotFound, RateLimited, Unauthenticated, Unavailable)

log = logging.getLogger(__name__)

STATUS: dict[type[BanditPushError], int] = {
    InvalidArgument: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    RateLimited: 429,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    ConfigError: 500,
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
               415: "unsupported_media_type", 429: "rate_limited"}


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, in the order the views build it and with ``allow_nan=False``: a NaN or an infinity in a
    response raises (a logged 500 naming the bug) instead of going out as ``NaN``, which strict parsers refuse.
    Figures that can be undefined are ``null`` with a reason, put there by the domain."""

    sort_keys = False

    def dumps(self, obj, **kwargs):
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def error_body(code: str, message: str, field: str | None = None) -> dict:
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    return body


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(BanditPushError)
    def _domain(err: BanditPushError):
        status = next((s for cls, s in STATUS.items() if isinstance(err, cls)), 400)
        body = error_body(err.code, err.message, err.field)
        if isinstance(err, InvalidBatch):  # every bad entry, so that the sender fixes the batch in one try
            body.update(invalid=err.invalid, errors=[error_body(e.code, e.message, e.field) for e in err.errors])
        resp = jsonify(body)
        if status == 503:
            resp.headers["Retry-After"] = "1"
        elif status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="bandit-push"'
        elif isinstance(err, RateLimited):
            resp.headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
        return resp, status

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        code = err.code or 500
        message = err.description or err.name
        if code == 413:
            message = f"request body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes"
        field = "body" if code in (400, 413) else None
        resp = jsonify(error_body(_HTTP_CODES.get(code, err.name.lower().replace(" ", "_")), message, field))
        for name, value in err.get_headers():  # keep e.g. the Allow header of a 405
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp, code

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(err: Exception):
        log.warning("redis unavailable: %s", err)
        resp = jsonify(error_body("redis_unavailable", "the state store is unavailable; retry shortly"))
        resp.headers["Retry-After"] = "1"
        return resp, 503

    # a Redis Cluster failing over (store.py's cluster client tries each command once and asks for a fresh slot map,
    # which the next command loads): CLUSTERDOWN or no node for the slot while a replica is promoted, TRYAGAIN
    # or redirections past redis-py's limit ("TTL exhausted") while slots move, every node unreachable
    @app.errorhandler(redis.exceptions.ClusterError)  # (ClusterDownError and MasterDownError are ones)
    @app.errorhandler(redis.exceptions.TryAgainError)
    @app.errorhandler(redis.exceptions.SlotNotCoveredError)
    @app.errorhandler(redis.exceptions.RedisClusterUnreachableError)
    def _cluster_unavailable(err: Exception):
        log.warning("redis cluster unavailable: %s: %s", type(err).__name__, err)
        resp = jsonify(error_body("redis_unavailable", "the state store is unavailable; retry shortly"))
        resp.headers["Retry-After"] = "1"
        return resp, 503

    @app.errorhandler(redis.ResponseError)
    def _redis_error(err: Exception):
        # a cluster's redirection reaching this handler went to a client that is not a cluster client (the cluster
        # client follows MOVED and ASK itself, after a failover too): REDIS_URL was unreachable when this process
        # started, so it could not tell the cluster (store.Store.connect), and only a restart makes it ask again
        if isinstance(err, redis.exceptions.AskError):  # (MovedError is one)
            log.error("REDIS_URL is a Redis Cluster that was unreachable when this process started: restart it (%s)",
                      err)
            resp = jsonify(error_body("redis_unavailable", "the state store is a cluster this process started without; "
                                      "restart the process"))
            resp.headers["Retry-After"] = "1"
            return resp, 503
        return _unexpected(err)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "an unexpected error occurred; it has been logged")), 500
