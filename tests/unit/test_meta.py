"""PGXN's META.json describes the extension this checkout builds: name, versions, license and
the prerequisites provisioning installs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pyrec_pg

ROOT = Path(__file__).resolve().parents[2]
META = json.loads((ROOT / "META.json").read_text())


def test_it_has_every_field_pgxn_requires() -> None:
    for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
        assert META[key], key
    assert META["meta-spec"]["version"] == "1.0.0"


def test_versions_are_the_extension_s_and_the_package_s() -> None:
    control = (ROOT / "sql" / "pyrec.control").read_text()
    found = re.search(r"default_version\s*=\s*'([^']+)'", control)
    assert found is not None
    assert META["version"] == META["provides"]["pyrec"]["version"] == found.group(1)
    assert found.group(1) == pyrec_pg.__version__
    assert (ROOT / META["provides"]["pyrec"]["file"]).exists()
    assert META["name"] in META["provides"]


def test_license_and_prerequisites_match_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], META["license"]) == ("Apache-2.0", "apache_2_0")
    requires = META["prereqs"]["runtime"]["requires"]
    control = (ROOT / "sql" / "pyrec.control").read_text()
    # the control file's requires are the prerequisites, with pgvector's minimum
    needed = re.search(r"requires\s*=\s*'([^']+)'", control)
    assert needed is not None
    assert {r.strip() for r in needed.group(1).split(",")} == set(requires) - {"PostgreSQL"}
    assert requires["vector"] == "0.8.0" and requires["PostgreSQL"] == "15.0.0"
