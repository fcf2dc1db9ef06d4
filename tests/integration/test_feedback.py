"""Feedback: count-once, attribution window, refusals, and arm statistics with decay."""
import threading
from datetime import datetime, timezone

import pytest
import requests

from bandit_push.config import OUTCOMES
from bandit_push.schema import XREC
from bandit_push.segments import load_arms

pytestmark = pytest.mark.cluster  # (decide runs on a cluster: `pytest --cluster` runs these too)

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()
HL = 14 * 24 * 3600.0  # the default half-life


@pytest.fixture
def always(make_app):
    return make_app(cost=-1e9).test_client()


def sent_decision(client, user="u1", now=T0):
    d = client.post("/v1/decide", json={"user_id": user, "now": now}).get_json()
    assert d["send"]
    return d


def arm(store, field):
    t, n, *counts = load_arms(store)[field]
    return t, n, dict(zip(OUTCOMES, counts))


def keys_snapshot(store):
    return {k: store.redis.dump(k) for k in store.redis.scan_iter(match=f"{store.settings.prefix}*")}


def test_retried_feedback_counts_once(always, store):
    d = sent_decision(always)
    body = {"decision_id": d["decision_id"], "event": "clicked", "ts": T0 + 60}
    first, again = always.post("/v1/feedback", json=body), always.post("/v1/feedback", json=body)
    assert first.get_json()["status"] == "accepted" and again.get_json()["status"] == "duplicate"
    assert arm(store, "new|5|1")[2]["clicked"] == 1


def test_concurrent_duplicates_count_once(make_app, store):
    from werkzeug.serving import make_server

    app = make_app(cost=-1e9)
    d = sent_decision(app.test_client())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/feedback"
    barrier, statuses = threading.Barrier(16), []

    def one():
        barrier.wait()
        statuses.append(requests.post(url, json={"decision_id": d["decision_id"], "event": "converted",
                                                 "ts": T0 + 5, "value": 12.5}).json()["status"])

    threads = [threading.Thread(target=one) for _ in range(16)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    server.shutdown()
    assert sorted(statuses) == ["accepted"] + ["duplicate"] * 15
    assert arm(store, "new|5|1")[2]["converted"] == 1


def test_unknown_decision_is_404_and_changes_nothing(always, store):
    sent_decision(always)
    before = keys_snapshot(store)
    for did in ("0123456789abcdef0123.default", "nonsense", "0123456789abcdef0123.other"):
        r = always.post("/v1/feedback", json={"decision_id": did, "event": "clicked", "ts": T0})
        assert r.status_code == 404 and r.get_json()["field"] == "decision_id"
    assert keys_snapshot(store) == before


def test_forged_space_in_decision_id_is_unknown(always, store):
    d = sent_decision(always)
    forged = d["decision_id"].rsplit(".", 1)[0] + ".victim"
    r = always.post("/v1/feedback", json={"decision_id": forged, "event": "clicked", "ts": T0})
    assert r.status_code == 404


def test_feedback_on_no_send_is_refused(make_app, store):
    c = make_app(cost=1e9).test_client()  # never sends
    d = c.post("/v1/decide", json={"user_id": "u", "now": T0}).get_json()
    assert d["send"] is False
    r = c.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked", "ts": T0})
    assert r.status_code == 409 and r.get_json()["error"] == "decision_not_sent"
    assert store.redis.hgetall(store.keys.arms("default")) == {}


def test_late_feedback_is_stored_not_credited(always, store):
    d = sent_decision(always)
    r = always.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked",
                                          "ts": T0 + 24 * 3600 + 1})
    assert r.get_json()["status"] == "late"
    assert arm(store, "new|5|1")[2]["clicked"] == 0
    assert store.redis.hget(store.keys.decision(d["decision_id"]), "e:clicked").endswith("late")
    again = always.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked", "ts": T0 + 1})
    assert again.get_json()["status"] == "duplicate"


def test_arm_statistics_equal_hand_computed_decay(always, store):
    """Sends at T0 and T0 + one half-life, outcomes credited at their decisions' times."""
    a = sent_decision(always, "a", T0)
    b = sent_decision(always, "b", T0 + HL)  # same arm: segment new, never pushed, same local hour
    post = lambda d, e, ts: always.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": e, "ts": ts})
    post(b, "converted", T0 + HL + 60)
    post(a, "clicked", T0 + 60)  # processed after b's send, credited at a's time: weighs half, like a's send
    post(a, "dismissed", T0 + 3600)
    t, n, c = arm(store, "new|5|1")
    assert t == T0 + HL
    assert n == pytest.approx(1.5, rel=1e-12)
    assert (c["clicked"], c["dismissed"], c["converted"]) == (pytest.approx(0.5), pytest.approx(0.5), 1.0)
    seg = always.get(f"/v1/segments?now={T0 + 2 * HL}").get_json()["segments"][0]
    ctx = seg["contexts"][0]
    assert (seg["segment"], ctx["recency"], ctx["daypart"]) == ("new", ">=168h", "afternoon")
    assert ctx["sends"] == pytest.approx(0.75) and ctx["outcomes"]["converted"] == pytest.approx(0.5)
    lo, mean, hi = ctx["net_value"]["lo90"], ctx["net_value"]["mean"], ctx["net_value"]["hi90"]
    assert lo < mean < hi


