"""Decide: guardrails, context, items, propensities, and at most one send under concurrency."""
import threading
from datetime import datetime, timezone

import numpy as np
import pytest
import requests

from bandit_push import popular
from bandit_push.config import OUTCOMES
from bandit_push.policies import POLICIES, ArmView

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()  # a Tuesday, midday UTC
ALWAYS = {"cost": -1e9}  # a policy cost no net value misses: isolates the guardrails


def decide(client, user="u1", now=T0, **extra):
    r = client.post("/v1/decide", json={"user_id": user, "now": now, **extra})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_response_has_the_documented_fields(client):
    d = decide(client)
    assert set(d) >= {"decision_id", "send", "items", "segment", "reason", "propensity", "policy", "experiment"}
    assert d["segment"] == "new" and d["experiment"] is None and d["policy"] == "thompson"
    assert d["context"] == {"recency": ">=168h", "daypart": "afternoon"}


def test_iso_now_equals_epoch_now(make_app):
    c = make_app(**ALWAYS).test_client()
    iso = decide(c, "a", now="2026-01-13T12:00:00Z")
    assert iso["send"] and c.get("/v1/users/a").get_json()["last_push"] == T0


def test_thompson_propensity_is_the_reference_probability(make_app, settings):
    """Each decision's propensity equals the numpy reference on the arm as it stood (sends accumulate)."""
    c = make_app().test_client()
    policy = POLICIES["thompson"](settings)
    sends, expected = 0, []
    for i in range(300):
        zero = np.zeros(len(OUTCOMES))  # one segment, no feedback: the arm, its segment and the space agree
        p = policy.send_probability(ArmView(float(sends), zero, float(sends), None, segment_counts=zero,
                                            space=(float(sends), zero)))
        d = decide(c, f"user{i}")
        assert d["propensity"] == (p if d["send"] else pytest.approx(1 - p, abs=1e-15))
        sends += d["send"]
        expected.append(p)
    var = sum(p * (1 - p) for p in expected)
    assert abs(sends - sum(expected)) < 4 * var ** 0.5


def test_min_gap_and_recency_context(make_app):
    c = make_app(min_gap_hours=4, **ALWAYS).test_client()
    assert decide(c)["send"]
    refused = decide(c, now=T0 + 3600)
    assert (refused["send"], refused["reason"], refused["propensity"]) == (False, "min_gap", 1.0)
    later = decide(c, now=T0 + 5 * 3600)
    assert later["send"] and later["context"]["recency"] == "3h-12h"


def test_daily_cap_is_a_rolling_24_hours(make_app):
    c = make_app(min_gap_hours=0, max_per_day=2, **ALWAYS).test_client()
    assert [decide(c, now=T0 + h * 3600)["send"] for h in (0, 1)] == [True, True]
    capped = decide(c, now=T0 + 2 * 3600)
    assert (capped["send"], capped["reason"]) == (False, "daily_cap")
    assert decide(c, now=T0 + 24 * 3600 + 1)["send"]
    assert c.get(f"/v1/users/u1?now={T0 + 24 * 3600 + 2}").get_json()["pushes_24h"] == 2


def test_quiet_hours_follow_the_users_time_zone(make_app):
    c = make_app(quiet_hours="22:00-08:00", **ALWAYS).test_client()
    assert c.put("/v1/users/ny", json={"timezone": "America/New_York"}).status_code == 201
    night = decide(c, "ny", now=T0 - 9 * 3600)  # 03:00 UTC = 22:00 in New York
    assert (night["send"], night["reason"]) == (False, "quiet_hours")
    c.put("/v1/users/tokyo", json={"timezone": "Asia/Tokyo"})
    assert decide(c, "tokyo", now=T0 - 9 * 3600)["send"]  # 03:00 UTC = 12:00 in Tokyo
    c.put("/v1/users/berlin", json={"timezone": "Europe/Berlin"})
    summer_night = datetime(2026, 7, 1, 20, 30, tzinfo=timezone.utc).timestamp()  # 22:30 CEST
    assert decide(c, "berlin", now=summer_night)["reason"] == "quiet_hours"
    assert decide(c, "berlin", now=summer_night - 3600)["send"]  # 21:30 CEST


