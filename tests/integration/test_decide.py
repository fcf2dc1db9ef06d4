"""Decide: guardrails, context, items, propensities, and at most one send under concurrency."""
from datetime import datetime, timezone

import numpy as np
import pytest

from bandit_push import popular
from bandit_push.config import OUTCOMES
from bandit_push.policies import POLICIES, ArmView
from concurrency import concurrent_decides
from stored import packed_arm

pytestmark = pytest.mark.cluster  # (decide runs on a cluster: `pytest --cluster` runs these too)

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()  # a Tuesday, midday UTC
ALWAYS = {"cost": -1e9, "pacing_min_sends": 0}  # no net value misses this cost, at any load: isolates the guardrails


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


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_thompson_propensity_is_the_reference_probability(make_app, settings, scale):
    """Each decision's propensity equals the numpy reference on the arm as it stood (sends accumulate), with the
    posterior's sd as it is and scaled down (thompson_scale)."""
    c = make_app(thompson_scale=scale, snapshot_seconds=0.0).test_client()  # (each decide on the arms as they stood)
    policy = POLICIES["thompson"](settings.replace(thompson_scale=scale))
    sends, expected = 0, []
    for i in range(300):
        zero = np.zeros(len(OUTCOMES))  # one segment, no feedback: the arm, its segment and the space agree
        # a new user before the engagement model's first fit: multiplier mean 1, variance 1 / kappa = 1 / 4
        p = policy.send_probability(ArmView(float(sends), zero, float(sends), None, segment_counts=zero,
                                            space=(float(sends), zero), theta=(1.0, 0.25)))
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
                                                                 "pacing": settings.pacing,
                                                                 "pacing_caution": settings.pacing_caution,
                                                                 "pacing_explore": settings.pacing_explore,
                                                                 "pacing_min_sends": settings.pacing_min_sends,
                                                                 "thompson_scale": settings.thompson_scale}
    for config, field in ((None, "variants[1].policy"), ({"name": "nope"}, "variants[1].policy.name"),
                          ({"name": "ucb", "gap": 3}, "variants[1].policy.gap"),
                          ({"name": "thompson", "cost": "high"}, "variants[1].policy.cost"),
                          ({"name": "thompson", "cost": float("nan")}, "variants[1].policy.cost"),
                          ({"name": "thompson", "thompson_scale": 0}, "variants[1].policy.thompson_scale"),
                          ({"name": "ucb", "thompson_scale": 0.5}, "variants[1].policy.thompson_scale")):
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
    app = make_app(**ALWAYS, **changes)
    results = concurrent_decides(app, {"user_id": "hot", "now": T0})
    assert len(results) == 20
    assert sum(r["send"] for r in results) == sends
    assert {r["reason"] for r in results if not r["send"]} == {"min_gap" if sends == 1 else "daily_cap"}
    assert app.test_client().get(f"/v1/users/hot?now={T0}").get_json()["pushes_24h"] == sends


