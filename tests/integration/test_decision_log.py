"""The decision log: what a record carries, its size, and the export (library and real HTTP)."""
from __future__ import annotations

import json
import math
import tracemalloc
import uuid

import pytest
import requests

from bandit_push import decision_log
from bandit_push.config import OUTCOMES
from bandit_push.decide import DecisionEngine
from bandit_push.feedback import FeedbackEvent, record
from bandit_push.keys import key_slot
from bandit_push.policies import phi
from bandit_push.store import Store

pytestmark = pytest.mark.cluster  # (decide runs on a cluster: `pytest --cluster` runs these too)

T0 = 1772366400.0  # 2026-03-01T12:00:00Z
HOUR = 3600.0


def popular(store, n=100):
    """A global popular list, so that records carry k items as in production."""
    store.redis.hset(store.keys.popular_top(), "*", " ".join(f"sku-{i:06d} {100 - i * 0.5:g}" for i in range(n)))


def record_of(store, decision_id):
    return decision_log.decode(store.binary.hgetall(store.keys.decision(decision_id)))


def test_record_carries_the_arm_state_the_policy_used(store, settings):
    # (pacing by the means of unseen loads: v's second push, 5 h after its first, reaches the policy)
    settings = settings.replace(pacing_min_sends=0, snapshot_seconds=0.0)  # (each decide reads the arms as they are)
    engine = DecisionEngine(store, settings)
    first = engine.decide("u1", now=T0)
    rec = record_of(store, first.decision_id)
    assert "l" not in rec  # never pushed before
    mean, var, sends = rec["z"]
    p = phi((mean - engine.policy.params["cost"]) / math.sqrt(var))
    assert float(rec["q"]) == (p if first.send else 1 - p)  # bit for bit: the log reproduces the propensity
    assert sends == 0.0
    # after a push, a decision sees the pushed arm statistics and the time since that push
    assert DecisionEngine(store, settings.replace(policy="cadence")).decide("v", now=T0).send
    later = engine.decide("v", now=T0 + 5 * HOUR)
    rec = record_of(store, later.decision_id)
    assert float(rec["l"]) == 5 * HOUR
    sends_before = 1 + first.send  # u1 and v, both at T0, both in segment new
    assert rec["z"][2] == pytest.approx(sends_before * 2 ** (-5 / settings.half_life_hours))


def test_guardrail_refusal_records_no_arm_but_the_gap(store, settings):
    engine = DecisionEngine(store, settings.replace(policy="cadence", cadence_gap_hours=1.0))
    assert engine.decide("u1", now=T0).send
    refused = engine.decide("u1", now=T0 + HOUR)  # min gap 4 h
    rec = record_of(store, refused.decision_id)
    assert rec["r"] == "min_gap" and "z" not in rec and float(rec["l"]) == HOUR


@pytest.fixture
def short_store(settings):
    """A store under a prefix as short as the production ``bp:``: key length counts in MEMORY USAGE."""
    s = settings.replace(prefix=f"t{uuid.uuid4().hex[:2]}:")
    store = Store.connect(s)
    yield store
    store.delete_prefix()
    store.close()


