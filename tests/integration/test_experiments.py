"""Experiments against a real Redis: lifecycle and validation over HTTP, sticky assignment,
per-variant learning, holdout, exposure logging, per-user metrics, overlap and registry reloads."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bandit_push import experiments
from bandit_push.decide import DecisionEngine
from bandit_push.experiments import assign
from bandit_push.segments import load_arms

pytestmark = pytest.mark.cluster  # (decide runs on a cluster: `pytest --cluster` runs these too)

T0 = 1790000000.0  # 2026-09-21


def definition(*variants, segments=None, name="cost test"):
    body = {"name": name, "variants": [
        {"name": n, "weight": w, "policy": p} for n, w, p in (variants or (
            ("control", 1, {"name": "thompson"}), ("cheap", 1, {"name": "thompson", "cost": 0.5})))]}
    if segments is not None:
        body["segments"] = segments
    return body


def started(client, body):
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.get_json()
    xid = r.get_json()["id"]
    assert client.post(f"/v1/experiments/{xid}/start").status_code == 200
    return xid


def record(store, xid, user):
    raw = store.redis.hget(store.keys.experiment_users(xid, user), user)
    return None if raw is None else [float(x) for x in raw.split()]


def test_lifecycle_and_frozen_definition(client):
    r = client.post("/v1/experiments", json=definition())
    assert r.status_code == 201
    x = r.get_json()
    assert x["status"] == "draft" and x["variants"][0]["name"] == "control" and x["segments"] is None
    xid = x["id"]
    # a draft may be replaced
    changed = definition(("control", 1, {"name": "thompson"}), ("b", 3, {"name": "ucb", "ucb_c": 0.5}))
    r = client.put(f"/v1/experiments/{xid}", json=changed)
    assert r.status_code == 200 and r.get_json()["variants"][1] == {
        "name": "b", "weight": 3.0, "policy": {"name": "ucb", "ucb_c": 0.5}, "guardrails": {}}
    assert client.post(f"/v1/experiments/{xid}/start").get_json()["status"] == "running"
    assert client.post(f"/v1/experiments/{xid}/start").status_code == 409
    # once started, variants and weights cannot change
    r = client.put(f"/v1/experiments/{xid}", json=definition())
    assert r.status_code == 409 and r.get_json()["error"] == "conflict"
    assert client.get(f"/v1/experiments/{xid}").get_json()["variants"][1]["weight"] == 3.0
    assert client.post(f"/v1/experiments/{xid}/pause").get_json()["status"] == "paused"
    assert client.post(f"/v1/experiments/{xid}/pause").status_code == 409
    assert client.post(f"/v1/experiments/{xid}/start").get_json()["status"] == "running"
    stopped = client.post(f"/v1/experiments/{xid}/stop").get_json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"] >= stopped["started_at"]
    assert client.post(f"/v1/experiments/{xid}/start").status_code == 409
    listed = client.get("/v1/experiments").get_json()["experiments"]
    assert [e["id"] for e in listed] == [xid]
    assert client.get("/v1/experiments/999").status_code == 404
    assert client.get("/v1/experiments/abc").get_json()["field"] == "experiment_id"


@pytest.mark.parametrize("change, field", [
    (lambda b: b.pop("name"), "name"),
    (lambda b: b["variants"].pop(), "variants"),
    (lambda b: b["variants"][1].update(name="control"), "variants[1].name"),
    (lambda b: b["variants"][1].update(name="has space"), "variants[1].name"),
    (lambda b: b["variants"][1].update(weight=0), "variants[1].weight"),
    (lambda b: b["variants"][1].update(weight="1"), "variants[1].weight"),
    (lambda b: b["variants"][1].pop("policy"), "variants[1].policy"),
    (lambda b: b["variants"][1].update(policy={"name": "greedy"}), "variants[1].policy.name"),
    (lambda b: b["variants"][1].update(policy={"name": "thompson", "cost": "high"}), "variants[1].policy.cost"),
    (lambda b: b["variants"][1].update(policy={"name": "thompson", "ucb_c": 1}), "variants[1].policy.ucb_c"),
    (lambda b: b["variants"][1].update(policy={"name": "ucb", "ucb_c": -1}), "variants[1].policy.ucb_c"),
    (lambda b: b["variants"][1].update(policy={"name": "cadence", "cadence_gap_hours": 0}),
     "variants[1].policy.cadence_gap_hours"),
    (lambda b: b["variants"][0].update(guardrails={"max_per_day": 0}), "variants[0].guardrails.max_per_day"),
    (lambda b: b["variants"][1].update(guardrails={"quiet_hours": "late"}), "variants[1].guardrails.quiet_hours"),
    (lambda b: b["variants"][1].update(guardrails={"volume": 1}), "variants[1].guardrails.volume"),
    (lambda b: b["variants"][1].update(colour="red"), "variants[1].colour"),
    (lambda b: b.update(segments=["s1", "s{2}"]), "segments[1]"),
    (lambda b: b.update(segments=[]), "segments"),
    (lambda b: b.update(owner="me"), "owner"),
])
def test_invalid_definitions_are_refused_naming_the_field(client, store, change, field):
    body = definition()
    change(body)
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field
    assert field.rsplit(".", 1)[-1].split("[")[0] in r.get_json()["message"]
    assert client.get("/v1/experiments").get_json()["experiments"] == []  # nothing written


def test_assignment_is_deterministic_and_uniform_by_weight():
    users = [f"user-{i}" for i in range(20000)]
    for weights in ([1, 1], [1, 2, 1]):
        got = np.array([assign("salt-a", u, weights) for u in users])
        assert np.array_equal(got, [assign("salt-a", u, weights) for u in users])  # sticky
        observed = np.bincount(got, minlength=len(weights))
        expected = np.array(weights) / sum(weights) * len(users)
        assert sps.chisquare(observed, expected).pvalue > 0.001, observed
    # another salt reshuffles users independently of the first (a 2x2 table without association)
    a = np.array([assign("salt-a", u, [1, 1]) for u in users])
    b = np.array([assign("salt-b", u, [1, 1]) for u in users])
    table = np.array([[np.sum((a == i) & (b == j)) for j in (0, 1)] for i in (0, 1)])
    assert sps.chi2_contingency(table).pvalue > 0.001


def test_decide_uses_the_assigned_variant_and_logs_the_first_exposure_once(client, store):
    # (pacing off: the second push, 5 h after the first, is beyond what a segment without data may try)
    xid = started(client, definition(("control", 1, {"name": "thompson", "cost": -100, "pacing": 0}),
                                     ("holdout", 1, {"name": "holdout"})))
    x = experiments.get(store, xid)
    seen = set()
    for i in range(40):
        user = f"u{i}"
        first = client.post("/v1/decide", json={"user_id": user, "now": T0}).get_json()
        again = client.post("/v1/decide", json={"user_id": user, "now": T0 + 5 * 3600}).get_json()
        variant = x.variants[x.assign(user)].name
        for d in (first, again):
            assert d["experiment"] == {"id": xid, "name": "cost test", "variant": variant}
            assert d["decision_id"].endswith(f".x{xid}v{x.assign(user)}")
            if variant == "holdout":
                assert d["send"] is False and d["reason"] == "holdout" and d["policy"] == "holdout"
            else:
                assert d["send"] is True and d["policy"] == "thompson"
        rec = record(store, xid, user)
        assert rec[0] == x.assign(user) and rec[1] == T0  # exposure logged at the first decide only
        assert rec[2] == (2 if variant == "control" else 0)  # sends counted
        seen.add(variant)
    assert seen == {"control", "holdout"}
    assert len(experiments.user_counters(store, xid)) == 40


def test_variants_learn_independently(client, store):
    xid = started(client, definition(("a", 1, {"name": "thompson", "cost": -100}),
                                     ("b", 1, {"name": "thompson", "cost": -100})))
    x = experiments.get(store, xid)
    user = next(f"u{i}" for i in range(100) if x.assign(f"u{i}") == 1)
    d = client.post("/v1/decide", json={"user_id": user, "now": T0}).get_json()
    assert d["send"] and d["experiment"]["variant"] == "b"
    arms = {s: load_arms(store, s) for s in ("default", f"x{xid}v0", f"x{xid}v1")}
    assert arms["default"] == {} and arms[f"x{xid}v0"] == {} and arms[f"x{xid}v1"]
    r = client.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked", "ts": T0 + 60})
    assert r.status_code == 200
    after = {s: load_arms(store, s) for s in arms}
    assert after["default"] == {} and after[f"x{xid}v0"] == {}
    field = next(f for f in after[f"x{xid}v1"] if not f.endswith("|N"))
    assert after[f"x{xid}v1"][field] != arms[f"x{xid}v1"][field]  # the click was credited to b's arm only
    # ... and counted in the user's experiment counters: a click and its weight in the net value
    rec = record(store, xid, user)
    assert rec[3] == 1 and rec[6] == pytest.approx(store.settings.weights["clicked"])
    client.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "unsubscribed", "ts": T0 + 90})
    rec = record(store, xid, user)
    assert rec[5] == 1 and rec[6] == pytest.approx(
        store.settings.weights["clicked"] + store.settings.weights["unsubscribed"])


def test_organic_events_count_after_exposure_only(client, store):
    xid = started(client, definition())
    client.post("/v1/events", json={"user_id": "u1", "type": "purchase", "item_id": "i1", "ts": T0 - 10})
    client.post("/v1/decide", json={"user_id": "u1", "now": T0})
    client.post("/v1/events", json={"events": [
        {"user_id": "u1", "type": "view", "item_id": "i1", "ts": T0 + 10},
        {"user_id": "u1", "type": "purchase", "item_id": "i1", "ts": T0 + 20, "value": 9.5},
        {"user_id": "u2", "type": "view", "item_id": "i1", "ts": T0 + 20}]})
    rec = record(store, xid, "u1")
    assert rec[7:9] == [2, 1]
    assert record(store, xid, "u2") is None


def test_segments_and_overlap(client, store):
    only_s1 = started(client, definition(segments=["s1"], name="s1 only"))
    everyone = started(client, definition(name="everyone"))
    store.redis.hset(store.keys.user("in-s1"), "sg", "s1")
    d = client.post("/v1/decide", json={"user_id": "in-s1", "now": T0}).get_json()
    assert d["experiment"]["id"] == only_s1  # the older experiment covering the segment wins
    d = client.post("/v1/decide", json={"user_id": "fresh", "now": T0}).get_json()
    assert d["experiment"]["id"] == everyone  # segment new: only the unrestricted one covers it
    # once exposed, a user stays in that experiment when they move into an older one's segment
    store.redis.hset(store.keys.user("fresh"), "sg", "s1")
    d = client.post("/v1/decide", json={"user_id": "fresh", "now": T0 + 6 * 3600}).get_json()
    assert d["experiment"]["id"] == everyone
    client.post(f"/v1/experiments/{everyone}/stop")
    d = client.post("/v1/decide", json={"user_id": "other", "now": T0}).get_json()
    assert d["experiment"] is None and d["decision_id"].endswith(".default")


def test_every_process_picks_up_a_change_with_its_next_snapshot(make_app, store):
    """A start or pause made by another process reaches a process with its next shared snapshot (every
    ``snapshot_seconds``, here of the decisions' clock); the process that made it sees it at its next decide."""
    a = make_app(snapshot_seconds=60.0, snapshot_clock="decisions").test_client()
    b = make_app().test_client()
    assert a.post("/v1/decide", json={"user_id": "u1", "now": T0}).get_json()["experiment"] is None
    xid = started(b, definition())
    assert b.post("/v1/decide", json={"user_id": "u2", "now": T0}).get_json()["experiment"]["id"] == xid
    assert a.post("/v1/decide", json={"user_id": "u1", "now": T0 + 30}).get_json()["experiment"] is None
    assert a.post("/v1/decide", json={"user_id": "u1", "now": T0 + 60}).get_json()["experiment"]["id"] == xid
    b.post(f"/v1/experiments/{xid}/pause")
    assert a.post("/v1/decide", json={"user_id": "u1", "now": T0 + 90}).get_json()["experiment"]["id"] == xid
    assert a.post("/v1/decide", json={"user_id": "u1", "now": T0 + 120}).get_json()["experiment"] is None


def test_engine_keeps_one_round_trip_while_the_registry_is_unchanged(store, settings):
    """A start reaches an engine with its next shared snapshot, before the script is called; the registry is read
    again only when its version moved, and each decide is one script call (on a cluster, once each shard has been
    sent the config and the snapshot it asks for)."""
    calls = []

    class Counting(DecisionEngine):
        def _call(self, keys, args):
            out = super()._call(keys, args)
            calls.append(out[0] if out[0] in ("config", "snapshot", "names") else "decided")
            return out

    engine = Counting(store, settings.replace(snapshot_seconds=3600.0))
    experiments.transition(store, experiments.create(store, settings, definition()).id, "start")
    assert engine.decide("u0", now=T0).experiment is not None
    assert calls == ["decided"]  # the snapshot saw the version move and reloaded the registry first
    version = engine.registry.snapshot
    for i in range(20):
        assert engine.decide(f"u{i}", now=T0).experiment is not None
    assert engine.registry.snapshot is version  # no reload
    assert calls.count("decided") == 21 and len(calls) - 21 <= 2 * (len(store.primaries()) - 1), calls


def test_variant_guardrail_overrides_apply_to_that_variant_only(client, store):
    body = definition(("a", 1, {"name": "thompson", "cost": -100}), ("b", 1, {"name": "cadence"}))
    body["variants"][0]["guardrails"] = {"min_gap_hours": 0, "max_per_day": 1}
    body["variants"][1]["guardrails"] = {"quiet_hours": "00:00-23:59"}
    xid = started(client, body)
    x = experiments.get(store, xid)
    reasons = {}
    for i in range(30):
        user = f"u{i}"
        first = client.post("/v1/decide", json={"user_id": user, "now": T0}).get_json()
        second = client.post("/v1/decide", json={"user_id": user, "now": T0 + 60}).get_json()
        reasons.setdefault(x.variants[x.assign(user)].name, set()).add(
            (first["send"], first["reason"], second["send"], second["reason"]))
    # a: no minimum gap, one push a day; b: always quiet (the service's quiet hours are off in tests)
    assert reasons == {"a": {(True, "policy", False, "daily_cap")}, "b": {(False, "quiet_hours", False, "quiet_hours")}}
    # outside the experiment, the service's own guardrails: a 4 h minimum gap
    client.post(f"/v1/experiments/{xid}/stop")
    first = client.post("/v1/decide", json={"user_id": "outside", "now": T0}).get_json()
    assert first["experiment"] is None


def test_events_through_a_process_with_a_stale_registry_still_count(make_app, store):
    a, b = make_app().test_client(), make_app().test_client()
    assert a.post("/v1/events", json={"user_id": "u1", "type": "app_open", "ts": T0 - 60}).status_code == 200
    xid = started(b, definition())  # a's cached registry does not know this experiment yet
    b.post("/v1/decide", json={"user_id": "u1", "now": T0})
    r = a.post("/v1/events", json={"events": [{"user_id": "u1", "type": "app_open", "ts": T0 + 60, "event_id": "e1"},
                                              {"user_id": "u1", "type": "app_open", "ts": T0 + 60, "event_id": "e1"}]})
    assert r.get_json() == {"accepted": 1, "duplicate": 1}  # rerun after the reload: still counted once
    assert record(store, xid, "u1")[7] == 1
    assert store.redis.hget(store.keys.user("u1"), "f:app_open") == "2"
