"""Training end to end on synthetic data: CALL pyrec.train vs the pipeline a user would write.

The first lines printed name the machine, the versions and the server settings; the cluster
runs with production durability (fsync, synchronous_commit and full_page_writes on) unless
--fast says otherwise, and then the first line says so.

Data: pyrec_pg.dev.synthetic at each --sizes (Zipf popularity, 20 taste clusters), loaded by
COPY; ids are bigint, and (--ids int,text, the default) a text copy of the same rows with ids
'cust-<n>' / 'sku-<n>' in a second table, so both id types train the same matrix.

pyrec: CALL pyrec.train on an "als" model (64 factors, 15 iterations, holdout 0: no evaluation
fit), from the table to active pgvector tables, wall clock from the client, in a session that
has already imported pyrec_pg and implicit (the peer's imports are not timed either); its
phases are polled from pyrec._runs by a second session.

The peer, measured in the same run on the same data, is given its best: in a fresh process,
  1. psql's COPY (SELECT user, item FROM t) TO STDOUT (FORMAT csv) into a pipe (the COPY loop
     in C, not one Python message per row), parsed by pandas.read_csv(engine="pyarrow"), ids
     numbered by pandas.factorize, a scipy CSR matrix of counts (duplicates summed);
  2. implicit's AlternatingLeastSquares (conjugate gradient, float32) at the same factors,
     iterations and regularization, with as many threads as pyrec's ALS uses (every core);
  3. one binary COPY each of the user and item factors into new tables with a vector(64)
     column (rows built by numpy, not formatted as text), then primary keys and ANALYZE, in
     one transaction.
Confidence: pyrec uses c = 1 + alpha * count (alpha 2). implicit (0.7, cpu/_als.pyx) takes its
alpha times the matrix value as c itself, so the peer passes 1 + 2 * count with implicit's
alpha = 1: both fit the same objective.

Each figure: --repeat runs (default 3) of each pipeline, interleaved so drift hits both, shown
as min / median / max. Peak memory: the training backend's VmHWM (peak RSS; it includes
shared buffers it touched) and its private memory (RssAnon) sampled every 20 ms, per phase,
with bytes per (user, item) pair; the peer process's VmHWM and its backend's. Then 1% new
events and one CALL pyrec.train(model, mode => 'update') per id type, --repeat times (each
after 1% more events; --no-update skips them).
Run: .venv/bin/python -m bench.bench_training [--sizes 1M,10M] [--ids int,text] [--repeat 3]
     smoke: --sizes 100k --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import scipy.sparse as sp
from psycopg import sql

from pyrec_pg.dev import synthetic
from pyrec_pg.dev.cluster import PG_BIN, Cluster
from pyrec_pg.store.codec import COPY_HEADER, COPY_TRAILER

from .common import median

REPO = Path(__file__).resolve().parent.parent
FACTORS = 64
ITERATIONS = 15
REGULARIZATION = 30.0  # pyrec's als defaults
ALPHA = 2.0
THREADS = os.cpu_count() or 1  # pyrec's ALS uses every core (params.threads 0)
SAMPLE_SECONDS = 0.02
MB = 1024 * 1024
PHASES = ("starting", "reading", "evaluating", "training", "writing")  # pyrec._runs.phase
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
INDEX_STEP = "of which indexes"  # the peer's step when peer_pipeline is given index_items


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out


class Watcher(threading.Thread):
    """Samples a backend's memory, polls its training run's phase and notes its index
    builds until stopped."""

    def __init__(self, dsn: str, pid: int, after_run: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.pid, self.after_run = dsn, pid, after_run
        self.phases: dict[str, float] = {}  # phase -> perf_counter when first seen
        self.anon: dict[str, int] = {}  # phase -> peak RssAnon (bytes) while in it
        self.index: list[float] = []  # perf_counter at each sample that saw an HNSW build
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            phase = "starting"
            while not self.stop.is_set():
                anon = proc_status(self.pid).get("RssAnon", 0)
                self.anon[phase] = max(self.anon.get(phase, 0), anon)
                row = conn.execute(
                    # the version's tables get their primary keys while empty: an index
                    # build seen while writing is an HNSW index (its catalog rows are not
                    # visible outside the training's transaction to tell by access method)
                    "SELECT (SELECT phase FROM pyrec._runs WHERE pid = %s AND run_id > %s"
                    " ORDER BY run_id DESC LIMIT 1), EXISTS (SELECT 1 FROM"
                    " pg_stat_progress_create_index p WHERE p.pid = %s)",
                    [self.pid, self.after_run, self.pid],
                ).fetchone()
                assert row is not None
                if row[0] is not None:
                    phase = row[0]
                    self.phases.setdefault(phase, time.perf_counter())
                if row[1] and phase == "writing":
                    self.index.append(time.perf_counter())
                self.stop.wait(SAMPLE_SECONDS)


@dataclass
class Run:
    total: float
    steps: dict[str, float]
    peak: int  # bytes, VmHWM: the training backend's, or the peer process's
    baseline: int  # bytes, RSS before the work: the backend's after import, the peer's after import
    shape: tuple[int, int, int]  # users, items, pairs
    anon: dict[str, int] = field(default_factory=dict)  # pyrec: peak RssAnon by phase
    backend_peak: int = 0  # the peer's backend VmHWM
    anon_base: int = 0  # pyrec: the backend's RssAnon before the CALL
    rows: int = 0  # pyrec: interactions read


@dataclass
class Case:
    """One size and id type: its runs of both pipelines."""

    n: int
    ids: str  # int | text
    setup: dict[str, float]
    pyrec: list[Run] = field(default_factory=list)
    peer: list[Run] = field(default_factory=list)
    update: list[float] = field(default_factory=list)  # CALL pyrec.train(mode => 'update')

    @property
    def table(self) -> str:
        return f"syn_{self.n}_{self.ids}"

    @property
    def model(self) -> str:
        return f"bench_{self.n}_{self.ids}"


def run_update(dsn: str, case: Case) -> float:
    """1% new events (existing users, other items), then an update training: seconds."""
    t = sql.Identifier(case.table)
    other = "item_id % (SELECT max(item_id) FROM {t}) + 1"
    if case.ids == "text":
        other = "'sku-' || ((substr(item_id, 5)::bigint + 1) % 1000)"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT user_id, " + other + " FROM {t}"
                " TABLESAMPLE BERNOULLI (1) REPEATABLE (7)"
            ).format(t=t)
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))
        conn.execute("SELECT pyrec._python()")
        started = time.perf_counter()
        conn.execute("CALL pyrec.train(%s, mode => 'update')", [case.model])
        return time.perf_counter() - started


def run_pyrec(dsn: str, model: str) -> Run:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pyrec._python()")  # import pyrec_pg, numpy, scipy in this backend
        conn.execute("DO LANGUAGE plpython3u $$import implicit.cpu.als$$")  # as the peer has
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        last = conn.execute("SELECT coalesce(max(run_id), 0) FROM pyrec._runs").fetchone()
        before = proc_status(pid)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        watcher = Watcher(dsn, pid, int(last[0]))  # type: ignore[index]
        watcher.start()
        started = time.perf_counter()
        conn.execute("CALL pyrec.train(%s)", [model])
        ended = time.perf_counter()
        watcher.stop.set()
        watcher.join()
        after = proc_status(pid)
        version = conn.execute(
            "SELECT v.n_users, v.n_items, v.n_interactions, r.rows_read"
            " FROM pyrec.model_versions v JOIN pyrec.training_runs r"
            " ON r.model = v.model AND r.version = v.version"
            " WHERE v.model = %s AND v.status = 'active'",
            [model],
        ).fetchone()
    assert version is not None, notices
    watcher.phases["starting"] = started  # lock, run row: until "reading" is seen
    marks = [*sorted(watcher.phases.items(), key=lambda kv: kv[1]), ("end", ended)]
    seen = {p: t1 - t0 for (p, t0), (_, t1) in itertools.pairwise(marks)}
    steps = {p: seen.get(p, 0.0) for p in PHASES}
    return Run(
        total=ended - started,
        steps=steps,
        peak=after.get("VmHWM", 0),
        baseline=before.get("VmRSS", 0),
        shape=(int(version[0]), int(version[1]), int(version[2])),
        anon=watcher.anon,
        anon_base=before.get("RssAnon", 0),
        rows=int(version[3] or 0),
    )


def run_peer(
    dsn: str,
    table: str,
    out: str,
    ids: str,
    module: str = "bench.bench_training",
    extra: Sequence[str] = (),
) -> Run:
    """The peer pipeline in a fresh process (so its memory peak is its own): `module`'s
    --peer entry point, which hands its arguments (and `extra`, its own) to peer_pipeline."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", module, "--peer", dsn, table, out, ids, *extra]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"peer pipeline failed:\n{done.stdout}{done.stderr}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(
        total=res["total"],
        steps=res["steps"],
        peak=res["peak"],
        baseline=res["after_imports"],
        shape=tuple(res["shape"]),
        backend_peak=res["backend_peak"],
    )


