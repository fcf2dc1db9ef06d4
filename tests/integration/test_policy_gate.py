"""The policy refit's gate: a new engagement model serves only if the recent decision log does not show it worse.

The decision logs here are the real service's: decides and feedback through the API on a real Redis, for users
whose organic activity says how they answer pushes (active users click and buy, inactive ones dismiss and
unsubscribe), so a version of the engagement model that reads organic activity the right way round earns more on
the log, and one that reads it backwards earns less.
"""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
import requests
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from bandit_push import engagement, engagement_gate, models, refit
from bandit_push.engagement import EngagementParams
from bandit_push.ope import gate

USERS = 800
#: the decisions start two days ago (on the server's clock, which the refit job reads): judged now, all of them are
#: closed (the last is 28 hours old) and in the gate's window (the 48 hours before the attribution window)
JUDGED_AT = float(int(time.time()))
T0 = JUDGED_AT - 48 * 3600
FLAT = EngagementParams(3.0, (0.0, 0.0, 0.0))            # organic activity says nothing
RIGHT = EngagementParams(3.0, (-1.0, 0.8, 0.0))          # active users engage more
BACKWARDS = EngagementParams(3.0, (1.0, -0.8, 0.0))      # active users engage less
COST = 0.05  #: the service's (and so the gate's) policy: Thompson sampling at this cost of a push


def publish(store, p: EngagementParams, now: float = T0 - 3600) -> str:
    return models.publish(store, engagement.MODEL, {"params": np.array([p.kappa, *p.b])}, {"kappa": p.kappa},
                          now=now)


def active(i: int) -> bool:
    return i % 2 == 0


def seed_log(client, store, seed: int = 1) -> None:
    """One decision per user, a minute and a half apart, and the outcomes each kind of user reports."""
    rng = random.Random(seed)
    for i in range(USERS):
        store.redis.hset(store.keys.user(f"u{i}"), mapping={
            "sg": "new", "ff": repr(T0 - 40 * 86400), "f:view": 40 if active(i) else 0})
    for i in range(USERS):
        now = T0 + i * 90.0
        r = client.post("/v1/decide", json={"user_id": f"u{i}", "now": now})
        assert r.status_code == 200, r.get_json()
        d = r.get_json()
        if not d["send"]:
            continue
        events = ([("clicked", 0.5), ("converted", 0.1)] if active(i) else [("dismissed", 0.5), ("unsubscribed", 0.03)])
        for event, p in events:
            if rng.random() < p:
                r = client.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": event, "ts": now + 60})
                assert r.status_code == 200, r.get_json()


@pytest.fixture
def logged(make_app, store):
    """A decision log made while FLAT served; returns the app's test client."""
    publish(store, FLAT)
    client = make_app(cost=COST, snapshot_seconds=0.001).test_client()
    seed_log(client, store)
    return client


@pytest.fixture
def settings(settings):
    """The service's settings, the gate's as the service's worker reads them."""
    return settings.replace(cost=COST)


def test_a_version_reading_activity_backwards_is_worse_and_the_right_one_better(logged, store, settings):
    """On the same log, judged against the version that made it: the backward version is worse beyond the noise, the
    right one is not (it is better); the serving version replayed on its own log reproduces the logged propensities
    (every weight 1: its effective sample size is the number of decisions)."""
    worse = engagement_gate.judge(store, settings, BACKWARDS, JUDGED_AT)
    print(worse["message"])
    assert worse["serves"] is False and worse["reason"] == "worse"
    assert worse["difference"]["ci_high"] < 0 <= worse["serving"]["estimate"] - worse["candidate"]["estimate"]
    assert worse["decisions"] == USERS and worse["scored"] == USERS and worse["sends"] >= gate.MIN_SENDS
    assert worse["serving"]["ess"] == pytest.approx(USERS, rel=1e-6)
    assert worse["window"]["since"] <= T0 and worse["window"]["until"] >= T0 + USERS * 90.0
    assert worse["serving_version"] == models.current(store, engagement.MODEL)
    better = engagement_gate.judge(store, settings, RIGHT, JUDGED_AT)
    print(better["message"])
    assert better["serves"] is True and better["reason"] == "not_worse"
    assert better["difference"]["estimate"] > 0 and better["difference"]["ci_low"] > 0


def test_the_serving_version_is_judged_not_the_one_that_logged(logged, store, settings):
    """With BACKWARDS serving now (after the log was made under FLAT), the right version is better than it: the
    serving version is replayed like any other, its weights are no longer 1."""
    publish(store, BACKWARDS, now=JUDGED_AT - 60)
    out = engagement_gate.judge(store, settings, RIGHT, JUDGED_AT)
    assert out["serves"] and out["reason"] == "not_worse" and out["difference"]["ci_low"] > 0
    assert out["serving"]["ess"] < USERS


def test_too_few_decisions_or_none_or_no_serving_version_serve(make_app, store, settings):
    assert engagement_gate.judge(store, settings, BACKWARDS, JUDGED_AT)["reason"] == "no_serving_version"
    publish(store, FLAT)
    none = engagement_gate.judge(store, settings, BACKWARDS, JUDGED_AT)
    assert none["serves"] and none["reason"] == "too_few" and none["decisions"] == 0
    client = make_app().test_client()
    for i in range(gate.MIN_SCORED - 1):
        store.redis.hset(store.keys.user(f"u{i}"), mapping={"sg": "new", "f:view": 40 if active(i) else 0})
        assert client.post("/v1/decide", json={"user_id": f"u{i}", "now": T0 + i * 90.0}).status_code == 200
    few = engagement_gate.judge(store, settings, BACKWARDS, JUDGED_AT)
    assert few["serves"] and few["reason"] == "too_few" and few["scored"] == gate.MIN_SCORED - 1
    assert "too few" in few["message"]
    off = engagement_gate.judge(store, settings.replace(policy_gate_hours=0), BACKWARDS, JUDGED_AT)
    assert off["serves"] and off["reason"] == "no_gate"


