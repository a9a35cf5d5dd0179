"""Batch recommendations: CALL pyrec.batch_recommend for every user vs COPY out, top-k + COPY in.

Targets on this 2-core machine: 200,000 users x 25 recommendations over a 20,000-item catalog
within 30 s, with and without a filter; 1,000,000 users x 25 over 100,000 items within 4
minutes (the summary says met or missed at these two sizes).

The first lines printed name the machine, the versions (PostgreSQL, pgvector, pyrec, and the
client's and the server's Python, numpy and implicit), both processes' thread pools and the
server settings. The cluster runs with production durability (fsync, synchronous_commit and
full_page_writes on) unless --fast says otherwise, and then the first line says so.

Setup, not timed: a throwaway cluster; an items table bb_items (item_id bigint, category one of
a/b/c/d, uniform) and an interactions table bb_interactions (user_id, item_id bigint; Poisson(20)
per user, Zipf-popular items, ~4M rows for 200k users) loaded with binary COPY, indexed on
user_id, VACUUM ANALYZE; a model (pyrec.create_model, items => bb_items) whose active version
has random float32 64-d user and item vectors, written by pyrec_pg.store.vectors.write_version
through the psycopg plpy stub (no training: ALS at this size is bench_training's subject; no
HNSW index, pyrec.ann_min_items = -1: batches score every item exactly, recommend() alone uses it).

pyrec: CALL pyrec.batch_recommend(model, users => NULL (every user of the version), k => 25,
filter, into_table, exclude_seen => true), wall clock from the client, in a fresh session that
has already imported pyrec_pg and implicit's top-k (the peer's imports are not timed either).
Cases: (a) no filter; (b) 'INCLUDE ItemID WHERE Items.category IN ("a", "b")' (about half
the catalog). Phases are polled from pyrec.batch_jobs by a second session (the "scoring"
phase is the first block's scoring and INSERT; "writing" the other blocks, then the primary
key and ANALYZE; "activating" the swap and commit). A finer in-server breakdown comes from
timers wrapped, in that backend only, around pyrec_pg.jobs.batch's steps (_items,
filtered_out, batch_ids, read_vectors, seen_pairs, _score_block, the staging INSERTs, the
primary key, ANALYZE, _swap); the wrappers add microseconds and change nothing else.

The peer, measured in the same run on the same data, is the pipeline a user would otherwise
run, in a fresh process, given its best:
  1. binary COPY out of the version's user and item vectors (ids cast to bigint, parsed with
     numpy); the (user_id, item_id) interactions as one bytea (string_agg of int8send: psycopg
     reads a COPY one message per row, ~7 s more for 4M rows), mapped to rows and columns with
     np.searchsorted into a CSR; with the filter, the allowed item ids;
  2. in one transaction, scoring and COPY in overlapped (the server parses a COPY in its own
     process, so a client need not wait for one to start the other): CREATE TABLE of the new
     output, then one binary COPY of (user_id, item_id, score, rank, source) -- the same
     columns and types as pyrec's output -- into it, while the users are scored in blocks of
     pyrec_pg.jobs.batch.USERS_PER_BLOCK (the batch's block size): block N's rows are encoded
     and written into the open COPY by a second thread (psycopg's copy.write releases the GIL
     on the network, implicit and numpy during their heavy work) while block N+1 is scored,
     at most one scored block waiting for that thread (a queue of one), an error there failing
     the run. Each block is scored by the same selection routine as pyrec's batch, with the
     same threads: implicit's compiled top-k (implicit.cpu.topk.topk: numpy matmul per 100
     users, a heap per row, OpenMP over the batches) with num_threads 0 (every core), called
     through pyrec_pg.ml.topk.top_k as the batch calls it (which hands implicit each user's
     seen items as numpy slices of the CSR, not scipy rows), over the (allowed) items, seen
     items excluded; numpy's BLAS on the server's OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (both
     pools are printed in the header). Timed as one step, "score + COPY in (overlapped)", from
     the CREATE TABLE to the COPY's end, with two figures inside it: the scoring thread's time
     in top_k (the writer running alongside) and the writer's tail, its work after the last
     block is scored (at the smoke size, 20,000 users, there is one block: nothing overlaps);
  3. in the same transaction: primary key (user_id, rank), ANALYZE, drop the previous table,
     rename the new one into place, commit.
Both pipelines replace their previous output from the second round on. Autovacuum is off from
the start (both pipelines ANALYZE their output; a vacuum of one run's output would otherwise
overlap the next run) and each timed run starts after a CHECKPOINT, untimed. Each figure:
--repeat rounds (default 3; fewer is flagged "!!"), pyrec and the peer interleaved so drift
hits both alike, shown as min / median / max. After the runs, untimed: both outputs must hold
the same rows (item, score and source at every (user, rank)); a difference is flagged "!!" and
the run exits with status 1.

Peak memory: the batch backend's VmHWM (peak RSS; includes the shared buffers it touched) and
its private memory (RssAnon) sampled every 20 ms, per phase; the peer process's VmHWM and its
backend's. Every run uses fresh sessions, so each VmHWM is that run's.
Run: .venv/bin/python -m bench.bench_batch [--users N] [--items N] [--repeat N] [--fast]
     [--cases 'no filter,filter'] (the cases run; default both)
Smoke: .venv/bin/python -m bench.bench_batch --users 20000 --items 5000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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
from pyrec_pg.dev.cluster import Cluster
from pyrec_pg.jobs.batch import USERS_PER_BLOCK
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.topk import Codes, Scores, top_k
from pyrec_pg.store.codec import COPY_HEADER, COPY_TRAILER
from pyrec_pg.store.vectors import write_version

from .bench_training import DURABLE, line, mb, proc_status, spread
from .common import header, median, pools, python_info

REPO = Path(__file__).resolve().parent.parent
MODEL = "bench_batch"
ITEMS, INTERACTIONS = "bb_items", "bb_interactions"
K = 25
TARGETS = {(200_000, 20_000): 30.0, (1_000_000, 100_000): 240.0}  # seconds, by (users, items)
DIMS = 64
PER_USER = 20
CATEGORIES = ("a", "b", "c", "d")
FILTER = 'INCLUDE ItemID WHERE Items.category IN ("a", "b")'
ALLOWED = ("a", "b")  # the same rule, for the peer
CASES = (("no filter", None, "all"), ("filter", FILTER, "ab"))  # name, filter, table suffix
PHASES = ("starting", "reading", "scoring", "writing", "activating")  # pyrec.batch_jobs.phase
SAMPLE_SECONDS = 0.02  # memory sampling; the phase is polled every POLL_EVERY samples
POLL_EVERY = 5
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")  # the peer runs with the server's
NOTICE = re.compile(r"(\d+) rows for (\d+) users")  # batch_recommend's closing NOTICE
BINARY_HEADER = len(COPY_HEADER)  # what a binary COPY out starts with: no extension
PAIR = np.dtype([("u", ">i8"), ("i", ">i8")])  # the peer's packed interactions
INTERACTION_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("u", ">i8"), ("li", ">i4"), ("i", ">i8")])


def vector_row(dims: int) -> np.dtype[Any]:
    """A binary COPY row of (bigint id, vector): pgvector sends int16 dim, int16 0, float4s."""
    return np.dtype(
        [
            ("n", ">i2"),
            ("lk", ">i4"),
            ("k", ">i8"),
            ("lv", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("v", ">f4", (dims,)),
        ]
    )


# Installed once per session in the batch backend: timers around pyrec_pg.jobs.batch's steps.
PROBE = """
import json, time
log = GD.get("bench_batch_log")
if log is None:
    from pyrec_pg.jobs import batch
    from pyrec_pg.db import Db
    log = GD["bench_batch_log"] = []

    def wrap(label, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                log.append((label, t, time.perf_counter()))
        return timed

    for name in ("_batch", "_items", "filtered_out", "batch_ids", "read_vectors", "seen_pairs",
                 "_score_block", "_swap"):
        setattr(batch, name, wrap(name, getattr(batch, name)))
    db_run = Db.run

    def run(self, text, *args, **kwargs):
        if text.startswith("INSERT INTO") and "unnest(" in text and "_batch_" in text:
            label = "insert"
        elif "ADD PRIMARY KEY" in text:
            label = "primary key"
        elif text.startswith("ANALYZE"):
            label = "analyze"
        else:
            return db_run(self, text, *args, **kwargs)
        return wrap(label, db_run)(self, text, *args, **kwargs)

    Db.run = run
if action == "read":
    return json.dumps(log)
del log[:]
return None
"""


# ---------------------------------------------------------------------------------------------
# setup


def setup(dsn: str, n_users: int, n_items: int, seed: int) -> tuple[dict[str, float], int]:
    """Tables, model and an active version; returns the setup timings and interaction count."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    category = rng.integers(0, len(CATEGORIES), n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9  # Zipf-like
    rng.shuffle(popularity)
    cdf = np.cumsum(popularity) / popularity.sum()
    users = np.repeat(np.arange(n_users, dtype=np.int64), rng.poisson(PER_USER, n_users))
    items = np.minimum(np.searchsorted(cdf, rng.random(users.size)), n_items - 1).astype(np.int64)
    user_vecs = rng.standard_normal((n_users, DIMS), dtype=np.float32) * 0.1
    item_vecs = rng.standard_normal((n_items, DIMS), dtype=np.float32) * 0.1
    t1 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute(
            f"CREATE TABLE {ITEMS} (item_id bigint PRIMARY KEY, category text NOT NULL);"
            f"CREATE TABLE {INTERACTIONS} (user_id bigint NOT NULL, item_id bigint NOT NULL)"
        )
        with conn.cursor() as cur, cur.copy(f"COPY {ITEMS} FROM STDIN") as copy:
            copy.write("".join(f"{i}\t{CATEGORIES[c]}\n" for i, c in enumerate(category.tolist())))
        stmt = f"COPY {INTERACTIONS} FROM STDIN (FORMAT binary)"
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.write(COPY_HEADER)
            for lo in range(0, users.size, 1_000_000):
                chunk = np.empty(min(1_000_000, users.size - lo), INTERACTION_ROW)
                chunk["n"], chunk["lu"], chunk["li"] = 2, 8, 8
                chunk["u"], chunk["i"] = users[lo : lo + chunk.size], items[lo : lo + chunk.size]
                copy.write(chunk.tobytes())
            copy.write(COPY_TRAILER)
    t2 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE INDEX ON {INTERACTIONS} (user_id)")
        conn.execute(f"VACUUM ANALYZE {ITEMS}, {INTERACTIONS}")
        conn.execute(
            "SELECT pyrec.create_model(%s, %s, items => %s, options => %s)",
            [MODEL, INTERACTIONS, ITEMS, json.dumps({"holdout": 0})],
        )
        conn.execute(
            "CREATE FUNCTION public.bench_batch_probe(action text) RETURNS text"
            f" LANGUAGE plpython3u AS $probe${PROBE}$probe$"
        )
    t3 = time.perf_counter()
    counts = np.bincount(items, minlength=n_items).astype(np.float32)
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SET pyrec.ann_min_items = -1")  # no HNSW index: batches score exactly
        db = Db(PsycopgPlpy(conn))
        data = Interactions(
            users=np.arange(n_users).astype(str),
            items=np.arange(n_items).astype(str),
            matrix=sp.csr_matrix(
                (np.ones(users.size, dtype=np.float32), (users, items)), shape=(n_users, n_items)
            ),
            rows_read=int(users.size),
        )
        info = Trained(recipe="als", params={"factors": DIMS}, metrics={}, training_seconds=0.0)
        write_version(db, get_model(db, MODEL), data, Factors(user_vecs, item_vecs), counts, info)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        users_table, items_table = version_tables(conn)
        conn.execute(f"VACUUM ANALYZE pyrec.{users_table}, pyrec.{items_table}")
    t4 = time.perf_counter()
    return {
        "generate": t1 - t0,
        "load (COPY)": t2 - t1,
        "index + VACUUM ANALYZE + model": t3 - t2,
        "version (write_version)": t4 - t3,
    }, int(users.size)


def version_tables(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    row = conn.execute(
        "SELECT users_table, items_table FROM pyrec.model_versions"
        " WHERE model = %s AND status = 'active'",
        [MODEL],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def quiesce(dsn: str) -> None:
    """Flush dirty buffers; wait (up to 2 min) until no autovacuum worker is busy (it is off
    from setup on: belt and braces)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                " AND state IS DISTINCT FROM 'idle' AND query <> ''"
            ).fetchone()
            if not busy or not busy[0]:
                return
            time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# pyrec


class Watcher(threading.Thread):
    """Samples a backend's memory and polls its batch job's phase until stopped."""

    def __init__(self, dsn: str, pid: int, after_run: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.pid, self.after_run = dsn, pid, after_run
        self.phases: dict[str, float] = {}  # phase -> perf_counter when first seen
        self.anon: dict[str, int] = {}  # phase -> peak RssAnon (bytes) while in it
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            phase = "starting"
            for tick in itertools.count():
                if self.stop.is_set():
                    return
                anon = proc_status(self.pid).get("RssAnon", 0)
                self.anon[phase] = max(self.anon.get(phase, 0), anon)
                if tick % POLL_EVERY == 0:
                    row = conn.execute(
                        "SELECT phase FROM pyrec.batch_jobs WHERE pid = %s AND run_id > %s"
                        " ORDER BY run_id DESC LIMIT 1",
                        [self.pid, self.after_run],
                    ).fetchone()
                    if row is not None:
                        phase = row[0]
                        self.phases.setdefault(phase, time.perf_counter())
                self.stop.wait(SAMPLE_SECONDS)


@dataclass
class Run:
    total: float
    steps: dict[str, float]
    peak: int  # bytes, VmHWM: the batch backend's, or the peer process's
    baseline: int  # bytes, RSS before the work
    rows: int
    users: int
    anon: dict[str, int] = field(default_factory=dict)  # pyrec: peak RssAnon by phase
    breakdown: dict[str, float] = field(default_factory=dict)  # pyrec: in-server timers
    backend_peak: int = 0  # the peer's backend VmHWM
    pools: str = ""  # the peer's thread pools (BLAS, OpenMP), read before its clock started


@dataclass
class Case:
    name: str
    flt: str | None
    pyrec_table: str
    peer_table: str
    pyrec: list[Run] = field(default_factory=list)
    peer: list[Run] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


def breakdown(log: list[list[Any]], total: float) -> dict[str, float]:
    """Seconds per step from the in-server timers; the buckets add up to the total."""
    spent: dict[str, float] = {}
    for label, t0, t1 in log:
        spent[label] = spent.get(label, 0.0) + t1 - t0
    starts = {label: t0 for label, t0, _ in reversed(log)}  # the first start of each
    loop = starts.get("primary key", 0.0) - starts.get("_score_block", 0.0)
    out = {
        "items": spent.get("_items", 0.0),
        "filter": spent.get("filtered_out", 0.0),
        "user ids": spent.get("batch_ids", 0.0),
        "user vectors": spent.get("read_vectors", 0.0),
        "seen": spent.get("seen_pairs", 0.0),
        "score (top_k)": spent.get("_score_block", 0.0),
        "INSERT": spent.get("insert", 0.0),
        "to lists": loop - spent.get("_score_block", 0.0) - spent.get("insert", 0.0),
        "primary key": spent.get("primary key", 0.0),
        "ANALYZE": spent.get("analyze", 0.0),
        "swap": spent.get("_swap", 0.0),
    }
    out["other"] = total - sum(out.values())
    return out


BUCKETS = {  # where the time goes: breakdown keys by stage
    "reading": ("items", "filter", "user ids", "user vectors", "seen"),
    "scoring": ("score (top_k)",),
    "writing": ("INSERT", "to lists", "primary key", "ANALYZE"),
    "swap": ("swap",),
    "other": ("other",),
}


def run_pyrec(dsn: str, flt: str | None, into: str) -> Run:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pyrec._python()")  # import pyrec_pg, numpy, scipy in this backend
        conn.execute("DO LANGUAGE plpython3u $$import implicit.cpu.topk$$")  # as the peer has
        conn.execute("SELECT public.bench_batch_probe('install')")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        last = conn.execute("SELECT coalesce(max(run_id), 0) FROM pyrec._runs").fetchone()
        before = proc_status(pid)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        watcher = Watcher(dsn, pid, int(last[0]))  # type: ignore[index]
        watcher.start()
        started = time.perf_counter()
        conn.execute(
            "CALL pyrec.batch_recommend(%s, k => %s, filter => %s, into_table => %s)",
            [MODEL, K, flt, into],
        )
        ended = time.perf_counter()
        watcher.stop.set()
        watcher.join()
        after = proc_status(pid)
        log = json.loads(conn.execute("SELECT public.bench_batch_probe('read')").fetchone()[0])  # type: ignore[index]
        job = conn.execute(
            "SELECT status, rows_written, message FROM pyrec.batch_jobs WHERE pid = %s"
            " AND run_id > %s ORDER BY run_id DESC LIMIT 1",
            [pid, int(last[0])],  # type: ignore[index]
        ).fetchone()
    assert job is not None and job[0] == "succeeded", (job, notices)
    said = next((m for m in map(NOTICE.match, notices) if m), None)  # "<rows> rows for <users>"
    watcher.phases["starting"] = started  # lock, run row: until "reading" is seen
    marks = [*sorted(watcher.phases.items(), key=lambda kv: kv[1]), ("end", ended)]
    seen = {p: t1 - t0 for (p, t0), (_, t1) in itertools.pairwise(marks)}
    return Run(
        total=ended - started,
        steps={p: seen.get(p, 0.0) for p in PHASES},
        peak=after.get("VmHWM", 0),
        baseline=before.get("VmRSS", 0),
        rows=int(job[1]),
        users=int(said[2]) if said else -1,
        anon=watcher.anon,
        breakdown=breakdown(log, ended - started),
    )


# ---------------------------------------------------------------------------------------------
# peer


def run_peer(dsn: str, flt: bool, out: str, blas_env: dict[str, str]) -> Run:
    """The peer pipeline in a fresh process (so its memory peak is its own), with the
    server's BLAS and OpenMP thread settings."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV} | blas_env
    cmd = [sys.executable, "-m", "bench.bench_batch", "--peer", dsn, str(int(flt)), out]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"peer pipeline failed:\n{done.stdout}{done.stderr}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(
        total=res["total"],
        steps=res["steps"],
        peak=res["peak"],
        baseline=res["after_imports"],
        rows=res["rows"],
        users=res["users"],
        backend_peak=res["backend_peak"],
        pools=res["pools"],
    )


def copy_out(conn: psycopg.Connection[Any], query: str) -> bytearray:
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            buf += chunk
    return buf


def binary_rows(buf: bytearray, dtype: np.dtype[Any], fields: int) -> npt.NDArray[Any]:
    count = (len(buf) - BINARY_HEADER - len(COPY_TRAILER)) // dtype.itemsize
    rows = np.frombuffer(buf, dtype, offset=BINARY_HEADER, count=count)
    assert (rows["n"] == fields).all()
    return rows


def read_vectors(
    conn: psycopg.Connection[Any], table: str, key: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(ids sorted, their vectors) of a version table, ids cast to bigint."""
    buf = copy_out(conn, f"SELECT {key}::bigint, embedding FROM pyrec.{table}")
    rows = binary_rows(buf, vector_row(DIMS), 2)
    order = np.argsort(rows["k"], kind="stable")
    return rows["k"][order].astype(np.int64), rows["v"][order].astype(np.float32)


def codes_of(ids: npt.NDArray[np.int64], sorted_ids: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Positions of ids in sorted_ids, -1 where absent."""
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def encode_ids(ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[Any]]:
    text = ids.astype(str)
    return np.char.encode(text, "ascii"), np.char.str_len(text)


def output_chunks(
    users: tuple[npt.NDArray[np.bytes_], npt.NDArray[Any]],
    items: tuple[npt.NDArray[np.bytes_], npt.NDArray[Any]],
    u: npt.NDArray[Any],
    i: npt.NDArray[Any],
    scores: npt.NDArray[np.float32],
    ranks: npt.NDArray[Any],
) -> Iterator[bytes]:
    """Binary COPY rows of (user_id text, item_id text, score real, rank int, source text):
    rows whose ids have the same text lengths share a fixed layout, one numpy record each
    (row order in a COPY does not matter)."""
    lu, li = users[1][u], items[1][i]
    key = lu * 64 + li
    for value in np.unique(key).tolist():
        a, b = divmod(value, 64)
        sel = np.flatnonzero(key == value)
        out = np.empty(
            sel.size,
            [
                ("n", ">i2"),
                ("lu", ">i4"),
                ("u", f"S{a}"),
                ("li", ">i4"),
                ("i", f"S{b}"),
                ("ls", ">i4"),
                ("s", ">f4"),
                ("lr", ">i4"),
                ("r", ">i4"),
                ("lsrc", ">i4"),
                ("src", "S5"),
            ],
        )
        out["n"], out["lu"], out["li"], out["ls"], out["lr"], out["lsrc"] = 5, a, b, 4, 4, 5
        out["u"] = users[0][u[sel]].astype(f"S{a}")
        out["i"] = items[0][i[sel]].astype(f"S{b}")
        out["s"], out["r"], out["src"] = scores[sel], ranks[sel], b"model"
        yield out.tobytes()


class BlockWriter(threading.Thread):
    """Writes scored blocks of users into an open binary COPY from its own thread, so block
    N's rows go to the server while block N+1 is scored: the signature, each block's rows
    (catalog codes, then output_chunks), the trailer after the last block. At most one
    scored block waits for it (plus the one it writes); its error is re-raised in the scoring
    thread by put() or finish(), so it fails the run."""

    def __init__(
        self,
        copy: psycopg.Copy,
        users: tuple[npt.NDArray[np.bytes_], npt.NDArray[Any]],
        items: tuple[npt.NDArray[np.bytes_], npt.NDArray[Any]],
        allowed: npt.NDArray[Any],
    ) -> None:
        super().__init__(name="copy-writer", daemon=True)
        self.copy, self.users, self.items, self.allowed = copy, users, items, allowed
        self.blocks: queue.Queue[tuple[int, Codes, Scores] | None] = queue.Queue(maxsize=1)
        self.abort = threading.Event()
        self.error: BaseException | None = None
        self.rows = 0
        self.users_written = 0

    def run(self) -> None:
        try:
            self.copy.write(COPY_HEADER)
            while (block := self.blocks.get()) is not None:
                if self.abort.is_set():
                    return
                self.write_block(*block)
            if not self.abort.is_set():
                self.copy.write(COPY_TRAILER)
        except BaseException as exc:  # re-raised in the scoring thread
            self.error = exc

    def write_block(self, lo: int, got: Codes, scores: Scores) -> None:
        codes = np.where(got >= 0, self.allowed[np.maximum(got, 0)], -1)
        valid = codes >= 0  # fewer than k allowed unseen items: ranks 1..n
        u = np.broadcast_to(np.arange(lo, lo + codes.shape[0])[:, None], codes.shape)[valid]
        ranks = np.broadcast_to(np.arange(1, K + 1, dtype=np.int32), codes.shape)[valid]
        for chunk in output_chunks(self.users, self.items, u, codes[valid], scores[valid], ranks):
            if self.abort.is_set():
                return
            self.copy.write(chunk)
        self.rows += int(u.size)
        self.users_written += int(valid.any(axis=1).sum())

    def _offer(self, item: tuple[int, Codes, Scores] | None) -> bool:
        """Queue item, waiting while one already waits; False if the writer has stopped."""
        while self.is_alive():
            try:
                self.blocks.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def put(self, block: tuple[int, Codes, Scores]) -> None:
        """Queue a scored block; raises if the writer died."""
        if not self._offer(block):
            raise RuntimeError("the peer's COPY writer stopped") from self.error

    def finish(self, failed: bool) -> None:
        """End the writer: after the queued blocks and the trailer, or at once when the
        scoring failed (the COPY is then aborted); re-raise the writer's error."""
        if failed:
            self.abort.set()
        self._offer(None)
        self.join()
        if self.error is not None and not failed:
            raise RuntimeError("the peer's COPY writer failed") from self.error


def peer_main(dsn: str, flt: bool, out: str) -> None:
    """Child process: run the peer pipeline, print its timings and memory as one JSON line."""
    # implicit's top-k loaded before the clock, as in pyrec's session; an ImportError here
    # stops the run rather than let top_k fall back to its slower numpy selection
    import implicit.cpu.topk  # noqa: F401

    threads = pools(python_info())
    after_imports = proc_status(os.getpid()).get("VmRSS", 0)
    with psycopg.connect(dsn) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        users_table, items_table = version_tables(conn)
        conn.commit()
        t0 = time.perf_counter()
        # 1. COPY out: vectors, what each user has seen, the allowed items
        user_ids, user_vecs = read_vectors(conn, users_table, "user_id")
        item_ids, item_vecs = read_vectors(conn, items_table, "item_id")
        allowed = np.arange(item_ids.size)
        if flt:
            rows = conn.execute(
                f"SELECT item_id FROM {ITEMS} WHERE category = ANY(%s)", [list(ALLOWED)]
            ).fetchall()
            found = codes_of(np.asarray([r[0] for r in rows], dtype=np.int64), item_ids)
            allowed = np.unique(found[found >= 0])
        # scored in the batch's column order (its catalog is ordered by the text id): the
        # top-k breaks ties between equal scores by column, so the outputs compare row for row
        allowed = allowed[np.argsort(item_ids[allowed].astype(str), kind="stable")]
        t_vectors = time.perf_counter()
        column = np.full(item_ids.size, -1, dtype=np.int64)  # catalog code -> scored column
        column[allowed] = np.arange(allowed.size)
        packed = conn.execute(
            f"SELECT string_agg(int8send(user_id) || int8send(item_id), ''::bytea)"
            f" FROM {INTERACTIONS}",
            binary=True,
        ).fetchone()
        pairs = np.frombuffer(packed[0] if packed else b"", PAIR)
        su = codes_of(pairs["u"].astype(np.int64), user_ids)
        si = codes_of(pairs["i"].astype(np.int64), item_ids)
        si = np.where(si >= 0, column[si], -1)
        keep = (su >= 0) & (si >= 0)
        seen = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (su[keep], si[keep])),
            shape=(user_ids.size, allowed.size),
        )
        del pairs, su, si, keep
        conn.commit()
        t1 = time.perf_counter()
        # 2. one transaction: a new table, then score in the batch's blocks while a second
        # thread COPYs the previous block's rows into it; scored by the routine pyrec's batch
        # scores with (implicit's top-k), called as the batch calls it: every allowed item,
        # seen items excluded, its default threads
        enc_users, enc_items = encode_ids(user_ids), encode_ids(item_ids)
        stage, target = sql.Identifier(f"{out}_new"), sql.Identifier(out)
        in_top_k = 0.0
        catalog = np.ascontiguousarray(item_vecs[allowed])  # once, not per block
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (user_id text NOT NULL, item_id text NOT NULL,"
                    " score real NOT NULL, rank integer NOT NULL, source text NOT NULL)"
                ).format(stage)
            )
            stmt = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(stage)
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                writer = BlockWriter(copy, enc_users, enc_items, allowed)
                writer.start()
                failed = True
                try:
                    for lo in range(0, user_ids.size, USERS_PER_BLOCK):
                        hi = min(lo + USERS_PER_BLOCK, user_ids.size)
                        ts = time.perf_counter()
                        got, scores = top_k(
                            catalog,
                            user_vecs[lo:hi],
                            K,
                            seen[lo:hi],
                            np.zeros(0, dtype=np.int32),
                        )
                        in_top_k += time.perf_counter() - ts
                        writer.put((lo, got, scores))
                    failed = False
                finally:
                    t_scored = time.perf_counter()
                    writer.finish(failed)  # joins the writer before the COPY ends or aborts
            t2 = time.perf_counter()  # the COPY has ended: the server holds every row
            # 3. primary key, ANALYZE, replace the previous table; commit
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (user_id, rank)").format(stage))
            conn.execute(sql.SQL("ANALYZE {}").format(stage))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, target))
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(f"{out}_new_pkey"), sql.Identifier(f"{out}_pkey")
                )
            )
        t3 = time.perf_counter()
        backend_peak = proc_status(pid).get("VmHWM", 0)
    print(
        json.dumps(
            {
                "total": t3 - t0,
                "steps": {
                    "COPY out vectors (+ allowed ids)": t_vectors - t0,
                    "interactions out + seen CSR": t1 - t_vectors,
                    "score + COPY in (overlapped)": t2 - t1,
                    "  of which top_k (scoring thread)": in_top_k,
                    "  of which writer's tail (after scoring)": t2 - t_scored,
                    "primary key + ANALYZE + swap": t3 - t2,
                },
                "peak": proc_status(os.getpid()).get("VmHWM", 0),
                "after_imports": after_imports,
                "backend_peak": backend_peak,
                "rows": writer.rows,
                "users": writer.users_written,
                "pools": threads,
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# checks and report


def check(dsn: str, case: Case) -> None:
    """Untimed: both outputs hold the same rows (the same routine on the same vectors picks the
    same items, ties included, with the same scores); nothing seen or filtered out slipped
    into pyrec's."""
    p, q = sql.Identifier(case.pyrec_table), sql.Identifier(case.peer_table)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a full join: a (user, rank) only one side wrote counts as a difference
        same = conn.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE (p.item_id, p.score, p.source)"
                " = (q.item_id, q.score, q.source)),"
                " count(*) FILTER (WHERE p.item_id = q.item_id), count(*),"
                " coalesce(max(abs(p.score - q.score)), 0)"
                " FROM {} p FULL JOIN {} q USING (user_id, rank)"
            ).format(p, q)
        ).fetchone()
        seen = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {} p JOIN {} x"
                " ON x.user_id = p.user_id::bigint AND x.item_id = p.item_id::bigint"
            ).format(p, sql.Identifier(INTERACTIONS))
        ).fetchone()
        outside = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {} p JOIN {} i ON i.item_id = p.item_id::bigint"
                " WHERE %s AND i.category <> ALL(%s)"
            ).format(p, sql.Identifier(ITEMS)),
            [case.flt is not None, list(ALLOWED)],
        ).fetchone()
    assert same is not None and seen is not None and outside is not None
    case.checks = {
        "identical": int(same[0]),
        "same item": int(same[1]),
        "pairs": int(same[2]),
        "score diff": float(same[3]),
        "seen": int(seen[0]),
        "outside": int(outside[0]),
    }


