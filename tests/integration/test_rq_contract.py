"""The RQ names workers/worker.py relies on without RQ documenting them (setup.cfg pins RQ to 3.0.x): an RQ
upgrade that changes them fails here, not silently in a deployment's handling of dead workers."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, get_current_job
from rq import Worker as RQWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from bandit_push.cli import worker_command
from bandit_push_workers.worker import RQ_HEARTBEAT_MARGIN

INTERVAL, GRACE = 5, 7


def horse_facts() -> dict:
    """Run as a job: what the work-horse sees of its own process and of its entry in the started registry."""
    job = get_current_job()
    sig = ctypes.c_int()
    ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    key = StartedJobRegistry(job.origin, connection=job.connection).key
    score = next(s for m, s in job.connection.zrange(key, 0, -1, withscores=True) if m.decode().startswith(job.id))
    return {"pdeathsig": sig.value, "heartbeat_left": score - time.time()}


@pytest.fixture
def conn(redis_url):
    c = Redis.from_url(redis_url)
    yield c
    c.close()


def test_rq_adds_a_fixed_margin_to_the_heartbeat_interval(conn):
    """The constant our worker replaces by job_abandon_grace_s."""
    worker = RQWorker([f"bpt-rq-{uuid.uuid4().hex[:8]}"], connection=conn, job_monitoring_interval=INTERVAL)
    job = Job.create(horse_facts, connection=conn, timeout=3600, serializer=JSONSerializer)
    assert worker.get_heartbeat_ttl(job) == INTERVAL + RQ_HEARTBEAT_MARGIN
    assert worker.get_heartbeat_ttl(job, working_time=3598.0) == 2 + RQ_HEARTBEAT_MARGIN  # the job's time left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_work_horse_runs_our_entry_point_and_heartbeats_with_our_grace(conn, settings):
    """RQ forks the work-horse into ``main_work_horse`` (ours sets PR_SET_PDEATHSIG) and scores the job in its
    started registry ``get_heartbeat_ttl`` seconds ahead (ours: the interval plus the grace, not plus 60 s).
    The worker is ``bandit-push worker``'s command in burst mode, in a process of its own as deployed."""
    queue = Queue(settings.queue, connection=conn, serializer=JSONSerializer)
    job = queue.enqueue(horse_facts, job_timeout=3600, result_ttl=60)
    cmd = worker_command(settings.redis_url, settings, "WARNING")
    cmd[-1:-1] = ["--path", str(Path(__file__).parent)]  # (the queue stays last)
    env = dict(os.environ, BANDIT_PUSH_PREFIX=settings.prefix, BANDIT_PUSH_JOB_HEARTBEAT_S=str(INTERVAL),
               BANDIT_PUSH_JOB_ABANDON_GRACE_S=str(GRACE))
    # not --burst: a burst worker's exit waits up to 60 s on its pub/sub thread (RQ's sleep_time there)
    worker = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not job.is_finished and not job.is_failed:
            assert time.monotonic() < deadline and worker.poll() is None, job.get_status()
            time.sleep(0.05)
        facts = job.return_value(refresh=True)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        job.delete()
    assert facts["pdeathsig"] == signal.SIGKILL
    assert 0 < facts["heartbeat_left"] <= INTERVAL + GRACE  # RQ's own margin would leave INTERVAL + 60
