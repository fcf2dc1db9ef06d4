"""POST /v1/decide."""
from __future__ import annotations

import time

from flask import Blueprint, g, jsonify

from bandit_push_api import validation as v
from bandit_push_api.services import services

bp = Blueprint("decide", __name__)
_FIELDS = ("user_id", "now", "k", "channel")


@bp.post("/v1/decide")
def decide():
    s = services()
    settings = s.settings
    body = v.json_body()
    v.only(body, _FIELDS)
    user_id = v.ident(v.required(body, "user_id"), "user_id", settings.max_id_length)
    now = v.timestamp(body.get("now"), "now", default=time.time())
    k = v.integer(body.get("k"), "k", 1, settings.max_k, default=settings.default_k)
    channel = v.short_text(body["channel"], "channel") if body.get("channel") is not None else None
    decision = s.engine.decide(user_id, now=now, k=k, channel=channel, rate_limit=g.get("rate_limit"))
    return jsonify(decision.to_json())
