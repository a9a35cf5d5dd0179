"""Quality on MovieLens-100K: every recipe through pyrec.evaluate, averaged over 3 seeds.

Protocol random_per_item (a random 75/25 split stratified by item, seeded), all metrics of
docs/design.md section 5, next to the published Microsoft Recommenders MovieLens-100K rows.
Run: make eval   (or .venv/bin/python -m bench.eval_movielens [--protocol P] [--seeds N])
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import psycopg

from pyrec_pg.ml.evaluation import METRIC_NAMES

from .common import movielens_database

RECIPES = ["popularity", "sims", "ease", "als", "auto"]
METRICS = list(METRIC_NAMES)
PUBLISHED = {  # Microsoft Recommenders' MovieLens-100K table: (ndcg@10, precision@10)
    "BiVAE (published)": (0.475, 0.412),
    "Cornac BPR (published)": (0.442, 0.389),
    "SAR (published)": (0.382, 0.331),
}
TARGETS = {"auto": (0.48, 0.41), "als": (0.43, None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--protocol", default="random_per_item")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--recipes", default=",".join(RECIPES))
    args = p.parse_args()
    recipes = args.recipes.split(",")
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    with movielens_database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        for recipe in recipes:
            conn.execute("SELECT pyrec.create_model(%s, 'ratings', recipe => %s)", [recipe, recipe])
            runs: dict[str, list[float]] = {m: [] for m in METRICS}
            started = time.perf_counter()
            for seed in range(args.seeds):
                rows = conn.execute(
                    "SELECT metric, value FROM pyrec.evaluate(%s, %s, seed => %s)",
                    [recipe, args.protocol, seed],
                ).fetchall()
                got = dict(rows)
                for m in METRICS:
                    runs[m].append(float(got[m]))
            seconds[recipe] = (time.perf_counter() - started) / args.seeds
            results[recipe] = {m: statistics.mean(v) for m, v in runs.items()}
    print(
        f"MovieLens-100K, protocol {args.protocol}, mean of {args.seeds} seeds"
        f" (in-database pyrec.evaluate; seconds = one split's fit + scoring)"
    )
    header = f"{'recipe':<24}" + "".join(f"{m:>13}" for m in METRICS) + f"{'seconds':>9}"
    print(header)
    for recipe, vals in results.items():
        print(
            f"{recipe:<24}"
            + "".join(f"{vals[m]:>13.4f}" for m in METRICS)
            + f"{seconds[recipe]:>9.1f}"
        )
    for name, (ndcg, prec) in PUBLISHED.items():
        cells = {"ndcg@10": ndcg, "precision@10": prec}
        print(
            f"{name:<24}"
            + "".join(f"{cells[m]:>13.3f}" if m in cells else f"{'':>13}" for m in METRICS)
        )
    verdicts = []
    for recipe, (ndcg, prec) in TARGETS.items():
        if recipe in results:
            ok = results[recipe]["ndcg@10"] >= ndcg and (
                prec is None or results[recipe]["precision@10"] >= prec
            )
            verdicts.append(
                f"{recipe}: {'meets' if ok else 'MISSES'} target ndcg@10 >= {ndcg}"
                + (f", precision@10 >= {prec}" if prec else "")
            )
    print("\n".join(verdicts))
    print(json.dumps({"protocol": args.protocol, "results": results}))


if __name__ == "__main__":
    main()
