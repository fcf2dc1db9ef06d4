"""The console's pages: how long each takes to render with 20 experiments and 50 segments.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/console.py [--rounds 15]

Builds, through the domain functions the service uses, a store with 50 learned segments (synthetic shoppers
clustered by the segmentation refit with segment_count 50; decides and feedback in every segment over four
days, so each segment has learned contexts and load arms), an item model, and 20 experiments (10 running, each
on its own segments and with its exposed users; 5 stopped; 5 drafts). Then times each console page through
the app (Flask's test client: no network) against the JSON endpoint that reads the same domain function, in
the same rounds, interleaved; prints one JSON document with the median milliseconds per page, the ratio to its
JSON counterpart, the decide count behind the data and the machine's load average (the machine is shared: read
the ratios). Keys live under a fresh prefix, deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bandit_push_api import create_app  # noqa: E402
from bandit_push import experiments, feedback, refit  # noqa: E402
from bandit_push.config import Settings  # noqa: E402
from bandit_push.events import ShopEvent, ingest  # noqa: E402

SEGMENTS, EXPERIMENTS, SHOPPERS, DAYS = 50, 20, 3000, 4


def populate(app, settings: Settings, now: float, seed: int = 1) -> dict:
    """Shoppers, 50 segments, an item model, learned arms in every segment, 20 experiments."""
    services = app.extensions["bandit_push"]
    store, engine = services.store, services.engine
    rng = random.Random(seed)
    events = []
    for u in range(SHOPPERS):  # habits differ by user, so k-means finds 50 groups of them
        rate = rng.choice([0.2, 0.5, 1, 2, 4, 8])
        for _ in range(3 + int(rng.expovariate(1 / (4 * rate)))):
            kind = rng.choice(["view", "view", "add_to_cart", "purchase", "search", "app_open"])
            item = None if kind in ("search", "app_open") else f"i{rng.randrange(400)}"
            events.append(ShopEvent(f"b{u}", kind, now - DAYS * 86400 - rng.uniform(0, 60 * 86400), item,
                                    rng.uniform(5, 80) if kind == "purchase" else 0.0))
    for i in range(0, len(events), 2000):
        ingest(store, settings, events[i:i + 2000])
    for name in ("mf", "segments"):
        refit.run(store, settings, name, "bench", lambda f, s: None)
    segs = sorted(store.redis.hgetall(store.keys.segment_sizes()))
    ids = [x for x in segs if x not in ("new", "default")]
    xs = []
    for i in range(EXPERIMENTS):
        body = {"name": f"experiment {i}", "segments": [ids[i % len(ids)]],
                "variants": [{"name": "control", "policy": {"name": "thompson"}},
                             {"name": "treatment", "policy": {"name": "ucb", "cost": 0.05}}]}
        x = experiments.create(store, settings, body, now=now - DAYS * 86400)
        if i < 15:
            experiments.transition(store, x.id, "start", now=now - DAYS * 86400)
        if i >= 10 and i < 15:
            experiments.transition(store, x.id, "stop", now=now - 86400)
        xs.append(x.id)
    decides = 0
    for step in range(DAYS * 6):  # every 4 hours: recency buckets and dayparts both vary
        t = now - DAYS * 86400 + step * 4 * 3600
        batch = []
        for u in range(SHOPPERS):
            if rng.random() < 0.5:
                d = engine.decide(f"b{u}", now=t + rng.uniform(0, 3600))
                decides += 1
                if d.send:
                    outcome = rng.choices(["clicked", "converted", "dismissed", None], [0.2, 0.03, 0.1, 0.67])[0]
                    if outcome:
                        batch.append(feedback.FeedbackEvent(d.decision_id, outcome, t + 3600, None))
        feedback.record(store, settings, batch)
    return {"shoppers": SHOPPERS, "segments": len(ids), "experiments": len(xs), "decides": decides,
            "report_experiment": xs[0], "segment": ids[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    url = os.environ.get("REDIS_URL")
    if not url:
        print("set REDIS_URL (e.g. redis://127.0.0.1:6379/5)", file=sys.stderr)
        return 2
    settings = Settings(redis_url=url, prefix=f"bpbench:{uuid.uuid4().hex[:8]}:", quiet_hours="off", seed=1,
                        segment_count=SEGMENTS, rate_limits={})
    app = create_app(settings)
    store = app.extensions["bandit_push"].store
    try:
        t = time.perf_counter()
        data = populate(app, settings, time.time())
        data["populate_s"] = round(time.perf_counter() - t, 1)
        x = data.pop("report_experiment")
        pairs = {  # page -> (console path, the JSON endpoint reading the same domain function)
            "experiments": ("/console/experiments", "/v1/experiments"),
            "experiment report": (f"/console/experiments/{x}", f"/v1/experiments/{x}/report"),
            "segments": ("/console/segments", "/v1/segments"),
            "one segment": (f"/console/segments/{data.pop('segment')}", "/v1/segments"),
            "models & jobs": ("/console/models", "/v1/models"),
            "decisions (12 h)": ("/console/decisions", "/v1/decisions/export?include_open=true&since="
                                 f"{time.time() - 12 * 3600:.0f}"),
            "new experiment form": ("/console/experiments/new", "/healthz"),
        }
        client = app.test_client()
        times: dict[str, list[float]] = {f"{page}|{kind}": [] for page in pairs for kind in ("page", "json")}
        for _ in range(args.rounds + 1):  # the first round warms caches (templates, arms) and is dropped
            for page, (html, api) in pairs.items():
                for kind, path in (("page", html), ("json", api)):
                    start = time.perf_counter()
                    r = client.get(path)
                    r.get_data()
                    times[f"{page}|{kind}"].append(time.perf_counter() - start)
                    assert r.status_code == 200, (path, r.status_code)
        out = {"data": data, "rounds": args.rounds, "load_average": [round(x, 1) for x in os.getloadavg()],
               "cpus": os.cpu_count(), "pages": {}}
        for page in pairs:
            p = statistics.median(times[f"{page}|page"][1:]) * 1000
            j = statistics.median(times[f"{page}|json"][1:]) * 1000
            out["pages"][page] = {"ms": round(p, 1), "max_ms": round(max(times[f"{page}|page"][1:]) * 1000, 1),
                                  "json": pairs[page][1].split("?")[0], "json_ms": round(j, 1),
                                  "ratio_to_json": round(p / j, 2)}
        print(json.dumps(out, indent=2))
    finally:
        store.delete_prefix()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
