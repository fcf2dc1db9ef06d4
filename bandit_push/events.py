"""Shopping events: they feed behaviour features, popularity and the interaction store."""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from bandit_push import ids, segmentation, toplists
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.experiments import Registry, Snapshot
from bandit_push.interactions import NO_ITEM
from bandit_push.keys import key_slot
from bandit_push.models import ModelCache
from bandit_push.schema import COUNTERS, USER
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
    """Record events, a whole batch in a few pipelined round trips; returns (accepted, duplicate).

    Per event: the user's behaviour features (counts per type, first/last activity,
    purchase value and recency), the segment's and the global popularity of the item
    for the event's UTC day, and a 13-byte record in the interaction store that the
    refit reads. A user first seen here starts in segment ``new``.
    An event with an ``event_id`` already recorded for that user within ``event_dedup_hours``
    changes nothing (gateways may retry a batch safely). A user exposed to an active (running or
    paused) experiment also counts the event, and a purchase, in their experiment counters when it
    happened at or after the exposure (the organic activity a holdout measures). ``registry`` is the
    process's cached experiments view (the API shares the decision engine's); without one it is read.

    Each command names one slot (so events run on a Redis Cluster): the user's part first (event.lua), then the
    shared parts on their own slots (:func:`_complete`). Those of an event with an id count once per (user, event
    id) by markers in their slots, and a retry answered ``duplicate`` sends them again: it completes what a crash
    between the commands cut, and counts nothing twice. Events without an id count at each call, as ever.

    With ``models`` (the API process's cache), the script's work is followed by the real-time steps:
    users in ``new`` whose history crossed ``segment_min_events`` get their nearest segment, and users
    with new item events get their recommendations recomputed by fold-in (``realtime_foldin``).
    """
    registry = registry or Registry(store)
    snap = registry.snapshot
    keys = store.keys
    dedup_ttl = str(int(settings.event_dedup_hours * 3600))
    items = sorted({ids.store(ev.item_id) for ev in events if ev.item_id})
    pipe = store.redis.pipeline(transaction=False)
    for ev in events:
        store.event_script(keys=[keys.user(ev.user_id),
                                 keys.event_seen(ev.user_id, ev.event_id) if ev.event_id else keys.user(ev.user_id)],
                           args=[repr(ev.ts), ev.type, repr(float(ev.value)), dedup_ttl if ev.event_id else "0"],
                           client=pipe)
    pipe.get(keys.experiments_version())
    pipe.hget(keys.counters(), COUNTERS["users"])
    pipe.llen(keys.user_ids())
    if items:
        pipe.hmget(keys.item_index(), items)
    got = pipe.execute()
    answers, (version, counted, listed) = got[:len(events)], got[len(events):len(events) + 3]
    if (version or "0") != snap.version:
        snap = registry.refresh()  # an experiment started or stopped since the process read them
    item_ix = dict(zip(items, got[-1])) if items else {}
    # a store from before the user id list (its users counted, the list empty) keeps allocating by the counter
    _complete(store, settings, events, answers, item_ix, snap, legacy=not listed and int(counted or 0) > 0)
    recorded = [ev for ev, r in zip(events, answers) if r[0] == "accepted"]
    if models is not None and recorded:
        newcomers = sorted({ev.user_id for ev, r in zip(events, answers) if r[0] == "accepted" and r[1] == "new"})
        segmentation.assign_new(store, settings, models, newcomers, now=max(ev.ts for ev in recorded))
        if settings.realtime_foldin:
            toplists.refresh_users(store, settings, models, recorded)
    return len(recorded), len(events) - len(recorded)


