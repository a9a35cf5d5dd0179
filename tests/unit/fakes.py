"""A recording stand-in for PL/Python's plpy module, for tests that run without a server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class FakePlan:
    """What FakePlpy.prepare returns: the query and types it was prepared with."""

    def __init__(self, query: str, types: Sequence[str]) -> None:
        self.query = query
        self.types = list(types)


class FakeCursor:
    """Hands out preset rows n at a time, recording each fetch size."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self.fetches: list[int] = []

    def fetch(self, n: int) -> list[dict[str, Any]]:
        self.fetches.append(n)
        chunk, self._rows = self._rows[:n], self._rows[n:]
        return chunk


class FakePlpy:
    """Records every call; `execute` and `cursor` answer with the rows in `result`."""

    def __init__(self, result: list[dict[str, Any]] | None = None) -> None:
        self.result = result or []
        self.calls: list[tuple[Any, ...]] = []
        self.cursors: list[FakeCursor] = []

    def execute(self, query: Any, args: Any = None, /) -> list[dict[str, Any]]:
        self.calls.append(("execute", query, args))
        return list(self.result)

    def prepare(self, query: str, types: Sequence[str] = (), /) -> FakePlan:
        self.calls.append(("prepare", query, list(types)))
        return FakePlan(query, types)

    def cursor(self, query: Any, args: Any = None, /) -> FakeCursor:
        self.calls.append(("cursor", query, args))
        cur = FakeCursor(list(self.result))
        self.cursors.append(cur)
        return cur

    def notice(self, msg: str, /, **kwargs: Any) -> None:
        self.calls.append(("notice", msg))

    def commit(self) -> None:
        self.calls.append(("commit",))

    def rollback(self) -> None:
        self.calls.append(("rollback",))

    @contextmanager
    def subtransaction(self) -> Iterator[None]:
        yield

    def quote_ident(self, name: str, /) -> str:
        return '"' + name.replace('"', '""') + '"'

    def quote_literal(self, value: str, /) -> str:
        """Postgres' quote_literal: quotes doubled, and E'' with doubled backslashes if any."""
        quoted = "'" + value.replace("'", "''") + "'"
        return "E" + quoted.replace("\\", "\\\\") if "\\" in value else quoted


class FakeCatalog(FakePlpy):
    """A FakePlpy whose catalog holds `relations` ("schema.name" -> {column: type}, in column
    order), answering the queries models.resolve_relation makes; every other query gets no
    rows. `calls` records everything that reached the "server"."""

    def __init__(self, relations: dict[str, dict[str, str]]) -> None:
        super().__init__()
        self.relations = relations
        self._oids = {name: oid for oid, name in enumerate(relations, start=1)}

    def execute(self, query: Any, args: Any = None, /) -> list[dict[str, Any]]:
        self.calls.append(("execute", query, args))
        sql = query.query if isinstance(query, FakePlan) else str(query)
        if "to_regclass($1)" in sql:
            oid = self._oids.get(args[0])
            if oid is None:
                return []
            schema, name = args[0].split(".", 1)
            return [{"oid": oid, "nspname": schema, "relname": name, "relkind": "r"}]
        names = list(self.relations)
        if "FROM pg_attribute WHERE attrelid" in sql:
            cols = self.relations[names[args[0] - 1]]
            return [{"name": c, "type": t} for c, t in cols.items()]
        return []
