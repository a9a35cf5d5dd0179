"""The CLI's client: one connection, the flavour chosen once, every entry point called one way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from pyrec_pg.cli._db import READ_DSN_HINT, Flavour, connect, managed_required, require, rows


class Client:
    """A database with pyrec. In the extension flavour an entry point is its SQL function; in
    the managed flavour (no plpython3u) the same Python entry point runs here, in the client.
    Serving (recommend, similar_items, ...) is plain SQL in both."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = connect(dsn)
        try:
            self.flavour: Flavour = require(self.conn)
        except BaseException:
            self.conn.close()
            raise

    @property
    def managed(self) -> bool:
        return self.flavour == "managed"

    def call(
        self,
        fn: str,
        arguments: dict[str, Any],
        query: Any,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> Any:
        """Entry point `fn`: the SQL `query` (its first column) in the extension flavour, the
        client-side call with `arguments` in the managed one."""
        if self.managed:
            return self.client_side(fn, arguments)
        row = self.conn.execute(query, arguments if params is None else params).fetchone()
        return None if row is None else row[0]

    def client_side(self, fn: str, arguments: dict[str, Any], read_dsn: str | None = None) -> Any:
        """Entry point `fn` run here, in this client, on its own connection (the external
        trainer): the managed flavour's client, or the server's code through the plpy stub.
        With `read_dsn` (a training), the user's relations are read on that hot standby."""
        if self.managed:
            return managed_required().call(self.dsn, fn, arguments, read_dsn=read_dsn)
        # imported here: numpy, scipy and the recipes load only for work done in the client
        from pyrec_pg.db import Db
        from pyrec_pg.db.stub import PsycopgPlpy
        from pyrec_pg.entrypoints.server import ENTRIES

        plpy = PsycopgPlpy(connect(self.dsn, autocommit=False))
        standby = None
        try:
            if read_dsn is not None:
                standby = PsycopgPlpy(connect(read_dsn, False, "--read-dsn", READ_DSN_HINT))
            return ENTRIES[fn](Db(plpy, None if standby is None else Db(standby)), arguments)
        finally:
            if standby is not None:
                standby.conn.close()
            plpy.conn.close()

    def rows(
        self, query: Any, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        return rows(self.conn, query, params)

    def prepare_filter(self, model: str, expression: str | None) -> None:
        """Serving is SQL in either flavour; without the server's Python an ad-hoc filter is
        compiled here first (named filters were compiled when they were created)."""
        if not self.managed or not expression:
            return
        query = "SELECT 1 FROM pyrec.filters WHERE model = %s AND name = %s"
        if self.conn.execute(query, [model, expression]).fetchone() is None:
            self.client_side("compile_filter", {"model": model, "expression": expression})

    def prepare_ranking(self, model: str, ranking: Any) -> None:
        """prepare_filter for each boost of a ranking argument."""
        if self.managed:
            for expression in managed_required().ranking_filters(ranking):
                self.prepare_filter(model, expression)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
