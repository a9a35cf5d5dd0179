"""One machine at scale: a large catalog trained in the database and served through HNSW.

The first lines printed name the machine, the versions and the server settings (bench.common's
header), then each peer; the cluster runs with production durability (fsync, synchronous_commit
and full_page_writes on) and a bounded maintenance_work_mem (--maintenance-work-mem, 1GB by
default), which the HNSW build inside the training must live with. shared_buffers
(--shared-buffers, 1GB by default) holds what a 100k-item version serves from; a catalog of a
million items serves from about 1.9 GB (two HNSW indexes of 614 MB, items 340 MB, users 300 MB)
and the peer's tables as much again: below that, both serve from the OS cache and latency
measures buffer misses (similar_items, whose ef_search is fixed, took 16.4 ms p50 at 1.13M items
with 1GB and 3.6 ms with 6GB), so such runs give both systems the 25% of RAM that PostgreSQL's
documentation suggests as a starting point.

Data, generated in SQL (setup, not timed): --interactions events of --users users over --items
items (default 100M events, 2M users, 200k items). Each user belongs to one of 20 taste
clusters; 70% of their events go to their cluster's items, 30% to the whole catalog, and within
either the item is drawn log-uniformly (density ~ 1/rank: power-law popularity). Ids are
bigint. The items relation has a `category` (item mod 50) that filters use. The events table is
UNLOGGED to save the setup's time; it is only read by what is measured.

Training: CALL pyrec.train on an "als" model (64 factors, 15 iterations, holdout 0), --repeat
times; wall clock from the client, phases from pyrec._runs, the HNSW build's start and end
from pg_stat_progress_create_index, the training backend's peak RSS (VmHWM; it counts the
shared buffers it touched) and its private memory (RssAnon) sampled every 20 ms, per phase, in
bytes per interaction read and per (user, item) pair.
Its peer, run after each training on the same events (interleaved, so drift hits both): the
client pipeline of bench.bench_training, in a fresh process, given its best there: psql's COPY
(SELECT user_id, item_id FROM events) TO STDOUT (FORMAT csv) into a pipe (the COPY loop in C),
parsed by pandas (pyarrow), ids numbered by pandas.factorize, a CSR confidence matrix
(1 + 2 * count, the objective pyrec fits); implicit's ALS (conjugate gradient, float32) at the
same factors, iterations and regularization, on as many threads as pyrec's ALS (every core);
one binary COPY of each factor table into a vector(64) column (rows built by numpy), primary
keys, ANALYZE and, when pyrec's version got them, the HNSW indexes pyrec's training builds on
its item table (inner product for recommend, cosine for similar items; pgvector's default m 16
and ef_construction 64, which pyrec keeps; the server's maintenance_work_mem, which pyrec's
build uses), in one transaction. Read / fit / write and wall time; the peer process's peak
RSS (VmHWM) and its backend's, beside pyrec's backend's.

Serving, on the last trained version, --requests requests of each kind, --repeat rounds:
recommend() for known users, for users with new events since training (fold-in: 5 events
added to each), and for known users with a filter on the items relation keeping 2%, 10% or 30%
of the catalog (category = 7, < 5, < 15; category is indexed); similar_items() for items.
Its peer, on the tables of the peer's last training, for as many other known users (each user
then comes to the system measured with its history unread), plain SQL:
  SELECT item_id FROM <items> WHERE item_id <> ALL (ARRAY(SELECT DISTINCT item_id FROM events
  WHERE user_id = $1)) ORDER BY embedding <#> (SELECT embedding FROM <users> WHERE user_id =
  $1) LIMIT 10, re-sorted by distance (a relaxed-order scan may return them out of order)
It is the top-k routine recommend() runs, given its best: seen items left out in the scan (so
10 rows come back), each once, an index built as pyrec's, the hnsw.ef_search pyrec's version
chose at its training (model_versions.ef_search) and the iterative scan in relaxed order, as
recommend() sets them for trained users, bigint keys where pyrec's are
text, and none of recommend()'s checks, version lookup or plpgsql: the least a client can send for
this answer. The kinds of request run interleaved (request i of each before request i + 1 of
any), p50 and p99 (nearest rank) each; "x peer" divides recommend()'s by the peer's. Recall@10
of each against the exact answer: the same call with index scans off, unprepared (the full
scan it then runs ranks every item). Then throughput: --clients sessions (2, one per core)
each calling recommend() for known users back to back for --seconds, requests per second over
all of them, and the peer's statement from as many sessions for as long (first every other
round).
Run: .venv/bin/python -m bench.bench_scale [--interactions 100M] [--repeat 3] [--trainings N]
     (--trainings: trainings of each pipeline, default --repeat: a catalog of a million items
     builds two HNSW indexes per training, so its serving rounds may follow fewer trainings)
     smoke: --users 20000 --items 5000 --interactions 1M --requests 20 --repeat 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
from psycopg.types.numeric import Int8

from pyrec_pg.dev.cluster import Cluster

from .bench_training import (
    ALPHA,
    DURABLE,
    FACTORS,
    INDEX_STEP,
    ITERATIONS,
    PHASES,
    REGULARIZATION,
    SAMPLE_SECONDS,
    THREADS,
    Run,
    Watcher,
    parse_size,
    peer_pipeline,
    proc_status,
    run_peer,
)
from .common import header, median, nearest_rank

MB = 1024 * 1024
CLUSTERS = 20
# filters on the items relation keeping 2%, 10% and 30% of the catalog: the first two are
# scored exactly (pyrec.exact_filter_items), the last through the HNSW index
FILTERS = ("category = 7", "category < 5", "category < 15")
KNOWN = "recommend, known user"
PEER = "peer: plain SQL top-10, known user"
# the peer's top 10: recommend()'s scan (seen items left out in it, so 10 rows come back; each
# once, as pyrec's list of them), re-sorted as a relaxed-order scan may return them out of order
PEER_SQL = (
    "SELECT item_id FROM (SELECT item_id, embedding <#> (SELECT embedding FROM {users}"
    " WHERE user_id = %s) AS d FROM {items} WHERE item_id <> ALL (ARRAY(SELECT DISTINCT"
    " item_id FROM events WHERE user_id = %s)) ORDER BY d LIMIT 10) top ORDER BY d"
)


# what recommend() sets for a trained user's vector (pyrec._serve in sql/src/serving)
def peer_settings(ef_search: int) -> tuple[str, ...]:
    return (f"SET hnsw.ef_search = {ef_search}", "SET hnsw.iterative_scan = relaxed_order")


RECOMMEND = "SELECT * FROM pyrec.recommend('scale', %s, 10)"


@dataclass
class Training:
    total: float
    phases: dict[str, float]
    index_seconds: float
    anon: dict[str, int]  # phase -> peak RssAnon, bytes
    baseline: int  # RssAnon before the CALL
    peak: int  # the training backend's VmHWM, bytes
    shape: tuple[int, int, int, int]  # users, items, pairs, rows read
    hnsw: bool  # whether the version got HNSW indexes (pyrec.ann_min_items)


@dataclass
class Serving:
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> ms per request
    recall: dict[str, list[float]] = field(default_factory=dict)  # kind -> recall@10 each
    per_second: float = 0.0  # recommend() requests per second from all clients together
    ef_search: int = 100  # the version's, which recommend() and the peer use for known users
    peer_per_second: float = 0.0  # the peer's statement, the same way


@dataclass
class Call:
    """One kind of request: its statement, its subjects and the arguments for one."""

    query: str | psycopg.sql.Composed
    subjects: list[str]
    args: Callable[[str], list[Any]]


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
        # the peer's constants (bench_training's) are pyrec's ALS defaults at these params
        conn.execute(
            "SELECT pyrec.create_model('scale', 'events', items => 'items', options => %s)",
            [json.dumps({"holdout": 0, "params": {"factors": FACTORS, "iterations": ITERATIONS}})],
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
        peak = proc_status(pid).get("VmHWM", 0)
        row = conn.execute(
            "SELECT v.n_users, v.n_items, v.n_interactions, r.rows_read, v.hnsw_index"
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
        peak=peak,
        shape=(int(row[0]), int(row[1]), int(row[2]), int(row[3] or 0)),
        hnsw=bool(row[4]),
    )


def hnsw_indexes(conn: psycopg.Connection[Any], table: str) -> None:
    """The indexes pyrec's training builds on a version's item table (write_version in
    pyrec_pg.store.vectors): HNSW by inner product, which recommend() scans, and by cosine,
    which similar_items() scans; pgvector's default m and ef_construction, as pyrec's."""
    for opclass in ("vector_ip_ops", "vector_cosine_ops"):
        conn.execute(
            psycopg.sql.SQL("CREATE INDEX ON {} USING hnsw (embedding {})").format(
                psycopg.sql.Identifier(table), psycopg.sql.SQL(opclass)
            )
        )


def train_peer(dsn: str, out: str, hnsw: bool) -> Run:
    """bench_training's peer pipeline over the events, in a fresh process, with pyrec's item
    indexes when pyrec's version got them."""
    return run_peer(dsn, "events", out, "int", "bench.bench_scale", ["--peer-hnsw"] * hnsw)


