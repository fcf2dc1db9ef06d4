"""Day by day: the service's defaults in process against the per-type oracle, with what the service held each day.

For diagnosing when in a run the learned policy loses to the oracle and why. Runs the cadence baselines once per
population (cached in ``--cache``: the oracle per day and per type), then one in-process replay of ``--policy``
(``InProcessGateway``) whose scheduler ticks also record each user's segment and evidence, the engagement model
serving and each segment's pacing load; every sent decision's record (the net value and the user's multiplier it
was decided on) is read at the end. Prints per day and per ten-day third: value per user and its ratio to the
oracle's, per true type; writes everything to ``--out`` (pickle) for further analysis.

Usage:
    .venv/bin/python bench/sim_days.py [--users 2000] [--days 30] [--mix enthusiastic] [--seed 1]
        [--redis-url redis://127.0.0.1:6379/8] [--policy '{}'] [--out /tmp/sim-days.pkl]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import time
import uuid
from collections import Counter

import numpy as np

from bandit_push import engagement, models, segments
from bandit_push.config import Settings
from bandit_push.decision_log import decode
from bandit_push.policies import from_config
from bandit_push.schema import USER
from bandit_push.sim.driver import run
from bandit_push.sim.evaluate import oracle, run_baselines
from bandit_push.sim.gateway import InProcessGateway
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import DAY, Population
from bandit_push.store import Store


def per_day_type(pop: Population, pushes: list, days: int) -> tuple[np.ndarray, np.ndarray]:
    """(day x type) expected value and sends of a result's pushes."""
    n_types = len(pop.params.types)
    val, sends = np.zeros((days, n_types)), np.zeros((days, n_types))
    for i, _, ts, _, expected in pushes:
        d = min(int((ts - pop.params.start) // DAY), days - 1)
        val[d, pop.type[i]] += expected
        sends[d, pop.type[i]] += 1
    return val, sends


def oracle_days(pop: Population, base: Settings, cache: str) -> dict:
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            return pickle.load(f)
    t = time.perf_counter()
    results = run_baselines(pop, base, jobs=1)
    orc = oracle(pop, results)
    n_types = len(pop.params.types)
    best = [max(results, key=lambda r: r.type_expected[k]) for k in range(n_types)]
    val = np.zeros((pop.params.days, n_types))
    sends = np.zeros((pop.params.days, n_types))
    for k, r in enumerate(best):
        v, s = per_day_type(pop, r.pushes, pop.params.days)
        val[:, k], sends[:, k] = v[:, k], s[:, k]
    fixed = [r for r in results if r.label.startswith("every ")]
    bf = max(fixed, key=lambda r: r.expected)
    out = {"label": orc.label, "per_user": orc.expected / pop.params.users, "day_type": val, "day_type_sends": sends,
           "best_fixed": bf.label, "best_fixed_per_user": bf.expected / pop.params.users,
           "type_users": orc.type_users, "seconds": time.perf_counter() - t}
    with open(cache, "wb") as f:
        pickle.dump(out, f)
    return out


class Recording(InProcessGateway):
    """The in-process gateway, recording per tick what the service held and per decide what it answered."""

    def __init__(self, store, settings, pop: Population):
        super().__init__(store, settings)
        self.pop = pop
        self.index = {u: i for i, u in enumerate(pop.user_ids)}
        self.ticks: list[dict] = []
        self.reasons: Counter = Counter()       # (day, type, reason) -> decides
        self.sent: list[tuple[int, int, str, str, str]] = []  # (day, user, decision id, segment, context)
        self.policy = from_config({"name": settings.policy}, settings)

    def scheduler_tick(self, now: float) -> None:
        super().scheduler_tick(now)
        s, store = self.s, self.store
        pipe = store.redis.pipeline(transaction=False)
        for uid in self.pop.user_ids:
            pipe.hmget(store.keys.user(uid), [USER["segment"], USER["evidence"]])
        rows = pipe.execute()
        cur = models.current(store, engagement.MODEL)
        metas = {"serving": [m for m in models.serving(store) if m["name"] == engagement.MODEL],
                 "kept": [m for m in models.kept(store) if m["name"] == engagement.MODEL]}
        params = engagement.EngagementParams.serving(store)
        rep = segments.report(store, s, self.policy, now=now)
        self.ticks.append({"now": now, "day": (now - self.pop.params.start) / DAY,
                           "sg": [r[0] for r in rows], "pe": [r[1] for r in rows],
                           "policy_version": cur, "policy_params": (params.kappa, params.b), "latest_meta": metas,
                           "segments": {e["segment"]: {"size": e["size"], "max_load": e.get("max_load"),
                                                      "loads": [(x["load"], x["sends"], x["net_value"]["mean"])
                                                                for x in e.get("loads", [])],
                                                      "contexts": [(c["recency"], c["daypart"], c["sends"],
                                                                    c["net_value"]["mean"]) for c in e["contexts"]]}
                                        for e in rep}})

    def decide_many(self, asks):
        out = super().decide_many(asks)
        start = self.pop.params.start
        for (uid, now, _), a in zip(asks, out):
            d = int((now - start) // DAY)
            i = self.index[uid]
            self.reasons[(d, int(self.pop.type[i]), a.reason if not a.send else "SEND")] += 1
            if a.send:
                self.sent.append((d, i, a.decision_id, a.segment, "|".join(a.context)))
        return out

    def records(self) -> list[dict]:
        pipe = self.store.binary.pipeline(transaction=False)
        for _, _, did, _, _ in self.sent:
            pipe.hgetall(self.store.keys.decision(did))
        return [decode(r) if r else {} for r in pipe.execute()]


def report(pop: Population, orc: dict, val: np.ndarray, sends: np.ndarray, days: int) -> None:
    names = [t.name for t in pop.params.types]
    users = pop.params.users
    tu = orc["type_users"]
    ov = orc["day_type"]
    print(f"oracle {orc['per_user']:+.3f}/user ({orc['label']}); best fixed {orc['best_fixed']} "
          f"{orc['best_fixed_per_user']:+.3f}")
    print("day  value/user  oracle  ratio | per type value/user (oracle) and sends/user/day")
    for d in range(days):
        cells = " | ".join(f"{n[:5]} {val[d, k] / tu[k]:+.4f} ({ov[d, k] / tu[k]:+.4f}) {sends[d, k] / tu[k]:.2f}"
                           for k, n in enumerate(names))
        print(f"{d + 1:3d} {val[d].sum() / users:+.4f} {ov[d].sum() / users:+.4f} "
              f"{val[d].sum() / max(ov[d].sum(), 1e-9):5.2f} | {cells}")
    for a, b in ((0, 10), (10, 20), (20, 30), (0, days)):
        if b > days:
            continue
        v, o = val[a:b].sum(0), ov[a:b].sum(0)
        cells = "; ".join(f"{n} {v[k] / tu[k]:+.3f} (oracle {o[k] / tu[k]:+.3f}, {sends[a:b, k].sum() / tu[k] / (b - a):.2f}/d)"
                          for k, n in enumerate(names))
        print(f"days {a + 1}-{b}: {v.sum() / users:+.3f}/user, oracle {o.sum() / users:+.3f}, "
              f"ratio {v.sum() / o.sum():.2f}; {cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--mix", default="enthusiastic")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine-seed", type=int, default=None)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    ap.add_argument("--policy", default="{}")
    ap.add_argument("--cache", default=None, help="the baselines' per-day oracle (default /tmp/sim-days-oracle-...)")
    ap.add_argument("--out", default="/tmp/sim-days.pkl")
    a = ap.parse_args()
    pop = Population(SimParams(users=a.users, days=a.days, mix=a.mix, seed=a.seed))
    base = Settings(redis_url=a.redis_url, seed=a.seed if a.engine_seed is None else a.engine_seed)
    cache = a.cache or f"/tmp/sim-days-oracle-{a.mix}-{a.seed}-{a.users}-{a.days}.pkl"
    orc = oracle_days(pop, base, cache)
    print(f"{a.users} users, {a.days} days, {a.mix}, seed {a.seed}; oracle from {cache}", flush=True)
    s = base.replace(prefix=f"bpdays{uuid.uuid4().hex[:6]}:", **json.loads(a.policy))
    store = Store.connect(s)
    try:
        t = time.perf_counter()
        gw = Recording(store, s, pop)
        r = run(pop, gw, a.policy, dict(s.weights))
        recs = gw.records()
        secs = time.perf_counter() - t
        val, sends = per_day_type(pop, r.pushes, a.days)
        print(f"{a.policy}: {r.expected / r.users:+.3f}/user, {orc['per_user'] and r.expected / r.users / orc['per_user']:.2f} "
              f"of the oracle, sends/user/day {r.sends / r.users / a.days:.2f}, unsub/send "
              f"{r.outcomes['unsubscribed'] / max(r.sends, 1):.5f} [{secs:.0f} s]")
        report(pop, orc, val, sends, a.days)
        with open(a.out, "wb") as f:
            pickle.dump({"args": vars(a), "types": pop.type, "oracle": orc, "val": val, "sends": sends,
                         "ticks": gw.ticks, "reasons": dict(gw.reasons), "sent": gw.sent, "records": recs,
                         "segment_day": r.segment_day, "per_user": r.expected / r.users,
                         "pushes": [(i, ts, exp) for i, _, ts, _, exp in r.pushes]}, f)
        print(f"wrote {a.out}")
    finally:
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
