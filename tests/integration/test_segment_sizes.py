"""The segment sizes (`segsize`) are recounted by the jobs that read every user: a size left off by a crash
between a user's write and its count (two commands, two slots on a cluster) is right again after the next
segmentation or policy refit. On one Redis and, in the cluster pass, on a Redis Cluster."""
from __future__ import annotations

import random

import pytest

from bandit_push import refit as refits
from bandit_push import users
from bandit_push.errors import NoData
from bandit_push.schema import USER

pytestmark = pytest.mark.cluster
NOW = 1795000000.0


def sizes(store) -> dict[str, int]:
    return {seg: int(n) for seg, n in store.redis.hgetall(store.keys.segment_sizes()).items()}


def shoppers(store, n_shopping: int, n_idle: int) -> list[str]:
    """Users as the events script leaves them (written directly: events cannot run on a cluster yet)."""
    rng = random.Random(5)
    ids = [f"user {i} {{x}}" for i in range(n_shopping + n_idle)]  # (ids a hash tag or a split could break)
    for i, uid in enumerate(ids):
        assert users.put(store, uid) is True
        if i < n_shopping:
            counts = {USER["event_count"] + t: rng.randint(1, 30) for t in ("view", "search", "purchase", "app_open")}
            store.redis.hset(store.keys.user(uid), mapping={
                **counts, USER["first_event"]: NOW - rng.uniform(30, 300) * 86400,
                USER["last_event"]: NOW - rng.uniform(0, 20) * 86400,
                USER["last_purchase"]: NOW - rng.uniform(0, 90) * 86400, USER["purchase_value"]: rng.uniform(5, 900)})
    return ids


def test_the_segmentation_refit_recounts_sizes_left_off_by_crashes(store, settings):
    ids = shoppers(store, 40, 10)
    assert sizes(store) == {"new": 50}
    # what crashes between the two writes leave: a created user never counted, a deletion counted twice, a count
    # for a segment nobody is in
    store.redis.hset(store.keys.segment_sizes(), mapping={"new": 47, "s9": 2})
    summary = refits.run(store, settings, "segments", "test", now=NOW)
    assert summary["clustered"] == 40
    got = sizes(store)
    assert got == {**summary["segments"], "new": 10, "s9": 0} and sum(got.values()) == 50
    by_segment: dict[str, int] = {}
    for uid in ids:
        seg = users.get(store, settings, uid, now=NOW)["segment"]
        by_segment[seg] = by_segment.get(seg, 0) + 1
    assert {seg: n for seg, n in got.items() if n} == by_segment

    # drift after the refit (a user whose count was lost) is gone after the next one, which moves nobody
    store.redis.hincrby(store.keys.segment_sizes(), "new", -3)
    again = refits.run(store, settings, "segments", "test", now=NOW)
    assert again["moved"] == 0 and sizes(store) == got


def test_refits_that_find_no_data_still_recount(store, settings):
    """Before any user has the history to cluster, or has been pushed: the scan has read everyone anyway."""
    shoppers(store, 0, 12)
    store.redis.hset(store.keys.segment_sizes(), mapping={"new": 15})
    with pytest.raises(NoData):
        refits.run(store, settings, "segments", "test", now=NOW)
    assert sizes(store) == {"new": 12}
    store.redis.hset(store.keys.segment_sizes(), mapping={"new": 11, "default": 1})
    with pytest.raises(NoData):  # the policy refit (hourly): nobody pushed yet
        refits.run(store, settings, "policy", "test", now=NOW)
    assert sizes(store) == {"new": 12, "default": 0}
