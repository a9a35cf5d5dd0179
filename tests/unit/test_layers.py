"""The layering check of `make check`: the package passes it; upward imports and cycles fail it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import check_layers  # noqa: E402


def test_the_package_imports_only_downwards_without_cycles() -> None:
    graph, paths = check_layers.build()
    assert check_layers.violations(graph, paths) == []
    assert check_layers.cycles(graph) == []
    assert len(paths) > 50  # it saw the package, not an empty folder


def _paths(*names: str) -> dict[str, Path]:
    return {n: check_layers.PACKAGE / (n.replace(".", "/") + ".py") for n in names}


def test_an_upward_import_is_reported() -> None:
    graph = {
        "pyrec_pg.catalog.models": [("pyrec_pg.jobs.training", 7)],
        "pyrec_pg.jobs.training": [],
    }
    found = check_layers.violations(graph, _paths(*graph))
    assert len(found) == 1 and "jobs/ is not below catalog/" in found[0] and ":7:" in found[0]


def test_a_sibling_layer_and_the_dev_tools_are_off_limits() -> None:
    graph = {
        "pyrec_pg.cli._serve": [("pyrec_pg.integrations.sqlalchemy", 3)],
        "pyrec_pg.jobs.batch": [("pyrec_pg.dev.cluster", 4)],
        "pyrec_pg.integrations.sqlalchemy": [],
        "pyrec_pg.dev.cluster": [],
    }
    found = check_layers.violations(graph, _paths(*graph))
    assert any("integrations/ is not below cli/" in f for f in found)
    assert any("only cli may import dev/" in f for f in found)


@pytest.mark.parametrize("local", [False, True])
def test_a_cycle_is_reported_even_through_a_function_local_import(
    tmp_path: Path, local: bool
) -> None:
    pkg = tmp_path / "pyrec_pg" / "ml"
    pkg.mkdir(parents=True)
    (tmp_path / "pyrec_pg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pyrec_pg.ml import b\n")
    body = "def f():\n    from pyrec_pg.ml import a\n" if local else "from pyrec_pg.ml import a\n"
    (pkg / "b.py").write_text(body)
    known = {"pyrec_pg", "pyrec_pg.ml", "pyrec_pg.ml.a", "pyrec_pg.ml.b"}
    graph = {
        "pyrec_pg.ml.a": [("pyrec_pg.ml.b", 1)],
        "pyrec_pg.ml.b": check_layers.imports("pyrec_pg.ml.b", pkg / "b.py", known),
    }
    assert check_layers.cycles(graph) == [["pyrec_pg.ml.a", "pyrec_pg.ml.b"]]


def test_make_check_runs_it() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_layers.py")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout
    assert "all pointing down, no cycle" in out.stdout
    assert "tools/check_layers.py" in (ROOT / "Makefile").read_text()


def test_the_server_gets_what_make_install_gives_it() -> None:
    from pyrec_pg.dev.cluster import NOT_IN_SERVER

    makefile = (ROOT / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("SERVER_EXCLUDES"))
    assert sorted(line.split(":=")[1].split()) == sorted(NOT_IN_SERVER)
    # and nothing below the entry points could need them: only cli may import dev
    assert check_layers.ONLY_FROM["dev"] == ("cli",)
