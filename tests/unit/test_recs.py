"""The recommendation model on hand-computed cases and on a real sample of UCI Online Retail."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from bandit_push import recs
from bandit_push.config import EVENT_TYPES, Settings

DATA = Path(__file__).resolve().parents[2].parent / "shared/data/online_retail/interactions.csv.gz"
DAY = 86400.0
NOW = 1_790_000_000.0  # 2026-09-21
PURCHASE, VIEW, SEARCH, APP_OPEN = (EVENT_TYPES.index(t) for t in ("purchase", "view", "search", "app_open"))
SPLIT = float(np.datetime64("2011-11-01", "s").astype(np.int64))


@pytest.fixture(scope="module")
def retail():
    """Purchases of every third customer (by id), as dense indices: a real sample of ~1,450 users."""
    users, items, ts = [], [], []
    with gzip.open(DATA, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["event"] == "purchase" and int(row["user_id"]) % 3 == 0:
                users.append(row["user_id"])
                items.append(row["item_id"])
                ts.append(row["ts"][:-1])
    uids, u = np.unique(users, return_inverse=True)
    iids, i = np.unique(items, return_inverse=True)
    t = np.array(ts, dtype="datetime64[s]").astype(np.int64)
    return {"users": u, "items": i, "ts": t, "types": np.full(u.size, PURCHASE, np.uint8),
            "n_users": uids.size, "n_items": iids.size}


@pytest.fixture(scope="module")
def fitted(retail):
    """The model fitted on the sample's purchases before 2011-11-01, with the default settings."""
    s = Settings()
    tr = retail["ts"] < SPLIT
    args = (retail["items"][tr], retail["types"][tr], retail["ts"][tr])
    m = recs.build_matrix(retail["users"][tr], *args, retail["n_users"], retail["n_items"], SPLIT, s)
    model = recs.fit(m, s, popularity=recs.popularity(*args, retail["n_items"], SPLIT, s))
    return model, m, tr


def test_build_matrix_applies_event_weights_and_decay_by_hand():
    s = Settings(mf_alpha=2.0, mf_half_life_days=10.0)
    users = [0, 0, 0, 1, 1, 1, 1]
    items = [2, 2, 1, 0, recs.NO_ITEM, 1, 0]
    types = [PURCHASE, VIEW, PURCHASE, PURCHASE, SEARCH, APP_OPEN, PURCHASE]
    ts = [NOW, NOW - 10 * DAY, NOW - 20 * DAY, NOW + 5 * DAY, NOW, NOW, NOW - 30 * DAY]
    m = recs.build_matrix(users, items, types, ts, 2, 3, NOW, s)
    # user 0, item 2: purchase now (1) + view (0.1) one half-life ago; item 1: purchase two half-lives ago
    # user 1, item 0: purchase "in the future" counts as now (1) + one three half-lives ago (1/8);
    # the search has no item and app_open weighs 0, so neither appears
    expected = 2.0 * np.array([[0, 0.25, 1 + 0.1 * 0.5], [1 + 0.125, 0, 0]])
    assert m.dtype == np.float32 and m.shape == (2, 3) and m.nnz == 3
    np.testing.assert_allclose(m.toarray(), expected, rtol=1e-6)


def test_popularity_uses_its_own_half_life_and_peaks_at_one():
    s = Settings(mf_popular_half_life_days=7.0)
    pop = recs.popularity([0, 0, 1, 2], [PURCHASE, PURCHASE, PURCHASE, VIEW],
                          [NOW, NOW - 7 * DAY, NOW, NOW], 4, NOW, s)
    np.testing.assert_allclose(pop, [1.0, 1 / 1.5, 0.1 / 1.5, 0.0], rtol=1e-6)


