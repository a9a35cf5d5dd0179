"""The bad input catalogue: bad calls across the whole SQL API fail cleanly, change nothing.

Each row of BAD is one bad call with the SQLSTATE, a fragment of the message and (where the
API gives one) of the HINT it must fail with; the catalog and the user's tables must be the
same afterwards. ANSWERS holds the bad-looking calls pyrec answers sensibly instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import clone_database
from tests.integration.helpers import catalog_state, raises_pg

Conn = psycopg.Connection[Any]
Rows = list[tuple[Any, ...]]

BIG = "x" * (10 * 1024 * 1024)  # a 10 MB string
SHOWN = "x" * 60 + "...(10485760 characters)"  # how an error message shows BIG
LONG_PARAM = "P" * 3900  # a parameter name that fits the 4000-character filter limit
TINY = '{"holdout": 0, "params": {"factors": 4, "iterations": 2}}'
SMALL = "SELECT viewer_id, movie_id, rating, rated_at FROM ratings WHERE viewer_id < 100"
SOURCES = "no longer matches its definition"
RECREATE = "drop and recreate the model"
NO_FUNCTION = "No function matches"


def _model(
    conn: Conn, name: str, source: str, items: str | None = None, train: bool = True
) -> None:
    conn.execute(
        "SELECT pyrec.create_model(%s, %s, items => %s, options => %s)", [name, source, items, TINY]
    )
    if train:
        conn.execute(f"CALL pyrec.train('{name}')")


@pytest.fixture(scope="module")
def db(server_dsn: str, trained_template: str) -> Iterator[Conn]:
    """A copy of the trained database (model "movies") with models over bad data, and models
    whose sources were dropped, renamed or retyped after training."""
    for dsn in clone_database(server_dsn, trained_template):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET statement_timeout = '60s'")
            c.execute("CREATE TABLE empty_r (user_id int, item_id int, ts timestamptz)")
            _model(c, "empty", "empty_r", train=False)
            c.execute("CREATE TABLE nulls_r AS SELECT NULL::int AS user_id, g AS item_id"
                      " FROM generate_series(1, 50) g")  # fmt: skip
            _model(c, "nulls", "nulls_r", train=False)
            _model(c, "fresh", "ratings", items="movies", train=False)
            # zero variance: a single (user, item) pair; all-identical users; duplicates
            c.execute("CREATE TABLE one_r AS SELECT 1 AS user_id, 1 AS item_id")
            _model(c, "one", "one_r")
            c.execute("CREATE TABLE same_r AS SELECT u AS user_id, i AS item_id"
                      " FROM generate_series(1, 50) u, generate_series(1, 10) i")  # fmt: skip
            c.execute("INSERT INTO same_r VALUES (999, 11)")
            _model(c, "same", "same_r")
            c.execute(f"CREATE TABLE dups_r AS {SMALL} UNION ALL {SMALL}")
            _model(c, "dups", "dups_r")
            c.execute(f"CREATE TABLE nots_r AS SELECT viewer_id, movie_id FROM ({SMALL}) s")
            _model(c, "nots", "nots_r")
            # sources changed after training
            for name in ("gone", "renamed", "retyped", "gone_items"):
                c.execute(f"CREATE TABLE {name}_r AS {SMALL}")
                c.execute(f"CREATE TABLE {name}_m AS SELECT * FROM movies")
                _model(c, name, f"{name}_r", items=f"{name}_m")
            c.execute("DROP TABLE gone_r")
            c.execute("ALTER TABLE renamed_r RENAME COLUMN viewer_id TO who")
            c.execute("ALTER TABLE retyped_r ALTER COLUMN viewer_id TYPE text")
            c.execute("DROP TABLE gone_items_m")
            c.execute(
                'SELECT pyrec.create_experiment(\'home\', \'[{"name": "a", "share": 1},'
                ' {"name": "b", "share": 1}]\', model => \'movies\')'
            )
            yield c


def world(conn: Conn) -> tuple[Any, ...]:
    """The user's tables and what pyrec keeps beside catalog_state (filters, experiments)."""
    return (
        catalog_state(conn),
        conn.execute(
            "SELECT (SELECT count(*) FROM ratings), (SELECT count(*) FROM movies),"
            " (SELECT count(*) FROM viewers), (SELECT count(*) FROM pyrec._filters),"
            " (SELECT count(*) FROM pyrec._experiments),"
            " (SELECT count(*) FROM pyrec.impressions),"
            " (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
        ).fetchone(),
    )


@dataclass(frozen=True)
class Bad:
    call: str
    sqlstate: str
    message: str
    hint: str | None = ""  # "" : a HINT must be there; None: Postgres itself gives none
    args: tuple[Any, ...] = ()
    setup: tuple[str, ...] = ()  # run before, outside raises_pg


def case(name: str, *a: Any, **kw: Any) -> Any:
    return pytest.param(Bad(*a, **kw), id=name)


REC = "SELECT * FROM pyrec.recommend"
PROMO = '{"filter": "INCLUDE ItemID WHERE Items.year < 1960", "percent": 20}'

