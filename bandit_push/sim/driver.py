"""The gateway driver: replay a simulated population against a policy, hour by simulated hour.

Each step of one simulated hour ``[t, t + 1 h)``:

1. post the organic events with ``ts < t`` (so a decide never sees the future);
2. post the feedback reports with ``ts < t`` (each carries its own ``ts``: delays are realistic);
3. run the scheduler's periodic jobs every ``refresh_hours`` at the simulated time (the popular lists;
   under a learned policy also the segmentation, see :class:`~bandit_push.sim.service.Scheduler`);
4. ask ``decide`` at every opportunity in the hour, concurrently across users, with ``now`` the
   opportunity's time; a ``send: true`` becomes a push whose outcome the population decides with the
   opportunity's own uniforms, and whose reports are queued for the step after their ``ts``.

The first ``warmup_days`` only post organic events. What every push earned is counted from the
simulator's truth with the service's outcome weights (the net value the policy is told to maximise),
twice: as realised (the outcomes the uniforms drew) and as expected (each push's expected net value given
the state it was made in: hour, fatigue, items). Both have the same mean; the expected one leaves out the
luck of the draws (one unsubscribe is -30), so it ranks policies and picks the best cadences with far less
noise.
"""
from __future__ import annotations

import heapq
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from bandit_push.sim.gateway import Answer
from bandit_push.sim.params import EVENTS
from bandit_push.sim.population import DAY, HOUR, Population

STEP = HOUR


def _counter() -> defaultdict:
    return defaultdict(int)


class Gateway(Protocol):
    def put_users(self, users: Sequence[tuple[str, str]]) -> None: ...
    def post_events(self, rows: list[dict]) -> int: ...
    def post_feedback(self, rows: list[dict]) -> dict[str, int]: ...
    def scheduler_tick(self, now: float) -> None: ...
    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]: ...


@dataclass
class Result:
    """What one policy did to the population, from the simulator's side."""

    label: str
    users: int
    days: int
    weights: dict[str, float]
    decisions: int = 0
    sends: int = 0
    outcomes: dict[str, int] = field(default_factory=_counter)
    value: float = 0.0
    #: the sum over pushes of each push's expected net value given the state it was made in: the same
    #: mean as ``value`` (each push's realised value averages to it) without the outcomes' luck
    expected: float = 0.0
    unsubscribed_users: int = 0
    #: per pushing day: sends and net value of the pushes sent that day
    day_sends: np.ndarray = None  # type: ignore[assignment]
    day_value: np.ndarray = None  # type: ignore[assignment]
    day_expected: np.ndarray = None  # type: ignore[assignment]
    #: per user type index: users, sends, net value, unsubscribed users
    type_users: np.ndarray = None  # type: ignore[assignment]
    type_sends: np.ndarray = None  # type: ignore[assignment]
    type_value: np.ndarray = None  # type: ignore[assignment]
    type_expected: np.ndarray = None  # type: ignore[assignment]
    type_unsub: np.ndarray = None  # type: ignore[assignment]
    #: (segment, day) -> [decisions that passed the guardrails, sends]
    segment_day: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=_counter)
    feedback_status: dict[str, int] = field(default_factory=_counter)
    #: every push: (user index, decision id, ts, events, expected net value)
    pushes: list[tuple[int, str, float, tuple, float]] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0

    def per_user(self, x: float) -> float:
        return x / self.users

    def row(self) -> dict[str, Any]:
        """The table row: rates per delivered push, value per user."""
        delivered = max(self.outcomes["delivered"], 1)
        return {"policy": self.label, "sends_per_user_day": self.sends / self.users / self.days,
                "ctr": self.outcomes["clicked"] / delivered, "conversion": self.outcomes["converted"] / delivered,
                "unsub_users": self.unsubscribed_users / self.users,
                "unsub_per_send": self.outcomes["unsubscribed"] / max(self.sends, 1),
                "value_per_user": self.value / self.users, "expected_per_user": self.expected / self.users}


