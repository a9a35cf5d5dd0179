"""Errors raised by pyrec, each carrying the SQLSTATE, detail and hint Postgres reports."""

from __future__ import annotations

import re
from typing import Any


class PyrecError(Exception):
    """Base error; `sqlstate` follows Postgres' error codes (appendix A of its manual)."""

    sqlstate = "XX000"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        detail: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail
        if sqlstate is not None:
            self.sqlstate = sqlstate


class InvalidParameter(PyrecError):
    sqlstate = "22023"  # invalid_parameter_value


class NullValue(PyrecError):
    sqlstate = "22004"  # null_value_not_allowed


class UndefinedObject(PyrecError):
    sqlstate = "42704"  # undefined_object


class UndefinedTable(PyrecError):
    sqlstate = "42P01"  # undefined_table


class UndefinedColumn(PyrecError):
    sqlstate = "42703"  # undefined_column


class DatatypeMismatch(PyrecError):
    sqlstate = "42804"  # datatype_mismatch


class DuplicateObject(PyrecError):
    sqlstate = "42710"  # duplicate_object


class ObjectInUse(PyrecError):
    sqlstate = "55006"  # object_in_use


class NotReady(PyrecError):
    sqlstate = "55000"  # object_not_in_prerequisite_state


class InsufficientData(PyrecError):
    sqlstate = "22000"  # data_exception


class ModelFitError(PyrecError):
    """Training produced unusable factors (NaN or infinite values)."""

    sqlstate = "22000"  # data_exception


class FeatureNotSupported(PyrecError):
    sqlstate = "0A000"  # feature_not_supported


def error_fields(e: BaseException) -> dict[str, str] | None:
    """SQLSTATE, message, detail and hint of a pyrec or database error; None for other errors."""
    if isinstance(e, PyrecError):
        fields = {"sqlstate": e.sqlstate, "message": e.message, "detail": e.detail, "hint": e.hint}
    elif isinstance(getattr(e, "sqlstate", None), str):  # plpy.SPIError or the stub's
        spidata: tuple[Any, ...] = tuple(getattr(e, "spidata", None) or ())
        fields = {
            "sqlstate": e.sqlstate,  # type: ignore[attr-defined]
            "message": str(e.args[0]) if e.args else str(e),
            "detail": spidata[1] if len(spidata) > 1 else getattr(e, "detail", None),
            "hint": spidata[2] if len(spidata) > 2 else getattr(e, "hint", None),
        }
    else:
        return None
    return {k: shorten(v) for k, v in fields.items() if v is not None}


_LONG = re.compile(r"[^\s\"']{201,}")


def shorten(text: str) -> str:
    """Long runs (a 10 MB name echoed in a message) cut to their start and their length."""
    return _LONG.sub(lambda m: f"{m.group()[:60]}...({len(m.group())} characters)", text)
