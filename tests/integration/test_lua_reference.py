"""The Lua kernel against its Python/numpy reference: time zones, the normal CDF, the posterior."""
import json
import random
import zoneinfo

import numpy as np
import pytest
from scipy.stats import norm

from bandit_push.config import OUTCOMES, Settings
from bandit_push.policies import Prior, net_value_posterior, phi
from bandit_push.lua import prelude
from bandit_push.segments import arm_values
from bandit_push.tzrule import posix_rule, utc_offset


def lua(store, body, *args):
    return store.redis.eval(prelude() + body, 0, *args)


def test_utc_offset_matches_reference(store):
    rng = random.Random(5)
    names = sorted(zoneinfo.available_timezones())
    cases = [(n, rng.uniform(9.5e8, 2.1e9)) for n in rng.sample(names, 120) for _ in range(5)]
    got = lua(store, """
        local out, cases = {}, cjson.decode(ARGV[1])
        for i, c in ipairs(cases) do out[i] = utc_offset(c[1], c[2]) end
        return out""", json.dumps([[posix_rule(n), ts] for n, ts in cases]))
    assert got == [utc_offset(posix_rule(n), ts) for n, ts in cases]


def test_phi_is_bit_identical_and_close_to_scipy(store):
    zs = [x / 7.0 for x in range(-60, 61)] + [0.0, -0.0, 1e-9, 12.5, -12.5]
    got = lua(store, """
        local out = {}
        for i, z in ipairs(cjson.decode(ARGV[1])) do out[i] = fmt(phi(z)) end
        return out""", json.dumps(zs))
    assert [float(x) for x in got] == [phi(z) for z in zs]
    assert max(abs(phi(z) - norm.cdf(z)) for z in zs) < 2e-7


def _kernel_cfg(settings: Settings) -> dict:
    """The kernel's part of the decide script's config, taken from decide.script_config itself."""
    from bandit_push.decide import script_config
    from bandit_push.policies import POLICIES

    cfg = script_config(settings, POLICIES["thompson"](settings))
    return {k: cfg[k] for k in ("w", "pa", "pb", "nz", "pool")}


def test_posterior_matches_numpy(store):
    settings = Settings()
    prior = Prior.from_settings(settings)
    rng = np.random.default_rng(2)
    n = rng.uniform(0, 500, size=40)
    counts = np.minimum(rng.uniform(0, 1, size=(40, len(OUTCOMES))) * n[:, None] * rng.uniform(0, 0.3), n[:, None])
    cfg = _kernel_cfg(settings)
    arms = [[0.0, float(n[i])] + counts[i].tolist() for i in range(40)]
    got = lua(store, """
        local cfg, out = cjson.decode(ARGV[1]), {}
        for i, a in ipairs(cjson.decode(ARGV[2])) do
          local mu, var = posterior(a, cfg, prior(cfg))  -- (prior's two results: the pa and pb lists)
          out[i] = {fmt(mu), fmt(var)}
        end
        return out""", json.dumps(cfg), json.dumps(arms))
    mean, var = net_value_posterior(n, counts, prior)
    np.testing.assert_allclose([float(m) for m, _ in got], mean, rtol=1e-12)
    np.testing.assert_allclose([float(v) for _, v in got], var, rtol=1e-12)


def test_arm_decay_arithmetic(store):
    # one send at t=0, one at t=hl (both decayed to t=hl: 0.5 + 1), then an old event at t=0 adds 0.5
    got = store.binary.eval(prelude() + """
        local a = arm_load(nil, 3)
        arm_add(a, 2, 0, 100, 1)
        arm_add(a, 2, 100, 100, 1)
        arm_add(a, 3, 0, 100, 1)
        return arm_dump(a)""", 0)
    assert got[:1] == b"B" and arm_values(got) == pytest.approx([100.0, 1.5, 0.5])


def test_arms_round_trip_exactly_and_old_text_arms_still_read(store):
    values = [1.8e9 + 1 / 3, 12.5 / 7, 0.1, 1e-300, 5e-324, 3.0]
    packed = store.binary.eval(prelude() + "return arm_dump(cjson.decode(ARGV[1]))", 0, json.dumps(values))
    assert len(packed) == 1 + 8 * len(values) and arm_values(packed) == values  # exact: doubles, not text
    # what arm_load makes of a packed arm, and of anything else: text (no release wrote it), a missing arm and
    # one of another size (zeros); returned as text here only to compare
    got = lua(store, """
        local out = {}
        for i, raw in ipairs({ARGV[1], ARGV[2], false, ARGV[3]}) do
          out[i] = table.concat((function(a) local t = {} for j, x in ipairs(a) do t[j] = fmt(x) end return t end)(
            arm_load(raw or nil, 6)), ' ')
        end
        return out""", packed, " ".join(map(repr, values)), "1 2 3")
    assert [[float(x) for x in g.split()] for g in got] == [values, [0.0] * 6, [0.0] * 6, [0.0] * 6]
    assert arm_values(None) == [] == arm_values(b"B\xff\xfe") == arm_values(b"1 2 3")


