"""Serving latency: pyrec.recommend and similar_items vs the same top-k as plain SQL.

Catalogs:
  (a) MovieLens-100K, model "movies" trained by CALL pyrec.train (ALS, 64 factors, holdout 0):
      version 1 scans exactly (1,682 items is under pyrec.ann_min_items); version 2 is trained
      again with pyrec.ann_min_items = 0, so its items table has pyrec's HNSW index.
  (b) synthetic: --items items (100k), --users users (1M), 5 interactions per user on average
      (pyrec_pg.data.synthetic.generate: Zipf popularity, 20 taste clusters), loaded by binary
      COPY. No ALS on 1M users: 64-d float32 vectors, each its taste cluster's centroid plus
      as much noise, are written through pyrec_pg.versions.write_version (psycopg stub
      runtime) twice, the same vectors both times: version 1 with pyrec.ann_min_items = -1
      (exact scan), version 2 with 0 (HNSW). Fold-in state as ALS writes it (Y'Y + 10 I,
      alpha 2), so fold-in users are solved in Python as for a trained model.

Cases, k = 10, each call a client round trip on one autocommit session (psycopg prepares a
statement after its 5th run), the version made active with pyrec.activate:
  peer           SELECT item_id FROM <items table> ORDER BY embedding <#> (SELECT embedding
                 FROM <users table> WHERE user_id = $1) LIMIT 10: no seen-item exclusion, no
                 filter, the same pgvector table (and index) as pyrec's
  known          recommend() for a user of the version (source 'model')
  known+filter   with a named filter keeping ~30% of the items (an Items attribute)
  fold-in        a user inserted after the version was written, with 5 interactions
                 (source 'fold-in': one least-squares solve in Python per call)
  fold-in+filter the same with the filter
  similar        similar_items(item, 10); its peer: the same cosine top-10 over the items table
The cases of one version are interleaved (call i of each runs before call i + 1 of any, so
drift hits all alike), after --warmup rounds. p50 and p99 over --calls calls (--exact-calls for
the synthetic exact scan); "x peer" divides a p50 (p99) by the peer's on the same version.
Recall@10 of the HNSW version: its results against an exact scan of the same vectors for the
same users (and filter): the exact version's for the synthetic catalog (the same vectors),
the HNSW version's with enable_indexscan = off for MovieLens (a second training).
Run: .venv/bin/python -m bench.bench_serving [--items 100000] [--users 1000000] [--calls 1000]
     smoke: --items 5000 --users 20000 --calls 100 --exact-calls 100
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import scipy.sparse as sp
from psycopg import sql

from pyrec_pg.data import synthetic
from pyrec_pg.devcluster import Cluster
from pyrec_pg.interactions import Interactions
from pyrec_pg.models import get_model
from pyrec_pg.recipes.base import Factors
from pyrec_pg.recipes.popularity import item_popularity
from pyrec_pg.runtime import Db
from pyrec_pg.runtime.stub import PsycopgPlpy
from pyrec_pg.versions import write_version

from .common import median, movielens_server

K = 10
DIMS = 64
PER_USER = 5  # synthetic interactions per user, on average
FOLD_USERS = 200  # users inserted after training, FOLD_EVENTS interactions each
FOLD_EVENTS = 5
ALPHA, FOLD_REG = 2.0, 10.0  # pyrec's ALS defaults (alpha, fold_in_regularization)
ML_FILTER = 'INCLUDE ItemID WHERE Items.genre IN ("Comedy")'  # 505 of 1,682 movies
SYN_FILTER_CATEGORIES = synthetic.CATEGORIES[:6]  # 6 of 20 categories
# COPY ... (FORMAT binary) of (bigint, bigint): field count, then length + value per field
PAIR_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("u", ">i8"), ("li", ">i4"), ("i", ">i8")])
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
ROWS_PER_CHUNK = 500_000
CASES = ("peer", "known", "known+filter", "fold-in", "fold-in+filter", "similar peer", "similar")
RECALLED = ("peer", "known", "known+filter", "fold-in", "fold-in+filter")
EXPECTED_SOURCE = {
    "known": "model",
    "known+filter": "model",
    "fold-in": "fold-in",
    "fold-in+filter": "fold-in",
    "similar": "model",
}


@dataclass
class Catalog:
    """One dataset's model: its versions (exact, HNSW) and who/what to ask for."""

    title: str
    model: str
    filter_name: str
    exact_version: int
    ann_version: int
    known: list[str]  # users of the versions, with interactions
    fold_in: list[str]  # users inserted after the versions were written
    items: list[str]  # anchors for similar_items
    same_vectors: bool  # whether both versions hold the same vectors
    setup: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Phase:
    """Latencies (ms) and top-k ids per case of one version."""

    label: str
    ms: dict[str, list[float]]
    results: dict[str, dict[str, list[str]]]  # case -> argument -> item ids
    problems: dict[str, int]  # "case: what" -> calls


