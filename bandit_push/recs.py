"""Recommendation modelling: interaction matrix, ALS fit, fold-in, ranking (minimal placeholder).

The interface the model store, the refit job and serving call. ALS comes from the ``implicit``
library with its default parameters; the matrix holds the summed ``event_weights`` per user-item.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bandit_push.config import EVENT_TYPES, Settings

NO_ITEM = 0xFFFFFFFF


@dataclass
class Model:
    """A fitted model: raw arrays (``user_factors`` [n_users, f], ``item_factors`` [n_items, f]) and JSON meta."""

    arrays: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)


def _weights(types: npt.NDArray, settings: Settings) -> npt.NDArray[np.float32]:
    table = np.array([settings.event_weights.get(t, 0.0) for t in EVENT_TYPES], dtype=np.float32)
    return table[types.astype(np.int64)]


def build_matrix(users, items, types, ts, n_users, n_items, now, settings) -> sp.csr_matrix:
    """csr_matrix of shape (n_users, n_items): summed event weights; rows without an item are skipped."""
    items = np.asarray(items, dtype=np.uint32)
    keep = items != NO_ITEM
    w = _weights(np.asarray(types)[keep], settings)
    nz = w > 0
    m = sp.coo_matrix((w[nz], (np.asarray(users)[keep][nz].astype(np.int64), items[keep][nz].astype(np.int64))),
                      shape=(n_users, n_items), dtype=np.float32)
    return m.tocsr()


def fit(matrix: sp.csr_matrix, settings: Settings, progress: Callable[[float], None] | None = None) -> Model:
    """Fit implicit's ALS (defaults) on a (n_users, n_items) matrix."""
    from implicit.cpu.als import AlternatingLeastSquares
    import scipy.linalg  # noqa: F401 - load its BLAS before limiting the thread pools

    with threadpool_limits(1, "blas"):  # implicit checks the BLAS thread pools when the model is built
        als = AlternatingLeastSquares(random_state=settings.seed if settings.seed is not None else 0)
        callback = None
        if progress is not None:
            def callback(iteration, elapsed, loss):  # noqa: ARG001 - implicit's callback signature
                progress((iteration + 1) / als.iterations)
        als.fit(matrix, show_progress=False, callback=callback)
    return Model(arrays={"user_factors": np.ascontiguousarray(als.user_factors, dtype=np.float32),
                         "item_factors": np.ascontiguousarray(als.item_factors, dtype=np.float32)},
                 meta={"algorithm": "implicit.als", "factors": als.factors, "regularization": als.regularization,
                       "iterations": als.iterations})


_GRAM: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(item_factors) -> (item_factors, Y^T Y); bounded


def _gram(y: np.ndarray) -> np.ndarray:
    hit = _GRAM.get(id(y))
    if hit is None or hit[0] is not y:
        if len(_GRAM) >= 4:
            _GRAM.clear()
        hit = _GRAM[id(y)] = (y, y.T.astype(np.float64) @ y.astype(np.float64))
    return hit[1]


def fold_in(model: Model, items, types, ts, now, settings) -> npt.NDArray[np.float32]:
    """A user's factor vector from their interactions against the fixed item factors (one ALS half-step)."""
    y = model.arrays["item_factors"]
    reg = float(model.meta.get("regularization", 0.01))
    row = build_matrix(np.zeros(len(items), dtype=np.uint32), items, types, ts, 1, y.shape[0], now, settings)
    idx, conf = row.indices, row.data.astype(np.float64)
    yu = y[idx].astype(np.float64)
    a = _gram(y) + (yu.T * (conf - 1.0)) @ yu + reg * np.eye(y.shape[1])
    b = yu.T @ conf
    return np.linalg.solve(a, b).astype(np.float32)


def top_k(model: Model, user_vec, k, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The k best item indices for a user vector and their scores, best first, without ``exclude``."""
    scores = model.arrays["item_factors"] @ np.asarray(user_vec, dtype=np.float32)
    if exclude is not None and len(exclude):
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return order, scores[order]
