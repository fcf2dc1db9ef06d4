"""POST /v1/decide."""
from __future__ import annotations

import time

from flask import Blueprint, g, jsonify

from bandit_push_api import validation as v
from bandit_push_api.services import services

bp = Blueprint("decide", __name__)


@bp.post("/v1/decide")
def decide():
    s = services()
    body = v.json_body()
    s.schemas.check("DecideRequest", body)
    now = v.timestamp(body.get("now"), "now", default=time.time())
    k = body.get("k") or s.settings.default_k  # (0 is refused by the schema: null or absent mean the default)
    user_id = v.ident(body["user_id"], "user_id", s.settings.max_id_length)  # (printable: see v.ident)
    decision = s.engine.decide(user_id, now=now, k=k, channel=body.get("channel"),
                               rate_limit=g.get("rate_limit"))
    return jsonify(decision.to_json())
