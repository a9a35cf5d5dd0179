"""Commands that set pyrec up and look at it: install, upgrade, status."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg
from psycopg import sql

from pyrec_pg import __version__
from pyrec_pg.cli._client import Client
from pyrec_pg.cli._db import connect, dsn_of, flavour, managed_required, rows
from pyrec_pg.cli._output import emit, table
from pyrec_pg.cli._parsing import Subparsers, command
from pyrec_pg.errors import DuplicateObject, FeatureNotSupported, InvalidParameter


def _installed(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'"
    ).fetchone()
    return None if row is None else str(row[0])


def _newest(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'pyrec'"
    ).fetchone()
    return None if row is None else str(row[0])


def _server_versions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """pyrec.version(): it fails with the fix when the server's Python cannot serve this SQL."""
    row = conn.execute("SELECT pyrec.version()").fetchone()
    assert row is not None
    return dict(row[0])


def cmd_install(args: argparse.Namespace) -> int:
    with connect(dsn_of(args)) as conn:
        db = conn.info.dbname
        found = flavour(conn)
        wanted = "managed" if args.managed else "extension"
        if found is not None and found != wanted:
            raise DuplicateObject(
                f'database "{db}" already has pyrec\'s {found} flavour',
                hint="one flavour per database; pyrec status shows what is installed",
            )
        if found == "managed":
            emit(
                args,
                {"database": db, "flavour": found, "installed": False},
                f'pyrec (managed flavour) is already installed in database "{db}"',
            )
            return 0
        if found == "extension":
            have, newest = _installed(conn), _newest(conn)
            later = f"; {newest} is available: pyrec upgrade" if newest and newest != have else ""
            emit(
                args,
                {"database": db, "flavour": found, "version": have, "installed": False},
                f'pyrec {have} is already installed in database "{db}"{later}',
            )
            return 0
        if args.managed:
            version = str(managed_required().install(conn))
            emit(
                args,
                {"database": db, "flavour": "managed", "version": version, "installed": True},
                f"installed pyrec {version} (managed flavour: training runs in this client)"
                f' into database "{db}"',
            )
            return 0
        # one transaction: if the server's Python cannot serve the new SQL, nothing stays
        with conn.transaction():
            at: sql.Composable = sql.SQL("")
            if args.version:
                at = sql.SQL(" VERSION {}").format(sql.Literal(args.version))
            conn.execute(sql.SQL("CREATE EXTENSION pyrec{} CASCADE").format(at))
            versions = _server_versions(conn)
        emit(
            args,
            {"database": db, "flavour": "extension", "installed": True, **versions},
            f"installed pyrec {versions.get('sql')} (Python package"
            f" {versions.get('python_package')}, pgvector {versions.get('pgvector')})"
            f' into database "{db}"',
        )
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        conn = client.conn
        db = conn.info.dbname
        if client.managed:
            raise FeatureNotSupported(
                "upgrade updates the extension; this database has the managed flavour",
                hint="pyrec install --managed installs the managed SQL of this pyrec_pg",
            )
        before = _installed(conn)
        to: sql.Composable = sql.SQL("")
        if args.to:
            to = sql.SQL(" TO {}").format(sql.Literal(args.to))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("ALTER EXTENSION pyrec UPDATE{}").format(to))
                after = _installed(conn)
                _server_versions(conn)
        except psycopg.errors.InvalidParameterValue as e:  # no update path to that version
            known = conn.execute(
                "SELECT string_agg(version, ', ' ORDER BY version)"
                " FROM pg_catalog.pg_available_extension_versions WHERE name = 'pyrec'"
            ).fetchone()
            raise InvalidParameter(
                e.diag.message_primary or str(e),
                hint=f"versions on this server: {known[0] if known else 'none'}",
            ) from e
    data = {"database": db, "from": before, "to": after, "upgraded": before != after}
    if before == after:
        text = f'pyrec is already at {after} in database "{db}"'
    else:
        text = f'upgraded pyrec from {before} to {after} in database "{db}"'
    emit(args, data, text)
    return 0


_MODELS = """
SELECT m.name, m.recipe, m.active_version,
       (SELECT count(*) FROM pyrec.model_versions v WHERE v.model = m.name) AS versions,
       a.n_users, a.n_items, (a.metrics->>'ndcg@10')::float8 AS "ndcg@10", a.activated_at,
       r.status AS last_training, r.finished_at AS last_training_at
  FROM pyrec.models m
  LEFT JOIN pyrec.model_versions a ON a.model = m.name AND a.version = m.active_version
  LEFT JOIN LATERAL (SELECT status, coalesce(finished_at, started_at) AS finished_at
                       FROM pyrec.training_runs t WHERE t.model = m.name
                      ORDER BY run_id DESC LIMIT 1) r ON true
 ORDER BY m.name"""


