"""The engagement model's refit at scale: N users' hashes written to a Redis, then the policy refit (SCAN, fit,
publish) timed against the segmentation refit over the same users, in the same run (the machine is shared); and
what the gate adds: one real decide per user (the service's decide script, under a first published version) with
their outcomes reported, then the policy refit with its gate (reading the closed decision log, replaying the serving
and the new version on it) against the same refit without it (``policy_gate_hours=0``), alternated ``--rounds``
times.

Usage:
    .venv/bin/python bench/engagement_fit.py [--users 100000] [--rounds 2] [--redis-url redis://127.0.0.1:6379/15]

Prints seconds of each refit, their ratios, the gate's verdict, and the fitted parameters against the ones the users
were drawn from. Keys go under their own prefix and are deleted afterwards.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

import numpy as np

from bandit_push import refit
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.feedback import FeedbackEvent, record
from bandit_push.store import Store

NOW = 1769990400.0


def populate(store: Store, n: int, rng: np.random.Generator) -> None:
    """n users with organic history and push evidence drawn from kappa 3, b = (-0.5, 0.4, 0.2)."""
    views = rng.poisson(rng.choice([3, 25, 90], n))
    purchases = rng.poisson(views * 0.05)
    x1, x2 = np.log1p(views * 30 / 40), np.log1p(purchases * 30 / 40)
    g = np.exp(-0.5 + 0.4 * x1 + 0.2 * x2)
    x = rng.uniform(0.3, 5, n)
    theta = rng.gamma(3.0, g / 3.0)
    THETA[:] = theta.tolist()
    e = rng.poisson(theta * x)
    pipe = store.redis.pipeline(transaction=False)
    for i in range(n):
        pipe.hset(store.keys.user(f"user{i}"), mapping={
            "sg": "s1", "ff": repr(NOW - 40 * 86400), "fl": repr(NOW - 86400), "f:view": int(views[i]),
            "f:purchase": int(purchases[i]), "pe": f"{NOW:.10g} {e[i]:.5g} {x[i]:.5g}"})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def decide_all(store: Store, s: Settings, n: int, rng: np.random.Generator) -> dict[str, int]:
    """One decide per user, spread over the 20 hours that end 26 hours before NOW (closed, in the gate's window at
    NOW), and each push's outcomes: a click with probability 0.1 x the user's drawn multiplier, else a dismissal with
    probability 0.3."""
    engine = DecisionEngine(store, s, rng=random.Random(2))
    start, step = NOW - 46 * 3600, 20 * 3600 / n
    pending: list[FeedbackEvent] = []
    counts = {"decisions": 0, "sends": 0, "feedback": 0}
    for i in range(n):
        now = start + i * step
        d = engine.decide(f"user{i}", now=now)
        counts["decisions"] += 1
        if d.send:
            counts["sends"] += 1
            u = rng.random()
            event = "clicked" if u < 0.1 * THETA[i] else "dismissed" if u > 0.7 else None
            if event:
                pending.append(FeedbackEvent(d.decision_id, event, now + 600))
        if len(pending) >= 1000 or i == n - 1:
            counts["feedback"] += len(pending)
            record(store, s, pending)
            pending = []
    return counts


THETA: list[float] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the refit with and without the gate")
    a = ap.parse_args()
    s = Settings(redis_url=a.redis_url, prefix=f"bpbench{uuid.uuid4().hex[:6]}:", seed=1)
    store = Store.connect(s)
    try:
        t = time.perf_counter()
        populate(store, a.users, np.random.default_rng(1))
        print(f"{a.users} users written in {time.perf_counter() - t:.1f} s", flush=True)
        times = {}
        for name in ("segments", "policy"):
            t = time.perf_counter()
            out = refit.run(store, s, name, "bench", now=NOW)
            times[name] = time.perf_counter() - t
            print(f"{name} refit: {times[name]:.1f} s (gate: {out.get('gate', {}).get('reason', '-')})", flush=True)
        print(f"policy / segments refit time: {times['policy'] / times['segments']:.2f}")
        print(f"fitted kappa {out['kappa']:.2f} (drawn from 3), b {np.round(out['b'], 3).tolist()} "
              f"(drawn from [-0.5, 0.4, 0.2]); held-out NLL per user {out['heldout_nll']:.4f} with the organic "
              f"features, {out['heldout_nll_without_features']:.4f} without")
        t = time.perf_counter()
        counts = decide_all(store, s, a.users, np.random.default_rng(2))
        print(f"decision log: {counts} in {time.perf_counter() - t:.1f} s", flush=True)
        gated: list[float] = []
        plain: list[float] = []
        for r in range(a.rounds):
            for gate_hours in ((48.0, 0.0) if r % 2 == 0 else (0.0, 48.0)):
                t = time.perf_counter()
                out = refit.run(store, s.replace(policy_gate_hours=gate_hours), "policy", "bench", now=NOW)
                (gated if gate_hours else plain).append(time.perf_counter() - t)
                if gate_hours:
                    verdict = out["gate"]
        print(f"policy refit with the gate: {' '.join(f'{x:.1f}' for x in gated)} s; without: "
              f"{' '.join(f'{x:.1f}' for x in plain)} s; ratio of medians "
              f"{statistics.median(gated) / statistics.median(plain):.2f}; the gate adds "
              f"{statistics.median(gated) - statistics.median(plain):.1f} s")
        print(f"gate: {verdict['message']}; window {verdict['window']}")
    finally:
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
