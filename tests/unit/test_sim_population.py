"""The simulated population has the properties its documentation promises."""
import dataclasses

import numpy as np

from bandit_push.config import Settings
from bandit_push.sim.evaluate import Baseline, run_baseline
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
