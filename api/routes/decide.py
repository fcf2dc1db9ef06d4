"""POST /v1/decide."""
from __future__ import annotations

import json
import math
import time

from flask import Blueprint, Response, g

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push.decide import Decision

bp = Blueprint("decide", __name__)
_FIELDS = ("user_id", "now", "k", "channel")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps builds a new encoder per call


@bp.post("/v1/decide")
def decide():
    s = services()
    settings = s.settings  # (handed on: every current_app/g look-up goes through a context-local proxy)
    body = v.json_body(settings.max_body_bytes)
    v.only(body, _FIELDS)
    user_id = v.ident(v.required(body, "user_id"), "user_id", settings.max_id_length)
    now = v.timestamp(body.get("now"), "now", default=time.time(), settings=settings)
    k = v.integer(body.get("k"), "k", 1, settings.max_k, default=settings.default_k)
    channel = v.short_text(body["channel"], "channel") if body.get("channel") is not None else None
    decision = s.engine.decide(user_id, now=now, k=k, channel=channel, rate_limit=g._get_current_object().get("rate_limit"))
    return Response(response_body(decision), mimetype="application/json")


_ESC = json.encoder.encode_basestring_ascii  # the encoder's own string escaping (C), ensure_ascii as json.dumps
_BODY = ('{"decision_id":%s,"send":%s,"items":[%s],"items_source":%s,"segment":%s,"reason":%s,"propensity":%r,'
         '"policy":%s,"experiment":%s,"context":{"recency":%s,"daypart":%s}}')
_ITEM = '{"item_id":%s,"score":%r}'
_CONTEXT = ["recency", "daypart"]


def response_body(d: Decision) -> str:
    """The response body: the same text as the JSON encoder makes of ``d.to_json()`` (a test holds them equal),
    filled into a template: on the hot path the encoder's walk over the dict cost twice the rest of this."""
    # (a sum is finite only if every term is: an overflow to inf merely takes the general path, same text)
    if (d.retry_at is not None or not math.isfinite(sum([i[1] for i in d.items], d.propensity))
            or list(d.context) != _CONTEXT):
        return _ENCODE(d.to_json())  # (the encoder's NaN/Infinity, or another context: its general path)
    items = ",".join([_ITEM % (_ESC(item_id), score) for item_id, score in d.items])
    c = d.context
    return _BODY % (_ESC(d.decision_id), "true" if d.send else "false", items, _ESC(d.items_source), _ESC(d.segment),
                    _ESC(d.reason), d.propensity, _ESC(d.policy),
                    "null" if d.experiment is None else _ENCODE(d.experiment), _ESC(c["recency"]), _ESC(c["daypart"]))