@pytest.mark.parametrize("name", ["thompson", "ucb"])
def test_pacing_waits_while_the_load_is_above_the_best_steady_one(make_app, store, settings, name):
    """Load arms where a cadence held at one push in 72 h earns most per window (clicks fall with the load):
    with pacing a user with two pushes in the last 72 h is refused (reason ``pacing``), one with a single push
    and one never pushed are not; the choice equals the numpy reference (pacing_load) on the same arms, and
    GET /v1/segments reports it. A push's feedback credits the load arm it was sent at. Without pacing nobody is
    refused and no load arm moves."""
    from bandit_push.policies import net_value_posterior, pacing_load
    from bandit_push.policies.base import Prior
    from bandit_push.segments import load_arms
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    # clicks per 1000 sends at each load ('L': not pushed within a week, then 0, 1, ... pushes in 72 h): per
    # 72 h, one push earns 0.09 (L), 0.09 (0), 2 x 0.08 (1), 3 x 0.03 (2), ...: load 1 is best
    clicks = {"L": 90.0, 0: 90.0, 1: 80.0, 2: 30.0, 3: 20.0, 4: 10.0, 5: 10.0, 6: 10.0}
    arms = {f"new|F{j}": [T0, 1000.0] + [0.0] * k for j in clicks}
    for j, c in clicks.items():
        arms[f"new|F{j}"][clicked] = c
    for b in range(6):  # every context pushes (a strongly positive arm), so pacing is what refuses
        arms[f"new|{b}|1"] = [T0, 1000.0] + [0.0] * k
        arms[f"new|{b}|1"][clicked] = 500.0
    tot = [T0, 14000.0] + [0.0] * k
    tot[clicked] = sum(clicks.values()) + 3000.0
    arms["new|N"] = arms["*|N"] = tot
    # the numpy reference on the segment's pooled prior picks load 1
    prior = Prior.from_settings(settings)
    order = ["L"] + list(range(settings.pacing_loads))
    n = np.array([arms[f"new|F{j}"][1] for j in order])
    counts = np.array([arms[f"new|F{j}"][2:] for j in order])
    parents = (np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)),
               np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)))
    means, _ = net_value_posterior(n, counts, prior, parents)
    assert pacing_load(means, 0.0, settings.pacing_window_hours, settings.recency_edges_hours[-1]) == 1
    users = {"u1": [30], "u2": [30, 10], "never": []}  # hours ago of each user's pushes
    for pacing, refused in ((1.0, {"u1": "policy", "u2": "pacing", "never": "policy"}),
                            (0.0, {"u1": "policy", "u2": "policy", "never": "policy"})):
        app = make_app(policy=name, pacing=pacing, min_gap_hours=4)
        s = app.extensions["bandit_push"]
        s.store.delete_prefix()
        s.store.binary.hset(s.store.keys.arms("default"), mapping={f: packed_arm(a) for f, a in arms.items()})
        for uid, ago in users.items():
            s.store.redis.hset(s.store.keys.user(uid), mapping={"sg": "new"} | (
                {"lp": repr(T0 - ago[-1] * 3600)} if ago else {}))
            if ago:
                s.store.redis.set(s.store.keys.user_pushes(uid), " ".join(repr(T0 - h * 3600) for h in ago) + "\n")
        c = app.test_client()
        got = {uid: decide(c, uid) for uid in users}
        for uid, reason in refused.items():
            assert got[uid]["reason"] == reason, (name, pacing, uid, got[uid])
            assert got[uid]["send"] == (reason == "policy")
            if reason == "pacing":
                assert got[uid]["propensity"] == 1.0
        r = c.post("/v1/feedback", json={"decision_id": got["u1"]["decision_id"], "event": "clicked", "ts": T0 + 60})
        assert r.status_code == 200 and r.get_json()["accepted"] == 1
        after = load_arms(s.store)
        # the send and its click at load 1 (u1), the never-pushed user's send at 'L'; nothing else
        moved = {f for f in arms if f.startswith("new|F") and after[f] != arms[f]}
        assert moved == ({"new|F1", "new|FL"} if pacing else set()), moved
        if pacing:
            assert after["new|F1"][1] == 1001.0 and after["new|F1"][clicked] == 81.0
        report = c.get(f"/v1/segments?now={T0}").get_json()["segments"]
        new = next(seg for seg in report if seg["segment"] == "new")
        if pacing:
            assert new["max_load"] == "1 in 72h" and [x["load"] for x in new["loads"]][:3] == [
                "none in 168h", "0 in 72h", "1 in 72h"]
        else:
            assert "loads" not in new and "max_load" not in new


