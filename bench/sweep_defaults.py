"""Where the ALS and EASE defaults come from: a sweep on validation splits of MovieLens-100K's
training parts, never on the splits the published figures are measured on.

`make eval` (bench/eval_movielens.py) reports every recipe on MovieLens-100K with protocol
random_per_item (75/25 stratified by item), holdout 0.25, seeds 0, 1 and 2. This script takes
exactly the training part of each of those splits (pyrec_pg.ml.evaluation.split, the function
pyrec.evaluate runs, on the same matrix: one row per viewer, one column per movie, both in the
text order of their ids as the database codes them, weight 1 per rating as a model created
with no options reads them), splits that training part again with the same protocol, the same
holdout and the seed 100 + the outer seed, and scores ndcg@10 on that validation part only
(pyrec_pg.ml.evaluation.holdout_metrics: training items excluded, users absent from the
validation's training part served popular items, as recommend() serves them). Each grid cell
is the mean over the seeds; the other parameters stay at their defaults (ALS: 64 factors, 15
iterations, cg_steps 3, seed 0; EASE: rank 256).

Noise: for the best setting against the default, the per-seed difference of their validation
ndcg@10 (paired: both fitted on the same split). The default is "within noise" of the best
when the mean difference is under two standard errors of those differences (their standard
deviation / sqrt(seeds)); the table also shows each cell's standard deviation over seeds.

Last, unless --no-test, the defaults and the winners on the published splits themselves (the
test figures `make eval` reports): shown for information only, they play no part in choosing.

Everything runs in this process (pyrec_pg.ml, no database); MovieLens-100K is fetched at run
time by pyrec_pg.dev.movielens (cached in ~/.cache/pyrec_pg, never committed).
About 6 minutes on 2 busy cores for the default grids.
Run: .venv/bin/python -m bench.sweep_defaults [--seeds 3] [--regularization 1,3,10,30,100]
     [--alpha 0.5,1,2,4,8] [--ease 100,250,500,1000,2000] [--no-test]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy

import pyrec_pg
from pyrec_pg.dev import movielens
from pyrec_pg.ml.evaluation import holdout_metrics, split
from pyrec_pg.ml.interactions import Interactions, build
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Recipe
from pyrec_pg.ml.recipes.itemitem import Ease

from .common import machine

PROTOCOL = "random_per_item"  # make eval's protocol (bench/eval_movielens.py)
HOLDOUT = 0.25  # pyrec.evaluate's holdout for the random protocols
VALIDATION_SEED = 100  # the validation split of outer seed s uses seed VALIDATION_SEED + s
METRIC = "ndcg@10"
Setting = tuple[float, ...]


def header() -> list[str]:
    """The machine, the versions and the thread pools this run computes with."""
    try:
        import implicit

        implicit_version = str(implicit.__version__)
    except ImportError:
        implicit_version = "absent (ALS runs numpy's CG)"
    try:
        from threadpoolctl import threadpool_info

        pools = (
            ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
            or "none"
        )
    except ImportError:
        pools = "?"
    return [
        f"sweep of the ALS and EASE defaults on MovieLens-100K validation splits; {machine()}",
        f"versions: pyrec_pg {pyrec_pg.__version__}, Python {platform.python_version()},"
        f" numpy {np.__version__}, scipy {scipy.__version__}, implicit {implicit_version};"
        f" thread pools: {pools}",
        f"load average at start: {Path('/proc/loadavg').read_text().strip()}",
    ]


def load() -> Interactions:
    """MovieLens-100K as a model created on `ratings` with no options trains on it."""
    ratings = movielens.fetch().ratings
    data = build(
        [u for u, _, _, _ in ratings], [i for _, i, _, _ in ratings], [1.0] * len(ratings), 0
    )
    # the database reads weights as float32; ids code in text order there too (C collation
    # in the throwaway cluster: byte order, as numpy sorts the ids' text here)
    return replace(data, matrix=data.matrix.astype(np.float32), rows_read=len(ratings))


def validation_sets(data: Interactions, protocol: str, seeds: int) -> list[Interactions]:
    """The training part of each published split (outer seeds 0..seeds-1), as the data the
    validation split is then carved from."""
    out = []
    for seed in range(seeds):
        train, _ = split(data.matrix, protocol, HOLDOUT, seed)
        out.append(replace(data, matrix=train, rows_read=int(train.nnz)))
    return out


def scores(recipe: Recipe, parts: list[Interactions], protocol: str) -> list[float]:
    """Validation ndcg@10 per outer seed: fit on the validation's training part, score on the
    validation part (carved from the outer training part with seed VALIDATION_SEED + s)."""
    return [
        float(holdout_metrics(recipe, part, protocol, HOLDOUT, VALIDATION_SEED + s)[METRIC])
        for s, part in enumerate(parts)
    ]


def test_scores(recipe: Recipe, data: Interactions, protocol: str, seeds: int) -> list[float]:
    """ndcg@10 on the published splits (what make eval reports): never used to choose."""
    return [
        float(holdout_metrics(recipe, data, protocol, HOLDOUT, seed)[METRIC])
        for seed in range(seeds)
    ]


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f}±{sd:.4f}"


def label(names: tuple[str, ...], setting: Setting) -> str:
    return ", ".join(f"{n} {v:g}" for n, v in zip(names, setting, strict=True))


def noise(ahead: list[float], behind: list[float]) -> tuple[str, bool]:
    """The paired per-seed differences of two settings' scores; within noise when their mean
    is under two standard errors (standard deviation / sqrt(seeds))."""
    diffs = [a - b for a, b in zip(ahead, behind, strict=True)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    text = (
        f"difference {statistics.mean(diffs):+.4f} (per seed "
        + ", ".join(f"{d:+.4f}" for d in diffs)
        + f"; 2 standard errors {2 * se:.4f})"
    )
    return text, statistics.mean(diffs) < 2 * se


def verdict(
    grid: dict[Setting, list[float]], default: Setting, names: tuple[str, ...]
) -> tuple[str, Setting]:
    """The best setting by mean validation ndcg@10 and how the default compares with it (or,
    when the default is the best, how the runner-up compares with the default)."""
    ranked = sorted(grid, key=lambda k: statistics.mean(grid[k]), reverse=True)
    best = ranked[0]
    line = f"best: {label(names, best)}, {statistics.mean(grid[best]):.4f}"
    if default not in grid:
        return line + f"; the default ({label(names, default)}) is not in the grid", best
    if best != default:
        text, within = noise(grid[best], grid[default])
        return (
            line
            + f"; the default ({label(names, default)}) {statistics.mean(grid[default]):.4f},"
            + f" {text}: "
            + ("the default is within noise of the best" if within else "beyond noise"),
            best,
        )
    line += " = the default"
    if len(ranked) > 1:
        second = ranked[1]
        text, within = noise(grid[default], grid[second])
        line += (
            f"; runner-up {label(names, second)}, {statistics.mean(grid[second]):.4f}, {text}: "
            + ("within noise of the default" if within else "behind it beyond noise")
        )
    return line, best


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--protocol", default=PROTOCOL, choices=["random_per_item", "random_per_user"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--regularization", type=floats, default=[1.0, 3.0, 10.0, 30.0, 100.0])
    p.add_argument("--alpha", type=floats, default=[0.5, 1.0, 2.0, 4.0, 8.0])
    p.add_argument("--ease", type=floats, default=[100.0, 250.0, 500.0, 1000.0, 2000.0])
    p.add_argument("--no-test", action="store_true", help="skip the published splits' figures")
    args = p.parse_args()
    print("\n".join(header()), flush=True)
    started = time.perf_counter()
    data = load()
    parts = validation_sets(data, args.protocol, args.seeds)
    print(
        f"MovieLens-100K {data.matrix.shape[0]} users x {data.matrix.shape[1]} items,"
        f" {data.matrix.nnz} ratings; protocol {args.protocol}, holdout {HOLDOUT}; validation"
        f" carved from the training part of each published split (seeds 0..{args.seeds - 1})"
        f" with seeds {VALIDATION_SEED}..{VALIDATION_SEED + args.seeds - 1};"
        f" {METRIC} on the validation part, mean±sd over {args.seeds} seeds",
        flush=True,
    )

    als: dict[Setting, list[float]] = {}
    for reg in args.regularization:
        for alpha in args.alpha:
            als[(reg, alpha)] = scores(Als(regularization=reg, alpha=alpha), parts, args.protocol)
            print(
                f"  als regularization {reg:g} alpha {alpha:g}: {cell(als[(reg, alpha)])}",
                file=sys.stderr,
                flush=True,
            )
    ease: dict[Setting, list[float]] = {}
    for lam in args.ease:
        ease[(lam,)] = scores(Ease(regularization=lam), parts, args.protocol)
        print(f"  ease regularization {lam:g}: {cell(ease[(lam,)])}", file=sys.stderr, flush=True)

    als_default = (Als().regularization, Als().alpha)
    ease_default = (Ease().regularization,)
    print(f"\nALS validation {METRIC} (rows: regularization, columns: alpha; * the default)")
    print(f"{'reg / alpha':>12}" + "".join(f"{a:>16g}" for a in args.alpha))
    for reg in args.regularization:
        print(
            f"{reg:>12g}"
            + "".join(
                f"{cell(als[(reg, a)]) + ('*' if (reg, a) == als_default else ' '):>16}"
                for a in args.alpha
            )
        )
    als_best = ease_best = None
    if als:
        als_line, als_best = verdict(als, als_default, ("regularization", "alpha"))
        print(als_line)
    print(f"\nEASE validation {METRIC} (* the default)")
    for lam in args.ease:
        mark = "*" if (lam,) == ease_default else " "
        print(f"{'regularization':>14} {lam:>7g} {cell(ease[(lam,)])}{mark}")
    if ease:
        ease_line, ease_best = verdict(ease, ease_default, ("regularization",))
        print(ease_line)

    test: dict[str, list[float]] = {}
    if not args.no_test:
        print(
            f"\nTEST figures: {METRIC} on the published splits (make eval's, seeds"
            f" 0..{args.seeds - 1}); for information only, never used to choose"
        )
        chosen: list[tuple[str, Recipe]] = [("als default", Als())]
        if als_best is not None and als_best != als_default:
            chosen.append(("als best", Als(regularization=als_best[0], alpha=als_best[1])))
        chosen.append(("ease default", Ease()))
        if ease_best is not None and ease_best != ease_default:
            chosen.append(("ease best", Ease(regularization=ease_best[0])))
        for name, recipe in chosen:
            got = test_scores(recipe, data, args.protocol, args.seeds)
            shown = {k: v for k, v in recipe.params().items() if k in ("regularization", "alpha")}
            test[name + " " + ", ".join(f"{k} {v:g}" for k, v in shown.items())] = got
            per_seed = ", ".join(f"{g:.4f}" for g in got)
            print(f"  {name:<13} {shown}: {cell(got)} (per seed {per_seed})")
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(
        json.dumps(
            {
                "protocol": args.protocol,
                "seeds": args.seeds,
                "validation_seeds": [VALIDATION_SEED + s for s in range(args.seeds)],
                "als": {f"{r:g},{a:g}": v for (r, a), v in als.items()},
                "ease": {f"{lam:g}": v for (lam,), v in ease.items()},
                "best": {
                    "als": list(als_best) if als_best else None,
                    "ease": list(ease_best) if ease_best else None,
                },
                "test": test,
            }
        )
    )


if __name__ == "__main__":
    main()
