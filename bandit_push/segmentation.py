"""Behavioural segments: features from the user hashes -> k-means -> segment ids stable across refits.

Features per user (readable units, see :data:`FEATURES`): days since the last purchase and since the
last event (capped at a year), and per-30-day rates of purchases, purchase value, views, add-to-carts,
searches and app opens over the user's tenure (at least 30 days, so a new user's burst is not read
as a habit). They are ``log1p``-transformed and standardised; k-means (scipy's ``kmeans2``, k-means++
seeding, the best of :data:`N_INIT` runs) clusters users with at least ``segment_min_events`` events;
the others stay ``new``. Segment ids stay stable, and follow the users: a segment's arms were learned on its
members, so a new cluster keeps an old id only if most of its members were in that segment (the Hungarian
assignment, ``linear_sum_assignment``, on the members the clusters share); any other cluster gets an id never used
before, and learns from the policy space's pooled prior. (Matching centroids by distance alone once gave a cluster
of regular users the id of a vanished handful of enthusiasts, whose arms then pushed them for a week.)

Between refits, a ``new`` user whose events cross the threshold is assigned the nearest centroid in
Python right after the events script (:func:`assign_new`); before the first clustering such users go
to ``default``. Every change of ``sg`` goes through the SET_SEGMENT script, which moves the segment
sizes with it.
"""
from __future__ import annotations

import time
import warnings
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np
import numpy.typing as npt
from scipy.cluster.vq import kmeans2
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from bandit_push import models, users
from bandit_push.arms import arm_values, parse_arm
from bandit_push.config import EVENT_TYPES, OUTCOMES, Settings
from bandit_push.errors import NoData
from bandit_push.schema import ARM_MAGIC, USER
from bandit_push.store import Store

FEATURES: tuple[str, ...] = ("days since last purchase", "days since last event", "purchases/30d",
                             "purchase value/30d", "views/30d", "add_to_carts/30d", "searches/30d", "app_opens/30d")
FIELDS = [USER["event_count"] + t for t in EVENT_TYPES] + [
    USER[f] for f in ("first_event", "last_event", "purchase_value", "last_purchase")]
N_INIT = 8
ITER = 100  #: Lloyd iterations (kmeans2 runs them all): enough to converge, so a warm start is a fixed point
KEEP_MARGIN = 0.05  #: a fresh clustering replaces the continued one only if it is this much tighter
CAP_DAYS = 365.0
NEW, DEFAULT = "new", "default"


def events_of(values: list) -> int:
    """Total shopping events in a user's hash values (in :data:`FIELDS` order)."""
    return sum(int(v or 0) for v in values[:len(EVENT_TYPES)])


def features(values: list, now: float) -> npt.NDArray[np.float64]:
    """The raw (readable-unit) feature vector of one user's hash values, in :data:`FIELDS` order."""
    c = {t: float(v or 0) for t, v in zip(EVENT_TYPES, values)}
    ff, fl, fm, fp = (float(x) if x is not None else None for x in values[len(EVENT_TYPES):])
    tenure = max((now - ff) / 86400.0 if ff is not None else 0.0, 30.0)
    rate = 30.0 / tenure

    def since(t):
        return CAP_DAYS if t is None else min(max((now - t) / 86400.0, 0.0), CAP_DAYS)

    return np.maximum(0.0, [since(fp), since(fl), c["purchase"] * rate, (fm or 0.0) * rate, c["view"] * rate,
                     c["add_to_cart"] * rate, c["search"] * rate, c["app_open"] * rate])


def _kmeans(x: npt.NDArray, k: int, seed: int, init: npt.NDArray | None = None) -> tuple[npt.NDArray, npt.NDArray]:
    """k-means (centroids, labels): the lowest-inertia of :data:`N_INIT` seeded k-means++ runs, unless the run
    started from the previous centroids (``init``) is within :data:`KEEP_MARGIN` of it — then that one,
    so that a refit on similar data keeps its clusters instead of hopping between near-equal optima."""
    def inertia(cents, labels):
        return float(((x - cents[labels]) ** 2).sum())

    best = None
    rng = np.random.default_rng(seed)
    for _ in range(N_INIT):
        cents, labels = kmeans2(x, k, iter=ITER, minit="++", seed=rng)
        score = inertia(cents, labels)
        if best is None or score < best[0] - 1e-9:
            best = (score, cents, labels)
    assert best is not None  # (N_INIT >= 1 runs)
    if init is not None and len(init) == k:
        with warnings.catch_warnings():  # an emptied cluster is checked just below, not worth a warning
            warnings.simplefilter("ignore", UserWarning)
            cents, labels = kmeans2(x, init, iter=ITER, minit="matrix")
        if len(np.unique(labels)) == k and inertia(cents, labels) <= best[0] * (1 + KEEP_MARGIN):
            return cents, labels
    return best[1], best[2]


