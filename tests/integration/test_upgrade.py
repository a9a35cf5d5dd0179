"""Upgrades: a database of each released version with trained models, the server's Python
upgraded first, then ALTER EXTENSION pyrec UPDATE (0.1.0 walks through 0.2.0 to the current
version in one statement); models serve as before and the schema equals a fresh install."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pyrec_pg
from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import REPO, Cluster
from tests.integration.helpers import raises_pg
from tests.integration.upgrade_checks import (
    SERVING,
    changed,
    differences,
    populate,
    serve,
    snapshot,
)

Conn = psycopg.Connection[Any]

# each released version and its release commit: its pyrec_pg runs in the server before the upgrade
RELEASES = {"0.1.0": "29d9d4f", "0.2.0": "342e1a9"}
DB = "pyrec_upgrade"


def server_python(cluster: Cluster, source: Path) -> None:
    """Replace the server's pyrec_pg, as pip does: sessions started later import the new one."""
    target = cluster.python / "pyrec_pg"
    shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chown", "-R", f"{cluster.os_user}:", str(target)], check=False)


def old_python(into: Path, old: str) -> Path:
    """pyrec_pg as released in version `old`, from the checkout's history."""
    if not (REPO / ".git").exists():
        pytest.skip(f"needs the git history of the checkout for pyrec_pg {old}")
    tar = into / f"pyrec_pg-{old}.tar"
    subprocess.run(
        # sql/ too: from 0.2.0 on the package links to it (pyrec_pg/sql -> ../sql)
        ["git", "-C", str(REPO), "archive", "-o", str(tar), RELEASES[old], "pyrec_pg", "sql"],
        check=True,
    )
    subprocess.run(["tar", "-xf", str(tar), "-C", str(into)], check=True)
    return into / "pyrec_pg"


@pytest.fixture(scope="module", params=sorted(RELEASES))
def walk(request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, dict[str, Any]]]:
    """The upgrade from a released version as a DBA runs it, with what was served and
    reported at each step."""
    old: str = request.param
    seen: dict[str, Any] = {"old": old}
    cluster = Cluster()
    cluster.settings.update(
        {
            "shared_preload_libraries": "pg_cron",
            "cron.database_name": DB,
            "cron.host": str(cluster.socket_dir),
        }
    )
    with tempfile.TemporaryDirectory() as tmp, cluster:
        # 1. the release: SQL and Python, models trained, a filter, an experiment, a schedule
        server_python(cluster, old_python(Path(tmp), old))
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {DB}")
        with psycopg.connect(cluster.dsn(DB), autocommit=True) as c:
            c.execute(f"CREATE EXTENSION pyrec VERSION '{old}' CASCADE")
            c.execute("CREATE EXTENSION pg_cron")
            with c.transaction():
                movielens.load(c)
            populate(c)
            c.execute("SELECT pyrec.schedule_training('movies', '0 3 * * *')")
            seen["old version"] = c.execute("SELECT pyrec.version()").fetchone()
        seen["served by the release"] = serve(cluster.dsn(DB))

        # 2. pip upgrades the server's Python; the database still has the released SQL
        server_python(cluster, REPO / "pyrec_pg")
        seen["served in the window"] = serve(cluster.dsn(DB))
        with psycopg.connect(cluster.dsn(DB), autocommit=True) as c:
            seen["version in the window"] = c.execute("SELECT pyrec.version()").fetchone()
            c.execute("CALL pyrec.train('popular')")  # training works in the window too
            seen["versions after training in the window"] = c.execute(
                "SELECT model, version, status FROM pyrec.model_versions ORDER BY 1, 2"
            ).fetchall()
        seen["served before the update"] = serve(cluster.dsn(DB))

        # 3. the DBA updates the database
        with psycopg.connect(cluster.dsn(DB), autocommit=True) as c:
            c.execute("ALTER EXTENSION pyrec UPDATE")
            seen["version after the update"] = c.execute("SELECT pyrec.version()").fetchone()
        seen["served after the update"] = serve(cluster.dsn(DB))
        yield cluster, seen


def test_new_python_serves_the_old_sql_alike(walk: tuple[Cluster, dict[str, Any]]) -> None:
    _, seen = walk
    (old,) = seen["old version"]
    assert (old["sql"], old["python_package"]) == (seen["old"], seen["old"])
    (window,) = seen["version in the window"]
    assert (window["sql"], window["python_package"]) == (seen["old"], pyrec_pg.__version__)
    assert window["sql_available"] == pyrec_pg.__version__ and window["update_pending"] is True
    before, during = seen["served by the release"], seen["served in the window"]
    assert all(before[what] for what in SERVING), [w for w in SERVING if not before[w]]
    assert changed(before, during) == {}
    assert seen["versions after training in the window"] == [
        ("movies", 1, "inactive"),
        ("movies", 2, "active"),
        ("popular", 1, "inactive"),
        ("popular", 2, "active"),
    ]


