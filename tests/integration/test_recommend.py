"""Serving: recommend() from the active version, seen items, fallbacks and bad input."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def seen_by(conn: Conn, user: int) -> set[str]:
    return {
        r[0]
        for r in conn.execute("SELECT movie_id::text FROM ratings WHERE viewer_id = %s", [user])
    }


def test_recommend_returns_ranked_unseen_items(trained: Conn) -> None:
    rows = trained.execute(
        "SELECT item_id, score, rank, source FROM pyrec.recommend('movies', '42', 10)"
    ).fetchall()
    assert [r[2] for r in rows] == list(range(1, 11))
    scores = [r[1] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert {r[3] for r in rows} == {"model"}
    assert not {r[0] for r in rows} & seen_by(trained, 42)
    assert len({r[0] for r in rows}) == 10


def test_scores_are_the_model_dot_products(trained: Conn) -> None:
    rows = trained.execute(
        "SELECT item_id, score FROM pyrec.recommend('movies', '42', 5)"
    ).fetchall()
    v = trained.execute("SELECT items_table, users_table FROM pyrec.model_versions").fetchone()
    assert v is not None
    for item, score in rows:
        dot = trained.execute(
            f"SELECT (i.embedding <#> u.embedding) * -1 FROM pyrec.{v[0]} i, pyrec.{v[1]} u"
            " WHERE i.item_id = %s AND u.user_id = '42'",
            [item],
        ).fetchone()
        assert dot is not None and dot[0] == pytest.approx(score, rel=1e-5)


def test_unqualified_recommend_uses_the_default_model(trained: Conn) -> None:
    direct = trained.execute("SELECT * FROM pyrec.recommend('movies', '42', 10)").fetchall()
    assert trained.execute("SELECT * FROM recommend(42, 10)").fetchall() == direct
    assert trained.execute("SELECT * FROM recommend('42', 10)").fetchall() == direct
    trained.execute("SELECT pyrec.create_model('other', 'ratings')")
    with raises_pg(
        trained, "42704", "there are 2 models and no default one", "pyrec.default_model"
    ):
        trained.execute("SELECT * FROM recommend(42, 10)")
    trained.execute("SET pyrec.default_model = 'movies'")
    assert trained.execute("SELECT * FROM recommend(42, 10)").fetchall() == direct


def test_seen_items_come_from_the_live_table(trained: Conn) -> None:
    top = trained.execute("SELECT item_id FROM pyrec.recommend('movies', '42', 3)").fetchall()
    trained.execute("INSERT INTO ratings VALUES (42, %s, 5, now())", [int(top[0][0])])
    after = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('movies', '42', 3)"
    ).fetchall()
    # the new event is excluded at once, and folded into the user's vector (no retraining)
    assert top[0][0] not in {r[0] for r in after} and {r[1] for r in after} == {"fold-in"}
    assert {r[0] for r in after} & {r[0] for r in top[1:]}
    kept = trained.execute(
        "SELECT item_id FROM pyrec.recommend('movies', '42', 3, exclude_seen => false)"
    ).fetchall()
    assert {r[0] for r in kept} & seen_by(trained, 42)  # training items score highest


def test_unknown_user_gets_popular_items(trained: Conn) -> None:
    rows = trained.execute(
        "SELECT item_id, rank, source FROM pyrec.recommend('movies', 'nobody-ever', 10)"
    ).fetchall()
    expected = trained.execute(
        "SELECT movie_id::text FROM ratings GROUP BY movie_id"
        " ORDER BY count(*) DESC, movie_id::text LIMIT 10"
    ).fetchall()
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert {r[2] for r in rows} == {"popular"}


def test_new_user_with_history_after_training_is_folded_in(trained: Conn) -> None:
    popular = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('movies', '5000', 2)"
    ).fetchall()
    assert {s for _, s in popular} == {"popular"}
    trained.execute("INSERT INTO ratings VALUES (5000, %s, 4, now())", [int(popular[0][0])])
    rows = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('movies', '5000', 10)"
    ).fetchall()
    # no retraining: the new event made a personal vector, and its item is excluded
    assert {s for _, s in rows} == {"fold-in"} and len(rows) == 10
    assert popular[0][0] not in {r[0] for r in rows}
    assert trained.execute("SELECT count(*) FROM pyrec.model_versions").fetchone() == (1,)


def test_huge_k_returns_every_unseen_item(trained: Conn) -> None:
    n = trained.execute("SELECT count(*) FROM pyrec.recommend('movies', '42', 10000)").fetchone()
    items = trained.execute("SELECT count(DISTINCT movie_id) FROM ratings").fetchone()
    assert n is not None and items is not None
    assert n[0] == items[0] - len(seen_by(trained, 42))


@pytest.mark.parametrize(
    ("call", "sqlstate", "message", "hint"),
    [
        ("'movies', '42', 0", "22023", "k must be between 1 and 10000, got 0", "number of items"),
        ("'movies', '42', -5", "22023", "got -5", ""),
        ("'movies', '42', NULL", "22023", "got NULL", ""),
        ("'movies', '42', 10001", "22023", "got 10001", ""),
        ("'movies', NULL::text, 10", "22004", "user_id must not be null", "as text"),
        ("'nope', '42', 10", "42704", 'model "nope" does not exist', "pyrec.models"),
        ("NULL, '42', 10", "22004", "model name must not be null", ""),
        (
            "'movies', '42', 10, params => '{}'",
            "22023",
            "params were given without a filter",
            "$PARAMETERS",
        ),
    ],
)
def test_recommend_rejects_bad_input(
    trained: Conn, call: str, sqlstate: str, message: str, hint: str | None
) -> None:
    with raises_pg(trained, sqlstate, message, hint):
        trained.execute(f"SELECT * FROM pyrec.recommend({call})")


def test_untrained_model_says_how_to_train(conn: Conn) -> None:
    conn.execute("SELECT pyrec.create_model('fresh', 'ratings')")
    with raises_pg(
        conn, "55000", 'model "fresh" has no trained version', "CALL pyrec.train('fresh')"
    ):
        conn.execute("SELECT * FROM pyrec.recommend('fresh', '1', 10)")


def test_dropped_source_table_is_reported(trained: Conn) -> None:
    trained.execute("ALTER TABLE ratings RENAME TO ratings_old")
    with raises_pg(trained, "42P01", "no longer matches its definition", "drop and recreate"):
        trained.execute("SELECT * FROM pyrec.recommend('movies', '42', 10)")


def test_ids_of_another_type_are_unknown_users_not_errors(trained: Conn) -> None:
    rows = trained.execute(
        "SELECT source FROM pyrec.recommend('movies', 'not-a-number', 3)"
    ).fetchall()
    assert rows == [("popular",)] * 3
