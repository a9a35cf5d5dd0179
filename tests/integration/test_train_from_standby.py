"""Training off the primary: the external trainer reads the model's relations on a hot standby
and writes the version to the primary, in both flavours, from Python and from the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster
from pyrec_pg.entrypoints import managed
from pyrec_pg.errors import PyrecError, StandbyMismatch, UndefinedTable
from tests.conftest import FAST
from tests.integration.helpers import managed_movies
from tests.integration.test_cli import fails, ok, run

Conn = psycopg.Connection[Any]
MODEL = "SELECT pyrec.create_model('movies', 'ratings', items => 'movies', users => 'viewers',"
MODEL += f" options => '{FAST}')"
NEW_USER = 7000  # rated on the primary while the standby's replay is paused


@dataclass
class Site:
    """One database on the primary and the same database on its standby."""

    primary: str  # DSNs
    standby: str
    p: Conn  # autocommit connections
    s: Conn


@dataclass
class Pair:
    extension: Site
    managed: Site
    primary: Cluster
    replica: Cluster


def caught_up(site: Site) -> None:
    """Wait until the standby has replayed all the WAL the primary has inserted."""
    lsn = site.p.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 30
    query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    while site.s.execute(query, [lsn]).fetchone() != (True,):
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.02)


@contextmanager
def replay_paused(site: Site) -> Iterator[None]:
    """The standby stops replaying the primary's WAL until the block ends (it still receives it)."""
    site.s.execute("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + 30
    while site.s.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() != ("paused",):
        assert time.monotonic() < deadline, "the standby's replay did not pause"
        time.sleep(0.02)
    try:
        yield
    finally:
        site.s.execute("SELECT pg_wal_replay_resume()")
        caught_up(site)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A primary with MovieLens-100K and model "movies" (untrained) in database "shop" (the
    extension) and in database "shop_managed" (the managed flavour), and a hot standby."""
    with Cluster(tcp=True) as primary:
        with psycopg.connect(primary.dsn(), autocommit=True) as c:
            for name in ("shop", "shop_managed"):
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(primary.dsn("shop"), autocommit=True) as c:
            c.execute("CREATE EXTENSION pyrec CASCADE")
            movielens.load(c)
            c.execute(MODEL)
        with psycopg.connect(primary.dsn("shop_managed"), autocommit=True) as c:
            c.execute("CREATE EXTENSION vector")
            managed.install(c)
            movielens.load(c)
        managed_movies(primary.dsn("shop_managed"), FAST)
        replica = primary.standby()
        try:
            sites = []
            for name in ("shop", "shop_managed"):
                p = psycopg.connect(primary.dsn(name), autocommit=True)
                s = psycopg.connect(replica.dsn(name), autocommit=True)
                sites.append(Site(primary.dsn(name), replica.dsn(name), p, s))
                caught_up(sites[-1])
            yield Pair(sites[0], sites[1], primary, replica)
            for site in sites:
                site.p.close()
                site.s.close()
        finally:
            replica.stop()


def versions(conn: Conn, model: str = "movies") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, status, n_users, n_items, n_interactions FROM pyrec.model_versions"
        " WHERE model = %s ORDER BY version",
        [model],
    ).fetchall()


def runs(conn: Conn, model: str = "movies") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT status, version, message FROM pyrec.training_runs WHERE model = %s ORDER BY run_id",
        [model],
    ).fetchall()


def vectors(conn: Conn, version: int, kind: str) -> tuple[list[str], Any]:
    table = conn.execute(
        f"SELECT {kind}_table FROM pyrec.model_versions WHERE model = 'movies' AND version = %s",
        [version],
    ).fetchone()[0]  # type: ignore[index]
    rows = conn.execute(
        sql.SQL("SELECT {}::text, embedding::real[] FROM pyrec.{} ORDER BY 1").format(
            sql.Identifier(f"{kind[:-1]}_id"), sql.Identifier(table)
        )
    ).fetchall()
    return [r[0] for r in rows], np.array([r[1] for r in rows])


def tuples_read(conn: Conn) -> int:
    """Rows of the ratings table read by scans of this server (each server counts its own)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'ratings'"
    ).fetchone()
    return int(row[0]) if row else 0


