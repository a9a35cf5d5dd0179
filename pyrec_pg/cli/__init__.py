"""The `pyrec` command line: its parser, and main() turning errors into exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from pyrec_pg import __version__
from pyrec_pg.cli import _data, _install, _serve, _train, _versions
from pyrec_pg.cli._output import EXIT_CODES, error_fields, report_error

_EPILOG = f"""examples:
  pyrec install --dsn 'dbname=mydb'                 # CREATE EXTENSION pyrec CASCADE
  pyrec load-sample movielens --dsn 'dbname=mydb'   # tables ratings, movies, viewers
  export PYREC_DSN='dbname=mydb'                    # or libpq's PGHOST, PGDATABASE ...
  pyrec create-model movies ratings --items movies --users viewers
  pyrec train movies
  pyrec evaluate movies
  pyrec recommend movies 42 -k 10 --filter 'EXCLUDE ItemID WHERE Items.genre IN ("Horror")'
  pyrec status --json

"pyrec COMMAND --help" explains a command, with examples. Commands that print data take
--json (one JSON document on stdout); progress of long work goes to stderr on a terminal.

{EXIT_CODES}"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyrec",
        description="pyrec_pg: an in-database recommender for PostgreSQL. Each command calls"
        " pyrec's SQL API\n(in databases with the managed flavour, training runs here instead).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pyrec_pg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (_install, _data, _train, _serve, _versions):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        if as_json:
            return report_error({"message": "interrupted"}, as_json, code=130)
        print("pyrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `pyrec versions | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        fields = error_fields(e)
        if fields is None:
            raise  # a bug: Python prints the traceback and exits 1
        return report_error(fields, as_json)