def test_fold_in_is_implicits_recalculate_user(fitted, retail):
    from implicit.cpu.als import AlternatingLeastSquares

    model, m, tr = fitted
    s = Settings()
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=s.mf_factors, regularization=s.mf_regularization)
    als.item_factors = model.arrays["item_factors"]
    for user in (3, 100, 700):
        sel = tr & (retail["users"] == user)
        vec = recs.fold_in(model, retail["items"][sel], retail["types"][sel], retail["ts"][sel], SPLIT, s)
        oracle = als.recalculate_user(user, m[user])
        np.testing.assert_allclose(vec, oracle, atol=1e-4 * np.abs(oracle).max())
        # and the fitted user vector is (nearly) the fixed point of one more half-sweep
        assert np.abs(model.arrays["user_factors"][user] - vec).max() < 0.1 * np.abs(vec).max()


def test_fold_in_many_is_fold_in_for_each_user(fitted, retail):
    model, _, tr = fitted
    s = Settings()
    n_items = model.arrays["item_factors"].shape[0]
    none = (np.zeros(0, np.int64),) * 3
    histories = [tuple(retail[k][tr & (retail["users"] == u)] for k in ("items", "types", "ts")) for u in (5, 3, 900)]
    histories[1:1] = [none, ([n_items + 5, recs.NO_ITEM], [PURCHASE, SEARCH], [SPLIT, SPLIT])]  # nothing usable
    many = recs.fold_in_many(model, histories, SPLIT, s)
    assert many.dtype == np.float32 and many.shape == (5, model.arrays["item_factors"].shape[1])
    for h, vec in zip(histories, many):
        assert np.array_equal(vec, recs.fold_in(model, *h, SPLIT, s))  # bit for bit: one solve per user either way
    assert not many[1].any() and not many[2].any() and many[0].any()


def test_fitted_model_beats_recent_popularity_on_held_out_purchases(fitted, retail):
    model, m, tr = fitted
    bought = m.tocsr()
    held: dict[int, set[int]] = {}
    for u, i in zip(retail["users"][~tr].tolist(), retail["items"][~tr].tolist()):
        if bought[u, i] == 0 and bought.indptr[u + 1] > bought.indptr[u]:
            held.setdefault(u, set()).add(i)
    window = tr & (retail["ts"] >= SPLIT - 30 * DAY)
    popular = np.argsort(-np.bincount(retail["items"][window], minlength=retail["n_items"]), kind="stable")
    ours, pop = [], []
    for u, truth in held.items():
        own = bought.indices[bought.indptr[u]:bought.indptr[u + 1]]
        top, _ = recs.top_k(model, model.arrays["user_factors"][u], 10, exclude=own)
        base = [i for i in popular[:500] if i not in set(own.tolist())][:10]
        ours.append(len(truth & set(top.tolist())) / min(len(truth), 10))
        pop.append(len(truth & set(base)) / min(len(truth), 10))
    diff = np.array(ours) - np.array(pop)
    assert len(held) > 400
    # a paired margin of more than 3 standard errors, and a sizeable ratio: not luck
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert np.mean(ours) > 1.2 * np.mean(pop)


def test_fold_in_moves_the_top_list_towards_what_the_user_just_bought(fitted, retail):
    model, m, tr = fitted
    s = Settings()
    y = model.arrays["item_factors"]
    unit = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-9)
    counts = np.bincount(retail["users"][tr], minlength=retail["n_users"])
    user = int(np.flatnonzero((counts >= 10) & (counts <= 30))[0])  # a light user, whose taste can move
    sel = tr & (retail["users"] == user)
    items, types, ts = retail["items"][sel], retail["types"][sel], retail["ts"][sel]
    before, _ = recs.top_k(model, recs.fold_in(model, items, types, ts, SPLIT, s), 10, exclude=items)
    # a popular item far from the user's current taste, bought just now
    pop_rank = np.argsort(-model.arrays["popularity"])[:200]
    taste = unit[before].mean(axis=0)
    target = int(pop_rank[np.argmin(unit[pop_rank] @ taste)])
    # items like it, in the model's own terms: what it ranks for a vector pointing at the item
    neighbours = set(recs.top_k(model, y[target], 30, exclude=[target])[0].tolist())
    vec = recs.fold_in(model, np.r_[items, target, target], np.r_[types, PURCHASE, PURCHASE],
                       np.r_[ts, SPLIT, SPLIT], SPLIT, s)
    after, _ = recs.top_k(model, vec, 10, exclude=np.r_[items, target])
    assert set(after.tolist()) != set(before.tolist())
    assert len(neighbours & set(after.tolist())) > len(neighbours & set(before.tolist()))
    assert (unit[after] @ unit[target]).mean() > (unit[before] @ unit[target]).mean() + 0.1


