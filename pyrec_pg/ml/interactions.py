"""The user-item matrix recipes train on, with the ids of its rows and columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    users: npt.NDArray[np.str_]  # row index -> user id as text
    items: npt.NDArray[np.str_]  # column index -> item id as text
    matrix: sp.csr_matrix  # (users x items) summed event weights
    rows_read: int
    times: sp.csr_matrix | None = None  # same structure: epoch seconds of each pair's last event
    newest: float = 0.0  # the epoch recency weights were computed against (0: none)
    # per user: distinct items over all their rows, as serving counts live history to notice
    # new events (differs from the matrix's row counts when options leave events out)
    distinct_items: npt.NDArray[np.int32] | None = None
    # the (user, item) pairs trained on, when `matrix` holds only a sample of the users' rows
    # (the pairs stayed in another engine, Spark); None: the matrix's nonzeros
    pairs: int | None = None

    @property
    def n_pairs(self) -> int:
        return int(self.matrix.nnz) if self.pairs is None else self.pairs


def times_matrix(
    t: npt.NDArray[np.float64],
    u: npt.NDArray[np.int64],
    i: npt.NDArray[np.int64],
    shape: tuple[int, int],
) -> sp.csr_matrix:
    """Each (u, i) pair's last event time (epoch seconds) as a matrix shaped like the
    weights."""
    times = sp.csr_matrix((t + 1.0, (u, i)), shape=shape)
    times.data -= 1.0  # +1 above keeps epoch 0 from being dropped as an explicit zero
    return times


def build(users: list[Any], items: list[Any], weights: list[float], rows_read: int) -> Interactions:
    """Index distinct ids (sorted, so indices are reproducible) and assemble the CSR matrix."""
    user_ids, u = np.unique(np.asarray(users, dtype=str), return_inverse=True)
    item_ids, i = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    w = np.asarray(weights, dtype=np.float64)
    matrix = sp.csr_matrix((w, (u, i)), shape=(user_ids.size, item_ids.size))
    matrix.sum_duplicates()
    return Interactions(users=user_ids, items=item_ids, matrix=matrix, rows_read=rows_read)
