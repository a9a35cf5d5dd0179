"""Shared by integration tests: expected errors, unchanged catalog state, managed models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from pyrec_pg.entrypoints import managed


def catalog_state(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Everything pyrec owns: catalog rows and the set of tables in schema pyrec."""
    return (
        conn.execute("SELECT * FROM pyrec.models ORDER BY model_id").fetchall(),
        conn.execute(
            "SELECT model_id, version, status FROM pyrec._versions ORDER BY 1, 2"
        ).fetchall(),
        conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'pyrec'::regnamespace"
            " AND relkind = 'r' ORDER BY 1"
        ).fetchall(),
    )


@contextmanager
def raises_pg(
    conn: psycopg.Connection[Any], sqlstate: str, message: str, hint: str | None = ""
) -> Iterator[None]:
    """Expect a Postgres error with this SQLSTATE, a message containing `message`, a hint
    (containing `hint` when given) and no change to pyrec's catalog."""
    before = catalog_state(conn)
    with pytest.raises(psycopg.Error) as info:
        yield
    diag = info.value.diag
    assert diag.sqlstate == sqlstate, (diag.sqlstate, diag.message_primary)
    # a huge input (a 10 MB name, say) is never echoed whole
    size = sum(len(x or "") for x in (diag.message_primary, diag.message_detail, diag.message_hint))
    assert size < 2000, f"{size} characters of error: {(diag.message_primary or '')[:200]}"
    assert message in (diag.message_primary or ""), diag.message_primary
    if hint is not None:
        assert diag.message_hint, f"no HINT for: {diag.message_primary}"
        assert hint in diag.message_hint, diag.message_hint
    assert catalog_state(conn) == before


def managed_movies(dsn: str, options: str) -> None:
    """Model "movies" over MovieLens-100K's tables, created in the managed flavour."""
    managed.call(
        dsn,
        "create_model",
        {
            "name": "movies",
            "interactions": "ratings",
            "items": "movies",
            "users": "viewers",
            "options": json.loads(options),
        },
    )