def test_pacing_caution_ranks_a_thin_load_by_its_lower_bound(make_app, settings):
    """A load arm seen 20 times looks best by its posterior mean (its pooled prior is generous), a well-observed
    lower load is best by mean minus ``pacing_caution`` sds: a user at the thin load is served without caution
    and refused (reason ``pacing``) with it, as the numpy reference chooses on the same arms, and GET /v1/segments
    reports the same ``max_load``."""
    from bandit_push.policies import net_value_posterior, pacing_choice
    from bandit_push.policies.base import Prior
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    sends = {"L": 1000.0, 0: 1000.0, 1: 1000.0, 2: 20.0, 3: 1000.0, 4: 1000.0, 5: 1000.0, 6: 1000.0}
    clicks = {"L": 90.0, 0: 90.0, 1: 80.0, 2: 0.0, 3: 20.0, 4: 10.0, 5: 10.0, 6: 10.0}
    arms = {f"new|F{j}": [T0, sends[j]] + [0.0] * k for j in sends}
    for j, c in clicks.items():
        arms[f"new|F{j}"][clicked] = c
    for b in range(6):
        arms[f"new|{b}|1"] = [T0, 1000.0] + [0.0] * k
        arms[f"new|{b}|1"][clicked] = 500.0
    tot = [T0, 13020.0] + [0.0] * k
    tot[clicked] = sum(clicks.values()) + 3000.0
    arms["new|N"] = arms["*|N"] = tot
    order = ["L"] + list(range(settings.pacing_loads))
    n = np.array([arms[f"new|F{j}"][1] for j in order])
    counts = np.array([arms[f"new|F{j}"][2:] for j in order])
    parents = (np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)),
               np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)))
    means, var = net_value_posterior(n, counts, Prior.from_settings(settings), parents)
    caution = 2.0
    choice = {c: pacing_choice(means, var, 0.0, settings.pacing_window_hours,
                               settings.recency_edges_hours[-1], c) for c in (0.0, caution)}
    assert choice == {0.0: 2, caution: 1}, (means, np.sqrt(var))
    for c, reason in ((0.0, "policy"), (caution, "pacing")):
        app = make_app(pacing_caution=c, min_gap_hours=4)
        s = app.extensions["bandit_push"]
        s.store.delete_prefix()
        s.store.binary.hset(s.store.keys.arms("default"), mapping={f: packed_arm(a) for f, a in arms.items()})
        s.store.redis.hset(s.store.keys.user("u2"), mapping={"sg": "new", "lp": repr(T0 - 10 * 3600)})
        s.store.redis.set(s.store.keys.user_pushes("u2"), f"{T0 - 30 * 3600!r} {T0 - 10 * 3600!r}\n")
        c_ = app.test_client()
        assert decide(c_, "u2")["reason"] == reason, c
        new = next(x for x in c_.get(f"/v1/segments?now={T0}").get_json()["segments"] if x["segment"] == "new")
        assert new["max_load"] == f"{choice[c]} in 72h"


def test_pacing_steps_one_load_above_what_the_segment_has_seen(make_app, settings):
    """A segment seen only at loads 'L', 0 and 1, where pushes pay: its unseen loads take the generous pooled prior,
    so without steps the highest one wins and a user with three pushes in 72 h is pushed again; with
    ``pacing_min_sends`` the segment is paced at most one load above what it has seen (the frontier, 2), that user
    is refused (reason ``pacing``), one at load 2 is not, and GET /v1/segments says the same ``max_load``."""
    from bandit_push.policies import net_value_posterior, pacing_choice
    from bandit_push.policies.base import Prior
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    sends = {"L": 1000.0, 0: 1000.0, 1: 1000.0}
    arms = {f"new|F{j}": [T0, n] + [0.0] * k for j, n in sends.items()}
    for j in sends:
        arms[f"new|F{j}"][clicked] = 300.0
    tot = [T0, 3000.0] + [0.0] * k
    tot[clicked] = 900.0
    arms["new|N"] = arms["*|N"] = tot
    for b in range(6):
        arms[f"new|{b}|1"] = [T0, 1000.0] + [0.0] * k
        arms[f"new|{b}|1"][clicked] = 300.0
    order = ["L"] + list(range(settings.pacing_loads))
    n = np.array([arms.get(f"new|F{j}", [T0, 0.0])[1] for j in order])
    counts = np.array([arms.get(f"new|F{j}", [T0, 0.0] + [0.0] * k)[2:] for j in order])
    parents = (np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)),
               np.full(len(order), tot[1]), np.tile(tot[2:], (len(order), 1)))
    means, var = net_value_posterior(n, counts, Prior.from_settings(settings), parents)
    args = (0.0, settings.pacing_window_hours, settings.recency_edges_hours[-1], 0.0, n)
    top = settings.pacing_loads - 1
    assert pacing_choice(means, var, *args) == top and pacing_choice(means, var, *args, 1.0, 20.0) == 2
    users = {"at3": [40, 30, 20], "at2": [30, 20]}  # hours ago of each user's pushes
    for step, reason in ((0.0, {"at3": "policy", "at2": "policy"}), (20.0, {"at3": "pacing", "at2": "policy"})):
        app = make_app(pacing_min_sends=step, pacing_explore=1.0, min_gap_hours=4)
        s = app.extensions["bandit_push"]
        s.store.delete_prefix()
        s.store.binary.hset(s.store.keys.arms("default"), mapping={f: packed_arm(a) for f, a in arms.items()})
        for uid, ago in users.items():
            s.store.redis.hset(s.store.keys.user(uid), mapping={"sg": "new", "lp": repr(T0 - ago[-1] * 3600)})
            s.store.redis.set(s.store.keys.user_pushes(uid), " ".join(repr(T0 - h * 3600) for h in ago) + "\n")
        c = app.test_client()
        for uid, why in reason.items():
            assert decide(c, uid)["reason"] == why, (step, uid)
        new = next(x for x in c.get(f"/v1/segments?now={T0}").get_json()["segments"] if x["segment"] == "new")
        assert new["max_load"] == (f"{top}+ in 72h" if step == 0 else "2 in 72h")


