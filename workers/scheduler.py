"""The scheduler process: RQ's own cron scheduler, enqueueing JSON-serialised jobs.

``rq cron`` enqueues with RQ's default (pickle) serializer and has no option to change
it; our workers run with ``JSONSerializer`` so that nothing is ever unpickled. This
subclass changes only how a due job is enqueued. Run: ``python -m bandit_push_workers.scheduler``.
"""
from __future__ import annotations

import argparse
import sys

from redis import Redis
from rq import Queue, Retry
from rq.cron import CronJob, CronScheduler
from rq.serializers import JSONSerializer
from rq.utils import now

from bandit_push.config import Settings
from bandit_push.errors import ConfigError
from bandit_push.store import queue_url
from bandit_push_workers import jobs
from bandit_push_workers.queue import refit_retry
from bandit_push_workers.schedule import periodic


class JSONCronScheduler(CronScheduler):
    """A CronScheduler whose jobs are enqueued with :class:`rq.serializers.JSONSerializer`, each with the
    ``retry`` given at registration (RQ's own ``register`` takes none)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._retries: dict[str, Retry] = {}  # cron job name -> its retry policy

    def register(self, func, queue_name: str, *args, retry: Retry | None = None, **kwargs) -> CronJob:
        job = super().register(func, queue_name, *args, **kwargs)
        if retry is not None:
            self._retries[job.name] = retry
        return job

    def enqueue_jobs(self) -> list[CronJob]:
        enqueue_time = now()
        due = [job for job in self.get_jobs() if job.should_run()]
        for job in due:
            queue = Queue(job.queue_name, connection=self.connection, serializer=JSONSerializer)
            queue.enqueue(job.func, args=job.args, kwargs=job.kwargs, retry=self._retries.get(job.name),
                          **job.job_options)
            job.set_enqueue_time(enqueue_time)
        return due


def build(connection: Redis, settings: Settings | None = None, logging_level: str = "INFO") -> JSONCronScheduler:
    """The scheduler of :func:`bandit_push_workers.schedule.periodic`; a scheduled refit that fails is retried as one
    requested through the API is (:func:`bandit_push_workers.queue.refit_retry`), not left to the next period."""
    settings = settings or Settings.from_env()
    scheduler = JSONCronScheduler(connection=connection, logging_level=logging_level)
    for func, interval, timeout in periodic(settings):
        retry = refit_retry(settings) if func in (jobs.refit_mf, jobs.refit_segments) else None
        scheduler.register(func, settings.queue, interval=interval, job_timeout=timeout, retry=retry)
    return scheduler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bandit_push_workers.scheduler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logging-level", default="INFO", help="RQ's logging level (default INFO: one line per "
                        "job registered and enqueued)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if not settings.redis_url:
        sys.exit("REDIS_URL is not set")
    try:
        url = queue_url(settings)  # RQ's jobs: BANDIT_PUSH_QUEUE_URL, or REDIS_URL unless that is a cluster
    except ConfigError as e:
        sys.exit(f"bandit-push scheduler: {e.message}")
    build(Redis.from_url(url), settings, logging_level=args.logging_level).start()


if __name__ == "__main__":
    main()
