"""Serving latency: pyrec.recommend and similar_items vs the same top-k as plain SQL.

Catalogs:
  (a) MovieLens-100K, model "movies" trained by CALL pyrec.train (ALS, 64 factors, holdout 0):
      version 1 scans exactly (1,682 items is under pyrec.ann_min_items); version 2 is trained
      again with pyrec.ann_min_items = 0, so its items table has pyrec's HNSW index.
  (b) synthetic: --items items (100k), --users users (1M), 5 interactions per user on average
      (pyrec_pg.dev.synthetic.generate: Zipf popularity, 20 taste clusters), loaded by binary
      COPY. No ALS on 1M users: 64-d float32 vectors, each its taste cluster's centroid plus
      as much noise, written twice (the same vectors): version 1 with pyrec.ann_min_items = -1
      (exact scan), version 2 with 0 (HNSW, built at maintenance_work_mem --build-mem). Each
      version is made by pyrec_pg.store.vectors.write_version (psycopg stub runtime) with the items
      and ALS's fold-in state (Y'Y + 10 I, alpha 2); its 1M user vectors are then COPYed in
      binary into the users table write_version created, in the same transaction (its own
      insert formats each vector as text: minutes per version at this size).

Cases, k = 10, each call a client round trip on one autocommit session (psycopg prepares a
statement after its 5th run), the version made active with pyrec.activate:
  peer           SELECT item_id FROM <items table> ORDER BY embedding <#> (SELECT embedding
                 FROM <users table> WHERE user_id = $1) LIMIT 10: no seen-item exclusion, no
                 filter, the same pgvector table (and index) as pyrec's
  known          recommend() for a user of the version (source 'model')
  known+filter   with a named filter keeping ~30% of the items, on an Items attribute
                 (MovieLens: genre Comedy; synthetic: price, which is independent of taste)
  known+boost    ranking => a boost of 0.2 for the filter's items (the model's best 50
                 candidates and the best 50 of the filter's items, re-ranked)
  known+diversity  ranking => at most 3 items per value of an Items field (MovieLens: genre,
                 an array: per genre; synthetic: category, the taste cluster)
  known+experiment  the same user through an A/A experiment (two variants of the model), so
                 each call also logs its impression: the cost of experiment => name
  fold-in        a user inserted after the version was written with 5 interactions (the items
                 of a random existing user): source 'fold-in', one least-squares solve in Python
  fold-in+filter the same with the filter
  similar        similar_items(item, 10); its peer: the same cosine top-10 over the items table
The cases of one version are interleaved (call i of each runs before call i + 1 of any, so
drift hits all alike), after --warmup untimed rounds. Each case gets --calls calls, or fewer
(at least 100) when the warm-up says they would take over --case-seconds. p50 and p99
(nearest rank) per case; "x peer" divides a p50 (p99) by the peer's on the same version.
Recall@10 of the HNSW version: its top 10 against an exact scan of the same vectors for the
same users (and filter): the exact version's for the synthetic catalog (the same vectors),
the HNSW version's with enable_indexscan = off for MovieLens (a second training). Then one
call of each case, in a transaction, counts the scans of the HNSW index
(pg_stat_get_xact_numscans): 0 means the planner scanned the table instead (recall marked *).

Throughput from concurrent clients, after each version's latency cases (the version still
active): pgbench (-c 2 -j 2 -T <--tps-seconds> -n -M prepared: 2 clients, a connection and a
thread each, prepared statements) with a custom script of one statement per transaction:
  known          SELECT * FROM pyrec.recommend('<model>', :uid::text, 10), a random known user
                 each time: \\set uid random(lo, hi) when the known users are the integers
                 lo..hi (MovieLens), else an index into a two-column table of them made for
                 the bench (synthetic: the latency cases' 5,000 users), read by a scalar
                 subquery in the argument
  known+filter   the same with the named filter
One transaction returns one user's top 10, so recommendations/s = pgbench's tps (without
the initial connection time), reported as requests/s (one user's top 10 each) with pgbench's
latency average, against the target of >= 500 from 2 clients.
Run: .venv/bin/python -m bench.bench_serving [--items 100000] [--users 1000000] [--calls 1000]
     [--tps-seconds 15]
     smoke: --items 5000 --users 20000 --calls 100 --tps-seconds 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import tempfile
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

from pyrec_pg.catalog.models import get_model
from pyrec_pg.catalog.versions import Trained
from pyrec_pg.db import Db
from pyrec_pg.db.stub import PsycopgPlpy
from pyrec_pg.dev import synthetic
from pyrec_pg.dev.cluster import PG_BIN, Cluster
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.recipes.popularity import item_popularity
from pyrec_pg.store.codec import COPY_HEADER, COPY_TRAILER
from pyrec_pg.store.vectors import write_version

from .common import median, movielens_server, nearest_rank

K = 10
DIMS = 64
PER_USER = 5  # synthetic interactions per user, on average
FOLD_USERS = 200  # users inserted after training, FOLD_EVENTS interactions each
FOLD_EVENTS = 5
ALPHA, FOLD_REG = 2.0, 10.0  # pyrec's ALS defaults (alpha, fold_in_regularization)
KEEP = 0.3  # share of the items the filters keep
MIN_CALLS = 100
ML_FILTER = 'INCLUDE ItemID WHERE Items.genre IN ("Comedy")'  # 505 of 1,682 movies
# COPY ... (FORMAT binary): a header, per row the field count then length + value per field
PAIR_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("u", ">i8"), ("li", ">i4"), ("i", ">i8")])
ROWS_PER_CHUNK = 200_000
CASES = (
    "peer",
    "known",
    "known+filter",
    "known+experiment",
    "known+boost",
    "known+diversity",
    "fold-in",
    "fold-in+filter",
    "similar peer",
    "similar",
)
PEERS = ("peer", "similar peer")
RECALLED = ("peer", "known", "known+filter", "fold-in", "fold-in+filter")
EXPECTED_SOURCE = {
    "known": "model",
    "known+filter": "model",
    "known+experiment": "a:model",  # every user of variant "a" or "b", both the model
    "known+boost": "model",
    "known+diversity": "model",
    "fold-in": "fold-in",
    "fold-in+filter": "fold-in",
    "similar": "model",
}
NAMES = {
    "peer": "peer: plain SQL top-10 (known user)",
    "known": "recommend, known user",
    "known+filter": "recommend, known user + filter",
    "known+experiment": "recommend, known user, experiment",
    "known+boost": "recommend, known user, ranking with a boost",
    "known+diversity": "recommend, known user, ranking with a diversity cap",
    "fold-in": "recommend, fold-in user",
    "fold-in+filter": "recommend, fold-in user + filter",
    "similar peer": "peer: plain SQL cosine top-10",
    "similar": "similar_items",
}
CLIENTS = 2  # pgbench clients (-c), one thread each (-j)
TPS_TARGET = 500.0  # requests/s from CLIENTS clients
TPS_CASES = ("known", "known+filter")
TPS_USERS = "bench_tps_users"  # (n, user_id): the known users by position, when not lo..hi


@dataclass
class Catalog:
    """One dataset's model: its versions (exact, HNSW) and who/what to ask for."""

    title: str
    model: str
    filter_text: str
    exact_version: int
    ann_version: int
    known: list[str]  # users of the versions, with interactions
    fold_in: list[str]  # users inserted after the versions were written
    items: list[str]  # anchors for similar_items
    same_vectors: bool  # whether both versions hold the same vectors
    setup: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    filter_name: str = "thirty"
    diversity_field: str = "Items.category"  # at most 3 items of each value per list


