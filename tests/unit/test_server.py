"""Server entry points: error fields and JSON dispatch, over a fake plpy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyrec_pg.db import Db
from pyrec_pg.db.stub import SPIError
from pyrec_pg.entrypoints import server
from pyrec_pg.errors import ActiveTransaction, InvalidParameter, PyrecError

from .fakes import FakePlpy


class _PlpySPIError(Exception):
    """Shaped like plpy.SPIError: sqlstate plus spidata (code, detail, hint, ...)."""

    def __init__(self, message: str, sqlstate: str, spidata: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.spidata = spidata


def test_error_fields_of_a_pyrec_error_drop_missing_fields() -> None:
    assert server.error_fields(PyrecError("boom", hint="try again")) == {
        "sqlstate": "XX000",
        "message": "boom",
        "hint": "try again",
    }
    assert server.error_fields(InvalidParameter("bad", detail="d", hint="h")) == {
        "sqlstate": "22023",
        "message": "bad",
        "detail": "d",
        "hint": "h",
    }
    assert server.error_fields(ActiveTransaction("x")) == {
        "sqlstate": "25001",
        "message": "x",
    }


def test_error_fields_of_a_plpy_spi_error() -> None:
    e = _PlpySPIError('relation "nope" does not exist', "42P01", (1, "the detail", "the hint"))
    assert server.error_fields(e) == {
        "sqlstate": "42P01",
        "message": 'relation "nope" does not exist',
        "detail": "the detail",
        "hint": "the hint",
    }
    e = _PlpySPIError("division by zero", "22012", (1, None, None, "SELECT 1/0", 9))
    assert server.error_fields(e) == {"sqlstate": "22012", "message": "division by zero"}


def test_error_fields_of_the_stubs_spi_error() -> None:
    assert server.error_fields(SPIError("no such parameter", "42P02", hint="h")) == {
        "sqlstate": "42P02",
        "message": "no such parameter",
        "hint": "h",
    }


def test_error_fields_of_other_errors_is_none() -> None:
    assert server.error_fields(ValueError("x")) is None
    assert server.error_fields(SPIError("no sqlstate")) is None  # sqlstate None: not a db error


def test_dispatch_returns_a_pyrec_error_as_json() -> None:
    plpy = FakePlpy()
    out = json.loads(server.dispatch(plpy, "create_model", '{"name": null, "interactions": "t"}'))
    assert out == {
        "error": {
            "sqlstate": "22004",
            "message": "model name must not be null",
            "hint": "for example pyrec.create_model('movies', 'ratings')",
        }
    }
    assert plpy.calls == []  # refused before touching the database


def test_dispatch_rejects_non_object_options() -> None:
    args = json.dumps({"name": "m", "interactions": "t", "options": [1]})
    out = json.loads(server.dispatch(FakePlpy(), "create_model", args))
    assert out["error"]["sqlstate"] == "22023"
    assert out["error"]["message"] == "options must be a JSON object"
    assert "factors" in out["error"]["hint"]


def test_dispatch_wraps_results_and_passes_a_db(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Db, dict[str, Any]]] = []

    def echo(db: Db, args: dict[str, Any]) -> Any:
        seen.append((db, args))
        return {"got": args, "n": [1, 2]}

    monkeypatch.setitem(server.ENTRIES, "echo", echo)
    plpy = FakePlpy()
    assert json.loads(server.dispatch(plpy, "echo", '{"a": 1}')) == {
        "result": {"got": {"a": 1}, "n": [1, 2]}
    }
    assert json.loads(server.dispatch(plpy, "echo", None)) == {"result": {"got": {}, "n": [1, 2]}}
    assert all(isinstance(db, Db) and db.plpy is plpy for db, _ in seen)


def test_dispatch_reraises_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: Db, args: dict[str, Any]) -> Any:
        raise ValueError("a bug")

    def db_error(db: Db, args: dict[str, Any]) -> Any:
        raise _PlpySPIError("duplicate key", "23505", (1, "Key (k)=(1) exists.", None))

    monkeypatch.setattr(server, "ENTRIES", {"broken": broken, "db_error": db_error})
    with pytest.raises(ValueError, match="a bug"):
        server.dispatch(FakePlpy(), "broken", "{}")
    with pytest.raises(KeyError):
        server.dispatch(FakePlpy(), "version", "{}")  # not in the patched table
    out = json.loads(server.dispatch(FakePlpy(), "db_error", "{}"))
    assert out == {
        "error": {"sqlstate": "23505", "message": "duplicate key", "detail": "Key (k)=(1) exists."}
    }


def test_errors_never_echo_a_huge_input_whole() -> None:
    name = "x" * (10 * 1024 * 1024)
    fields = server.error_fields(
        InvalidParameter(f'model "{name}" does not exist', hint=f"not {name}")
    )
    assert fields is not None
    assert fields["message"] == f'model "{"x" * 60}...(10485760 characters)" does not exist'
    assert fields["hint"] == f"not {'x' * 60}...(10485760 characters)"
    ordinary = f'model "{"y" * 200}" does not exist'  # up to 200 characters stay as they are
    expected = {"sqlstate": "22023", "message": ordinary}
    assert server.error_fields(InvalidParameter(ordinary)) == expected
