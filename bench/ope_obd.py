"""Off-policy evaluation on the Open Bandit Dataset sample, and the estimators' speed on a million rows.

    .venv/bin/python bench/ope_obd.py [--obd PATH] [--rows N]

Per campaign: the uniform-random policy's CTR estimated from the Bernoulli
Thompson sampling log (IPS, SNIPS, DR; unclipped and with weights clipped at
10), 95% percentile-bootstrap CI (B=1000, seed 0), effective sample size,
warnings, the CTR observed in the random policy's own log, and whether the
95% interval of (estimate - observed) -- bootstrap of the estimate minus a
bootstrap of the observed mean -- contains 0. Then the time to evaluate a
synthetic log with all four estimators and their bootstraps, as seconds and as
a ratio to a plain ``np.mean`` over the same rewards measured in the same run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bandit_push import ope
from bandit_push.ope import obd

REPO = Path(__file__).resolve().parents[1]
OBD = REPO.parent / "shared/data/obd"
CLIPS = (None, 10.0)


def obd_table(root: Path) -> None:
    print(f"{'campaign':8} {'estimator':9} {'clip':>4} {'estimate':>9} {'95% CI':>19} {'ESS':>7} "
          f"{'observed':>9} {'diff 95% CI':>21} {'covered':>7}  warnings")
    for campaign in obd.CAMPAIGNS:
        for v in obd.validate_campaign(root, campaign, clips=CLIPS):
            e = v.estimate
            ci = f"[{e.ci_low:.5f}, {e.ci_high:.5f}]"
            diff = f"[{v.diff_low:+.5f}, {v.diff_high:+.5f}]"
            print(f"{campaign:8} {e.estimator:9} {e.clip or '-':>4} {e.estimate:9.5f} {ci:>19} {e.ess:7.1f} "
                  f"{v.observed_ctr:9.5f} {diff:>21} {'yes' if v.covered else 'NO':>7}  "
                  f"{','.join(e.warning_codes) or '-'}")


def timing(n: int) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 1.0, n)
    pi = rng.uniform(0.0, 1.0, n)
    r = (rng.random(n) < 0.05).astype(float)
    q, qpi = np.full(n, 0.05), np.full(n, 0.05)
    t0 = time.perf_counter()
    for _ in range(20):
        float(np.mean(r))
    base = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    ope.ips(r, p, pi)
    ope.snips(r, p, pi)
    ope.direct_method(qpi)
    ope.doubly_robust(r, p, pi, q, qpi)
    took = time.perf_counter() - t0
    print(f"timing: {n:,} rows, IPS+SNIPS+DM+DR with B=1000 bootstrap: {took:.2f} s; "
          f"np.mean baseline {base * 1e3:.3f} ms; ratio {took / base:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obd", type=Path, default=OBD)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    obd_table(args.obd)
    print()
    timing(args.rows)


if __name__ == "__main__":
    main()
