"""Sample data commands, and the popularity recipe trained on synthetic data."""

from __future__ import annotations

from typing import Any

import psycopg

from pyrec_pg import cli

Conn = psycopg.Connection[Any]


def test_movielens_tables_have_the_published_shape(conn: Conn) -> None:
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM ratings), (SELECT count(DISTINCT viewer_id) FROM ratings),"
        " (SELECT count(*) FROM movies), (SELECT count(*) FROM viewers),"
        " (SELECT count(*) FROM movies WHERE 'Comedy' = ANY (genre)),"
        " (SELECT min(rating) || '-' || max(rating) FROM ratings)"
    ).fetchone()
    assert counts == (100000, 943, 1682, 943, 505, "1-5")
    title = conn.execute("SELECT title, year, genre FROM movies WHERE movie_id = 1").fetchone()
    assert title == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])


def test_synthetic_load_and_popularity_recipe(conn: Conn, capsys: Any) -> None:
    dsn = conn.info.dsn
    args = ["load-sample", "synthetic", "--dsn", dsn, "--interactions", "20000", "--seed", "3"]
    assert cli.main(args) == 0
    assert "20000 interactions" in capsys.readouterr().out
    assert conn.execute("SELECT count(*) FROM synthetic_interactions").fetchone() == (20000,)
    conn.execute(
        "SELECT pyrec.create_model('pop', 'synthetic_interactions', items => 'synthetic_items',"
        ' recipe => \'popularity\', options => \'{"event_weights": {"purchase": 5, "view": 0}}\')'
    )
    conn.execute("CALL pyrec.train('pop')")
    got = conn.execute("SELECT item_id FROM pyrec.recommend('pop', 'no-such-user', 5)").fetchall()
    expected = conn.execute(
        "SELECT item_id::text FROM synthetic_interactions WHERE event_type <> 'view'"
        " GROUP BY item_id ORDER BY sum(CASE event_type WHEN 'purchase' THEN 5 ELSE 1 END) DESC,"
        " item_id::text LIMIT 5"
    ).fetchall()
    assert got == expected
    user = conn.execute("SELECT user_id FROM synthetic_interactions LIMIT 1").fetchone()
    assert user is not None
    rows = conn.execute(
        "SELECT item_id, source FROM pyrec.recommend('pop', %s::text, 5)", [user[0]]
    ).fetchall()
    seen = {
        r[0]
        for r in conn.execute(
            "SELECT item_id::text FROM synthetic_interactions WHERE user_id = %s", [user[0]]
        )
    }
    assert len(rows) == 5 and not {r[0] for r in rows} & seen
    assert {r[1] for r in rows} == {"model"}
    dims = conn.execute("SELECT dims, recipe FROM pyrec.model_versions").fetchone()
    assert dims == (1, "popularity")


def test_load_sample_refuses_existing_tables_without_replace(conn: Conn, capsys: Any) -> None:
    assert cli.main(["load-sample", "movielens", "--dsn", conn.info.dsn]) == 2  # bad input
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["load-sample", "movielens", "--dsn", conn.info.dsn, "--replace"]) == 0
    assert conn.execute("SELECT count(*) FROM ratings").fetchone() == (100000,)
