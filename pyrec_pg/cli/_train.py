"""Commands that define and fit models: create-model, create-filter, train, evaluate."""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg

from pyrec_pg.cli._client import Client
from pyrec_pg.cli._db import READ_DSN_HINT, connect, dsn_of, rows
from pyrec_pg.cli._output import emit, parse_json, table
from pyrec_pg.cli._parsing import Subparsers, command
from pyrec_pg.cli._progress import Progress
from pyrec_pg.errors import FeatureNotSupported, InvalidParameter

OPTIONS_EXAMPLE = '{"params": {"factors": 32}}'


def cmd_create_model(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    options = parse_json("--options", args.options, OPTIONS_EXAMPLE) or {}
    arguments = {
        "name": args.name,
        "interactions": args.interactions,
        "items": args.items,
        "users": args.users,
        "recipe": args.recipe,
        "options": options,
    }
    with Client(dsn) as client:
        made = client.call(
            "create_model",
            arguments,
            "SELECT pyrec.create_model(%(name)s, %(interactions)s, %(items)s, %(users)s,"
            " %(recipe)s, %(options)s::jsonb)",
            {**arguments, "options": json.dumps(options)},
        )
    columns = ", ".join(f"{k} {v}" for k, v in made.get("columns", {}).items() if v is not None)
    text = [f'created model "{made["model"]}": recipe {made["recipe"]}']
    roles = ("interactions", "items", "users")
    text += [f"  {role:<12} {made[role]}" for role in roles if made.get(role)]
    text += [f"  {'columns':<12} {columns}"]
    emit(args, made, "\n".join(text))
    return 0


def cmd_create_filter(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    arguments = {"model": args.model, "name": args.name, "expression": args.expression}
    with Client(dsn) as client:
        compiled = client.call(
            "create_filter",
            arguments,
            "SELECT pyrec.create_filter(%(model)s, %(name)s, %(expression)s)",
        )
    text = f'created filter "{args.name}" of model "{args.model}": {args.expression}'
    emit(args, compiled, text)
    return 0


def _in_database(
    dsn: str, conn: psycopg.Connection[Any], arguments: dict[str, Any]
) -> dict[str, Any]:
    """CALL pyrec.train; the summary the external trainer prints, from the new version's row."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    model = arguments["model"]
    with Progress(dsn, f"training {model}", model, "training_runs"):
        conn.execute(
            "CALL pyrec.train(%s, %s::jsonb, %s)",
            [model, json.dumps(arguments["options"]), arguments["mode"]],
        )
    (summary,) = rows(
        conn,
        "SELECT model, version, n_users AS users, n_items AS items,"
        " n_interactions AS interactions, training_seconds AS seconds, metrics, mode"
        " FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
        [model],
    )
    return {**summary, "notice": notices[-1]}


def cmd_train(args: argparse.Namespace) -> int:
    """In the server (--in-database), else the external trainer: the same training code run
    here through the plpy stub, for system cron and services without plpython3u; with
    --read-dsn it reads the model's relations on a hot standby."""
    dsn = dsn_of(args)
    options = _engine_options(args, parse_json("--options", args.options, OPTIONS_EXAMPLE) or {})
    arguments = {"model": args.model, "options": options, "mode": args.mode}
    if args.read_dsn is not None:  # a bad one fails now, named, in either flavour
        connect(args.read_dsn, option="--read-dsn", hint=READ_DSN_HINT).close()
    with Client(dsn) as client:
        found = client.flavour
        if args.in_database:
            if found == "managed":
                raise FeatureNotSupported(
                    "--in-database needs the server's Python; this database has the managed"
                    " flavour",
                    hint="leave out --in-database: pyrec train then trains in this client",
                )
            summary = _in_database(dsn, client.conn, arguments)
            emit(args, summary, summary["notice"])
            return 0
    with Progress(dsn, f"training {args.model}", args.model, "training_runs"):
        summary = client.client_side("train", arguments, args.read_dsn)
    emit(args, summary, summary["notice"])
    return 0


def _engine_options(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """--engine and the --spark-* flags over --options (which they override key by key)."""
    if not isinstance(options, dict):
        return options  # the training names it
    if args.engine is not None:
        options = {**options, "engine": args.engine}
    given = options.get("spark")
    spark = dict(given) if isinstance(given, dict) else {}
    if args.spark_master is not None:
        spark["master"] = args.spark_master
    if args.spark_partitions is not None:
        spark["partitions"] = args.spark_partitions
    if args.spark_read is not None:
        spark["read"] = args.spark_read
    if args.spark_read_partitions is not None:
        spark["read_partitions"] = args.spark_read_partitions
    if args.spark_conf:
        conf = dict(spark.get("conf") or {})
        for pair in args.spark_conf:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise InvalidParameter(
                    f"--spark-conf takes KEY=VALUE, not {pair!r}",
                    hint="for example --spark-conf spark.driver.memory=4g",
                )
            conf[key.strip()] = value
        spark["conf"] = conf
    return {**options, "spark": spark} if spark else options


def _metric_order(name: str) -> tuple[str, int]:
    """precision@5 before precision@10 before precision@25 (the SQL sorts them as text)."""
    base, _, at = name.partition("@")
    return base, int(at) if at.isdigit() else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    dsn = dsn_of(args)
    options = parse_json("--options", args.options, OPTIONS_EXAMPLE) or {}
    overrides = {"protocol": args.protocol, "holdout": args.holdout, "seed": args.seed}
    with Client(dsn) as client, Progress(dsn, f"evaluating {args.model}", args.model):
        conn = client.conn
        if client.managed:
            merged = {**options, **{k: v for k, v in overrides.items() if v is not None}}
            found = client.client_side("evaluate", {"model": args.model, "options": merged})
            # the rows pyrec.evaluate makes of the evaluation, by the same SQL
            metrics = client.rows(
                "SELECT metric, value, popularity FROM pyrec._metric_rows(%s::jsonb)",
                [json.dumps(found)],
            )
        else:
            metrics = rows(
                conn,
                "SELECT metric, value, popularity FROM pyrec.evaluate(%s, %s, %s, %s, %s::jsonb)",
                [args.model, args.protocol, args.holdout, args.seed, json.dumps(options)],
            )
    metrics.sort(key=lambda r: _metric_order(r["metric"]))
    shown = [
        (
            r["metric"],
            r["value"],
            r["popularity"],
            f"{r['value'] / r['popularity']:.2f}x"
            if r["popularity"] and "@" in r["metric"]
            else "",
        )
        for r in metrics
    ]
    emit(args, metrics, table(["metric", args.model, "popularity", "vs popularity"], shown))
    return 0


def register(sub: Subparsers) -> None:
    p = command(
        sub,
        "create-model",
        cmd_create_model,
        "define a model over your tables (pyrec.create_model)",
        [
            "pyrec create-model movies ratings --items movies --users viewers --dsn 'dbname=mydb'",
            "pyrec create-model shop events --recipe ease"
            """ --options '{"columns": {"user": "customer"}, "event_weights": {"buy": 5}}'""",
        ],
        description="Columns are found by common names (user_id, viewer_id, item_id, movie_id,"
        " timestamp, rated_at, event_type, rating, ...); --options overrides them and sets"
        " training options. Prints the resolved mapping.",
    )
    p.add_argument("name")
    p.add_argument("interactions", help="table or view: user, item[, timestamp, event type, value]")
    p.add_argument("--items", help="item metadata table or view (filters, cold start)")
    p.add_argument("--users", help="user metadata table or view (filters, cold start)")
    p.add_argument(
        "--recipe", default="als", help="als (default) | ease | sims | popularity | trending | auto"
    )
    p.add_argument("--options", help=f"JSON training options, e.g. '{OPTIONS_EXAMPLE}'")

    p = command(
        sub,
        "create-filter",
        cmd_create_filter,
        "store a named filter of a model (pyrec.create_filter)",
        [
            "pyrec create-filter movies no_horror"
            """ 'EXCLUDE ItemID WHERE Items.genre IN ("Horror")' --dsn 'dbname=mydb'""",
        ],
    )
    p.add_argument("model")
    p.add_argument("name")
    p.add_argument("expression", help="Personalize syntax, or a SQL predicate on item columns")

    p = command(
        sub,
        "train",
        cmd_train,
        "train a new version of a model, evaluate it on a holdout, activate it",
        [
            "pyrec train movies --dsn 'dbname=mydb'                  # here, through psycopg",
            "pyrec train movies --in-database --dsn 'dbname=mydb'    # CALL pyrec.train",
            "pyrec train movies --mode update --json                 # warm start; for cron",
            "pyrec train movies --dsn 'host=primary dbname=mydb' --read-dsn 'host=standby"
            " dbname=mydb'",
            "pyrec train movies --engine spark --spark-master spark://spark-1:7077"
            " --spark-conf spark.executor.memory=8g",
        ],
        description="By default the external trainer: the same training code as the server's,"
        " run in this process through a plpy-compatible layer over psycopg (for system cron, and"
        " for services without plpython3u). --in-database runs CALL pyrec.train in the server"
        " instead. --read-dsn reads the model's tables on a hot standby of the --dsn database,"
        " so the primary only receives the new version (one transaction, as always); a server"
        " that is not such a standby is refused (SQLSTATE 55000), and the output says how far"
        " its replay was behind. --engine spark fits ALS on Apache Spark (the model's"
        " options.engine and options.spark set it for every training; docs/spark.md). On a"
        " terminal, stderr shows the phase and percent of"
        " pyrec.training_runs. Exits 75 when another session is training the model (cron can"
        " retry later).",
    )
    p.add_argument("model")
    p.add_argument("--options", help=f"JSON training options, e.g. '{OPTIONS_EXAMPLE}'")
    p.add_argument(
        "--mode",
        choices=["full", "update"],
        default="full",
        help="update: warm-start from the active version (fewer sweeps)",
    )
    p.add_argument(
        "--engine",
        choices=["pyrec", "spark"],
        help="what fits the model: pyrec's own solver (the default) or Apache Spark MLlib"
        " (recipe als; needs make spark); overrides the model's options.engine",
    )
    p.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark's master: local[*] (the default), local[N], spark://host:7077, yarn, k8s://...",
    )
    p.add_argument(
        "--spark-conf",
        metavar="KEY=VALUE",
        action="append",
        help="a Spark setting, e.g. spark.executor.memory=8g (repeatable)",
    )
    p.add_argument(
        "--spark-partitions",
        type=int,
        metavar="N",
        help="ALS blocks of users and of items (default: Spark's default parallelism)",
    )
    p.add_argument(
        "--spark-read",
        choices=["trainer", "jdbc"],
        help="who reads the interactions: this trainer, which sends the pairs to Spark (the"
        " default), or Spark's executors through JDBC, by a hash of the user (needs a TCP"
        " --dsn or --read-dsn)",
    )
    p.add_argument(
        "--spark-read-partitions",
        type=int,
        metavar="N",
        help="JDBC queries of --spark-read jdbc (default: Spark's default parallelism)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--in-database", action="store_true", help="train in the server (CALL pyrec.train)"
    )
    where.add_argument(
        "--read-dsn",
        metavar="DSN",
        help="a hot standby of the --dsn database: read the model's tables there, write the"
        " version to --dsn",
    )

    p = command(
        sub,
        "evaluate",
        cmd_evaluate,
        "holdout metrics of a model's recipe next to popularity (pyrec.evaluate)",
        [
            "pyrec evaluate movies --dsn 'dbname=mydb'",
            "pyrec evaluate movies --protocol time --holdout 0.2 --json",
        ],
        description="Fits the recipe on a split and scores the held-out part; writes no version."
        " protocol, holdout and seed default to the model's options.",
    )
    p.add_argument("model")
    p.add_argument("--protocol", choices=["random_per_user", "random_per_item", "time"])
    p.add_argument("--holdout", type=float, help="share held out, e.g. 0.25")
    p.add_argument("--seed", type=int)
    p.add_argument("--options", help=f"JSON options over the model's, e.g. '{OPTIONS_EXAMPLE}'")
