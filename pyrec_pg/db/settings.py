"""pyrec's settings (pyrec.*): each declared once with its type, default, description, check."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyrec_pg.db import Db
from pyrec_pg.errors import InvalidParameter


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # as the pyrec.settings view shows it
    default: str
    description: str
    hint: str  # what a valid value looks like, for the error on a bad one
    parse: Callable[[str], Any]  # the value, or ValueError


def _integer(least: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < least:
            raise ValueError(f"below {least}")
        return value

    return parse


# what Postgres accepts for a time setting such as lock_timeout: a number, optionally a unit
_DURATION = re.compile(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*")


def _duration(raw: str) -> str:
    if not _DURATION.fullmatch(raw):
        raise ValueError("not a duration")
    return raw


def _text(raw: str) -> str:
    return raw


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "pyrec.default_model",
        "text",
        "",
        "the model unqualified recommend() uses; empty: the only model, if there is one",
        "the name of a model, e.g. SET pyrec.default_model = 'movies'",
        _text,
    ),
    Setting(
        "pyrec.keep_versions",
        "integer",
        "3",
        "trained versions kept per model (the active one included) for rollback;"
        " older ones are dropped after each training",
        "a whole number of at least 1, e.g. SET pyrec.keep_versions = 5",
        _integer(1),
    ),
    Setting(
        "pyrec.ann_min_items",
        "integer",
        "20000",
        "catalogs of at least this many items get HNSW indexes at training (-1: never)",
        "a whole number, -1 to never build the index, e.g. SET pyrec.ann_min_items = 50000",
        _integer(-1),
    ),
    Setting(
        "pyrec.exact_filter_items",
        "integer",
        "20000",
        "on versions with an HNSW index, filters the planner expects to keep at most this many"
        " items are scored exactly instead of through the index (0: always the index)",
        "a whole number of at least 0, e.g. SET pyrec.exact_filter_items = 20000",
        _integer(0),
    ),
    Setting(
        "pyrec.lock_timeout",
        "duration",
        "1min",
        "how long a training waits for a lock another session holds on the model's relations"
        " before failing with 55P03 (0: as long as it takes)",
        "a duration such as '30s' or '5min'; 0 waits for locks as long as it takes",
        _duration,
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _text_of(db: Db, setting: Setting) -> str:
    """The setting's text in this session; its default when unset (NULL or '')."""
    value = db.scalar("SELECT current_setting($1, true)", [setting.name], ["text"])
    return str(value) if value else setting.default


def get(db: Db, name: str) -> Any:
    """The setting's value, parsed and checked; its default when unset. A value that does not
    parse is an error (22023) naming the setting, never silently replaced by the default."""
    setting = _BY_NAME[name]
    text = _text_of(db, setting)
    try:
        return setting.parse(text)
    except ValueError as e:
        raise InvalidParameter(
            f'invalid value for setting {name}: "{text}"',
            detail=f"{name}: {setting.description}",
            hint=setting.hint,
        ) from e


def listing(db: Db) -> list[dict[str, Any]]:
    """Every setting with its current text, default, type and description (pyrec.settings)."""
    return [
        {
            "name": s.name,
            "value": _text_of(db, s),
            "default": s.default,
            "type": s.type,
            "description": s.description,
        }
        for s in SETTINGS
    ]
