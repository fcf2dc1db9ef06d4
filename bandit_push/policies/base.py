"""The policy interface and the arithmetic every policy shares.

An arm holds decayed counts for one context (segment, recency bucket, local
daypart): ``n`` sends and, per outcome, how many of them led to it. Each
outcome rate has an independent Beta posterior; the **net value** of a push is
``sum_i w_i * rate_i``. Its posterior mean and variance follow from the Betas' moments.

The priors are **pooled** (hierarchical, empirical Bayes): a context's rate starts from its
segment's rate, the segment's from the whole policy space's, and the space's from the
configured ``prior_rates``. Each level's prior is worth ``pool_events`` pseudo-*events* of
its outcome, i.e. ``pool_events / rate`` pseudo-sends:
a rare outcome (unsubscribes, a few per thousand pushes) borrows strength from thousands of
the parent's sends, a common one (clicks) from a few hundred, so a context learns its
engagement quickly while its opt-out risk comes from where there is data enough to see it.
(An unsubscribe among a policy's first hundred pushes moves the space's opt-out rate by a
fifth, not tenfold.) ``pool_events = 0`` switches pooling off: every context starts from the prior
rates worth ``prior_strength`` pseudo-sends.

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
    pool: float = 0.0   #: pseudo-events of each pooled prior (0: no pooling)

    @classmethod
    def from_settings(cls, s: Settings, pool: float | None = None) -> "Prior":
        rates = np.array([s.prior_rates.get(o, 0.5) for o in OUTCOMES])
        return cls(alpha=rates * s.prior_strength, beta=(1 - rates) * s.prior_strength,
                   weights=np.array([s.weights.get(o, 0.0) for o in OUTCOMES], dtype=np.float64),
                   pool=float(s.pool_events if pool is None else pool))


#: a pooled rate is kept below 1 so that its Beta prior stays proper
RATE_MAX = 0.999999


def pooled_prior(prior: Prior, seg_n: npt.NDArray[np.float64], seg_counts: npt.NDArray[np.float64],
                 all_n: npt.NDArray[np.float64], all_counts: npt.NDArray[np.float64]
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Beta prior pseudo-counts (alpha, beta) of contexts, each of shape (arms, len(OUTCOMES)).

    ``seg_n``/``seg_counts``: the decayed totals of each context's segment, ``all_n``/``all_counts``
    those of the whole policy space (shapes (arms,) and (arms, len(OUTCOMES))). The Lua kernel
    (``posterior`` in lua/includes/posterior.lua) performs the same operations in the same order.
    """
    all_n = np.asarray(all_n, dtype=np.float64)[:, None]
    seg_n = np.asarray(seg_n, dtype=np.float64)[:, None]
    sp = prior.pool
    rate0 = prior.alpha / (prior.alpha + prior.beta)
    g = (sp + all_counts) / (sp / rate0 + np.maximum(all_n, all_counts))
    s = np.minimum((sp + seg_counts) / (sp / g + np.maximum(seg_n, seg_counts)), RATE_MAX)
    return np.full_like(s, prior.pool), prior.pool * (1 - s) / s


