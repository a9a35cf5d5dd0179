"""Database access shared by both runtimes: real plpy in the server, the psycopg stub outside."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, Protocol

Row = Mapping[str, Any]


class Plpy(Protocol):
    """The part of PL/Python's `plpy` module pyrec uses; `stub.PsycopgPlpy` implements it too."""

    @property
    def SPIError(self) -> type[Exception]: ...  # what a failed statement raises

    def execute(self, query: Any, args: Any = ..., /) -> Any: ...
    def prepare(self, query: str, types: Sequence[str] = ..., /) -> Any: ...
    def cursor(self, query: Any, args: Any = ..., /) -> Any: ...
    def notice(self, msg: str, /, **kwargs: Any) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def subtransaction(self) -> AbstractContextManager[Any]: ...
    def quote_ident(self, name: str, /) -> str: ...
    def quote_literal(self, value: str, /) -> str: ...


class Db:
    """Small convenience layer over a plpy object: cached prepared plans and typed helpers.

    `reader`, when given, is where jobs read the user's own relations (a training's
    interactions and attributes): a hot standby's Db, while everything pyrec writes goes
    through this one. Without it, `self.reader` is this Db.
    """

    def __init__(self, plpy: Plpy, reader: Db | None = None) -> None:
        self.plpy = plpy
        self._plans: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._reader = reader

    @property
    def in_server(self) -> bool:
        """Whether this runs in a Postgres backend (PL/Python's plpy, a module) rather than in
        a client through the stub: what must not start there (a Spark driver) asks."""
        return isinstance(self.plpy, ModuleType)

    @property
    def reader(self) -> Db:
        """The Db that reads the user's relations: the one given, else this one."""
        return self if self._reader is None else self._reader

    @property
    def Error(self) -> type[Exception]:
        """The class of database errors in this runtime: `except db.Error` catches a failed
        statement (its SQLSTATE in errors.sqlstate_of) and nothing else."""
        return self.plpy.SPIError

    def rows(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        """Run `sql` with `$n` parameters of the given Postgres `types`; return rows as dicts."""
        if len(args) != len(types):
            raise ValueError("args and types differ in length")
        if not args:
            return list(self.plpy.execute(sql))
        key = (sql, tuple(types))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.plpy.prepare(sql, list(types))
        return list(self.plpy.execute(plan, list(args)))

    def one(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> Row | None:
        found = self.rows(sql, args, types)
        return found[0] if found else None

    def scalar(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> Any:
        row = self.one(sql, args, types)
        return None if row is None else next(iter(row.values()))

    def run(self, sql: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> None:
        self.rows(sql, args, types)

    def stream(self, sql: str, batch: int = 50_000) -> Iterator[list[Row]]:
        """Rows of a large query in batches, without materializing them all at once."""
        cur = self.plpy.cursor(sql)
        while True:
            chunk = cur.fetch(batch)
            if not chunk:
                return
            yield list(chunk)

    def ident(self, *parts: str) -> str:
        """A (schema-)qualified identifier quoted by the server's own rules."""
        return ".".join(self.plpy.quote_ident(p) for p in parts)

    def literal(self, value: str) -> str:
        """A string literal quoted by the server's own rules."""
        return self.plpy.quote_literal(value)

    def notice(self, msg: str) -> None:
        self.plpy.notice(msg)

    def commit(self) -> None:
        self.plpy.commit()

    def rollback(self) -> None:
        self.plpy.rollback()
