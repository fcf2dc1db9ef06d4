"""Fixed-horizon comparisons of a variant against control.

Means per user use Welch's t (unequal variances); ratio metrics (CTR = clicks
summed over users / sends summed over users) use the delta method, because the
user, not the send, is the randomisation unit and a user's sends are correlated.
Relative lift CIs use the delta method on the ratio of two independent means.

The Bayesian read-out uses a normal approximation: with a flat prior, the
posterior of the difference is N(difference, se^2) (the same standard error as
the frequentist interval). We use it for proportions too, rather than
Beta-Binomial, because per-user counts are not Bernoulli and a single method
keeps every metric comparable; with the hundreds of users per arm an experiment
needs, the two agree closely.

The `*_from_summary` functions take per-arm moments and broadcast over numpy
arrays, so simulations can evaluate thousands of experiments at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from bandit_push.stats._json import JsonMixin

ArrayLike = npt.ArrayLike


@dataclass(frozen=True)
class Estimate(JsonMixin):
    """Variant minus control for one metric, with a (1 - alpha) CI and a two-sided p-value.

    `relative_lift` is variant / control - 1; its CI comes from the delta method
    and is None-valued (NaN) when the control value is zero.
    """

    control_value: float
    variant_value: float
    difference: float
    se: float
    df: float  # Welch-Satterthwaite degrees of freedom; inf for the normal (delta-method) test
    ci_low: float
    ci_high: float
    p_value: float
    relative_lift: float
    lift_ci_low: float
    lift_ci_high: float
    alpha: float


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def welch_from_summary(
    mean_c: ArrayLike, var_c: ArrayLike, n_c: ArrayLike,
    mean_v: ArrayLike, var_v: ArrayLike, n_v: ArrayLike,
    alpha: float = 0.05,
) -> dict[str, np.ndarray]:
    """Welch's t on per-arm means, sample variances (ddof=1) and counts; broadcasts.

    Returns arrays: difference, se, df, ci_low, ci_high, p_value, relative_lift,
    lift_ci_low, lift_ci_high.
    """
    mean_c, var_c, n_c, mean_v, var_v, n_v = _arrays(mean_c, var_c, n_c, mean_v, var_v, n_v)
    vc, vv = var_c / n_c, var_v / n_v  # variances of the two means
    se = np.sqrt(vc + vv)
    diff = mean_v - mean_c
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vc + vv) ** 2 / (vc**2 / (n_c - 1) + vv**2 / (n_v - 1))
        t = diff / se
    p = 2.0 * sps.t.sf(np.abs(t), df)
    q = sps.t.ppf(1.0 - alpha / 2.0, df)
    lift, lift_lo, lift_hi = _relative_lift(mean_c, vc, mean_v, vv, alpha)
    return {
        "difference": diff, "se": se, "df": df,
        "ci_low": diff - q * se, "ci_high": diff + q * se, "p_value": p,
        "relative_lift": lift, "lift_ci_low": lift_lo, "lift_ci_high": lift_hi,
    }


def _relative_lift(
    mean_c: Any, var_mean_c: Any, mean_v: Any, var_mean_v: Any, alpha: float
) -> tuple[Any, Any, Any]:
    """Delta method for mean_v / mean_c - 1 with independent arms."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean_v / mean_c
        se = np.sqrt(var_mean_v / mean_c**2 + mean_v**2 * var_mean_c / mean_c**4)
    z = sps.norm.ppf(1.0 - alpha / 2.0)
    return ratio - 1.0, ratio - 1.0 - z * se, ratio - 1.0 + z * se


def _estimate(mean_c: float, mean_v: float, alpha: float, arrays: dict[str, Any]) -> Estimate:
    return Estimate(control_value=float(mean_c), variant_value=float(mean_v), alpha=alpha,
                    **{k: float(v) for k, v in arrays.items()})


