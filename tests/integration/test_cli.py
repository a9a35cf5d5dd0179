"""The `pyrec` command line, run as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyrec_pg import cli
from pyrec_pg.dev.cluster import Cluster
from pyrec_pg.jobs.training import LOCK_CLASS
from tests.conftest import FAST

Conn = psycopg.Connection[Any]
PYREC = [sys.executable, "-m", "pyrec_pg.cli"]
REPO = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # libpq variables of the caller must not leak into the commands under test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYREC_DSN"))}
    return {**env, "PYTHONPATH": str(REPO), **(extra or {})}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*PYREC, *args], capture_output=True, text=True, env=_env(env), timeout=300, cwd=REPO
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    done = run(*args, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def fails(code: int, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command expected to exit with `code`; return its stderr."""
    done = run(*args, env=env)
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", done.stdout  # errors never mix into the data on stdout
    return done.stderr


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def fails_json(code: int, *args: str) -> dict[str, Any]:
    """The error object a command run with --json prints on stderr, checked for its shape."""
    err: dict[str, Any] = json.loads(fails(code, *args, "--json"))
    assert set(err) == {"error", "exit"} and err["exit"] == code, err
    assert set(err["error"]) == {"sqlstate", "message", "detail", "hint"}, err
    fields: dict[str, Any] = err["error"]
    return fields


def fails_with_data(code: int, *args: str) -> str:
    """Run a command that prints its data and still exits with `code`; return its stderr."""
    done = run(*args)
    assert done.returncode == code and done.stdout, (args, done.returncode, done.stderr)
    return done.stderr


