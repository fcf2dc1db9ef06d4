"""POST /v1/events: one shopping event or {"events": [...]}."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import events as ev
from bandit_push.config import EVENT_TYPES

bp = Blueprint("events", __name__)

#: event types that are about one item and must name it
ITEM_EVENTS = ("view", "add_to_cart", "purchase")


@bp.post("/v1/events")
def events():
    s = services()
    body = v.json_body()
    now = time.time()
    parsed = []
    for where, item in v.batch(body, s.settings.max_batch):
        v.only(item, ("user_id", "item_id", "type", "ts", "value", "event_id"), where)
        user_id = v.ident(v.required(item, "user_id", where), f"{where}user_id", s.settings.max_id_length)
        etype = v.choice(v.required(item, "type", where), f"{where}type", EVENT_TYPES)
        item_id = None
        if etype in ITEM_EVENTS or item.get("item_id") is not None:
            item_id = v.ident(v.required(item, "item_id", where), f"{where}item_id", s.settings.max_id_length)
        ts = v.timestamp(item.get("ts"), f"{where}ts", default=now)
        value = v.number(item["value"], f"{where}value", 0, 1e9) if item.get("value") is not None else 0.0
        event_id = (v.short_text(item["event_id"], f"{where}event_id", 128)
                    if item.get("event_id") is not None else None)
        parsed.append(ev.ShopEvent(user_id, etype, ts, item_id, value, event_id))
    accepted, duplicate = ev.ingest(s.store, s.settings, parsed, registry=s.engine.registry, models=s.models)
    return jsonify({"accepted": accepted, "duplicate": duplicate})
