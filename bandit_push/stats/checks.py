"""Health checks on an experiment: sample-ratio mismatch and guardrail metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from bandit_push.stats._json import JsonMixin
from bandit_push.stats.inference import welch

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SampleRatio(JsonMixin):
    """Chi-square goodness of fit of observed users per variant against configured weights.

    A flagged mismatch means assignment or logging is broken, and every other
    number in the report is suspect.
    """

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    threshold: float
    flagged: bool


def sample_ratio_check(
    observed: Mapping[str, int], weights: Mapping[str, float], threshold: float = SRM_THRESHOLD
) -> SampleRatio:
    """Compare users exposed per variant with the traffic weights; flag at p < threshold.

    observed : users per variant name; weights : positive weight per variant
    name (need not sum to one). Both must name the same variants.
    """
    if set(observed) != set(weights):
        raise ValueError("observed counts and weights must name the same variants")
    names = list(weights)
    w = np.array([weights[n] for n in names], dtype=np.float64)
    if len(names) < 2 or np.any(w <= 0):
        raise ValueError("need two or more variants with positive weights")
    obs = np.array([observed[n] for n in names], dtype=np.float64)
    total = obs.sum()
    expected = total * w / w.sum()
    if total == 0:
        chi2, p = 0.0, 1.0
    else:
        chi2, p = sps.chisquare(obs, expected)
    return SampleRatio(
        observed={n: int(o) for n, o in zip(names, obs)},
        expected={n: float(e) for n, e in zip(names, expected)},
        chi2=float(chi2), p_value=float(p), threshold=threshold, flagged=bool(p < threshold),
    )


@dataclass(frozen=True)
class GuardrailResult(JsonMixin):
    """One-sided test that a variant is worse than control on a guardrail metric.

    `breached` when the variant is worse by more than `margin` with p < alpha.
    """

    metric: str
    variant: str
    control_value: float
    variant_value: float
    difference: float
    p_value: float
    alpha: float
    margin: float
    higher_is_better: bool
    breached: bool


def guardrail_check(
    metric: str, variant: str, control: npt.ArrayLike, treated: npt.ArrayLike,
    higher_is_better: bool = False, alpha: float = 0.05, margin: float = 0.0,
) -> GuardrailResult:
    """One-sided Welch test of "variant worse than control by more than margin".

    control, treated : per-user values (e.g. 1.0 if the user unsubscribed, else 0.0).
    For a lower-is-better metric such as unsubscribe rate, worse means higher.
    """
    est = welch(control, treated, alpha=alpha)
    harm = -est.difference if higher_is_better else est.difference  # positive = variant worse
    if est.se > 0:
        p = float(sps.t.sf((harm - margin) / est.se, est.df))
    else:
        p = 0.0 if harm > margin else 1.0
    return GuardrailResult(
        metric=metric, variant=variant, control_value=est.control_value, variant_value=est.variant_value,
        difference=est.difference, p_value=p, alpha=alpha, margin=margin,
        higher_is_better=higher_is_better, breached=p < alpha,
    )
