"""How Spark's regularization is mapped from pyrec's: a sweep on validation splits of
MovieLens-100K's training parts, never on the splits the published figures are measured on.

Spark MLlib's ALS scales each row's regularization by its number of interactions (ALS-WR);
pyrec's solver does not. pyrec_pg.ml.spark.SparkAls passes Spark regParam = regularization x
reg_scale / (the geometric mean of the interactions per user and per item). This script
chooses reg_scale as bench/sweep_defaults.py chooses the ALS defaults: the training part of
each published split (protocol random_per_item, holdout 0.25, seeds 0..2) is split again with
seed 100 + the outer seed, and each scale is scored by ndcg@10 on that validation part,
beside pyrec's own solver at the same defaults. Last, unless --no-test, the published splits
themselves (shown for information only, they play no part in choosing).

Everything runs in this process (pyrec_pg.ml and Spark local[2], no database); MovieLens-100K
is fetched at run time (cached in ~/.cache/pyrec_pg, never committed). Needs make spark.
About 4 minutes on 2 cores.
Run: .venv/bin/python -m bench.sweep_spark [--seeds 3] [--scales 0.25,0.35,0.5,0.7,1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyspark

from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.spark import REG_SCALE, SparkAls, SparkOptions, stop

from .sweep_defaults import (
    HOLDOUT,
    PROTOCOL,
    VALIDATION_SEED,
    cell,
    floats,
    header,
    load,
    scores,
    test_scores,
    validation_sets,
    verdict,
)

MASTER = "local[2]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--scales", type=floats, default=[0.25, 0.35, 0.5, 0.7, 1.0])
    p.add_argument("--no-test", action="store_true", help="skip the published splits' figures")
    args = p.parse_args()
    print("\n".join(header()))
    print(f"Spark {pyspark.__version__}, master {MASTER}", flush=True)
    started = time.perf_counter()
    data = load()
    parts = validation_sets(data, PROTOCOL, args.seeds)
    print(
        f"MovieLens-100K {data.matrix.shape[0]} users x {data.matrix.shape[1]} items,"
        f" {data.matrix.nnz} ratings; protocol {PROTOCOL}, holdout {HOLDOUT}; validation seeds"
        f" {VALIDATION_SEED}..{VALIDATION_SEED + args.seeds - 1}; ALS defaults otherwise"
        f" ({Als().params()})"
    )
    options = SparkOptions(master=MASTER)
    pyrec = scores(Als(), parts, PROTOCOL)
    print(f"  pyrec's solver           validation ndcg@10 {cell(pyrec)}", flush=True)
    grid: dict[tuple[float, ...], list[float]] = {}
    for scale in args.scales:
        grid[(scale,)] = scores(SparkAls(Als(), options, scale), parts, PROTOCOL)
        shown = cell(grid[(scale,)])
        print(f"  spark, reg_scale {scale:<6g}   validation ndcg@10 {shown}", flush=True)
    line, best = verdict(grid, (REG_SCALE,), ("reg_scale",))
    print(line)
    gap = statistics.mean(pyrec) - statistics.mean(grid[best])
    print(f"  pyrec's solver minus spark at reg_scale {best[0]:g}: {gap:+.4f} (validation)")
    if not args.no_test:
        mine = test_scores(Als(), data, PROTOCOL, args.seeds)
        theirs = test_scores(SparkAls(Als(), options, best[0]), data, PROTOCOL, args.seeds)
        print(
            f"published splits (information only): pyrec's solver {cell(mine)}, spark at"
            f" reg_scale {best[0]:g} {cell(theirs)},"
            f" difference {statistics.mean(mine) - statistics.mean(theirs):+.4f}"
        )
    stop()
    print(f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
