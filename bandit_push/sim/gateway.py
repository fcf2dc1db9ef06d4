"""Two ways to put the simulated gateway's questions to a policy.

:class:`HttpGateway` talks to a running bandit-push service over HTTP, exactly as
a notification gateway does, with the gateways' client (:mod:`bandit_push.client`):
``PUT /v1/users``, batched ``POST /v1/events``, ``POST /v1/decide`` with the
simulated clock as ``now``, batched ``POST /v1/feedback`` with each report's own
``ts``; several requests in flight.

:class:`LocalGateway` answers for the service's ``cadence`` policy without a
service: the same guardrails (opt-out, quiet hours by the same time-zone rule,
the rolling 24 h cap, the minimum gap), the same cadence rule, and items from a
replica of the popular lists (same window, weights, refresh times and exclusion
of recently pushed items): the user's segment's list first, then the global one,
as decide picks them when there are no MF recommendations (the simulator runs no
refit). Segments follow the service without a segmentation model: a user is
``new`` until ``segment_min_events`` events, then ``default``; an event counts
towards the popularity of the segment the user was in when it arrived, and the
move happens after each batch of events, as ``POST /v1/events`` does it. It makes
the many fixed-cadence baselines cheap; ``tests/integration/test_sim.py`` checks
it against the service on the same stream.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, NamedTuple, Sequence

from bandit_push.client import Client
from bandit_push.config import Settings
from bandit_push.policies import FixedCadence
from bandit_push.sim.population import HourlyOffsets


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Answer(NamedTuple):
    """What the gateway learns from one decide (a named tuple: the replica makes millions of them)."""

    send: bool
    items: list[str]
    decision_id: str
    segment: str
    reason: str
    context: tuple[str, str]
    retry_at: float | None = None  #: epoch seconds, when a refusal about the moment says when to ask again


class HttpGateway:
    """A gateway of the service at ``base_url``, through :class:`bandit_push.client.Client`, with ``connections``
    requests in flight at once (a thread each: a decide waits on the service, not on the simulator's CPU)."""

    def __init__(self, base_url: str, connections: int = 4, batch: int = 1000,
                 refresh: Callable[[float], Any] | None = None, timeout: float = 30.0):
        self.client = Client(base_url, timeout=timeout, connections=connections)
        self.batch = batch
        self._refresh = refresh
        self._pool = ThreadPoolExecutor(max(1, int(connections)), thread_name_prefix="gateway")
        self.requests = 0

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        self.requests += len(users)
        list(self._pool.map(lambda u: self.client.put_user(u[0], timezone=u[1]), users))

    def post_events(self, rows: list[dict]) -> int:
        # one batch after the other, in order: a user's segment moves (``new`` -> ``default``) after each
        # batch and credits the popularity of their later events, so concurrent batches could race
        batches = [rows[i:i + self.batch] for i in range(0, len(rows), self.batch)]
        self.requests += len(batches)
        return sum(self.client.events(b)["accepted"] for b in batches)

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        batches = [rows[i:i + self.batch] for i in range(0, len(rows), self.batch)]
        self.requests += len(batches)
        for r in self._pool.map(self.client.feedback_batch, batches):
            for k in ("accepted", "duplicate", "late", "unknown", "not_sent"):
                out[k] += r.get(k, 0)
        return out

    def scheduler_tick(self, now: float) -> None:
        """The scheduler's periodic jobs at the simulated time (the service's :class:`~bandit_push.sim.service.Scheduler`)."""
        if self._refresh is not None:
            self._refresh(now)

    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]:
        """Decide for (user id, now, k) asks concurrently; no user appears twice in one call."""
        self.requests += len(asks)
        decide = self.client.decide
        answers = self._pool.map(lambda a: decide(a[0], now=float(a[1]), k=a[2]), asks)
        return [Answer(d["send"], [i["item_id"] for i in d["items"]], d["decision_id"], d["segment"], d["reason"],
                       (d["context"]["recency"], d["context"]["daypart"]),
                       _epoch(d["retry_at"]) if "retry_at" in d else None) for d in answers]

    def close(self) -> None:
        self._pool.shutdown()
        self.client.close()


