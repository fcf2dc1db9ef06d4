"""Worker faults with real processes: an `rq worker` SIGKILLed mid-refit (with its work-horse, or the
work-horse alone), on a redis-server of the test's own (RQ's keys are global: no other test's queue).

Abandonment is shortened by the worker class's settings (job_heartbeat_s=1, job_abandon_grace_s=2):
RQ declares a running job abandoned once its heartbeat is that late.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

import retail
from waits import until
from bandit_push import models, refit
from bandit_push.config import Settings

pytestmark = pytest.mark.faults  # real workers SIGKILLed: deselected by default, run by .ci/run
ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT, GRACE = 1, 2
#: a heavier fit than the default (100 ALS sweeps of 128 factors, ~2 s): the kill lands well inside it
SLOW_FIT = {"mf_iterations": 100, "mf_factors": 128}


@pytest.fixture
def settings(redis_server, request) -> Settings:
    retries = getattr(request, "param", 0)
    return Settings(redis_url=redis_server.url, prefix=f"bpt:{uuid.uuid4().hex[:10]}:", quiet_hours="off", seed=7,
                    refit_retries=retries, refit_retry_interval_s=0, job_heartbeat_s=HEARTBEAT,
                    job_abandon_grace_s=GRACE, **SLOW_FIT)


@pytest.fixture
def start_worker(settings):
    env = dict(os.environ, REDIS_URL=settings.redis_url, BANDIT_PUSH_PREFIX=settings.prefix,
               BANDIT_PUSH_QUIET_HOURS="off", BANDIT_PUSH_SEED=str(settings.seed),
               BANDIT_PUSH_REFIT_RETRIES=str(settings.refit_retries), BANDIT_PUSH_REFIT_RETRY_INTERVAL_S="0",
               BANDIT_PUSH_JOB_HEARTBEAT_S=str(HEARTBEAT), BANDIT_PUSH_JOB_ABANDON_GRACE_S=str(GRACE),
               **{f"BANDIT_PUSH_{k.upper()}": str(v) for k, v in SLOW_FIT.items()})
    started = []

    def start() -> subprocess.Popen:
        # the Procfile's worker: `bandit-push worker` becomes RQ's worker on this prefix's queue (same pid)
        proc = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "worker", "--logging-level", "WARNING"],
                                cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:  # the worker and what it left (RQ's scheduler child shares its process group)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def _horses(worker: subprocess.Popen) -> list[psutil.Process]:
    """The worker's work-horse: the child in a process group of its own (RQ's scheduler shares the worker's)."""
    return [c for c in psutil.Process(worker.pid).children() if os.getpgid(c.pid) == c.pid]


