"""GET /v1/decisions/export: the decision log as newline-delimited JSON, streamed."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, request, stream_with_context

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import decision_log
from bandit_push.errors import InvalidArgument

bp = Blueprint("decisions", __name__)


@bp.get("/v1/decisions/<decision_id>")
def one(decision_id: str):
    """One decision as recorded, with what drove it."""
    s = services()
    v.query_only(("now",))
    now = v.query_timestamp("now", default=time.time())
    return decision_log.lookup(s.store, s.settings, decision_id, now)


@bp.get("/v1/decisions/export")
def export():
    s = services()
    v.query_only(("since", "until", "now", "include_open"))
    now = v.query_timestamp("now", default=time.time())
    since = v.query_timestamp("since", default=now - s.settings.decision_ttl_hours * 3600.0)
    until = v.query_timestamp("until", default=now)
    if until < since:
        if "since" in request.args:
            raise InvalidArgument("until must not be before since", field="until", code="invalid_window")
        start = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise InvalidArgument(f"until is before since, which defaults to now minus the retention "
                              f"({s.settings.decision_ttl_hours:g} h): {start}; send since as well", field="until",
                              code="invalid_window")
    raw = request.args.get("include_open", "false")
    if raw not in ("true", "false"):
        raise InvalidArgument("include_open must be true or false", field="include_open")
    rows = decision_log.export(s.store, s.settings, since, until, now, include_open=raw == "true")
    # bounded memory: one line at a time from batches of records (a Redis error mid-stream cuts the body)
    lines = (json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    return Response(stream_with_context(lines), mimetype="application/x-ndjson")