def read_pairs(dsn: str, table: str, ids: str) -> tuple[sp.csr_matrix, Any, Any]:
    """Every (user, item) row through psql's COPY into a pipe, parsed by pandas (pyarrow),
    numbered by pandas.factorize, counted into a CSR confidence matrix."""
    import pandas as pd

    query = f"\\copy (SELECT user_id, item_id FROM {table}) TO STDOUT (FORMAT csv)"
    cmd = [str(PG_BIN / "psql"), "-X", "-q", "-d", dsn, "-c", query]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as psql:
        kind = str if ids == "text" else "int64"
        frame = pd.read_csv(
            psql.stdout, engine="pyarrow", header=None, names=["u", "i"], dtype=kind
        )
    if psql.returncode != 0:
        raise RuntimeError(f"psql exited with {psql.returncode}")
    u, users = pd.factorize(frame["u"])
    i, items = pd.factorize(frame["i"])
    del frame
    ones = np.ones(u.size, dtype=np.float32)
    counts = sp.csr_matrix((ones, (u, i)), shape=(users.size, items.size))  # sums duplicates
    counts.data = np.float32(1.0) + np.float32(ALPHA) * counts.data
    return counts, np.asarray(users), np.asarray(items)


def copy_binary(ids: Any, vecs: npt.NDArray[np.float32], text: bool) -> bytes:
    """Rows (id, vector) in COPY's binary format, pgvector's vector_recv layout for the vector."""
    dims = vecs.shape[1]
    tail = np.empty(
        len(vecs), dtype=[("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", dims)]
    )
    tail["len"], tail["dim"], tail["unused"], tail["v"] = 4 + 4 * dims, dims, 0, vecs
    if not text:
        head = np.empty(len(vecs), dtype=[("n", ">i2"), ("len", ">i4"), ("id", ">i8")])
        head["n"], head["len"], head["id"] = 2, 8, ids
        rows = np.empty(len(vecs), dtype=[("h", head.dtype), ("t", tail.dtype)])
        rows["h"], rows["t"] = head, tail
        return COPY_HEADER + rows.tobytes() + COPY_TRAILER
    encoded = [str(x).encode() for x in ids.tolist()]
    lengths = np.fromiter((len(e) for e in encoded), dtype=">i4", count=len(encoded))
    fields = np.full(len(encoded), 2, dtype=">i2").tobytes()
    fixed = tail.tobytes()
    step = tail.dtype.itemsize
    parts = [COPY_HEADER]
    for r, e in enumerate(encoded):  # variable-length ids: one join per row
        parts += [fields[2 * r : 2 * r + 2], lengths[r : r + 1].tobytes(), e]
        parts.append(fixed[r * step : (r + 1) * step])
    parts.append(COPY_TRAILER)
    return b"".join(parts)


