"""Quick policy study on the simulated population, in process: the service's own decide, feedback and
events code (``InProcessGateway``, no HTTP) beside the cadence baselines and the oracle.

For comparing policy settings in minutes; the figures the issue asks for come from ``bandit-push simulate``
(over HTTP). Each ``--policy`` is JSON of service settings that the run changes (``{}``: the defaults).

Usage:
    .venv/bin/python bench/sim_study.py [--users 2000] [--days 30] [--mix balanced] [--seed 1]
        [--redis-url redis://127.0.0.1:6379/8] [--baselines] --policy '{}' --policy '{"pool_events": 0}'

Prints per policy: expected net value per user (realised beside it, and over the last ten days), sends per
user per day, unsubscribes per send, and per true user type the expected net value per user and the sends per
user per day; and how each learned segment is made of true types. Keys go under a run's own prefix and are
deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import time
import uuid

import numpy as np

from bandit_push.config import Settings
from bandit_push.sim.driver import Result, run
from bandit_push.sim.evaluate import oracle, run_baselines, segment_types, summarise
from bandit_push.sim.gateway import InProcessGateway
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import Population
from bandit_push.store import Store


def line(label: str, r: Result, days: int) -> str:
    per_type = " / ".join(f"{v:+.2f} ({s:.2f}/d)" for v, s in zip(r.type_expected / r.type_users,
                                                                  r.type_sends / r.type_users / days))
    last = r.day_expected[-10:].sum() / r.users  # the last ten days: what the policy earns once it has learned
    return (f"{label}: expected value/user {r.expected / r.users:+.3f} (realised {r.value / r.users:+.3f}; "
            f"last 10 days {last:+.3f}), sends/user/day {r.sends / r.users / days:.2f}, "
            f"unsub/send {r.outcomes['unsubscribed'] / max(r.sends, 1):.5f}; per type value (sends): {per_type}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--mix", default="balanced")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    ap.add_argument("--baselines", action="store_true", help="also run the cadence baselines and the oracle")
    ap.add_argument("--policy", action="append", default=[], help="JSON of settings to change; repeatable")
    ap.add_argument("--reask", action="store_true", help="the gateway asks again at retry_at (see sim.driver.run)")
    a = ap.parse_args()
    pop = Population(SimParams(users=a.users, days=a.days, mix=a.mix, seed=a.seed))
    base = Settings(redis_url=a.redis_url, seed=a.seed)
    print(f"{a.users} users, {a.days} days, {a.mix}, seed {a.seed}; types: "
          + " / ".join(t.name for t in pop.params.types), flush=True)
    if a.baselines:
        results = run_baselines(pop, base, jobs=1)
        orc = oracle(pop, results)
        _, best = summarise(results, orc)
        print(line(f"best fixed cadence ({best.label})", best, a.days))
        print(line(orc.label, orc, a.days), flush=True)
    for spec in a.policy:
        s = base.replace(prefix=f"bpstudy{uuid.uuid4().hex[:6]}:", **json.loads(spec))
        store = Store.connect(s)
        try:
            t = time.perf_counter()
            r = run(pop, InProcessGateway(store, s), spec, dict(s.weights), reask=a.reask)
            print(line(f"{s.policy} {spec}{' re-asking at retry_at' if a.reask else ''}", r, a.days)
                  + f" [{time.perf_counter() - t:.0f} s]")
            members = segment_types(pop, store)
            print("  learned segments (members per true type): "
                  + "; ".join(f"{seg} {np.asarray(c).tolist()}" for seg, c in sorted(members.items())), flush=True)
        finally:
            store.delete_prefix()
            store.close()


if __name__ == "__main__":
    main()
