"""Popular items per segment over a recent window: what decide serves to users the MF model has no items for."""
from __future__ import annotations

import heapq
import time
from collections import defaultdict

from bandit_push.config import Settings
from bandit_push.schema import POPULAR
from bandit_push.store import Store


def refresh(store: Store, settings: Settings, now: float | None = None) -> dict[str, int]:
    """Recompute every segment's top items from the daily popularity counts; returns list sizes.

    The window is the ``popular_window_days`` days up to ``now`` — by default up to the
    newest day that has events, so replayed history gets a sensible window too. The
    lists are replaced in one MULTI/EXEC: decide never reads a half-written set.
    """
    keys = store.keys
    if now is None:
        newest = store.redis.zrevrange(keys.interaction_days(), 0, 0)
        last_day = int(newest[0]) if newest else int(time.time() // 86400)
    else:
        last_day = int(now // 86400)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day in range(last_day - settings.popular_window_days + 1, last_day + 1):
        # (a dict: HSCAN may return a field twice while the hash rehashes, and each counts once)
        for fld, value in dict(store.redis.hscan_iter(keys.popular_day(day), count=1000)).items():
            seg, _, item = fld.partition("|")
            totals[seg][item] += float(value)
    lists = {}
    for seg, counts in totals.items():
        top = heapq.nlargest(settings.popular_size, counts.items(), key=lambda kv: (kv[1], kv[0]))
        lists[seg] = " ".join(f"{item} {score:.6g}" for item, score in top)
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(keys.popular_top())
    pipe.hset(keys.popular_top(),
              mapping={**lists, POPULAR["refreshed"]: repr(time.time()), POPULAR["day"]: str(last_day)})
    pipe.execute()
    return {seg: len(c) for seg, c in totals.items()}
