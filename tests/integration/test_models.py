"""pyrec.create_model / drop_model over the user's own tables."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg


def test_create_model_detects_columns(conn: psycopg.Connection[Any]) -> None:
    out = conn.execute(
        "SELECT pyrec.create_model('movies', 'ratings', items => 'movies', users => 'viewers')"
    ).fetchone()[0]  # type: ignore[index]
    cols = out["columns"]
    assert (cols["user"], cols["item"], cols["timestamp"], cols["event_value"]) == (
        "viewer_id",
        "movie_id",
        "rated_at",
        "rating",
    )
    assert cols["items_id"] == "movie_id" and cols["users_id"] == "viewer_id"
    assert out["interactions"] == "public.ratings"
    row = conn.execute(
        "SELECT recipe, active_version FROM pyrec.models WHERE name = 'movies'"
    ).fetchone()
    assert row == ("als", None)


def test_create_model_over_view_with_explicit_mapping(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA shop")
    conn.execute(
        'CREATE VIEW shop."Events" AS SELECT viewer_id AS who, movie_id AS what,'
        " 'rate'::text AS kind FROM ratings"
    )
    out = conn.execute(
        """SELECT pyrec.create_model('shop', 'shop."Events"',
           options => '{"columns": {"user": "who", "item": "what", "event_type": "kind"}}')"""
    ).fetchone()[0]  # type: ignore[index]
    assert out["interactions"] == 'shop."Events"'
    assert (out["columns"]["user"], out["columns"]["event_type"]) == ("who", "kind")


@pytest.mark.parametrize(
    ("call", "sqlstate", "message", "hint"),
    [
        (
            "'m', 'no_such_table'",
            "42P01",
            'interactions relation "no_such_table" does not exist',
            "schema-qualified",
        ),
        ("'m', 'ratings', items => 'nope.movies'", "42P01", '"nope.movies" does not exist', ""),
        (
            "'m', 'ratings', options => '{\"columns\": {\"user\": \"uid\"}}'",
            "42703",
            'column "uid" mapped as user does not exist',
            "viewer_id",
        ),
        ("'m', 'movies'", "42703", "cannot find the user column", "columns"),
        ("'m', 'ratings', recipe => 'magic'", "22023", 'unknown recipe "magic"', "als"),
        ("'bad name!', 'ratings'", "22023", 'invalid model name "bad name!"', "letters"),
        ("NULL, 'ratings'", "22004", "model name must not be null", None),
        ("'m', NULL", "22004", "interactions must not be null", "table or view"),
        (
            "'m', 'ratings', options => '{\"colour\": 1}'",
            "22023",
            'unknown option "colour"',
            "columns",
        ),
        ("'m', 'ratings', options => '[1]'", "22023", "options must be a JSON object", ""),
        (
            "'m', 'ratings', options => '{\"params\": {\"factors\": 0}}'",
            "22023",
            '"factors" of recipe als is out of range',
            "between",
        ),
        (
            "'m', 'ratings', options => '{\"params\": {\"factors\": \"x\"}}'",
            "22023",
            '"factors" of recipe als must be an integer',
            "got",
        ),
        (
            "'m', 'ratings', options => '{\"params\": {\"lr\": 1}}'",
            "22023",
            'unknown parameter "lr" for recipe als',
            "factors",
        ),
        (
            "'m', 'ratings', options => '{\"event_weights\": {\"buy\": -1}}'",
            "22023",
            "event_weights must map event types to non-negative numbers",
            "purchase",
        ),
        ("'m', 'pg_class_oid_index'", "22023", "is not a table or view", ""),
        (
            '\'m\', \'ratings\', options => \'{"columns": {"timestamp": "viewer_id", '
            '"user": "movie_id", "item": "rating", "event_type": "rated_at"}}\'',
            "42804",
            'event type column "rated_at" has type timestamp with time zone',
            "text",
        ),
    ],
)
def test_create_model_rejects_bad_input(
    conn: psycopg.Connection[Any], call: str, sqlstate: str, message: str, hint: str | None
) -> None:
    with raises_pg(conn, sqlstate, message, hint):
        conn.execute(f"SELECT pyrec.create_model({call})")


def test_duplicate_model_is_rejected(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pyrec.create_model('m', 'ratings')")
    with raises_pg(conn, "42710", 'model "m" already exists', "drop_model"):
        conn.execute("SELECT pyrec.create_model('m', 'ratings')")


def test_drop_model_removes_versions_and_tables(trained: psycopg.Connection[Any]) -> None:
    tables = trained.execute("SELECT items_table, users_table FROM pyrec.model_versions").fetchone()
    trained.execute("SELECT pyrec.drop_model('movies')")
    assert trained.execute("SELECT count(*) FROM pyrec.models").fetchone() == (0,)
    assert trained.execute("SELECT count(*) FROM pyrec._versions").fetchone() == (0,)
    assert trained.execute("SELECT count(*) FROM pyrec._runs").fetchone() == (0,)
    for t in tables or ():
        assert trained.execute("SELECT to_regclass(%s)", [f"pyrec.{t}"]).fetchone() == (None,)
    with raises_pg(trained, "42704", 'model "movies" does not exist', "pyrec.models"):
        trained.execute("SELECT pyrec.drop_model('movies')")
    trained.execute("SELECT pyrec.drop_model('movies', if_exists => true)")
