"""Batch segments: for many items, the users most likely to interact with each, in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.catalog.models import check_sources, get_model
from pyrec_pg.catalog.runs import Run
from pyrec_pg.catalog.versions import Version, active_version
from pyrec_pg.db import Db
from pyrec_pg.jobs.batch import (
    Output,
    batch_ids,
    check_k,
    filtered_out,
    live_items,
    run_job,
    seen_pairs,
)
from pyrec_pg.ml.topk import top_k
from pyrec_pg.store.codec import vector_dtype, vector_schema
from pyrec_pg.store.vectors import read_vectors

SEGMENTS = Output(
    "batch_users_for_items",
    ("item_id", "user_id", "score", "rank"),
    ("item_id", "rank"),
    "segments_",
)
ITEMS_PER_BLOCK = 2_000  # scored and written per step: bounds memory to ~block * (users + n)


def _users(db: Db, version: Version) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Every user vector of the version (the candidates of every segment), in id order."""
    send = f"{vector_schema(db)}.vector_send(embedding)"
    table = db.ident("pyrec", version.users_table)
    row = db.one(
        f"SELECT array_agg(user_id ORDER BY user_id) AS ids,"
        f" string_agg({send}, ''::bytea ORDER BY user_id) AS vecs FROM {table}"
    )
    ids = list((row or {}).get("ids") or [])
    if not ids:
        return [], np.zeros((0, int(version.dims)), dtype=np.float32)
    assert row is not None
    packed = np.frombuffer(bytes(row["vecs"]), dtype=vector_dtype(version.dims))
    return ids, np.ascontiguousarray(packed["v"], dtype=np.float32)


def batch_users_for_items(
    db: Db,
    name: str | None,
    items: str | None,
    n: Any,
    flt: str | None,
    params: Any,
    into: str | None,
    exclude_seen: bool,
) -> dict[str, Any]:
    """The top n users of each item into `into` (item_id, user_id, score, rank): what
    pyrec.users_for_item returns, for many items at once."""
    model = get_model(db, name)
    check_sources(db, model)
    n = check_k(n, "n", "the number of users per item")
    version = active_version(db, model)

    def work(run: Run, staging: str) -> dict[str, Any]:
        run.phase("reading", 0)
        item_ids = batch_ids(db, model, version, items, role="item")
        vectors, known = read_vectors(db, version.items_table, "item_id", item_ids, version.dims)
        live = live_items(db, model)
        in_version = int(known.sum())
        if live != "true":  # items the live catalog no longer offers get no segment
            offered = {
                r["item_id"]
                for r in db.rows(
                    f"SELECT i.item_id FROM unnest($1::text[]) i(item_id) WHERE {live}",
                    [item_ids],
                    ["text[]"],
                )
            }
            known = known & np.asarray([i in offered for i in item_ids], dtype=bool)
        user_ids, users = _users(db, version)
        codes = {u: c for c, u in enumerate(user_ids)}
        excluded = filtered_out(db, model, version, codes, flt, params, SEGMENTS, "UserID")
        allowed = np.setdiff1d(np.arange(len(user_ids)), excluded)
        scored = [i for i in range(len(item_ids)) if known[i]]
        seen = None
        if exclude_seen and scored and allowed.size:
            pattern = seen_pairs(db, model, [user_ids[a] for a in allowed], item_ids)
            seen = pattern.T.tocsr()  # items x allowed users
        stage = db.ident("pyrec", staging)
        db.run(
            f"CREATE TABLE {stage} (item_id text NOT NULL, user_id text NOT NULL,"
            f" score real NOT NULL, rank integer NOT NULL)"
        )
        insert = (
            f"INSERT INTO {stage} SELECT * FROM unnest($1::text[], $2::text[], $3::real[],"
            f" $4::int4[])"
        )
        run.phase("scoring", 10, 0)
        written = 0
        candidates = users[allowed]
        ids = np.asarray(user_ids, dtype=object)[allowed]
        for lo in range(0, len(scored), ITEMS_PER_BLOCK):
            block = np.asarray(scored[lo : lo + ITEMS_PER_BLOCK], dtype=np.int64)
            got, scores = top_k(
                candidates,
                vectors[block],
                n,
                None if seen is None else seen[block],
                np.zeros(0, dtype=np.int32),
            )
            valid = got >= 0  # an item with fewer than n candidate users gets ranks 1..m
            rows = np.broadcast_to(block[:, None], got.shape)[valid]
            ranks = np.broadcast_to(np.arange(1, n + 1, dtype=np.int32), got.shape)[valid]
            db.run(
                insert,
                [
                    [item_ids[r] for r in rows.tolist()],
                    ids[got[valid]].tolist(),
                    scores[valid].tolist(),
                    ranks.tolist(),
                ],
                ["text[]", "text[]", "real[]", "int4[]"],
            )
            written += int(valid.sum())
            done = min(lo + ITEMS_PER_BLOCK, len(scored))
            run.phase("writing", 10 + 80 * done / max(len(scored), 1), written)
        return {
            "items": len(item_ids),
            "items_without_vectors": len(item_ids) - in_version,
            "items_withdrawn": in_version - len(scored),
            "rows": written,
        }

    return run_job(db, model, version, into, SEGMENTS, work)
