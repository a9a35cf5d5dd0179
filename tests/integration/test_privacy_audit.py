"""pyrec.forget_user (data deletion) and the pyrec.audit trail of admin actions."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def test_forget_user_removes_vectors_batches_and_impressions_at_once(trained: Conn) -> None:
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT 42 UNION SELECT 7', k => 3)"
    )
    trained.execute(
        'SELECT pyrec.create_experiment(\'e\', \'[{"name": "a", "share": 1},'
        ' {"name": "b", "share": 1}]\', model => \'movies\')'
    )
    trained.execute("SELECT * FROM pyrec.recommend(NULL, '42', 5, experiment => 'e')").fetchall()
    report = trained.execute(
        "SELECT what, rows_affected, action FROM pyrec.forget_user('movies', '42')"
    ).fetchall()
    by_what = {w: (n, a) for w, n, a in report}
    assert by_what["user vectors (every kept version)"] == (1, "deleted")
    assert by_what["batch output rows"] == (3, "deleted")
    assert by_what["experiment impressions"] == (1, "deleted")
    n, action = by_what["rows in public.ratings (interactions)"]
    assert n > 0 and action.startswith("left for you to delete")
    assert by_what["rows in public.viewers (users)"][0] == 1
    left = trained.execute(
        "SELECT (SELECT count(*) FROM pyrec.batch_movies WHERE user_id = '42'),"
        " (SELECT count(*) FROM pyrec.impressions WHERE user_id = '42'),"
        " (SELECT count(*) FROM pyrec.batch_movies WHERE user_id = '7')"
    ).fetchone()
    assert left == (0, 0, 3)
    # served like a stranger: no vector, no fold-in of the rows still in ratings, no seen items
    got = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('movies', '42', 10)"
    ).fetchall()
    stranger = trained.execute(
        "SELECT item_id FROM pyrec.recommend('movies', 'nobody', 10)"
    ).fetchall()
    assert {s for _, s in got} == {"popular"} and [i for i, _ in got] == [i for (i,) in stranger]
    assert trained.execute(
        "SELECT count(*) FROM pyrec.because_you_interacted('movies', '42', 5)"
    ).fetchone() == (0,)
    # a batch asking for them gives them no rows
    trained.execute(
        "CALL pyrec.batch_recommend('movies', users => 'SELECT 42 UNION SELECT 7', k => 3)"
    )
    assert trained.execute(
        "SELECT array_agg(DISTINCT user_id) FROM pyrec.batch_movies"
    ).fetchone() == (["7"],)
    # the next training cannot resurrect them, though their ratings are still there
    trained.execute("CALL pyrec.train('movies')")
    row = trained.execute(
        "SELECT users_table, n_users FROM pyrec.model_versions"
        " WHERE model = 'movies' AND status = 'active'"
    ).fetchone()
    assert row is not None and row[1] == 942
    assert trained.execute(
        f"SELECT count(*) FROM pyrec.{row[0]} WHERE user_id = '42'"
    ).fetchone() == (0,)
    # forgetting twice is harmless; every model at once with NULL
    trained.execute("SELECT * FROM pyrec.forget_user(NULL, '42')").fetchall()


def test_forget_user_errors(trained: Conn) -> None:
    with raises_pg(trained, "22004", "user_id must not be null"):
        trained.execute("SELECT * FROM pyrec.forget_user('movies', NULL)")
    with raises_pg(trained, "42704", 'model "nope" does not exist'):
        trained.execute("SELECT * FROM pyrec.forget_user('nope', '1')")


def test_admin_actions_are_audited_with_role_and_arguments(trained: Conn) -> None:
    before = trained.execute("SELECT coalesce(max(audit_id), 0) FROM pyrec.audit").fetchone()
    assert before is not None
    trained.execute(
        "SELECT pyrec.create_model('m2', 'ratings', options => %s)",
        ['{"params": {"factors": 8, "iterations": 2}}'],
    )
    trained.execute("CALL pyrec.train('m2')")
    trained.execute("CALL pyrec.train('m2')")
    trained.execute("SELECT pyrec.rollback('m2')")
    trained.execute("SELECT * FROM pyrec.forget_user('m2', '5')").fetchall()
    trained.execute("SELECT pyrec.drop_model('m2')")
    rows = trained.execute(
        "SELECT action, model, role, details FROM pyrec.audit"
        " WHERE audit_id > %s ORDER BY audit_id",
        [before[0]],
    ).fetchall()
    actions = [a for a, *_ in rows]
    assert actions == [
        "create_model",
        "train",
        "activate",
        "train succeeded",
        "train",
        "activate",
        "train succeeded",
        "activate",
        "forget_user",
        "drop_model",
    ], actions
    assert all(m == "m2" for _, m, _, _ in rows)
    assert all(r == "postgres" for _, _, r, _ in rows)
    assert rows[0][3]["interactions"] == "public.ratings"
    assert rows[7][3] == {"from": 2, "to": 1}
    assert rows[8][3] == {"user_id": "5"}
