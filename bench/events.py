"""The events path against a base checkout's: POST /v1/events' work (``bandit_push.events.ingest``) on the same batches.

    mkdir -p /tmp/base && git archive main bandit_push | tar -x -C /tmp/base   # the checkout to compare with
    .venv/bin/python bench/events.py --base /tmp/base [--redis-url URL] [--batches 20] [--rounds 5]

Each round ingests ``--batches`` batches of 1,000 events (a fixed seed: 5,000 users, a third first seen in the
round, 2,000 items, every type, half with an event id, one running experiment) under a fresh key prefix, with the
base checkout and with this one in turn, in subprocesses; then the same batches again (a gateway's retry: the
events with an id are duplicates). Reports the median seconds of each and the ratios (this / base).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ROUND = r'''
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from bandit_push import experiments
from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.events import ShopEvent, ingest
from bandit_push.experiments import Registry
from bandit_push.store import Store
url, prefix, batches = sys.argv[2], sys.argv[3], int(sys.argv[4])
s = Settings(redis_url=url, prefix=prefix, quiet_hours="off", seed=3)
st = Store.connect(s)
rng, t0 = random.Random(1), 1772366400.0
# users known before the round (a dense index each): two thirds of those the batches name
ingest(st, s, [ShopEvent(f"u{i}", "app_open", t0 - 86400) for i in range(3400)])
x = experiments.create(st, s, {"name": "b", "variants": [{"name": n, "weight": 1, "policy": {"name": "thompson"}}
                                                         for n in ("a", "b")]})
experiments.transition(st, x.id, "start")
reg = Registry(st)
reg.refresh()
work = []
for b in range(batches):
    evs = []
    for j in range(1000):
        t = EVENT_TYPES[rng.randrange(len(EVENT_TYPES))]
        item = f"sku-{rng.randrange(2000)}" if t not in ("search", "app_open") else None
        eid = f"e{b}-{j}" if j % 2 else None
        evs.append(ShopEvent(f"u{rng.randrange(5000)}", t, t0 + b * 60 + j * 0.01, item, 1.0, eid))
    work.append(evs)
out = {}
for name in ("first", "retry"):
    t = time.perf_counter()
    for evs in work:
        ingest(st, s, evs, registry=reg)
    out[name] = time.perf_counter() - t
out["interaction_bytes"] = sum(st.redis.strlen(k) for k in st.redis.scan_iter(prefix + "ix:2*"))
print(json.dumps(out))
'''


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="a checkout (directory holding bandit_push/) to compare with")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    from bandit_push.config import Settings
    from bandit_push.store import Store

    times: dict[str, list[dict]] = {"base": [], "this": []}
    for _ in range(args.rounds):
        for name, path in (("base", args.base), ("this", str(REPO))):
            prefix = f"bench-events:{uuid.uuid4().hex[:8]}:"
            try:
                got = subprocess.run([sys.executable, "-c", ROUND, path, args.redis_url, prefix, str(args.batches)],
                                     check=True, capture_output=True, text=True).stdout
                times[name].append(json.loads(got))
            finally:
                store = Store.connect(Settings(redis_url=args.redis_url, prefix=prefix))
                store.delete_prefix()
                store.close()
    n = args.batches * 1000
    for phase in ("first", "retry"):
        med = {k: statistics.median(r[phase] for r in v) for k, v in times.items()}
        print(f"{phase}: {n} events in batches of 1,000: base {med['base']:.3f} s, this {med['this']:.3f} s "
              f"({n / med['base']:,.0f} vs {n / med['this']:,.0f} events/s); "
              f"this / base {med['this'] / med['base']:.3f} (ratio of medians)")
        paired = sorted(t[phase] / b[phase] for t, b in zip(times["this"], times["base"]))
        print(f"  per round (this / base, the pair run back to back): {', '.join(f'{r:.3f}' for r in paired)}")
    same = {r["interaction_bytes"] for v in times.values() for r in v}
    print(f"interaction bytes written per round: {sorted(same)} (the same in both: the retry appended nothing twice)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
