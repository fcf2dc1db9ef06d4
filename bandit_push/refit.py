"""Refits: the MF model and the segmentation, each under a lock, publishing a new version or nothing.

A refit holds its model's lock (:mod:`bandit_push.refit_lock`) for its whole run, renewing it as it
makes progress, so two refits of one model never run at once, whoever started them. Anything that fails
before the version pointer flips leaves the previous version serving: publishing is the last step that
matters.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from bandit_push import ids, interactions, models, recs, refit_lock, toplists, users
from bandit_push.config import Settings
from bandit_push.errors import NoData, NotFound
from bandit_push.refit_lock import HolderEnded
from bandit_push.schema import COUNTERS, USER
from bandit_push.store import Store

if TYPE_CHECKING:
    from bandit_push.engagement_gate import LogWindow

Progress = Callable[[float, str], None]
K = 10  #: the cut-off of the quality figures (recall@10)


def run(store: Store, settings: Settings, name: str, owner: str, progress: Progress | None = None,
        now: float | None = None, ended: HolderEnded | None = None,
        keep_lock_on_error: bool = False, gate_log: LogWindow | None = None) -> dict[str, Any]:
    """Run the refit of ``name`` holding its lock: taken here, already taken for ``owner``, or (with ``ended``)
    taken over from a holder that has ended (see :func:`bandit_push.refit_lock.hold`). The lock is released at
    the end, or kept after a failure with ``keep_lock_on_error`` (a job that will be retried under the same
    owner: it expires ``refit_timeout_s`` + 60 s after its last renewal). ``gate_log``: the policy refit's reader of
    the decision log, for a process that refits often (see :class:`bandit_push.engagement_gate.LogWindow`)."""
    if name not in REFITS:
        raise NotFound(f"unknown model {name!r}; one of {list(REFITS)}", field="name", code="unknown_model")
    lk = refit_lock.hold(store, settings, name, owner, ended)
    renewed = [time.monotonic()]

    def report(fraction: float, stage: str) -> None:
        if time.monotonic() - renewed[0] > 10:  # keep the lock while making progress
            lk.reacquire()
            renewed[0] = time.monotonic()
        if progress is not None:
            progress(min(max(fraction, 0.0), 1.0), stage)

    started = time.time()
    failed = True
    try:
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads only contend
            summary = REFITS[name](store, settings, report, now, **({"gate_log": gate_log} if gate_log else {}))
        failed = False
    except NoData:
        failed = False  # nothing to retry
        raise
    finally:
        if not (failed and keep_lock_on_error):
            try:
                lk.release()
            except Exception:  # noqa: BLE001 - expired or taken over: nothing of ours to release
                pass
    summary["seconds"] = round(time.time() - started, 3)
    return summary


# -- MF -----------------------------------------------------------------------------------------------

def _read_all(store: Store) -> np.ndarray:
    chunks = list(interactions.read(store))
    if not chunks:
        return np.zeros(0, dtype=interactions.RECORD)
    return np.concatenate(chunks)


def _holdout(rows: np.ndarray, n_users: int, settings: Settings) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Mask of training rows, and the held-out target items of up to ``quality_users`` users.

    A user with at least 5 item interactions may be drawn; their latest 20% (in time) are held out,
    and the targets are the held-out items they had not interacted with before.
    """
    rng = np.random.default_rng(settings.seed if settings.seed is not None else 0)
    counts = np.bincount(rows["user"], minlength=n_users)
    eligible = np.flatnonzero(counts >= 5)
    chosen = rng.choice(eligible, size=min(settings.quality_users, len(eligible)), replace=False)
    train = np.ones(len(rows), dtype=bool)
    targets: dict[int, np.ndarray] = {}
    order = np.argsort(rows["user"], kind="stable")
    starts = np.searchsorted(rows["user"][order], np.arange(n_users + 1))
    for u in chosen:
        idx = order[starts[u]:starts[u + 1]]
        idx = idx[np.argsort(rows["ts"][idx], kind="stable")]
        cut = int(np.ceil(len(idx) * 0.8))
        before, after = idx[:cut], idx[cut:]
        new = np.setdiff1d(rows["item"][after], rows["item"][before])
        if len(new):
            train[after] = False
            targets[int(u)] = new
    return train, targets


