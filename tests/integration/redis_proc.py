"""A redis-server process of a test's own, to kill, pause and restart (never the shared one)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 30.0, what: str = "service") -> None:
    """Until ``base``/healthz answers 200; fails with the process's output if it exits first or the time runs out."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still booting
            pass
        out = proc.stdout or proc.stderr
        assert proc.poll() is None, out.read() if out else f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not come up in {timeout:.0f} s"
        time.sleep(0.2)


class RedisProcess:
    """redis-server on a free loopback port with its files in ``directory``; AOF on or off."""

    def __init__(self, directory: str, aof: bool = True):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not on PATH: the fault tests need a real one to kill")
        self.directory = directory
        self.port = free_port()
        self.aof = aof
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
                "--save", "", "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", os.path.join(self.directory, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what survives is what the AOF already had."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()
            self.kill()
