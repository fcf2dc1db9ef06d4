"""An experiment report: every metric of every variant against control, and what it means in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bandit_push.stats._json import JsonMixin
from bandit_push.stats.checks import (
    GuardrailResult,
    SampleRatio,
    guardrail_check,
    sample_ratio_check,
)
from bandit_push.stats.inference import (
    Estimate,
    Posterior,
    delta_ratio,
    posterior,
    ratio_moments,
    welch,
)
from bandit_push.stats.sequential import (
    DEFAULT_MIXING_SD,
    SequentialInterval,
    pooled_sd,
    sequential_interval,
)

# Per-user arrays of one variant, by name: {"sends": array, "clicks": array, ...}, all of length n_users.
VariantData = Mapping[str, npt.ArrayLike]


@dataclass(frozen=True)
class Metric(JsonMixin):
    """How to compute one metric from per-user arrays.

    With `denominator` None the metric is the mean of `numerator` per user (Welch);
    otherwise it is sum(numerator) / sum(denominator) over users (delta method),
    e.g. CTR = clicks / sends.
    """

    name: str
    numerator: str
    denominator: str | None = None
    higher_is_better: bool = True
    label: str = ""

    @property
    def words(self) -> str:
        """The metric's name as the summary sentence uses it."""
        return self.label or self.name.replace("_", " ")


@dataclass(frozen=True)
class Guardrail(JsonMixin):
    """A per-user metric the variant must not make significantly worse (one-sided test)."""

    name: str
    column: str
    higher_is_better: bool = False
    alpha: float = 0.05
    margin: float = 0.0
    label: str = ""


DEFAULT_METRICS = (
    Metric("net_value_per_user", "net_value", label="net value per user"),
    Metric("sends_per_user", "sends", label="sends per user"),
    Metric("conversions_per_user", "conversions", label="conversions per user"),
    Metric("events_per_user", "events", label="events per user"),
    Metric("ctr", "clicks", "sends", label="CTR"),
)
DEFAULT_GUARDRAILS = (Guardrail("unsubscribe_rate", "unsubscribed", label="unsubscribe rate"),)


@dataclass(frozen=True)
class Comparison(JsonMixin):
    """One metric of one variant against control: fixed-horizon, Bayesian and sequential views."""

    metric: str
    variant: str
    kind: str  # "mean" (Welch) or "ratio" (delta method)
    higher_is_better: bool
    n_control: int
    n_variant: int
    estimate: Estimate
    posterior: Posterior
    sequential: SequentialInterval


@dataclass(frozen=True)
class Report(JsonMixin):
    """The whole analysis of one experiment; `summary` says in words what it concludes."""

    control: str
    primary_metric: str
    sample_ratio: SampleRatio
    comparisons: tuple[Comparison, ...]
    guardrails: tuple[GuardrailResult, ...]
    summary: str
    notes: tuple[str, ...] = ()  # metrics that could not be computed, and why


def compare(
    metric: Metric, variant: str, control_data: VariantData, variant_data: VariantData,
    alpha: float = 0.05, mixing_sd: float = DEFAULT_MIXING_SD,
) -> Comparison:
    """One metric of `variant` against control."""
    yc = np.asarray(control_data[metric.numerator], dtype=np.float64)
    yv = np.asarray(variant_data[metric.numerator], dtype=np.float64)
    if metric.denominator is None:
        est = welch(yc, yv, alpha)
        sigma = float(pooled_sd(yc.var(ddof=1), yc.size, yv.var(ddof=1), yv.size))
        kind = "mean"
    else:
        xc = control_data[metric.denominator]
        xv = variant_data[metric.denominator]
        est = delta_ratio(yc, xc, yv, xv, alpha)
        # The per-user sd of the linearised ratio, so tau is set in the same units as for means.
        _, vc, nc = ratio_moments(yc, xc)
        _, vv, nv = ratio_moments(yv, xv)
        sigma = float(pooled_sd(vc * nc, nc, vv * nv, nv))
        kind = "ratio"
    return Comparison(
        metric=metric.name, variant=variant, kind=kind, higher_is_better=metric.higher_is_better,
        n_control=int(yc.size), n_variant=int(yv.size), estimate=est,
        posterior=posterior(est, metric.higher_is_better),
        sequential=sequential_interval(est.difference, est.se, sigma, alpha, mixing_sd),
    )


