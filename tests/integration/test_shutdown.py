"""Graceful shutdown of `bandit-push serve` (gunicorn, an RQ worker, the scheduler) on SIGTERM, on a
redis-server of the test's own: a request and a refit job in flight finish, within shutdown_timeout_s;
a job outlasting the bound is stopped (RQ's cold shutdown) and reported, publishing nothing."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest
import requests

import retail
from bandit_push import models
from bandit_push.config import Settings
from bandit_push.store import Store
from bandit_push_workers.queue import job_state
from redis_proc import free_port, wait_healthy
from waits import until

pytestmark = pytest.mark.faults  # real processes and signals: deselected by default, run by .ci/run


@pytest.fixture
def service(redis_server):
    """Start `bandit-push serve` with some settings; yields (process, base URL, store)."""
    started = []

    def start(**env_settings):
        prefix = f"bpt:{uuid.uuid4().hex[:10]}:"
        port = free_port()
        env = dict(os.environ, REDIS_URL=redis_server.url, BANDIT_PUSH_PREFIX=prefix, BANDIT_PUSH_QUIET_HOURS="off",
                   BANDIT_PUSH_SEED="7", **{f"BANDIT_PUSH_{k.upper()}": str(v) for k, v in env_settings.items()})
        proc = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "serve", "--port", str(port), "--workers", "2"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        store = Store.connect(Settings(redis_url=redis_server.url, prefix=prefix, quiet_hours="off", seed=7))
        started.append((proc, store))
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc)
        return proc, base, store, port

    yield start
    for proc, store in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        store.close()


#: a heavier fit than the default (300 ALS sweeps of 128 factors): the refit runs ~5 s, so it is in flight
SLOW_FIT = {"mf_iterations": 300, "mf_factors": 128}


def refit_in_flight(base, store, customers=400) -> str:
    retail.ingest(store, store.settings, retail.sample(customers))
    job_id = requests.post(f"{base}/v1/models/mf/refit", timeout=5).json()["job_id"]
    until(lambda: requests.get(f"{base}/v1/jobs/{job_id}", timeout=5).json()["stage"] == "fit", 60, "the fit started")
    return job_id


def test_sigterm_lets_the_request_and_the_job_in_flight_finish(service):
    # a bound far above the fit's few seconds: on a loaded machine the fit may take several times longer
    proc, base, store, port = service(shutdown_timeout_s=60, **SLOW_FIT)
    job_id = refit_in_flight(base, store)
    # a client uploading a batch of events slowly: its request is in a worker when SIGTERM arrives
    now = time.time()
    body = json.dumps({"events": [{"user_id": f"slow{i}", "item_id": f"i{i % 7}", "type": "view", "ts": now}
                                  for i in range(200)]}).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
    children = psutil.Process(proc.pid).children(recursive=True)
    until(lambda: _holder(children, conn.getsockname()), 10, "a gunicorn worker took the upload")
    proc.send_signal(signal.SIGTERM)
    sigterm, sigterm_at = time.monotonic(), time.time()
    # shutting down: a new connection is not served (the busy worker still holds the listening socket, so
    # it is queued unanswered, then reset), while the upload in flight goes on
    until(lambda: not _answers(f"{base}/healthz"), 10, "new connections refused after SIGTERM")
    conn.sendall(body[len(body) // 2:])
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    conn.close()
    answered = time.monotonic() - sigterm
    out, _ = proc.communicate(timeout=60 + 2 + 5 + 10)  # serve's own bound, then a margin
    stopped = time.monotonic() - sigterm
    status = response.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 200 OK", response[:500]
    assert proc.returncode == 0 and "bandit-push stopped" in out, out
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    job = job_state(store, job_id)
    assert job["state"] == "finished" and job["result"]["version"] == "1", job
    print(f"SIGTERM: slow request answered {answered:.1f} s after it (200), refit job {job['state']} "
          f"(ended {job['ended_at'] - job['started_at']:.1f} s after starting), everything stopped after "
          f"{stopped:.1f} s")
    assert job["started_at"] < sigterm_at < job["ended_at"]  # it was running when SIGTERM came
    assert models.current(store, "mf") == "1"
    assert store.redis.exists(store.keys.user("slow199"))  # the late half of the upload was ingested
    assert stopped < 60 + 2 + 5 + 10  # serve's bound (then SIGKILL), and a margin for a loaded machine


def test_a_job_outlasting_the_bound_is_stopped_and_reported(service):
    # a fit that outlasts the bound (+2 s) even on a quiet machine, where SLOW_FIT's can end within it
    proc, base, store, _ = service(shutdown_timeout_s=1, job_heartbeat_s=1, job_abandon_grace_s=2, refit_retries=0,
                                   **{**SLOW_FIT, "mf_iterations": 5000})
    job_id = refit_in_flight(base, store)
    proc.send_signal(signal.SIGTERM)
    sigterm = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    stopped = time.monotonic() - sigterm
    print(f"SIGTERM with shutdown_timeout_s=1 and a refit in flight: stopped after {stopped:.1f} s")
    assert proc.returncode == 0 and "worker still busy after 1 s" in out, out
    assert stopped < 1 + 2 + 5 + 10  # serve's bound (then SIGKILL), and a margin for a loaded machine
    assert models.current(store, "mf") is None  # the stopped refit published nothing
    assert not store.redis.exists(store.keys.counters()) or store.redis.hget(store.keys.counters(), "model:mf") is None
    # the stopped job's heartbeat lapses (1 s + 2 s): abandoned, failed (no retry left)
    def ended() -> dict | None:
        job = job_state(store, job_id)
        return job if job["state"] != "started" else None

    job = until(ended, 30, "the stopped job ended")
    assert job["state"] == "failed" and "AbandonedJobError" in job["error"], job
    print(f"the stopped job, {time.monotonic() - sigterm:.1f} s after SIGTERM: {job['state']}: {job['error']}")


def _holder(processes: list[psutil.Process], client_address: tuple) -> bool:
    """Whether one of ``processes`` holds the server end of the connection from ``client_address``."""
    for p in processes:
        try:
            if any(c.raddr and tuple(c.raddr)[:2] == tuple(client_address)[:2] for c in p.net_connections("tcp")):
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return False


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except (requests.ConnectionError, requests.Timeout):
        return False
    return True
