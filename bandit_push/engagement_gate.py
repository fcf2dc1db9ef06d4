"""The policy refit's gate: a new engagement model serves only if the recent decision log does not show it worse.

Every decision where the service's policy weighed a push records what the user's engagement multiplier was made of
(:data:`bandit_push.schema.WHY_FIELDS`: the user's decayed evidence E and X, their organic features x1 and x2, and
the context's engagement and negative parts of the net value). So any version (kappa, b) of the model can be replayed
on the decision: its multiplier (:func:`bandit_push.engagement.user_theta_many`), the net value's posterior the
policy would have seen, and the policy's probability of what the service did. :func:`judge` does that for the serving
version and the new one on the window's closed decisions of the service's own policy (the ``default`` policy space:
experiment variants run policies of their own) and lets :func:`bandit_push.ope.gate.compare` decide.

The window is the ``policy_gate_hours`` before the attribution window of ``now`` (only closed decisions have their
final outcomes); when it holds more than ``policy_gate_decisions`` decisions, every k-th of them is read (a sample
spread evenly over the window's hours, so no time of day weighs more than it did), newest hour first, and never more
than ``policy_gate_decisions``. Thompson sampling is scored per ask, as
``bandit-push evaluate`` scores it (with episodes the logged propensities stay exact; the versions' probabilities
are their per-ask ones, the same approximation for both).
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from bandit_push import decision_log
from bandit_push.config import Settings
from bandit_push.decide import DEFAULT_SPACE
from bandit_push.engagement import EngagementParams, user_theta_many
from bandit_push.ope import gate
from bandit_push.ope.log import parse_rows
from bandit_push.policies import POLICIES, LoggedArms
from bandit_push.store import Store

#: the WHY fields a version's replay reads, in :func:`_arms`' order
PARTS = ("mp", "mn", "var_ctx", "vp", "e", "x", "x1", "x2")


def window(settings: Settings, now: float) -> tuple[float, float]:
    """(since, until) of the closed decisions the gate reads at ``now``."""
    until = now - settings.attribution_window_hours * 3600.0
    return until - settings.policy_gate_hours * 3600.0, until


def stride(store: Store, settings: Settings, now: float) -> int:
    """Read every how many decisions of the window, so that at most about ``policy_gate_decisions`` are read, spread
    evenly over it (the window's index bytes / the bytes of one id: an estimate, counting every policy space; each
    hour's sample starts at its first decision, so room is left for one more per hour)."""
    since, until = window(settings, now)
    room = max(1, settings.policy_gate_decisions - math.ceil(until / 3600) + math.floor(since / 3600))
    return max(1, math.ceil(decision_log.count_hint(store, settings, since, until, now) / room))


class LogWindow:
    """The gate's reader of the closed decision log, which keeps each whole hour it read: an hour that ends before
    the window's end holds only closed decisions, whose outcomes are final, so it never changes. A process that judges
    every refit (the simulator's scheduler, once an hour of simulated time) then reads each hour once; a worker's job
    makes a fresh one. It holds the hours of the latest window it read, and belongs to one store."""

    def __init__(self) -> None:
        self._hours: dict[tuple[int, int], list[dict[str, Any]]] = {}

    def rows(self, store: Store, settings: Settings, now: float, every: int = 1) -> Iterator[dict[str, Any]]:
        """The window's closed decisions of the service's own policy space, every ``every``-th of each hour's, newest
        hour first (rows of :func:`bandit_push.decision_log.export` with ``why``)."""
        since, until = window(settings, now)
        held: dict[tuple[int, int], list[dict[str, Any]]] = {}
        try:
            for hour in range(math.ceil(until / 3600) - 1, math.floor(since / 3600) - 1, -1):
                lo, hi = max(since, hour * 3600.0), min(until, (hour + 1) * 3600.0)
                whole = (lo, hi) == (hour * 3600.0, (hour + 1) * 3600.0)
                rows = self._hours.get((hour, every)) if whole else None
                if rows is None:
                    rows = list(decision_log.export(store, settings, lo, hi, now, why=True, space=DEFAULT_SPACE,
                                                    every=every))
                if whole:
                    held[hour, every] = rows
                yield from rows
        finally:  # (also when the reader stops early, at the cap)
            self._hours = held


def _arms(base: LoggedArms, rows: np.ndarray, parts: dict[str, np.ndarray], p: EngagementParams) -> LoggedArms:
    """``base`` with the net value's posterior of version ``p`` at the rows ``rows`` (the decide script's
    arithmetic: ``user_net_value``)."""
    th, vth = user_theta_many(p, parts["e"], parts["x"], parts["x1"], parts["x2"])
    mp, mn, vp = parts["mp"], parts["mn"], parts["vp"]
    vn = np.maximum(parts["var_ctx"] - vp, 0.0)  # (vp is a float32: the difference may round below 0)
    mean, var = base.mean.copy(), base.var.copy()
    mean[rows] = th * mp + mn
    var[rows] = th * th * vp + vth * (mp * mp + vp) + vn
    return LoggedArms(mean, var, base.segment_sends, base.seconds_since_push)


def judge(store: Store, settings: Settings, candidate: EngagementParams, now: float,
          reader: LogWindow | None = None) -> dict[str, Any]:
    """Whether ``candidate`` serves, and why: the serving version's and the candidate's values on the recent
    decision log with their intervals, the window and its size (see :func:`bandit_push.ope.gate.compare`), or the
    reason there was nothing to compare (no serving version, no gate, no closed decision in the window). ``reader``:
    one kept from the previous judgement (the log is read afresh without one)."""
    since, until = window(settings, now)
    out: dict[str, Any] = {"window": {"since": since, "until": until, "hours": settings.policy_gate_hours}}
    serving = EngagementParams.serving(store)
    if serving.version is None:
        return {**out, "serves": True, "reason": "no_serving_version",
                "message": "no version serves yet: the new version serves"}
    out["serving_version"] = serving.version
    if settings.policy_gate_hours == 0:
        return {**out, "serves": True, "reason": "no_gate", "message": "policy_gate_hours is 0: the new version serves"}
    policy = POLICIES[settings.policy](settings)
    every = stride(store, settings, now)
    out["window"]["every"] = every
    rows = []
    for row in (reader or LogWindow()).rows(store, settings, now, every):
        if row["policy"] == policy.name:
            rows.append(row)
            if len(rows) > settings.policy_gate_decisions:  # one more than room for: the window was cut
                break
    if not rows:
        return {**out, "serves": True, "reason": "too_few", "decisions": 0,
                "message": "no closed decision of the service's policy in the window: the new version serves"}
    out["window"]["capped"] = len(rows) > settings.policy_gate_decisions
    if out["window"]["capped"]:  # (the stride's estimate fell short) the window read starts at its oldest row kept
        rows = rows[:settings.policy_gate_decisions]
        out["window"]["since"] = min(r["ts"] for r in rows)
    log = parse_rows(rows)
    # a row is scored where the user's multiplier entered the net value the policy weighed
    scored = np.array([r.get("why") is not None and r["why"]["applied"] == 1 and r["arm"] is not None for r in rows])
    at = np.flatnonzero(scored)
    parts = {k: np.array([rows[i]["why"][k] for i in at], dtype=np.float64) for k in PARTS}
    result = gate.compare(log, scored, policy, _arms(log.arms, at, parts, serving), _arms(log.arms, at, parts, candidate),
                          seed=settings.seed if settings.seed is not None else 0)
    return {**out, **result}
