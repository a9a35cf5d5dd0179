"""What the CLI prints: aligned tables, --json documents, errors, and their exit codes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from typing import Any

import psycopg

from pyrec_pg.errors import (
    InsufficientPrivilege,
    InvalidParameter,
    LockNotAvailable,
    ObjectInUse,
)
from pyrec_pg.errors import error_fields as pyrec_error_fields

OK, INTERNAL, BAD_INPUT, DATABASE, BUSY = 0, 1, 2, 3, 75

EXIT_CODES = f"""exit codes:
  {OK:<3} done
  {INTERNAL:<3} internal error (a bug: the traceback is printed; please report it)
  {BAD_INPUT:<3} bad arguments, input or data: usage errors, unknown models, tables or columns,
      values pyrec refuses (SQLSTATE classes 22, 23, 25, 42 but 42501, 0A, 55), data not
      ready (check)
  {DATABASE:<3} database error: cannot connect, permission denied (42501), pyrec not installed,
      server failures and every other SQLSTATE
  {BUSY:<3} busy: another session trains the model or writes the batch's table (55006), or
      holds a lock on its source tables past pyrec.lock_timeout (55P03): try later
errors go to stderr as "pyrec: error: <message>" with sqlstate, detail and hint lines; with
--json as one JSON object {{"error": {{"sqlstate", "message", "detail", "hint"}}, "exit": N}}."""

# SQLSTATE classes that mean "the request cannot succeed as given", not "the database failed"
_BAD_INPUT_CLASSES = ("22", "23", "25", "42", "0A", "55")


def exit_code(sqlstate: str | None) -> int:
    # object_in_use (a training lock), lock_not_available: EX_TEMPFAIL tells cron to retry
    if sqlstate in (ObjectInUse.sqlstate, LockNotAvailable.sqlstate):
        return BUSY
    if sqlstate is None or sqlstate == InsufficientPrivilege.sqlstate:
        return DATABASE
    return BAD_INPUT if sqlstate[:2] in _BAD_INPUT_CLASSES else DATABASE


def error_fields(e: BaseException) -> dict[str, str] | None:
    """SQLSTATE, message, detail and hint of a database or pyrec error; None for other errors."""
    if isinstance(e, psycopg.Error):
        d = e.diag
        fields = {
            "sqlstate": d.sqlstate,
            "message": d.message_primary or str(e).strip(),
            "detail": d.message_detail,
            "hint": d.message_hint,
        }
        return {k: v for k, v in fields.items() if v is not None}
    return pyrec_error_fields(e)  # pyrec's own errors and the plpy stub's SPIError


def report_error(fields: dict[str, str], as_json: bool = False, code: int | None = None) -> int:
    """Print an error on stderr (text, or one JSON object for --json); return its exit code,
    `code` or the one its SQLSTATE maps to."""
    code = exit_code(fields.get("sqlstate")) if code is None else code
    if as_json:
        error = {key: fields.get(key) for key in ("sqlstate", "message", "detail", "hint")}
        print(json.dumps({"error": error, "exit": code}), file=sys.stderr)
        return code
    lines = [f"pyrec: error: {fields['message']}"]
    lines += [f"{key}: {fields[key]}" for key in ("sqlstate", "detail", "hint") if key in fields]
    print("\n".join(lines), file=sys.stderr)
    return code


def parse_json(option: str, text: str | None, example: str) -> Any:
    """A JSON object argument, or None when absent; bad JSON is bad input (22023)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        hint = f"e.g. {option} '{example}'"
        raise InvalidParameter(f"{option} is not JSON: {e}", hint=hint) from e
    if not isinstance(value, dict):
        raise InvalidParameter(
            f"{option} must be a JSON object, got {type(value).__name__}",
            hint=f"e.g. {option} '{example}'",
        )
    return value


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (json.dumps would write invalid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _text(value: Any) -> str:
    """JSON for what json cannot write: ISO 8601 for dates and times, else str()."""
    return value.isoformat() if isinstance(value, date | datetime | time) else str(value)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """`data` as one JSON document with --json, else the human-readable `text`."""
    if getattr(args, "json", False):
        print(json.dumps(_clean(data), default=_text))
    else:
        print(text)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # counts stored as double precision print as counts
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as aligned columns; columns of numbers are right-aligned, with 4 decimals."""
    raw = [list(r) for r in rows]
    numeric = [all(_number(r[i]) for r in raw if r[i] is not None) for i in range(len(headers))]
    cells = [[_cell(v) for v in r] for r in raw]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)
