"""The Lua kernel against its Python/numpy reference: time zones, the normal CDF, the posterior."""
import json
import random
import zoneinfo

import numpy as np
import pytest
from scipy.stats import norm

from bandit_push.config import OUTCOMES, Settings
from bandit_push.policies import Prior, net_value_posterior, phi
from bandit_push.scripts import PRELUDE
from bandit_push.tzrule import posix_rule, utc_offset


def lua(store, body, *args):
    return store.redis.eval(PRELUDE + body, 0, *args)


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


def test_posterior_matches_numpy(store):
    settings = Settings()
    prior = Prior.from_settings(settings)
    rng = np.random.default_rng(2)
    n = rng.uniform(0, 500, size=40)
    counts = np.minimum(rng.uniform(0, 1, size=(40, len(OUTCOMES))) * n[:, None] * rng.uniform(0, 0.3), n[:, None])
    cfg = {"w": prior.weights.tolist(), "pa": prior.alpha.tolist(), "pb": prior.beta.tolist()}
    arms = [[0.0, float(n[i])] + counts[i].tolist() for i in range(40)]
    got = lua(store, """
        local cfg, out = cjson.decode(ARGV[1]), {}
        for i, a in ipairs(cjson.decode(ARGV[2])) do
          local mu, var = posterior(a, cfg)
          out[i] = {fmt(mu), fmt(var)}
        end
        return out""", json.dumps(cfg), json.dumps(arms))
    mean, var = net_value_posterior(n, counts, prior)
    np.testing.assert_allclose([float(m) for m, _ in got], mean, rtol=1e-12)
    np.testing.assert_allclose([float(v) for _, v in got], var, rtol=1e-12)


def test_arm_decay_arithmetic(store):
    # one send at t=0, one at t=hl (both decayed to t=hl: 0.5 + 1), then an old event at t=0 adds 0.5
    got = lua(store, """
        local a = arm_load(nil, 3)
        arm_add(a, 2, 0, 100, 1)
        arm_add(a, 2, 100, 100, 1)
        arm_add(a, 3, 0, 100, 1)
        return arm_dump(a)""")
    assert [float(x) for x in got.split()] == pytest.approx([100.0, 1.5, 0.5])
