"""Item texts for training: read, embedded, and reused from the previous version where unchanged."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db
from pyrec_pg.ml import text
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.semantic import Semantic
from pyrec_pg.store.attributes import read_texts
from pyrec_pg.store.vectors import read_vectors

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Embedded:
    """A semantic training's inputs: the recipe bound to its embeddings, the interactions
    widened to every item with a row in the items relation, and what the version keeps."""

    recipe: Semantic
    data: Interactions
    state: dict[str, Any]  # item_features: model, columns, text hash per item, centering mean
    stats: dict[str, Any]  # items, embedded (encoder runs), reused, seconds


def widen(data: Interactions, extra: list[str]) -> Interactions:
    """`data` with the items `extra` appended as columns no one has interacted with."""
    if not extra:
        return data
    n_users, n_items = data.matrix.shape
    shape = (n_users, n_items + len(extra))

    def grow(m: sp.csr_matrix) -> sp.csr_matrix:  # empty columns on the right: same arrays
        return sp.csr_matrix((m.data, m.indices, m.indptr), shape=shape)

    return replace(
        data,
        items=np.concatenate([data.items, np.asarray(extra, dtype=str)]),
        matrix=grow(data.matrix),
        times=grow(data.times) if data.times is not None else None,
    )


def _previous(
    db: Db, model: Model, name: str, columns: tuple[str, ...]
) -> tuple[dict[str, Matrix], Matrix | None]:
    """Vectors of the active version by text hash, and the mean they were centered on, when
    it is a semantic version of the same text model and columns: an item whose text hashes
    the same needs no new encoding, and new texts are centered on the same mean to match."""
    if model.active_version is None:
        return {}, None
    row = db.one(
        "SELECT recipe, dims, items_table, item_features::text AS state FROM pyrec._versions"
        " WHERE model_id = $1 AND version = $2",
        [model.model_id, model.active_version],
        ["int4", "int4"],
    )
    if row is None or row["recipe"] != Semantic.name or not row["state"]:
        return {}, None
    old = json.loads(row["state"]).get("text", {})
    hashes: dict[str, str] = old.get("hashes", {})
    dims = text.MODELS[name].dims
    same = old.get("model") == name and old.get("columns") == list(columns)
    if not same or not hashes or "mean" not in old or int(row["dims"]) != dims:
        return {}, None
    ids = list(hashes)
    vectors, known = read_vectors(db, row["items_table"], "item_id", ids, dims)
    by_hash = {hashes[i]: vectors[n] for n, i in enumerate(ids) if known[n]}
    return by_hash, np.asarray(old["mean"], dtype=np.float32)


def embed_items(db: Db, source: Db, model: Model, recipe: Semantic, data: Interactions) -> Embedded:
    """Read the items' texts on `source`, embed those whose text changed since the active
    version (read on `db`), and bind the recipe to vectors aligned with the widened data."""
    started = time.perf_counter()
    ids, texts, columns = read_texts(source, model, recipe.columns)
    encoder = text.load(recipe.model)
    hashes = [text.text_hash(recipe.model, t) for t in texts]
    known, mean = _previous(db, model, recipe.model, columns)
    if mean is None:  # a first version: centered on this catalog's mean, kept from now on
        raw, encoded = text.embed(encoder, texts)
        mean = text.mean_of(raw)
        vectors = text.center(raw, mean)
    else:
        vectors, encoded = text.embed(encoder, texts, known, hashes, mean)
    position = {i: n for n, i in enumerate(ids)}
    trained = set(data.items.tolist())
    wide = widen(data, [i for i in ids if i not in trained])
    bound = np.zeros((wide.items.size, encoder.dims), dtype=np.float32)
    for n, i in enumerate(wide.items.tolist()):  # items without a text row keep zeros
        at = position.get(i)
        if at is not None:
            bound[n] = vectors[at]
    with_text = sum(1 for t in texts if t)
    state = {
        "text": {
            "model": recipe.model,
            "columns": list(columns),
            "hashes": {i: h for i, h, t in zip(ids, hashes, texts, strict=True) if t},
            "mean": mean.tolist(),
        }
    }
    stats = {
        "items": with_text,
        "embedded": encoded,
        "reused": with_text - encoded,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Embedded(recipe.bound(columns, bound), wide, state, stats)


def embed_for(
    source: Db,
    model: Model,
    ids: list[str],
    options: text.TextOptions,
    where: str = "true",
    mean: Matrix | None = None,
) -> tuple[Matrix, dict[str, Any]]:
    """Embeddings of the items `ids` (rows in that order, zeros where an item has no text
    row among those `where` keeps, or an empty text), centered on `mean` when given, and the
    state that embeds later items the same way."""
    t_ids, texts, columns = read_texts(source, model, options.columns, where)
    by_id = dict(zip(t_ids, texts, strict=True))
    vectors, _ = text.embed(text.load(options.model), [by_id.get(i, "") for i in ids], mean=mean)
    return vectors, {"model": options.model, "columns": list(columns)}
