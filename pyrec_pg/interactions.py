"""Reading a model's interactions from the user's own table into a sparse user-item matrix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .errors import InsufficientData
from .models import Model
from .runtime import Db


@dataclass(frozen=True)
class Interactions:
    users: npt.NDArray[np.str_]  # row index -> user id as text
    items: npt.NDArray[np.str_]  # column index -> item id as text
    matrix: sp.csr_matrix  # (users x items) summed event weights
    rows_read: int


def weight_sql(db: Db, model: Model) -> str:
    """SQL for one interaction's weight; event weights come from a bound jsonb parameter $1."""
    et = model.columns.get("event_type")
    if not model.options.get("event_weights") or et is None:
        return "1.0::float8"
    return f"coalesce(($1::jsonb ->> {db.ident(et)}::text)::float8, 1.0)"


def load(db: Db, model: Model) -> Interactions:
    cols = model.columns
    user, item = db.ident(cols["user"]), db.ident(cols["item"])
    weight = weight_sql(db, model)
    sql = (
        f"SELECT array_agg(u) AS u, array_agg(i) AS i, array_agg(w) AS w, sum(n)::int8 AS n"
        f" FROM (SELECT {user}::text AS u, {item}::text AS i, sum({weight}) AS w, count(*) AS n"
        f" FROM {model.interactions} WHERE {user} IS NOT NULL AND {item} IS NOT NULL"
        f" GROUP BY 1, 2) s WHERE w > 0"
    )
    weights = json.dumps(model.options.get("event_weights") or {})
    row = db.one(sql, [weights], ["jsonb"]) if "$1" in weight else db.one(sql)
    if row is None or not row["u"]:
        raise InsufficientData(
            f"{model.interactions} has no usable interactions",
            hint="training needs rows with a non-NULL user and item (and a positive event weight)",
        )
    return build(row["u"], row["i"], row["w"], int(row["n"]))


def build(users: list[Any], items: list[Any], weights: list[float], rows_read: int) -> Interactions:
    """Index distinct ids (sorted, so indices are reproducible) and assemble the CSR matrix."""
    user_ids, u = np.unique(np.asarray(users, dtype=str), return_inverse=True)
    item_ids, i = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    w = np.asarray(weights, dtype=np.float64)
    matrix = sp.csr_matrix((w, (u, i)), shape=(user_ids.size, item_ids.size))
    matrix.sum_duplicates()
    return Interactions(users=user_ids, items=item_ids, matrix=matrix, rows_read=rows_read)