BAD = [
    # create_model
    case(
        "create_model/null name",
        "SELECT pyrec.create_model(NULL, 'ratings')",
        "22004",
        "model name must not be null",
        "pyrec.create_model('movies', 'ratings')",
    ),
    case(
        "create_model/null interactions",
        "SELECT pyrec.create_model('m2', NULL)",
        "22004",
        "interactions must not be null",
        "table or view",
    ),
    case(
        "create_model/duplicate",
        "SELECT pyrec.create_model('movies', 'ratings')",
        "42710",
        'model "movies" already exists',
        "drop_model('movies')",
    ),
    case(
        "create_model/unknown table",
        "SELECT pyrec.create_model('m2', 'no_such')",
        "42P01",
        'interactions relation "no_such" does not exist',
        "schema-qualified",
    ),
    case(
        "create_model/not a name",
        "SELECT pyrec.create_model('m2', 'ratings; DROP TABLE x')",
        "22023",
        'invalid interactions relation name "ratings; DROP TABLE x"',
        "table or view",
    ),
    case(
        "create_model/bad name",
        "SELECT pyrec.create_model('bad name', 'ratings')",
        "22023",
        'invalid model name "bad name"',
        "up to 48 letters",
    ),
    case(
        "create_model/10 MB name",
        "SELECT pyrec.create_model(%s, 'ratings')",
        "22023",
        "invalid model name",
        "up to 48 letters",
        args=(BIG,),
    ),
    case(
        "create_model/10 MB relation",
        "SELECT pyrec.create_model('m2', %s)",
        "42P01",
        "interactions relation",
        "schema-qualified",
        args=(BIG,),
    ),
    case(
        "create_model/unknown recipe",
        "SELECT pyrec.create_model('m2', 'ratings', recipe => 'x')",
        "22023",
        'unknown recipe "x"',
        "als",
    ),
    case(
        "create_model/options not an object",
        "SELECT pyrec.create_model('m2', 'ratings', options => '[]')",
        "22023",
        "options must be a JSON object",
        "factors",
    ),
    case(
        "create_model/columns not an object",
        "SELECT pyrec.create_model('m2', 'ratings', options => '{\"columns\": []}')",
        "22023",
        "options.columns must be a JSON object",
        "viewer_id",
    ),
    case(
        "create_model/unknown column",
        "SELECT pyrec.create_model('m2', 'ratings',"
        ' options => \'{"columns": {"user": "nope"}}\')',
        "42703",
        'column "nope" mapped as user does not exist',
        "viewer_id, movie_id",
    ),
    case(
        "create_model/no user column",
        "SELECT pyrec.create_model('m2', 'movies')",
        "42703",
        "cannot find the user column of public.movies",
        '"columns": {"user"',
    ),
    case(
        "create_model/text timestamp",
        "SELECT pyrec.create_model('m2', 'ratings',"
        ' options => \'{"columns": {"timestamp": "rating"}}\')',
        "42804",
        'timestamp column "rating" has type smallint',
        "timestamp",
    ),
    case(
        "create_model/negative factors",
        "SELECT pyrec.create_model('m2', 'ratings', options => '{\"params\": {\"factors\": -1}}')",
        "22023",
        'parameter "factors" of recipe als is out of range: -1',
        "between 1 and 1024",
    ),
    case(
        "create_model/factors of wrong type",
        "SELECT pyrec.create_model('m2', 'ratings',"
        ' options => \'{"params": {"factors": "many"}}\')',
        "22023",
        'parameter "factors" of recipe als must be an integer',
        "many",
    ),
    case(
        "create_model/holdout out of range",
        "SELECT pyrec.create_model('m2', 'ratings', options => '{\"holdout\": 2}')",
        "22023",
        "options.holdout must be a fraction",
        "0.25",
    ),
    case(
        "create_model/unknown option",
        "SELECT pyrec.create_model('m2', 'ratings', options => '{\"bogus\": 1}')",
        "22023",
        'unknown option "bogus"',
        "event_weights",
    ),
    # train
    case(
        "train/null model",
        "CALL pyrec.train(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "train/unknown model",
        "CALL pyrec.train('nope')",
        "42704",
        'model "nope" does not exist',
        "pyrec.create_model",
    ),
    case(
        "train/10 MB model name",
        "CALL pyrec.train(%s)",
        "42704",
        "does not exist",
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "train/unknown mode",
        "CALL pyrec.train('movies', mode => 'sideways')",
        "22023",
        "unknown training mode 'sideways'",
        '"update"',
    ),
    case(
        "train/null mode",
        "CALL pyrec.train('movies', mode => NULL)",
        "22004",
        "mode must not be null",
        '"update"',
    ),
    case(
        "train/options not an object",
        "CALL pyrec.train('movies', '[]')",
        "22023",
        "options must be a JSON object",
        "factors",
    ),
    case(
        "train/zero factors",
        "CALL pyrec.train('movies', '{\"params\": {\"factors\": 0}}')",
        "22023",
        'parameter "factors" of recipe als is out of range: 0',
        "between 1 and 1024",
    ),
    case(
        "train/huge iterations",
        "CALL pyrec.train('movies', '{\"params\": {\"iterations\": 1e12}}')",
        "22023",
        '"iterations" of recipe als is out of range',
        "between 1 and 1000",
    ),
    case(
        "train/empty table",
        "CALL pyrec.train('empty')",
        "22000",
        "public.empty_r has no usable interactions",
        "non-NULL user and item",
    ),
    case(
        "train/only NULL users",
        "CALL pyrec.train('nulls')",
        "22000",
        "public.nulls_r has no usable interactions",
        "non-NULL user and item",
    ),
    case(
        "train/update without a version",
        "CALL pyrec.train('fresh', mode => 'update')",
        "55000",
        'model "fresh" has no active version to update',
        "full training first",
    ),
    case(
        "train/dropped source table",
        "CALL pyrec.train('gone')",
        "42P01",
        f'interactions relation public.gone_r of model "gone" {SOURCES}: it does not exist',
        RECREATE,
    ),
    case(
        "train/renamed column",
        "CALL pyrec.train('renamed')",
        "42703",
        'column "viewer_id" (mapped as user) does not exist',
        "columns of public.renamed_r",
    ),
    case(
        "train/retyped column",
        "CALL pyrec.train('retyped')",
        "42804",
        'column "viewer_id" (mapped as user) has type text, not integer',
        RECREATE,
    ),
    case(
        "train/dropped items table",
        "CALL pyrec.train('gone_items')",
        "42P01",
        f'items relation public.gone_items_m of model "gone_items" {SOURCES}',
        RECREATE,
    ),
    # recommend (text and bigint overloads, public.recommend)
    case(
        "recommend/k 0",
        f"{REC}('movies', '42', 0)",
        "22023",
        "k must be between 1 and 10000, got 0",
        "number of items",
    ),
    case("recommend/negative k", f"{REC}('movies', '42', -5)", "22023", "got -5", "number"),
    case("recommend/null k", f"{REC}('movies', '42', NULL)", "22023", "got NULL", "number"),
    case("recommend/huge k", f"{REC}('movies', '42', 1000000)", "22023", "got 1000000", "number"),
    case(
        "recommend/k beyond integer",
        f"{REC}('movies', '42', 3000000000)",
        "42883",
        "function pyrec.recommend(unknown, unknown, bigint) does not exist",
        NO_FUNCTION,
    ),
    case(
        "recommend/k as text",
        f"{REC}('movies', '42', 'ten')",
        "22P02",
        'invalid input syntax for type integer: "ten"',
        None,
    ),
    case(
        "recommend/user of wrong type",
        f"{REC}('movies', 42.5, 10)",
        "42883",
        "pyrec.recommend(unknown, numeric, integer) does not exist",
        NO_FUNCTION,
    ),
    case(
        "recommend/null user",
        f"{REC}('movies', NULL::text, 10)",
        "22004",
        "user_id must not be null",
        "as text",
    ),
    case(
        "recommend/null bigint user",
        f"{REC}('movies', NULL::bigint, 10)",
        "22004",
        "user_id must not be null",
        "as text",
    ),
    case(
        "recommend/bigint user, bad k",
        f"{REC}('movies', 42::bigint, -1)",
        "22023",
        "got -1",
        "number",
    ),
    case(
        "recommend/null model",
        f"{REC}(NULL, '42', 10)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "recommend/unknown model",
        f"{REC}('nope', '42', 10)",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "recommend/10 MB model name",
        f"{REC}(%s, '42', 10)",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "similar_items/10 MB model name",
        "SELECT * FROM pyrec.similar_items(%s, '50')",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "recommend/untrained model",
        f"{REC}('fresh', '42', 10)",
        "55000",
        'model "fresh" has no trained version',
        "CALL pyrec.train('fresh')",
    ),
    case(
        "recommend/bad filter",
        f"{REC}('movies', '42', 10, 'EXCLUDE ItemID WHERE')",
        "42601",
        "expected a field such as Items.GENRE",
        "Dataset.FIELD",
    ),
    case(
        "recommend/user filter",
        f"{REC}('movies', '42', 10, 'INCLUDE UserID WHERE Users.age > 3')",
        "22023",
        "filter selects users (UserID)",
        "ItemID filter",
    ),
    case(
        "recommend/unknown filter field",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.nope = 1')",
        "42703",
        'unknown field "Items.nope"',
        "columns of public.movies",
    ),
    case(
        "recommend/10 MB filter",
        f"{REC}('movies', '42', 10, %s)",
        "54000",
        "filter is 10485760 characters long, the limit is 4000",
        "named filters",
        args=(BIG,),
    ),
    case(
        "recommend/params not an object",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.year > $Y', params => '[]')",
        "22023",
        "params must be a JSON object, got array",
        "GENRES",
    ),
    case(
        "recommend/missing param",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.year > $Y')",
        "42P02",
        "filter parameter $Y has no value",
        '"Y"',
    ),
    case(
        "recommend/param of wrong type",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE"
        ' Items.year > $Y\', params => \'{"Y": "abc"}\')',
        "22023",
        "a filter value does not fit its field",
        "type of the field",
    ),
    case(
        "recommend/10 MB param value",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.year > $Y', params => %s)",
        "22023",
        'a filter value does not fit its field: invalid input syntax for type integer: "xxx',
        "type of the field",
        args=('{"Y": "' + BIG + '"}',),
    ),
    case(
        "recommend/long missing param",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.year > ${LONG_PARAM}')",
        "42P02",
        f"filter parameter ${'P' * 60}...(3900 characters) has no value",
        "(3900 characters)",
    ),
    case(
        "recommend/long param given a list",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.year > ${LONG_PARAM}',"
        " params => %s)",
        "22023",
        f"parameter ${'P' * 60}...(3900 characters) must be a single value, not a JSON array",
        "IN ($PPP",
        args=('{"' + LONG_PARAM + '": [1, 2]}',),
    ),
    case(
        "recommend/params without filter",
        f"{REC}('movies', '42', 10, params => '{{}}')",
        "22023",
        "params were given without a filter",
        "$PARAMETERS",
    ),
    case(
        "recommend/promotion percent",
        f"{REC}('movies', '42', 10, promotion =>"
        ' \'{"filter": "INCLUDE ItemID WHERE Items.year < 1960", "percent": 500}\')',
        "22023",
        "promotion percent must be a number between 1 and 100, got 500",
        "k slots",
    ),
    case(
        "recommend/10 MB promotion percent",
        f"{REC}('movies', '42', 10, promotion => %s)",
        "22023",
        f"promotion percent must be a number between 1 and 100, got {SHOWN}",
        "k slots",
        args=('{"filter": "INCLUDE ItemID WHERE Items.year < 1960", "percent": "' + BIG + '"}',),
    ),
    case(
        "recommend/10 MB promotion field",
        f"{REC}('movies', '42', 10, promotion => %s)",
        "22023",
        f'unknown promotion field "{SHOWN}"',
        "name, filter, percent and params",
        args=('{"filter": "INCLUDE ItemID WHERE Items.year < 1960", "' + BIG + '": 1}',),
    ),
    case(
        "recommend/promotion and exploration",
        f"{REC}('movies', '42', 10, promotion => %s, exploration => '{{\"weight\": 0.5}}')",
        "0A000",
        "a promotion or exploration, not both",
        "one of them",
        args=(PROMO,),
    ),
    case(
        "recommend/exploration weight",
        f"{REC}('movies', '42', 10, exploration => '{{\"weight\": 2}}')",
        "22023",
        "exploration weight must be a number between 0 and 1",
        "fresh items",
    ),
    case(
        "recommend/10 MB exploration weight",
        f"{REC}('movies', '42', 10, exploration => %s)",
        "22023",
        f"exploration weight must be a number between 0 and 1, got {SHOWN}",
        "fresh items",
        args=('{"weight": "' + BIG + '"}',),
    ),
    case(
        "recommend/10 MB exploration field",
        f"{REC}('movies', '42', 10, exploration => %s)",
        "22023",
        f'unknown exploration field "{SHOWN}"',
        "weight and item_age_cutoff_days",
        args=('{"weight": 0.5, "' + BIG + '": 1}',),
    ),
    case(
        "recommend/unknown experiment",
        f"{REC}('movies', '42', 10, experiment => 'nope')",
        "42704",
        'experiment "nope" does not exist',
        "pyrec.experiments",
    ),
    case(
        "recommend/10 MB experiment name",
        f"{REC}('movies', '42', 10, experiment => %s)",
        "42704",
        f'experiment "{SHOWN}" does not exist',
        "pyrec.experiments",
        args=(BIG,),
    ),
    case(
        "recommend/10 MB model in an experiment",
        f"{REC}(%s, '42', 10, experiment => 'home')",
        "22023",
        f'model "{SHOWN}" is not part of experiment "home"',
        "model => NULL",
        args=(BIG,),
    ),
    case(
        "recommend/dropped source table",
        f"{REC}('gone', '1', 3)",
        "42P01",
        f'interactions relation public.gone_r of model "gone" {SOURCES}',
        RECREATE,
    ),
    case(
        "recommend/renamed column",
        f"{REC}('renamed', '1', 3)",
        "42P01",
        'column "viewer_id" does not exist',
        RECREATE,
    ),
    case("recommend/retyped column", f"{REC}('retyped', '1', 3)", "42P01", SOURCES, RECREATE),
    case(
        "recommend/filter on dropped items",
        f"{REC}('gone_items', '1', 3, 'INCLUDE ItemID WHERE Items.year > 1990')",
        "42P01",
        'items relation "public.gone_items_m" does not exist',
        "table or view",
    ),
    case("public.recommend/k 0", "SELECT * FROM recommend('42', 0)", "22023", "got 0", "number"),
    case(
        "public.recommend/bigint, null user",
        "SELECT * FROM recommend(NULL::bigint, 5)",
        "22004",
        "user_id must not be null",
        "as text",
    ),
    case(
        "public.recommend/no default model",
        "SELECT * FROM recommend(42, 10)",
        "42704",
        "models and no default one",
        "SET pyrec.default_model",
        setup=("RESET pyrec.default_model",),
    ),
    # similar_items, rank_items, users_for_item(s), because_you_interacted, bought together
    case(
        "similar_items/null item",
        "SELECT * FROM pyrec.similar_items('movies', NULL::text)",
        "22004",
        "item must not be null",
        "similar_items('movies', '50', 10)",
    ),
    case(
        "similar_items/k 0",
        "SELECT * FROM pyrec.similar_items('movies', '50', 0)",
        "22023",
        "k must be between 1 and 10000, got 0",
        "number of rows",
    ),
    case(
        "similar_items/user filter",
        "SELECT * FROM pyrec.similar_items('movies', '50', 10,"
        " 'INCLUDE ItemID WHERE CurrentUser.age > 3')",
        "0A000",
        "CurrentUser fields and Interactions do not apply to similar_items",
        "need a user",
    ),
    case(
        "rank_items/null list",
        "SELECT * FROM pyrec.rank_items('movies', '42', NULL)",
        "22004",
        "user_id and item_ids must not be null",
        "ARRAY[",
    ),
    case(
        "rank_items/too many items",
        "SELECT * FROM pyrec.rank_items('movies', '42', array_fill('1'::text, ARRAY[10001]))",
        "54000",
        "item_ids holds 10001 items",
        "in parts",
    ),
    case(
        "rank_items/integer array",
        "SELECT * FROM pyrec.rank_items('movies', '42', ARRAY[1, 50])",
        "42883",
        "pyrec.rank_items(unknown, unknown, integer[])",
        NO_FUNCTION,
    ),
    case(
        "rank_items/dropped source table",
        "SELECT * FROM pyrec.rank_items('gone', '1', ARRAY['50'])",
        "42P01",
        SOURCES,
        RECREATE,
    ),
    case(
        "users_for_item/unknown item",
        "SELECT * FROM pyrec.users_for_item('movies', 'zzz')",
        "42704",
        'item "zzz" is not in version 1 of model "movies"',
        "retrain",
    ),
    case(
        "users_for_item/10 MB item",
        "SELECT * FROM pyrec.users_for_item('movies', %s)",
        "42704",
        f'item "{SHOWN}" is not in version 1 of model "movies"',
        "retrain",
        args=(BIG,),
    ),
    case(
        "users_for_item/huge n",
        "SELECT * FROM pyrec.users_for_item('movies', '50', 2000000)",
        "22023",
        "n must be between 1 and 1000000, got 2000000",
        "number of rows",
    ),
    case(
        "users_for_item/renamed column",
        "SELECT * FROM pyrec.users_for_item('renamed', '50')",
        "42P01",
        f'of model "renamed" {SOURCES}: column "viewer_id" does not exist',
        RECREATE,
    ),
    case(
        "users_for_items/null filter",
        "SELECT * FROM pyrec.users_for_items('movies', NULL)",
        "22004",
        "item_filter must not be null",
        "INCLUDE ItemID",
    ),
    case(
        "users_for_items/matches nothing",
        "SELECT * FROM pyrec.users_for_items('movies', 'INCLUDE ItemID WHERE Items.year > 3000')",
        "P0002",
        'item_filter matches no item of version 1 of model "movies"',
        "filter's values",
    ),
    case(
        "users_for_items/negative n",
        "SELECT * FROM pyrec.users_for_items('movies', 'INCLUDE ItemID WHERE Items.year > 1', -1)",
        "22023",
        "got -1",
        "number of rows",
    ),
    case(
        "because_you_interacted/null user",
        "SELECT * FROM pyrec.because_you_interacted('movies', NULL)",
        "22004",
        "user_id must not be null",
        "because_you_interacted('movies', '42', 10)",
    ),
    case(
        "because_you_interacted/anchors 51",
        "SELECT * FROM pyrec.because_you_interacted('movies', '42', 10, 51)",
        "22023",
        "anchors must be between 1 and 50, got 51",
        "anchors",
    ),
    case(
        "because_you_interacted/dropped source",
        "SELECT * FROM pyrec.because_you_interacted('gone', '1')",
        "42P01",
        SOURCES,
        RECREATE,
    ),
    case(
        "bought_together/null item",
        "SELECT * FROM pyrec.frequently_bought_together('movies', NULL)",
        "22004",
        "item must not be null",
        "sku-1",
    ),
    case(
        "bought_together/null window",
        "SELECT * FROM pyrec.frequently_bought_together('movies', '50', time_window => NULL)",
        "22023",
        "time_window must be a positive interval, got NULL",
        "1 hour",
    ),
    case(
        "bought_together/negative window",
        "SELECT * FROM pyrec.frequently_bought_together('movies', '50', time_window => '-1 hour')",
        "22023",
        "time_window must be a positive interval",
        "1 hour",
    ),
    case(
        "bought_together/no time column",
        "SELECT * FROM pyrec.frequently_bought_together('nots', '50')",
        "0A000",
        'model "nots" has no session and no timestamp column',
        '"session"',
    ),
    case(
        "bought_together/dropped source",
        "SELECT * FROM pyrec.frequently_bought_together('gone', '50')",
        "42P01",
        f'of model "gone" {SOURCES}',
        RECREATE,
    ),
    # batch_recommend, batch_users_for_items
    case(
        "batch_recommend/null model",
        "CALL pyrec.batch_recommend(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "batch_recommend/k 0",
        "CALL pyrec.batch_recommend('movies', k => 0)",
        "22023",
        "k must be between 1 and 1000, got 0",
        "items per user",
    ),
    case(
        "batch_recommend/null k",
        "CALL pyrec.batch_recommend('movies', k => NULL)",
        "22004",
        "k must not be null",
        "items per user",
    ),
    case(
        "batch_recommend/bad users query",
        "CALL pyrec.batch_recommend('movies', users => 'SELECT nope FROM')",
        "22023",
        "users query failed",
        "single SELECT",
    ),
    case(
        "batch_recommend/users not a query",
        "CALL pyrec.batch_recommend('movies', users => 'DELETE FROM ratings RETURNING viewer_id')",
        "22023",
        "is neither a SELECT query nor a table name",
        "table or view name",
    ),
    case(
        "batch_recommend/10 MB users",
        "CALL pyrec.batch_recommend('movies', users => %s)",
        "42704",
        "users relation",
        "table or view name",
        args=(BIG,),
    ),
    case(
        "batch_recommend/10 MB filter",
        "CALL pyrec.batch_recommend('movies', filter => %s)",
        "54000",
        "the limit is 4000",
        "named filters",
        args=(BIG,),
    ),
    case(
        "batch_recommend/foreign table",
        "CALL pyrec.batch_recommend('movies', into_table => 'ratings')",
        "42P07",
        "public.ratings exists and was not written by pyrec.batch_recommend",
        "another into_table",
    ),
    case(
        "batch_recommend/untrained",
        "CALL pyrec.batch_recommend('fresh')",
        "55000",
        'model "fresh" has no trained version',
        "CALL pyrec.train('fresh')",
    ),
    case(
        "batch_recommend/dropped source",
        "CALL pyrec.batch_recommend('gone')",
        "42P01",
        SOURCES,
        RECREATE,
    ),
    case(
        "batch_users_for_items/n 0",
        "CALL pyrec.batch_users_for_items('movies', n => 0)",
        "22023",
        "n must be between 1 and 1000, got 0",
        "users per item",
    ),
    case(
        "batch_users_for_items/item filter",
        "CALL pyrec.batch_users_for_items('movies',"
        " filter => 'INCLUDE ItemID WHERE Items.year > 1')",
        "22023",
        "filter selects items (ItemID)",
        "UserID filter",
    ),
    case(
        "batch_users_for_items/items not a query",
        "CALL pyrec.batch_users_for_items('movies', items => 'DELETE FROM movies')",
        "22023",
        "is neither a SELECT query",
        "SELECT sku FROM promo",
    ),
    case(
        "batch_users_for_items/renamed column",
        "CALL pyrec.batch_users_for_items('renamed')",
        "42703",
        'column "viewer_id" (mapped as user) does not exist',
        RECREATE,
    ),
    # create_filter, drop_filter
    case(
        "create_filter/null name",
        "SELECT pyrec.create_filter('movies', NULL, 'x')",
        "22004",
        "filter name must not be null",
        "create_filter('movies'",
    ),
    case(
        "create_filter/null expression",
        "SELECT pyrec.create_filter('movies', 'f', NULL)",
        "22004",
        "filter expression must not be null",
        "EXCLUDE ItemID",
    ),
    case(
        "create_filter/bad name",
        "SELECT pyrec.create_filter('movies', 'bad name', 'EXCLUDE ItemID WHERE Items.year > 1')",
        "22023",
        'invalid filter name "bad name"',
        "48 letters",
    ),
    case(
        "create_filter/10 MB expression",
        "SELECT pyrec.create_filter('movies', 'f', %s)",
        "54000",
        "the limit is 4000",
        "named filters",
        args=(BIG,),
    ),
    case(
        "create_filter/duplicate",
        "SELECT pyrec.create_filter('movies', 'dup', 'EXCLUDE ItemID WHERE Items.year > 1')",
        "42710",
        'filter "dup" already exists for model "movies"',
        "drop_filter('movies', 'dup')",
        setup=(
            "SELECT pyrec.drop_filter('movies', 'dup', if_exists => true)",
            "SELECT pyrec.create_filter('movies', 'dup', 'EXCLUDE ItemID WHERE Items.year > 2')",
        ),
    ),
    case(
        "drop_filter/unknown",
        "SELECT pyrec.drop_filter('movies', 'nope')",
        "42704",
        'filter "nope" of model "movies" does not exist',
        "pyrec.filters",
    ),
    case(
        "drop_filter/null name",
        "SELECT pyrec.drop_filter('movies', NULL)",
        "22004",
        "model and filter name must not be null",
        "pyrec.filters",
    ),
    case(
        "drop_filter/10 MB name",
        "SELECT pyrec.drop_filter('movies', %s)",
        "42704",
        f'filter "{SHOWN}" of model "movies" does not exist',
        "pyrec.filters",
        args=(BIG,),
    ),
    case(
        "drop_filter/10 MB model",
        "SELECT pyrec.drop_filter(%s, 'f')",
        "42704",
        f'filter "f" of model "{SHOWN}" does not exist',
        "pyrec.filters",
        args=(BIG,),
    ),
    # activate, rollback, refresh_items, drop_model
    case(
        "activate/unknown version",
        "SELECT pyrec.activate('movies', 99)",
        "42704",
        'model "movies" has no version 99',
        "kept versions: 1",
    ),
    case(
        "activate/null version",
        "SELECT pyrec.activate('movies', NULL)",
        "22004",
        "model and version must not be null",
        "pyrec.model_versions",
    ),
    case(
        "activate/10 MB model",
        "SELECT pyrec.activate(%s, 1)",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "rollback/10 MB model",
        "SELECT pyrec.rollback(%s)",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "activate/untrained",
        "SELECT pyrec.activate('fresh', 1)",
        "42704",
        'model "fresh" has no version 1',
        "CALL pyrec.train('fresh')",
    ),
    case(
        "rollback/only one version",
        "SELECT pyrec.rollback('movies')",
        "55000",
        'model "movies" has no version older than the active one (1)',
        "pyrec.activate",
    ),
    case(
        "rollback/null",
        "SELECT pyrec.rollback(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "refresh_items/no items relation",
        "SELECT pyrec.refresh_items('one')",
        "22023",
        'model "one" has no items relation',
        "items =>",
    ),
    case(
        "refresh_items/null",
        "SELECT pyrec.refresh_items(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "drop_model/unknown",
        "SELECT pyrec.drop_model('nope')",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "drop_model/null",
        "SELECT pyrec.drop_model(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "drop_model/10 MB name",
        "SELECT pyrec.drop_model(%s)",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    # evaluate, check_data
    case(
        "evaluate/unknown protocol",
        "SELECT * FROM pyrec.evaluate('movies', 'nope')",
        "22023",
        'unknown evaluation protocol "nope"',
        "random_per_item",
    ),
    case(
        "evaluate/holdout 0",
        "SELECT * FROM pyrec.evaluate('movies', holdout => 0)",
        "22023",
        "holdout must be above 0 to evaluate",
        "0.25",
    ),
    case(
        "evaluate/holdout NaN",
        "SELECT * FROM pyrec.evaluate('movies', holdout => 'NaN')",
        "22023",
        "options.holdout must be a fraction in [0, 1)",
        "0.25",
    ),
    case(
        "evaluate/negative seed",
        "SELECT * FROM pyrec.evaluate('movies', seed => -1)",
        "22023",
        "options.seed must be an integer",
        "-1",
    ),
    case(
        "evaluate/null model",
        "SELECT * FROM pyrec.evaluate(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "evaluate/time protocol, no timestamp",
        "SELECT * FROM pyrec.evaluate('same', 'time', 0.25)",
        "22023",
        "the time protocol needs a timestamp column",
        '"timestamp"',
    ),
    case(
        "evaluate/empty table",
        "SELECT * FROM pyrec.evaluate('empty', holdout => 0.25)",
        "22000",
        "has no usable interactions",
        "non-NULL",
    ),
    case(
        "evaluate/renamed column",
        "SELECT * FROM pyrec.evaluate('renamed', holdout => 0.25)",
        "42703",
        f'interactions relation public.renamed_r of model "renamed" {SOURCES}',
        RECREATE,
    ),
    case(
        "check_data/null",
        "SELECT * FROM pyrec.check_data(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    case(
        "check_data/unknown",
        "SELECT * FROM pyrec.check_data('nope')",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "check_data/dropped source",
        "SELECT * FROM pyrec.check_data('gone')",
        "42P01",
        SOURCES,
        RECREATE,
    ),
    case(
        "check_data/dropped items table",
        "SELECT * FROM pyrec.check_data('gone_items')",
        "42P01",
        "items relation public.gone_items_m",
        RECREATE,
    ),
    # schedule_training
    case(
        "schedule_training/no pg_cron",
        "SELECT pyrec.schedule_training('movies', '0 3 * * *')",
        "55000",
        "pg_cron is not installed",
        "system's cron",
    ),
    case(
        "schedule_training/bad mode",
        "SELECT pyrec.schedule_training('movies', '0 3 * * *', mode => 'x')",
        "22023",
        "unknown training mode 'x'",
        '"update"',
    ),
    case(
        "schedule_training/null schedule",
        "SELECT pyrec.schedule_training('movies', NULL)",
        "22004",
        "must not be null",
        "0 3 * * *",
    ),
    case(
        "schedule_training/unknown model",
        "SELECT pyrec.schedule_training('nope', '0 3 * * *')",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "schedule_training/10 MB model",
        "SELECT pyrec.schedule_training(%s, '0 3 * * *')",
        "42704",
        f'model "{SHOWN}" does not exist',
        "pyrec.models",
        args=(BIG,),
    ),
    case(
        "schedule_training/10 MB mode",
        "SELECT pyrec.schedule_training('movies', '0 3 * * *', mode => %s)",
        "22023",
        f"unknown training mode '{SHOWN}'",
        '"update"',
        args=(BIG,),
    ),
    case(
        "unschedule_training/null",
        "SELECT pyrec.unschedule_training(NULL)",
        "22004",
        "model name must not be null",
        "pyrec.models",
    ),
    # experiments, compare_models
    case(
        "create_experiment/no variants",
        "SELECT pyrec.create_experiment('e', '[]')",
        "22023",
        "variants must be a JSON array of 2 to 26 objects",
        "share",
    ),
    case(
        "create_experiment/null variants",
        "SELECT pyrec.create_experiment('e', NULL)",
        "22004",
        "variants must not be null",
        "share",
    ),
    case(
        "create_experiment/unknown model",
        "SELECT pyrec.create_experiment('e', '[{\"name\":"
        ' "a", "share": 1}, {"name": "b", "share": 1, "model": "nope"}]\','
        " model => 'movies')",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "create_experiment/no share",
        'SELECT pyrec.create_experiment(\'e\', \'[{"name": "a"},'
        ' {"name": "b"}]\', model => \'movies\')',
        "22023",
        'share of variant "a" must be a positive number',
        "relative traffic",
    ),
    case(
        "create_experiment/duplicate",
        "SELECT pyrec.create_experiment('home', '[{\"name\":"
        ' "a", "share": 1}, {"name": "b", "share": 1}]\', model => \'movies\')',
        "42710",
        'experiment "home" already exists',
        "drop_experiment('home')",
    ),
    case(
        "create_experiment/10 MB variant",
        "SELECT pyrec.create_experiment('e', %s, model => 'movies')",
        "22023",
        "variants must be a JSON array",
        "share",
        args=('[{"name": "' + BIG + '"}]',),
    ),
    case(
        "experiment_results/unknown",
        "SELECT * FROM pyrec.experiment_results('nope', 'x')",
        "42704",
        'experiment "nope" does not exist',
        "pyrec.experiments",
    ),
    case(
        "experiment_results/10 MB name",
        "SELECT * FROM pyrec.experiment_results(%s, 'x')",
        "42704",
        f'experiment "{SHOWN}" does not exist',
        "pyrec.experiments",
        args=(BIG,),
    ),
    case(
        "experiment_variant/10 MB name",
        "SELECT pyrec.experiment_variant(%s, '42')",
        "42704",
        f'experiment "{SHOWN}" does not exist',
        "pyrec.experiments",
        args=(BIG,),
    ),
    case(
        "stop_experiment/10 MB name",
        "SELECT pyrec.stop_experiment(%s)",
        "42704",
        f'experiment "{SHOWN}" does not exist',
        "pyrec.experiments",
        args=(BIG,),
    ),
    case(
        "drop_experiment/10 MB name",
        "SELECT pyrec.drop_experiment(%s)",
        "42704",
        f'experiment "{SHOWN}" does not exist',
        "pyrec.experiments",
        args=(BIG,),
    ),
    case(
        "experiment_results/null",
        "SELECT * FROM pyrec.experiment_results(NULL, 'x')",
        "22004",
        "experiment and outcome must not be null",
        "7 days",
    ),
    case(
        "experiment_results/negative window",
        "SELECT * FROM pyrec.experiment_results('home', 'purchase', '-1 day')",
        "22023",
        "window must be a positive interval",
        "7 days",
    ),
    case(
        "experiment_results/alpha 2",
        "SELECT * FROM pyrec.experiment_results('home', 'purchase', alpha => 2)",
        "22023",
        "alpha must be between 0 and 1",
        "0.05",
    ),
    case(
        "experiment_results/injected outcome",
        "SELECT * FROM pyrec.experiment_results('home', 'SUM(rating); DROP TABLE ratings')",
        "22023",
        "outcome may not contain",
        "SUM, COUNT",
    ),
    case(
        "compare_models/empty array",
        "SELECT * FROM pyrec.compare_models(ARRAY[]::text[])",
        "22023",
        "models must be a non-empty array of model names",
        "ARRAY[",
    ),
    case(
        "compare_models/null",
        "SELECT * FROM pyrec.compare_models(NULL)",
        "22023",
        "models must be a non-empty array",
        "ARRAY[",
    ),
    case(
        "compare_models/unknown model",
        "SELECT * FROM pyrec.compare_models(ARRAY['movies', 'nope'])",
        "42704",
        'model "nope" does not exist',
        "pyrec.models",
    ),
    case(
        "compare_models/other relations",
        "SELECT * FROM pyrec.compare_models(ARRAY['movies', 'dups'])",
        "22023",
        'model "dups" reads public.dups_r',
        "same interactions",
    ),
    case(
        "compare_models/unknown segment",
        "SELECT * FROM pyrec.compare_models(ARRAY['movies'], segment_by => 'nope')",
        "42703",
        'segment_by "nope" is not a column',
        "occupation",
    ),
    case(
        "compare_models/empty table",
        "SELECT * FROM pyrec.compare_models(ARRAY['empty'], holdout => 0.25)",
        "22000",
        "has no usable interactions",
        "non-NULL",
    ),
    case(
        "compare_models/dropped source",
        "SELECT * FROM pyrec.compare_models(ARRAY['gone'], holdout => 0.25)",
        "42P01",
        SOURCES,
        RECREATE,
    ),
]


@pytest.mark.parametrize("bad", BAD)
def test_bad_call_fails_cleanly_and_changes_nothing(db: Conn, bad: Bad) -> None:
    db.execute("SET pyrec.default_model = 'movies'")
    for sql in bad.setup:
        db.execute(sql)
    before = world(db)
    with raises_pg(db, bad.sqlstate, bad.message, bad.hint):
        db.execute(bad.call, list(bad.args) or None)
    assert world(db) == before


def sources(rows: Rows) -> list[str]:
    return [r[3] for r in rows]


@dataclass(frozen=True)
class Answer:
    call: str
    check: Callable[[Rows], bool]
    args: tuple[Any, ...] = ()


def answer(name: str, *a: Any) -> Any:
    return pytest.param(Answer(*a), id=name)


POPULAR_10: Callable[[Rows], bool] = lambda rows: sources(rows) == ["popular"] * 10  # noqa: E731

ANSWERS = [
    answer(
        "recommend/unknown user gets popular items", f"{REC}('movies', 'nobody', 10)", POPULAR_10
    ),
    answer(
        "recommend/10 MB user id gets popular items", f"{REC}('movies', %s, 10)", POPULAR_10, (BIG,)
    ),
    answer(
        "recommend/unknown bigint user", f"{REC}('movies', 99999999999::bigint, 10)", POPULAR_10
    ),
    answer("public.recommend/unknown user", "SELECT * FROM recommend(99999, 10)", POPULAR_10),
    answer(
        "recommend/k 10000 returns every unseen item",
        f"{REC}('movies', '42', 10000)",
        lambda rows: 1000 < len(rows) < 1682 and sources(rows) == ["model"] * len(rows),
    ),
    answer(
        "recommend/10 MB filter value matches nothing",
        f"{REC}('movies', '42', 10, 'INCLUDE ItemID WHERE Items.title IN ($T)', params => %s)",
        lambda rows: rows == [],
        ('{"T": "' + BIG + '"}',),
    ),
    answer(
        "similar_items/unknown item gets popular items",
        "SELECT * FROM pyrec.similar_items('movies', 'zzz', 10)",
        POPULAR_10,
    ),
    answer(
        "similar_items/10 MB item id",
        "SELECT * FROM pyrec.similar_items('movies', %s, 10)",
        POPULAR_10,
        (BIG,),
    ),
    answer(
        "rank_items/unknown, duplicate and NULL ids",
        "SELECT * FROM pyrec.rank_items('movies', '42', ARRAY[NULL, '1', 'zz', '1'])",
        lambda rows: (
            [(r[0], r[3]) for r in rows] == [("1", "model"), ("zz", "unknown")]
            and rows[1][1] is None
        ),
    ),
    answer(
        "rank_items/empty list",
        "SELECT * FROM pyrec.rank_items('movies', '42', '{}')",
        lambda rows: rows == [],
    ),
    answer(
        "because_you_interacted/unknown user",
        "SELECT * FROM pyrec.because_you_interacted('movies', 'nobody')",
        lambda rows: rows == [],
    ),
    answer(
        "bought_together/id of another type",
        "SELECT * FROM pyrec.frequently_bought_together('movies', 'abc')",
        lambda rows: rows == [],
    ),
    answer("zero variance/the only item is seen", f"{REC}('one', '1', 5)", lambda rows: rows == []),
    answer(
        "zero variance/unless seen items are kept",
        f"{REC}('one', '1', 5, exclude_seen => false)",
        lambda rows: [r[0] for r in rows] == ["1"],
    ),
    answer(
        "identical users/only the unseen item",
        f"{REC}('same', '1', 5)",
        lambda rows: [(r[0], r[3]) for r in rows] == [("11", "model")],
    ),
    answer(
        "identical users/segment of the others",
        "SELECT * FROM pyrec.users_for_item('same', '1', 5)",
        lambda rows: [r[0] for r in rows] == ["999"],
    ),
    answer(
        "duplicate interactions/trained and served",
        f"{REC}('dups', '1', 3)",
        lambda rows: sources(rows) == ["model"] * 3,
    ),
    answer(
        "duplicate interactions/reported by check_data",
        "SELECT check_name, value FROM"
        " pyrec.check_data('dups') WHERE check_name LIKE 'duplicate%%'",
        lambda rows: len(rows) == 1 and rows[0][1] > 0,
    ),
    answer(
        "empty table/check_data says what is missing",
        "SELECT check_name, ok FROM"
        " pyrec.check_data('empty') WHERE check_name IN ('interactions', 'users', 'items')",
        lambda rows: sorted(rows) == [("interactions", False), ("items", False), ("users", False)],
    ),
]


@pytest.mark.parametrize("good", ANSWERS)
def test_bad_looking_call_gets_a_sensible_answer(db: Conn, good: Answer) -> None:
    db.execute("SET pyrec.default_model = 'movies'")
    before = world(db)
    rows = db.execute(good.call, list(good.args) or None).fetchall()
    assert good.check(rows), rows[:5]
    assert world(db) == before


def test_the_catalogue_is_large() -> None:
    assert len(BAD) >= 50
