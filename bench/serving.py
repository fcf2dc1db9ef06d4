"""The serving side of bench/serve.py: gunicorn, wrk runs, CPU accounting, the round-trip count."""
from __future__ import annotations

import http.client
import json
import os
import random
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import redis

from population import user_id

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WRK_SCRIPT = HERE / "serve_wrk.lua"
CLOCK_STEP_S = 2  # simulated seconds per decide request (see serve_wrk.lua)
SETTLE_S = 0.5    # pause after each wrk run


def parse_config(spec: str) -> dict:
    """``sync:2`` or ``gthread:2x4`` -> worker class, workers, threads."""
    cls, _, size = spec.strip().partition(":")
    workers, _, threads = size.partition("x")
    return {"name": spec.strip(), "worker_class": cls, "workers": int(workers or 2), "threads": int(threads or 1)}


class Server:
    """gunicorn on bench/trip_app.py's app (the service's, and the benchmarks' two routes) for the benchmark's
    prefix, on a free local port, quiet hours off."""

    def __init__(self, cfg: dict, redis_url: str, prefix: str, log: Path):
        self.cfg, self.redis_url, self.prefix, self.log = cfg, redis_url, prefix, log
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def __enter__(self) -> "Server":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "REDIS_URL": self.redis_url, "BANDIT_PUSH_PREFIX": self.prefix,
               "BANDIT_PUSH_QUIET_HOURS": "off"}
        # the service's app with the benchmarks' bare and round-trip routes (bench/trip_app.py)
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "bench.trip_app:create()", "-b", f"127.0.0.1:{self.port}",
               "-k", self.cfg["worker_class"], "-w", str(self.cfg["workers"]), "--threads", str(self.cfg["threads"]),
               "--log-level", "warning", "--error-logfile", str(self.log)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"gunicorn did not become ready in 30 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def pids(self) -> list[int]:
        """The master and its workers (Linux /proc; empty elsewhere)."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        return [self.proc.pid] + [int(k) for k in kids]


class Clock:
    """The simulated time of the next decide run; it only moves forward, like the users' last pushes."""

    def __init__(self, t0: float):
        self.t0 = int(t0)

    def consume(self, max_now: float) -> None:
        self.t0 = int(max(self.t0, max_now)) + 86400
        if self.t0 > time.time() + 360 * 86400:
            raise RuntimeError("the simulated clock ran past the API's one-year limit; use a shorter --duration")


class CpuMeter:
    """Where the machine's CPU went during a run: server, wrk, redis-server, and everything else.

    The machine may be shared; "other" is busy CPU that none of the benchmark's processes used,
    so a run with a large "other" share was measured on a noisy machine. Linux only (None elsewhere).
    """

    def __init__(self, server: Server, r: redis.Redis):
        self.server, self.r = server, r
        # redis-server's pid when it runs on this host (its context switches are read from /proc)
        pid = r.info("server").get("process_id")
        self.redis_pid = pid if pid and Path(f"/proc/{pid}/status").exists() and redis_is_local(r) else None

    def __enter__(self) -> "CpuMeter":
        self.start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        self.result = None
        if self.start["busy"] is None or end["busy"] is None:
            return
        d = {k: end[k] - self.start[k] for k in end}
        capacity = d["wall"] * (os.cpu_count() or 1)
        # shares of the machine's CPU capacity over the run, plus the raw CPU seconds
        self.result = {k: round(d[k] / capacity, 3) for k in ("busy", "server", "wrk", "redis", "bench")}
        self.result["other"] = round(max(d["busy"] - d["server"] - d["wrk"] - d["redis"] - d["bench"], 0.0)
                                     / capacity, 3)
        self.result["seconds"] = {k: round(d[k], 3) for k in ("wall", "server", "wrk", "redis")}
        # context switches (voluntary + not) of the workers and of redis-server: a decide sleeps for its round trip
        self.result["switches"] = {k: d[f"{k}_switches"] for k in ("server", "redis") if d[f"{k}_switches"] >= 0}

    def _sample(self) -> dict:
        tick = os.sysconf("SC_CLK_TCK")
        try:
            f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            busy = (sum(f[:8]) - f[3] - f[4]) / tick
        except (OSError, ValueError):
            busy = None
        server, server_switches = 0.0, 0
        for pid in self.server.pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                server += (int(stat[11]) + int(stat[12])) / tick
                server_switches += _switches(pid)
            except (OSError, IndexError, ValueError):
                pass
        try:
            redis_switches = _switches(self.redis_pid) if self.redis_pid else -1
        except (OSError, ValueError):
            redis_switches = -1
        cpu = self.r.info("cpu")
        kids, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        return {"wall": time.time(), "busy": busy, "server": server, "wrk": kids.ru_utime + kids.ru_stime,
                "redis": cpu["used_cpu_user"] + cpu["used_cpu_sys"], "bench": me.ru_utime + me.ru_stime,
                "server_switches": server_switches, "redis_switches": redis_switches}