def test_unsubscribe_opts_the_user_out(always, store):
    d = sent_decision(always, "leaver")
    r = always.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "unsubscribed", "ts": T0 + 9})
    assert r.get_json()["status"] == "accepted"
    assert always.get("/v1/users/leaver").get_json()["opted_out"] is True
    nxt = always.post("/v1/decide", json={"user_id": "leaver", "now": T0 + 7 * 86400}).get_json()
    assert (nxt["send"], nxt["reason"]) == (False, "opted_out")


def test_batch_reports_each_status(always):
    d = sent_decision(always)
    body = {"events": [{"decision_id": d["decision_id"], "event": "opened", "ts": T0 + 1},
                       {"decision_id": d["decision_id"], "event": "opened", "ts": T0 + 2},
                       {"decision_id": "ffffffffffffffffffff.default", "event": "opened", "ts": T0 + 3},
                       {"decision_id": d["decision_id"], "event": "clicked", "ts": T0 + 2 * 86400}]}
    r = always.post("/v1/feedback", json=body).get_json()
    assert r["statuses"] == ["accepted", "duplicate", "unknown", "late"]
    assert (r["accepted"], r["duplicate"], r["unknown"], r["late"]) == (1, 1, 1, 1)


def test_a_credit_cut_between_the_two_commands_completes_once_on_retry(always, store):
    """A crash after the record's command (the event marked) and before the arms' and the experiment's: the
    client's retry answers duplicate and sends the credit again, which counts once however often it is retried."""
    body = {"name": "cut", "variants": [{"name": n, "weight": 1, "policy": {"name": "thompson", "cost": -100}}
                                        for n in ("a", "b")]}
    xid = always.post("/v1/experiments", json=body).get_json()["id"]
    assert always.post(f"/v1/experiments/{xid}/start").status_code == 200
    d = sent_decision(always, "cut-user")
    did, space = d["decision_id"], d["decision_id"].split(".", 1)[1]
    assert space.startswith(f"x{xid}v")
    first = store.feedback_script(keys=[store.keys.decision(did)],
                                  args=["clicked", repr(T0 + 60), 86400.0, "", space])  # ... and the process dies
    assert first[0] == "accepted" and len(first) == 7
    clicks = lambda: load_arms(store, space).get("new|5|1", [0, 0] + [0] * len(OUTCOMES))[2 + OUTCOMES.index("clicked")]
    counters = lambda: store.redis.hget(store.keys.experiment_users(xid, "cut-user"), "cut-user").split()
    assert clicks() == 0 and counters()[XREC["clicks"] - 1] == "0"
    for _ in range(3):
        r = always.post("/v1/feedback", json={"decision_id": did, "event": "clicked", "ts": T0 + 60})
        assert r.get_json()["status"] == "duplicate"
        assert clicks() == 1 and counters()[XREC["clicks"] - 1] == "1"
        assert float(counters()[XREC["net_value"] - 1]) == store.settings.weights["clicked"]
    marker = store.keys.credited(space, did, "clicked")
    assert 0 < store.redis.ttl(marker) <= store.settings.decision_ttl_hours * 3600


def test_a_retried_feedback_under_an_experiment_counts_once(always, store):
    body = {"name": "retry", "variants": [{"name": n, "weight": 1, "policy": {"name": "thompson", "cost": -100}}
                                          for n in ("a", "b")]}
    xid = always.post("/v1/experiments", json=body).get_json()["id"]
    assert always.post(f"/v1/experiments/{xid}/start").status_code == 200
    d = sent_decision(always, "retrier")
    space = d["decision_id"].split(".", 1)[1]
    ev = {"decision_id": d["decision_id"], "event": "converted", "ts": T0 + 5, "value": 3.0}
    statuses = [always.post("/v1/feedback", json=ev).get_json()["status"] for _ in range(3)]
    assert statuses == ["accepted", "duplicate", "duplicate"]
    assert load_arms(store, space)["new|5|1"][2 + OUTCOMES.index("converted")] == 1
    assert load_arms(store, space)["*|N"][2 + OUTCOMES.index("converted")] == 1
    counters = store.redis.hget(store.keys.experiment_users(xid, "retrier"), "retrier").split()
    assert counters[XREC["conversions"] - 1] == "1"


def test_a_late_report_is_not_credited_by_its_retries(always, store):
    d = sent_decision(always)
    late = {"decision_id": d["decision_id"], "event": "opened", "ts": T0 + 2 * 86400}
    assert [always.post("/v1/feedback", json=late).get_json()["status"] for _ in range(2)] == ["late", "duplicate"]
    assert arm(store, "new|5|1")[2]["opened"] == 0
    assert store.redis.exists(store.keys.credited("default", d["decision_id"], "opened")) == 0
