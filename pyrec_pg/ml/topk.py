"""Top-k items per query row by inner product, with per-row and global exclusions."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Codes = npt.NDArray[np.int32]
Scores = npt.NDArray[np.float32]
_ROWS = 1024  # numpy path: rows scored at once


class _Row:
    __slots__ = ("indices",)

    def __init__(self, indices: npt.NDArray[np.int32]) -> None:
        self.indices = indices


class _RowIndices:
    """What implicit's topk reads per query row (`m[i].indices`), as a numpy slice: slicing a
    scipy row per user costs ~100x more and held the GIL for a third of a batch's scoring."""

    def __init__(self, m: sp.csr_matrix) -> None:
        self.indptr, self.indices = m.indptr, m.indices

    def __getitem__(self, i: int) -> _Row:
        return _Row(self.indices[self.indptr[i] : self.indptr[i + 1]])


class _Block:
    """A batch of query rows whose product with the items lands in its thread's buffer."""

    __slots__ = ("buffers", "rows")

    def __init__(self, rows: npt.NDArray[np.float32], buffers: dict[int, Scores]) -> None:
        self.rows, self.buffers = rows, buffers

    def dot(self, items_t: npt.NDArray[np.float32]) -> Scores:
        shape = (self.rows.shape[0], items_t.shape[1])
        me = threading.get_ident()
        buffer = self.buffers.get(me)
        if buffer is None or buffer.shape[0] < shape[0] or buffer.shape[1] != shape[1]:
            buffer = self.buffers[me] = np.empty(shape, dtype=np.float32)
        out = buffer[: shape[0]]
        np.dot(self.rows, items_t, out=out)
        return out


class _Query:
    """The query rows as implicit's top-k reads them (`shape`, `dtype`, `query[a:b].dot(..)`),
    each batch scored into a buffer its thread reuses. implicit allocates a fresh (batch x
    items) array per batch instead: at 100k items that is 40 MB, mapped and zeroed by the
    kernel every 100 rows, a sixth of a batch job's scoring time (2.65 s vs 3.2 s for 20k x
    100k on 2 cores). Same BLAS call, so the scores are the same bit for bit."""

    def __init__(self, rows: npt.NDArray[np.float32]) -> None:
        self.rows, self.shape, self.dtype = rows, rows.shape, rows.dtype
        self.buffers: dict[int, Scores] = {}

    def __getitem__(self, rows: slice) -> _Block:
        return _Block(self.rows[rows], self.buffers)


def top_k(
    items: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    k: int,
    exclude_rows: sp.csr_matrix | None,
    exclude: npt.NDArray[np.int32],
    threads: int = 0,
) -> tuple[Codes, Scores]:
    """(codes, scores), each (rows x k), best first; code -1 where a row has fewer than k
    allowed items. `exclude_rows[r]` holds row r's excluded item codes, `exclude` everyone's.

    implicit's compiled selection (a heap per row, threads over row blocks) does the work
    when it imports; a numpy argpartition per block otherwise (about 10x slower).
    """
    n = items.shape[0]
    rows = query.shape[0]
    codes = np.full((rows, k), -1, dtype=np.int32)
    scores = np.full((rows, k), -np.inf, dtype=np.float32)
    kk = min(k, n)
    if rows == 0 or kk == 0:
        return codes, scores
    items = np.ascontiguousarray(items, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    try:
        from implicit.cpu.topk import topk
    except ImportError:
        got_codes, got_scores = _numpy_top_k(items, query, kk, exclude_rows, exclude)
    else:
        from threadpoolctl import threadpool_limits

        # its threads each multiply a block with BLAS: a multithreaded BLAS underneath would
        # run threads x BLAS threads on the cores (4-5x slower measured on 2 cores)
        with threadpool_limits(1, "blas"):
            got_codes, got_scores = topk(
                items,
                _Query(query),
                kk,
                filter_query_items=None if exclude_rows is None else _RowIndices(exclude_rows),
                filter_items=exclude if exclude.size else None,
                num_threads=threads,
            )
    # excluded items come back scored -max (implicit) or -inf (numpy) when rows run short
    valid = got_scores > np.finfo(np.float32).min
    codes[:, :kk] = np.where(valid, got_codes, -1)
    scores[:, :kk] = np.where(valid, got_scores, -np.inf)
    return codes, scores


def _numpy_top_k(
    items: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    k: int,
    exclude_rows: sp.csr_matrix | None,
    exclude: npt.NDArray[np.int32],
) -> tuple[Codes, Scores]:
    rows = query.shape[0]
    codes = np.empty((rows, k), dtype=np.int32)
    scores = np.empty((rows, k), dtype=np.float32)
    for lo in range(0, rows, _ROWS):
        hi = min(lo + _ROWS, rows)
        s: npt.NDArray[Any] = query[lo:hi] @ items.T
        if exclude_rows is not None:
            block = exclude_rows[lo:hi].tocoo()
            s[block.row, block.col] = -np.inf
        if exclude.size:
            s[:, exclude] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        codes[lo:hi] = np.take_along_axis(part, order, axis=1)
        scores[lo:hi] = np.take_along_axis(top, order, axis=1)
    return codes, scores