def evidence(store, backwards: bool) -> None:
    """Every user's evidence as if they had answered 6 pushes' worth of expected engagement: the active users all of
    it and the inactive none, or (``backwards``) the other way round."""
    for i in range(USERS):
        engaged = 6.0 if active(i) != backwards else 0.0
        store.redis.hset(store.keys.user(f"u{i}"), "pe", f"{JUDGED_AT:.10g} {engaged:.5g} 6")


def work(store) -> None:
    queue = Queue(store.settings.queue, connection=store.binary, serializer=JSONSerializer)
    SimpleWorker([queue], connection=store.binary, serializer=JSONSerializer).work(burst=True)


@pytest.fixture
def worker_env(monkeypatch, settings, store):
    queue = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    monkeypatch.setenv("BANDIT_PUSH_QUIET_HOURS", "off")
    monkeypatch.setenv("BANDIT_PUSH_SEED", str(settings.seed))
    monkeypatch.setenv("BANDIT_PUSH_COST", str(COST))
    yield
    queue.delete(delete_jobs=True)


def test_a_refit_that_learns_backwards_is_kept_and_a_right_one_serves(logged, store, settings, live_server, worker_env):
    """The refit job over real HTTP: evidence that contradicts the decision log fits a version the gate keeps (the
    job's result and GET /v1/models say why, FLAT still serves); evidence that agrees fits one that serves, and the
    kept version is gone."""
    before = models.current(store, engagement.MODEL)
    evidence(store, backwards=True)
    job = requests.post(f"{live_server}/v1/models/policy/refit", timeout=10).json()["job_id"]
    work(store)
    res = requests.get(f"{live_server}/v1/jobs/{job}", timeout=10).json()
    assert res["state"] == "finished", res
    out = res["result"]
    assert out["b"][1] < 0 and out["serving"] is False and out["gate"]["reason"] == "worse"
    assert out["gate"]["difference"]["ci_high"] < 0 and "kept, not served" in out["gate"]["message"]
    assert {"estimate", "ci_low", "ci_high", "ess"} <= set(out["gate"]["candidate"])
    listed = requests.get(f"{live_server}/v1/models", timeout=10).json()
    assert [(m["name"], m["version"]) for m in listed["models"]] == [("policy", before)]
    assert [(m["name"], m["version"], m["gate"]["reason"]) for m in listed["kept"]] == [("policy", out["version"], "worse")]
    assert listed["kept"][0]["gate"] == out["gate"]
    assert EngagementParams.serving(store).version == before  # decide still reads FLAT
    page = requests.get(f"{live_server}/console/models", timeout=10)
    assert page.status_code == 200 and 'id="kept"' in page.text and "kept, not served" in page.text

    evidence(store, backwards=False)
    right = refit.run(store, settings, "policy", "test", now=JUDGED_AT)
    assert right["b"][1] > 0 and right["serving"] and right["gate"]["reason"] == "not_worse"
    listed = requests.get(f"{live_server}/v1/models", timeout=10).json()
    assert [(m["name"], m["version"]) for m in listed["models"]] == [("policy", right["version"])]
    assert listed["kept"] == []
    assert not store.redis.exists(store.keys.model_version(engagement.MODEL, out["version"]))


def test_a_kept_reader_reads_each_closed_hour_once(logged, store, settings):
    """The simulator's scheduler keeps the gate's reader between refits: an hour wholly inside the window (all its
    decisions closed) is read from Redis once; a fresh reader reads it again."""
    reader = engagement_gate.LogWindow()
    first = [r["decision_id"] for r in reader.rows(store, settings, JUDGED_AT)]
    assert len(first) == USERS and len(set(first)) == USERS
    for did in first:  # as if expired
        store.redis.delete(store.keys.decision(did))
    assert [r["decision_id"] for r in reader.rows(store, settings, JUDGED_AT)] == first
    assert list(engagement_gate.LogWindow().rows(store, settings, JUDGED_AT)) == []
    later = JUDGED_AT + 30 * 3600  # the window moved past the first hours: the reader lets them go
    assert len(list(reader.rows(store, settings, later))) < USERS


def test_a_window_larger_than_the_cap_is_sampled_evenly(logged, store, settings):
    """With room for a third of the window's decisions, every k-th is read (k a little more than 3: each hour's sample
    starts at its first decision): over the whole window, not its newest hours (a time of day weighs what it did)."""
    cap = USERS // 3
    out = engagement_gate.judge(store, settings.replace(policy_gate_decisions=cap), BACKWARDS, JUDGED_AT)
    every = out["window"]["every"]
    assert 3 < every <= 6 and not out["window"]["capped"] and USERS // every <= out["decisions"] <= cap
    rows = list(engagement_gate.LogWindow().rows(store, settings, JUDGED_AT, every=every))
    assert len(rows) == out["decisions"]
    span = [r["ts"] for r in rows]
    assert min(span) < T0 + 3600 and max(span) > T0 + USERS * 90.0 - 3600
