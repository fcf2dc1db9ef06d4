"""Where one decide's CPU goes, without HTTP: the client side and the Redis side, on the serving benchmark's
population (bench/population.py: segments, time zones, events, an MF refit, two rounds of decisions).

1. Client: ``DecisionEngine.decide`` in a loop, beside a bare ``EVALSHA`` round trip of a no-op script; and the
   Flask app called in process as WSGI (no server, no HTTP parsing): ``POST /v1/decide`` beside the bare
   ``GET /v1/ping``, in alternating rounds (what gunicorn adds is the rest of the serving benchmark's figure).
2. Redis: the decide's time per call (``INFO commandstats``: FCALL on a Redis 7, else EVALSHA), and the Redis
   process's CPU per decide when the server runs on this host (read from /proc; includes reading the command
   and writing the answer).
3. Pieces of decide: each piece of bench/pieces.py called by a probe script after decide's own setup, on the same
   users and clock, alternating with the setup alone; a piece's time is its probe's beyond the setup's
   (commandstats). Repeated, median shown: the machine may be shared.
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

from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from pieces import PIECES, probe, probe_call  # noqa: E402
from population import Plan, populate, user_id, wsgi_client  # noqa: E402
from serving import redis_is_local  # noqa: E402


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
        sha = r.script_load("return 1")
        t = time.process_time()
        for _ in range(a.n):
            r.evalsha(sha, 0)
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
            stats = r.info("commandstats")
            script = (stats.get("cmdstat_fcall") or stats["cmdstat_evalsha"])["usec_per_call"]
            return script, (server_cpu() - c0) / a.n * 1e6 if server_cpu else None

        probes = {piece: r.register_script(probe(piece)) for piece in [None, *PIECES]}

        def probe_side(piece: str | None) -> float:
            r.config_resetstat()
            for _ in range(a.n // 4):
                clock[0] += 2
                keys, args = probe_call(eng, user_id(rng.randrange(a.users)), clock[0])
                probes[piece](keys=keys, args=args)
            return r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]

        got: list[tuple[float, float | None]] = []
        pieces: dict[str | None, list[float]] = {p: [] for p in probes}
        for _ in range(a.repeats):
            got.append(redis_side(eng))
            for piece in probes:
                pieces[piece].append(probe_side(piece))
        where = "Redis process CPU" if server_cpu else "(Redis is not on this host: no process CPU)"
        print(f"\nper decide, median of {a.repeats}: time in the command (commandstats) | {where}")
        line = f"  {'decide':>46}: {statistics.median(v for v, _ in got):6.1f} us"
        if server_cpu:
            line += f" | {statistics.median(c for _, c in got):6.1f} us"
        print(line)
        setup = statistics.median(pieces.pop(None))
        print(f"  {'probe: the setup (config, user, pushes)':>46}: {setup:6.1f} us")
        for piece, vals in pieces.items():
            print(f"  {'piece: ' + piece:>46}: {statistics.median(vals) - setup:+6.1f} us")

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
    from trip_app import create  # (bench/ is on the path of a script run from it)

    app = create(s)  # the service's app with the bare GET /v1/ping beside its routes

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
