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
