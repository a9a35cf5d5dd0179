"""Training end to end on synthetic data: CALL pyrec.train vs COPY out, implicit, COPY back in.

pyrec: CALL pyrec.train on an "als" model over <prefix>_interactions (64 factors, 15
iterations, holdout 0: no evaluation fit), from the table to active pgvector tables, wall
clock from the client, in a session that has already imported pyrec_pg and implicit (the
peer's imports are not timed either). Its phases are polled from pyrec._runs by a second session.

The peer, measured in the same run on the same data and machine, is the pipeline a user would
otherwise run, in a fresh process with OPENBLAS_NUM_THREADS=1 (as implicit recommends):
  1. COPY (SELECT user_id, item_id, count(*) ... GROUP BY 1, 2) TO STDOUT in binary, parsed
     with numpy, ids mapped to rows and columns, a scipy CSR user x item matrix built
     ("group-by"); or, the second peer ("raw"), COPY (SELECT user_id, item_id ...) of every
     row, the counts summed by scipy on the way to CSR (what pyrec does in the server);
  2. fit implicit's AlternatingLeastSquares (conjugate gradient, 3 steps, 2 threads, float32)
     at the same factors, iterations and regularization;
  3. COPY the user and item factors in pgvector's text form '[x,y,...]' into two new tables
     with a vector(64) column, then add primary keys and ANALYZE, in one transaction.
Confidence: pyrec uses c = 1 + alpha * count (alpha 2). implicit (0.7, cpu/_als.pyx) takes its
alpha times the matrix value as c itself (b += c y, A += (c - 1) y y'), so the peer passes
1 + 2 * count with implicit's alpha = 1: both fit the same objective.

Peak memory: the training backend's VmHWM (peak RSS; it includes shared buffers it touched)
and its private memory (RssAnon) sampled every 20 ms from a thread, per phase; the peer
process's VmHWM (not ru_maxrss: after fork it starts at the parent's, which held the loaded
data) and its backend's VmHWM. Both backends are fresh sessions, so VmHWM is this run's.
Then 1% new events (TABLESAMPLE of the rows, moved to a neighbouring item) and one
CALL pyrec.train(model, mode => 'update'): a warm start from the active version with a third of
the sweeps, timed beside the full training (--no-update skips it).
Run: .venv/bin/python -m bench.bench_training [--sizes 1M,10M] [--repeat N] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import scipy.sparse as sp
from psycopg import sql

from pyrec_pg.dev import synthetic
from pyrec_pg.dev.cluster import Cluster

from .common import median

REPO = Path(__file__).resolve().parent.parent
FACTORS = 64
ITERATIONS = 15
REGULARIZATION = 30.0  # pyrec's als defaults
ALPHA = 2.0
THREADS = 2
SAMPLE_SECONDS = 0.02
ROWS_PER_WRITE = 20_000
# one row of COPY ... (FORMAT binary) of (bigint, bigint, bigint): field count, then length + value
BINARY_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("lu", ">i4"),
        ("u", ">i8"),
        ("li", ">i4"),
        ("i", ">i8"),
        ("lc", ">i4"),
        ("c", ">i8"),
    ]
)
# the raw peer's row: (bigint, bigint)
RAW_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("u", ">i8"), ("li", ">i4"), ("i", ">i8")])
PEERS = ("group-by", "raw")
BINARY_HEADER = 19  # signature (11), flags (4), header extension length (4, zero)
MB = 1024 * 1024
PHASES = ("starting", "reading", "evaluating", "training", "writing")  # pyrec._runs.phase


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
    """Samples a backend's memory and polls its training run's phase until stopped."""

    def __init__(self, dsn: str, pid: int, after_run: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.pid, self.after_run = dsn, pid, after_run
        self.phases: dict[str, float] = {}  # phase -> perf_counter when first seen
        self.anon: dict[str, int] = {}  # phase -> peak RssAnon (bytes) while in it
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            phase = "starting"
            while not self.stop.is_set():
                anon = proc_status(self.pid).get("RssAnon", 0)
                self.anon[phase] = max(self.anon.get(phase, 0), anon)
                row = conn.execute(
                    "SELECT phase FROM pyrec._runs WHERE pid = %s AND run_id > %s"
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
    peak: int  # bytes, VmHWM: the training backend's, or the peer process's
    baseline: int  # bytes, RSS before the work: the backend's after import, the peer's after import
    shape: tuple[int, int, int]  # users, items, pairs
    anon: dict[str, int] = field(default_factory=dict)  # pyrec: peak RssAnon by phase
    backend_peak: int = 0  # the peer's backend VmHWM


@dataclass
class Size:
    n: int
    setup: dict[str, float]
    pyrec: list[Run] = field(default_factory=list)
    peer: list[Run] = field(default_factory=list)  # the group-by peer
    raw: list[Run] = field(default_factory=list)  # the raw-rows peer
    update: list[float] = field(default_factory=list)  # CALL pyrec.train(mode => 'update')


def run_update(dsn: str, n: int) -> float:
    """1% new events (existing users, other items), then an update training: seconds."""
    table = sql.Identifier(f"syn_{n}_interactions")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT user_id, item_id % (SELECT max(item_id) FROM {t}) + 1,"
                " event_type, now() FROM {t} TABLESAMPLE BERNOULLI (1) REPEATABLE (7)"
            ).format(t=table)
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
        conn.execute("SELECT pyrec._python()")
        started = time.perf_counter()
        conn.execute("CALL pyrec.train(%s, mode => 'update')", [f"bench_{n}"])
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
            "SELECT n_users, n_items, n_interactions FROM pyrec.model_versions"
            " WHERE model = %s AND status = 'active'",
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
    )


def run_peer(dsn: str, table: str, out: str, how: str) -> Run:
    """The peer pipeline in a fresh process (so its memory peak is its own)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench.bench_training", "--peer", dsn, table, out, how]
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


