"""Model figures on real data (UCI Online Retail): refit cost beside a bare fit, fold-in on the events
path beside ingestion alone, and the bytes a precomputed list adds per user.

    .venv/bin/python bench/models.py --redis-url redis://127.0.0.1:6379/4 [--customers 1000]

1. Ingests the purchases of ``--customers`` customers (a fixed hash sample) through the service's
   ingestion path (``bandit_push.events.ingest``), then runs the MF refit as the job does
   (``bandit_push.refit.run``: read interactions from Redis, matrix, fit, held-out quality, publish,
   a list for every user) and, in the same run, ``recs.fit`` alone on the same matrix (the ratio is
   the refit's overhead).
2. Events path: batches of one item event for each of ``--foldin-users`` users, ingested without and
   with the real-time fold-in (``models=`` cache); the per-user difference is the fold-in's cost.
3. Memory: ``MEMORY USAGE`` of each sampled user's hash, ``:recs`` list and ``:rx`` buffer.
Writes JSON to ``bench/out/models.json``; cleans its prefix.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

import retail  # noqa: E402
from bandit_push import events as ev  # noqa: E402
from bandit_push import models, recs, refit, segmentation  # noqa: E402,F401
from bandit_push.config import Settings  # noqa: E402
from bandit_push.models import ModelCache  # noqa: E402
from bandit_push.store import Store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--prefix", default="bench-models:")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--foldin-users", type=int, default=300)
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "models.json"))
    args = p.parse_args(argv)
    settings = Settings(redis_url=args.redis_url, prefix=args.prefix, quiet_hours="off", seed=7)
    store = Store.connect(settings)
    store.delete_prefix()
    res: dict = {"args": vars(args)}
    try:
        sample = retail.sample(args.customers)
        t = time.perf_counter()
        retail.ingest(store, settings, sample)
        res["ingest"] = {"events": len(sample), "s": round(time.perf_counter() - t, 2)}

        t = time.perf_counter()
        summary = refit.run(store, settings, "mf", "bench")
        refit_s = time.perf_counter() - t
        rows = np.concatenate(list(refit.interactions.read(store)))
        n_users, n_items = int(rows["user"].max()) + 1, int(rows["item"].max()) + 1
        matrix = recs.build_matrix(rows["user"], rows["item"], rows["type"], rows["ts"], n_users, n_items,
                                   float(rows["ts"].max()), settings)
        t = time.perf_counter()
        with threadpool_limits(1, "blas"):
            recs.fit(matrix, settings)
        bare_s = time.perf_counter() - t
        res["refit"] = {"summary": summary, "refit_s": round(refit_s, 2), "bare_fit_s": round(bare_s, 2),
                        "ratio": round(refit_s / bare_s, 2)}

        users = sorted({e.user_id for e in sample})[: args.foldin_users]
        item_ids = [e.item_id for e in sample[:50]]
        now = max(e.ts for e in sample) + 3600
        batch = [ev.ShopEvent(u, "view", now, item_ids[i % len(item_ids)]) for i, u in enumerate(users)]
        cache = ModelCache.for_serving()
        cache.get(store, "mf")  # loaded once per process, as the API does on its first request
        with threadpool_limits(1, "blas"):
            t = time.perf_counter()
            ev.ingest(store, settings, batch)
            plain = time.perf_counter() - t
            t = time.perf_counter()
            ev.ingest(store, settings, [ev.ShopEvent(e.user_id, e.type, e.ts + 60, e.item_id) for e in batch],
                      models=cache)
            folded = time.perf_counter() - t
        res["events_path"] = {"users": len(users), "ingest_ms_per_user": round(plain / len(users) * 1e3, 3),
                              "ingest_with_foldin_ms_per_user": round(folded / len(users) * 1e3, 3),
                              "foldin_ms_per_user": round((folded - plain) / len(users) * 1e3, 3),
                              "ratio": round(folded / plain, 2)}

        pipe = store.redis.pipeline(transaction=False)
        for u in users:
            pipe.memory_usage(store.keys.user(u), samples=0)
            pipe.memory_usage(store.keys.user_recs(u), samples=0)
            pipe.memory_usage(store.keys.user_recent(u), samples=0)
        got = pipe.execute()
        hashes, lists, rx = (np.array([x or 0 for x in got[i::3]], dtype=float) for i in range(3))
        res["memory"] = {"user_hash_bytes": hashes.mean(), "recs_bytes": lists.mean(), "recs_bytes_max": lists.max(),
                         "rx_bytes_after_one_event": rx.mean(), "recs_size": settings.recs_size,
                         "note": "MEMORY USAGE (key, value, dict entry; not the expires entry of the TTL'd :rx)"}
    finally:
        store.delete_prefix()
        store.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    r, e, m = res["refit"], res["events_path"], res["memory"]
    q = r["summary"]["quality"]
    print(f"refit mf on {r['summary']['rows']} interactions ({r['summary']['users']} users, {r['summary']['items']} "
          f"items): {r['refit_s']} s end to end vs bare recs.fit {r['bare_fit_s']} s -> {r['ratio']}x; held-out "
          f"recall@10 {q['recall@10']:.3f} vs popularity {q['popular_recall@10']:.3f} ({q['users']} users)")
    print(f"events path, one item event per user: ingest {e['ingest_ms_per_user']} ms/user, with fold-in "
          f"{e['ingest_with_foldin_ms_per_user']} ms/user (fold-in {e['foldin_ms_per_user']} ms/user, {e['ratio']}x)")
    print(f"memory per user: hash {m['user_hash_bytes']:.0f} B, :recs ({m['recs_size']} items) {m['recs_bytes']:.0f} B "
          f"(max {m['recs_bytes_max']:.0f}), :rx after one event {m['rx_bytes_after_one_event']:.0f} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
