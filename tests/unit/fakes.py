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