def _switches(pid: int) -> int:
    """Voluntary plus involuntary context switches of a process's main thread so far (Linux /proc): a sync worker
    and redis-server's command loop are each one thread."""
    n = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
            n += int(line.split()[1])
    return n


def redis_is_local(r: redis.Redis) -> bool:
    """Whether the client talks to a Redis on this host (a unix socket or a loopback address)."""
    kw = r.connection_pool.connection_kwargs
    return "path" in kw or kw.get("host", "localhost") in ("localhost", "127.0.0.1", "::1")


def run_wrk(server: Server, r: redis.Redis, mode: str, conns: int, threads: int, duration: float, users: int,
            clock: Clock) -> dict:
    """One wrk run; the Lua script's summary plus throughput, latencies in ms and the CPU split."""
    threads = min(threads, conns)
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{max(int(round(duration)), 1)}s", "--timeout", "5s",
           "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{server.port}", "--", mode, str(users), str(clock.t0),
           str(CLOCK_STEP_S), str(threads)]
    with CpuMeter(server, r) as cpu:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    res = json.loads(line[len("BENCH_JSON "):])
    if mode == "decide":
        clock.consume(res["max_now"])
    res["reasons"] = dict((k, int(v)) for k, v in (p.split("=") for p in res["reasons"].split(",") if p))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    for p in ("p50", "p90", "p99"):
        res[f"{p}_ms"] = res.pop(f"{p}_us") / 1000.0
    res["send_rate"] = res["sent"] / res["requests"] if mode == "decide" and res["requests"] else None
    res["cpu"] = cpu.result
    # requests still queued in the server's backlog when wrk stopped are served after it exits:
    # let them drain so that they do not land in the next run (or in the round-trip count)
    time.sleep(SETTLE_S)
    return res


