"""pg_dump -Fc and pg_restore of a database using pyrec: catalog, vectors and answers survive,
and the restored database trains on without id clashes."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyrec_pg.dev.cluster import PG_BIN
from tests.conftest import TEMPLATE, clone_database
from tests.integration.upgrade_checks import (
    changed,
    differences,
    populate,
    serve,
    snapshot,
)

Conn = psycopg.Connection[Any]


def rows(conn: Conn) -> dict[str, Any]:
    """Every row pyrec keeps: the tables and sequences it marks for pg_dump, and every
    relation in schema pyrec (each version's vectors), as sorted row texts."""
    out: dict[str, Any] = {}
    relations = conn.execute(
        "SELECT c.oid::regclass::text, c.relkind FROM pg_class c"
        " WHERE c.relnamespace = 'pyrec'::regnamespace AND c.relkind IN ('r', 'S') ORDER BY 1"
    ).fetchall()
    for name, kind in relations:
        query = (
            "SELECT last_value, is_called FROM {}"
            if kind == "S"
            else "SELECT array_agg(t::text ORDER BY t::text) FROM {} t"
        )
        out[name] = conn.execute(
            sql.SQL(query).format(sql.Identifier(*name.split(".")))
        ).fetchall()
    return out


def dump_and_restore(server_dsn: str, source: str, into: Path) -> str:
    """Dump `source` with pg_dump -Fc, restore it into a new database; its name."""
    target = source.rsplit("_", 1)[0] + "_restored"
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    dump = into / "pyrec.dump"
    source_dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=source)
    target_dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=target)
    for cmd in (
        [PG_BIN / "pg_dump", "-Fc", "-f", dump, "-d", source_dsn],
        [PG_BIN / "pg_restore", "--exit-on-error", "-d", target_dsn, dump],
    ):
        done = subprocess.run([str(a) for a in cmd], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr, f"{cmd[0]}: {done.stderr}"
    return target


@pytest.fixture(scope="module")
def restored(server_dsn: str, template_dsn: str) -> Iterator[tuple[Conn, Conn]]:
    """A database with models, versions, a filter, an experiment with impressions, a forgotten
    user and audit rows; and its copy made by pg_dump and pg_restore (the tests run in order:
    the last one writes to the copy)."""
    for dsn in clone_database(server_dsn, TEMPLATE):
        with psycopg.connect(dsn, autocommit=True) as c:
            populate(c)
            for user in ("1", "2", "3"):
                c.execute(
                    "SELECT * FROM pyrec.recommend(NULL, %s, 5, experiment => 'home')", [user]
                )
            c.execute("SELECT * FROM pyrec.forget_user('movies', '13')")
            with tempfile.TemporaryDirectory() as tmp:
                target = dump_and_restore(server_dsn, c.info.dbname, Path(tmp))
            target_dsn = psycopg.conninfo.make_conninfo(server_dsn, dbname=target)
            try:
                with psycopg.connect(target_dsn, autocommit=True) as after:
                    yield c, after
            finally:
                with psycopg.connect(server_dsn, autocommit=True) as s:
                    s.execute(
                        sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(target))
                    )


def test_restore_keeps_every_row_and_the_schema(restored: tuple[Conn, Conn]) -> None:
    before, after = restored
    kept = rows(before)
    assert "pyrec.audit" in kept and "pyrec.m1_v2_items" in kept, sorted(kept)
    assert {n: (kept[n], v) for n, v in rows(after).items() if kept.get(n) != v} == {}
    assert rows(after).keys() == kept.keys()
    diff = differences(
        snapshot(before, user_objects=True), snapshot(after, user_objects=True),
        ("the dumped database", "the restored one"),
    )
    assert not diff, "\n".join(diff)


def test_restored_models_serve_the_same(restored: tuple[Conn, Conn]) -> None:
    dsns = [psycopg.conninfo.make_conninfo(c.info.dsn, dbname=c.info.dbname) for c in restored]
    assert changed(serve(dsns[0]), serve(dsns[1])) == {}


def test_restored_database_trains_on_without_id_clashes(restored: tuple[Conn, Conn]) -> None:
    before, after = restored
    top = "SELECT (SELECT max(run_id) FROM pyrec._runs), (SELECT max(audit_id) FROM pyrec.audit)"
    old_run, old_audit = before.execute(top).fetchone()  # type: ignore[misc]
    after.execute("CALL pyrec.train('movies')")
    assert after.execute(
        "SELECT version, status FROM pyrec.model_versions WHERE model = 'movies' ORDER BY 1"
    ).fetchall() == [(1, "inactive"), (2, "inactive"), (3, "active")]
    assert len(after.execute("SELECT * FROM pyrec.recommend('movies', '1', 10)").fetchall()) == 10
    new_run, new_audit = after.execute(top).fetchone()  # type: ignore[misc]
    assert new_run == old_run + 1 and new_audit > old_audit
    created = after.execute("SELECT pyrec.create_model('again', 'ratings')").fetchone()
    assert created is not None
    assert after.execute("SELECT max(model_id) FROM pyrec.models").fetchone() == (3,)
    (old_impression,) = before.execute(
        "SELECT max(recommendation_id) FROM pyrec.impressions"
    ).fetchone()  # type: ignore[misc]
    after.execute("SELECT * FROM pyrec.recommend(NULL, '4', 5, experiment => 'home')")
    assert after.execute(
        "SELECT count(*) = count(DISTINCT recommendation_id), max(recommendation_id)"
        " FROM pyrec.impressions"
    ).fetchone() == (True, old_impression + 1)
    # forgetting continues too: the restored list of forgotten users holds
    assert after.execute("SELECT user_id FROM pyrec._forgotten").fetchall() == [("13",)]


def test_only_a_superuser_loading_a_dump_skips_the_audit(conn: Conn) -> None:
    # pg_dump's output turns check_function_bodies off; an admin doing so is still audited
    conn.execute("GRANT SELECT ON ratings TO pyrec_admin")
    conn.execute("SET check_function_bodies = off")
    conn.execute("SET ROLE pyrec_admin")
    conn.execute("SELECT pyrec.create_model('by_admin', 'ratings')")
    conn.execute("RESET ROLE")
    conn.execute("SELECT pyrec.create_model('by_superuser', 'ratings')")
    assert conn.execute("SELECT role, action, model FROM pyrec.audit").fetchall() == [
        ("pyrec_admin", "create_model", "by_admin")
    ]
