"""The policy interface and the arithmetic every policy shares.

An arm holds decayed counts for one context (segment, recency bucket, local
daypart): ``n`` sends and, per outcome, how many of them led to it. Each
outcome rate has an independent Beta posterior (prior rates x prior strength
as pseudo-counts); the **net value** of a push is ``sum_i w_i * rate_i``. Its
posterior mean and variance follow from the Betas' moments.

The decision itself runs inside the decide Lua script (one Redis round trip);
the functions here are its numpy reference and serve reports and offline
evaluation. ``phi`` is the same polynomial approximation the script uses, so a
propensity computed here equals the one the script recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from bandit_push.config import OUTCOMES, Settings
from bandit_push.errors import ConfigError, InvalidArgument


def phi(z: float) -> float:
    """Standard normal CDF by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), as in the Lua script."""
    x = abs(z) / math.sqrt(2)
    t = 1 / (1 + 0.3275911 * x)
    y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
             + 0.254829592) * t * math.exp(-x * x)
    return 0.5 * (1 + y) if z >= 0 else 0.5 * (1 - y)


def phi_array(z: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """:func:`phi` elementwise on an array (same polynomial, same operation order)."""
    z = np.asarray(z, dtype=np.float64)
    x = np.abs(z) / math.sqrt(2)
    t = 1 / (1 + 0.3275911 * x)
    y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
             + 0.254829592) * t * np.exp(-x * x)
    return np.where(z >= 0, 0.5 * (1 + y), 0.5 * (1 - y))


@dataclass(frozen=True)
class Prior:
    """Beta prior pseudo-counts per outcome, in :data:`OUTCOMES` order."""

    alpha: npt.NDArray[np.float64]
    beta: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    @classmethod
    def from_settings(cls, s: Settings) -> "Prior":
        rates = np.array([s.prior_rates.get(o, 0.5) for o in OUTCOMES])
        return cls(alpha=rates * s.prior_strength, beta=(1 - rates) * s.prior_strength,
                   weights=np.array([s.weights.get(o, 0.0) for o in OUTCOMES], dtype=np.float64))


def net_value_posterior(n: npt.NDArray[np.float64], counts: npt.NDArray[np.float64],
                        prior: Prior) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Posterior mean and variance of the net value per push.

    n : array of shape (arms,), decayed sends
    counts : array of shape (arms, len(OUTCOMES)), decayed outcome counts
    Returns (mean, variance), each of shape (arms,).
    """
    n = np.asarray(n, dtype=np.float64)[:, None]
    counts = np.asarray(counts, dtype=np.float64)
    a = prior.alpha + counts
    b = prior.beta + np.maximum(n - counts, 0.0)
    ab = a + b
    w = prior.weights
    mean = (w * a / ab).sum(axis=1)
    var = (w * w * a * b / (ab * ab * (ab + 1))).sum(axis=1)
    return mean, var


@dataclass(frozen=True)
class ArmView:
    """What a policy sees of one context at decision time (counts already decayed to now)."""

    n: float
    counts: npt.NDArray[np.float64]
    segment_sends: float
    hours_since_push: float | None


@dataclass(frozen=True)
class LoggedArms:
    """What the decision log keeps of the arm each policy saw, one row per decision (arrays of shape (n,)).

    ``mean``/``var``: the net value's posterior at decision time (counts decayed to then, the service's
    prior and weights); ``segment_sends``: the segment's decayed sends (UCB's N);
    ``seconds_since_push``: since the user's last push, NaN if never pushed. Enough for every policy's
    send probability without the live arms (off-policy evaluation).
    """

    mean: npt.NDArray[np.float64]
    var: npt.NDArray[np.float64]
    segment_sends: npt.NDArray[np.float64]
    seconds_since_push: npt.NDArray[np.float64]


class Policy:
    """A send policy. Subclasses set ``name``, ``kind`` (the Lua kernel branch) and their settings.

    ``params`` are the policy's own settings (the JSON a growth team writes for a
    variant); :meth:`lua_params` what the decide script needs of them.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    defaults: ClassVar[dict[str, float]] = {}

    def __init__(self, settings: Settings, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise InvalidArgument(f"policy {self.name!r} has no setting {sorted(unknown)[0]!r}; "
                                  f"it takes {sorted(self.defaults)}", field=f"policy.{sorted(unknown)[0]}")
        merged = {k: float(getattr(settings, k, v)) for k, v in self.defaults.items()}
        for k, v in params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidArgument(f"policy setting {k} must be a finite number", field=f"policy.{k}")
            merged[k] = float(v)
        try:  # the ranges the service's own settings of the same names must keep (ucb_c >= 0, ...)
            settings.replace(**{k: merged[k] for k in params if hasattr(settings, k)})
        except ConfigError as e:
            raise InvalidArgument(f"policy setting {e.message.removeprefix('setting ')}",
                                  field=f"policy.{e.field}") from None
        self.params = merged
        self.prior = Prior.from_settings(settings)

    def lua_params(self) -> dict[str, float]:
        return dict(self.params)

    def send_probability(self, arm: ArmView) -> float:
        """Probability that this policy sends in this context (guardrails aside)."""
        raise NotImplementedError

    def send_probabilities(self, arms: LoggedArms) -> npt.NDArray[np.float64]:
        """Vectorised send probability from logged arm statistics, the decide script's arithmetic
        (guardrails aside: callers keep a refusal a refusal)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}
