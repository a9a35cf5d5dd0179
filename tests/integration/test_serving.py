"""Serving beyond recommend(): fold-in, similar items, ranking, segments, because-you-watched."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from pyrec_pg.store.calibrate import LADDER, TARGET_RECALL
from tests.integration.helpers import catalog_state, raises_pg

Conn = psycopg.Connection[Any]
HORROR = (
    "SELECT m.movie_id FROM movies m JOIN ratings r USING (movie_id)"
    " WHERE 'Horror' = ANY (m.genre) GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3"
)


@pytest.fixture
def full(trained: Conn) -> Conn:
    """Model "movies" retrained with the default (full quality) ALS settings."""
    trained.execute("CALL pyrec.train('movies', '{\"params\": {}, \"holdout\": 0}')")
    return trained


def value(conn: Conn, sql: str, args: Any = None) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def genres(conn: Conn, items: list[str]) -> list[list[str]]:
    return [value(conn, "SELECT genre FROM movies WHERE movie_id = %s::int", [i]) for i in items]


def test_a_new_user_with_three_horror_events_gets_horror(full: Conn) -> None:
    before = catalog_state(full)
    full.execute(f"INSERT INTO ratings SELECT 5000, movie_id, 5, now() FROM ({HORROR}) h")
    rows = full.execute("SELECT item_id, source FROM recommend('5000', 10)").fetchall()
    assert {s for _, s in rows} == {"fold-in"}
    dark = [g for g in genres(full, [i for i, _ in rows]) if {"Horror", "Thriller"} & set(g)]
    assert len(dark) >= 6, genres(full, [i for i, _ in rows])
    assert catalog_state(full) == before  # served from live rows; nothing written by pyrec


def test_new_events_of_a_known_user_change_the_next_answer(full: Conn) -> None:
    before = full.execute("SELECT item_id, source FROM recommend('42', 10)").fetchall()
    assert {s for _, s in before} == {"model"}
    full.execute(f"INSERT INTO ratings SELECT 42, movie_id, 5, now() FROM ({HORROR}) h")
    after = full.execute("SELECT item_id, source FROM recommend('42', 10)").fetchall()
    assert {s for _, s in after} == {"fold-in"}
    assert [i for i, _ in after] != [i for i, _ in before]
    # without new events, folding in the user's own history reproduces the trained answer
    full.execute(
        "DELETE FROM ratings WHERE viewer_id = 42 AND rated_at > now() - interval '1 hour'"
    )
    assert full.execute("SELECT item_id, source FROM recommend('42', 10)").fetchall() == before


def test_fold_in_writes_nothing(full: Conn) -> None:
    # fold-in changes results with no retrain and no write outside the user's own tables
    call = "SELECT item_id, source FROM recommend(%s, 10)"
    before = full.execute(call, ["42"]).fetchall()
    assert {s for _, s in before} == {"model"}
    full.execute(f"INSERT INTO ratings SELECT 42, movie_id, 5, now() FROM ({HORROR}) h")
    full.execute(f"INSERT INTO ratings SELECT 5000, movie_id, 5, now() FROM ({HORROR}) h")
    versions = full.execute("SELECT * FROM pyrec.model_versions ORDER BY 1, 2").fetchall()
    runs = full.execute("SELECT * FROM pyrec._runs ORDER BY run_id").fetchall()
    catalog = catalog_state(full)
    # fresh sessions, so that loading pyrec_pg and its per-backend caches happen in the test
    with psycopg.connect(full.info.dsn, autocommit=True) as conn, conn.transaction():
        known = conn.execute(call, ["42"]).fetchall()
        new = conn.execute(call, ["5000"]).fetchall()
        # no transaction id: nothing was written anywhere, temporary tables included
        assert value(conn, "SELECT pg_current_xact_id_if_assigned()") is None
    assert {s for _, s in known} == {"fold-in"} and {s for _, s in new} == {"fold-in"}
    assert [i for i, _ in known] != [i for i, _ in before] and len(new) == 10
    with psycopg.connect(full.info.dsn, autocommit=True) as conn:
        conn.execute("BEGIN TRANSACTION READ ONLY")
        assert value(conn, "SHOW transaction_read_only") == "on"
        assert conn.execute(call, ["42"]).fetchall() == known
        assert conn.execute(call, ["5000"]).fetchall() == new
        conn.execute("COMMIT")
    assert full.execute("SELECT * FROM pyrec.model_versions ORDER BY 1, 2").fetchall() == versions
    assert full.execute("SELECT * FROM pyrec._runs ORDER BY run_id").fetchall() == runs
    assert catalog_state(full) == catalog


def test_fold_in_of_a_known_user_is_close_to_the_trained_vector(full: Conn) -> None:
    # one event on an item the user already has changes no count, so force a fold-in by
    # comparing the trained answer with one for a copy of the user under a new id
    full.execute(
        "INSERT INTO ratings SELECT 7000, movie_id, rating, rated_at FROM ratings WHERE"
        " viewer_id = 42"
    )
    trained = [r[0] for r in full.execute("SELECT item_id FROM recommend('42', 20)")]
    folded = full.execute("SELECT item_id, source FROM recommend('7000', 20)").fetchall()
    assert {s for _, s in folded} == {"fold-in"}
    assert len(set(trained) & {i for i, _ in folded}) >= 16


def test_item_item_recipes_fold_in_by_summing_history(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_model('ease', 'ratings', items => 'movies', recipe => 'ease',"
        ' options => \'{"holdout": 0, "params": {"rank": 64}}\')'
    )
    trained.execute("CALL pyrec.train('ease')")
    full = [r[0] for r in trained.execute("SELECT item_id FROM pyrec.recommend('ease', '42', 10)")]
    trained.execute(
        "INSERT INTO ratings SELECT 7000, movie_id, rating, rated_at FROM ratings WHERE"
        " viewer_id = 42"
    )
    folded = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('ease', '7000', 10)"
    ).fetchall()
    assert [i for i, _ in folded] == full and {s for _, s in folded} == {"fold-in"}


def test_similar_items(full: Conn) -> None:
    toy_story = full.execute(
        "SELECT movie_id::text FROM movies WHERE title LIKE 'Toy Story%'"
    ).fetchone()[0]  # type: ignore[index]
    rows = full.execute(
        "SELECT item_id, score, rank, source FROM pyrec.similar_items('movies', %s, 10)",
        [toy_story],
    ).fetchall()
    assert [r[2] for r in rows] == list(range(1, 11)) and {r[3] for r in rows} == {"model"}
    assert toy_story not in {r[0] for r in rows}
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(rows))
    # the neighbours people actually co-watch: cosine of co-occurrence, computed in SQL
    cooc = full.execute(
        "WITH a AS (SELECT viewer_id FROM ratings WHERE movie_id = %(m)s::int),"
        " co AS (SELECT r.movie_id, count(*) AS c FROM ratings r JOIN a USING (viewer_id)"
        "        WHERE r.movie_id <> %(m)s::int GROUP BY 1),"
        " n AS (SELECT movie_id, count(*) AS n FROM ratings GROUP BY 1)"
        " SELECT co.movie_id::text FROM co JOIN n USING (movie_id)"
        " ORDER BY co.c / sqrt(n.n) DESC LIMIT 10",
        {"m": toy_story},
    ).fetchall()
    assert len({r[0] for r in rows} & {c for (c,) in cooc}) >= 5, (rows, cooc)
    # CurrentItem filters: from the anchor's year
    rows = full.execute(
        "SELECT item_id FROM pyrec.similar_items('movies', %s, 5,"
        " 'INCLUDE ItemID WHERE Items.year = CurrentItem.year')",
        [toy_story],
    ).fetchall()
    years = {value(full, "SELECT year FROM movies WHERE movie_id = %s::int", [r[0]]) for r in rows}
    assert len(rows) == 5 and years == {1995}
    unknown = full.execute("SELECT source FROM pyrec.similar_items('movies', 'nope', 3)").fetchall()
    assert unknown == [("popular",)] * 3


def test_similar_items_of_an_item_item_model(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_model('sims', 'ratings', recipe => 'sims', options =>"
        " '{\"holdout\": 0}')"
    )
    trained.execute("CALL pyrec.train('sims')")
    rows = trained.execute(
        "SELECT item_id, score FROM pyrec.similar_items('sims', 1, 5)"
    ).fetchall()
    assert len(rows) == 5 and rows[0][1] > 0


def test_rank_items_keeps_every_given_item(full: Conn) -> None:
    top = [r[0] for r in full.execute("SELECT item_id FROM recommend('42', 3)")]
    given = ["nope", top[2], top[0], top[1], "nope2"]
    rows = full.execute(
        "SELECT item_id, score, rank, source FROM pyrec.rank_items('movies', '42', %s)", [given]
    ).fetchall()
    assert [r[0] for r in rows] == [top[0], top[1], top[2], "nope", "nope2"]
    assert [r[3] for r in rows] == ["model"] * 3 + ["unknown"] * 2
    assert rows[3][1] is None and [r[2] for r in rows] == [1, 2, 3, 4, 5]
    anon = full.execute(
        "SELECT source FROM pyrec.rank_items('movies', 'stranger', %s)", [given]
    ).fetchall()
    assert [r[0] for r in anon] == ["popular"] * 3 + ["unknown"] * 2
    filtered = full.execute(
        "SELECT item_id FROM pyrec.rank_items('movies', '42', %s, 'EXCLUDE ItemID WHERE"
        " Items.year < 3000')",
        [given],
    ).fetchall()
    assert filtered == [("nope",), ("nope2",)]


def test_users_for_item_and_items(full: Conn) -> None:
    rows = full.execute(
        "SELECT user_id, score, rank FROM pyrec.users_for_item('movies', '1', 20)"
    ).fetchall()
    assert [r[2] for r in rows] == list(range(1, 21))
    watched = {r[0] for r in full.execute("SELECT viewer_id::text FROM ratings WHERE movie_id = 1")}
    assert not watched & {r[0] for r in rows}
    young = full.execute(
        "SELECT user_id FROM pyrec.users_for_item('movies', '1', 10, 'INCLUDE UserID WHERE"
        " Users.age < 25')"
    ).fetchall()
    ages = [
        full.execute("SELECT age FROM viewers WHERE viewer_id = %s::int", [u]).fetchone()[0]
        for (u,) in young
    ]  # type: ignore[index]
    assert len(young) == 10 and all(a < 25 for a in ages)
    horror_fans = [
        r[0]
        for r in full.execute(
            "SELECT user_id FROM pyrec.users_for_items('movies', 'INCLUDE ItemID WHERE"
            ' Items.genre IN ("Horror")\', 20)'
        )
    ]
    share = full.execute(
        "SELECT avg((SELECT count(*) FILTER (WHERE 'Horror' = ANY (m.genre))::float / count(*)"
        " FROM ratings r JOIN movies m USING (movie_id) WHERE r.viewer_id = u::int)) FROM"
        " unnest(%s::text[]) u",
        [horror_fans],
    ).fetchone()[0]  # type: ignore[index]
    overall = full.execute(
        "SELECT count(*) FILTER (WHERE 'Horror' = ANY (m.genre))::float / count(*) FROM"
        " ratings JOIN movies m USING (movie_id)"
    ).fetchone()[0]  # type: ignore[index]
    assert share > 2 * overall, (share, overall)


def test_because_you_interacted(full: Conn) -> None:
    rows = full.execute(
        "SELECT item_id, score, rank, anchor_item_id FROM"
        " pyrec.because_you_interacted('movies', '42', 8)"
    ).fetchall()
    assert [r[2] for r in rows] == list(range(1, 9))
    latest = {
        r[0]
        for r in full.execute(
            "SELECT movie_id::text FROM ratings WHERE viewer_id = 42 ORDER BY rated_at DESC,"
            " movie_id::text LIMIT 3"
        )
    }
    seen = {r[0] for r in full.execute("SELECT movie_id::text FROM ratings WHERE viewer_id = 42")}
    assert {r[3] for r in rows} <= latest and not seen & {r[0] for r in rows}
    assert full.execute(
        "SELECT count(*) FROM pyrec.because_you_interacted('movies', 'stranger')"
    ).fetchone() == (0,)


def test_serving_functions_reject_bad_input(trained: Conn) -> None:
    with raises_pg(trained, "22004", "item must not be null"):
        trained.execute("SELECT * FROM pyrec.similar_items('movies', NULL::text)")
    with raises_pg(trained, "22023", "k must be between 1 and 10000"):
        trained.execute("SELECT * FROM pyrec.similar_items('movies', '1', 0)")
    with raises_pg(
        trained, "0A000", "CurrentUser fields and Interactions do not apply to similar_items"
    ):
        trained.execute(
            "SELECT * FROM pyrec.similar_items('movies', '1', 5, 'EXCLUDE ItemID WHERE"
            " Items.year > CurrentUser.age')"
        )
    with raises_pg(
        trained, "22023", "filter selects users (UserID) but similar_items returns items"
    ):
        trained.execute(
            "SELECT * FROM pyrec.similar_items('movies', '1', 5, 'INCLUDE UserID WHERE"
            " Users.age > 3')"
        )
    with raises_pg(
        trained, "22023", "filter selects items (ItemID) but users_for_item returns users"
    ):
        trained.execute(
            "SELECT * FROM pyrec.users_for_item('movies', '1', 5, 'INCLUDE ItemID WHERE"
            " Items.year > 3')"
        )
    with raises_pg(trained, "42704", 'item "nope" is not in version 1 of model "movies"'):
        trained.execute("SELECT * FROM pyrec.users_for_item('movies', 'nope')")
    with raises_pg(trained, "P0002", "item_filter matches no item"):
        trained.execute(
            "SELECT * FROM pyrec.users_for_items('movies', 'INCLUDE ItemID WHERE Items.year >"
            " 3000')"
        )
    with raises_pg(trained, "22004", "user_id and item_ids must not be null"):
        trained.execute("SELECT * FROM pyrec.rank_items('movies', '1', NULL)")
    with raises_pg(trained, "54000", "at most 10000"):
        trained.execute(
            "SELECT * FROM pyrec.rank_items('movies', '1', array_fill('x'::text, ARRAY[10001]))"
        )
    with raises_pg(trained, "22023", "anchors must be between 1 and 50"):
        trained.execute("SELECT * FROM pyrec.because_you_interacted('movies', '1', 5, 0)")
    with raises_pg(trained, "22023", "params were given without a filter"):
        trained.execute("SELECT * FROM pyrec.similar_items('movies', '1', 5, NULL, '{}')")


def test_hnsw_index_serves_large_catalogs_with_filters(trained: Conn) -> None:
    options = '{"holdout": 0, "params": {"factors": 16, "iterations": 4, "threads": 1}}'
    for name in ("exact", "ann"):
        trained.execute(
            "SELECT pyrec.create_model(%s, 'ratings', items => 'movies', options => %s)",
            [name, options],
        )
    trained.execute("CALL pyrec.train('exact')")
    trained.execute("SET pyrec.ann_min_items = 100")  # MovieLens' 1682 items count as large
    trained.execute("CALL pyrec.train('ann')")
    flags = trained.execute(
        "SELECT model, hnsw_index FROM pyrec.model_versions"
        " WHERE model IN ('exact', 'ann') ORDER BY 1"
    ).fetchall()
    assert flags == [("ann", True), ("exact", False)]
    tuned = trained.execute(
        "SELECT model, ef_search, ann_recall FROM pyrec.model_versions"
        " WHERE model IN ('exact', 'ann') ORDER BY 1"
    ).fetchall()
    # measured at training on a sample of the trained users, as recommend() asks the index
    assert tuned[1] == ("exact", None, None)
    assert tuned[0][1] in LADDER and tuned[0][2] >= TARGET_RECALL, tuned
    items, users = trained.execute(
        "SELECT items_table, users_table FROM pyrec.model_versions WHERE model = 'ann'"
    ).fetchone() or ("", "")
    plan = trained.execute(
        f"EXPLAIN SELECT i.item_id FROM pyrec.{items} i ORDER BY i.embedding <#>"
        f" (SELECT embedding FROM pyrec.{users} WHERE user_id = '42') LIMIT 10"
    ).fetchall()
    assert any("Index Scan" in line for (line,) in plan), plan
    top = "SELECT item_id FROM pyrec.recommend(%s, %s, 10)"
    hits = 0
    for user in range(1, 101):
        exact = {r[0] for r in trained.execute(top, ["exact", str(user)])}
        ann = {r[0] for r in trained.execute(top, ["ann", str(user)])}
        hits += len(exact & ann)
    # recall@10 of the index at the version's ef_search against the exact scan
    assert hits / 1000 >= 0.95, hits / 1000
    # a filter keeping 2% of the items still gets k rows: the index scan iterates past them
    rare = "INCLUDE ItemID WHERE Items.year < 1950"
    rows = trained.execute(
        "SELECT item_id FROM pyrec.recommend('ann', '42', 20, %s)", [rare]
    ).fetchall()
    assert len(rows) == 20


def test_selective_filters_are_scored_exactly_on_hnsw_versions(trained: Conn) -> None:
    trained.execute("SET pyrec.ann_min_items = 100")  # MovieLens' 1682 items count as large
    trained.execute("CALL pyrec.train('movies')")
    items = value(trained, "SELECT items_table FROM pyrec.model_versions WHERE status = 'active'")
    ip_index = value(
        trained,
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass"
        " AND pg_get_indexdef(indexrelid) LIKE '%%vector_ip_ops%%'",
        [f"pyrec.{items}"],
    )
    query = "SELECT item_id, score, rank, source FROM pyrec.recommend('movies', %s, 10, %s)"
    rare = "INCLUDE ItemID WHERE Items.year < 1950"  # 2% of the movies
    broad = "INCLUDE ItemID WHERE Items.year >= 1950"  # 98%
    trained.execute("SET pyrec.exact_filter_items = 200")
    for user in ("1", "42", "405"):
        rows, plans = inner_plans(trained, query, [user, rare])
        assert ip_index not in plans and f"Index Scan using {items}_pkey" in plans, plans
        # the answer of a full scan: the same query with the index's path and index scans off
        with trained.transaction(force_rollback=True):
            trained.execute("SET LOCAL pyrec.exact_filter_items = 0")
            trained.execute("SET LOCAL enable_indexscan = off")
            full = trained.execute(query, [user, rare]).fetchall()
        assert rows == full and len(rows) == 10, (rows, full)
        _, plans = inner_plans(trained, query, [user, broad])
        assert f"Index Scan using {ip_index.split('.')[-1]}" in plans, plans
    # 0: every filter goes through the index
    trained.execute("SET pyrec.exact_filter_items = 0")
    _, plans = inner_plans(trained, query, ["42", rare])
    assert f"Index Scan using {ip_index.split('.')[-1]}" in plans, plans
    trained.execute("SET pyrec.exact_filter_items = 'lots'")
    with raises_pg(
        trained, "22023", 'invalid value for setting pyrec.exact_filter_items: "lots"', "at least 0"
    ):
        trained.execute(query, ["42", rare])
    trained.execute("RESET pyrec.exact_filter_items")
    assert len(trained.execute(query, ["42", rare]).fetchall()) == 10


def inner_plans(conn: Conn, sql: str, args: Any = None) -> tuple[list[Any], str]:
    """Rows of `sql` and the plans of the statements it ran inside functions (auto_explain)."""
    plans: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        plans.append(diag.message_primary or "")

    with conn.transaction(force_rollback=True):
        conn.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("client_min_messages", "log"),
        ):
            conn.execute("SELECT set_config(%s, %s, true)", [setting, value])
        conn.add_notice_handler(keep)
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.remove_notice_handler(keep)
    return rows, "\n".join(plans)


def test_similar_items_uses_the_cosine_index_of_large_catalogs(trained: Conn) -> None:
    trained.execute("SET pyrec.ann_min_items = 100")  # MovieLens' 1682 items count as large
    trained.execute("CALL pyrec.train('movies')")
    items = value(trained, "SELECT items_table FROM pyrec.model_versions WHERE status = 'active'")
    cosine = f"{items}_cosine"
    query = "SELECT item_id, rank FROM pyrec.similar_items('movies', %s, 10, %s)"
    rare = "INCLUDE ItemID WHERE Items.year < 1950"  # 2% of the movies
    anchors = [
        str(i)
        for (i,) in trained.execute(
            "SELECT movie_id FROM ratings GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 15"
        )
    ]
    rows, plans = inner_plans(trained, query, [anchors[0], None])
    assert f"Index Scan using {cosine} on {items}" in plans and len(rows) == 10, plans
    served = {
        (a, f): trained.execute(query, [a, f]).fetchall() for a in anchors for f in (None, rare)
    }
    withdrawn = served[(anchors[1], None)][0][0]
    with trained.transaction(force_rollback=True):
        trained.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ratings_movie_id_fkey")
        trained.execute("DELETE FROM movies WHERE movie_id = %s::int", [withdrawn])
        gone = [i for i, _ in trained.execute(query, [anchors[1], None])]
        # the next ones move up: the list is refilled, not shortened
        assert withdrawn not in gone and len(gone) == 10
        assert gone[:9] == [i for i, _ in served[(anchors[1], None)][1:]]
    # without the index (as a version trained before it had one): the exact scan, the same
    # answers (HNSW over 1682 vectors finds the exact neighbours), filters applied in the scan
    with trained.transaction(force_rollback=True):
        trained.execute(f'DROP INDEX pyrec."{cosine}"')
        _, plans = inner_plans(trained, query, [anchors[0], None])
        assert cosine not in plans and f"Seq Scan on {items}" in plans, plans
        for (a, f), got in served.items():
            assert trained.execute(query, [a, f]).fetchall() == got, (a, f)
    years = {
        value(trained, "SELECT year FROM movies WHERE movie_id = %s::int", [i])
        for (_, f), got in served.items()
        if f
        for i, _ in got
    }
    assert max(years) < 1950 and all(len(got) == 10 for got in served.values())


KIDS = (
    "SELECT m.movie_id FROM movies m JOIN ratings r USING (movie_id)"
    " WHERE 'Children''s' = ANY (m.genre) AND NOT 'Horror' = ANY (m.genre)"
    " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
)
HORROR_SHARE = (
    "SELECT avg((SELECT count(*) FILTER (WHERE 'Horror' = ANY (m.genre))::float / count(*)"
    " FROM ratings r JOIN movies m USING (movie_id) WHERE r.viewer_id = u::int))"
    " FROM unnest(%s::text[]) u"
)
OVERALL_HORROR = (
    "SELECT count(*) FILTER (WHERE 'Horror' = ANY (m.genre))::float / count(*)"
    " FROM ratings JOIN movies m USING (movie_id)"
)


def horror_fans_share(conn: Conn, item: str) -> float:
    users = [
        r[0]
        for r in conn.execute("SELECT user_id FROM pyrec.users_for_item('movies', %s, 30)", [item])
    ]
    assert len(users) == 30
    return float(value(conn, HORROR_SHARE, [users]))


def test_cold_items_get_vectors_from_their_attributes(trained: Conn) -> None:
    # a horror film and a children's film no one has rated yet at training time
    horror = str(value(trained, f"SELECT movie_id FROM ({HORROR}) h LIMIT 1"))
    kids = str(value(trained, KIDS))
    trained.execute("DELETE FROM ratings WHERE movie_id IN (%s::int, %s::int)", [horror, kids])
    trained.execute("CALL pyrec.train('movies', '{\"params\": {}, \"holdout\": 0}')")
    assert value(trained, "SELECT n_cold_items FROM pyrec.model_versions WHERE version = 2") == 2
    overall = float(value(trained, OVERALL_HORROR))
    # the users drawn to the cold horror film are horror fans, unlike those of the other
    assert horror_fans_share(trained, horror) > 1.5 * overall
    assert horror_fans_share(trained, horror) > 1.5 * horror_fans_share(trained, kids)
    # an item inserted after training: refresh_items vectors it, recommend can return it
    trained.execute(
        "INSERT INTO movies VALUES (99999, 'Night of the Test', 1997, '{Horror,Thriller}')"
    )
    assert value(trained, "SELECT pyrec.refresh_items('movies')")["added"] == 1
    assert value(trained, "SELECT pyrec.refresh_items('movies')")["added"] == 0
    assert horror_fans_share(trained, "99999") > 1.5 * overall
    fans = [
        r[0]
        for r in trained.execute("SELECT user_id FROM pyrec.users_for_item('movies', '99999', 5)")
    ]
    ranked = trained.execute(
        "SELECT rank FROM recommend(%s, 1682, 'INCLUDE ItemID WHERE Items.year = 1997')"
        " WHERE item_id = '99999'",
        [fans[0]],
    ).fetchone()
    assert ranked is not None and ranked[0] <= 20, ranked


def test_refresh_items_errors(trained: Conn) -> None:
    trained.execute("SELECT pyrec.create_model('bare', 'ratings')")
    with raises_pg(trained, "22023", 'model "bare" has no items relation', "items =>"):
        trained.execute("SELECT pyrec.refresh_items('bare')")
    trained.execute("SELECT pyrec.create_model('untrained', 'ratings', items => 'movies')")
    with raises_pg(trained, "55000", 'model "untrained" has no trained version', "train"):
        trained.execute("SELECT pyrec.refresh_items('untrained')")


def test_promotions_fill_a_share_of_the_slots(trained: Conn) -> None:
    promo = (
        '{"name": "classics", "filter": "INCLUDE ItemID WHERE Items.year < $Y",'
        ' "percent": 20, "params": {"Y": 1960}}'
    )
    rows = trained.execute(
        "SELECT item_id, rank, source FROM pyrec.recommend('movies', '42', 10,"
        " filter => 'EXCLUDE ItemID WHERE Items.year = $X', params => '{\"X\": 1977}',"
        " promotion => %s)",
        [promo],
    ).fetchall()
    assert [r[1] for r in rows] == list(range(1, 11))
    promoted = [r for r in rows if r[2] == "promotion:classics"]
    assert len(promoted) == 2 and {r[1] for r in promoted} == {3, 7}  # spread through
    years = {
        r[0]: value(trained, "SELECT year FROM movies WHERE movie_id = %s::int", [r[0]])
        for r in rows
    }
    assert all(years[r[0]] < 1960 for r in promoted)
    assert all(y != 1977 for y in years.values())  # the main filter applies to all
    plain = [
        r[0]
        for r in trained.execute(
            "SELECT item_id FROM pyrec.recommend('movies', '42', 8,"
            " 'EXCLUDE ItemID WHERE Items.year = 1977')"
        )
    ]
    assert [r[0] for r in rows if r[2] == "model"] == [
        i for i in plain if i not in {p[0] for p in promoted}
    ][:8]


def test_promotion_errors(trained: Conn) -> None:
    call = "SELECT * FROM pyrec.recommend('movies', '42', 10, promotion => %s)"
    with raises_pg(trained, "22023", "promotion must be a JSON object with a filter"):
        trained.execute(call, ['{"percent": 10}'])
    with raises_pg(trained, "22023", "promotion percent must be a number between 1 and 100, got 0"):
        trained.execute(
            call, ['{"filter": "INCLUDE ItemID WHERE Items.year < 1960", "percent": 0}']
        )
    with raises_pg(trained, "22023", 'unknown promotion field "pct"'):
        trained.execute(call, ['{"filter": "x", "pct": 5}'])
    with raises_pg(trained, "22023", "filter selects users (UserID) but promotions returns items"):
        trained.execute(call, ['{"filter": "INCLUDE UserID WHERE Users.age > 1", "percent": 5}'])


def test_new_users_with_attributes_beat_global_popularity(trained: Conn) -> None:
    # every 6th viewer is new: in viewers (age, gender, occupation) but without ratings yet
    trained.execute(
        "CREATE TABLE held AS SELECT * FROM ratings WHERE viewer_id % 6 = 0;"
        " DELETE FROM ratings WHERE viewer_id % 6 = 0"
    )
    trained.execute("CALL pyrec.train('movies', '{\"params\": {}, \"holdout\": 0}')")
    popular = {r[0] for r in trained.execute("SELECT item_id FROM recommend('nobody', 10)")}
    hits_attr = hits_pop = 0
    users = [r[0] for r in trained.execute("SELECT DISTINCT viewer_id FROM held ORDER BY 1")]
    for user in users:
        liked = {
            r[0]
            for r in trained.execute("SELECT movie_id::text FROM held WHERE viewer_id = %s", [user])
        }
        rows = trained.execute("SELECT item_id, source FROM recommend(%s::text, 10)", [user])
        got = rows.fetchall()
        assert {s for _, s in got} == {"attributes"}
        hits_attr += len({i for i, _ in got} & liked)
        hits_pop += len(popular & liked)
    p_attr, p_pop = hits_attr / (10 * len(users)), hits_pop / (10 * len(users))
    print(f"precision@10 of new users: attributes {p_attr:.4f}, popularity {p_pop:.4f}")
    assert p_attr > p_pop, (p_attr, p_pop)


def test_frequently_bought_together_by_basket_and_by_time(trained: Conn) -> None:
    trained.execute(
        "CREATE TABLE orders (order_id int, customer_id int, product_id text);"
        " INSERT INTO orders VALUES (1, 1, 'tent'), (1, 1, 'stove'), (1, 1, 'mat'),"
        " (2, 2, 'tent'), (2, 2, 'stove'), (3, 3, 'tent'), (3, 3, 'lamp'),"
        " (4, 4, 'stove'), (4, 4, 'mat'), (5, 5, 'mat')"
    )
    trained.execute("SELECT pyrec.create_model('shop', 'orders', recipe => 'popularity')")
    trained.execute("CALL pyrec.train('shop', '{\"holdout\": 0}')")
    rows = trained.execute(
        "SELECT item_id, score, rank, source FROM pyrec.frequently_bought_together('shop', 'tent')"
    ).fetchall()
    assert rows == [
        ("stove", 2.0, 1, "co-occurrence"),
        ("lamp", 1.0, 2, "co-occurrence"),
        ("mat", 1.0, 3, "co-occurrence"),
    ]
    # without a session column: the same user's events within the window, counted live
    expected = trained.execute(
        "SELECT x.movie_id::text, count(DISTINCT x.viewer_id) FROM ratings x JOIN ratings a"
        " ON a.viewer_id = x.viewer_id AND a.movie_id = 50"
        " AND x.rated_at BETWEEN a.rated_at - interval '1 hour' AND a.rated_at + interval '1 hour'"
        " WHERE x.movie_id <> 50 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
    ).fetchall()
    got = trained.execute(
        "SELECT item_id, score FROM pyrec.frequently_bought_together('movies', '50', 5)"
    ).fetchall()
    assert got == [(i, float(n)) for i, n in expected] and len(got) == 5


def test_frequently_bought_together_needs_sessions_or_time(trained: Conn) -> None:
    trained.execute("CREATE TABLE bare AS SELECT viewer_id, movie_id FROM ratings")
    trained.execute("SELECT pyrec.create_model('bare', 'bare', recipe => 'popularity')")
    trained.execute("CALL pyrec.train('bare', '{\"holdout\": 0}')")
    with raises_pg(trained, "0A000", 'model "bare" has no session and no timestamp', "session"):
        trained.execute("SELECT * FROM pyrec.frequently_bought_together('bare', '50')")


def test_exploration_mixes_fresh_items_in(trained: Conn) -> None:
    trained.execute(
        "ALTER TABLE movies ADD COLUMN created_at timestamptz NOT NULL DEFAULT '2000-01-01'"
    )
    trained.execute(
        "SELECT pyrec.create_model('fresh', 'ratings', items => 'movies', options =>"
        ' \'{"holdout": 0, "params": {"factors": 16, "iterations": 4}}\')'
    )
    # three films nobody has rated yet, one of them added to the catalog today
    trained.execute(
        "INSERT INTO movies VALUES (90001, 'A', 1998, '{Drama}', now()),"
        " (90002, 'B', 1998, '{Comedy}', '2000-01-01'),"
        " (90003, 'C', 1998, '{Horror}', '2000-01-01')"
    )
    trained.execute("CALL pyrec.train('fresh')")
    call = "SELECT item_id, rank, source FROM pyrec.recommend('fresh', '42', 10, exploration => %s)"
    rows = trained.execute(call, ['{"weight": 0.3}']).fetchall()
    explored = [r for r in rows if r[2] == "exploration"]
    assert {r[0] for r in explored} == {"90001", "90002", "90003"} and len(rows) == 10
    rows = trained.execute(call, ['{"weight": 0.3, "item_age_cutoff_days": 30}']).fetchall()
    assert [r[0] for r in rows if r[2] == "exploration"] == ["90001"] and len(rows) == 10
    rows = trained.execute(call, ['{"weight": 0}']).fetchall()
    assert {r[2] for r in rows} == {"model"}
    with raises_pg(trained, "22023", "exploration weight must be a number between 0 and 1"):
        trained.execute(call, ['{"weight": 2}'])
    with raises_pg(trained, "55000", "item_age_cutoff_days needs the items' creation time"):
        trained.execute(
            "SELECT * FROM pyrec.recommend('movies', '42', 10, exploration =>"
            ' \'{"weight": 0.2, "item_age_cutoff_days": 3}\')'
        )
    with raises_pg(trained, "0A000", "a promotion or exploration, not both"):
        trained.execute(
            "SELECT * FROM pyrec.recommend('movies', '42', 10, promotion => '{}',"
            " exploration => '{\"weight\": 0.2}')"
        )


def test_users_with_events_left_out_of_training_are_not_refolded(trained: Conn) -> None:
    # window_days leaves most of each user's ratings out of training; no event is new
    trained.execute(
        "SELECT pyrec.create_model('recent', 'ratings', options =>"
        ' \'{"holdout": 0, "window_days": 60, "params": {"factors": 8, "iterations": 2}}\')'
    )
    trained.execute("CALL pyrec.train('recent')")
    users = [
        r[0]
        for r in trained.execute("SELECT user_id FROM pyrec.m2_v1_users ORDER BY user_id LIMIT 30")
    ]
    sources = {
        value(trained, "SELECT source FROM pyrec.recommend('recent', %s, 1)", [u]) for u in users
    }
    assert sources == {"model"}
    trained.execute("CALL pyrec.batch_recommend('recent', k => 1)")
    assert value(trained, "SELECT array_agg(DISTINCT source) FROM pyrec.batch_recent") == ["model"]
