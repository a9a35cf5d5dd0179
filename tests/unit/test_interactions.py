"""interactions.build and the reading's id coding (_distinct, hashed ids, chunks): id
indexing and the summed matrix."""

from __future__ import annotations

import numpy as np
import pytest

from pyrec_pg.ml.interactions import build
from pyrec_pg.store.interactions import (
    TID,
    Hashed,
    Seen,
    _coder,
    _distinct,
    _distinct_of,
    _hashed_ids,
    _texts_of,
)


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


def _tids(*pairs: tuple[int, int]) -> np.ndarray:
    return np.asarray(list(pairs), dtype=TID)


def test_seen_ids_are_coded_as_first_seen_each_with_its_first_row() -> None:
    seen = Seen()
    first = seen.codes(np.asarray([40, -7, 40], dtype=np.int64), _tids((0, 1), (0, 2), (0, 3)), 4)
    later = seen.codes(
        np.asarray([99, 40, 99, -7], dtype=np.int64), _tids((5, 1), (5, 2), (5, 3), (6, 1)), 9
    )
    assert first.dtype == np.int32
    hashes = seen.hashes.tolist()
    assert [hashes[c] for c in first] == [40, -7, 40]
    assert [hashes[c] for c in later] == [99, 40, 99, -7]
    where = dict(zip(hashes, seen.tids.tolist(), strict=True))
    assert where == {40: (0, 1), -7: (0, 2), 99: (5, 1)}  # the row each was first seen in
    assert dict(zip(hashes, seen.counts.tolist(), strict=True)) == {40: 3, -7: 2, 99: 2}
    assert seen.checksum == 13


def test_seen_codes_stay_the_same_over_many_chunks_of_new_ids() -> None:
    """Chunks that each bring new ids (more than Seen keeps indexes of apart) code every row
    as the hash it holds, the same hash always to the same code."""
    rng = np.random.default_rng(5)
    pool = np.unique(rng.integers(-(2**63), 2**63 - 1, 5_000, dtype=np.int64))
    seen, coded = Seen(), dict[int, int]()
    for n in range(3 * Seen.MERGE):
        raw = pool[rng.integers(0, min(pool.size, 300 * (n + 1)), 2_000)]
        tids = _tids(*[(n, k) for k in range(raw.size)])
        codes = seen.codes(raw, tids, 0)
        assert np.array_equal(seen.hashes[codes], raw)
        for h, c in zip(raw.tolist(), codes.tolist(), strict=True):
            assert coded.setdefault(h, c) == c
    assert np.unique(seen.hashes).size == seen.hashes.size
    assert int(seen.counts.sum()) == 3 * Seen.MERGE * 2_000
    assert (seen.find(np.asarray([12345], dtype=np.int64)) == -1).all() or 12345 in pool


# ids: (hash, second hash)
IDS = {"z": (12, 1), "10": (99, 2), "a": (-7, 3), "9": (3, -(2**63))}


def _seen(rows: list[str], ids: dict[str, tuple[int, int]] = IDS, chunk: int = 2) -> Seen:
    """`rows` (ids) seen in chunks of `chunk` rows, row n in block n."""
    seen = Seen()
    for lo in range(0, len(rows), chunk):
        part = rows[lo : lo + chunk]
        tids = _tids(*[(lo + n, 1) for n in range(len(part))])
        hashes = np.asarray([ids[r][0] for r in part], dtype=np.int64)
        seen.codes(hashes, tids, sum(ids[r][1] for r in part))
    return seen


class _Rows:
    """A database whose TID scan finds `found`: (text, hash, second hash), each row with its
    place in text order, in another order."""

    def __init__(self, found: list[tuple[str, int, int]]) -> None:
        self.found = sorted(found)
        self.tids: list[str] = []

    def one(self, sql: str, args: list[object], types: list[str]) -> dict[str, object]:
        assert "ctid = ANY ((SELECT $1::tid[])::tid[])" in sql and types == ["tid[]"]
        self.tids = list(args[0])  # type: ignore[call-overload]
        rows = list(enumerate(self.found))[::-1]
        return {
            "ids": [t for _, (t, _, _) in rows],
            "o": np.asarray([k for k, _ in rows], dtype=">i4").tobytes(),
            "h": np.asarray([h for _, (_, h, _) in rows], dtype=">i8").tobytes(),
            "c": np.asarray([c for _, (_, _, c) in rows], dtype=">i8").tobytes(),
        }


def test_texts_of_the_ids_seen_come_in_text_order_from_their_first_rows() -> None:
    rows = ["z", "10", "z", "a", "9", "a", "9"]
    seen = _seen(rows)
    db = _Rows([(t, h, c) for t, (h, c) in IDS.items()])
    named = _texts_of(db, "t", "c", seen)  # type: ignore[arg-type]
    assert named is not None
    texts, final, checks = named
    assert texts == ["10", "9", "a", "z"]
    assert sorted(db.tids) == ["(0,1)", "(1,1)", "(3,1)", "(4,1)"]  # one row per id: its first
    codes = seen.find(np.asarray([IDS[r][0] for r in rows], dtype=np.int64))
    assert [texts[final[c]] for c in codes] == rows
    assert not seen.shared(checks)  # sums wrap at 2^64: -2^63 twice is 0


def test_two_ids_sharing_a_hash_show_in_the_sum_of_second_hashes() -> None:
    # "b" has the hash of "z" but another second hash: the rows of both are coded as "z"
    ids = {**IDS, "b": (12, 7)}
    for rows in (["z", "10", "b", "a"], ["b", "z"], ["z", "z", "10", "b"]):
        seen = _seen(rows, ids)
        first = rows[0]  # the text read for hash 12 is the first row's
        found = [(t, *ids[t]) for t in dict.fromkeys(rows) if t == first or ids[t][0] != 12]
        named = _texts_of(_Rows(found), "t", "c", seen)  # type: ignore[arg-type]
        assert named is not None
        assert seen.shared(named[2])


@pytest.mark.parametrize(
    "found",
    [
        [("a", -7, 3), ("z", 12, 1)],  # a row deleted since: "10" is missing
        [("a", -7, 3), ("z", 12, 1), ("q", 50, 5)],  # its slot now holds another id
        [("a", -7, 3), ("z", 12, 1), ("z", 12, 1)],  # or one of the ids seen, twice
    ],
)
def test_texts_of_rows_changed_since_the_scan_give_up(found: list[tuple[str, int, int]]) -> None:
    seen = _seen(["z", "10", "a"])
    assert _texts_of(_Rows(found), "t", "c", seen) is None  # type: ignore[arg-type]


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