class PopularReplica:
    """The half of the replica that no policy changes: the users' segments and the popular lists, which
    follow from the organic events and the scheduler's ticks alone (see the module doc).

    Several :class:`LocalGateway` on the same population share one (the baselines do): the first to post
    the n-th batch of events, or to make the n-th tick, computes it; the others read what it recorded. Each
    gateway keeps its own count of calls, so they must make the same calls in the same order, as the driver
    does on one population; a call that differs from the recorded one raises."""

    def __init__(self, settings: Settings, batch: int = 1000):
        self.s = settings
        self.batch = batch  #: as HttpGateway's: segments move after each batch of events
        self.offset = HourlyOffsets()  #: the time-zone rules' offsets, shared too
        self.segment: dict[str, str] = {}
        self.n_events: dict[str, int] = defaultdict(int)
        #: day -> segment ('*': all) -> item -> score; Decimal, as Redis's HINCRBYFLOAT sums the weights
        self.day_scores: dict[int, dict[str, dict[str, Decimal]]] = {}
        self.moved: dict[str, int] = {}  #: user -> the post_events call after which they are in ``default``
        self._posts: list[tuple[int, Any, Any]] = []            # per post_events call: its rows' count and ends
        self._ticks: list[tuple[float, int, dict[str, list[str]]]] = []  # per tick: now, posts before, lists

    @staticmethod
    def key(settings: Settings) -> tuple:
        """What the replica depends on: gateways whose settings share this key may share one."""
        return (tuple(sorted(settings.event_weights.items())), settings.segment_min_events,
                settings.popular_window_days, settings.popular_size)

    def post_events(self, n: int, rows: list[dict]) -> None:
        """The ``n``-th batch of events (counted from 0) of a gateway."""
        sig = (len(rows), rows[0]["ts"] if rows else None, rows[-1]["ts"] if rows else None)
        if n < len(self._posts):
            if self._posts[n] != sig:
                raise ValueError(f"post_events call {n} differs from the one the shared replica recorded")
            return
        if n != len(self._posts):
            raise ValueError(f"post_events call {n} comes before call {len(self._posts)}")
        s = self.s
        for start in range(0, len(rows), self.batch):
            newcomers = set()
            for r in rows[start:start + self.batch]:
                user = r["user_id"]
                seg = self.segment.setdefault(user, "new")
                if seg == "new":
                    newcomers.add(user)
                self.n_events[user] += 1
                w = float(s.event_weights.get(r["type"], 0.0))
                if r.get("item_id") and w > 0:
                    day = self.day_scores.setdefault(int(r["ts"] // 86400), {})
                    for key in (seg, "*"):
                        scores = day.setdefault(key, {})
                        scores[r["item_id"]] = scores.get(r["item_id"], Decimal(0)) + Decimal(repr(w))
            for user in newcomers:  # segmentation.assign_new without a segments model
                if self.n_events[user] >= s.segment_min_events:
                    self.segment[user] = "default"
                    self.moved[user] = n
        self._posts.append(sig)

    def tick(self, n: int, posts: int, now: float) -> dict[str, list[str]]:
        """The popular lists of a gateway's ``n``-th tick, made after ``posts`` batches of events."""
        if n < len(self._ticks):
            if self._ticks[n][:2] != (now, posts):
                raise ValueError(f"tick {n} differs from the one the shared replica recorded")
            return self._ticks[n][2]
        if n != len(self._ticks) or posts != len(self._posts):
            raise ValueError(f"tick {n} after {posts} batches of events comes out of order")
        last = int(now // 86400)
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for day in range(last - self.s.popular_window_days + 1, last + 1):
            for seg, scores in self.day_scores.get(day, {}).items():
                for item, score in scores.items():
                    totals[seg][item] += float(score)
        top = {seg: [i for i, _ in heapq.nlargest(self.s.popular_size, c.items(), key=lambda kv: (kv[1], kv[0]))]
               for seg, c in totals.items()}
        self._ticks.append((now, posts, top))
        return top


class LocalGateway:
    """The service's ``cadence`` policy and guardrails, replicated in-process (see the module doc).

    ``popular``: a :class:`PopularReplica` shared with other gateways replaying the same population (its
    settings' :meth:`PopularReplica.key` must be this one's); by default the gateway has its own."""

    def __init__(self, settings: Settings, gap_hours: float, tz_rules: dict[str, str], batch: int = 1000,
                 popular: PopularReplica | None = None):
        FixedCadence(settings, cadence_gap_hours=gap_hours)  # the same validation as the service's parser
        if popular is not None and (popular.key(popular.s) != popular.key(settings) or popular.batch != batch):
            raise ValueError("the shared PopularReplica was made for other settings")
        self.s = settings
        self.gap = gap_hours * 3600.0
        self.quiet = settings.quiet_window()
        self.tz_rules = tz_rules
        self.popular = popular or PopularReplica(settings, batch)
        self.pushes: dict[str, list[float]] = defaultdict(list)
        self.pushed_items: dict[str, dict[str, float]] = defaultdict(dict)  #: user -> item -> last pushed
        self.opted_out: set[str] = set()
        self.top: dict[str, list[str]] = {}
        self.seq = 0
        self.decisions: dict[str, str] = {}  #: decision id -> user, for the decisions that sent
        self._posts = self._ticks = 0
        self._refused: dict[tuple[str, str], Answer] = {}  # (segment, reason) -> the answer of a decide that does not send

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        pass  # time zones come from tz_rules

    def post_events(self, rows: list[dict]) -> int:
        self.popular.post_events(self._posts, rows)
        self._posts += 1
        return len(rows)

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        for r in rows:
            if r["event"] == "unsubscribed":
                self.opted_out.add(self.decisions[r["decision_id"]])
        return {"accepted": len(rows)}

    def scheduler_tick(self, now: float) -> None:
        """The popular-lists job only: the cadence baselines read no segments."""
        self.top = self.popular.tick(self._ticks, self._posts, now)
        self._ticks += 1

    @staticmethod
    def _pushes_in_day(pushes: list[float], now: float) -> int:
        """Pushes in (now - 24 h, now], as the decide script counts them (pushes are in time order)."""
        count = 0
        for t in reversed(pushes):
            if t <= now - 86400:
                break
            if t <= now:
                count += 1
        return count

    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]:
        """Each ask in turn, as the decide script answers it: opt-out, quiet hours (by the user's time-zone
        rule), the rolling 24 h cap, the minimum gap, then the cadence; a send picks the items. A decide that
        does not send gets no decision id (nothing is ever reported about it)."""
        s = self.s
        quiet, gap, cap = self.quiet, self.gap, s.max_per_day
        min_gap = s.min_gap_hours * 3600.0
        exclude = s.exclude_pushed_days * 86400.0
        moved, posts = self.popular.moved, self._posts
        offset, rules = self.popular.offset, self.tz_rules
        all_pushes, opted_out, refused, top = self.pushes, self.opted_out, self._refused, self.top
        in_day = self._pushes_in_day
        out = []
        for user, now, k in asks:
            self.seq += 1
            seg = "default" if moved.get(user, posts) < posts else "new"
            pushes = all_pushes[user]
            lp = pushes[-1] if pushes else None
            if user in opted_out:
                reason = "opted_out"
            else:
                lsec = (now + offset(rules[user], now)) % 86400
                if quiet and ((quiet[0] <= lsec < quiet[1]) if quiet[0] < quiet[1]
                              else (lsec >= quiet[0] or lsec < quiet[1])):
                    reason = "quiet_hours"
                elif len(pushes) >= cap and in_day(pushes, now) >= cap:
                    reason = "daily_cap"
                elif lp is not None and now - lp < min_gap:
                    reason = "min_gap"
                elif lp is None or now - lp >= gap:
                    out.append(self._send(user, now, k, seg, pushes, exclude, top))
                    continue
                else:
                    reason = "policy"
            a = refused.get((seg, reason))
            if a is None:
                a = refused[(seg, reason)] = Answer(False, [], "", seg, reason, ("", ""))
            out.append(a)
        return out

    def _send(self, user: str, now: float, k: int, seg: str, pushes: list[float], exclude: float,
              top: dict[str, list[str]]) -> Answer:
        did = f"local{self.seq}"
        self.decisions[did] = user
        # the items pushed within the exclusion window are left out; pushed: item -> when it was last pushed
        # (an item whose last push is older than the window is as good as never pushed)
        pushed, since = self.pushed_items[user], now - exclude
        items: list[str] = []
        picked: set[str] = set()
        for item in itertools.chain(top.get(seg, ()), top.get("*", ())):  # the segment's list, then the global one
            if len(items) >= k:
                break
            if item not in picked and not pushed.get(item, -math.inf) > since:
                picked.add(item)
                items.append(item)
        pushes.append(now)
        for item in items:
            pushed[item] = now
        return Answer(True, items, did, seg, "policy", ("", ""))

    def close(self) -> None:
        pass


class InProcessGateway:
    """The service's own domain calls (decide script, events, feedback) without HTTP: for quick policy
    studies only. The figures the README reports come from :class:`HttpGateway`."""

    def __init__(self, store: Any, settings: Settings):
        from bandit_push.decide import DecisionEngine
        from bandit_push.models import ModelCache
        from bandit_push.sim.service import Scheduler

        # snapshots every five simulated minutes, as the simulator's service (sim/service.py)
        settings = settings.replace(snapshot_seconds=300.0, snapshot_clock="decisions")
        self.store, self.s = store, settings
        self.engine = DecisionEngine(store, settings)
        self._scheduler = Scheduler(store, settings)
        # as the API's events route: newcomers move to their nearest segment once they have enough events
        self._models = ModelCache.for_serving()

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        from bandit_push import users as users_mod

        for uid, tz in users:
            users_mod.put(self.store, uid, timezone=tz)

    def post_events(self, rows: list[dict]) -> int:
        from bandit_push.events import ShopEvent, ingest

        return ingest(self.store, self.s, [ShopEvent(r["user_id"], r["type"], r["ts"], r.get("item_id"),
                                                     r.get("value", 0.0)) for r in rows],
                      registry=self.engine.registry, models=self._models)[0] if rows else 0

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        from bandit_push.feedback import FeedbackEvent, record

        out: dict[str, int] = defaultdict(int)
        if rows:
            for status in record(self.store, self.s, [FeedbackEvent(r["decision_id"], r["event"], r["ts"]) for r in rows]):
                out[status] += 1
        return out

    def scheduler_tick(self, now: float) -> None:
        self._scheduler.tick(now)

    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]:
        out = []
        for uid, now, k in asks:
            d = self.engine.decide(uid, now=now, k=k)
            out.append(Answer(d.send, [i.item_id for i in d.items], d.decision_id, d.segment, d.reason,
                              (d.context["recency"], d.context["daypart"]), d.retry_at))
        return out
