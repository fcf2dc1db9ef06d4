"""A master of a local Redis Cluster killed under bounded load over real HTTP: what the service answers until its
replica is promoted, and whether every acknowledged write survives. Shared by tests/integration/test_failover.py
(which asserts) and bench/failover.py (which prints the figures).

The load: ``threads`` clients in a loop, each creating a new user (``PUT /v1/users/<id>``, its answer's 2xx the
acknowledgement) then reading a user created before the load (``GET``), alternating between users whose slots
the killed master serves and users of the other masters; ``pause`` seconds between requests bound the load.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Any

import redis
import requests

from bandit_push.store import Store
from redis_proc import RedisClusterProcess


@dataclasses.dataclass
class Call:
    started: float  #: monotonic, seconds
    took: float
    method: str
    user: str
    victim: bool  #: the user's slot was served by the killed master
    status: int  #: 0: no HTTP answer (the client's own timeout)
    retry_after: str | None
    body: Any


@dataclasses.dataclass
class Outcome:
    node_timeout_ms: int
    killed: float  #: monotonic time of the SIGKILL
    promoted: float | None  #: first time a surviving node listed a new master for the killed one's slots
    calls: list[Call]
    acknowledged: list[str]  #: users whose PUT answered 2xx
    lost: list[str]  #: of those, the ones a GET after the recovery did not find
    victim_port: int
    replica_port: int | None
    victim_kind: str  #: see :func:`run`

    def answered(self, victim: bool | None = None) -> list[Call]:
        return [c for c in self.calls if victim is None or c.victim == victim]

    def failed(self, victim: bool | None = None) -> list[Call]:
        return [c for c in self.answered(victim) if not 200 <= c.status < 300]

    def window(self, victim: bool | None = None) -> tuple[float, float] | None:
        """(start of the first request answered 503, start of the first request answered 2xx after the last
        503), relative to the kill; None if no request failed."""
        calls = self.answered(victim)
        failed = [c for c in calls if c.status == 503]
        if not failed:
            return None
        last = max(c.started for c in failed)
        back = min((c.started for c in calls if c.started > last and 200 <= c.status < 300), default=float("nan"))
        return min(c.started for c in failed) - self.killed, back - self.killed

    def figures(self) -> dict[str, Any]:
        def window(victim: bool | None) -> dict[str, Any] | None:
            w = self.window(victim)
            return None if w is None else {"first_503_s": round(w[0], 3), "recovered_s": round(w[1], 3),
                                           "unavailable_s": round(w[1] - w[0], 3)}

        during = [c for c in self.calls if c.started >= self.killed]
        statuses: dict[int, int] = {}
        for c in during:
            statuses[c.status] = statuses.get(c.status, 0) + 1
        return {
            "node_timeout_ms": self.node_timeout_ms, "killed": self.victim_kind,
            "promoted_s": None if self.promoted is None else round(self.promoted - self.killed, 3),
            "killed_shard": window(True), "other_shards": window(False),
            "requests": len(self.calls), "after_kill": statuses,
            "slowest_after_kill_s": round(max((c.took for c in during), default=0.0), 3),
            "acknowledged_puts": len(self.acknowledged), "lost": len(self.lost),
            # the writes most at risk with asynchronous replication: acknowledged by the killed master just before
            "acknowledged_by_killed_master_in_last_100ms": sum(
                1 for c in self.calls if c.method == "PUT" and c.victim and 200 <= c.status < 300
                and self.killed - 0.1 <= c.started + c.took <= self.killed),
        }


def users_by_shard(store: Store, victim: int, n: int, tag: str) -> tuple[list[str], list[str]]:
    """``n`` user ids whose slots ``victim`` serves and ``n`` of the other masters (named ``<tag>-<i>``)."""
    mine: list[str] = []
    others: list[str] = []
    for i in itertools.count():
        uid = f"{tag}-{i}"
        (mine if store.redis.get_node_from_key(store.keys.user(uid)).port == victim else others).append(uid)
        if len(mine) >= n and len(others) >= n:
            return mine[:n], others[:n]
    raise AssertionError("unreachable")


def _new_master(cluster: RedisClusterProcess, replica: int | None) -> bool:
    if replica is None:
        return False
    try:
        return replica in cluster.primaries()
    except redis.RedisError:  # the node asked is busy or the reply is being rebuilt: ask again
        return False


def shared_nodes(store: Store) -> dict[str, int]:
    """The masters serving the shared keys every users request touches (each in a slot of its own): the model
    pointers (read by each answer: the user's engagement) and the segment sizes (written when a user is created)."""
    keys = store.keys
    return {name: store.redis.get_node_from_key(key).port
            for name, key in (("models:current", keys.model_current()), ("segsize", keys.segment_sizes()))}


def run(cluster: RedisClusterProcess, store: Store, base: str, threads: int = 4, pause: float = 0.01,
        before: float = 1.0, after: float = 2.0, give_up: float = 60.0, tag: str = "fo",
        victim_kind: str = "users") -> Outcome:
    """Load ``base`` (the app on ``store``, over HTTP), SIGKILL a master, keep loading until the killed shard
    answers 2xx again and ``after`` seconds more, then read back every acknowledged user.

    ``victim_kind``: ``users`` kills a master serving users only (none of :func:`shared_nodes`), so the other
    masters' users show what a shard's failover costs the rest; ``shared`` kills the one serving the model
    pointers, which every request reads: all users then wait for its replica."""
    shared = shared_nodes(store)
    if victim_kind == "shared":
        victim = shared["models:current"]
    else:
        victim = next(p for p in cluster.primaries() if p not in shared.values())
    replica = cluster.replica_of(victim)
    readers = users_by_shard(store, victim, 8, f"{tag}-seed")
    with requests.Session() as http:
        for uid in readers[0] + readers[1]:
            assert http.put(f"{base}/v1/users/{uid}", json={}, timeout=10).status_code == 201
    # the users to create, alternately on the killed master and on the others (placed by the slot map before the kill)
    mine, others = users_by_shard(store, victim, 20_000, f"{tag}-new")
    on_victim = set(mine) | set(readers[0])
    news = iter([uid for pair in zip(mine, others) for uid in pair])
    lock = threading.Lock()  # (the clients share the iterator)
    calls: list[Call] = []
    acknowledged: list[str] = []
    stop = threading.Event()

    def call(http: requests.Session, method: str, uid: str, **kw: Any) -> None:
        started = time.monotonic()
        try:
            r = http.request(method, f"{base}/v1/users/{uid}", timeout=10, **kw)
            status, retry_after = r.status_code, r.headers.get("Retry-After")
            try:
                body = r.json()
            except ValueError:
                body = r.text
        except requests.RequestException as e:
            status, retry_after, body = 0, None, repr(e)
        calls.append(Call(started, time.monotonic() - started, method, uid, uid in on_victim, status, retry_after,
                          body))
        if method == "PUT" and 200 <= status < 300:
            acknowledged.append(uid)

    def client(k: int) -> None:
        with requests.Session() as http:
            for i in itertools.count():
                if stop.is_set():
                    return
                with lock:
                    uid = next(news)
                call(http, "PUT", uid, json={"timezone": "Europe/Berlin"})
                group = readers[(i + k) % 2]
                call(http, "GET", group[(i // 2 + k) % len(group)])
                time.sleep(pause)

    workers = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    promoted = None
    try:
        time.sleep(before)
        killed = time.monotonic()
        cluster.kill(victim)
        deadline = killed + give_up
        recovered = None
        while recovered is None or time.monotonic() < recovered + after:
            if time.monotonic() > deadline:
                break
            if promoted is None and _new_master(cluster, replica):
                promoted = time.monotonic()
            if recovered is None:  # the killed shard answered 2xx after its last 503 (or after the promotion)
                since = max((c.started for c in list(calls) if c.victim and c.status == 503), default=promoted)
                if since is not None and any(c.victim and 200 <= c.status < 300 and c.started > since
                                             for c in list(calls)):
                    recovered = time.monotonic()
            time.sleep(0.05)
    finally:
        stop.set()
        for w in workers:
            w.join(15)
    lost = []
    with requests.Session() as http:
        for uid in acknowledged:
            r = http.get(f"{base}/v1/users/{uid}", timeout=10)
            if r.status_code != 200 or r.json().get("timezone") != "Europe/Berlin":
                lost.append(uid)
    return Outcome(cluster.node_timeout_ms, killed, promoted, sorted(calls, key=lambda c: c.started),
                   acknowledged, lost, victim, replica, victim_kind)
