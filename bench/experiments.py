"""Experiments: what they cost the decide path, in Redis memory, and to report.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/experiments.py [--users 50000]

1. decide throughput in-process (one thread, the engine's EVALSHA path) with no experiment (the
   baseline), one running experiment of two variants, and three running experiments (segment-restricted
   ones first, so the script checks each), measured in the same run, interleaved, as ratios to the baseline
   within each round (the median and range over rounds: the machine is shared);
   plus the script calls per decide (one, after the registry's first load);
2. bytes per exposed user of the per-user counters (MEMORY USAGE of the experiment's users hash after
   every user was exposed, given a send, a click and an event);
3. the report's wall time for that many users.
Prints one JSON document. Keys live under a fresh prefix, deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bandit_push import experiment_report, experiments, feedback  # noqa: E402
from bandit_push.config import Settings  # noqa: E402
from bandit_push.decide import DecisionEngine  # noqa: E402
from bandit_push.events import ShopEvent, ingest  # noqa: E402
from bandit_push.store import Store  # noqa: E402

T0 = 1790000000.0


def definition(name: str, segments=None) -> dict:
    body = {"name": name, "variants": [{"name": "control", "weight": 1, "policy": {"name": "thompson", "cost": -1}},
                                       {"name": "b", "weight": 1, "policy": {"name": "ucb", "cost": 0.1}}]}
    if segments:
        body["segments"] = segments
    return body


def rate(engine: DecisionEngine, users: int, offset: float) -> float:
    """Decides per second over ``users`` distinct users (a fresh clock slot so guardrails do not repeat)."""
    start = time.perf_counter()
    for i in range(users):
        engine.decide(f"b{i}", now=T0 + offset)
    return users / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50000, help="exposed users for the memory and report figures")
    ap.add_argument("--rate-users", type=int, default=2000, help="decides per throughput sample")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    url = os.environ.get("REDIS_URL")
    if not url:
        print("set REDIS_URL (e.g. redis://127.0.0.1:6379/5)", file=sys.stderr)
        return 2
    settings = Settings(redis_url=url, prefix=f"bpbench:{uuid.uuid4().hex[:8]}:", quiet_hours="off", seed=1)
    store = Store.connect(settings)
    out: dict = {"users": args.users, "rate_users": args.rate_users, "rounds": args.rounds}
    try:
        # 1. throughput: three engines on one store; the registry moves between phases, so each phase
        # starts with one reload (excluded: a warm-up decide precedes every timed sample)
        seg_only = [experiments.create(store, settings, definition(f"s{i}", [f"s{i}"])).id for i in range(2)]
        main_x = experiments.create(store, settings, definition("everyone")).id
        for x in seg_only:  # started (then paused) first: older, so a decide checks them before main_x
            experiments.transition(store, x, "start")
            experiments.transition(store, x, "pause")
        samples: dict[str, list[float]] = {"none": [], "one": [], "three": []}
        engine = DecisionEngine(store, settings)
        calls = []
        call = engine._call
        engine._call = lambda *a: calls.append(1) or call(*a)  # counts decide calls, the round trips
        slot = 0.0
        for _ in range(args.rounds):
            for phase in ("none", "one", "three"):
                for x in [main_x, *seg_only]:
                    st = experiments.get(store, x).status
                    want = (phase == "one" and x == main_x) or phase == "three"
                    if want and st != "running":
                        experiments.transition(store, x, "start")
                    elif not want and st == "running":
                        experiments.transition(store, x, "pause")
                slot += 86400.0
                engine.decide("warm-up", now=T0 + slot)
                n0 = len(calls)
                samples[phase].append(rate(engine, args.rate_users, slot))
                out.setdefault("script_calls_per_decide", {})[phase] = (len(calls) - n0) / args.rate_users
        # the machine is shared: compare within a round (samples seconds apart), report the median round
        out["decides_per_s_median"] = {k: round(statistics.median(v)) for k, v in samples.items()}
        out["ratio_to_no_experiment_median"] = {
            k: round(statistics.median(a / b for a, b in zip(v, samples["none"])), 3) for k, v in samples.items()}
        out["ratio_to_no_experiment_range"] = {
            k: [round(min(a / b for a, b in zip(v, samples["none"])), 3),
                round(max(a / b for a, b in zip(v, samples["none"])), 3)] for k, v in samples.items()}
        for x in seg_only:
            experiments.transition(store, x, "stop")

        # 2. memory per exposed user, and 3. the report's time
        n = args.users
        xid = experiments.transition(store, experiments.create(store, settings, definition("memory")).id,
                                     "start").id
        experiments.transition(store, main_x, "stop")
        engine = DecisionEngine(store, settings)
        fb, evs, t0 = [], [], time.perf_counter()
        for i in range(n):
            d = engine.decide(f"m{i}", now=T0 + 40 * 86400.0)
            if d.send:
                fb.append(feedback.FeedbackEvent(d.decision_id, "clicked", T0 + 40 * 86400.0 + 60))
            evs.append(ShopEvent(f"m{i}", "view", T0 + 40 * 86400.0 + 120, item_id="i1"))
            if len(evs) == 1000:
                feedback.record(store, settings, fb)
                ingest(store, settings, evs, registry=engine.registry)
                fb, evs = [], []
        if evs:
            feedback.record(store, settings, fb)
            ingest(store, settings, evs, registry=engine.registry)
        out["expose_feedback_events_s"] = round(time.perf_counter() - t0, 1)
        # (the counters are one hash per user slot: their memory summed over the slots the users hash to)
        slot_keys = {store.keys.experiment_users(xid, f"m{i}") for i in range(n)}
        mem = sum(store.redis.memory_usage(k, samples=0) or 0 for k in slot_keys)
        out["users_hash_bytes"] = mem
        out["bytes_per_exposed_user"] = round(mem / len(experiments.user_counters(store, xid)), 1)
        out["example_record"] = store.redis.hget(store.keys.experiment_users(xid, "m1"), "m1")
        t0 = time.perf_counter()
        rep = experiment_report.report(store, xid)
        out["report_s"] = round(time.perf_counter() - t0, 2)
        out["report_summary"] = rep["summary"]
    finally:
        store.delete_prefix()
        store.close()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