def write_vectors(
    conn: psycopg.Connection[Any], table: str, key: str, ids: Any, vecs: npt.NDArray[Any]
) -> None:
    text = ids.dtype.kind in "OUS"
    t = sql.Identifier(table)
    conn.execute(
        sql.SQL("CREATE TABLE {} ({} {} NOT NULL, embedding vector({}) NOT NULL)").format(
            t,
            sql.Identifier(key),
            sql.SQL("text" if text else "bigint"),
            sql.Literal(vecs.shape[1]),
        )
    )
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(t)) as copy,
    ):
        copy.write(copy_binary(ids, vecs.astype(np.float32), text))
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(t, sql.Identifier(key)))
    conn.execute(sql.SQL("ANALYZE {}").format(t))


def peer_pipeline(
    dsn: str,
    table: str,
    out: str,
    ids: str,
    index_items: Callable[[psycopg.Connection[Any], str], None] | None = None,
) -> dict[str, Any]:
    """The peer pipeline in this process: its timings, memory and shape. `index_items`, when
    given, indexes the item factors' table inside the writing transaction (timed as part of
    the write, and on its own as a sub-step)."""
    import implicit  # type: ignore[import-untyped]
    import implicit.als  # type: ignore[import-untyped]
    import pandas  # noqa: F401 (imported before the clock starts, as pyrec's are)

    after_imports = proc_status(os.getpid()).get("VmRSS", 0)
    indexing = 0.0
    with psycopg.connect(dsn) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        t0 = time.perf_counter()
        matrix, users, items = read_pairs(dsn, table, ids)
        t1 = time.perf_counter()
        model = implicit.als.AlternatingLeastSquares(
            factors=FACTORS,
            iterations=ITERATIONS,
            regularization=REGULARIZATION,
            alpha=1.0,  # the matrix already holds 1 + ALPHA * count
            use_cg=True,
            use_gpu=False,
            calculate_training_loss=False,
            num_threads=THREADS,
            random_state=0,
        )
        model.fit(matrix, show_progress=False)
        t2 = time.perf_counter()
        with conn.transaction():
            write_vectors(conn, f"{out}_users", "user_id", users, model.user_factors)
            write_vectors(conn, f"{out}_items", "item_id", items, model.item_factors)
            if index_items is not None:
                started = time.perf_counter()
                index_items(conn, f"{out}_items")
                indexing = time.perf_counter() - started
        t3 = time.perf_counter()
        backend_peak = proc_status(pid).get("VmHWM", 0)
    steps = {
        "read (psql + pandas)": t1 - t0,
        "fit (implicit)": t2 - t1,
        "write (binary COPY)": t3 - t2,
    }
    if index_items is not None:
        steps[INDEX_STEP] = indexing
    return {
        "total": t3 - t0,
        "steps": steps,
        "peak": proc_status(os.getpid()).get("VmHWM", 0),
        "after_imports": after_imports,
        "backend_peak": backend_peak,
        "shape": [int(users.size), int(items.size), int(matrix.nnz)],
        "implicit": implicit.__version__,
    }


