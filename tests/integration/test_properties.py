"""Property tests (hypothesis) on a real Redis: the arm statistics of the Lua scripts, and the guardrails.

Arms: the Lua accumulation equals the closed form (each event weighs 2^-(T - t)/half-life at the arm's
reference time T, the latest event), so the order of events does not matter, and decay only ever
shrinks counts. Guardrails: on random request sequences (users, clocks that jump forward and sometimes
back, opt-outs, time zones) with a policy that always wants to send, no user ever gets more than
max_per_day pushes in any rolling 24 h, two pushes closer than min_gap, a push in quiet hours (checked
with zoneinfo, independently of the Lua time-zone rules), or a push while opted out.
"""
from __future__ import annotations

import json
import math
import uuid
import zoneinfo
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit_push import feedback as fb
from bandit_push import users
from bandit_push.config import OUTCOMES
from bandit_push.segments import arm_values, load_arms
from bandit_push.decide import DecisionEngine
from bandit_push.lua import prelude

HL = 3600.0 * 24
T0 = 1780000000.0  # 2026-05-28
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                 derandomize=True)

events = st.lists(st.tuples(st.integers(2, 4), st.floats(0, 30 * 86400, allow_nan=False),
                            st.sampled_from([1.0, 0.5, 2.0])), min_size=1, max_size=25)


def lua_arm(store, evs) -> list[float]:
    """Apply (slot, t, x) events in order with the scripts' arm_add; the arm {t, n, c1, c2}."""
    out = store.binary.eval(prelude() + """
        local a = arm_load(nil, 4)
        for _, e in ipairs(cjson.decode(ARGV[1])) do arm_add(a, e[1], e[2], tonumber(ARGV[2]), e[3]) end
        return arm_dump(a)""", 0, json.dumps([[s, T0 + t, x] for s, t, x in evs]), repr(HL))
    return arm_values(out)


def closed_form(evs) -> list[float]:
    ref = max(0.0, max(T0 + t for _, t, _ in evs))
    arm = [ref, 0.0, 0.0, 0.0]
    for slot, t, x in evs:
        arm[slot - 1] += x * 2 ** (-(ref - (T0 + t)) / HL)
    return arm


@PROPS
@given(evs=events, data=st.data())
def test_arm_accumulation_is_the_closed_form_in_any_order(store, evs, data):
    got = lua_arm(store, evs)
    assert got == pytest.approx(closed_form(evs), rel=1e-9, abs=1e-12)
    shuffled = data.draw(st.permutations(evs))
    assert lua_arm(store, shuffled) == pytest.approx(got, rel=1e-9, abs=1e-12)


@PROPS
@given(evs=events, later=st.floats(0, 400 * 86400, allow_nan=False))
def test_decay_only_shrinks_counts(store, evs, later):
    out = store.binary.eval(prelude() + """
        local a = arm_load(nil, 4)
        for _, e in ipairs(cjson.decode(ARGV[1])) do arm_add(a, e[1], e[2], tonumber(ARGV[2]), e[3]) end
        local before = arm_dump(a)
        arm_decay_to(a, a[1] + tonumber(ARGV[3]), tonumber(ARGV[2]))
        local mid = arm_dump(a)
        arm_decay_to(a, a[1] - 1000, tonumber(ARGV[2]))  -- never backwards
        return {before, mid, arm_dump(a)}""", 0, json.dumps([[s, T0 + t, x] for s, t, x in evs]), repr(HL), repr(later))
    before, mid, back = (arm_values(x) for x in out)
    assert back == mid
    for b, m in zip(before[1:], mid[1:]):
        assert 0 <= m <= b
        assert m == pytest.approx(b * 2 ** (-later / HL), rel=1e-9, abs=1e-300)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(outcomes=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(OUTCOMES[:5])), min_size=1, max_size=30),
       data=st.data())
