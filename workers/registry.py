"""What RQ knows about this deployment's jobs: fetching one, reaping the abandoned ones, whether one has ended."""
from __future__ import annotations

import re

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

DONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def fetch(connection: Redis, job_id: str) -> Job | None:
    """The job of that id, or None if there is none."""
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
    job = fetch(connection, holder)
    if job is not None and job.get_status() == JobStatus.STARTED:
        reap_abandoned(connection, queue)
        job = fetch(connection, holder)
    return job is not None and job.get_status() in DONE
