"""The benchmark population: users, their shopping history, pushes with feedback, popular lists.

Everything is written through the service's own code paths (the upsert, event,
decide and feedback scripts via :mod:`bandit_push`), except the segment
assignment, which stands in for the clustering job that does not exist yet: it
writes the user hash's ``sg`` field and the segment sizes hash, with the key
names from :class:`bandit_push.keys.Keys`.

The work is split over a few processes by user range (the Python side of
redis-py, not Redis, is the bottleneck when one process populates), and every
range is seeded, so a rerun builds the same population.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

from bandit_push import popular, refit
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.events import ShopEvent, ingest
from bandit_push.feedback import FeedbackEvent, record
from bandit_push.store import Store
from bandit_push.tzrule import posix_rule

TIMEZONES = (("UTC", 4), ("Europe/London", 8), ("Europe/Berlin", 14), ("Europe/Paris", 8), ("Europe/Madrid", 5),
             ("America/New_York", 14), ("America/Chicago", 7), ("America/Los_Angeles", 10),
             ("America/Sao_Paulo", 6), ("Asia/Kolkata", 8), ("Asia/Tokyo", 6), ("Australia/Sydney", 4))
# (type, share, has an item); a purchase also carries a value
EVENT_MIX = (("view", 0.55, True), ("add_to_cart", 0.12, True), ("purchase", 0.06, True),
             ("search", 0.12, False), ("app_open", 0.15, False))
# outcome probabilities after a sent push (delivered is nearly certain)
FEEDBACK_RATES = (("delivered", 0.95), ("opened", 0.12), ("clicked", 0.05), ("converted", 0.01),
                  ("dismissed", 0.10), ("unsubscribed", 0.002))
BATCH = 2000


@dataclass(frozen=True)
class Plan:
    """What to build: sizes, the clock, and the seed."""

    users: int = 100_000
    segments: int = 50
    items: int = 10_000
    events_per_user: float = 3.0
    #: decision rounds: (seconds before t_end, share of the users decided for)
    decide_rounds: tuple[tuple[float, float], ...] = ((20 * 3600.0, 1.0), (8 * 3600.0, 0.5))
    t_end: float = 0.0                                              #: the population's "now" (epoch s)
    history_days: int = 7                                           #: shopping events spread over these days
    seed: int = 1


def user_id(i: int) -> str:
    """The id of user number ``i`` (the wrk script builds the same ids)."""
    return f"u{i}"


def segment_of(i: int, plan: Plan) -> str:
    """A skewed but deterministic segment for user ``i``: a few large segments, a long tail."""
    r = random.Random(plan.seed * 1_000_003 + i).random()
    return f"s{min(int(plan.segments * r ** 1.6), plan.segments - 1)}"


def populate(settings: Settings, plan: Plan, procs: int = 2) -> dict:
    """Build the population; returns timings, counts and a sample of decision ids."""
    store = Store.connect(settings)
    keys = store.keys
    bounds = [(plan.users * p // procs, plan.users * (p + 1) // procs) for p in range(procs)]
    timings, totals = {}, Counter()
    decision_sample: list[str] = []
    with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
        t = time.perf_counter()
        for c in pool.map(_users, [settings] * procs, [plan] * procs, bounds):
            totals.update(c)
        # segment sizes consistent with the sg fields just written; drop the "new" count put() made
        sizes = Counter(segment_of(i, plan) for i in range(plan.users))
        tx = store.redis.pipeline(transaction=True)
        tx.delete(keys.segment_sizes())
        tx.hset(keys.segment_sizes(), mapping=dict(sizes))
        tx.execute()
        timings["users_s"] = time.perf_counter() - t

        t = time.perf_counter()
        for c in pool.map(_events, [settings] * procs, [plan] * procs, bounds):
            totals.update(c)
        timings["events_s"] = time.perf_counter() - t

        t = time.perf_counter()
        lists = popular.refresh(store, settings)
        timings["popular_s"] = time.perf_counter() - t
        totals["popular_lists"] = len(lists)

        # the MF refit: every user with item events gets a precomputed list that decide reads
        t = time.perf_counter()
        summary = refit.run(store, settings, "mf", "bench")
        timings["refit_mf_s"] = time.perf_counter() - t
        totals["recs_lists"] = summary["lists"]

        t = time.perf_counter()
        for c, sample in pool.map(_decisions, [settings] * procs, [plan] * procs, bounds):
            totals.update(c)
            decision_sample += sample
        timings["decisions_s"] = time.perf_counter() - t
    store.close()
    return {"timings_s": {k: round(v, 2) for k, v in timings.items()}, "counts": dict(totals),
            "decision_sample": decision_sample}


def _users(settings: Settings, plan: Plan, bounds: tuple[int, int]) -> Counter:
    """Create users with a time zone (the upsert script users.put runs, pipelined), then set segments."""
    store = Store.connect(settings)
    keys = store.keys
    rng = random.Random(plan.seed * 7 + bounds[0])
    zones, weights = zip(*TIMEZONES)
    rules = {z: posix_rule(z) for z in zones}
    lo, hi = bounds
    for start in range(lo, hi, BATCH):
        pipe = store.redis.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, hi)):
            tz = rng.choices(zones, weights)[0]
            # exactly what bandit_push.users.put(store, uid, timezone=tz) sends, batched
            store.upsert_user_script(keys=[keys.user(user_id(i)), keys.segment_sizes()],
                                     args=[tz, rules[tz], ""], client=pipe)
        pipe.execute()
        pipe = store.redis.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, hi)):
            pipe.hset(keys.user(user_id(i)), "sg", segment_of(i, plan))
        pipe.execute()
    store.close()
    return Counter(users=hi - lo)


def _events(settings: Settings, plan: Plan, bounds: tuple[int, int]) -> Counter:
    """A few shopping events per user over the history window; items skewed by segment taste."""
    store = Store.connect(settings)
    rng = random.Random(plan.seed * 11 + bounds[0])
    types, shares, has_item = zip(*EVENT_MIX)
    t0 = plan.t_end - plan.history_days * 86400.0
    span = plan.history_days * 86400.0 - max((ago for ago, _ in plan.decide_rounds), default=0.0) - 3600.0
    batch: list[ShopEvent] = []
    n = 0
    for i in range(*bounds):
        seg = int(segment_of(i, plan)[1:])
        for _ in range(max(1, int(rng.expovariate(1 / plan.events_per_user) + 0.5))):
            k = rng.choices(range(len(types)), shares)[0]
            item = None
            if has_item[k]:
                # a Zipf-like rank, offset per segment so that segments' popular lists differ
                rank = min(int(rng.paretovariate(1.1)) - 1, plan.items - 1)
                item = f"i{(rank + seg * 37) % plan.items}"
            value = round(rng.uniform(5, 120), 2) if types[k] == "purchase" else 0.0
            batch.append(ShopEvent(user_id(i), types[k], t0 + rng.random() * span, item_id=item, value=value))
            if len(batch) >= BATCH:
                n += ingest(store, settings, batch)[0]
                batch = []
    if batch:
        n += ingest(store, settings, batch)[0]
    store.close()
    return Counter(events=n)


def _decisions(settings: Settings, plan: Plan, bounds: tuple[int, int]) -> tuple[Counter, list[str]]:
    """Decide for every user in each round; report outcomes of the sent pushes as feedback."""
    store = Store.connect(settings)
    engine = DecisionEngine(store, settings, rng=random.Random(plan.seed * 13 + bounds[0]))
    rng = random.Random(plan.seed * 17 + bounds[0])
    counts: Counter = Counter()
    sample: list[str] = []
    pending: list[FeedbackEvent] = []
    for ago, share in plan.decide_rounds:
        now = plan.t_end - ago
        for i in range(*bounds):
            if share < 1.0 and (i * 0.6180339887) % 1.0 >= share:
                continue
            d = engine.decide(user_id(i), now=now)
            counts["decisions"] += 1
            counts[f"reason:{d.reason}" + (":send" if d.send else "")] += 1
            if rng.random() < 0.02:
                sample.append(d.decision_id)
            if d.send:
                for event, p in FEEDBACK_RATES:
                    if rng.random() < p:
                        pending.append(FeedbackEvent(d.decision_id, event, now + rng.uniform(60, 7200)))
            if len(pending) >= BATCH:
                counts.update(f"feedback:{s}" for s in record(store, settings, pending))
                pending = []
    if pending:
        counts.update(f"feedback:{s}" for s in record(store, settings, pending))
    store.close()
    return counts, sample


def saturate(settings: Settings, users: list[int], t0: float, days: int = 3) -> Counter:
    """Push ``users`` as often as the guardrails allow for ``days`` days from ``t0``: the heaviest state.

    A decide every ``min_gap_hours`` (the policy says yes about half the time, the daily cap
    stops the rest), so recent pushes and recently pushed items reach their bound.
    """
    store = Store.connect(settings)
    engine = DecisionEngine(store, settings, rng=random.Random(3))
    counts: Counter = Counter()
    step = max(settings.min_gap_hours, 1.0) * 3600.0
    for j in range(int(days * 86400 // step)):
        for i in users:
            counts["send" if engine.decide(user_id(i), now=t0 + j * step).send else "no_send"] += 1
    store.close()
    return counts


def wsgi_client(app, users: int, rng: random.Random, clock: list[float]):
    """The app called as a WSGI callable, without a server or HTTP parsing (bench/decide_cpu.py,
    bench/script_cost.py): ``call(method, path, body)`` and ``decide()``, the serving benchmark's decide
    (a random one of ``users``, the clock ``clock[0]`` moved on by 2 s)."""
    import io
    import sys

    def call(method: str, path: str, body: bytes = b"") -> None:
        env = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
               "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
               "wsgi.run_once": False, "wsgi.version": (1, 0),
               "wsgi.input_terminated": True}  # (as gunicorn sets it: the app takes the path it takes there)
        out = app(env, lambda status, headers, exc=None: None)
        b"".join(out)
        out.close()

    def decide() -> None:
        clock[0] += 2
        call("POST", "/v1/decide", b'{"user_id":"%s","now":%d}' % (user_id(rng.randrange(users)).encode(), clock[0]))

    return call, decide
