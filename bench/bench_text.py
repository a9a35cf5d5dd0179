"""Meaning in the ranking on MovieLens-100K: cold start from text against the fallbacks, and
what recipe semantic costs to train.

Cold start: per seed, 10% of the items with at least 5 ratings are held out (every rating of
them removed from a copy of the ratings), and ALS models (default parameters, the same seed)
are trained in the database on the rest with `CALL pyrec.train`, each giving the held-out
items vectors its own way:

  popularity        no vector for them (the model has no items relation): what is served
                    without cold start, popular trained items
  attributes        the attribute model (genres, year bins; titles are free text, not a trait)
  text              params.text_columns on a view whose one column is title + genres (no
                    attribute to learn from): the text embedding alone, mapped into ALS space
  attributes+text   params.text_columns ["title", "genre"] on the movies table: text
                    embeddings beside the attributes in the same regression

For each user who rated a held-out item (their held-out users), with the version's own
vectors read back from its tables:
  hr@10 new       the user's top 10 among the held-out items has one of theirs
  recall@10 new   share of their held-out items in that top 10 (of at most 10)
  hr@10 catalog   the user's top 10 of the whole catalog (trained and held-out items, their
                  training items left out) has one of theirs: what recommend() would serve
`random` is the expected value of a random order of the held-out items. Seeds 0, 1, 2
(min / median / max); the text scale of the regression was chosen on seeds 100-102
(--sweep, in-process through the same functions, no server).

Cost: recipe semantic trained in the database on MovieLens-100K (1682 item texts): a first
training (every text embedded) and a retraining with no text changed (every vector reused),
against ALS trained on the same data, 3 runs each; and the encoder alone in this process.
Quality: pyrec.evaluate of semantic and ALS (random_per_item, the same seeds) beside
popularity on the same splits.

The cluster runs with production durability (fsync, synchronous_commit, full_page_writes on)
unless --fast says otherwise, and then the header's first line says so.

Run: .venv/bin/python -m bench.bench_text [--seeds 0,1,2] [--share 0.1] [--fast] [--sweep]
Needs the text extra (pip install -r requirements-text.txt) in .venv and .build/server-site.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import scipy.sparse as sp

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster
from pyrec_pg.ml import attributes, text
from pyrec_pg.ml.recipes.als import Als

from .bench_training import DURABLE
from .common import header

F32 = npt.NDArray[np.float32]
ARMS = ("popularity", "attributes", "text", "attributes+text")
METRICS = ("hr@10 new", "recall@10 new", "hr@10 catalog")


def _held_out(conn: psycopg.Connection[Any], seed: int, share: float) -> list[str]:
    """A seeded draw of `share` of the items, among those with at least 5 ratings."""
    counts = conn.execute(
        "SELECT m.movie_id::text, count(r.movie_id) FROM movies m"
        " LEFT JOIN ratings r USING (movie_id) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    eligible = sorted(i for i, n in counts if n >= 5)
    n = int(share * len(counts))
    return sorted(np.random.default_rng(seed).choice(eligible, n, replace=False).tolist())


def _vectors(conn: psycopg.Connection[Any], model: str, side: str) -> dict[str, F32]:
    table, key = ("items_table", "item_id") if side == "item" else ("users_table", "user_id")
    row = conn.execute(
        f"SELECT {table} FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
        [model],
    ).fetchone()
    assert row is not None
    return {
        k: np.asarray(v, dtype=np.float32)
        for k, v in conn.execute(f"SELECT {key}, embedding::real[] FROM pyrec.{row[0]}")
    }


def _scores(
    users: dict[str, F32],
    items: dict[str, F32],
    truth: dict[str, set[str]],
    held: list[str],
    seen: dict[str, set[str]],
) -> dict[str, float]:
    """The three metrics over the held-out users (see the module's docstring)."""
    dims = next(iter(users.values())).size
    ids = sorted(items)
    matrix = np.stack([items[i] for i in ids])
    index = {i: n for n, i in enumerate(ids)}
    held_set = set(held)
    new = [i for i in held if i in index]
    hr_new, recall_new, hr_cat = [], [], []
    for user, mine in truth.items():
        u = users.get(user, np.zeros(dims, dtype=np.float32))
        if new:
            s = matrix[[index[i] for i in new]] @ u
            top = {new[j] for j in np.argsort(-s, kind="stable")[:10]}
            hits = len(top & mine)
            hr_new.append(float(hits > 0))
            recall_new.append(hits / min(len(mine), 10))
        else:
            hr_new.append(0.0)
            recall_new.append(0.0)
        s = matrix @ u
        s[[index[i] for i in seen.get(user, set()) if i in index]] = -np.inf
        top = {ids[j] for j in np.argsort(-s, kind="stable")[:10]}
        hr_cat.append(float(bool(top & mine & held_set)))
    return {
        "hr@10 new": statistics.mean(hr_new),
        "recall@10 new": statistics.mean(recall_new),
        "hr@10 catalog": statistics.mean(hr_cat),
    }


def _random(truth: dict[str, set[str]], n: int) -> dict[str, float]:
    """Expected metrics of a random order of the n held-out items."""
    hr = [1 - math.comb(n - len(m), 10) / math.comb(n, 10) for m in truth.values()]
    rec = [10 / n * len(m) / min(len(m), 10) for m in truth.values()]
    return {"hr@10 new": statistics.mean(hr), "recall@10 new": statistics.mean(rec)}


def cold_start(conn: psycopg.Connection[Any], seed: int, share: float) -> dict[str, Any]:
    held = _held_out(conn, seed, share)
    table = f"ratings_s{seed}"
    conn.execute(
        f"CREATE TABLE {table} AS SELECT * FROM ratings WHERE movie_id::text <> ALL (%s)", [held]
    )
    conn.execute(
        "CREATE OR REPLACE VIEW movies_described AS SELECT movie_id,"
        " title || '. ' || array_to_string(genre, ', ') AS description FROM movies"
    )
    truth: dict[str, set[str]] = {}
    for user, item in conn.execute(
        "SELECT viewer_id::text, movie_id::text FROM ratings WHERE movie_id::text = ANY (%s)",
        [held],
    ):
        truth.setdefault(user, set()).add(item)
    seen: dict[str, set[str]] = {}
    for user, item in conn.execute(f"SELECT viewer_id::text, movie_id::text FROM {table}"):
        seen.setdefault(user, set()).add(item)
    base = f'"seed": {seed}'
    arms = {
        "popularity": (None, f'{{"holdout": 0, "params": {{{base}}}}}'),
        "attributes": ("movies", f'{{"holdout": 0, "params": {{{base}}}}}'),
        "text": (
            "movies_described",
            f'{{"holdout": 0, "params": {{{base}, "text_columns": ["description"]}}}}',
        ),
        "attributes+text": (
            "movies",
            f'{{"holdout": 0, "params": {{{base}, "text_columns": ["title", "genre"]}}}}',
        ),
    }
    out: dict[str, Any] = {"held": len(held), "users": len(truth)}
    for arm, (items, options) in arms.items():
        name = f"cold_{seed}_{arm.replace('+', '_')}"
        conn.execute(
            "SELECT pyrec.create_model(%s, %s, items => %s, options => %s)",
            [name, table, items, options],
        )
        conn.execute("CALL pyrec.train(%s)", [name])
        cold = conn.execute(
            "SELECT n_cold_items FROM pyrec.model_versions WHERE model = %s", [name]
        ).fetchone()
        assert cold is not None and cold[0] == (0 if items is None else len(held)), (arm, cold)
        out[arm] = _scores(
            _vectors(conn, name, "user"), _vectors(conn, name, "item"), truth, held, seen
        )
    out["random"] = _random(truth, len(held))
    return out


def cost(conn: psycopg.Connection[Any], runs: int) -> dict[str, list[float]]:
    """Seconds of a first semantic training, a retraining with every text unchanged, an ALS
    training of the same data; items/s of the encoder alone in this process."""
    out: dict[str, list[float]] = {"semantic first": [], "semantic again": [], "als": []}
    options = '{"holdout": 0, "params": {"columns": ["title", "genre"]}}'
    for run in range(runs):
        name = f"meaning_{run}"
        conn.execute(
            "SELECT pyrec.create_model(%s, 'ratings', items => 'movies', recipe => 'semantic',"
            " options => %s)",
            [name, options],
        )
        for key in ("semantic first", "semantic again"):
            started = time.perf_counter()
            conn.execute("CALL pyrec.train(%s)", [name])
            out[key].append(time.perf_counter() - started)
        conn.execute(
            "SELECT pyrec.create_model(%s, 'ratings', items => 'movies',"
            " options => '{\"holdout\": 0}')",
            [f"als_{run}"],
        )
        started = time.perf_counter()
        conn.execute("CALL pyrec.train(%s)", [f"als_{run}"])
        out["als"].append(time.perf_counter() - started)
    texts = [text.compose([t, ", ".join(g)]) for _, t, _, g in movielens.fetch().movies]
    encoder = text.load(text.DEFAULT_MODEL)
    out["encoder items/s"] = []
    for _ in range(runs):
        started = time.perf_counter()
        encoder.encode(texts)
        out["encoder items/s"].append(len(texts) / (time.perf_counter() - started))
    return out


def sweep(seeds: list[int], share: float, scales: list[float]) -> None:
    """The text scale of the cold-item regression, in-process on validation draws: recall@10
    and hr@10 among the held-out items, hr@10 in the catalog, per scale."""
    data = movielens.fetch()
    items = np.asarray(sorted(str(m[0]) for m in data.movies))
    code = {s: i for i, s in enumerate(items.tolist())}
    users = sorted({r[0] for r in data.ratings})
    ucode = {u: i for i, u in enumerate(users)}
    full = sp.csr_matrix(
        (
            np.ones(len(data.ratings)),
            ([ucode[r[0]] for r in data.ratings], [code[str(r[1])] for r in data.ratings]),
        ),
        shape=(len(users), items.size),
    )
    full.sum_duplicates()
    by_id = {str(m[0]): m for m in data.movies}
    rows = [
        {"movie_id": int(i), "title": by_id[i][1], "year": by_id[i][2], "genre": by_id[i][3]}
        for i in items.tolist()
    ]
    types = {"movie_id": "integer", "title": "text", "year": "integer", "genre": "text[]"}
    embedded, _ = text.embed(
        text.load(text.DEFAULT_MODEL),
        [text.compose([r["title"], ", ".join(r["genre"])]) for r in rows],
    )
    counts = np.asarray(full.sum(axis=0)).ravel()
    results: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        held_idx = rng.choice(np.flatnonzero(counts >= 5), int(share * items.size), replace=False)
        mask = np.zeros(items.size, dtype=bool)
        mask[held_idx] = True
        keep = np.flatnonzero(~mask)
        train = sp.csr_matrix(full[:, keep])
        f = Als(seed=seed).fit(train)
        user_vecs = {str(u): f.users[n] for n, u in enumerate(users)}
        held = items[held_idx].tolist()
        truth: dict[str, set[str]] = {}
        seen: dict[str, set[str]] = {}
        coo = full.tocoo()
        for r, c in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
            (truth if mask[c] else seen).setdefault(str(users[r]), set()).add(str(items[c]))
        trained = {items[k]: f.items[n] for n, k in enumerate(keep.tolist())}
        variants: dict[str, tuple[float | None, list[dict[str, Any]], dict[str, str]]] = {
            "attributes": (None, rows, types)
        }
        for s in scales:
            variants[f"attributes+text x{s:g}"] = (s, rows, types)
            variants[f"text x{s:g}"] = (
                s,
                [{"movie_id": r["movie_id"]} for r in rows],
                {"movie_id": "integer"},
            )
        for label, (scale, attr_rows, attr_types) in variants.items():
            saved = attributes.TEXT_SCALE
            attributes.TEXT_SCALE = scale or saved
            try:
                cold = attributes.fit(
                    "movie_id",
                    items.tolist(),
                    attr_rows,
                    attr_types,
                    items[keep],
                    f.items,
                    embedded if scale is not None else None,
                    {} if scale is not None else None,
                )
            finally:
                attributes.TEXT_SCALE = saved
            assert cold is not None
            vecs = dict(trained)
            vecs.update({i: v for i, v in zip(cold.ids, cold.vectors, strict=True)})
            results.setdefault(label, []).append(_scores(user_vecs, vecs, truth, held, seen))
    print(f"sweep of the text scale; seeds {seeds}, share {share}; mean over seeds")
    for label, got in sorted(
        results.items(), key=lambda kv: -statistics.mean(g["recall@10 new"] for g in kv[1])
    ):
        means = "  ".join(f"{m} {statistics.mean(g[m] for g in got):.3f}" for m in METRICS)
        print(f"  {label:<26} {means}")


def _spread(xs: list[float], fmt: str = "{:.3f}") -> str:
    return " / ".join(fmt.format(x) for x in (min(xs), statistics.median(xs), max(xs)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--share", type=float, default=0.1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--fast", action="store_true", help="durability off (printed first)")
    p.add_argument("--sweep", action="store_true", help="tune the text scale (seeds 100-102)")
    args = p.parse_args()
    if args.sweep:
        sweep([100, 101, 102], args.share, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    with (
        Cluster(settings={} if args.fast else DURABLE) as cluster,
        psycopg.connect(cluster.dsn(), autocommit=True) as conn,
    ):
        conn.execute("CREATE EXTENSION pyrec CASCADE")
        with psycopg.connect(cluster.dsn()) as loading:
            movielens.load(loading)
        for line in header(conn, "bench_text: cold start from text, recipe semantic's cost"):
            print(line)
        print(
            f"encoder: {text.DEFAULT_MODEL} ({text.MODELS[text.DEFAULT_MODEL].package}); ALS"
            " defaults; min / median / max over seeds or runs"
        )
        sys.stdout.flush()
        per_seed = [cold_start(conn, s, args.share) for s in seeds]
        print(
            f"\ncold start: {args.share:.0%} of the items held out per seed (seeds {seeds}):"
            f" {_spread([r['held'] for r in per_seed], '{:.0f}')} items,"
            f" {_spread([r['users'] for r in per_seed], '{:.0f}')} held-out users"
        )
        for arm in (*ARMS, "random"):
            cells = "  ".join(
                f"{m} {_spread([r[arm][m] for r in per_seed])}"
                for m in METRICS
                if m in per_seed[0][arm]
            )
            print(f"  {arm:<16} {cells}")
        print(
            "  per seed, recall@10 new: "
            + "; ".join(
                f"seed {s}: "
                + ", ".join(f"{arm} {r[arm]['recall@10 new']:.3f}" for arm in ARMS[1:])
                for s, r in zip(seeds, per_seed, strict=True)
            )
        )
        sys.stdout.flush()
        spent = cost(conn, args.runs)
        print("\ncost on MovieLens-100K (1682 item texts), seconds of CALL pyrec.train:")
        for key in ("semantic first", "semantic again", "als"):
            print(f"  {key:<16} {_spread(spent[key], '{:.2f}')} s")
        rate = _spread(spent["encoder items/s"], "{:.0f}")
        print(f"  encoder alone in this process: {rate} items/s")
        print(f"\nholdout quality (pyrec.evaluate, random_per_item, seeds {seeds}):")
        for model in ("meaning_0", "als_0"):
            got: dict[str, list[float]] = {}
            for seed in seeds:
                for metric, value, popular in conn.execute(
                    "SELECT metric, value, popularity FROM pyrec.evaluate(%s, 'random_per_item',"
                    " 0.25, %s) WHERE metric IN ('ndcg@10', 'precision@10', 'coverage@10')",
                    [model, seed],
                ):
                    got.setdefault(metric, []).append(value)
                    got.setdefault(f"{metric} popularity", []).append(popular)
            cells = "  ".join(f"{k} {_spread(v)}" for k, v in sorted(got.items()))
            print(f"  {'semantic' if model == 'meaning_0' else 'als':<10} {cells}")


if __name__ == "__main__":
    main()
