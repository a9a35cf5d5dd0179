"""Subcommands built one way: --dsn and --json options, examples and exit codes in --help."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from pyrec_pg.cli._output import EXIT_CODES

Command = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse's _SubParsersAction is private


def command(
    sub: Subparsers,
    name: str,
    fn: Command,
    summary: str,
    examples: Sequence[str],
    *,
    description: str | None = None,
    dsn: bool = True,
    json: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand whose --help shows what it does, examples, and the exit codes."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n" + EXIT_CODES
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description or summary, 92),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if dsn:
        p.add_argument(
            "--dsn",
            metavar="DSN",
            help="libpq connection string or URI (default: $PYREC_DSN, else libpq's"
            " PGHOST, PGDATABASE, PGUSER ... variables)",
        )
    if json:
        p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.set_defaults(fn=fn)
    return p


def positive(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse reports anything else as a usage error)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n
