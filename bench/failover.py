"""Failover on a Redis Cluster: a master SIGKILLed under bounded load over real HTTP (issue 21, part 5).

    TEST_CLUSTER_PORTS=47100-47149 .venv/bin/python bench/failover.py [--node-timeouts 1000,2000,5000]
        [--killed users,shared] [--repeats 2] [--threads 4] [--pause 0.01] [--retries 0]
        [--out bench/out/failover.json]

Each run starts its own 6-node cluster (3 masters, a replica each: ``RedisClusterProcess`` of
tests/integration/redis_proc.py, on free ports of ``TEST_CLUSTER_PORTS``, default 47000-47049, bus ports 50
above) with ``cluster-node-timeout`` set to each of ``--node-timeouts`` (ms), and a plain redis-server for the
job queue; the app on a threaded HTTP server in this process (``redis_timeout_s`` 0.5). ``--threads`` clients
create users (``PUT``) and read others (``GET``), half of them on the master that is killed
(tests/integration/failover.py): ``--killed users`` kills a master serving users only, ``shared`` the one
serving the model pointers, which every users request reads. Once the killed shard serves again and 2 s more,
every user whose ``PUT`` answered 2xx is read back.

Per run: when the replica was seen promoted, and for the killed shard's users and the others' the window from
the first request answered 503 to the first answered 2xx after the last 503 (seconds after the kill), the
answers after the kill by status, the slowest answer, and the acknowledged writes lost. ``--retries N`` gives
the cluster client N retries per command with redis-py's default backoff (the service uses 0; redis-py's
default is 10), to compare. About node-timeout + 10 s per run (12 runs, about 3 minutes, with the defaults).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

from redis.backoff import ExponentialWithJitterBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

import failover  # noqa: E402
from bandit_push.config import Settings  # noqa: E402
from bandit_push_api import create_app  # noqa: E402
from redis_proc import RedisClusterProcess, RedisProcess  # noqa: E402


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # (thousands of lines otherwise)
        pass


def one(node_timeout_ms: int, kind: str, threads: int, pause: float, retries: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        cluster = RedisClusterProcess(f"{directory}/cluster", replicas=1, node_timeout_ms=node_timeout_ms)
        plain = RedisProcess(directory, aof=False)
        server = None
        try:
            plain.start()
            cluster.start()
            settings = Settings(redis_url=cluster.url, queue_url=plain.url, prefix=f"bpfo:{uuid.uuid4().hex[:8]}:",
                                quiet_hours="off", redis_timeout_s=0.5)
            app = create_app(settings)
            store = app.extensions["bandit_push"].store
            if retries:
                store.redis.retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=1), retries)
            server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            out = failover.run(cluster, store, f"http://127.0.0.1:{server.server_port}", threads=threads,
                               pause=pause, after=2.0, victim_kind=kind)
            figures = out.figures()
            other = {c.status for c in out.calls if c.status not in (200, 201, 503)}
            figures["other_statuses"] = sorted(other)
            figures["retry_after_on_every_503"] = all(c.retry_after for c in out.calls if c.status == 503)
            return figures
        finally:
            if server is not None:
                server.shutdown()
            cluster.stop()
            plain.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--node-timeouts", default="1000,2000,5000", help="cluster-node-timeout values, ms")
    p.add_argument("--killed", default="users,shared",
                   help="which master: 'users' (one serving users only), 'shared' (the model pointers' one)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--pause", type=float, default=0.01, help="seconds each client waits between two requests")
    p.add_argument("--retries", type=int, default=0, help="the cluster client's retries per command (service: 0)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "failover.json"))
    args = p.parse_args(argv)
    logging.disable(logging.WARNING)  # (the app logs every 503)
    runs = []
    for node_timeout in (int(x) for x in args.node_timeouts.split(",")):
        for kind in args.killed.split(","):
            for _ in range(args.repeats):
                figures = one(node_timeout, kind, args.threads, args.pause, args.retries)
                runs.append(figures)
                print(json.dumps(figures), flush=True)
    print("\n503 windows: from the first request answered 503 to the first answered 2xx after the last 503, in seconds "
          "after the kill (unavailable)")
    print(f"{'node timeout':>12} {'killed':>7} {'promoted':>9} {'killed shard users':>22} {'other users':>22} "
          f"{'slowest':>8} {'5xx≠503':>8} {'acked':>6} {'lost':>5}")
    for r in runs:
        def span(w):
            return "none" if w is None else f"{w['first_503_s']:.2f}–{w['recovered_s']:.2f} s ({w['unavailable_s']:.2f})"
        others = sum(n for s, n in r["after_kill"].items() if int(s) >= 500 and int(s) != 503)
        promoted = r["promoted_s"] if r["promoted_s"] is not None else float("nan")
        print(f"{r['node_timeout_ms']:>10}ms {r['killed']:>7} {promoted:>8.2f}s {span(r['killed_shard']):>22} "
              f"{span(r['other_shards']):>22} {r['slowest_after_kill_s']:>7.2f}s {others:>8} "
              f"{r['acknowledged_puts']:>6} {r['lost']:>5}")
    by_timeout: dict[tuple[int, str], list[float]] = {}
    for r in runs:
        if r["killed_shard"] is not None:
            by_timeout.setdefault((r["node_timeout_ms"], r["killed"]), []).append(r["killed_shard"]["unavailable_s"])
    for (t, kind), values in by_timeout.items():
        print(f"node timeout {t} ms, killed '{kind}': the killed shard's users unavailable for "
              f"{statistics.median(values):.2f} s (median of {len(values)})")
    lost = sum(r["lost"] for r in runs)
    print(f"acknowledged writes lost: {lost} of {sum(r['acknowledged_puts'] for r in runs)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    return 1 if lost or any(r["other_statuses"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
