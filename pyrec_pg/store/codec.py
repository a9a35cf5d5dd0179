"""pgvector's codec: float32 rows to its text form and back from its binary form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.db import Db

_DIGITS3 = np.array([list(b"%03d" % k) for k in range(1000)], dtype=np.uint8)
_EXPONENT = np.array([list(b"e%+03d," % k) for k in range(-99, 100)], dtype=np.uint8)
_POW10 = 10.0 ** np.arange(-99, 100)
_WIDTH = 15  # "+123456789e-05,"
_FEW_ROWS = 32


def vector_literals(m: npt.NDArray[np.float32]) -> list[str]:
    """pgvector's text form, '[x,y,...]', of each row; every float32 round-trips exactly.

    A few rows (fold-in's one vector): %.9g per value. Many rows: numpy writes every value as
    sign, 9 significant digits and an exponent ('+123456789e-10') into one byte buffer, ~3x
    faster than formatting each value in Python (9 digits: any float32 round-trips).
    """
    if m.shape[0] <= _FEW_ROWS:
        template = "[" + ",".join(["%.9g"] * m.shape[1]) + "]"
        return [template % tuple(row) for row in m.tolist()]
    rows, dims = m.shape
    v = m.astype(np.float64).ravel()
    a = np.abs(v)
    nonzero = a > 0
    e = np.zeros(v.size, dtype=np.int64)
    e[nonzero] = np.floor(np.log10(a[nonzero])).astype(np.int64) - 8
    sig = np.rint(a / _POW10[e + 99])
    # log10 can be off by one next to a power of ten: keep exactly 9 digits
    for fix, step in ((sig >= 1e9, 1), (nonzero & (sig < 1e8), -1)):
        e[fix] += step
        sig[fix] = np.rint(a[fix] / _POW10[e[fix] + 99])
    digits = sig.astype(np.int64)
    head = digits // 1_000_000
    tail = (digits - head * 1_000_000).astype(np.int32)
    cells = np.empty((v.size, _WIDTH), dtype=np.uint8)
    cells[:, 0] = np.where(np.signbit(v), ord("-"), ord("+"))
    cells[:, 1:4] = _DIGITS3[head]
    cells[:, 4:7] = _DIGITS3[tail // 1000]
    cells[:, 7:10] = _DIGITS3[tail % 1000]
    cells[:, 10:15] = _EXPONENT[e + 99]
    width = dims * _WIDTH + 1
    lines = np.empty((rows, width), dtype=np.uint8)
    lines[:, 0] = ord("[")
    lines[:, 1:] = cells.reshape(rows, dims * _WIDTH)
    lines[:, -1] = ord("]")  # over the last value's comma
    text = lines.tobytes().decode("ascii")
    return [text[k : k + width] for k in range(0, rows * width, width)]


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
