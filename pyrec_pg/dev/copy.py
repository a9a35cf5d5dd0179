"""Bulk loading of column arrays into a table with COPY."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

_ROWS_PER_CHUNK = 200_000


def _element(x: Any) -> str:
    if x is None:
        return "NULL"
    return '"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cell(v: Any) -> str:
    """One value in COPY's text format; lists and tuples become array literals."""
    if v is None:
        return r"\N"
    if isinstance(v, list | tuple):
        v = "{" + ",".join(_element(x) for x in v) + "}"
    text = str(v).replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(
    conn: psycopg.Connection[Any],
    table: sql.Composable,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """COPY rows (tuples of Python values; lists become arrays) into `table`."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table, sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for lo in range(0, len(rows), _ROWS_PER_CHUNK):
            buf = io.StringIO()
            for row in rows[lo : lo + _ROWS_PER_CHUNK]:
                buf.write("\t".join(_cell(v) for v in row))
                buf.write("\n")
            copy.write(buf.getvalue())
