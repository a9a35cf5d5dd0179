"""Vector tables: writing a version's item and user vectors, reading them back, sharing them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.catalog.models import Model
from pyrec_pg.catalog.versions import Trained, activate, prune
from pyrec_pg.db import Db, settings
from pyrec_pg.ml.attributes import Cold
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.store.calibrate import calibrate
from pyrec_pg.store.codec import (
    copy_rows,
    vector_dtype,
    vector_literals,
    vector_schema,
    vector_type,
)

_ROWS_PER_INSERT = 5_000  # formatting a chunk takes ~8 KB per 64-dim row: 40 MB at a time


def read_vectors(
    db: Db, table: str, key: str, ids: Sequence[str], dims: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Vectors of `ids` from pyrec.<table> in the order given, shipped in binary; ids the
    table lacks get zeros and False in the mask."""
    out = np.zeros((len(ids), dims), dtype=np.float32)
    known = np.zeros(len(ids), dtype=bool)
    send = f"{vector_schema(db)}.vector_send(t.embedding)"
    packed = db.scalar(
        f"SELECT string_agg(int4send((b.n - 1)::int4) || {send}, ''::bytea)"
        f" FROM unnest($1::text[]) WITH ORDINALITY b(id, n)"
        f" JOIN {db.ident('pyrec', table)} t ON t.{db.ident(key)} = b.id",
        [list(ids)],
        ["text[]"],
    )
    if packed:
        rows = np.frombuffer(bytes(packed), dtype=vector_dtype(dims, [("pos", ">i4")]))
        pos = rows["pos"].astype(np.int64)
        out[pos] = rows["v"]
        known[pos] = True
    return out, known


def share(db: Db, *tables: str, readers: bool = True) -> None:
    """Tables pyrec writes belong to pyrec_admin (any admin may replace or drop them, not
    only the one who trained) and, with `readers`, are readable by pyrec_reader."""
    if db.scalar(
        "SELECT to_regrole('pyrec_admin') IS NOT NULL AND to_regrole('pyrec_reader') IS NOT NULL"
    ):
        for t in tables:
            if readers:
                db.run(f"GRANT SELECT ON {t} TO pyrec_reader")
            db.run(f"ALTER TABLE {t} OWNER TO pyrec_admin")


def insert_rows(
    db: Db,
    table: str,
    key: str,
    ids: npt.NDArray[np.str_],
    columns: list[tuple[str, str, npt.NDArray[Any]]],
) -> None:
    """Insert rows in chunks; `columns` are (name, type, values) with type a vector type,
    real or int4. Vectors are formatted per chunk as it is sent, so the text of all of them
    never sits in memory at once. Outside the server (the stub's plpy can COPY), the rows go
    in binary COPY blocks instead: no text for the server to parse."""
    copy = getattr(db.plpy, "copy_binary", None)
    if copy is not None:
        targets = [db.ident(key)] + [db.ident(c[0]) for c in columns]
        copy(table, targets, copy_rows(ids, [(t, v) for _, t, v in columns]))
        return
    names = ", ".join([key] + [c[0] for c in columns])
    casts = ", ".join(["k"] + [f"c{n}::{t}" for n, (_, t, _) in enumerate(columns)])
    sources = ", ".join(
        ["$1::text[]"]
        + [
            f"${n + 2}::{'text' if t not in ('real', 'int4') else t}[]"
            for n, (_, t, _) in enumerate(columns)
        ]
    )
    aliases = ", ".join(["k"] + [f"c{n}" for n in range(len(columns))])
    sql = f"INSERT INTO {table} ({names}) SELECT {casts} FROM unnest({sources}) AS t({aliases})"
    types = ["text[]"] + [f"{'text' if t not in ('real', 'int4') else t}[]" for _, t, _ in columns]
    for lo in range(0, ids.size, _ROWS_PER_INSERT):
        hi = lo + _ROWS_PER_INSERT
        args: list[Any] = [ids[lo:hi].tolist()]
        for _, t, values in columns:
            chunk = values[lo:hi]
            args.append(chunk.tolist() if t in ("real", "int4") else vector_literals(chunk))
        db.run(sql, args, types)


