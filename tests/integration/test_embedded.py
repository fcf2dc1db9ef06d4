"""The embedded Redis a newcomer's `bandit-push serve` (and the test session) starts must really stop, and only
the process that started it may stop it: one owner per data directory."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
import redis

from bandit_push import embedded
from bandit_push.config import Settings


def _env(data_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["BANDIT_PUSH_DATA_DIR"] = str(data_dir)
    return env


def _servers_on(data_dir) -> list[int]:
    """The redis-servers whose working directory (their RDB file's) is ``data_dir``."""
    found = []
    for p in psutil.process_iter(["name"]):
        try:
            if p.info["name"] == "redis-server" and os.path.realpath(p.cwd()) == os.path.realpath(data_dir):
                found.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_stop_shuts_the_embedded_server_down_and_keeps_its_data(tmp_path):
    server = embedded.start(str(tmp_path))
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()
    server.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()
    server.stop()  # stopping twice is harmless
    again = embedded.start(str(tmp_path))  # the RDB file was saved on the way down
    try:
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()


def test_a_one_shot_command_uses_the_running_services_redis_and_leaves_it_running(tmp_path):
    owner = embedded.start(str(tmp_path))
    try:
        done = subprocess.run([sys.executable, "-m", "bandit_push.cli", "refresh-popular"], env=_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "using the embedded Redis of the running bandit-push service" in done.stderr
        assert redis.Redis.from_url(owner.url, socket_connect_timeout=1).ping()  # still serving
        assert _servers_on(tmp_path) == [owner.pid]
    finally:
        owner.stop()


def test_a_one_shot_command_without_a_service_starts_and_stops_its_own(tmp_path):
    with embedded.session(Settings(data_dir=str(tmp_path)), "refit", say=(said := []).append) as (_, store):
        assert store.redis.ping()
        pids = _servers_on(tmp_path)
    assert len(pids) == 1 and "started its embedded Redis for this command" in said[0]
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE


def test_a_second_owner_is_refused(tmp_path):
    owner = embedded.start(str(tmp_path))
    try:
        with pytest.raises(embedded.DataDirInUse, match=f"bandit-push serve \\(pid {os.getpid()}\\)"):
            embedded.start(str(tmp_path))
        done = subprocess.run([sys.executable, "-m", "bandit_push.cli", "serve", "--port", "1"], env=_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "BANDIT_PUSH_DATA_DIR" in done.stderr, done.stderr
        assert redis.Redis.from_url(owner.url, socket_connect_timeout=1).ping()
    finally:
        owner.stop()


def test_the_server_of_a_killed_owner_is_stopped_by_the_next_owner_with_its_data(tmp_path):
    code = ("import sys, time, redis; from bandit_push import embedded\n"
            f"s = embedded.start({str(tmp_path)!r}); redis.Redis.from_url(s.url).set('k', 'v')\n"
            "print(s.pid, flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        left = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)  # as a SIGKILLed `serve`: the daemonised redis-server lives on
        proc.wait()
    assert psutil.pid_exists(left) and _servers_on(tmp_path) == [left]
    server = embedded.start(str(tmp_path))
    try:
        assert server.replaced == left and not psutil.pid_exists(left)
        assert _servers_on(tmp_path) == [server.pid]
        assert redis.Redis.from_url(server.url).get("k") == b"v"
    finally:
        server.stop()
