"""The decision-quality table: the service's defaults against the best fixed cadence and the per-type oracle,
per population mix x seed x horizon, over HTTP (a fresh service per run, as ``bandit-push simulate`` runs it),
and optionally in process beside it (``--in-process``: the same domain code without HTTP).

Usage:
    .venv/bin/python bench/sim_table.py [--users 2000] [--mixes enthusiastic,balanced,casual] [--seeds 1,2]
        [--days 30,90] [--in-process] [--redis-url redis://127.0.0.1:6379/8] [--out sim-table.jsonl]

Each finished run appends one JSON line to ``--out`` (a long table survives an interrupted run: rerunning skips
the rows already there) and the Markdown table of every row so far is printed at the end. One HTTP run
is one gunicorn worker and one connection, so the same seed gives the same row (``bandit-push simulate``'s
default); the service's draws are seeded by ``--engine-seed`` (default: the population's seed).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import uuid

from bandit_push.config import Settings
from bandit_push.sim import evaluate
from bandit_push.sim.driver import Result, run
from bandit_push.sim.gateway import InProcessGateway
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import Population
from bandit_push.store import Store


def _in_process(pop: Population, settings: Settings) -> Result:
    s = settings.replace(prefix=f"bptable{uuid.uuid4().hex[:6]}:")
    store = Store.connect(s)
    try:
        return run(pop, InProcessGateway(store, s), "thompson (in process)", dict(s.weights))
    finally:
        store.delete_prefix()
        store.close()


def one(mix: str, seed: int, days: int, users: int, base: Settings, in_process: bool) -> dict:
    pop = Population(SimParams(users=users, days=days, mix=mix, seed=seed))
    t = time.perf_counter()
    fixed = evaluate.run_baselines(pop, base, jobs=1)
    orc = evaluate.oracle(pop, fixed)
    learned = {}
    res, _ = evaluate.run_learned(pop, base, {"name": base.policy}, connections=1, workers=1)
    learned["http"] = res
    if in_process:
        learned["in_process"] = _in_process(pop, base)
    rows, best = evaluate.summarise(list(learned.values()) + fixed, orc)
    out = {"mix": mix, "seed": seed, "days": days, "users": users, "engine_seed": base.seed,
           "best_fixed": best.label, "best_fixed_per_user": best.expected / users,
           "best_fixed_unsub_per_send": best.outcomes["unsubscribed"] / max(best.sends, 1),
           "oracle": orc.label, "oracle_per_user": orc.expected / users,
           "oracle_unsub_per_send": orc.outcomes["unsubscribed"] / max(orc.sends, 1),
           "oracle_per_day": (orc.day_expected / users).round(5).tolist(),
           "seconds": time.perf_counter() - t}
    for (way, r), row in zip(learned.items(), rows):
        out[way] = {"per_user": row["expected_per_user"], "vs_oracle": row["vs_oracle"],
                    "minus_best_fixed": row["minus_best_fixed"], "vs_best_fixed": row["vs_best_fixed"],
                    "unsub_per_send": row["unsub_per_send"], "sends_per_user_day": row["sends_per_user_day"],
                    "per_type": (r.type_expected / r.type_users).round(4).tolist(),
                    "per_type_sends_day": (r.type_sends / r.type_users / days).round(3).tolist(),
                    "per_day": (r.day_expected / users).round(5).tolist()}
    return out


def _cells(way: dict | None, row: dict) -> list[str]:
    if way is None:
        return ["—"] * 4
    ratio = "n/m" if way["vs_best_fixed"] is None else f"{way['vs_best_fixed']:.2f}x"
    unsub_ok = "≤" if way["unsub_per_send"] <= row["best_fixed_unsub_per_send"] else ">"
    return [f"{way['per_user']:+.3f}", "n/m" if way["vs_oracle"] is None else f"**{way['vs_oracle']:.2f}**",
            f"{ratio} ({way['minus_best_fixed']:+.3f})",
            f"{100 * way['unsub_per_send']:.3f}% {unsub_ok} {100 * row['best_fixed_unsub_per_send']:.3f}%"]


def table(rows: list[dict]) -> str:
    head = ["mix", "seed", "days", "HTTP value/user", "HTTP ÷ oracle", "HTTP vs best fixed", "HTTP unsub/send (best fixed)",
            "in process value/user", "in process ÷ oracle", "in process vs best fixed", "in process unsub/send",
            "oracle/user", "best fixed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["days"], r["mix"], r["seed"])):
        lines.append("| " + " | ".join([r["mix"], str(r["seed"]), str(r["days"]), *_cells(r.get("http"), r),
                                        *_cells(r.get("in_process"), r), f"{r['oracle_per_user']:+.3f}",
                                        f"{r['best_fixed']} ({r['best_fixed_per_user']:+.3f})"]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--mixes", default="enthusiastic,balanced,casual")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--days", default="30", help="horizons, comma-separated (the issue's: 30,90)")
    ap.add_argument("--engine-seed", type=int, default=None, help="the service's draws (default: the population's seed)")
    ap.add_argument("--in-process", action="store_true", help="also run the same defaults in process")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8"))
    ap.add_argument("--out", default="sim-table.jsonl")
    a = ap.parse_args()
    done = []
    if os.path.exists(a.out):
        with open(a.out) as f:
            done = [json.loads(line) for line in f if line.strip()]
    for days in map(int, a.days.split(",")):
        for mix in a.mixes.split(","):
            for seed in map(int, a.seeds.split(",")):
                engine = seed if a.engine_seed is None else a.engine_seed
                if any((r["mix"], r["seed"], r["days"], r["users"], r["engine_seed"]) == (mix, seed, days, a.users, engine)
                       for r in done):
                    continue
                base = Settings.from_env().replace(redis_url=a.redis_url, seed=engine)
                row = one(mix, seed, days, a.users, base, a.in_process)
                done.append(row)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{mix} seed {seed}, {days} days: HTTP {row['http']['per_user']:+.3f} "
                      f"({row['http']['vs_oracle'] or float('nan'):.2f} of the oracle) [{row['seconds']:.0f} s]", flush=True)
    print(table(done))


if __name__ == "__main__":
    main()
