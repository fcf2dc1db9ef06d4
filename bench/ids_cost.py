"""What escaping ids (bandit_push/ids.py) costs a decide: the app's CPU per ``POST /v1/decide``, called as a WSGI
callable on the serving benchmark's population (bench/population.py), with the escaping in place against the same
app with ``ids.store`` and ``ids.load`` swapped for the identity, in alternating rounds of one process (a shared
machine's load moves both alike); and, since that difference is within a loaded machine's noise, the share it
must be: the calls a decide makes, counted, times each function's cost alone (on the population's ids, and on ids
it escapes) over the decide's.

Usage: .venv/bin/python bench/ids_cost.py [--redis-url URL] [--users 2000] [--n 400] [--rounds 25]
(default redis://127.0.0.1:6379/15; keys under the prefix bpids:, deleted before and afterwards)
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from bandit_push import ids
from bandit_push.config import Settings
from bandit_push.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from app_cpu import per_call  # noqa: E402
from population import Plan, populate, wsgi_client  # noqa: E402
from trip_app import create  # noqa: E402


def _identity(text: str) -> str:
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--n", type=int, default=400, help="decides per round")
    ap.add_argument("--rounds", type=int, default=25, help="rounds of each, alternating")
    a = ap.parse_args()
    s = Settings(redis_url=a.redis_url, prefix="bpids:", quiet_hours="off", seed=1)
    store = Store.connect(s)
    real = ids.store, ids.load
    try:
        store.delete_prefix()
        day = int(time.time() // 86400) * 86400
        plan = Plan(users=a.users, segments=10, t_end=day - 200 * 86400 + 12 * 3600, seed=1)
        populate(s, plan, procs=1)
        app = create(s)
        clock = [plan.t_end + 4 * 86400]
        call, decide = wsgi_client(app, a.users, random.Random(1), clock)
        per_call(decide, 200)  # loads the script, warms the caches
        on, off = [], []
        for _ in range(a.rounds):
            ids.store, ids.load = real
            on.append(per_call(decide, a.n))
            ids.store = ids.load = _identity
            off.append(per_call(decide, a.n))
        ids.store, ids.load = real
        d_on, d_off = statistics.median(on), statistics.median(off)
        pairs = sorted(x / y for x, y in zip(on, off))  # each round against the one beside it: slow drifts cancel
        print(f"app CPU per POST /v1/decide, median of {a.rounds} alternating rounds of {a.n}: {d_on:.1f} us with the "
              f"escaping, {d_off:.1f} us without (rounds {min(on):.0f}-{max(on):.0f} and {min(off):.0f}-{max(off):.0f} "
              f"us); paired ratio: median {statistics.median(pairs):.4f}, quartiles {pairs[len(pairs) // 4]:.4f}-"
              f"{pairs[3 * len(pairs) // 4]:.4f}")
        calls = {"store": 0, "load": 0}

        def counted(name: str, f: Callable[[str], str]) -> Callable[[str], str]:
            def wrapper(text: str) -> str:
                calls[name] += 1
                return f(text)
            return wrapper

        ids.store, ids.load = counted("store", real[0]), counted("load", real[1])
        for _ in range(a.n):
            decide()
        ids.store, ids.load = real
        n_store, n_load = calls["store"] / a.n, calls["load"] / a.n
        cost = {}
        for text in ("u1234", "85123A", "BANK CHARGES", "x}:ev:e"):
            stored = ids.store(text)
            cost[text] = (per_call(lambda: ids.store(text), 100_000), per_call(lambda: ids.load(stored), 100_000))
            print(f"  {text!r:>14}: store {cost[text][0]:.3f} us, load {cost[text][1]:.3f} us")
        share = (n_store * cost["u1234"][0] + n_load * cost["85123A"][1]) / d_on
        print(f"per decide {n_store:.2f} calls of store and {n_load:.2f} of load: {share:.2%} of the decide's app CPU "
              f"on the population's ids")
        app.extensions["bandit_push"].store.close()
    finally:
        ids.store, ids.load = real
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
