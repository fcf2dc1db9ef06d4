"""Item recommendations: implicit-feedback matrix factorisation (``implicit``'s CPU ALS).

Domain code only (numpy, scipy, implicit): no Redis, Flask or RQ. Everything works on the
service's dense indices (user hash field ``ix``, item list ``items:ids``); the refit job reads
the interaction store, calls :func:`build_matrix`, :func:`popularity` and :func:`fit`, and
publishes :attr:`Model.arrays` as raw arrays; serving calls :func:`fold_in` and :func:`top_k`.

The model, chosen on a validation split of the UCI Online Retail data (train before
2011-10-01, validate on October; see the README and ``bench/recs_retail.py --validate``):

- **confidence** ``c_ui = mf_alpha * sum over events of event_weight[type] * 0.5 ** (age / mf_half_life_days)``:
  repeated purchases count, recent ones count more, and a year-old purchase barely counts;
- **ALS** on those confidences (``mf_factors``, ``mf_regularization``, ``mf_iterations``);
- **ranking** by ``x_u . y_i / max_j |x_u . y_j| + mf_popular_blend * pop_i``, where ``pop_i`` is the
  item's recent popularity (decayed with ``mf_popular_half_life_days``, scaled to max 1): the
  per-user scaling puts light and heavy users' scores on one scale before blending; a user without
  a vector gets the recent popular items.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from bandit_push.config import EVENT_TYPES, Settings

#: item index meaning "no item" in interaction records (e.g. a search)
NO_ITEM = 0xFFFFFFFF
DAY = 86400.0


@dataclass
class Model:
    """A fitted model: raw arrays (published as they are, never pickled) and JSON-able metadata.

    ``arrays``: ``user_factors`` float32 [n_users, f], ``item_factors`` float32 [n_items, f],
    ``item_gram`` float32 [f, f] (``item_factors.T @ item_factors``, so that a fold-in needs no
    pass over all items), ``popularity`` float32 [n_items] (recent popularity scaled to max 1) and
    ``popular_blend`` float32 [1] (its weight in :func:`top_k`): top_k needs nothing but the arrays.
    """

    arrays: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)


def _event_weights(settings: Settings) -> npt.NDArray[np.float64]:
    """Weight per event type code (index into :data:`~bandit_push.config.EVENT_TYPES`); 0 for unknown codes."""
    w = np.zeros(256)
    w[:len(EVENT_TYPES)] = [float(settings.event_weights.get(t, 0.0)) for t in EVENT_TYPES]
    return w


def _weights(items, types, ts, now: float, half_life_days: float, settings: Settings):
    """(mask of usable events, their decayed weights): event-type weight times ``0.5 ** (age / half-life)``."""
    items = np.asarray(items, dtype=np.int64)
    w = _event_weights(settings)[np.asarray(types, dtype=np.uint8)]
    age_days = np.maximum(now - np.asarray(ts, dtype=np.float64), 0.0) / DAY  # future events count as now
    w = w * np.exp2(-age_days / half_life_days)
    keep = (items != NO_ITEM) & (w > 0)
    return keep, w[keep]


def build_matrix(users, items, types, ts, n_users: int, n_items: int, now: float,
                 settings: Settings) -> sp.csr_matrix:
    """The user x item confidence matrix (float32 CSR, shape ``(n_users, n_items)``) that :func:`fit` uses.

    ``c_ui = mf_alpha * sum_e event_weights[type_e] * 0.5 ** ((now - ts_e) / (mf_half_life_days days))``
    over user u's events on item i. Events without an item (``items == 0xFFFFFFFF``) or whose type
    weighs 0 are skipped; events after ``now`` count as if at ``now``.
    """
    keep, w = _weights(items, types, ts, now, settings.mf_half_life_days, settings)
    u = np.asarray(users, dtype=np.int64)[keep]
    i = np.asarray(items, dtype=np.int64)[keep]
    m = sp.csr_matrix(((settings.mf_alpha * w).astype(np.float32), (u, i)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def popularity(items, types, ts, n_items: int, now: float, settings: Settings) -> npt.NDArray[np.float32]:
    """Recent popularity of each item: event-weighted counts decayed with ``mf_popular_half_life_days``, max 1."""
    keep, w = _weights(items, types, ts, now, settings.mf_popular_half_life_days, settings)
    pop = np.bincount(np.asarray(items, dtype=np.int64)[keep], weights=w, minlength=n_items)[:n_items]
    top = pop.max() if pop.size else 0.0
    return (pop / top if top > 0 else pop).astype(np.float32)


def fit(matrix: sp.csr_matrix, settings: Settings, progress: Callable[[float], None] | None = None,
        popularity: npt.NDArray[np.float32] | None = None) -> Model:
    """Fit ALS on a confidence matrix from :func:`build_matrix`; ``progress(fraction)`` after each iteration.

    ``popularity`` (from :func:`popularity`) is what :func:`top_k` blends in; without it the
    column sums of ``matrix`` stand in (decayed with the matrix's longer half-life, which ranks
    worse on the validation split).
    """
    from threadpoolctl import threadpool_limits
    from implicit.cpu.als import AlternatingLeastSquares

    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    started = time.perf_counter()
    # implicit parallelises itself; a multi-threaded BLAS underneath it slows the fit down many times
    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=settings.mf_factors, regularization=settings.mf_regularization,
                                      iterations=settings.mf_iterations, num_threads=settings.mf_threads,
                                      random_state=settings.mf_seed)
        n = settings.mf_iterations
        callback = (lambda it, _elapsed, _loss: progress((it + 1) / n)) if progress else None
        als.fit(matrix, show_progress=False, callback=callback)
    item_factors = np.ascontiguousarray(als.item_factors, dtype=np.float32)
    if popularity is None:
        col = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
        popularity = (col / col.max() if col.size and col.max() > 0 else col).astype(np.float32)
    arrays = {
        "user_factors": np.ascontiguousarray(als.user_factors, dtype=np.float32),
        "item_factors": item_factors,
        "item_gram": (item_factors.T.astype(np.float64) @ item_factors).astype(np.float32),
        "popularity": np.asarray(popularity, dtype=np.float32),
        "popular_blend": np.array([settings.mf_popular_blend], dtype=np.float32),
    }
    meta = {"algorithm": "implicit.als", "users": int(matrix.shape[0]), "items": int(matrix.shape[1]),
            "nnz": int(matrix.nnz), "fit_seconds": round(time.perf_counter() - started, 3),
            "params": {k: getattr(settings, k) for k in (
                "mf_factors", "mf_regularization", "mf_iterations", "mf_alpha", "mf_half_life_days",
                "mf_popular_half_life_days", "mf_popular_blend", "mf_seed")}}
    return Model(arrays, meta)


def fold_in(model: Model, items, types, ts, now: float, settings: Settings) -> npt.NDArray[np.float32]:
    """One user's vector recomputed from their interactions against the fixed item factors.

    The exact least-squares solve of ALS for one user (what ``implicit``'s ``recalculate_user``
    does): ``(YtY + sum_i (c_i - 1) y_i y_i^T + reg I) x = sum_i c_i y_i`` with the confidences
    ``c_i`` of :func:`build_matrix`. Items beyond the model's item count (added since the fit) are
    ignored. Returns float32 [f]; zeros when nothing usable remains.
    """
    y = model.arrays["item_factors"]
    n_items, f = y.shape
    keep, w = _weights(items, types, ts, now, settings.mf_half_life_days, settings)
    idx = np.asarray(items, dtype=np.int64)[keep]
    known = idx < n_items
    if not known.any():
        return np.zeros(f, dtype=np.float32)
    uniq, inverse = np.unique(idx[known], return_inverse=True)
    c = settings.mf_alpha * np.bincount(inverse, weights=w[known])
    a, b = _normal_equations(model, uniq, c, settings)
    return np.linalg.solve(a, b).astype(np.float32)


def fold_in_many(model: Model, histories, now: float, settings: Settings) -> npt.NDArray[np.float32]:
    """:func:`fold_in` of each ``(items, types, ts)`` in ``histories`` (float32 [n, f]), with one batched solve."""
    y = model.arrays["item_factors"]
    n_items, f = y.shape
    out = np.zeros((len(histories), f), dtype=np.float32)
    if not histories:
        return out
    owner = np.repeat(np.arange(len(histories)), [len(h[0]) for h in histories])
    items, types, ts = (np.concatenate([np.asarray(h[j]) for h in histories]) for j in range(3))
    keep, w = _weights(items, types, ts, now, settings.mf_half_life_days, settings)
    idx, owner = np.asarray(items, dtype=np.int64)[keep], owner[keep]
    known = idx < n_items
    if not known.any():
        return out
    pairs, inverse = np.unique(owner[known] * n_items + idx[known], return_inverse=True)
    c_all = settings.mf_alpha * np.bincount(inverse, weights=w[known])
    users, starts = np.unique(pairs // n_items, return_index=True)
    a = np.empty((len(users), f, f))
    b = np.empty((len(users), f, 1))
    for j, (s, e) in enumerate(zip(starts, [*starts[1:], len(pairs)])):
        a[j], b[j, :, 0] = _normal_equations(model, pairs[s:e] % n_items, c_all[s:e], settings)
    out[users] = np.linalg.solve(a, b)[:, :, 0]
    return out


def _normal_equations(model: Model, uniq, c, settings: Settings) -> tuple[npt.NDArray, npt.NDArray]:
    """``(YtY + sum_i (c_i - 1) y_i y_i^T + reg I, sum_i c_i y_i)`` in float64 for one user's items and confidences."""
    y = model.arrays["item_factors"]
    yi = y[uniq].astype(np.float64)
    a = model.arrays["item_gram"].astype(np.float64) + (yi.T * (c - 1.0)) @ yi
    a[np.diag_indices(y.shape[1])] += settings.mf_regularization
    return a, yi.T @ c


