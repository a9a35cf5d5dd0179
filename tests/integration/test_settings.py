"""pyrec.* settings against the server: listed by pyrec.settings and the CLI, a bad value is a
22023 error naming the setting, and a training refused for it changes nothing (raises_pg checks
the catalog) while the active version keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from pyrec_pg.db.settings import SETTINGS
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def test_the_settings_view_lists_every_setting_with_session_values(trained: Conn) -> None:
    trained.execute("SET pyrec.keep_versions = 4")
    rows = trained.execute(
        "SELECT name, value, default_value, type, description FROM pyrec.settings ORDER BY name"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(s.name for s in SETTINGS)
    by_name = {r[0]: r for r in rows}
    assert by_name["pyrec.keep_versions"][1:3] == ("4", "3")
    assert by_name["pyrec.lock_timeout"][1:3] == ("1min", "1min")
    assert all(r[4] for r in rows)  # every one says what it does


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("pyrec.keep_versions", "none", "at least 1"),
        ("pyrec.ann_min_items", "lots", "-1 to never"),
        ("pyrec.lock_timeout", "soon", "30s"),
    ],
)
def test_a_bad_value_refuses_the_training_and_changes_nothing(
    trained: Conn, name: str, value: str, hint: str
) -> None:
    served = trained.execute("SELECT item_id FROM recommend('42', 5)").fetchall()
    trained.execute(f"SET {name} = '{value}'")
    with raises_pg(trained, "22023", f'invalid value for setting {name}: "{value}"', hint):
        trained.execute("CALL pyrec.train('movies')")
    trained.execute(f"RESET {name}")
    assert trained.execute("SELECT item_id FROM recommend('42', 5)").fetchall() == served


def test_the_cli_lists_them_too(trained: Conn) -> None:
    dsn = trained.info.dsn
    out = subprocess.run(
        [sys.executable, "-m", "pyrec_pg.cli", "settings", "--json", "--dsn", dsn],
        capture_output=True,
        text=True,
        env={"PGOPTIONS": "-c pyrec.ann_min_items=-1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {s.name for s in SETTINGS}
    assert rows["pyrec.ann_min_items"]["value"] == "-1"


def test_serving_reads_exact_filter_items_as_the_registry_declares_it(trained: Conn) -> None:
    # serving reads this setting in plpgsql (no Python on the hot path): same default, texts
    setting = next(s for s in SETTINGS if s.name == "pyrec.exact_filter_items")
    assert trained.execute("SELECT pyrec._exact_filter_items()").fetchone() == (
        int(setting.default),
    )
    trained.execute("SET pyrec.exact_filter_items = 12")
    assert trained.execute("SELECT pyrec._exact_filter_items()").fetchone() == (12,)
    trained.execute("SET pyrec.exact_filter_items = 'lots'")
    with pytest.raises(psycopg.Error) as info:
        trained.execute("SELECT pyrec._exact_filter_items()")
    diag = info.value.diag
    assert diag.sqlstate == "22023"
    assert diag.message_primary == 'invalid value for setting pyrec.exact_filter_items: "lots"'
    assert diag.message_detail == f"{setting.name}: {setting.description}"
    assert diag.message_hint == setting.hint
