"""A user's settings (time zone, opt-out) and what the service knows of them."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bandit_push import engagement, ids
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.errors import NotFound
from bandit_push.schema import USER
from bandit_push.store import Store
from bandit_push.tzrule import posix_rule


def put(store: Store, user_id: str, timezone: str | None = None, opted_out: bool | None = None) -> bool:
    """Create or update a user; ``timezone`` must be a known IANA name (KeyError otherwise).

    Returns True if the user was created.
    """
    rule = posix_rule(timezone) if timezone is not None else ""
    oo = "" if opted_out is None else ("1" if opted_out else "0")
    keys = store.keys
    created = bool(store.upsert_user_script(keys=[keys.user(user_id)], args=[timezone or "", rule, oo]))
    # only the call that created the user counts it (the sizes have a slot of their own: a count lost to a crash or
    # a failover between the two commands comes back with the next recount, see scan)
    if created:
        store.redis.hincrby(keys.segment_sizes(), "new", 1)
    return created


def get(store: Store, settings: Settings, user_id: str, now: float | None = None) -> dict[str, Any]:
    """The user's segment, last push, pushes in the 24 h before ``now``, opt-out, time zone, features."""
    now = time.time() if now is None else now
    pipe = store.redis.pipeline(transaction=False)
    pipe.hgetall(store.keys.user(user_id))
    pipe.get(store.keys.user_pushes(user_id))
    h, recent = pipe.execute()
    if not h:
        raise NotFound(f"user {user_id!r} is not known", field="user_id", code="unknown_user")
    pushes = [float(t) for t in (recent or "").split("\n")[0].split()]
    return {
        "user_id": user_id,
        "segment": h.get(USER["segment"], "new"),
        "timezone": h.get(USER["tz_name"], settings.default_timezone),
        "opted_out": h.get(USER["opted_out"]) == "1",
        "last_push": _time(h, "last_push"),
        "pushes_24h": sum(1 for t in pushes if now - 86400 < t <= now),
        "features": {
            "counts": {t: int(h.get(USER["event_count"] + t, 0)) for t in EVENT_TYPES},
            "purchase_value": float(h.get(USER["purchase_value"], 0.0)),
            "first_event": _time(h, "first_event"),
            "last_event": _time(h, "last_event"),
            "last_purchase": _time(h, "last_purchase"),
        },
        "engagement": engagement.describe(store, settings, h, now),
    }


def _time(h: dict[str, str], field: str) -> float | None:
    """A time field of the user hash ``h`` (``field``: its name in :data:`~bandit_push.schema.USER`), or None."""
    raw = h.get(USER[field])
    return float(raw) if raw is not None else None


def scan(store: Store, fields: list[str], batch: int = 1000, recount: bool = False):
    """Yield lists of (user id, [field values]) over every user hash, ``batch`` users per round trip.

    For refit jobs only (a SCAN over the keyspace): the request path never scans. The order is the
    server's (it follows the hashing of the key names, so it differs between prefixes and servers):
    a caller whose result depends on the order sorts. Each user comes once: SCAN may return a key twice
    (while the keyspace rehashes), so the ids seen are kept (one set entry per user, beside the caller's rows).

    With ``recount``, each user's segment is read too (unless ``fields`` names it) and, once the caller has read
    every user, the segment sizes are replaced by the counts (:func:`write_sizes`): the jobs that read every user
    anyway (the segmentation and policy refits) so bound the drift of the sizes to one refit period.
    """
    keys = store.keys
    todo: list[str] = []
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    added = recount and USER["segment"] not in fields
    wanted = fields + [USER["segment"]] if added else fields
    sg = wanted.index(USER["segment"]) if recount else -1

    def fetch() -> list[tuple[str, list]]:
        rows = _fetch(store, todo, wanted)
        todo.clear()
        if recount:
            counts.update(values[sg] or "new" for _, values in rows if any(v is not None for v in values))
        return [(uid, values[:-1]) for uid, values in rows] if added else rows

    for key in store.scan_iter(keys.users_match()):  # every primary of a cluster
        uid = keys.user_of(key)
        if uid is None or uid in seen:  # another per-user key whose suffix ends in a brace, or a repeat
            continue
        seen.add(uid)
        todo.append(uid)
        if len(todo) >= batch:
            yield fetch()
    if todo:
        yield fetch()
    if recount:
        write_sizes(store, counts)


