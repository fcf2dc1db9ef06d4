"""Two ways to put the simulated gateway's questions to a policy.

:class:`HttpGateway` talks to a running bandit-push service over HTTP, exactly as
a notification gateway does: ``PUT /v1/users``, batched ``POST /v1/events``,
``POST /v1/decide`` with the simulated clock as ``now``, batched ``POST
/v1/feedback`` with each report's own ``ts``; several requests in flight, one
per connection (kept alive where the server keeps it).

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
import json
import math
import selectors
import socket
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, NamedTuple, Sequence
from urllib.parse import urlsplit

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
    """A gateway client for the service at ``base_url``, with ``connections`` requests in flight at once.

    The requests are what a notification gateway sends (``Content-Type: application/json`` bodies, HTTP/1.1,
    keep-alive where the server keeps the connection, a new one where it closes it, as gunicorn's sync
    workers do), on plain sockets driven from the calling thread: ``connections`` sockets, each with one
    request in flight, multiplexed with ``selectors``. The simulator's own CPU shares the machine with the
    service it measures, so the client is kept lean: no thread pool, no ``http.client`` header parsing."""

    def __init__(self, base_url: str, connections: int = 4, batch: int = 1000,
                 refresh: Callable[[float], Any] | None = None, timeout: float = 30.0):
        u = urlsplit(base_url)
        self._refresh = refresh
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.batch = batch
        self.concurrency = max(1, int(connections))
        self.timeout = timeout
        self._head = f"HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\nContent-Length: ".encode()
        self._idle: list[socket.socket] = []   # keep-alive connections with no request in flight
        self._address: tuple | None = None
        self._selector = selectors.DefaultSelector()
        self.requests = 0

    # -- transport ------------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self._address is None:  # resolved once: a new connection per request (sync workers) is the common case
            family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
            self._address = family, kind, proto, address
        family, kind, proto, address = self._address
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    def _send(self, slot: "_Slot") -> None:
        """Put ``slot``'s request on a connection (a kept-alive one if there is one) and watch it."""
        while True:
            reused = bool(self._idle)
            sock = self._idle.pop() if reused else self._connect()
            try:
                sock.sendall(slot.data)
            except OSError:
                sock.close()
                if reused:
                    continue  # a kept-alive connection the server has closed meanwhile: take another
                raise
            slot.reset(reused)
            self._selector.register(sock, selectors.EVENT_READ, slot)
            return

    def _exchange(self, requests: Sequence[tuple[str, str, bytes]]) -> list[Any]:
        """Every (method, path, body) request answered, in order, with at most ``concurrency`` in flight;
        each answer is the decoded JSON body. An answer other than 2xx raises."""
        out: list[Any] = [None] * len(requests)
        todo = iter(range(len(requests)))
        try:
            self._answer(requests, out, todo)
        except BaseException:
            for key in list(self._selector.get_map().values()):  # nothing stays half-read for the next call
                self._selector.unregister(key.fileobj)
                key.fileobj.close()
            raise
        return out

    def _answer(self, requests: Sequence[tuple[str, str, bytes]], out: list[Any], todo: Any) -> None:
        head = self._head
        inflight = 0
        for i in itertools.islice(todo, self.concurrency):
            method, path, body = requests[i]
            self._send(_Slot(i, b"%s %s %s%d\r\n\r\n%s" % (method.encode(), path.encode(), head, len(body), body)))
            inflight += 1
        select = self._selector.select
        while inflight:
            ready = select(self.timeout)
            if not ready:
                raise TimeoutError(f"no answer from {self.host}:{self.port} in {self.timeout:g} s")
            for key, _ in ready:
                sock, slot = key.fileobj, key.data
                try:
                    chunk = sock.recv(262144)
                except ConnectionError:
                    chunk = b""
                done = slot.feed(chunk)
                if done is None:
                    continue
                self._selector.unregister(sock)
                if done is _RETRY:  # the server closed a kept-alive connection before answering: once more
                    sock.close()
                    self._send(slot)
                    continue
                if slot.keep_alive:
                    self._idle.append(sock)
                else:
                    sock.close()
                self.requests += 1
                status, raw = done
                method, path, _ = requests[slot.index]
                if status >= 300:
                    raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
                out[slot.index] = _decode(raw.decode())
                i = next(todo, None)
                if i is None:
                    inflight -= 1
                else:
                    method, path, body = requests[i]
                    self._send(_Slot(i, b"%s %s %s%d\r\n\r\n%s" % (method.encode(), path.encode(), head, len(body), body)))

    def _call(self, method: str, path: str, body: Any) -> Any:
        return self._exchange([(method, path, _encode(body).encode())])[0]

    # -- the gateway ----------------------------------------------------------------------------

    def put_users(self, users: Sequence[tuple[str, str]]) -> None:
        self._exchange([("PUT", f"/v1/users/{uid}", _encode({"timezone": tz}).encode()) for uid, tz in users])

    def post_events(self, rows: list[dict]) -> int:
        # one batch after the other, in order: a user's segment moves (``new`` -> ``default``) after each
        # batch and credits the popularity of their later events, so concurrent batches could race
        return sum(self._call("POST", "/v1/events", {"events": rows[i:i + self.batch]})["accepted"]
                   for i in range(0, len(rows), self.batch))

    def post_feedback(self, rows: list[dict]) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        if not rows:
            return out
        answers = self._exchange([("POST", "/v1/feedback", _encode({"events": rows[i:i + self.batch]}).encode())
                                  for i in range(0, len(rows), self.batch)])
        for r in answers:
            for k in ("accepted", "duplicate", "late", "unknown", "not_sent"):
                out[k] += r.get(k, 0)
        return out

    def scheduler_tick(self, now: float) -> None:
        """The scheduler's periodic jobs at the simulated time (the service's :class:`~bandit_push.sim.service.Scheduler`)."""
        if self._refresh is not None:
            self._refresh(now)

    def decide_many(self, asks: Sequence[tuple[str, float, int]]) -> list[Answer]:
        """Decide for (user id, now, k) asks concurrently; no user appears twice in one call."""
        # the body json.dumps({"user_id": ..., "now": ..., "k": ...}, separators=(",", ":")) writes
        answers = self._exchange([("POST", "/v1/decide", b'{"user_id":%s,"now":%s,"k":%d}' % (
            _encode(uid).encode(), repr(float(now)).encode(), k)) for uid, now, k in asks])
        return [Answer(d["send"], [i["item_id"] for i in d["items"]], d["decision_id"], d["segment"], d["reason"],
                       (d["context"]["recency"], d["context"]["daypart"]),
                       _epoch(d["retry_at"]) if "retry_at" in d else None) for d in answers]

    def close(self) -> None:
        for sock in self._idle:
            sock.close()
        self._idle = []
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()
        self._selector.close()


