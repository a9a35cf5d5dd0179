"""The live catalog: withdrawn items vanish from serving at once; lists of items, excluded ids,
Personalize's missing-parameter rule and event value thresholds."""

from __future__ import annotations

import json
import random
from typing import Any

import psycopg
import pytest

from tests.integration import test_filters
from tests.integration.helpers import raises_pg
from tests.integration.test_filters import PERSONALIZE_DOCS, Case, recommend

Conn = psycopg.Connection[Any]
# the filter tests' "shop" model (Personalize's example fields), in a database of this module
shop_dsn = test_filters.shop_dsn
db = test_filters.db
SMALL = '{"params": {"factors": 16, "iterations": 4}, "holdout": 0}'


def items_of(conn: Conn, sql: str, args: Any = None) -> list[str]:
    return [str(r[0]) for r in conn.execute(sql, args).fetchall()]


def top_item(conn: Conn, user: str = "42") -> str:
    return items_of(conn, "SELECT item_id FROM pyrec.recommend('movies', %s, 1)", [user])[0]


@pytest.fixture(params=["exact", "hnsw"])
def served(request: pytest.FixtureRequest, trained: Conn) -> Conn:
    """Model "movies" (items relation "movies") with an exact or an HNSW version active."""
    if request.param == "hnsw":
        trained.execute("SET pyrec.ann_min_items = 100")  # MovieLens' 1682 items count as large
        trained.execute("CALL pyrec.train('movies')")
        row = trained.execute(
            "SELECT hnsw_index FROM pyrec.model_versions WHERE model = 'movies'"
            " AND status = 'active'"
        ).fetchone()
        assert row == (True,)
    return trained


def everywhere(conn: Conn, item: str) -> dict[str, list[str]]:
    """What every serving function returns that could hold `item` (user 42, anchor 50)."""
    q = {
        "recommend": "SELECT item_id FROM pyrec.recommend('movies', '42', 50)",
        "recommend popular": "SELECT item_id FROM pyrec.recommend('movies', 'nobody', 50)",
        "similar_items": "SELECT item_id FROM pyrec.similar_items('movies', '50', 50)",
        "similar_items to it": f"SELECT item_id FROM pyrec.similar_items('movies', '{item}', 50)",
        "because_you_interacted": (
            "SELECT item_id FROM pyrec.because_you_interacted('movies', '42', 50)"
        ),
        "recommend_for_items": (
            "SELECT item_id FROM pyrec.recommend_for_items('movies', ARRAY['50', '181'], 50)"
        ),
        "promotion": (
            "SELECT item_id FROM pyrec.recommend('movies', '42', 50, promotion =>"
            ' \'{"filter": "INCLUDE ItemID WHERE Items.year < 2000", "percent": 50}\')'
        ),
        "exploration": (
            "SELECT item_id FROM pyrec.recommend('movies', '42', 50,"
            " exploration => '{\"weight\": 0.5}')"
        ),
        "rank_items (known)": (
            f"SELECT item_id FROM pyrec.rank_items('movies', '42', ARRAY['{item}', '50'])"
            " WHERE source <> 'unknown'"
        ),
        "frequently_bought_together": (
            "SELECT item_id FROM pyrec.frequently_bought_together('movies', '50', 50,"
            " time_window => '100 years')"
        ),
    }
    return {name: items_of(conn, sql) for name, sql in q.items()}


