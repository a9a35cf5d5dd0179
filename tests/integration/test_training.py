"""CALL pyrec.train: versions, runs, metrics, failures that leave the previous version serving."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pyrec_pg import cli
from pyrec_pg.jobs.training import LOCK_CLASS
from tests.conftest import FAST
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def test_training_creates_an_active_version_with_metrics(trained: Conn) -> None:
    row = trained.execute(
        "SELECT version, status, recipe, dims, n_users, n_items, n_interactions, metrics, params"
        " FROM pyrec.model_versions WHERE model = 'movies'"
    ).fetchone()
    assert row is not None
    version, status, recipe, dims, n_users, n_items, n_inter, metrics, params = row
    assert (version, status, recipe, dims) == (1, "active", "als", 16)
    assert (n_users, n_items, n_inter) == (943, 1682, 100000)
    assert params["factors"] == 16 and params["iterations"] == 4
    for key in (
        "precision@5",
        "precision@10",
        "precision@25",
        "recall@10",
        "recall@25",
        "ndcg@5",
        "ndcg@10",
        "ndcg@25",
        "mrr@25",
        "map@10",
        "coverage@10",
    ):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["protocol"] == "random_per_user" and metrics["users_evaluated"] == 943
    assert metrics["ndcg@10"] > metrics["baseline"]["popularity"]["ndcg@10"]


def test_training_run_is_recorded(trained: Conn) -> None:
    row = trained.execute(
        "SELECT status, phase, percent, rows_read, version, message,"
        " duration > interval '0' FROM pyrec.training_runs"
    ).fetchone()
    assert row == ("succeeded", "writing", 100.0, 100000, 1, None, True)


@pytest.mark.slow
def test_default_als_quality_on_movielens(conn: Conn) -> None:
    """Default ALS on a random 75/25 per-user split of MovieLens-100K: its defaults came from it."""
    conn.execute("SELECT pyrec.create_model('movies', 'ratings')")
    conn.execute("CALL pyrec.train('movies')")
    m = conn.execute("SELECT metrics FROM pyrec.model_versions").fetchone()[0]  # type: ignore[index]
    assert m["precision@10"] >= 0.40, m
    assert m["ndcg@10"] >= 0.46, m
    assert m["baseline"]["popularity"]["ndcg@10"] < 0.30, m


def test_retraining_switches_versions_and_keeps_a_bounded_history(trained: Conn) -> None:
    trained.execute("SET pyrec.keep_versions = 2")
    for _ in range(2):
        trained.execute("CALL pyrec.train('movies')")
    rows = trained.execute(
        "SELECT version, status, items_table FROM pyrec.model_versions ORDER BY version"
    ).fetchall()
    assert [(v, s) for v, s, _ in rows] == [(2, "inactive"), (3, "active")]
    assert trained.execute("SELECT to_regclass('pyrec.m1_v1_items')").fetchone() == (None,)
    assert trained.execute("SELECT active_version FROM pyrec.models").fetchone() == (3,)


def _recs(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM pyrec.recommend('movies', '42', 10)").fetchall()


def test_failure_while_writing_leaves_previous_version_serving(trained: Conn) -> None:
    before = _recs(trained)
    # the last write of a training is the version row: fail exactly there
    trained.execute(
        "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'disk full (simulated)'; END$$;"
        "CREATE TRIGGER fail BEFORE INSERT ON pyrec._versions FOR EACH ROW EXECUTE FUNCTION fail()"
    )
    with pytest.raises(psycopg.errors.RaiseException, match="disk full"):
        trained.execute("CALL pyrec.train('movies')")
    assert _recs(trained) == before
    assert trained.execute("SELECT active_version FROM pyrec.models").fetchone() == (1,)
    assert trained.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'pyrec'::regnamespace"
        " AND relname LIKE 'm%_v2_%'"
    ).fetchone() == (0,)
    run = trained.execute(
        "SELECT status, phase, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert run == ("failed", "writing", "disk full (simulated)")


def test_failure_while_reading_leaves_previous_version_serving(trained: Conn) -> None:
    before = _recs(trained)
    trained.execute("CREATE TABLE switch (d int); INSERT INTO switch VALUES (1)")
    trained.execute(
        "CREATE VIEW flaky AS SELECT viewer_id, movie_id / (SELECT d FROM switch)"
        " AS movie_id FROM ratings"
    )
    trained.execute(f"SELECT pyrec.create_model('flaky', 'flaky', options => '{FAST}')")
    trained.execute("CALL pyrec.train('flaky')")
    trained.execute("UPDATE switch SET d = 0")
    with pytest.raises(psycopg.errors.DivisionByZero):
        trained.execute("CALL pyrec.train('flaky')")
    assert trained.execute(
        "SELECT version, status FROM pyrec.model_versions WHERE model = 'flaky'"
    ).fetchall() == [(1, "active")]
    assert trained.execute(
        "SELECT status FROM pyrec.training_runs WHERE model = 'flaky' ORDER BY run_id"
    ).fetchall() == [("succeeded",), ("failed",)]
    assert _recs(trained) == before


def test_concurrent_training_of_one_model_is_refused(trained: Conn, capsys: Any) -> None:
    info = trained.info
    other = psycopg.connect(
        host=info.host, port=info.port, user=info.user, dbname=info.dbname, autocommit=True
    )
    with other:
        model_id = trained.execute("SELECT model_id FROM pyrec.models").fetchone()[0]  # type: ignore[index]
        other.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, model_id])
        with raises_pg(
            trained, "55006", "already being trained by another session", "pyrec.training_runs"
        ):
            trained.execute("CALL pyrec.train('movies')")
        # the external trainer, as system cron runs it: a message and EX_TEMPFAIL, no traceback
        assert cli.main(["train", "movies", "--dsn", info.dsn, "--mode", "update"]) == 75
        err = capsys.readouterr().err
        assert err.startswith('pyrec: error: model "movies" is already being trained'), err


def test_training_inside_a_transaction_block_is_refused(trained: Conn) -> None:
    trained.autocommit = False
    try:
        with pytest.raises(psycopg.Error) as info:
            trained.execute("CALL pyrec.train('movies')")
        assert info.value.diag.sqlstate == "25001"
        assert info.value.diag.message_primary == (
            "pyrec.train cannot run inside a transaction block"
        )
        assert "outside BEGIN" in (info.value.diag.message_hint or "")
    finally:
        trained.rollback()
        trained.autocommit = True
    assert trained.execute("SELECT count(*) FROM pyrec._versions").fetchone() == (1,)


@pytest.mark.parametrize(
    ("setup", "call", "sqlstate", "message"),
    [
        ("", "CALL pyrec.train('nope')", "42704", 'model "nope" does not exist'),
        ("", "CALL pyrec.train(NULL)", "22004", "model name must not be null"),
        (
            "CREATE TABLE empty (user_id int, item_id int);SELECT pyrec.create_model('e', 'empty')",
            "CALL pyrec.train('e')",
            "22000",
            "has no usable interactions",
        ),
        (
            "",
            "CALL pyrec.train('movies', '{\"params\": {\"alpha\": -1}}')",
            "22023",
            '"alpha" of recipe als is out of range',
        ),
        ("", "CALL pyrec.train('movies', '\"x\"')", "22023", "options must be a JSON object"),
    ],
)
def test_train_rejects_bad_input(
    trained: Conn, setup: str, call: str, sqlstate: str, message: str
) -> None:
    if setup:
        trained.execute(setup)
    runs = trained.execute(
        "SELECT count(*) FILTER (WHERE status <> 'failed') FROM pyrec._runs"
    ).fetchone()
    with raises_pg(trained, sqlstate, message, None):
        trained.execute(call)
    assert (
        trained.execute(
            "SELECT count(*) FILTER (WHERE status <> 'failed') FROM pyrec._runs"
        ).fetchone()
        == runs
    )


def test_external_trainer_writes_the_same_catalog(trained: Conn, capsys: Any) -> None:
    """`pyrec train --dsn` runs the training code through the psycopg plpy stub."""
    dsn = trained.info.dsn
    assert cli.main(["train", "movies", "--dsn", dsn, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 2
    inside = trained.execute(
        "SELECT metrics FROM pyrec.model_versions WHERE version = 1"
    ).fetchone()[0]  # type: ignore[index]
    assert out["metrics"]["ndcg@10"] == pytest.approx(inside["ndcg@10"], abs=0.01)
    assert trained.execute(
        "SELECT status FROM pyrec.model_versions ORDER BY version"
    ).fetchall() == [("inactive",), ("active",)]
    rows = _recs(trained)
    assert len(rows) == 10 and {r[3] for r in rows} == {"model"}


def test_integer_and_text_ids_train_the_same_model(conn: Conn) -> None:
    # integer ids are coded in numpy, other types in SQL: both in the ids' text order
    conn.execute(
        "CREATE VIEW ratings_text AS SELECT 'u' || viewer_id AS viewer_id,"
        " movie_id::text AS movie_id, rating, rated_at FROM ratings"
    )
    for name, table in (("by_int", "ratings"), ("by_text", "ratings_text")):
        conn.execute("SELECT pyrec.create_model(%s, %s, options => %s)", [name, table, FAST])
        conn.execute("CALL pyrec.train(%s)", [name])
    got = conn.execute(
        "SELECT model, n_users, n_items, n_interactions, metrics::text FROM pyrec.model_versions"
        " ORDER BY model"
    ).fetchall()
    assert [g[1:3] for g in got] == [(943, 1682)] * 2
    assert got[0][3:] == got[1][3:]
    # the same matrix in the same order: the same vectors, so the same recommendations
    by_int, by_text = (
        conn.execute(
            "SELECT item_id, score FROM pyrec.recommend(%s, %s, 10)", [name, user]
        ).fetchall()
        for name, user in (("by_int", "42"), ("by_text", "u42"))
    )
    assert by_int == by_text
