"""The managed flavour: no plpython3u, installed and trained from a client as a non-superuser,
serving the same answers as the extension trained in the database."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

import pyrec_pg
from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import PG_BIN, REPO
from pyrec_pg.entrypoints import managed
from pyrec_pg.errors import PyrecError
from tests.conftest import TEMPLATE, _dsn_for, clone_database
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]
OWNER = f"pyrec_mg_owner_{os.getpid()}"
MODEL = {
    "name": "movies",
    "interactions": "ratings",
    "items": "movies",
    "users": "viewers",
    "recipe": "als",
}
NO_HORROR = 'EXCLUDE ItemID WHERE Items.genre IN ("Horror")'
AD_HOC = 'INCLUDE ItemID WHERE Items.year >= 1990'
# the routines sql/managed replaces; every other routine must be the extension's, unchanged
REPLACED = {
    "_python()",
    "_call(text,jsonb)",
    "_call_proc(text,jsonb,jsonb)",
    "_filter(integer,text)",
    "version()",
}
ADDED = {
    "_unsupported(text)",
    "_chol_solve(double precision[],double precision[],integer)",
    "_fold_in_plpgsql(integer,integer,text,text[])",
    "_user_from_attributes_plpgsql(integer,integer,text)",
}
ROUTINES = """
SELECT regexp_replace(p.oid::regprocedure::text, '^pyrec\\.', '') AS sig, l.lanname, p.prosrc,
       p.provolatile, p.prosecdef, coalesce(p.proconfig, '{}') AS config,
       ARRAY(SELECT a.grantee::regrole::text || ':' || a.privilege_type FROM aclexplode(p.proacl) a
              WHERE a.grantee <> p.proowner ORDER BY 1) AS grants
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'pyrec'::regnamespace
    OR (p.pronamespace = 'public'::regnamespace AND p.proname = 'recommend')
"""


@pytest.fixture(scope="module")
def managed_dsn(server_dsn: str) -> Iterator[str]:
    """A database with pgvector only (no plpython3u), pyrec installed in its managed flavour
    by a non-superuser owner, MovieLens-100K, model "movies" with a named filter, trained by
    the external trainer. Yields the owner's DSN."""
    name = f"pyrec_managed_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as su:
        su.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(OWNER)))
        # from PostgreSQL 16 on only a role with ADMIN OPTION on pyrec_admin (its maker, a
        # superuser) may grant it: when another role made it, that role lets the owner in
        if su.info.server_version >= 160000 and su.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = 'pyrec_admin'"
        ).fetchone():
            su.execute(sql.SQL("GRANT pyrec_admin TO {}").format(sql.Identifier(OWNER)))
        su.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(OWNER)
            )
        )
    superuser_dsn = _dsn_for(server_dsn, name)
    dsn = psycopg.conninfo.make_conninfo(superuser_dsn, user=OWNER)
    try:
        with psycopg.connect(superuser_dsn, autocommit=True) as su:
            su.execute("CREATE EXTENSION vector")  # what a managed service's admin role may do
        with psycopg.connect(dsn) as conn:
            assert managed.install(conn) == pyrec_pg.__version__
            movielens.load(conn)
        managed.call(dsn, "create_model", MODEL)
        managed.call(dsn, "create_filter", {"model": "movies", "name": "no_horror",
                                            "expression": NO_HORROR})
        managed.call(dsn, "train", {"model": "movies"})
        yield dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as su:
            su.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            su.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(OWNER)))


@pytest.fixture(scope="module")
def extension_dsn(server_dsn: str, template_dsn: str) -> Iterator[str]:
    """The extension flavour, trained in the database on the same data with the same recipe."""
    for dsn in clone_database(server_dsn, TEMPLATE):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
                " users => 'viewers', recipe => 'als')"
            )
            conn.execute("SELECT pyrec.create_filter('movies', 'no_horror', %s)", [NO_HORROR])
            conn.execute("CALL pyrec.train('movies')")
        yield dsn