def test_feedback_credit_does_not_depend_on_arrival_order(store, outcomes, data):
    """Feedback on decisions of one instant, credited through the real feedback script in two orders
    into two policy spaces' arm hashes, leaves both hashes equal (and each (decision, event) counts once)."""
    s = store.settings.replace(policy="cadence")
    engine = DecisionEngine(store, s)
    tag = uuid.uuid4().hex[:8]
    dids = [engine.decide(f"{tag}-{i}", now=T0).decision_id for i in range(6)]
    arms = {}
    for space, order in (("p", outcomes), ("q", data.draw(st.permutations(outcomes)))):
        # copy the decisions into a space of their own: the decision id names the space it credits
        copies = {}
        for i, did in enumerate(dids):
            new = f"{did.split('.')[0]}.{space}{tag}"
            record = store.binary.hgetall(store.keys.decision(did))  # binary: the logged arm state is packed
            store.binary.hset(store.keys.decision(new), mapping={**record, b"v": f"{space}{tag}".encode()})
            copies[i] = new
        fb.record(store, s, [fb.FeedbackEvent(copies[i], ev, T0 + 60) for i, ev in order])
        arms[space] = load_arms(store, f"{space}{tag}")
    assert arms["p"] == arms["q"]
    def credited(fields):
        return sum(sum(values[2:]) for f, values in arms["p"].items() if fields(f))
    # each (decision, event) once in its context's arm, once in its segment's totals, once in the space's
    assert credited(lambda f: f.count("|") == 2) == len(set(outcomes))
    assert credited(lambda f: f.endswith("|N") and not f.startswith("*")) == len(set(outcomes))
    assert credited(lambda f: f == "*|N") == len(set(outcomes))


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
steps = st.lists(st.tuples(
    st.sampled_from(["decide"] * 6 + ["opt_out", "opt_in", "timezone"]),
    st.integers(0, 3),                                   # which user
    st.floats(-3 * 3600, 9 * 3600, allow_nan=False),     # clock step; sometimes backwards
    st.sampled_from(ZONES)), min_size=5, max_size=60)


def _in_quiet_hours(ts: float, zone: str) -> bool:
    local = datetime.fromtimestamp(ts, timezone.utc).astimezone(zoneinfo.ZoneInfo(zone))
    minutes = local.hour * 60 + local.minute
    return minutes >= 22 * 60 or minutes < 8 * 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(seq=steps, start=st.floats(0, 365 * 86400, allow_nan=False))
def test_guardrails_hold_on_any_request_sequence(store, seq, start):
    s = store.settings.replace(policy="cadence", cadence_gap_hours=0.001, quiet_hours="22:00-08:00",
                               max_per_day=3, min_gap_hours=1.5)
    engine = DecisionEngine(store, s)
    tag = uuid.uuid4().hex[:8]
    now = T0 + start
    zone = {u: "UTC" for u in range(4)}
    opted_out = {u: False for u in range(4)}
    sends: dict[int, list[float]] = {u: [] for u in range(4)}
    for action, u, step, tz in seq:
        uid = f"{tag}-{u}"
        now += step
        if action == "opt_out" or action == "opt_in":
            users.put(store, uid, opted_out=action == "opt_out")
            opted_out[u] = action == "opt_out"
        elif action == "timezone":
            users.put(store, uid, timezone=tz)
            zone[u] = tz
        else:
            d = engine.decide(uid, now=now)
            if d.send:
                assert not opted_out[u], "sent to an opted-out user"
                assert not _in_quiet_hours(now, zone[u]), f"sent in quiet hours ({zone[u]})"
                sends[u].append(now)
            elif d.reason == "policy":
                pytest.fail("the cadence policy with a tiny gap refused on its own")
    for times in sends.values():
        for i, t in enumerate(times):
            assert sum(1 for x in times if t - 86400 < x <= t) <= 3, "more than max_per_day in 24 h"
            if i:
                assert t - times[i - 1] >= 1.5 * 3600 - 1e-6, "two pushes closer than min_gap"


def test_guardrail_property_is_not_vacuous(store):
    """The sequences above do send, and do hit every guardrail: a fixed, dense sequence shows each."""
    s = store.settings.replace(policy="cadence", cadence_gap_hours=0.001, quiet_hours="22:00-08:00",
                               max_per_day=3, min_gap_hours=1.5)
    engine = DecisionEngine(store, s)
    day = 1780012800.0  # 2026-05-29T00:00:00Z
    reasons = [engine.decide("v", now=day + h * 3600).reason for h in (9, 9.5, 11, 13, 15, 23)]
    assert reasons == ["policy", "min_gap", "policy", "policy", "daily_cap", "quiet_hours"]
    users.put(store, "w", opted_out=True)
    assert engine.decide("w", now=day + 12 * 3600).reason == "opted_out"
    assert math.isfinite(engine.decide("v", now=day + 34 * 3600).propensity)
