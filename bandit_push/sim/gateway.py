"""Two ways to put the simulated gateway's questions to a policy.

:class:`HttpGateway` talks to a running bandit-push service over HTTP, exactly as
a notification gateway does: ``PUT /v1/users``, batched ``POST /v1/events``,
``POST /v1/decide`` with the simulated clock as ``now``, batched ``POST
/v1/feedback`` with each report's own ``ts``. Keep-alive connections, one per
thread, several threads.

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
import http.client
import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from bandit_push.config import Settings
from bandit_push.policies import FixedCadence
from bandit_push.tzrule import utc_offset


@dataclass(frozen=True)
class Answer:
    """What the gateway learns from one decide."""

    send: bool
    items: list[str]
    decision_id: str
    segment: str
    reason: str
    context: tuple[str, str]


class HttpGateway:
    """A gateway client for the service at ``base_url``; ``threads`` concurrent decides."""

    def __init__(self, base_url: str, threads: int = 4, batch: int = 1000,
                 refresh: Callable[[float], Any] | None = None):
        u = urlsplit(base_url)
        self._refresh = refresh
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.batch = batch
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sim-http")
        self.requests = 0

    def _call(self, method: str, path: str, body: Any) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = json.dumps(body, separators=(",", ":"))
        for attempt in (0, 1):
            try:
                conn.request(method, path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                conn.close()  # a dropped keep-alive connection: reconnect once
                if attempt:
                    raise
        self.requests += 1
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
        return json.loads(raw)

    def _batched(self, path: str, rows: list[dict]) -> list[Any]:
        chunks = [rows[i:i + self.batch] for i in range(0, len(rows), self.batch)]
        return list(self._pool.map(lambda c: self._call("POST", path, {"events": c}), chunks))

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        list(self._pool.map(lambda u: self._call("PUT", f"/v1/users/{u[0]}", {"timezone": u[1]}), users))

    def post_events(self, rows: list[dict]) -> int:
        # one batch after the other, in order: a user's segment moves (``new`` -> ``default``) after each
        # batch and credits the popularity of their later events, so concurrent batches could race
        chunks = [rows[i:i + self.batch] for i in range(0, len(rows), self.batch)]
        return sum(self._call("POST", "/v1/events", {"events": c})["accepted"] for c in chunks)

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in (self._batched("/v1/feedback", rows) if rows else []):
            for k in ("accepted", "duplicate", "late", "unknown", "not_sent"):
                out[k] += r.get(k, 0)
        return out

    def scheduler_tick(self, now: float) -> None:
        """The scheduler's periodic jobs at the simulated time (the service's :class:`~bandit_push.sim.service.Scheduler`)."""
        if self._refresh is not None:
            self._refresh(now)

    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]:
        """Decide for (user id, now, k) asks concurrently; no user appears twice in one call."""
        def one(ask: tuple[str, float, int]) -> Answer:
            d = self._call("POST", "/v1/decide", {"user_id": ask[0], "now": ask[1], "k": ask[2]})
            return Answer(d["send"], [i["item_id"] for i in d["items"]], d["decision_id"], d["segment"], d["reason"],
                          (d["context"]["recency"], d["context"]["daypart"]))
        return list(self._pool.map(one, asks))

    def close(self) -> None:
        self._pool.shutdown()


class LocalGateway:
    """The service's ``cadence`` policy and guardrails, replicated in-process (see the module doc)."""

    def __init__(self, settings: Settings, gap_hours: float, tz_rules: dict[str, str], batch: int = 1000):
        FixedCadence(settings, cadence_gap_hours=gap_hours)  # the same validation as the service's parser
        self.s = settings
        self.gap = gap_hours * 3600.0
        self.quiet = settings.quiet_window()
        self.tz_rules = tz_rules
        self.pushes: dict[str, list[float]] = defaultdict(list)
        self.pushed_items: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.opted_out: set[str] = set()
        self.batch = batch  #: as HttpGateway's: segments move after each batch of events
        self.segment: dict[str, str] = {}
        self.n_events: dict[str, int] = defaultdict(int)
        #: day -> segment ('*': all) -> item -> score; Decimal, as Redis's HINCRBYFLOAT sums the weights
        self.day_scores: dict[int, dict[str, dict[str, Decimal]]] = {}
        self.top: dict[str, list[str]] = {}
        self.seq = 0
        self.decisions: dict[str, str] = {}
        self._offsets: dict[tuple[str, int], int | bool] = {}

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        pass  # time zones come from tz_rules

    def post_events(self, rows: list[dict]) -> int:
        for start in range(0, len(rows), self.batch):
            newcomers = set()
            for r in rows[start:start + self.batch]:
                user = r["user_id"]
                seg = self.segment.setdefault(user, "new")
                if seg == "new":
                    newcomers.add(user)
                self.n_events[user] += 1
                w = float(self.s.event_weights.get(r["type"], 0.0))
                if r.get("item_id") and w > 0:
                    day = self.day_scores.setdefault(int(r["ts"] // 86400), {})
                    for key in (seg, "*"):
                        scores = day.setdefault(key, {})
                        scores[r["item_id"]] = scores.get(r["item_id"], Decimal(0)) + Decimal(repr(w))
            for user in newcomers:  # segmentation.assign_new without a segments model
                if self.n_events[user] >= self.s.segment_min_events:
                    self.segment[user] = "default"
        return len(rows)

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        for r in rows:
            if r["event"] == "unsubscribed":
                self.opted_out.add(self.decisions[r["decision_id"]])
        return {"accepted": len(rows)}

    def scheduler_tick(self, now: float) -> None:
        """The popular-lists job only: the cadence baselines read no segments."""
        last = int(now // 86400)
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for day in range(last - self.s.popular_window_days + 1, last + 1):
            for seg, scores in self.day_scores.get(day, {}).items():
                for item, score in scores.items():
                    totals[seg][item] += float(score)
        self.top = {seg: [i for i, _ in heapq.nlargest(self.s.popular_size, c.items(), key=lambda kv: (kv[1], kv[0]))]
                    for seg, c in totals.items()}

    def _offset(self, rule: str, now: float) -> int:
        """The rule's UTC offset at ``now``, cached per hour (an hour with a transition is computed exactly)."""
        hour = int(now // 3600)
        key = (rule, hour)
        off = self._offsets.get(key)
        if off is None:
            a, b = utc_offset(rule, hour * 3600), utc_offset(rule, hour * 3600 + 3599)
            off = self._offsets[key] = a if a == b else False
        return utc_offset(rule, now) if off is False else off

    def _decide(self, user: str, now: float, k: int) -> Answer:
        s = self.s
        self.seq += 1
        did = f"local{self.seq}"
        self.decisions[did] = user
        seg = self.segment.get(user, "new")
        pushes = self.pushes[user]
        lp = pushes[-1] if pushes else None
        lsec = (now + self._offset(self.tz_rules[user], now)) % 86400
        reason = "policy"
        if user in self.opted_out:
            reason = "opted_out"
        elif self.quiet and ((self.quiet[0] <= lsec < self.quiet[1]) if self.quiet[0] < self.quiet[1]
                             else (lsec >= self.quiet[0] or lsec < self.quiet[1])):
            reason = "quiet_hours"
        elif self._pushes_in_day(pushes, now) >= s.max_per_day:
            reason = "daily_cap"
        elif lp is not None and now - lp < s.min_gap_hours * 3600.0:
            reason = "min_gap"
        send = reason == "policy" and (lp is None or now - lp >= self.gap)
        items: list[str] = []
        if send:  # the items of a decision that does not send are never used by the simulation
            excluded = {i for i, t in self.pushed_items[user] if t > now - s.exclude_pushed_days * 86400.0}
            picked: set[str] = set()
            for item in self.top.get(seg, []) + self.top.get("*", []):  # the segment's list, then the global one
                if len(items) >= k:
                    break
                if item not in excluded and item not in picked:
                    picked.add(item)
                    items.append(item)
            pushes.append(now)
            self.pushed_items[user] = [(i, t) for i, t in self.pushed_items[user] if i in excluded] + \
                [(i, now) for i in items]
        return Answer(send, items, did, seg, reason, ("", ""))

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
        return [self._decide(*a) for a in asks]

    def close(self) -> None:
        pass


class InProcessGateway:
    """The service's own domain calls (decide script, events, feedback) without HTTP: for quick policy
    studies only. The figures the README reports come from :class:`HttpGateway`."""

    def __init__(self, store: Any, settings: Settings):
        from bandit_push.decide import DecisionEngine
        from bandit_push.sim.service import Scheduler

        from bandit_push.models import ModelCache

        self.store, self.s = store, settings
        self.engine = DecisionEngine(store, settings)
        self._scheduler = Scheduler(store, settings)
        # as the API's events route: newcomers move to their nearest segment once they have enough events
        self._models = ModelCache(skip={"mf": ("user_factors",)})

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
                              (d.context["recency"], d.context["daypart"])))
        return out