def test_a_deleted_item_vanishes_in_the_same_transaction(served: Conn) -> None:
    item = top_item(served)
    before = everywhere(served, item)
    assert item in before["recommend"]
    with served.transaction(force_rollback=True):
        served.execute("DELETE FROM ratings WHERE movie_id = %s::int", [item])
        served.execute("DELETE FROM movies WHERE movie_id = %s::int", [item])
        after = everywhere(served, item)
        for name, got in after.items():
            assert item not in got, name
            assert got, name  # the rest is still served
        # the next item moves up: the list is refilled, not shortened
        assert len(after["recommend"]) == 50
        assert after["recommend"][:10] == [i for i in before["recommend"] if i != item][:10]
        ranked = served.execute(
            "SELECT item_id, score, source FROM pyrec.rank_items('movies', '42', ARRAY[%s, '50'])",
            [item],
        ).fetchall()
        assert ranked[-1] == (item, None, "unknown")
        with raises_pg(served, "42704", "no longer offered", "live catalog"), served.transaction():
            served.execute("SELECT * FROM pyrec.users_for_item('movies', %s)", [item])
    # rolled back: the item is served again
    assert everywhere(served, item)["recommend"] == before["recommend"]
    # batch jobs run outside transaction blocks: the same, committed (its ratings kept)
    served.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ratings_movie_id_fkey")
    served.execute("DELETE FROM movies WHERE movie_id = %s::int", [item])
    served.execute("CALL pyrec.batch_recommend('movies', k => 50, into_table => 'recs')")
    batch = items_of(served, "SELECT DISTINCT item_id FROM recs")
    assert batch and item not in batch
    served.execute(
        "CALL pyrec.batch_users_for_items('movies', items => %s, into_table => 'seg')",
        [f"SELECT movie_id FROM (VALUES ({int(item)}), (50)) v(movie_id)"],
    )
    assert items_of(served, "SELECT DISTINCT item_id FROM seg") == ["50"]


@pytest.mark.parametrize("withdrawn", [3, 150])
def test_full_scans_stay_exact_however_many_top_items_are_withdrawn(
    trained: Conn, withdrawn: int
) -> None:
    # full scans test the live catalog on the best k + 100 first, else scan again with it
    queries = {
        "similar": "SELECT item_id FROM pyrec.similar_items('movies', '50', %s)",
        "recommend": "SELECT item_id FROM pyrec.recommend('movies', '42', %s)",
        "popular": "SELECT item_id FROM pyrec.recommend('movies', 'nobody', %s)",
    }
    for name, query in queries.items():
        ranked = items_of(trained, query, [withdrawn + 10])
        with trained.transaction(force_rollback=True):
            trained.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ratings_movie_id_fkey")
            trained.execute(
                "DELETE FROM movies WHERE movie_id = ANY (%s::int[])", [ranked[:withdrawn]]
            )
            assert items_of(trained, query, [10]) == ranked[withdrawn:], name


def test_users_for_items_reads_only_offered_items(trained: Conn) -> None:
    genre = 'INCLUDE ItemID WHERE Items.genre IN ("Film-Noir")'
    before = trained.execute(
        "SELECT user_id, score FROM pyrec.users_for_items('movies', %s, 20)", [genre]
    ).fetchall()
    kept = trained.execute(
        "SELECT min(movie_id) FROM movies JOIN ratings USING (movie_id)"
        " WHERE 'Film-Noir' = ANY (genre)"
    ).fetchone()
    assert kept is not None
    with trained.transaction(force_rollback=True):
        trained.execute("ALTER TABLE ratings DROP CONSTRAINT IF EXISTS ratings_movie_id_fkey")
        trained.execute(
            "DELETE FROM movies WHERE 'Film-Noir' = ANY (genre) AND movie_id <> %s", kept
        )
        after = trained.execute(
            "SELECT user_id, score FROM pyrec.users_for_items('movies', %s, 20)", [genre]
        ).fetchall()
        one = trained.execute(
            "SELECT user_id, score FROM pyrec.users_for_item('movies', %s::text, 20,"
            " exclude_seen => false)",
            kept,
        ).fetchall()
    assert after != before
    # the segment of the one remaining item is its own: the mean of one vector
    assert [u for u, _ in after] == [u for u, _ in one]


@pytest.mark.parametrize("column", ["boolean", "text"])
def test_an_item_marked_unavailable_is_withdrawn(trained: Conn, column: str) -> None:
    if column == "boolean":
        trained.execute("ALTER TABLE movies ADD COLUMN in_stock boolean")
        off, on = "false", "NULL"  # unknown availability counts as available
    else:
        trained.execute("ALTER TABLE movies ADD COLUMN available text DEFAULT 'True'")
        off, on = "'False'", "'True'"
    trained.execute(
        "SELECT pyrec.create_model('stock', 'ratings', items => 'movies', options => %s)", [SMALL]
    )
    role = trained.execute(
        "SELECT columns->>'items_available' FROM pyrec.models WHERE name = 'stock'"
    ).fetchone()
    assert role == ("in_stock" if column == "boolean" else "available",)
    trained.execute("CALL pyrec.train('stock')")
    col = role[0]
    first = items_of(trained, "SELECT item_id FROM pyrec.recommend('stock', '42', 10)")
    trained.execute(f"UPDATE movies SET {col} = {off} WHERE movie_id = %s::int", [first[0]])
    after = items_of(trained, "SELECT item_id FROM pyrec.recommend('stock', '42', 10)")
    assert first[0] not in after and after[:9] == first[1:10]
    similar = items_of(trained, "SELECT item_id FROM pyrec.similar_items('stock', '50', 1682)")
    assert first[0] not in similar
    trained.execute(f"UPDATE movies SET {col} = {on} WHERE movie_id = %s::int", [first[0]])
    assert items_of(trained, "SELECT item_id FROM pyrec.recommend('stock', '42', 10)") == first


