"""Per-user evidence: the user's engagement multiplier in decide, its credit by feedback, and the model's fit."""
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from bandit_push import decision_log, engagement, models, refit
from bandit_push.config import OUTCOMES
from bandit_push.engagement import EngagementParams
from bandit_push.policies import POLICIES, ArmView
from stored import packed_arm

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()
HL = 14 * 24 * 3600.0


def decide(client, user, now=T0):
    r = client.post("/v1/decide", json={"user_id": user, "now": now})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_propensity_is_the_reference_with_the_users_evidence_and_model(make_app, settings, store):
    """A user with evidence and organic history under a published engagement model: decide's propensity is the
    numpy/Python reference's, bit for bit (the Thompson draw's probability of the user's own net value)."""
    params = EngagementParams(2.5, (-0.4, 0.3, 0.2))
    models.publish(store, engagement.MODEL, {"params": np.array([params.kappa, *params.b])}, {}, now=T0)
    k, clicked, opened = len(OUTCOMES), OUTCOMES.index("clicked"), OUTCOMES.index("opened")
    arm = [T0, 40.0] + [0.0] * k
    arm[2 + clicked], arm[2 + opened] = 3.0, 6.0
    tot = [T0, 400.0] + [0.0] * k
    tot[2 + clicked], tot[2 + opened] = 20.0, 50.0
    arms = {"new|5|1": packed_arm(arm), "new|N": packed_arm(tot), "*|N": packed_arm(tot)}
    policy = POLICIES["thompson"](settings)
    c = make_app(user_evidence=True).test_client()
    for i, (pe, views, purchases) in enumerate([(f"{T0 - 86400!r} 3 1.5", 40, 2), (f"{T0 - 3 * 86400!r} 0 4", 2, 0),
                                                (None, 0, 0)]):
        user = f"u{i}"
        fields = {"sg": "new", "ff": repr(T0 - 50 * 86400), "f:view": views, "f:purchase": purchases}
        if pe:
            fields["pe"] = pe
        store.redis.hset(store.keys.user(user), mapping=fields)
        store.binary.hset(store.keys.arms("default"), mapping=arms)  # as they were before the last user's send
        values = store.redis.hmget(store.keys.user(user), list(engagement.FIELDS))
        e, x = engagement.evidence(values[0], T0, HL)
        theta = engagement.user_theta(params, e, x, *engagement.organic(values, T0))
        p = policy.send_probability(ArmView(arm[1], np.array(arm[2:]), tot[1], None, segment_counts=np.array(tot[2:]),
                                            space=(tot[1], np.array(tot[2:])), theta=theta))
        d = decide(c, user)
        assert d["propensity"] == (p if d["send"] else pytest.approx(1 - p, abs=1e-15)), user
        # the record keeps the multiplier's inputs (floats), what the policy refit's gate replays other versions on
        y = decision_log.decode(store.binary.hgetall(store.keys.decision(d["decision_id"])))["y"]
        assert (y["e"], y["x"], y["x1"], y["x2"]) == pytest.approx((e, x, *engagement.organic(values, T0)), rel=1e-6)
    # more evidence of engagement means a higher multiplier
    assert engagement.user_theta(params, 3, 1.5, 1, 0)[0] > engagement.user_theta(params, 0, 4, 1, 0)[0]


def test_engagement_feedback_credits_the_user_once_per_decision(make_app, store):
    c = make_app(cost=-1e9).test_client()
    d = decide(c, "u1")
    assert d["send"]
    e0, x0 = engagement.evidence(store.redis.hget(store.keys.user("u1"), "pe"), T0, HL)
    assert e0 == 0 and x0 > 0  # the send added the context's expected engagement
    for event in ("opened", "opened", "clicked", "converted"):  # one decision engaged: one credit, retries and all
        r = c.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": event, "ts": T0 + 60})
        assert r.status_code == 200
    e1, x1 = engagement.evidence(store.redis.hget(store.keys.user("u1"), "pe"), T0, HL)
    assert e1 == pytest.approx(1.0, rel=1e-5) and x1 == pytest.approx(x0, rel=1e-5)
    # a dismissal is no engagement; late feedback is not credited
    d2 = decide(c, "u1", now=T0 + 5 * 3600)
    c.post("/v1/feedback", json={"decision_id": d2["decision_id"], "event": "dismissed", "ts": T0 + 5 * 3600 + 60})
    late = T0 + 5 * 3600 + 10 * 86400
    c.post("/v1/feedback", json={"decision_id": d2["decision_id"], "event": "clicked", "ts": late})
    e2, _ = engagement.evidence(store.redis.hget(store.keys.user("u1"), "pe"), T0 + 5 * 3600, HL)
    assert e2 == pytest.approx(e1 * math.pow(2, -5 * 3600 / HL), rel=1e-5)


