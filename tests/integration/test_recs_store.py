"""The model fed through the service: real events ingested into a real Redis, read back, fitted, ranked."""
from __future__ import annotations

import csv
import gzip
import itertools
from pathlib import Path

import numpy as np

from bandit_push import interactions, recs
from bandit_push.config import EVENT_TYPES
from bandit_push.events import ShopEvent, ingest

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/online_retail/interactions.csv.gz"


def _sample(n: int) -> list[ShopEvent]:
    """The first ``n`` purchases of the real data, as a gateway would forward them."""
    with gzip.open(DATA, "rt", newline="") as f:
        rows = (r for r in csv.DictReader(f) if r["event"] == "purchase")
        return [ShopEvent(user_id=r["user_id"], type="purchase", item_id=r["item_id"],
                          ts=float(np.datetime64(r["ts"][:-1], "s").astype(np.int64)),
                          value=float(r["quantity"]) * float(r["price"]))
                for r in itertools.islice(rows, n)]


def test_refit_from_the_interaction_store_matches_the_events_and_ranks_for_users(store, settings):
    events = _sample(6000)
    for n in range(0, len(events), 1000):
        ingest(store, settings, events[n:n + 1000])
    # a search (no item) and a view from one of the users: the matrix must skip and weigh them
    first = events[0]
    later = first.ts + 86400
    ingest(store, settings, [ShopEvent(user_id=first.user_id, type="search", ts=later),
                             ShopEvent(user_id=first.user_id, type="view", item_id=events[1].item_id, ts=later)])

    rec = np.concatenate(list(interactions.read(store)))
    item_ids = interactions.item_ids(store)
    n_users = int(store.redis.hget(store.keys.counters(), "users"))
    assert rec.size == len(events) + 2 and (rec["item"] == interactions.NO_ITEM).sum() == 1
    assert set(rec["type"].tolist()) == {EVENT_TYPES.index(t) for t in ("purchase", "search", "view")}
    now = max(e.ts for e in events) + 86400
    m = recs.build_matrix(rec["user"], rec["item"], rec["type"], rec["ts"], n_users, len(item_ids), now, settings)

    # the same matrix computed straight from the events, by id
    ix = {u: int(store.redis.hget(store.keys.user(u), "ix")) for u in {e.user_id for e in events}}
    col = {item: n for n, item in enumerate(item_ids)}
    expected = np.zeros((n_users, len(item_ids)))
    w = settings.event_weights
    for e in events + [ShopEvent(user_id=first.user_id, type="view", item_id=events[1].item_id, ts=later)]:
        decay = 0.5 ** ((now - e.ts) / 86400 / settings.mf_half_life_days)
        expected[ix[e.user_id], col[e.item_id]] += settings.mf_alpha * w[e.type] * decay
    np.testing.assert_allclose(m.toarray(), expected, rtol=1e-5, atol=1e-7)

    model = recs.fit(m, settings, popularity=recs.popularity(rec["item"], rec["type"], rec["ts"], len(item_ids),
                                                           now, settings))
    assert model.arrays["user_factors"].shape == (n_users, settings.mf_factors)
    assert all(a.dtype in (np.float32, np.int32) for a in model.arrays.values())
    u = ix[first.user_id]
    mine = rec["user"] == u
    own = np.unique(rec["item"][mine & (rec["item"] != interactions.NO_ITEM)])
    vec = recs.fold_in(model, rec["item"][mine], rec["type"][mine], rec["ts"][mine], now, settings)
    top, scores = recs.top_k(model, vec, 10, exclude=own)
    assert len(top) == 10 and not set(top.tolist()) & set(own.tolist()) and np.all(np.diff(scores) <= 0)