def scores(model: Model, user_vec: npt.NDArray[np.float32], blend: float | None = None) -> npt.NDArray[np.float32]:
    """Every item's ranking score for one user vector (see the module docstring for the formula)."""
    if blend is None:
        blend = float(model.arrays["popular_blend"][0]) if "popular_blend" in model.arrays else 0.0
    s = model.arrays["item_factors"] @ np.asarray(user_vec, dtype=np.float32)
    scale = float(np.abs(s).max()) if s.size else 0.0
    if scale > 1e-12:
        s = s / scale
    else:
        s = np.zeros_like(s)
    pop = model.arrays.get("popularity")
    if pop is not None and blend:
        s = s + np.float32(blend) * pop[:s.size]
    return s.astype(np.float32, copy=False)


def top_k(model: Model, user_vec: npt.NDArray[np.float32], k: int, exclude=None,
          blend: float | None = None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Best-first item indices and their scores for one user vector, without the indices in ``exclude``.

    ``blend`` overrides the popularity blend weight the model was fit with (``mf_popular_blend``).
    Returns at most ``k`` items (fewer when the catalogue minus ``exclude`` is smaller).
    """
    s = scores(model, user_vec, blend).copy()
    if exclude is not None:
        ex = np.asarray(list(exclude) if isinstance(exclude, (set, frozenset)) else exclude, dtype=np.int64)
        ex = ex[(ex >= 0) & (ex < s.size)]
        s[ex] = -np.inf
    k = int(min(max(k, 0), np.isfinite(s).sum()))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-s, k - 1)[:k]
    order = part[np.lexsort((part, -s[part]))]  # ties: lower index first, so results are deterministic
    return order.astype(np.int64), s[order]


def top_k_many(model: Model, user_vecs: npt.NDArray[np.float32], k: int, excludes=None,
               blend: float | None = None, chunk: int = 512) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """:func:`top_k` for many users at once (one matrix product per ``chunk`` users): the same scores,
    exclusions and tie order; ``excludes`` is one array of item indices (or None) per user.

    Selection avoids a partition of every row: the ``k``-th best score among eight times ``k`` popular
    items is a lower bound of the row's ``k``-th best, so only the items scoring at least that are sorted.
    """
    if blend is None:
        blend = float(model.arrays["popular_blend"][0]) if "popular_blend" in model.arrays else 0.0
    items = model.arrays["item_factors"]
    pop = model.arrays.get("popularity")
    n_items = items.shape[0]
    kk = int(min(max(k, 0), n_items))
    vecs = np.asarray(user_vecs, dtype=np.float32)
    if kk == 0:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)) for _ in range(len(vecs))]
    probe = (np.argsort(-pop[:n_items], kind="stable") if pop is not None else np.arange(n_items))[:8 * kk]
    out: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = []
    for start in range(0, len(vecs), chunk):
        s = vecs[start:start + chunk] @ items.T
        scale = np.maximum(s.max(axis=1, keepdims=True), -s.min(axis=1, keepdims=True))  # max |s|, no copy
        ok = scale > 1e-12
        np.divide(s, scale, out=s, where=ok)
        s[~ok[:, 0]] = 0
        if pop is not None and blend:
            s += np.float32(blend) * pop[:n_items]
        if excludes is not None:  # exclusions: one fancy assignment for the whole chunk
            ex = [np.asarray(e, dtype=np.int64) if e is not None else np.zeros(0, np.int64)
                  for e in excludes[start:start + chunk]]
            rows = np.repeat(np.arange(len(ex)), [len(e) for e in ex])
            cols = np.concatenate(ex) if ex else np.zeros(0, np.int64)
            valid = (cols >= 0) & (cols < n_items)
            s[rows[valid], cols[valid]] = -np.inf
        sub = s[:, probe]
        bound = np.partition(sub, sub.shape[1] - kk, axis=1)[:, sub.shape[1] - kk]
        flat = np.flatnonzero(s >= bound[:, None])  # at least kk per row; by row, then by index
        r, c = np.divmod(flat, n_items)
        v = s.ravel()[flat]
        o = np.lexsort((-v, r))  # stable: by row, best first, ties keep the lower index first
        r, c, v = r[o], c[o], v[o]
        starts = np.searchsorted(r, np.arange(len(s) + 1))
        finite = np.bincount(r[np.isfinite(v)], minlength=len(s))  # excluded items (-inf) come last
        for row in range(len(s)):
            a = starts[row]
            n = min(kk, int(finite[row]))  # a catalogue smaller than k once exclusions are gone
            out.append((c[a:a + n], v[a:a + n]))
    return out
