"""Off-policy estimators: what a candidate policy would have earned, from a log of another policy.

Every function takes one row per logged decision, as 1-D arrays of length n:

rewards : float array of shape (n,)
    The observed reward of the logged action.
logging_prob : float array of shape (n,)
    The logging policy's probability of the action it took, in (0, 1].
target_prob : float array of shape (n,)
    The candidate's probability of that same logged action, in [0, 1].
reward_hat : float array of shape (n,)
    A reward model's prediction for the logged action (DR only).
reward_hat_target : float array of shape (n,)
    The reward model's expected reward under the candidate's action
    distribution for the row's context, sum_a pi(a|x) q(x, a) (DM and DR).
unsupported_mass : float array of shape (n,), optional
    The candidate's probability on actions the logger gives zero propensity in
    that context. No estimator can see those actions' rewards, so any positive
    value raises a ``missing_support`` warning.

Pure numpy: no Redis, no service code, usable from a notebook on a log file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

Z95 = 1.959963984540054  # standard normal 97.5% quantile
TINY_PROPENSITY = 1e-3   # logging_prob < TINY * target_prob: one row's weight exceeds 1000
MIN_ESS_FRACTION = 0.01  # effective sample size below 1% of n
BOOTSTRAP_CELLS = 1 << 23  # replicate x unit indices drawn per chunk (bounded memory at any n)
MAX_UNITS = 1 << 16        # above this many rows, resample shuffled groups of rows


@dataclass(frozen=True)
class OpeWarning:
    """A reason to distrust an estimate: ``code`` is stable, ``message`` is for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Estimate:
    """One estimator's value of the candidate policy per logged decision.

    ``ci_low``/``ci_high`` are the 95% percentile bootstrap interval;
    ``normal_low``/``normal_high`` the analytic interval estimate +- 1.96 se.
    ``ess`` is (sum w)^2 / sum w^2 of the (clipped) importance weights; ``n``
    the number of rows. ``replicates`` holds the bootstrap values (for
    comparisons that must carry the estimate's own sampling noise).
    """

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    normal_low: float
    normal_high: float
    std_error: float
    ess: float
    n: int
    clip: float | None
    warnings: tuple[OpeWarning, ...]
    replicates: Array = field(repr=False, compare=False, default_factory=lambda: np.empty(0))

    @property
    def warning_codes(self) -> tuple[str, ...]:
        """The codes of ``warnings``, for quick checks."""
        return tuple(w.code for w in self.warnings)


def _as_array(name: str, values, n: int | None) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n} (the length of rewards)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values (first at row {int(np.argmin(np.isfinite(arr)))})")
    return arr


def _check_prob(name: str, arr: Array, *, strictly_positive: bool) -> None:
    bad = (arr <= 0) | (arr > 1) if strictly_positive else (arr < 0) | (arr > 1)
    if bad.any():
        bound = "(0, 1]" if strictly_positive else "[0, 1]"
        row = int(np.argmax(bad))
        raise ValueError(f"{name} must lie in {bound}; row {row} holds {arr[row]!r}")


def _validate(rewards, logging_prob=None, target_prob=None, reward_hat=None,
              reward_hat_target=None, unsupported_mass=None) -> dict[str, Any]:
    """The inputs as float arrays of one length, probabilities checked; None for those not given (each estimator
    passes the ones it needs, so its look-ups are arrays: typed Any, not ``Array | None``)."""
    r = _as_array("rewards", rewards, None)
    n = r.shape[0]
    if n == 0:
        raise ValueError("rewards is empty: no logged rows to evaluate")
    out: dict[str, Any] = {"rewards": r}
    for name, values in (("logging_prob", logging_prob), ("target_prob", target_prob),
                         ("reward_hat", reward_hat), ("reward_hat_target", reward_hat_target),
                         ("unsupported_mass", unsupported_mass)):
        out[name] = None if values is None else _as_array(name, values, n)
    if out["logging_prob"] is not None:
        _check_prob("logging_prob", out["logging_prob"], strictly_positive=True)
    for name in ("target_prob", "unsupported_mass"):
        if out[name] is not None:
            _check_prob(name, out[name], strictly_positive=False)
    return out


def _clip_weights(w: Array, clip: float | None) -> Array:
    if clip is None:
        return w
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    return np.minimum(w, clip)


