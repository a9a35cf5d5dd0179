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
from pyrec_pg.db.stub import PsycopgPlpy
from pyrec_pg.entrypoints import server
from pyrec_pg.errors import NotReady, PyrecError, UndefinedObject
from pyrec_pg.jobs import foldin

# the checkout's sql/, which wheels carry as pyrec_pg/sql (a symlink in the repository)
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VERSION_TOKEN = "@PYREC_VERSION@"

# one statement: dollar-quoted bodies, strings, quoted names and comments are kept whole
_PIECE = re.compile(
    r"\$\$.*?\$\$|\$(?P<tag>[A-Za-z_]\w*)\$.*?\$(?P=tag)\$|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""
    r"|--[^\n]*|/\*.*?\*/|(?P<end>;)|[^$'\"\-/;]+|.",
    re.S,
)
_ROUTINE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+([\w.]+)\s*\(", re.I | re.M
)
_COMMENT = re.compile(r"^\s*COMMENT\s+ON\s+(?:FUNCTION|PROCEDURE)\s+([\w.]+)\s*\(", re.I | re.M)
_CONFIG_DUMP = re.compile(r"^\s*SELECT\s+pg_catalog\.pg_extension_config_dump\(", re.I | re.M)
_PLPYTHON = re.compile(r"\bLANGUAGE\s+plpython3u\b", re.I)


def _statements(script: str) -> list[str]:
    """Top-level statements of a SQL file, each with the comments before it; psql
    meta-commands (the extension script's \\echo guard) are dropped."""
    text = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    out, start = [], 0
    for m in _PIECE.finditer(text):
        if m.group("end"):
            out.append(text[start : m.end()].strip())
            start = m.end()
    if text[start:].strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in text[start:].splitlines()
    ):
        raise ValueError(f"unterminated statement: {text[start:][:80]!r}")
    return out


def _body(statement: str) -> str:
    """The statement without its leading comment lines."""
    lines = statement.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


def _routine(statement: str, pattern: re.Pattern[str]) -> str | None:
    m = pattern.match(_body(statement))
    return m.group(1).lower() if m else None


def _version() -> str:
    control = (SQL_DIR / "pyrec.control").read_text()
    m = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M)
    if m is None:
        raise PyrecError(f"no default_version in {SQL_DIR / 'pyrec.control'}", sqlstate="58P01")
    return m.group(1)


def _merge(source: list[str], overrides: list[str]) -> list[str]:
    """`source` with the routines `overrides` also defines replaced in place (with their
    comments); the overrides' other statements (their helpers) go first."""
    names = {_routine(s, _ROUTINE) for s in source} - {None}
    defs = {n: s for s in overrides if (n := _routine(s, _ROUTINE)) in names}
    notes = {n: s for s in overrides if (n := _routine(s, _COMMENT)) in defs}
    out = [s for s in overrides if s not in defs.values() and s not in notes.values()]
    for s in source:
        routine, note = _routine(s, _ROUTINE), _routine(s, _COMMENT)
        if routine in defs:
            out.append(defs[routine])
            if routine in notes:
                out.append(notes[routine])
        elif note not in defs:
            out.append(s)
    return out


def install_script() -> str:
    """The managed flavour's install script: sql/src/*.sql in order with the plpython3u
    routines replaced by sql/managed/<same file name> and no CREATE EXTENSION-only
    statements; sql/managed's other files go in by name order."""
    src, managed = SQL_DIR / "src", SQL_DIR / "managed"
    if not src.is_dir() or not managed.is_dir():
        raise PyrecError(
            f"the SQL sources are missing at {SQL_DIR}",
            sqlstate="58P01",
            hint="the managed install script is built from a pyrec_pg checkout"
            " (sql/src, sql/managed)",
        )
    names = sorted({p.name for d in (src, managed) for p in d.glob("*.sql")})
    parts = [f"-- pyrec {_version()}, managed flavour (pyrec_pg.entrypoints.managed)"]
    for name in names:
        source = _statements((src / name).read_text()) if (src / name).exists() else []
        extra = _statements((managed / name).read_text()) if (managed / name).exists() else []
        for s in _merge(source, extra):
            if _CONFIG_DUMP.match(_body(s)):
                continue  # extension members only; pg_dump keeps a plain schema's rows anyway
            if _PLPYTHON.search(s):
                raise ValueError(
                    f"sql/src/{name}: {_routine(s, _ROUTINE)} is plpython3u and has no"
                    f" replacement in sql/managed/{name}"
                )
            parts.append(s)
    return "\n\n".join(parts).replace(VERSION_TOKEN, _version()) + "\n"


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
        raise _error(out["error"])
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


def _ad_hoc_filters(db: Db, fn: str, arguments: dict[str, Any]) -> None:
    for key in _FILTERED.get(fn, ()):
        flt = arguments.get(key)
        if isinstance(flt, str) and not db.one(
            "SELECT 1 FROM pyrec._filters f JOIN pyrec.models m USING (model_id)"
            " WHERE m.name = $1 AND f.name = $2",
            [arguments.get("model"), flt],
            ["text", "text"],
        ):
            _compile(db, arguments.get("model"), flt)


def _error(e: dict[str, Any]) -> PyrecError:
    """An entry point's error outcome as the PyrecError subclass of its SQLSTATE (so callers
    can tell e.g. ObjectInUse, a training already running, apart)."""
    sqlstate = e.get("sqlstate")
    kind = next((c for c in _subclasses(PyrecError) if c.sqlstate == sqlstate), PyrecError)
    return kind(e.get("message", ""), sqlstate=sqlstate, detail=e.get("detail"), hint=e.get("hint"))


def _subclasses(cls: type[PyrecError]) -> list[type[PyrecError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


class _ManagedPlpy(PsycopgPlpy):
    """The stub, writing the SQL serving data of new versions in the transaction that
    activates them, so no request ever meets a version without it."""

    def commit(self) -> None:
        _fold_data(Db(self))
        super().commit()


def call(dsn: str, fn: str, arguments: dict[str, Any]) -> Any:
    """Run pyrec_pg entry point `fn` (pyrec_pg.entrypoints.server.ENTRIES) here, in the client,
    against the database at `dsn` through the plpy stub; return its result or raise its
    error (PyrecError with SQLSTATE, message, hint). Work is committed on success.

    In the managed flavour, `compile_filter` also stores the compiled expression so SQL serving
    accepts it, and trainings write the fold-in data the plpgsql fold-in reads."""
    if fn not in server.ENTRIES:
        raise UndefinedObject(
            f'pyrec_pg has no entry point "{fn}"',
            hint="entry points: " + ", ".join(sorted(server.ENTRIES)),
        )
    conn = psycopg.connect(dsn, autocommit=False)
    try:
        kind, _ = _installed(Db(PsycopgPlpy(conn)))
        plpy = _ManagedPlpy(conn) if kind == "managed" else PsycopgPlpy(conn)
        db = Db(plpy)
        if kind == "managed" and fn == "compile_filter":
            result = _compile(db, arguments.get("model"), arguments.get("expression"))
        else:
            if kind == "managed":
                _ad_hoc_filters(db, fn, arguments)
            out = json.loads(server.dispatch(plpy, fn, json.dumps(arguments)))
            if "error" in out:
                conn.rollback()
                raise _error(out["error"])
            result = out["result"]
        plpy.commit()
        return result
    finally:
        conn.close()
