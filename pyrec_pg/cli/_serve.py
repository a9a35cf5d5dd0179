"""Serving commands: recommend, recommend-items, similar (always SQL), batch, segments."""

from __future__ import annotations

import argparse
import json
from typing import Any

from psycopg import sql

from pyrec_pg.cli._client import Client
from pyrec_pg.cli._db import dsn_of, rows
from pyrec_pg.cli._output import emit, parse_json, table
from pyrec_pg.cli._parsing import Subparsers, command, positive
from pyrec_pg.cli._progress import Progress

PARAMS_EXAMPLE = '{"GENRES": ["Comedy", "Drama"]}'


def _items(
    args: argparse.Namespace, query: str, values: list[Any], ranking: Any = None
) -> int:
    with Client(dsn_of(args)) as client:
        client.prepare_filter(args.model, args.filter)
        client.prepare_ranking(args.model, ranking)
        found = client.rows(query, values)
    text = table(["rank", "item", "score", "source"], [tuple(r.values()) for r in found])
    emit(args, found, text if found else "no items (the filter may exclude them all)")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    params = parse_json("--params", args.params, PARAMS_EXAMPLE)
    ranking = _ranking(args)
    return _items(
        args,
        "SELECT rank, item_id, score::float8, source FROM pyrec.recommend(%s, %s::text, %s,"
        " filter => %s, params => %s::jsonb, exclude_seen => %s, exclude_items => %s::text[],"
        " ranking => %s::jsonb) ORDER BY rank",
        [
            args.model,
            args.user,
            args.k,
            args.filter,
            _jsonb(params),
            not args.keep_seen,
            args.exclude,
            _jsonb(ranking),
        ],
        ranking,
    )


def cmd_recommend_items(args: argparse.Namespace) -> int:
    params = parse_json("--params", args.params, PARAMS_EXAMPLE)
    ranking = _ranking(args)
    return _items(
        args,
        "SELECT rank, item_id, score::float8, source FROM pyrec.recommend_for_items(%s,"
        " %s::text[], %s, filter => %s, params => %s::jsonb, exclude_items => %s::text[],"
        " ranking => %s::jsonb) ORDER BY rank",
        [args.model, args.items, args.k, args.filter, _jsonb(params), args.exclude,
         _jsonb(ranking)],
        ranking,
    )


def cmd_similar(args: argparse.Namespace) -> int:
    params = parse_json("--params", args.params, PARAMS_EXAMPLE)
    return _items(
        args,
        "SELECT rank, item_id, score::float8, source FROM pyrec.similar_items(%s, %s::text, %s,"
        " filter => %s, params => %s::jsonb, exclude_items => %s::text[]) ORDER BY rank",
        [args.model, args.item, args.k, args.filter, _jsonb(params), args.exclude],
    )


RANKING_EXAMPLE = '{"popularity": 0.2, "diversity": {"field": "Items.genre", "max_per_value": 3}}'


def _ranking(args: argparse.Namespace) -> Any:
    return parse_json("--ranking", args.ranking, RANKING_EXAMPLE)


def _ranking_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ranking",
        metavar="JSON",
        help="re-rank by popularity, freshness, boosts and a cap per value of an item field,"
        f" e.g. '{RANKING_EXAMPLE}' (docs/ranking.md)",
    )


def _jsonb(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def cmd_batch(args: argparse.Namespace) -> int:
    sources = {"users": args.users, "k": args.k, "ranking": _ranking(args)}
    return _batch_job(args, "batch_recommend", "users", sources)


def cmd_segments(args: argparse.Namespace) -> int:
    return _batch_job(args, "batch_users_for_items", "items", {"items": args.items, "n": args.n})


def _batch_job(args: argparse.Namespace, procedure: str, per: str, sources: dict[str, Any]) -> int:
    """CALL pyrec.<procedure> in the server, or its Python here in the managed flavour; both
    write a batch job (progress in pyrec.batch_jobs) and print one line: rows for `per`."""
    dsn = dsn_of(args)
    params = parse_json("--params", args.params, PARAMS_EXAMPLE)
    arguments = {
        "model": args.model,
        **sources,
        "filter": args.filter,
        "into_table": args.into,
        "params": params,
        "exclude_seen": not args.keep_seen,
    }
    with Client(dsn) as client:
        conn = client.conn
        if client.managed:
            with Progress(dsn, f"{args.command} {args.model}", args.model, "batch_jobs"):
                r = client.client_side(procedure, arguments)
            missing = r.get(f"{per}_without_vectors") if per == "items" else None
            text = (
                f"{r['rows']} rows for {r[per]} {per} in {r['table']}"
                f' (model "{r["model"]}" version {r["version"]}) in {r["seconds"]:.1f} s'
                + (f"; {missing} items are not in the version" if missing else "")
            )
            emit(args, {**r, "notice": text}, text)  # the line a server's NOTICE would give
            return 0
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        named = sql.SQL(", ").join(
            sql.SQL("{} => {}{}").format(
                sql.Identifier(k),
                sql.Placeholder(k),
                sql.SQL("::jsonb" if k in ("params", "ranking") else ""),
            )
            for k in arguments
        )
        with Progress(dsn, f"{args.command} {args.model}", args.model, "batch_jobs"):
            conn.execute(
                sql.SQL("CALL pyrec.{}({})").format(sql.Identifier(procedure), named),
                {
                    **arguments,
                    "params": _jsonb(params),
                    **({"ranking": _jsonb(arguments["ranking"])} if "ranking" in arguments else {}),
                },
            )
        # the job's row: what it wrote, where, from which version (its NOTICE says the same)
        (job,) = rows(
            conn,
            "SELECT model, version, target AS table, rows_written AS rows,"
            " extract(epoch FROM duration)::float8 AS seconds FROM pyrec.batch_jobs"
            " WHERE model = %s AND status = 'succeeded' ORDER BY run_id DESC LIMIT 1",
            [args.model],
        )
    emit(args, {**job, "notice": notices[-1]}, notices[-1])
    return 0


def _serving_options(p: argparse.ArgumentParser, k: int, count: str = "-k") -> None:
    p.add_argument(count, type=positive, default=k, help=f"how many (default {k})")
    p.add_argument("--filter", help="a filter expression, or the name of a stored filter")
    p.add_argument(
        "--params", help=f"JSON values of the filter's $PARAMETERS, e.g. '{PARAMS_EXAMPLE}'"
    )


def _exclude_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exclude",
        action="append",
        metavar="ITEM",
        help="leave this item out (repeat it; e.g. the items of the previous page)",
    )


