"""The psycopg-backed plpy stub: placeholder rewriting, binding, results; no server needed."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg._queries import PostgresQuery
from psycopg.adapt import Transformer

from pyrec_pg.db.stub import Plan, PsycopgPlpy, Result, SPIError
from pyrec_pg.errors import PyrecError


def test_placeholders_become_typed_named_parameters() -> None:
    plan = Plan("SELECT $1 + $2, $1", ["int4", "float8"])
    assert plan.query == "SELECT (%(p1)s::int4) + (%(p2)s::float8), (%(p1)s::int4)"
    assert plan.types == ["int4", "float8"]


def test_multi_digit_placeholders_are_read_whole() -> None:
    types = [f"t{i}" for i in range(1, 13)]
    plan = Plan("SELECT $12, $1", types)
    assert plan.query == "SELECT (%(p12)s::t12), (%(p1)s::t1)"


def test_percent_signs_are_doubled_everywhere() -> None:
    plan = Plan("""SELECT 7 % 2, 'a%b', "c%d" FROM t WHERE x LIKE $1""", ["text"])
    assert plan.query == """SELECT 7 %% 2, 'a%%b', "c%%d" FROM t WHERE x LIKE (%(p1)s::text)"""


def test_placeholders_inside_literals_and_quoted_identifiers_are_kept() -> None:
    query = """SELECT '$1', 'it''s $2', "col$1", "a""b$2" FROM t WHERE k = $1"""
    plan = Plan(query, ["int8"])
    # only the last $1 is outside quotes; $2 inside quotes must not raise either
    assert plan.query == query.replace("k = $1", "k = (%(p1)s::int8)")


@pytest.mark.parametrize("query", ["SELECT $2", "SELECT $0", "SELECT 'x', $3"])
def test_parameter_beyond_declared_types_is_an_spi_error(query: str) -> None:
    with pytest.raises(SPIError) as info:
        Plan(query, ["int4"])
    assert info.value.sqlstate == "42P02"
    assert "there is no parameter $" in str(info.value)


def test_no_types_means_no_placeholders_allowed() -> None:
    with pytest.raises(SPIError):
        Plan("SELECT $1", [])


def test_rewritten_query_converts_back_for_the_server() -> None:
    # psycopg parses the whole string: '%%' turns back into '%', %(pN)s into $N
    plan = Plan("SELECT $2, 'a%b' LIKE $1, $2", ["text", "int4"])
    pq = PostgresQuery(Transformer())
    pq.convert(plan.query, plan.bind(["a%", 5]))
    assert pq.query == b"SELECT ($1::int4), 'a%b' LIKE ($2::text), ($1::int4)"


def test_bind_maps_arguments_in_order() -> None:
    plan = Plan("SELECT $1, $2, $3", ["int4", "text", "jsonb"])
    assert plan.bind([1, "x", None]) == {"p1": 1, "p2": "x", "p3": None}
    assert Plan("SELECT 1", []).bind([]) == {}


@pytest.mark.parametrize("args", [[], [1], [1, 2, 3]])
def test_bind_checks_the_argument_count(args: list[Any]) -> None:
    plan = Plan("SELECT $1, $2", ["int4", "int4"])
    with pytest.raises(SPIError) as info:
        plan.bind(args)
    assert info.value.sqlstate == "42P02"
    assert f"got {len(args)}" in str(info.value)


def test_result_is_a_list_with_nrows_and_colnames() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    r = Result(rows, ["a", "b"], 2)
    assert list(r) == rows
    assert r[1]["b"] == "y"
    assert r.nrows() == 2
    assert r.colnames() == ["a", "b"]
    # a command without rows still reports its row count
    assert Result([], [], 7).nrows() == 7
    assert len(Result([], [], 7)) == 0


class _FakeConn:
    def __init__(self, autocommit: bool) -> None:
        self.autocommit = autocommit


def test_stub_refuses_an_autocommit_connection() -> None:
    with pytest.raises(ValueError, match="autocommit"):
        PsycopgPlpy(_FakeConn(autocommit=True))  # type: ignore[arg-type]


def test_stub_notice_and_error_mirror_plpy() -> None:
    plpy = PsycopgPlpy(_FakeConn(autocommit=False))  # type: ignore[arg-type]
    assert plpy.SPIError is SPIError
    plpy.notice("one")
    plpy.info("two")
    assert plpy.notices == ["one", "two"]
    with pytest.raises(PyrecError) as info:
        plpy.error("bad", hint="h", detail="d", sqlstate="22023")
    e = info.value
    assert (e.message, e.hint, e.detail, e.sqlstate) == ("bad", "h", "d", "22023")