def equal(case: Case) -> bool:
    """The peer's output equals pyrec's, and pyrec's holds nothing it should not."""
    c = case.checks
    return c["identical"] == c["pairs"] and not c["seen"] and not c["outside"]


def report(case: Case) -> None:
    p, q = case.pyrec, case.peer
    print(
        f"\n({case.name}) filter: {case.flt or 'none'}; seconds, min / median / max of"
        f" {len(p)} runs",
        flush=True,
    )
    peer_total = median([r.total for r in q])
    pyrec_total = median([r.total for r in p])
    print(line("pyrec: CALL pyrec.batch_recommend", [r.total for r in p], peer_total))
    for phase in PHASES:
        print(line(f"    phase {phase} (pyrec.batch_jobs)", [r.steps.get(phase, 0.0) for r in p]))
    parts = []
    for stage, keys in BUCKETS.items():
        inner = ", ".join(f"{k} {median([r.breakdown[k] for r in p]):.2f}" for k in keys)
        total = median([sum(r.breakdown[k] for k in keys) for r in p])
        share = f"{total:.2f} s, {100 * total / pyrec_total:.0f}%"
        parts.append(f"{stage} {share}" + (f": {inner}" if len(keys) > 1 else ""))
    print("    where the time goes (in-server timers, medians):")
    for part in parts:
        print(f"      {part}")
    print(line("peer: COPY out + top-k, COPY in overlapped", [r.total for r in q]))
    for step in q[0].steps:
        print(line(f"    {step}", [r.steps[step] for r in q]))
    print(f"  ratio pyrec / peer (median totals): {pyrec_total / peer_total:.2f}x")
    print(f"  peer process's thread pools, read before its clock started: {q[-1].pools}")
    c = case.checks
    print(
        f"  rows written: pyrec {p[-1].rows:,} for {p[-1].users:,} users,"
        f" peer {q[-1].rows:,} for {q[-1].users:,} users; (user, rank) pairs with the same"
        f" item, score and source: {c['identical']:,} of {c['pairs']:,} (same item"
        f" {c['same item']:,}, largest score difference {c['score diff']:.3g}); seen items in"
        f" pyrec's output: {c['seen']}"
        + (f"; items outside the filter: {c['outside']}" if case.flt else "")
    )
    if not equal(case):
        print("  !! the outputs differ: the peer's rows are not pyrec's (see the counts above)")
    anon = ", ".join(
        f"{ph} {mb([r.anon.get(ph, 0) for r in p])}" for ph in PHASES if p[0].anon.get(ph)
    )
    print(
        f"  peak memory, pyrec batch backend: VmHWM {mb([r.peak for r in p])}"
        f" (RSS {mb([r.baseline for r in p])} before the CALL);"
        f" private (RssAnon) peak by phase: {anon}"
    )
    print(
        f"  peak memory, peer process: VmHWM {mb([r.peak for r in q])}"
        f" ({mb([r.baseline for r in q])} after imports); its backend's VmHWM"
        f" {mb([r.backend_peak for r in q])}",
        flush=True,
    )