def peer_main(dsn: str, table: str, out: str, ids: str) -> None:
    """Child process: run the peer pipeline, print its timings and memory as one JSON line."""
    print(json.dumps(peer_pipeline(dsn, table, out, ids)))


def load_size(dsn: str, n: int, seed: int, id_types: list[str]) -> dict[str, float]:
    """Generate and load <n> synthetic interactions (and their text-id copy): setup, not timed."""
    t0 = time.perf_counter()
    data = synthetic.generate(n, seed=seed)
    t1 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        synthetic.load(conn, data, prefix=f"syn_{n}", replace=True)
    t2 = time.perf_counter()
    del data
    gc.collect()
    with psycopg.connect(dsn, autocommit=True) as conn:
        source = sql.Identifier(f"syn_{n}_interactions")
        if "int" in id_types:
            conn.execute(
                sql.SQL("CREATE TABLE {} AS SELECT user_id, item_id FROM {}").format(
                    sql.Identifier(f"syn_{n}_int"), source
                )
            )
        if "text" in id_types:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} AS SELECT 'cust-' || user_id AS user_id,"
                    " 'sku-' || item_id AS item_id FROM {}"
                ).format(sql.Identifier(f"syn_{n}_text"), source)
            )
        conn.execute(sql.SQL("DROP TABLE {}").format(source))
        options = json.dumps(
            {"holdout": 0, "params": {"factors": FACTORS, "iterations": ITERATIONS}}
        )
        for ids in id_types:
            # hint bits and visibility map set once here, so neither pipeline pays for them
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(f"syn_{n}_{ids}")))
            conn.execute(
                "SELECT pyrec.create_model(%s, %s, options => %s)",
                [f"bench_{n}_{ids}", f"syn_{n}_{ids}", options],
            )
    t3 = time.perf_counter()
    return {"generate": t1 - t0, "load (COPY)": t2 - t1, "copies + VACUUM ANALYZE": t3 - t2}


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def spread(xs: list[float]) -> str:
    return f"{min(xs):7.2f} / {median(xs):7.2f} / {max(xs):7.2f}"