@pytest.fixture
def mg(managed_dsn: str) -> Iterator[Conn]:
    with psycopg.connect(managed_dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def ext(extension_dsn: str) -> Iterator[Conn]:
    with psycopg.connect(extension_dsn, autocommit=True) as c:
        yield c


def test_installed_by_a_non_superuser_without_plpython3u(mg: Conn) -> None:
    assert mg.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
        False,
    )
    assert mg.execute(
        "SELECT count(*) FROM pg_language WHERE lanname LIKE 'plpython%'"
    ).fetchone() == (0,)
    assert mg.execute(
        "SELECT array_agg(extname ORDER BY extname) FROM pg_extension"
    ).fetchone() == (["plpgsql", "vector"],)
    assert managed.flavour(mg) == "managed"
    version = mg.execute("SELECT pyrec.version()").fetchone()[0]  # type: ignore[index]
    assert version["sql"] == pyrec_pg.__version__ and version["flavour"] == "managed"
    assert version["postgres_major"] == mg.info.server_version // 10000
    languages = {r[1] for r in mg.execute(ROUTINES)}
    assert languages == {"plpgsql", "sql"}


def test_every_routine_but_the_bridge_is_the_extension_s(mg: Conn, ext: Conn) -> None:
    assert managed.flavour(ext) == "extension"
    theirs = {r[0]: r[1:] for r in ext.execute(ROUTINES)}
    ours = {r[0]: r[1:] for r in mg.execute(ROUTINES)}
    assert set(ours) == set(theirs) | ADDED
    for sig, (lang, src, volatility, secdef, config, grants) in theirs.items():
        mine = ours[sig]
        assert (mine[3], mine[4], mine[5]) == (secdef, config, grants), sig
        if sig in REPLACED:
            assert lang == "plpython3u" or sig == "version()", sig
            assert mine[0] in ("plpgsql", "sql"), sig
        else:
            assert (mine[0], mine[1], mine[2]) == (lang, src, volatility), sig
    tables = (
        "SELECT relname FROM pg_class WHERE relnamespace = 'pyrec'::regnamespace"
        " AND relkind IN ('r', 'v')"
    )
    assert {r[0] for r in mg.execute(tables)} - {r[0] for r in ext.execute(tables)} == {
        "_installation", "_fold_data", "_compiled_filters"
    }


def test_external_training_gives_the_in_database_metrics_and_vectors(mg: Conn, ext: Conn) -> None:
    q = "SELECT params, metrics, n_users, n_items, n_interactions FROM pyrec.model_versions"
    (p1, m1, *n1), (p2, m2, *n2) = mg.execute(q).fetchone(), ext.execute(q).fetchone()  # type: ignore[misc]
    assert p1 == p2 and n1 == n2 == [943, 1682, 100000]
    assert m1.keys() == m2.keys() and m1["ndcg@10"] > 0.4
    # the same code, seed and numpy/scipy/implicit on both sides: equal up to float summation
    # order (exactly equal on this machine); 1e-6 is far below the seeds' spread (~0.005 ndcg)
    for key in m1:
        if isinstance(m1[key], float):
            assert m1[key] == pytest.approx(m2[key], abs=1e-6), key
    vectors = "SELECT array_agg(embedding::real[] ORDER BY item_id) FROM pyrec.m1_v1_items"
    a = np.array(mg.execute(vectors).fetchone()[0])  # type: ignore[index]
    b = np.array(ext.execute(vectors).fetchone()[0])  # type: ignore[index]
    assert np.abs(a - b).max() < 1e-5


