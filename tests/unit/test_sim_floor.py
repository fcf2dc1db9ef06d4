"""bench/sim_floor.py's closed-form moments of one push's net value agree with the simulator's own draws."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from bandit_push.config import Settings
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import DRAWS, HOUR, Population

_spec = importlib.util.spec_from_file_location("sim_floor", Path(__file__).resolve().parents[2] / "bench" / "sim_floor.py")
sim_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim_floor)


@pytest.mark.parametrize("type_name", ["regular", "casual"])
def test_push_moments_match_the_simulators_draws(type_name: str) -> None:
    pop = Population(SimParams(users=30, days=1, seed=3))
    weights = dict(Settings().weights)
    t_index = [t.name for t in pop.params.types].index(type_name)
    i = int(np.flatnonzero(pop.type == t_index)[0])
    t = pop.params.start + next(h * HOUR for h in range(24) if pop.local_hour(i, pop.params.start + h * HOUR) == 18)
    mu, sd = sim_floor.push_moments(pop, t_index, 18, weights)

    n = 400_000
    u = np.random.default_rng(7).random((n, DRAWS)).tolist()
    values = np.array([sum(weights.get(e, 0.0) for e, _ in pop.respond(i, t, [], [], x, weights).events) for x in u])
    # the closed form against the draws, within four standard errors (the unsubscribe's -30 dominates the spread)
    assert abs(values.mean() - mu) < 4 * sd / math.sqrt(n)
    assert values.std() == pytest.approx(sd, rel=0.03)
    assert pop.respond(i, t, [], [], u[0], weights).expected == pytest.approx(mu)
