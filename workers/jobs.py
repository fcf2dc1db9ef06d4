"""Importable job functions. They take only small JSON-able arguments and delegate to bandit_push.

A worker process reads its settings from the environment (``REDIS_URL``, ``BANDIT_PUSH_*``),
the same way the API does.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from rq import get_current_job

from bandit_push import decision_log, interactions, popular, refit_lock
from bandit_push import refit as refits
from bandit_push.config import Settings
from bandit_push.errors import NoData
from bandit_push.store import Store
from bandit_push_workers.registry import holder_ended


def refresh_popular() -> dict[str, int]:
    """Recompute the popular-items lists; returns the number of candidate items per segment."""
    settings = Settings.from_env()
    store = Store.connect(settings)
    try:
        return popular.refresh(store, settings)
    finally:
        store.close()


def resend_send_credits() -> int:
    """Count in the arms the sends of the last two hours whose process died before it counted them
    (:func:`bandit_push.decision_log.resend_send_credits`: idempotent); returns how many."""
    settings = Settings.from_env()
    store = Store.connect(settings)
    try:
        now = time.time()
        return decision_log.resend_send_credits(store, settings, now - decision_log.SWEEP_HOURS * 3600.0, now)
    finally:
        store.close()


def compact_interactions() -> int:
    """Re-allocate closed days' interaction chunks at their exact size; returns how many."""
    settings = Settings.from_env()
    store = Store.connect(settings)
    try:
        return interactions.compact(store)
    finally:
        store.close()


def refit(name: str) -> dict[str, Any]:
    """Refit model ``name`` (``mf`` or ``segments``) under its lock; progress goes to the job's meta.

    A refit already running under another holder makes this one return ``{"skipped": ...}``, and so does
    one with nothing to fit yet (``"reason": "no_data"``: not retried); a holder job that has ended, or whose
    worker died (RQ abandoned it), has its lock taken over. A failure that RQ will retry keeps the lock
    for the retry and leaves its message in the job's meta (``error``).
    """
    settings = Settings.from_env()
    store = Store.connect(settings)
    job = get_current_job()
    owner = job.id if job is not None else refit_lock.cli_owner()
    last = {"stage": None, "progress": -1.0}

    def progress(fraction: float, stage: str) -> None:
        if job is None or (stage == last["stage"] and fraction - last["progress"] < 0.02):
            return
        last.update(stage=stage, progress=fraction)
        job.meta.update(progress=round(fraction, 3), stage=stage)
        job.save_meta()

    # a holder whose worker died (abandoned) or that ended without releasing: the job takes the lock over
    ended = partial(holder_ended, store.queue, settings.queue) if job is not None else None
    # a job that RQ will run again keeps the lock while it waits, so that the API names it instead of enqueuing another
    keep = job is not None and bool(job.retries_left)
    try:
        return refits.run(store, settings, name, owner, progress, ended=ended, keep_lock_on_error=keep)
    except refit_lock.RefitRunning as e:
        return {"model": name, "skipped": "a refit of this model is already running", "holder": e.holder}
    except NoData as e:  # nothing to fit yet: a finished job that says so, not a failure to retry
        return {"model": name, "skipped": e.message, "reason": e.code}
    except Exception as e:
        if job is not None:  # RQ keeps no result of an attempt it retries: the job's meta shows the last error
            job.meta["error"] = f"{type(e).__name__}: {e}"
            job.save_meta()
        raise
    finally:
        store.close()


def refit_mf() -> dict[str, Any]:
    """The periodic MF refit."""
    return refit("mf")


def refit_segments() -> dict[str, Any]:
    """The periodic segmentation refit."""
    return refit("segments")


def refit_policy() -> dict[str, Any]:
    """The periodic refit of the engagement model (the prior of every user's multiplier)."""
    return refit("policy")
