"""Model versions: writing a version's vector tables and activating it in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .attributes import Cold
from .interactions import Interactions
from .models import Model
from .recipes import Factors
from .runtime import Db

_ROWS_PER_INSERT = 20_000
KEEP_VERSIONS_DEFAULT = 3


_DIGITS3 = np.array([list(b"%03d" % k) for k in range(1000)], dtype=np.uint8)
_EXPONENT = np.array([list(b"e%+03d," % k) for k in range(-99, 100)], dtype=np.uint8)
_POW10 = 10.0 ** np.arange(-99, 100)
_WIDTH = 15  # "+123456789e-05,"
_FEW_ROWS = 32


def vector_literals(m: npt.NDArray[np.float32]) -> list[str]:
    """pgvector's text form, '[x,y,...]', of each row; every float32 round-trips exactly.

    A few rows (fold-in's one vector): %.9g per value. Many rows: numpy writes every value as
    sign, 9 significant digits and an exponent ('+123456789e-10') into one byte buffer, ~3x
    faster than formatting each value in Python (9 digits: any float32 round-trips).
    """
    if m.shape[0] <= _FEW_ROWS:
        template = "[" + ",".join(["%.9g"] * m.shape[1]) + "]"
        return [template % tuple(row) for row in m.tolist()]
    rows, dims = m.shape
    v = m.astype(np.float64).ravel()
    a = np.abs(v)
    nonzero = a > 0
    e = np.zeros(v.size, dtype=np.int64)
    e[nonzero] = np.floor(np.log10(a[nonzero])).astype(np.int64) - 8
    sig = np.rint(a / _POW10[e + 99])
    # log10 can be off by one next to a power of ten: keep exactly 9 digits
    for fix, step in ((sig >= 1e9, 1), (nonzero & (sig < 1e8), -1)):
        e[fix] += step
        sig[fix] = np.rint(a[fix] / _POW10[e[fix] + 99])
    digits = sig.astype(np.int64)
    head = digits // 1_000_000
    tail = (digits - head * 1_000_000).astype(np.int32)
    cells = np.empty((v.size, _WIDTH), dtype=np.uint8)
    cells[:, 0] = np.where(np.signbit(v), ord("-"), ord("+"))
    cells[:, 1:4] = _DIGITS3[head]
    cells[:, 4:7] = _DIGITS3[tail // 1000]
    cells[:, 7:10] = _DIGITS3[tail % 1000]
    cells[:, 10:15] = _EXPONENT[e + 99]
    width = dims * _WIDTH + 1
    lines = np.empty((rows, width), dtype=np.uint8)
    lines[:, 0] = ord("[")
    lines[:, 1:] = cells.reshape(rows, dims * _WIDTH)
    lines[:, -1] = ord("]")  # over the last value's comma
    text = lines.tobytes().decode("ascii")
    return [text[k : k + width] for k in range(0, rows * width, width)]


def vector_schema(db: Db) -> str:
    """pgvector's schema, quoted: training and batches pin no search_path."""
    schema = db.scalar(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    return db.ident(schema)


def vector_type(db: Db, dims: int) -> str:
    return f"{vector_schema(db)}.vector({dims})"


def vector_dtype(dims: int, prefix: Sequence[tuple[str, str]] = ()) -> np.dtype[Any]:
    """pgvector's binary form (vector_send): int16 dims, int16 unused, float4s; big endian."""
    return np.dtype([*prefix, ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", (dims,))])


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
    never sits in memory at once."""
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
    info: dict[str, Any],
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
    db.run(
        f"CREATE TABLE {qi} (item_id text PRIMARY KEY, embedding {vtype} NOT NULL,"
        f" popularity real NOT NULL, history {vtype})"
    )
    db.run(
        f"CREATE TABLE {qu} (user_id text PRIMARY KEY, embedding {vtype} NOT NULL,"
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
    ann = ann_wanted(db, int(data.items.size), factors.fold)
    if ann:  # large catalogs: an HNSW index serves recommend() without a full scan
        db.run(f"CREATE INDEX ON {qi} USING hnsw (embedding {vector_schema(db)}.vector_ip_ops)")
    db.run(f"ANALYZE {qi}")
    db.run(f"ANALYZE {qu}")
    share(db, qi, qu)
    db.run(
        "INSERT INTO pyrec._versions (model_id, version, recipe, params, metrics, dims,"
        " n_users, n_items, n_interactions, items_table, users_table, training_seconds,"
        " mode, base_version, fold, fold_state, ann, item_features, n_cold_items,"
        " user_features) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
        " $15, $16, $17, $18, $19, $20)",
        [
            model.model_id,
            version,
            info["recipe"],
            json.dumps(info["params"]),
            json.dumps(info["metrics"]),
            dims,
            int(data.users.size),
            int(data.items.size),
            int(data.matrix.nnz),
            items_table,
            users_table,
            info["training_seconds"],
            info.get("mode", "full"),
            info.get("base_version"),
            factors.fold,
            json.dumps(info.get("fold_state") or factors.fold_state),
            ann,
            json.dumps(cold.state if cold is not None else {}),
            len(cold.ids) if cold is not None else 0,
            json.dumps(info.get("user_features") or {}),
        ],
        [
            "int4",
            "int4",
            "text",
            "jsonb",
            "jsonb",
            "int4",
            "int4",
            "int4",
            "int8",
            "text",
            "text",
            "float8",
            "text",
            "int4",
            "text",
            "jsonb",
            "bool",
            "jsonb",
            "int4",
            "jsonb",
        ],
    )
    activate(db, model.model_id, version)
    prune(db, model.model_id)
    return version


ANN_MIN_ITEMS_DEFAULT = 20_000


def ann_wanted(db: Db, n_items: int, fold: str) -> bool:
    """Whether to index the item vectors (setting pyrec.ann_min_items; -1 never)."""
    if fold == "none":  # popularity recipes: one dimension, nothing to search
        return False
    setting = db.scalar("SELECT current_setting('pyrec.ann_min_items', true)")
    try:
        least = int(setting) if setting else ANN_MIN_ITEMS_DEFAULT
    except ValueError:
        least = ANN_MIN_ITEMS_DEFAULT
    return 0 <= least <= n_items


def activate(db: Db, model_id: int, version: int) -> None:
    db.run(
        "UPDATE pyrec.models SET active_version = $2 WHERE model_id = $1",
        [model_id, version],
        ["int4", "int4"],
    )
    db.run(
        "UPDATE pyrec._versions SET status = CASE WHEN version = $2 THEN 'active'"
        " ELSE 'inactive' END, activated_at = CASE WHEN version = $2 THEN now()"
        " ELSE activated_at END WHERE model_id = $1",
        [model_id, version],
        ["int4", "int4"],
    )


def prune(db: Db, model_id: int) -> None:
    """Drop the oldest inactive versions beyond the setting pyrec.keep_versions."""
    keep = db.scalar("SELECT current_setting('pyrec.keep_versions', true)")
    try:
        n = max(1, int(keep)) if keep else KEEP_VERSIONS_DEFAULT
    except ValueError:
        n = KEEP_VERSIONS_DEFAULT
    old = db.rows(
        "SELECT version, items_table, users_table FROM pyrec._versions"
        " WHERE model_id = $1 AND status <> 'active' ORDER BY version DESC OFFSET $2",
        [model_id, n - 1],
        ["int4", "int4"],
    )
    for row in old:
        db.run(
            f"DROP TABLE IF EXISTS {db.ident('pyrec', row['items_table'])},"
            f" {db.ident('pyrec', row['users_table'])}"
        )
        db.run(
            "DELETE FROM pyrec._versions WHERE model_id = $1 AND version = $2",
            [model_id, row["version"]],
            ["int4", "int4"],
        )
