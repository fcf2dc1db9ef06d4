"""Candidate send policies judged on a decision log: what would they have earned?

A candidate is the policy JSON the service takes (``{"name": "thompson", "cost": 0.2}``), parsed by
:func:`bandit_push.policies.from_config`. Its send probability for each logged decision comes from
the arm statistics recorded **at decision time** (:class:`~bandit_push.policies.LoggedArms`), never
from the live arms. Rules:

- a guardrail refusal stays a refusal for every candidate (guardrails run before any policy): the
  candidate does not send there, with probability 1, as the logger did;
- the reward of a decision is the net value of its attributed outcomes (service outcome weights);
  a decision that did not send has reward 0 by construction (no push, no outcomes);
- actions are send / not send. Where the logger was deterministic (UCB, cadence, a Thompson
  propensity of exactly 1) the other action is unsupported: the candidate's probability of it is
  reported as ``missing_support``;
- the reward model of DM and DR is the mean reward of the log's sends per context cell (segment,
  recency, daypart), shrunk towards the mean of all sends by :data:`PRIOR_SENDS` pseudo-sends; not
  sending is worth exactly 0.

Per-decision values are the estimators of :mod:`bandit_push.ope.estimators` (row bootstrap). Values
per user-day (user, UTC day) divide total value by the number of user-days in the log, with a
bootstrap that resamples whole user-days (a user's decisions in one day are not independent).

Per-decision estimators ignore that a candidate changes later states (after a push the user's
recency bucket, cap and gap change): a cadence or a policy that sends much more or less than the
logger is judged as if each decision stood alone.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_push.config import Settings
from bandit_push.ope.estimators import Estimate, direct_method, doubly_robust, ips, resampled_sums, snips
from bandit_push.ope.log import DecisionLog
from bandit_push.policies import Holdout, LoggedArms, Policy, from_config

PRIOR_SENDS = 10.0
ESTIMATORS = ("ips", "snips", "dm", "dr")


@dataclass(frozen=True)
class Inputs:
    """The estimator inputs of one candidate on one log, arrays of shape (n,)."""

    target_send: npt.NDArray[np.float64]      #: candidate's probability of sending
    logging_prob: npt.NDArray[np.float64]     #: logger's probability of the logged action
    target_prob: npt.NDArray[np.float64]      #: candidate's probability of the logged action
    unsupported: npt.NDArray[np.float64]      #: candidate's probability of actions the logger never takes there
    reward_hat: npt.NDArray[np.float64]       #: reward model on the logged action
    reward_hat_target: npt.NDArray[np.float64]  #: reward model under the candidate's action distribution


def send_probabilities(policy: Policy, log: DecisionLog) -> npt.NDArray[np.float64]:
    """The candidate's probability of sending at each logged decision (0 where a guardrail refused).

    Rows of a holdout log carry no arm: only a holdout candidate is known there (0); for any other
    candidate the probability is NaN (unknown, and unsupported since the holdout never sends).
    """
    p = np.zeros(len(log))
    ran = ~log.refused
    if ran.any():
        a = log.arms
        p[ran] = policy.send_probabilities(LoggedArms(a.mean[ran], a.var[ran], a.segment_sends[ran],
                                                      a.seconds_since_push[ran]))
    if not isinstance(policy, Holdout):
        p[log.holdout] = np.nan
    return p


def reward_model(log: DecisionLog, prior_sends: float = PRIOR_SENDS) -> npt.NDArray[np.float64]:
    """Predicted reward of sending at each row: shrunk per-cell mean reward of the log's sends."""
    sent = log.sent
    base = float(log.reward[sent].mean()) if sent.any() else 0.0
    cells = int(log.cell.max()) + 1
    total = np.bincount(log.cell[sent], weights=log.reward[sent], minlength=cells)
    count = np.bincount(log.cell[sent], minlength=cells).astype(np.float64)
    return ((total + prior_sends * base) / (count + prior_sends))[log.cell]


def inputs(policy: Policy, log: DecisionLog) -> Inputs:
    """Everything the estimators need for ``policy`` on ``log``."""
    p_send = send_probabilities(policy, log)
    unknown = np.isnan(p_send)  # holdout-log rows: the candidate's sends there are unsupported
    p_send = np.where(unknown, 1.0, p_send)
    sent = log.sent
    target_prob = np.where(sent, p_send, 1.0 - p_send)
    other_prob = 1.0 - target_prob
    unsupported = np.where(log.propensity >= 1.0, other_prob, 0.0)
    q_send = reward_model(log)
    return Inputs(target_send=p_send, logging_prob=log.propensity, target_prob=target_prob,
                  unsupported=unsupported, reward_hat=np.where(sent, q_send, 0.0),
                  reward_hat_target=p_send * q_send)


@dataclass(frozen=True)
class Interval:
    """A value with its 95% bootstrap interval."""

    estimate: float
    ci_low: float
    ci_high: float

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class CandidateReport:
    """One candidate on one log: per estimator, value per decision (library estimate) and per user-day."""

    policy: dict[str, Any]
    send_rate: float
    per_decision: dict[str, Estimate]
    per_user_day: dict[str, Interval]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy, "send_rate": self.send_rate, "estimators": {}}
        for name, est in self.per_decision.items():
            out["estimators"][name] = {
                "per_decision": {"estimate": est.estimate, "ci_low": est.ci_low, "ci_high": est.ci_high},
                "per_user_day": self.per_user_day[name].to_json(),
                "ess": est.ess, "warnings": [{"code": w.code, "message": w.message} for w in est.warnings]}
        return out


