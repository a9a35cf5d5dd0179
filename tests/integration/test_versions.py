"""Serving versions: activate, rollback, and update trainings warm-started from the active one."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.conftest import FAST
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def top(conn: Conn, user: str = "42", k: int = 10) -> list[str]:
    return [r[0] for r in conn.execute("SELECT item_id FROM recommend(%s, %s)", [user, k])]


def active(conn: Conn) -> Any:
    return conn.execute("SELECT active_version FROM pyrec.models WHERE name = 'movies'").fetchone()


def test_rollback_and_activate_switch_what_is_served(trained: Conn) -> None:
    first = top(trained)
    trained.execute(
        'CALL pyrec.train(\'movies\', \'{"params": {"factors": 8, "iterations": 3, "seed": 7}}\')'
    )
    second = top(trained)
    assert second != first and active(trained) == (2,)
    out = trained.execute("SELECT pyrec.rollback('movies')").fetchone()
    assert out == ({"model": "movies", "active_version": 1, "previous_version": 2},)
    assert top(trained) == first
    statuses = trained.execute(
        "SELECT version, status FROM pyrec.model_versions ORDER BY version"
    ).fetchall()
    assert statuses == [(1, "active"), (2, "inactive")]
    trained.execute("SELECT pyrec.activate('movies', 2)")
    assert top(trained) == second and active(trained) == (2,)


def test_rollback_and_activate_reject_bad_input(trained: Conn) -> None:
    with raises_pg(trained, "55000", "no version older than the active one (1)", "activate"):
        trained.execute("SELECT pyrec.rollback('movies')")
    with raises_pg(trained, "42704", 'model "movies" has no version 9', "kept versions: 1"):
        trained.execute("SELECT pyrec.activate('movies', 9)")
    with raises_pg(trained, "42704", 'model "nope" does not exist'):
        trained.execute("SELECT pyrec.rollback('nope')")
    with raises_pg(trained, "22004", "must not be null"):
        trained.execute("SELECT pyrec.activate('movies', NULL)")
    trained.execute("SELECT pyrec.create_model('fresh', 'ratings')")
    with raises_pg(trained, "42704", 'model "fresh" has no version 1', "train it first"):
        trained.execute("SELECT pyrec.activate('fresh', 1)")


def test_update_training_warm_starts_from_the_active_version(trained: Conn) -> None:
    before = set(top(trained, "42", 20))
    # a user who arrived after the first training, with a few ratings
    trained.execute(
        "INSERT INTO ratings SELECT 5000, movie_id, 5, now() FROM movies WHERE movie_id <= 5"
    )
    with trained.cursor() as cur:
        notices: list[str] = []
        trained.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        cur.execute("CALL pyrec.train('movies', mode => 'update')")
    assert "version 2 (update of the previous version) is active" in notices[-1]
    row = trained.execute(
        "SELECT mode, base_version, metrics, params->>'iterations', n_users"
        " FROM pyrec.model_versions WHERE version = 2"
    ).fetchone()
    # holdout metrics would flatter a warm start that has seen the holdout: none are recorded
    assert row == ("update", 1, {}, "4", 944)
    after = set(top(trained, "42", 20))
    assert len(before & after) >= 10, (before, after)  # continued, not restarted
    assert [r[0] for r in trained.execute("SELECT source FROM recommend('5000', 3)")] == [
        "model"
    ] * 3


def test_update_of_a_recipe_without_warm_start_is_a_full_fit(trained: Conn) -> None:
    trained.execute("SELECT pyrec.create_model('pop', 'ratings', recipe => 'popularity')")
    trained.execute("CALL pyrec.train('pop')")
    trained.execute("CALL pyrec.train('pop', mode => 'update')")
    modes = trained.execute(
        "SELECT version, mode FROM pyrec.model_versions WHERE model = 'pop' ORDER BY 1"
    ).fetchall()
    assert modes == [(1, "full"), (2, "full")]


def test_update_training_rejects_what_it_cannot_continue(trained: Conn) -> None:
    with raises_pg(trained, "22023", "factors changed from 16 (version 1) to 32", "full training"):
        trained.execute(
            "CALL pyrec.train('movies', '{\"params\": {\"factors\": 32}}', mode => 'update')"
        )
    with raises_pg(trained, "22023", "unknown training mode 'partial'", "update"):
        trained.execute("CALL pyrec.train('movies', mode => 'partial')")
    trained.execute("SELECT pyrec.create_model('fresh', 'ratings', options => %s)", [FAST])
    with raises_pg(trained, "55000", "has no active version to update", "full training first"):
        trained.execute("CALL pyrec.train('fresh', mode => 'update')")
    assert active(trained) == (1,)
