"""Views for BI tools: metrics in long format, impressions, batch outputs, create_bi_view; what
readers and admins may see."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg
from tests.integration.test_roles import ROLES, connect_as, denied

Conn = psycopg.Connection[Any]
BATCH_COLUMNS = ["user_id", "rank", "item_id", "score", "source"]
VARIANTS = '[{"name": "control", "share": 50, "serve": "popular"}, {"name": "als", "share": 50}]'


@pytest.fixture
def batched(trained: Conn) -> Conn:
    """Model "movies" with a batch_recommend output for users 1-5 (k 3) in pyrec.batch_movies;
    pyrec_reader may read the items relation, as a view owned by pyrec_admin needs."""
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT viewer_id FROM viewers"
        " WHERE viewer_id <= 5', k => 3)"
    )
    trained.execute("GRANT SELECT ON movies TO pyrec_reader")
    return trained


def joined(conn: Conn, table: str = "pyrec.batch_movies") -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT b.user_id, b.rank, b.item_id, b.score, b.source, m.title, m.year, m.genre"
        f" FROM {table} b JOIN movies m ON m.movie_id::text = b.item_id ORDER BY 1, 2"
    ).fetchall()


def test_model_metrics_are_the_versions_metrics_in_long_format(trained: Conn) -> None:
    trained.execute("CALL pyrec.train('movies', '{\"params\": {\"factors\": 8}, \"seed\": 3}')")
    rows = trained.execute(
        "SELECT version, active, metric, k, value, popularity, protocol, holdout"
        " FROM pyrec.model_metrics WHERE model = 'movies'"
    ).fetchall()
    for version, metrics, status in trained.execute(
        "SELECT version, metrics, status FROM pyrec.model_versions"
    ):
        baseline = metrics["baseline"]["popularity"]
        expected = {
            (key.split("@")[0], int(key.split("@")[1])): (value, baseline[key])
            for key, value in metrics.items()
            if "@" in key
        }
        got = {(r[2], r[3]): (r[4], r[5]) for r in rows if r[0] == version}
        assert got == expected and len(got) == 12  # the same decimal text, parsed alike
        assert {(r[1], r[6], r[7]) for r in rows if r[0] == version} == {
            (status == "active", metrics["protocol"], metrics["holdout"])
        }
    assert {r[0] for r in rows} == {1, 2}
    # a version trained without a holdout has no metrics: no rows, nothing invented
    trained.execute("CALL pyrec.train('movies', '{\"holdout\": 0}')")
    assert trained.execute(
        "SELECT count(*) FROM pyrec.model_metrics WHERE version = 3"
    ).fetchone() == (0,)


def test_impressions_flattened_and_per_day(trained: Conn) -> None:
    trained.execute("SELECT pyrec.create_experiment('home', %s, model => 'movies')", [VARIANTS])
    for user in ("1", "2", "3", "1"):
        trained.execute("SELECT * FROM pyrec.recommend(NULL, %s, 4, experiment => 'home')", [user])
    log = trained.execute(
        "SELECT recommendation_id, experiment, variant, user_id, item_id, rank, score"
        " FROM pyrec.impression_log ORDER BY 1, rank"
    ).fetchall()
    stored = trained.execute(
        "SELECT recommendation_id, variant, user_id, items, scores FROM pyrec.impressions"
        " ORDER BY 1"
    ).fetchall()
    assert len(stored) == 4
    assert log == [
        (rid, "home", variant, user, item, n + 1, score)
        for rid, variant, user, items, scores in stored
        for n, (item, score) in enumerate(zip(items, scores, strict=True))
    ]
    daily = trained.execute(
        "SELECT variant, day = current_date, impressions, users, items_shown"
        " FROM pyrec.impressions_daily WHERE experiment = 'home' ORDER BY 1"
    ).fetchall()
    per_variant: dict[str, list[str]] = {}
    for _, variant, user, _, _ in stored:
        per_variant.setdefault(variant, []).append(user)
    assert daily == [
        (v, True, len(users), len(set(users)), 4 * len(users))
        for v, users in sorted(per_variant.items())
    ]


def test_batch_outputs_list_each_target_and_whether_it_is_still_there(batched: Conn) -> None:
    batched.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 7', into_table => 'r1')")
    batched.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 2)")
    batched.execute("CALL pyrec.batch_users_for_items('movies', items => 'SELECT 50', n => 4)")
    batched.execute("CREATE TABLE precious (user_id text, item_id text)")
    with pytest.raises(psycopg.errors.DuplicateTable):  # a failed job leaves no output
        batched.execute("CALL pyrec.batch_recommend('movies', into_table => 'precious')")
    assert batched.execute(
        "SELECT count(*) FROM pyrec.batch_jobs WHERE status = 'failed'"
    ).fetchone() == (1,)
    batched.execute("DROP TABLE r1")
    got = batched.execute(
        "SELECT target, produced_by, version, rows_written, present, bi_views"
        " FROM pyrec.batch_outputs WHERE model = 'movies' ORDER BY target"
    ).fetchall()
    assert got == [
        ("public.r1", None, 1, 25, False, []),
        ("pyrec.batch_movies", "batch_recommend", 1, 2, True, []),
        ("pyrec.segments_movies", "batch_users_for_items", 1, 4, True, []),
    ]


def test_create_bi_view_joins_the_latest_output_with_the_items(batched: Conn) -> None:
    name = batched.execute("SELECT pyrec.create_bi_view('movies', 'movie_recs')").fetchone()
    assert name == ("public.movie_recs",)
    assert batched.execute("SELECT * FROM movie_recs ORDER BY 1, 2").fetchall() == joined(batched)
    assert len(joined(batched)) == 15
    # the id column's own type joins, so the items' primary key is used
    plan = "\n".join(
        r[0] for r in batched.execute("EXPLAIN SELECT * FROM movie_recs WHERE user_id = '1'")
    )
    assert "movies_pkey" in plan
    # the next batch into the same table shows through the view at once
    batched.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 9', k => 2)")
    assert batched.execute("SELECT DISTINCT user_id FROM movie_recs").fetchall() == [("9",)]
    assert batched.execute("SELECT * FROM movie_recs ORDER BY 1, 2").fetchall() == joined(batched)
    owner, note, readable = batched.execute(
        "SELECT c.relowner::regrole::text, obj_description(c.oid, 'pg_class'),"
        " has_table_privilege('pyrec_reader', c.oid, 'SELECT')"
        " FROM pg_class c WHERE c.oid = 'movie_recs'::regclass"
    ).fetchone() or (None, None, None)
    assert owner == "pyrec_admin" and readable
    assert note == (
        "pyrec BI view: model movies, batch output pyrec.batch_movies joined with public.movies"
    )
    assert batched.execute(
        "SELECT bi_views FROM pyrec.batch_outputs WHERE target = 'pyrec.batch_movies'"
    ).fetchone() == (["public.movie_recs"],)
    assert batched.execute(
        "SELECT details FROM pyrec.audit WHERE action = 'create_bi_view'"
    ).fetchall() == [({"view": "public.movie_recs", "source": "pyrec.batch_movies"},)]


def test_create_bi_view_of_a_given_output_with_chosen_columns_and_replace(batched: Conn) -> None:
    batched.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT 2', k => 4, into_table => 'r2')"
    )
    batched.execute("CREATE SCHEMA reporting")
    batched.execute(
        "SELECT pyrec.create_bi_view('movies', 'reporting.\"Recs\"', source => 'r2',"
        " item_columns => ARRAY['year', 'title'])"
    )
    got = batched.execute('SELECT * FROM reporting."Recs" ORDER BY rank').fetchall()
    assert got == [(*r[:5], r[6], r[5]) for r in joined(batched, "r2")]
    with raises_pg(batched, "42P07", 'BI view reporting."Recs" already exists', "replace => true"):
        batched.execute("SELECT pyrec.create_bi_view('movies', 'reporting.\"Recs\"')")
    batched.execute(
        "SELECT pyrec.create_bi_view('movies', 'reporting.\"Recs\"', replace => true)"
    )
    # the latest batch_recommend output (r2, not batch_movies), now with every item column
    replaced = batched.execute('SELECT count(*), count(genre) FROM reporting."Recs"').fetchone()
    assert replaced == (4, 4)
    # items gone from the items relation stay in the view, without their fields
    batched.execute(
        "DELETE FROM movies WHERE movie_id IN (SELECT item_id::int FROM r2 WHERE rank <= 2)"
    )
    assert batched.execute(
        'SELECT count(*), count(title) FROM reporting."Recs"'
    ).fetchone() == (4, 2)


def test_drop_model_drops_its_bi_views_but_not_others(batched: Conn) -> None:
    batched.execute("SELECT pyrec.create_bi_view('movies', 'movie_recs')")
    batched.execute("CREATE VIEW mine AS SELECT * FROM movies WHERE year > 1990")
    batched.execute("SELECT pyrec.drop_model('movies')")
    assert batched.execute(
        "SELECT to_regclass('movie_recs'), to_regclass('pyrec.batch_movies'),"
        " to_regclass('mine')::text"
    ).fetchone() == (None, None, "mine")


def test_create_bi_view_rejects_bad_input(batched: Conn) -> None:
    def call(args: str) -> None:
        batched.execute(f"SELECT pyrec.create_bi_view({args})")

    with raises_pg(batched, "22004", "model and view_name must not be null"):
        call("'movies', NULL")
    with raises_pg(batched, "42704", 'model "nope" does not exist', "pyrec.models"):
        call("'nope', 'v'")
    batched.execute("SELECT pyrec.create_model('bare', 'ratings')")
    with raises_pg(batched, "55000", 'model "bare" has no items relation', "items =>"):
        call("'bare', 'v'")
    batched.execute("SELECT pyrec.create_model('fresh', 'ratings', items => 'movies')")
    no_output = 'model "fresh" has no batch_recommend output'
    with raises_pg(batched, "55000", no_output, "batch_recommend('fresh')"):
        call("'fresh', 'v'")
    with raises_pg(batched, "42P01", 'source table "nothing" does not exist', "batch_outputs"):
        call("'movies', 'v', source => 'nothing'")
    with raises_pg(batched, "22023", 'source "a..b" is not a valid table name'):
        call("'movies', 'v', source => 'a..b'")
    with raises_pg(batched, "42809", "public.movies is not a batch_recommend output of model"):
        call("'movies', 'v', source => 'movies'")
    batched.execute("CALL pyrec.batch_users_for_items('movies', items => 'SELECT 50', n => 4)")
    with raises_pg(batched, "42809", "pyrec.segments_movies is not a batch_recommend output"):
        call("'movies', 'v', source => 'pyrec.segments_movies'")
    with raises_pg(batched, "42703", 'column "price" does not exist in items relation', "title"):
        call("'movies', 'v', item_columns => ARRAY['title', 'price']")
    with raises_pg(batched, "22004", "item_columns must not contain NULL", "title"):
        call("'movies', 'v', item_columns => ARRAY['title', NULL]")
    with raises_pg(batched, "42701", 'column "title" would appear twice', "once"):
        call("'movies', 'v', item_columns => ARRAY['title', 'title']")
    with raises_pg(batched, "42P07", "public.movies exists and was not made by pyrec.create_bi"):
        call("'movies', 'movies', replace => true")
    with raises_pg(batched, "22023", 'view_name "a..b" is not a valid view name'):
        call("'movies', 'a..b'")
    with raises_pg(batched, "22023", "must be a view name or schema.view"):
        call("'movies', 'a.b.c'")
    with raises_pg(batched, "22023", "...(10004 characters)\" must be a view name"):
        call(f"'movies', '{'x' * 10000}.a.b'")  # a caller's long value is shown shortened
    batched.execute("REVOKE SELECT ON movies FROM pyrec_reader")
    unreadable = "pyrec_admin cannot read the items relation public.movies"
    with raises_pg(batched, "42501", unreadable, "GRANT SELECT ON public.movies TO pyrec_reader"):
        call("'movies', 'v'")
    assert batched.execute("SELECT to_regclass('v')").fetchone() == (None,)


@pytest.fixture
def roles(batched: Conn) -> Conn:
    # roles belong to the cluster: made once; carol is a second admin
    for name, member_of in {**ROLES, "carol": "pyrec_admin"}.items():
        if batched.execute("SELECT to_regrole(%s)", [name]).fetchone() == (None,):
            batched.execute(f"CREATE ROLE {name} LOGIN")
        if member_of:
            batched.execute(f"GRANT {member_of} TO {name}")
    batched.execute("GRANT SELECT ON ratings, viewers TO pyrec_reader")
    batched.execute("CREATE SCHEMA reporting AUTHORIZATION alice")
    batched.execute("GRANT CREATE ON SCHEMA reporting TO carol")
    batched.execute("GRANT USAGE ON SCHEMA reporting TO pyrec_reader")
    return batched


def test_readers_browse_the_bi_views_and_admins_make_them(roles: Conn) -> None:
    roles.execute("SELECT pyrec.create_experiment('home', %s, model => 'movies')", [VARIANTS])
    roles.execute("SELECT * FROM pyrec.recommend(NULL, '1', 3, experiment => 'home')")
    with connect_as(roles, "alice") as alice:
        made = alice.execute("SELECT pyrec.create_bi_view('movies', 'reporting.recs')").fetchone()
        assert made == ("reporting.recs",)
        assert alice.execute("SELECT count(*) FROM pyrec.impression_log").fetchone() == (3,)
    with connect_as(roles, "bob") as bob:
        assert bob.execute("SELECT * FROM reporting.recs ORDER BY 1, 2").fetchall() == joined(roles)
        assert bob.execute("SELECT count(*) > 0 FROM pyrec.model_metrics").fetchone() == (True,)
        outputs = bob.execute("SELECT target, present, bi_views FROM pyrec.batch_outputs")
        assert outputs.fetchall() == [("pyrec.batch_movies", True, ["reporting.recs"])]
        daily = bob.execute("SELECT sum(impressions)::int FROM pyrec.impressions_daily")
        assert daily.fetchone() == (1,)
        for sql in (
            "SELECT * FROM pyrec.impression_log",  # who was served what: admins only
            "SELECT * FROM pyrec.batch_movies",  # the output itself: through the BI view
            "SELECT pyrec.create_bi_view('movies', 'public.mine')",
            "SELECT pyrec._drop_bi_views('pyrec.batch_movies')",
        ):
            denied(bob, sql)
    with connect_as(roles, "eve") as eve:
        for sql in (
            "SELECT * FROM reporting.recs",
            "SELECT * FROM pyrec.model_metrics",
            "SELECT * FROM pyrec.batch_outputs",
        ):
            denied(eve, sql)
    # another admin may replace alice's view (it belongs to pyrec_admin); drop_model removes it
    with connect_as(roles, "carol") as carol:
        carol.execute(
            "SELECT pyrec.create_bi_view('movies', 'reporting.recs',"
            " item_columns => ARRAY['title'], replace => true)"
        )
        columns = carol.execute("SELECT * FROM reporting.recs").description or []
        assert [c.name for c in columns] == [*BATCH_COLUMNS, "title"]
        carol.execute("SELECT pyrec.drop_model('movies')")
    assert roles.execute("SELECT to_regclass('reporting.recs')").fetchone() == (None,)
