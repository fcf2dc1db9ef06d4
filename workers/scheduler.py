"""The scheduler process: RQ's own cron scheduler, enqueueing JSON-serialised jobs.

``rq cron`` enqueues with RQ's default (pickle) serializer and has no option to change
it; our workers run with ``JSONSerializer`` so that nothing is ever unpickled. This
subclass changes only how a due job is enqueued. Run: ``python -m workers.scheduler``.
"""
from __future__ import annotations

import os
import sys

from redis import Redis
from rq import Queue, Retry
from rq.cron import CronJob, CronScheduler
from rq.serializers import JSONSerializer
from rq.utils import now

from workers import QUEUE, jobs
from bandit_push.config import Settings
from workers.queue import refit_retry
from workers.schedule import periodic


class JSONCronScheduler(CronScheduler):
    """A CronScheduler whose jobs are enqueued with :class:`rq.serializers.JSONSerializer`, and with the
    retry policy registered for their function (``retries``: function name -> ``rq.Retry``; RQ's
    ``register`` takes none)."""

    def __init__(self, *args, retries: dict[str, Retry] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.retries = retries or {}

    def enqueue_jobs(self) -> list[CronJob]:
        enqueue_time = now()
        due = [job for job in self._cron_jobs if job.should_run()]
        for job in due:
            queue = Queue(job.queue_name, connection=self.connection, serializer=JSONSerializer)
            queue.enqueue(job.func, args=job.args, kwargs=job.kwargs, retry=self.retries.get(job.func_name),
                          **job.job_options)
            job.set_enqueue_time(enqueue_time)
        return due


def build(connection: Redis, settings: Settings | None = None) -> JSONCronScheduler:
    """The scheduler of :func:`workers.schedule.periodic`; a scheduled refit that fails is retried as one
    requested through the API is (:func:`workers.queue.refit_retry`), not left to the next period."""
    settings = settings or Settings.from_env()
    retry = refit_retry(settings)
    refit_jobs = (jobs.refit_mf, jobs.refit_segments)
    scheduler = JSONCronScheduler(connection=connection, retries={
        f"{f.__module__}.{f.__name__}": retry for f in refit_jobs if retry is not None})
    for func, interval, timeout in periodic(settings):
        scheduler.register(func, QUEUE, interval=interval, job_timeout=timeout)
    return scheduler


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit("REDIS_URL is not set")
    build(Redis.from_url(url)).start()


if __name__ == "__main__":
    main()
