"""The RQ worker class the service runs: RQ's forking worker with a configurable abandonment grace.

RQ keeps a running job in its StartedJobRegistry until ``now + heartbeat TTL``, renewed every
``job_monitoring_interval`` by the worker's main process; the TTL is that interval plus a fixed 60 s.
When the worker dies with its work-horse (SIGKILL of the process group, OOM, a lost machine), nobody
renews it, and once it lapses RQ's registry cleanup retries the job (``Retry``) or moves it to the
failed registry with ``AbandonedJobError``. This class takes the interval from ``job_heartbeat_s`` and
replaces the 60 s with ``job_abandon_grace_s`` (both ``BANDIT_PUSH_*`` settings), so a deployment or a
test can choose how soon a dead worker's job is given up.

RQ runs each job in a forked work-horse in its own process group, which outlives a SIGKILLed worker
and would go on running the job unwatched while the job is declared abandoned and run again. This
class's work-horse dies with its worker (``PR_SET_PDEATHSIG`` on Linux, else within 0.2 s), so a dead
worker's job is never running twice: it is retried or failed, and a refit it was doing publishes nothing. Run:
``bandit-push worker`` (``bandit_push.cli.worker_command``: this class, JSON jobs, the queue of the key prefix).

RQ documents worker subclasses (``rq worker -w``) and ``job_monitoring_interval``, but neither of the two
hooks this needs, so setup.cfg pins RQ to 3.0.x and ``tests/integration/test_rq_contract.py`` fails if they
change: ``Worker.get_heartbeat_ttl`` (RQ adds a fixed 60 s to the interval: :data:`RQ_HEARTBEAT_MARGIN`) and
``Worker.main_work_horse`` (the forked work-horse's entry point, the one place that runs in it before the job).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Callable

from rq import Worker as RQWorker
from rq.job import Job
from rq.queue import Queue

from bandit_push.cli import die_with_parent
from bandit_push.config import Settings

#: what RQ 3.0's ``Worker.get_heartbeat_ttl`` adds to the heartbeat interval; replaced by ``job_abandon_grace_s``
RQ_HEARTBEAT_MARGIN = 60


def _when_orphaned(then: Callable[[], None], grace: float = 0.0, every: float = 0.2) -> None:
    """Call ``then`` ``grace`` seconds after the process that started this one is gone (checked every ``every`` s,
    on a daemon thread); not for a process whose parent is already init."""
    parent = os.getppid()
    if parent == 1:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        time.sleep(grace)
        then()

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _die_with_scheduler() -> None:
    for child in multiprocessing.active_children():  # RQ's scheduler process
        child.kill()
    _die()  # the work-horse follows (PR_SET_PDEATHSIG)


class Worker(RQWorker):
    """A forking RQ worker whose jobs are abandoned ``job_abandon_grace_s`` after their last heartbeat."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        settings = Settings.from_env()
        self.job_monitoring_interval = settings.job_heartbeat_s
        self.abandon_grace = settings.job_abandon_grace_s
        # a SIGKILLed serve's death signal is a SIGTERM, a warm shutdown that waits for the job: nothing else bounds it
        _when_orphaned(_die_with_scheduler, grace=settings.shutdown_timeout_s, every=0.5)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        die_with_parent()
        _when_orphaned(_die)  # (the worker was killed: die too, with nothing more done)
        super().main_work_horse(job, queue)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return super().get_heartbeat_ttl(job, working_time) - RQ_HEARTBEAT_MARGIN + self.abandon_grace
