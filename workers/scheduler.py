"""The scheduler process: RQ's own cron scheduler, enqueueing JSON-serialised jobs.

``rq cron`` enqueues with RQ's default (pickle) serializer and has no option to change
it; our workers run with ``JSONSerializer`` so that nothing is ever unpickled. This
subclass changes only how a due job is enqueued. Run: ``python -m workers.scheduler``.
"""
from __future__ import annotations

import os
import sys

from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.serializers import JSONSerializer
from rq.utils import now

from workers import QUEUE
from bandit_push.config import Settings
from workers.schedule import periodic


class JSONCronScheduler(CronScheduler):
    """A CronScheduler whose jobs are enqueued with :class:`rq.serializers.JSONSerializer`."""

    def enqueue_jobs(self) -> list[CronJob]:
        enqueue_time = now()
        due = [job for job in self._cron_jobs if job.should_run()]
        for job in due:
            queue = Queue(job.queue_name, connection=self.connection, serializer=JSONSerializer)
            queue.enqueue(job.func, args=job.args, kwargs=job.kwargs, **job.job_options)
            job.set_enqueue_time(enqueue_time)
        return due


def build(connection: Redis, settings: Settings | None = None) -> JSONCronScheduler:
    scheduler = JSONCronScheduler(connection=connection)
    for func, interval, timeout in periodic(settings or Settings.from_env()):
        scheduler.register(func, QUEUE, interval=interval, job_timeout=timeout)
    return scheduler


def main() -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        sys.exit("REDIS_URL is not set")
    build(Redis.from_url(url)).start()


if __name__ == "__main__":
    main()