def _served(conn: Conn, query: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    rows = conn.execute(query, args).fetchall()
    assert rows, query
    return rows


def _same(ours: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> None:
    """Same items, ranks and sources; scores equal to float32 precision."""
    assert [(r[0], r[2], r[3]) for r in ours] == [(r[0], r[2], r[3]) for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert (a[1] is None and b[1] is None) or a[1] == pytest.approx(b[1], rel=1e-5, abs=1e-6)


SERVING = [
    ("SELECT * FROM pyrec.recommend('movies', '42', 10)", "model"),
    ("SELECT * FROM recommend(42, 10, 'no_horror')", "model"),
    ("SELECT * FROM pyrec.similar_items('movies', '50', 10)", "model"),
    ("SELECT * FROM pyrec.rank_items('movies', '42', ARRAY['1', '50', '181', 'nope'])", None),
    ("SELECT * FROM pyrec.recommend('movies', '5000', 10)", "fold-in"),  # a new user's events
    ("SELECT * FROM pyrec.recommend('movies', '43', 10, 'no_horror')", "fold-in"),  # new event
    ("SELECT * FROM pyrec.recommend('movies', '6000', 10)", "attributes"),  # a new viewer
    ("SELECT * FROM pyrec.rank_items('movies', '5000', ARRAY['1', '98', '127'])", "fold-in"),
    ("SELECT * FROM pyrec.recommend_for_items('movies', ARRAY['50', '181', '172'], 10)", "fold-in"),
    ("SELECT * FROM pyrec.recommend('movies', '42', 5, exclude_items => ARRAY['174', '1'])", None),
    ("SELECT * FROM pyrec.similar_items('movies', '3', 10)", "model"),  # 2 is withdrawn
]


@pytest.mark.parametrize(("query", "source"), SERVING)
def test_serving_answers_as_the_extension(mg: Conn, ext: Conn, query: str, source: str) -> None:
    for conn in (mg, ext):
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO ratings (viewer_id, movie_id, rating, rated_at) SELECT 5000, m, 5, now()"
            " FROM unnest(ARRAY[1, 50, 181, 172, 174]) m UNION ALL SELECT 43, 1000, 4, now()"
        )
        conn.execute("INSERT INTO viewers SELECT 6000, age, gender, occupation, zip FROM viewers"
                     " WHERE viewer_id = 7")
        conn.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ratings_movie_id_fkey")
        conn.execute("DELETE FROM movies WHERE movie_id = 2")  # withdrawn: served by neither
    try:
        ours, theirs = _served(mg, query), _served(ext, query)
        _same(ours, theirs)
        if source is not None:
            assert {r[3] for r in ours} == {source}
        assert "2" not in {r[0] for r in ours if r[3] != "unknown"}
    finally:
        mg.execute("ROLLBACK")
        ext.execute("ROLLBACK")


def test_plpgsql_fold_in_solves_as_the_python(managed_dsn: str, mg: Conn) -> None:
    """The plpgsql fold-in against pyrec_pg.jobs.foldin run in the client, for users whose
    history has grown; prints both latencies (Python: through the stub, so plus round trips)."""
    users = [str(u) for u in range(1, 944, 37)]
    ours, python, t_sql, t_py = [], [], [], []
    for u in users:
        t = time.perf_counter()
        row = mg.execute(
            "SELECT pyrec._call('fold_in', jsonb_build_object('model_id', 1, 'version', 1,"
            " 'user_id', %s::text))->>'result'", [u]
        ).fetchone()
        t_sql.append(time.perf_counter() - t)
        t = time.perf_counter()
        python.append(managed.call(managed_dsn, "fold_in", {"model_id": 1, "version": 1,
                                                            "user_id": u}))
        t_py.append(time.perf_counter() - t)
        ours.append(row[0])  # type: ignore[index]
    for a, b in zip(ours, python, strict=True):
        x, y = np.array(json.loads(a)), np.array(json.loads(b))
        assert np.abs(x - y).max() <= 1e-5 * np.abs(y).max()
    print(f"\nfold-in p50: plpgsql {statistics.median(t_sql) * 1000:.1f} ms,"
          f" Python in the client {statistics.median(t_py) * 1000:.1f} ms (with a connection)")


def test_python_entries_are_refused_with_the_command_to_run(mg: Conn) -> None:
    needs = "pyrec.train needs the pyrec_pg Python package"
    with raises_pg(mg, "0A000", needs, "pyrec train --dsn"):
        mg.execute("CALL pyrec.train('movies')")
    with raises_pg(mg, "0A000", "pyrec.create_model", "pyrec create-model"):
        mg.execute("SELECT pyrec.create_model('more', 'ratings')")
    with raises_pg(mg, "0A000", "pyrec.create_filter", "pyrec create-filter"):
        mg.execute("SELECT pyrec.create_filter('movies', 'x', %s)", [AD_HOC])
    with raises_pg(mg, "0A000", "pyrec.refresh_items", "managed.call(dsn, 'refresh_items'"):
        mg.execute("SELECT pyrec.refresh_items('movies')")


def test_an_ad_hoc_filter_serves_once_compiled_from_a_client(
    managed_dsn: str, mg: Conn, ext: Conn
) -> None:
    query = "SELECT * FROM pyrec.recommend('movies', '42', 10, %s)"
    with raises_pg(mg, "0A000", f"filter '{AD_HOC}' is neither a named filter", "compile_filter"):
        mg.execute(query, [AD_HOC])
    with raises_pg(mg, "0A000", "'no_horor' is neither a named filter", "create-filter"):
        mg.execute(query, ["no_horor"])  # a misspelt name says what it is not
    compiled = managed.call(
        managed_dsn, "compile_filter", {"model": "movies", "expression": AD_HOC}
    )
    assert compiled["target"] == "ItemID"
    _same(_served(mg, query, [AD_HOC]), _served(ext, query, [AD_HOC]))
    with pytest.raises(PyrecError) as bad:  # the compiler's own errors reach the client
        managed.call(managed_dsn, "compile_filter", {"model": "movies", "expression": "year >"})
    assert bad.value.sqlstate == "42601" and bad.value.hint


def test_batch_with_an_ad_hoc_filter_from_a_client(managed_dsn: str, mg: Conn) -> None:
    out = managed.call(managed_dsn, "batch_recommend", {
        "model": "movies", "users": "SELECT viewer_id FROM viewers WHERE viewer_id <= 20",
        "k": 5, "filter": "INCLUDE ItemID WHERE Items.year < 1980", "into_table": "public.recs"})
    assert out["rows"] == 100
    old = mg.execute(
        "SELECT count(*) FILTER (WHERE m.year < 1980), count(*) FROM public.recs r"
        " JOIN movies m ON m.movie_id = r.item_id::int"
    ).fetchone()
    assert old == (100, 100)


def test_a_reader_serves_fold_in_and_attributes(managed_dsn: str, server_dsn: str) -> None:
    reader = f"pyrec_mg_reader_{os.getpid()}"
    su_dsn = psycopg.conninfo.make_conninfo(managed_dsn, user=psycopg.conninfo.conninfo_to_dict(
        server_dsn).get("user", "postgres"))
    with psycopg.connect(su_dsn, autocommit=True) as su:
        su.execute(sql.SQL("CREATE ROLE {} IN ROLE pyrec_reader").format(sql.Identifier(reader)))
        su.execute(sql.SQL("GRANT SELECT ON ratings, movies, viewers TO {}").format(
            sql.Identifier(reader)))
        try:
            su.execute("BEGIN")
            su.execute("INSERT INTO ratings VALUES (5001, 1, 5, now()), (5001, 50, 5, now())")
            su.execute("INSERT INTO viewers VALUES (6001, 30, 'F', 'writer', '10001')")
            su.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(reader)))
            for user, source in (("5001", "fold-in"), ("6001", "attributes"), ("42", "model")):
                got = su.execute(
                    "SELECT DISTINCT source FROM pyrec.recommend('movies', %s, 5, 'no_horror')",
                    [user],
                ).fetchall()
                assert got == [(source,)], user
            su.execute("ROLLBACK")
        finally:
            su.execute(sql.SQL("REVOKE ALL ON ratings, movies, viewers FROM {}").format(
                sql.Identifier(reader)))
            su.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))


def test_install_refuses_a_database_that_has_pyrec(mg: Conn, ext: Conn) -> None:
    with raises_pg(mg, "42710", "(managed flavour) is already installed", "DROP SCHEMA pyrec"):
        managed.install(mg)
    with raises_pg(ext, "42710", "already installed in database", "DROP EXTENSION pyrec"):
        managed.install(ext)


def test_the_script_has_no_extension_only_statements() -> None:
    script = managed.install_script()
    for construct in ("LANGUAGE plpython", "pg_extension_config_dump", "\\echo",
                      "@extschema@", "ALTER EXTENSION", "@PYREC_VERSION@"):
        assert construct not in script, construct
    assert f"INSERT INTO pyrec._installation (version) VALUES ('{pyrec_pg.__version__}')" in script


def test_the_script_is_the_makefiles_managed_artifact(tmp_path: Path) -> None:
    # what a DBA builds with `make -C sql managed` is what pyrec_pg installs, byte for byte
    target = tmp_path / "pyrec-managed.sql"
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "sql"), "managed", f"MANAGED={target}",
         f"PG_CONFIG={PG_BIN / 'pg_config'}"],
        check=True,
    )
    assert target.read_text() == managed.install_script()