def test_quiet_hours_utc_default_and_switch_off(make_app):
    quiet = make_app(quiet_hours="22:00-08:00", **ALWAYS).test_client()
    assert decide(quiet, "a", now=T0 - 9 * 3600)["reason"] == "quiet_hours"
    off = make_app(quiet_hours="off", **ALWAYS).test_client()
    assert decide(off, "b", now=T0 - 9 * 3600)["send"]


def test_opted_out_users_are_never_sent(make_app):
    c = make_app(**ALWAYS).test_client()
    c.put("/v1/users/u1", json={"opted_out": True})
    assert decide(c)["reason"] == "opted_out"
    c.put("/v1/users/u1", json={"opted_out": False})
    assert decide(c)["send"]


def test_holdout_never_sends_and_records_nothing_on_the_arms(make_app, store):
    c = make_app(policy="holdout").test_client()
    answers = [decide(c, f"u{i}", now=T0 + i * 3600) for i in range(20)]
    assert all(not d["send"] and d["reason"] == "holdout" and d["propensity"] == 1.0 for d in answers)
    assert not store.redis.exists(store.keys.arms("default"))


def test_policy_config_errors_name_the_field(settings):
    from bandit_push.errors import InvalidArgument
    from bandit_push.policies import from_config
    assert from_config({"name": "cadence", "cadence_gap_hours": 12}, settings).params == {"cadence_gap_hours": 12.0}
    assert from_config({"name": "thompson"}, settings).params == {"cost": settings.cost, "pool_events": settings.pool_events,
                                                                 "pacing": settings.pacing}
    for config, field in ((None, "variants[1].policy"), ({"name": "nope"}, "variants[1].policy.name"),
                          ({"name": "ucb", "gap": 3}, "variants[1].policy.gap"),
                          ({"name": "thompson", "cost": "high"}, "variants[1].policy.cost"),
                          ({"name": "thompson", "cost": float("nan")}, "variants[1].policy.cost")):
        with pytest.raises(InvalidArgument) as e:
            from_config(config, settings, field="variants[1].policy")
        assert e.value.field == field, (config, e.value.field)


def test_items_are_popular_and_exclude_recent_pushes(make_app, store, settings):
    c = make_app(min_gap_hours=0, **ALWAYS).test_client()
    events = [{"user_id": f"s{i}", "item_id": f"item{j}", "type": "purchase", "ts": T0 - 3600}
              for j in range(8) for i in range(8 - j)]  # item0 most popular
    assert c.post("/v1/events", json={"events": events}).status_code == 200
    popular.refresh(store, settings, now=T0)
    first = decide(c, "buyer", k=3)
    assert [i["item_id"] for i in first["items"]] == ["item0", "item1", "item2"]
    assert first["items"][0]["score"] == pytest.approx(8.0)
    second = decide(c, "buyer", k=3, now=T0 + 3600)
    assert [i["item_id"] for i in second["items"]] == ["item3", "item4", "item5"]
    after = decide(c, "buyer", k=3, now=T0 + 4 * 86400)  # exclusion window (3 days) is over
    assert [i["item_id"] for i in after["items"]] == ["item0", "item1", "item2"]


@pytest.mark.parametrize("changes, sends", [({"min_gap_hours": 4}, 1), ({"min_gap_hours": 0, "max_per_day": 3}, 3)])
def test_concurrent_decides_for_one_user_respect_gap_and_cap(make_app, changes, sends):
    """20 simultaneous HTTP requests for one user at the same instant."""
    from werkzeug.serving import make_server

    app = make_app(**ALWAYS, **changes)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/decide"
    barrier, results = threading.Barrier(20), []

    def one():
        with requests.Session() as s:
            barrier.wait()
            results.append(s.post(url, json={"user_id": "hot", "now": T0}).json())

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    server.shutdown()
    assert len(results) == 20
    assert sum(r["send"] for r in results) == sends
    assert {r["reason"] for r in results if not r["send"]} == {"min_gap" if sends == 1 else "daily_cap"}
    assert app.test_client().get(f"/v1/users/hot?now={T0}").get_json()["pushes_24h"] == sends


