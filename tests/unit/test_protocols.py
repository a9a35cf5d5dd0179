"""Evaluation protocols random_per_item and time, holdout_metrics, and top-k metrics details."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.evaluation import (
    holdout_metrics,
    ranking_metrics,
    split,
    split_by_time,
    split_random_per_user,
    top_k,
)
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.recipes.popularity import Popularity

ITEM_COUNTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 27, 1, 2]  # users per item
N_USERS = 30


def _by_item(counts: list[int] = ITEM_COUNTS, seed: int = 1) -> sp.csr_matrix:
    """Items with the given numbers of distinct users, weights 1..9."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((N_USERS, len(counts)))
    for i, n in enumerate(counts):
        dense[rng.choice(N_USERS, n, replace=False), i] = rng.integers(1, 10, n)
    return sp.csr_matrix(dense)


def _dense(m: sp.csr_matrix) -> npt.NDArray[np.float64]:
    return np.asarray(m.toarray(), dtype=np.float64)


# --- random_per_item ---------------------------------------------------------------------


def test_random_per_item_partitions_the_matrix() -> None:
    m = _by_item()
    train, test = split(m, "random_per_item", 0.25, seed=3)
    assert isinstance(train, sp.csr_matrix) and isinstance(test, sp.csr_matrix)
    assert train.shape == test.shape == m.shape
    assert np.array_equal(_dense(train) + _dense(test), _dense(m))  # weights kept
    assert train.multiply(test).nnz == 0
    assert train.nnz + test.nnz == m.nnz


@pytest.mark.parametrize("holdout", [0.25, 0.5, 0.1])
def test_random_per_item_holds_out_a_share_of_each_items_users(holdout: float) -> None:
    m = _by_item()
    train, test = split(m, "random_per_item", holdout, seed=3)
    n_train = np.diff(sp.csc_matrix(train).indptr)
    n_test = np.diff(sp.csc_matrix(test).indptr)
    for i, n in enumerate(ITEM_COUNTS):
        if n >= 2:
            want = min(n - 1, max(1, round(holdout * n)))
            assert n_test[i] == want, (i, n)
            assert n_train[i] == n - want >= 1
            assert abs(n_test[i] - holdout * n) <= 1, (i, n)
        else:  # items with a single interaction keep it for training
            assert (n_test[i], n_train[i]) == (0, n)


def test_random_per_item_keeps_one_training_user_even_with_a_large_holdout() -> None:
    m = _by_item([2, 3, 5, 1])
    train, test = split(m, "random_per_item", 0.9, seed=0)
    assert np.diff(sp.csc_matrix(train).indptr).tolist() == [1, 1, 1, 1]
    assert np.diff(sp.csc_matrix(test).indptr).tolist() == [1, 2, 4, 0]


def test_random_per_item_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    m = _by_item()
    a_train, a_test = split(m, "random_per_item", 0.25, seed=7)
    b_train, b_test = split(m, "random_per_item", 0.25, seed=7)
    assert np.array_equal(_dense(a_train), _dense(b_train))
    assert np.array_equal(_dense(a_test), _dense(b_test))
    _, c_test = split(m, "random_per_item", 0.25, seed=8)
    assert not np.array_equal(_dense(a_test), _dense(c_test))


def test_random_per_item_is_not_random_per_user() -> None:
    m = _by_item()
    _, per_item = split(m, "random_per_item", 0.25, seed=3)
    _, per_user = split(m, "random_per_user", 0.25, seed=3)
    assert not np.array_equal(_dense(per_item), _dense(per_user))


def test_random_per_user_through_split() -> None:
    m = _by_item()
    a_train, a_test = split(m, "random_per_user", 0.25, seed=2)
    b_train, b_test = split_random_per_user(m, 0.25, 2)
    assert np.array_equal(_dense(a_train), _dense(b_train))
    assert np.array_equal(_dense(a_test), _dense(b_test))


# --- time --------------------------------------------------------------------------------


