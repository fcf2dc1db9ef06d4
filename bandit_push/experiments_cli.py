"""``bandit-push experiments ...``: the experiments API as a command, printing readable tables.

It talks to Redis directly through :mod:`bandit_push.experiments` (the same functions the HTTP API
calls), on ``REDIS_URL`` or the embedded Redis of ``data_dir``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from bandit_push import embedded, experiment_report, experiments
from bandit_push.config import Settings
from bandit_push.errors import BanditPushError
from bandit_push.store import Store


def add_parser(sub: Any, redis_note: str | None = None) -> None:
    """Register ``experiments`` and its subcommands on the top-level subparsers (``redis_note``: which Redis they
    use, for their --help)."""
    text = "create, start, pause, stop, list, show and report A/B experiments"
    p = sub.add_parser("experiments", help=text, description=text[0].upper() + text[1:] + ".", epilog=redis_note)
    xs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = xs.add_parser("create", help="create a draft from a JSON file or from flags",
                      description="Either --file (the POST /v1/experiments body) or --name with two or more "
                                  "--variant NAME WEIGHT POLICY [setting=value ...]; the first variant is the "
                                  "control. Settings are the policy's (cost, ucb_c, cadence_gap_hours) or "
                                  "guardrail overrides (max_per_day, min_gap_hours, quiet_hours).")
    c.add_argument("--file", help="JSON definition ('-' reads stdin)")
    c.add_argument("--name", help="the experiment's name (with --variant)")
    c.add_argument("--variant", nargs="+", action="append", metavar="ARG", default=[],
                   help="NAME WEIGHT POLICY [setting=value ...]")
    c.add_argument("--segment", action="append", help="restrict to this segment (repeatable)")
    c.add_argument("--start", action="store_true", help="start it right away")
    for action in experiments.ACTIONS:
        a = xs.add_parser(action, help=f"{action} an experiment")
        a.add_argument("id", type=int, help="the experiment's id")
    xs.add_parser("list", help="every experiment, one line each")
    g = xs.add_parser("get", help="one experiment's definition")
    g.add_argument("id", type=int, help="the experiment's id")
    r = xs.add_parser("report", help="per-variant figures, comparisons with control, SRM, guardrails, conclusion")
    r.add_argument("id", type=int, help="the experiment's id")
    r.add_argument("--json", action="store_true", help="print the report JSON (as GET .../report) instead")
    p.set_defaults(func=run)


def definition_from_flags(name: str | None, variants: list[list[str]], segments: list[str] | None) -> dict:
    """The JSON definition the flags describe (validated later, by the same parser as the API's)."""
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(variants):
        if len(spec) < 3:
            raise BanditPushError(f"--variant #{i + 1} needs NAME WEIGHT POLICY", field=f"variants[{i}]")
        vname, weight, policy, *settings = spec
        v: dict[str, Any] = {"name": vname, "weight": _number(weight), "policy": {"name": policy}}
        for kv in settings:
            k, sep, value = kv.partition("=")
            if not sep:
                raise BanditPushError(f"--variant {vname}: {kv!r} is not setting=value", field=f"variants[{i}]")
            if k in experiments.GUARDRAIL_OVERRIDES:
                v.setdefault("guardrails", {})[k] = value if k == "quiet_hours" else _number(value)
            else:
                v["policy"][k] = _number(value)
        out.append(v)
    body: dict[str, Any] = {"name": name, "variants": out}
    if segments:
        body["segments"] = segments
    return body


def _number(text: str) -> Any:
    try:
        x = float(text)
    except ValueError:
        return text  # the validation names the field
    return int(x) if x.is_integer() and "." not in text else x


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text columns."""
    cells = [[_cell(x) for x in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else f"{x:.4g}"
    if isinstance(x, dict):
        return json.dumps(x, separators=(",", ":"))
    return str(x)


def _show(x: experiments.Experiment) -> str:
    head = f"experiment {x.id}: {x.name} [{x.status}]" + (
        f"  segments: {', '.join(x.segments)}" if x.segments else "  segments: all")
    rows = [(("control: " if i == 0 else "") + v.name, v.weight, v.policy, v.guardrails or None)
            for i, v in enumerate(x.variants)]
    return head + "\n" + table(("variant", "weight", "policy", "guardrails"), rows)


def format_report(rep: dict) -> str:
    """The report as tables: variants, comparisons against control, checks, then the conclusion."""
    x = rep["experiment"]
    out = [f"experiment {x['id']}: {x['name']} [{x['status']}], control {x['control']}", ""]
    cols = ("users", "sends_per_user", "ctr", "conversions_per_user", "net_value_per_user", "unsubscribe_rate",
            "events_per_user", "purchases_per_user")
    out.append(table(("variant", *cols), [(v["name"], *(v[c] for c in cols)) for v in rep["variants"]]))
    if rep["comparisons"]:
        out += ["", table(
            ("metric", "variant", "difference", "95% CI", "p", "P(beat ctl)", "exp. loss", "always-valid CI"),
            [(c["metric"], c["variant"], c["estimate"]["difference"],
              f"[{_cell(c['estimate']['ci_low'])}, {_cell(c['estimate']['ci_high'])}]", c["estimate"]["p_value"],
              c["posterior"]["prob_beat_control"], c["posterior"]["expected_loss"],
              f"[{_cell(c['sequential']['ci_low'])}, {_cell(c['sequential']['ci_high'])}]")
             for c in rep["comparisons"]])]
    srm = rep["sample_ratio"]
    out += ["", f"sample ratio: chi2 {_cell(srm['chi2'])}, p {_cell(srm['p_value'])}"
                + ("  MISMATCH" if srm["flagged"] else "  ok")]
    for g in rep["guardrails"]:
        out.append(f"guardrail {g['metric']} ({g['variant']}): p {_cell(g['p_value'])}"
                   + ("  BREACHED" if g["breached"] else "  ok"))
    out += [f"note: {n}" for n in rep["notes"]]
    out += ["", rep["summary"]]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    say = lambda text: print(f"bandit-push: {text}", file=sys.stderr, flush=True)  # noqa: E731
    with embedded.session(Settings.from_env(), "experiments", say) as (settings, store):
        try:
            return _run(args, store, settings)
        except BanditPushError as e:
            print(f"bandit-push experiments: {e.message}" + (f" (field {e.field})" if e.field else ""),
                  file=sys.stderr)
            return 2


def _run(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    if args.action == "create":
        if args.file:
            with (sys.stdin if args.file == "-" else open(args.file)) as f:
                body = json.load(f)
        else:
            body = definition_from_flags(args.name, args.variant, args.segment)
        x = experiments.create(store, settings, body)
        if args.start:
            x = experiments.transition(store, x.id, "start")
        print(_show(x))
    elif args.action in experiments.ACTIONS:
        print(_show(experiments.transition(store, args.id, args.action)))
    elif args.action == "list":
        print(table(("id", "name", "status", "variants", "segments", "users"), [
            (x.id, x.name, x.status, ", ".join(f"{v.name}:{v.policy.get('name')}x{v.weight:g}" for v in x.variants),
             ", ".join(x.segments) if x.segments else "all", len(experiments.user_counters(store, x.id)))
            for x in experiments.list_all(store)]))
    elif args.action == "get":
        print(_show(experiments.get(store, args.id)))
    else:
        rep = experiment_report.report(store, args.id)
        print(json.dumps(rep, indent=1) if args.json else format_report(rep))
    return 0
