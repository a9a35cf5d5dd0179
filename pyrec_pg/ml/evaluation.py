"""Offline evaluation: holdout splits and top-k ranking metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.base import Factors, Recipe
from pyrec_pg.ml.recipes.popularity import Popularity

KS = (5, 10, 25)
METRIC_NAMES = (  # what ranking_metrics reports with the default KS
    "precision@5",
    "precision@10",
    "precision@25",
    "recall@10",
    "recall@25",
    "ndcg@5",
    "ndcg@10",
    "ndcg@25",
    "mrr@25",
    "map@10",
    "coverage@10",
)
_CHUNK = 1024  # users scored per matrix product


def split_random_per_user(
    matrix: sp.csr_matrix, holdout: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out round(holdout * n) random interactions of every user with at least 2."""
    m = sp.csr_matrix(matrix)
    m.sort_indices()
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    keys = np.random.default_rng(seed).random(m.nnz)
    order = np.lexsort((keys, rows))  # random order inside each user's row
    position = np.empty(m.nnz, dtype=np.int64)
    position[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    n_test = np.where(counts >= 2, np.maximum(1, np.rint(counts * holdout)), 0).astype(np.int64)
    n_test = np.minimum(n_test, counts - 1)  # every user keeps one training interaction
    is_test = position < np.repeat(n_test, counts)
    coo = m.tocoo()
    shape = m.shape

    def part(mask: npt.NDArray[np.bool_]) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=shape)

    return part(~is_test), part(is_test)


def top_k(
    factors: Factors,
    train: sp.csr_matrix,
    users: npt.NDArray[np.int64],
    k: int,
    fallback: Factors | None = None,
) -> npt.NDArray[np.int64]:
    """Top-k item indices per user: highest score first, ties by item index, training items
    excluded, -1 padding short lists. With a `fallback` (popularity) it scores as recommend()
    serves a model trained on `train`: users without training data get the fallback's
    answer and items without training data are never recommended."""
    train = sp.csr_matrix(train)
    unknown_items = np.diff(sp.csc_matrix(train).indptr) == 0 if fallback is not None else None
    out = np.empty((users.size, k), dtype=np.int64)
    for start in range(0, users.size, _CHUNK):
        chunk = users[start : start + _CHUNK]
        scores = factors.users[chunk] @ factors.items.T
        seen = train[chunk]
        if fallback is not None:
            cold = np.diff(seen.indptr) == 0
            if cold.any():
                scores[cold] = fallback.users[chunk[cold]] @ fallback.items.T
        scores[seen.nonzero()] = -np.inf
        if unknown_items is not None:
            scores[:, unknown_items] = -np.inf
        out[start : start + chunk.size] = _best(scores, k)
    return out