@pytest.mark.parametrize("name", ["thompson", "ucb"])
def test_pacing_waits_for_the_recency_bucket_with_the_best_value_per_hour(make_app, store, settings, name):
    """Arms where a push 3-12 h after the last earns less per hour of waiting than one after 24-72 h:
    with pacing a user pushed 5 h ago is refused (reason ``pacing``), one pushed 30 h ago is not; the
    choice equals the numpy reference (pacing_bucket) on the same arms. Without pacing neither is refused."""
    from bandit_push.policies import net_value_posterior, pacing_bucket, pacing_hours
    from bandit_push.policies.base import Prior
    k = len(OUTCOMES)
    dp = "1"  # afternoon: T0 is midday UTC and the users have no time zone
    # clicks per 1000 sends by recency bucket (3h-12h ... >=168h; <3h is unreachable with a 4 h minimum gap):
    # per hour of the bucket's shortest gap, 24h-72h is best (0.2 / 24 h)
    clicks = {1: 30.0, 2: 80.0, 3: 200.0, 4: 300.0, 5: 400.0}
    arms = {f"new|{b}|{dp}": [T0, 1000.0] + [0.0] * k for b in clicks}
    for b, c in clicks.items():
        arms[f"new|{b}|{dp}"][2 + OUTCOMES.index("clicked")] = c
    tot = [T0, 1000.0 * len(clicks)] + [0.0] * k
    tot[2 + OUTCOMES.index("clicked")] = sum(clicks.values())
    arms["new|N"] = arms["*|N"] = tot
    for pacing, refused in ((1.0, {"u5": "pacing", "u30": "policy"}), (0.0, {"u5": "policy", "u30": "policy"})):
        app = make_app(policy=name, pacing=pacing, min_gap_hours=4)
        s = app.extensions["bandit_push"]
        s.store.delete_prefix()
        s.store.redis.hset(s.store.keys.arms("default"), mapping={f: " ".join(map(repr, a)) for f, a in arms.items()})
        for uid, hours in (("u5", 5), ("u30", 30)):
            s.store.redis.hset(s.store.keys.user(uid), mapping={"sg": "new", "lp": repr(T0 - hours * 3600)})
        c = app.test_client()
        for uid, reason in refused.items():
            d = decide(c, uid)
            assert d["reason"] == reason, (name, pacing, uid, d)
            if reason == "pacing":
                assert d["send"] is False and d["propensity"] == 1.0
        # GET /v1/segments says the same: no push below the best-rate bucket (with pacing), in that daypart
        report = c.get(f"/v1/segments?now={T0}").get_json()["segments"]
        ctx = {x["recency"]: x["send_probability"] for seg in report if seg["segment"] == "new"
               for x in seg["contexts"] if x["daypart"] == "afternoon"}
        assert (ctx["3h-12h"] == 0.0 and ctx["12h-24h"] == 0.0) == (pacing > 0) and ctx["24h-72h"] > 0
    # the numpy reference picks the 24h-72h bucket (index 3) from the same arms
    prior = Prior.from_settings(settings)
    n = np.array([arms.get(f"new|{b}|{dp}", [0, 0.0])[1] for b in range(6)])
    counts = np.array([arms[f"new|{b}|{dp}"][2:] if f"new|{b}|{dp}" in arms else [0.0] * k for b in range(6)])
    parents = (np.full(6, tot[1]), np.tile(tot[2:], (6, 1)), np.full(6, tot[1]), np.tile(tot[2:], (6, 1)))
    means, _ = net_value_posterior(n, counts, prior, parents)
    hours = pacing_hours([h * 3600.0 for h in settings.recency_edges_hours], 4 * 3600.0)
    assert pacing_bucket(means, hours, 0.0) == 3
