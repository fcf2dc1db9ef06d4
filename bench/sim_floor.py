"""What the simulation's 85%-of-oracle target asks of any learner: the price of finding out from pushes that
a type of user should not be pushed.

The oracle (``bandit_push.sim.evaluate.oracle``) knows every user's true type and gives each type its best
fixed rule; on every mix its best rule for casual users is ``never``. A learner from a cold start does not know
who is casual: before it may stop pushing a segment of them it has to see, in pushes, that their net value is
below zero. That value is set by the rare unsubscribe (-30), so it is small against its noise, and the
evidence is expensive. For each type the oracle never pushes, this script takes the simulator's own response
model (``Population.probabilities``) in the context most favourable to pushing that type (a rested user, the
daytime local hour where the value is highest, items of average match) and reports:

* ``mu``, ``sd``: the expected net value of one push there and its standard deviation (the outcome weights);
* ``N``: pushes after which a one-sided test at confidence c rejects "mu >= 0" half of the time,
  ``(z_c sd / mu)^2`` (a sequential test needs fewer on average, at best about half), and their cost, ``N |mu|``.
  The cost does not depend on the segment's size: it is paid once per segment that holds such users (more if
  they are spread over several segments), and the learner loses it on top of what the oracle earns.

Beside it, per mix and seed: the oracle's expected value over the run (the evaluation's baselines, run here),
and the 15% of it that the 85% target leaves for all learning (this type's test, the other types' tests, the
ramp-up of the users worth pushing). ``floor / budget`` above 1 means that no learner that must find out
from its own pushes can meet the target on that mix; the fixed cadences are not a learner and pay no such
price, and neither does the oracle.

Usage: .venv/bin/python bench/sim_floor.py [--users 2000] [--days 30] [--seeds 1,2] [--mixes balanced,casual,enthusiastic]
(about 25 s per mix and seed: the baselines run in process, without Redis)
"""
from __future__ import annotations

import argparse
import math
from statistics import NormalDist

from bandit_push.config import Settings
from bandit_push.sim.evaluate import oracle, run_baselines
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import Population

CONFIDENCE = (0.80, 0.90, 0.95)


def push_moments(pop: Population, type_index: int, hour: int, weights: dict[str, float]) -> tuple[float, float]:
    """Mean and standard deviation of one push's net value for a rested user of a type at a local hour.

    Outcomes are nested as the simulator draws them (a conversion follows a click, which follows an open; a
    dismissal only of an unopened push; an unsubscribe independently), all after delivery.
    """
    p = pop.probabilities(type_index, hour, 0.0, 0.5)
    d = pop.params.p_delivered
    wc, wv, wd, wu = (weights.get(o, 0.0) for o in ("clicked", "converted", "dismissed", "unsubscribed"))
    mu = pop.expected_value(type_index, hour, 0.0, 0.5, weights)
    # E[X^2] of the engagement part (mutually exclusive branches) plus the independent unsubscribe's terms
    engage = (p["clicked"] - p["converted"]) * wc + p["converted"] * (wc + wv) + p["dismissed"] * wd
    engage2 = (p["clicked"] - p["converted"]) * wc ** 2 + p["converted"] * (wc + wv) ** 2 + p["dismissed"] * wd ** 2
    pu = p["unsubscribed"]
    ex2 = d * (engage2 + 2 * engage * pu * wu + pu * wu ** 2)
    return mu, math.sqrt(max(ex2 - mu * mu, 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--mixes", default="balanced,casual,enthusiastic")
    a = ap.parse_args()
    settings = Settings()
    weights = dict(settings.weights)
    quiet_start, quiet_end = settings.quiet_window() or (0, 0)
    daytime = [h for h in range(24) if not (h * 3600 >= quiet_start or h * 3600 < quiet_end)] or list(range(24))

    for mix in a.mixes.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            pop = Population(SimParams(users=a.users, days=a.days, mix=mix, seed=seed))
            orc = oracle(pop, run_baselines(pop, settings, jobs=2))
            budget = 0.15 * orc.expected
            print(f"\n{mix}, seed {seed}: oracle {orc.expected / a.users:+.3f} per user ({orc.label}); "
                  f"the 85% target leaves {budget:.1f} for all learning ({budget / a.users:.3f} per user)")
            for t, ut in enumerate(pop.params.types):
                if orc.type_sends[t] > 0:
                    continue
                best_mu, sd, hour = max(((*push_moments(pop, t, h, weights), h) for h in daytime), key=lambda x: x[0])
                users = int(orc.type_users[t])
                weekly = users * a.days / 7
                print(f"  {ut.name} ({users} users; the oracle never pushes them): best context local {hour}:00, "
                      f"mu {best_mu:+.4f}, sd {sd:.3f}; {weekly:.0f} pushes if every one of them got one a week")
                if best_mu >= 0:  # the oracle's fixed rules cannot single this context out; a learner could
                    n = (NormalDist().inv_cdf(0.95) * sd / best_mu) ** 2 if best_mu > 0 else math.inf
                    print(f"    worth pushing there, where no fixed rule pushes only them: the oracle is not an upper bound "
                          f"(a 95% test that it is positive needs {n:.0f} pushes)")
                    continue
                for c in CONFIDENCE:
                    z = NormalDist().inv_cdf(c)
                    n = (z * sd / best_mu) ** 2
                    cost = n * -best_mu
                    print(f"    {c:.0%}: N {n:7.0f} pushes, cost {cost:6.1f} = {cost / a.users:.3f} per user, "
                          f"{cost / budget:.2f} of the learning budget"
                          + ("" if n <= weekly else "  (more pushes than a weekly push to each of them gives)"))


if __name__ == "__main__":
    main()