def copy_out(
    conn: psycopg.Connection[Any], table: str, how: str
) -> tuple[sp.csr_matrix, Any, Any]:
    """(user, item, count) through binary COPY into a CSR confidence matrix: aggregated by
    GROUP BY in the query, or ("raw") every row shipped and the counts summed by scipy."""
    select = "user_id, item_id FROM {}" if how == "raw" else (
        "user_id, item_id, count(*) FROM {} GROUP BY 1, 2"
    )
    query = sql.SQL(f"COPY (SELECT {select}) TO STDOUT (FORMAT binary)").format(
        sql.Identifier(table)
    )
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buf += chunk
    layout = RAW_ROW if how == "raw" else BINARY_ROW
    count = (len(buf) - BINARY_HEADER - 2) // layout.itemsize  # 2: the trailer, -1
    rows = np.frombuffer(buf, layout, offset=BINARY_HEADER, count=count)
    assert (rows["n"] == len(layout.names) // 2).all() and (rows["lu"] == 8).all()
    users, u = np.unique(rows["u"], return_inverse=True)
    items, i = np.unique(rows["i"], return_inverse=True)
    shape = (users.size, items.size)
    if how == "raw":  # duplicates are summed on the way to CSR
        counts = sp.coo_matrix((np.ones(u.size, np.float32), (u, i)), shape=shape).tocsr()
        counts.data = np.float32(1.0) + np.float32(ALPHA) * counts.data
        matrix = counts
    else:
        confidence = (1.0 + ALPHA * rows["c"]).astype(np.float32)
        matrix = sp.csr_matrix((confidence, (u, i)), shape=shape)
    return matrix, users.astype(np.int64), items.astype(np.int64)


def write_vectors(
    conn: psycopg.Connection[Any], table: str, key: str, ids: Any, vecs: npt.NDArray[Any]
) -> None:
    t = sql.Identifier(table)
    conn.execute(
        sql.SQL("CREATE TABLE {} ({} bigint NOT NULL, embedding vector({}) NOT NULL)").format(
            t, sql.Identifier(key), sql.Literal(vecs.shape[1])
        )
    )
    line = "%d\t[" + ",".join(["%.9g"] * vecs.shape[1]) + "]\n"  # float32 round-trips in 9
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(t)) as copy:
        for lo in range(0, ids.size, ROWS_PER_WRITE):
            hi = lo + ROWS_PER_WRITE
            rows = zip(ids[lo:hi].tolist(), vecs[lo:hi].tolist(), strict=True)
            copy.write("".join([line % (k, *v) for k, v in rows]))
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(t, sql.Identifier(key)))
    conn.execute(sql.SQL("ANALYZE {}").format(t))