def _plain(value: Any) -> str:
    return "/".join(map(str, value)) if isinstance(value, list) else str(value)


def cmd_status(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        conn, found = client.conn, client.flavour
        info = conn.info
        where = info.host if info.host.startswith("/") else f"{info.host}:{info.port}"
        data = {"database": info.dbname, "server": where, "user": info.user, "flavour": found}
        if found == "extension":
            versions = _server_versions(conn)
        else:  # no server Python to ask: the installed SQL, and what this client runs
            versions = rows(
                conn,
                "SELECT (SELECT version FROM pyrec._installation) AS sql,"
                " (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector')"
                " AS pgvector",
            )[0]
            versions["python_package"] = __version__
        models = rows(conn, _MODELS)
    text = [
        f'database "{data["database"]}" on {where} as {data["user"]}: pyrec'
        f" {versions.get('sql') or versions['python_package']} ({found})",
        "  " + ", ".join(f"{k} {_plain(v)}" for k, v in versions.items() if k != "module_path"),
    ]
    if models:
        listed = [
            (
                m["name"],
                m["recipe"],
                m["active_version"],
                m["versions"],
                m["n_users"],
                m["n_items"],
                m["ndcg@10"],
                f"{m['last_training']} {m['last_training_at']:%Y-%m-%d %H:%M}"
                if m["last_training"]
                else "never",
            )
            for m in models
        ]
        headers = ["model", "recipe", "active", "versions", "users", "items", "ndcg@10"]
        text += ["", table([*headers, "last training"], listed)]
    else:
        text += ["", "no models yet: pyrec create-model NAME INTERACTIONS creates one"]
    emit(args, {**data, "versions": versions, "models": models}, "\n".join(text))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        found = client.call(
            "settings", {}, "SELECT pyrec._result(pyrec._call('settings', '{}'))", ()
        )
    shown = [(r["name"], r["value"], r["default"], r["type"], r["description"]) for r in found]
    emit(args, found, table(["setting", "value", "default", "type", "description"], shown))
    return 0


def register(sub: Subparsers) -> None:
    p = command(
        sub,
        "install",
        cmd_install,
        "install pyrec into a database (CREATE EXTENSION pyrec CASCADE), or say it is there",
        [
            "pyrec install --dsn 'dbname=mydb'",
            "pyrec install --dsn 'dbname=mydb' --version 0.1.0",
            "pyrec install --managed --dsn 'postgresql://app@db.example.com/shop'"
            "   # no plpython3u",
        ],
        description="Installs the extension (with vector and plpython3u) and checks in the same"
        " transaction that the server's Python serves it: if not, nothing is installed and the"
        " error says why. Needs a superuser. --managed installs the managed flavour for"
        " services without plpython3u: serving stays SQL, training runs in this client.",
    )
    p.add_argument("--version", help="install this version instead of the newest")
    p.add_argument("--managed", action="store_true", help="install the managed flavour")

    p = command(
        sub,
        "upgrade",
        cmd_upgrade,
        "update the extension to the newest (or a given) version, printing from -> to",
        ["pyrec upgrade --dsn 'dbname=mydb'", "pyrec upgrade --dsn 'dbname=mydb' --to 0.2.0"],
        description="ALTER EXTENSION pyrec UPDATE [TO version], then a check that the server's"
        " Python serves the new SQL (all in one transaction). Upgrade the Python package on the"
        " server first (make install).",
    )
    p.add_argument("--to", metavar="VERSION", help="target version (default: the newest)")

    command(
        sub,
        "status",
        cmd_status,
        "versions (SQL, server Python, numpy, pgvector), models and their active versions",
        ["pyrec status --dsn 'dbname=mydb'", "PYREC_DSN='dbname=mydb' pyrec status --json"],
        description="A health check: exits 0 when pyrec is installed and the server's Python"
        " serves it, 3 otherwise, with the reason.",
    )

    command(
        sub,
        "settings",
        cmd_settings,
        "pyrec's settings (pyrec.*) with their values in this session, defaults and meaning",
        [
            "pyrec settings --dsn 'dbname=mydb'",
            "PGOPTIONS='-c pyrec.keep_versions=5' pyrec settings",
        ],
        description="The rows of SELECT * FROM pyrec.settings. Set them with SET, ALTER ROLE ..."
        " SET or ALTER DATABASE ... SET; a value pyrec cannot use is an error (22023) naming"
        " the setting.",
    )
