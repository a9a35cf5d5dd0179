"""pgvector's codec: float32 rows to its text form and back from its binary form."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.db import Db

# A value's text as a C99 hex float, "+0x1.91eb86p-003," (17 bytes), written through one
# packed record per value: its sign, its lead by exponent bits ("0x0." for zero and
# subnormals, which then read as 0x0.<mantissa>p-126), its 23 mantissa bits as three byte
# pairs of hex digits, and its power of two by exponent bits.
_CELL = np.dtype(
    [("sign", "u1"), ("lead", "<u4"), ("h0", "<u2"), ("h1", "<u2"), ("h2", "<u2"), ("power", "S6")]
)
_SIGN = np.array([ord("+"), ord("-")], dtype=np.uint8)
_LEAD = np.frombuffer(b"".join(b"0x1." if e else b"0x0." for e in range(256)), dtype="<u4")
_HEX = np.frombuffer(b"".join(b"%02x" % k for k in range(256)), dtype="<u2")
_POWER = np.array([b"p%+04d," % (e - 127 if e else -126) for e in range(256)], dtype="S6")
_FEW_ROWS = 32


def vector_literals(m: npt.NDArray[np.float32]) -> list[str]:
    """pgvector's text form, '[x,y,...]', of each row; every float32 round-trips exactly.

    A few rows (fold-in's one vector): %.9g per value. Many rows: each value's bits as a C99
    hex float ('+0x1.91eb86p-003', read exactly by pgvector's strtof), written by table
    lookups into one byte buffer: no decimal conversion, ~2x faster than writing 9
    significant digits the same way, and as fast for the server to read.
    """
    if m.shape[0] <= _FEW_ROWS:
        template = "[" + ",".join(["%.9g"] * m.shape[1]) + "]"
        return [template % tuple(row) for row in m.tolist()]
    rows, dims = m.shape
    bits = np.ascontiguousarray(m, dtype=np.float32).view(np.uint32)
    exponent = (bits >> 23) & 0xFF
    mantissa = (bits & 0x7FFFFF) << 1  # 24 bits: 6 hex digits
    # '[', the cells, and a spare byte that lets the cells be viewed as records; the last
    # cell's comma becomes ']' and the spare byte is left out
    width = dims * _CELL.itemsize + 2
    lines = np.empty((rows, width), dtype=np.uint8)
    lines[:, 0] = ord("[")
    cells = lines[:, 1:-1].view(_CELL)  # rows x dims records
    cells["sign"] = _SIGN[bits >> 31]
    cells["lead"] = _LEAD[exponent]
    cells["h0"] = _HEX[mantissa >> 16]
    cells["h1"] = _HEX[(mantissa >> 8) & 0xFF]
    cells["h2"] = _HEX[mantissa & 0xFF]
    cells["power"] = _POWER[exponent]
    lines[:, -2] = ord("]")
    text = lines[:, :-1].tobytes().decode("ascii")
    n = width - 1
    return [text[k : k + n] for k in range(0, rows * n, n)]


def vector_schema(db: Db) -> str:
    """pgvector's schema, quoted: training and batches pin no search_path."""
    schema = db.scalar(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    return db.ident(schema)


def vector_type(db: Db, dims: int) -> str:
    return f"{vector_schema(db)}.vector({dims})"


def vector_dtype(dims: int, prefix: Sequence[tuple[str, str]] = ()) -> np.dtype[Any]:
    """pgvector's binary form (vector_send): int16 dims, int16 unused, float4s; big endian."""
    return np.dtype([*prefix, ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", (dims,))])


# binary COPY: the signature, flags and header extension length; the trailer (-1 fields)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
_ROWS_PER_BLOCK = 10_000


def copy_rows(
    ids: npt.NDArray[np.str_], columns: Sequence[tuple[str, npt.NDArray[Any]]]
) -> Iterator[bytes]:
    """A binary COPY stream of rows (id text, then `columns`: (type, values) with type "real",
    "int4" or a vector type, values one row per id), in blocks of rows: each row's fixed-size
    fields (a length, then the value: a vector in vector_dtype's form) are laid out by numpy
    once per block, its id's bytes joined in."""
    fields: list[tuple[str, Any]] = []
    for n, (typ, values) in enumerate(columns):
        value = {"real": ">f4", "int4": ">i4"}.get(typ) or vector_dtype(int(values.shape[1]))
        fields += [(f"n{n}", ">i4"), (f"v{n}", value)]
    tail_type = np.dtype(fields)
    width = tail_type.itemsize
    count = (1 + len(columns)).to_bytes(2, "big")
    yield COPY_HEADER
    for lo in range(0, ids.size, _ROWS_PER_BLOCK):
        hi = min(ids.size, lo + _ROWS_PER_BLOCK)
        tail = np.zeros(hi - lo, dtype=tail_type)
        for n, (_, values) in enumerate(columns):
            tail[f"n{n}"] = tail_type[f"v{n}"].itemsize
            if tail_type[f"v{n}"].names:  # a vector: its dims, then its floats
                tail[f"v{n}"]["dim"] = values.shape[1]
                tail[f"v{n}"]["v"] = values[lo:hi]
            else:
                tail[f"v{n}"] = values[lo:hi]
        packed = tail.tobytes()
        texts = [t.encode() for t in ids[lo:hi].tolist()]
        yield b"".join(
            count + len(t).to_bytes(4, "big") + t + packed[k * width : (k + 1) * width]
            for k, t in enumerate(texts)
        )
    yield COPY_TRAILER
