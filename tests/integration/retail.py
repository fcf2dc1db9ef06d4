"""A small real sample of UCI Online Retail (../shared/data/online_retail), ingested through the service."""
from __future__ import annotations

import csv
import gzip
import hashlib
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from bandit_push import events as ev

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/online_retail/interactions.csv.gz"


@lru_cache(maxsize=None)
def sample(customers: int = 400) -> tuple[ev.ShopEvent, ...]:
    """The purchases of the ``customers`` customers first in a fixed hash order (a seeded sample)."""
    rows = []
    with gzip.open(DATA, "rt", newline="") as f:
        for r in csv.DictReader(f):
            rows.append(r)
    ids = sorted({r["user_id"] for r in rows}, key=lambda u: hashlib.sha1(u.encode()).hexdigest())[:customers]
    keep = set(ids)
    out = []
    for r in rows:
        if r["user_id"] in keep:
            ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
            out.append(ev.ShopEvent(f"c{r['user_id']}", "purchase", ts, r["item_id"],
                                    float(r["quantity"]) * float(r["price"])))
    return tuple(out)


def ingest(store, settings, events, models=None, batch: int = 1000) -> None:
    for i in range(0, len(events), batch):
        ev.ingest(store, settings, list(events[i:i + batch]), models=models)


def extra(old: int, new: int) -> tuple[ev.ShopEvent, ...]:
    """The purchases of the customers in ``sample(new)`` but not in ``sample(old)``."""
    had = {e.user_id for e in sample(old)}
    return tuple(e for e in sample(new) if e.user_id not in had)
