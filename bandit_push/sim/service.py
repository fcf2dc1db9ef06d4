"""A fresh bandit-push service for one simulated policy run: gunicorn on its own key prefix.

The service runs in child processes (``gunicorn 'bandit_push_api:create_app()'``, configured through
``BANDIT_PUSH_*`` like any deployment), so this module imports no Flask. The run's keys are
deleted when it stops.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from typing import Any

from bandit_push import popular, refit
from bandit_push.client import Client, Unreachable
from bandit_push.config import KEYS_WARNED_ENV, Settings
from bandit_push.engagement_gate import LogWindow
from bandit_push.errors import NotFound
from bandit_push.policies import from_config
from bandit_push.store import Store


def policy_env(settings: Settings, policy: dict[str, Any]) -> dict[str, str]:
    """``BANDIT_PUSH_*`` variables that make a service run ``policy`` (validated by :func:`from_config`)."""
    pol = from_config(policy, settings)
    env = {"BANDIT_PUSH_POLICY": pol.name}
    for k, v in pol.params.items():
        env[f"BANDIT_PUSH_{k.upper()}"] = repr(v)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``with Service(settings, policy) as svc:`` — ``svc.url``, ``svc.refresh(now)``; keys removed at exit.

    ``workers`` gunicorn processes; sync workers (``threads`` 1, as ``bandit-push serve`` runs them) or,
    with more threads, gthread workers."""

    def __init__(self, settings: Settings, policy: dict[str, Any], workers: int = 3, threads: int = 1,
                 env: dict[str, str] | None = None):
        self.settings = settings.replace(prefix=f"{settings.prefix}sim{uuid.uuid4().hex[:8]}:")
        self.policy = policy
        self.workers, self.threads = workers, threads
        self.extra_env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.store: Store | None = None
        self.scheduler: Scheduler | None = None

    def __enter__(self) -> "Service":
        s = self.settings
        # snapshots age by the decisions' clock (the simulated one here): five simulated minutes, since the replay
        # asks every few simulated seconds and what they hold changes with the hourly refits
        env = dict(os.environ, REDIS_URL=s.redis_url or "", BANDIT_PUSH_PREFIX=s.prefix, BANDIT_PUSH_SNAPSHOT_SECONDS="300",
                   BANDIT_PUSH_SNAPSHOT_CLOCK="decisions",
                   BANDIT_PUSH_QUIET_HOURS=s.quiet_hours, BANDIT_PUSH_MAX_PER_DAY=str(s.max_per_day),
                   BANDIT_PUSH_MIN_GAP_HOURS=repr(s.min_gap_hours), **policy_env(s, self.policy), **self.extra_env)
        if s.seed is not None:
            env["BANDIT_PUSH_SEED"] = str(s.seed)
        env[KEYS_WARNED_ENV] = "1"  # a keyless service on loopback for this run only: nothing to warn about
        cmd = [sys.executable, "-m", "gunicorn", "-c", "python:bandit_push_api.gunicorn_conf", "--workers", str(self.workers),
               "--threads", str(self.threads),
               "--worker-class", "gthread" if self.threads > 1 else "sync", "--bind", f"127.0.0.1:{self.port}",
               "--log-level", "warning", "bandit_push_api:create_app()"]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.store = Store.connect(s)
        self.scheduler = Scheduler(self.store, s)
        with Client(self.url) as client:
            try:
                client.wait_ready(30.0, alive=lambda: self.proc is not None and self.proc.poll() is None)
            except Unreachable:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the service for {self.policy} did not start") from None
        return self

    def refresh(self, now: float) -> None:
        """The scheduler's periodic jobs at the simulated time ``now`` (see :class:`Scheduler`)."""
        assert self.scheduler is not None
        self.scheduler.tick(now)

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.store is not None:
            self.store.delete_prefix()
            self.store.close()


class Scheduler:
    """What a deployment's scheduler runs, at simulated times: ``tick(now)`` refreshes the popular items
    and, every ``segments_refit_hours`` (first at the first tick: the end of the organic warm-up), refits
    the behavioural segmentation. The MF refit is left out: the baselines' replica pushes popular items,
    and the comparison is about when to push, not which items. (Under a learned policy a user's items come
    from their learned segment's popular list, the replica's from the ``default`` one: a small difference.)"""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.segmented_at = self.policy_at = -float("inf")
        self.gate_log = LogWindow()  # the policy refit's gate reads each closed hour of the decision log once

    def tick(self, now: float) -> None:
        popular.refresh(self.store, self.settings, now=now)
        if now - self.segmented_at >= self.settings.segments_refit_hours * 3600.0:
            refit.run(self.store, self.settings, "segments", "simulator", now=now)
            self.segmented_at = now
        if now - self.policy_at >= self.settings.policy_refit_minutes * 60.0:
            try:
                refit.run(self.store, self.settings, "policy", "simulator", now=now, gate_log=self.gate_log)
                self.policy_at = now
            except NotFound:  # nobody pushed yet
                pass
