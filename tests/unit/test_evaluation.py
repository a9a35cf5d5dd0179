"""Holdout split and ranking metrics, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from pyrec_pg.ml.evaluation import ranking_metrics, split_random_per_user, top_k
from pyrec_pg.ml.recipes.base import Factors


def _matrix(counts: list[int], n_items: int = 40, seed: int = 1) -> sp.csr_matrix:
    """Users with the given numbers of distinct items, weights 1..9."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((len(counts), n_items))
    for u, n in enumerate(counts):
        dense[u, rng.choice(n_items, n, replace=False)] = rng.integers(1, 10, n)
    return sp.csr_matrix(dense)


COUNTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 18, 22, 30, 1, 2]


def test_split_partitions_the_matrix() -> None:
    m = _matrix(COUNTS)
    train, test = split_random_per_user(m, 0.25, seed=3)
    assert train.shape == test.shape == m.shape
    assert np.array_equal((train + test).toarray(), m.toarray())  # weights kept, nothing added
    assert train.multiply(test).nnz == 0  # disjoint
    assert train.nnz + test.nnz == m.nnz


def test_split_sizes_per_user() -> None:
    m = _matrix(COUNTS)
    train, test = split_random_per_user(m, 0.25, seed=3)
    n_train = np.diff(train.indptr)
    n_test = np.diff(test.indptr)
    for u, n in enumerate(COUNTS):
        if n >= 2:
            assert n_test[u] == max(1, round(0.25 * n)), (u, n)
            assert n_train[u] >= 1
        else:
            assert n_test[u] == 0
            assert n_train[u] == n


def test_split_keeps_one_training_interaction_even_with_large_holdout() -> None:
    m = _matrix([2, 3, 5])
    train, test = split_random_per_user(m, 0.9, seed=0)
    assert np.diff(train.indptr).tolist() == [1, 1, 1]
    assert np.diff(test.indptr).tolist() == [1, 2, 4]


def test_split_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    m = _matrix(COUNTS)
    a_train, a_test = split_random_per_user(m, 0.25, seed=7)
    b_train, b_test = split_random_per_user(m, 0.25, seed=7)
    assert np.array_equal(a_train.toarray(), b_train.toarray())
    assert np.array_equal(a_test.toarray(), b_test.toarray())
    _, c_test = split_random_per_user(m, 0.25, seed=8)
    assert not np.array_equal(a_test.toarray(), c_test.toarray())


def _factors(scores: np.ndarray) -> Factors:
    """Identity item vectors, so users' rows are their scores for each item."""
    n_items = scores.shape[1]
    return Factors(users=scores.astype(np.float32), items=np.eye(n_items, dtype=np.float32))


def _sparse(n_users: int, n_items: int, entries: dict[int, list[int]]) -> sp.csr_matrix:
    dense = np.zeros((n_users, n_items))
    for u, items in entries.items():
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


def test_top_k_excludes_training_items_and_breaks_ties_by_index() -> None:
    scores = np.array([[5, 4, 3, 2, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=np.float32)
    train = _sparse(2, 6, {0: [0, 2], 1: [1]})
    recs = top_k(_factors(scores), train, np.array([0, 1], dtype=np.int64), 3)
    assert recs.tolist() == [[1, 3, 4], [0, 2, 3]]


def test_ranking_metrics_by_hand() -> None:
    n = 30
    down = np.arange(n, 0, -1, dtype=np.float64)  # item 0 best
    up = np.arange(1, n + 1, dtype=np.float64)  # item 29 best
    scores = np.vstack([down, up, down, down])
    train = _sparse(4, n, {0: [0, 2], 1: [29], 2: [5]})
    test = _sparse(4, n, {0: [3, 7, 29], 1: [28], 3: [29]})  # user 2 has no test items
    got = ranking_metrics(_factors(scores), train, test)

    # ranked unseen items: user 0: 1, 3, 4, 5, ... (item j >= 3 at rank j - 1), so hits at
    # ranks 2 and 6 and item 29 at rank 28; user 1: 28 first; user 3: item 29 at rank 30
    def d(rank: int) -> float:
        return 1.0 / math.log2(rank + 1)

    ideal0 = d(1) + d(2) + d(3)
    expected = {
        "users_evaluated": 3,
        "precision@5": (1 / 5 + 1 / 5 + 0) / 3,
        "recall@5": (1 / 3 + 1 + 0) / 3,
        "ndcg@5": (d(2) / ideal0 + 1 + 0) / 3,
        "precision@10": (2 / 10 + 1 / 10 + 0) / 3,
        "recall@10": (2 / 3 + 1 + 0) / 3,
        "ndcg@10": ((d(2) + d(6)) / ideal0 + 1 + 0) / 3,
        "precision@25": (2 / 25 + 1 / 25 + 0) / 3,
        "recall@25": (2 / 3 + 1 + 0) / 3,
        "ndcg@25": ((d(2) + d(6)) / ideal0 + 1 + 0) / 3,
        "mrr@25": (1 / 2 + 1 + 0) / 3,
        "map@10": ((1 / 2 + 2 / 6) / 3 + 1 + 0) / 3,
        # top-10 lists: {1, 3..11}, {19..28}, {0..9}: 22 distinct items of 30
        "coverage@10": 22 / 30,
    }
    assert set(got) == set(expected)
    assert got["users_evaluated"] == 3
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_training_items_never_count_as_hits() -> None:
    # the user's best-scored item is also a test item but already in train: it is skipped
    n = 30
    scores = np.arange(n, 0, -1, dtype=np.float64)[None, :]
    train = _sparse(1, n, {0: [0]})
    test = _sparse(1, n, {0: [0, 1]})
    got = ranking_metrics(_factors(scores), train, test)
    assert got["mrr@25"] == 1.0  # item 1 is first, item 0 was excluded
    assert got["precision@5"] == pytest.approx(1 / 5)


def test_ranking_metrics_without_test_users() -> None:
    f = _factors(np.ones((2, 4)))
    empty = sp.csr_matrix((2, 4))
    assert ranking_metrics(f, empty, empty) == {"users_evaluated": 0}


def test_users_with_fewer_unseen_items_than_k_get_padding_not_training_items() -> None:
    f = Factors(users=np.array([[6, 5, 4, 3, 2, 1]], np.float32), items=np.eye(6, dtype=np.float32))
    train = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0]], float))
    test = sp.csr_matrix(np.array([[0, 0, 0, 1, 0, 0]], float))
    assert top_k(f, train, np.array([0]), 6).tolist() == [[3, 4, 5, -1, -1, -1]]
    assert ranking_metrics(f, train, test)["coverage@10"] == 0.5
