"""Shopping events: they feed behaviour features, popularity and the interaction store."""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from bandit_push import ids, segmentation, toplists
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.errors import Unavailable
from bandit_push.experiments import Registry, Snapshot
from bandit_push.models import ModelCache
from bandit_push.store import Store


@dataclass(frozen=True)
class ShopEvent:
    user_id: str
    type: str
    ts: float
    item_id: str | None = None
    value: float = 0.0
    event_id: str | None = None  #: optional; a retry with the same id (per user) counts once


def ingest(store: Store, settings: Settings, events: list[ShopEvent],
           registry: Registry | None = None, models: ModelCache | None = None) -> tuple[int, int]:
    """Record events atomically each, a whole batch in one round trip; returns (accepted, duplicate).

    Per event: the user's behaviour features (counts per type, first/last activity,
    purchase value and recency), the segment's and the global popularity of the item
    for the event's UTC day, and a 13-byte record in the interaction store that the
    refit reads. A user first seen here starts in segment ``new``.
    An event with an ``event_id`` already recorded for that user within ``event_dedup_hours``
    changes nothing (gateways may retry a batch safely). A user exposed to an active (running or
    paused) experiment also counts the event, and a purchase, in their experiment counters when it
    happened at or after the exposure (the organic activity a holdout measures). ``registry`` is the
    process's cached experiments view (the API shares the decision engine's); without one it is read.

    With ``models`` (the API process's cache), the script's work is followed by the real-time steps:
    users in ``new`` whose history crossed ``segment_min_events`` get their nearest segment, and users
    with new item events get their recommendations recomputed by fold-in (``realtime_foldin``).
    """
    registry = registry or Registry(store)
    results: list[Any] = [None] * len(events)
    todo = list(range(len(events)))
    for _ in range(5):
        snap = registry.snapshot
        out = _run(store, settings, [events[i] for i in todo], snap)
        for i, r in zip(todo, out):
            results[i] = r
        todo = [i for i, r in zip(todo, out) if r == -1]  # the registry moved: nothing written, rerun
        if not todo:
            break
        registry.refresh()
    else:
        raise Unavailable("the experiments registry keeps changing; retry shortly")
    recorded = sum(1 for seg in results if seg)
    if models is not None and recorded:
        fresh = [ev for ev, seg in zip(events, results) if seg]
        newcomers = sorted({ev.user_id for ev, seg in zip(events, results) if seg == "new"})
        segmentation.assign_new(store, settings, models, newcomers, now=max(ev.ts for ev in fresh))
        if settings.realtime_foldin:
            toplists.refresh_users(store, settings, models, fresh)
    return recorded, len(events) - recorded


def _run(store: Store, settings: Settings, events: list[ShopEvent], snap: Snapshot) -> list[Any]:
    """One pipelined round trip of the event script over ``events``, against the registry ``snap``."""
    dedup_ttl = str(int(settings.event_dedup_hours * 3600))
    keys = store.keys
    pop_ttl = int((settings.popular_window_days + 2) * 86400)
    ix_ttl = int(settings.interaction_retention_days * 86400)
    active = [keys.experiment_users(i) for i in snap.active]
    pipe = store.redis.pipeline(transaction=False)
    for ev in events:
        day = int(ev.ts // 86400)
        store.event_script(
            keys=[keys.user(ev.user_id), keys.segment_sizes(), keys.popular_day(day), keys.interactions(day),
                  keys.item_index(), keys.item_ids(), keys.counters(), keys.interaction_days(),
                  keys.interactions_compacted(),
                  keys.event_seen(ev.user_id, ev.event_id) if ev.event_id else keys.user(ev.user_id),
                  keys.experiments_version(), keys.user_ids(), *active],
            # (ids in their stored form: the script keeps them in packed lists and hash fields)
            args=[repr(ev.ts), ev.type, EVENT_TYPES.index(ev.type), ids.store(ev.item_id) if ev.item_id else "",
                  repr(float(ev.value)), repr(float(settings.event_weights.get(ev.type, 0.0))), pop_ttl, ix_ttl, day,
                  dedup_ttl if ev.event_id else "0", snap.version, ids.store(ev.user_id)],
            client=pipe)
    return pipe.execute()
