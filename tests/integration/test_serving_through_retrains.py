"""Serving never breaks: clients during retrains and activations, and a training killed mid-way."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from tests.integration.helpers import catalog_state

Conn = psycopg.Connection[Any]
USERS = ["1", "7", "42", "300", "943"]
SLOW = '{"params": {"factors": 16, "iterations": 300}, "holdout": 0}'


def answers(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    return {
        u: conn.execute("SELECT item_id, score FROM recommend(%s, 5)", [u]).fetchall()
        for u in USERS
    }


def test_clients_see_exactly_one_version_through_retrain_and_activation(trained: Conn) -> None:
    v1 = answers(trained)
    stop = threading.Event()
    seen: list[dict[str, list[tuple[Any, ...]]]] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with psycopg.connect(trained.info.dsn, autocommit=True) as c:
                while not stop.is_set():
                    seen.append(answers(c))
        except BaseException as e:  # reported below: any error fails the test
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        trained.execute(
            'CALL pyrec.train(\'movies\', \'{"params": {"factors": 8, "iterations": 3}}\')'
        )
        v2 = answers(trained)
        for _ in range(3):
            trained.execute("SELECT pyrec.rollback('movies')")
            time.sleep(0.05)
            trained.execute("SELECT pyrec.activate('movies', 2)")
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert v1 != v2
    # each answer (all users, read in one loop pass) is per user v1's or v2's, never a mix
    per_user = [(a[u] == v1[u], a[u] == v2[u]) for a in seen for u in USERS]
    assert all(one or two for one, two in per_user)
    assert any(one for one, _ in per_user) and any(two for _, two in per_user)
    assert len(seen) >= 10


def test_killed_training_leaves_the_previous_version_serving(trained: Conn) -> None:
    before_state = catalog_state(trained)
    before = answers(trained)
    failure: list[BaseException] = []

    def train() -> None:
        try:
            with psycopg.connect(trained.info.dsn, autocommit=True) as c:
                c.execute("CALL pyrec.train('movies', %s)", [SLOW])
        except psycopg.Error as e:
            failure.append(e)

    t = threading.Thread(target=train)
    t.start()
    pid = None
    for _ in range(600):  # wait until it is fitting
        row = trained.execute(
            "SELECT pid FROM pyrec.training_runs WHERE status = 'running' AND phase = 'training'"
        ).fetchone()
        if row:
            pid = row[0]
            break
        time.sleep(0.05)
    assert pid is not None, "the training never reached its fitting phase"
    assert trained.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    t.join(timeout=60)
    assert failure, "the killed training reported success"
    run = trained.execute(
        "SELECT status, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert run == ("failed", "the backend exited before finishing")
    assert answers(trained) == before
    assert catalog_state(trained) == before_state  # no half-written version tables
    # the lock died with the backend: the next training runs and records the dead one as failed
    trained.execute("CALL pyrec.train('movies', '{\"params\": {\"iterations\": 2}}')")
    statuses = trained.execute("SELECT status FROM pyrec._runs ORDER BY run_id").fetchall()
    assert statuses == [("succeeded",), ("failed",), ("succeeded",)]
