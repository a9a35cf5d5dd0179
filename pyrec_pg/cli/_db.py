"""Connecting the CLI to a database: DSN fallbacks, readable connection errors, flavours."""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

import psycopg
from psycopg import conninfo
from psycopg.rows import dict_row

from pyrec_pg.errors import (
    ConnectionFailure,
    InvalidParameter,
    InvalidSchemaName,
    UndefinedFile,
)

Flavour = Literal["extension", "managed"]

DSN_HINT = (
    "pass --dsn (or set PYREC_DSN, or libpq's PGHOST, PGDATABASE, PGUSER ...), e.g."
    " --dsn 'host=/var/run/postgresql dbname=mydb'; psql with the same string shows the same"
)
READ_DSN_HINT = (
    "--read-dsn takes the libpq connection string or URI of a hot standby of the --dsn"
    " database, e.g. --read-dsn 'host=standby.example.com dbname=mydb'"
)


def dsn_of(args: argparse.Namespace) -> str:
    """--dsn, else $PYREC_DSN, else "" (libpq then reads its PG* variables)."""
    return str(args.dsn or os.environ.get("PYREC_DSN", ""))


def connect(
    dsn: str, autocommit: bool = True, option: str | None = None, hint: str = DSN_HINT
) -> psycopg.Connection[Any]:
    """A connection, or a PyrecError that says what failed (08006) or what is malformed (22023).

    `option` names the option the DSN came from in the message, when it is not --dsn."""
    said = "" if option is None else f"{option}: "
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        raise InvalidParameter(
            f"{said}invalid connection string: {str(e).strip()}", hint=hint
        ) from e
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        dsn = conninfo.make_conninfo(dsn, connect_timeout=10)  # unreachable: seconds, not minutes
    try:
        return psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as e:
        text = str(e).strip()
        for prefix in ("connection is bad: ", "connection failed: "):
            text = text.removeprefix(prefix)
        first, _, rest = text.partition("\n")
        raise ConnectionFailure(
            f"{said}cannot connect to the database: {first.strip()}",
            detail=" ".join(rest.split()) or None,
            hint=hint,
        ) from e


def rows(
    conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[dict[str, Any]]:
    """The rows of a query as dicts keyed by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def managed_module() -> ModuleType | None:
    """pyrec_pg.entrypoints.managed when this installation has it (imported only when needed)."""
    try:
        return importlib.import_module("pyrec_pg.entrypoints.managed")
    except ModuleNotFoundError as e:
        if e.name != "pyrec_pg.entrypoints.managed":
            raise  # the module is there but something it needs is not
        return None


def flavour(conn: psycopg.Connection[Any]) -> Flavour | None:
    """How pyrec is installed in this database: the extension, the managed flavour, or not."""
    managed = managed_module()
    if managed is not None:
        found: Flavour | None = managed.flavour(conn)
        return found
    row = conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pyrec'").fetchone()
    return "extension" if row else None


def require(conn: psycopg.Connection[Any]) -> Flavour:
    """The flavour, or the error that pyrec is not installed here (3F000, like a missing schema)."""
    found = flavour(conn)
    if found is None:
        raise InvalidSchemaName(
            f'pyrec is not installed in database "{conn.info.dbname}"',
            hint="pyrec install --dsn '...' installs it (CREATE EXTENSION pyrec CASCADE)",
        )
    return found


def managed_required() -> ModuleType:
    """pyrec_pg.entrypoints.managed, or the error that this installation lacks it (58P01)."""
    managed = managed_module()
    if managed is None:
        raise UndefinedFile(
            "this installation of pyrec_pg has no managed flavour (pyrec_pg.entrypoints.managed)",
            hint="upgrade pyrec_pg on this machine: pip install --upgrade pyrec_pg",
        )
    return managed
