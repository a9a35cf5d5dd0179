"""Faults during training: killed backend, server crash, disk full, locked source table.

After each, the serving version answers as before, the catalog holds no half-written version
and the run is recorded as failed; the next training succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster
from tests.conftest import FAST
from tests.integration.helpers import catalog_state, raises_pg

Conn = psycopg.Connection[Any]
USERS = ["1", "7", "42", "300", "943"]
SLOW = '{"params": {"factors": 16, "iterations": 300}, "holdout": 0}'
QUICK = '{"params": {"factors": 8, "iterations": 2}, "holdout": 0}'
GONE = ("failed", "the backend exited before finishing")


def answers(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    return {
        u: conn.execute("SELECT item_id, score, source FROM recommend(%s, 5)", [u]).fetchall()
        for u in USERS
    }


def last_run(conn: Conn) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT status, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()


def fault_on_new_tables(conn: Conn, body: str, tables: str = "%") -> None:
    """As superuser: every table created in schema pyrec whose name is LIKE `tables` gets a
    statement-level BEFORE INSERT trigger running `body` (plpgsql), product code unchanged."""
    conn.execute(
        f"CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN {body};"
        " RETURN NULL; END$$;"
        "CREATE FUNCTION attach_fault() RETURNS event_trigger LANGUAGE plpgsql AS $$"
        " DECLARE r record; BEGIN FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()"
        "  WHERE object_type = 'table' AND schema_name = 'pyrec'"
        f"  AND object_identity LIKE 'pyrec.{tables}' LOOP"
        "  EXECUTE format('CREATE TRIGGER fault BEFORE INSERT ON %s FOR EACH STATEMENT"
        "   EXECUTE FUNCTION public.fault()', r.object_identity); END LOOP; END$$;"
        "CREATE EVENT TRIGGER attach_fault ON ddl_command_end WHEN TAG IN ('CREATE TABLE')"
        " EXECUTE FUNCTION attach_fault()"
    )


def remove_fault(conn: Conn) -> None:
    conn.execute("DROP EVENT TRIGGER attach_fault; DROP FUNCTION attach_fault(), fault()")


def train_in_thread(dsn: str, options: str) -> tuple[threading.Thread, list[BaseException]]:
    """CALL pyrec.train in its own connection; the error it ends with lands in the list."""
    failure: list[BaseException] = []

    def train() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("CALL pyrec.train('movies', %s)", [options])
        except psycopg.Error as e:
            failure.append(e)

    t = threading.Thread(target=train)
    t.start()
    return t, failure


def wait_for(probe: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def assert_recovered(conn: Conn, before: dict[str, Any], state: tuple[Any, ...]) -> None:
    """The serving version answers as before, nothing of the failed version is left, and the
    next training succeeds (a lock of the dead one would make it fail with 55006)."""
    assert answers(conn) == before
    assert catalog_state(conn) == state
    conn.execute("CALL pyrec.train('movies', %s)", [QUICK])
    assert last_run(conn) == ("succeeded", None)
    assert conn.execute("SELECT active_version FROM pyrec.models").fetchone() == (2,)
    assert answers(conn) != before


def test_training_killed_while_writing_leaves_no_half_written_version(trained: Conn) -> None:
    # (killed while fitting: test_serving_through_retrains) each vector write waits 3 s, so
    # the training is certainly inside its writing transaction when it is killed
    fault_on_new_tables(trained, "PERFORM pg_sleep(3)")
    before, state = answers(trained), catalog_state(trained)
    t, failure = train_in_thread(trained.info.dsn, QUICK)
    pid = wait_for(
        lambda: trained.execute(
            "SELECT r.pid FROM pyrec.training_runs r JOIN pg_stat_activity a USING (pid)"
            " WHERE r.status = 'running' AND r.phase = 'writing' AND a.wait_event = 'PgSleep'"
        ).fetchone(),
        "the training to write vectors",
    )[0]
    # its new tables exist, but only inside its own uncommitted transaction
    assert catalog_state(trained) == state
    assert trained.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    t.join(timeout=30)
    assert isinstance(failure[0], psycopg.OperationalError), failure
    assert last_run(trained) == GONE
    remove_fault(trained)
    assert_recovered(trained, before, state)


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of its own (this test restarts it) with MovieLens and "movies" trained.

    Commits wait for their WAL write here (throwaway clusters turn synchronous_commit off,
    which may lose the last commits, the run's progress rows among them, in a crash)."""
    with Cluster(settings={"synchronous_commit": "on"}) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE EXTENSION pyrec CASCADE")
            movielens.load(c)
            c.execute(
                "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
                f" users => 'viewers', options => '{FAST}')"
            )
            c.execute("CALL pyrec.train('movies')")
        yield cluster