def line(name: str, xs: list[float], peer: float | None = None) -> str:
    ratio = f"  {median(xs) / peer:5.2f}x the peer" if peer else ""
    return f"  {name:<44} {spread(xs)} s{ratio}"


def mb(xs: list[int]) -> str:
    return f"{median([float(x) for x in xs]) / MB:,.0f} MB"


def report(case: Case) -> None:
    p, q = case.pyrec, case.peer
    users, items, pairs = p[0].shape
    print(
        f"\n{label(case.n)} interactions, {case.ids} ids: {users} users x {items} items,"
        f" {pairs} pairs; min / median / max of {len(p)} runs"
    )
    if q[0].shape != p[0].shape:
        print(f"  !! the peer saw {q[0].shape} (users, items, pairs)")
    print("  setup, not timed: " + ", ".join(f"{k} {v:.1f} s" for k, v in case.setup.items()))
    peer_total = median([r.total for r in q])
    print(line("pyrec: CALL pyrec.train", [r.total for r in p], peer_total))
    for phase in p[0].steps:
        print(line(f"    phase {phase}", [r.steps.get(phase, 0.0) for r in p]))
    print(line("peer: psql COPY + pandas + implicit + COPY", [r.total for r in q]))
    for step in q[0].steps:
        print(line(f"    {step}", [r.steps[step] for r in q]))
    if case.update:
        full = median([r.total for r in p])
        print(
            line("pyrec: CALL pyrec.train(mode => 'update')", case.update)
            + f"  {median(case.update) / full:.2f}x the full training"
        )
    anon = ", ".join(
        f"{ph} {mb([r.anon.get(ph, 0) for r in p])}" for ph in PHASES if p[0].anon.get(ph)
    )
    print(
        f"  peak memory, pyrec training backend: VmHWM {mb([r.peak for r in p])}"
        f" (RSS {mb([r.baseline for r in p])} before the CALL: {per_pair(p):.0f} bytes per"
        f" pair above it); private (RssAnon) peak by phase: {anon}; private peak above the"
        f" start, less the factors: {per_interaction(p):.1f} bytes per interaction read"
    )
    print(
        f"  peak memory, peer process: VmHWM {mb([r.peak for r in q])}"
        f" ({mb([r.baseline for r in q])} after imports); its backend's VmHWM"
        f" {mb([r.backend_peak for r in q])}",
        flush=True,
    )


def per_pair(runs: list[Run]) -> float:
    """The training backend's peak above its RSS before the CALL, per (user, item) pair."""
    return median([float(r.peak - r.baseline) for r in runs]) / runs[0].shape[2]


def per_interaction(runs: list[Run]) -> float:
    """The training backend's private memory (RssAnon) at its highest phase above what it
    held before the CALL, less the factors (users + items x 64 float32), per interaction
    read: what the docs quote a training to need. VmHWM also counts the shared buffers the
    backend touched, which all sessions share."""
    users, items, _ = runs[0].shape
    factors = (users + items) * FACTORS * 4
    above = [max(r.anon.values(), default=0) - r.anon_base - factors for r in runs]
    return median([float(a) for a in above]) / max(runs[0].rows, 1)


