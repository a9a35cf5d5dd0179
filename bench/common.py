"""Shared benchmark plumbing: a throwaway cluster with MovieLens-100K and a trained model."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster


@contextmanager
def movielens_database() -> Iterator[str]:
    """DSN of a throwaway server with pyrec installed and MovieLens-100K loaded."""
    with Cluster() as cluster:
        dsn = cluster.dsn()
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


def row(name: str, ms: list[float], peer: float | None = None) -> str:
    ratio = f"{median(ms) / peer:6.2f}x" if peer else "       "
    p90 = sorted(ms)[int(len(ms) * 0.9)]
    return f"  {name:<58} median {median(ms):8.3f} ms  p90 {p90:8.3f} ms {ratio}"