def _complete(store: Store, settings: Settings, events: list[ShopEvent], answers: list[Any],
              item_ix: dict[str, str | None], snap: Snapshot, legacy: bool = False) -> None:
    """The shared parts of the events the user's part answered (``answers``: event.lua's, per event), each command
    on one slot, pipelined stage by stage across the batch.

    A user without a dense index gets one: an RPUSH on the user id list allocates it (the list is the allocator,
    so it lines up with the indexes by construction), then claim_index.lua HSETNXes it into the user hash and
    answers the winner's (concurrent first events of a user allocate two; the loser's list entry is blanked, as a
    deleted user's). Items likewise with the item list and index (a loser's entry keeps the item's id: an index
    no record refers to). Then the popularity, the interaction record and the experiments' counters (one command per
    experiment and user slot: the counters are in their users' slots; an experiment stopped since the registry
    snapshot of the first round trip still counts this batch's events), idempotent by
    (user index, event id) for events with an id, and the days sets and a new user's segment size, idempotent or
    counted by the one call that created the user.
    """
    keys = store.keys
    # a duplicate of a user deleted since (segment '') is not completed: that would bring the user back
    todo = [(ev, r) for ev, r in zip(events, answers) if r[1]]
    users = sorted({ids.store(ev.user_id) for ev, r in todo if r[3] == ""})
    users_of = {ids.store(ev.user_id): ev.user_id for ev, _ in todo}
    items = sorted({i for ev, r in todo if ev.item_id and item_ix.get(i := ids.store(ev.item_id)) is None})
    user_ix = {ids.store(ev.user_id): r[3] for ev, r in todo if r[3] != ""}
    losers: list[int] = []
    if users or items:
        # one RPUSH per list: its values get consecutive indexes, the last one the list's new length less one; the
        # users' counter follows (what a store from before the list allocates by, and the refit reads)
        pipe = store.redis.pipeline(transaction=False)
        if users:
            if not legacy:
                pipe.rpush(keys.user_ids(), *users)
            pipe.hincrby(keys.counters(), COUNTERS["users"], len(users))
        if items:
            pipe.rpush(keys.item_ids(), *items)
        ends = iter(pipe.execute())
        pipe = store.redis.pipeline(transaction=False)
        if users:
            allocated = next(ends) - len(users)
            if not legacy:
                next(ends)  # (the counter's)
            user_alloc = {u: allocated + j for j, u in enumerate(users)}
            for u in users:
                store.claim_index_script(keys=[keys.user(users_of[u])], args=["1", USER["index"], user_alloc[u]],
                                         client=pipe)
        if items:
            first = next(ends) - len(items)
            store.claim_index_script(keys=[keys.item_index()],
                                     args=["0", *(x for j, i in enumerate(items) for x in (i, first + j))],
                                     client=pipe)
        won = pipe.execute()
        for u, w in zip(users, won):
            if w:
                user_ix[u] = w[0]
            if (not w or int(w[0]) != user_alloc[u]) and not legacy:  # lost to a concurrent first event, or deleted
                losers.append(user_alloc[u])
        if items:
            item_ix.update(zip(items, won[-1]))
    dedup_ttl = str(int(settings.event_dedup_hours * 3600))
    pop_ttl = int((settings.popular_window_days + 2) * 86400)
    ix_ttl = int(settings.interaction_retention_days * 86400)
    pipe = store.redis.pipeline(transaction=False)
    for day in sorted({int(ev.ts // 86400) for ev, _ in todo}):
        pipe.zadd(keys.interaction_days(), {str(day): day})
        pipe.srem(keys.interactions_compacted(), day)  # a late event re-opens a compacted day
    for n in losers:
        pipe.lset(keys.user_ids(), n, "")
    created = sum(int(r[2]) for _, r in todo)
    if created:
        pipe.hincrby(keys.segment_sizes(), "new", created)
    # one command per day's popularity, per day's chunk and per experiment, for the batch's events of each
    pop: dict[int, tuple[list[str], list[Any]]] = {}
    chunks: dict[int, tuple[list[str], list[Any]]] = {}
    exposed: dict[tuple[int, int], tuple[list[str], list[Any]]] = {}  # per (experiment, the users' slot)

    def add(batch: dict[Any, tuple[list[str], list[Any]]], at: Any, first: int, marker: str | None,
            *values: Any) -> None:
        """An event's values for the command of ``batch`` at ``at``, with its marker's KEYS index (the markers
        follow the command's ``first`` keys; 0: no marker)."""
        marks, args = batch.setdefault(at, ([], []))
        if marker:
            marks.append(marker)
        args += [*values, len(marks) + first if marker else 0]

    for ev, r in todo:
        uix = user_ix.get(ids.store(ev.user_id))
        if uix is None:  # deleted between the commands
            continue
        day, eid = int(ev.ts // 86400), ev.event_id
        item = ids.store(ev.item_id) if ev.item_id else ""
        weight = float(settings.event_weights.get(ev.type, 0.0))
        if item and weight > 0:
            add(pop, day, 1, eid and keys.popular_counted(day, uix, eid), r[1], item, repr(weight))
        add(chunks, day, 1, eid and keys.interaction_counted(day, uix, eid),
            uix, item_ix[item] if item else NO_ITEM, EVENT_TYPES.index(ev.type), repr(ev.ts))
        for x in snap.active:
            add(exposed, (x, key_slot(keys.user(ev.user_id))), 1,
                eid and keys.experiment_event_counted(x, ev.user_id, uix, eid),
                ids.store(ev.user_id), repr(ev.ts), "1" if ev.type == "purchase" else "0")
    for day, (marks, args) in pop.items():
        store.event_popular_script(keys=[keys.popular_day(day), *marks], args=[pop_ttl, dedup_ttl, *args], client=pipe)
    for day, (marks, args) in chunks.items():
        store.event_interaction_script(keys=[keys.interactions(day), *marks], args=[ix_ttl, dedup_ttl, *args],
                                       client=pipe)
    for (x, slot), (marks, args) in exposed.items():
        store.event_experiment_script(keys=[keys.experiment_users_of_slot(x, slot), *marks],
                                      args=[dedup_ttl, *args], client=pipe)
    if len(pipe):
        pipe.execute()
