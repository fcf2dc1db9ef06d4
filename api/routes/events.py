"""POST /v1/events: one shopping event or {"events": [...]}."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import events as ev

bp = Blueprint("events", __name__)


@bp.post("/v1/events")
def events():
    s = services()
    body = v.json_body()
    batch = "events" in body
    s.schemas.check("EventBatch" if batch else "ShopEvent", body)
    now = time.time()
    parsed = []
    for i, item in enumerate(body["events"] if batch else [body]):
        where = f"events[{i}]." if batch else ""
        user_id = v.ident(item["user_id"], f"{where}user_id", s.settings.max_id_length)  # (printable: see v.ident)
        item_id = item.get("item_id")
        if item_id is not None:
            item_id = v.ident(item_id, f"{where}item_id", s.settings.max_id_length)
        ts = v.timestamp(item.get("ts"), f"{where}ts", default=now)
        value = float(item["value"]) if item.get("value") is not None else 0.0
        parsed.append(ev.ShopEvent(user_id, item["type"], ts, item_id, value, item.get("event_id")))
    accepted, duplicate = ev.ingest(s.store, s.settings, parsed, registry=s.engine.registry, models=s.models)
    return jsonify({"accepted": accepted, "duplicate": duplicate})
