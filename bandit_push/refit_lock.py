"""The refit lock: one refit of a model at a time, whoever started it, and taking over from a dead holder.

``lock:refit:<name>`` is a redis-py :class:`~redis.lock.Lock` whose token names its holder: an RQ job id or
``cli:<host>:<pid>``. It expires ``refit_timeout_s`` + 60 s after its last renewal, so a killed holder
cannot block refits for longer; sooner than that, a holder that has ended (its job failed, or its worker
died) may be taken over. Whether a holder has ended is for the caller to say (the job queue knows; the
domain does not): ``ended`` is a function of the holder's token.
"""
from __future__ import annotations

import os
import socket
from typing import Callable

from redis.lock import Lock

from bandit_push.config import Settings
from bandit_push.errors import Conflict
from bandit_push.store import Store

#: whether the holder named by a token will not run again (and may be taken over)
HolderEnded = Callable[[str], bool]


class RefitRunning(Conflict):
    """A refit of this model is already running; ``holder`` names it (a job id or ``cli:...``)."""

    code = "refit_running"

    def __init__(self, name: str, holder: str | None):
        super().__init__(f"a refit of model {name!r} is already running ({holder})", field="name")
        self.holder = holder


def cli_owner() -> str:
    """The token of a refit run by this process outside any job (``bandit-push refit``)."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def lock(store: Store, name: str, settings: Settings) -> Lock:
    """The refit lock of ``name`` (not yet acquired)."""
    return store.redis.lock(store.keys.refit_lock(name), timeout=settings.refit_timeout_s + 60,
                            blocking=False, thread_local=False)


def claim(store: Store, settings: Settings, name: str, owner: str) -> str | None:
    """Take the lock for ``owner`` if free; returns None if taken now, else the current holder."""
    if lock(store, name, settings).acquire(token=owner):
        return None
    return store.redis.get(store.keys.refit_lock(name))


def take_over(store: Store, settings: Settings, name: str, holder: str, owner: str, ended: HolderEnded) -> bool:
    """Make ``owner`` hold the lock of ``name`` if ``holder`` still holds it and has ended."""
    if not ended(holder):
        return False
    return store.redis.set(store.keys.refit_lock(name), owner, xx=True, ex=settings.refit_timeout_s + 60,
                           get=True) == holder


def acquire(store: Store, settings: Settings, name: str, owner: str, ended: HolderEnded) -> tuple[str, bool]:
    """Take the lock for ``owner`` (a job about to be enqueued): ``(owner, True)`` when it is free or its holder
    has ended, else ``(holder, False)`` naming the refit that runs. Concurrent callers thus enqueue one job."""
    key = store.keys.refit_lock(name)
    for _ in range(3):
        holder = claim(store, settings, name, owner)
        if holder is None:
            if store.redis.get(key) == owner:
                return owner, True
            continue  # released between our attempt and the read: try again
        if take_over(store, settings, name, holder, owner, ended):
            return owner, True
        if not ended(holder):
            return holder, False
    return store.redis.get(key) or owner, False


def hold(store: Store, settings: Settings, name: str, owner: str, ended: HolderEnded | None = None) -> Lock:
    """The lock of ``name`` held for ``owner``: taken now, already taken for ``owner`` (by :func:`acquire`), or,
    with ``ended``, taken over from a holder that has ended. Raises :class:`RefitRunning` otherwise."""
    lk = lock(store, name, settings)
    if lk.acquire(token=owner):
        return lk
    lk.local.token = owner.encode()
    holder = None
    if not lk.owned():
        holder = store.redis.get(store.keys.refit_lock(name))
        if ended is None or holder is None or not take_over(store, settings, name, holder, owner, ended):
            raise RefitRunning(name, holder)
    lk.reacquire()
    return lk