def test_server_crash_mid_training_recovers_to_the_serving_version(own_cluster: Cluster) -> None:
    cluster = own_cluster
    conn = psycopg.connect(cluster.dsn(), autocommit=True)
    before, state = answers(conn), catalog_state(conn)
    t, failure = train_in_thread(cluster.dsn(), SLOW)
    wait_for(
        lambda: conn.execute(
            "SELECT 1 FROM pyrec.training_runs WHERE status = 'running' AND phase = 'training'"
        ).fetchone(),
        "the training to fit",
    )
    conn.close()
    cluster.restart("immediate")  # as a crash: no shutdown checkpoint, WAL replay at start
    t.join(timeout=30)
    assert isinstance(failure[0], psycopg.OperationalError), failure
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        # the row still says running (nobody was left to update it); the view tells the truth
        assert conn.execute("SELECT status FROM pyrec._runs ORDER BY run_id").fetchall() == [
            ("succeeded",),
            ("running",),
        ]
        assert last_run(conn) == GONE
        assert_recovered(conn, before, state)
        # the next training recorded the dead one as failed in the table itself
        assert conn.execute(
            "SELECT status, message FROM pyrec._runs ORDER BY run_id"
        ).fetchall() == [("succeeded", None), GONE, ("succeeded", None)]


def test_disk_full_while_writing_vectors_fails_cleanly(trained: Conn) -> None:
    # the item vectors are written, then the user vectors hit a full disk (the error and hint
    # are the ones PostgreSQL's storage manager reports)
    fault_on_new_tables(
        trained,
        "RAISE EXCEPTION 'could not extend file \"base/1/2\": No space left on device'"
        " USING ERRCODE = 'disk_full', HINT = 'Check free disk space.'",
        "%\\_users",
    )
    before, state = answers(trained), catalog_state(trained)
    with raises_pg(trained, "53100", "No space left on device", "free disk space"):
        trained.execute("CALL pyrec.train('movies', %s)", [QUICK])
    run = trained.execute(
        "SELECT status, phase, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert run == ("failed", "writing", 'could not extend file "base/1/2": No space left on device')
    remove_fault(trained)
    assert_recovered(trained, before, state)


def test_locked_source_table_fails_training_after_the_lock_timeout(trained: Conn) -> None:
    before, state = answers(trained), catalog_state(trained)
    with psycopg.connect(trained.info.dsn) as locker:
        locker.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")  # e.g. an ALTER TABLE
        trained.execute("SET pyrec.lock_timeout = '1s'")
        started = time.monotonic()
        with raises_pg(trained, "55P03", 'model "movies"', "pyrec.lock_timeout"):
            trained.execute("CALL pyrec.train('movies', %s)", [QUICK])
        assert 1 <= time.monotonic() - started < 10
        assert trained.execute(
            "SELECT status, phase FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone() == ("failed", "reading")
        # serving that does not read the interactions keeps answering; recommend() reads the
        # user's live history (seen items, fold-in) and waits for the lock like any reader,
        # bounded by the caller's own lock_timeout
        similar = trained.execute("SELECT * FROM pyrec.similar_items('movies', '50', 5)")
        assert len(similar.fetchall()) == 5
        trained.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            trained.execute("SELECT * FROM recommend('42', 5)")
        trained.execute("RESET lock_timeout")
        trained.execute("RESET pyrec.lock_timeout")
    assert_recovered(trained, before, state)


def test_lock_timeout_setting_is_checked(trained: Conn) -> None:
    trained.execute("SET pyrec.lock_timeout = 'soon'")
    with raises_pg(trained, "22023", "pyrec.lock_timeout", "30s"):
        trained.execute("CALL pyrec.train('movies', %s)", [QUICK])
