"""Enqueueing refits and reading jobs back, for the API (which must not import RQ itself)."""
from __future__ import annotations

import re
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from bandit_push import refit as refits
from bandit_push.config import Settings
from bandit_push.errors import NotFound
from bandit_push.store import Store
from workers import jobs

DONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
RETRY_FACTORS = [1, 4, 20]  #: retry n waits refit_retry_interval_s times this (30 s, 2 min, 10 min by default)


_JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _fetch(connection: Redis, job_id: str) -> Job | None:
    if not _JOB_ID.match(job_id):  # RQ refuses other ids with a ValueError: no such job can exist
        return None
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def reap_abandoned(connection: Redis, queue: str) -> None:
    """RQ's own cleanup of ``queue``'s running jobs whose heartbeat has lapsed (their worker died):
    each is retried if it has retries left, else failed with ``AbandonedJobError``. A live worker
    does this only every ``maintenance_interval`` (10 min); readers call it so a dead worker's job
    shows as failed or requeued as soon as its heartbeat lapses, worker or no worker."""
    StartedJobRegistry(queue, connection=connection, serializer=JSONSerializer).cleanup()


def holder_ended(connection: Redis, queue: str, holder: str) -> bool:
    """Whether the refit lock's holder is an RQ job that will not run again: ended, or abandoned by a
    dead worker with no retry left. A CLI holder, a job being retried and a job id not stored yet
    (a concurrent request is enqueueing it) count as running."""
    if holder.startswith("cli:"):
        return False
    job = _fetch(connection, holder)
    if job is not None and job.get_status() == JobStatus.STARTED:
        reap_abandoned(connection, queue)
        job = _fetch(connection, holder)
    return job is not None and job.get_status() in DONE


def take_over(store: Store, settings: Settings, name: str, holder: str, owner: str) -> bool:
    """Make ``owner`` hold the refit lock of ``name`` if ``holder`` still holds it and has ended."""
    if not holder_ended(store.binary, settings.queue, holder):
        return False
    return store.redis.set(store.keys.refit_lock(name), owner, xx=True, ex=settings.refit_timeout_s + 60,
                           get=True) == holder


def refit_retry(settings: Settings) -> Retry | None:
    """How a failed refit job is retried (requested through the API or scheduled): ``refit_retries`` times,
    waiting ``refit_retry_interval_s`` times :data:`RETRY_FACTORS`; None with no retries (RQ refuses max=0)."""
    if not settings.refit_retries:
        return None
    return Retry(max=settings.refit_retries,
                 interval=[settings.refit_retry_interval_s * f for f in RETRY_FACTORS[:settings.refit_retries]])


def enqueue_refit(store: Store, settings: Settings, name: str) -> tuple[str, bool]:
    """Enqueue a refit of ``name``, or name the one running: (job id, True if enqueued now).

    The job's id is taken as the refit lock's token before the job is enqueued, so concurrent
    requests enqueue one job and the others get its id. A lock whose holder is a job that has
    ended (it failed or was killed) is taken over.
    """
    if name not in refits.REFITS:
        raise NotFound(f"unknown model {name!r}; one of {list(refits.REFITS)}", field="name", code="unknown_model")
    conn = store.binary
    queue = Queue(settings.queue, connection=conn, serializer=JSONSerializer)
    job = queue.create_job(jobs.refit, args=(name,), timeout=settings.refit_timeout_s, retry=refit_retry(settings),
                           result_ttl=7 * 86400, failure_ttl=7 * 86400)
    for _ in range(3):
        holder = refits.claim(store, settings, name, job.id)
        if holder is None and store.redis.get(store.keys.refit_lock(name)) != job.id:  # released meanwhile
            continue
        if holder is None:
            queue.enqueue_job(job)
            return job.id, True
        # the holder ended without releasing (killed, abandoned): take the lock over from exactly that holder
        if take_over(store, settings, name, holder, job.id):
            queue.enqueue_job(job)
            return job.id, True
        if not holder_ended(conn, settings.queue, holder):
            return holder, False
    return store.redis.get(store.keys.refit_lock(name)) or job.id, False


def job_state(store: Store, job_id: str) -> dict[str, Any]:
    """State, timings, progress and result summary (or error) of a job."""
    queue = store.settings.queue
    job = _fetch(store.binary, job_id)
    if job is not None and job.origin != queue:  # another deployment's job (RQ's job ids are not prefixed)
        job = None
    if job is not None and job.get_status() == JobStatus.STARTED:
        reap_abandoned(store.binary, queue)  # its worker may be dead: report it failed or requeued, not running
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


def recent_failures(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The states (:func:`job_state`, with their error) of this deployment's latest failed jobs, newest first."""
    registry = FailedJobRegistry(store.settings.queue, connection=store.binary, serializer=JSONSerializer)
    out = []
    for job_id in registry.get_job_ids(0, limit - 1, desc=True):
        try:
            out.append(job_state(store, job_id))
        except NotFound:  # expired between the two reads
            continue
    return out
