"""Serving from a hot standby (streaming replication over 127.0.0.1) while the primary retrains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster
from tests.conftest import FAST
from tests.integration.helpers import raises_pg
from tests.integration.test_experiments import VARIANTS

Conn = psycopg.Connection[Any]
NEW_USER = "5000"  # events inserted after training: no vector, folded in at request time
USERS = ["1", "42", "300", NEW_USER]
RETRAIN = '{"params": {"factors": 16, "iterations": 20}, "holdout": 0}'
QUERIES = {
    "recommend": "SELECT * FROM pyrec.recommend('movies', %s, 5)",
    "ad-hoc filter": "SELECT * FROM pyrec.recommend('movies', %s, 5,"
    " 'EXCLUDE ItemID WHERE Items.genre IN (\"Drama\", \"Comedy\")')",
    "named filter": "SELECT * FROM pyrec.recommend('movies', %s, 5, 'nineties',"
    ' params => \'{"FROM": 1990}\')',
    "rank_items": "SELECT * FROM pyrec.rank_items('movies', %s, ARRAY['1', '50', '181', '9999'])",
}
ITEM_QUERIES = {
    "similar_items": "SELECT * FROM pyrec.similar_items('movies', %s, 5)",
    "users_for_item": "SELECT * FROM pyrec.users_for_item('movies', %s, 5)",
}


@dataclass
class Pair:
    primary: Conn
    standby: Conn


def answers(conn: Conn) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    out = {(q, u): conn.execute(sql, [u]).fetchall() for q, sql in QUERIES.items() for u in USERS}
    for q, sql in ITEM_QUERIES.items():
        out[(q, "50")] = conn.execute(sql, ["50"]).fetchall()
    return out


def caught_up(pair: Pair) -> None:
    """Wait until the standby has replayed everything the primary has committed (the insert
    position: with synchronous_commit off a commit record may not be written yet)."""
    lsn = pair.primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 30
    while pair.standby.execute(
        "SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", [lsn]
    ).fetchone() != (False,):
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A primary with "movies" trained (and a named filter, a folded-in user), and a hot
    standby of it serving read-only queries."""
    with Cluster(tcp=True) as primary, psycopg.connect(primary.dsn(), autocommit=True) as p:
        p.execute("CREATE EXTENSION pyrec CASCADE")
        movielens.load(p)
        p.execute(
            "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
            f" users => 'viewers', options => '{FAST}')"
        )
        p.execute("CALL pyrec.train('movies')")
        p.execute(
            "SELECT pyrec.create_filter('movies', 'nineties',"
            " 'INCLUDE ItemID WHERE Items.year >= $FROM')"
        )
        p.execute(
            "INSERT INTO ratings SELECT %s::int, m, 5, now() FROM unnest('{1,50,181}'::int[]) m",
            [NEW_USER],
        )
        replica = primary.standby()
        try:
            with psycopg.connect(replica.dsn(), autocommit=True) as s:
                pair = Pair(p, s)
                caught_up(pair)
                yield pair
        finally:
            replica.stop()


def test_the_standby_serves_what_the_primary_serves(pair: Pair) -> None:
    s = pair.standby
    recovery = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
    assert s.execute(recovery).fetchone() == (True, "on")
    got = answers(s)
    assert got == answers(pair.primary)
    assert all(len(rows) >= 4 for rows in got.values()), got
    assert {r[3] for r in got[("recommend", "42")]} == {"model"}
    assert {r[3] for r in got[("recommend", NEW_USER)]} == {"fold-in"}
    assert {r[3] for r in got[("named filter", NEW_USER)]} == {"fold-in"}
    assert [r[0] for r in got[("rank_items", "42")]][-1] == "9999"  # unknown: ranked last
    version = s.execute("SELECT pyrec.version()").fetchone()[0]  # type: ignore[index]
    assert version["python_package"] == version["sql"]
    assert s.execute("SELECT model, version, status FROM pyrec.model_versions").fetchall() == [
        ("movies", 1, "active")
    ]


def test_what_writes_is_refused_on_the_standby_with_a_hint(pair: Pair) -> None:
    s = pair.standby
    pair.primary.execute(
        "SELECT pyrec.create_experiment('home', %s, model => 'movies')", [VARIANTS]
    )
    caught_up(pair)
    # the variant is computed anywhere; serving it logs an impression, which needs the primary
    assert s.execute("SELECT pyrec.experiment_variant('home', '42')").fetchone() in [
        ("control",),
        ("als",),
    ]
    with raises_pg(s, "25006", 'experiment "home" logs impressions', "from the primary"):
        s.execute("SELECT * FROM pyrec.recommend(NULL, '42', 5, experiment => 'home')")
    with raises_pg(s, "55000", "cannot train on a standby server", "primary"):
        s.execute("CALL pyrec.train('movies')")
    pair.primary.execute("SELECT pyrec.drop_experiment('home')")
    caught_up(pair)


def test_the_standby_serves_through_a_retrain_on_the_primary(pair: Pair) -> None:
    p, s = pair.primary, pair.standby
    v1 = answers(s)
    stop = threading.Event()
    seen: list[dict[tuple[str, str], list[tuple[Any, ...]]]] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with psycopg.connect(s.info.dsn, autocommit=True) as c:
                while not stop.is_set():
                    seen.append(answers(c))
        except BaseException as e:  # reported below: any error fails the test
            errors.append(e)

    def standby_run() -> Any:
        return s.execute(
            "SELECT status, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()

    def train() -> None:
        try:
            with psycopg.connect(p.info.dsn, autocommit=True) as c:
                c.execute("CALL pyrec.train('movies', %s)", [RETRAIN])
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=client)
    t.start()
    try:
        training = threading.Thread(target=train)
        started = time.monotonic()
        training.start()
        # the standby shows the run in progress (it cannot check the primary's backends)
        while (run := standby_run()) != ("running", None) and training.is_alive():
            assert time.monotonic() < started + 30
            time.sleep(0.02)
        assert training.is_alive(), f"the retrain ended before the standby saw it run: {run}"
        rounds = len(seen)
        training.join(timeout=60)
        committed = time.monotonic()
        rounds = len(seen) - rounds  # client rounds served while the retrain ran
        caught_up(pair)
        print(
            f"retrain {committed - started:.1f} s, {rounds} standby client rounds meanwhile,"
            f" replayed {time.monotonic() - committed:.2f} s after the primary's commit"
        )
        time.sleep(0.2)  # a few more client rounds on the new version
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    v2 = answers(s)
    assert v2 == answers(p)
    active = "SELECT version FROM pyrec.model_versions WHERE status = 'active'"
    assert s.execute(active).fetchone() == (2,)
    assert standby_run() == ("succeeded", None)
    changed = [key for key in v1 if v1[key] != v2[key]]
    assert changed
    # each answer the client got was the old version's or the new one's, never an error or a mix
    for a in seen:
        for key in changed:
            assert a[key] in (v1[key], v2[key]), key
    assert rounds >= 1 and any(a[changed[0]] == v2[changed[0]] for a in seen)