@dataclass
class Phase:
    """Latencies (ms) and top-k ids per case of one version."""

    label: str
    ms: dict[str, list[float]]
    results: dict[str, dict[str, list[str]]]  # case -> argument -> item ids
    problems: dict[str, int]  # "case: what" -> calls
    tps: dict[str, Throughput] = field(default_factory=dict)  # pgbench, per case


@dataclass
class Throughput:
    """One pgbench run: tps without the initial connection time, latency average."""

    tps: float
    latency_ms: float
    requests: int
    failed: int
    error: str | None = None  # pgbench's exit status and last lines when it failed
    problem: str | None = None  # what one call of the statement, outside pgbench, returned


@dataclass
class TpsScript:
    """A throughput case: pgbench's script, and its statement for one call by psycopg."""

    script: str
    query: str  # the statement with %s for the script's random variable
    sample: int | str  # a value of that variable


@dataclass
class Case:
    name: str
    query: sql.Composed
    args: list[str]  # one per call, cycled
    params: Callable[[str], list[Any]]


def size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextmanager
def stopwatch(setup: dict[str, float], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    setup[name] = time.perf_counter() - t


# --- measuring ------------------------------------------------------------------------------


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
    # the variant's name is cut off the source, so both variants answer "model"
    rec_e = sql.SQL(
        "SELECT item_id, 'a:' || split_part(source, ':', 2) FROM pyrec.recommend(%s, %s, {},"
        " experiment => %s)"
    ).format(K)
    sim = sql.SQL("SELECT item_id, source FROM pyrec.similar_items(%s, %s, {})").format(K)
    ranked = sql.SQL(
        "SELECT item_id, source FROM pyrec.recommend(%s, %s, {}, ranking => %s)"
    ).format(K)
    m, f = cat.model, cat.filter_name
    # the filter's items raised (the default 50 candidates, and the best 50 of those items)
    boost = json.dumps({"boosts": [{"filter": cat.filter_text, "weight": 0.2}]})
    diverse = json.dumps({"diversity": {"field": cat.diversity_field, "max_per_value": 3}})
    return [
        Case("peer", peer, cat.known, lambda u: [u]),
        Case("known", rec, cat.known, lambda u: [m, u]),
        Case("known+filter", rec_f, cat.known, lambda u: [m, u, f]),
        Case("known+experiment", rec_e, cat.known, lambda u: [m, u, f"bench_{m}"]),
        Case("known+boost", ranked, cat.known, lambda u: [m, u, boost]),
        Case("known+diversity", ranked, cat.known, lambda u: [m, u, diverse]),
        Case("fold-in", rec, cat.fold_in, lambda u: [m, u]),
        Case("fold-in+filter", rec_f, cat.fold_in, lambda u: [m, u, f]),
        Case("similar peer", similar_peer, cat.items, lambda i: [i, i]),
        Case("similar", sim, cat.items, lambda i: [m, i]),
    ]


def run_phase(
    conn: psycopg.Connection[Any], cat: Catalog, version: int, label: str, args: Any
) -> Phase:
    conn.execute("SELECT pyrec.activate(%s, %s)", [cat.model, version])
    cases = cases_for(conn, cat, version)
    # warm-up (prepared statements, the backend's Python for fold-in, caches) on the last
    # arguments of each list; its median sets how many calls fit in --case-seconds
    warm: dict[str, list[float]] = {c.name: [] for c in cases}
    for w in range(args.warmup):
        for c in cases:
            t = time.perf_counter()
            conn.execute(c.query, c.params(c.args[-1 - w % len(c.args)])).fetchall()
            warm[c.name].append(time.perf_counter() - t)
    calls = args.calls
    counts = {
        name: min(calls, max(MIN_CALLS, int(args.case_seconds / max(median(xs), 1e-9))))
        for name, xs in warm.items()
    }
    ms: dict[str, list[float]] = {c.name: [] for c in cases}
    results: dict[str, dict[str, list[str]]] = {c.name: {} for c in cases}
    problems: dict[str, int] = {}
    for r in range(calls):
        for c in cases:
            n = counts[c.name]
            if (r + 1) * n // calls == r * n // calls:  # n of the rounds, evenly spread
                continue
            arg = c.args[len(ms[c.name]) % len(c.args)]
            t = time.perf_counter()
            rows = conn.execute(c.query, c.params(arg)).fetchall()
            ms[c.name].append((time.perf_counter() - t) * 1000)
            results[c.name].setdefault(arg, [str(x[0]) for x in rows])
            if len(rows) != K:
                key = f"{c.name}: {len(rows)} rows instead of {K}"
                problems[key] = problems.get(key, 0) + 1
            want = EXPECTED_SOURCE.get(c.name)
            if want is not None and any(x[1] != want for x in rows):
                got = sorted({str(x[1]) for x in rows})
                key = f"{c.name}: source {'/'.join(got)} instead of {want}"
                problems[key] = problems.get(key, 0) + 1
    return Phase(label, ms, results, problems)


def hnsw_scans(conn: psycopg.Connection[Any], cat: Catalog, version: int) -> dict[str, int]:
    """Scans of the version's HNSW index by one call of each case: the backend's counter for
    the index (pg_stat_get_xact_numscans) before and after the call, in one transaction."""
    items = version_tables(conn, cat.model, version)[0]
    found = conn.execute(
        "SELECT x.indexrelid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " JOIN pg_am a ON a.oid = c.relam WHERE x.indrelid = %s::regclass AND a.amname = 'hnsw'",
        [sql.Identifier("pyrec", items).as_string(conn)],
    ).fetchone()
    if found is None:
        return {}
    count = "SELECT pg_stat_get_xact_numscans(%s)"
    out = {}
    for c in cases_for(conn, cat, version):
        with conn.transaction():
            before = conn.execute(count, [found[0]]).fetchone()
            conn.execute(c.query, c.params(c.args[0])).fetchall()
            after = conn.execute(count, [found[0]]).fetchone()
        assert before is not None and after is not None
        out[c.name] = int(after[0]) - int(before[0])
    return out


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


def user_range(ids: list[str]) -> tuple[int, int] | None:
    """(lo, hi) when the ids are exactly the integers lo..hi written plainly, else None."""
    nums = [int(u) for u in ids if u.isdigit()]
    if not nums or len(nums) != len(ids):
        return None
    lo, hi = min(nums), max(nums)
    return (lo, hi) if set(ids) == {str(n) for n in range(lo, hi + 1)} else None


def tps_scripts(conn: psycopg.Connection[Any], cat: Catalog) -> dict[str, TpsScript]:
    """pgbench scripts of the throughput cases, a random known user per transaction: its id
    drawn from lo..hi, or else its position in TPS_USERS (created here, one per catalog)."""
    span = user_range(cat.known)
    sample: int | str
    if span is None:
        table = sql.Identifier(TPS_USERS)
        conn.execute(
            sql.SQL("CREATE TABLE {} (n integer PRIMARY KEY, user_id text NOT NULL)").format(table)
        )
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
            for row in enumerate(cat.known, 1):
                copy.write_row(row)
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
        pick, var, sample = f"\\set n random(1, {len(cat.known)})", ":n", 1
        user = f"(SELECT user_id FROM {TPS_USERS} WHERE n = {{v}})"
    else:
        pick, var, sample = f"\\set uid random({span[0]}, {span[1]})", ":uid", str(span[0])
        user = "{v}::text"
    model = sql.Literal(cat.model).as_string(conn)
    filt = sql.Literal(cat.filter_name).as_string(conn)
    calls = {
        "known": f"SELECT * FROM pyrec.recommend({model}, {user}, {K})",
        "known+filter": f"SELECT * FROM pyrec.recommend({model}, {user}, {K}, {filt})",
    }
    return {
        name: TpsScript(f"{pick}\n{call.replace('{v}', var)};\n", call.replace("{v}", "%s"), sample)
        for name, call in calls.items()
    }


def pgbench(conn: psycopg.Connection[Any], script: str, seconds: int) -> Throughput:
    """Run a script with pgbench against the session's server, database and role (the
    cluster's Unix socket directory as host)."""
    info = conn.info
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
        done = subprocess.run(
            [
                str(PG_BIN / "pgbench"),
                *("-n", "-M", "prepared", "-c", str(CLIENTS), "-j", str(CLIENTS)),
                *("-T", str(seconds), "-f", str(path)),
                *("-h", info.host, "-p", str(info.port), "-U", info.user, info.dbname),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 300,
        )

    def number(pattern: str) -> float | None:
        found = re.search(pattern, done.stdout, re.MULTILINE)
        return float(found.group(1)) if found else None

    tps = number(r"^tps = ([0-9.]+) \(without initial connection time\)")
    latency = number(r"^latency average = ([0-9.]+) ms")
    requests = number(r"^number of transactions actually processed: ([0-9]+)")
    failed = number(r"^number of failed transactions: ([0-9]+)") or 0.0
    error = None
    if done.returncode != 0 or tps is None or latency is None or requests is None:
        last = (done.stderr + done.stdout).strip().splitlines()[-3:]
        error = f"exit status {done.returncode}: " + " / ".join(last)
    return Throughput(tps or 0.0, latency or 0.0, int(requests or 0), int(failed), error)


def throughput(
    conn: psycopg.Connection[Any], scripts: dict[str, TpsScript], args: Any
) -> dict[str, Throughput]:
    """The throughput cases on the active version, one pgbench run each, after one call of
    the statement by psycopg: k rows from the model, or the problem is noted."""
    out = {}
    for name in TPS_CASES:
        case = scripts[name]
        rows = conn.execute(case.query, [case.sample]).fetchall()
        sources = sorted({str(r[3]) for r in rows})
        out[name] = pgbench(conn, case.script, args.tps_seconds)
        if len(rows) != K or sources != ["model"]:
            out[name].problem = f"{len(rows)} rows from {'/'.join(sources)} for {case.sample}"
    return out


# --- catalogs -------------------------------------------------------------------------------


def add_filter(conn: psycopg.Connection[Any], cat: Catalog, share_sql: str) -> None:
    """Create the named filter and note the share of the catalog it keeps (share_sql: the
    same condition written over the items relation)."""
    conn.execute(
        "SELECT pyrec.create_filter(%s, %s, %s)", [cat.model, cat.filter_name, cat.filter_text]
    )
    # an A/A experiment over the model: its case measures what logging impressions costs
    conn.execute(
        "SELECT pyrec.create_experiment(%s, %s, model => %s)",
        [f"bench_{cat.model}", '[{"name": "a", "share": 1}, {"name": "b", "share": 1}]', cat.model],
    )
    kept = conn.execute(share_sql).fetchone()
    assert kept is not None
    cat.notes.append(f"filter: {cat.filter_text}, keeps {float(kept[0]):.1%} of the items")


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
    pairs = conn.execute("SELECT viewer_id, movie_id FROM ratings").fetchall()
    by_viewer: dict[int, list[int]] = {}
    for viewer, movie in pairs:
        by_viewer.setdefault(viewer, []).append(movie)
    viewers = sorted(by_viewer)
    rows = []
    for j in range(FOLD_USERS):  # 5 movies of a random viewer each
        like = by_viewer[viewers[int(rng.integers(len(viewers)))]]
        rows += [(100_000 + j, m) for m in rng.choice(like, FOLD_EVENTS, replace=False).tolist()]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ratings (viewer_id, movie_id, rating, rated_at) VALUES (%s, %s, 4, now())",
            rows,
        )
    conn.execute("ANALYZE ratings")
    movies = sorted({m for _, m in pairs})
    cat = Catalog(
        title=f"MovieLens-100K: {len(viewers)} users x {len(movies)} items, {len(pairs)} ratings;"
        " ALS 64 factors by CALL pyrec.train",
        model="movies",
        filter_text=ML_FILTER,
        diversity_field="Items.genre",
        exact_version=int(versions[0][0]),
        ann_version=int(versions[1][0]),
        known=[str(u) for u in rng.permutation(viewers).tolist()],
        fold_in=[str(100_000 + j) for j in rng.permutation(FOLD_USERS).tolist()],
        items=[str(i) for i in rng.permutation(movies).tolist()],
        same_vectors=False,
        setup=setup,
    )
    add_filter(conn, cat, "SELECT avg(('Comedy' = ANY (genre))::int) FROM movies")
    return cat


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


def copy_users(
    conn: psycopg.Connection[Any],
    table: str,
    vecs: npt.NDArray[np.float32],
    n_items: npt.NDArray[Any],
) -> None:
    """Users 0..n-1 (text ids), their vectors and item counts, by binary COPY: the rows of
    one id length at a time, so each batch is one fixed-size numpy record."""
    ids = np.arange(vecs.shape[0]).astype("S")
    lengths = np.char.str_len(ids)
    stmt = sql.SQL("COPY {} (user_id, embedding, n_items) FROM STDIN (FORMAT binary)").format(
        sql.Identifier("pyrec", table)
    )
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(COPY_HEADER)
        for width in np.unique(lengths).tolist():
            pick = np.flatnonzero(lengths == width)
            row = np.dtype(
                [
                    ("fields", ">i2"),
                    ("l_id", ">i4"),
                    ("id", f"S{width}"),
                    ("l_vec", ">i4"),
                    ("dim", ">i2"),  # pgvector's vector_recv: dims, unused, float4s
                    ("unused", ">i2"),
                    ("v", ">f4", (vecs.shape[1],)),
                    ("l_n", ">i4"),
                    ("n", ">i4"),
                ]
            )
            for lo in range(0, pick.size, ROWS_PER_CHUNK):
                part = pick[lo : lo + ROWS_PER_CHUNK]
                rows = np.zeros(part.size, dtype=row)
                rows["fields"], rows["l_id"], rows["l_n"] = 3, width, 4
                rows["l_vec"] = 4 + 4 * vecs.shape[1]
                rows["dim"] = vecs.shape[1]
                rows["id"], rows["v"], rows["n"] = ids[part], vecs[part], n_items[part]
                copy.write(rows.tobytes())
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


@dataclass
class SynVersion:
    """What both synthetic versions hold."""

    items: Factors  # item vectors and ALS's fold-in state; no users
    popularity: npt.NDArray[np.float32]
    users: npt.NDArray[np.float32]
    n_items: npt.NDArray[np.int32]  # distinct items per user, as training counts them
    n_interactions: int


def write_synthetic_version(dsn: str, v: SynVersion, ann_min_items: int, args: Any) -> int:
    """write_version (psycopg stub runtime) with the items, then the users by binary COPY,
    one transaction."""
    notes: list[str] = []
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.add_notice_handler(lambda d: notes.append(d.message_primary or ""))
        db = Db(PsycopgPlpy(conn))
        db.run(
            "SELECT set_config('pyrec.ann_min_items', $1, true),"
            " set_config('maintenance_work_mem', $2, true)",
            [str(ann_min_items), args.build_mem],
            ["text", "text"],
        )
        n_items = v.items.items.shape[0]
        no_users = Interactions(
            users=np.array([], dtype=str),
            items=np.arange(n_items).astype(str),
            matrix=sp.csr_matrix((0, n_items), dtype=np.float64),
            rows_read=0,
        )
        info = Trained(
            recipe="als",
            params={"factors": DIMS, "bench_serving": "synthetic vectors"},
            metrics={},
            training_seconds=0.0,
            fold_state={**v.items.fold_state, "options": {}, "newest": 0.0},
        )
        model = get_model(db, "syn")
        version = write_version(db, model, no_users, v.items, v.popularity, info)
        users_table = version_tables(conn, "syn", version)[1]
        copy_users(conn, users_table, v.users, v.n_items)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("pyrec", users_table)))
        conn.execute(
            "UPDATE pyrec._versions SET n_users = %s, n_interactions = %s"
            " WHERE model_id = %s AND version = %s",
            [v.users.shape[0], v.n_interactions, model.model_id, version],
        )
        conn.commit()
    if notes:
        print(f"  (server notices writing version {version}: {'; '.join(notes)})", flush=True)
    return version