def register(sub: Subparsers) -> None:
    p = command(
        sub,
        "recommend",
        cmd_recommend,
        "top-k items for a user (pyrec.recommend): rank, item, score, source",
        [
            "pyrec recommend movies 42 --dsn 'dbname=mydb'",
            "pyrec recommend movies 42 -k 5"
            " --filter 'EXCLUDE ItemID WHERE Items.genre IN (\"Horror\")'",
            "pyrec recommend movies 42 --json \\\n"
            "    --filter 'INCLUDE ItemID WHERE Items.genre IN ($GENRES)'"
            f" --params '{PARAMS_EXAMPLE}'",
        ],
        description="Items the user interacted with are left out (--keep-seen keeps them). An"
        " unknown user gets popular items; source says which way each item was chosen.",
    )
    p.add_argument("model")
    p.add_argument("user", help="the user's id (as text)")
    _serving_options(p, 10)
    p.add_argument("--keep-seen", action="store_true", help="also items the user interacted with")
    _exclude_option(p)
    _ranking_option(p)

    p = command(
        sub,
        "recommend-items",
        cmd_recommend_items,
        "top-k items for a list of items: a cart, an anonymous session (pyrec.recommend_for_items)",
        [
            "pyrec recommend-items movies 50 181 172 --dsn 'dbname=mydb'",
            "pyrec recommend-items movies 50 181 -k 5 --exclude 1 --exclude 98",
        ],
        description="The items are folded in as one history and left out of the answer; if"
        " the model knows none of them, popular items are returned.",
    )
    p.add_argument("model")
    p.add_argument("items", nargs="+", help="the items' ids (as text)")
    _serving_options(p, 10)
    _exclude_option(p)
    _ranking_option(p)

    p = command(
        sub,
        "similar",
        cmd_similar,
        "items most similar to an item (pyrec.similar_items)",
        [
            "pyrec similar movies 50 --dsn 'dbname=mydb'",
            "pyrec similar movies 50"
            " --filter 'INCLUDE ItemID WHERE Items.genre IN (CurrentItem.genre)'",
        ],
    )
    p.add_argument("model")
    p.add_argument("item", help="the item's id (as text)")
    _serving_options(p, 10)
    _exclude_option(p)

    p = command(
        sub,
        "batch",
        cmd_batch,
        "top-k items for many users into a table, replaced atomically (pyrec.batch_recommend)",
        [
            "pyrec batch movies --into reporting.movie_recs --dsn 'dbname=mydb'    # every user",
            "pyrec batch movies --users 'SELECT viewer_id FROM viewers WHERE age < 30' -k 25",
        ],
        description="Writes (user_id, item_id, score, rank, source) rows; readers see the previous"
        " rows until the job commits. On a terminal, stderr shows the job's progress"
        " (pyrec.batch_jobs). Exits 75 when another job is writing the same table.",
    )
    p.add_argument("model")
    p.add_argument("--users", help="a query or a table/view of user ids (default: every user)")
    p.add_argument("--into", metavar="TABLE", help="output table (default pyrec.batch_<model>)")
    _serving_options(p, 25)
    p.add_argument("--keep-seen", action="store_true", help="also items the users interacted with")
    _ranking_option(p)

    p = command(
        sub,
        "segments",
        cmd_segments,
        "top-n users of many items into a table, replaced atomically (pyrec.batch_users_for_items)",
        [
            "pyrec segments movies --items 'SELECT movie_id FROM movies WHERE year = 1998'"
            " --into segs -n 500 --dsn 'dbname=mydb'",
            "pyrec segments movies --items new_releases -n 100"
            """ --filter 'INCLUDE UserID WHERE Users.age >= 18' --json""",
        ],
        description="The audience of each item, as pyrec.users_for_item returns it: (item_id,"
        " user_id, score, rank) rows, by default without users who already interacted with the"
        " item. Readers see the previous rows until the job commits; on a terminal, stderr shows"
        " the job's progress (pyrec.batch_jobs). Exits 75 when another job is writing the same"
        " table.",
    )
    p.add_argument("model")
    p.add_argument(
        "--items",
        metavar="QUERY_OR_TABLE",
        help="a query or a table/view of item ids (default: every item)",
    )
    p.add_argument("--into", metavar="TABLE", help="output table (default pyrec.segments_<model>)")
    _serving_options(p, 100, "-n")
    p.add_argument("--keep-seen", action="store_true", help="also users who interacted already")
