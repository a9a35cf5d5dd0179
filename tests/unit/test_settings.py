"""The settings registry: declared once, parsed and checked, every one documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyrec_pg.db import Db, settings
from pyrec_pg.errors import InvalidParameter

README = Path(__file__).resolve().parents[2] / "README.md"


class _Plpy:
    """Just enough plpy for current_setting(): the session's settings in a dict."""

    SPIError = RuntimeError

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def prepare(self, query: str, types: Any = ()) -> str:
        return query

    def execute(self, plan: str, args: Any = ()) -> list[dict[str, Any]]:
        assert "current_setting" in plan
        return [{"v": self.values.get(args[0])}]


def _db(**values: str) -> Db:
    return Db(_Plpy({f"pyrec.{k}": v for k, v in values.items()}))  # type: ignore[arg-type]


def test_unset_settings_give_their_defaults() -> None:
    db = _db()
    assert settings.get(db, "pyrec.keep_versions") == 3
    assert settings.get(db, "pyrec.ann_min_items") == 20000
    assert settings.get(db, "pyrec.lock_timeout") == "1min"
    assert settings.get(db, "pyrec.default_model") == ""


def test_set_values_are_parsed() -> None:
    db = _db(keep_versions=" 5 ", ann_min_items="-1", lock_timeout="250ms")
    assert settings.get(db, "pyrec.keep_versions") == 5
    assert settings.get(db, "pyrec.ann_min_items") == -1
    assert settings.get(db, "pyrec.lock_timeout") == "250ms"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("keep_versions", "0"),
        ("keep_versions", "three"),
        ("ann_min_items", "-2"),
        ("ann_min_items", "1e5"),
        ("lock_timeout", "soon"),
        ("lock_timeout", "-1s"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        settings.get(_db(**{name: value}), f"pyrec.{name}")
    e = info.value
    assert e.sqlstate == "22023"
    assert f"pyrec.{name}" in e.message and value in e.message
    assert e.hint


def test_listing_shows_current_values_and_defaults() -> None:
    rows = {r["name"]: r for r in settings.listing(_db(keep_versions="7"))}
    assert set(rows) == {s.name for s in settings.SETTINGS}
    assert rows["pyrec.keep_versions"]["value"] == "7"
    assert rows["pyrec.keep_versions"]["default"] == "3"
    assert rows["pyrec.lock_timeout"]["value"] == "1min"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    for s in settings.SETTINGS:
        assert f"| `{s.name}` |" in text, s.name
