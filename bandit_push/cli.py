"""The ``bandit-push`` command.

``bandit-push serve`` runs the whole service in the foreground: the API under
gunicorn, an RQ worker and the scheduler, on the Redis at ``REDIS_URL`` or, when
that is unset, on an embedded real Redis. Ctrl-C stops every child and the
embedded Redis. This module only starts processes; it imports neither Flask nor RQ.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from bandit_push import embedded, experiments_cli
from bandit_push.config import QUEUE, Settings, is_loopback
from bandit_push.errors import BanditPushError



def _children(args: argparse.Namespace, url: str) -> list[tuple[str, list[str]]]:
    py = sys.executable
    procs = [("web", [py, "-m", "gunicorn", "-c", "python:api.gunicorn_conf",
                      "--workers", str(args.workers), "--bind", f"{args.host}:{args.port}",
                      "--graceful-timeout", "10", "--log-level", "warning", "api:create_app()"])]
    if not args.no_worker:
        procs.append(("worker", [py, "-c", "from rq.cli import main; main()", "worker", "--url", url,
                                 "--serializer", "rq.serializers.JSONSerializer", "--logging_level", "WARNING",
                                 QUEUE]))
        procs.append(("scheduler", [py, "-m", "workers.scheduler"]))
    return procs


def serve(args: argparse.Namespace) -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM) or a child's death, stop everything."""
    settings = Settings.from_env()
    if not settings.api_keys:
        if not is_loopback(args.host):
            print(f"bandit-push: refusing to listen on {args.host}: no API keys are configured. Set "
                  "BANDIT_PUSH_API_KEYS (e.g. gateway:<key>,admin:sha256:<hex>) or listen on 127.0.0.1",
                  file=sys.stderr, flush=True)
            return 2
        print("bandit-push: WARNING: no API keys configured (BANDIT_PUSH_API_KEYS): loopback clients only, "
              "no authentication, no rate limits", file=sys.stderr, flush=True)
    server = None
    url = settings.redis_url
    if not url:
        server = embedded.start(settings.data_dir)
        url = server.url
        print(f"embedded redis: {url} (data in {os.path.abspath(settings.data_dir)})", flush=True)
    env = dict(os.environ, REDIS_URL=url)
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        for name, cmd in _children(args, url):
            procs.append((name, subprocess.Popen(cmd, env=env, start_new_session=True)))
        print(f"bandit-push serving on http://{args.host}:{args.port} (policy {settings.policy}); Ctrl-C stops",
              flush=True)
        while not stopping:
            dead = [(n, p.returncode) for n, p in procs if p.poll() is not None]
            if dead:
                print(f"bandit-push: {dead[0][0]} exited with status {dead[0][1]}; stopping", file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for _, p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if server is not None:
            server.stop()
        print("bandit-push stopped", flush=True)
    return code


def refresh_popular(args: argparse.Namespace) -> int:
    from bandit_push import popular
    from bandit_push.store import Store

    settings = Settings.from_env()
    server = None if settings.redis_url else embedded.start(settings.data_dir)
    if server is not None:
        settings = settings.replace(redis_url=server.url)
    store = Store.connect(settings)
    try:
        print(json.dumps(popular.refresh(store, settings)))
    finally:
        store.close()
        if server is not None:
            server.stop()
    return 0


def refit(args: argparse.Namespace) -> int:
    """Run a refit in this process under the same lock as the RQ job; progress on stderr, summary on stdout."""
    from bandit_push import refit as refits
    from bandit_push.store import Store

    settings = Settings.from_env()
    server = None if settings.redis_url else embedded.start(settings.data_dir)
    if server is not None:
        settings = settings.replace(redis_url=server.url)
    store = Store.connect(settings)
    shown = {"pct": -1, "stage": ""}

    def progress(fraction: float, stage: str) -> None:
        pct = int(fraction * 100)
        if pct != shown["pct"] or stage != shown["stage"]:
            shown.update(pct=pct, stage=stage)
            print(f"refit {args.model}: {pct:3d}% {stage}", file=sys.stderr, flush=True)

    try:
        summary = refits.run(store, settings, args.model, refits.cli_owner(), progress)
        print(json.dumps(summary))
        return 0
    except refits.RefitRunning as e:
        print(f"bandit-push: {e.message}", file=sys.stderr)
        return 1
    finally:
        store.close()
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bandit-push", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the API, a worker and the scheduler (embedded Redis without REDIS_URL)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=4,
                   help="gunicorn sync worker processes (default 4: a sync worker idles while it waits for Redis)")
    p.add_argument("--no-worker", action="store_true", help="run the API only, without RQ worker and scheduler")
    p.set_defaults(func=serve)
    p = sub.add_parser("refresh-popular", help="recompute the popular-items lists now")
    p.set_defaults(func=refresh_popular)
    p = sub.add_parser("refit", help="refit a model now, in this process (progress on stderr, summary on stdout)")
    p.add_argument("model", choices=["mf", "segments"])
    p.set_defaults(func=refit)
    experiments_cli.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BanditPushError as e:
        print(f"bandit-push: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
