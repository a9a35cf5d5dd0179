"""pyrec.check_data: what a model's data holds and which recipes it is ready for."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def report(conn: Conn, model: str = "movies") -> dict[str, tuple[float | None, bool, str]]:
    rows = conn.execute("SELECT * FROM pyrec.check_data(%s)", [model]).fetchall()
    return {name: (value, ok, detail) for name, value, ok, detail in rows}


def test_movielens_is_ready_for_every_recipe(trained: Conn) -> None:
    r = report(trained)
    assert r["interactions"][:2] == (100000, True)
    assert r["users"][0] == 943 and r["items"][0] == 1682
    assert r["users with >= 2 interactions"][:2] == (943, True)
    assert r["sparsity"][0] == 1 - 100000 / (943 * 1682)
    assert r["duplicate interactions"][0] == 0
    assert r["NULL user ids"][:2] == (0, True)
    assert r["interactions with an item missing from public.movies"][:2] == (0, True)
    assert r["items without interactions"][0] == 0
    assert r["index on public.ratings (viewer_id)"][:2] == (1, True)
    for recipe in ("als", "auto", "ease", "popularity", "sims", "trending"):
        assert r[f"recipe {recipe}"][:2] == (0, True), r[f"recipe {recipe}"]
    assert "this model's recipe" in r["recipe als"][2]


def test_problems_are_counted_and_shortfalls_measured(trained: Conn) -> None:
    trained.execute("CREATE TABLE tiny (user_id int, item_id int)")
    trained.execute(
        "INSERT INTO tiny VALUES (1, 1), (1, 1), (1, 2), (2, 99999), (NULL, 1), (3, NULL)"
    )
    trained.execute("SELECT pyrec.create_model('tiny', 'tiny', items => 'movies')")
    r = report(trained, "tiny")
    assert r["interactions"][:2] == (6, True)
    assert r["duplicate interactions"][0] == 1
    assert r["NULL user ids"][:2] == (1, False)
    assert r["NULL item ids"][:2] == (1, False)
    assert r["interactions with an item missing from public.movies"][:2] == (1, False)
    assert r["items without interactions"][0] == 1682 - 2
    assert r["users with >= 2 interactions"][:2] == (1, False)
    # 4 usable rows: 996 interactions and 24 active users short of the minimum
    assert r["recipe als"][:2] == (996 + 24, False)
    assert "has 4" in r["recipe als"][2]
    assert r["recipe popularity"][:2] == (0, True)
    assert r["recipe trending"][:2] == (0, False)  # no timestamp column
    assert "timestamp" in r["recipe trending"][2]
    value, ok, detail = r["index on public.tiny (user_id)"]
    assert (value, ok) == (0, False) and "CREATE INDEX ON public.tiny (user_id)" in detail
    trained.execute("CREATE INDEX ON tiny (user_id, item_id)")
    assert report(trained, "tiny")["index on public.tiny (user_id)"][:2] == (1, True)
    trained.execute("CREATE VIEW tiny_view AS SELECT * FROM tiny")
    trained.execute("SELECT pyrec.create_model('tiny_view', 'tiny_view')")
    assert report(trained, "tiny_view")["index on public.tiny_view (user_id)"][:2] == (None, True)


def test_check_data_errors(trained: Conn) -> None:
    with raises_pg(trained, "42704", 'model "nope" does not exist'):
        trained.execute("SELECT * FROM pyrec.check_data('nope')")
    with raises_pg(trained, "22004", "model name must not be null", None):
        trained.execute("SELECT * FROM pyrec.check_data(NULL)")
