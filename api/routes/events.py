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
    if batch:  # the entries' errors are named together, after each entry's own checks below
        bad = s.schemas.check_batch("EventBatch", body)
    else:
        s.schemas.check("ShopEvent", body)
    now = time.time()

    def parse(where: str, item: dict) -> ev.ShopEvent:
        user_id = v.ident(item["user_id"], f"{where}user_id", s.settings.max_id_length)  # (printable: see v.ident)
        item_id = item.get("item_id")
        if item_id is not None:
            item_id = v.ident(item_id, f"{where}item_id", s.settings.max_id_length)
        ts = v.timestamp(item.get("ts"), f"{where}ts", default=now)
        value = float(item["value"]) if item.get("value") is not None else 0.0
        return ev.ShopEvent(user_id, item["type"], ts, item_id, value, item.get("event_id"))

    # all or nothing; every bad event named
    parsed = v.batch(body["events"], parse, bad) if batch else [parse("", body)]
    accepted, duplicate = ev.ingest(s.store, s.settings, parsed, registry=s.engine.registry, models=s.models)
    return jsonify({"accepted": accepted, "duplicate": duplicate})
