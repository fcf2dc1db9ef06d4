"""The simulated population has the properties its documentation promises."""
import dataclasses

import numpy as np

from bandit_push.config import Settings
from bandit_push.sim.evaluate import Baseline, baselines, oracle, run_baseline
from bandit_push.sim.params import MIXES, SimParams
from bandit_push.sim.population import HOUR, Population

SMALL = SimParams(users=60, days=3, warmup_days=2, seed=5)


def test_fatigue_rises_with_pushes_and_recovers():
    pop = Population(SMALL)
    t = SMALL.start + 10 * 24 * HOUR
    one, three = pop.fatigue([t - HOUR], t), pop.fatigue([t - 5 * HOUR, t - 3 * HOUR, t - HOUR], t)
    assert 0 < one < three
    assert pop.fatigue([t - 24 * HOUR], t) < one and pop.fatigue([t - 14 * 24 * HOUR], t) < 0.01
    for typ in range(len(SMALL.types)):
        rested, tired = pop.probabilities(typ, 19, 0.0, 0.5), pop.probabilities(typ, 19, three, 0.5)
        assert tired["clicked"] < rested["clicked"] and tired["unsubscribed"] > rested["unsubscribed"]


def test_unsubscribe_hazard_is_higher_at_night_and_engagement_lower():
    pop = Population(SMALL)
    for typ in range(len(SMALL.types)):
        night, day = pop.probabilities(typ, 2, 0.5, 0.5), pop.probabilities(typ, 14, 0.5, 0.5)
        assert night["unsubscribed"] > 2 * day["unsubscribed"]
        assert night["opened"] < day["opened"]


def test_rates_are_plausible_and_better_items_get_more_clicks():
    pop = Population(SMALL)
    for typ in range(len(SMALL.types)):
        fresh = pop.probabilities(typ, 19, 0.0, 0.5)
        assert 0.005 < fresh["clicked"] < 0.10  # click-through of a few percent
        assert fresh["unsubscribed"] < 0.01     # opt-outs well under 1% per push
        assert pop.probabilities(typ, 19, 0.0, 1.0)["clicked"] > pop.probabilities(typ, 19, 0.0, 0.0)["clicked"]
    # enthusiasts shop more on their own than casual users: segments can be discovered from behaviour
    per_user = np.bincount(pop.ev_user, minlength=SMALL.users)
    assert per_user[pop.type == 0].mean() > 3 * per_user[pop.type == 2].mean()


def test_seeded_determinism_and_a_different_seed_differs():
    a, b, c = Population(SMALL), Population(SMALL), Population(dataclasses.replace(SMALL, seed=6))
    for name in ("type", "ev_ts", "ev_item", "opp_ts", "opp_draws"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.opp_ts, c.opp_ts)


def test_mixes_shift_the_types():
    pops = {m: Population(dataclasses.replace(SMALL, users=400, mix=m)) for m in MIXES}
    assert (pops["enthusiastic"].type == 0).mean() > (pops["casual"].type == 0).mean() + 0.3


def test_paired_runs_of_one_baseline_are_identical():
    pop, settings = Population(SMALL), Settings()
    b = Baseline("every 8h", 8.0, {"min_gap_hours": 0.0, "quiet_hours": "off"})
    r1, r2 = run_baseline(pop, settings, b), run_baseline(pop, settings, b)
    assert r1.sends > 0 and r1.value == r2.value and r1.pushes == r2.pushes
    # a different cadence meets the same opportunities: its pushes are a different subset of the same times
    r3 = run_baseline(pop, settings, dataclasses.replace(b, gap_hours=24.0))
    opp = set(pop.opp_ts.tolist())
    assert r3.sends < r1.sends and {p[2] for p in r3.pushes} <= opp and {p[2] for p in r1.pushes} <= opp


def test_a_push_earns_its_expected_value_on_average():
    """Outcome.expected is the mean of the realised net value over the uniforms (what the oracle and the
    ratios rank by); a biased expectation would favour whichever policy pushes where it errs."""
    pop, w = Population(SMALL), dict(Settings().weights)
    rng = np.random.default_rng(0)
    t = SMALL.start + 19 * HOUR
    for i in (int(np.flatnonzero(pop.type == typ)[0]) for typ in range(len(SMALL.types))):
        pushes = [t - 3 * HOUR, t - 30 * HOUR]
        outs = [pop.respond(i, t, ["c0-1"], pushes, u, w) for u in rng.random((100_000, 10))]
        realised = np.array([sum(w.get(e, 0.0) for e, _ in o.events) for o in outs])
        expected = outs[0].expected
        assert all(o.expected == expected for o in outs)
        assert expected == pop.expected_value(int(pop.type[i]), pop.local_hour(i, t), pop.fatigue(pushes, t),
                                              pop.match(i, ["c0-1"]), w)
        assert abs(realised.mean() - expected) < 4 * realised.std() / np.sqrt(len(realised)), (i, expected)


def test_the_oracle_picks_each_types_best_expected_rule():
    pop, settings = Population(dataclasses.replace(SMALL, users=120)), Settings()
    results = [run_baseline(pop, settings, b) for b in baselines()[:6]]
    o = oracle(pop, results)
    for t in range(len(SMALL.types)):
        assert o.type_expected[t] == max(r.type_expected[t] for r in results)
    assert abs(o.expected - o.type_expected.sum()) < 1e-9 and abs(o.expected - o.day_expected.sum()) < 1e-9
