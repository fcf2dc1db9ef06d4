"""Enqueueing refits and reading jobs back, for the API (which must not import RQ itself)."""
from __future__ import annotations

from functools import partial
from typing import Any

from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer

from bandit_push import refit as refits
from bandit_push import refit_lock
from bandit_push.config import Settings
from bandit_push.errors import NotFound
from bandit_push.store import Store
from bandit_push_workers import jobs
from bandit_push_workers.registry import fetch, holder_ended, reap_abandoned

RETRY_FACTORS = [1, 4, 20]  #: retry n waits refit_retry_interval_s times this (30 s, 2 min, 10 min by default)


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
    queue = Queue(settings.queue, connection=store.queue, serializer=JSONSerializer)
    job = queue.create_job(jobs.refit, args=(name,), timeout=settings.refit_timeout_s, retry=refit_retry(settings),
                           result_ttl=7 * 86400, failure_ttl=7 * 86400)
    holder, acquired = refit_lock.acquire(store, settings, name, job.id,
                                          ended=partial(holder_ended, store.queue, settings.queue))
    if acquired:
        queue.enqueue_job(job)
    return holder, acquired


def job_state(store: Store, job_id: str) -> dict[str, Any]:
    """State, timings, progress and result summary (or error) of a job."""
    queue = store.settings.queue
    job = fetch(store.queue, job_id)
    if job is not None and job.origin != queue:  # another deployment's job (RQ's job ids are not prefixed)
        job = None
    if job is not None and job.get_status() == JobStatus.STARTED:
        reap_abandoned(store.queue, queue)  # its worker may be dead: report it failed or requeued, not running
        job = fetch(store.queue, job_id)
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
        "result": None, "error": job.meta.get("error"),  # (the last failed attempt's, while a retry is due)
        "retries_left": job.retries_left, "retry_at": None,
    }
    if status == JobStatus.FINISHED:
        out["result"] = job.return_value()
        out["progress"] = 1.0
        out["error"] = None
    elif status in (JobStatus.FAILED, JobStatus.STOPPED):
        info = (job.latest_result().exc_string if job.latest_result() else None) or ""
        out["error"] = info.strip().splitlines()[-1] if info.strip() else str(status)
    elif status == JobStatus.SCHEDULED:  # a retry waiting for its time
        try:
            out["retry_at"] = ts(ScheduledJobRegistry(queue, connection=store.queue,
                                                      serializer=JSONSerializer).get_scheduled_time(job))
        except NoSuchJobError:  # moved to the queue meanwhile
            pass
    return out


def recent_failures(store: Store, limit: int = 10) -> list[dict[str, Any]]:
    """The states (:func:`job_state`, with their error) of this deployment's latest failed jobs, newest first."""
    registry = FailedJobRegistry(store.settings.queue, connection=store.queue, serializer=JSONSerializer)
    out = []
    for job_id in registry.get_job_ids(0, limit - 1, desc=True):
        try:
            out.append(job_state(store, job_id))
        except NotFound:  # expired between the two reads
            continue
    return out