def _quantiles(reps: npt.NDArray[np.float64]) -> tuple[float, float]:
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return float(lo), float(hi)


def _user_day_interval(columns: npt.NDArray[np.float64], groups: npt.NDArray[np.int64], ratio: bool,
                       n_bootstrap: int, seed: int) -> Interval:
    """Value per user-day from per-row columns: sum(col0) / U, or sum(col0) / sum(col1) * n / U (ratio),
    with a percentile bootstrap over user-days."""
    return _user_day_intervals(columns, groups, {"v": (0, 1 if ratio else None)}, n_bootstrap, seed)["v"]


def _user_day_intervals(columns: npt.NDArray[np.float64], groups: npt.NDArray[np.int64],
                        spec: dict[str, tuple[int, int | None]], n_bootstrap: int, seed: int) -> dict[str, Interval]:
    """Several values per user-day from one bootstrap draw over user-days. ``spec`` maps a name to
    (numerator column, denominator column or None): sum(num) / U, or sum(num) / sum(den) * n / U."""
    n_groups = int(groups.max()) + 1
    cols = np.column_stack([columns, np.ones(columns.shape[0])])
    sums = np.stack([np.bincount(groups, weights=cols[:, j], minlength=n_groups) for j in range(cols.shape[1])],
                    axis=1).astype(np.float64, copy=False)  # (bincount with weights is float64 already)
    reps = resampled_sums(sums, n_bootstrap, seed) if n_bootstrap else None

    def value(s: npt.NDArray[np.float64], num: int, den: int | None) -> npt.NDArray[np.float64]:
        if den is None:
            return s[..., num] / n_groups
        return np.divide(s[..., num], s[..., den], out=np.zeros(s.shape[:-1]), where=s[..., den] > 0) \
            * s[..., -1] / n_groups

    total = sums.sum(axis=0)
    out = {}
    for name, (num, den) in spec.items():
        lo, hi = _quantiles(value(reps, num, den)) if reps is not None else (np.nan, np.nan)
        out[name] = Interval(float(value(total, num, den)), lo, hi)
    return out


def evaluate(config: Any, log: DecisionLog, settings: Settings, *, clip: float | None = None,
             n_bootstrap: int = 1000, seed: int = 0, field: str = "policy") -> CandidateReport:
    """IPS, SNIPS, DM and DR of one candidate (policy JSON) on ``log``.

    Point estimates, standard errors, ESS and warnings are the library's; the bootstrap replicates of
    all four share one draw of rows (the same draw each library call would make with this seed), and
    the per-user-day values one draw of user-days.
    """
    policy = from_config(config, settings, field)
    x = inputs(policy, log)
    r = log.reward
    common: dict[str, Any] = dict(unsupported_mass=x.unsupported, n_bootstrap=0)
    per_decision = {
        "ips": ips(r, x.logging_prob, x.target_prob, clip=clip, **common),
        "snips": snips(r, x.logging_prob, x.target_prob, clip=clip, **common),
        "dm": direct_method(x.reward_hat_target, **common),
        "dr": doubly_robust(r, x.logging_prob, x.target_prob, x.reward_hat, x.reward_hat_target, clip=clip,
                            **common),
    }
    w = x.target_prob / x.logging_prob
    if clip is not None:
        w = np.minimum(w, clip)
    columns = np.column_stack([w * r, w, x.reward_hat_target, x.reward_hat_target + w * (r - x.reward_hat)])
    if n_bootstrap:
        n = len(log)
        sums = resampled_sums(columns, n_bootstrap, seed)
        reps = {"ips": sums[:, 0] / n, "dm": sums[:, 2] / n, "dr": sums[:, 3] / n,
                # a resample of only zero-weight rows says nothing; 0 like the library's point estimate
                "snips": np.divide(sums[:, 0], sums[:, 1], out=np.zeros(n_bootstrap), where=sums[:, 1] > 0)}
        per_decision = {name: replace(est, ci_low=_quantiles(reps[name])[0], ci_high=_quantiles(reps[name])[1],
                                      replicates=reps[name]) for name, est in per_decision.items()}
    per_user_day = _user_day_intervals(columns, log.user_day, {"ips": (0, None), "snips": (0, 1), "dm": (2, None),
                                                               "dr": (3, None)}, n_bootstrap, seed)
    return CandidateReport(policy.describe(), float(x.target_send.mean()), per_decision, per_user_day)


def observed(log: DecisionLog, *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The logging policy's own value: mean reward per decision and per user-day, with 95% intervals."""
    r = log.reward
    n = len(log)
    per_decision = ips(r, np.ones(n), np.ones(n), n_bootstrap=n_bootstrap, seed=seed)  # weights 1: the mean
    return {"policies": list(log.policies), "decisions": n, "user_days": int(log.user_day.max()) + 1,
            "send_rate": float(log.sent.mean()), "open_rows_skipped": log.open_rows,
            "per_decision": {"estimate": per_decision.estimate, "ci_low": per_decision.ci_low,
                             "ci_high": per_decision.ci_high},
            "per_user_day": _user_day_interval(r[:, None], log.user_day, False, n_bootstrap, seed).to_json()}
