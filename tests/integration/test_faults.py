"""Redis faults under load, over real HTTP: a killed and restarted redis-server (a test's own process).

While Redis is down every endpoint that needs it answers 503 with Retry-After, within the configured
timeout; /readyz fails; /healthz stays up; when Redis is back the same app recovers by itself. Feedback
sent with client retries across a restart (AOF, appendfsync always) is counted exactly once.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from bandit_push_api import create_app
from bandit_push.config import OUTCOMES
from bandit_push.segments import load_arms
from redis_proc import RedisProcess
from waits import until

pytestmark = pytest.mark.faults  # a redis-server killed and frozen under load: deselected by default, run by .ci/run
NOW = 1795000000.0  # 2026-11-19: every decision at one instant, so arm counts are exact (no decay)
TIMEOUT = 0.5


@pytest.fixture
def own_redis(tmp_path):
    server = RedisProcess(str(tmp_path), aof=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def serve(settings):
    """Start an app on a real threaded HTTP server; yields a function building one for a Redis URL."""
    servers = []

    def build(redis_url: str, **changes):
        app = create_app(settings.replace(redis_url=redis_url, redis_timeout_s=TIMEOUT, **changes))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread, app))
        return f"http://127.0.0.1:{server.server_port}", app

    yield build
    for server, thread, app in servers:
        server.shutdown()
        thread.join(5)
        app.extensions["bandit_push"].store.close()


def _sent_decisions(base: str, n: int, prefix: str) -> list[str]:
    out = []
    for i in range(n):
        d = requests.post(f"{base}/v1/decide", json={"user_id": f"{prefix}{i}", "now": NOW}, timeout=5).json()
        assert d["send"] is True  # the fixed cadence sends to a user never pushed
        out.append(d["decision_id"])
    return out


def test_outage_answers_503_quickly_and_recovers_without_restart(own_redis, serve):
    base, _ = serve(own_redis.url, policy="cadence")
    decisions = _sent_decisions(base, 20, "load-")
    calls = [
        ("post", "/v1/decide", lambda i: {"user_id": f"u{i}", "now": NOW + i}),
        ("post", "/v1/feedback", lambda i: {"decision_id": decisions[i % 20], "event": "opened"}),
        ("post", "/v1/events", lambda i: {"user_id": f"u{i}", "type": "app_open"}),
        ("put", "/v1/users/u1", lambda i: {"opted_out": False}),
        ("get", "/v1/users/u1", None),
        ("delete", "/v1/users/gone", None),
        ("get", "/v1/segments", None),
        ("get", "/readyz", None),
        ("get", "/healthz", None),
    ]
    log: list[tuple[float, str, int, float, str | None]] = []
    stop = threading.Event()
    counter = itertools.count()

    def worker():
        with requests.Session() as http:
            while not stop.is_set():
                i = next(counter)
                method, path, body = calls[i % len(calls)]
                started = time.monotonic()
                r = http.request(method, base + path, json=body(i) if body else None, timeout=10)
                log.append((started, path, r.status_code, time.monotonic() - started, r.headers.get("Retry-After")))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    def answered_after(t: float, n: int) -> bool:  # (a request is logged once answered)
        return sum(1 for e in list(log) if e[0] > t + 0.05) >= n

    try:
        until(lambda: len(log) >= 20, 30, "load before the fault")
        killed = time.monotonic()
        own_redis.kill()
        # Redis stays down until every endpoint has been asked (and answered) during the outage
        until(lambda: answered_after(killed, 60) and {p for s, p, _, _, _ in list(log) if s > killed + 0.05}
              == {p for _, p, _ in calls}, 30, "requests during the outage")
        down_until = time.monotonic()
        own_redis.start()
        restarted = time.monotonic()
        # recovered: the first decide issued after the restart that succeeds
        until(lambda: any(s >= restarted and p == "/v1/decide" and c == 200 for s, p, c, _, _ in list(log)), 10,
              "recovery after the restart")
        recovered = time.monotonic()
        until(lambda: answered_after(recovered, 30), 30, "requests after the recovery")
    finally:
        stop.set()
        for t in threads:
            t.join(15)

    during = [e for e in log if killed + 0.05 < e[0] and e[0] + e[3] < down_until]
    after = [e for e in log if e[0] > recovered + 0.05]
    assert len(during) > 50 and len(after) > 20
    by_path = collections.defaultdict(set)
    for _, path, code, latency, retry in during:
        by_path[path].add(code)
        if path == "/healthz":
            assert code == 200
        else:
            assert code == 503 and retry == "1", (path, code)
            assert latency < 2 * TIMEOUT + 0.5, (path, latency)  # connect + read timeouts at most
    assert set(by_path) == {p for _, p, _ in calls}  # every endpoint was asked during the outage
    unexpected = [e for e in log if e[2] >= 500 and e[2] != 503]
    assert unexpected == []
    for _, path, code, _, _ in after:
        assert code in (200, 201), (path, code)
    print(f"\noutage: {len(log)} requests, {len(during)} during the outage (all 503 + Retry-After but /healthz), "
          f"max latency under fault {max(e[3] for e in during) * 1000:.0f} ms, other 5xx {len(unexpected)}, "
          f"recovery {1000 * (recovered - restarted):.0f} ms after the restart")


def test_a_hung_redis_answers_503_within_the_timeout(own_redis, serve):
    base, _ = serve(own_redis.url)
    assert requests.post(f"{base}/v1/decide", json={"user_id": "u"}, timeout=5).status_code == 200
    own_redis.pause()  # SIGSTOP: connections are accepted by the kernel, nothing answers
    try:
        for method, path, body in (("post", "/v1/decide", {"user_id": "u"}), ("get", "/readyz", None),
                                   ("post", "/v1/events", {"user_id": "u", "type": "app_open"})):
            started = time.monotonic()
            r = requests.request(method, base + path, json=body, timeout=10)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            took = time.monotonic() - started
            print(f"\nhung redis: {method.upper()} {path} answered 503 after {took * 1000:.0f} ms (timeout {TIMEOUT} s)")
            assert took < TIMEOUT + 0.4  # one socket timeout, not a retry loop
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        own_redis.resume()
    until(lambda: requests.post(f"{base}/v1/decide", json={"user_id": "u"}, timeout=5).status_code == 200, 10,
          "decide answers again once Redis runs")


def test_feedback_across_a_restart_is_counted_once(own_redis, serve, settings):
    """Every event is sent until the service answers it (client retries), a fifth of them twice on
    purpose; redis-server is SIGKILLed and restarted (AOF, appendfsync always) in the middle."""
    base, app = serve(own_redis.url, policy="cadence")
    n = 150
    decisions = _sent_decisions(base, n, "fb-")
    events = [(d, e) for d in decisions for e in ("delivered", "opened", "clicked")]
    work = events + events[::5]  # deliberate duplicates: a gateway re-sending what it already sent
    sends = collections.Counter()
    attempts = collections.Counter()
    statuses = collections.Counter()
    lock = threading.Lock()
    queue = list(reversed(work))
    restarted = threading.Event()

    def worker():
        with requests.Session() as http:
            while True:
                with lock:
                    if not queue:
                        return
                    did, event = queue.pop()
                    sends[(did, event)] += 1
                while True:  # the gateway's retry loop: until the service has answered the event
                    with lock:
                        attempts["all"] += 1
                    try:
                        r = http.post(f"{base}/v1/feedback", json={"decision_id": did, "event": event, "ts": NOW + 60},
                                      timeout=5)
                    except requests.RequestException:
                        time.sleep(0.02)
                        continue
                    if r.status_code == 503:
                        with lock:
                            attempts["503"] += 1
                        time.sleep(0.02)
                        continue
                    assert r.status_code == 200, r.text
                    with lock:
                        statuses[r.json()["status"]] += 1
                    break

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    until(lambda: len(queue) <= len(work) * 0.6, 60, "feedback flowing before the fault", every=0.005)
    own_redis.kill()
    until(lambda: attempts["503"] > 0, 30, "a 503 while Redis is down")  # the gateways met the outage
    own_redis.start()
    restarted.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)

    store = app.extensions["bandit_push"].store
    totals = collections.Counter()
    for field, values in load_arms(store).items():
        if field.count("|") == 2:
            totals["sent"] += values[1]
            for i, outcome in enumerate(OUTCOMES):
                totals[outcome] += values[2 + i]
    assert totals["sent"] == n
    for outcome in ("delivered", "opened", "clicked"):
        assert totals[outcome] == n, (outcome, totals)  # none lost, none counted twice
    assert totals["converted"] == 0
    assert attempts["503"] > 0, "the restart happened while feedback was flowing"
    assert statuses["accepted"] <= len(events) and statuses["accepted"] + statuses["duplicate"] == len(work)
    print(f"\nfeedback across a restart: {len(events)} distinct events, {len(work)} sends, {attempts['all']} requests "
          f"({attempts['503']} answered 503 and retried); arm counts {dict(totals)}: 0 lost, 0 duplicated")
