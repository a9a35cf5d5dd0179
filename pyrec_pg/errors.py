"""Errors raised by pyrec: one class per SQLSTATE, carrying the detail and hint Postgres reports."""

from __future__ import annotations

import re
from typing import Any, ClassVar

_BY_SQLSTATE: dict[str, type[PyrecError]] = {}


class PyrecError(Exception):
    """Base error; `sqlstate` follows Postgres' error codes (appendix A of its manual).

    Each subclass that sets `sqlstate` registers itself as the class of that code; a code has
    one class (subclasses that refine a meaning inherit their parent's code without
    registering). `lookup()` finds it, as psycopg's `errors.lookup()` does.
    """

    sqlstate: ClassVar[str] = "XX000"  # internal_error

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("sqlstate")
        if code is None:
            return
        if code in _BY_SQLSTATE:
            raise TypeError(f"SQLSTATE {code} has a class already: {_BY_SQLSTATE[code].__name__}")
        _BY_SQLSTATE[code] = cls

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail


def lookup(sqlstate: str | None) -> type[PyrecError]:
    """The class of a SQLSTATE; PyrecError itself for a code no class claims."""
    return _BY_SQLSTATE.get(sqlstate or "", PyrecError)


def from_fields(fields: dict[str, Any]) -> PyrecError:
    """The error an entry point reported as data ({"sqlstate", "message", "detail", "hint"})."""
    sqlstate = fields.get("sqlstate")
    cls = lookup(sqlstate)
    e = cls(fields.get("message", ""), detail=fields.get("detail"), hint=fields.get("hint"))
    if cls is PyrecError and sqlstate:  # a database error pyrec has no class for
        e.sqlstate = sqlstate  # type: ignore[misc]
    return e


def sqlstate_of(e: BaseException) -> str | None:
    """The SQLSTATE of a database error (plpy.SPIError, the stub's, psycopg's) or of a pyrec
    error; None for any other exception, which is a bug to let through."""
    code = getattr(e, "sqlstate", None)
    return code if isinstance(code, str) and code else None


class ConnectionFailure(PyrecError):
    sqlstate = "08006"  # connection_failure


class FeatureNotSupported(PyrecError):
    sqlstate = "0A000"  # feature_not_supported


class DataException(PyrecError):
    sqlstate = "22000"  # data_exception


class InsufficientData(DataException):
    """The model's data is too small or too sparse to train on."""


class ModelFitError(DataException):
    """Training produced unusable factors (NaN or infinite values)."""


class NullValue(PyrecError):
    sqlstate = "22004"  # null_value_not_allowed


class InvalidParameter(PyrecError):
    sqlstate = "22023"  # invalid_parameter_value


class ActiveTransaction(PyrecError):
    sqlstate = "25001"  # active_sql_transaction


class InvalidTransactionTermination(PyrecError):
    sqlstate = "2D000"  # invalid_transaction_termination


class InvalidSchemaName(PyrecError):
    sqlstate = "3F000"  # invalid_schema_name


class SerializationFailure(PyrecError):
    """A statement cancelled by a concurrent change; on a hot standby, by a conflict with the
    replay of the primary's WAL."""

    sqlstate = "40001"  # serialization_failure


class FilterSyntaxError(PyrecError):
    sqlstate = "42601"  # syntax_error


class UndefinedFunction(PyrecError):
    sqlstate = "42883"  # undefined_function


class InsufficientPrivilege(PyrecError):
    sqlstate = "42501"  # insufficient_privilege


class UndefinedColumn(PyrecError):
    sqlstate = "42703"  # undefined_column


class UndefinedObject(PyrecError):
    sqlstate = "42704"  # undefined_object


class DatatypeMismatch(PyrecError):
    sqlstate = "42804"  # datatype_mismatch


class CannotCoerce(PyrecError):
    sqlstate = "42846"  # cannot_coerce


class UndefinedTable(PyrecError):
    sqlstate = "42P01"  # undefined_table


class UndefinedParameter(PyrecError):
    sqlstate = "42P02"  # undefined_parameter


class DuplicateTable(PyrecError):
    sqlstate = "42P07"  # duplicate_table


class DuplicateObject(PyrecError):
    sqlstate = "42710"  # duplicate_object


class ProgramLimitExceeded(PyrecError):
    sqlstate = "54000"  # program_limit_exceeded


class NotReady(PyrecError):
    sqlstate = "55000"  # object_not_in_prerequisite_state


class StandbyMismatch(NotReady):
    """The server a training was told to read from is not a hot standby of the database it
    writes to (another cluster, another database, or not in recovery)."""


class ObjectInUse(PyrecError):
    sqlstate = "55006"  # object_in_use


class LockNotAvailable(PyrecError):
    sqlstate = "55P03"  # lock_not_available


class EngineFailure(PyrecError):
    sqlstate = "58000"  # system_error: a distributed engine (Spark) failed outside Postgres


class IoError(PyrecError):
    sqlstate = "58030"  # io_error


class UndefinedFile(PyrecError):
    sqlstate = "58P01"  # undefined_file


def error_fields(e: BaseException) -> dict[str, str] | None:
    """SQLSTATE, message, detail and hint of a pyrec or database error; None for other errors."""
    if isinstance(e, PyrecError):
        fields = {"sqlstate": e.sqlstate, "message": e.message, "detail": e.detail, "hint": e.hint}
    elif (code := sqlstate_of(e)) is not None:  # plpy.SPIError or the stub's
        spidata: tuple[Any, ...] = tuple(getattr(e, "spidata", None) or ())
        fields = {
            "sqlstate": code,
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