def _best(scores: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.int64]:
    """Indices of each row's k highest scores, ties broken by index (also at the cut)."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
    _, cols = np.nonzero(chosen)  # row-major: exactly k per row, in index order
    part = cols.reshape(scores.shape[0], k)
    ordered = np.take_along_axis(scores, part, axis=1)
    idx = np.lexsort((part, -ordered), axis=1)
    best = np.take_along_axis(part, idx, axis=1)
    best[np.take_along_axis(ordered, idx, axis=1) == -np.inf] = -1  # fewer than k allowed
    return best


def per_user_metrics(
    factors: Factors,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: tuple[int, ...] = KS,
    fallback: Factors | None = None,
) -> tuple[dict[str, npt.NDArray[np.float64]], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(metric -> one value per evaluated user, those users' rows, their top 10 item codes)
    for precision@k, recall@k, ndcg@k, mrr@25 and map@10, over users with test items."""
    test = sp.csr_matrix(test)
    users = np.flatnonzero(np.diff(test.indptr)).astype(np.int64)
    n_items = factors.items.shape[0]
    kmax = min(max(*ks, 25), n_items)  # mrr@25 and map@10 look at 25 and 10 items whatever ks
    if users.size == 0 or kmax == 0:
        return {}, users, np.zeros((users.size, 0), dtype=np.int64)
    recs = top_k(factors, train, users, kmax, fallback)
    relevant = np.zeros((users.size, kmax), dtype=bool)
    for j, u in enumerate(users):
        truth = test.indices[test.indptr[u] : test.indptr[u + 1]]
        relevant[j] = np.isin(recs[j], truth)
    n_rel = np.diff(test.indptr)[users].astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    out: dict[str, npt.NDArray[np.float64]] = {}
    for k in ks:
        kk = min(k, kmax)
        hits = relevant[:, :kk].sum(axis=1)
        out[f"precision@{k}"] = hits / k
        out[f"recall@{k}"] = hits / n_rel
        dcg = (relevant[:, :kk] * discounts[:kk]).sum(axis=1)
        ideal = np.array([discounts[: int(min(n, kk))].sum() for n in n_rel])
        out[f"ndcg@{k}"] = dcg / ideal
    k = min(25, kmax)
    first = np.where(relevant[:, :k].any(axis=1), relevant[:, :k].argmax(axis=1) + 1, 0)
    out["mrr@25"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    k = min(10, kmax)
    precision_at = np.cumsum(relevant[:, :k], axis=1) / np.arange(1, k + 1)
    out["map@10"] = (precision_at * relevant[:, :k]).sum(axis=1) / np.minimum(n_rel, k)
    return out, users, recs[:, :k]


def coverage(recs: npt.NDArray[np.int64], n_items: int) -> float:
    """Share of the catalog that appears in any of the recommendation lists."""
    shown = np.unique(recs)
    return float(shown[shown >= 0].size / n_items) if n_items else 0.0


def ranking_metrics(
    factors: Factors,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: tuple[int, ...] = KS,
    fallback: Factors | None = None,
) -> dict[str, Any]:
    """precision@k, recall@k, ndcg@k, mrr@25, map@10 and coverage@10 over users with test items."""
    per_user, users, top10 = per_user_metrics(factors, train, test, ks, fallback)
    if not per_user:
        return {"users_evaluated": 0}
    out: dict[str, Any] = {"users_evaluated": int(users.size)}
    out.update({name: float(np.mean(values)) for name, values in per_user.items()})
    out["coverage@10"] = coverage(top10, factors.items.shape[0])
    return {key: round(v, 6) if isinstance(v, float) else v for key, v in out.items()}


def split(
    matrix: sp.csr_matrix,
    protocol: str,
    holdout: float,
    seed: int,
    times: sp.csr_matrix | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Train and test matrices for one of the protocols of docs/design.md, section 5."""
    if protocol == "random_per_user":
        return split_random_per_user(matrix, holdout, seed)
    if protocol == "random_per_item":
        train_t, test_t = split_random_per_user(sp.csr_matrix(matrix.T), holdout, seed)
        return sp.csr_matrix(train_t.T), sp.csr_matrix(test_t.T)
    if protocol == "time":
        return split_by_time(matrix, times, holdout)
    raise ValueError(f"unknown protocol {protocol}")


def split_by_time(
    matrix: sp.csr_matrix, times: sp.csr_matrix | None, holdout: float
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The newest `holdout` share of interactions (by their last event) is the test set."""
    if times is None or times.nnz != matrix.nnz or not times.data.any():
        raise InvalidParameter(
            "the time protocol needs a timestamp column",
            hint='map one with options => \'{"columns": {"timestamp": "<column>"}}\'',
        )
    coo, shape = sp.coo_matrix(matrix), matrix.shape
    t = sp.coo_matrix(times)
    cutoff = np.quantile(t.data, 1.0 - holdout)
    # align each pair's time with its weight: both sorted by (row, column)
    order_m = np.lexsort((coo.col, coo.row))
    order_t = np.lexsort((t.col, t.row))
    mask = np.empty(coo.nnz, dtype=bool)
    mask[order_m] = t.data[order_t] > cutoff

    def part(sel: npt.NDArray[np.bool_]) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])), shape=shape)

    return part(~mask), part(mask)


def holdout_metrics(
    recipe: Recipe, data: Interactions, protocol: str, holdout: float, seed: int
) -> dict[str, Any]:
    """Fit `recipe` on the training part of a split and score it, beside popularity."""
    train, test = split(data.matrix, protocol, holdout, seed, data.times)
    popular = Popularity().fit(train)
    # users absent from the training part get popular items, as recommend() serves them
    metrics = ranking_metrics(recipe.fit(train), train, test, fallback=popular)
    baseline = ranking_metrics(popular, train, test)
    metrics.update(protocol=protocol, holdout=holdout, seed=seed, baseline={"popularity": baseline})
    return metrics
