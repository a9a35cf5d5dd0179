"""Cold start: vectors for items (and users) without interactions, learned from attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .errors import InvalidParameter, NotReady
from .models import NUMERIC_TYPES, TEXT_TYPES, Model, resolve_relation
from .runtime import Db

MAX_VALUES = 200  # values kept per text column (the most frequent)
BINS = 8  # quantile bins per numeric column
RIDGE = 1.0  # regularization of the attributes -> vector regression


@dataclass(frozen=True)
class Spec:
    """Which item columns become features, and how: serialized into the version."""

    columns: list[dict[str, Any]]  # {"name", "kind": category|multi|bins, "values"|"edges"}

    def names(self) -> list[str]:
        out = ["(bias)"]
        for c in self.columns:
            if c["kind"] == "bins":
                out += [f"{c['name']}#{b}" for b in range(len(c["edges"]) + 1)]
            else:
                out += [f"{c['name']}={v}" for v in c["values"]]
        return out

    def matrix(self, rows: list[dict[str, Any]]) -> sp.csr_matrix:
        """(items x features) 0/1 matrix; a bias column, then each column's features."""
        offsets, n = [], 1
        for c in self.columns:
            offsets.append(n)
            n += len(c["edges"]) + 1 if c["kind"] == "bins" else len(c["values"])
        index = [
            {v: i for i, v in enumerate(c["values"])} if c["kind"] != "bins" else {}
            for c in self.columns
        ]
        r, col = [], []
        for i, row in enumerate(rows):
            r.append(i)
            col.append(0)
            for c, off, idx in zip(self.columns, offsets, index, strict=True):
                value = row.get(c["name"])
                if value is None:
                    continue
                if c["kind"] == "bins":
                    r.append(i)
                    col.append(off + int(np.searchsorted(c["edges"], float(value), "right")))
                    continue
                for v in value if c["kind"] == "multi" else [value]:
                    hit = idx.get(str(v))
                    if hit is not None:
                        r.append(i)
                        col.append(off + hit)
        data = np.ones(len(r), dtype=np.float64)
        m = sp.csr_matrix((data, (r, col)), shape=(len(rows), n))
        m.data[:] = 1.0  # a value listed twice counts once
        return m


def _spec(key: str, rows: list[dict[str, Any]], types: dict[str, str]) -> Spec:
    cols: list[dict[str, Any]] = []
    for name, typ in types.items():
        if name == key:
            continue
        values = [row[name] for row in rows if row.get(name) is not None]
        if not values:
            continue
        if typ in NUMERIC_TYPES:
            edges = np.unique(
                np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, BINS + 1)[1:-1])
            )
            cols.append({"name": name, "kind": "bins", "edges": edges.tolist()})
        elif typ in TEXT_TYPES or typ == "boolean":
            counts: dict[str, int] = {}
            for v in values:
                counts[str(v)] = counts.get(str(v), 0) + 1
            # identifiers and free text (titles) describe one item each: not a shared trait
            if len(counts) > max(50, len(values) // 5):
                continue
            kept = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_VALUES]
            cols.append({"name": name, "kind": "category", "values": kept})
        elif typ.endswith("[]") and typ[:-2] in TEXT_TYPES:
            counts = {}
            for vs in values:
                for v in vs:
                    counts[str(v)] = counts.get(str(v), 0) + 1
            kept = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_VALUES]
            cols.append({"name": name, "kind": "multi", "values": kept})
    return Spec(cols)


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


@dataclass(frozen=True)
class Cold:
    ids: list[str]
    vectors: npt.NDArray[np.float32]
    state: dict[str, Any]  # the spec and the regression weights, for items added later


