"""Liveness, readiness and the OpenAPI document."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from bandit_push_api.services import services
from bandit_push import models

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    s = services()
    s.store.ping()  # a connection error becomes 503 through the error table
    mf = models.current(s.store, "mf")
    meta = models.meta(s.store, "mf", mf) if mf else None
    if meta is not None:
        items = {"model": "mf", "version": mf, "age_s": round(time.time() - meta["published_at"], 1)}
    else:
        top = s.store.redis.hmget(s.store.keys.popular_top(), "@ts", "@day")
        refreshed = float(top[0]) if top[0] else None
        items = {"model": "popular", "version": top[1],
                 "age_s": round(time.time() - refreshed, 1) if refreshed else None}
    return jsonify({"status": "ready", "items": items})


@bp.get("/openapi.json")
def openapi():
    return current_app.response_class(current_app.extensions["bandit_push_openapi"], mimetype="application/json")

