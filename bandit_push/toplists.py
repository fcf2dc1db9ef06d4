"""Per-user precomputed recommendations: the packed list decide reads, and its real-time refresh.

A list is one string ``u:{id}:recs``: a 12-byte header ``<I f f`` (MF version, lowest score,
highest score) then 5 bytes per item, best first: the dense item index (3 bytes, little endian) and
the score quantised to 16 bits between the two header scores. 48 items cost 252 bytes; the
decide script names the items through the ``items:byix`` hash. Lists are written by the refit for
every user in the model and, between refits, for a user whose new events arrive (fold-in against
the cached model's item factors; see :func:`refresh_users`).
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Iterable

import numpy as np
import numpy.typing as npt

from bandit_push import ids, recs
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.models import ModelCache, Stored
from bandit_push.schema import USER
from bandit_push.store import Store

HEADER = np.dtype([("version", "<u4"), ("lo", "<f4"), ("hi", "<f4")])
#: one interaction kept for fold-in between refits: item index, type code, epoch second
RECENT = np.dtype([("item", "<u4"), ("type", "u1"), ("ts", "<u4")])
MAX_RECENT = 64  #: the newest interactions kept per user between refits (bounded memory)
PURCHASE = EVENT_TYPES.index("purchase")


def pack(version: int, items: npt.NDArray, scores: npt.NDArray) -> bytes:
    """The packed list of ``items`` (dense indices < 2**24) with their ``scores``, best first."""
    items = np.asarray(items, dtype=np.uint32)
    scores = np.asarray(scores, dtype=np.float32)
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 0.0)
    head = np.array([(version, lo, hi)], dtype=HEADER).tobytes()
    q = np.zeros(len(scores), dtype=np.uint16) if hi <= lo else \
        np.rint((scores - lo) / (hi - lo) * 65535).astype(np.uint16)
    body = np.empty((len(items), 5), dtype=np.uint8)
    body[:, :3] = items.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]  # 3 little-endian bytes
    body[:, 3:] = q.view(np.uint8).reshape(-1, 2)
    return head + body.tobytes()


def pack_many(version: int, ranked: list[tuple[npt.NDArray, npt.NDArray]]) -> list[bytes]:
    """:func:`pack` of each (items, scores) in ``ranked``, byte for byte; lists of one length at once."""
    out: list[bytes] = [b""] * len(ranked)
    lengths = np.fromiter((len(items) for items, _ in ranked), dtype=np.int64, count=len(ranked))
    for n in np.unique(lengths):
        rows = np.flatnonzero(lengths == n)
        if n == 0:
            for r in rows:
                out[r] = pack(version, *ranked[r])
            continue
        items = np.stack([ranked[r][0] for r in rows]).astype("<u4")
        scores = np.stack([ranked[r][1] for r in rows]).astype(np.float32)
        head = np.zeros(len(rows), dtype=HEADER)
        head["version"], head["lo"], head["hi"] = version, scores.min(axis=1), scores.max(axis=1)
        lo, hi = head["lo"][:, None], head["hi"][:, None]
        span = (hi.astype(np.float64) - lo).astype(np.float32)  # as pack's (hi - lo) in Python floats
        flat = hi <= lo
        q = np.rint((scores - lo) / np.where(flat, 1, span) * 65535).astype(np.uint16)
        q[flat[:, 0]] = 0
        buf = np.empty((len(rows), HEADER.itemsize + 5 * n), dtype=np.uint8)
        buf[:, :HEADER.itemsize] = head.view(np.uint8).reshape(len(rows), -1)
        body = buf[:, HEADER.itemsize:].reshape(len(rows), n, 5)
        body[:, :, :3] = items.view(np.uint8).reshape(len(rows), n, 4)[:, :, :3]
        body[:, :, 3:] = q.view(np.uint8).reshape(len(rows), n, 2)
        for r, raw in zip(rows, buf):
            out[r] = raw.tobytes()
    return out


def unpack(raw: bytes) -> tuple[int, npt.NDArray[np.integer], npt.NDArray[np.floating]]:
    """(version, items, scores) of a packed list; scores as the decide script decodes them."""
    h = np.frombuffer(raw[:HEADER.itemsize], dtype=HEADER)[0]
    body = np.frombuffer(raw[HEADER.itemsize:], dtype=np.uint8).reshape(-1, 5)
    items = body[:, 0].astype(np.uint32) | body[:, 1].astype(np.uint32) << 8 | body[:, 2].astype(np.uint32) << 16
    q = body[:, 3:].copy().view("<u2").ravel().astype(np.float32)
    lo, hi = float(h["lo"]), float(h["hi"])
    return int(h["version"]), items, np.float32(lo) + np.float32(hi - lo) * q / np.float32(65535)


def as_model(stored: Stored) -> recs.Model:
    """The :class:`recs.Model` inside a stored MF version."""
    names = stored.meta.get("model_arrays", [])
    return recs.Model(arrays={a: stored.arrays[a] for a in names if a in stored.arrays},
                      meta=stored.meta.get("model", {}))


def user_history(stored: Stored, uix: int) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    """The training interactions (items, types, ts) of user index ``uix`` in a stored MF version."""
    a = stored.arrays
    ptr = a["ix_indptr"]
    if uix + 1 >= len(ptr):
        return (np.zeros(0, np.uint32), np.zeros(0, np.uint8), np.zeros(0, np.uint32))
    s, e = int(ptr[uix]), int(ptr[uix + 1])
    return a["ix_items"][s:e], a["ix_types"][s:e], a["ix_ts"][s:e]


def excluded(settings: Settings, items, types) -> npt.NDArray[np.int64] | None:
    """The items a user's list leaves out: those they bought, unless ``allow_repurchase``."""
    if settings.allow_repurchase:
        return None
    return np.asarray(items)[np.asarray(types) == PURCHASE].astype(np.int64)  # repeats are harmless