def test_pooled_posterior_matches_numpy(store):
    """The pooled prior (context <- segment <- space) in Lua equals policies/base.py's, to rounding."""
    prior = Prior.from_settings(Settings(pool_events=2.0))
    rng = np.random.default_rng(3)
    k = len(OUTCOMES)

    def arms(scale):
        n = rng.uniform(0, scale, size=40)
        c = np.minimum(rng.uniform(0, 1, size=(40, k)) * n[:, None] * rng.uniform(0, 0.3, size=(40, 1)), n[:, None])
        c[rng.random((40, k)) < 0.2] = 0.0  # outcomes never seen yet
        return n, c

    (n, c), (sn, sc), (an, ac) = arms(300), arms(3000), arms(30000)
    n[:3] = 0.0  # a cold context
    cfg = _kernel_cfg(Settings(pool_events=2.0))
    rows = [[[0.0, float(x[0][i])] + x[1][i].tolist() for x in ((n, c), (sn, sc), (an, ac))] for i in range(40)]
    got = lua(store, """
        local cfg, out = cjson.decode(ARGV[1]), {}
        for i, r in ipairs(cjson.decode(ARGV[2])) do
          local mu, var = posterior(r[1], cfg, prior(cfg, r[2], r[3]))  -- (pa, pb)
          out[i] = {fmt(mu), fmt(var)}
        end
        return out""", json.dumps(cfg), json.dumps(rows))
    mean, var = net_value_posterior(n, c, prior, (sn, sc, an, ac))
    np.testing.assert_allclose([float(m) for m, _ in got], mean, rtol=1e-12)
    np.testing.assert_allclose([float(v) for _, v in got], var, rtol=1e-12)
    # pooling moves the estimate: a cold context's mean is its segment's, not the prior rates'
    flat, _ = net_value_posterior(n[:3], c[:3], prior)
    assert not np.allclose(mean[:3], flat)


def test_pooled_prior_centres_contexts_on_their_segment():
    """pool_events pseudo-events of each outcome, centred on the segment's rate (itself shrunk to the space's,
    the space's to the prior rates)."""
    from bandit_push.policies.base import pooled_prior
    prior = Prior.from_settings(Settings(pool_events=2.0))
    k = len(OUTCOMES)
    seg_counts = np.array([[900.0, 100.0, 40.0, 5.0, 90.0, 1.0]])
    a, b = pooled_prior(prior, np.array([1000.0]), seg_counts, np.array([1000.0]), seg_counts)
    g = (2.0 + seg_counts) / (2.0 / (prior.alpha / (prior.alpha + prior.beta)) + 1000.0)
    want = (2.0 + seg_counts) / (2.0 / g + 1000.0)
    np.testing.assert_allclose(a, np.full((1, k), 2.0))
    np.testing.assert_allclose(a / (a + b), want)   # prior mean: the pooled segment rate


def test_pacing_choice_matches_numpy(store):
    """pace_load (Lua) picks the same load as pacing_load (numpy), over random arm means and costs."""
    from bandit_push.policies import pacing_load
    s = Settings()
    rng = np.random.default_rng(4)
    cases = [(rng.normal(0, 0.05, size=1 + s.pacing_loads).tolist(), float(rng.choice([0.0, 0.01, -0.02])))
             for _ in range(300)]
    lw, ll = s.pacing_window_hours * 3600.0, s.recency_edges_hours[-1] * 3600.0
    got = lua(store, """
        local out = {}
        for i, c in ipairs(cjson.decode(ARGV[1])) do out[i] = pace_load(c[1], c[2], tonumber(ARGV[2]), tonumber(ARGV[3])) end
        return out""", json.dumps(cases), repr(lw), repr(ll))
    assert got == [pacing_load(m, c, s.pacing_window_hours, s.recency_edges_hours[-1]) for m, c in cases]
    assert -1 in got and len(set(got)) > 3  # the choices vary, 'not pushed within a week' among them