def write_version(
    db: Db,
    model: Model,
    data: Interactions,
    factors: Factors,
    popularity: npt.NDArray[np.float32],
    info: Trained,
    cold: Cold | None = None,
) -> int:
    """Create the next version's tables, fill them, record and activate the version.

    The caller commits; until then no other session sees any of it.
    """
    # the row lock serializes concurrent writers of one model's versions
    db.run("SELECT 1 FROM pyrec.models WHERE model_id = $1 FOR UPDATE", [model.model_id], ["int4"])
    version = int(
        db.scalar(
            "SELECT coalesce(max(version), 0) + 1 FROM pyrec._versions WHERE model_id = $1",
            [model.model_id],
            ["int4"],
        )
    )
    dims = int(factors.items.shape[1])
    items_table = f"m{model.model_id}_v{version}_items"
    users_table = f"m{model.model_id}_v{version}_users"
    qi, qu = db.ident("pyrec", items_table), db.ident("pyrec", users_table)
    vtype = vector_type(db, dims)
    # history: what a user's vector sums per item for item-item recipes (fold-in, similar
    # items); n_items: the user's distinct items at training, to notice new history
    # keys added once the rows are in: one sorted build instead of an insert per row
    db.run(
        f"CREATE TABLE {qi} (item_id text NOT NULL, embedding {vtype} NOT NULL,"
        f" popularity real NOT NULL, history {vtype})"
    )
    db.run(
        f"CREATE TABLE {qu} (user_id text NOT NULL, embedding {vtype} NOT NULL,"
        f" n_items integer NOT NULL)"
    )
    item_cols = [("embedding", vtype, factors.items), ("popularity", "real", popularity)]
    if factors.history is not None:
        item_cols.append(("history", vtype, factors.history))
    insert_rows(db, qi, "item_id", data.items, item_cols)
    if cold is not None and cold.ids:  # items with attributes but no interactions yet
        zeros = np.zeros(len(cold.ids), dtype=np.float32)
        cold_cols = [("embedding", vtype, cold.vectors), ("popularity", "real", zeros)]
        insert_rows(db, qi, "item_id", np.asarray(cold.ids, dtype=str), cold_cols)
    n_items = (
        data.distinct_items
        if data.distinct_items is not None
        else np.diff(data.matrix.indptr).astype(np.int32)
    )
    insert_rows(
        db,
        qu,
        "user_id",
        data.users,
        [("embedding", vtype, factors.users), ("n_items", "int4", n_items)],
    )
    db.run(f"ALTER TABLE {qi} ADD PRIMARY KEY (item_id)")
    db.run(f"ALTER TABLE {qu} ADD PRIMARY KEY (user_id)")
    ann = ann_wanted(db, int(data.items.size), factors.fold)
    if ann:  # large catalogs: an HNSW index serves recommend() without a full scan
        db.run(f"CREATE INDEX ON {qi} USING hnsw (embedding {vector_schema(db)}.vector_ip_ops)")
        if factors.history is None:
            # similar_items ranks a factor model's items by cosine: the inner-product index
            # cannot order by it, nor gather candidates to re-rank (item norms grow with
            # popularity: recall@10 0.2 from 1000 of them at 100k items). similar_items
            # finds this index by its name; item-item recipes rank by history rows instead
            cosine = db.ident(f"{items_table}_cosine")
            db.run(
                f"CREATE INDEX {cosine} ON {qi}"
                f" USING hnsw (embedding {vector_schema(db)}.vector_cosine_ops)"
            )
    db.run(f"ANALYZE {qi}")
    db.run(f"ANALYZE {qu}")
    tuned = None
    if ann:  # the index's ef_search for trained users, measured on a sample of them
        ids, vectors = data.items, factors.items
        if cold is not None and cold.ids:
            ids = np.concatenate([ids, np.asarray(cold.ids, dtype=str)])
            vectors = np.vstack([vectors, cold.vectors])
        tuned = calibrate(db, qi, ids, vectors, factors.users, data.matrix, vtype)
    share(db, qi, qu)
    row: list[tuple[str, Any, str]] = [  # column, value, type
        ("model_id", model.model_id, "int4"),
        ("version", version, "int4"),
        ("recipe", info.recipe, "text"),
        ("params", json.dumps(info.params), "jsonb"),
        ("metrics", json.dumps(info.metrics), "jsonb"),
        ("dims", dims, "int4"),
        ("n_users", int(data.users.size), "int4"),
        ("n_items", int(data.items.size), "int4"),
        ("n_interactions", data.n_pairs, "int8"),
        ("items_table", items_table, "text"),
        ("users_table", users_table, "text"),
        ("training_seconds", info.training_seconds, "float8"),
        ("mode", info.mode, "text"),
        ("base_version", info.base_version, "int4"),
        ("fold", factors.fold, "text"),
        ("fold_state", json.dumps(info.fold_state or factors.fold_state), "jsonb"),
        ("ann", ann, "bool"),
        ("item_features", json.dumps(cold.state if cold is not None else {}), "jsonb"),
        ("n_cold_items", len(cold.ids) if cold is not None else 0, "int4"),
        ("user_features", json.dumps(info.user_features), "jsonb"),
    ]
    # SQL older than 0.3.0 has no column for it (the server's Python is upgraded first)
    if tuned is not None and db.scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid ="
        " 'pyrec._versions'::regclass AND attname = 'ef_search' AND NOT attisdropped)"
    ):
        row += [("ef_search", tuned.ef_search, "int4"), ("ann_recall", tuned.recall, "float4")]
    names = ", ".join(c for c, _, _ in row)
    places = ", ".join(f"${n}" for n in range(1, len(row) + 1))
    db.run(
        f"INSERT INTO pyrec._versions ({names}) VALUES ({places})",
        [v for _, v, _ in row],
        [t for _, _, t in row],
    )
    activate(db, model, version)
    prune(db, model.model_id)
    return version


def ann_wanted(db: Db, n_items: int, fold: str) -> bool:
    """Whether to index the item vectors (setting pyrec.ann_min_items; -1 never)."""
    if fold == "none":  # popularity recipes: one dimension, nothing to search
        return False
    least: int = settings.get(db, "pyrec.ann_min_items")
    return 0 <= least <= n_items
