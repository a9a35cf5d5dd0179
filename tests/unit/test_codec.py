"""pgvector's codec: the binary COPY stream the external trainer writes versions with."""

from __future__ import annotations

import struct

import numpy as np

from pyrec_pg.store.codec import copy_rows


def test_binary_copy_rows_decode_to_the_values_given() -> None:
    """copy_rows' stream, read back as COPY BINARY's format says: per row a field count,
    then each field's length and bytes (id text, vector: dims, 0, floats; real; int4)."""
    rng = np.random.default_rng(1)
    ids = np.asarray(["a", "ü-2", "", "x" * 300] * 3000, dtype=str)  # two blocks
    vectors = rng.normal(size=(ids.size, 5)).astype(np.float32)
    reals = rng.normal(size=ids.size).astype(np.float32)
    ints = np.arange(ids.size, dtype=np.int32)
    cols = [("vector(5)", vectors), ("real", reals), ("int4", ints)]
    data = b"".join(copy_rows(ids, cols))
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00" + bytes(8)) and data.endswith(b"\xff\xff")
    at, rows = 19, []
    while True:
        (count,) = struct.unpack_from(">h", data, at)
        at += 2
        if count == -1:
            break
        fields = []
        for _ in range(count):
            (size,) = struct.unpack_from(">i", data, at)
            fields.append(data[at + 4 : at + 4 + size])
            at += 4 + size
        rows.append(fields)
    assert at == len(data) and len(rows) == ids.size
    for k in (0, 1, 2, 3, 11_999):
        text, vec, real, num = rows[k]
        assert text.decode() == ids[k]
        dims, unused = struct.unpack_from(">hh", vec)
        assert (dims, unused) == (5, 0)
        assert np.array_equal(np.frombuffer(vec[4:], dtype=">f4"), vectors[k])
        assert struct.unpack(">f", real)[0] == reals[k] and struct.unpack(">i", num)[0] == k