def match_ids(new_std: npt.NDArray, old_std: npt.NDArray | None, old_ids: list[str],
              shared: npt.NDArray | None = None, last: int = 0) -> list[str]:
    """Ids for new centroids: the matched old segment's id, else a fresh one (numbered after ``last`` and the old ids).

    With ``shared`` (new cluster x old segment: how many of the new cluster's members were in the old segment, a
    last column for those who were in none), the Hungarian assignment maximises the members kept, and a cluster keeps
    its match's id only if more than half of its members were in it; without, centroids match by distance."""
    ids: list[str | None] = [None] * len(new_std)
    if old_std is not None and len(old_std):
        if shared is None:
            rows, cols = linear_sum_assignment(cdist(new_std, old_std))
            keep = [True] * len(rows)
        else:
            rows, cols = linear_sum_assignment(-shared[:, :len(old_ids)])
            keep = [2 * shared[r, c] > shared[r].sum() for r, c in zip(rows, cols)]
        for r, c, k in zip(rows, cols, keep):
            if k:
                ids[r] = old_ids[c]
    used = [int(i[1:]) for i in old_ids if i[1:].isdigit()]
    nxt = max(used + [last]) + 1
    for i in range(len(ids)):
        if ids[i] is None:
            ids[i] = f"s{nxt}"
            nxt += 1
    return ids  # type: ignore[return-value]


def refit(store: Store, settings: Settings, progress: Callable[[float, str], None],
          now: float | None = None) -> dict[str, Any]:
    """Cluster every user with enough history, publish a ``segments`` version, write ``sg`` and the sizes
    (recounted from every user's ``sg`` first, even when no user has the history to cluster yet)."""
    progress(0.0, "read")
    # in user id order, not the SCAN's (which follows the server's hashing of the key names): k-means++
    # picks its seeds by row, so the same users and the same seed must give the same rows to cluster. The scan
    # recounts the segment sizes (what the moves below then change, they change by increments)
    rows = sorted((uv for batch in users.scan(store, FIELDS + [USER["segment"]], recount=True) for uv in batch),
                  key=lambda uv: uv[0])
    uids = [uid for uid, _ in rows]
    raw = [values[:-1] for _, values in rows]
    was = [values[-1] for _, values in rows]  # each user's segment before this refit
    events = [events_of(values) for values in raw]
    if now is None:  # replayed history: "now" is the latest activity, not the wall clock
        lasts = [float(v[len(EVENT_TYPES) + 1]) for v in raw if v[len(EVENT_TYPES) + 1] is not None]
        now = max(lasts) if lasts else time.time()
    eligible = [i for i, n in enumerate(events) if n >= settings.segment_min_events]
    if not eligible:
        raise NoData(f"no user has enough history to cluster yet (segment_min_events: {settings.segment_min_events} "
                     "shopping events)", field="name")
    x = np.log1p(np.array([features(raw[i], now) for i in eligible]))
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    k = min(settings.segment_count, len(eligible))
    progress(0.2, "cluster")
    prev = models.current(store, "segments")
    seed = (settings.seed or 0) * 1000 + int(prev or 0)  # a different run each refit: the matching keeps ids
    old_std, old_ids, last = None, [], 0
    if prev is not None:
        old = models.load(store, "segments", prev)
        old_std, old_ids, last = (old.arrays["centroids"] - mean) / std, old.meta["ids"], old.meta.get("last_id", 0)
    cents, labels = _kmeans(z, k, seed, init=old_std)
    column = {sid: j for j, sid in enumerate(old_ids)}
    shared = np.zeros((k, len(old_ids) + 1))
    before = np.array([column.get(was[i] or "", len(old_ids)) for i in eligible], dtype=np.int64)
    np.add.at(shared, (labels, before), 1)
    ids = match_ids(cents, old_std, old_ids, shared, last)
    # a fresh id starts from the arms of where its members were: each old segment's, in the share of its members it got
    moved_out = shared[:, :len(old_ids)].sum(axis=0)
    sources = {ids[j]: {old_ids[i]: float(shared[j, i] / moved_out[i]) for i in range(len(old_ids)) if shared[j, i]}
               for j in range(k) if ids[j] not in old_ids}
    seed_arms(store, settings, {sid: w for sid, w in sources.items() if w}, now)
    centroids = cents * std + mean  # kept in log1p space: comparable whatever the next scaling
    sizes = np.bincount(labels, minlength=k)
    meta = {"fit_at": time.time(), "data_until": now, "users": len(uids), "clustered": len(eligible),
            "ids": ids, "features": list(FEATURES),
            # the highest id number ever given: a retired id is never given again (its arms stay in the arms hash)
            "last_id": max([last] + [int(i[1:]) for i in ids if i[1:].isdigit()]),
            "sizes": {i: int(s) for i, s in zip(ids, sizes)},
            "inertia": float(((z - cents[labels]) ** 2).sum()),
            "params": {"segment_count": settings.segment_count, "segment_min_events": settings.segment_min_events}}
    progress(0.6, "publish")
    version = models.publish(store, "segments", {"centroids": centroids.astype(np.float64),
                                                 "mean": mean, "std": std}, meta)
    progress(0.7, "assign")
    target = [NEW] * len(uids)
    for i, lab in zip(eligible, labels):
        target[i] = ids[lab]
    moved = set_segments(store, zip(uids, target))
    progress(1.0, "done")
    return {"model": "segments", "version": version, "users": len(uids), "clustered": len(eligible),
            "segments": meta["sizes"], "moved": moved}


