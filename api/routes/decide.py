"""POST /v1/decide."""
from __future__ import annotations

import json
import time

from flask import Blueprint, current_app, g

from api import services
from api import validation as v

bp = Blueprint("decide", __name__)
_FIELDS = ("user_id", "now", "k", "channel")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps builds a new encoder per call


@bp.post("/v1/decide")
def decide():
    s = services()
    body = v.json_body()
    v.only(body, _FIELDS)
    user_id = v.ident(v.required(body, "user_id"), "user_id", s.settings.max_id_length)
    now = v.timestamp(body.get("now"), "now", default=time.time())
    k = v.integer(body.get("k"), "k", 1, s.settings.max_k, default=s.settings.default_k)
    channel = v.short_text(body["channel"], "channel") if body.get("channel") is not None else None
    decision = s.engine.decide(user_id, now=now, k=k, channel=channel, rate_limit=g.get("rate_limit"))
    # the hot path: a plain JSON encoder is about a third of jsonify's cost for this body
    return current_app.response_class(_ENCODE(decision.to_json()), mimetype="application/json")
