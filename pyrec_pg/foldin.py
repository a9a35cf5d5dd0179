"""Fold-in: an ALS user vector solved from the user's live history, without retraining."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import interactions
from .models import get_model
from .runtime import Db
from .versions import vector_dtype, vector_literals, vector_schema


@dataclass(frozen=True)
class _State:
    sql: str
    consts: str
    newest: float
    alpha: float
    gram: npt.NDArray[np.float64]  # Y'Y + reg I of the version's item vectors
    dims: int


# per backend: a version's state never changes once written, so it is read once
_CACHE: dict[tuple[int, int], _State] = {}


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
    user, item = db.ident(model.columns["user"]), db.ident(model.columns["item"])
    weight = interactions.weight_sql(db, model, options)
    # the user's pairs weighted as training weighed them, joined to the version's vectors
    sql = (
        f"SELECT string_agg(float8send(h.w) || {vector_schema(db)}.vector_send(i.embedding),"
        f" ''::bytea) FROM (SELECT {item}::text AS item, sum({weight}) AS w"
        f" FROM {model.interactions} WHERE {user} = $3::{model.columns['user_type']}"
        f" AND {interactions.where_sql(db, model, options)} GROUP BY 1) h"
        f" JOIN {db.ident('pyrec', row['items_table'])} i ON i.item_id = h.item WHERE h.w > 0"
    )
    consts = dict(options.get("event_weights") or {})
    consts["__types"] = list(options.get("event_types") or [])
    return _State(
        sql=sql,
        consts=json.dumps(consts),
        newest=float(state.get("newest") or 0.0),
        alpha=float(state["alpha"]),
        gram=np.asarray(state["gram"], dtype=np.float64),
        dims=int(row["dims"]),
    )


def solve(
    gram: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    alpha: float,
) -> npt.NDArray[np.float64]:
    """argmin_x sum_i c_i (1 - x.y_i)^2 + sum_others (x.y_j)^2 + reg |x|^2, c = 1 + alpha w:
    (Y'Y + reg I + Y_u' (C - I) Y_u) x = Y_u' c."""
    c = 1.0 + alpha * w
    a = gram + (y.T * (c - 1.0)) @ y
    return np.asarray(np.linalg.solve(a, y.T @ c), dtype=np.float64)


def fold_in(db: Db, model_id: int, version: int, user_id: str) -> str | None:
    """The user's vector as pgvector text, or None when the live history has no known item."""
    key = (model_id, version)
    state = _CACHE.get(key)
    if state is None:
        state = _state(db, model_id, version)
        if state is None:
            return None
        if len(_CACHE) >= 64:  # old versions of long sessions
            _CACHE.clear()
        _CACHE[key] = state
    packed = db.scalar(
        state.sql, [state.consts, state.newest, user_id], ["jsonb", "float8", "text"]
    )
    if not packed:
        return None
    dtype = vector_dtype(state.dims, [("w", ">f8")])
    rows = np.frombuffer(bytes(packed), dtype=dtype)
    x = solve(state.gram, rows["v"].astype(np.float64), rows["w"].astype(np.float64), state.alpha)
    return vector_literals(x.astype(np.float32)[None, :])[0]
