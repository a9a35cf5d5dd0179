"""Attribute rows and item texts of a model's items or users relation, read for the models."""

from __future__ import annotations

from typing import Any

from pyrec_pg.catalog.models import Model, Relation, resolve_relation
from pyrec_pg.db import Db
from pyrec_pg.db.types import TEXT_TYPES
from pyrec_pg.errors import DatatypeMismatch, InvalidParameter, UndefinedColumn
from pyrec_pg.ml.text import compose


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


def text_columns(model: Model, rel: Relation, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The items relation's columns an item's text is made of: `wanted` (checked), or when
    empty every text or text-array column but the id, created and availability columns."""
    for name in wanted:
        if name not in rel.columns:
            raise UndefinedColumn(
                f'text column "{name}" does not exist in items relation {rel.qualified}',
                hint=f"columns of {rel.qualified}: {', '.join(rel.columns)}",
            )
    if wanted:
        return wanted
    skip = {model.columns.get(k) for k in ("items_id", "items_created", "items_available")}
    found = tuple(
        name
        for name, typ in rel.columns.items()
        if name not in skip and typ.removesuffix("[]").startswith(TEXT_TYPES)
    )
    if not found:
        raise DatatypeMismatch(
            f"items relation {rel.qualified} has no text column",
            hint='name the columns that describe an item: {"params": {"columns": ["title"]}}',
        )
    return found


def require_items(model: Model) -> str:
    """The model's items relation, which item texts are read from; an error without one."""
    if model.items is None:
        raise InvalidParameter(
            f'model "{model.name}" has no items relation to read item texts from',
            hint="create the model with items => '<table of items with text columns>'",
        )
    return model.items


def read_texts(
    db: Db,
    model: Model,
    wanted: tuple[str, ...],
    where: str = "true",
    args: list[Any] | None = None,
) -> tuple[list[str], list[str], tuple[str, ...]]:
    """Ids (text), texts and the columns read, of the items relation's rows: an item's text
    is its columns' values (arrays joined by ', ') joined by '. ' (ml.text.compose)."""
    rel = resolve_relation(db, require_items(model), "items")
    columns = text_columns(model, rel, wanted)
    key = db.ident(model.columns["items_id"])
    values = ", ".join(
        (
            f"array_to_string(r.{db.ident(c)}, ', ')"
            if rel.columns[c].endswith("[]")
            else f"r.{db.ident(c)}::text"
        )
        + f" AS __t{n}"
        for n, c in enumerate(columns)
    )
    rows = db.rows(
        f"SELECT r.{key}::text AS __id, {values} FROM {rel.qualified} r"
        f" WHERE r.{key} IS NOT NULL AND ({where})",
        args or [],
        ["text"] * len(args or []),
    )
    texts: dict[str, str] = {}
    for r in rows:  # an id listed twice keeps its first row
        texts.setdefault(r["__id"], compose([r[f"__t{n}"] for n in range(len(columns))]))
    return list(texts), list(texts.values()), columns