def test_pacing_choice_with_caution_and_steps_matches_numpy(store):
    """pace_choice (Lua) picks the same load as pacing_choice (numpy), over random means, sds, sends, costs,
    cautions and steps; with caution a load is chosen wherever the means choose one (never the week-rested arm), and
    caution moves some choices; with a step, no load above the frontier is chosen and the frontier sometimes is."""
    from bandit_push.policies import pacing_choice
    s = Settings()
    rng = np.random.default_rng(5)
    n = 1 + s.pacing_loads
    cases = [(rng.normal(0, 0.05, size=n).tolist(), (rng.uniform(0, 0.05, size=n) ** 2).tolist(),
              float(rng.choice([0.0, 0.01, -0.02])), float(rng.choice([0.0, 0.5, 2.0])),
              rng.choice([0.0, 5.0, 30.0, 200.0], size=n).tolist(), float(rng.choice([0.0, 1.0, 3.0])),
              float(rng.choice([0.0, 20.0]))) for _ in range(600)]
    lw, ll = s.pacing_window_hours * 3600.0, s.recency_edges_hours[-1] * 3600.0
    got = lua(store, """
        local out = {}
        for i, c in ipairs(cjson.decode(ARGV[1])) do
          out[i] = pace_choice(c[1], c[2], c[3], tonumber(ARGV[2]), tonumber(ARGV[3]), c[4], c[5], c[6], c[7])
        end
        return out""", json.dumps(cases), repr(lw), repr(ll))
    args = (s.pacing_window_hours, s.recency_edges_hours[-1])
    assert got == [pacing_choice(m, var, cost, *args, c, ns, z, mn) for m, var, cost, c, ns, z, mn in cases]
    plain = [pacing_choice(m, var, cost, *args) for m, var, cost, *_ in cases]
    unstepped = [g for g, (*_, mn) in zip(got, cases) if mn == 0]
    assert all((g == -1) == (p == -1) for g, p, (*_, mn) in zip(got, plain, cases) if mn == 0)
    assert -1 in unstepped and len(set(unstepped)) > 3
    # with a step: never above the frontier (one above the highest load seen; a push from rest is one at load 0),
    # which is chosen in some cases
    frontier = [max([0] + [1] * (ns[0] + ns[1] >= mn) + [i for i in range(2, n) if ns[i] >= mn])
                for _, _, _, _, ns, _, mn in cases]
    stepped = [(g, f) for g, f, (*_, mn) in zip(got, frontier, cases) if mn > 0]
    assert all(g <= f for g, f in stepped)
    assert any(g == f for g, f in stepped) and any(g < f for g, f in stepped)


def test_utc_offset_memo_agrees_across_transitions(store):
    """utc_offset keeps each rule's last answer with the interval it holds in: sweeps forwards and backwards
    through two years of DST zones (every 5 hours, and each transition instant and the second before it)
    answer as the reference does, whichever interval the memo holds from the call before."""
    names = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago", "Pacific/Auckland",
             "Asia/Tokyo", "Europe/London", "America/Sao_Paulo", "Pacific/Chatham", "UTC"]
    t0, t1 = 1.70e9, 1.70e9 + 2 * 365 * 86400
    cases = []
    for n in names:
        ts = [t0 + 5 * 3600 * i for i in range(int((t1 - t0) // (5 * 3600)))]
        z = zoneinfo.ZoneInfo(n)
        edges = [t for a, t in zip(ts, ts[1:]) if z.utcoffset(_utc(a)) != z.utcoffset(_utc(t))]
        for t in edges:  # the exact transition instant: the hour where the offset changes, by bisection
            lo, hi = t - 5 * 3600, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if z.utcoffset(_utc(mid)) == z.utcoffset(_utc(lo)) else (lo, mid)
            ts += [hi - 1, hi, hi + 0.5]
        ts.sort()
        cases += [(n, t) for t in ts] + [(n, t) for t in reversed(ts)]
    got = lua(store, """
        local out, cases = {}, cjson.decode(ARGV[1])
        for i, c in ipairs(cases) do out[i] = utc_offset(c[1], c[2]) end
        return out""", json.dumps([[posix_rule(n), ts] for n, ts in cases]))
    assert got == [utc_offset(posix_rule(n), ts) for n, ts in cases]
    # the sweeps crossed transitions: the seven zones with daylight saving answered both of their offsets
    assert len({(n, g) for (n, _), g in zip(cases, got)}) == 2 * 7 + 3


def _utc(ts):
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc)