def test_record_stays_within_400_bytes(short_store):
    """Records as production writes them: 5 items, a channel, a previous push, two feedback events."""
    store, settings = short_store, short_store.settings
    popular(store)
    engine = DecisionEngine(store, settings)
    made = []
    for i in range(600):
        d = engine.decide(f"user-{i % 200:06d}", now=T0 + (i // 200) * 5 * HOUR + i * 7.3, k=5, channel="push")
        made.append(d.decision_id)
        if d.send:
            record(store, settings, [FeedbackEvent(d.decision_id, "delivered", T0 + (i // 200) * 5 * HOUR + i * 7.3 + 60.25),
                                     FeedbackEvent(d.decision_id, "opened", T0 + (i // 200) * 5 * HOUR + i * 7.3 + 900.5)])
    sizes = sorted(store.redis.memory_usage(store.keys.decision(d)) for d in made[200:])  # users pushed before
    mean = sum(sizes) / len(sizes)
    print(f"decision record bytes: mean {mean:.0f}, p99 {sizes[int(0.99 * len(sizes))]}, max {sizes[-1]}")
    assert mean <= 400


def _window(rows):
    return [r["decision_id"] for r in rows]


def test_export_streams_every_decision_in_the_window_exactly_once_in_bounded_memory(store, settings):
    engine = DecisionEngine(store, settings)
    made = []
    n = 20_000
    for i in range(n):
        made.append((engine.decide(f"u{i % 5000}", now=T0 + i * 1.8).decision_id, T0 + i * 1.8))  # 10 hours
    now = T0 + 40 * HOUR
    since, until = T0 + 2 * HOUR + 0.9, T0 + 7 * HOUR + 30.0
    expected = {did for did, t in made if since <= t < until}

    tracemalloc.start()
    count, seen = 0, set()
    for row in decision_log.export(store, settings, since, until, now, batch=37, per_read=3):
        count += 1
        seen.add(row["decision_id"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(expected) == len(seen) and seen == expected
    # the ids alone of the window take ~30 bytes each in `seen`; the export's own working set is a batch
    assert peak < 200 * count
    everything = list(decision_log.export(store, settings, T0 - HOUR, T0 + 11 * HOUR, now))
    assert len(everything) == n and len({r["decision_id"] for r in everything}) == n


def test_export_joins_attributed_outcomes_and_waits_for_the_window(store, settings):
    engine = DecisionEngine(store, settings.replace(policy="cadence"))
    d = engine.decide("u1", now=T0)
    assert d.send
    statuses = record(store, settings, [FeedbackEvent(d.decision_id, "clicked", T0 + 60),
                                        FeedbackEvent(d.decision_id, "converted", T0 + 120, value=19.5),
                                        FeedbackEvent(d.decision_id, "dismissed", T0 + 30 * HOUR)])
    assert statuses == ["accepted", "accepted", "late"]
    not_sent = engine.decide("u2", now=T0 + 10).decision_id
    store.redis.hset(store.keys.user("u2"), "oo", "1")
    refused = engine.decide("u2", now=T0 + 20)
    assert refused.reason == "opted_out"

    inside = T0 + 23 * HOUR  # the 24 h attribution window is still open for all three
    assert list(decision_log.export(store, settings, T0 - HOUR, T0 + HOUR, inside)) == []
    open_rows = list(decision_log.export(store, settings, T0 - HOUR, T0 + HOUR, inside, include_open=True))
    assert [r["closed"] for r in open_rows] == [False, False, False]

    rows = {r["decision_id"]: r for r in decision_log.export(store, settings, T0 - HOUR, T0 + HOUR, T0 + 31 * HOUR)}
    assert set(rows) == {d.decision_id, not_sent, refused.decision_id}
    row = rows[d.decision_id]
    assert row["outcomes"] == {"clicked": {"ts": T0 + 60, "attributed": True},
                               "converted": {"ts": T0 + 120, "attributed": True, "value": 19.5},
                               "dismissed": {"ts": T0 + 30 * HOUR, "attributed": False}}
    w = settings.weights
    assert row["reward"] == w["clicked"] + w["converted"]  # the late dismissal earns nothing
    assert row["sent"] and row["propensity"] == 1.0 and row["policy"] == "cadence" and row["closed"]
    assert row["arm"] is not None and row["seconds_since_push"] is None
    assert rows[refused.decision_id]["arm"] is None and rows[refused.decision_id]["reason"] == "opted_out"
    assert rows[not_sent]["reward"] == 0.0 and set(OUTCOMES) >= set(row["outcomes"])


def test_export_over_real_http_matches_the_documented_schema(live_server, app, store):
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    doc = json.loads(app.extensions["bandit_push_openapi"])
    registry = Registry().with_resource("urn:doc", Resource.from_contents(doc, default_specification=DRAFT4))
    validator = OAS30Validator({"$ref": "urn:doc#/components/schemas/DecisionLogLine"}, registry=registry)
    popular(store)
    for i in range(40):
        d = requests.post(f"{live_server}/v1/decide", json={"user_id": f"u{i % 9}", "now": T0 + i * 600,
                                                            "channel": "push"}).json()
        if d["send"]:
            requests.post(f"{live_server}/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked",
                                                              "ts": T0 + i * 600 + 5})
    resp = requests.get(f"{live_server}/v1/decisions/export",
                        params={"since": T0, "until": "2026-03-01T19:00:00Z", "now": T0 + 48 * HOUR}, stream=True)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in resp.iter_lines() if line]
    assert len(rows) == 40 and len({r["decision_id"] for r in rows}) == 40
    for row in rows:
        validator.validate(row)
    assert sum(r["reward"] for r in rows) == sum(r["sent"] for r in rows)  # a click is worth 1
    for params, field in (({"since": "yesterday"}, "since"), ({"since": T0 + 10, "until": T0}, "until"),
                          ({"include_open": "yes"}, "include_open"), ({"limit": 3}, "limit")):
        bad = requests.get(f"{live_server}/v1/decisions/export", params=params)
        assert bad.status_code == 400 and bad.json()["field"] == field, bad.text


def test_index_key_expires_after_the_records(store, settings):
    engine = DecisionEngine(store, settings)
    d = engine.decide("u1", now=T0)
    hour, slot = int(T0 // 3600), key_slot(store.keys.user("u1"))
    key, marks = store.keys.decision_log(slot, hour), store.keys.decision_log_slots(hour)
    assert store.redis.get(key) == d.decision_id + " " and int(d.decision_id[:4], 16) == slot
    assert key_slot(key) == key_slot(store.keys.decision(d.decision_id)) == slot  # the user's slot
    assert decision_log.slots(store.binary.get(marks)) == [slot]
    assert store.redis.ttl(marks) >= store.redis.ttl(key) > store.redis.ttl(store.keys.decision(d.decision_id))


def test_decisions_of_experiment_variants_are_logged_under_their_own_ids(client, store, settings):
    body = {"name": "log test", "variants": [{"name": "a", "weight": 1, "policy": {"name": "thompson", "cost": -100}},
                                             {"name": "b", "weight": 1, "policy": {"name": "cadence"}}],
            "segments": ["new"]}
    xid = client.post("/v1/experiments", json=body).get_json()["id"]
    assert client.post(f"/v1/experiments/{xid}/start").status_code == 200
    made = {}
    for i in range(30):
        d = client.post("/v1/decide", json={"user_id": f"u{i}", "now": T0 + i}).get_json()
        made[d["decision_id"]] = d
    rows = {r["decision_id"]: r for r in decision_log.export(store, settings, T0, T0 + HOUR, T0 + 30 * HOUR)}
    assert set(rows) == set(made)
    for did, row in rows.items():
        assert row["policy_space"] == did.split(".", 1)[1] and row["policy_space"].startswith(f"x{xid}v")
        assert row["policy"] == made[did]["policy"] and row["propensity"] == made[did]["propensity"]
    assert {r["policy"] for r in rows.values()} == {"thompson", "cadence"}


def test_export_log_command_writes_the_window(store, settings, tmp_path, monkeypatch, capsys):
    from bandit_push import cli

    engine = DecisionEngine(store, settings)
    made = {engine.decide(f"u{i}", now=T0 + i * 60).decision_id for i in range(120)}  # two hours
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    out = tmp_path / "log.ndjson"
    assert cli.main(["export-log", "--since", "2026-03-01T12:00:00Z", "--until", str(T0 + 7200), "--now",
                     str(T0 + 30 * HOUR), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["decision_id"] for r in rows} == made and len(rows) == len(made)
    assert "120 decisions written" in capsys.readouterr().err
    # still inside the attribution window: nothing, unless asked for
    assert cli.main(["export-log", "--since", str(T0), "--now", str(T0 + 3 * HOUR), "--out", str(out), "--quiet"]) == 0
    assert out.read_text() == ""
    assert cli.main(["export-log", "--since", str(T0), "--now", str(T0 + 3 * HOUR), "--out", str(out), "--quiet",
                     "--include-open"]) == 0
    assert len(out.read_text().splitlines()) == 120


def test_a_send_whose_credit_a_crash_cut_is_counted_by_the_sweep_once(store, settings):
    """A send is counted in the arms by a command after the decide call; a process dying between the two leaves it
    uncounted, and the hourly sweep over the decision log sends the credit again: once, however often it runs."""
    from bandit_push.decision_log import resend_send_credits
    from bandit_push.segments import load_arms

    cadence = settings.replace(policy="cadence")

    class Dying(DecisionEngine):
        def _shared_writes(self, decision_id, now, segment, context, load, send, created, logged, hour, slot):
            if decision_id.endswith("0.default"):  # (about one in 16: the process died before these)
                return
            super()._shared_writes(decision_id, now, segment, context, load, send, created, logged, hour, slot)

    engine = Dying(store, cadence)
    sent = [d for d in (engine.decide(f"u{i}", now=T0 + i) for i in range(60)) if d.send]
    cut = [d for d in sent if d.decision_id.endswith("0.default")]
    assert len(sent) == 60 and cut
    assert load_arms(store)["*|N"][1] == pytest.approx(60 - len(cut), rel=1e-4)
    got = decision_log.export(store, settings, since=T0 - 3600, until=T0 + 3600, now=T0 + 7200, include_open=True)
    assert len(list(got)) < 60  # (the cut ones' slots not marked in the hour's bitmap)
    assert resend_send_credits(store, settings, T0 - 3600, T0 + 3600) == len(cut)
    assert load_arms(store)["*|N"][1] == pytest.approx(60, rel=1e-4)
    assert resend_send_credits(store, settings, T0 - 3600, T0 + 3600) == 0
    assert load_arms(store)["*|N"][1] == pytest.approx(60, rel=1e-4)
    marker = store.keys.credited("default", sent[0].decision_id, "send")
    assert 2 * 3600 < store.redis.ttl(marker) <= 3 * 3600  # (outlives the sweep's two hours, not the record's 72)
    # the cut decisions' slots are marked in their hour's bitmap again: the export finds every decision
    got = decision_log.export(store, settings, since=T0 - 3600, until=T0 + 3600, now=T0 + 7200, include_open=True)
    assert sorted(r["decision_id"] for r in got) == sorted(d.decision_id for d in sent)
