"""Scheduled retrains through pg_cron, on a cluster of their own that preloads it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pyrec_pg.dev import synthetic
from pyrec_pg.dev.cluster import Cluster
from tests.integration.helpers import raises_pg
from tests.integration.test_bad_input import BIG, SHOWN

Conn = psycopg.Connection[Any]
OPTIONS = '{"params": {"factors": 8, "iterations": 2}, "holdout": 0}'


@pytest.fixture(scope="module")
def cron_db() -> Iterator[Conn]:
    cluster = Cluster()
    # pg_cron runs jobs as clients of this cluster, which listens on its socket directory only
    cluster.settings.update(
        {
            "shared_preload_libraries": "pg_cron",
            "cron.database_name": "pyrec_cron",
            "cron.host": str(cluster.socket_dir),
        }
    )
    with cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE DATABASE pyrec_cron")
        with psycopg.connect(cluster.dsn("pyrec_cron"), autocommit=True) as c:
            c.execute("CREATE EXTENSION pyrec CASCADE")
            c.execute("CREATE EXTENSION pg_cron")
            with c.transaction():
                synthetic.load(c, synthetic.generate(5_000, seed=1), prefix="shop")
            c.execute("SELECT pyrec.create_model('shop', 'shop_interactions')")
            yield c


def jobs(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT jobname, schedule, command FROM cron.job ORDER BY jobid").fetchall()


def test_schedule_runs_the_training_through_pg_cron(cron_db: Conn) -> None:
    cron_db.execute(
        "SELECT pyrec.schedule_training('shop', '0 3 * * *', mode => 'update', options => %s)",
        [OPTIONS],
    )
    job = cron_db.execute(
        "SELECT pyrec.schedule_training('shop', '* * * * *', options => %s)", [OPTIONS]
    )
    assert isinstance(job.fetchone()[0], int)  # type: ignore[index]
    # one job per model: the second call replaced the first
    assert jobs(cron_db) == [
        (
            "pyrec-train-shop",
            "* * * * *",
            f"CALL pyrec.train('shop', '{OPTIONS}'::jsonb, mode => 'full')",
        )
    ]
    deadline = time.monotonic() + 90  # pg_cron 1.4 schedules by the minute
    while time.monotonic() < deadline:
        done = cron_db.execute(
            "SELECT status FROM pyrec.training_runs WHERE model = 'shop' AND status <> 'running'"
        ).fetchall()
        if done:
            break
        time.sleep(1)
    assert done == [("succeeded",)], cron_db.execute(
        "SELECT status, return_message FROM cron.job_run_details"
    ).fetchall()
    assert cron_db.execute(
        "SELECT active_version FROM pyrec.models WHERE name = 'shop'"
    ).fetchone() == (1,)
    assert cron_db.execute("SELECT pyrec.unschedule_training('shop')").fetchone() == (True,)
    assert jobs(cron_db) == []
    assert cron_db.execute(
        "SELECT pyrec.unschedule_training('shop', if_exists => true)"
    ).fetchone() == (False,)


def test_schedule_rejects_bad_input(cron_db: Conn) -> None:
    with raises_pg(cron_db, "22023", "invalid schedule 'every day'", "cron expression"):
        cron_db.execute("SELECT pyrec.schedule_training('shop', 'every day')")
    with raises_pg(cron_db, "42704", 'model "nope" does not exist'):
        cron_db.execute("SELECT pyrec.schedule_training('nope', '0 3 * * *')")
    with raises_pg(cron_db, "22023", "unknown training mode 'fast'"):
        cron_db.execute("SELECT pyrec.schedule_training('shop', '0 3 * * *', mode => 'fast')")
    with raises_pg(cron_db, "22004", "must not be null"):
        cron_db.execute("SELECT pyrec.schedule_training('shop', NULL)")
    # pg_cron trains in the server, which does not start Spark: the system's cron does
    spark = """'{"engine": "spark"}'"""
    with raises_pg(cron_db, "0A000", "trains on Spark", "pyrec train shop"):
        cron_db.execute(f"SELECT pyrec.schedule_training('shop', '0 3 * * *', options => {spark})")
    with raises_pg(cron_db, "42704", 'model "shop" has no scheduled training', "schedule_training"):
        cron_db.execute("SELECT pyrec.unschedule_training('shop')")
    # a 10 MB argument is not echoed whole, neither by pyrec nor from pg_cron's own error
    with raises_pg(cron_db, "22023", f"invalid schedule '{SHOWN}'", "cron expression"):
        cron_db.execute("SELECT pyrec.schedule_training('shop', %s)", [BIG])
    with raises_pg(cron_db, "42704", f'model "{SHOWN}" has no scheduled training'):
        cron_db.execute("SELECT pyrec.unschedule_training(%s)", [BIG])
    assert jobs(cron_db) == []


def test_drop_model_removes_its_schedule(cron_db: Conn) -> None:
    cron_db.execute("SELECT pyrec.create_model('gone', 'shop_interactions')")
    cron_db.execute("SELECT pyrec.schedule_training('gone', '0 4 * * *')")
    assert [j[0] for j in jobs(cron_db)] == ["pyrec-train-gone"]
    cron_db.execute("SELECT pyrec.drop_model('gone')")
    assert jobs(cron_db) == []
    audited = cron_db.execute(
        "SELECT action, details->>'schedule' FROM pyrec.audit WHERE model = 'gone'"
        " ORDER BY audit_id"
    ).fetchall()
    assert audited == [
        ("create_model", None),
        ("schedule_training", "0 4 * * *"),
        ("unschedule_training", None),
        ("drop_model", None),
    ]


def test_without_pg_cron_the_error_names_the_alternative(trained: Conn) -> None:
    with raises_pg(trained, "55000", "pg_cron is not installed", "pyrec train --dsn"):
        trained.execute("SELECT pyrec.schedule_training('movies', '0 3 * * *')")
