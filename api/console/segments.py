"""Segments: the overview (size and its change since the last refit, what was learned in a line), and one
segment's page (centroid, net value per recency x daypart as a heat map with the send probability, load arms)."""
from __future__ import annotations

import time
from typing import Any

from flask import abort, render_template

from bandit_push_api.services import services
from bandit_push_api.console.blueprint import bp
from bandit_push import segmentation, segments


def _read(only: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None, float]:
    """What ``GET /v1/segments`` reads (all segments, or ``only`` one), with the centroid and size at the refit."""
    s = services()
    now = time.time()
    report = segments.report(s.store, s.settings, s.engine.policy, now=now, only=only)
    clustering = segmentation.describe(s.store)
    for seg in report:
        seg["centroid"] = clustering["centroids"].get(seg["segment"]) if clustering else None
        seg["at_fit"] = clustering["sizes_at_fit"].get(seg["segment"]) if clustering else None
    return report, clustering, now


@bp.get("/segments")
def segments_page():
    s = services()
    report, clustering, now = _read()
    for seg in report:
        seg["best"] = max(seg["contexts"], key=lambda c: c["net_value"]["mean"], default=None)
    return render_template("console/segments.html", segments=report, clustering=clustering,
                           cells=len(s.settings.recency_labels()) * len(s.settings.dayparts),
                           policy=s.engine.policy.describe(), weights=s.settings.weights, now=now)


@bp.get("/segments/<segment>")
def segment_page(segment: str):
    s = services()
    report, clustering, now = _read(only=segment)
    if not report:
        abort(404, f"no segment {segment!r}")
    seg = report[0]
    # the heat map's grid: recency rows x daypart columns (contexts never pushed in stay empty)
    grid = {(c["recency"], c["daypart"]): c for c in seg["contexts"]}
    vmax = max([abs(c["net_value"]["mean"]) for c in seg["contexts"]], default=0.0)
    return render_template("console/segment.html", seg=seg, grid=grid, vmax=vmax, clustering=clustering,
                           recency=s.settings.recency_labels(), dayparts=[name for _, name in s.settings.dayparts],
                           features=segmentation.FEATURES, policy=s.engine.policy.describe(),
                           weights=s.settings.weights, now=now)
