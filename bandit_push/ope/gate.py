"""Two versions of a model judged on one decision log: would the candidate have done worse than the serving one?

The policy refit's gate (:mod:`bandit_push.engagement_gate`) builds, for each version, what the service's policy
would have seen at every logged decision (:class:`~bandit_push.policies.LoggedArms`: the net value's posterior with
that version's engagement multiplier) and asks :func:`compare` whether the candidate is worse. Both are valued by
**SNIPS** per decision (:func:`bandit_push.ope.snips`: bounded by the rewards' range, and much steadier than IPS when
a version moves propensities far from the logger's), on the same rows, and the difference's interval comes from one
bootstrap of whole user-days shared by both (a user's decisions in a day are not independent; sharing the draw keeps
the two estimates' strong correlation, so the interval is of the difference, not of two separate noises).

The rule: the candidate is **worse** when the whole 95% interval of (candidate - serving) lies below 0, i.e. the log
shows, beyond its noise, that it would have earned less. A candidate the log cannot tell apart serves: a refit must
not be blocked by noise, and the serving version was itself only an estimate. With fewer than :data:`MIN_SCORED`
decisions where the versions differ, or :data:`MIN_SENDS` sends among them, the log is too thin to tell at all (the
percentile interval of a ratio of a few dozen rewards does not keep its coverage) and the candidate serves.

Pure numpy: no Redis, no service.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_push.ope import evaluate as ev
from bandit_push.ope.estimators import effective_sample_size, resampled_sums
from bandit_push.ope.log import DecisionLog
from bandit_push.policies import LoggedArms, Policy

#: fewest logged decisions where the versions differ (the user's multiplier entered) for the log to tell them apart
MIN_SCORED = 200
#: fewest logged sends among them: only a send earns (or costs) anything
MIN_SENDS = 50
N_BOOTSTRAP = 1000
LEVEL = 0.95


def weights(policy: Policy, log: DecisionLog, arms: LoggedArms) -> tuple[npt.NDArray[np.float64], float]:
    """Importance weights target / logging of ``policy`` seeing ``arms`` at each row of ``log``, and the mean
    probability it puts on actions the logger never takes there (a logger's propensity of 1)."""
    x = ev.inputs(policy, replace(log, arms=arms))
    return x.target_prob / x.logging_prob, float(x.unsupported.mean())


def _snips(s: npt.NDArray[np.float64], j: int) -> npt.NDArray[np.float64]:
    # a resample of only zero-weight rows says nothing: 0, like the library's point estimate
    return np.divide(s[..., j], s[..., j + 1], out=np.zeros(s.shape[:-1]), where=s[..., j + 1] > 0)


def _interval(point: float, reps: npt.NDArray[np.float64]) -> dict[str, float]:
    tail = (1 - LEVEL) / 2
    lo, hi = np.quantile(reps, [tail, 1 - tail])
    return {"estimate": float(point), "ci_low": float(lo), "ci_high": float(hi)}


def compare(log: DecisionLog, scored: npt.NDArray[np.bool_], policy: Policy, serving: LoggedArms,
            candidate: LoggedArms, *, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """The serving and candidate versions' SNIPS value per decision on ``log``, the difference's interval, and the
    verdict.

    scored : bool array of shape (n,), the rows where the versions can differ (the user's multiplier entered)
    serving, candidate : what ``policy`` would have seen at each row under each version (arrays of shape (n,))
    Returns ``{"serves": bool, "reason": "not_worse" | "worse" | "too_few", "message", "decisions", "scored",
    "sends", "user_days", "serving", "candidate", "difference", ...}``; estimates carry ``ci_low``/``ci_high``
    (the :data:`LEVEL` percentile interval of a user-day bootstrap) and ``ess``.
    """
    n_scored, sends = int(scored.sum()), int((log.sent & scored).sum())
    out: dict[str, Any] = {"estimator": "snips", "level": LEVEL, "decisions": len(log), "scored": n_scored,
                           "sends": sends, "user_days": int(log.user_day.max()) + 1 if len(log) else 0}
    if n_scored < MIN_SCORED or sends < MIN_SENDS:
        return {**out, "serves": True, "reason": "too_few",
                "message": f"too few logged decisions to tell: {n_scored} where the user's multiplier entered, "
                           f"{sends} of them sends ({MIN_SCORED} and {MIN_SENDS} needed); the new version serves"}
    ws, _ = weights(policy, log, serving)
    wc, unsupported = weights(policy, log, candidate)
    r = log.reward
    columns = np.column_stack([ws * r, ws, wc * r, wc])
    n_groups = out["user_days"]
    sums = np.stack([np.bincount(log.user_day, weights=columns[:, j], minlength=n_groups) for j in range(4)],
                    axis=1).astype(np.float64, copy=False)
    reps = resampled_sums(sums, n_bootstrap, seed)
    total = sums.sum(axis=0)
    vs, vc = float(_snips(total, 0)), float(_snips(total, 2))
    rs, rc = _snips(reps, 0), _snips(reps, 2)
    diff = _interval(vc - vs, rc - rs)
    worse = diff["ci_high"] < 0
    out.update(serving={**_interval(vs, rs), "ess": effective_sample_size(ws)},
               candidate={**_interval(vc, rc), "ess": effective_sample_size(wc)},
               difference=diff, unsupported_mass=unsupported, serves=not worse,
               reason="worse" if worse else "not_worse")
    verdict = ("worse than the serving version: kept, not served" if worse
               else "not worse than the serving version: serves")
    out["message"] = (f"new version {verdict} (value per decision {vc:+.4f} against {vs:+.4f}, difference "
                      f"{diff['estimate']:+.4f} [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}] at {LEVEL:.0%} on "
                      f"{n_scored} decisions, {sends} sends)")
    return out