def peer_main(dsn: str, table: str, out: str, how: str) -> None:
    """Child process: run the peer pipeline, print its timings and memory as one JSON line."""
    import implicit  # type: ignore[import-untyped]
    import implicit.als  # type: ignore[import-untyped]

    after_imports = proc_status(os.getpid()).get("VmRSS", 0)
    with psycopg.connect(dsn) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        t0 = time.perf_counter()
        matrix, users, items = copy_out(conn, table, how)
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
        t3 = time.perf_counter()
        backend_peak = proc_status(pid).get("VmHWM", 0)
    print(
        json.dumps(
            {
                "total": t3 - t0,
                "steps": {"copy out + CSR": t1 - t0, "fit (implicit)": t2 - t1, "write": t3 - t2},
                "peak": proc_status(os.getpid()).get("VmHWM", 0),
                "after_imports": after_imports,
                "backend_peak": backend_peak,
                "shape": [int(users.size), int(items.size), int(matrix.nnz)],
                "implicit": implicit.__version__,
            }
        )
    )


def load_size(dsn: str, n: int, seed: int) -> dict[str, float]:
    """Generate and load <n> synthetic interactions; setup, not part of either pipeline."""
    prefix = f"syn_{n}"
    t0 = time.perf_counter()
    data = synthetic.generate(n, seed=seed)
    t1 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        synthetic.load(conn, data, prefix=prefix, replace=True)
    t2 = time.perf_counter()
    del data
    gc.collect()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # hint bits and visibility map set once here, so neither pipeline pays for them
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(f"{prefix}_interactions")))
        options = json.dumps(
            {"holdout": 0, "params": {"factors": FACTORS, "iterations": ITERATIONS}}
        )
        conn.execute(
            "SELECT pyrec.create_model(%s, %s, options => %s)",
            [f"bench_{n}", f"{prefix}_interactions", options],
        )
    t3 = time.perf_counter()
    return {"generate": t1 - t0, "load (COPY)": t2 - t1, "VACUUM ANALYZE": t3 - t2}


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def line(name: str, xs: list[float], peer: float | None = None) -> str:
    ratio = f"  {median(xs) / peer:6.2f}x peer" if peer else ""
    runs = " ".join(f"{x:.2f}" for x in xs)
    return f"  {name:<46} median {median(xs):8.2f} s  (runs: {runs}){ratio}"


def mb(xs: list[int]) -> str:
    return f"{median([float(x) for x in xs]) / MB:,.0f} MB"


