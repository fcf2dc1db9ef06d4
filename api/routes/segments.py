"""GET /v1/segments."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from api import services
from api import validation as v
from bandit_push import segments

bp = Blueprint("segments", __name__)


@bp.get("/v1/segments")
def list_segments():
    s = services()
    v.query_only(("now",))
    now = v.query_timestamp("now", default=time.time())
    return jsonify({"policy": s.engine.policy.describe(),
                    "segments": segments.report(s.store, s.settings, s.engine.policy, now=now)})