def _timed(
    seed: int = 0, n_users: int = 25, n_items: int = 40
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """A weighted matrix and a times matrix of the same pattern, built in another order."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.3
    rows, cols = np.nonzero(mask)
    weights = rng.integers(1, 10, rows.size).astype(np.float64)
    epochs = 8.8e8 + rng.permutation(rows.size).astype(np.float64) * 3600.0  # distinct
    m = sp.csr_matrix((weights, (rows, cols)), shape=mask.shape)
    order = rng.permutation(rows.size)  # the times arrive shuffled
    t = sp.csr_matrix((epochs[order], (rows[order], cols[order])), shape=mask.shape)
    return m, t


@pytest.mark.parametrize("holdout", [0.2, 0.25, 0.5])
def test_time_holds_out_the_newest_share(holdout: float) -> None:
    m, t = _timed()
    train, test = split(m, "time", holdout, seed=0, times=t)
    assert train.shape == test.shape == m.shape
    assert np.array_equal(_dense(train) + _dense(test), _dense(m))
    assert train.multiply(test).nnz == 0
    assert abs(test.nnz - holdout * m.nnz) <= 1, (test.nnz, m.nnz)
    times = _dense(t)
    test_times = times[_dense(test) > 0]
    train_times = times[_dense(train) > 0]
    assert test_times.min() > train_times.max()
    # and they are exactly the newest test.nnz interactions
    newest = np.sort(t.data)[::-1][: test.nnz]
    assert sorted(test_times.tolist()) == sorted(newest.tolist())


def test_time_keeps_each_pairs_weight_with_its_own_time() -> None:
    m, t = _timed(seed=4)
    _, test = split(m, "time", 0.3, seed=0, times=t)
    rows, cols = test.nonzero()
    assert np.array_equal(np.asarray(test[rows, cols]).ravel(), np.asarray(m[rows, cols]).ravel())
    cutoff = np.quantile(t.data, 0.7)
    assert (np.asarray(t[rows, cols]).ravel() > cutoff).all()


def test_time_ignores_the_seed() -> None:
    m, t = _timed()
    a = split(m, "time", 0.25, seed=0, times=t)[1]
    b = split(m, "time", 0.25, seed=99, times=t)[1]
    assert np.array_equal(_dense(a), _dense(b))


def test_time_with_ties_at_the_cutoff_keeps_them_for_training() -> None:
    m = sp.csr_matrix(np.ones((2, 5)))
    t = sp.csr_matrix(np.array([[1.0, 2.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0, 4.0]]))
    train, test = split(m, "time", 0.2, seed=0, times=t)  # the 80% quantile is 3
    assert _dense(test).tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
    assert train.nnz == 9


@pytest.mark.parametrize(
    "times",
    [
        None,
        sp.csr_matrix((3, 4)),  # no times at all
        sp.csr_matrix(np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0]])),
    ],
    ids=["none", "empty", "other-pattern"],
)
def test_time_needs_a_timestamp_for_every_pair(times: sp.csr_matrix | None) -> None:
    m = sp.csr_matrix(np.array([[1.0, 0, 2, 0], [0, 1, 0, 0], [3, 0, 0, 1]]))
    with pytest.raises(InvalidParameter) as info:
        split(m, "time", 0.2, seed=0, times=times)
    assert info.value.sqlstate == "22023"
    assert info.value.message == "the time protocol needs a timestamp column"
    assert info.value.hint is not None and '"timestamp"' in info.value.hint


def test_time_with_all_times_zero_is_like_no_timestamp() -> None:
    # interactions.load ships time 0 for every pair when the model has no timestamp column
    m = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]]))
    zeros = sp.csr_matrix((np.zeros(3), ([0, 0, 1], [0, 1, 0])), shape=(2, 2))
    assert zeros.nnz == 3
    with pytest.raises(InvalidParameter):
        split_by_time(m, zeros, 0.25)


@pytest.mark.parametrize("protocol", ["leave_one_out", "", "Random_Per_User"])
def test_unknown_protocol_raises(protocol: str) -> None:
    m = _by_item()
    with pytest.raises(ValueError, match=f"unknown protocol {protocol}"):
        split(m, protocol, 0.25, seed=0)


# --- holdout_metrics ---------------------------------------------------------------------


def _interactions(m: sp.csr_matrix, times: sp.csr_matrix | None) -> Interactions:
    return Interactions(
        users=np.array([str(u) for u in range(m.shape[0])]),
        items=np.array([str(i) for i in range(m.shape[1])]),
        matrix=m,
        rows_read=m.nnz,
        times=times,
    )


@pytest.mark.parametrize("protocol", ["random_per_user", "random_per_item", "time"])
def test_holdout_metrics_scores_the_recipe_beside_popularity(protocol: str) -> None:
    m, t = _timed(seed=2, n_users=60, n_items=50)
    data = _interactions(m, t)
    recipe = Als(factors=4, iterations=3)
    got = holdout_metrics(recipe, data, protocol, 0.25, 5)
    train, test = split(m, protocol, 0.25, 5, t)
    assert got == {
        **ranking_metrics(recipe.fit(train), train, test),
        "protocol": protocol,
        "holdout": 0.25,
        "seed": 5,
        "baseline": {"popularity": ranking_metrics(Popularity().fit(train), train, test)},
    }


def test_holdout_metrics_time_protocol_without_times() -> None:
    m, _ = _timed()
    with pytest.raises(InvalidParameter, match="timestamp"):
        holdout_metrics(Popularity(), _interactions(m, None), "time", 0.2, 0)


# --- ranking_metrics and top_k details ---------------------------------------------------


def _identity(scores: npt.NDArray[np.float64]) -> Factors:
    """Identity item vectors, so users' rows are their scores for each item."""
    return Factors(users=scores.astype(np.float32), items=np.eye(scores.shape[1], dtype=np.float32))


def _pattern(n_users: int, n_items: int, entries: dict[int, list[int]]) -> sp.csr_matrix:
    dense = np.zeros((n_users, n_items))
    for u, items in entries.items():
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


N = 40
DOWN = np.arange(N, 0, -1, dtype=np.float64)  # item 0 best, then 1, 2, ...


def test_ranking_metrics_with_only_k_10() -> None:
    scores = np.vstack([DOWN, DOWN])
    train = _pattern(2, N, {0: [0], 1: [1]})
    test = _pattern(2, N, {0: [1, 4], 1: [0, 2, 3]})
    got = ranking_metrics(_identity(scores), train, test, ks=(10,))
    assert set(got) == {
        "users_evaluated",
        "precision@10",
        "recall@10",
        "ndcg@10",
        "mrr@25",
        "map@10",
        "coverage@10",
    }
    assert got["users_evaluated"] == 2

    def d(rank: int) -> float:
        return 1.0 / math.log2(rank + 1)

    # user 0 ranks 1, 2, 3, ...: hits at ranks 1 and 4; user 1 ranks 0, 2, 3: hits 1, 2, 3
    assert got["precision@10"] == pytest.approx((2 / 10 + 3 / 10) / 2, abs=1e-6)
    assert got["recall@10"] == pytest.approx(1.0, abs=1e-6)
    ndcg0 = (d(1) + d(4)) / (d(1) + d(2))
    assert got["ndcg@10"] == pytest.approx((ndcg0 + 1.0) / 2, abs=1e-6)
    assert got["map@10"] == pytest.approx(((1 + 2 / 4) / 2 + 1.0) / 2, abs=1e-6)
    assert got["coverage@10"] == pytest.approx(11 / N, abs=1e-6)  # items 0..10


def test_users_without_test_items_are_skipped() -> None:
    scores = np.vstack([DOWN, DOWN[::-1], DOWN, DOWN])
    train = _pattern(4, N, {0: [0], 1: [39], 2: [2, 3], 3: [5]})
    test = _pattern(4, N, {0: [1, 20], 3: [0]})  # users 1 and 2 have nothing held out
    got = ranking_metrics(_identity(scores), train, test, ks=(10,))
    assert got["users_evaluated"] == 2
    alone = ranking_metrics(
        _identity(scores[[0, 3]]),
        sp.csr_matrix(train[[0, 3]]),
        sp.csr_matrix(test[[0, 3]]),
        ks=(10,),
    )
    for key in ("precision@10", "recall@10", "ndcg@10", "mrr@25", "map@10"):
        assert got[key] == alone[key], key
    assert got["precision@10"] == pytest.approx((1 / 10 + 1 / 10) / 2, abs=1e-6)


def test_no_test_users_with_k_10() -> None:
    f = _identity(np.ones((3, N)))
    assert ranking_metrics(f, _pattern(3, N, {0: [1]}), sp.csr_matrix((3, N)), ks=(10,)) == {
        "users_evaluated": 0
    }


def test_fewer_items_than_k() -> None:
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    train = _pattern(1, 4, {0: [0]})
    test = _pattern(1, 4, {0: [3]})
    got = ranking_metrics(_identity(scores), train, test, ks=(10,))
    # three unseen items, the held-out one third: precision counts the empty slots as misses
    assert got["precision@10"] == pytest.approx(1 / 10)
    assert got["recall@10"] == 1.0 and got["mrr@25"] == pytest.approx(1 / 3)
    assert got["ndcg@10"] == pytest.approx(0.5)  # 1 / log2(4)


def test_mrr_at_25_with_ks_10_still_looks_at_25_items() -> None:
    scores = DOWN[None, :]
    train = sp.csr_matrix((1, N))
    test = _pattern(1, N, {0: [14]})  # first hit at rank 15
    full = ranking_metrics(_identity(scores), train, test)
    assert full["mrr@25"] == pytest.approx(1 / 15, abs=1e-6)
    got = ranking_metrics(_identity(scores), train, test, ks=(10,))
    assert got.get("mrr@25", 1 / 15) == pytest.approx(1 / 15, abs=1e-6)


def test_top_k_breaks_ties_at_the_cut_by_item_index() -> None:
    rng = np.random.default_rng(0)
    n, k = 60, 5
    for _ in range(20):
        scores = rng.integers(0, 4, (1, n)).astype(np.float64)
        got = top_k(_identity(scores), sp.csr_matrix((1, n)), np.array([0], np.int64), k)
        want = np.lexsort((np.arange(n), -scores[0]))[:k]
        assert got[0].tolist() == want.tolist(), scores[0][got[0]]


def test_top_k_returns_a_best_k_even_with_ties() -> None:
    rng = np.random.default_rng(0)
    n, k = 60, 5
    for _ in range(20):
        scores = rng.integers(0, 4, (2, n)).astype(np.float64)
        train = _pattern(2, n, {0: [int(np.argmax(scores[0]))]})
        got = top_k(_identity(scores), train, np.array([0, 1], np.int64), k)
        for u in range(2):
            allowed = np.ones(n, bool)
            allowed[train[u].indices] = False
            best = np.sort(scores[u][allowed])[::-1][:k]
            assert scores[u][got[u]].tolist() == best.tolist()
            assert allowed[got[u]].all()
            # inside the k: best first, equal scores by index
            assert got[u].tolist() == sorted(got[u].tolist(), key=lambda i: (-scores[u][i], i))