def read_by(conn: Conn, least: int) -> int:
    """Wait until the server counts `least` rows of ratings read (a session's counts arrive
    when its transaction or the session ends); return the count."""
    deadline = time.monotonic() + 10
    while (n := tuples_read(conn)) < least:
        assert time.monotonic() < deadline, f"ratings read {n} rows, not {least}"
        time.sleep(0.1)
    return n


def same_version(conn: Conn, a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two trainings' summaries and vectors are the same training's."""
    for key in ("users", "items", "interactions", "metrics", "mode"):
        assert a[key] == b[key], key
    assert a["metrics"]["ndcg@10"] > 0.3
    for kind in ("items", "users"):
        ids_a, va = vectors(conn, a["version"], kind)
        ids_b, vb = vectors(conn, b["version"], kind)
        assert ids_a == ids_b and len(ids_a) > 900
        assert np.abs(va - vb).max() < 1e-6, kind


def test_a_version_read_on_the_standby_equals_one_read_on_the_primary(pair: Pair) -> None:
    site = pair.extension
    primary_read, standby_read = tuples_read(site.p), tuples_read(site.s)
    on_primary = managed.call(site.primary, "train", {"model": "movies"})
    assert "read_from" not in on_primary and "read from" not in on_primary["notice"]
    primary_read = read_by(site.p, primary_read + 100_000)
    on_standby = managed.call(site.primary, "train", {"model": "movies"}, read_dsn=site.standby)
    assert (on_primary["version"], on_standby["version"]) == (1, 2)
    same_version(site.p, on_primary, on_standby)
    source = on_standby["read_from"]
    assert set(source) == {"replay_lsn", "replayed_until", "lag_bytes", "lag_seconds"}
    assert source["lag_bytes"] >= 0 and source["replayed_until"] is not None
    assert "; read from a hot standby" in on_standby["notice"]
    # the standby read the interactions; the primary did not
    read_by(site.s, standby_read + 100_000)
    time.sleep(1.0)
    assert tuples_read(site.p) == primary_read
    assert runs(site.p)[-2:] == [("succeeded", 1, None), ("succeeded", 2, None)]
    assert versions(site.p)[-1][:2] == (2, "active")
    caught_up(site)
    assert versions(site.s) == versions(site.p)  # the standby serves what it replays


def test_rows_the_standby_has_not_replayed_are_not_read(pair: Pair) -> None:
    site = pair.extension
    before = managed.call(site.primary, "train", {"model": "movies"}, read_dsn=site.standby)
    with replay_paused(site):
        site.p.execute(
            "INSERT INTO ratings SELECT %s, m, 4, now() FROM generate_series(1, 20) m", [NEW_USER]
        )
        lagging = managed.call(site.primary, "train", {"model": "movies"}, read_dsn=site.standby)
        on_primary = managed.call(site.primary, "train", {"model": "movies"})
    after = managed.call(site.primary, "train", {"model": "movies"}, read_dsn=site.standby)
    try:
        assert lagging["users"] == before["users"]  # the standby had not replayed the rows
        assert lagging["interactions"] == before["interactions"]
        assert on_primary["users"] == before["users"] + 1
        assert (after["users"], after["interactions"]) == (
            on_primary["users"],
            on_primary["interactions"],
        )
        late = lagging["read_from"]
        assert late["lag_bytes"] > 0 and late["lag_seconds"] is not None
        assert late["lag_seconds"] >= 0 and "bytes of WAL" in lagging["notice"]
        assert after["read_from"]["replay_lsn"] != late["replay_lsn"]
    finally:
        site.p.execute("DELETE FROM ratings WHERE viewer_id = %s", [NEW_USER])
        caught_up(site)


def test_a_read_dsn_that_is_not_a_standby_of_the_database_is_refused(
    pair: Pair, server_dsn: str
) -> None:
    site = pair.extension
    other_database = psycopg.conninfo.make_conninfo(site.standby, dbname="shop_managed")
    cases = [
        (server_dsn, "the read DSN reaches another cluster: its database system identifier is"),
        (site.primary, "not a standby (pg_is_in_recovery() is false there"),
        (other_database, 'reaches database "shop_managed"'),
    ]
    before = (versions(site.p), runs(site.p))
    for read_dsn, message in cases:
        with pytest.raises(StandbyMismatch) as info:
            managed.call(site.primary, "train", {"model": "movies"}, read_dsn=read_dsn)
        e = info.value
        assert e.sqlstate == "55000" and message in e.message, e.message
        assert e.hint and "read DSN" in e.hint
        assert (versions(site.p), runs(site.p)) == before  # refused before the run started
    system = site.p.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    with pytest.raises(StandbyMismatch, match=f"the primary's is {system[0]}"):  # type: ignore[index]
        managed.call(site.primary, "train", {"model": "movies"}, read_dsn=server_dsn)
    with pytest.raises(PyrecError) as other:  # only trainings read from a standby
        managed.call(site.primary, "evaluate", {"model": "movies"}, read_dsn=site.standby)
    assert other.value.sqlstate == "0A000" and other.value.hint


def test_a_failed_read_on_the_standby_leaves_a_failed_run_and_the_version_serving(
    pair: Pair,
) -> None:
    """The model's row is the primary's: a relation the standby has not replayed yet fails
    the training, as a failed run, and the version before it keeps serving."""
    site = pair.extension
    with replay_paused(site):
        site.p.execute("CREATE TABLE ratings_late AS SELECT * FROM ratings")
        site.p.execute(
            "SELECT pyrec.create_model('late', 'ratings_late', options => %s::jsonb)", [FAST]
        )
        managed.call(site.primary, "train", {"model": "late"})
        served = site.p.execute("SELECT * FROM pyrec.recommend('late', '42', 5)").fetchall()
        with pytest.raises(UndefinedTable) as info:
            managed.call(site.primary, "train", {"model": "late"}, read_dsn=site.standby)
        e = info.value
        assert e.sqlstate == "42P01" and "public.ratings_late" in e.message, e.message
        assert e.detail and "hot standby" in e.detail
        assert runs(site.p, "late") == [("succeeded", 1, None), ("failed", None, e.message)]
        assert versions(site.p, "late") == [(1, "active", 943, 1682, 100000)]
        assert site.p.execute("SELECT * FROM pyrec.recommend('late', '42', 5)").fetchall() == served
        tables = "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE %s"
        model_id = site.p.execute("SELECT model_id FROM pyrec.models WHERE name = 'late'")
        assert site.p.execute(tables, [f"m{model_id.fetchone()[0]}_v%"]).fetchone() == (2,)  # type: ignore[index]
    after = managed.call(site.primary, "train", {"model": "late"}, read_dsn=site.standby)
    assert after["version"] == 2


def test_a_read_the_standby_cancels_says_to_set_hot_standby_feedback(pair: Pair) -> None:
    """The standby cancels a read that holds back its replay (here: an ACCESS EXCLUSIVE lock
    taken on the primary while a slow view is read); the training fails with 40001 and the
    setting to change, as a failed run."""
    site = pair.extension
    site.p.execute(
        "CREATE VIEW ratings_slow AS SELECT * FROM ratings"  # about 20,000 rows in 5 s
        " WHERE viewer_id <= 200 AND pg_sleep(0.0002)::text = ''"
    )
    site.p.execute(
        "SELECT pyrec.create_model('slow', 'ratings_slow', options => %s::jsonb)", [FAST]
    )
    site.s.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
    site.s.execute("SELECT pg_reload_conf()")
    caught_up(site)
    errors: list[BaseException] = []

    def train() -> None:
        try:
            managed.call(site.primary, "train", {"model": "slow"}, read_dsn=site.standby)
        except BaseException as e:
            errors.append(e)

    training = threading.Thread(target=train)
    training.start()
    try:
        deadline = time.monotonic() + 30
        reading = (
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ratings_slow WHERE%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        )
        while site.s.execute(reading).fetchone() == (0,):
            assert time.monotonic() < deadline and training.is_alive(), errors
            time.sleep(0.05)
        with psycopg.connect(site.primary) as c:
            c.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
        training.join(timeout=60)
    finally:
        site.s.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        site.s.execute("SELECT pg_reload_conf()")
    assert len(errors) == 1 and isinstance(errors[0], PyrecError), errors
    e = errors[0]
    assert e.sqlstate == "40001", (e.sqlstate, e.message)
    assert e.message.startswith('reading the relations of model "slow" on the standby was')
    assert e.hint and "hot_standby_feedback = on" in e.hint
    assert runs(site.p, "slow") == [("failed", None, e.message)]


def test_the_managed_flavour_trains_from_the_standby(pair: Pair) -> None:
    site = pair.managed
    on_primary = managed.call(site.primary, "train", {"model": "movies"})
    on_standby = managed.call(site.primary, "train", {"model": "movies"}, read_dsn=site.standby)
    same_version(site.p, on_primary, on_standby)
    assert on_standby["read_from"]["lag_bytes"] >= 0
    # the plpgsql fold-in's data is written with the version, as for any managed training
    fold = "SELECT version FROM pyrec._fold_data ORDER BY version"
    assert site.p.execute(fold).fetchall() == [(1,), (2,)]
    site.p.execute(
        "INSERT INTO ratings SELECT %s, m, 5, now() FROM unnest('{1,50,181}'::int[]) m",
        [NEW_USER],
    )
    try:
        got = site.p.execute("SELECT * FROM pyrec.recommend('movies', %s, 5)", [str(NEW_USER)])
        assert {r[3] for r in got.fetchall()} == {"fold-in"}
    finally:
        site.p.execute("DELETE FROM ratings WHERE viewer_id = %s", [NEW_USER])


def test_pyrec_train_read_dsn(pair: Pair, server_dsn: str) -> None:
    site = pair.extension
    summary = json.loads(
        ok("train", "movies", "--dsn", site.primary, "--read-dsn", site.standby, "--json")
    )
    assert summary["read_from"]["lag_bytes"] >= 0 and summary["version"] >= 2
    assert versions(site.p)[-1][:2] == (summary["version"], "active")
    text = ok("train", "movies", "--dsn", site.primary, "--read-dsn", site.standby)
    assert text.startswith('model "movies" version ') and "; read from a hot standby" in text
    # the managed flavour's database: the same command
    text = ok("train", "movies", "--dsn", pair.managed.primary, "--read-dsn", pair.managed.standby)
    assert "; read from a hot standby" in text
    before = versions(site.p)
    err = fails(2, "train", "movies", "--dsn", site.primary, "--read-dsn", server_dsn)
    assert err.startswith("pyrec: error: the read DSN reaches another cluster"), err
    assert "sqlstate: 55000" in err and "hint: " in err
    err = fails(3, "train", "movies", "--dsn", site.primary, "--read-dsn", "host=/nowhere")
    assert err.startswith("pyrec: error: --read-dsn: cannot connect to the database:"), err
    assert "hint: --read-dsn takes" in err
    err = fails(2, "train", "movies", "--dsn", site.primary, "--read-dsn", "dbname")
    assert err.startswith("pyrec: error: --read-dsn: invalid connection string: missing"), err
    assert versions(site.p) == before
    done = run("train", "movies", "--in-database", "--read-dsn", site.standby)
    assert done.returncode == 2
    assert "argument --read-dsn: not allowed with argument --in-database" in done.stderr
    assert "--read-dsn DSN" in ok("train", "--help")
