"""Client-side CPU of one decide without HTTP: DecisionEngine.decide in a loop against a real Redis,
beside a bare EVALSHA round trip of a no-op script, then a cProfile of the decide loop.

Usage: .venv/bin/python bench/decide_cpu.py [--redis-url URL] [--n 5000]
(default redis://127.0.0.1:6379/15; keys under the prefix bpprof:, deleted afterwards)
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--n", type=int, default=5000)
    a = ap.parse_args()
    s = Settings(redis_url=a.redis_url, prefix="bpprof:", quiet_hours="off")
    store = Store.connect(s)
    try:
        eng = DecisionEngine(store, s)
        for i in range(200):
            eng.decide(f"u{i}", now=1.8e9 + i * 20)

        def timed(label, fn):
            t, w = time.process_time(), time.perf_counter()
            for i in range(a.n):
                fn(i)
            cpu, wall = (time.process_time() - t) / a.n * 1e6, (time.perf_counter() - w) / a.n * 1e6
            print(f"{label:>24}: CPU {cpu:6.1f} us, wall {wall:6.1f} us per call")
            return cpu

        d = timed("DecisionEngine.decide", lambda i: eng.decide(f"u{i % 3000}", now=1.8e9 + 5000 + i * 20))
        conn = store.thread_connection()
        sha = store.redis.script_load("return 1")

        def bare(i):
            conn.send_command("EVALSHA", sha, 0)
            conn.read_response()

        b = timed("bare EVALSHA round trip", bare)
        print(f"decide's client CPU beyond a bare round trip: {d - b:.1f} us")
        prof = cProfile.Profile()
        prof.enable()
        for i in range(a.n):
            eng.decide(f"u{i % 3000}", now=1.8e9 + 200000 + i * 20)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(10)
    finally:
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
