"""Segments and what was learned in them.

Membership lives in the user's record (field ``sg``): ``new`` until the user's first
shopping event, ``default`` after it (the events script assigns it). The clustering
job replaces that rule by writing learned segment ids into the same field.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bandit_push.config import OUTCOMES, Settings
from bandit_push.decide import DEFAULT_SPACE
from bandit_push.policies import ArmView, Policy, pacing_bucket, pacing_hours
from bandit_push.store import Store

Z90 = 1.6448536269514722  # two-sided 90% normal quantile


def arm_values(raw: bytes | str | None) -> list[float]:
    """The numbers of a stored arm, ``t n <outcome counts...>``: ``B`` and little-endian doubles (what the
    scripts write), or text (what versions before it wrote, still read); ``[]`` for none."""
    if not raw:
        return []
    if isinstance(raw, bytes) and raw[:1] == b"B" and len(raw) % 8 == 1:
        return np.frombuffer(raw, "<f8", offset=1).tolist()
    try:
        return [float(x) for x in (raw.decode() if isinstance(raw, bytes) else raw).split()]
    except (ValueError, UnicodeDecodeError):  # not an arm: the scripts start it afresh too (arm_load)
        return []


def load_arms(store: Store, space: str = DEFAULT_SPACE) -> dict[str, list[float]]:
    """Every arm of a policy space: field (``<segment>|<recency>|<daypart>``, ``<segment>|N``, ``*|N``) -> numbers."""
    return {f.decode(): arm_values(raw) for f, raw in store.binary.hgetall(store.keys.arms(space)).items()}


def parse_arm(vals: list[float] | None, now: float, half_life_s: float) -> tuple[float, np.ndarray]:
    """(sends, outcome counts) of an arm's numbers (:func:`arm_values`), decayed to ``now``."""
    if not vals or len(vals) < 2:
        return 0.0, np.zeros(len(OUTCOMES))
    f = 2.0 ** (-(now - vals[0]) / half_life_s) if now > vals[0] else 1.0
    counts = np.zeros(len(OUTCOMES))
    counts[: len(vals) - 2] = vals[2:2 + len(OUTCOMES)]
    return vals[1] * f, counts * f


def report(store: Store, settings: Settings, policy: Policy, now: float | None = None,
           space: str = DEFAULT_SPACE) -> list[dict[str, Any]]:
    """Every segment with its size and, per context, decayed counts and the net value's posterior."""
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
    space_totals = parse_arm(arms.get("*|N"), now, hl)
    paced = policy.params.get("pacing", 0.0) > 0
    hours = pacing_hours([h * 3600.0 for h in settings.recency_edges_hours], settings.min_gap_hours * 3600.0)
    out = []
    for seg in sorted(set(sizes) | set(by_segment)):
        seg_sends, seg_counts = parse_arm(arms.get(f"{seg}|N"), now, hl)

        def view(r: int, raw: list[float] | None) -> ArmView:
            n, counts = parse_arm(raw, now, hl)
            return ArmView(n=n, counts=counts, segment_sends=seg_sends,
                           hours_since_push=settings.recency_edges_hours[r - 1] if r else 0.0,
                           segment_counts=seg_counts, space=space_totals)

        # with pacing, a context below its daypart's best-rate recency bucket is not pushed (decide's pace_best)
        best = {d: pacing_bucket([view(b, arms.get(f"{seg}|{b}|{d}")).posterior(policy.prior)[0]
                                  for b in range(len(hours))], hours, policy.params.get("cost", 0.0))
                for d in range(len(dayparts))} if paced else {}
        contexts = []
        for r, d, raw in sorted(by_segment.get(seg, [])):
            v = view(r, raw)
            mean, var = v.posterior(policy.prior)
            sd = math.sqrt(var)
            contexts.append({
                "recency": recency[r], "daypart": dayparts[d], "sends": round(v.n, 4),
                "outcomes": {o: round(float(c), 4) for o, c in zip(OUTCOMES, v.counts)},
                "net_value": {"mean": mean, "lo90": mean - Z90 * sd, "hi90": mean + Z90 * sd},
                "send_probability": 0.0 if paced and r < best[d] else policy.send_probability(v),
            })
        out.append({"segment": seg, "size": int(sizes.get(seg, 0)), "contexts": contexts})
    return out
