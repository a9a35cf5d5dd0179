"""Top-k selection by inner product with per-row and global exclusions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pyrec_pg.ml.topk import top_k


def test_top_k_orders_by_inner_product_and_skips_excluded_items() -> None:
    items = np.array([[1.0], [3.0], [2.0], [5.0]], dtype=np.float32)
    query = np.array([[1.0], [-1.0]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[0, 0, 0, 1], [0, 0, 0, 0]], dtype=np.float32))
    codes, scores = top_k(items, query, 3, seen, np.array([0], dtype=np.int32))
    assert codes.tolist() == [[1, 2, -1], [2, 1, 3]]
    assert scores[0, :2].tolist() == [3.0, 2.0]
    assert scores[1].tolist() == [-2.0, -3.0, -5.0]


def test_top_k_matches_implicit_called_on_the_arrays() -> None:
    # top_k hands implicit a query whose batches score into reused buffers: the answer must
    # be implicit's own on plain arrays, bit for bit, across batches, threads and exclusions
    from implicit.cpu.topk import topk

    rng = np.random.default_rng(7)
    items = rng.standard_normal((3000, 16), dtype=np.float32)
    query = rng.standard_normal((1234, 16), dtype=np.float32)
    seen = sp.csr_matrix(sp.random(1234, 3000, density=0.01, random_state=3, dtype=np.float32))
    exclude = np.array([5, 17, 2999], dtype=np.int32)
    codes, scores = top_k(items, query, 20, seen, exclude, threads=2)
    want_codes, want_scores = topk(
        items, query, 20, filter_query_items=seen, filter_items=exclude, num_threads=2
    )
    assert np.array_equal(codes, want_codes)
    assert np.array_equal(scores, want_scores)
    assert not np.isin(codes, exclude).any()
    for r in range(0, 1234, 97):
        assert not np.isin(codes[r], seen[r].indices).any()
