"""The live catalog's cost: serving an HNSW version with and without the items relation's test.

One synthetic catalog (pyrec_pg.dev.synthetic.generate: --interactions events of --users users
over --items items, Zipf popularity, 20 taste clusters), loaded by COPY; its items table gets a
boolean column `available`, false for --unavailable of the items (chosen at random). Model
"shop" (ALS, 64 factors, 15 iterations, holdout 0) is trained by CALL pyrec.train with
pyrec.ann_min_items = 0, so the version's item vectors are trained ones with pyrec's HNSW index
(build time printed). Then, on that one version, two modes toggled between runs:
  before  the model's items relation set to NULL in pyrec.models: what serving did before the
          live catalog (no test of the items relation unless a filter reads it); the named
          filter keeps its compiled SQL, so the filtered case runs exactly the old query
  live    the items relation restored: every candidate is also tested against it (present
          and not marked unavailable)
Cases, k = 10, each call a client round trip on one autocommit session (psycopg prepares a
statement after its 5th run), calls of the cases interleaved:
  known         recommend() for a user of the version
  known+filter  with a named filter on Items.price keeping ~30% of the items
  fold-in       a user added after training with 5 interactions (one least-squares solve)
  similar       similar_items() of one of the 500 most popular items (an exact scan of every
                item vector: similar_items does not use the HNSW index)
A run is --calls calls per case, after --warmup untimed rounds; runs alternate before/live,
--runs of each; each figure is min / median / max over the runs of that run's p50 (ms).
Recall@10 (live mode): the HNSW answer against the exact answer of the same request (the same
call with enable_indexscan off in a transaction: a sequential scan of the vectors, the same
live test and filter), --recall-users users per case; "exact p50" is those exact calls' median
time, so a reader sees they scanned (similar_items scans in both, its recall is 1 by design).
Run: .venv/bin/python -m bench.bench_live_catalog [--items 100000] [--users 100000]
     [--interactions 2000000] [--calls 300] [--runs 3]
     smoke: --items 5000 --users 5000 --interactions 100000 --calls 50 --recall-users 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

import numpy as np
import psycopg

from bench.bench_serving import loadavg, pct
from pyrec_pg.dev import synthetic
from pyrec_pg.dev.cluster import Cluster

K = 10
# production durability: the throwaway cluster's defaults turn these off
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
CASES = ("known", "known+filter", "fold-in", "similar")


def setup(conn: psycopg.Connection[Any], args: Any, rng: np.random.Generator) -> dict[str, Any]:
    t = time.perf_counter()
    data = synthetic.generate(args.interactions, args.users, args.items, seed=args.seed)
    synthetic.load(conn, data, prefix="shop")
    conn.execute("ALTER TABLE shop_items ADD COLUMN available boolean NOT NULL DEFAULT true")
    off = rng.choice(args.items, int(args.items * args.unavailable), replace=False)
    conn.execute("UPDATE shop_items SET available = false WHERE item_id = ANY (%s)", [off.tolist()])
    conn.execute("VACUUM ANALYZE shop_items")
    loaded = time.perf_counter() - t
    conn.execute(
        "SELECT pyrec.create_model('shop', 'shop_interactions', items => 'shop_items',"
        " options => %s)",
        ['{"holdout": 0, "params": {"factors": 64, "iterations": 15}}'],
    )
    conn.execute("SET pyrec.ann_min_items = 0")
    conn.execute("SET maintenance_work_mem = '1GB'")
    t = time.perf_counter()
    conn.execute("CALL pyrec.train('shop')")
    trained = time.perf_counter() - t
    row = conn.execute(
        "SELECT n_items, n_users, n_interactions, hnsw_index, items_table, users_table"
        " FROM pyrec.model_versions WHERE model = 'shop' AND status = 'active'"
    ).fetchone()
    assert row is not None and row[3], row
    built = conn.execute(
        "SELECT pg_size_pretty(pg_relation_size(i.indexrelid)) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
        " WHERE i.indrelid = ('pyrec.' || quote_ident(%s))::regclass AND a.amname = 'hnsw'",
        [row[4]],
    ).fetchone()
    cut = conn.execute("SELECT percentile_disc(0.3) WITHIN GROUP (ORDER BY price) FROM shop_items")
    price = cut.fetchone()
    assert price is not None
    conn.execute(
        "SELECT pyrec.create_filter('shop', 'cheap', %s)",
        [f"INCLUDE ItemID WHERE Items.price < {price[0]}"],
    )
    known = [
        str(u)
        for (u,) in conn.execute(f"SELECT user_id FROM pyrec.{row[5]} ORDER BY random() LIMIT 2000")
    ]
    # new users: the items of random known users, inserted after training (fold-in)
    base = 10**9
    conn.execute(
        "INSERT INTO shop_interactions SELECT %s + n, x.item_id, 'view', now()"
        " FROM unnest(%s::bigint[]) WITH ORDINALITY u(user_id, n),"
        " LATERAL (SELECT item_id FROM shop_interactions i WHERE i.user_id = u.user_id"
        " LIMIT 5) x",
        [base, [int(u) for u in known[:500]]],
    )
    conn.execute("ANALYZE shop_interactions")
    new = [str(base + n) for n in range(1, 501)]
    print(
        f"catalog: {row[0]} items in the version ({args.items} in shop_items,"
        f" {len(off)} unavailable), {row[1]} users, {row[2]} (user, item) pairs;"
        f" generate+load {loaded:.0f} s, CALL pyrec.train {trained:.0f} s"
        f" (with the HNSW index, {built[0] if built else '?'})",
        flush=True,
    )
    anchors = [
        str(i)
        for (i,) in conn.execute(
            f"SELECT item_id FROM pyrec.{row[4]} ORDER BY popularity DESC LIMIT 500"
        )
    ]
    return {"known": known, "new": new, "anchors": anchors}


def calls(users: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    q = "SELECT item_id FROM pyrec.recommend('shop', %s, 10{})"
    return {
        "known": (q.format(""), users["known"]),
        "known+filter": (q.format(", 'cheap'"), users["known"]),
        "fold-in": (q.format(""), users["new"]),
        "similar": ("SELECT item_id FROM pyrec.similar_items('shop', %s, 10)", users["anchors"]),
    }


def set_mode(conn: psycopg.Connection[Any], live: bool) -> None:
    conn.execute(
        "UPDATE pyrec.models SET items = CASE WHEN %s THEN 'public.shop_items' END"
        " WHERE name = 'shop'",
        [live],
    )


def run(
    conn: psycopg.Connection[Any], args: Any, plan: dict[str, tuple[str, list[str]]], offset: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {c: [] for c in CASES}
    for i in range(args.warmup + args.calls):
        for case in CASES:
            query, ids = plan[case]
            user = ids[(offset + i) % len(ids)]
            t = time.perf_counter()
            conn.execute(query, [user]).fetchall()
            if i >= args.warmup:
                times[case].append((time.perf_counter() - t) * 1000)
    return {c: pct(times[c], 0.5) for c in CASES}


def recall(
    conn: psycopg.Connection[Any], args: Any, plan: dict[str, tuple[str, list[str]]]
) -> dict[str, tuple[float, float]]:
    """Recall@10 per case, and the exact calls' median time (ms): a full scan takes far
    longer than an HNSW one, which shows the exact answers came from one."""
    out = {}
    off = {str(i) for (i,) in conn.execute("SELECT item_id FROM shop_items WHERE NOT available")}
    for case in CASES:
        query, ids = plan[case]
        hits = total = 0
        spent = []
        for user in ids[: args.recall_users]:
            got = [r[0] for r in conn.execute(query, [user])]
            assert not off & set(got), f"unavailable items served: {off & set(got)}"
            with conn.transaction(force_rollback=True):
                conn.execute("SET LOCAL enable_indexscan = off")
                t = time.perf_counter()
                exact = [r[0] for r in conn.execute(query, [user])]
                spent.append((time.perf_counter() - t) * 1000)
            hits += len(set(got) & set(exact))
            total += len(exact)
        out[case] = (hits / max(total, 1), statistics.median(spent))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--interactions", type=int, default=2_000_000)
    ap.add_argument("--unavailable", type=float, default=0.02, help="share of items marked so")
    ap.add_argument("--calls", type=int, default=300, help="timed calls per case and run")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="runs of each mode")
    ap.add_argument("--recall-users", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    with Cluster(settings=DURABLE) as cluster, psycopg.connect(cluster.dsn(), autocommit=True) as c:
        c.execute("CREATE EXTENSION pyrec CASCADE")
        versions = c.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'pyrec'),"
            " current_setting('shared_buffers'), current_setting('fsync'),"
            " current_setting('synchronous_commit'), current_setting('full_page_writes')"
        ).fetchone()
        assert versions is not None
        print(
            f"live catalog serving cost, k = {K}; {platform.node()}, {os.cpu_count()} CPUs,"
            f" {platform.platform()}; PostgreSQL {versions[0]}, pgvector {versions[1]},"
            f" pyrec {versions[2]}; shared_buffers {versions[3]}, fsync {versions[4]},"
            f" synchronous_commit {versions[5]}, full_page_writes {versions[6]};"
            f" hnsw.ef_search 100 (400 for fold-in), iterative scan relaxed_order;"
            f" load average at start: {loadavg()}",
            flush=True,
        )
        users = setup(c, args, rng)
        plan = calls(users)
        p50: dict[str, dict[str, list[float]]] = {
            m: {case: [] for case in CASES} for m in ("before", "live")
        }
        for r in range(args.runs):
            for mode in ("before", "live"):
                set_mode(c, mode == "live")
                for case, ms in run(c, args, plan, r * args.calls).items():
                    p50[mode][case].append(ms)
        set_mode(c, True)
        rec = recall(c, args, plan)
    print(f"\np50 per run, ms: min / median / max over {args.runs} runs of {args.calls} calls")
    print(
        f"{'case':<14}{'before':>22}{'live':>22}{'live / before':>16}{'recall@10':>11}"
        f"{'exact p50':>11}"
    )
    for case in CASES:
        cells = []
        for mode in ("before", "live"):
            xs = p50[mode][case]
            cells.append(f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}")
        ratio = statistics.median(p50["live"][case]) / statistics.median(p50["before"][case])
        hit, exact_ms = rec[case]
        print(f"{case:<14}{cells[0]:>22}{cells[1]:>22}{ratio:>15.2f}x{hit:>11.3f}{exact_ms:>11.1f}")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
