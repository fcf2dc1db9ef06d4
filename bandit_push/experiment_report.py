"""An experiment's report: per-user counters from Redis, analysed by :mod:`bandit_push.stats`.

Each exposed user has one field in :meth:`~bandit_push.keys.Keys.experiment_users` (its slot's hash, written by
decide, feedback and events; columns in :data:`bandit_push.schema.XREC_COLUMNS`). The report reads them all
(:func:`bandit_push.experiments.user_counters`, every slot's hash, off the hot path), makes one per-user array
per column and variant, and hands them to :func:`bandit_push.stats.analyse`: Welch for means per user, the delta
method for CTR, the Bayesian read-out, the always-valid interval, the sample-ratio check and the guardrails.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bandit_push import experiments
from bandit_push.schema import XREC_COLUMNS
from bandit_push.stats import DEFAULT_GUARDRAILS, DEFAULT_METRICS, Metric, analyse, sample_ratio_check
from bandit_push.store import Store

#: per-user columns, in the order of the counters after ``<variant> <first exposure ts>``
COLUMNS = XREC_COLUMNS[2:]
#: what the report compares; the first is the primary metric its conclusion speaks about
METRICS: tuple[Metric, ...] = DEFAULT_METRICS + (
    Metric("purchases_per_user", "purchases", label="purchases per user"),
    Metric("unsubscribe_rate", "unsubscribed", higher_is_better=False, label="unsubscribe rate"),
)
GUARDRAILS = DEFAULT_GUARDRAILS


def user_data(store: Store, experiment: experiments.Experiment) -> list[dict[str, np.ndarray]]:
    """Per variant (in definition order), per column, one value per exposed user, in user id order; the
    ``first_exposure`` array holds each user's first exposure time (epoch s).

    Users in id order: the sums over users are the same floats on every call, whatever the slots' order."""
    seen = experiments.user_counters(store, experiment.id)
    rows: list[list[list[float]]] = [[] for _ in experiment.variants]
    for user in sorted(seen):
        values = [float(x) for x in seen[user].split()]
        vi = int(values[0])
        if 0 <= vi < len(rows):
            rows[vi].append(values[1:2 + len(COLUMNS)])
    out = []
    for r in rows:
        a = np.asarray(r, dtype=np.float64).reshape(-1, 1 + len(COLUMNS))
        out.append({"first_exposure": a[:, 0], **{c: a[:, j + 1] for j, c in enumerate(COLUMNS)}})
    return out


def exposures(names: list[str], data: list[dict[str, np.ndarray]], points: int = 60) -> dict[str, Any]:
    """Users exposed so far per variant at ``points`` evenly spaced times from the first exposure to the last:
    ``{"t": [epoch s...], "users": {variant: [count...]}}`` (cumulative, so the last point is each variant's
    users)."""
    first = np.concatenate([d["first_exposure"] for d in data])
    if not first.size:
        return {"t": [], "users": {n: [] for n in names}}
    grid = np.linspace(first.min(), first.max(), points if first.max() > first.min() else 1)
    return {"t": grid.tolist(),
            "users": {n: np.searchsorted(np.sort(d["first_exposure"]), grid, side="right").tolist()
                      for n, d in zip(names, data)}}


def _describe_variant(v: experiments.Variant, d: dict[str, np.ndarray]) -> dict[str, Any]:
    n = int(d["sends"].size)

    def mean(c: str) -> float | None:
        return float(d[c].mean()) if n else None

    sends = float(d["sends"].sum())
    return {"name": v.name, "weight": v.weight, "policy": v.policy, "users": n,
            "sends_per_user": mean("sends"), "ctr": float(d["clicks"].sum()) / sends if sends else None,
            "conversions_per_user": mean("conversions"), "net_value_per_user": mean("net_value"),
            "unsubscribe_rate": mean("unsubscribed"), "events_per_user": mean("events"),
            "purchases_per_user": mean("purchases")}


def report(store: Store, experiment_id: int, alpha: float = 0.05, with_exposures: bool = False) -> dict[str, Any]:
    """The report of one experiment: per-variant figures, every metric of every variant vs the control
    (difference with CI, p-value, P(beat control), expected loss, always-valid interval), the
    sample-ratio check, guardrail flags and the conclusion in words; ``with_exposures`` adds the
    exposed users over time (:func:`exposures`, from the same read of the counters)."""
    x = experiments.get(store, experiment_id)
    data = user_data(store, x)
    names = [v.name for v in x.variants]
    body: dict[str, Any] = {
        "experiment": {"id": x.id, "name": x.name, "status": x.status, "control": names[0]},
        "variants": [_describe_variant(v, d) for v, d in zip(x.variants, data)],
    }
    if with_exposures:
        body["exposures"] = exposures(names, data)
    counts = {n: int(d["sends"].size) for n, d in zip(names, data)}
    if min(counts.values()) < 2:
        srm = sample_ratio_check(counts, x.weights)
        body.update(sample_ratio=srm.to_json(), comparisons=[], guardrails=[], notes=[],
                    summary="Not enough exposed users yet: every variant needs at least two "
                            f"({', '.join(f'{n}: {c}' for n, c in counts.items())}).")
        return body
    result = analyse(dict(zip(names, data)), x.weights, METRICS, GUARDRAILS, alpha=alpha).to_json()
    body.update(sample_ratio=result["sample_ratio"], comparisons=result["comparisons"],
                guardrails=result["guardrails"], notes=result["notes"], summary=result["summary"])
    return body
