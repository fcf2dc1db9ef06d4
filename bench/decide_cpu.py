"""Where one decide's CPU goes, without HTTP: the client side and the Redis side, on the serving benchmark's
population (bench/population.py: segments, time zones, events, an MF refit, two rounds of decisions).

1. Client: ``DecisionEngine.decide`` in a loop, beside a bare ``EVALSHA`` round trip of a no-op script; and the
   Flask app called in process as WSGI (no server, no HTTP parsing): ``POST /v1/decide`` beside the bare
   ``GET /v1/ping``, in alternating rounds (what gunicorn adds is the rest of the serving benchmark's figure).
2. Redis: the decide script's time per call (``INFO commandstats``), and the Redis process's CPU per decide
   when the server runs on this host (read from /proc; includes reading the command and writing the answer).
3. Pieces of the script: the same loop with one piece of the script removed (the item choice, the
   decision record's write, the time-zone rule), alternating with the whole script; the difference in
   Redis CPU per decide is that piece's cost. Repeated, median shown: the machine may be shared.
4. A cProfile of the client loop.

Usage: .venv/bin/python bench/decide_cpu.py [--redis-url URL] [--users 5000] [--n 4000] [--repeats 3]
(default redis://127.0.0.1:6379/15; keys under the prefix bpprof:, deleted before and afterwards)
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from bandit_push import scripts
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from population import Plan, populate, user_id, wsgi_client  # noqa: E402
from serving import redis_is_local  # noqa: E402

# (label, text of the script, what replaces it): each removes one piece of the decide script
PIECES = [
    ("item choice", "local items, source, model = pick_items(KEYS[9 + 3 * nx], KEYS[10 + 3 * nx], KEYS[4], seg, k, excluded)",
     "local items, source, model = {}, 'none', 'popular'"),
    ("decision record HSET", "redis.call('HSET', dkey, unpack(record))", ""),
    ("time-zone rule", "local lsec = (now + utc_offset(st[2] or cfg.tz, now)) % 86400", "local lsec = now % 86400"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--n", type=int, default=4000, help="decides per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    s = Settings(redis_url=a.redis_url, prefix="bpprof:", quiet_hours="off", seed=1)
    store = Store.connect(s)
    r = store.redis
    try:
        store.delete_prefix()
        day = int(time.time() // 86400) * 86400
        plan = Plan(users=a.users, segments=50, t_end=day - 200 * 86400 + 12 * 3600, seed=1)
        print(f"populating {a.users} users ...", flush=True)
        populate(s, plan, procs=1)
        clock = [plan.t_end + 4 * 86400]
        rng = random.Random(1)

        def decides(eng: DecisionEngine, n: int) -> None:
            for _ in range(n):
                clock[0] += 2  # the benchmark's clock: rarely inside a user's minimum gap
                eng.decide(user_id(rng.randrange(a.users)), now=clock[0])

        eng = DecisionEngine(store, s)
        t = time.process_time()
        decides(eng, a.n)
        client = (time.process_time() - t) / a.n * 1e6
        conn = store.thread_connection()
        sha = r.script_load("return 1")
        t = time.process_time()
        for _ in range(a.n):
            conn.send_command("EVALSHA", sha, 0)
            conn.read_response()
        bare = (time.process_time() - t) / a.n * 1e6
        print(f"client CPU per decide {client:.1f} us; a bare EVALSHA round trip {bare:.1f} us")
        app_decide, app_ping = _wsgi(s, a.users, a.n, clock, rng)
        print(f"the app in process (WSGI): POST /v1/decide {app_decide:.1f} us, GET /v1/ping {app_ping:.1f} us of CPU "
              f"(median of 5 alternating rounds)")

        server_cpu = _server_cpu(r)

        def redis_side(engine: DecisionEngine) -> tuple[float, float | None]:
            r.config_resetstat()
            c0 = server_cpu() if server_cpu else None
            decides(engine, a.n)
            script = r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
            return script, (server_cpu() - c0) / a.n * 1e6 if server_cpu else None

        whole = scripts.DECIDE
        engines = {"whole script": eng}
        for label, old, new in PIECES:
            assert old in whole, label  # the script changed: update PIECES
            scripts.DECIDE = whole.replace(old, new)
            engines[f"without {label}"] = DecisionEngine(store, s)
            engines[f"without {label}"].decide(user_id(0), now=clock[0])  # compiles its script
        scripts.DECIDE = whole
        got: dict[str, list[tuple[float, float | None]]] = {k: [] for k in engines}
        for _ in range(a.repeats):
            for label, engine in engines.items():
                got[label].append(redis_side(engine))
        base = statistics.median(c for _, c in got["whole script"]) if server_cpu else None
        where = "Redis process CPU" if server_cpu else "(Redis is not on this host: no process CPU)"
        print(f"\nper decide, median of {a.repeats}: script time (commandstats) | {where}")
        for label, vals in got.items():
            script = statistics.median(v for v, _ in vals)
            line = f"  {label:>32}: {script:6.1f} us"
            if server_cpu:
                cpu = statistics.median(c for _, c in vals)
                line += f" | {cpu:6.1f} us" + (f" (piece: {base - cpu:+.1f})" if label != "whole script" else "")
            print(line)

        prof = cProfile.Profile()
        prof.enable()
        decides(eng, a.n)
        prof.disable()
        print()
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)
    finally:
        store.delete_prefix()
        store.close()


def _wsgi(s: Settings, users: int, n: int, clock: list[float], rng: random.Random) -> tuple[float, float]:
    """CPU per request of the app called as a WSGI callable: decide and the bare ping, in alternating rounds."""
    from api import create_app

    app = create_app(s)

    call, decide = wsgi_client(app, users, rng, clock)

    def per_call(f: Callable[[], None], k: int) -> float:
        t = time.process_time()
        for _ in range(k):
            f()
        return (time.process_time() - t) / k * 1e6

    per_call(decide, 200)  # compiles the script, warms the caches
    rounds = [(per_call(decide, n // 5), per_call(lambda: call("GET", "/v1/ping"), n // 5)) for _ in range(5)]
    app.extensions["bandit_push"].store.close()
    return statistics.median(d for d, _ in rounds), statistics.median(p for _, p in rounds)


def _server_cpu(r) -> Callable[[], float] | None:
    """Seconds of CPU the Redis server process has used, if it runs on this host (else None)."""
    pid = r.info("server").get("process_id")
    path = Path(f"/proc/{pid}/stat")
    if not path.exists() or not redis_is_local(r):
        return None

    def cpu() -> float:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu


if __name__ == "__main__":
    main()
