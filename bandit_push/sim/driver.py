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
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from bandit_push.sim.gateway import Answer
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


@dataclass
class _Plan:
    """The replay's schedule, the same for every policy on a population (built once per population)."""

    warmup: list[int]              #: per warm-up day, the end of its organic events (index into the rows)
    steps: list[tuple[float, int, list[list[int]]]]  #: per step: t, end of the events before t, waves
    opp_user: list[int]
    opp_ts: list[float]
    opp_day: list[int]             #: the pushing day of each opportunity
    #: k -> per step, per wave, the decide asks (user id, now, k)
    asks: dict[int, list[list[list[tuple[str, float, int]]]]] = field(default_factory=dict)

    def asks_for(self, uids: list[str], k: int) -> list[list[list[tuple[str, float, int]]]]:
        asks = self.asks.get(k)
        if asks is None:
            user, ts = self.opp_user, self.opp_ts
            asks = self.asks[k] = [[[(uids[user[x]], ts[x], k) for x in wave] for wave in waves]
                                   for _, _, waves in self.steps]
        return asks


def _plan(pop: Population) -> _Plan:
    plan = pop.__dict__.get("_plan")
    if plan is not None:
        return plan
    p = pop.params
    warmup = np.searchsorted(pop.ev_ts, np.arange(pop.t0 + DAY, p.start + 1, DAY), side="left").tolist()
    times = np.arange(p.start, pop.t_end, STEP)
    ev_end = np.searchsorted(pop.ev_ts, times, side="left").tolist()
    opp_end = np.searchsorted(pop.opp_ts, times + STEP, side="left").tolist()
    opp_user, opp_ts = pop.opp_user.tolist(), pop.opp_ts.tolist()
    steps, opp_i = [], 0
    for t, e, j in zip(times.tolist(), ev_end, opp_end):
        batch, waves = list(range(opp_i, j)), []
        opp_i = j
        while batch:  # waves in which no user appears twice, so one user's decides stay in order
            seen: set[int] = set()
            wave: list[int] = []
            rest: list[int] = []
            for x in batch:
                (rest if opp_user[x] in seen else wave).append(x)
                seen.add(opp_user[x])
            batch = rest
            waves.append(wave)
        steps.append((t, e, waves))
    assert opp_i == len(opp_ts)
    plan = pop.__dict__["_plan"] = _Plan(warmup, steps, opp_user, opp_ts, [int((now - p.start) // DAY) for now in opp_ts])
    return plan


def prepare(pop: Population, k: int | None = None) -> None:
    """Build what every replay of ``pop`` reads (the schedule, the decide asks for ``k``, the event rows)."""
    _plan(pop).asks_for(pop.user_ids, k or pop.params.k)
    pop.event_rows()


def run(pop: Population, gateway: Gateway, label: str, weights: dict[str, float], k: int | None = None,
        refresh_hours: float = 6.0, progress: Callable[[float], None] | None = None, reask: bool = False) -> Result:
    """Replay ``pop`` against ``gateway``; see the module doc for the order of operations.

    With ``reask``, the gateway honours ``retry_at``: a refusal that names one is asked again then (within the
    run; one pending re-ask per user, the newest), on the refused opportunity's outcome draws, besides the user's
    regular opportunities."""
    p = pop.params
    k = k or p.k
    n_types = len(p.types)
    res = Result(label, p.users, p.days, dict(weights), day_sends=np.zeros(p.days), day_value=np.zeros(p.days),
                 day_expected=np.zeros(p.days),
                 type_users=np.bincount(pop.type, minlength=n_types).astype(float), type_sends=np.zeros(n_types),
                 type_value=np.zeros(n_types), type_expected=np.zeros(n_types), type_unsub=np.zeros(n_types))
    started = time.perf_counter()
    plan = _plan(pop)
    rows = pop.event_rows()
    uids = pop.user_ids
    gateway.put_users(list(zip(uids, pop.tz)))
    delivered: list[list[float]] = [[] for _ in uids]   # the truth's push history (fatigue)
    unsub_at = [math.inf] * p.users                     # when each user opted out (the truth)
    pending: list[tuple[float, int, dict]] = []          # feedback reports by ts
    seq = 0
    ev_i = 0
    # the sums of the per-day and per-type arrays, kept as Python floats (the same additions) and stored at the end
    day_sends, day_value, day_expected = [0.0] * p.days, [0.0] * p.days, [0.0] * p.days
    type_sends, type_value, type_expected, type_unsub = ([0.0] * n_types for _ in range(4))
    user_type = pop.type.tolist()
    opp_user, opp_ts, opp_day, draws = plan.opp_user, plan.opp_ts, plan.opp_day, pop.opp_draws
    reasons, segment_day, outcomes = res.reasons, res.segment_day, res.outcomes
    respond, pushes, push = pop.respond, res.pushes, heapq.heappush

    # warm-up: organic events only, a day at a time
    for j in plan.warmup:
        gateway.post_events(rows[ev_i:j])
        ev_i = j
    refresh_every = max(1, int(round(refresh_hours * HOUR / STEP)))
    n_steps = len(plan.steps)
    step_asks = plan.asks_for(uids, k)
    retries: list[tuple[float, int, int]] = []  # (retry_at, seq, opportunity) of the re-asks waiting
    retry_of: dict[int, float] = {}  # user -> the retry_at of their pending re-ask
    t_end = pop.t_end
    for s_i, (t, ev_j, waves) in enumerate(plan.steps):
        gateway.post_events(rows[ev_i:ev_j])
        ev_i = ev_j
        due = []
        while pending and pending[0][0] < t:
            due.append(heapq.heappop(pending)[2])
        for key, v in gateway.post_feedback(due).items():
            res.feedback_status[key] += v
        if s_i % refresh_every == 0:
            gateway.scheduler_tick(t)
        todo: list[tuple[list[int], list[tuple[str, float, int]], list[float] | None]] = list(
            zip(waves, step_asks[s_i], [None] * len(waves)))
        if reask:  # the re-asks due in this step, in waves of distinct users
            due_r = []
            while retries and retries[0][0] < t + STEP:
                rt, _, x = heapq.heappop(retries)
                if retry_of.get(opp_user[x]) == rt:
                    del retry_of[opp_user[x]]
                    due_r.append((x, rt))
            if due_r:
                todo.append(([x for x, _ in due_r], [(uids[opp_user[x]], rt, k) for x, rt in due_r],
                             [rt for _, rt in due_r]))
        for wave, asks, times in todo:
            answers = gateway.decide_many(asks)
            res.decisions += len(wave)
            for j, (x, a) in enumerate(zip(wave, answers)):
                reason = a.reason
                reasons[reason] += 1
                now = opp_ts[x] if times is None else times[j]
                day = opp_day[x] if times is None else min(int((now - p.start) // DAY), p.days - 1)
                if reason == "policy":
                    segment_day.setdefault((a.segment, day), [0, 0])[0] += 1
                if not a.send:
                    if reask and a.retry_at is not None and a.retry_at < t_end:
                        seq += 1
                        retry_of[opp_user[x]] = a.retry_at
                        push(retries, (a.retry_at, seq, x))
                    continue
                i = opp_user[x]
                typ = user_type[i]
                res.sends += 1
                type_sends[typ] += 1
                day_sends[day] += 1
                segment_day.setdefault((a.segment, day), [0, 0])[1] += 1
                if unsub_at[i] <= now:
                    continue  # the app no longer shows this user's pushes
                out = respond(i, now, a.items, delivered[i], draws[x], weights)
                res.expected += out.expected
                type_expected[typ] += out.expected
                if out.delivered:
                    delivered[i].append(now)
                if out.unsubscribed:
                    unsub_at[i] = min(unsub_at[i], min(ts for e, ts in out.events if e == "unsubscribed"))
                    res.unsubscribed_users += 1
                    type_unsub[typ] += 1
                gain = sum(weights.get(e, 0.0) for e, _ in out.events)
                res.value += gain
                type_value[typ] += gain
                day_value[day] += gain
                day_expected[day] += out.expected
                for e, ts in out.events:
                    outcomes[e] += 1
                    seq += 1
                    push(pending, (ts, seq, {"decision_id": a.decision_id, "event": e, "ts": ts}))
                pushes.append((i, a.decision_id, now, out.events, out.expected))
        if progress:
            progress((s_i + 1) / n_steps)
    rest = [heapq.heappop(pending)[2] for _ in range(len(pending))]
    for key, v in gateway.post_feedback(rest).items():
        res.feedback_status[key] += v
    assert ev_i <= len(rows)
    res.day_sends[:], res.day_value[:], res.day_expected[:] = day_sends, day_value, day_expected
    res.type_sends[:], res.type_value[:], res.type_expected[:], res.type_unsub[:] = (
        type_sends, type_value, type_expected, type_unsub)
    res.seconds = time.perf_counter() - started
    res.requests = getattr(gateway, "requests", 0)
    return res
