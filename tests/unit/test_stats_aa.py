"""A/A simulations: no true effect, so every "significant" result is a false positive.

Simulations are vectorised over runs with the library's broadcasting functions
(`welch_from_summary`, `mixture_radius`, `pooled_sd`), the same code the
per-experiment functions use.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandit_push.stats import (
    DEFAULT_MIXING_SD,
    delta_ratio,
    mixture_radius,
    pooled_sd,
    sequential_interval,
    welch_from_summary,
)

ALPHA = 0.05


def _net_value(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Skewed, zero-inflated per-user values, like net value per user."""
    return rng.binomial(1, 0.3, shape) * rng.lognormal(1.0, 1.0, shape) - 0.05 * rng.poisson(3, shape)


def test_fixed_horizon_false_positive_rate():
    runs, n = 2000, 400  # 2000 runs: the rate's standard error is 0.5 points, well inside 3%..7%
    rng = np.random.default_rng(2026)
    c, v = _net_value(rng, (runs, n)), _net_value(rng, (runs, n))
    out = welch_from_summary(c.mean(1), c.var(1, ddof=1), n, v.mean(1), v.var(1, ddof=1), n, ALPHA)
    rate = float(np.mean(out["p_value"] < ALPHA))
    covered = float(np.mean((out["ci_low"] <= 0) & (out["ci_high"] >= 0)))
    print(f"A/A fixed-horizon Welch false-positive rate: {rate:.3f} over {runs} runs")
    assert 0.03 <= rate <= 0.07
    assert covered == pytest.approx(1 - rate)


def test_ratio_metric_false_positive_rate():
    runs, n = 2000, 400
    rng = np.random.default_rng(9)
    sends = rng.poisson(rng.gamma(2.0, 2.0, (runs, 2, n)))  # heavy and light users
    clicks = rng.binomial(sends, rng.beta(2, 18, (runs, 2, n)))  # per-user CTR varies
    p = np.array([delta_ratio(clicks[r, 0], sends[r, 0], clicks[r, 1], sends[r, 1]).p_value for r in range(runs)])
    rate = float(np.mean(p < ALPHA))
    print(f"A/A delta-method CTR false-positive rate: {rate:.3f} over {runs} runs")
    assert 0.03 <= rate <= 0.07


def test_sequential_interval_survives_daily_peeking():
    runs, days, per_day = 1000, 14, 60  # 60 new users per arm per day, a look every day
    rng = np.random.default_rng(14)
    c, v = _net_value(rng, (runs, days * per_day)), _net_value(rng, (runs, days * per_day))
    looks = per_day * np.arange(1, days + 1)

    def cumulative(x):
        s1 = np.cumsum(x, axis=1)[:, looks - 1]
        s2 = np.cumsum(x * x, axis=1)[:, looks - 1]
        mean = s1 / looks
        return mean, (s2 - looks * mean**2) / (looks - 1)

    mc, vc = cumulative(c)
    mv, vv = cumulative(v)
    out = welch_from_summary(mc, vc, looks, mv, vv, looks, ALPHA)
    sigma = pooled_sd(vc, looks, vv, looks)
    radius = mixture_radius(out["se"] ** 2, (DEFAULT_MIXING_SD * sigma) ** 2, ALPHA)
    sequential_rate = float(np.mean(np.any(np.abs(out["difference"]) > radius, axis=1)))
    peeking_rate = float(np.mean(np.any(out["p_value"] < ALPHA, axis=1)))
    print(f"A/A with {days} daily looks: sequential {sequential_rate:.3f}, naive fixed-horizon {peeking_rate:.3f}")
    assert sequential_rate <= 0.05
    # Why the sequential interval exists: peeking at the fixed-horizon test inflates its error rate.
    assert peeking_rate > 0.08

    # The vectorised path agrees with the per-experiment function at one look.
    iv = sequential_interval(out["difference"][0, -1], out["se"][0, -1], sigma[0, -1], ALPHA)
    assert iv.ci_high - iv.difference == pytest.approx(radius[0, -1])
