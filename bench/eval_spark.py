"""Quality of ALS trained on Spark against ALS trained in the database, on MovieLens-100K.

For each seed, model "movies" (ratings, no options but the split's) is trained twice on the
same split (protocol random_per_item, holdout 0.25, the seed): CALL pyrec.train in the
server, and the external trainer with engine spark (Spark local[2]), once for each --reads:
"trainer" (pyrec's reader sends the pairs to Spark) and "jdbc" (Spark's executors read them
through JDBC over 127.0.0.1, and the holdout is measured on a sample of the users: all 943
here). Each training stores the
holdout metrics of pyrec_pg.ml.evaluation (the same split code, the same scoring as
recommend()) with its version in pyrec.model_versions, where this reads them; each Spark
version then serves recommend() for one user, checked. Defaults otherwise (64 factors, 15
iterations, regularization 30, alpha 2; Spark's regParam mapped by pyrec_pg.ml.spark).

Run: .venv/bin/python -m bench.eval_spark [--seeds 3] [--reads trainer,jdbc]   (needs make
spark; about 4 minutes)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import psycopg
import pyspark

import pyrec_pg
from pyrec_pg.entrypoints import managed
from pyrec_pg.ml import spark

from .common import machine, movielens_database

METRICS = ("ndcg@10", "precision@10", "map@10", "recall@10")
MASTER = "local[2]"


def metrics(conn: psycopg.Connection[Any], version: int) -> dict[str, float]:
    row = conn.execute(
        "SELECT metrics FROM pyrec.model_versions WHERE model = 'movies' AND version = %s",
        [version],
    ).fetchone()
    assert row is not None
    found: dict[str, float] = row[0]
    return {m: float(found[m]) for m in METRICS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--reads", default="trainer,jdbc", help="options.spark.read to measure")
    args = p.parse_args()
    reads = args.reads.split(",")
    engines = ["database", *(f"spark {r}" for r in reads)]
    print(f"ALS on Spark vs in the database, MovieLens-100K; {machine()}")
    print(f"pyrec_pg {pyrec_pg.__version__}, Spark {pyspark.__version__} (master {MASTER})")
    runs: dict[str, dict[str, list[float]]] = {e: {m: [] for m in METRICS} for e in engines}
    seconds: dict[str, list[float]] = {e: [] for e in engines}
    with movielens_database(tcp=True) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pyrec.create_model('movies', 'ratings')")
        for seed in range(args.seeds):
            split = {"protocol": "random_per_item", "holdout": 0.25, "seed": seed}
            started = time.perf_counter()
            conn.execute("CALL pyrec.train('movies', %s::jsonb)", [json.dumps(split)])
            seconds["database"].append(time.perf_counter() - started)
            version = conn.execute(
                "SELECT active_version FROM pyrec.models WHERE name = 'movies'"
            ).fetchone()
            assert version is not None
            ours = metrics(conn, int(version[0]))
            for m in METRICS:
                runs["database"][m].append(ours[m])
            line = f"seed {seed}: ndcg@10 in the database {ours['ndcg@10']:.4f}"
            for read in reads:
                options = {**split, "engine": "spark", "spark": {"master": MASTER, "read": read}}
                started = time.perf_counter()
                done = managed.call(dsn, "train", {"model": "movies", "options": options})
                seconds[f"spark {read}"].append(time.perf_counter() - started)
                theirs = metrics(conn, int(done["version"]))
                served = conn.execute("SELECT count(*) FROM pyrec.recommend('movies', '1', 10)")
                assert served.fetchone() == (10,), "the Spark version does not serve"
                for m in METRICS:
                    runs[f"spark {read}"][m].append(theirs[m])
                line += f", on Spark read {read} {theirs['ndcg@10']:.4f}"
            print(line, flush=True)
    spark.stop()
    print(f"\nmean of {args.seeds} seeds (protocol random_per_item, holdout 0.25)")
    print(f"{'engine':<18}" + "".join(f"{m:>14}" for m in METRICS) + f"{'s/training':>12}")
    for engine, values in runs.items():
        cells = "".join(f"{statistics.mean(values[m]):>14.4f}" for m in METRICS)
        print(f"{engine:<18}{cells}{statistics.median(seconds[engine]):>12.1f}")
    ours = runs["database"]["ndcg@10"]
    for read in reads:
        theirs = runs[f"spark {read}"]["ndcg@10"]
        gap = statistics.mean(ours) - statistics.mean(theirs)
        per_seed = ", ".join(f"{a - b:+.4f}" for a, b in zip(ours, theirs, strict=True))
        verdict = "within" if abs(gap) <= 0.02 else "NOT within"
        print(
            f"ndcg@10, database minus Spark read {read}: {gap:+.4f} ({per_seed} per seed):"
            f" {verdict} 0.02"
        )


if __name__ == "__main__":
    main()
