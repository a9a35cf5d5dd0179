"""Fold-in: an ALS user vector solved from the user's live history, without retraining."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.catalog.models import Model, get_model
from pyrec_pg.db import Db
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.store import interactions
from pyrec_pg.store.codec import vector_dtype, vector_literals, vector_schema


@dataclass(frozen=True)
class _State:
    sql: str
    many_sql: str  # the pairs of many users at once: (batch position, item id, weight)
    items_sql: str  # the vectors of given items ($1 text[]): a list folded in as a history
    consts: str
    newest: float
    alpha: float
    gram: npt.NDArray[np.float64]  # Y'Y + reg I of the version's item vectors
    dims: int


# per backend: a version's state never changes once written, so it is read once
_CACHE: dict[tuple[int, int], _State] = {}


def history_sql(db: Db, model: Model, options: dict[str, Any], items_table: str) -> tuple[str, str]:
    """The query of a user's history rows (w, embedding): pairs weighted as training weighed
    them ($1 the returned constants as jsonb, $2 the newest epoch, $3 the user id), joined to
    the version's item vectors; the managed flavour's plpgsql fold-in runs it too."""
    user, item = db.ident(model.columns["user"]), db.ident(model.columns["item"])
    weight = interactions.weight_sql(db, model, options)
    sql = (
        f"SELECT h.w, i.embedding FROM (SELECT {item}::text AS item, sum({weight}) AS w"
        f" FROM {model.interactions} WHERE {user} = $3::{model.columns['user_type']}"
        f" AND {interactions.where_sql(db, model, options)} GROUP BY 1) h"
        f" JOIN {db.ident('pyrec', items_table)} i ON i.item_id = h.item WHERE h.w > 0"
    )
    consts = dict(options.get("event_weights") or {})
    consts["__types"] = list(options.get("event_types") or [])
    return sql, json.dumps(consts)


def _state(db: Db, model_id: int, version: int) -> _State | None:
    row = db.one(
        "SELECT m.name, v.items_table, v.dims, v.fold, v.fold_state::text AS fold_state"
        " FROM pyrec._versions v JOIN pyrec.models m USING (model_id)"
        " WHERE v.model_id = $1 AND v.version = $2",
        [model_id, version],
        ["int4", "int4"],
    )
    if row is None or row["fold"] != "least_squares":
        return None
    state = json.loads(row["fold_state"])
    model = get_model(db, row["name"])
    options: dict[str, Any] = state.get("options") or {}
    history, consts = history_sql(db, model, options, row["items_table"])
    sql = (
        f"SELECT string_agg(float8send(h.w) || {vector_schema(db)}.vector_send(h.embedding),"
        f" ''::bytea) FROM ({history}) h"
    )
    user, item = db.ident(model.columns["user"]), db.ident(model.columns["item"])
    weight = interactions.weight_sql(db, model, options)
    many_sql = (
        f"SELECT string_agg(int4send((b.n - 1)::int4) || int4send(length(h.item))"
        f" || convert_to(h.item, 'UTF8') || float8send(h.w), ''::bytea)"
        f" FROM (SELECT {user}::text AS u, {item}::text AS item, sum({weight}) AS w"
        f" FROM {model.interactions} WHERE {interactions.where_sql(db, model, options)}"
        f" AND {user}::text = ANY ($3) GROUP BY 1, 2) h"
        f" JOIN unnest($3::text[]) WITH ORDINALITY b(id, n) ON b.id = h.u WHERE h.w > 0"
    )
    items_sql = (
        f"SELECT string_agg({vector_schema(db)}.vector_send(i.embedding), ''::bytea)"
        f" FROM {db.ident('pyrec', row['items_table'])} i WHERE i.item_id = ANY ($1)"
    )
    return _State(
        sql=sql,
        many_sql=many_sql,
        items_sql=items_sql,
        consts=consts,
        newest=float(state.get("newest") or 0.0),
        alpha=float(state["alpha"]),
        gram=np.asarray(state["gram"], dtype=np.float64),
        dims=int(row["dims"]),
    )


def _cached(db: Db, model_id: int, version: int) -> _State | None:
    key = (model_id, version)
    state = _CACHE.get(key)
    if state is None:
        state = _state(db, model_id, version)
        if state is None:
            return None
        if len(_CACHE) >= 64:  # old versions of long sessions
            _CACHE.clear()
        _CACHE[key] = state
    return state


def fold_in_many(
    db: Db,
    model_id: int,
    version: int,
    user_ids: list[str],
    codes: dict[str, int],
    items: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """fold_in for many users at once (batch jobs): one read, then a solve per user.

    Rows of users with no weighted history among `items` (ids -> rows in `codes`) are zero.
    """
    out = np.zeros((len(user_ids), items.shape[1]), dtype=np.float32)
    state = _cached(db, model_id, version)
    if state is None or not user_ids:
        return out
    packed = bytes(
        db.scalar(
            state.many_sql, [state.consts, state.newest, user_ids], ["jsonb", "float8", "text[]"]
        )
        or b""
    )
    history: dict[int, list[tuple[int, float]]] = {}
    at = 0
    while at < len(packed):  # pos int4, id length int4, id bytes, weight float8
        pos, size = np.frombuffer(packed, ">i4", 2, at)
        item = packed[at + 8 : at + 8 + size].decode()
        (w,) = np.frombuffer(packed, ">f8", 1, at + 8 + size)
        at += 16 + size
        code = codes.get(item)
        if code is not None:
            history.setdefault(int(pos), []).append((code, float(w)))
    y_all = items.astype(np.float64)
    for pos, pairs in history.items():
        rows = np.asarray([c for c, _ in pairs])
        w = np.asarray([w for _, w in pairs])
        out[pos] = Als.recalculate_user(state.gram, y_all[rows], w, state.alpha)
    return out


def fold_in(db: Db, model_id: int, version: int, user_id: str) -> str | None:
    """The user's vector as pgvector text, or None when the live history has no known item."""
    state = _cached(db, model_id, version)
    if state is None:
        return None
    packed = db.scalar(
        state.sql, [state.consts, state.newest, user_id], ["jsonb", "float8", "text"]
    )
    if not packed:
        return None
    dtype = vector_dtype(state.dims, [("w", ">f8")])
    rows = np.frombuffer(bytes(packed), dtype=dtype)
    x = Als.recalculate_user(
        state.gram, rows["v"].astype(np.float64), rows["w"].astype(np.float64), state.alpha
    )
    return vector_literals(x.astype(np.float32)[None, :])[0]


def fold_in_items(db: Db, model_id: int, version: int, items: list[str]) -> str | None:
    """A vector for a list of items (a cart, an anonymous session) as pgvector text: the list
    folded in as a history of one event each; None when the version knows none of them."""
    state = _cached(db, model_id, version)
    if state is None or not items:
        return None
    packed = db.scalar(state.items_sql, [items], ["text[]"])
    if not packed:
        return None
    y = np.frombuffer(bytes(packed), dtype=vector_dtype(state.dims))["v"].astype(np.float64)
    x = Als.recalculate_user(state.gram, y, np.ones(len(y)), state.alpha)
    return vector_literals(x.astype(np.float32)[None, :])[0]