def net_value_posterior(n: npt.NDArray[np.float64], counts: npt.NDArray[np.float64], prior: Prior,
                        parents: tuple[npt.NDArray[np.float64], ...] | None = None,
                        theta: tuple[float, float] = (1.0, 0.0)
                        ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Posterior mean and variance of the net value per push.

    n : array of shape (arms,), decayed sends
    counts : array of shape (arms, len(OUTCOMES)), decayed outcome counts
    parents : (segment sends, segment counts, space sends, space counts), shaped like n and counts,
        for the pooled prior; without them (or with ``prior.pool == 0``) the prior rates alone.
    theta : the mean and variance of the user's engagement multiplier (:mod:`bandit_push.engagement`),
        which scales the positive-weight part; the default (1, 0) is the context's own value.
    Returns (mean, variance), each of shape (arms,).
    """
    n = np.asarray(n, dtype=np.float64)[:, None]
    counts = np.asarray(counts, dtype=np.float64)
    if prior.pool > 0 and parents is not None:
        pa, pb = pooled_prior(prior, *parents)
    else:
        pa, pb = prior.alpha, prior.beta
    a = pa + counts
    b = pb + np.maximum(n - counts, 0.0)
    ab = a + b
    w = prior.weights
    m, v = w * a / ab, w * w * a * b / (ab * ab * (ab + 1))
    pos = w > 0  # the sums in the script's order: a zero term leaves a float sum unchanged
    mp, vp = np.where(pos, m, 0.0).sum(axis=1), np.where(pos, v, 0.0).sum(axis=1)
    mn, vn = np.where(pos, 0.0, m).sum(axis=1), np.where(pos, 0.0, v).sum(axis=1)
    th, vth = theta
    return th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn


def pacing_load(means: npt.ArrayLike, cost: float, window_hours: float, long_hours: float) -> int:
    """The load with the best steady rate: -1 for "not pushed within ``long_hours``", else a number of pushes in
    the last ``window_hours`` (the first on ties).

    ``means``: the net value's posterior means of a segment's load arms: ``means[0]`` of pushes to users not pushed
    within ``long_hours`` (or never), ``means[1 + j]`` of pushes to users with ``j`` pushes in the last
    ``window_hours`` (the last: ``j`` or more).

    **Pacing.** A push tires the user, so its value depends on how many pushes came before it, not only on how
    long ago the last one was. A cadence held steady at load ``j`` makes every push see ``j`` earlier pushes in the
    window, and earns ``(mean_j - cost) * (j + 1)`` per window (renewal reward); a push every ``long_hours``,
    ``(mean_L - cost) * window / long``. A policy with pacing refuses (reason ``pacing``) while the user's load is
    above the best one, and Thompson sampling or UCB decides below it. The load arms learn from pushes at each load,
    whatever the user's history, so a frequently pushed segment's high-load arms fill with data and show what
    over-pushing costs; a segment whose pushes lose money everywhere is held to one push per ``long_hours``.
    With the ``pacing_caution`` setting, see :func:`pacing_choice`.
    The Lua kernel (``pace_load`` in lua/includes/pacing.lua) performs the same operations in the same order.
    """
    m = np.asarray(means, dtype=np.float64)
    best, bj = (m[0] - cost) * window_hours / long_hours, -1
    for j in range(len(m) - 1):
        r = (m[j + 1] - cost) * (j + 1)
        if r > best:
            best, bj = r, j
    return bj


def pacing_choice(means: npt.ArrayLike, variances: npt.ArrayLike, cost: float, window_hours: float,
                  long_hours: float, caution: float = 0.0, sends: npt.ArrayLike | None = None,
                  explore: float = 0.0, min_sends: float = 0.0) -> int:
    """:func:`pacing_load` among the loads a segment has seen, one step at a time, and with ``pacing_caution``.

    **One step above what was seen** (``min_sends`` > 0, ``sends``: each arm's decayed sends, in the order of
    ``means``). A load arm without data takes the pooled prior, the same for every load, so when the segment's value
    beats the cost the highest load's rate ``(mean - cost) * (j + 1)`` wins and the whole segment is pushed at once as
    often as the guardrails allow (the simulation's bursts of 100-300 pushes a day to a regular segment). So the loads
    above the frontier, one above the highest load arm with ``min_sends`` decayed sends, are not chosen, and the
    frontier is ranked by its posterior mean plus ``explore`` sds: a segment climbs one load at a time as the
    evidence at each load comes in, and one held at a push a week, whose pushed users all sit at load 1, still tries
    load 0 and learns whether it pays. (Exploring only above the best load seen, rather than the highest, spared
    the casual mix's regular users some pushes but left the balanced mix's enthusiasts under-pushed: 0.54-0.72 of
    the oracle against 0.77-0.79; docs/simulation.md.)

    **Caution** (``caution``): whether a segment is pushed more than once per ``long_hours`` at all is decided as
    above; if so, which load by lower bounds, ``mean - caution * sd`` (``variances``: the posterior variances, in the
    same order as ``means``). An arm's noise counts ``j + 1`` times in its rate, so the best of several thinly
    observed high loads looks better than it is (the winner's curse); a lower bound ranks them more soberly. The
    week-rested arm is left out of that ranking: it is the best observed arm of a segment paced to it, and users
    pushed within a week are refused there, so the load arms would never get the data that lifts their bounds
    above it.
    The Lua kernel (``pace_choice`` in lua/includes/pacing.lua) performs the same operations in the same order.
    """
    m = [float(x) for x in np.asarray(means, dtype=np.float64)]
    var = [float(x) for x in np.asarray(variances, dtype=np.float64)]
    if min_sends > 0 and sends is not None:
        n = [float(x) for x in np.asarray(sends, dtype=np.float64)]
        # the loads seen (the week-rested arm always a choice), and the next one up from the best of them
        # the frontier's index (means[0] is the week-rested arm); a push from rest is a push at load 0 too, so
        # its sends count as load 0's: else after a cold start every pushed user sits at load 1 with the frontier
        # at 0 and nobody is pushed for a whole pacing window
        top = 2 if n[0] + n[1] >= min_sends else 1
        for i in range(2, len(m)):
            if n[i] >= min_sends:
                top = i + 1
        if top < len(m):
            m, var = m[:top + 1], var[:top + 1]
            m[top] = m[top] + explore * math.sqrt(var[top])
    bj = pacing_load(m, cost, window_hours, long_hours)
    if bj >= 0 and caution > 0:
        lows = [-math.inf] + [m[i] - caution * math.sqrt(var[i]) for i in range(1, len(m))]
        bj = pacing_load(lows, cost, window_hours, long_hours)
    return bj


@dataclass(frozen=True)
class ArmView:
    """What a policy sees of one context at decision time (counts already decayed to now)."""

    n: float
    counts: npt.NDArray[np.float64]
    segment_sends: float
    hours_since_push: float | None
    #: the segment's and the whole space's decayed (sends, counts), for the pooled prior
    segment_counts: npt.NDArray[np.float64] | None = None
    space: tuple[float, npt.NDArray[np.float64]] | None = None
    #: the user's engagement multiplier, mean and variance (engagement.user_theta); the default is the context's
    #: own value, (1, 1) a user without evidence under the engagement model before its first fit
    theta: tuple[float, float] = (1.0, 0.0)

    def posterior(self, prior: Prior) -> tuple[float, float]:
        """The net value's posterior (mean, variance) for this user in this context."""
        parents = None
        if self.segment_counts is not None and self.space is not None:
            parents = (np.array([self.segment_sends]), self.segment_counts[None, :],
                       np.array([self.space[0]]), self.space[1][None, :])
        mean, var = net_value_posterior(np.array([self.n]), self.counts[None, :], prior, parents, self.theta)
        return float(mean[0]), float(var[0])


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
        self.prior = Prior.from_settings(settings, pool=merged.get("pool_events"))

    def lua_params(self) -> dict[str, Any]:
        """The policy's part of the decide config: what its kernel (``bandit_push/lua/includes/kernels.lua``,
        the function named by ``kind``) reads."""
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