def rank(model: recs.Model, settings: Settings, user_vec, items, types) -> tuple[npt.NDArray, npt.NDArray]:
    """The user's top ``recs_size`` items, without those they bought unless ``allow_repurchase``."""
    return recs.top_k(model, user_vec, settings.recs_size, exclude=excluded(settings, items, types))


def write_lists(store: Store, lists: Iterable[tuple[str, bytes]], batch: int = 1000) -> int:
    """Write each user's packed list, ``batch`` users per MSET (on a cluster, per slot: the users' keys are spread
    over every slot); returns how many."""
    n = 0
    todo: dict[str, bytes] = {}
    for uid, raw in lists:
        todo[store.keys.user_recs(uid)] = raw
        if len(todo) >= batch:
            n += len(todo)
            store.set_many(todo, client=store.binary)
            todo = {}
    if todo:
        n += len(todo)
        store.set_many(todo, client=store.binary)
    return n


def refresh_users(store: Store, settings: Settings, cache: ModelCache, events, now: float | None = None) -> int:
    """Recompute the lists of the users behind ``events`` (item events only) by fold-in; returns how many.

    The user's interactions are those the current MF version was fit on (kept in the version) plus
    those since (kept in ``u:{id}:rx``, the newest :data:`MAX_RECENT`, tagged with the version; a new
    version starts it afresh). Runs after the events script, on the events path, never in decide.
    """
    stored = cache.get(store, "mf")
    if stored is None:
        return 0
    by_user: dict[str, list] = defaultdict(list)
    for ev in events:
        if ev.item_id is not None:
            by_user[ev.user_id].append(ev)
    if not by_user:
        return 0
    now = time.time() if now is None else now
    keys = store.keys
    item_ids = sorted({ev.item_id for evs in by_user.values() for ev in evs})
    users = sorted(by_user)
    pipe = store.binary.pipeline(transaction=False)
    pipe.hmget(keys.item_index(), [ids.store(i) for i in item_ids])
    for uid in users:
        pipe.hget(keys.user(uid), USER["index"])
        pipe.get(keys.user_recent(uid))
    out = pipe.execute()
    n_items = stored.arrays["item_factors"].shape[0]
    item_ix = {i: int(x) for i, x in zip(item_ids, out[0]) if x is not None and int(x) < n_items}
    model = as_model(stored)
    version = int(stored.version)
    ttl = int(settings.mf_refit_hours * 3600 * 2 + 3600)
    write = store.binary.pipeline(transaction=False)
    done = 0
    for j, uid in enumerate(users):
        uix_raw, rx_raw = out[1 + 2 * j], out[2 + 2 * j]
        recent = np.zeros(0, dtype=RECENT)
        if rx_raw and len(rx_raw) >= 4 and int(np.frombuffer(rx_raw[:4], "<u4")[0]) == version:
            body = rx_raw[4:]
            recent = np.frombuffer(body[: len(body) - len(body) % RECENT.itemsize], dtype=RECENT)
        new = np.array([(item_ix[ev.item_id], EVENT_TYPES.index(ev.type), int(ev.ts)) for ev in by_user[uid]
                        if ev.item_id in item_ix], dtype=RECENT)
        if not len(new):
            continue
        recent = np.concatenate([recent, new])[-MAX_RECENT:]
        items, types, ts = (user_history(stored, int(uix_raw)) if uix_raw is not None
                            else (np.zeros(0, np.uint32), np.zeros(0, np.uint8), np.zeros(0, np.uint32)))
        items = np.concatenate([items, recent["item"]])
        types = np.concatenate([types, recent["type"]])
        ts = np.concatenate([ts, recent["ts"]])
        vec = recs.fold_in(model, items, types, ts, now, settings)
        top, scores = rank(model, settings, vec, items, types)
        write.set(keys.user_recent(uid), np.uint32(version).tobytes() + recent.tobytes(), ex=ttl)
        write.set(keys.user_recs(uid), pack(version, top, scores))
        done += 1
    write.execute()
    return done
