"""The engagement model's refit at scale: N users' hashes written to a Redis, then the policy refit (SCAN, fit,
publish) timed against the segmentation refit over the same users, in the same run (the machine is shared).

Usage:
    .venv/bin/python bench/engagement_fit.py [--users 100000] [--redis-url redis://127.0.0.1:6379/15]

Prints seconds of each refit, their ratio, and the fitted parameters against the ones the users were drawn from.
Keys go under their own prefix and are deleted afterwards.
"""
from __future__ import annotations

import argparse
import time
import uuid

import numpy as np

from bandit_push import refit
from bandit_push.config import Settings
from bandit_push.store import Store

NOW = 1769990400.0


def populate(store: Store, n: int, rng: np.random.Generator) -> None:
    """n users with organic history and push evidence drawn from kappa 3, b = (-0.5, 0.4, 0.2)."""
    views = rng.poisson(rng.choice([3, 25, 90], n))
    purchases = rng.poisson(views * 0.05)
    x1, x2 = np.log1p(views * 30 / 40), np.log1p(purchases * 30 / 40)
    g = np.exp(-0.5 + 0.4 * x1 + 0.2 * x2)
    x = rng.uniform(0.3, 5, n)
    e = rng.poisson(rng.gamma(3.0, g / 3.0) * x)
    pipe = store.redis.pipeline(transaction=False)
    for i in range(n):
        pipe.hset(store.keys.user(f"user{i}"), mapping={
            "sg": "s1", "ff": repr(NOW - 40 * 86400), "fl": repr(NOW - 86400), "f:view": int(views[i]),
            "f:purchase": int(purchases[i]), "pe": f"{NOW:.10g} {e[i]:.5g} {x[i]:.5g}"})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
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
            print(f"{name} refit: {times[name]:.1f} s", flush=True)
        print(f"policy / segments refit time: {times['policy'] / times['segments']:.2f}")
        print(f"fitted kappa {out['kappa']:.2f} (drawn from 3), b {np.round(out['b'], 3).tolist()} "
              f"(drawn from [-0.5, 0.4, 0.2]); held-out NLL per user {out['heldout_nll']:.4f} with the organic "
              f"features, {out['heldout_nll_without_features']:.4f} without")
    finally:
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