def seed_arms(store: Store, settings: Settings, sources: dict[str, dict[str, float]], now: float) -> None:
    """Start each new segment's arms, in every policy space, as the weighted sum of old segments' arms (``sources``:
    new id -> old id -> weight), decayed to ``now``: what the old segments learned on the users the new one now holds.
    Written before any user is in the new segment, so no decide or feedback writes its arms meanwhile."""
    if not sources:
        return
    hl = settings.half_life_hours * 3600.0
    for key in store.scan_iter(store.keys.arms("*")):
        fields: dict[str, dict[str, list[float]]] = {}
        for f, raw in store.binary.hgetall(key).items():
            seg, _, rest = f.decode().partition("|")
            fields.setdefault(seg, {})[rest] = arm_values(raw)
        out: dict[str, bytes] = {}
        for new, weights in sources.items():
            for rest in sorted({r for old in weights for r in fields.get(old, {})}):
                n, counts = 0.0, np.zeros(len(OUTCOMES))
                for old, w in weights.items():
                    dn, dc = parse_arm(fields.get(old, {}).get(rest), now, hl)
                    n, counts = n + w * dn, counts + w * dc
                out[f"{new}|{rest}"] = ARM_MAGIC.encode() + np.concatenate([[now, n], counts]).astype("<f8").tobytes()
        if out:
            store.binary.hset(key, mapping=out)


def set_segments(store: Store, assignments: Iterable[tuple[str, str]], expect: str = "",
                 batch: int = 1000) -> int:
    """Write each user's segment in pipelined batches, then the sizes (one HINCRBY per segment and batch: they have
    a slot of their own on a cluster); returns how many changed.

    With ``expect``, a user is moved only if still in that segment (a refit may have moved them).
    """
    keys = store.keys
    pipe, changed = store.redis.pipeline(transaction=False), 0
    todo: list[str] = []  # the segment of each queued move

    def flush() -> int:
        sizes: Counter[str] = Counter()
        moved = 0
        for seg, left in zip(todo, pipe.execute()):
            if left:  # moved: the sizes follow, one HINCRBY per segment (the sizes have a slot of their own)
                sizes[left] -= 1
                sizes[seg] += 1
                moved += 1
        todo.clear()
        if any(sizes.values()):
            write = store.redis.pipeline(transaction=False)
            for name, n in sizes.items():
                if n:
                    write.hincrby(keys.segment_sizes(), name, n)
            write.execute()
        return moved

    for uid, seg in assignments:
        store.set_segment_script(keys=[keys.user(uid)], args=[seg, expect], client=pipe)
        todo.append(seg)
        if len(todo) >= batch:
            changed += flush()
    changed += flush()
    return changed


def nearest(stored: models.Stored, raw: list, now: float) -> str:
    """The id of the centroid nearest to one user's features (in that version's scaling)."""
    a = stored.arrays
    z = (np.log1p(features(raw, now)) - a["mean"]) / a["std"]
    cz = (a["centroids"] - a["mean"]) / a["std"]
    return stored.meta["ids"][int(np.argmin(((cz - z) ** 2).sum(axis=1)))]


def assign_new(store: Store, settings: Settings, cache: models.ModelCache, user_ids: list[str],
               now: float | None = None) -> int:
    """Move users still in ``new`` whose history crossed ``segment_min_events`` to their nearest segment
    (``default`` before the first clustering); returns how many moved."""
    if not user_ids:
        return 0
    now = time.time() if now is None else now
    pipe = store.redis.pipeline(transaction=False)
    for uid in user_ids:
        pipe.hmget(store.keys.user(uid), FIELDS)
    stored = cache.get(store, "segments")
    moves = []
    for uid, values in zip(user_ids, pipe.execute()):
        if events_of(values) >= settings.segment_min_events:
            moves.append((uid, nearest(stored, values, now) if stored is not None else DEFAULT))
    return set_segments(store, moves, expect=NEW) if moves else 0


def describe(store: Store) -> dict[str, Any] | None:
    """The current segmentation: version and each segment's centroid in readable units."""
    version = models.current(store, "segments")
    if version is None:
        return None
    stored = models.load(store, "segments", version)
    cents = np.expm1(stored.arrays["centroids"])
    return {"version": version, "fit_at": stored.meta["fit_at"], "data_until": stored.meta["data_until"],
            "centroids": {sid: {f: round(float(v), 2) for f, v in zip(FEATURES, row)}
                          for sid, row in zip(stored.meta["ids"], cents)},
            "sizes_at_fit": stored.meta["sizes"]}
