"""A version's HNSW ef_search: the smallest that finds most of sampled users' exact top 10."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.db import Db
from pyrec_pg.ml.topk import top_k
from pyrec_pg.store.codec import vector_literals

K = 10
SAMPLE_USERS = 200
# recall@10 of trained users that a version's ef_search must reach on the sample: the serving
# target is 0.95, and 200 users x 10 items measure it within about 0.01
TARGET_RECALL = 0.98
# pgvector's default first (40), up to its largest (1000); each step costs about 1.5x the last
LADDER = (40, 60, 100, 150, 200, 300, 400, 600, 800, 1000)
# when no step reaches the target (an inner-product graph never reaches some items), the
# cheapest step within this of the best recall seen: more candidates would only cost time
_NEAR_BEST = 0.01
# the exact answer is scored a few users at a time: at most this many scores (64 MB) at once,
# where all 200 users against 1M items would hold 0.9 GB
_SCORES = 16_000_000


@dataclass(frozen=True)
class Calibration:
    ef_search: int
    recall: float


def choose(recalls: Iterable[tuple[int, float]], target: float = TARGET_RECALL) -> Calibration:
    """The first (ef_search, recall) that reaches `target`, read lazily (later steps are not
    measured); else the cheapest within _NEAR_BEST of the best."""
    seen: list[Calibration] = []
    for ef, recall in recalls:
        if recall >= target:
            return Calibration(ef, recall)
        seen.append(Calibration(ef, recall))
    if not seen:
        raise ValueError("no ef_search was measured")
    best = max(c.recall for c in seen)
    return next(c for c in seen if c.recall >= best - _NEAR_BEST)


def calibrate(
    db: Db,
    table: str,
    item_ids: npt.NDArray[np.str_],
    items: npt.NDArray[np.float32],
    users: npt.NDArray[np.float32],
    seen: sp.csr_matrix,
    vtype: str,
) -> Calibration | None:
    """Measure the HNSW index of pyrec table `table` (quoted) as recommend() queries it, for
    a fixed sample of the trained users (rows of `users` with items in `seen`), at each
    step of LADDER until one reaches TARGET_RECALL; None without users to sample."""
    # among the users whose items `seen` holds (all of them, unless the pairs stayed in Spark)
    have = np.flatnonzero(np.diff(seen.indptr))
    rows = np.sort(np.random.default_rng(0).permutation(have)[:SAMPLE_USERS])
    if not rows.size:
        return None
    exclude = seen[rows]
    step = max(1, _SCORES // max(1, items.shape[0]))
    nothing = np.empty(0, dtype=np.int32)
    codes = np.vstack(
        [
            top_k(items, users[rows[lo : lo + step]], K, exclude[lo : lo + step], nothing, 1)[0]
            for lo in range(0, rows.size, step)
        ]
    )
    truth = [set(item_ids[c[c >= 0]].tolist()) for c in codes]
    asks = [
        (vec, item_ids[exclude.indices[exclude.indptr[n] : exclude.indptr[n + 1]]].tolist())
        for n, vec in enumerate(vector_literals(users[rows]))
    ]
    keep = [n for n, t in enumerate(truth) if t]
    if not keep:
        return None
    sql = (
        f"SELECT array(SELECT t.item_id FROM (SELECT i.item_id, i.embedding <#> $1::{vtype} AS d"
        f" FROM {table} i WHERE i.item_id <> ALL ($2) ORDER BY d LIMIT {K}) t) AS ids"
    )

    def recall_at(ef: int) -> float:
        db.run("SELECT pg_catalog.set_config('hnsw.ef_search', $1, true)", [str(ef)], ["text"])
        hits = 0
        for n in keep:
            got = db.scalar(sql, list(asks[n]), ["text", "text[]"]) or []
            hits += len(truth[n].intersection(got))
        return hits / sum(len(truth[n]) for n in keep)

    return _with_settings(db, lambda: choose((ef, recall_at(ef)) for ef in LADDER))


def _with_settings(db: Db, measure: Callable[[], Calibration]) -> Calibration:
    """Run `measure` under recommend()'s iterative scan, then give the session back its own
    hnsw settings (set_config is local to the training's transaction, which goes on)."""
    names = ("hnsw.ef_search", "hnsw.iterative_scan")
    before = [db.scalar("SELECT pg_catalog.current_setting($1)", [n], ["text"]) for n in names]
    db.run("SELECT pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true)")
    try:
        return measure()
    finally:
        for name, value in zip(names, before, strict=True):
            db.run("SELECT pg_catalog.set_config($1, $2, true)", [name, value], ["text", "text"])
