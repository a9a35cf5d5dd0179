"""CALL pyrec.batch_recommend: many users in one pass, atomic replacement, progress, errors."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def rows(conn: Conn, table: str = "pyrec.batch_movies") -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT user_id, item_id, score, rank, source FROM {table} ORDER BY user_id, rank"
    ).fetchall()


def test_batch_for_every_user_matches_recommend(trained: Conn) -> None:
    trained.execute("CALL pyrec.batch_recommend('movies', k => 5)")
    got = rows(trained)
    assert len(got) == 943 * 5
    by_user: dict[str, list[tuple[str, float]]] = {}
    for user, item, score, rank, source in got:
        assert source == "model"
        by_user.setdefault(user, []).append((item, score))
        assert rank == len(by_user[user])
    seen = trained.execute(
        "SELECT count(*) FROM pyrec.batch_movies b JOIN ratings r"
        " ON r.viewer_id::text = b.user_id AND r.movie_id::text = b.item_id"
    ).fetchone()
    assert seen == (0,)
    for user in ["1", "42", "500", "943"]:
        served = trained.execute(
            "SELECT item_id, score FROM pyrec.recommend('movies', %s, 5)", [user]
        ).fetchall()
        for (a, sa), (b, sb) in zip(served, by_user[user], strict=True):
            # same items, except where float32 sums in a different order swap near-ties
            assert a == b or abs(sa - sb) < 1e-4 * max(1.0, abs(sa)), (user, served, by_user[user])
            assert sa == pytest.approx(sb, rel=1e-4, abs=1e-5)


def test_batch_for_a_query_with_unknown_users_and_a_filter(trained: Conn) -> None:
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT viewer_id FROM viewers"
        " WHERE viewer_id <= 3 UNION ALL SELECT 99999', k => 4,"
        " filter => 'INCLUDE ItemID WHERE Items.year < $YEAR',"
        " into_table => 'public.old_movie_recs', params => '{\"YEAR\": 1980}')"
    )
    got = rows(trained, "public.old_movie_recs")
    assert {r[0] for r in got} == {"1", "2", "3", "99999"}
    assert all(r[3] in (1, 2, 3, 4) for r in got) and len(got) == 16
    assert {r[4] for r in got if r[0] == "99999"} == {"popular"}
    assert {r[4] for r in got if r[0] != "99999"} == {"model"}
    years = trained.execute(
        "SELECT DISTINCT m.year FROM public.old_movie_recs b JOIN movies m"
        " ON m.movie_id::text = b.item_id"
    ).fetchall()
    assert years and all(y < 1980 for (y,) in years)
    popular = trained.execute(
        "SELECT item_id FROM pyrec.recommend('movies', '99999', 4,"
        " 'INCLUDE ItemID WHERE Items.year < 1980')"
    ).fetchall()
    assert [r[1] for r in got if r[0] == "99999"] == [p for (p,) in popular]


def test_batch_users_from_a_table(trained: Conn) -> None:
    trained.execute("CREATE TABLE vip AS SELECT viewer_id, 'x'::text AS tier FROM viewers LIMIT 7")
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'vip', k => 2)")
    assert trained.execute("SELECT count(DISTINCT user_id) FROM pyrec.batch_movies").fetchone() == (
        7,
    )


def test_a_second_batch_replaces_the_first_and_keeps_dependent_views(trained: Conn) -> None:
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 3)")
    trained.execute(
        "CREATE VIEW recs_with_titles AS SELECT b.user_id, m.title FROM pyrec.batch_movies b"
        " JOIN movies m ON m.movie_id::text = b.item_id"
    )
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 2', k => 2)")
    assert trained.execute("SELECT DISTINCT user_id FROM recs_with_titles").fetchall() == [("2",)]
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 3', k => 2)")
    assert trained.execute("SELECT count(*) FROM recs_with_titles").fetchone() == (2,)
    jobs = trained.execute(
        "SELECT status, rows_written, target FROM pyrec.batch_jobs ORDER BY run_id"
    ).fetchall()
    assert jobs == [("succeeded", n, "pyrec.batch_movies") for n in (3, 2, 2)]


def test_batch_refuses_to_replace_a_table_it_did_not_write(trained: Conn) -> None:
    trained.execute("CREATE TABLE precious (user_id text, item_id text)")
    trained.execute("INSERT INTO precious VALUES ('a', 'b')")
    with raises_pg(trained, "42P07", "was not written by pyrec.batch_recommend", "another"):
        trained.execute("CALL pyrec.batch_recommend('movies', into_table => 'precious')")
    assert trained.execute("SELECT * FROM precious").fetchall() == [("a", "b")]
    # the failed job left no staging table behind and says why it failed
    status, message = trained.execute(
        "SELECT status, message FROM pyrec.batch_jobs ORDER BY run_id DESC LIMIT 1"
    ).fetchone() or (None, None)
    assert status == "failed" and "precious" in message


def test_batch_rejects_bad_input(trained: Conn) -> None:
    with raises_pg(trained, "22023", "k must be between 1 and 1000"):
        trained.execute("CALL pyrec.batch_recommend('movies', k => 0)")
    with raises_pg(trained, "22004", "k must not be null"):
        trained.execute("CALL pyrec.batch_recommend('movies', k => NULL)")
    with raises_pg(trained, "42704", 'users relation "nobody" does not exist', "query"):
        trained.execute("CALL pyrec.batch_recommend('movies', users => 'nobody')")
    with raises_pg(trained, "22023", "users query failed", "single SELECT"):
        trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT nope FROM viewers')")
    with raises_pg(trained, "22023", "users query failed"):
        trained.execute(
            "CALL pyrec.batch_recommend('movies', users => 'SELECT 1; DROP TABLE movies')"
        )
    with raises_pg(trained, "22023", "returns 2 columns and none is named viewer_id"):
        trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1, 2')")
    with raises_pg(trained, "0A000", "depend on the user", "recommend per user"):
        trained.execute(
            "CALL pyrec.batch_recommend('movies', filter =>"
            " 'EXCLUDE ItemID WHERE Items.year > CurrentUser.age')"
        )
    with raises_pg(trained, "22023", "not a valid table name"):
        trained.execute("CALL pyrec.batch_recommend('movies', into_table => 'a..b')")
    with raises_pg(trained, "22023", "must be a table name or schema.table"):
        trained.execute("CALL pyrec.batch_recommend('movies', into_table => 'a.b.c')")
    with raises_pg(trained, "42704", 'model "nope" does not exist'):
        trained.execute("CALL pyrec.batch_recommend('nope')")
    with raises_pg(trained, "22023", "params were given without a filter"):
        trained.execute("CALL pyrec.batch_recommend('movies', params => '{}')")
    assert trained.execute("SELECT to_regclass('pyrec.batch_movies')").fetchone() == (None,)
    assert trained.execute("SELECT count(*) FROM movies").fetchone() == (1682,)


def test_batch_inside_a_transaction_block_is_refused(trained: Conn) -> None:
    refused = raises_pg(trained, "25001", "cannot run inside a transaction block", "outside BEGIN")
    with refused, trained.transaction():
        trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1')")


def test_batch_of_an_untrained_model_is_refused(trained: Conn) -> None:
    trained.execute("SELECT pyrec.create_model('fresh', 'ratings')")
    with raises_pg(trained, "55000", 'model "fresh" has no trained version', "train"):
        trained.execute("CALL pyrec.batch_recommend('fresh')")


def test_drop_model_drops_its_batch_tables(trained: Conn) -> None:
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 1)")
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 1, into_table => 'r1')"
    )
    trained.execute("CREATE TABLE keep_me (x int)")
    trained.execute("SELECT pyrec.drop_model('movies')")
    left = trained.execute(
        "SELECT to_regclass('pyrec.batch_movies'), to_regclass('public.r1'),"
        " to_regclass('public.keep_me')::text"
    ).fetchone()
    assert left == (None, None, "keep_me")


def test_batch_folds_in_new_history_as_recommend_does(trained: Conn) -> None:
    trained.execute("INSERT INTO ratings SELECT 5000, movie_id, 5, now() FROM movies LIMIT 3")
    trained.execute("INSERT INTO ratings VALUES (42, 1682, 5, now())")
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT unnest(ARRAY[5000, 42, 7, 6000])',"
        " k => 5)"
    )
    got = rows(trained)
    sources = {r[0]: r[4] for r in got}
    assert sources == {"5000": "fold-in", "42": "fold-in", "7": "model", "6000": "popular"}
    for user in ("5000", "42"):
        served = trained.execute(
            "SELECT item_id, score, source FROM pyrec.recommend('movies', %s, 5)", [user]
        ).fetchall()
        batch = [(r[1], r[2]) for r in got if r[0] == user]
        assert {s for _, _, s in served} == {"fold-in"}
        for (a, sa, _), (b, sb) in zip(served, batch, strict=True):
            assert sa == pytest.approx(sb, rel=1e-3, abs=1e-4), (user, served, batch)
            assert a == b or abs(sa - sb) < 1e-3


def test_batch_folds_in_item_item_history_by_summing(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_model('ease', 'ratings', recipe => 'ease',"
        ' options => \'{"holdout": 0, "params": {"rank": 32}}\')'
    )
    trained.execute("CALL pyrec.train('ease')")
    trained.execute("INSERT INTO ratings SELECT 5000, movie_id, 5, now() FROM movies LIMIT 3")
    trained.execute("CALL pyrec.batch_recommend('ease', users => 'SELECT 5000', k => 5)")
    got = [(r[1], r[4]) for r in rows(trained, "pyrec.batch_ease")]
    served = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('ease', '5000', 5)"
    ).fetchall()
    assert got == served and {s for _, s in got} == {"fold-in"}


def test_a_new_batch_keeps_grants_and_added_indexes(trained: Conn) -> None:
    call = "CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 2, into_table => 'recs')"
    role = f"reader_{trained.info.dbname}"  # roles are cluster-wide: one per test database
    trained.execute(call)
    trained.execute(f"CREATE ROLE {role}")
    try:
        trained.execute(f"GRANT SELECT ON recs TO {role}")
        trained.execute("CREATE INDEX recs_item ON recs (item_id)")
        trained.execute(call)
        assert trained.execute(
            "SELECT has_table_privilege(%s, 'recs', 'SELECT'),"
            " to_regclass('recs_item') IS NOT NULL, (SELECT count(*) FROM recs)",
            [role],
        ).fetchone() == (True, True, 2)
    finally:
        trained.execute(f"DROP OWNED BY {role}")
        trained.execute(f"DROP ROLE {role}")


def test_a_filter_allowing_nothing_writes_no_rows(trained: Conn) -> None:
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 2,"
        " filter => 'INCLUDE ItemID WHERE Items.year > 3000')"
    )
    assert trained.execute("SELECT count(*) FROM pyrec.batch_movies").fetchone() == (0,)


def test_users_with_fewer_allowed_items_than_k_get_ranks_one_to_n(trained: Conn) -> None:
    # users 1 to 30 of every source: a new user (popular), one with new history (fold-in)
    trained.execute("INSERT INTO ratings VALUES (42, 1682, 5, now())")
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT g FROM generate_series(1, 30) g"
        " UNION ALL SELECT 42 UNION ALL SELECT 99999', k => 6,"
        " filter => 'INCLUDE ItemID WHERE Items.movie_id IN ($IDS)',"
        ' params => \'{"IDS": [1, 2, 3, 50, 100, 181]}\')'
    )
    got = rows(trained)
    by_user: dict[str, list[tuple[Any, ...]]] = {}
    for r in got:
        by_user.setdefault(r[0], []).append(r)
    seen = dict(
        trained.execute(
            "SELECT viewer_id::text, array_agg(movie_id::text) FROM ratings"
            " WHERE viewer_id <= 42 GROUP BY 1"
        ).fetchall()
    )
    short = 0
    for user in [str(u) for u in range(1, 31)] + ["42", "99999"]:
        recs = by_user.get(user, [])
        allowed = {"1", "2", "3", "50", "100", "181"} - set(seen.get(user, []))
        assert {r[1] for r in recs} == allowed  # every allowed unseen item, once
        assert [r[3] for r in recs] == list(range(1, len(recs) + 1))
        assert [r[2] for r in recs] == sorted((r[2] for r in recs), reverse=True)
        short += len(recs) < 6
    assert short > 0  # some users had seen some of the six
    assert {by_user["99999"][0][4], by_user["42"][0][4], by_user["7"][0][4]} == {
        "popular",
        "fold-in",
        "model",
    }
