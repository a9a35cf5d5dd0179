"""A plpy-compatible object backed by a psycopg connection, so server code also runs outside."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql as psql
from psycopg.rows import dict_row

from pyrec_pg.errors import UndefinedParameter, from_fields

# string literals and quoted identifiers are copied (with '%' doubled), $n become placeholders
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")  # what quote_ident leaves bare, keywords aside
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\d+)|%")


class SPIError(Exception):
    """Mirrors plpy.SPIError: a database error with its SQLSTATE."""

    def __init__(self, message: str, sqlstate: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.hint = hint


class Plan:
    """What `prepare` returns: the query rewritten for psycopg, with its parameter types."""

    def __init__(self, query: str, types: Sequence[str]) -> None:
        self.types = list(types)

        def rewrite(m: re.Match[str]) -> str:
            if m.group(1) is None:
                return m.group(0).replace("%", "%%")
            n = int(m.group(1))
            if not 1 <= n <= len(self.types):
                raise SPIError(f"there is no parameter ${n}", UndefinedParameter.sqlstate)
            return f"(%(p{n})s::{self.types[n - 1]})"

        self.query = _TOKEN.sub(rewrite, query)

    def bind(self, args: Sequence[Any]) -> dict[str, Any]:
        if len(args) != len(self.types):
            raise SPIError(
                f"expected {len(self.types)} arguments, got {len(args)}",
                UndefinedParameter.sqlstate,
            )
        return {f"p{i + 1}": a for i, a in enumerate(args)}


class Result(list[dict[str, Any]]):
    """Mirrors PLyResult: a list of dict rows with nrows() and colnames()."""

    def __init__(self, rows: list[dict[str, Any]], colnames: list[str], rowcount: int) -> None:
        super().__init__(rows)
        self._colnames = colnames
        self._rowcount = rowcount

    def nrows(self) -> int:
        return self._rowcount

    def colnames(self) -> list[str]:
        return self._colnames


class Cursor:
    """Mirrors PLyCursor: a server-side cursor read with fetch(n)."""

    def __init__(self, cur: psycopg.ServerCursor[dict[str, Any]]) -> None:
        self._cur = cur

    def fetch(self, n: int) -> list[dict[str, Any]]:
        if self._cur.closed:
            return []
        rows = self._cur.fetchmany(n)
        if len(rows) < n:  # exhausted: release the server-side cursor, as plpy does
            self.close()
        return rows

    def close(self) -> None:
        if not self._cur.closed and not self._cur.connection.closed:
            self._cur.close()

    def __del__(self) -> None:
        self.close()


class PsycopgPlpy:
    """The plpy functions pyrec uses, over a psycopg connection in non-autocommit mode.

    `commit()`/`rollback()` end the connection's transaction as they end a procedure's in
    the server; `subtransaction()` is a savepoint, like plpy.subtransaction().
    """

    SPIError = SPIError

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        if conn.autocommit:
            raise ValueError("the plpy stub needs a connection with autocommit off")
        self.conn = conn
        self._cursors = 0
        self._keywords: frozenset[str] | None = None
        self.notices: list[str] = []

    @classmethod
    def connect(cls, dsn: str) -> PsycopgPlpy:
        return cls(psycopg.connect(dsn, autocommit=False))

    def _run(self, query: str, params: dict[str, Any], limit: int = 0) -> Result:
        try:
            with self.conn.cursor(row_factory=dict_row) as cur:
                # always pass a mapping (maybe empty) so psycopg turns '%%' back into '%'
                cur.execute(query, params, prepare=bool(params))
                if cur.description is None:
                    return Result([], [], cur.rowcount)
                rows = cur.fetchmany(limit) if limit else cur.fetchall()
                return Result(rows, [d.name for d in cur.description], cur.rowcount)
        except psycopg.Error as e:
            raise _spi_error(e) from e

    def execute(self, query: str | Plan, args: Sequence[Any] | int | None = None, /) -> Result:
        if isinstance(query, Plan):
            seq = [] if args is None or isinstance(args, int) else args
            return self._run(query.query, query.bind(seq))
        limit = args if isinstance(args, int) else 0
        return self._run(Plan(query, []).query, {}, limit)

    def copy_binary(self, table: str, columns: Sequence[str], data: Iterable[bytes]) -> None:
        """COPY `table` (`columns`) FROM STDIN in binary: `data` is the stream, header and
        trailer included. The server's plpy has no COPY; outside it, writing many rows this
        way spares the server parsing their text."""
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"
        try:
            with self.conn.cursor() as cur, cur.copy(sql) as copy:
                for block in data:
                    copy.write(block)
        except psycopg.Error as e:
            raise _spi_error(e) from e

    def prepare(self, query: str, types: Sequence[str] = (), /) -> Plan:
        return Plan(query, types)

    def cursor(self, query: str | Plan, args: Sequence[Any] | None = None, /) -> Cursor:
        self._cursors += 1
        cur = self.conn.cursor(f"pyrec_cursor_{self._cursors}", row_factory=dict_row)
        plan = query if isinstance(query, Plan) else Plan(query, [])
        try:
            cur.execute(plan.query, plan.bind(args or []))
        except psycopg.Error as e:
            raise _spi_error(e) from e
        return Cursor(cur)

    @contextmanager
    def subtransaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def quote_ident(self, name: str, /) -> str:
        # the server's rule, as plpy.quote_ident: bare when it needs no quotes, so messages
        # name relations alike in both flavours (public.movies, not "public"."movies")
        if _PLAIN.match(name) and name not in self._quoted_keywords():
            return name
        return psql.Identifier(name).as_string(self.conn)

    def _quoted_keywords(self) -> frozenset[str]:
        """The keywords quote_ident quotes (all but the unreserved), read once."""
        if self._keywords is None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT word FROM pg_catalog.pg_get_keywords() WHERE catcode <> 'U'")
                self._keywords = frozenset(r[0] for r in cur.fetchall())
        return self._keywords

    def quote_literal(self, value: str, /) -> str:
        return psql.Literal(value).as_string(self.conn)

    def notice(self, msg: str, /, **kwargs: Any) -> None:
        self.notices.append(msg)

    info = notice

    def error(self, msg: str, /, **kwargs: Any) -> None:
        fields = {k: kwargs.get(k) for k in ("sqlstate", "detail", "hint")}
        raise from_fields({"message": msg, **fields})


def _spi_error(e: psycopg.Error) -> SPIError:
    diag = e.diag
    return SPIError(diag.message_primary or str(e), diag.sqlstate, diag.message_hint)