def parallel(commands: Sequence[Sequence[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run commands that need no database at once (each is a fresh Python)."""
    procs = [
        subprocess.Popen(
            [*PYREC, *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        for c in commands
    ]
    done = []
    for c, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return done


def columns_aligned(text: str) -> None:
    """A table: a dashes line under the header, and every column starting where its dashes do."""
    lines = text.splitlines()
    dashes = lines[1]
    assert set(dashes) == {"-", " "}, dashes
    starts = [i for i, ch in enumerate(dashes) if ch == "-" and i > 0 and dashes[i - 1] == " "]
    for line in [lines[0], *lines[2:]]:
        for s in starts:
            assert len(line) <= s or line[s - 2 : s] == "  ", (line, s)


@pytest.fixture
def empty_db(server_dsn: str) -> Iterator[str]:
    name = f"pyrec_cli_empty_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_help_teaches_every_command() -> None:
    (commands,) = [a for a in cli.parser()._actions if a.dest == "command"]
    names = sorted(commands.choices or {})
    assert {"install", "upgrade", "status", "check", "train", "evaluate", "recommend"} <= set(names)
    top, *subs = parallel([["--help"], *([n, "--help"] for n in names)])
    assert top.returncode == 0
    for name in names:
        assert name in top.stdout
    assert "exit codes:" in top.stdout and "75" in top.stdout and "PYREC_DSN" in top.stdout
    for name, done in zip(names, subs, strict=True):
        assert done.returncode == 0, done.stderr
        assert f"usage: pyrec {name}" in done.stdout
        assert f"examples:\n  pyrec {name}" in done.stdout, name
        assert "exit codes:" in done.stdout and "  2   bad arguments" in done.stdout
        if name != "demo":
            assert "--dsn DSN" in done.stdout and "PYREC_DSN" in done.stdout


def test_usage_errors_exit_2_with_the_usage() -> None:
    cases = [
        ([], "the following arguments are required: COMMAND"),
        (["retrain"], "invalid choice: 'retrain'"),
        (["recommend", "movies"], "the following arguments are required: user"),
        (["recommend", "movies", "42", "-k", "0"], "argument -k: must be at least 1, got 0"),
        (["recommend", "movies", "42", "-k", "ten"], "argument -k: not an integer: 'ten'"),
        (["train", "movies", "--mode", "partial"], "argument --mode: invalid choice: 'partial'"),
        (["evaluate", "movies", "--holdout", "x"], "argument --holdout: invalid float value"),
    ]
    for (args, message), done in zip(cases, parallel([c for c, _ in cases]), strict=True):
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("usage: pyrec"), done.stderr
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == ""


def test_bad_dsns_say_what_failed(server_dsn: str, tmp_path: Path) -> None:
    err = fails(3, "status", "--dsn", f"host={tmp_path / 'nowhere'} dbname=x")
    assert err.startswith("pyrec: error: cannot connect to the database: connection to server on")
    assert "No such file or directory" in err and "sqlstate: 08006" in err
    assert "hint: pass --dsn (or set PYREC_DSN" in err
    no_db = psycopg.conninfo.make_conninfo(server_dsn, dbname="no_such_db")
    err = fails(3, "recommend", "movies", "42", "--dsn", no_db)
    assert 'database "no_such_db" does not exist' in err
    # --json: the error is one JSON object on stderr, stdout stays empty
    err = json.loads(fails(3, "status", "--json", "--dsn", f"host={tmp_path / 'nowhere'}"))
    assert set(err) == {"error", "exit"} and err["exit"] == 3
    assert set(err["error"]) == {"sqlstate", "message", "detail", "hint"}
    assert err["error"]["sqlstate"] == "08006" and "No such file" in err["error"]["message"]
    assert err["error"]["hint"].startswith("pass --dsn")
    err = fails(2, "versions", "--dsn", "dbname")
    assert err.startswith('pyrec: error: invalid connection string: missing "=" after')
    # PYREC_DSN is the fallback of --dsn, and --dsn wins over it
    assert "no_such_db" in fails(3, "status", env={"PYREC_DSN": no_db})
    assert "invalid connection string" in fails(
        2, "status", "--dsn", "dbname", env={"PYREC_DSN": no_db}
    )


def test_install_upgrade_and_status_of_an_empty_database(empty_db: str) -> None:
    err = fails(3, "status", "--dsn", empty_db)
    assert err.startswith('pyrec: error: pyrec is not installed in database "pyrec_cli_empty_')
    assert "sqlstate: 3F000" in err and "hint: pyrec install --dsn" in err
    assert "is not installed" in fails(3, "recommend", "movies", "1", "--dsn", empty_db)
    with psycopg.connect(empty_db, autocommit=True) as c:
        versions = [
            r[0]
            for r in c.execute(
                "SELECT version FROM pg_available_extension_versions WHERE name = 'pyrec'"
                " ORDER BY string_to_array(version, '.')::int[]"
            )
        ]
        newest = c.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pyrec'"
        ).fetchone()[0]  # type: ignore[index]
        # the oldest release, then the walk to the newest (or nothing to walk, if one exists)
        out = ok("install", "--dsn", empty_db, "--version", versions[0])
        assert out.startswith(f"installed pyrec {versions[0]} (Python package ")
        assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pyrec'").fetchone()
        again = ok_json("install", "--dsn", empty_db)
        assert again == {
            "database": c.info.dbname,
            "flavour": "extension",
            "version": versions[0],
            "installed": False,
        }
        up = ok_json("upgrade", "--dsn", empty_db)
        assert up["from"] == versions[0] and up["to"] == newest
        assert up["upgraded"] is (versions[0] != newest)
        assert c.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pyrec'"
        ).fetchone() == (newest,)
    assert ok("upgrade", "--dsn", empty_db).startswith(f"pyrec is already at {newest} in database")
    err = fails(2, "upgrade", "--dsn", empty_db, "--to", "9.9")
    assert 'has no update path from version "' in err
    assert f"hint: versions on this server: {', '.join(versions)}" in err
    status = ok_json("status", "--dsn", empty_db)
    assert status["flavour"] == "extension" and status["models"] == []
    assert status["versions"]["sql"] == newest
    assert "no models yet" in ok("status", "--dsn", empty_db)


def test_a_model_from_creation_to_evaluation(dsn: str) -> None:
    out = ok(
        "create-model",
        *("movies", "ratings", "--items", "movies", "--users", "viewers"),
        *("--options", FAST, "--dsn", dsn),
    )
    assert out.splitlines()[0] == 'created model "movies": recipe als'
    assert "user viewer_id" in out and "item movie_id" in out and "public.viewers" in out
    err = fails(2, "create-model", "other", "no_such_table", "--dsn", dsn)
    assert "sqlstate: 42P01" in err and "hint:" in err

    checks = ok("check", "movies", "--dsn", dsn)
    assert checks.splitlines()[0].split() == ["check", "value", "ok", "detail"]
    assert any(line.startswith("recipe als ") and " ok " in line for line in checks.splitlines())
    columns_aligned(checks)

    # the external trainer (this process, through psycopg), then the server: one catalog
    done = run("train", "movies", "--dsn", dsn, "--json")
    assert done.returncode == 0 and done.stderr == ""  # no progress line: not a terminal
    first = json.loads(done.stdout)
    assert (first["model"], first["version"], first["users"], first["items"]) == (
        "movies",
        1,
        943,
        1682,
    )
    inside = ok("train", "movies", "--in-database", "--dsn", dsn)
    assert inside.startswith('model "movies" version 2 is active: 943 users, 1682 items')
    with psycopg.connect(dsn) as c:
        stored = dict(c.execute("SELECT version, metrics FROM pyrec.model_versions").fetchall())
    assert first["metrics"]["ndcg@10"] == pytest.approx(stored[1]["ndcg@10"], abs=1e-6)
    assert first["metrics"]["ndcg@10"] == pytest.approx(stored[2]["ndcg@10"], abs=0.01)

    versions = ok_json("versions", "movies", "--dsn", dsn)
    assert [(v["version"], v["status"]) for v in versions] == [(1, "inactive"), (2, "active")]
    table = ok("versions", "--dsn", dsn)
    assert table.splitlines()[0].split()[:3] == ["model", "version", "status"]
    assert len(table.splitlines()) == 4
    columns_aligned(table)
    assert 'model "nope" does not exist' in fails(2, "versions", "nope", "--dsn", dsn)

    metrics = ok_json("evaluate", "movies", "--dsn", dsn)
    by_name = {m["metric"]: m for m in metrics}
    assert by_name["ndcg@10"]["value"] == pytest.approx(stored[2]["ndcg@10"], abs=0.01)
    pop = stored[2]["baseline"]["popularity"]["ndcg@10"]
    assert by_name["ndcg@10"]["popularity"] == pytest.approx(pop, abs=1e-6)
    names = [m["metric"] for m in metrics]
    assert names.index("precision@5") < names.index("precision@10") < names.index("precision@25")
    text = ok("evaluate", "movies", "--dsn", dsn, "--protocol", "random_per_user", "--seed", "0")
    assert text.splitlines()[0].split() == ["metric", "movies", "popularity", "vs", "popularity"]
    row = next(line for line in text.splitlines() if line.startswith("ndcg@10 "))
    assert row.split()[1] == f"{by_name['ndcg@10']['value']:.4f}" and row.endswith("x")
    columns_aligned(text)
    err = fails(2, "evaluate", "movies", "--dsn", dsn, "--holdout", "0")
    assert "holdout must be above 0" in err and "sqlstate: 22023" in err


def test_check_exits_2_when_the_recipe_lacks_data(conn: Conn) -> None:
    conn.execute(
        "CREATE TABLE tiny AS SELECT g % 5 AS user_id, g AS item_id FROM generate_series(1, 40) g"
    )
    conn.execute("SELECT pyrec.create_model('tiny', 'tiny')")
    done = run("check", "tiny", "--dsn", conn.info.dsn, "--json")
    assert done.returncode == 2
    rows = {r["check_name"]: r for r in json.loads(done.stdout)}
    assert rows["recipe als"]["ok"] is False and rows["interactions"]["value"] == 40
    error = json.loads(done.stderr)  # --json: the reason for exit 2 is JSON too
    assert error["exit"] == 2 and error["error"]["sqlstate"] is None
    assert error["error"]["message"] == 'model "tiny" does not have the data its recipe needs'
    assert error["error"]["detail"].startswith("needs 1000")
    err = fails_with_data(2, "check", "tiny", "--dsn", conn.info.dsn)
    assert 'pyrec: model "tiny" does not have the data its recipe needs: needs 1000' in err


def test_serving_matches_the_sql_api(trained: Conn) -> None:
    dsn = trained.info.dsn

    def sql_rows(query: str, *args: Any) -> list[dict[str, Any]]:
        cur = trained.execute(query, args)
        return [
            {"rank": r[2], "item_id": r[0], "score": pytest.approx(r[1], rel=1e-6), "source": r[3]}
            for r in cur
        ]

    got = ok_json("recommend", "movies", "42", "-k", "5", "--dsn", dsn)
    assert got == sql_rows("SELECT * FROM pyrec.recommend('movies', '42', 5)")
    text = ok("recommend", "movies", "42", "-k", "5", "--dsn", dsn)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "item", "score", "source"] and len(lines) == 7
    assert lines[2].split()[:2] == ["1", got[0]["item_id"]]
    columns_aligned(text)

    flt = "INCLUDE ItemID WHERE Items.genre IN ($G)"
    params = '{"G": ["Horror"]}'
    got = ok_json(
        "recommend", "movies", "42", "-k", "3", "--filter", flt, "--params", params, "--dsn", dsn
    )
    assert got == sql_rows(
        "SELECT * FROM pyrec.recommend('movies', '42', 3, filter => %s, params => %s)", flt, params
    )
    kept = ok_json("recommend", "movies", "42", "--keep-seen", "--dsn", dsn)
    assert kept == sql_rows("SELECT * FROM pyrec.recommend('movies', '42', exclude_seen => false)")
    stranger = ok_json("recommend", "movies", "no-such-user", "-k", "2", "--dsn", dsn)
    assert {r["source"] for r in stranger} == {"popular"}
    similar = ok_json("similar", "movies", "50", "-k", "4", "--dsn", dsn)
    assert similar == sql_rows("SELECT * FROM pyrec.similar_items('movies', '50', 4)")
    assert ok("similar", "movies", "50", "-k", "4", "--dsn", dsn).count("\n") == 6
    page = ok_json("similar", "movies", "50", "-k", "4", "--exclude", "181", "--dsn", dsn)
    assert page == sql_rows(
        "SELECT * FROM pyrec.similar_items('movies', '50', 4, exclude_items => ARRAY['181'])"
    )
    cart = ok_json(
        "recommend-items", "movies", "50", "181", "-k", "3", "--exclude", "1", "--dsn", dsn
    )
    assert cart == sql_rows(
        "SELECT * FROM pyrec.recommend_for_items('movies', ARRAY['50', '181'], 3,"
        " exclude_items => ARRAY['1'])"
    )
    assert {r["source"] for r in cart} == {"fold-in"}
    shown = [r["item_id"] for r in ok_json("recommend", "movies", "42", "-k", "3", "--dsn", dsn)]
    more = ok_json(
        "recommend", "movies", "42", "-k", "3", *(f"--exclude={i}" for i in shown), "--dsn", dsn
    )
    assert not {r["item_id"] for r in more} & set(shown)

    err = fails(2, "recommend", "nope", "42", "--dsn", dsn)
    assert err.splitlines() == [
        'pyrec: error: model "nope" does not exist',
        "sqlstate: 42704",
        "hint: SELECT name FROM pyrec.models lists the models",
    ]
    err = fails(2, "recommend", "movies", "42", "--params", "{GENRES}", "--dsn", dsn)
    assert err.startswith("pyrec: error: --params is not JSON") and "hint: e.g. --params" in err
    err = fails(
        2,
        "recommend",
        "movies",
        "42",
        "--filter",
        "EXCLUDE ItemID WHERE Items.nope IN (1)",
        "--dsn",
        dsn,
    )
    assert 'unknown field "Items.nope"' in err and "sqlstate: 42703" in err
    assert "hint: columns of public.movies:" in err


def test_filters_and_batches(trained: Conn) -> None:
    dsn = trained.info.dsn
    expression = 'EXCLUDE ItemID WHERE Items.genre IN ("Drama")'
    out = ok("create-filter", "movies", "no_drama", expression, "--dsn", dsn)
    assert out.strip() == f'created filter "no_drama" of model "movies": {expression}'
    assert "already exists" in fails(
        2, "create-filter", "movies", "no_drama", expression, "--dsn", dsn
    )
    users = "SELECT viewer_id FROM viewers WHERE viewer_id <= 10"
    out = ok(
        "batch",
        "movies",
        "-k",
        "3",
        "--users",
        users,
        "--into",
        "public.recs",
        "--filter",
        "no_drama",
        "--dsn",
        dsn,
    )
    assert out.startswith('30 rows for 10 users in public.recs (model "movies" version 1) in ')
    assert trained.execute(
        "SELECT count(*), count(DISTINCT user_id) FROM public.recs"
    ).fetchone() == (30, 10)
    drama = trained.execute(
        "SELECT count(*) FROM public.recs r JOIN movies m ON m.movie_id = r.item_id::int"
        " WHERE 'Drama' = ANY (m.genre)"
    ).fetchone()
    assert drama == (0,)
    again = ok_json(
        "batch", "movies", "-k", "2", "--users", users, "--into", "public.recs", "--dsn", dsn
    )
    assert (again["table"], again["rows"], again["version"]) == ("public.recs", 20, 1)
    assert again["notice"].startswith("20 rows for 10 users")
    trained.execute("CREATE TABLE mine (x int)")
    err = fails(2, "batch", "movies", "--into", "mine", "--dsn", dsn)
    assert "was not written by pyrec.batch_recommend" in err and "sqlstate: 42P07" in err


def test_activate_rollback_and_drop_model(trained: Conn) -> None:
    dsn = trained.info.dsn
    trained.execute("CALL pyrec.train('movies')")  # version 2, now active

    def statuses() -> list[tuple[int, str]]:
        return trained.execute(
            "SELECT version, status FROM pyrec.model_versions WHERE model = 'movies'"
            " ORDER BY version"
        ).fetchall()

    back = ok_json("rollback", "movies", "--dsn", dsn)
    assert back == {"model": "movies", "active_version": 1, "previous_version": 2}
    assert statuses() == [(1, "active"), (2, "inactive")]
    assert trained.execute("SELECT active_version FROM pyrec.models").fetchone() == (1,)
    err = fails_json(2, "rollback", "movies", "--dsn", dsn)
    assert err["sqlstate"] == "55000" and "no version older than the active one (1)" in (
        err["message"]
    )
    assert err["hint"].startswith("pyrec.activate(model, version)")
    out = ok("activate", "movies", "2", "--dsn", dsn)
    assert out.strip() == 'model "movies" serves version 2 (was 1)'
    assert statuses() == [(1, "inactive"), (2, "active")]
    err = fails_json(2, "activate", "movies", "9", "--dsn", dsn)
    assert err == {
        "sqlstate": "42704",
        "message": 'model "movies" has no version 9',
        "detail": None,
        "hint": "kept versions: 1, 2 (the setting pyrec.keep_versions bounds them)",
    }
    assert fails(2, "activate", "movies", "9", "--dsn", dsn).startswith(
        'pyrec: error: model "movies" has no version 9\nsqlstate: 42704\n'
    )

    # destructive: without --yes, exit 2 and nothing changes
    versions = trained.execute("SELECT items_table, users_table FROM pyrec._versions")
    tables = [t for row in versions for t in row]
    err_text = fails(2, "drop-model", "movies", "--dsn", dsn)
    assert err_text.startswith('pyrec: error: drop-model deletes model "movies" with all its')
    assert "needs --yes" in err_text and "hint: pyrec drop-model movies --yes" in err_text
    assert fails_json(2, "drop-model", "movies", "--dsn", dsn)["sqlstate"] == "22023"
    assert statuses() == [(1, "inactive"), (2, "active")]
    assert ok_json("drop-model", "movies", "--yes", "--dsn", dsn) == {
        "model": "movies",
        "dropped": True,
    }
    assert trained.execute("SELECT count(*) FROM pyrec.models").fetchone() == (0,)
    assert statuses() == []
    for t in tables:
        assert trained.execute("SELECT to_regclass(%s)", [f"pyrec.{t}"]).fetchone() == (None,)
    out = ok("drop-model", "movies", "--yes", "--if-exists", "--dsn", dsn)
    assert out.strip() == 'model "movies" does not exist, skipping'
    assert not ok_json("drop-model", "movies", "--yes", "--if-exists", "--dsn", dsn)["dropped"]
    err = fails_json(2, "drop-model", "movies", "--yes", "--dsn", dsn)
    assert (err["sqlstate"], err["message"]) == ("42704", 'model "movies" does not exist')


def test_segments_and_forget_user(trained: Conn) -> None:
    dsn = trained.info.dsn

    def sql_segment(item: str, n: int, *rest: Any) -> list[tuple[str, float, int]]:
        return trained.execute(
            "SELECT user_id, score, rank FROM pyrec.users_for_item('movies', %s, %s,"
            " filter => %s, params => %s, exclude_seen => %s)",
            [item, n, *rest],
        ).fetchall()

    def same(got: list[tuple[str, float, int]], want: list[tuple[str, float, int]]) -> None:
        assert len(got) == len(want) and [r for _, _, r in got] == [r for _, _, r in want]
        for (a, sa, _), (b, sb, _) in zip(got, want, strict=True):
            # same users, except where float32 sums in a different order swap near-ties
            assert a == b or abs(sa - sb) < 1e-4 * max(1.0, abs(sa)), (got, want)
            assert sa == pytest.approx(sb, rel=1e-4, abs=1e-5)

    flt, params = "INCLUDE UserID WHERE Users.gender IN ($G)", '{"G": ["F"]}'
    out = ok(
        "segments", "movies", "--items", "SELECT movie_id FROM movies WHERE movie_id <= 4",
        "--into", "public.segs", "-n", "3", "--filter", flt, "--params", params, "--keep-seen",
        "--dsn", dsn,
    )  # fmt: skip
    assert out.startswith('12 rows for 4 items in public.segs (model "movies" version 1) in ')
    for item in ("1", "2", "3", "4"):
        got = trained.execute(
            "SELECT user_id, score, rank FROM public.segs WHERE item_id = %s ORDER BY rank", [item]
        ).fetchall()
        same(got, sql_segment(item, 3, flt, params, False))
    done = ok_json("segments", "movies", "--items", "SELECT 50", "-n", "2", "--dsn", dsn)
    assert (done["table"], done["rows"], done["version"]) == ("pyrec.segments_movies", 2, 1)
    assert done["notice"].startswith("2 rows for 1 items in pyrec.segments_movies")
    got = trained.execute(
        "SELECT user_id, score, rank FROM pyrec.segments_movies ORDER BY rank"
    ).fetchall()
    same(got, sql_segment("50", 2, None, None, True))
    err = fails_json(2, "segments", "movies", "--into", "viewers", "--dsn", dsn)
    assert err["sqlstate"] == "42P07" and "was not written by pyrec" in err["message"]

    # forget a user who is in a batch output: vectors and batch rows go, own tables are counted
    user = trained.execute("SELECT min(user_id) FROM public.segs").fetchone()[0]  # type: ignore[index]
    users_table = trained.execute("SELECT users_table FROM pyrec._versions").fetchone()[0]  # type: ignore[index]
    rated = trained.execute(
        "SELECT count(*) FROM ratings WHERE viewer_id::text = %s", [user]
    ).fetchone()[0]  # type: ignore[index]
    in_batches = trained.execute(
        "SELECT (SELECT count(*) FROM public.segs WHERE user_id = %(u)s)"
        " + (SELECT count(*) FROM pyrec.segments_movies WHERE user_id = %(u)s)",
        {"u": user},
    ).fetchone()[0]  # type: ignore[index]
    forgot = {r["what"]: r for r in ok_json("forget-user", "movies", user, "--dsn", dsn)}
    assert forgot["user vectors (every kept version)"]["rows_affected"] == 1
    assert forgot["batch output rows"]["rows_affected"] == in_batches > 0
    left = forgot["rows in public.ratings (interactions)"]
    assert left["rows_affected"] == rated > 0 and left["action"].startswith("left for you")
    assert forgot["rows in public.viewers (users)"]["rows_affected"] == 1
    assert {r["model_name"] for r in forgot.values()} == {"movies"}
    gone = sql.SQL("SELECT count(*) FROM pyrec.{} WHERE user_id = %s").format(
        sql.Identifier(users_table)
    )
    assert trained.execute(gone, [user]).fetchone() == (0,)
    in_segs = "SELECT count(*) FROM public.segs WHERE user_id = %s"
    assert trained.execute(in_segs, [user]).fetchone() == (0,)
    assert rated == trained.execute(
        "SELECT count(*) FROM ratings WHERE viewer_id::text = %s", [user]
    ).fetchone()[0]  # type: ignore[index]

    text = ok("forget-user", "--all", "7", "--dsn", dsn)
    lines = text.splitlines()
    assert lines[0].split() == ["model", "what", "rows", "action"]
    columns_aligned("\n".join(lines[:-2]))
    n7 = trained.execute("SELECT count(*) FROM ratings WHERE viewer_id = 7").fetchone()[0]  # type: ignore[index]
    assert lines[-1] == (
        f"left for you to delete (user 7): {n7} rows in public.ratings (interactions),"
        " 1 row in public.viewers (users)"
    )
    assert trained.execute(gone, ["7"]).fetchone() == (0,)
    err = fails_json(2, "forget-user", "nope", "7", "--dsn", dsn)
    assert (err["sqlstate"], err["message"]) == ("42704", 'model "nope" does not exist')
    usage = run("forget-user", "7", "--dsn", dsn)
    assert usage.returncode == 2 and "one of the arguments model --all is required" in usage.stderr


def test_a_busy_model_exits_75(trained: Conn) -> None:
    model_id = trained.execute("SELECT model_id FROM pyrec.models").fetchone()[0]  # type: ignore[index]
    trained.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, model_id])
    try:
        for extra in ([], ["--in-database"]):
            err = fails(75, "train", "movies", "--dsn", trained.info.dsn, *extra)
            assert err.startswith('pyrec: error: model "movies" is already being trained')
            assert "sqlstate: 55006" in err and "pyrec.training_runs" in err
    finally:
        trained.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, model_id])
    # a lock on the source table past pyrec.lock_timeout is "busy" too
    with psycopg.connect(trained.info.dsn) as holder:
        holder.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
        err = fails(
            75, "train", "movies", "--dsn", trained.info.dsn,
            env={"PGOPTIONS": "-c pyrec.lock_timeout=300ms"},
        )
        assert "sqlstate: 55P03" in err and "ratings" in err, err


def test_status_and_permission_errors(trained: Conn) -> None:
    dsn = trained.info.dsn
    status = ok_json("status", "--dsn", dsn)
    assert status["versions"]["sql"] == status["versions"]["python_package"]
    (model,) = status["models"]
    assert (model["name"], model["active_version"], model["versions"]) == ("movies", 1, 1)
    assert model["last_training"] == "succeeded"
    text = ok("status", "--dsn", dsn)
    assert text.startswith(f'database "{trained.info.dbname}" on ')
    assert any(line.split()[:4] == ["movies", "als", "1", "1"] for line in text.splitlines())
    role = f"pyrec_cli_nobody_{os.getpid()}"
    trained.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        as_nobody = psycopg.conninfo.make_conninfo(dsn, user=role)
        err = fails(3, "recommend", "movies", "42", "--dsn", as_nobody)
        assert "permission denied" in err and "sqlstate: 42501" in err
    finally:
        trained.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_schedule_needs_pg_cron_here(trained: Conn) -> None:
    err = fails(2, "schedule", "movies", "0 3 * * *", "--dsn", trained.info.dsn)
    assert err.startswith(
        f'pyrec: error: pg_cron is not installed in database "{trained.info.dbname}"'
    )
    assert "sqlstate: 55000" in err and "pyrec train --dsn" in err
    assert "pg_cron is not installed" in fails(2, "unschedule", "movies", "--dsn", trained.info.dsn)


@pytest.mark.slow
def test_schedule_and_unschedule_through_pg_cron() -> None:
    cluster = Cluster()
    cluster.settings.update(
        {"shared_preload_libraries": "pg_cron", "cron.database_name": "postgres"}
    )
    with cluster:
        dsn = cluster.dsn()
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION pg_cron")
            ok("install", "--dsn", dsn)
            c.execute(
                "CREATE TABLE clicks AS SELECT g % 40 AS user_id, g % 30 AS item_id"
                " FROM generate_series(1, 2000) g"
            )
            ok("create-model", "clicks", "clicks", "--dsn", dsn)
            job = ok_json("schedule", "clicks", "*/30 * * * *", "--mode", "update", "--dsn", dsn)
            assert job["mode"] == "update" and isinstance(job["job"], int)
            assert c.execute("SELECT jobname, schedule FROM cron.job").fetchall() == [
                ("pyrec-train-clicks", "*/30 * * * *")
            ]
            out = ok("schedule", "clicks", "0 3 * * *", "--dsn", dsn)
            assert out.startswith('model "clicks" trains (full) on "0 3 * * *" through pg_cron job')
            assert "invalid schedule" in fails(2, "schedule", "clicks", "every day", "--dsn", dsn)
            out = ok("unschedule", "clicks", "--dsn", dsn)
            assert out.strip() == 'removed the scheduled training of model "clicks"'
            assert c.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
            assert ok_json("unschedule", "clicks", "--if-exists", "--dsn", dsn) == {
                "model": "clicks",
                "removed": False,
            }
            assert "has no scheduled training" in fails(2, "unschedule", "clicks", "--dsn", dsn)


def test_progress_line_on_a_terminal(trained: Conn) -> None:
    """stderr on a terminal shows the phases of pyrec.training_runs; stdout keeps the result."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*PYREC, "train", "movies", "--in-database", "--dsn", trained.info.dsn],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_env(),
        text=True,
    )
    os.close(follower)
    seen = b""
    while True:  # read as it comes: a full pty would block the child
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.startswith('model "movies" version 2 is active')
    shown = seen.decode()
    assert "training movies [" in shown and "%" in shown, shown
    assert any(p in shown for p in ("reading", "evaluating", "training  ", "writing")), shown
    assert shown.endswith("\r\x1b[K"), shown[-40:]  # the line is cleared before the result


def test_report_and_a_missing_report_module(trained: Conn, tmp_path: Path) -> None:
    dsn = trained.info.dsn
    hidden = (
        "import sys; sys.modules['pyrec_pg.analysis.report'] = None;"
        " from pyrec_pg.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", hidden, "report", "movies", "--dsn", dsn, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("pyrec: error: pyrec report needs pyrec_pg.analysis.report")
    assert "pip install 'pyrec_pg[report]'" in done.stderr and not list(tmp_path.iterdir())
    written = ok_json(
        "report", "movies", "--dsn", dsn, "--out", str(tmp_path / "r"), "-k", "5",
        "--sample-users", "50",
    )
    page = Path(written["path"]).read_text()
    assert "in top-5" in page and "lists of 50 users" in page
    assert "must be at least 1" in fails(2, "report", "movies", "--dsn", dsn, "-k", "0")
    assert 'model "nope" does not exist' in fails(2, "report", "nope", "--dsn", dsn)


def test_sample_data(conn: Conn) -> None:
    dsn = conn.info.dsn
    err = fails(2, "load-sample", "movielens", "--dsn", dsn)
    assert "already exists" in err and "sqlstate: 42P07" in err and "hint: --replace drops" in err
    counts = ok_json(
        "load-sample", "synthetic", "--interactions", "3000", "--schema", "public", "--dsn", dsn
    )
    assert counts["interactions"] == 3000
    assert conn.execute("SELECT count(*) FROM synthetic_interactions").fetchone() == (3000,)


def test_the_managed_flavour_trains_here_and_serves_in_sql(empty_db: str) -> None:
    """No plpython3u: the Python commands run in the CLI (entrypoints.managed), serving is SQL."""
    with psycopg.connect(empty_db, autocommit=True) as c:
        c.execute("CREATE EXTENSION vector")  # what a managed service lets its users do
        out = ok("install", "--managed", "--dsn", empty_db)
        assert out.startswith("installed pyrec ") and "(managed flavour" in out
        assert not c.execute("SELECT 1 FROM pg_extension WHERE extname = 'plpython3u'").fetchone()
        assert "already installed" in ok("install", "--managed", "--dsn", empty_db)
        err = fails(2, "install", "--dsn", empty_db)
        assert "already has pyrec's managed flavour" in err and "sqlstate: 42710" in err
        ok("load-sample", "synthetic", "--interactions", "5000", "--seed", "1", "--dsn", empty_db)
        made = ok_json(
            "create-model", "shop", "synthetic_interactions", "--items", "synthetic_items",
            "--options", FAST, "--dsn", empty_db,
        )  # fmt: skip
        assert made["columns"]["user"] == "user_id"
        assert ok_json("check", "shop", "--dsn", empty_db)[0]["check_name"] == "interactions"
        trained = ok_json("train", "shop", "--dsn", empty_db)
        assert trained["version"] == 1 and trained["notice"].startswith('model "shop" version 1')
        assert c.execute(
            "SELECT status FROM pyrec.model_versions WHERE model = 'shop'"
        ).fetchall() == [("active",)]
        metrics = {m["metric"] for m in ok_json("evaluate", "shop", "--dsn", empty_db)}
        assert {"ndcg@10", "precision@10"} <= metrics
        user = str(c.execute("SELECT min(user_id) FROM synthetic_interactions").fetchone()[0])  # type: ignore[index]
        cat = c.execute("SELECT min(category) FROM synthetic_items").fetchone()[0]  # type: ignore[index]
        flt = "INCLUDE ItemID WHERE Items.category IN ($C)"
        got = ok_json(
            "recommend", "shop", user, "-k", "4", "--filter", flt,
            "--params", json.dumps({"C": [cat]}), "--dsn", empty_db,
        )  # fmt: skip
        # compiled by the CLI, the filter now serves in SQL too, with the same answer
        assert [(r["item_id"], r["rank"]) for r in got] == c.execute(
            "SELECT item_id, rank FROM pyrec.recommend('shop', %s, 4, %s, %s)",
            [user, flt, json.dumps({"C": [cat]})],
        ).fetchall()
        assert got
        cats = c.execute(
            "SELECT DISTINCT category FROM synthetic_items WHERE item_id::text = ANY (%s)",
            [[r["item_id"] for r in got]],
        ).fetchall()
        assert cats == [(cat,)]
        batch = ok_json("batch", "shop", "-k", "2", "--into", "public.recs", "--dsn", empty_db)
        assert batch["rows"] == c.execute("SELECT count(*) FROM public.recs").fetchone()[0]  # type: ignore[index]
        items = "SELECT item_id FROM synthetic_items ORDER BY item_id LIMIT 3"
        segs = ok_json(
            "segments", "shop", "--items", items, "-n", "2", "--into", "public.segs",
            "--dsn", empty_db,
        )  # fmt: skip
        assert segs["rows"] == c.execute("SELECT count(*) FROM public.segs").fetchone()[0] == 6  # type: ignore[index]
        forgot = ok_json("forget-user", "shop", user, "--dsn", empty_db)
        assert forgot[0]["what"].startswith("user vectors") and forgot[0]["rows_affected"] == 1
        status = ok_json("status", "--dsn", empty_db)
        assert status["flavour"] == "managed" and status["versions"]["sql"]
        for args, needs in (
            (["train", "shop", "--in-database"], "--in-database needs the server's Python"),
            (["schedule", "shop", "0 3 * * *"], "scheduled trainings run in the server's Python"),
            (["upgrade"], "this database has the managed flavour"),
        ):
            err = fails(2, *args, "--dsn", empty_db)
            assert needs in err and "sqlstate: 0A000" in err and "hint:" in err