@dataclass
class Case:
    name: str
    query: sql.Composed
    args: list[str]  # one per call, cycled
    params: Callable[[str], list[Any]]


def pct(xs: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method (p99 of 1000 calls: the 10th slowest)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextmanager
def stopwatch(setup: dict[str, float], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    setup[name] = time.perf_counter() - t


def version_tables(conn: psycopg.Connection[Any], model: str, version: int) -> tuple[str, str]:
    found = conn.execute(
        "SELECT v.items_table, v.users_table FROM pyrec._versions v JOIN pyrec.models m"
        " USING (model_id) WHERE m.name = %s AND v.version = %s",
        [model, version],
    ).fetchone()
    assert found is not None, (model, version)
    return found[0], found[1]


def cases_for(conn: psycopg.Connection[Any], cat: Catalog, version: int) -> list[Case]:
    items, users = (sql.Identifier("pyrec", t) for t in version_tables(conn, cat.model, version))
    peer = sql.SQL(
        "SELECT item_id FROM {} ORDER BY embedding <#> (SELECT embedding FROM {}"
        " WHERE user_id = %s) LIMIT {}"
    ).format(items, users, K)
    similar_peer = sql.SQL(
        "SELECT item_id FROM {i} WHERE item_id <> %s ORDER BY embedding <=> (SELECT embedding"
        " FROM {i} WHERE item_id = %s) LIMIT {k}"
    ).format(i=items, k=K)
    rec = sql.SQL("SELECT item_id, source FROM pyrec.recommend(%s, %s, {})").format(K)
    rec_f = sql.SQL("SELECT item_id, source FROM pyrec.recommend(%s, %s, {}, %s)").format(K)
    sim = sql.SQL("SELECT item_id, source FROM pyrec.similar_items(%s, %s, {})").format(K)
    m, f = cat.model, cat.filter_name
    return [
        Case("peer", peer, cat.known, lambda u: [u]),
        Case("known", rec, cat.known, lambda u: [m, u]),
        Case("known+filter", rec_f, cat.known, lambda u: [m, u, f]),
        Case("fold-in", rec, cat.fold_in, lambda u: [m, u]),
        Case("fold-in+filter", rec_f, cat.fold_in, lambda u: [m, u, f]),
        Case("similar peer", similar_peer, cat.items, lambda i: [i, i]),
        Case("similar", sim, cat.items, lambda i: [m, i]),
    ]


def run_phase(
    conn: psycopg.Connection[Any], cat: Catalog, version: int, label: str, calls: int, warmup: int
) -> Phase:
    conn.execute("SELECT pyrec.activate(%s, %s)", [cat.model, version])
    cases = cases_for(conn, cat, version)
    ms: dict[str, list[float]] = {c.name: [] for c in cases}
    results: dict[str, dict[str, list[str]]] = {c.name: {} for c in cases}
    problems: dict[str, int] = {}
    for r in range(warmup + calls):
        for c in cases:
            arg = c.args[r % len(c.args)]
            t = time.perf_counter()
            rows = conn.execute(c.query, c.params(arg)).fetchall()
            dt = (time.perf_counter() - t) * 1000
            if r < warmup:
                continue
            ms[c.name].append(dt)
            results[c.name].setdefault(arg, [str(x[0]) for x in rows])
            if len(rows) != K:
                key = f"{c.name}: {len(rows)} rows instead of {K}"
                problems[key] = problems.get(key, 0) + 1
            want = EXPECTED_SOURCE.get(c.name)
            if want is not None and any(x[1] != want for x in rows):
                got = sorted({x[1] for x in rows})
                key = f"{c.name}: source {'/'.join(got)} instead of {want}"
                problems[key] = problems.get(key, 0) + 1
    return Phase(label, ms, results, problems)


def exact_results(
    conn: psycopg.Connection[Any], cat: Catalog, version: int, wanted: dict[str, list[str]]
) -> dict[str, dict[str, list[str]]]:
    """The HNSW version's answers with index scans off: a full scan of the same vectors."""
    out: dict[str, dict[str, list[str]]] = {}
    conn.execute("SELECT pyrec.activate(%s, %s)", [cat.model, version])
    conn.execute("SET enable_indexscan = off")
    try:
        for c in cases_for(conn, cat, version):
            if c.name in wanted:
                out[c.name] = {
                    a: [str(x[0]) for x in conn.execute(c.query, c.params(a)).fetchall()]
                    for a in wanted[c.name]
                }
    finally:
        conn.execute("RESET enable_indexscan")
    return out


def recall(
    approx: dict[str, list[str]], exact: dict[str, list[str]], users: list[str]
) -> tuple[float, int]:
    hits = [len(set(approx[u]) & set(exact[u])) / max(1, len(exact[u])) for u in users]
    return (sum(hits) / len(hits) if hits else float("nan")), len(hits)


# --- catalogs -------------------------------------------------------------------------------


def movielens_catalog(conn: psycopg.Connection[Any], rng: np.random.Generator) -> Catalog:
    """On the movielens_server() database: a second, HNSW-indexed version and fold-in users."""
    setup: dict[str, float] = {}
    with stopwatch(setup, "train v2 with pyrec.ann_min_items = 0"):
        conn.execute("SET pyrec.ann_min_items = 0")
        conn.execute("CALL pyrec.train('movies')")
        conn.execute("RESET pyrec.ann_min_items")
    versions = conn.execute(
        "SELECT version, hnsw_index FROM pyrec.model_versions WHERE model = 'movies'"
        " ORDER BY version"
    ).fetchall()
    assert [bool(a) for _, a in versions] == [False, True], versions
    conn.execute("SELECT pyrec.create_filter('movies', 'thirty', %s)", [ML_FILTER])
    pairs = conn.execute("SELECT viewer_id, movie_id FROM ratings").fetchall()
    movies = np.array([p[1] for p in pairs])  # one per rating: popularity-weighted draws
    rows = []
    for j in range(FOLD_USERS):
        for movie in rng.choice(np.unique(movies), FOLD_EVENTS, replace=False).tolist():
            rows.append((100_000 + j, movie))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (viewer_id, movie_id, rating, rated_at) VALUES (%s, %s, 4, now())",
            rows,
        )
    conn.execute("ANALYZE ratings")
    viewers = sorted({p[0] for p in pairs})
    return Catalog(
        title=f"MovieLens-100K: {len(viewers)} users x {np.unique(movies).size} items,"
        f" {len(pairs)} ratings; ALS 64 factors by CALL pyrec.train",
        model="movies",
        filter_name="thirty",
        exact_version=int(versions[0][0]),
        ann_version=int(versions[1][0]),
        known=[str(u) for u in rng.permutation(viewers).tolist()],
        fold_in=[str(100_000 + j) for j in rng.permutation(FOLD_USERS).tolist()],
        items=[str(i) for i in rng.permutation(np.unique(movies)).tolist()],
        same_vectors=False,
        setup=setup,
    )


def copy_pairs(conn: psycopg.Connection[Any], users: npt.NDArray[Any], items: Any) -> None:
    rows = np.empty(users.size, dtype=PAIR_ROW)
    rows["n"], rows["lu"], rows["li"] = 2, 8, 8
    rows["u"], rows["i"] = users, items
    stmt = "COPY syn_interactions (user_id, item_id) FROM STDIN (FORMAT binary)"
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(COPY_HEADER)
        for lo in range(0, rows.size, ROWS_PER_CHUNK):
            copy.write(rows[lo : lo + ROWS_PER_CHUNK].tobytes())
        copy.write(COPY_TRAILER)


def synthetic_vectors(
    data: synthetic.Synthetic, seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Users and items around their taste cluster's centroid, noise as large as the centroid."""
    rng = np.random.default_rng(seed + 1)
    scale = 1.0 / math.sqrt(DIMS)
    centroids = rng.normal(0.0, scale, (len(synthetic.CATEGORIES), DIMS))
    users = centroids[data.user_cluster] + rng.normal(0.0, scale, (data.user_cluster.size, DIMS))
    items = centroids[data.item_cluster] + rng.normal(0.0, scale, (data.item_cluster.size, DIMS))
    return users.astype(np.float32), items.astype(np.float32)


def write_synthetic_version(
    dsn: str, data: Interactions, factors: Factors, ann_min_items: int, notes: list[str]
) -> int:
    """A version through pyrec's own writer, in the psycopg stub runtime, in one transaction."""
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.add_notice_handler(lambda d: notes.append(d.message_primary or ""))
        db = Db(PsycopgPlpy(conn))
        db.run("SELECT set_config('pyrec.ann_min_items', $1, true)", [str(ann_min_items)], ["text"])
        version = write_version(
            db,
            get_model(db, "syn"),
            data,
            factors,
            item_popularity(data.matrix),
            {
                "recipe": "als",
                "params": {"factors": DIMS, "note": "bench_serving: synthetic vectors"},
                "metrics": {},
                "training_seconds": 0.0,
                "fold_state": {**factors.fold_state, "options": {}, "newest": 0.0},
            },
        )
        conn.commit()
    return version


def synthetic_catalog(
    dsn: str, n_items: int, n_users: int, seed: int, rng: np.random.Generator
) -> Catalog:
    setup: dict[str, float] = {}
    notes: list[str] = []
    with stopwatch(setup, "generate"):
        data = synthetic.generate(n_users * PER_USER, n_users=n_users, n_items=n_items, seed=seed)
    load = "load (binary COPY, index, VACUUM ANALYZE)"
    with stopwatch(setup, load), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE syn_items (item_id bigint PRIMARY KEY, category text NOT NULL,"
            " price numeric(10,2) NOT NULL)"
        )
        with conn.cursor() as cur, cur.copy("COPY syn_items FROM STDIN") as copy:
            cats = [synthetic.CATEGORIES[c] for c in data.item_cluster.tolist()]
            prices = data.item_price.tolist()
            copy.write(
                "".join(
                    f"{i}\t{c}\t{p}\n" for i, (c, p) in enumerate(zip(cats, prices, strict=True))
                )
            )
        conn.execute(
            "CREATE TABLE syn_interactions (user_id bigint NOT NULL, item_id bigint NOT NULL)"
        )
        copy_pairs(conn, data.users, data.items)
        conn.execute("CREATE INDEX ON syn_interactions (user_id)")
        conn.execute("VACUUM ANALYZE syn_items")
        conn.execute("VACUUM ANALYZE syn_interactions")
        conn.execute("SELECT pyrec.create_model('syn', 'syn_interactions', items => 'syn_items')")
        names = ", ".join(f'"{c}"' for c in SYN_FILTER_CATEGORIES)
        conn.execute(
            "SELECT pyrec.create_filter('syn', 'thirty', %s)",
            [f"INCLUDE ItemID WHERE Items.category IN ({names})"],
        )
    with stopwatch(setup, "vectors and the version's matrix (numpy)"):
        user_vecs, item_vecs = synthetic_vectors(data, seed)
        # every user and item of the catalog is in the version; n_items per user = distinct
        # items, as training counts them (a mismatch would make recommend() fold in)
        keys, counts = np.unique(data.users * n_items + data.items, return_counts=True)
        u, i = keys // n_items, keys % n_items
        matrix = sp.csr_matrix((counts.astype(np.float64), (u, i)), shape=(n_users, n_items))
        inter = Interactions(
            users=np.arange(n_users).astype(str),
            items=np.arange(n_items).astype(str),
            matrix=matrix,
            rows_read=int(data.users.size),
        )
        y = item_vecs.astype(np.float64)
        gram = y.T @ y + FOLD_REG * np.eye(DIMS)
        factors = Factors(
            users=user_vecs,
            items=item_vecs,
            fold="least_squares",
            fold_state={"alpha": ALPHA, "gram": gram.tolist()},
        )
    with stopwatch(setup, "write_version, exact (ann_min_items -1)"):
        exact = write_synthetic_version(dsn, inter, factors, -1, notes)
    with stopwatch(setup, "write_version + HNSW build (ann_min_items 0)"):
        ann = write_synthetic_version(dsn, inter, factors, 0, notes)
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    popular = data.items  # one per interaction: popularity-weighted draws
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = []
        for j in range(FOLD_USERS):
            for item in np.unique(rng.choice(popular, FOLD_EVENTS)).tolist():
                rows.append((n_users + j, item))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO syn_interactions (user_id, item_id) VALUES (%s, %s)", rows)
        conn.execute("ANALYZE syn_interactions")
    return Catalog(
        title=f"synthetic: {n_users:,} users x {n_items:,} items, {data.users.size:,}"
        f" interactions ({active.size:,} users with any); random clustered 64-d vectors"
        f" through write_version",
        model="syn",
        filter_name="thirty",
        exact_version=exact,
        ann_version=ann,
        known=[str(x) for x in rng.choice(active, 5000, replace=False).tolist()],
        fold_in=[str(n_users + j) for j in rng.permutation(FOLD_USERS).tolist()],
        items=[str(x) for x in rng.choice(n_items, 5000, replace=False).tolist()],
        same_vectors=True,
        setup=setup,
        notes=notes,
    )


# --- report ---------------------------------------------------------------------------------


def line(name: str, ms: list[float], peer: list[float] | None) -> str:
    p50, p99 = median(ms), pct(ms, 0.99)
    ratio = f"  {p50 / median(peer):6.2f}x {p99 / pct(peer, 0.99):6.2f}x" if peer else ""
    return f"    {name:<34} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms{ratio}"


NAMES = {
    "peer": "peer: plain SQL top-10 (known user)",
    "known": "recommend, known user",
    "known+filter": "recommend, known user + filter",
    "fold-in": "recommend, fold-in user",
    "fold-in+filter": "recommend, fold-in user + filter",
    "similar peer": "peer: plain SQL cosine top-10",
    "similar": "similar_items",
}


def report_phase(phase: Phase) -> None:
    n = len(phase.ms["peer"])
    print(f"  {phase.label}: {n} calls per case  (ratio columns: p50, p99 over the peer's)")
    for name in CASES:
        peer = phase.ms["similar peer"] if name == "similar" else phase.ms["peer"]
        is_peer = name in ("peer", "similar peer")
        print(line(NAMES[name], phase.ms[name], None if is_peer else peer), flush=True)
    for what, count in sorted(phase.problems.items()):
        print(f"    !! {what}: {count} calls")


def report_recall(
    conn: psycopg.Connection[Any], cat: Catalog, exact: Phase, ann: Phase, n: int
) -> dict[str, float]:
    wanted = {c: list(ann.results[c])[:n] for c in RECALLED}
    if cat.same_vectors:
        truth = {c: exact.results[c] for c in RECALLED}
        how = f"the exact version (v{cat.exact_version}, the same vectors)"
    else:
        truth = exact_results(conn, cat, cat.ann_version, wanted)
        how = f"v{cat.ann_version} with enable_indexscan = off"
    out = {}
    parts = []
    for c in RECALLED:
        r, m = recall(ann.results[c], truth[c], [a for a in wanted[c] if a in truth[c]])
        out[c] = r
        parts.append(f"{c} {r:.3f} ({m})")
    print(f"  recall@{K} of HNSW (v{cat.ann_version}) vs {how}, (users):")
    print("    " + ", ".join(parts), flush=True)
    return out


def bench_catalog(
    conn: psycopg.Connection[Any], cat: Catalog, calls: int, exact_calls: int, args: Any
) -> tuple[Phase, Phase, dict[str, float]]:
    print(f"\n{cat.title}")
    print("  setup, not timed: " + ", ".join(f"{k} {v:.1f} s" for k, v in cat.setup.items()))
    for note in dict.fromkeys(cat.notes):
        print(f"  server notice during setup: {note}")
    exact = run_phase(
        conn, cat, cat.exact_version, f"exact scan (v{cat.exact_version})", exact_calls, args.warmup
    )
    report_phase(exact)
    ann = run_phase(conn, cat, cat.ann_version, f"HNSW (v{cat.ann_version})", calls, args.warmup)
    report_phase(ann)
    rec = report_recall(conn, cat, exact, ann, args.recall_users)
    return exact, ann, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000, help="synthetic catalog size")
    ap.add_argument("--users", type=int, default=1_000_000, help="synthetic users")
    ap.add_argument("--calls", type=int, default=1000, help="timed calls per case and version")
    ap.add_argument(
        "--exact-calls", type=int, default=300, help="timed calls per case, synthetic exact scan"
    )
    ap.add_argument("--warmup", type=int, default=20, help="untimed rounds before the calls")
    ap.add_argument("--recall-users", type=int, default=200, help="users per recall figure")
    ap.add_argument("--skip", choices=("movielens", "synthetic"), help="leave one catalog out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"serving latency, k = {K}, client-measured over a Unix socket, one session;"
        f" {os.cpu_count()} CPUs; load average at start: {loadavg()}",
        flush=True,
    )
    started = time.perf_counter()
    summary: list[tuple[str, Phase, Phase, dict[str, float]]] = []
    if args.skip != "movielens":
        with (
            movielens_server('{"holdout": 0}') as dsn,
            psycopg.connect(dsn, autocommit=True) as conn,
        ):
            cat = movielens_catalog(conn, rng)
            summary.append(
                ("MovieLens-100K", *bench_catalog(conn, cat, args.calls, args.calls, args))
            )
    if args.skip != "synthetic":
        with Cluster() as cluster:
            dsn = cluster.dsn()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pyrec CASCADE")
            t = time.perf_counter()
            cat = synthetic_catalog(dsn, args.items, args.users, args.seed, rng)
            cat.setup["total"] = time.perf_counter() - t
            with psycopg.connect(dsn, autocommit=True) as conn:
                label = f"synthetic {args.items // 1000}k x {args.users // 1000}k"
                summary.append(
                    (label, *bench_catalog(conn, cat, args.calls, args.exact_calls, args))
                )
    print("\nsummary: p50 ms (x the peer's p50 on the same version); HNSW recall@10")
    head = "".join(f"{c:>17}" for c in CASES)
    print(f"  {'catalog / index':<30}{head}")
    for label, exact, ann, rec in summary:
        for phase in (exact, ann):
            cells = []
            for c in CASES:
                p = median(phase.ms[c])
                base = median(phase.ms["similar peer" if c == "similar" else "peer"])
                peer = c in ("peer", "similar peer")
                cells.append(f"{p:9.2f}" + ("        " if peer else f" ({p / base:4.1f}x)"))
            name = f"{label} / {phase.label.split(' (')[0]}"
            print(f"  {name:<30}" + "".join(f"{x:>17}" for x in cells))
        print(f"  {'':<30}recall@{K}: " + ", ".join(f"{c} {r:.3f}" for c, r in rec.items()))
    print(f"whole run {time.perf_counter() - started:.0f} s; load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