def synthetic_catalog(dsn: str, args: Any, rng: np.random.Generator) -> Catalog:
    n_items, n_users = args.items, args.users
    setup: dict[str, float] = {}
    with stopwatch(setup, "generate"):
        data = synthetic.generate(
            n_users * PER_USER, n_users=n_users, n_items=n_items, seed=args.seed
        )
    cut = float(np.round(np.quantile(data.item_price, KEEP), 2))
    load = "load (binary COPY, index, VACUUM ANALYZE)"
    with stopwatch(setup, load), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE syn_items (item_id bigint PRIMARY KEY, category text NOT NULL,"
            " price numeric(10,2) NOT NULL)"
        )
        with conn.cursor() as cur, cur.copy("COPY syn_items FROM STDIN") as copy:
            cats = [synthetic.CATEGORIES[c] for c in data.item_cluster.tolist()]
            attrs = zip(cats, data.item_price.tolist(), strict=True)
            copy.write("".join(f"{i}\t{c}\t{p}\n" for i, (c, p) in enumerate(attrs)))
        conn.execute(
            "CREATE TABLE syn_interactions (user_id bigint NOT NULL, item_id bigint NOT NULL)"
        )
        copy_pairs(conn, data.users, data.items)
        conn.execute("CREATE INDEX ON syn_interactions (user_id)")
        conn.execute("VACUUM ANALYZE syn_items")
        conn.execute("VACUUM ANALYZE syn_interactions")
        conn.execute("SELECT pyrec.create_model('syn', 'syn_interactions', items => 'syn_items')")
    with stopwatch(setup, "vectors (numpy)"):
        user_vecs, item_vecs = synthetic_vectors(data, args.seed)
        keys = np.unique(data.users * n_items + data.items)
        matrix = sp.csr_matrix(
            (np.ones(keys.size), (keys // n_items, keys % n_items)), shape=(n_users, n_items)
        )
        counts = sp.csr_matrix(
            (np.ones(data.users.size), (data.users, data.items)), shape=(n_users, n_items)
        )
        y = item_vecs.astype(np.float64)
        version = SynVersion(
            items=Factors(
                users=np.zeros((0, DIMS), dtype=np.float32),
                items=item_vecs,
                fold="least_squares",
                fold_state={"alpha": ALPHA, "gram": (y.T @ y + FOLD_REG * np.eye(DIMS)).tolist()},
            ),
            popularity=item_popularity(counts),
            users=user_vecs,
            n_items=np.diff(matrix.indptr).astype(np.int32),
            n_interactions=int(keys.size),
        )
    with stopwatch(setup, "version 1 (exact)"):
        exact = write_synthetic_version(dsn, version, -1, args)
    with stopwatch(setup, f"version 2 (HNSW, maintenance_work_mem {args.build_mem})"):
        ann = write_synthetic_version(dsn, version, 0, args)
    active = np.flatnonzero(version.n_items > 0)
    rich = np.flatnonzero(version.n_items >= FOLD_EVENTS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = []
        for j in range(FOLD_USERS):  # 5 items of a random existing user each
            like = matrix[int(rich[rng.integers(rich.size)])].indices
            rows += [(n_users + j, int(i)) for i in rng.choice(like, FOLD_EVENTS, replace=False)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO syn_interactions (user_id, item_id) VALUES (%s, %s)", rows)
        conn.execute("ANALYZE syn_interactions")
        cat = Catalog(
            title=f"synthetic: {n_users:,} users x {n_items:,} items, {data.users.size:,}"
            f" interactions ({active.size:,} users with any); clustered random 64-d vectors",
            model="syn",
            filter_text=f"INCLUDE ItemID WHERE Items.price <= {cut}",
            exact_version=exact,
            ann_version=ann,
            known=[str(x) for x in rng.choice(active, 5000, replace=False).tolist()],
            fold_in=[str(n_users + j) for j in rng.permutation(FOLD_USERS).tolist()],
            items=[str(x) for x in rng.choice(n_items, 5000, replace=False).tolist()],
            same_vectors=True,
            setup=setup,
        )
        add_filter(conn, cat, f"SELECT avg((price <= {cut})::int) FROM syn_items")
    return cat


# --- report ---------------------------------------------------------------------------------


def line(name: str, ms: list[float], peer: list[float] | None) -> str:
    p50, p99 = median(ms), nearest_rank(ms, 0.99)
    ratio = f"  {p50 / median(peer):6.2f}x {p99 / nearest_rank(peer, 0.99):6.2f}x" if peer else ""
    return f"    {name:<34} {len(ms):5d}  p50 {p50:8.3f} ms  p99 {p99:8.3f} ms{ratio}"


def report_phase(phase: Phase) -> None:
    print(f"  {phase.label}: calls, p50, p99; x peer (p50, p99)")
    for name in CASES:
        peer = phase.ms["similar peer"] if name == "similar" else phase.ms["peer"]
        print(line(NAMES[name], phase.ms[name], None if name in PEERS else peer), flush=True)
    added = median(phase.ms["known+experiment"]) / median(phase.ms["known"]) - 1
    print(f"    experiment logging adds {added:+.0%} to the known user's p50 (target < +20%)")
    for what, count in sorted(phase.problems.items()):
        print(f"    !! {what}: {count} calls")


def tps_cell(t: Throughput) -> str:
    return "pgbench failed" if t.error else f"{t.tps:.0f} ({t.latency_ms:.2f} ms)"


def meets_target(phase: Phase) -> bool:
    return all(t.error is None and t.tps >= TPS_TARGET for t in phase.tps.values())


def report_throughput(phase: Phase, args: Any) -> None:
    print(
        f"  {phase.label}: throughput, pgbench -c {CLIENTS} -j {CLIENTS} -T {args.tps_seconds}"
        f" -n -M prepared: requests, requests/s (one user's top {K} each), latency average;"
        f" target >= {TPS_TARGET:g} requests/s"
    )
    for name in TPS_CASES:
        t = phase.tps[name]
        if t.error:
            print(f"    !! {NAMES[name]}: pgbench {t.error}", flush=True)
            continue
        verdict = "meets" if t.tps >= TPS_TARGET else "BELOW"
        failed = f", {t.failed} failed" if t.failed else ""
        print(
            f"    {NAMES[name]:<34} {t.requests:6d}  {t.tps:8.1f} requests/s  latency avg"
            f" {t.latency_ms:7.3f} ms  {verdict} >= {TPS_TARGET:g}{failed}",
            flush=True,
        )
        if t.problem:
            print(f"    !! {NAMES[name]}: one call of the statement: {t.problem}")


def report_recall(
    conn: psycopg.Connection[Any],
    cat: Catalog,
    exact: Phase,
    ann: Phase,
    n: int,
    scans: dict[str, int],
) -> dict[str, str]:
    """Recall per case, formatted; "*" marks a case whose call did not scan the index."""
    if cat.same_vectors:
        truth = {c: exact.results[c] for c in RECALLED}
        how = f"the exact version (v{cat.exact_version}, the same vectors)"
    else:
        wanted = {c: list(ann.results[c])[:n] for c in RECALLED}
        truth = exact_results(conn, cat, cat.ann_version, wanted)
        how = f"v{cat.ann_version} with enable_indexscan = off"
    out: dict[str, str] = {}
    parts = []
    for c in RECALLED:
        users = [u for u in ann.results[c] if u in truth[c]][:n]
        hits = [len(set(ann.results[c][u]) & set(truth[c][u])) / K for u in users]
        r = sum(hits) / len(hits) if hits else float("nan")
        exact_scan = ", no index scan" if scans.get(c) == 0 else ""
        out[c] = f"{r:.3f}" + ("*" if exact_scan else "")
        parts.append(f"{c} {r:.3f} ({len(hits)}{exact_scan})")
    print(f"  recall@{K} of HNSW (v{cat.ann_version}) vs {how}; (users):")
    print("    " + ", ".join(parts), flush=True)
    return out


def bench_catalog(
    conn: psycopg.Connection[Any], cat: Catalog, args: Any
) -> tuple[Phase, Phase, dict[str, str]]:
    print(f"\n{cat.title}")
    print("  setup, not timed: " + ", ".join(f"{k} {v:.1f} s" for k, v in cat.setup.items()))
    for note in cat.notes:
        print(f"  {note}")
    scripts = tps_scripts(conn, cat)
    exact = run_phase(conn, cat, cat.exact_version, f"exact scan (v{cat.exact_version})", args)
    report_phase(exact)
    exact.tps = throughput(conn, scripts, args)  # while the version is still the active one
    report_throughput(exact, args)
    ann = run_phase(conn, cat, cat.ann_version, f"HNSW (v{cat.ann_version})", args)
    report_phase(ann)
    ann.tps = throughput(conn, scripts, args)
    report_throughput(ann, args)
    scans = hnsw_scans(conn, cat, cat.ann_version)
    print(
        "  HNSW index scans in one call (0: the planner scanned the table instead): "
        + ", ".join(f"{c} {n}" for c, n in scans.items())
    )
    return exact, ann, report_recall(conn, cat, exact, ann, args.recall_users, scans)


def summary(rows: list[tuple[str, Phase, Phase, dict[str, str]]]) -> None:
    print(
        f"\nsummary: p50 ms (x the peer's p50 on the same version); HNSW recall@{K}"
        " (*: that call did not scan the index)"
    )
    print(f"  {'catalog / version':<32}" + "".join(f"{c:>16}" for c in CASES))
    for label, exact, ann, rec in rows:
        for phase in (exact, ann):
            cells = []
            for c in CASES:
                p = median(phase.ms[c])
                base = median(phase.ms["similar peer" if c == "similar" else "peer"])
                cells.append(f"{p:.2f}" if c in PEERS else f"{p:.2f} ({p / base:.1f}x)")
            name = f"{label} / {phase.label.split(' (')[0]}"
            print(f"  {name:<32}" + "".join(f"{x:>16}" for x in cells))
        print(f"  {'':<32}recall@{K}: " + ", ".join(f"{c} {r}" for c, r in rec.items()))
    print(
        f"\nthroughput: requests/s (one user's top {K} each) from {CLIENTS} concurrent clients"
        f" (pgbench -c {CLIENTS} -j {CLIENTS} -M prepared; latency average)"
    )
    print(
        f"  {'catalog / version':<32}"
        + "".join(f"{c:>22}" for c in TPS_CASES)
        + f"{'>= ' + format(TPS_TARGET, 'g'):>10}"
    )
    for label, exact, ann, _ in rows:
        for phase in (exact, ann):
            cells = [tps_cell(phase.tps[c]) for c in TPS_CASES]
            name = f"{label} / {phase.label.split(' (')[0]}"
            verdict = "yes" if meets_target(phase) else "NO"
            print(f"  {name:<32}" + "".join(f"{x:>22}" for x in cells) + f"{verdict:>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000, help="synthetic catalog size")
    ap.add_argument("--users", type=int, default=1_000_000, help="synthetic users")
    ap.add_argument("--calls", type=int, default=1000, help="timed calls per case and version")
    ap.add_argument(
        "--case-seconds",
        type=float,
        default=20.0,
        help=f"fewer calls (at least {MIN_CALLS}) for a case whose calls would take longer",
    )
    ap.add_argument("--warmup", type=int, default=10, help="untimed rounds before the calls")
    ap.add_argument("--recall-users", type=int, default=200, help="users per recall figure")
    ap.add_argument("--build-mem", default="1GB", help="maintenance_work_mem for the HNSW build")
    ap.add_argument("--skip", choices=("movielens", "synthetic"), help="leave one catalog out")
    ap.add_argument(
        "--tps-seconds",
        type=int,
        default=15,
        help=f"seconds of each throughput run (pgbench -T, {CLIENTS} clients)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"serving latency, k = {K}, client-measured over a Unix socket, one session;"
        f" {os.cpu_count()} CPUs; load average at start: {loadavg()}",
        flush=True,
    )
    started = time.perf_counter()
    rows: list[tuple[str, Phase, Phase, dict[str, str]]] = []
    if args.skip != "movielens":
        with (
            movielens_server('{"holdout": 0}') as dsn,
            psycopg.connect(dsn, autocommit=True) as conn,
        ):
            cat = movielens_catalog(conn, rng)
            rows.append(("MovieLens-100K", *bench_catalog(conn, cat, args)))
    if args.skip != "synthetic":
        with Cluster() as cluster:
            dsn = cluster.dsn()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pyrec CASCADE")
            t = time.perf_counter()
            cat = synthetic_catalog(dsn, args, rng)
            cat.setup["total"] = time.perf_counter() - t
            with psycopg.connect(dsn, autocommit=True) as conn:
                label = f"synthetic {size(args.items)} x {size(args.users)}"
                rows.append((label, *bench_catalog(conn, cat, args)))
    summary(rows)
    print(f"whole run {time.perf_counter() - started:.0f} s; load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
