"""Filter language against ground truth: recommend() with a filter vs the same rule in plain SQL."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cases import load_cases
from tests.conftest import clone_database
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]

# Personalize's documentation examples need fields MovieLens lacks; views derive them.
SHOP_VIEWS = """
CREATE VIEW movies_v AS
SELECT movie_id, title, year, genre,
       array_to_string(genre, '|') AS genre_text,
       genre[1] AS category,
       CASE WHEN year < 1980 THEN 'shoe' ELSE 'shirt' END AS category_l1,
       CASE WHEN movie_id % 3 = 0 THEN 'boot' ELSE 'sneaker' END AS category_l2,
       round((movie_id % 150)::numeric + 0.99, 2) AS price,
       (946684800 + movie_id * 86400)::bigint AS creation_timestamp,
       make_timestamptz(coalesce(year, 1900), 1 + movie_id % 12, 1, 0, 0, 0, 'UTC') AS released,
       CASE WHEN movie_id % 5 = 0 THEN 'true' ELSE 'false' END AS premium,
       (ARRAY['G', 'PG', 'R'])[movie_id % 3 + 1] AS age_rating,
       CASE WHEN movie_id % 7 = 0 THEN 'true' ELSE 'false' END AS discontinued,
       CASE WHEN movie_id % 11 = 0 THEN NULL ELSE lower(title) END AS "Label"
FROM movies;
CREATE VIEW viewers_v AS
SELECT viewer_id, age, gender, occupation, zip,
       CASE WHEN age < 18 THEN 'G' WHEN age < 30 THEN 'PG' ELSE 'R' END AS age_rating,
       CASE WHEN viewer_id % 2 = 0 THEN 'gold' ELSE 'basic' END AS membership
FROM viewers;
CREATE VIEW ratings_v AS
SELECT viewer_id, movie_id, rating, rated_at,
       (ARRAY['watch', 'Watch', 'like', 'stream', 'click'])[rating] AS event_type