def test_a_mapped_availability_column_must_be_boolean_or_text(trained: Conn) -> None:
    with raises_pg(trained, "42804", 'items_available column "year" has type integer', "boolean"):
        trained.execute(
            "SELECT pyrec.create_model('stock', 'ratings', items => 'movies',"
            ' options => \'{"columns": {"items_available": "year"}}\')'
        )


def test_a_dropped_items_relation_is_a_clear_error(trained: Conn) -> None:
    trained.execute("ALTER TABLE movies RENAME TO films")
    with raises_pg(trained, "42P01", "no longer matches its definition", "restore it"):
        trained.execute("SELECT * FROM pyrec.recommend('movies', '42', 5)")


# --- lists of items --------------------------------------------------------------------------


@pytest.fixture
def checkerboard(conn: Conn) -> Conn:
    """Two worlds that never meet: users u0-u29 use items a0-a11, users u30-u59 items b0-b11."""
    rng = random.Random(7)
    rows = []
    for u in range(60):
        side = "a" if u < 30 else "b"
        for i in rng.sample(range(12), 6):
            rows.append((f"u{u}", f"{side}{i}"))
    conn.execute("CREATE TABLE cart_events (user_id text, item_id text)")
    conn.execute("CREATE TABLE cart_items (item_id text PRIMARY KEY, brand text)")
    with conn.cursor().copy("COPY cart_events FROM STDIN") as copy:
        for r in rows:
            copy.write_row(r)
    conn.execute(
        "INSERT INTO cart_items SELECT s || i, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END"
        " FROM unnest(ARRAY['a', 'b']) s, generate_series(0, 11) i"
    )
    for model, recipe in (("cart_als", "als"), ("cart_ii", "sims")):
        conn.execute(
            "SELECT pyrec.create_model(%s, 'cart_events', items => 'cart_items', recipe => %s,"
            " options => %s)",
            [
                model,
                recipe,
                '{"params": {"factors": 8, "iterations": 15}, "holdout": 0}'
                if recipe == "als"
                else '{"holdout": 0}',
            ],
        )
        conn.execute("CALL pyrec.train(%s)", [model])
    return conn


@pytest.mark.parametrize("model", ["cart_als", "cart_ii"])
def test_a_cart_gets_its_complements(checkerboard: Conn, model: str) -> None:
    rows = checkerboard.execute(
        "SELECT item_id, source FROM pyrec.recommend_for_items(%s, ARRAY['a1', 'a2', 'a3'], 6)",
        [model],
    ).fetchall()
    assert len(rows) == 6
    assert {s for _, s in rows} == {"fold-in"}
    got = [i for i, _ in rows]
    assert all(i.startswith("a") for i in got), got  # the cart's world only
    assert not {"a1", "a2", "a3"} & set(got)  # the cart itself is not recommended back
    other = items_of(
        checkerboard,
        "SELECT item_id FROM pyrec.recommend_for_items(%s, ARRAY['b4'], 6)",
        [model],
    )
    assert all(i.startswith("b") for i in other) and "b4" not in other


def test_a_cart_respects_filters_exclusions_and_promotions(checkerboard: Conn) -> None:
    even = 'INCLUDE ItemID WHERE Items.brand IN ("even")'
    got = items_of(
        checkerboard,
        "SELECT item_id FROM pyrec.recommend_for_items('cart_als', ARRAY['a1'], 5, %s,"
        " exclude_items => ARRAY['a2', 'a4'])",
        [even],
    )
    assert got and all(int(i[1:]) % 2 == 0 for i in got)
    assert not {"a2", "a4"} & set(got)
    # nothing the version knows: the most popular items
    popular = checkerboard.execute(
        "SELECT DISTINCT source FROM pyrec.recommend_for_items('cart_als', ARRAY['zz'], 5)"
    ).fetchall()
    assert popular == [("popular",)]
    with raises_pg(checkerboard, "22004", "items must not be null", "cart"):
        checkerboard.execute("SELECT * FROM pyrec.recommend_for_items('cart_als', NULL)")


