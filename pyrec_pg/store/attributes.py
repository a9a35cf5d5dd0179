"""Attribute rows of a model's items or users relation, read for the attribute models."""

from __future__ import annotations

from typing import Any

from pyrec_pg.catalog.models import Model, resolve_relation
from pyrec_pg.db import Db


def relation(model: Model, role: str) -> str | None:
    return model.items if role == "item" else model.users


def read_rows(
    db: Db, model: Model, role: str, where: str = "true", args: list[Any] | None = None
) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """Ids (text) and attribute rows of the model's items (role "item") or users relation."""
    name = relation(model, role)
    assert name is not None
    rel = resolve_relation(db, name, f"{role}s")
    key = model.columns[f"{role}s_id"]
    rows = db.rows(
        f"SELECT {db.ident(key)}::text AS __id, * FROM {rel.qualified} r"
        f" WHERE {db.ident(key)} IS NOT NULL AND ({where})",
        args or [],
        ["text"] * len(args or []),
    )
    return [r["__id"] for r in rows], [dict(r) for r in rows], rel.columns
