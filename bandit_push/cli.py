"""The ``bandit-push`` command: run the service, and the one-shot commands around it.

``bandit-push serve`` runs the whole service in the foreground: the API under
gunicorn, an RQ worker and the scheduler, on the Redis at ``REDIS_URL`` or, when
that is unset, on an embedded real Redis. Ctrl-C stops every child and the
embedded Redis. This module only starts processes; it imports neither Flask nor RQ.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from bandit_push import embedded, experiments_cli
from bandit_push.config import KEYS_WARNED_ENV, Settings, is_loopback
from bandit_push.errors import BanditPushError

DESCRIPTION = ("Decide whether to send a push notification now and with which items, learning per user segment. "
               "'bandit-push serve' runs the service; the other commands work on its data. "
               "'bandit-push COMMAND --help' describes each.")
#: which Redis a command uses, said in each command's --help
REDIS_NOTE = ("Redis: the one at REDIS_URL when it is set; otherwise the embedded Redis of the data directory "
              "(BANDIT_PUSH_DATA_DIR, default ./.bandit-push): the running service's (bandit-push serve), left "
              "running, or one started for this command and stopped when it ends.")


def _children(args: argparse.Namespace, queue: str, settings: Settings) -> list[tuple[str, list[str]]]:
    py = sys.executable
    procs = [("web", [py, "-m", "gunicorn", "-c", "python:bandit_push_api.gunicorn_conf",
                      "--workers", str(args.workers), "--bind", f"{args.host}:{args.port}",
                      "--graceful-timeout", str(settings.shutdown_timeout_s), "--log-level", "warning",
                      "bandit_push_api:create_app()"])]
    if not args.no_worker:
        procs.append(("worker", worker_command(queue, settings, "WARNING")))
        procs.append(("scheduler", [py, "-m", "bandit_push_workers.scheduler", "--logging-level", "WARNING"]))
    return procs


def worker_command(url: str, settings: Settings, logging_level: str = "INFO") -> list[str]:
    """The RQ worker of this deployment: our worker class, JSON jobs only, on the queue of its key prefix; ``url``
    names the Redis of the jobs (:func:`jobs_url`), the jobs themselves work on ``REDIS_URL``."""
    return [sys.executable, "-c", "from rq.cli import main; main()", "worker", "--url", url,
            "--worker-class", "bandit_push_workers.worker.Worker", "--with-scheduler",
            "--serializer", "rq.serializers.JSONSerializer", "--logging_level", logging_level, settings.queue]


def worker(args: argparse.Namespace) -> int:
    """Become the RQ worker of the deployment that ``REDIS_URL`` and ``BANDIT_PUSH_*`` name (Procfile ``worker``)."""
    settings = Settings.from_env()
    if not settings.redis_url:
        print("bandit-push: REDIS_URL is not set (a worker joins a running deployment's Redis)", file=sys.stderr)
        return 2
    url = jobs_url(settings)
    if url is None:
        return 2
    cmd = worker_command(url, settings, args.logging_level)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def jobs_url(settings: Settings) -> str | None:
    """The Redis of RQ's jobs (``BANDIT_PUSH_QUEUE_URL``, else ``REDIS_URL`` unless that is a Redis Cluster); None,
    said on stderr, when ``REDIS_URL`` is a cluster and no queue URL is set."""
    from bandit_push.store import queue_url

    try:
        return queue_url(settings)
    except BanditPushError as e:
        print(f"bandit-push: {e.message}", file=sys.stderr, flush=True)
        return None


def serve(args: argparse.Namespace) -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM) or a child's death, stop everything.

    Stopping is graceful and bounded: every child gets SIGTERM; gunicorn finishes the requests in
    flight (``graceful_timeout``) and the RQ worker its job in flight (warm shutdown), both within
    ``shutdown_timeout_s``. A worker still busy then gets a second SIGTERM (RQ's cold shutdown: its
    job is killed, and retried or failed as abandoned); whatever is left 5 s later is SIGKILLed with
    its process group."""
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
    jobs = jobs_url(settings) if url else None
    if url and jobs is None:
        return 2
    if not url:
        server = embedded.start(settings.data_dir, "serve")
        url = server.url
        if server.replaced:
            print(f"embedded redis: stopped the redis-server (pid {server.replaced}) that a killed bandit-push serve "
                  "had left running (its data is kept)", flush=True)
        print(f"embedded redis: {url} (data in {os.path.abspath(settings.data_dir)})", flush=True)
    env = dict(os.environ, REDIS_URL=url, **{KEYS_WARNED_ENV: "1"})  # (warned above, if need be)
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        for name, cmd in _children(args, jobs or url, settings):
            procs.append((name, subprocess.Popen(cmd, env=env, start_new_session=True,
                                                 preexec_fn=lambda: die_with_parent(signal.SIGTERM))))
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
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the graceful stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(procs, settings.shutdown_timeout_s)
        if server is not None:
            server.stop()
        print("bandit-push stopped", flush=True)
    return code


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Linux: have the kernel send ``signum`` to this process the moment its parent dies (``PR_SET_PDEATHSIG``,
    kept across exec): a SIGKILLed ``serve`` takes its children down with it (SIGTERM: they stop gracefully)
    instead of leaving them holding the port. Elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _stop_children(procs: list[tuple[str, subprocess.Popen]], bound: float) -> None:
    """SIGTERM all, wait ``bound`` s; a busy worker gets a second SIGTERM (cold); SIGKILL what is left."""
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + bound + 2  # gunicorn kills its own busy workers at the bound itself
    for name, p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"bandit-push: {name} still busy after {bound:g} s; stopping it", file=sys.stderr, flush=True)
            p.send_signal(signal.SIGTERM if name == "worker" else signal.SIGKILL)
    for _, p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # the children lead their own process groups: take their own children (work-horse) too
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def _say(text: str) -> None:
    """A one-shot command's note on which Redis it uses (stderr: stdout carries its result)."""
    print(f"bandit-push: {text}", file=sys.stderr, flush=True)


