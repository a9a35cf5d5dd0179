"""The live catalog's cost, and similar_items through its cosine index against the full scan.

One synthetic catalog (pyrec_pg.dev.synthetic.generate: --interactions events of --users users
over --items items, Zipf popularity, 20 taste clusters), loaded by COPY; its items table gets a
boolean column `available`, false for --unavailable of the items (chosen at random). Model
"shop" (ALS, 64 factors, 15 iterations, holdout 0) is trained by CALL pyrec.train with
pyrec.ann_min_items = 0 at maintenance_work_mem --build-mem (default: the server's), so the
version's item vectors are trained ones with pyrec's two HNSW indexes: inner product
(recommend) and cosine (similar_items). Training time and index sizes are printed; each index
is then rebuilt (REINDEX) --runs times at the same maintenance_work_mem: its build time, min /
median / max, is what it adds to a training. Then, on that one version, three modes toggled
between runs:
  before  the model's items relation set to NULL in pyrec.models: what serving did before the
          live catalog (no test of the items relation unless a filter reads it); the named
          filter keeps its compiled SQL, so the filtered case runs exactly the old query
  live    the items relation restored: every candidate is also tested against it (present
          and not marked unavailable)
  scan    live, and the cosine index renamed: similar_items serves the version as one written
          without that index (before 0.3.0, or under pyrec.ann_min_items): an exact scan of
          every item vector (similar cases only)
Cases, k = 10, each call a client round trip on one autocommit session (psycopg prepares a
statement after its 5th run), calls of the cases interleaved:
  known           recommend() for a user of the version
  known+filter    with a named filter on Items.price keeping ~30% of the items
  fold-in         a user added after training with 5 interactions (one least-squares solve)
  similar         similar_items() of one of the 500 most popular items
  similar+filter  the same with the named filter
  similar peer    the same cosine top 10 as plain SQL over the version's items table, at its
                  best: pgvector's own scan of the same cosine index with the same
                  hnsw.ef_search (100, set for the session), no live catalog test
A run is --calls calls per case, after --warmup untimed rounds; runs alternate the modes,
--runs of each; each figure is min / median / max over the runs of that run's p50 (or p90), ms.
Recall@10 (live mode): the HNSW answer against the exact answer of the same request (the same
call with enable_indexscan off in a transaction: a sequential scan of the vectors, the same
live test and filter), --recall-users users (anchors) per case, counted twice: by id, and with
ties (a served item scoring at least the exact 10th score is a hit: items with identical
interactions get identical vectors, and which of them an exact scan keeps is its tie-break by
id); "exact p50" is those exact calls' median time, so a reader sees they scanned.
Run: .venv/bin/python -m bench.bench_live_catalog [--items 100000] [--users 100000]
     [--interactions 2000000] [--calls 300] [--runs 3] [--build-mem 64MB]
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
CASES = ("known", "known+filter", "fold-in", "similar", "similar+filter", "similar peer")
SIMILAR = ("similar", "similar+filter")  # the cases the scan mode runs
MODES = ("before", "live", "scan")


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
    if args.build_mem:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", [args.build_mem])
    t = time.perf_counter()
    conn.execute("CALL pyrec.train('shop')")
    trained = time.perf_counter() - t
    row = conn.execute(
        "SELECT n_items, n_users, n_interactions, hnsw_index, items_table, users_table"
        " FROM pyrec.model_versions WHERE model = 'shop' AND status = 'active'"
    ).fetchone()
    assert row is not None and row[3], row
    indexes = conn.execute(
        "SELECT c.relname, o.opcname, pg_size_pretty(pg_relation_size(i.indexrelid))"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am a ON a.oid = c.relam JOIN pg_opclass o ON o.oid = i.indclass[0]"
        " WHERE i.indrelid = ('pyrec.' || quote_ident(%s))::regclass AND a.amname = 'hnsw'"
        " ORDER BY 2 DESC",
        [row[4]],
    ).fetchall()
    cosine = f"{row[4]}_cosine"
    assert [r[0] for r in indexes if r[1] == "vector_cosine_ops"] == [cosine], indexes
    builds = {}
    for name, opclass, _ in indexes:  # what each index adds to a training: rebuilt alone
        spent = []
        for _ in range(args.runs):
            t = time.perf_counter()
            conn.execute(f"REINDEX INDEX pyrec.{name}")
            spent.append(time.perf_counter() - t)
        builds[opclass] = spent
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
        f" (with both HNSW indexes, at maintenance_work_mem"
        f" {conn.execute('SHOW maintenance_work_mem').fetchone()[0]})",  # type: ignore[index]
        flush=True,
    )
    for _, opclass, size in indexes:
        xs = builds[opclass]
        print(
            f"  HNSW index {opclass}: {size}; build (REINDEX) {min(xs):.1f} /"
            f" {statistics.median(xs):.1f} / {max(xs):.1f} s (min / median / max of {len(xs)})",
            flush=True,
        )
    anchors = [
        str(i)
        for (i,) in conn.execute(
            f"SELECT item_id FROM pyrec.{row[4]} ORDER BY popularity DESC LIMIT 500"
        )
    ]
    return {"known": known, "new": new, "anchors": anchors, "cosine": cosine, "items": row[4]}


def calls(users: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    q = "SELECT item_id, score FROM pyrec.recommend('shop', %s, 10{})"
    s = "SELECT item_id, score FROM pyrec.similar_items('shop', %s, 10{})"
    return {
        "known": (q.format(""), users["known"]),
        "known+filter": (q.format(", 'cheap'"), users["known"]),
        "fold-in": (q.format(""), users["new"]),
        "similar": (s.format(""), users["anchors"]),
        "similar+filter": (s.format(", 'cheap'"), users["anchors"]),
        "similar peer": (
            f"WITH a AS (SELECT item_id, embedding FROM pyrec.{users['items']} WHERE item_id = %s)"
            f" SELECT item_id, (1 - d)::real FROM (SELECT i.item_id, i.embedding <=>"
            f" (SELECT embedding FROM a) AS d FROM pyrec.{users['items']} i"
            f" WHERE i.item_id <> (SELECT item_id FROM a) ORDER BY 2 LIMIT {K}) t",
            users["anchors"],
        ),
    }


def set_mode(conn: psycopg.Connection[Any], mode: str, cosine: str) -> None:
    conn.execute(
        "UPDATE pyrec.models SET items = CASE WHEN %s THEN 'public.shop_items' END"
        " WHERE name = 'shop'",
        [mode != "before"],
    )
    # similar_items looks the cosine index up by its name: under another one it is not there
    hidden = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"pyrec.{cosine}_off"]).fetchone()
    if mode == "scan" and not (hidden and hidden[0]):
        conn.execute(f"ALTER INDEX pyrec.{cosine} RENAME TO {cosine}_off")
    elif mode != "scan" and hidden and hidden[0]:
        conn.execute(f"ALTER INDEX pyrec.{cosine}_off RENAME TO {cosine}")


def run(
    conn: psycopg.Connection[Any],
    args: Any,
    plan: dict[str, tuple[str, list[str]]],
    offset: int,
    cases: tuple[str, ...],
) -> dict[str, tuple[float, float]]:
    """p50 and p90 (ms) per case of one run."""
    times: dict[str, list[float]] = {c: [] for c in cases}
    for i in range(args.warmup + args.calls):
        for case in cases:
            query, ids = plan[case]
            user = ids[(offset + i) % len(ids)]
            t = time.perf_counter()
            conn.execute(query, [user]).fetchall()
            if i >= args.warmup:
                times[case].append((time.perf_counter() - t) * 1000)
    return {c: (pct(times[c], 0.5), pct(times[c], 0.9)) for c in cases}


def recall(
    conn: psycopg.Connection[Any], args: Any, plan: dict[str, tuple[str, list[str]]]
) -> dict[str, tuple[float, float, float]]:
    """Recall@10 per case by id and with ties, and the exact calls' median time (ms): a full
    scan takes far longer than an HNSW one, which shows the exact answers came from one."""
    out = {}
    off = {str(i) for (i,) in conn.execute("SELECT item_id FROM shop_items WHERE NOT available")}
    for case in CASES:
        query, ids = plan[case]
        hits = tied = total = 0
        spent = []
        for user in ids[: args.recall_users]:
            got = conn.execute(query, [user]).fetchall()
            # the peer knows nothing of the live catalog
            assert case == "similar peer" or not off & {r[0] for r in got}, f"served: {got}"
            with conn.transaction(force_rollback=True):
                conn.execute("SET LOCAL enable_indexscan = off")
                t = time.perf_counter()
                exact = conn.execute(query, [user]).fetchall()
                spent.append((time.perf_counter() - t) * 1000)
            hits += len({r[0] for r in got} & {r[0] for r in exact})
            if exact:  # scores are real: an item as good as the exact 10th, to its precision
                tied += sum(1 for r in got if r[1] >= exact[-1][1] - 1e-6 * abs(exact[-1][1]))
            total += len(exact)
        out[case] = (hits / max(total, 1), tied / max(total, 1), statistics.median(spent))
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
    ap.add_argument(
        "--build-mem", default="", help="maintenance_work_mem of the training (default: server's)"
    )
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
        c.execute("SET hnsw.ef_search = 100")  # the peer's: similar_items' own setting
        plan = calls(users)
        peer, anchors = plan["similar peer"]
        shown = "\n".join(r[0] for r in c.execute(f"EXPLAIN {peer}", [anchors[0]]))
        assert f"Index Scan using {users['cosine']}" in shown, shown  # the peer uses the index
        # mode -> case -> one (p50, p90) per run
        ms: dict[str, dict[str, list[tuple[float, float]]]] = {m: {} for m in MODES}
        for r in range(args.runs):
            for mode in MODES:
                set_mode(c, mode, users["cosine"])
                cases = SIMILAR if mode == "scan" else CASES
                for case, q in run(c, args, plan, r * args.calls, cases).items():
                    ms[mode].setdefault(case, []).append(q)
        set_mode(c, "live", users["cosine"])
        rec = recall(c, args, plan)

    def cell(mode: str, case: str, q: int) -> str:
        xs = [x[q] for x in ms[mode][case]]
        return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"

    def med(mode: str, case: str) -> float:
        return statistics.median(x[0] for x in ms[mode][case])

    print(f"\np50 per run, ms: min / median / max over {args.runs} runs of {args.calls} calls")
    print(
        f"{'case':<16}{'before':>22}{'live':>22}{'live / before':>15}{'recall@10':>11}"
        f"{'with ties':>11}{'exact p50':>11}"
    )
    for case in CASES:
        hit, tied, exact_ms = rec[case]
        print(
            f"{case:<16}{cell('before', case, 0):>22}{cell('live', case, 0):>22}"
            f"{med('live', case) / med('before', case):>14.2f}x{hit:>11.3f}{tied:>11.3f}"
            f"{exact_ms:>11.1f}"
        )
    print(
        "\nsimilar_items, live catalog: full scan (scan mode: the version without its cosine"
        " index) against the cosine HNSW index (live mode), ms per run, min / median / max"
    )
    print(f"{'case':<16}{'scan p50':>25}{'scan p90':>25}{'index p50':>25}{'index p90':>25}")
    for case in (*SIMILAR, "similar peer"):
        scan = [cell("scan", case, q) if case in SIMILAR else "-" for q in (0, 1)]
        print(
            f"{case:<16}{scan[0]:>25}{scan[1]:>25}"
            f"{cell('live', case, 0):>25}{cell('live', case, 1):>25}"
        )
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