def welch(control: ArrayLike, variant: ArrayLike, alpha: float = 0.05) -> Estimate:
    """Difference in means of per-user values (variant - control), Welch's t.

    control, variant : 1-d arrays of one value per exposed user.
    """
    c, v = _arrays(control, variant)
    if c.size < 2 or v.size < 2:
        raise ValueError("Welch's t needs at least two users per arm")
    out = welch_from_summary(c.mean(), c.var(ddof=1), c.size, v.mean(), v.var(ddof=1), v.size, alpha)
    return _estimate(c.mean(), v.mean(), alpha, out)


def ratio_moments(numerator: ArrayLike, denominator: ArrayLike) -> tuple[float, float, int]:
    """Ratio of sums and the delta-method variance of that ratio, for one arm.

    numerator, denominator : per-user arrays of equal length (e.g. clicks and sends).
    Returns (ratio, variance of ratio, users). The ratio sum(y)/sum(x) = mean(y)/mean(x)
    is linearised around the means: Var ~ (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n mean(x)^2).
    """
    y, x = _arrays(numerator, denominator)
    if y.shape != x.shape or y.ndim != 1:
        raise ValueError("numerator and denominator must be 1-d arrays of one value per user")
    n = y.size
    if n < 2 or x.sum() <= 0:
        raise ValueError("a ratio metric needs at least two users and a positive denominator")
    mx, my = x.mean(), y.mean()
    r = my / mx
    cov = np.cov(y, x, ddof=1)
    var = (cov[0, 0] - 2.0 * r * cov[0, 1] + r**2 * cov[1, 1]) / (n * mx**2)
    return float(r), float(max(var, 0.0)), n


def delta_ratio(
    control_num: ArrayLike, control_den: ArrayLike, variant_num: ArrayLike, variant_den: ArrayLike,
    alpha: float = 0.05,
) -> Estimate:
    """Difference of ratio metrics (variant - control), delta method with a normal test."""
    rc, vc, _ = ratio_moments(control_num, control_den)
    rv, vv, _ = ratio_moments(variant_num, variant_den)
    se = np.sqrt(vc + vv)
    diff = rv - rc
    z = sps.norm.ppf(1.0 - alpha / 2.0)
    if se > 0:
        p = 2.0 * sps.norm.sf(abs(diff) / se)
    else:  # both arms constant: identical ratios are no evidence, different ones are certain
        p = 1.0 if diff == 0 else 0.0
    lift, lo, hi = _relative_lift(np.float64(rc), np.float64(vc), np.float64(rv), np.float64(vv), alpha)
    return _estimate(rc, rv, alpha, {
        "difference": diff, "se": se, "df": np.inf, "ci_low": diff - z * se, "ci_high": diff + z * se,
        "p_value": p, "relative_lift": lift, "lift_ci_low": lo, "lift_ci_high": hi,
    })


@dataclass(frozen=True)
class Posterior(JsonMixin):
    """Bayesian read-out under the normal approximation N(difference, se^2), flat prior.

    `prob_beat_control` is P(variant better than control); `expected_loss` is
    E[max(0, shortfall)] in metric units if the variant is shipped and is in fact worse.
    """

    prob_beat_control: float
    expected_loss: float
    method: str = "normal approximation, flat prior"


def posterior_from_summary(
    difference: ArrayLike, se: ArrayLike, higher_is_better: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(probability to beat control, expected loss) for arrays of differences and standard errors."""
    d, s = _arrays(difference, se)
    gain = d if higher_is_better else -d  # positive = variant better
    with np.errstate(divide="ignore", invalid="ignore"):
        z = gain / s
    prob = sps.norm.cdf(z)
    # loss = max(0, -G) with G ~ N(gain, s^2): E = s*phi(gain/s) - gain*Phi(-gain/s)
    loss = s * sps.norm.pdf(z) - gain * sps.norm.cdf(-z)
    return prob, loss


def posterior(estimate: Estimate, higher_is_better: bool = True) -> Posterior:
    """Probability to beat control and expected loss for one fixed-horizon estimate."""
    prob, loss = posterior_from_summary(estimate.difference, estimate.se, higher_is_better)
    return Posterior(prob_beat_control=float(prob), expected_loss=float(loss))
