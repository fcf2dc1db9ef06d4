"""Enqueueing refits and reading jobs back, for the API (which must not import RQ itself)."""
from __future__ import annotations

import re
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from bandit_push import refit as refits
from bandit_push.config import QUEUE, Settings
from bandit_push.errors import NotFound
from bandit_push.store import Store
from workers import jobs

DONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
RETRY_INTERVALS = [30, 120, 600]


_JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _fetch(connection: Redis, job_id: str) -> Job | None:
    if not _JOB_ID.match(job_id):  # RQ refuses other ids with a ValueError: no such job can exist
        return None
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def enqueue_refit(store: Store, settings: Settings, name: str) -> tuple[str, bool]:
    """Enqueue a refit of ``name``, or name the one running: (job id, True if enqueued now).

    The job's id is taken as the refit lock's token before the job is enqueued, so concurrent
    requests enqueue one job and the others get its id. A lock whose holder is a job that has
    ended (it failed or was killed) is taken over.
    """
    if name not in refits.REFITS:
        raise NotFound(f"unknown model {name!r}; one of {list(refits.REFITS)}", field="name", code="unknown_model")
    conn = store.binary
    queue = Queue(QUEUE, connection=conn, serializer=JSONSerializer)
    job = queue.create_job(jobs.refit, args=(name,), timeout=settings.refit_timeout_s,
                           retry=Retry(max=settings.refit_retries,
                                       interval=RETRY_INTERVALS[:max(settings.refit_retries, 1)]),
                           result_ttl=7 * 86400, failure_ttl=7 * 86400)
    for _ in range(3):
        holder = refits.claim(store, settings, name, job.id)
        if holder is None:
            queue.enqueue_job(job)
            return job.id, True
        # a holder job not stored yet is being enqueued by a concurrent request: it counts as running
        running = _fetch(conn, holder) if not holder.startswith("cli:") else None
        if running is None or running.get_status() not in DONE:
            return holder, False
        # the holder ended without releasing (killed): take the lock over from exactly that holder
        if store.redis.set(store.keys.refit_lock(name), job.id, xx=True, ex=settings.refit_timeout_s + 60,
                           get=True) == holder:
            queue.enqueue_job(job)
            return job.id, True
    return store.redis.get(store.keys.refit_lock(name)) or job.id, False


def job_state(store: Store, job_id: str) -> dict[str, Any]:
    """State, timings, progress and result summary (or error) of a job."""
    job = _fetch(store.binary, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} is unknown or has expired", field="job_id", code="unknown_job")
    status = job.get_status()

    def ts(t):
        return t.timestamp() if t is not None else None

    out: dict[str, Any] = {
        "job_id": job.id, "function": job.func_name.rsplit(".", 1)[-1], "args": list(job.args or []),
        "state": str(status.value if hasattr(status, "value") else status),
        "enqueued_at": ts(job.enqueued_at), "started_at": ts(job.started_at), "ended_at": ts(job.ended_at),
        "progress": job.meta.get("progress"), "stage": job.meta.get("stage"),
        "result": None, "error": None,
    }
    if status == JobStatus.FINISHED:
        out["result"] = job.return_value()
        out["progress"] = 1.0
    elif status in (JobStatus.FAILED, JobStatus.STOPPED):
        info = (job.latest_result().exc_string if job.latest_result() else None) or ""
        out["error"] = info.strip().splitlines()[-1] if info.strip() else str(status)
    return out
