"""interactions.build and the reading's id coding (_distinct, hashed ids, chunks): id
indexing and the summed matrix."""

from __future__ import annotations

import numpy as np
import pytest

from pyrec_pg.ml.interactions import build
from pyrec_pg.store.interactions import Hashed, _coder, _distinct, _distinct_of, _hashed_ids


class _Distinct:
    """A database whose DISTINCT query returns `ids` in text order, with the given hashes."""

    def __init__(self, hashes: dict[str, int]) -> None:
        self.ids = sorted(hashes)
        self.hashes = hashes

    def one(self, sql: str) -> dict[str, list[object]]:
        return {"ids": list(self.ids), "h": [self.hashes[i] for i in self.ids]}


def test_hashed_ids_resolve_to_their_text_in_text_order() -> None:
    hashes = {"b": 40, "a": -7, "10": 99, "9": 3, "z": 12}
    rows = ["z", "10", "a", "z", "b", "9"]
    raw = np.asarray([hashes[k] for k in rows], dtype=np.int64)
    found = _hashed_ids(_Distinct(hashes), "t", "c")  # type: ignore[arg-type]
    assert found is not None
    ids = found.ids
    assert ids == ["10", "9", "a", "b", "z"]  # text order
    codes = found.codes(raw)
    assert codes is not None and codes.dtype == np.int32
    assert [ids[c] for c in codes] == rows


def test_a_hash_collision_or_an_unknown_hash_gives_up() -> None:
    collide = {"a": 5, "b": 5, "c": 9}
    assert _hashed_ids(_Distinct(collide), "t", "c") is None  # type: ignore[arg-type]
    found = _hashed_ids(_Distinct({"a": 5, "c": 9}), "t", "c")  # type: ignore[arg-type]
    assert found is not None
    unknown = np.asarray([5, 7], dtype=np.int64)  # a row whose id the first read lacks
    assert found.codes(unknown) is None


def test_hash_lookup_finds_every_listed_hash_among_many() -> None:
    rng = np.random.default_rng(3)
    hashes = np.unique(rng.integers(-(2**63), 2**63 - 1, 50_000, dtype=np.int64))
    hashes = np.concatenate([hashes, [-(2**63), 2**63 - 1, 0, -1]])  # the extremes too
    hashes = np.unique(hashes)
    rng.shuffle(hashes)
    found = Hashed([str(k) for k in range(hashes.size)], hashes)
    raw = hashes[rng.integers(0, hashes.size, 200_000)]
    codes = found.codes(raw)
    assert codes is not None
    assert np.array_equal(hashes[codes], raw)
    assert found.codes(np.asarray([12345], dtype=np.int64)) is None or 12345 in hashes


@pytest.mark.parametrize(
    "chunks",
    [
        [[5, 3, 5], [9, 3, 3]],  # dense: a presence table
        [[-2, 7], [], [-2, 0]],  # negative ids, an empty chunk
        [[1, 10**15], [1, 42]],  # sparse: the union of each chunk's distinct values
        [[7]],
    ],
)
def test_chunked_ids_code_as_numpy_unique_in_any_rank(chunks: list[list[int]]) -> None:
    arrays = [np.asarray(c, dtype=np.int64) for c in chunks]
    every = np.concatenate(arrays)
    want, inverse = np.unique(every, return_inverse=True)
    distinct = _distinct_of(arrays)
    assert distinct.tolist() == want.tolist()
    rank = np.arange(distinct.size, dtype=np.int32)[::-1].copy()  # e.g. the text order
    code = _coder(distinct, rank)
    got = np.concatenate([code(a) for a in arrays])
    assert got.tolist() == rank[inverse.reshape(-1)].tolist()


def test_build_indexes_sorted_distinct_ids_and_sums_duplicates() -> None:
    data = build(
        ["b", "a", "b", "c", "a"],
        ["x", "y", "x", "x", "y"],
        [1.0, 2.0, 3.0, 4.0, 0.5],
        rows_read=17,
    )
    assert data.users.tolist() == ["a", "b", "c"]
    assert data.items.tolist() == ["x", "y"]
    assert data.rows_read == 17
    assert data.matrix.shape == (3, 2)
    assert data.matrix.nnz == 3  # (b, x) and (a, y) each stored once
    assert data.matrix.toarray().tolist() == [[0.0, 2.5], [4.0, 0.0], [4.0, 0.0]]
    assert data.matrix.dtype == np.float64


def test_build_turns_ids_into_text_sorted_as_text() -> None:
    data = build([10, 9, 2], [1, 1, 1], [1.0, 1.0, 1.0], rows_read=3)
    assert data.users.tolist() == ["10", "2", "9"]
    assert data.items.tolist() == ["1"]
    assert data.matrix.toarray().ravel().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "raw",
    [
        [5, 3, 5, 9, 3, 3],  # dense
        [-2, 7, -2, 0],  # negative ids
        [1, 10**15, 1, 42],  # sparse: np.unique's path
        [7],
        [],
    ],
)
def test_distinct_matches_numpy_unique(raw: list[int]) -> None:
    a = np.asarray(raw, dtype=np.int64)
    distinct, codes = _distinct(a)
    want, inverse = np.unique(a, return_inverse=True)
    assert distinct.tolist() == want.tolist()
    assert codes.tolist() == inverse.reshape(-1).tolist()
