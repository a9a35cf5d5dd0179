"""The bad input catalogue: bad calls across the whole SQL API fail cleanly, change nothing.

BAD holds the cases of tests/cases/bad_input.toml: each is one bad call with the SQLSTATE, a
fragment of the message and (where the API gives one) of the HINT it must fail with; the
catalog and the user's tables must be the same afterwards. ANSWERS holds the bad-looking calls
pyrec answers sensibly instead; their checks are Python, so they stay here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.cases import load_cases
from tests.conftest import clone_database
from tests.integration.helpers import catalog_state, raises_pg

Conn = psycopg.Connection[Any]
Rows = list[tuple[Any, ...]]

BIG = "x" * (10 * 1024 * 1024)  # a 10 MB string
SHOWN = "x" * 60 + "...(10485760 characters)"  # how an error message shows BIG
LONG_PARAM = "P" * 3900  # a parameter name that fits the 4000-character filter limit
LONG_SHOWN = "P" * 60 + "...(3900 characters)"  # how an error message shows LONG_PARAM
TINY = '{"holdout": 0, "params": {"factors": 4, "iterations": 2}}'
SMALL = "SELECT viewer_id, movie_id, rating, rated_at FROM ratings WHERE viewer_id < 100"


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


def case(name: str, fields: dict[str, Any]) -> Any:
    hint = fields.pop("hint", "")
    args = tuple(fields.pop("args", ()))
    setup = tuple(fields.pop("setup", ()))
    bad = Bad(**fields, hint=None if hint is False else hint, args=args, setup=setup)
    return pytest.param(bad, id=name)


BAD = [
    case(name, fields)
    for name, fields in load_cases(
        "bad_input",
        {"BIG": BIG, "SHOWN": SHOWN, "LONG_PARAM": LONG_PARAM, "LONG_SHOWN": LONG_SHOWN},
    )
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


REC = "SELECT * FROM pyrec.recommend"
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
