"""GET /v1/segments."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from bandit_push_api.services import services
from bandit_push_api import validation as v
from bandit_push import segmentation, segments

bp = Blueprint("segments", __name__)


@bp.get("/v1/segments")
def list_segments():
    s = services()
    v.query_only(("now",))
    now = v.query_timestamp("now", default=time.time())
    report = segments.report(s.store, s.settings, s.engine.policy, now=now)
    clustering = segmentation.describe(s.store)
    for seg in report:  # centroid in readable units; null for new, default and any retired segment
        seg["centroid"] = clustering["centroids"].get(seg["segment"]) if clustering else None
    meta = {k: clustering[k] for k in ("version", "fit_at", "data_until")} if clustering else None
    return jsonify({"policy": s.engine.policy.describe(), "segmentation": meta, "segments": report})