def test_a_cart_has_no_current_user(trained: Conn) -> None:
    with raises_pg(trained, "0A000", "do not apply to recommend_for_items", "user"):
        trained.execute(
            "SELECT * FROM pyrec.recommend_for_items('movies', ARRAY['50'], 5,"
            " 'INCLUDE ItemID WHERE Items.year < 1990 IF CurrentUser.age > 30')"
        )


def test_a_cart_in_an_experiment_is_logged_under_its_session(checkerboard: Conn) -> None:
    checkerboard.execute(
        "SELECT pyrec.create_experiment('carts', %s, model => 'cart_als')",
        ['[{"name": "a", "share": 50}, {"name": "b", "share": 50}]'],
    )
    rows = checkerboard.execute(
        "SELECT source FROM pyrec.recommend_for_items(NULL, ARRAY['a1'], 3,"
        " experiment => 'carts', session_id => 's-1')"
    ).fetchall()
    assert len(rows) == 3 and {s.split(":")[1] for (s,) in rows} == {"fold-in"}
    logged = checkerboard.execute("SELECT user_id FROM pyrec.impressions").fetchall()
    assert logged == [("s-1",)]
    with raises_pg(checkerboard, "22004", "needs session_id", "session"):
        checkerboard.execute(
            "SELECT * FROM pyrec.recommend_for_items(NULL, ARRAY['a1'], 3, experiment => 'carts')"
        )


# --- excluding given ids (pages) ------------------------------------------------------------


def test_pages_do_not_repeat(trained: Conn) -> None:
    twenty = items_of(trained, "SELECT item_id FROM pyrec.recommend('movies', '42', 20)")
    first = items_of(trained, "SELECT item_id FROM pyrec.recommend('movies', '42', 10)")
    second = items_of(
        trained,
        "SELECT item_id FROM pyrec.recommend('movies', '42', 10, exclude_items => %s)",
        [first],
    )
    assert first + second == twenty
    near = items_of(trained, "SELECT item_id FROM pyrec.similar_items('movies', '50', 20)")
    page = items_of(
        trained,
        "SELECT item_id FROM pyrec.similar_items('movies', '50', 10, exclude_items => %s)",
        [near[:10]],
    )
    assert page == near[10:]
    as_int = items_of(
        trained,
        "SELECT item_id FROM pyrec.recommend('movies', 42::bigint, 10, exclude_items => %s)",
        [first],
    )
    assert as_int == second


# --- Personalize's missing-parameter rule -----------------------------------------------------


def _without_params(case: Case) -> tuple[str | None, str | None]:
    """The filter Personalize applies when no parameter is given: EXCLUDE parts with a
    parameter dropped, or the parameter an INCLUDE part misses."""
    kept = []
    for part in case.filter.split(" | "):
        if "$" in part:
            if part.lstrip().upper().startswith("INCLUDE"):
                return None, part[part.index("$") + 1 :].split(")")[0].split()[0]
            continue
        kept.append(part)
    return " | ".join(kept) or None, None


WITH_PARAMS = [p for p in PERSONALIZE_DOCS if p.values[0].params]


@pytest.mark.parametrize("case", WITH_PARAMS)
def test_missing_parameters_follow_personalize(db: Conn, case: Case) -> None:
    applied, missing = _without_params(case)
    if missing is not None:
        with raises_pg(db, "42P02", f"filter parameter ${missing} has no value", "params"):
            recommend(db, case.filter, None, user=case.user, exclude_seen=case.exclude_seen)
        return
    got = recommend(db, case.filter, None, user=case.user, exclude_seen=case.exclude_seen)
    want = recommend(db, applied, None, user=case.user, exclude_seen=case.exclude_seen)
    assert [r[0] for r in got] == [r[0] for r in want]
    # with its parameters given, the EXCLUDE applies again (a no-op when its IF is unmet)
    given = recommend(db, case.filter, case.params, user=case.user, exclude_seen=case.exclude_seen)
    assert {r[0] for r in given} <= {r[0] for r in want}


