"""POST /v1/feedback: one event or {"events": [...]}."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import feedback as fb
from bandit_push.errors import Conflict, NotFound

bp = Blueprint("feedback", __name__)


@bp.post("/v1/feedback")
def feedback():
    s = services()
    body = v.json_body()
    batch = "events" in body
    if batch:  # the entries' errors are named together, after each entry's own checks below
        bad = s.schemas.check_batch("FeedbackBatch", body)
    else:
        s.schemas.check("FeedbackEvent", body)
    now = time.time()

    def parse(where: str, item: dict) -> fb.FeedbackEvent:
        ts = v.timestamp(item.get("ts"), f"{where}ts", default=now)
        value = float(item["value"]) if item.get("value") is not None else None
        return fb.FeedbackEvent(item["decision_id"], item["event"], ts, value)

    # all or nothing; every bad entry named
    events = v.batch(body["events"], parse, bad) if batch else [parse("", body)]
    statuses = fb.record(s.store, s.settings, events)
    counts = {status: statuses.count(status) for status in fb.STATUSES}
    if not batch:
        status = statuses[0]
        if status == "unknown":
            raise NotFound(f"decision {events[0].decision_id!r} is unknown or has expired",
                           field="decision_id", code="unknown_decision")
        if status == "not_sent":
            raise Conflict("the decision said not to send; feedback on it is refused",
                           field="decision_id", code="decision_not_sent")
        return jsonify({"status": status, **counts})
    return jsonify({**counts, "statuses": statuses})
