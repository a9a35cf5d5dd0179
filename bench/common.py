"""Shared benchmark plumbing: a throwaway cluster with MovieLens-100K and a trained model; the
header (machine, versions, thread pools, server settings) a benchmark prints first."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import pyrec_pg
from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster


@contextmanager
def movielens_database(tcp: bool = False) -> Iterator[str]:
    """DSN of a throwaway server with pyrec installed and MovieLens-100K loaded (with `tcp`,
    a DSN over 127.0.0.1 rather than the Unix socket)."""
    with Cluster(tcp=tcp) as cluster:
        dsn = cluster.tcp_dsn() if tcp else cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
        with psycopg.connect(dsn) as conn:
            movielens.load(conn)
        yield dsn


@contextmanager
def movielens_server(train_options: str = "{}") -> Iterator[str]:
    """DSN of a throwaway server with MovieLens-100K and model "movies" trained."""
    with movielens_database() as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
                " users => 'viewers', options => %s)",
                [train_options],
            )
            conn.execute("CALL pyrec.train('movies')")
        yield dsn


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall time of each call in milliseconds."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def nearest_rank(xs: list[float], q: float) -> float:
    """The q-quantile by nearest rank (p99 of 200 requests: the 2nd slowest)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def row(name: str, ms: list[float], peer: float | None = None) -> str:
    ratio = f"{median(ms) / peer:6.2f}x" if peer else "       "
    p90 = sorted(ms)[int(len(ms) * 0.9)]
    return f"  {name:<58} median {median(ms):8.3f} ms  p90 {p90:8.3f} ms {ratio}"


# Server settings a reader needs to judge a timing: durability first (off, a commit or a
# checkpoint costs less than in production), then memory, WAL and the planner's parallelism.
SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "jit",
    "max_parallel_workers_per_gather",
)
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")

# Run in a backend: its Python's versions and thread pools, which can differ from the client's
# (the server imports its own copy of the pinned deps, with its own environment).
SERVER_PYTHON = """
import json, os, platform
import numpy
try:
    import implicit, implicit.cpu.topk
    implicit_version = implicit.__version__
except ImportError:
    implicit_version = "absent"
from threadpoolctl import threadpool_info
return json.dumps({"python": platform.python_version(), "numpy": numpy.__version__,
                   "implicit": implicit_version, "pools": threadpool_info()})
"""


def python_info() -> dict[str, Any]:
    """This process's versions and thread pools (BLAS, OpenMP), as SERVER_PYTHON reports a
    backend's; imports implicit's top-k so its OpenMP pool shows."""
    import numpy
    from threadpoolctl import threadpool_info

    try:
        import implicit
        import implicit.cpu.topk  # loads the OpenMP pool threadpool_info reports

        implicit_version = str(implicit.__version__)
    except ImportError:
        implicit_version = "absent"
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "implicit": implicit_version,
        "pools": threadpool_info(),
    }


def pools(info: dict[str, Any]) -> str:
    """Each thread pool threadpoolctl found, by library and folder (numpy and scipy each load
    their own OpenBLAS), with its thread count."""
    parts = [
        f"{p['user_api']} {Path(p['filepath']).parent.name}/{p['prefix']} {p['num_threads']}"
        for p in info["pools"]
    ]
    return ", ".join(parts) + " threads" if parts else "no thread pools"


def machine() -> str:
    """The machine a benchmark ran on: its name, CPU model and count, RAM and OS."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or "?",
    )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"machine {platform.node()}: {cpu}, {os.cpu_count()} CPUs"
        f" ({len(os.sched_getaffinity(0))} usable), {ram:.0f} GiB RAM, {platform.platform()}"
    )


def header(conn: psycopg.Connection[Any], title: str) -> list[str]:
    """The lines a benchmark prints first: "!! durability off" when any of fsync,
    synchronous_commit or full_page_writes is off on this server (read from the server, not
    assumed), then the machine, the versions (client and server Python) and the settings."""
    names = ", ".join(f"current_setting('{s}')" for s in SETTINGS)
    got = conn.execute(f"SELECT {names}").fetchone()
    ver = conn.execute(
        "SELECT current_setting('server_version'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'pyrec')"
    ).fetchone()
    conn.execute(
        "CREATE FUNCTION pg_temp.bench_server_python() RETURNS text LANGUAGE plpython3u"
        f" AS $py${SERVER_PYTHON}$py$"
    )
    server_row = conn.execute("SELECT pg_temp.bench_server_python()").fetchone()
    assert got is not None and ver is not None and server_row is not None
    settings = dict(zip(SETTINGS, got, strict=True))
    server, client = json.loads(server_row[0]), python_info()
    lines = []
    off = [s for s in DURABILITY if settings[s] == "off"]
    if off:
        lines.append(f"!! durability off for this run: {', '.join(off)} off")
    lines += [
        f"{title}; {machine()}",
        f"versions: PostgreSQL {ver[0]}, pgvector {ver[1]}, pyrec extension {ver[2]},"
        f" pyrec_pg {pyrec_pg.__version__}; client Python {client['python']}, numpy"
        f" {client['numpy']}, implicit {client['implicit']}; server Python {server['python']},"
        f" numpy {server['numpy']}, implicit {server['implicit']}",
        f"thread pools: client {pools(client)}; server backend {pools(server)}",
        "server settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()),
        f"load average at start: {Path('/proc/loadavg').read_text().strip()}",
    ]
    return lines
