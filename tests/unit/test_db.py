"""runtime.Db over a recording fake plpy: plan caching, argument checks, helpers, streaming."""

from __future__ import annotations

import pytest

from pyrec_pg.db import Db

from .fakes import FakePlan, FakePlpy


def test_rows_without_args_executes_the_text_directly() -> None:
    plpy = FakePlpy([{"x": 1}])
    assert Db(plpy).rows("SELECT 1 AS x") == [{"x": 1}]
    assert plpy.calls == [("execute", "SELECT 1 AS x", None)]


def test_plans_are_cached_per_sql_and_types() -> None:
    plpy = FakePlpy([{"x": 1}])
    db = Db(plpy)
    q = "SELECT $1 AS x"
    db.rows(q, [1], ["int4"])
    db.rows(q, [2], ["int4"])
    db.rows(q, [3], ["int8"])  # other types: another plan
    db.rows("SELECT $1 AS y", [4], ["int4"])  # other sql: another plan
    prepares = [c for c in plpy.calls if c[0] == "prepare"]
    assert prepares == [
        ("prepare", q, ["int4"]),
        ("prepare", q, ["int8"]),
        ("prepare", "SELECT $1 AS y", ["int4"]),
    ]
    executes = [c for c in plpy.calls if c[0] == "execute"]
    assert [c[2] for c in executes] == [[1], [2], [3], [4]]
    assert all(isinstance(c[1], FakePlan) for c in executes)
    # the two int4 runs of q share one plan object
    assert executes[0][1] is executes[1][1]
    assert executes[0][1] is not executes[2][1]


@pytest.mark.parametrize(("args", "types"), [([1], []), ([], ["int4"]), ([1, 2], ["int4"])])
def test_args_and_types_must_match_in_length(args: list[int], types: list[str]) -> None:
    plpy = FakePlpy()
    with pytest.raises(ValueError, match="differ in length"):
        Db(plpy).rows("SELECT $1", args, types)
    assert plpy.calls == []


def test_one_and_scalar_on_empty_and_non_empty_results() -> None:
    assert Db(FakePlpy([])).one("SELECT 1") is None
    assert Db(FakePlpy([])).scalar("SELECT 1") is None
    db = Db(FakePlpy([{"a": 10, "b": 20}, {"a": 11, "b": 21}]))
    assert db.one("SELECT a, b") == {"a": 10, "b": 20}
    assert db.scalar("SELECT a, b") == 10
    assert db.scalar("SELECT $1", [5], ["int4"]) == 10


def test_run_discards_rows_but_executes() -> None:
    plpy = FakePlpy([{"a": 1}])
    Db(plpy).run("DELETE FROM t WHERE k = $1", ["k"], ["text"])
    assert [c[0] for c in plpy.calls] == ["prepare", "execute"]


def test_stream_reads_the_cursor_in_batches() -> None:
    rows = [{"i": i} for i in range(5)]
    plpy = FakePlpy(rows)
    batches = list(Db(plpy).stream("SELECT i FROM t", batch=2))
    assert batches == [rows[0:2], rows[2:4], rows[4:5]]
    assert plpy.calls == [("cursor", "SELECT i FROM t", None)]
    assert plpy.cursors[0].fetches == [2, 2, 2, 2]  # the last fetch comes back empty


def test_stream_of_an_empty_query_yields_nothing() -> None:
    assert list(Db(FakePlpy([])).stream("SELECT 1 WHERE false", batch=3)) == []


def test_ident_notice_commit_rollback_delegate() -> None:
    plpy = FakePlpy()
    db = Db(plpy)
    assert db.ident("pyrec", 'we"ird') == '"pyrec"."we""ird"'
    db.notice("hello")
    db.commit()
    db.rollback()
    assert plpy.calls == [("notice", "hello"), ("commit",), ("rollback",)]