def refresh_popular(args: argparse.Namespace) -> int:
    from bandit_push import popular

    with embedded.session(Settings.from_env(), "refresh-popular", _say) as (settings, store):
        print(json.dumps(popular.refresh(store, settings)))
    return 0


def refit(args: argparse.Namespace) -> int:
    """Run a refit in this process under the same lock as the RQ job; progress on stderr, summary on stdout."""
    from bandit_push import refit as refits
    from bandit_push import refit_lock

    shown = {"pct": -1, "stage": ""}

    def progress(fraction: float, stage: str) -> None:
        pct = int(fraction * 100)
        if pct != shown["pct"] or stage != shown["stage"]:
            shown.update(pct=pct, stage=stage)
            print(f"refit {args.model}: {pct:3d}% {stage}", file=sys.stderr, flush=True)

    with embedded.session(Settings.from_env(), "refit", _say) as (settings, store):
        try:
            summary = refits.run(store, settings, args.model, refit_lock.cli_owner(), progress)
        except refit_lock.RefitRunning as e:
            print(f"bandit-push: {e.message}", file=sys.stderr)
            return 1
    print(json.dumps(summary))
    return 0


def _timestamp(text: str) -> float:
    """Epoch seconds or ISO 8601 (UTC unless an offset is given), for --since/--until."""
    from datetime import datetime, timezone

    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not epoch seconds or an ISO 8601 timestamp") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def export_log(args: argparse.Namespace) -> int:
    """Write the decision log of a time window as newline-delimited JSON, with a progress bar."""
    from tqdm import tqdm

    from bandit_push import decision_log

    written = 0
    with embedded.session(Settings.from_env(), "export-log", _say) as (settings, store):
        now = time.time() if args.now is None else args.now
        since = now - settings.decision_ttl_hours * 3600.0 if args.since is None else args.since
        until = now if args.until is None else args.until
        total = decision_log.count_hint(store, settings, since, until, now, args.include_open)
        with open(args.out, "w", encoding="utf-8") as out, \
                tqdm(total=total, unit=" decisions", disable=args.quiet, file=sys.stderr) as bar:
            for row in decision_log.export(store, settings, since, until, now, include_open=args.include_open):
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
                written += 1
                bar.update(1)
    print(f"{written} decisions written to {args.out}", file=sys.stderr)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Estimate what each candidate policy would have earned on a decision-log file (no Redis)."""
    from bandit_push.errors import InvalidArgument
    from bandit_push.ope import evaluate as ev
    from bandit_push.ope.log import read_log
    from bandit_push.ope.report import format_report

    settings = Settings.from_env()
    configs = []
    for i, text in enumerate(args.policy):
        try:
            configs.append(json.loads(text))
        except ValueError:
            raise InvalidArgument(f"--policy #{i + 1} is not JSON like '{{\"name\": \"thompson\", \"cost\": 0.2}}': "
                                  f"{text!r}", field=f"policy[{i}]") from None
    try:
        log = read_log(args.log)
    except OSError as e:
        raise InvalidArgument(f"cannot read --log {args.log}: {e.strerror}", field="log") from None
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"--log {args.log} is not UTF-8 text ({e.reason} at byte {e.start})", field="log") from None
    reports = [ev.evaluate(c, log, settings, clip=args.clip, n_bootstrap=args.bootstrap, seed=args.seed,
                           field=f"policy[{i}]") for i, c in enumerate(configs)]
    logged = ev.observed(log, n_bootstrap=args.bootstrap, seed=args.seed)
    if args.json:
        print(json.dumps({"log": args.log, "clip": args.clip, "observed": logged,
                          "candidates": [r.to_json() for r in reports]}, indent=2))
    else:
        print(format_report(logged, reports, clip=args.clip))
    return 0


def simulate(args: argparse.Namespace) -> int:
    """Baselines on the simulated population, then each learned policy through a fresh service over HTTP."""
    from tqdm import tqdm

    from bandit_push.sim import evaluate, report
    from bandit_push.sim.params import SimParams
    from bandit_push.sim.population import Population

    with embedded.session(Settings.from_env(), "simulate", _say) as (settings, _store):
        settings = settings.replace(seed=args.seed)  # the service's draws too: the same seed gives the same table
        params = SimParams(users=args.users, days=args.days, warmup_days=args.warmup_days, seed=args.seed, mix=args.mix)
        pop = Population(params)
        population = (f"population: {params.users} users ({params.mix}, seed {params.seed}), {len(pop.ev_ts)} organic "
                      f"events, {len(pop.opp_ts)} push opportunities over {params.days} days after "
                      f"{params.warmup_days} days of warm-up")
        print(population, flush=True)
        t = time.perf_counter()
        base = evaluate.run_baselines(pop, settings, jobs=args.jobs)
        print(f"{len(base)} baselines (local replica of the cadence policy) in {time.perf_counter() - t:.1f} s", flush=True)
        learned_results, learned = [], {}
        for raw in args.policy:
            try:
                policy = json.loads(raw) if raw.lstrip().startswith("{") else {"name": raw}
            except json.JSONDecodeError:
                print(f"bandit-push: --policy {raw!r} is neither a policy name nor JSON", file=sys.stderr)
                return 2
            # a progress bar on a terminal only (disable=None): logs stay short
            with tqdm(total=1.0, desc=f"{policy.get('name')!s:>10}", disable=None,
                      bar_format="{desc} {bar} {percentage:5.1f}% [{elapsed}<{remaining}]") as bar:
                res, segs = evaluate.run_learned(pop, settings, policy, connections=args.connections,
                                                 workers=args.workers, progress=lambda f: bar.update(f - bar.n))
            print(f"  {res.seconds:.0f} s, {res.requests} HTTP requests ({res.requests / res.seconds:.0f}/s)", flush=True)
            learned_results.append(res)
            learned[res.label] = segs
        orc = evaluate.oracle(pop, base)
        rows, best_fixed = evaluate.summarise(learned_results + base, orc)
        table = evaluate.format_table(rows)
        print(table)
        print(f"best fixed cadence: {best_fixed.label}; {orc.label}")
        if args.report:
            truth = {label: evaluate.truth_by_context(pop, settings, {seg["segment"]: list(seg["true_types"].values())
                                                                      for seg in segs if seg.get("true_types")})
                     for label, segs in learned.items()}
            about = [population, f"learned policies: {', '.join(r.label for r in learned_results)} (seed {args.seed})",
                     f"best fixed cadence: {best_fixed.label}", orc.label]
            paths = report.write(args.report, rows, table, learned_results + base + [orc], learned, truth, about)
            print(f"report: {paths[0]} (and " + ", ".join(os.path.basename(p) for p in paths[1:]) + ")")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bandit-push", description=DESCRIPTION, epilog=REDIS_NOTE)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, redis: str | None = REDIS_NOTE, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", epilog=redis, **kw)

    p = command("serve", "run the API, an RQ worker and the scheduler in the foreground (Ctrl-C stops them)",
                "Redis: the one at REDIS_URL when it is set; otherwise serve starts the embedded Redis of the data "
                "directory (BANDIT_PUSH_DATA_DIR, default ./.bandit-push), owns it and stops it on exit. A second "
                "serve on the same data directory is refused.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs BANDIT_PUSH_API_KEYS)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--workers", type=int, default=4,
                   help="gunicorn sync worker processes (default 4: a sync worker idles while it waits for Redis)")
    p.add_argument("--no-worker", action="store_true", help="run the API only, without RQ worker and scheduler")
    p.set_defaults(func=serve)
    p = command("worker", "run an RQ worker for this deployment's jobs (the queue of its key prefix)",
                "Redis: REDIS_URL, which must be set (a worker joins a running deployment).")
    p.add_argument("--logging-level", default="INFO", help="RQ's logging level (default INFO)")
    p.set_defaults(func=worker)
    p = command("refresh-popular", "recompute the popular-items lists now")
    p.set_defaults(func=refresh_popular)
    p = command("simulate", "learned policies vs fixed cadences on a simulated population, over HTTP")
    p.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    p.add_argument("--days", type=int, default=7, help="days of pushing, after the warm-up (default 7)")
    p.add_argument("--warmup-days", type=int, default=14,
                   help="days of organic events before the first decide (default 14)")
    p.add_argument("--seed", type=int, default=1,
                   help="seeds the population, its responses and the service's draws (default 1)")
    p.add_argument("--mix", choices=["balanced", "enthusiastic", "casual"], default="balanced",
                   help="the population's share of enthusiastic, regular and casual users (default balanced)")
    p.add_argument("--policy", action="append", default=None,
                   help="a policy name or its JSON, e.g. thompson or '{\"name\": \"ucb\", \"ucb_c\": 0.5}'; repeatable "
                        "(default: thompson and ucb)")
    p.add_argument("--jobs", type=int, default=2, help="processes for the baselines (default 2)")
    p.add_argument("--workers", type=int, default=1,
                   help="gunicorn sync workers of each learned policy's service (default 1; more run faster on more "
                        "cores, but then the requests' order, and so the table, varies from run to run)")
    p.add_argument("--connections", type=int, default=1,
                   help="decides in flight at once, one connection each (default 1, so that the same seed gives the "
                        "same table; more, with more --workers, may run faster on more cores, not reproducibly)")
    p.add_argument("--report", metavar="DIR", help="write report.html (the table, the figures, how to read them), "
                   "table.md and results.json here")
    p.set_defaults(func=simulate)
    p = command("refit", "refit a model now, in this process (progress on stderr, summary on stdout)")
    p.add_argument("model", choices=["mf", "segments", "policy"],
                   help="mf: the item model; segments: the user segmentation; policy: the engagement model")
    p.set_defaults(func=refit)
    p = command("export-log", "write the decision log (newline-delimited JSON) of a time window")
    p.add_argument("--since", type=_timestamp,
                   help="epoch seconds or ISO 8601, UTC unless it has an offset (default: the retention's start)")
    p.add_argument("--until", type=_timestamp, help="epoch seconds or ISO 8601, as --since (default: now)")
    p.add_argument("--now", type=_timestamp, help="the clock that decides which attribution windows have closed")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--include-open", action="store_true",
                   help="also write decisions still inside their attribution window (closed: false)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=export_log)
    p = command("evaluate", "off-policy evaluation of candidate policies on a decision-log file",
                "No Redis: it reads the file alone.")
    p.add_argument("--log", required=True, help="a file written by export-log (or GET /v1/decisions/export)")
    p.add_argument("--policy", action="append", required=True,
                   help='candidate policy JSON, e.g. \'{"name": "thompson", "cost": 0.2}\' (repeatable)')
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--clip", type=_positive, help="clip importance weights at this value")
    p.add_argument("--bootstrap", type=int, default=1000, choices=range(0, 100_001), metavar="N",
                   help="bootstrap replicates (default 1000; 0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstrap (default 0)")
    p.set_defaults(func=evaluate)
    experiments_cli.add_parser(sub, REDIS_NOTE)
    args = parser.parse_args(argv)
    if args.command == "simulate" and not args.policy:
        args.policy = ["thompson", "ucb"]
    try:
        return args.func(args)
    except BanditPushError as e:
        print(f"bandit-push: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