def peer_args(user: str) -> list[Any]:
    """The peer's arguments for a user: its bigint id, typed so (not int2 or int4 by value),
    so that every call reuses one prepared statement."""
    return [Int8(int(user)), Int8(int(user))]


def _top(
    conn: psycopg.Connection[Any],
    query: str | psycopg.sql.Composed,
    args: list[Any],
    prepare: bool | None = None,
) -> tuple[list[str], float]:
    started = time.perf_counter()
    rows = conn.execute(query, args, prepare=prepare).fetchall()
    return [r[0] for r in rows], (time.perf_counter() - started) * 1000


def serve(dsn: str, requests: int, seed: int, clients: int, seconds: float, peer: str) -> Serving:
    """One round of every kind of request, interleaved: latency through the index, recall
    against the same call with index scans off; then throughput of recommend() and of the
    peer's statement (over the tables `peer`_users and `peer`_items)."""
    out = Serving()
    peer_sql = psycopg.sql.SQL(PEER_SQL).format(
        users=psycopg.sql.Identifier(f"{peer}_users"),
        items=psycopg.sql.Identifier(f"{peer}_items"),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        active = conn.execute(
            "SELECT users_table, items_table, coalesce(ef_search, 100)"
            " FROM pyrec.model_versions WHERE model = 'scale' AND status = 'active'"
        ).fetchone()
        assert active is not None
        out.ef_search = active[2]
        for setting in peer_settings(out.ef_search):  # recommend() sets its own each call
            conn.execute(setting)
        conn.execute("SELECT setseed(%s)", [seed / 1000])
        users_table, items_table = (psycopg.sql.Identifier("pyrec", t) for t in active[:2])
        sample = psycopg.sql.SQL("SELECT {} FROM {} ORDER BY random() LIMIT %s")
        drawn = conn.execute(
            sample.format(psycopg.sql.Identifier("user_id"), users_table), [3 * requests]
        ).fetchall()
        # the peer asks for users of its own: each request's user then comes to the system
        # measured with its history not yet read, as recommend()'s known users do
        known, folded, theirs = (
            [r[0] for r in drawn[lo * requests : (lo + 1) * requests]] for lo in range(3)
        )
        # 5 new events each, from their taste cluster: serving folds them in
        conn.execute(
            f"INSERT INTO events SELECT u::int8, (u::int8 %% {CLUSTERS}) * ((SELECT max(item_id)"
            f" FROM items) / {CLUSTERS}) + g FROM unnest(%s::text[]) u, generate_series(1, 5) g",
            [folded],
        )
        items = [r[0] for r in conn.execute(
            sample.format(psycopg.sql.Identifier("item_id"), items_table), [requests]
        ).fetchall()]  # fmt: skip
        recommend = "SELECT item_id FROM pyrec.recommend('scale', %s, 10)"
        filtered = "SELECT item_id FROM pyrec.recommend('scale', %s, 10, %s)"
        calls = {
            PEER: Call(peer_sql, theirs, peer_args),
            KNOWN: Call(recommend, known, lambda u: [u]),
            "recommend, folded-in user": Call(recommend, folded, lambda u: [u]),
            **{
                f"recommend, filter {flt}": Call(filtered, known, lambda u, f=flt: [u, f])
                for flt in FILTERS
            },
            "similar_items": Call(
                "SELECT item_id FROM pyrec.similar_items('scale', %s, 10)", items, lambda i: [i]
            ),
        }
        for kind in calls:
            out.latency[kind], out.recall[kind] = [], []
        for n in range(requests):  # request n of each kind before request n + 1 of any
            for kind, call in calls.items():
                if n >= len(call.subjects):
                    continue
                args = call.args(call.subjects[n])
                got, ms = _top(conn, call.query, args)
                conn.execute("SET enable_indexscan = off")
                # unprepared: a prepared statement's cached plan ignores the setting
                exact, _ = _top(conn, call.query, args, prepare=False)
                conn.execute("RESET enable_indexscan")
                out.latency[kind].append(ms)
                if exact:
                    out.recall[kind].append(len(set(got) & set(exact)) / len(exact))
    # recommend() first in even rounds, the peer first in odd ones
    for peers_turn in (False, True) if seed % 2 == 0 else (True, False):
        if peers_turn:
            out.peer_per_second = throughput(
                dsn,
                peer_sql,
                [peer_args(u) for u in theirs],
                peer_settings(out.ef_search),
                clients,
                seconds,
            )
        else:
            out.per_second = throughput(dsn, RECOMMEND, [[u] for u in known], (), clients, seconds)
    return out


def throughput(
    dsn: str,
    query: str | psycopg.sql.Composed,
    args: list[list[Any]],
    settings: Sequence[str],
    clients: int,
    seconds: float,
) -> float:
    """Requests per second of `query` (each of `args` in turn) from `clients` sessions at once,
    each session first running `settings`."""
    counts = [0] * clients
    start = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for setting in settings:
                conn.execute(setting)
            conn.execute(query, args[0]).fetchall()
            start.wait()
            until = time.perf_counter() + seconds
            for one in itertools.cycle(args[n::clients] or args):
                conn.execute(query, one).fetchall()
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


def mean(xs: list[float]) -> float:
    return sum(xs) / max(len(xs), 1)


def mb(xs: list[int]) -> str:
    return f"{median([float(x) for x in xs]) / MB:7,.0f} MB"


def peer_lines() -> list[str]:
    """What the peers are, printed under the header."""
    return [
        f"training peer: bench.bench_training's client pipeline in a fresh process: psql COPY"
        f" (csv, into a pipe) -> pandas (pyarrow) -> factorize -> CSR (1 + {ALPHA:g} * count)"
        f" -> implicit ALS ({FACTORS} factors, {ITERATIONS} iterations, regularization"
        f" {REGULARIZATION:g}, conjugate gradient, {THREADS} threads as pyrec's) -> binary COPY"
        f" of both factor tables into vector({FACTORS}) columns, primary keys, ANALYZE and, when"
        f" pyrec's version has them, pyrec's two HNSW indexes on the items (vector_ip_ops,"
        f" vector_cosine_ops; pgvector's default m and ef_construction as pyrec's; the server's"
        f" maintenance_work_mem), one transaction; run after each pyrec training",
        "serving peer: plain SQL top-10 over the peer's last tables for as many other known"
        " users (each history read first by the system measured), interleaved with"
        " recommend(): seen items left out in the scan (<> ALL the user's events), ORDER BY"
        " embedding <#> (SELECT embedding FROM users WHERE user_id = $1) LIMIT 10 re-sorted,"
        " the hnsw.ef_search pyrec's version chose and iterative scan relaxed_order, as"
        " recommend() sets them; bigint keys;"
        " throughput from as many sessions for as long",
    ]


def report(
    setup: dict[str, float],
    runs: list[Training],
    peers: list[Run],
    rounds: list[Serving],
    args_clients: int,
) -> None:
    users, items, pairs, rows = runs[0].shape
    print(
        f"\n{rows:,} interactions read: {users:,} users x {items:,} items, {pairs:,} pairs;"
        f" min / median / max of {len(runs)} trainings of each pipeline"
        + ("" if len(runs) >= 3 else " (!! fewer than 3: one figure, not a spread)")
    )
    if tuple(peers[0].shape) != (users, items, pairs):
        print(f"  !! the peer saw {tuple(peers[0].shape)} (users, items, pairs)")
    print("  setup, not timed: " + ", ".join(f"{k} {v:.0f} s" for k, v in setup.items()))
    peer_total = median([r.total for r in peers])
    print(
        f"  {'CALL pyrec.train':<46} {spread([r.total for r in runs])} s"
        f"  {median([r.total for r in runs]) / peer_total:5.2f}x the peer"
    )
    for phase in PHASES:
        print(f"    {'phase ' + phase:<44} {spread([r.phases[phase] for r in runs])} s")
    none = "" if any(r.hnsw for r in runs) else " (no index: fewer items than pyrec.ann_min_items)"
    print(f"    {'of which the HNSW builds':<44} {spread([r.index_seconds for r in runs])} s{none}")
    peer_name = "peer: psql COPY + pandas + implicit + COPY"
    print(f"  {peer_name:<46} {spread([r.total for r in peers])} s")
    for step in peers[0].steps:
        name = "of which the HNSW builds" if step == INDEX_STEP else step
        print(f"    {name:<44} {spread([r.steps.get(step, 0.0) for r in peers])} s")
    print(
        f"  peak RSS (VmHWM, median): pyrec's training backend {mb([r.peak for r in runs])};"
        f" peer process {mb([r.peak for r in peers])} ({mb([r.baseline for r in peers])}"
        f" after imports), its backend {mb([r.backend_peak for r in peers])}"
    )
    factors = (users + items) * FACTORS * 4
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
    print(
        f"\nserving, {len(rounds)} rounds (min / median / max over rounds; p99 by nearest rank;"
        f" x peer: median p50 and p99 over the peer's); hnsw.ef_search of the version, which"
        f" recommend() and the peer use for known users: {rounds[-1].ef_search}"
    )
    peer_p50 = median([median(r.latency[PEER]) for r in rounds])
    peer_p99 = median([nearest_rank(r.latency[PEER], 0.99) for r in rounds])
    for kind in rounds[0].latency:
        p50 = [median(r.latency[kind]) for r in rounds]
        p99 = [nearest_rank(r.latency[kind], 0.99) for r in rounds]
        recall = [mean(r.recall[kind]) for r in rounds]
        ratio = (
            f"  {median(p50) / peer_p50:5.2f}x {median(p99) / peer_p99:5.2f}x peer"
            if kind == KNOWN
            else ""
        )
        print(
            f"  {kind:<34} p50 {spread(p50)} ms  p99 {spread(p99)} ms"
            f"  recall@10 {spread(recall, '5.3f')}{ratio}"
        )
    mine = [r.per_second for r in rounds]
    theirs = [r.peer_per_second for r in rounds]
    print(
        f"  throughput, known users, {len(rounds)} rounds of {args_clients} clients:"
        f" recommend {spread(mine, '7.0f')} requests/s, peer {spread(theirs, '7.0f')}"
        f" requests/s; {median(mine) / median(theirs):5.2f}x peer"
    )
    total = median([r.total for r in runs])
    p50 = median([median(r.latency[KNOWN]) for r in rounds])
    recall = {k: median([mean(r.recall[k]) for r in rounds]) for k in (KNOWN, PEER)}
    print(
        f"\nsummary (medians; pyrec vs the peer): training {total:.1f} vs {peer_total:.1f} s"
        f" ({total / peer_total:.2f}x); recommend, known user: p50 {p50:.2f} vs {peer_p50:.2f} ms"
        f" ({p50 / peer_p50:.2f}x), recall@10 {recall[KNOWN]:.3f} vs {recall[PEER]:.3f};"
        f" {median(mine):.0f} vs {median(theirs):.0f} requests/s from {args_clients} clients"
        f" ({median(mine) / median(theirs):.2f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=parse_size, default=2_000_000)
    ap.add_argument("--items", type=parse_size, default=200_000)
    ap.add_argument("--interactions", type=parse_size, default=100_000_000)
    ap.add_argument("--requests", type=int, default=200, help="requests of each kind per round")
    ap.add_argument("--repeat", type=int, default=3, help="trainings and serving rounds of each")
    ap.add_argument(
        "--trainings",
        type=int,
        help="trainings of each pipeline (default --repeat); fewer than 3 is flagged",
    )
    ap.add_argument("--maintenance-work-mem", default="1GB")
    ap.add_argument("--shared-buffers", default="1GB")
    ap.add_argument("--clients", type=int, default=2, help="sessions of the throughput test")
    ap.add_argument("--seconds", type=float, default=20, help="length of the throughput test")
    # child: the training peer (dsn, table, out prefix, int | text), and whether to index
    ap.add_argument("--peer", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--peer-hnsw", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        index = hnsw_indexes if args.peer_hnsw else None
        print(json.dumps(peer_pipeline(*args.peer, index_items=index)))
        return
    started = time.perf_counter()
    settings = {**DURABLE, "maintenance_work_mem": args.maintenance_work_mem,
                "max_wal_size": "8GB", "shared_buffers": args.shared_buffers}  # fmt: skip
    with Cluster(settings=settings) as cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
            print("\n".join(header(conn, "scale: in-database training and HNSW serving")))
        print("\n".join(peer_lines()), flush=True)
        setup = generate(dsn, args.users, args.items, args.interactions)
        runs: list[Training] = []
        peers: list[Run] = []
        rounds: list[Serving] = []
        for r in range(args.trainings or args.repeat):  # interleaved: drift hits both alike
            runs.append(train(dsn))
            peers.append(train_peer(dsn, f"peer_r{r}", runs[-1].hnsw))
            print(
                f"  training {r + 1}: pyrec {runs[-1].total:.1f} s, peer {peers[-1].total:.1f} s",
                flush=True,
            )
        for r in range(args.repeat):
            # the peer's last tables, as recommend() serves pyrec's last (active) version
            last = f"peer_r{len(peers) - 1}"
            rounds.append(serve(dsn, args.requests, r, args.clients, args.seconds, last))
        report(setup, runs, peers, rounds, args.clients)
    print(
        f"whole run {time.perf_counter() - started:.0f} s;"
        f" load average at end: {Path('/proc/loadavg').read_text().strip()}"
    )


if __name__ == "__main__":
    main()
