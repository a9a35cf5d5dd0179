"""Commands about a model's life: versions, activate, rollback, drop, report, schedules."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

import psycopg

from pyrec_pg.cli._client import Client
from pyrec_pg.cli._db import dsn_of, rows
from pyrec_pg.cli._output import emit, parse_json, table
from pyrec_pg.cli._parsing import Subparsers, command, positive
from pyrec_pg.cli._train import OPTIONS_EXAMPLE
from pyrec_pg.errors import (
    FeatureNotSupported,
    InvalidParameter,
    UndefinedFile,
    UndefinedObject,
)

_VERSIONS = """
SELECT model, version, status, recipe, mode, n_users, n_items, n_interactions,
       (metrics->>'ndcg@10')::float8 AS "ndcg@10",
       (metrics->>'precision@10')::float8 AS "precision@10",
       training_seconds, created_at, activated_at, params, metrics
  FROM pyrec.model_versions WHERE %(model)s::text IS NULL OR model = %(model)s
 ORDER BY model, version"""


def _check_model(conn: psycopg.Connection[Any], model: str) -> None:
    if not conn.execute("SELECT 1 FROM pyrec.models WHERE name = %s", [model]).fetchone():
        raise UndefinedObject(
            f'model "{model}" does not exist', hint="pyrec status lists the models"
        )


def cmd_versions(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        conn = client.conn
        if args.model is not None:
            _check_model(conn, args.model)
        found = rows(conn, _VERSIONS, {"model": args.model})
    headers = ["model", "version", "status", "recipe", "mode", "users", "items", "interactions"]
    shown = [
        (
            *(r[h] for h in ("model", "version", "status", "recipe", "mode")),
            *(r[h] for h in ("n_users", "n_items", "n_interactions", "ndcg@10", "precision@10")),
            r["training_seconds"],
            f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
        )
        for r in found
    ]
    text = table([*headers, "ndcg@10", "precision@10", "seconds", "created"], shown)
    if not found:
        text = "no trained versions yet: pyrec train MODEL trains one"
    emit(args, found, text)
    return 0


def _serve_version(args: argparse.Namespace, call: str, values: list[Any]) -> int:
    """pyrec.activate or pyrec.rollback: both return model, active_version, previous_version."""
    with Client(dsn_of(args)) as client:
        conn = client.conn
        row = conn.execute(call, values).fetchone()
    assert row is not None
    r: dict[str, Any] = row[0]
    was = "none" if r["previous_version"] is None else r["previous_version"]
    text = f'model "{r["model"]}" serves version {r["active_version"]} (was {was})'
    emit(args, r, text)
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    return _serve_version(args, "SELECT pyrec.activate(%s, %s)", [args.model, args.version])


def cmd_rollback(args: argparse.Namespace) -> int:
    return _serve_version(args, "SELECT pyrec.rollback(%s)", [args.model])


def cmd_drop_model(args: argparse.Namespace) -> int:
    if not args.yes:  # checked before connecting: without --yes nothing is touched
        raise InvalidParameter(
            f'drop-model deletes model "{args.model}" with all its versions, vector tables,'
            " runs and batch output tables, and needs --yes",
            hint=f"pyrec drop-model {shlex.quote(args.model)} --yes",
        )
    notices: list[str] = []
    with Client(dsn_of(args)) as client:
        conn = client.conn
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SELECT pyrec.drop_model(%s, %s)", [args.model, args.if_exists])
    skipped = [n for n in notices if n.endswith("does not exist, skipping")]  # --if-exists
    text = skipped[0] if skipped else f'dropped model "{args.model}"'
    emit(args, {"model": args.model, "dropped": not skipped}, text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from pyrec_pg.analysis.report import write_report
    except ImportError as e:
        missing = e.name or "pyrec_pg.analysis.report"
        raise UndefinedFile(
            f"pyrec report needs {missing}, which this installation lacks",
            hint="pip install 'pyrec_pg[report]' (reports draw their charts with matplotlib)",
        ) from e
    with Client(dsn_of(args)) as client:
        conn = client.conn
        _check_model(conn, args.model)
        args.out.mkdir(parents=True, exist_ok=True)
        path = Path(
            write_report(conn, args.model, args.out, k=args.k, sample_users=args.sample_users)
        )
    emit(args, {"model": args.model, "path": str(path)}, f"wrote {path}")
    return 0


def _no_cron_in_managed(client: Client) -> None:
    if client.managed:
        raise FeatureNotSupported(
            "scheduled trainings run in the server's Python; this database has the managed flavour",
            hint="let the system's cron run: pyrec train --dsn '...' MODEL",
        )


def cmd_schedule(args: argparse.Namespace) -> int:
    options = parse_json("--options", args.options, OPTIONS_EXAMPLE) or {}
    with Client(dsn_of(args)) as client:
        _no_cron_in_managed(client)
        conn = client.conn
        row = conn.execute(
            "SELECT pyrec.schedule_training(%s, %s, %s, %s::jsonb)",
            [args.model, args.schedule, args.mode, json.dumps(options)],
        ).fetchone()
    assert row is not None
    data = {"model": args.model, "schedule": args.schedule, "mode": args.mode, "job": row[0]}
    text = (
        f'model "{args.model}" trains ({args.mode}) on "{args.schedule}"'
        f" through pg_cron job {row[0]}"
    )
    emit(args, data, text)
    return 0


def cmd_unschedule(args: argparse.Namespace) -> int:
    with Client(dsn_of(args)) as client:
        _no_cron_in_managed(client)
        conn = client.conn
        row = conn.execute(
            "SELECT pyrec.unschedule_training(%s, %s)", [args.model, args.if_exists]
        ).fetchone()
    assert row is not None
    removed = bool(row[0])
    text = (
        f'removed the scheduled training of model "{args.model}"'
        if removed
        else f'model "{args.model}" had no scheduled training'
    )
    emit(args, {"model": args.model, "removed": removed}, text)
    return 0


def register(sub: Subparsers) -> None:
    p = command(
        sub,
        "versions",
        cmd_versions,
        "trained versions: status, recipe, sizes, holdout metrics (pyrec.model_versions)",
        ["pyrec versions --dsn 'dbname=mydb'", "pyrec versions movies --json"],
    )
    p.add_argument("model", nargs="?", help="only this model's versions")

    p = command(
        sub,
        "activate",
        cmd_activate,
        "serve a kept version of a model from the next query on (pyrec.activate)",
        ["pyrec activate movies 3 --dsn 'dbname=mydb'", "pyrec activate movies 3 --json"],
        description="Any version pyrec.model_versions lists (the setting pyrec.keep_versions"
        " bounds how many are kept). Prints the version served before.",
    )
    p.add_argument("model")
    p.add_argument("version", type=int)

    p = command(
        sub,
        "rollback",
        cmd_rollback,
        "serve the newest version older than the active one (pyrec.rollback)",
        ["pyrec rollback movies --dsn 'dbname=mydb'    # undo a bad training"],
        description="Exits 2 (SQLSTATE 55000) when no kept version is older than the active one.",
    )
    p.add_argument("model")

    p = command(
        sub,
        "drop-model",
        cmd_drop_model,
        "drop a model with its versions, vector tables, runs, batch outputs (pyrec.drop_model)",
        [
            "pyrec drop-model movies --yes --dsn 'dbname=mydb'",
            "pyrec drop-model movies --yes --if-exists     # no error when there is none",
        ],
        description="Destructive, so it needs --yes (without it: exit 2, nothing changed). Your"
        " own tables (interactions, items, users) are left alone.",
    )
    p.add_argument("model")
    p.add_argument("--yes", action="store_true", help="really drop it")
    p.add_argument("--if-exists", action="store_true", help="no error when there is none")

    p = command(
        sub,
        "report",
        cmd_report,
        "write a model's report (metrics, versions, charts) into a folder",
        ["pyrec report movies --out reports/ --dsn 'dbname=mydb'"],
        description="Needs the optional report dependencies: pip install 'pyrec_pg[report]'.",
    )
    p.add_argument("model")
    p.add_argument("--out", type=Path, default=Path("."), help="folder (default: here)")
    p.add_argument(
        "-k", type=positive, default=10, help="list length for coverage and bias (default 10)"
    )
    p.add_argument(
        "--sample-users",
        type=positive,
        default=500,
        help="users whose served lists measure coverage and bias (default 500)",
    )

    p = command(
        sub,
        "schedule",
        cmd_schedule,
        "retrain a model on a cron schedule through pg_cron (pyrec.schedule_training)",
        [
            "pyrec schedule movies '0 3 * * *' --dsn 'dbname=mydb'        # daily at 03:00",
            "pyrec schedule movies '*/30 * * * *' --mode update",
        ],
        description="One schedule per model: a new one replaces the old. Needs pg_cron in this"
        " database; without it the error names the alternative (system cron running"
        " pyrec train).",
    )
    p.add_argument("model")
    p.add_argument("schedule", help="cron expression: minute hour day-of-month month day-of-week")
    p.add_argument("--mode", choices=["full", "update"], default="full")
    p.add_argument("--options", help=f"JSON training options, e.g. '{OPTIONS_EXAMPLE}'")

    p = command(
        sub,
        "unschedule",
        cmd_unschedule,
        "remove a model's scheduled training (pyrec.unschedule_training)",
        ["pyrec unschedule movies --dsn 'dbname=mydb'", "pyrec unschedule movies --if-exists"],
    )
    p.add_argument("model")
    p.add_argument("--if-exists", action="store_true", help="no error when there is none")