def round_trips(r: redis.Redis, port: int, prefix: str, n: int, users: int, clock: Clock) -> dict:
    """Count, with MONITOR, the commands the app's connections send for ``n`` sequential decides."""
    marker = f"{prefix}monitor-end:{uuid.uuid4().hex}"
    seen: list[dict] = []
    before = (r.info("stats")["total_commands_processed"], _decide_calls(r))
    with r.monitor() as mon:
        reader = threading.Thread(target=_read_monitor, args=(mon, marker, seen), daemon=True)
        reader.start()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        rng, ok = random.Random(5), 0
        for i in range(n):
            body = json.dumps({"user_id": user_id(rng.randrange(users)), "now": clock.t0 + i * 60})
            conn.request("POST", "/v1/decide", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok += resp.status == 200
        conn.close()
        clock.consume(clock.t0 + n * 60)
        r.echo(marker)
        reader.join(timeout=30)
    after = (r.info("stats")["total_commands_processed"], _decide_calls(r))
    # the app's connections: those that sent a command naming the benchmark's keys
    app_clients = {(c["client_address"], c["client_port"]) for c in seen
                   if c["client_type"] != "lua" and prefix in c["command"]}
    by_command: dict[str, int] = {}
    for c in seen:
        if (c["client_address"], c["client_port"]) in app_clients:
            name = c["command"].split(" ", 1)[0].upper()
            by_command[name] = by_command.get(name, 0) + 1
    lua = sum(1 for c in seen if c["client_type"] == "lua" and prefix in c["command"])
    # a process's snapshot reads (the engagement model's pointer, retry_at's arms) happen once per
    # snapshot_seconds of the wall clock, not per decide: counted apart
    snapshot = sum(by_command.pop(name, 0) for name in ("HGET", "HGETALL"))
    return {"decides": n, "ok": ok, "app_commands": by_command, "snapshot_reads": snapshot,
            "round_trips_per_decide": sum(by_command.values()) / max(ok, 1),
            "lua_internal_calls_per_decide": lua / max(ok, 1),
            "server_commands_per_decide_incl_lua": (after[0] - before[0]) / max(ok, 1),
            "server_evalsha_or_fcall_per_decide": (after[1] - before[1]) / max(ok, 1),
            "note": "round trips come from MONITOR, filtered to the app's connections; the server_* INFO "
                    "deltas are server-wide and include other clients of the same Redis"}


def _decide_calls(r: redis.Redis) -> int:
    """EVALSHA and FCALL calls the server has counted (a decide is one of them, see ``redis_functions``)."""
    stats = r.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "fcall"))


def _read_monitor(mon, marker: str, seen: list[dict]) -> None:
    while True:
        try:
            cmd = mon.next_command()
        except (AttributeError, ValueError):  # a line redis-py cannot split (odd quoting): not ours
            continue
        except redis.ConnectionError:
            return
        if marker in cmd["command"]:
            return
        seen.append(cmd)


def combine(slices: list[dict]) -> dict:
    """Alternating slices of one endpoint at one level -> one figure.

    Throughput is total requests over total time; latency percentiles are the median of the
    slices' (so one slice hit by a noisy neighbour does not decide the figure); CPU per
    request is total CPU seconds over total requests.
    """
    def med(key: str) -> float:
        xs = sorted(x[key] for x in slices)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    n = sum(x["requests"] for x in slices)
    secs = sum(x["duration_us"] for x in slices) / 1e6
    out = {"requests": n, "seconds": secs, "rps": n / secs, "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"),
           "p99_ms": med("p99_ms"), "max_ms": max(x["max_us"] for x in slices) / 1000.0,
           "non2xx": sum(x["non2xx"] for x in slices), "sent": sum(x["sent"] for x in slices),
           "errors": {k: sum(x["errors"][k] for x in slices) for k in slices[0]["errors"]},
           "reasons": {}, "slices": slices}
    for x in slices:
        for k, v in x["reasons"].items():
            out["reasons"][k] = out["reasons"].get(k, 0) + v
    out["send_rate"] = out["sent"] / n if slices[0]["send_rate"] is not None and n else None
    cpus = [x["cpu"] for x in slices if x["cpu"]]
    if cpus:
        wall = sum(c["seconds"]["wall"] for c in cpus)
        out["cpu"] = {k: round(sum(c[k] * c["seconds"]["wall"] for c in cpus) / wall, 3)
                      for k in ("busy", "server", "wrk", "redis", "other")}
        out["cpu_ms_per_request"] = {k: round(1000 * sum(c["seconds"][k] for c in cpus) / n, 3)
                                     for k in ("server", "redis", "wrk")}
        out["switches_per_request"] = {k: round(sum(c["switches"][k] for c in cpus) / n, 2)
                                       for k in ("server", "redis") if all(k in c["switches"] for c in cpus)}
    else:
        out["cpu"] = out["cpu_ms_per_request"] = None
        out["switches_per_request"] = {}
    return out