def test_top_k_ranks_best_first_and_excludes():
    rng = np.random.default_rng(0)
    model = recs.Model({"user_factors": rng.normal(size=(3, 4)).astype(np.float32),
                        "item_factors": rng.normal(size=(20, 4)).astype(np.float32),
                        "popularity": np.linspace(1, 0, 20, dtype=np.float32),
                        "popular_blend": np.array([0.5], np.float32)})
    vec = model.arrays["user_factors"][0]
    full, scores = recs.top_k(model, vec, 20)
    assert sorted(full.tolist()) == list(range(20)) and np.all(np.diff(scores) <= 0)
    s = model.arrays["item_factors"] @ vec
    np.testing.assert_allclose(scores, (s / np.abs(s).max() + 0.5 * model.arrays["popularity"])[full], rtol=1e-5)
    exclude = full[:3].tolist() + [7, 99, -1]  # out-of-range indices are ignored
    top, _ = recs.top_k(model, vec, 5, exclude=set(exclude))
    assert top.tolist() == [i for i in full.tolist() if i not in exclude][:5]
    rest, _ = recs.top_k(model, vec, 50, exclude=exclude)
    assert len(rest) == 20 - len({*full[:3].tolist(), 7})
    cold, cold_scores = recs.top_k(model, np.zeros(4, np.float32), 3)  # no vector: recent popularity
    assert cold.tolist() == [0, 1, 2] and cold_scores[0] == pytest.approx(0.5)


def test_fit_reports_progress_and_returns_raw_arrays_and_json_meta():
    import json

    s = Settings(mf_iterations=4, mf_factors=8)
    m = recs.build_matrix([0, 1, 2, 2], [0, 1, 1, 2], [PURCHASE] * 4, [NOW] * 4, 3, 3, NOW, s)
    seen: list[float] = []
    model = recs.fit(m, s, progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert {k: (v.dtype, v.shape) for k, v in model.arrays.items()} == {
        "user_factors": (np.float32, (3, 8)), "item_factors": (np.float32, (3, 8)),
        "item_gram": (np.float32, (8, 8)), "popularity": (np.float32, (3,)), "popular_blend": (np.float32, (1,))}
    assert json.loads(json.dumps(model.meta))["params"]["mf_factors"] == 8
    # without a popularity vector, the matrix's column sums stand in (scaled to max 1)
    np.testing.assert_allclose(model.arrays["popularity"], [0.5, 1.0, 0.5])


def test_top_k_many_is_top_k_for_each_user(fitted):
    model = fitted[0]
    vecs = model.arrays["user_factors"][:300]
    rng = np.random.default_rng(3)
    n_items = model.arrays["item_factors"].shape[0]
    excludes = [rng.choice(n_items, size=int(rng.integers(0, 20)), replace=False) if i % 3 else None
                for i in range(len(vecs))]
    many = recs.top_k_many(model, vecs, 25, excludes, chunk=64)
    for v, ex, (idx, sc) in zip(vecs, excludes, many):
        one_idx, one_sc = recs.top_k(model, v, 25, exclude=ex)
        assert np.array_equal(idx, one_idx)
        np.testing.assert_allclose(sc, one_sc, rtol=1e-5, atol=1e-6)
