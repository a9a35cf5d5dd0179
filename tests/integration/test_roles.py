"""Roles: pyrec_reader serves, pyrec_admin manages, PUBLIC gets nothing; callers' rights and
row-level security apply to the user's own tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[Any]
ROLES = {"alice": "pyrec_admin", "bob": "pyrec_reader", "eve": None}


@pytest.fixture
def roles(trained: Conn) -> Conn:
    for name, member_of in ROLES.items():  # roles belong to the cluster: made once
        if trained.execute("SELECT to_regrole(%s)", [name]).fetchone() == (None,):
            trained.execute(f"CREATE ROLE {name} LOGIN")
        if member_of:
            trained.execute(f"GRANT {member_of} TO {name}")
    # the user's own tables: readers read them when serving (seen items, fold-in)
    trained.execute("GRANT SELECT ON ratings, movies, viewers TO pyrec_reader")
    return trained


@contextmanager
def connect_as(conn: Conn, role: str) -> Iterator[Conn]:
    with psycopg.connect(conn.info.dsn, user=role, autocommit=True) as c:
        yield c


def denied(conn: Conn, sql: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql)


def test_a_reader_serves_and_reads_metrics_but_changes_nothing(roles: Conn) -> None:
    roles.execute("INSERT INTO ratings VALUES (5000, 1, 5, now()), (5000, 50, 5, now())")
    with connect_as(roles, "bob") as bob:
        assert {
            s for (s,) in bob.execute("SELECT source FROM pyrec.recommend('movies', '42', 5)")
        } == {"model"}
        assert {
            s for (s,) in bob.execute("SELECT source FROM pyrec.recommend('movies', '5000', 5)")
        } == {"fold-in"}
        assert len(bob.execute("SELECT * FROM recommend(42, 3)").fetchall()) == 3
        assert (
            len(bob.execute("SELECT * FROM pyrec.similar_items('movies', '50', 3)").fetchall()) == 3
        )
        assert (
            len(bob.execute("SELECT * FROM pyrec.users_for_item('movies', '50', 3)").fetchall())
            == 3
        )
        assert bob.execute("SELECT count(*) FROM pyrec.model_versions").fetchone() == (1,)
        for sql in (
            "CALL pyrec.train('movies')",
            "SELECT pyrec.create_model('mine', 'ratings')",
            "SELECT pyrec.drop_model('movies')",
            "SELECT pyrec.rollback('movies')",
            "SELECT * FROM pyrec.forget_user('movies', '1')",
            "CALL pyrec.batch_recommend('movies', users => 'SELECT 1')",
            "DELETE FROM pyrec.models",
            "SELECT * FROM pyrec.audit",
        ):
            denied(bob, sql)
    assert roles.execute("SELECT count(*) FROM pyrec.models").fetchone() == (1,)


def test_an_admin_without_superuser_trains_creates_and_drops(roles: Conn) -> None:
    roles.execute("GRANT SELECT ON ratings TO pyrec_admin")
    with connect_as(roles, "alice") as alice:
        # three trainings by alice trim version 1 (trained by the superuser): any admin may
        for _ in range(3):
            alice.execute(
                'CALL pyrec.train(\'movies\', \'{"params": {"factors": 8, "iterations": 2}}\')'
            )
        versions = alice.execute("SELECT version FROM pyrec.model_versions ORDER BY 1").fetchall()
        assert versions == [(2,), (3,), (4,)]
        alice.execute("SELECT pyrec.rollback('movies')")
        alice.execute(
            "SELECT pyrec.create_model('hers', 'ratings', options => %s)",
            ['{"params": {"factors": 8}}'],
        )
        alice.execute("CALL pyrec.train('hers')")
        alice.execute("SELECT pyrec.drop_model('hers')")
        # the audit trail is append-only, even for admins
        assert alice.execute(
            "SELECT count(*) > 0 FROM pyrec.audit WHERE role = 'alice'"
        ).fetchone() == (True,)
        denied(alice, "DELETE FROM pyrec.audit")
        denied(alice, "INSERT INTO pyrec.audit (action) VALUES ('forged')")
    with connect_as(roles, "bob") as bob:  # alice's versions serve readers too
        assert len(bob.execute("SELECT * FROM pyrec.recommend('movies', '42', 5)").fetchall()) == 5


def test_public_gets_nothing(roles: Conn) -> None:
    with connect_as(roles, "eve") as eve:
        for sql in (
            "SELECT * FROM pyrec.recommend('movies', '42', 5)",
            "SELECT * FROM recommend(42, 5)",
            "SELECT * FROM pyrec.models",
            "SELECT pyrec.version()",
        ):
            denied(eve, sql)
    public = roles.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = 'pyrec'::regnamespace"
        " AND has_function_privilege('public', p.oid, 'EXECUTE')"
    ).fetchall()
    assert public == []
    definers = roles.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p"
        " WHERE p.pronamespace = 'pyrec'::regnamespace AND p.prosecdef"
    ).fetchall()
    assert definers == [("pyrec._audit(name,text,text,jsonb)", ["search_path=pg_catalog, pg_temp"])]


def test_row_level_security_on_the_users_tables_is_respected(roles: Conn) -> None:
    # bob may only see user 42's ratings: user 7's history is invisible to him, so pyrec
    # (reading with bob's rights) cannot exclude what user 7 has seen
    roles.execute(
        "ALTER TABLE ratings ENABLE ROW LEVEL SECURITY;"
        " CREATE POLICY only_42 ON ratings FOR SELECT TO bob USING (viewer_id = 42)"
    )
    seen7 = {str(m) for (m,) in roles.execute("SELECT movie_id FROM ratings WHERE viewer_id = 7")}
    served_su = {
        i for (i,) in roles.execute("SELECT item_id FROM pyrec.recommend('movies', '7', 50)")
    }
    assert not served_su & seen7
    with connect_as(roles, "bob") as bob:
        assert bob.execute("SELECT count(*) FROM ratings WHERE viewer_id = 7").fetchone() == (0,)
        served = {
            i for (i,) in bob.execute("SELECT item_id FROM pyrec.recommend('movies', '7', 50)")
        }
        assert served & seen7
        mine = {
            i for (i,) in bob.execute("SELECT item_id FROM pyrec.recommend('movies', '42', 50)")
        }
        seen42 = {
            str(m) for (m,) in bob.execute("SELECT movie_id FROM ratings WHERE viewer_id = 42")
        }
        assert seen42 and not mine & seen42


def test_a_reader_reads_through_pyrec_only_what_its_own_privileges_allow(roles: Conn) -> None:
    roles.execute(
        "CREATE SCHEMA hr; CREATE TABLE hr.salaries (movie_id int, amount int);"
        " INSERT INTO hr.salaries VALUES (1, 100000)"
    )
    # bob may read the items' id and genre, not their title
    roles.execute("REVOKE SELECT ON movies FROM pyrec_reader")
    roles.execute("GRANT SELECT (movie_id, genre) ON movies TO pyrec_reader")
    with connect_as(roles, "bob") as bob:
        ok = """'EXCLUDE ItemID WHERE Items.genre IN ("Drama")'"""
        rows = bob.execute(f"SELECT * FROM pyrec.recommend('movies', '42', 5, {ok})").fetchall()
        assert len(rows) == 5
        # a filter on a column bob cannot read fails as reading it directly would
        title = """'INCLUDE ItemID WHERE Items.title IN ("Heat (1995)")'"""
        denied(bob, f"SELECT * FROM pyrec.recommend('movies', '42', 5, {title})")
        denied(bob, "SELECT title FROM movies")
        # nothing outside the model's relations can be named in a filter, in any form
        for expression in (
            "INCLUDE ItemID WHERE Items.movie_id IN (SELECT movie_id FROM hr.salaries)",
            "INCLUDE ItemID WHERE hr.salaries.amount > 0",
            "movie_id IN (SELECT movie_id FROM hr.salaries)",
            "EXISTS (SELECT 1 FROM hr.salaries)",
            "(SELECT amount FROM hr.salaries LIMIT 1) > 0",
            "genre = 'Drama' UNION SELECT amount::text FROM hr.salaries",
        ):
            with pytest.raises(psycopg.Error) as info:
                bob.execute("SELECT * FROM pyrec.recommend('movies', '42', 5, %s)", [expression])
            assert info.value.diag.sqlstate in ("42601", "42703", "42P01", "0A000"), (
                expression,
                info.value.diag.sqlstate,
                info.value.diag.message_primary,
            )
            assert "salaries" not in (info.value.diag.message_detail or "")
            assert "100000" not in str(info.value)
        denied(bob, "SELECT * FROM hr.salaries")