def learn(
    db: Db,
    model: Model,
    role: str,
    trained_ids: npt.NDArray[np.str_],
    vectors: npt.NDArray[np.float32],
) -> Cold | None:
    """Fit attributes -> vector on the trained items or users (ridge); vector the others."""
    if relation(model, role) is None:
        return None
    ids, rows, types = read_rows(db, model, role)
    if not ids:
        return None
    spec = _spec(model.columns[f"{role}s_id"], rows, types)
    f = spec.matrix(rows)
    code = {s: i for i, s in enumerate(trained_ids.tolist())}
    trained = np.asarray([code.get(i, -1) for i in ids])
    have = trained >= 0
    if have.sum() < 2 or not spec.columns:
        return None
    ft = f[have]
    y = vectors[trained[have]].astype(np.float64)
    gram = (ft.T @ ft).toarray() + RIDGE * np.eye(f.shape[1])
    gram[0, 0] -= RIDGE  # the bias (mean vector) is not shrunk
    weights = np.linalg.solve(gram, np.asarray(ft.T @ y))
    cold = np.flatnonzero(~have)
    state = {"spec": spec.columns, "weights": weights.tolist()}
    out = np.asarray(f[cold] @ weights, dtype=np.float32)
    return Cold(ids=[ids[i] for i in cold], vectors=out, state=state)


def vectors_for(state: dict[str, Any], rows: list[dict[str, Any]]) -> npt.NDArray[np.float32]:
    spec = Spec(state["spec"])
    weights = np.asarray(state["weights"], dtype=np.float64)
    return np.asarray(spec.matrix(rows) @ weights, dtype=np.float32)


def refresh(db: Db, name: str | None) -> dict[str, Any]:
    """Vector the items added to the items relation since training into the active version."""
    from .models import get_model
    from .versions import insert_rows, vector_type

    model = get_model(db, name)
    if model.items is None:
        raise InvalidParameter(
            f'model "{model.name}" has no items relation',
            hint="cold items need item attributes: create the model with items => ...",
        )
    # the model row lock orders this against trainings writing a version
    db.run("SELECT 1 FROM pyrec.models WHERE model_id = $1 FOR UPDATE", [model.model_id], ["int4"])
    row = db.one(
        "SELECT version, items_table, dims, item_features::text AS state FROM pyrec._versions"
        " WHERE model_id = $1 AND version = (SELECT active_version FROM pyrec.models"
        " WHERE model_id = $1)",
        [model.model_id],
        ["int4"],
    )
    if row is None:
        raise NotReady(
            f'model "{model.name}" has no trained version',
            hint=f"train it first: CALL pyrec.train('{model.name}')",
        )
    state = json.loads(row["state"]) if row["state"] else {}
    if not state:
        return {"model": model.name, "version": row["version"], "added": 0}
    table = db.ident("pyrec", row["items_table"])
    key = db.ident(model.columns["items_id"])
    ids, rows, _ = read_rows(
        db, model, "item", f"NOT EXISTS (SELECT 1 FROM {table} t WHERE t.item_id = r.{key}::text)"
    )
    if ids:
        vecs = vectors_for(state, rows)
        vtype = vector_type(db, int(row["dims"]))
        zeros = np.zeros(len(ids), dtype=np.float32)
        insert_rows(
            db,
            table,
            "item_id",
            np.asarray(ids, dtype=str),
            [("embedding", vtype, vecs), ("popularity", "real", zeros)],
        )
    return {"model": model.name, "version": row["version"], "added": len(ids)}


def user_vector(db: Db, model_id: int, version: int, user_id: str) -> str | None:
    """A vector for a user with attributes but no history, as pgvector text (None: no row)."""
    from .models import get_model
    from .versions import vector_literals

    row = db.one(
        "SELECT m.name, v.user_features::text AS state FROM pyrec._versions v"
        " JOIN pyrec.models m USING (model_id) WHERE v.model_id = $1 AND v.version = $2",
        [model_id, version],
        ["int4", "int4"],
    )
    if row is None or not row["state"] or row["state"] == "{}":
        return None
    model = get_model(db, row["name"])
    key = db.ident(model.columns["users_id"])
    try:
        _, rows, _ = read_rows(db, model, "user", f"r.{key}::text = $1", [user_id])
    except Exception as e:  # the users relation changed since training: no attributes
        if getattr(e, "sqlstate", None) is None:
            raise
        return None
    if not rows:
        return None
    return vector_literals(vectors_for(json.loads(row["state"]), rows[:1]))[0]