def wait_for(client, job_id, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def v1_then_more_data(store, settings):
    retail.ingest(store, settings, retail.sample(200))
    refit.run(store, settings, "mf", "test", lambda f, s: None)
    retail.ingest(store, settings, retail.extra(200, 400))  # what the killed refit was fitting on


def test_worker_sigkilled_mid_refit_job_fails_lock_taken_over_restart_runs_queued(client, store, settings,
                                                                                   start_worker):
    v1_then_more_data(store, settings)
    job_id = client.post("/v1/models/mf/refit").get_json()["job_id"]
    worker = start_worker()
    wait_for(client, job_id, lambda j: j["stage"] == "fit")
    horses = _horses(worker)
    assert len(horses) == 1
    os.kill(worker.pid, signal.SIGKILL)  # kill -9 of the worker (OOM killer, a lost container)
    killed = time.monotonic()
    worker.wait(10)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    print(f"{time.monotonic() - killed:.2f} s after the kill: {job['state']}")
    assert job["state"] == "started"  # heartbeat not late yet
    assert client.post("/v1/models/mf/refit").get_json()["job_id"] == job_id  # still counts as running
    _, alive = psutil.wait_procs(horses, timeout=3)  # its work-horse dies with it
    assert alive == []
    print(f"work-horse gone {time.monotonic() - killed:.1f} s after its worker's SIGKILL")
    assert models.current(store, "mf") == "1"
    assert store.redis.hget(store.keys.counters(), "model:mf") == "1"  # no version even half-written
    job = wait_for(client, job_id, lambda j: j["state"] != "started")
    detected = time.monotonic() - killed
    print(f"abandoned job reported failed {detected:.1f} s after SIGKILL (heartbeat {HEARTBEAT} s, grace {GRACE} s)")
    assert job["state"] == "failed" and "AbandonedJobError" in job["error"], job
    assert detected < HEARTBEAT + GRACE + 2
    assert store.redis.get(store.keys.refit_lock("mf")) == job_id  # the dead job's lock, until taken over
    r = client.post("/v1/models/mf/refit")
    assert r.status_code == 202 and r.get_json()["job_id"] != job_id  # taken over at once, not in an hour
    second = r.get_json()["job_id"]
    assert client.get(f"/v1/jobs/{second}").get_json()["state"] == "queued"  # no worker running
    start_worker()  # a restarted worker picks up what was queued while none ran
    job = wait_for(client, second, lambda j: j["state"] in ("finished", "failed"), timeout=60)
    assert job["state"] == "finished" and job["result"]["version"] == "2", job
    assert models.current(store, "mf") == "2" and not store.redis.exists(store.keys.refit_lock("mf"))


@pytest.mark.parametrize("settings", [1], indirect=True)
def test_abandoned_refit_with_a_retry_left_is_requeued_and_run_by_the_next_worker(client, store, settings,
                                                                                  start_worker):
    v1_then_more_data(store, settings)
    job_id = client.post("/v1/models/mf/refit").get_json()["job_id"]
    worker = start_worker()
    wait_for(client, job_id, lambda j: j["stage"] == "fit")
    for proc in [psutil.Process(worker.pid)] + psutil.Process(worker.pid).children(recursive=True):
        proc.kill()  # worker, work-horse and scheduler at once: a lost machine
    worker.wait(10)
    job = wait_for(client, job_id, lambda j: j["state"] != "started")
    assert job["state"] == "queued", job  # retried (refit_retry_interval_s=0: requeued at once)
    r = client.post("/v1/models/mf/refit")  # the requeued job keeps its lock: no second refit
    assert r.status_code == 200 and r.get_json()["job_id"] == job_id
    assert models.current(store, "mf") == "1"
    start_worker()
    job = wait_for(client, job_id, lambda j: j["state"] in ("finished", "failed"), timeout=60)
    assert job["state"] == "finished" and job["result"]["version"] == "2", job
    assert not store.redis.exists(store.keys.refit_lock("mf"))


def test_work_horse_sigkilled_scheduled_refit_takes_the_lock_over(client, store, settings, start_worker):
    from bandit_push_workers import jobs

    v1_then_more_data(store, settings)
    job_id = client.post("/v1/models/mf/refit").get_json()["job_id"]
    worker = start_worker()
    wait_for(client, job_id, lambda j: j["stage"] == "fit")
    (horse,) = _horses(worker)
    horse.kill()  # the job's process only: the worker notices at once
    job = wait_for(client, job_id, lambda j: j["state"] != "started")
    assert job["state"] == "failed" and job["error"], job
    print(f"work-horse killed: job {job['state']}: {job['error']}")
    assert models.current(store, "mf") == "1"
    # the periodic refit (the scheduler's job, not the API) finds the dead job's lock and takes it over
    periodic = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer).enqueue(jobs.refit_mf,
                                                                                         job_timeout=600)
    job = wait_for(client, periodic.id, lambda j: j["state"] in ("finished", "failed"), timeout=60)
    assert job["state"] == "finished" and job["result"].get("version") == "2", job
    assert worker.poll() is None  # the same worker went on


def test_a_worker_whose_parent_is_killed_stops_within_the_shutdown_bound(settings, start_worker):
    """`serve` SIGKILLed: its worker is orphaned (and in a warm shutdown at most); it must not live on unbounded."""
    env = dict(os.environ, REDIS_URL=settings.redis_url, BANDIT_PUSH_PREFIX=settings.prefix,
               BANDIT_PUSH_SHUTDOWN_TIMEOUT_S="1")
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]); "
                               "print(p.pid, flush=True); time.sleep(600)",
         sys.executable, "-m", "bandit_push.cli", "worker", "--logging-level", "WARNING"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    worker = psutil.Process(int(parent.stdout.readline()))
    try:
        queue = Queue(settings.queue, connection=redis.Redis.from_url(settings.redis_url))
        until(lambda: Worker.all(queue=queue), timeout=30, what="the worker's registration", every=0.1)  # (past imports)
        parent.kill()
        parent.wait(10)
        gone, alive = psutil.wait_procs([worker, *worker.children(recursive=True)], timeout=15)
        assert alive == [], [p.pid for p in alive]
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