def test_update_keeps_every_model_serving_the_same(walk: tuple[Cluster, dict[str, Any]]) -> None:
    _, seen = walk
    (after,) = seen["version after the update"]
    assert (after["sql"], after["python_package"]) == (pyrec_pg.__version__, pyrec_pg.__version__)
    assert after["update_pending"] is False
    before, now = seen["served before the update"], seen["served after the update"]
    assert changed(before, now) == {}


def test_updated_models_retrain_and_keep_their_schedule(
    walk: tuple[Cluster, dict[str, Any]],
) -> None:
    cluster, _ = walk
    with psycopg.connect(cluster.dsn(DB), autocommit=True) as c:
        c.execute("CALL pyrec.train('movies')")
        assert c.execute(
            "SELECT version, status FROM pyrec.model_versions WHERE model = 'movies' ORDER BY 1"
        ).fetchall() == [(1, "inactive"), (2, "inactive"), (3, "active")]
        assert len(c.execute("SELECT * FROM pyrec.recommend('movies', '1', 10)").fetchall()) == 10
        assert c.execute("SELECT schedule FROM cron.job").fetchall() == [("0 3 * * *",)]
        assert c.execute("SELECT pyrec.unschedule_training('movies')").fetchone() == (True,)


def test_named_filters_follow_the_missing_parameter_rule_after_the_update(
    walk: tuple[Cluster, dict[str, Any]],
) -> None:
    cluster, _ = walk
    with psycopg.connect(cluster.dsn(DB), autocommit=True) as c:
        plain = c.execute("SELECT item_id FROM pyrec.recommend('movies', '42', 10)").fetchall()
        # stored before the update: compiled again, so a missing $G drops the EXCLUDE
        dropped = c.execute(
            "SELECT item_id FROM pyrec.recommend('movies', '42', 10, 'skip_genres')"
        ).fetchall()
        assert dropped == plain
        given = c.execute(
            "SELECT item_id FROM pyrec.recommend('movies', '42', 10, 'skip_genres',"
            " '{\"G\": [\"Drama\"]}')"
        ).fetchall()
        assert given != plain


def test_updated_schema_equals_a_fresh_install(walk: tuple[Cluster, dict[str, Any]]) -> None:
    cluster, seen = walk
    old = seen["old"]
    with psycopg.connect(cluster.dsn(), autocommit=True) as c:
        c.execute("CREATE DATABASE pyrec_fresh")
    with (
        psycopg.connect(cluster.dsn("pyrec_fresh"), autocommit=True) as fresh,
        psycopg.connect(cluster.dsn(DB), autocommit=True) as updated,
    ):
        fresh.execute("CREATE EXTENSION pyrec CASCADE")
        diff = differences(
            snapshot(fresh), snapshot(updated), ("the fresh install", f"the {old} install updated")
        )
    assert not diff, (
        f"ALTER EXTENSION pyrec UPDATE from {old} does not give a fresh install's schema: put the"
        " sql/src change into the newest migrations/pyrec--<previous>--"
        f"{pyrec_pg.__version__}.sql (new table columns go last in CREATE TABLE, as ADD COLUMN"
        " appends them)\n" + "\n".join(diff)
    )


def test_update_of_a_current_install_changes_nothing(conn: Conn) -> None:
    before = snapshot(conn)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("ALTER EXTENSION pyrec UPDATE")
    current = pyrec_pg.__version__
    assert notices == [f'version "{current}" of extension "pyrec" is already installed']
    assert differences(before, snapshot(conn), ("before", "after")) == []


def test_every_released_version_has_an_update_path(conn: Conn) -> None:
    frozen = REPO / "migrations"
    released = sorted(p.name[len("pyrec--") : -len(".sql")] for p in frozen.glob("pyrec--*.sql"))
    released = [v for v in released if "--" not in v]
    assert set(RELEASES) <= set(released) and pyrec_pg.__version__ not in released  # sql/src
    paths = dict(
        conn.execute(
            "SELECT source, path FROM pg_extension_update_paths('pyrec') WHERE target = %s",
            [pyrec_pg.__version__],
        ).fetchall()
    )
    assert {v: paths.get(v) for v in released if paths.get(v) is None} == {}
    guard = '\\echo Use "ALTER EXTENSION pyrec UPDATE" to load this file. \\quit'
    for script in frozen.glob("pyrec--*--*.sql"):  # nothing runs before the guard
        lines = script.read_text().splitlines()
        assert next(x for x in lines if x.strip() and not x.startswith("--")) == guard, script
    # the Python serves every SQL version a database may still have during the window
    assert set(pyrec_pg.SQL_VERSIONS) == {*released, pyrec_pg.__version__}


def test_sql_newer_than_the_python_names_the_fix(conn: Conn) -> None:
    conn.execute("UPDATE pg_extension SET extversion = '9.9.9' WHERE extname = 'pyrec'")
    with raises_pg(conn, "55000", "SQL version 9.9.9 does not match", "install a pyrec_pg"):
        conn.execute("SELECT pyrec.version()")