def test_fit_recovers_the_shrinkage_and_the_organic_effect():
    """On negative-binomial data drawn from known parameters, the MAP fit lands near them."""
    rng = np.random.default_rng(3)
    n = 20000
    x1 = rng.uniform(0, 4, n)
    x2 = rng.uniform(0, 1, n)
    true = EngagementParams(3.0, (-0.5, 0.4, 0.0))
    g = np.exp(true.b[0] + true.b[1] * x1 + true.b[2] * x2)
    theta = rng.gamma(true.kappa, g / true.kappa)
    x = rng.uniform(0.5, 6, n)
    e = rng.poisson(theta * x).astype(float)
    p, _ = engagement.fit(e, x, x1, x2)
    assert p.kappa == pytest.approx(3.0, rel=0.25)
    assert p.b[1] == pytest.approx(0.4, abs=0.06) and abs(p.b[2]) < 0.15


def test_policy_refit_publishes_the_model_and_decide_uses_it(make_app, store, settings):
    c = make_app(cost=-1e9, snapshot_seconds=0.001).test_client()
    for i in range(30):
        store.redis.hset(store.keys.user(f"u{i}"), mapping={"sg": "new", "ff": repr(T0 - 40 * 86400),
                                                            "f:view": 3 * i})
        d = decide(c, f"u{i}")
        if i % 2:
            c.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "opened", "ts": T0 + 60})
    out = refit.run(store, settings, "policy", "test", now=T0 + 3600)
    assert out["users"] == 30 and out["kappa"] > 0
    serving = EngagementParams.serving(store)
    assert serving.version == out["version"] and serving.kappa == pytest.approx(out["kappa"])
    names = {m["name"] for m in c.get("/v1/models").get_json()["models"]}
    assert "policy" in names


def test_an_open_thompson_episode_is_still_the_users_evidence(make_app, store, settings):
    """While a Thompson episode is open, ``pe`` holds the held draw too (``"t E X u m"``): the users it holds back are
    the ones who ignored their pushes. The policy refit and the user's page read their evidence as decide does (the
    record's E and X), not as none: a refit that left them out fitted the model on the users who engaged, and so
    over-predicted the engagement of everyone else (the simulator's mid-run slumps, docs/simulation.md)."""
    push = make_app(cost=-1e9, pacing=0.0).test_client()
    hold = make_app(cost=0.3, pacing=0.0, thompson_episodes=True).test_client()
    later = T0 + 6 * 3600  # past the minimum gap, before quiet hours
    for i in range(30):
        user = f"u{i}"
        store.redis.hset(store.keys.user(user), mapping={"sg": "new", "ff": repr(T0 - 40 * 86400), "f:view": 3 * i})
        d = decide(push, user)
        assert d["send"]
        if i % 3 == 0:
            push.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "opened", "ts": T0 + 60})
        refused = decide(hold, user, now=later)  # an unlikely push: refused, and the episode's draw held
        assert not refused["send"] and refused["reason"] == "policy"
        raw = store.redis.hget(store.keys.user(user), "pe")
        assert len(raw.split()) == 5, raw
        y = decision_log.decode(store.binary.hgetall(store.keys.decision(refused["decision_id"])))["y"]
        e, x = engagement.evidence(raw, later, HL)
        assert x > 0 and (e, x) == pytest.approx((y["e"], y["x"]), rel=1e-5)  # decide's reading of the same field
    eng = hold.get(f"/v1/users/u0?now={later}").get_json()["engagement"]
    assert eng["engaged_decisions"] == pytest.approx(math.pow(2, -(later - T0 - 60) / HL), rel=1e-4)
    out = refit.run(store, settings, "policy", "test", now=later + 60)
    assert out["users"] == 30


def test_a_decision_explains_what_drove_it(make_app, store):
    """GET /v1/decisions/<id>: the record, and the net value split into the segment context and the user's multiplier
    (their product and sum is the net value the policy weighed); a guardrail refusal names the guardrail."""
    c = make_app(cost=-1e9, user_evidence=True).test_client()
    d = decide(c, "u1")
    out = c.get(f"/v1/decisions/{d['decision_id']}?now={T0}").get_json()
    assert out["decision_id"] == d["decision_id"] and out["sent"] and out["propensity"] == d["propensity"]
    why = out["explanation"]
    assert why["decided_by"] == "policy"
    ctx, user = why["segment_context"], why["user"]
    assert user["engagement_multiplier"] == 1.0 and user["predicted_by_model"] == 1.0  # no evidence, no model yet
    assert user["applied"]
    assert why["net_value"]["mean"] == pytest.approx(user["engagement_multiplier"] * ctx["engagement_value"]
                                                     + ctx["negative_value"])
    assert why["net_value"]["sd"] > ctx["sd"]  # the user's uncertainty adds to the context's
    refused = decide(c, "u1", now=T0 + 60)  # within the minimum gap
    why = c.get(f"/v1/decisions/{refused['decision_id']}").get_json()["explanation"]
    assert why == {"decided_by": "guardrail", "guardrail": "min_gap"}
    missing = c.get("/v1/decisions/0123456789abcdef0123.default")
    assert missing.status_code == 404 and missing.get_json()["field"] == "decision_id"


