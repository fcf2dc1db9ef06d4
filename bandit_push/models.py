"""The model store: versions of raw arrays with JSON meta, published by flipping one pointer.

A version is one hash: ``meta`` (JSON: when, on what data, quality, params, and each array's dtype
and shape) and ``a:<name>`` (the array's raw little-endian bytes; never pickle). Publishing writes the
whole hash first, then sets the model's field in the ``models:current`` hash in one command, so a
reader sees the old version or the new one, never a half-written one. Superseded versions are
deleted once their successor has served for ``model_grace_hours`` (a reader that loaded a version
just before the flip finishes with it). A version published with ``serve=False`` is **kept**: stored and listed
(:func:`kept`, with the meta saying why) but not served, and not among the versions that serve in turn; the
model's next publish deletes it. :class:`ModelCache` keeps the current version in a process
and reloads it only when the pointer moves: one ``HGET`` per use, no per-request reload.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit_push.errors import NotFound
from bandit_push.schema import MODEL
from bandit_push.store import Store

#: the models a refit can publish
MODEL_NAMES: tuple[str, ...] = ("mf", "segments", "policy")
#: dtypes an array may have (anything else in a stored meta is refused, never interpreted)
DTYPES = {"<f4", "<f8", "<i4", "<u4", "<i8", "|u1", "<u2"}


@dataclass
class Stored:
    """One loaded model version: its arrays and meta (``version``, ``published_at``, ...)."""

    name: str
    version: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict)  #: per-process derived values (e.g. id maps)


def publish(store: Store, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any],
            now: float | None = None, serve: bool = True) -> str:
    """Write a new version of ``name`` and make it current; returns the version id (``"1"``, ``"2"``...).

    With ``serve=False`` the version is kept instead: written, named by ``models:kept``, not served (the previous
    kept version of ``name``, if any, is deleted). Either way a kept version left from before is deleted: what is
    kept is the latest refit's, for inspection. (A model's refits hold its lock: its publishes never race.)
    """
    now = time.time() if now is None else now
    keys = store.keys
    version = str(store.redis.hincrby(keys.counters(), f"model:{name}", 1))
    key = keys.model_version(name, version)
    shapes = {}
    pipe = store.binary.pipeline(transaction=False)
    for a, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt.str not in DTYPES:
            raise ValueError(f"array {a}: dtype {arr.dtype} cannot be stored")
        shapes[a] = {"dtype": dt.str, "shape": list(arr.shape)}
        pipe.hset(key, MODEL["array"] + a, arr.astype(dt, copy=False).tobytes())
    full = {**meta, "name": name, "version": version, "published_at": now, "arrays": shapes}
    pipe.hset(key, MODEL["meta"], json.dumps(full, allow_nan=False))  # served as is: strict JSON
    pipe.execute()
    previous = store.redis.hget(keys.model_kept(), name)
    # listed first, then served (or kept): keys of several slots on a cluster, so writes in order (no MULTI); a crash
    # between them leaves a listed version that never served, which collect_garbage removes once a successor is past
    # the grace
    if serve:
        store.redis.zadd(keys.model_versions(name), {version: now})
        store.redis.hset(keys.model_current(), name, version)
        store.redis.hdel(keys.model_kept(), name)
    else:
        store.redis.hset(keys.model_kept(), name, version)
    if previous is not None and previous != version:  # never served, so no reader holds it
        store.redis.delete(keys.model_version(name, previous))
    collect_garbage(store, name, now)
    return version


def current(store: Store, name: str) -> str | None:
    """The version of ``name`` serving now, or None before its first publish."""
    return store.redis.hget(store.keys.model_current(), name)


def meta(store: Store, name: str, version: str) -> dict[str, Any] | None:
    raw = store.redis.hget(store.keys.model_version(name, version), MODEL["meta"])
    return json.loads(raw) if raw else None


def load(store: Store, name: str, version: str | None = None, skip: tuple[str, ...] = ()) -> Stored:
    """Read a version (default: the current one), with all its arrays but those in ``skip``."""
    version = version or current(store, name)
    if version is None:
        raise NotFound(f"model {name!r} has no published version", field="name", code="no_model")
    key = store.keys.model_version(name, version)
    m = meta(store, name, version)
    if m is None:
        raise NotFound(f"model {name!r} version {version} does not exist (collected?)", field="version")
    names = [a for a in m["arrays"] if a not in skip]
    raw = store.binary.hmget(key, [MODEL["array"] + a for a in names]) if names else []
    out = {}
    for a, buf in zip(names, raw):
        spec = m["arrays"][a]
        if spec["dtype"] not in DTYPES or buf is None:
            raise ValueError(f"model {name} v{version}: array {a} is missing or has a bad dtype")
        out[a] = np.frombuffer(buf, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
    return Stored(name, version, out, m)


def _metas(store: Store, pointers: str) -> list[dict[str, Any]]:
    """The meta of each model's version named in the hash ``pointers`` (model name -> version)."""
    named = store.redis.hgetall(pointers)
    metas = (meta(store, name, named[name]) for name in MODEL_NAMES if name in named)
    return [m for m in metas if m is not None]


def serving(store: Store) -> list[dict[str, Any]]:
    """The meta of every model's current version (arrays summarised by shape)."""
    return _metas(store, store.keys.model_current())


def kept(store: Store) -> list[dict[str, Any]]:
    """The meta of each model's version kept, not served (see :func:`publish`); its ``gate`` says why."""
    return _metas(store, store.keys.model_kept())


def collect_garbage(store: Store, name: str, now: float | None = None) -> list[str]:
    """Delete versions superseded more than ``model_grace_hours`` ago; returns their ids."""
    now = time.time() if now is None else now
    keys = store.keys
    grace = store.settings.model_grace_hours * 3600.0
    cur = current(store, name)
    versions = store.redis.zrange(keys.model_versions(name), 0, -1, withscores=True)
    doomed = [v for (v, _), (_, succ_t) in zip(versions, versions[1:]) if v != cur and now - succ_t > grace]
    if doomed:
        pipe = store.redis.pipeline(transaction=False)
        for v in doomed:
            pipe.delete(keys.model_version(name, v))
        pipe.zrem(keys.model_versions(name), *doomed)
        pipe.execute()
    return doomed


class ModelCache:
    """The current version of each model, held in this process and reloaded when the pointer moves."""

    def __init__(self, skip: dict[str, tuple[str, ...]] | None = None):
        self._skip = skip or {}
        self._held: dict[str, Stored] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_serving(cls) -> "ModelCache":
        """The cache of a process that serves requests (the API, the simulator's in-process gateway): the
        users' MF factors stay in Redis, since serving reads precomputed lists and folds in from item factors."""
        return cls(skip={"mf": ("user_factors",)})

    def get(self, store: Store, name: str) -> Stored | None:
        """The current version of ``name`` (None before the first publish): one HGET when unchanged."""
        version = current(store, name)
        if version is None:
            return None
        held = self._held.get(name)
        if held is not None and held.version == version:
            return held
        with self._lock:
            held = self._held.get(name)
            if held is None or held.version != version:
                held = load(store, name, version, self._skip.get(name, ()))
                self._held[name] = held
        return held