def report(size: Size) -> None:
    p, q = size.pyrec, size.peer
    users, items, pairs = p[0].shape
    print(f"\n{label(size.n)} interactions: {users} users x {items} items, {pairs} pairs")
    if q[0].shape != p[0].shape:
        print(f"  !! the peer saw {q[0].shape} (users, items, pairs)")
    print("  setup, not timed: " + ", ".join(f"{k} {v:.1f} s" for k, v in size.setup.items()))
    peer_total = min(median([r.total for r in q]), median([r.total for r in size.raw]))
    print(line("pyrec: CALL pyrec.train (vs the faster peer)", [r.total for r in p], peer_total))
    for phase in p[0].steps:
        xs = [r.steps.get(phase, 0.0) for r in p]
        print(line(f"    phase {phase}", xs))
    for how, runs in (("group-by", q), ("raw", size.raw)):
        print(line(f"peer ({how}): COPY out + implicit + COPY in", [r.total for r in runs]))
        for step in runs[0].steps:
            print(line(f"    {step}", [r.steps[step] for r in runs]))
        ratio = median([r.total for r in p]) / median([r.total for r in runs])
        print(f"  ratio pyrec / peer ({how}) (median totals): {ratio:.2f}x")
    if size.update:
        full = median([r.total for r in p])
        print(
            line("pyrec: CALL pyrec.train(mode => 'update')", size.update)
            + f"  {median(size.update) / full:.2f}x the full training"
            f" (warm start, {max(2, ITERATIONS // 3)} sweeps, after 1% new events)"
        )
    anon = ", ".join(
        f"{ph} {mb([r.anon.get(ph, 0) for r in p])}" for ph in PHASES if p[0].anon.get(ph)
    )
    print(
        f"  peak memory, pyrec training backend: VmHWM {mb([r.peak for r in p])}"
        f" (RSS {mb([r.baseline for r in p])} before the CALL);"
        f" private (RssAnon) peak by phase: {anon}"
    )
    for how, runs in (("group-by", q), ("raw", size.raw)):
        print(
            f"  peak memory, peer ({how}) process: VmHWM {mb([r.peak for r in runs])}"
            f" ({mb([r.baseline for r in runs])} after imports); its backend's VmHWM"
            f" {mb([r.backend_peak for r in runs])}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated, e.g. 1M or 1M,10M")
    ap.add_argument("--repeat", type=int, help="runs of each pipeline (default 3 up to 1M, else 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-update", dest="update", action="store_false", help="skip the update training"
    )
    # child: dsn, table, out prefix, group-by | raw
    ap.add_argument("--peer", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        peer_main(*args.peer)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print(
        f"table to served embeddings: als, {FACTORS} factors, {ITERATIONS} iterations,"
        f" regularization {REGULARIZATION}, confidence 1 + {ALPHA} * count, holdout 0;"
        f" peer: binary COPY out + implicit ALS (CG, {THREADS} threads) + text COPY into"
        f" vector({FACTORS}) tables; {os.cpu_count()} CPUs",
        flush=True,
    )
    print(f"load average at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    started = time.perf_counter()
    results: list[Size] = []
    with Cluster() as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
        for n in sizes:
            size = Size(n, load_size(dsn, n, args.seed))
            repeat = args.repeat or (3 if n <= 1_000_000 else 1)
            for r in range(repeat):  # interleaved, so drift hits both alike
                size.pyrec.append(run_pyrec(dsn, f"bench_{n}"))
                table = f"syn_{n}_interactions"
                size.peer.append(run_peer(dsn, table, f"peer_{n}_r{r}", "group-by"))
                size.raw.append(run_peer(dsn, table, f"raw_{n}_r{r}", "raw"))
            if args.update:
                size.update.append(run_update(dsn, n))
            report(size)
            results.append(size)
    print("\nsummary (median seconds, table to served embeddings):")
    print(
        f"  {'size':>6} {'pyrec':>9} {'group-by':>9} {'raw':>9} {'ratio':>7}"
        "  (vs the faster peer; target: ratio <= 1)"
    )
    for s in results:
        a = median([r.total for r in s.pyrec])
        b, c = median([r.total for r in s.peer]), median([r.total for r in s.raw])
        print(f"  {label(s.n):>6} {a:9.2f} {b:9.2f} {c:9.2f} {a / min(b, c):6.2f}x")
    print(
        f"whole run {time.perf_counter() - started:.0f} s;"
        f" load average at end: {Path('/proc/loadavg').read_text().strip()}"
    )


if __name__ == "__main__":
    main()
