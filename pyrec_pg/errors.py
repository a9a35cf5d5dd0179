"""Errors raised by pyrec, each carrying the SQLSTATE, detail and hint Postgres reports."""

from __future__ import annotations


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