def test_a_push_from_rest_counts_as_one_at_load_zero(make_app):
    """After a cold start every first push is from rest (no push within a week), so only the week-rested arm has
    data and every pushed user sits at load 1: that arm's sends count as load 0's, so the frontier is load 1 and a
    user pushed yesterday can be pushed again where pushes pay (counted at load 0 alone, the frontier stayed 0 and
    nobody was pushed for the whole 72 h window: days 2-3 of the simulation)."""
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    rested = [T0, 1000.0] + [0.0] * k
    rested[clicked] = 300.0
    arms = {"new|FL": rested, "new|N": rested, "*|N": rested}
    for b in range(6):
        arms[f"new|{b}|1"] = rested
    app = make_app(pacing_min_sends=20.0, pacing_explore=1.0, min_gap_hours=4)
    s = app.extensions["bandit_push"]
    s.store.binary.hset(s.store.keys.arms("default"), mapping={f: packed_arm(a) for f, a in arms.items()})
    s.store.redis.hset(s.store.keys.user("u1"), mapping={"sg": "new", "lp": repr(T0 - 20 * 3600)})
    s.store.redis.set(s.store.keys.user_pushes("u1"), f"{T0 - 20 * 3600!r}\n")
    c = app.test_client()
    assert decide(c, "u1")["reason"] == "policy"
    new = next(x for x in c.get(f"/v1/segments?now={T0}").get_json()["segments"] if x["segment"] == "new")
    assert new["max_load"] == "1 in 72h"


def test_seeded_workers_draw_their_own_sequences(make_app, monkeypatch):
    """With a seed, the gunicorn configuration gives each worker its number before it loads the app, and each
    worker's engine draws its own reproducible sequence (workers sharing one would explore in lockstep); a
    process without a worker number keeps the plain seeded sequence (in-process studies, tests)."""
    import random
    from types import SimpleNamespace

    from bandit_push_api import gunicorn_conf
    from bandit_push_api.services import WORKER_ENV
    monkeypatch.setenv(WORKER_ENV, "")  # (so that monkeypatch restores the variable post_fork sets below)
    monkeypatch.delenv(WORKER_ENV)
    first = [make_app(seed=5).extensions["bandit_push"].engine.rng.random() for _ in range(2)]
    assert first[0] == first[1] == random.Random(5).random()
    draws = {}
    for age in (1, 2, 1):
        gunicorn_conf.post_fork(None, SimpleNamespace(age=age))
        draws.setdefault(age, []).append(make_app(seed=5).extensions["bandit_push"].engine.rng.random())
    assert draws[1][0] == draws[1][1] and draws[1][0] != draws[2][0] and first[0] not in (draws[1][0], draws[2][0])

