"""The psycopg-backed plpy stub against the real server: the same calls as PL/Python's plpy."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pyrec_pg.db import Db
from pyrec_pg.db.stub import PsycopgPlpy, SPIError


@pytest.fixture
def plpy(dsn: str) -> Any:
    stub = PsycopgPlpy.connect(dsn)
    yield stub
    stub.conn.close()


def test_percent_signs_survive_with_and_without_parameters(plpy: PsycopgPlpy) -> None:
    assert plpy.execute("SELECT '100%' AS v")[0]["v"] == "100%"
    assert plpy.cursor("SELECT '100%' AS v").fetch(1)[0]["v"] == "100%"
    plan = plpy.prepare("SELECT $1 || '%' AS v, '$1' AS w", ["text"])
    assert plpy.execute(plan, ["7"])[0] == {"v": "7%", "w": "$1"}


def test_results_look_like_plpy_results(plpy: PsycopgPlpy) -> None:
    res = plpy.execute("SELECT viewer_id, rating FROM ratings ORDER BY 1, 2 LIMIT 3")
    assert res.nrows() == 3 and res.colnames() == ["viewer_id", "rating"]
    assert isinstance(res[0]["viewer_id"], int)
    db = Db(plpy)
    batches = list(db.stream("SELECT movie_id FROM movies", batch=1000))
    assert [len(b) for b in batches] == [1000, 682]


def test_errors_carry_sqlstate_and_subtransactions_roll_back(plpy: PsycopgPlpy) -> None:
    plpy.execute("CREATE TABLE t (a int)")
    with pytest.raises(SPIError) as info, plpy.subtransaction():
        plpy.execute("INSERT INTO t VALUES (1)")
        plpy.execute("SELECT 1/0")
    assert info.value.sqlstate == "22012"
    assert plpy.execute("SELECT count(*) AS n FROM t")[0]["n"] == 0
    plpy.commit()
    assert plpy.quote_ident('we"ird') == '"we""ird"'


def test_autocommit_connections_are_refused(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(ValueError):
        PsycopgPlpy(conn)