def server_blas_env(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The thread settings in the server's environment, for the peer to run with."""
    conn.execute(
        "CREATE FUNCTION pg_temp.bench_batch_env() RETURNS text LANGUAGE plpython3u AS $py$"
        f"import json, os\nreturn json.dumps({{k: os.environ[k] for k in {list(BLAS_ENV)!r}"
        " if k in os.environ})$py$"
    )
    row = conn.execute("SELECT pg_temp.bench_batch_env()").fetchone()
    assert row is not None
    env: dict[str, str] = json.loads(row[0])
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument(
        "--repeat", type=int, default=3, help="rounds (each: both cases, pyrec then peer)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--cases",
        default=",".join(name for name, _, _ in CASES),
        help="comma-separated cases to run (default: all)",
    )
    ap.add_argument("--fast", action="store_true", help="durability off (printed first)")
    ap.add_argument("--peer", nargs=3, help=argparse.SUPPRESS)  # child: dsn, filter 0/1, out
    args = ap.parse_args()
    if args.peer:
        peer_main(args.peer[0], args.peer[1] == "1", args.peer[2])
        return
    started = time.perf_counter()
    wanted = args.cases.split(",")
    unknown = set(wanted) - {name for name, _, _ in CASES}
    if unknown:
        ap.error(
            f"unknown case(s) {', '.join(sorted(unknown))}:"
            f" choose from {', '.join(n for n, _, _ in CASES)}"
        )
    cases = [
        Case(name, flt, f"recs_pyrec_{suffix}", f"recs_peer_{suffix}")
        for name, flt, suffix in CASES
        if name in wanted
    ]
    # autovacuum off in postgresql.conf from the start: no vacuum of outputs mid-run, and the
    # header reads the setting every session has (a reload reaches sessions asynchronously)
    settings = {"autovacuum": "off"} | ({} if args.fast else DURABLE)
    with Cluster(settings=settings) as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
            title = f"batch top-{K}, exclude_seen, every user of the version, {DIMS}-d float32"
            for text in header(conn, title):
                print(text, flush=True)
            blas_env = server_blas_env(conn)
        print(
            f"peer: binary COPY out + implicit's top-k through pyrec_pg.ml.topk.top_k (the"
            f" batch's routine and threads) in blocks of {USERS_PER_BLOCK:,} users, each"
            f" block's binary COPY in overlapped with scoring the next, with the server's"
            f" {', '.join(f'{k}={v}' for k, v in blas_env.items()) or 'default threads'}",
            flush=True,
        )
        if args.repeat < 3:
            print(f"!! {args.repeat} run(s) per figure: fewer than 3", flush=True)
        timings, n_pairs = setup(dsn, args.users, args.items, args.seed)
        print(
            f"\n{args.users:,} users x {args.items:,} items, {n_pairs:,} interactions"
            f" ({n_pairs / args.users:.1f} per user), categories {'/'.join(CATEGORIES)}"
        )
        print("  setup, not timed: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        for n in range(1, args.repeat + 1):
            for case in cases:  # pyrec and peer interleaved, so drift hits both alike
                quiesce(dsn)
                case.pyrec.append(run_pyrec(dsn, case.flt, f"public.{case.pyrec_table}"))
                quiesce(dsn)
                case.peer.append(run_peer(dsn, case.flt is not None, case.peer_table, blas_env))
                print(
                    f"  round {n}, {case.name}: pyrec {case.pyrec[-1].total:.1f} s,"
                    f" peer {case.peer[-1].total:.1f} s (1-min load average now"
                    f" {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)",
                    flush=True,
                )
        for case in cases:
            check(dsn, case)
            report(case)
    # the targets, by size: 200k users x 20k items within 30 s, 1M users x 100k items within 4
    # minutes; other sizes have none
    target = TARGETS.get((args.users, args.items))
    print(
        f"\nsummary ({args.users:,} users x {K}, {args.items:,} items; seconds, min / median /"
        f" max of {args.repeat} runs; ratio of the medians, pyrec / peer):"
    )
    print(
        f"  {'case':<10} {'pyrec min / median / max':^27}   {'peer min / median / max':^27}"
        f" {'ratio':>7}  {'outputs':<9}"
        + (f"  target: pyrec <= {target:.0f} s" if target else "  target: none at this size")
    )
    for c in cases:
        a, b = [r.total for r in c.pyrec], [r.total for r in c.peer]
        ratio = median(a) / median(b)
        verdict = ("met" if median(a) <= target else "missed") if target else "n/a"
        same = "equal" if equal(c) else "!! differ"
        print(f"  {c.name:<10} {spread(a)}   {spread(b)} {ratio:6.2f}x  {same:<9}  {verdict}")
    print(
        f"whole run {time.perf_counter() - started:.0f} s;"
        f" load average at end: {Path('/proc/loadavg').read_text().strip()}"
    )
    if not all(equal(c) for c in cases):
        sys.exit(1)


if __name__ == "__main__":
    main()