_encode = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode
_RETRY = object()


class _Slot:
    """One request in flight and its answer as it arrives: ``feed`` returns None until the answer is
    complete, then (status, body bytes), or ``_RETRY`` when a reused connection closed without answering."""

    __slots__ = ("index", "data", "buf", "reused", "head_end", "status", "length", "keep_alive", "chunked")

    def __init__(self, index: int, data: bytes):
        self.index, self.data = index, data

    def reset(self, reused: bool) -> None:
        self.buf, self.reused, self.head_end = b"", reused, -1
        self.status, self.length, self.keep_alive, self.chunked = 0, -1, True, False

    def feed(self, chunk: bytes) -> Any:
        if not chunk:  # the server closed the connection
            if not self.buf and self.reused:
                return _RETRY
            if self.head_end >= 0 and self.length < 0 and not self.chunked:
                self.keep_alive = False
                return self.status, self.buf[self.head_end:]  # a body delimited by the close
            raise ConnectionError(f"the connection closed in the middle of an answer ({len(self.buf)} bytes)")
        self.buf = buf = self.buf + chunk if self.buf else chunk
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            self.head_end = end + 4
            lines = buf[:end].decode("latin-1").split("\r\n")
            version, status = lines[0].split(" ", 2)[:2]
            self.status = int(status)
            self.keep_alive = version != "HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "connection":
                    self.keep_alive = value.strip().lower() == "keep-alive" or (
                        self.keep_alive and value.strip().lower() != "close")
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
        if self.chunked:
            body = _dechunk(buf, self.head_end)
            return None if body is None else (self.status, body)
        if self.length >= 0 and len(buf) - self.head_end >= self.length:
            return self.status, buf[self.head_end:self.head_end + self.length]
        return None


def _dechunk(buf: bytes, pos: int) -> bytes | None:
    """The body of a chunked answer starting at ``pos``, or None while it is incomplete."""
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0], 16)
        if size == 0:
            return b"".join(parts) if buf.find(b"\r\n\r\n", eol) >= 0 else None  # the last chunk, then trailers
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(buf[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2


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