def test_the_user_shows_their_engagement(make_app, store):
    c = make_app(cost=-1e9).test_client()
    d = decide(c, "u1")
    c.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked", "ts": T0 + 60})
    eng = c.get(f"/v1/users/u1?now={T0 + 120}").get_json()["engagement"]
    assert eng["engaged_decisions"] == pytest.approx(1.0, rel=1e-4) and eng["multiplier"] > 1.0
    assert eng["model_version"] is None


def test_a_thompson_episode_holds_its_draw_and_its_propensities_are_exact(make_app, store):
    """One draw per user and push episode: each refused ask raises the floor m to its p, and the recorded propensity
    is the draw's probability given the refusals before it ((1 - p) / (1 - m), or 1 when p <= m; a push:
    (p - m) / (1 - m)); so a user asked many times in an episode is pushed with probability max p, not the sum.
    Asks with p >= 1/2 take a fresh draw (the plain propensity) and leave the held one's floor as it was."""
    from bandit_push.policies import phi

    cost = 0.05
    c = make_app(cost=cost, thompson_episodes=True).test_client()
    store.redis.hset(store.keys.user("u1"), mapping={"sg": "new"})
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    floor, draw, refusals = 0.0, None, 0
    for ask in range(60):
        now = T0 + ask * 600  # every ten minutes: a chatty gateway
        arm = [now, 200.0] + [0.0] * k
        arm[clicked] = 2.0 * ask  # the context looks better and better: p rises until it passes the held draw
        store.binary.hset(store.keys.arms("default"), "new|5|1", packed_arm(arm))
        d = decide(c, "u1", now=now)
        net = c.get(f"/v1/decisions/{d['decision_id']}").get_json()["explanation"]["net_value"]
        p = phi((net["mean"] - cost) / net["sd"])  # Thompson sampling's send probability (scale 1)
        raw = store.redis.hget(store.keys.user("u1"), "pe").split()
        if d["send"]:  # (p >= 1/2: a fresh draw, the plain propensity)
            want = p if p >= 0.5 else (p - floor) / (1 - floor)
            assert d["propensity"] == pytest.approx(want, rel=1e-12) and len(raw) == 3
            break
        if p >= 0.5:
            assert d["propensity"] == pytest.approx(1 - p, rel=1e-12)
            continue
        refusals += 1
        u, m = float(raw[3]), float(raw[4])
        assert draw is None or u == draw  # the episode's draw is held
        draw = u
        if p > floor:
            assert d["propensity"] == pytest.approx((1 - p) / (1 - floor), rel=1e-12) and m == pytest.approx(p, rel=1e-4)
        else:
            assert d["propensity"] == 1.0 and m == floor
        floor = m
    assert refusals >= 2 and d["send"]  # the draw refused several asks, then the better context passed it


def test_without_user_evidence_decide_weighs_the_context_alone(make_app, store, settings):
    """With user_evidence off, the multiplier is computed and shown but not applied; the net value is the context's."""
    c = make_app(user_evidence=False).test_client()
    d = decide(c, "u1")
    why = c.get(f"/v1/decisions/{d['decision_id']}").get_json()["explanation"]
    assert not why["user"]["applied"] and why["user"]["sd"] > 0
    assert why["net_value"] == {"mean": why["segment_context"]["mean"], "sd": why["segment_context"]["sd"]}


@pytest.mark.parametrize("clock", ["wall", "decisions"])
def test_the_engagement_snapshot_ages_by_the_clock_its_setting_names(store, settings, clock):
    """Serving (wall): gateways' `now`s hours apart, or skewed, do not cost a read of the model per decide. A
    replay (decisions): the snapshot follows the replay's own clock, whatever the machine's speed."""
    from bandit_push.decide import DecisionEngine

    s = settings.replace(snapshot_seconds=3600.0, snapshot_clock=clock)
    engine = DecisionEngine(store, s)
    first = EngagementParams(2.5, (-0.4, 0.3, 0.2))
    models.publish(store, engagement.MODEL, {"params": np.array([first.kappa, *first.b])}, {}, now=T0)
    assert engine.extra_argument("u", T0) == first.argument()
    second = EngagementParams(4.0, (0.1, 0.2, 0.3))
    models.publish(store, engagement.MODEL, {"params": np.array([second.kappa, *second.b])}, {}, now=T0)
    later = engine.extra_argument("u", T0 + 7200)  # two hours later by the decisions' clock, at once by the wall's
    assert later == (second.argument() if clock == "decisions" else first.argument())