def effective_sample_size(weights: Array) -> float:
    """(sum w)^2 / sum w^2: how many equally weighted rows the weights are worth."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.dot(w, w))
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def _warnings(n: int, ess: float | None, logging_prob: Array | None, target_prob: Array | None,
              unsupported_mass: Array | None, tiny: float, min_ess_fraction: float) -> tuple[OpeWarning, ...]:
    found = []
    if logging_prob is not None and target_prob is not None:
        tiny_rows = (target_prob > 0) & (logging_prob < tiny * target_prob)
        if tiny_rows.any():
            found.append(OpeWarning(
                "tiny_propensity",
                f"{int(tiny_rows.sum())} of {n} rows have a logging propensity below {tiny:g} x the candidate's "
                f"probability (smallest {float(logging_prob[tiny_rows].min()):.3g}); their weights dominate"))
    if ess is not None and ess < min_ess_fraction * n:
        found.append(OpeWarning(
            "low_ess",
            f"effective sample size {ess:.1f} is below {min_ess_fraction:.0%} of the {n} rows"))
    if unsupported_mass is not None and (unsupported_mass > 0).any():
        rows = int((unsupported_mass > 0).sum())
        found.append(OpeWarning(
            "missing_support",
            f"in {rows} of {n} rows the candidate puts probability (mean {float(unsupported_mass.mean()):.3g}) "
            "on actions the logger never takes there; no estimate can see their rewards"))
    return tuple(found)


def resampled_sums(columns: Array, n_bootstrap: int, seed: int | np.random.Generator) -> Array:
    """Column sums of ``n_bootstrap`` with-replacement resamples of the rows.

    columns : float array of shape (n, k). Returns shape (n_bootstrap, k).
    Indices are drawn as one (chunk, units) array per chunk, chunks sized so
    memory stays bounded; every statistic here is a ratio of column sums, so
    several estimators can share one draw. Above ``MAX_UNITS`` rows, rows are
    first shuffled (seeded) into ``MAX_UNITS`` groups of near-equal size and the
    groups are resampled: the group sums are exchangeable, the resampled total
    keeps the row-level variance, and a million rows cost 65,536 draws per
    replicate instead of a million (the percentile interval gets slightly less
    skewed than a row-level one would be).
    """
    rng = np.random.default_rng(seed)
    columns = np.asarray(columns, dtype=np.float64)
    n, k = columns.shape
    units = columns
    if n > MAX_UNITS:
        shuffled = columns[rng.permutation(n)]
        starts = (np.arange(MAX_UNITS, dtype=np.int64) * n) // MAX_UNITS
        units = np.add.reduceat(shuffled, starts, axis=0)
    m = units.shape[0]
    cols = [np.ascontiguousarray(units[:, j]) for j in range(k)]
    out = np.empty((n_bootstrap, k))
    step = max(1, BOOTSTRAP_CELLS // m)
    for start in range(0, n_bootstrap, step):
        stop = min(n_bootstrap, start + step)
        idx = rng.integers(0, m, size=(stop - start, m), dtype=np.int32)
        for j, col in enumerate(cols):
            out[start:stop, j] = np.take(col, idx).sum(axis=1)
    return out


def _finish(name: str, estimate: float, se: float, replicates: Array, ess: float, n: int,
            clip: float | None, warns: tuple[OpeWarning, ...]) -> Estimate:
    lo, hi = np.quantile(replicates, [0.025, 0.975]) if replicates.size else (np.nan, np.nan)
    return Estimate(name, float(estimate), float(lo), float(hi), float(estimate - Z95 * se),
                    float(estimate + Z95 * se), float(se), float(ess), n, clip, warns, replicates)


def _mean_estimate(name: str, terms: Array, ess: float, clip, warns, n_bootstrap, seed) -> Estimate:
    n = terms.shape[0]
    se = float(terms.std(ddof=1)) / np.sqrt(n) if n > 1 else 0.0
    reps = resampled_sums(terms[:, None], n_bootstrap, seed)[:, 0] / n if n_bootstrap else np.empty(0)
    return _finish(name, float(terms.mean()), se, reps, ess, n, clip, warns)


def ips(rewards, logging_prob, target_prob, *, clip: float | None = None, unsupported_mass=None,
        n_bootstrap: int = 1000, seed: int = 0, tiny: float = TINY_PROPENSITY,
        min_ess_fraction: float = MIN_ESS_FRACTION) -> Estimate:
    """Inverse propensity scoring: mean of w * r with w = target / logging (clipped at ``clip``).

    Unbiased without clipping when the logger covers the candidate's actions;
    clipping trades a downward bias for less variance.
    """
    a = _validate(rewards, logging_prob, target_prob, unsupported_mass=unsupported_mass)
    w = _clip_weights(a["target_prob"] / a["logging_prob"], clip)
    ess = effective_sample_size(w)
    n = w.shape[0]
    warns = _warnings(n, ess, a["logging_prob"], a["target_prob"], a["unsupported_mass"], tiny, min_ess_fraction)
    return _mean_estimate("ips", w * a["rewards"], ess, clip, warns, n_bootstrap, seed)


def snips(rewards, logging_prob, target_prob, *, clip: float | None = None, unsupported_mass=None,
          n_bootstrap: int = 1000, seed: int = 0, tiny: float = TINY_PROPENSITY,
          min_ess_fraction: float = MIN_ESS_FRACTION) -> Estimate:
    """Self-normalised IPS: sum(w r) / sum(w).

    Slightly biased but bounded by the reward range, and much less variable
    than IPS when a few weights are huge. The analytic interval uses the delta
    method (terms w (r - estimate) / mean w).
    """
    a = _validate(rewards, logging_prob, target_prob, unsupported_mass=unsupported_mass)
    r = a["rewards"]
    w = _clip_weights(a["target_prob"] / a["logging_prob"], clip)
    n = w.shape[0]
    ess = effective_sample_size(w)
    warns = _warnings(n, ess, a["logging_prob"], a["target_prob"], a["unsupported_mass"], tiny, min_ess_fraction)
    total = float(w.sum())
    est = float(np.dot(w, r)) / total if total > 0 else 0.0
    se = 0.0
    if total > 0 and n > 1:
        se = float((w * (r - est)).std(ddof=1)) / (total / n) / np.sqrt(n)
    reps = np.empty(0)
    if n_bootstrap:
        sums = resampled_sums(np.column_stack([w * r, w]), n_bootstrap, seed)
        # a resample that drew only zero-weight rows says nothing; call it 0 like the point estimate
        reps = np.divide(sums[:, 0], sums[:, 1], out=np.zeros(n_bootstrap), where=sums[:, 1] > 0)
    return _finish("snips", est, se, reps, ess, n, clip, warns)


def direct_method(reward_hat_target, *, unsupported_mass=None, n_bootstrap: int = 1000,
                  seed: int = 0) -> Estimate:
    """Direct method: the reward model's expected reward under the candidate, averaged over logged contexts.

    No importance weights, so low variance, but biased wherever the reward
    model is; the interval reflects only the contexts' sampling noise, not the
    model's error. ``ess`` is n.
    """
    a = _validate(reward_hat_target, unsupported_mass=unsupported_mass)
    q = a["rewards"]
    n = q.shape[0]
    warns = _warnings(n, None, None, None, a["unsupported_mass"], TINY_PROPENSITY, MIN_ESS_FRACTION)
    return _mean_estimate("dm", q, float(n), None, warns, n_bootstrap, seed)


def doubly_robust(rewards, logging_prob, target_prob, reward_hat, reward_hat_target, *,
                  clip: float | None = None, unsupported_mass=None, n_bootstrap: int = 1000, seed: int = 0,
                  tiny: float = TINY_PROPENSITY, min_ess_fraction: float = MIN_ESS_FRACTION) -> Estimate:
    """Doubly robust: DM plus an IPS correction of the model's residual on the logged action.

    Mean of q_pi(x) + w (r - q(x, a)). Unbiased if either the propensities or
    the reward model are right, and less variable than IPS when the model is
    good.
    """
    a = _validate(rewards, logging_prob, target_prob, reward_hat, reward_hat_target, unsupported_mass)
    w = _clip_weights(a["target_prob"] / a["logging_prob"], clip)
    n = w.shape[0]
    ess = effective_sample_size(w)
    warns = _warnings(n, ess, a["logging_prob"], a["target_prob"], a["unsupported_mass"], tiny, min_ess_fraction)
    terms = a["reward_hat_target"] + w * (a["rewards"] - a["reward_hat"])
    return _mean_estimate("dr", terms, ess, clip, warns, n_bootstrap, seed)


def difference_interval(estimate: Estimate, observed_rewards, *, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """Interval for estimate - observed mean, carrying both samples' noise.

    The estimate's bootstrap replicates minus an equal number of bootstrap
    means of the observed on-policy rewards (resampled rows, seeded), and the
    percentile interval of that difference. Returns (difference, low, high);
    the two agree at ``level`` when low <= 0 <= high.
    """
    obs = _as_array("observed_rewards", observed_rewards, None)
    if obs.shape[0] == 0:
        raise ValueError("observed_rewards is empty")
    reps = estimate.replicates
    if reps.size == 0:
        raise ValueError("estimate has no bootstrap replicates (n_bootstrap was 0)")
    obs_means = resampled_sums(obs[:, None], reps.size, seed)[:, 0] / obs.shape[0]
    diff = reps - obs_means
    tail = (1 - level) / 2
    lo, hi = np.quantile(diff, [tail, 1 - tail])
    return float(estimate.estimate - obs.mean()), float(lo), float(hi)