FROM ratings;
"""
SMALL = '"params": {"factors": 8, "iterations": 2}, "holdout": 0'
SHOP_OPTIONS = '{"columns": {"event_type": "event_type"}, ' + SMALL + "}"

# users of known profile (viewers_v): 42 gold, 30 years, rating R; 2 gold, 53, R;
# 43 basic, 29, PG; 30 gold, 7, G; "nobody" is not a user at all
UNKNOWN = "nobody"


@pytest.fixture(scope="module")
def shop_dsn(server_dsn: str, trained_template: str) -> Iterator[str]:
    """A copy of the trained database with model "movies" plus "shop" (over the views, with an
    event type) and "bare" (interactions only), all trained."""
    for dsn in clone_database(server_dsn, trained_template):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(SHOP_VIEWS)
            c.execute(
                "SELECT pyrec.create_model('shop', 'ratings_v', items => 'movies_v',"
                " users => 'viewers_v', options => %s)",
                [SHOP_OPTIONS],
            )
            c.execute("CALL pyrec.train('shop')")
            c.execute(
                "SELECT pyrec.create_model('bare', 'ratings', options => %s)", [f"{{{SMALL}}}"]
            )
            c.execute("CALL pyrec.train('bare')")
        yield dsn


@pytest.fixture(scope="module")
def db(shop_dsn: str) -> Iterator[Conn]:
    """One session for the module: its Python and its filter cache warm up once."""
    with psycopg.connect(shop_dsn, autocommit=True) as c:
        yield c


def ids(conn: Conn, query: str, args: list[Any] | None = None) -> set[str]:
    return {str(r[0]) for r in conn.execute(query, args)}


def recommend(
    conn: Conn,
    flt: str | None,
    params: dict[str, Any] | None = None,
    *,
    model: str = "shop",
    user: str = "42",
    k: int = 10000,
    exclude_seen: bool = True,
) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT item_id, score, rank, source FROM pyrec.recommend(%s, %s, %s, %s, %s::jsonb, %s)",
        [model, user, k, flt, None if params is None else json.dumps(params), exclude_seen],
    ).fetchall()


def catalog(conn: Conn) -> set[str]:
    """The items every trained version knows: the movie ids in ratings, as text."""
    return ids(conn, "SELECT DISTINCT movie_id::text FROM ratings")


def seen(conn: Conn, user: str) -> set[str]:
    return ids(conn, "SELECT movie_id::text FROM ratings WHERE viewer_id::text = %s", [user])


def expected(conn: Conn, truth: str, user: str, exclude_seen: bool) -> set[str]:
    """Allowed items by the hand-written rule: `truth` is a query, or a WHERE over movies_v."""
    query = truth if truth.startswith("SELECT") else f"SELECT movie_id FROM movies_v WHERE {truth}"
    allowed = ids(conn, query) & catalog(conn)
    return allowed - seen(conn, user) if exclude_seen else allowed


class Case(NamedTuple):
    filter: str
    truth: str  # a query returning allowed movie ids, or a WHERE clause over movies_v
    params: dict[str, Any] | None = None
    user: str = "42"
    exclude_seen: bool = True
    model: str = "shop"


def interacted(*event_types: str, user: str = "42") -> str:
    """Items `user` interacted with under these event types (any case), as a query."""
    types = ", ".join(f"'{t.lower()}'" for t in event_types)
    return (
        f"SELECT movie_id FROM ratings_v WHERE viewer_id = {user}"
        f" AND lower(event_type) IN ({types})"
    )


def of_user(field: str, user: str = "42") -> str:
    return f"(SELECT {field} FROM viewers_v WHERE viewer_id = {user})"


def truth_table(name: str) -> list[Any]:
    """The cases of tests/cases/<name>.toml, filter and hand-written rule side by side."""
    return [pytest.param(Case(**fields), id=case_id) for case_id, fields in load_cases(name)]


PERSONALIZE_DOCS = truth_table("filters_personalize_docs")
PERSONALIZE_MORE = truth_table("filters_personalize_more")
SHORTHAND = truth_table("filters_shorthand")


def _check(conn: Conn, case: Case) -> None:
    rows = recommend(
        conn,
        case.filter,
        case.params,
        model=case.model,
        user=case.user,
        exclude_seen=case.exclude_seen,
    )
    got = [r[0] for r in rows]
    assert len(got) == len(set(got))
    want = expected(conn, case.truth, case.user, case.exclude_seen)
    assert set(got) == want, (sorted(set(got) - want)[:10], sorted(want - set(got))[:10])


@pytest.mark.parametrize("case", PERSONALIZE_DOCS)
def test_personalize_documentation_examples(db: Conn, case: Case) -> None:
    _check(db, case)


@pytest.mark.parametrize("case", PERSONALIZE_MORE)
def test_personalize_syntax(db: Conn, case: Case) -> None:
    _check(db, case)


@pytest.mark.parametrize("case", SHORTHAND)
def test_sql_shorthand(db: Conn, case: Case) -> None:
    _check(db, case)


def test_at_least_40_distinct_expressions() -> None:
    cases = [p.values[0] for p in (*PERSONALIZE_DOCS, *PERSONALIZE_MORE, *SHORTHAND)]
    assert len({c.filter for c in cases if isinstance(c, Case)}) >= 40


def test_catalog_is_the_rated_movies(db: Conn) -> None:
    for model in ("movies", "shop"):
        row = db.execute(
            "SELECT items_table FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
            [model],
        ).fetchone()
        assert row is not None
        assert ids(db, f"SELECT item_id FROM pyrec.{row[0]}") == catalog(db)


def test_movies_model_over_the_plain_tables(db: Conn) -> None:
    got = {r[0] for r in recommend(db, "genre = 'Musical' OR year < 1940", model="movies")}
    want = ids(
        db,
        "SELECT movie_id FROM movies WHERE 'Musical' = ANY (genre) OR year < 1940"
        " EXCEPT SELECT movie_id FROM ratings WHERE viewer_id = 42",
    )
    assert got == want


@pytest.mark.parametrize(
    ("flt", "params"),
    [
        ("year < 1935", None),
        ("INCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.YEAR < 1960", {"G": ["Musical"]}),
        ('EXCLUDE ItemID WHERE Items.GENRE IN ("Drama", "Comedy", "Action", "Thriller")', None),
    ],
)
def test_filter_applies_before_top_k(db: Conn, flt: str, params: dict[str, Any] | None) -> None:
    everything = recommend(db, flt, params)
    top = recommend(db, flt, params, k=10)
    assert len(top) == min(10, len(everything))
    assert len(everything) >= 10  # so that the filter really removed candidates above
    assert [r[2] for r in top] == list(range(1, len(top) + 1))
    scores = [r[1] for r in top]
    assert scores == sorted(scores, reverse=True)
    assert {r[3] for r in top} == {"model"}
    assert [r[0] for r in top] == [r[0] for r in everything[:10]]


def test_few_allowed_items_give_fewer_rows(db: Conn) -> None:
    flt = "year < 1931"
    want = expected(db, flt, "42", True)
    assert 0 < len(want) < 10
    rows = recommend(db, flt, k=10)
    assert {r[0] for r in rows} == want and len(rows) == len(want)


def test_unknown_user_gets_popular_allowed_items(db: Conn) -> None:
    flt = "INCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.YEAR < $Y"
    params = {"G": ["Drama"], "Y": 1960}
    rows = recommend(db, flt, params, user=UNKNOWN, k=10)
    want = db.execute(
        "SELECT r.movie_id::text FROM ratings r JOIN movies m USING (movie_id)"
        " WHERE 'Drama' = ANY (m.genre) AND m.year < 1960"
        " GROUP BY r.movie_id ORDER BY count(*) DESC, r.movie_id::text LIMIT 10"
    ).fetchall()
    assert [r[0] for r in rows] == [w[0] for w in want]
    assert {r[3] for r in rows} == {"popular"}
    assert [r[2] for r in rows] == list(range(1, 11))


def test_unqualified_recommend_with_filter_and_params(db: Conn) -> None:
    flt = "INCLUDE ItemID WHERE Items.GENRE IN ($G)"
    params = {"G": "Horror"}
    db.execute("SET pyrec.default_model = 'shop'")
    try:
        rows = db.execute(
            "SELECT item_id, score, rank, source FROM recommend(%s, 10000, %s, %s::jsonb)",
            ["42", flt, json.dumps(params)],
        ).fetchall()
        by_int = db.execute("SELECT item_id FROM recommend(42, 5, 'genre = ''Horror''')").fetchall()
    finally:
        db.execute("RESET pyrec.default_model")
    assert rows == recommend(db, flt, params)
    assert {r[0] for r in rows} == expected(db, "'Horror' = ANY (genre)", "42", True)
    assert [r[0] for r in by_int] == [r[0] for r in rows[:5]]


def test_named_filters(db: Conn) -> None:
    expr = "INCLUDE ItemID WHERE Items.PRICE <= $MAX AND Items.GENRE IN ($G)"
    params = {"MAX": 30, "G": ["Drama", "Comedy"]}
    created = db.execute("SELECT pyrec.create_filter('shop', 'cheap_drama', %s)", [expr]).fetchone()
    try:
        assert created is not None and created[0]["params"] == ["MAX", "G"]
        listed = db.execute(
            "SELECT model, name, expression, target, params, created_by = current_user"
            " FROM pyrec.filters WHERE name = 'cheap_drama'"
        ).fetchall()
        assert listed == [("shop", "cheap_drama", expr, "ItemID", ["MAX", "G"], True)]
        by_name = recommend(db, "cheap_drama", params)
        assert by_name == recommend(db, expr, params)
        assert {r[0] for r in by_name} == expected(
            db, "price <= 30 AND genre && ARRAY['Drama', 'Comedy']", "42", True
        )
        # the name belongs to model "shop" only
        with raises_pg(db, "42703", 'unknown field "Items.cheap_drama"', "columns of"):
            recommend(db, "cheap_drama", params, model="movies")
        with raises_pg(db, "42P02", "filter parameter $MAX has no value", '"MAX"'):
            recommend(db, "cheap_drama")
        with raises_pg(db, "42710", 'filter "cheap_drama" already exists', "drop_filter"):
            db.execute("SELECT pyrec.create_filter('shop', 'cheap_drama', 'year > 1')")
    finally:
        db.execute("SELECT pyrec.drop_filter('shop', 'cheap_drama')")
    assert db.execute("SELECT count(*) FROM pyrec.filters").fetchone() == (0,)
    with raises_pg(db, "42704", 'filter "cheap_drama" of model "shop" does not exist', "filters"):
        db.execute("SELECT pyrec.drop_filter('shop', 'cheap_drama')")
    db.execute("SELECT pyrec.drop_filter('shop', 'cheap_drama', if_exists => true)")
    # once dropped, the name is read as an expression again
    with raises_pg(db, "42703", 'unknown field "Items.cheap_drama"', "columns of"):
        recommend(db, "cheap_drama", params)


def test_named_filter_is_validated_when_created(db: Conn) -> None:
    with raises_pg(db, "42703", 'unknown field "Items.PRICEY"', "columns of public.movies_v"):
        db.execute(
            "SELECT pyrec.create_filter('shop', 'broken', 'INCLUDE ItemID WHERE Items.PRICEY < 3')"
        )
    with raises_pg(db, "42601", "filter is not a valid SQL expression at position", "Personalize"):
        db.execute("SELECT pyrec.create_filter('shop', 'broken', 'year >')")
    with raises_pg(db, "22023", 'invalid filter name "not ok"', "letters"):
        db.execute("SELECT pyrec.create_filter('shop', 'not ok', 'year > 1')")
    assert db.execute("SELECT count(*) FROM pyrec.filters").fetchone() == (0,)


def test_named_filters_with_current_user_and_interactions(db: Conn) -> None:
    db.execute(
        "SELECT pyrec.create_filter('shop', 'unclicked_for_my_rating', %s)",
        [
            'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") |'
            " INCLUDE ItemID WHERE Items.AGE_RATING IN (CurrentUser.AGE_RATING)"
        ],
    )
    try:
        for user in ("42", "43"):
            got = {
                r[0]
                for r in recommend(db, "unclicked_for_my_rating", user=user, exclude_seen=False)
            }
            want = expected(
                db,
                f"age_rating = {of_user('age_rating', user)}"
                f" AND movie_id NOT IN ({interacted('click', user=user)})",
                user,
                False,
            )
            assert got == want
    finally:
        db.execute("SELECT pyrec.drop_filter('shop', 'unclicked_for_my_rating')")


MANY_VALUES = '"x", ' * 800  # 800 list items: a filter over the 4000-character limit
FILTER_ERRORS = [
    pytest.param(
        c["model"], c["filter"], c.get("params"), c["sqlstate"], c["message"], c["hint"], id=name
    )
    for name, c in load_cases("filters_errors", {"MANY_VALUES": MANY_VALUES})
]


@pytest.mark.parametrize(("model", "flt", "params", "sqlstate", "message", "hint"), FILTER_ERRORS)
def test_filter_errors(
    db: Conn,
    model: str,
    flt: str,
    params: Any,
    sqlstate: str,
    message: str,
    hint: str | None,
) -> None:
    with raises_pg(db, sqlstate, message, hint):
        db.execute(
            "SELECT * FROM pyrec.recommend(%s, '42', 10, %s, %s::jsonb)",
            [model, flt, None if params is None else json.dumps(params)],
        )


def test_create_filter_on_a_model_without_items_or_users(db: Conn) -> None:
    with raises_pg(db, "42P01", 'model "bare" has no items relation', "items =>"):
        db.execute(
            "SELECT pyrec.create_filter('bare', 'f', 'INCLUDE ItemID WHERE Items.GENRE IN (\"x\")')"
        )
    with raises_pg(db, "42P01", 'model "bare" has no users relation', "users =>"):
        db.execute(
            "SELECT pyrec.create_filter('bare', 'f', 'INCLUDE ItemID WHERE CurrentUser.AGE > 1')"
        )
    assert db.execute("SELECT count(*) FROM pyrec.filters").fetchone() == (0,)


def test_array_param_with_equals_on_a_text_field_is_rejected(db: Conn) -> None:
    with raises_pg(db, "22023", "a filter value does not fit its field", None):
        recommend(db, "title = $T", {"T": ["Heat", "Casino"]}, exclude_seen=False)


def test_array_param_with_equals_on_an_integer_field_is_rejected(db: Conn) -> None:
    with raises_pg(db, "22023", "a filter value does not fit its field", "params"):
        recommend(db, "year = $Y", {"Y": [1995, 1996]})


@pytest.mark.parametrize(
    ("flt", "sqlstate", "message"),
    [
        ("INCLUDE ItemID", "42601", "expected WHERE at the end of the filter"),
        ('INCLUDE ItemID WHERE Items.GENRE IN ("x"', "42601", 'expected "," or ")"'),
        ("INCLUDE ItemID WHERE Items.GENRE LIKE 1", "42601", "expected IN, NOT IN or a comparison"),
        ("INCLUDE ActionID WHERE Items.GENRE IN (1)", "42601", "expected ITEMID or USERID"),
        ("year IS TRUE", "0A000", "only IS NULL / IS NOT NULL are allowed"),
    ],
)
def test_syntax_errors_have_a_hint(db: Conn, flt: str, sqlstate: str, message: str) -> None:
    with raises_pg(db, sqlstate, message, ""):
        recommend(db, flt, k=10)


def test_repeated_filter_is_cached(shop_dsn: str, db: Conn) -> None:
    """An ad-hoc filter compiles once per session; later calls cost about what a named one does.

    Timings are printed, not asserted (the benchmark bench/bench_filters.py measures them)."""
    expr = "INCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.YEAR >= $Y"
    params = {"G": ["Horror", "Thriller"], "Y": 1990}
    db.execute("SELECT pyrec.create_filter('shop', 'scary_recent', %s)", [expr])
    try:
        with psycopg.connect(shop_dsn, autocommit=True) as fresh:
            fresh.execute("SELECT pyrec._python()")  # the import is not the compile

            def timed(flt: str) -> tuple[float, list[tuple[Any, ...]]]:
                start = time.perf_counter()
                rows = recommend(fresh, flt, params, k=10)
                return time.perf_counter() - start, rows

            cold, first = timed(expr)
            cached = [timed(expr) for _ in range(5)]
            named = [timed("scary_recent") for _ in range(5)]
            model_id = fresh.execute(
                "SELECT model_id FROM pyrec.models WHERE name = 'shop'"
            ).fetchone()
            assert model_id is not None
            compiled = [
                fresh.execute("SELECT pyrec._filter(%s, %s)", [model_id[0], expr]).fetchone()
                for _ in range(2)
            ]
        assert all(rows == first for _, rows in cached + named)
        assert len(first) == 10
        assert compiled[0] == compiled[1]
        adhoc_s = statistics.median(t for t, _ in cached)
        named_s = statistics.median(t for t, _ in named)
        print(
            f"\nfilter compile+run cold {cold * 1000:.2f} ms, cached {adhoc_s * 1000:.2f} ms,"
            f" named {named_s * 1000:.2f} ms"
        )
        assert adhoc_s <= 2 * named_s + 0.05  # generous: only a recompile per call fails this
    finally:
        db.execute("SELECT pyrec.drop_filter('shop', 'scary_recent')")


# --- property: the shorthand means what the same WHERE clause means to Postgres --------------

SCALAR_COLUMNS = {
    "year": ["1995", "1930", "0", "-3", "NULL", "1.5e3"],
    "movie_id": ["1", "500", "1682", "-1"],
    "price": ["10.99", "5", "100.5", "0"],
    "abs(year)": ["1995", "1990"],
    "length(title)": ["5", "12", "0"],
    "title": ["'Heat'", "'Star Wars'", "'M'", "'Schindler''s List'", "'%a%'", "'The%'"],
    "lower(title)": ["'heat'", "'the%'", "'%s%'", "'m'"],
    '"Label"': ["'heat'", "'star wars'", "'%a%'", "NULL"],
}
TEXT_COLUMNS = {"title", "lower(title)", '"Label"'}


@st.composite
def _scalar_leaf(draw: st.DrawFn) -> str:
    col = draw(st.sampled_from(sorted(SCALAR_COLUMNS)))
    value = st.sampled_from(SCALAR_COLUMNS[col])
    ops = ["=", "<", "<=", ">", ">=", "IN", "BETWEEN", "IS NULL"]
    if col in TEXT_COLUMNS:
        ops += ["LIKE", "ILIKE"]
    else:
        ops += ["<>", "!="]  # text <> differs from SQL on NULLs: a known bug, tested in SHORTHAND
    op = draw(st.sampled_from(ops))
    if op == "IS NULL":
        return f"{col} IS NULL"
    if op == "IN":
        return f"{col} IN ({', '.join(draw(st.lists(value, min_size=1, max_size=3)))})"
    if op == "BETWEEN":
        return f"{col} BETWEEN {draw(value)} AND {draw(value)}"
    if draw(st.booleans()) and op in ("=", "<", "<=", ">", ">=") and col not in TEXT_COLUMNS:
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        return f"{draw(value)} {flipped} {col}"
    return f"{col} {op} {draw(value)}"


def _scalar_condition(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _scalar_leaf()
    inner = _scalar_condition(depth - 1)
    return st.one_of(
        _scalar_leaf(),
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(" ".join),
        inner.map(lambda c: f"({c})"),
    )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expression=_scalar_condition(3))
def test_shorthand_agrees_with_postgres(db: Conn, expression: str) -> None:
    """Over scalar columns, without NOT (covered by SHORTHAND), a shorthand filter allows
    exactly the rows Postgres's own WHERE keeps."""
    try:
        got = {r[0] for r in recommend(db, expression, exclude_seen=False)}
    except psycopg.Error as e:
        # a decimal compared with an integer column is refused (42804), where SQL would
        # compare them as numerics; nothing else may fail
        assert e.sqlstate == "42804" and "is not a valid integer" in str(e), (expression, e)
        return
    assert got == expected(db, expression, "42", False), expression