def header(dsn: str, fast: bool) -> None:
    import implicit  # type: ignore[import-untyped]
    import pandas as pd

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'pyrec'),"
            " current_setting('shared_buffers'), current_setting('fsync'),"
            " current_setting('synchronous_commit'), current_setting('full_page_writes')"
        ).fetchone()
    assert row is not None
    if fast:
        print("!! durability off for this run: fsync, synchronous_commit, full_page_writes off")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"training, table to served embeddings; {platform.node()}: {os.cpu_count()} CPUs,"
        f" {mem:.0f} GiB, {platform.platform()}; PostgreSQL {row[0]}, pgvector {row[1]},"
        f" pyrec {row[2]}; shared_buffers {row[3]}, fsync {row[4]}, synchronous_commit"
        f" {row[5]}, full_page_writes {row[6]}; Python {platform.python_version()},"
        f" numpy {np.__version__}, implicit {implicit.__version__}, pandas {pd.__version__}",
        flush=True,
    )
    print(
        f"als: {FACTORS} factors, {ITERATIONS} iterations, regularization {REGULARIZATION},"
        f" confidence 1 + {ALPHA} * count, holdout 0, {THREADS} threads in both pipelines;"
        f" load average at start: {Path('/proc/loadavg').read_text().strip()}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated, e.g. 1M or 1M,10M")
    ap.add_argument(
        "--ids", default="int,text", help="comma-separated id types: int, text (default both)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of each pipeline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="durability off (printed first)")
    ap.add_argument(
        "--no-update", dest="update", action="store_false", help="skip the update training"
    )
    # child: dsn, table, out prefix, int | text
    ap.add_argument("--peer", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        peer_main(*args.peer)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    id_types = [t.strip() for t in args.ids.split(",")]
    started = time.perf_counter()
    results: list[Case] = []
    with Cluster(settings=None if args.fast else DURABLE) as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
        header(dsn, args.fast)
        for n in sizes:
            setup = load_size(dsn, n, args.seed, id_types)
            cases = [Case(n, ids, setup) for ids in id_types]
            for r in range(args.repeat):  # interleaved, so drift hits both alike
                for case in cases:
                    case.pyrec.append(run_pyrec(dsn, case.model))
                    case.peer.append(run_peer(dsn, case.table, f"peer_{case.table}_r{r}", case.ids))
            for case in cases:
                for _ in range(args.repeat if args.update else 0):  # 1% more events each
                    case.update.append(run_update(dsn, case))
                report(case)
                results.append(case)
    print("\nsummary (median seconds, table to served embeddings; ratio = pyrec / peer):")
    print(
        f"  {'size':>6} {'ids':>5} {'pyrec':>9} {'peer':>9} {'ratio':>7} {'B/pair':>7}"
        f" {'B/int':>6}  (B/pair: pyrec's backend VmHWM above its RSS before the CALL, per"
        " pair; B/int: its private memory's peak above the start, less the factors, per"
        " interaction read)"
    )
    for c in results:
        a, b = median([r.total for r in c.pyrec]), median([r.total for r in c.peer])
        print(
            f"  {label(c.n):>6} {c.ids:>5} {a:9.2f} {b:9.2f} {a / b:6.2f}x"
            f" {per_pair(c.pyrec):7.0f} {per_interaction(c.pyrec):6.1f}"
        )
    for n in sizes:  # the same data with text ids vs bigint ids, from this run
        by_ids = {c.ids: c for c in results if c.n == n}
        if "int" in by_ids and "text" in by_ids:
            a, b = by_ids["text"].pyrec, by_ids["int"].pyrec
            ratio = median([r.total for r in a]) / median([r.total for r in b])
            phases = ", ".join(
                f"{ph} {median([r.steps[ph] for r in a]):.2f} vs"
                f" {median([r.steps[ph] for r in b]):.2f}"
                for ph in PHASES
            )
            print(
                f"  {label(n)}: CALL pyrec.train with text ids / bigint ids {ratio:.3f}"
                f" (medians of {len(a)}; by phase, text vs bigint: {phases})"
            )
    print(
        f"whole run {time.perf_counter() - started:.0f} s;"
        f" load average at end: {Path('/proc/loadavg').read_text().strip()}"
    )


if __name__ == "__main__":
    main()