def _recall(ranked: dict[int, np.ndarray], targets: dict[int, np.ndarray]) -> float | None:
    if not targets:  # undefined (``quality.reason`` says why): JSON has no NaN
        return None
    return float(np.mean([len(np.intersect1d(ranked[u][:K], t)) / len(t) for u, t in targets.items()]))


def refit_mf(store: Store, settings: Settings, progress: Progress, now: float | None = None) -> dict[str, Any]:
    """Read interactions, fit, measure on a held-out slice, publish, precompute every user's list."""
    progress(0.0, "read")
    keys = store.keys
    all_rows = _read_all(store)
    rows = all_rows[all_rows["item"] != interactions.NO_ITEM]
    if not len(rows):
        raise NoData("no item interactions to fit a model on yet", field="name")
    n_users = max(int(store.redis.hget(keys.counters(), COUNTERS["users"]) or 0), int(rows["user"].max()) + 1)
    n_items = max(int(store.redis.llen(keys.item_ids())), int(rows["item"].max()) + 1)
    now = float(rows["ts"].max()) if now is None else now
    train, targets = _holdout(rows, n_users, settings)
    progress(0.1, "matrix")
    tr = rows[train]
    matrix = recs.build_matrix(tr["user"], tr["item"], tr["type"], tr["ts"], n_users, n_items, now, settings)
    pop = recs.popularity(tr["item"], tr["type"], tr["ts"], n_items, now, settings)
    progress(0.15, "fit")
    model = recs.fit(matrix, settings, progress=lambda f: progress(0.15 + 0.65 * f, "fit"), popularity=pop)
    progress(0.8, "quality")
    quality = _quality(model, settings, rows, train, targets, n_items)
    progress(0.85, "publish")
    order = np.lexsort((rows["ts"], rows["user"]))
    srt = rows[order]
    arrays = dict(model.arrays)
    arrays.update(ix_indptr=np.searchsorted(srt["user"], np.arange(n_users + 1)).astype(np.uint32),
                  ix_items=srt["item"].astype(np.uint32), ix_types=srt["type"].astype(np.uint8),
                  ix_ts=srt["ts"].astype(np.uint32))
    _write_item_names(store, n_items)
    meta = {"fit_at": time.time(), "data_until": now, "rows": int(len(rows)), "train_rows": int(train.sum()),
            "users": int(len(np.unique(rows["user"]))), "items": int(len(np.unique(rows["item"]))),
            "shape": [n_users, n_items], "quality": quality, "model": model.meta,
            "model_arrays": sorted(model.arrays), "params": {"recs_size": settings.recs_size,
                                                             "allow_repurchase": settings.allow_repurchase}}
    version = models.publish(store, "mf", arrays, meta)
    progress(0.9, "lists")
    stored = models.Stored("mf", version, arrays, {**meta, "version": version})
    written = _precompute(store, settings, stored, model, targets, progress)
    progress(1.0, "done")
    return {"model": "mf", "version": version, "rows": meta["rows"], "users": meta["users"],
            "items": meta["items"], "quality": quality, "lists": written}


def _quality(model: recs.Model, settings: Settings, rows, train, targets, n_items) -> dict[str, Any]:
    """recall@10 of the model and of popularity (both without the user's earlier purchases) on the held-out users."""
    tr = rows[train]
    pop_scores = np.bincount(tr["item"], minlength=n_items).astype(np.float32)
    pop_model = recs.Model(arrays={"item_factors": pop_scores[:, None]})
    users_ = np.fromiter(targets, dtype=np.int64, count=len(targets))
    order = np.argsort(tr["user"], kind="stable")
    srt = tr[order]
    bounds = np.searchsorted(srt["user"], np.stack([users_, users_ + 1]))
    excludes = [toplists.excluded(settings, srt["item"][a:b], srt["type"][a:b]) for a, b in bounds.T]
    ranked = recs.top_k_many(model, model.arrays["user_factors"][users_], settings.recs_size, excludes)
    popular = recs.top_k_many(pop_model, np.ones((len(users_), 1), np.float32), settings.recs_size, excludes)
    by_user = {int(u): r[0] for u, r in zip(users_, ranked)}
    pop = {int(u): r[0] for u, r in zip(users_, popular)}
    out: dict[str, Any] = {"users": len(targets), f"recall@{K}": _recall(by_user, targets),
                           f"popular_recall@{K}": _recall(pop, targets)}
    if not targets:
        out["reason"] = ("no user to measure on: none has 5 or more item interactions with items new to them in "
                         "their latest 20%")
    return out


