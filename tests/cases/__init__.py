"""Case catalogues kept as data: tests/cases/<name>.toml, read by the test module that uses it.

Each top-level table of a file is one case; its key is the case's pytest id, so a failure
names the case, and TOML itself refuses two cases of the same name. Strings may name a
constant of the test module as {NAME} (upper case): values too big or too repetitive to write
out, such as a 10 MB string, live in Python once and the file says where they go.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
_CONSTANT = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def load_cases(
    name: str, constants: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The cases of tests/cases/<name>.toml in file order, as (id, fields), every {NAME} in
    their strings (in lists and tables too) replaced by constants[NAME]."""
    with (HERE / f"{name}.toml").open("rb") as f:
        table = tomllib.load(f)
    cases = []
    for case_id, fields in table.items():
        if not isinstance(fields, dict):
            raise ValueError(f"{name}.toml: {case_id!r} is not a table of case fields")
        cases.append((case_id, _resolve(fields, constants or {}, f"{name}.toml [{case_id}]")))
    return cases


def _resolve(value: Any, constants: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def constant(m: re.Match[str]) -> str:
            # an unknown name is a typo, not text to send: refuse it rather than test the typo
            if m[1] not in constants:
                raise KeyError(f"{where}: no constant {m[0]} (known: {', '.join(constants)})")
            return constants[m[1]]

        return _CONSTANT.sub(constant, value)
    if isinstance(value, list):
        return [_resolve(v, constants, where) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, constants, where) for k, v in value.items()}
    return value
