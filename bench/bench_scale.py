"""One machine at scale: a large catalog trained in the database and served through HNSW.

The first lines printed name the machine, the versions and the server settings (bench.common's
header); the cluster runs with production durability (fsync, synchronous_commit and
full_page_writes on) and a bounded maintenance_work_mem (--maintenance-work-mem, 1GB by
default), which the HNSW build inside the training must live with.

Data, generated in SQL (setup, not timed): --interactions events of --users users over --items
items (default 100M events, 2M users, 200k items). Each user belongs to one of 20 taste
clusters; 70% of their events go to their cluster's items, 30% to the whole catalog, and within
either the item is drawn log-uniformly (density ~ 1/rank: power-law popularity). Ids are
bigint. The items relation has a `category` (item mod 50) that filters use. The events table is
UNLOGGED to save the setup's time; it is only read by what is measured.

Training: CALL pyrec.train on an "als" model (64 factors, 15 iterations, holdout 0), --repeat
times; wall clock from the client, phases from pyrec._runs, the HNSW build's start and end
from pg_stat_progress_create_index, and the training backend's private memory (RssAnon)
sampled every 20 ms, per phase, in bytes per interaction read and per (user, item) pair.

Serving, on the last trained version, --requests requests of each kind, --repeat rounds:
recommend() for known users, for users with new events since training (fold-in: 5 events
added to each), and for known users with a filter on the items relation keeping 2%, 10% or 30%
of the catalog (category = 7, < 5, < 15; category is indexed); similar_items() for items.
Recall@10 of each against the exact answer: the same call with index scans off (the full scan
the function then runs ranks every item). Then throughput: --clients sessions (2, one per
core) each calling recommend() for known users back to back for --seconds, requests per
second over all of them.
Run: .venv/bin/python -m bench.bench_scale [--interactions 100M] [--repeat 3]
     smoke: --users 20000 --items 5000 --interactions 1M --requests 20 --repeat 1
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

from pyrec_pg.dev.cluster import Cluster

from .bench_training import DURABLE, PHASES, SAMPLE_SECONDS, Watcher, parse_size, proc_status
from .common import header, median

MB = 1024 * 1024
CLUSTERS = 20
# filters on the items relation keeping 2%, 10% and 30% of the catalog: the first two are
# scored exactly (pyrec.exact_filter_items), the last through the HNSW index
FILTERS = ("category = 7", "category < 5", "category < 15")


@dataclass
class Training:
    total: float
    phases: dict[str, float]
    index_seconds: float
    anon: dict[str, int]  # phase -> peak RssAnon, bytes
    baseline: int  # RssAnon before the CALL
    shape: tuple[int, int, int, int]  # users, items, pairs, rows read


@dataclass
class Serving:
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> ms per request
    recall: dict[str, list[float]] = field(default_factory=dict)  # kind -> recall@10 each
    per_second: float = 0.0  # recommend() requests per second from all clients together


def generate(dsn: str, users: int, items: int, n: int) -> dict[str, float]:
    """The events and items tables, in batches of 10M events (setup, not timed)."""
    started = time.perf_counter()
    per = items // CLUSTERS
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE events (user_id bigint, item_id bigint)")
        for lo in range(0, n, 10_000_000):
            hi = min(n, lo + 10_000_000)
            conn.execute(
                f"INSERT INTO events SELECT u, CASE WHEN random() < 0.7"
                f" THEN (u % {CLUSTERS}) * {per} + floor(exp(random() * ln({per})))::int8 - 1"
                f" ELSE floor(exp(random() * ln({items})))::int8 - 1 END"
                f" FROM (SELECT floor(random() * {users})::int8 AS u"
                f" FROM generate_series({lo}, {hi - 1})) g"
            )
        conn.execute(
            "CREATE TABLE items AS SELECT DISTINCT item_id, (item_id % 50)::int AS category"
            " FROM events"
        )
        conn.execute("ALTER TABLE items ADD PRIMARY KEY (item_id)")
        conn.execute("CREATE INDEX ON items (category)")  # a column filters select on
        # serving reads a user's history to leave seen items out (and to fold new events in):
        # the index every deployment has on the user column
        conn.execute("CREATE INDEX ON events (user_id)")
        conn.execute("VACUUM ANALYZE events")
        conn.execute("VACUUM ANALYZE items")
        conn.execute(
            "SELECT pyrec.create_model('scale', 'events', items => 'items', options =>"
            ' \'{"holdout": 0, "params": {"factors": 64, "iterations": 15}}\')'
        )
    return {"generate + VACUUM ANALYZE": time.perf_counter() - started}


def train(dsn: str) -> Training:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pyrec._python()")
        conn.execute("DO LANGUAGE plpython3u $$import implicit.cpu.als$$")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        last = conn.execute("SELECT coalesce(max(run_id), 0) FROM pyrec._runs").fetchone()
        baseline = proc_status(pid).get("RssAnon", 0)
        watcher = Watcher(dsn, pid, int(last[0]))  # type: ignore[index]
        watcher.start()
        started = time.perf_counter()
        conn.execute("CALL pyrec.train('scale')")
        ended = time.perf_counter()
        watcher.stop.set()
        watcher.join()
        row = conn.execute(
            "SELECT v.n_users, v.n_items, v.n_interactions, r.rows_read"
            " FROM pyrec.model_versions v JOIN pyrec.training_runs r"
            " ON r.model = v.model AND r.version = v.version"
            " WHERE v.model = 'scale' AND v.status = 'active'"
        ).fetchone()
    assert row is not None
    watcher.phases["starting"] = started
    marks = [*sorted(watcher.phases.items(), key=lambda kv: kv[1]), ("end", ended)]
    seen = {p: t1 - t0 for (p, t0), (_, t1) in itertools.pairwise(marks)}
    index = watcher.index
    return Training(
        total=ended - started,
        phases={p: seen.get(p, 0.0) for p in PHASES},
        index_seconds=(index[-1] - index[0] + SAMPLE_SECONDS) if index else 0.0,
        anon=watcher.anon,
        baseline=baseline,
        shape=(int(row[0]), int(row[1]), int(row[2]), int(row[3] or 0)),
    )


def _top(conn: psycopg.Connection[Any], sql: str, args: list[Any]) -> tuple[list[str], float]:
    started = time.perf_counter()
    rows = conn.execute(sql, args).fetchall()
    return [r[0] for r in rows], (time.perf_counter() - started) * 1000


def serve(dsn: str, requests: int, seed: int, clients: int, seconds: float) -> Serving:
    """One round of every kind of request: latency through the index, recall against the
    same call with index scans off."""
    out = Serving()
    calls = {
        "recommend, known user": ("SELECT item_id FROM pyrec.recommend('scale', %s, 10)", "u"),
        "recommend, folded-in user": ("SELECT item_id FROM pyrec.recommend('scale', %s, 10)", "f"),
        **{
            f"recommend, filter {flt}": (
                "SELECT item_id FROM pyrec.recommend('scale', %s, 10, %s)",
                flt,
            )
            for flt in FILTERS
        },
        "similar_items": ("SELECT item_id FROM pyrec.similar_items('scale', %s, 10)", "i"),
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", [seed / 1000])
        tables = conn.execute(
            "SELECT users_table, items_table FROM pyrec.model_versions"
            " WHERE model = 'scale' AND status = 'active'"
        ).fetchone()
        assert tables is not None
        users_table, items_table = (psycopg.sql.Identifier("pyrec", t) for t in tables)
        sample = psycopg.sql.SQL("SELECT {} FROM {} ORDER BY random() LIMIT %s")
        drawn = conn.execute(
            sample.format(psycopg.sql.Identifier("user_id"), users_table), [2 * requests]
        ).fetchall()
        known, folded = [r[0] for r in drawn[:requests]], [r[0] for r in drawn[requests:]]
        # 5 new events each, from their taste cluster: serving folds them in
        conn.execute(
            f"INSERT INTO events SELECT u::int8, (u::int8 %% {CLUSTERS}) * ((SELECT max(item_id)"
            f" FROM items) / {CLUSTERS}) + g FROM unnest(%s::text[]) u, generate_series(1, 5) g",
            [folded],
        )
        items = [r[0] for r in conn.execute(
            sample.format(psycopg.sql.Identifier("item_id"), items_table), [requests]
        ).fetchall()]  # fmt: skip
        subjects = {"u": known, "f": folded, "i": items}
        for kind, (sql, who) in calls.items():
            lat, rec = [], []
            for subject in subjects.get(who, known):
                args = [subject, who] if who in FILTERS else [subject]
                got, ms = _top(conn, sql, args)
                conn.execute("SET enable_indexscan = off")
                exact, _ = _top(conn, sql, args)
                conn.execute("RESET enable_indexscan")
                lat.append(ms)
                if exact:
                    rec.append(len(set(got) & set(exact)) / len(exact))
            out.latency[kind], out.recall[kind] = lat, rec
    out.per_second = throughput(dsn, known, clients, seconds)
    return out


def throughput(dsn: str, users: list[str], clients: int, seconds: float) -> float:
    """Requests per second of recommend() for known users from `clients` sessions at once."""
    counts = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT * FROM pyrec.recommend('scale', %s, 10)", [users[0]]).fetchall()
            start.wait()
            until = time.perf_counter() + seconds
            for user in itertools.cycle(users[n::clients] or users):
                conn.execute("SELECT * FROM pyrec.recommend('scale', %s, 10)", [user]).fetchall()
                counts[n] += 1
                if time.perf_counter() >= until:
                    break

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def spread(xs: list[float], fmt: str = "7.2f") -> str:
    return f"{min(xs):{fmt}} / {median(xs):{fmt}} / {max(xs):{fmt}}"


def report(
    setup: dict[str, float], runs: list[Training], rounds: list[Serving], args_clients: int
) -> None:
    users, items, pairs, rows = runs[0].shape
    print(
        f"\n{rows:,} interactions read: {users:,} users x {items:,} items, {pairs:,} pairs;"
        f" min / median / max of {len(runs)} trainings"
    )
    print("  setup, not timed: " + ", ".join(f"{k} {v:.0f} s" for k, v in setup.items()))
    print(f"  CALL pyrec.train                       {spread([r.total for r in runs])} s")
    for phase in PHASES:
        print(f"    phase {phase:<32} {spread([r.phases[phase] for r in runs])} s")
    print(f"    of which the HNSW build              {spread([r.index_seconds for r in runs])} s")
    factors = (users + items) * 64 * 4
    for phase in PHASES:
        peaks = [r.anon.get(phase, 0) - r.baseline for r in runs]
        if max(peaks) <= 0:
            continue
        per_row = [(p - factors) / rows for p in peaks]
        per_pair = [(p - factors) / pairs for p in peaks]
        print(
            f"  private memory above the backend's start, {phase:<10}"
            f" {median([float(p) for p in peaks]) / MB:8,.0f} MB;"
            f" less the factors ({factors / MB:,.0f} MB): {median(per_row):5.1f} B per"
            f" interaction, {median(per_pair):5.1f} B per pair"
        )
    print(f"\nserving, {len(rounds)} rounds (min / median / max over rounds):")
    for kind in rounds[0].latency:
        p50 = [median(r.latency[kind]) for r in rounds]
        p90 = [sorted(r.latency[kind])[int(len(r.latency[kind]) * 0.9)] for r in rounds]
        recall = [sum(r.recall[kind]) / max(len(r.recall[kind]), 1) for r in rounds]
        print(
            f"  {kind:<34} p50 {spread(p50)} ms  p90 {spread(p90)} ms"
            f"  recall@10 {spread(recall, '5.3f')}"
        )
    print(
        f"  recommend, known users, {len(rounds)} rounds of {args_clients} clients:"
        f" {spread([r.per_second for r in rounds], '7.0f')} requests/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=parse_size, default=2_000_000)
    ap.add_argument("--items", type=parse_size, default=200_000)
    ap.add_argument("--interactions", type=parse_size, default=100_000_000)
    ap.add_argument("--requests", type=int, default=200, help="requests of each kind per round")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--maintenance-work-mem", default="1GB")
    ap.add_argument("--clients", type=int, default=2, help="sessions of the throughput test")
    ap.add_argument("--seconds", type=float, default=20, help="length of the throughput test")
    args = ap.parse_args()
    started = time.perf_counter()
    settings = {**DURABLE, "maintenance_work_mem": args.maintenance_work_mem,
                "max_wal_size": "8GB", "shared_buffers": "1GB"}  # fmt: skip
    with Cluster(settings=settings) as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
            print("\n".join(header(conn, "scale: in-database training and HNSW serving")))
        setup = generate(dsn, args.users, args.items, args.interactions)
        runs, rounds = [], []
        for r in range(args.repeat):
            runs.append(train(dsn))
            print(f"  training {r + 1}: {runs[-1].total:.1f} s", flush=True)
        for r in range(args.repeat):
            rounds.append(serve(dsn, args.requests, r, args.clients, args.seconds))
        report(setup, runs, rounds, args.clients)
    print(
        f"whole run {time.perf_counter() - started:.0f} s;"
        f" load average at end: {Path('/proc/loadavg').read_text().strip()}"
    )


if __name__ == "__main__":
    main()