def _write_item_names(store: Store, n_items: int, batch: int = 5000) -> None:
    """The index -> id hash for every item of the model: the indices it lacks (indices never change, and
    it only grows, batch by batch from index 0, so what it holds is every index below its length)."""
    keys = store.keys
    for start in range(int(store.redis.hlen(keys.item_by_index())), n_items, batch):
        names = store.redis.lrange(keys.item_ids(), start, min(start + batch, n_items) - 1)  # (stored forms)
        if names:
            store.redis.hset(keys.item_by_index(), mapping={str(start + i): x for i, x in enumerate(names)})


def _user_ids(store: Store, n_users: int, batch: int = 10000) -> list[str]:
    """User id by dense index for the first ``n_users`` indices (``""``: deleted, or never an id).

    The events path keeps the list ``users:ids`` (its allocator); a store from before it existed (the list shorter
    than the user counter) is read by a SCAN of the user hashes instead.
    """
    key = store.keys.user_ids()
    if store.redis.llen(key) < n_users:
        found = [""] * n_users
        for chunk in users.scan(store, [USER["index"]]):
            for uid, (ix,) in chunk:
                if ix is not None and int(ix) < n_users:
                    found[int(ix)] = uid
        return found
    return [ids.load(uid) for start in range(0, n_users, batch)  # (the list holds stored forms)
            for uid in store.redis.lrange(key, start, min(start + batch, n_users) - 1)]


def _precompute(store: Store, settings: Settings, stored: models.Stored, model: recs.Model,
                targets: dict[int, np.ndarray], progress: Progress, batch: int = 4096) -> int:
    """Every known user's packed list; held-out users are folded in on all their interactions."""
    version = int(stored.version)
    a = stored.arrays
    ptr = a["ix_indptr"].astype(np.int64)
    n_users = len(ptr) - 1
    known = [(uid, ix) for ix, uid in enumerate(_user_ids(store, n_users)) if uid and ptr[ix] != ptr[ix + 1]]
    if settings.allow_repurchase:
        bought, bought_at = None, None
    else:  # each user's purchased items: one slice of one array
        mask = a["ix_types"] == toplists.PURCHASE
        bought = a["ix_items"][mask].astype(np.int64)
        bought_at = np.concatenate([[0], np.cumsum(mask)])[ptr]
    until = stored.meta["data_until"]
    written = 0
    for start in range(0, len(known), batch):
        todo = known[start:start + batch]
        ixs = np.fromiter((ix for _, ix in todo), dtype=np.int64, count=len(todo))
        vecs = model.arrays["user_factors"][ixs]
        fold = np.flatnonzero(np.isin(ixs, np.fromiter(targets, dtype=np.int64, count=len(targets))))
        vecs[fold] = recs.fold_in_many(model, [toplists.user_history(stored, int(u)) for u in ixs[fold]],
                                       until, settings)
        excludes = None if bought is None or bought_at is None else [bought[bought_at[u]:bought_at[u + 1]] for u in ixs]
        ranked = recs.top_k_many(model, vecs, settings.recs_size, excludes)
        written += toplists.write_lists(store, zip((uid for uid, _ in todo), toplists.pack_many(version, ranked)))
        progress(0.9 + 0.1 * min((start + len(todo)) / max(len(known), 1), 1.0), "lists")
    return written


def refit_segments(store: Store, settings: Settings, progress: Progress, now: float | None = None) -> dict[str, Any]:
    from bandit_push import segmentation

    return segmentation.refit(store, settings, progress, now)


def refit_policy(store: Store, settings: Settings, progress: Progress, now: float | None = None,
                 gate_log: LogWindow | None = None) -> dict[str, Any]:
    from bandit_push import engagement, engagement_gate

    def judge(params: engagement.EngagementParams, at: float) -> dict[str, Any]:
        return engagement_gate.judge(store, settings, params, at, gate_log)

    # (it reads every user: the segment sizes are recounted on the way, hourly by default)
    return engagement.refit(store, settings, users.scan(store, list(engagement.FIELDS), recount=True), progress, judge,
                            now)


REFITS: dict[str, Callable[..., dict[str, Any]]] = {"mf": refit_mf, "segments": refit_segments, "policy": refit_policy}
