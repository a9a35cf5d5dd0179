"""The managed flavour: pyrec without plpython3u, installed by a client and trained from outside."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import psycopg

from pyrec_pg import SQL_VERSIONS
from pyrec_pg.catalog.models import get_model
from pyrec_pg.db import Db
from pyrec_pg.db.standby import check as standby_check
from pyrec_pg.db.stub import PsycopgPlpy
from pyrec_pg.entrypoints import server
from pyrec_pg.errors import (
    FeatureNotSupported,
    NotReady,
    UndefinedFile,
    UndefinedObject,
    from_fields,
)
from pyrec_pg.jobs import foldin

# the checkout's sql/, which wheels carry as pyrec_pg/sql (a symlink in the repository)
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VERSION_TOKEN = "@PYREC_VERSION@"

_PLPYTHON = re.compile(r"\bLANGUAGE\s+plpython3u\b", re.I)


def _version() -> str:
    control = (SQL_DIR / "pyrec.control").read_text()
    m = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M)
    if m is None:
        raise UndefinedFile(f"no default_version in {SQL_DIR / 'pyrec.control'}")
    return m.group(1)


def _folders() -> list[str]:
    """The source folders in install order, as sql/Makefile lists them (SQL_FOLDERS)."""
    makefile = (SQL_DIR / "Makefile").read_text()
    m = re.search(r"^SQL_FOLDERS\s*=\s*(.+)$", makefile, re.M)
    if m is None:
        raise UndefinedFile(f"no SQL_FOLDERS in {SQL_DIR / 'Makefile'}")
    return m.group(1).split()


def _managed_files() -> list[Path]:
    """sql/src's files in install order, each replaced by sql/managed/<same path> where that
    exists; managed-only files join their folder in name order (sql/Makefile's rule)."""
    src, managed = SQL_DIR / "src", SQL_DIR / "managed"
    files = []
    for folder in _folders():
        names = sorted({p.name for d in (src / folder, managed / folder) for p in d.glob("*.sql")})
        files += [
            managed / folder / n if (managed / folder / n).exists() else src / folder / n
            for n in names
        ]
    return files


def install_script() -> str:
    """The managed flavour's install script, byte for byte what `make -C sql managed` writes:
    the extension's sources with sql/managed's files in place of the same paths."""
    if not (SQL_DIR / "src").is_dir() or not (SQL_DIR / "managed").is_dir():
        raise UndefinedFile(
            f"the SQL sources are missing at {SQL_DIR}",
            hint="the managed install script is built from a pyrec_pg checkout"
            " (sql/Makefile, sql/src, sql/managed)",
        )
    parts = []
    for path in _managed_files():
        text = path.read_text()
        if _PLPYTHON.search(text):
            relative = path.relative_to(SQL_DIR / "src")
            raise ValueError(
                f"sql/src/{relative} defines plpython3u routines and has no replacement"
                f" sql/managed/{relative}"
            )
        parts.append(text)
    return "".join(parts).replace(VERSION_TOKEN, _version())


def install(conn: psycopg.Connection[Any]) -> str:
    """Run the managed install script in one transaction (committed); return the version.

    Refuses (SQLSTATE 42710) when pyrec is installed already, in either flavour."""
    script = install_script()
    with conn.transaction():
        conn.execute(script.encode())
    if not conn.autocommit:
        conn.commit()
    return _version()


def flavour(conn: psycopg.Connection[Any]) -> Literal["extension", "managed"] | None:
    """How pyrec is installed in the connection's database, or None when it is not."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pyrec'),"
        " to_regclass('pyrec._installation') IS NOT NULL"
    ).fetchone()
    assert row is not None
    if row[0]:
        return "extension"
    return "managed" if row[1] else None


def _installed(db: Db) -> tuple[str, str]:
    """The flavour and SQL version of the database; refuses a version this package does not
    serve (as pyrec._python does in the server)."""
    row = db.one(
        "SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec') AS ext,"
        " to_regclass('pyrec._installation') IS NOT NULL AS managed"
    )
    assert row is not None
    if row["ext"] is not None:
        kind, version = "extension", str(row["ext"])
    elif row["managed"]:
        kind, version = "managed", str(db.scalar("SELECT version FROM pyrec._installation"))
    else:
        raise NotReady(
            "pyrec is not installed in this database",
            hint="CREATE EXTENSION pyrec CASCADE where plpython3u is available, else install"
            " the managed flavour: pyrec_pg.entrypoints.managed.install(conn)",
        )
    if version not in SQL_VERSIONS:
        raise NotReady(
            f"pyrec SQL version {version} ({kind}) is not served by this pyrec_pg",
            detail=f"this package serves SQL versions {', '.join(SQL_VERSIONS)}",
            hint="use the pyrec_pg release that installed this database",
        )
    return kind, version


def _fold_data(db: Db) -> int:
    """Write the fold-in data of ALS versions that lack it (the plpgsql fold-in reads it)."""
    missing = db.rows(
        "SELECT v.model_id, v.version, m.name, v.items_table, v.fold_state::text AS state"
        " FROM pyrec._versions v JOIN pyrec.models m USING (model_id)"
        " WHERE v.fold = 'least_squares' AND NOT EXISTS (SELECT 1 FROM pyrec._fold_data d"
        " WHERE d.model_id = v.model_id AND d.version = v.version)"
    )
    for row in missing:
        state = json.loads(row["state"])
        model = get_model(db, row["name"])
        history, consts = foldin.history_sql(
            db, model, state.get("options") or {}, row["items_table"]
        )
        db.run(
            "INSERT INTO pyrec._fold_data (model_id, version, history_sql, consts, newest, gram)"
            " SELECT $1, $2, $3, $4, $5, ARRAY(SELECT x::float8 FROM pyrec._versions v,"
            " jsonb_path_query(v.fold_state, '$.gram[*][*]') x"
            " WHERE v.model_id = $1 AND v.version = $2)",
            [row["model_id"], row["version"], history, consts, float(state.get("newest") or 0)],
            ["int4", "int4", "text", "jsonb", "float8"],
        )
    return len(missing)


def prepare_serving(conn: psycopg.Connection[Any]) -> int:
    """Write what SQL serving needs of versions trained without `call` (the plpgsql fold-in's
    data); return how many versions got it. Commits."""
    plpy = PsycopgPlpy(conn)
    n = _fold_data(Db(plpy))
    conn.commit()
    return n


def _compile(db: Db, model: Any, expression: Any) -> Any:
    """Compile an ad-hoc filter client-side and keep it where pyrec._filter finds it."""
    args = json.dumps({"model": model, "expression": expression})
    out = json.loads(server.dispatch(db.plpy, "compile_filter", args))
    if "error" in out:
        raise from_fields(out["error"])
    db.run(
        "INSERT INTO pyrec._compiled_filters (model_id, expression, compiled)"
        " SELECT m.model_id, $2, $3 FROM pyrec.models m WHERE m.name = $1"
        " ON CONFLICT (model_id, md5(expression)) DO UPDATE SET compiled = excluded.compiled,"
        " compiled_at = now(), compiled_by = current_user",
        [model, expression, json.dumps(out["result"])],
        ["text", "text", "jsonb"],
    )
    return out["result"]


# entry points whose filter arguments the Python resolves in SQL (pyrec._resolve_filter)
_FILTERED = {
    "batch_recommend": ("filter",),
    "batch_users_for_items": ("filter",),
}


def ranking_filters(ranking: Any) -> list[str]:
    """The filter expressions of a ranking argument's boosts (the server checks the rest)."""
    boosts = ranking.get("boosts") if isinstance(ranking, dict) else None
    if not isinstance(boosts, list):
        return []
    return [b["filter"] for b in boosts if isinstance(b, dict) and isinstance(b.get("filter"), str)]


def _ad_hoc_filters(db: Db, fn: str, arguments: dict[str, Any]) -> None:
    found = [arguments.get(key) for key in _FILTERED.get(fn, ())]
    if fn == "batch_recommend":
        found += ranking_filters(arguments.get("ranking"))
    for flt in found:
        if isinstance(flt, str) and not db.one(
            "SELECT 1 FROM pyrec._filters f JOIN pyrec.models m USING (model_id)"
            " WHERE m.name = $1 AND f.name = $2",
            [arguments.get("model"), flt],
            ["text", "text"],
        ):
            _compile(db, arguments.get("model"), flt)


class _ManagedPlpy(PsycopgPlpy):
    """The stub, writing the SQL serving data of new versions in the transaction that
    activates them, so no request ever meets a version without it."""

    def commit(self) -> None:
        _fold_data(Db(self))
        super().commit()


def call(dsn: str, fn: str, arguments: dict[str, Any], *, read_dsn: str | None = None) -> Any:
    """Run pyrec_pg entry point `fn` (pyrec_pg.entrypoints.server.ENTRIES) here, in the client,
    against the database at `dsn` through the plpy stub; return its result or raise its
    error (PyrecError with SQLSTATE, message, hint). Work is committed on success.

    In the managed flavour, `compile_filter` also stores the compiled expression so SQL serving
    accepts it, and trainings write the fold-in data the plpgsql fold-in reads.

    `read_dsn` (entry "train" only; either flavour) is a hot standby of the database at `dsn`:
    the training reads the model's relations there, and writes its run, version and
    activation at `dsn` in one transaction as always. A server that is not a standby of that
    database is refused (StandbyMismatch, 55000) before anything is written; the result's
    `read_from` says how far the standby's replay was behind."""
    if fn not in server.ENTRIES:
        raise UndefinedObject(
            f'pyrec_pg has no entry point "{fn}"',
            hint="entry points: " + ", ".join(sorted(server.ENTRIES)),
        )
    if read_dsn is not None and fn != "train":
        raise FeatureNotSupported(
            f'entry point "{fn}" does not read from a standby',
            hint='read_dsn is for "train": leave it out for other entry points',
        )
    conn = psycopg.connect(dsn, autocommit=False)
    standby: PsycopgPlpy | None = None
    try:
        kind, _ = _installed(Db(PsycopgPlpy(conn)))
        plpy = _ManagedPlpy(conn) if kind == "managed" else PsycopgPlpy(conn)
        db = Db(plpy)
        if kind == "managed" and fn == "compile_filter":
            result = _compile(db, arguments.get("model"), arguments.get("expression"))
        else:
            if kind == "managed":
                _ad_hoc_filters(db, fn, arguments)
            reader = None
            if read_dsn is not None:
                standby = PsycopgPlpy.connect(read_dsn)
                reader = Db(standby)
                # checked here too, so that a refusal keeps its class (StandbyMismatch): errors
                # crossing dispatch come back as the class of their SQLSTATE (NotReady)
                standby_check(db, reader)
            out = json.loads(server.dispatch(plpy, fn, json.dumps(arguments), reader))
            if "error" in out:
                conn.rollback()
                raise from_fields(out["error"])
            result = out["result"]
        plpy.commit()
        return result
    finally:
        if standby is not None:
            standby.conn.close()
        conn.close()
