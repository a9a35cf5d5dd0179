"""Fixtures: a real PostgreSQL (throwaway cluster, PYREC_TEST_DSN, or Docker) with pyrec."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import PG_BIN, Cluster

TEMPLATE = "pyrec_test_template"
_counter = itertools.count()


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
    return f"postgresql: {version} ({PG_BIN})"


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
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pyrec CASCADE")
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
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.pg)