def analyse(
    data: Mapping[str, VariantData],
    weights: Mapping[str, float],
    metrics: Sequence[Metric] = DEFAULT_METRICS,
    guardrails: Sequence[Guardrail] = DEFAULT_GUARDRAILS,
    alpha: float = 0.05,
    mixing_sd: float = DEFAULT_MIXING_SD,
) -> Report:
    """Report every metric and guardrail of every variant against the first variant (control).

    data : per variant name (control first), per-user arrays named by the metrics'
    columns, one entry per exposed user. weights : configured traffic weights.
    The first metric is the primary one the summary speaks about.
    """
    names = list(data)
    if len(names) < 2 or not metrics:
        raise ValueError("a report needs a control, at least one variant and one metric")
    control = names[0]
    counts = {n: len(np.asarray(data[n][metrics[0].numerator])) for n in names}
    srm = sample_ratio_check(counts, weights)
    comparisons, notes = [], []
    for v in names[1:]:
        for m in metrics:
            try:
                comparisons.append(compare(m, v, data[control], data[v], alpha, mixing_sd))
            except ValueError as exc:  # e.g. CTR of a holdout, which sends nothing
                notes.append(f"{m.name} for {v} vs {control}: {exc}")
    flags = tuple(
        guardrail_check(g.name, v, data[control][g.column], data[v][g.column],
                        g.higher_is_better, g.alpha, g.margin)
        for v in names[1:] for g in guardrails
    )
    labels = {m.name: m.words for m in metrics} | {g.name: g.label or g.name.replace("_", " ") for g in guardrails}
    summary = describe(control, metrics[0].name, srm, comparisons, flags, labels)
    return Report(control, metrics[0].name, srm, tuple(comparisons), flags, summary, tuple(notes))


def _pct(x: float, sign: str = "+") -> str:
    return f"{x * 100:{sign}.0f}%" if np.isfinite(x) else "n/a"


def _num(x: float, sign: str = "+") -> str:
    return f"{x:{sign}.3g}" if np.isfinite(x) else "n/a"


def _effect(e: Estimate, magnitude: bool) -> str:
    """'12% [5%, 19%]' (a decided effect, as a magnitude) or '+2% [-3%, +7%]' (signed).

    Falls back to the absolute difference when control is zero (e.g. sends
    against a holdout), where a relative lift means nothing.
    """
    relative = np.isfinite(e.relative_lift) and np.isfinite(e.lift_ci_low)
    point, lo, hi = (e.relative_lift, e.lift_ci_low, e.lift_ci_high) if relative else (
        e.difference, e.ci_low, e.ci_high)
    fmt = _pct if relative else _num
    if not magnitude:
        return f"{fmt(point)} [{fmt(lo)}, {fmt(hi)}]"
    if point < 0:
        point, lo, hi = -point, -hi, -lo
    return f"{fmt(point, '')} [{fmt(lo, '')}, {fmt(hi, '')}]"


def describe(
    control: str, primary: str, srm: SampleRatio, comparisons: Sequence[Comparison],
    guardrails: Sequence[GuardrailResult], labels: Mapping[str, str] | None = None,
) -> str:
    """The report's conclusion in words, one sentence per variant on the primary metric.

    A variant "raises" or "lowers" the metric only when the always-valid interval
    excludes zero (safe however often the team looked); when only the fixed-horizon
    interval does, the sentence says it is not yet confirmed; otherwise inconclusive.
    """
    labels = labels or {}
    parts = []
    if srm.flagged:
        parts.append(f"WARNING: sample-ratio mismatch (p = {srm.p_value:.2g}); assignment or logging "
                     "is broken and these results should not be trusted")
    for c in comparisons:
        if c.metric != primary:
            continue
        e, name = c.estimate, labels.get(c.metric, c.metric)
        verb = "raises" if e.difference > 0 else "lowers"
        if c.sequential.excludes_zero:
            text = f"variant {c.variant} {verb} {name} by {_effect(e, True)} vs {control}"
        elif e.ci_low > 0 or e.ci_high < 0:
            text = (f"variant {c.variant} {verb} {name} by {_effect(e, True)} vs {control} at a single look, "
                    "not yet confirmed by the always-valid interval; keep running")
        else:
            text = f"variant {c.variant} vs {control} is inconclusive on {name} ({_effect(e, False)})"
        breached = [g for g in guardrails if g.variant == c.variant and g.breached]
        if breached:
            text += "; guardrail breached: " + ", ".join(
                f"{labels.get(g.metric, g.metric)} worse (p = {g.p_value:.2g})" for g in breached)
        else:
            text += "; no guardrail breached"
        parts.append(text)
    return ". ".join(parts) + "."