def run(pop: Population, gateway: Gateway, label: str, weights: dict[str, float], k: int | None = None,
        refresh_hours: float = 6.0, progress: Callable[[float], None] | None = None) -> Result:
    """Replay ``pop`` against ``gateway``; see the module doc for the order of operations."""
    p = pop.params
    k = k or p.k
    n_types = len(p.types)
    res = Result(label, p.users, p.days, dict(weights), day_sends=np.zeros(p.days), day_value=np.zeros(p.days),
                 day_expected=np.zeros(p.days),
                 type_users=np.bincount(pop.type, minlength=n_types).astype(float), type_sends=np.zeros(n_types),
                 type_value=np.zeros(n_types), type_expected=np.zeros(n_types), type_unsub=np.zeros(n_types))
    started = time.perf_counter()
    uids = pop.user_ids
    gateway.put_users(list(zip(uids, pop.tz)))
    delivered: list[list[float]] = [[] for _ in uids]   # the truth's push history (fatigue)
    unsub_at = np.full(p.users, np.inf)                 # when each user opted out (the truth)
    pending: list[tuple[float, int, dict]] = []          # feedback reports by ts
    seq = 0
    ev_i = 0
    n_ev = len(pop.ev_ts)

    def events_before(t: float) -> list[dict]:
        nonlocal ev_i
        j = int(np.searchsorted(pop.ev_ts, t, side="left"))
        rows = []
        for x in range(ev_i, j):
            row = {"user_id": uids[pop.ev_user[x]], "type": EVENTS[pop.ev_type[x]], "ts": float(pop.ev_ts[x])}
            if pop.ev_item[x] >= 0:
                row["item_id"] = pop.items[pop.ev_item[x]]
            if pop.ev_value[x] > 0:
                row["value"] = float(pop.ev_value[x])
            rows.append(row)
        ev_i = j
        return rows

    # warm-up: organic events only, a day at a time
    for t in np.arange(pop.t0 + DAY, p.start + 1, DAY):
        gateway.post_events(events_before(float(t)))
    steps = np.arange(p.start, pop.t_end, STEP)
    opp_i, n_opp = 0, len(pop.opp_ts)
    refresh_every = max(1, int(round(refresh_hours * HOUR / STEP)))
    for s_i, t in enumerate(steps):
        t = float(t)
        gateway.post_events(events_before(t))
        due = []
        while pending and pending[0][0] < t:
            due.append(heapq.heappop(pending)[2])
        for key, v in gateway.post_feedback(due).items():
            res.feedback_status[key] += v
        if s_i % refresh_every == 0:
            gateway.scheduler_tick(t)
        j = int(np.searchsorted(pop.opp_ts, t + STEP, side="left"))
        batch = list(range(opp_i, j))
        opp_i = j
        while batch:  # waves in which no user appears twice, so one user's decides stay in order
            seen, wave, rest = set(), [], []
            for x in batch:
                (rest if pop.opp_user[x] in seen else wave).append(x)
                seen.add(pop.opp_user[x])
            batch = rest
            answers = gateway.decide_many([(uids[pop.opp_user[x]], float(pop.opp_ts[x]), k) for x in wave])
            for x, a in zip(wave, answers):
                i, now = int(pop.opp_user[x]), float(pop.opp_ts[x])
                day = int((now - p.start) // DAY)
                res.decisions += 1
                res.reasons[a.reason] += 1
                if a.reason == "policy":
                    res.segment_day.setdefault((a.segment, day), [0, 0])[0] += 1
                if not a.send:
                    continue
                res.sends += 1
                res.type_sends[pop.type[i]] += 1
                res.day_sends[day] += 1
                res.segment_day.setdefault((a.segment, day), [0, 0])[1] += 1
                if unsub_at[i] <= now:
                    continue  # the app no longer shows this user's pushes
                out = pop.respond(i, now, a.items, delivered[i], pop.opp_draws[x], weights)
                res.expected += out.expected
                res.type_expected[pop.type[i]] += out.expected
                if out.delivered:
                    delivered[i].append(now)
                if out.unsubscribed:
                    unsub_at[i] = min(unsub_at[i], min(ts for e, ts in out.events if e == "unsubscribed"))
                    res.unsubscribed_users += 1
                    res.type_unsub[pop.type[i]] += 1
                v = sum(weights.get(e, 0.0) for e, _ in out.events)
                res.value += v
                res.type_value[pop.type[i]] += v
                res.day_value[day] += v
                res.day_expected[day] += out.expected
                for e, ts in out.events:
                    res.outcomes[e] += 1
                    seq += 1
                    heapq.heappush(pending, (ts, seq, {"decision_id": a.decision_id, "event": e, "ts": ts}))
                res.pushes.append((i, a.decision_id, now, out.events, out.expected))
        if progress:
            progress((s_i + 1) / len(steps))
    rest = [heapq.heappop(pending)[2] for _ in range(len(pending))]
    for key, v in gateway.post_feedback(rest).items():
        res.feedback_status[key] += v
    assert ev_i <= n_ev and opp_i == n_opp
    res.seconds = time.perf_counter() - started
    res.requests = getattr(gateway, "requests", 0)
    return res
