"""The `pyrec` command line: the demo, sample data, and the external trainer."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from . import __version__
from .data import movielens, synthetic
from .errors import InvalidParameter, ObjectInUse, PyrecError


def _connect(dsn: str, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=autocommit)


def cmd_load_sample(args: argparse.Namespace) -> int:
    with _connect(args.dsn, autocommit=False) as conn:
        if args.dataset == "movielens":
            counts = movielens.load(
                conn, args.schema, movielens.fetch(args.grouplens_dir), replace=args.replace
            )
        else:
            data = synthetic.generate(args.interactions, args.users, args.items, seed=args.seed)
            counts = synthetic.load(conn, data, args.schema, replace=args.replace)
    print(
        json.dumps(counts)
        if args.json
        else ", ".join(f"{n} {t}" for t, n in counts.items()) + f" loaded into schema {args.schema}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """The external trainer: the same training code, run here through the plpy stub."""
    from . import training
    from .runtime import Db
    from .runtime.stub import PsycopgPlpy

    plpy = PsycopgPlpy.connect(args.dsn)
    try:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as e:
            raise InvalidParameter(
                f"--options is not JSON: {e}", hint="e.g. '{\"holdout\": 0}'"
            ) from e
        summary = training.train(Db(plpy), args.model, options, args.mode)
    finally:
        plpy.conn.close()
    print(
        json.dumps(summary)
        if args.json
        else f"model {summary['model']} version {summary['version']} active "
        f"({summary['seconds']:.1f} s): ndcg@10 {summary['metrics'].get('ndcg@10')}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .devcluster import Cluster

    t0 = time.perf_counter()
    with Cluster() as cluster:
        print(f"started a throwaway Postgres in {cluster.base} ({time.perf_counter() - t0:.1f} s)")
        with _connect(cluster.dsn()) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
            print("pyrec", conn.execute("SELECT pyrec.version()").fetchone()[0])  # type: ignore[index]
        with _connect(cluster.dsn(), autocommit=False) as conn:
            counts = movielens.load(conn)
            print(f"loaded MovieLens-100K: {counts}")
        with _connect(cluster.dsn()) as conn:
            steps = [
                "SELECT pyrec.create_model('movies', interactions => 'ratings',"
                " items => 'movies', users => 'viewers', recipe => 'als')",
                "CALL pyrec.train('movies')",
            ]
            conn.add_notice_handler(lambda d: print("NOTICE:", d.message_primary))
            for stmt in steps:
                t = time.perf_counter()
                print(f"\n{stmt};")
                conn.execute(stmt)
                print(f"  ({time.perf_counter() - t:.2f} s)")
            top10 = (
                "SELECT r.rank, r.item_id, m.title, m.year, round(r.score::numeric, 3) AS score,"
                " r.source FROM recommend(42, 10{}) r JOIN movies m ON m.movie_id = r.item_id::int"
                " ORDER BY r.rank"
            )
            no_drama = """'EXCLUDE ItemID WHERE Items.genre IN ("Drama", "Comedy")'"""
            for query in (top10.format(""), top10.format(", " + no_drama)):
                print(f"\n{query};")
                for row in conn.execute(query):
                    print("  ", " | ".join(str(c) for c in row))
            metrics = conn.execute(
                "SELECT metrics FROM pyrec.model_versions WHERE model = 'movies'"
            ).fetchone()
            if metrics:
                m = metrics[0]
                print(
                    f"holdout (random 75/25 per user): precision@10 {m['precision@10']:.3f},"
                    f" ndcg@10 {m['ndcg@10']:.3f}; popularity baseline ndcg@10 "
                    f"{m['baseline']['popularity']['ndcg@10']:.3f}"
                )
    print(f"\ndone in {time.perf_counter() - t0:.1f} s; the throwaway cluster is stopped")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyrec", description="pyrec_pg: an in-database recommender for PostgreSQL."
    )
    p.add_argument("--version", action="version", version=f"pyrec_pg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="throwaway Postgres + MovieLens-100K + train + recommend")
    d.set_defaults(fn=cmd_demo)

    s = sub.add_parser("load-sample", help="load sample data into ordinary tables")
    s.add_argument("dataset", choices=["movielens", "synthetic"])
    s.add_argument("--dsn", required=True, help="libpq connection string")
    s.add_argument("--schema", default="public")
    s.add_argument("--replace", action="store_true", help="drop the tables first if they exist")
    s.add_argument("--grouplens-dir", type=Path, help="use u.data/u.item/u.user from this folder")
    s.add_argument("--interactions", type=int, default=1_000_000, help="synthetic: rows")
    s.add_argument("--users", type=int, help="synthetic: users (default rows/50)")
    s.add_argument("--items", type=int, help="synthetic: items (default 3*sqrt(rows))")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_load_sample)

    t = sub.add_parser(
        "train",
        help="train a model from outside the server (external trainer; for system cron)",
        description="Exit codes: 0 trained, 2 bad input or data, 3 database error,"
        " 75 the model is being trained by another session right now (try later).",
    )
    t.add_argument("model")
    t.add_argument("--dsn", required=True)
    t.add_argument("--options", default="{}", help="JSON training options")
    t.add_argument(
        "--mode",
        choices=["full", "update"],
        default="full",
        help="update: warm-start from the active version (fewer sweeps)",
    )
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except PyrecError as e:
        print(
            f"pyrec: error: {e.message}" + (f"\nhint: {e.hint}" if e.hint else ""), file=sys.stderr
        )
        # EX_TEMPFAIL: another session holds the model's training lock; a later run will do
        return 75 if isinstance(e, ObjectInUse) else 2
    except psycopg.Error as e:
        print(f"pyrec: database error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
