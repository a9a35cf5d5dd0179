"""Cold start: vectors for items (and users) without interactions, from their attributes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.catalog.models import Model, get_model
from pyrec_pg.catalog.versions import active_version
from pyrec_pg.db import Db
from pyrec_pg.errors import InvalidParameter
from pyrec_pg.jobs.text import embed_for
from pyrec_pg.ml import text
from pyrec_pg.ml.attributes import Cold, fit, vectors_for
from pyrec_pg.store.attributes import read_rows, relation
from pyrec_pg.store.codec import vector_literals, vector_type
from pyrec_pg.store.vectors import insert_rows


def learn(
    db: Db,
    model: Model,
    role: str,
    trained_ids: npt.NDArray[np.str_],
    vectors: npt.NDArray[np.float32],
    texts: text.TextOptions | None = None,
) -> Cold | None:
    """The attribute model of the items (role "item") or users, fitted on the trained ones;
    with `texts`, the items' text embeddings are features beside their attributes."""
    if relation(model, role) is None:
        return None
    ids, rows, types = read_rows(db, model, role)
    if not ids:
        return None
    embedded, state = None, None
    if texts is not None:
        ids, rows = _text_rows(ids, rows, trained_ids)
        embedded, state = embed_for(db, model, ids, texts)
    return fit(
        model.columns[f"{role}s_id"], ids, rows, types, trained_ids, vectors, embedded, state
    )


# trained items whose texts the regression is fitted on, at most: a few hundred text features
# need far fewer rows, and each row costs an encoding (about 1 ms) and 4 KB while fitting
TEXT_FIT_ROWS = 20_000


def _text_rows(
    ids: list[str], rows: list[dict[str, Any]], trained_ids: npt.NDArray[np.str_]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every untrained row (each needs its vector) and a seeded sample of at most
    TEXT_FIT_ROWS trained ones, in their order."""
    trained = set(trained_ids.tolist())
    fitted = [n for n, i in enumerate(ids) if i in trained]
    if len(fitted) <= TEXT_FIT_ROWS:
        return ids, rows
    keep = set(np.random.default_rng(0).choice(fitted, TEXT_FIT_ROWS, replace=False).tolist())
    chosen = [n for n, i in enumerate(ids) if i not in trained or n in keep]
    return [ids[n] for n in chosen], [rows[n] for n in chosen]


def refresh(db: Db, name: str | None) -> dict[str, Any]:
    """Vector the items added to the items relation since training into the active version."""
    model = get_model(db, name)
    if model.items is None:
        raise InvalidParameter(
            f'model "{model.name}" has no items relation',
            hint="cold items need item attributes: create the model with items => ...",
        )
    # the model row lock orders this against trainings writing a version
    db.run("SELECT 1 FROM pyrec.models WHERE model_id = $1 FOR UPDATE", [model.model_id], ["int4"])
    version = active_version(db, model)
    features = db.scalar(
        "SELECT item_features::text FROM pyrec._versions WHERE model_id = $1 AND version = $2",
        [model.model_id, version.version],
        ["int4", "int4"],
    )
    state = json.loads(features) if features else {}
    if not state:
        return {"model": model.name, "version": version.version, "added": 0}
    table = db.ident("pyrec", version.items_table)
    key = db.ident(model.columns["items_id"])
    missing = f"NOT EXISTS (SELECT 1 FROM {table} t WHERE t.item_id = r.{key}::text)"
    ids, rows, _ = read_rows(db, model, "item", missing)
    if ids:
        embedded = None
        if "text" in state:  # fitted with text (or recipe semantic): embed the new items alike
            options = text.TextOptions(tuple(state["text"]["columns"]), state["text"]["model"])
            mean = state["text"].get("mean")  # semantic versions center on their mean
            embedded, _ = embed_for(
                db,
                model,
                ids,
                options,
                missing,
                np.asarray(mean, dtype=np.float32) if mean is not None else None,
            )
        vecs = vectors_for(state, rows, embedded)
        vtype = vector_type(db, version.dims)
        zeros = np.zeros(len(ids), dtype=np.float32)
        columns = [("embedding", vtype, vecs), ("popularity", "real", zeros)]
        if "spec" not in state:  # semantic: an item's history row is its embedding too
            columns.append(("history", vtype, vecs))
        insert_rows(db, table, "item_id", np.asarray(ids, dtype=str), columns)
    return {"model": model.name, "version": version.version, "added": len(ids)}


def user_vector(db: Db, model_id: int, version: int, user_id: str) -> str | None:
    """A vector for a user with attributes but no history, as pgvector text (None: no row)."""
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
    except db.Error:  # the users relation changed since training: no attributes
        return None
    if not rows:
        return None
    return vector_literals(vectors_for(json.loads(row["state"]), rows[:1]))[0]