def test_the_missing_parameter_rule_is_tested() -> None:
    cases = [_without_params(p.values[0]) for p in WITH_PARAMS]
    assert sum(m is None for _, m in cases) >= 3 and sum(m is not None for _, m in cases) >= 3


def test_a_chained_exclude_drops_only_its_own_part(db: Conn) -> None:
    chained = (
        "EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | EXCLUDE ItemID WHERE"
        ' Items.AGE_RATING IN ("R")'
    )
    got = {r[0] for r in recommend(db, chained)}
    want = {r[0] for r in recommend(db, 'EXCLUDE ItemID WHERE Items.AGE_RATING IN ("R")')}
    assert got == want
    mixed = "INCLUDE ItemID WHERE Items.PRICE <= $PRICE | EXCLUDE ItemID WHERE Items.PRICE < $PRICE"
    with raises_pg(db, "42P02", "filter parameter $PRICE has no value", "params"):
        recommend(db, mixed)


# --- event value threshold --------------------------------------------------------------------


def test_events_under_the_threshold_are_not_trained(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_model('liked', 'ratings', options => %s)",
        [
            json.dumps(
                {
                    "event_value_threshold": 4,
                    "holdout": 0,
                    "params": {"factors": 16, "iterations": 4},
                }
            )
        ],
    )
    trained.execute("CALL pyrec.train('liked')")
    pairs = trained.execute(
        "SELECT n_interactions FROM pyrec.model_versions WHERE model = 'liked'"
    ).fetchone()
    liked = trained.execute(
        "SELECT count(DISTINCT (viewer_id, movie_id)) FROM ratings WHERE rating >= 4"
    ).fetchone()
    assert pairs == liked
    # a new user who only disliked things has no history to fold in; seen items stay seen
    trained.execute("INSERT INTO ratings SELECT 9001, movie_id, 1, now() FROM movies LIMIT 5")
    rows = trained.execute("SELECT item_id, source FROM pyrec.recommend('liked', '9001', 20)")
    got = rows.fetchall()
    assert {s for _, s in got} == {"popular"}
    disliked = items_of(trained, "SELECT movie_id FROM ratings WHERE viewer_id = 9001")
    assert not set(disliked) & {i for i, _ in got}
    trained.execute("INSERT INTO ratings VALUES (9001, 50, 5, now()), (9001, 181, 5, now())")
    sources = trained.execute("SELECT DISTINCT source FROM pyrec.recommend('liked', '9001', 5)")
    assert sources.fetchall() == [("fold-in",)]


def test_threshold_per_event_type(db: Conn) -> None:
    # shop's event types: rating 1 watch, 2 Watch, 3 like, 4 stream, 5 click (any case)
    db.execute(
        "SELECT pyrec.create_model('typed', 'ratings_v', items => 'movies_v', options => %s)",
        [
            json.dumps(
                {
                    "columns": {"event_type": "event_type", "event_value": "rating"},
                    "event_value_threshold": {"WATCH": 2},
                    "holdout": 0,
                    "params": {"factors": 8, "iterations": 2},
                }
            )
        ],
    )
    db.execute("CALL pyrec.train('typed')")
    pairs = db.execute("SELECT n_interactions FROM pyrec.model_versions WHERE model = 'typed'")
    kept = db.execute(
        "SELECT count(DISTINCT (viewer_id, movie_id)) FROM ratings_v"
        " WHERE lower(event_type) <> 'watch' OR rating >= 2"
    )
    assert pairs.fetchone() == kept.fetchone()


@pytest.mark.parametrize(
    ("threshold", "state", "message"),
    [
        ("4", "22023", "must be a number, or a JSON object"),
        ({}, "22023", "must be a number, or a JSON object"),
        (4, "42703", "needs an event value column"),  # plain has no value column
    ],
)
def test_bad_thresholds(conn: Conn, threshold: Any, state: str, message: str) -> None:
    conn.execute("CREATE TABLE plain (user_id int, item_id int)")
    options = json.dumps({"event_value_threshold": threshold})
    with raises_pg(conn, state, message, "event"):
        conn.execute("SELECT pyrec.create_model('t', 'plain', options => %s)", [options])