def write_sizes(store: Store, counts: Counter[str]) -> None:
    """Replace the segment sizes by ``counts`` (users per segment, from a scan of every user), a segment no longer
    counted set to 0; one HSET.

    Between two recounts the sizes move by increments sent after the user's own write (a second command: on a
    cluster the sizes have a slot of their own), so a crash or a failover between the two leaves a size one off,
    which the next recount corrects. A user created, moved or deleted while the scan runs may be counted as it was
    before (its increment overwritten): off by one until the next recount too.
    """
    key = store.keys.segment_sizes()
    sizes: dict[str, int] = {seg: 0 for seg in store.redis.hkeys(key)}
    sizes.update(counts)
    if sizes:
        store.redis.hset(key, mapping=sizes)


def _fetch(store: Store, uids: list[str], fields: list[str]) -> list[tuple[str, list]]:
    pipe = store.redis.pipeline(transaction=False)
    for uid in uids:
        pipe.hmget(store.keys.user(uid), fields)
    return list(zip(uids, pipe.execute()))
def delete(store: Store, user_id: str) -> int:
    """Remove everything stored under the user's id; returns the number of keys (and experiment records) removed.

    The user hash (time zone, opt-out, last push, behaviour features, interaction index), the
    recent-pushes key and the user's precomputed items and fold-in interactions go in one script on the user's slot;
    then the segment's size shrinks by one and the user's entry in the index -> id list is blanked (slots of their
    own: a crash between the two leaves the size one too high until a refit recounts it: :func:`scan`); the user's
    event-id markers are found by a SCAN of the user's hash-tagged keys (on a cluster, of the one node serving
    them); the user's counters in each experiment
    (a field of the experiment's per-user hash) are removed, so reports stop counting them. Not removed, because they do not name
    the user: aggregate popularity counts and the interaction records, which carry only the user's
    dense index (the links from it to the id were the user hash and the blanked list entry). Decision records name the user
    and expire after ``decision_ttl_hours``; they are not indexed by user, so they are left to expire.
    """
    keys = store.keys
    removed, segment, index = store.delete_user_script(keys=[keys.user(user_id), keys.user_pushes(user_id),
                                                             keys.user_recs(user_id), keys.user_recent(user_id)])
    removed = int(removed)
    if segment:  # only the call that deleted the user hash uncounts it and blanks its id
        pipe = store.redis.pipeline(transaction=False)
        pipe.hincrby(keys.segment_sizes(), segment, -1)
        pipe.llen(keys.user_ids())
        _, listed = pipe.execute()
        if index and int(index) < listed:
            store.redis.lset(keys.user_ids(), int(index), "")
    batch: list[str] = []
    # the markers share the user's hash tag: on a cluster, only the node of the user's slot is scanned
    for key in store.scan_iter(keys.user_event_marks(user_id), slot_of=keys.user(user_id)):
        batch.append(key)
        if len(batch) >= 500:
            removed += store.redis.unlink(*batch)
            batch = []
    if batch:
        removed += store.redis.unlink(*batch)
    # the user's per-user counters in every experiment (a report then no longer counts them)
    experiment_ids = store.redis.zrange(keys.experiments(), 0, -1)
    if experiment_ids:
        pipe = store.redis.pipeline(transaction=False)
        for xid in experiment_ids:
            pipe.hdel(keys.experiment_users(xid, user_id), ids.store(user_id))
        removed += sum(pipe.execute())
    return removed
