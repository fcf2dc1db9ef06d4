"""What the decision log costs and how fast it reads: decide's script against a base checkout's, export, evaluate.

Usage:
    mkdir -p /tmp/base && git archive main bandit_push | tar -x -C /tmp/base   # the checkout to compare with
    .venv/bin/python bench/decision_log.py --base /tmp/base [--redis-url URL] [--decides 20000] [--rounds 5]

1. Decide cost: the decide script of this checkout (arm statistics, gap and hourly index written) and of
   ``--base``, each run as ``--decides`` EVALSHA calls in pipelines of 1,000 (so Redis's own work
   dominates the time, not the client), alternating base/this for ``--rounds`` rounds under separate
   key prefixes. Reports the ratio of the median times (this / base), the per-round ratios (a round's
   two runs are adjacent in time, so a noisy neighbour hits both) and the record's MEMORY USAGE.
2. Export: every decision of each checkout's rounds (the same decides: same users, times and seeds) through its
   own :func:`bandit_push.decision_log.export`, alternating base/this three times; rows per second and the ratio of
   the median times (this / base), and the hour indexes' MEMORY USAGE per decision.
3. Evaluate: the exported log written to a file, read back and evaluated for three candidates
   (1,000 bootstrap replicates), seconds.

Needs a real Redis (default ``REDIS_URL`` or redis://127.0.0.1:6379/15); its keys are deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
T0 = 1772366400.0

# one round of decides with the checkout at argv[1]; prints seconds and a sample record's MEMORY USAGE
ROUND = r'''
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine, new_decision_id
from bandit_push.store import Store
try:
    from bandit_push.keys import key_slot
except ImportError:  # (a checkout before decision ids named their slot)
    pass
url, prefix, n, start = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
s = Settings(redis_url=url, prefix=prefix, quiet_hours="off", seed=3)
st = Store.connect(s)
st.redis.hset(st.keys.popular_top(), "*", " ".join(f"sku-{i:06d} {100 - i * 0.5:g}" for i in range(100)))
e = DecisionEngine(st, s)
e.decide("warm-up", now=start)  # loads the script
rng = random.Random(1)
k = st.keys
# the keys and arguments DecisionEngine.decide passes (no experiment running), across versions of the script
if hasattr(e, "_config_for"):  # the library's decide as a script, its config sent with every call
    config = e._config_for(e.registry.snapshot)
    script, version = st.decide_script.script, [config.snapshot.version, config.digest, config.blob,
                                                e.extra_argument("")]
elif hasattr(e, "_script_for"):
    compiled = e._script_for(e.registry.snapshot)
    script, version = compiled.script, [compiled.snapshot.version]
else:
    script, version = e._script, []
calls = []
per_slot = hasattr(k, "decision_log_slots")  # ids that name their record's slot, a log index per slot
for i in range(n):
    u, now = f"u{rng.randrange(n // 4)}", start + i * 2.0
    slot = key_slot(k.user(u)) if per_slot else 0
    did = new_decision_id("default", slot) if per_slot else new_decision_id("default")
    keys = [k.user(u), k.decision(did), k.arms("default"), k.popular_top(), k.segment_sizes(), k.user_pushes(u)]
    if version:
        keys.append(k.experiments_version())
    if per_slot:
        keys += [k.decision_log(slot, int(now // 3600)), k.decision_log_slots(int(now // 3600))]
    elif hasattr(k, "decision_log"):
        keys.append(k.decision_log(int(now // 3600)))
    if hasattr(k, "user_recs"):
        keys += [k.user_recs(u), k.item_by_index()]
    calls.append((keys, [u, did, repr(now), repr(rng.random()), 5, "push", *version], did))
t = time.perf_counter()
for i in range(0, n, 1000):
    pipe = st.redis.pipeline(transaction=False)
    for keys, args, _ in calls[i:i + 1000]:
        script(keys=keys, args=args, client=pipe)
    pipe.execute()
seconds = time.perf_counter() - t
sizes = [st.redis.memory_usage(k.decision(did)) for _, _, did in calls[-500:]]
print(json.dumps({"s": seconds, "record_bytes": sum(sizes) / len(sizes)}))
'''


# the export of one checkout's decisions with the checkout at argv[1]; prints rows and seconds
EXPORT = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bandit_push import decision_log
from bandit_push.config import Settings
from bandit_push.store import Store
url, prefix, since, until = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
s = Settings(redis_url=url, prefix=prefix, quiet_hours="off")
st = Store.connect(s)
t = time.perf_counter()
n = sum(1 for _ in decision_log.export(st, s, since, until, until + 48 * 3600))
print(json.dumps({"s": time.perf_counter() - t, "rows": n}))
'''


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="a checkout (directory holding bandit_push/) to compare with")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15")
    p.add_argument("--decides", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    import redis

    from bandit_push import decision_log
    from bandit_push.config import Settings
    from bandit_push.ope import evaluate as ev
    from bandit_push.ope.log import read_log
    from bandit_push.store import Store

    variants = {"base": args.base, "this": str(REPO)}
    prefixes = {name: f"bpbench-log-{name}-{random.randrange(1 << 30):x}:" for name in variants}
    times: dict[str, list[float]] = {name: [] for name in variants}
    record: dict[str, float] = {}
    client = redis.Redis.from_url(args.redis_url)
    try:
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in order:
                out = subprocess.run([sys.executable, "-c", ROUND, variants[name], args.redis_url, prefixes[name],
                                      str(args.decides), str(T0 + r * args.decides * 2.0)],
                                     capture_output=True, text=True, check=True).stdout
                got = json.loads(out)
                times[name].append(got["s"])
                record[name] = got["record_bytes"]
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f"decide script, {args.decides} calls pipelined x {args.rounds} alternating rounds:")
        for name in variants:
            print(f"  {name:<5} median {med[name] / args.decides * 1e6:6.1f} us per decide "
                  f"(rounds {', '.join(f'{x:.2f}' for x in times[name])} s); record {record[name]:.0f} B")
        paired = sorted(t / b for t, b in zip(times["this"], times["base"]))
        print(f"  this / base: {med['this'] / med['base']:.3f} (ratio of medians); per round "
              f"{', '.join(f'{x:.2f}' for x in paired)}, median {statistics.median(paired):.3f}")

        settings = Settings(redis_url=args.redis_url, prefix=prefixes["this"], quiet_hours="off")
        store = Store.connect(settings)
        end = T0 + args.rounds * args.decides * 2.0
        export: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(3):
            for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
                got = json.loads(subprocess.run(
                    [sys.executable, "-c", EXPORT, variants[name], args.redis_url, prefixes[name], str(T0 - 3600),
                     str(end + 3600)], capture_output=True, text=True, check=True).stdout)
                export[name].append(got["s"])
        emed = {name: statistics.median(v) for name, v in export.items()}
        print(f"export, {got['rows']} decisions x 3 alternating runs:")
        for name in variants:
            print(f"  {name:<5} median {emed[name]:.2f} s ({got['rows'] / emed[name]:,.0f} rows/s; runs "
                  f"{', '.join(f'{x:.2f}' for x in export[name])} s)")
        print(f"  this / base: {emed['this'] / emed['base']:.3f} (ratio of medians)")
        for name, prefix in prefixes.items():  # the hour indexes' memory (per slot and hour now: a key's overhead)
            logs = list(client.scan_iter(match=f"{prefix}dlog:*", count=1000))
            used = sum(client.memory_usage(key) or 0 for key in logs)
            print(f"  {name:<5} hour indexes: {len(logs)} keys, {used / got['rows']:.1f} B per decision")
        rows = list(decision_log.export(store, settings, T0 - 3600, end + 3600, end + 48 * 3600))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "log.ndjson"
            path.write_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
            t = time.perf_counter()
            log = read_log(path)
            read_s = time.perf_counter() - t
            t = time.perf_counter()
            for config in ({"name": "thompson", "cost": 0.2}, {"name": "cadence", "cadence_gap_hours": 12},
                           {"name": "ucb"}):
                ev.evaluate(config, log, settings)
            eval_s = time.perf_counter() - t
        print(f"evaluate: read {len(log)} lines in {read_s:.2f} s; 3 candidates x 4 estimators with 1,000 "
              f"bootstrap replicates in {eval_s:.2f} s")
        store.close()
    finally:
        for prefix in prefixes.values():
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i:i + 1000])
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
