"""Segments and what was learned in them.

Membership lives in the user's record (field ``sg``): ``new`` until the user has
``segment_min_events`` shopping events, then the nearest learned segment, or ``default``
before the first clustering (:mod:`bandit_push.segmentation` assigns both). What each
segment learned lives in its arms, read here for the ``GET /v1/segments`` report.
"""
from __future__ import annotations

import math
import time
from typing import Any

from bandit_push.config import OUTCOMES, Settings
from bandit_push.decide import DEFAULT_SPACE
from bandit_push.policies import ArmView, Policy, pacing_choice
from bandit_push.arms import arm_values, parse_arm  # noqa: F401 - (re-exported: what the tests read arms with)
from bandit_push.schema import ARM
from bandit_push.store import Store

Z90 = 1.6448536269514722  # two-sided 90% normal quantile


def load_arms(store: Store, space: str = DEFAULT_SPACE) -> dict[str, list[float]]:
    """Every arm of a policy space: field (``<segment>|<recency>|<daypart>``, ``<segment>|N``, ``*|N``, the load
    arms ``<segment>|FL`` and ``<segment>|F<j>``) -> numbers."""
    return {f.decode(): arm_values(raw) for f, raw in store.binary.hgetall(store.keys.arms(space)).items()}


def load_names(settings: Settings) -> list[str]:
    """Labels of the load arms, in :func:`~bandit_push.policies.pacing_load` order: ``none in 168h``, then
    ``0 in 72h``, ``1 in 72h``, ..., ``6+ in 72h`` (with the default window and arms)."""
    w, n = f"{settings.pacing_window_hours:g}h", settings.pacing_loads
    return [f"none in {settings.recency_edges_hours[-1]:g}h"] + [
        f"{j}{'+' if j == n - 1 else ''} in {w}" for j in range(n)]


def report(store: Store, settings: Settings, policy: Policy, now: float | None = None,
           space: str = DEFAULT_SPACE, only: str | None = None) -> list[dict[str, Any]]:
    """Every segment (or ``only`` that one) with its size and, per context, decayed counts and the net value's
    posterior; with pacing, the segment's load arms and the highest load it pushes at (``max_load``)."""
    now = time.time() if now is None else now
    hl = settings.half_life_hours * 3600.0
    sizes = store.redis.hgetall(store.keys.segment_sizes())
    arms = load_arms(store, space)
    by_segment: dict[str, list[tuple[int, int, list[float]]]] = {}
    for fld, raw in arms.items():
        parts = fld.split("|")
        if len(parts) == 3:
            by_segment.setdefault(parts[0], []).append((int(parts[1]), int(parts[2]), raw))
    recency = settings.recency_labels()
    dayparts = [name for _, name in settings.dayparts]
    space_totals = parse_arm(arms.get(ARM["space_totals"]), now, hl)
    paced = policy.params.get("pacing", 0.0) > 0
    cost = policy.params.get("cost", 0.0)
    caution = policy.params.get("pacing_caution", 0.0)
    explore, min_sends = policy.params.get("pacing_explore", 0.0), policy.params.get("pacing_min_sends", 0.0)
    load_labels = load_names(settings)
    out = []
    for seg in sorted(set(sizes) | set(by_segment)):
        if only is not None and seg != only:
            continue
        seg_sends, seg_counts = parse_arm(arms.get(seg + ARM["segment_totals"]), now, hl)

        def view(raw: list[float] | None, hours: float) -> ArmView:
            n, counts = parse_arm(raw, now, hl)
            return ArmView(n=n, counts=counts, segment_sends=seg_sends, hours_since_push=hours,
                           segment_counts=seg_counts, space=space_totals)

        def summary(v: ArmView) -> dict[str, Any]:
            mean, var = v.posterior(policy.prior)
            sd = math.sqrt(var)
            return {"sends": round(v.n, 4), "outcomes": {o: round(float(c), 4) for o, c in zip(OUTCOMES, v.counts)},
                    "net_value": {"mean": mean, "lo90": mean - Z90 * sd, "hi90": mean + Z90 * sd}}

        contexts = []
        for r, d, raw in sorted(by_segment.get(seg, [])):
            v = view(raw, settings.recency_edges_hours[r - 1] if r else 0.0)
            contexts.append({"recency": recency[r], "daypart": dayparts[d], **summary(v),
                             "send_probability": policy.send_probability(v)})
        entry: dict[str, Any] = {"segment": seg, "size": int(sizes.get(seg, 0)), "contexts": contexts}
        if paced:  # decide's pace_choice on the same arms
            views = [view(arms.get(f"{seg}{ARM['load']}{k}"), 0.0) for k in ["L"] + list(range(settings.pacing_loads))]
            means, variances = zip(*(v.posterior(policy.prior) for v in views))
            best = pacing_choice(means, variances, cost, settings.pacing_window_hours,
                                 settings.recency_edges_hours[-1], caution, [v.n for v in views], explore, min_sends)
            entry["loads"] = [{"load": name, **summary(v)} for name, v in zip(load_labels, views)]
            entry["max_load"] = load_labels[best + 1]
        out.append(entry)
    return out
