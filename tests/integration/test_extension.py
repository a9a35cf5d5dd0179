"""The extension itself: install, versions, and the server's Python."""

from __future__ import annotations

from typing import Any

import psycopg

import pyrec_pg
from tests.integration.helpers import raises_pg


def test_version_reports_sql_python_and_pgvector(conn: psycopg.Connection[Any]) -> None:
    info = conn.execute("SELECT pyrec.version()").fetchone()[0]  # type: ignore[index]
    assert info["sql"] == info["python_package"] == pyrec_pg.__version__
    assert tuple(int(p) for p in info["pgvector"].split(".")) >= (0, 8, 0)
    assert info["python"].startswith("3.")
    assert info["postgres_major"] == conn.info.server_version // 10000 >= 15
    assert info["postgres"].startswith(str(info["postgres_major"]))


def test_every_api_object_has_a_comment(conn: psycopg.Connection[Any]) -> None:
    missing = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = 'pyrec'::regnamespace AND obj_description(p.oid) IS NULL"
        " UNION ALL SELECT c.relname::text FROM pg_class c"
        " WHERE c.relnamespace = 'pyrec'::regnamespace AND c.relkind IN ('r', 'v')"
        " AND obj_description(c.oid) IS NULL"
    ).fetchall()
    assert missing == []


def test_version_mismatch_fails_loudly(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pg_extension SET extversion = '0.0.1' WHERE extname = 'pyrec'")
    with raises_pg(
        conn, "55000", "does not match the Python package version", "ALTER EXTENSION pyrec UPDATE"
    ):
        conn.execute("SELECT pyrec.version()")


def test_missing_python_package_names_the_fix(conn: psycopg.Connection[Any]) -> None:
    # make this session's server Python unable to import pyrec_pg, as on a server without it
    conn.execute("DO $$ import sys; sys.modules['pyrec_pg'] = None $$ LANGUAGE plpython3u")
    with raises_pg(conn, "58P01", "cannot import pyrec_pg", "make install"):
        conn.execute("SELECT pyrec.create_model('m', 'ratings')")


def test_drop_extension_removes_its_objects(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pyrec.create_model('m', 'ratings')")
    conn.execute("DROP EXTENSION pyrec CASCADE")
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'recommend'").fetchone() == (
        0,
    )
    assert conn.execute("SELECT to_regclass('pyrec.models')").fetchone() == (None,)
    # the schema itself is created by Postgres from the control file, so it stays (empty)
    assert conn.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'pyrec'::regnamespace"
    ).fetchone() == (0,)
    conn.execute("CREATE EXTENSION pyrec")


def test_settings_view_lists_each_setting_with_its_value(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET pyrec.keep_versions = '5'")
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT name, value, default_value, type, description FROM pyrec.settings"
        ).fetchall()
    }
    assert rows["pyrec.keep_versions"][:3] == ("5", "3", "integer")
    assert all(name.startswith("pyrec.") and desc for name, (*_, desc) in rows.items())
