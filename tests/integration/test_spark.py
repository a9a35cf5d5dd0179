"""Training on Apache Spark (local[2]): the version serves like any other, and a Spark that
fails or dies mid-way leaves the previous version serving and a failed run behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pyrec_pg.dev import movielens
from pyrec_pg.dev.cluster import Cluster
from pyrec_pg.entrypoints import managed
from pyrec_pg.errors import (
    EngineFailure,
    FeatureNotSupported,
    InsufficientData,
    InvalidParameter,
    PyrecError,
)
from pyrec_pg.ml import spark
from tests.conftest import FAST, PLPYTHON, WHY_SKIPPED
from tests.integration.helpers import managed_movies
from tests.integration.test_cli import PYREC, REPO, _env, fails_json, ok_json
from tests.integration.test_train_from_standby import Site, caught_up, replay_paused

pyspark = pytest.importorskip("pyspark", reason="make spark installs Spark (pyspark and Java 17)")
if not os.environ.get("JAVA_HOME") and not any(
    os.access(os.path.join(d, "java"), os.X_OK) for d in os.environ.get("PATH", "").split(":")
):
    pytest.skip("Spark needs Java 17 (make spark installs it)", allow_module_level=True)

# py4j (pyspark's bridge to the JVM) leaves its sockets to the garbage collector
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
Conn = psycopg.Connection[Any]
LOCAL = {"engine": "spark", "spark": {"master": "local[2]"}}
NO_HORROR = 'EXCLUDE ItemID WHERE Items.genre IN ("Horror")'


def dsn_of(conn: Conn) -> str:
    return conn.info.dsn


def train(conn: Conn, options: dict[str, Any], model: str = "movies") -> dict[str, Any]:
    result: dict[str, Any] = managed.call(
        dsn_of(conn), "train", {"model": model, "options": options}
    )
    return result


def active(conn: Conn, model: str = "movies") -> tuple[int, dict[str, Any]]:
    row = conn.execute(
        "SELECT version, params FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
        [model],
    ).fetchone()
    assert row is not None
    return int(row[0]), dict(row[1])


def last_run(conn: Conn) -> tuple[str, int | None, str | None]:
    row = conn.execute(
        "SELECT status, version, message FROM pyrec.training_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return str(row[0]), row[1], row[2]


def recommended(conn: Conn, user: Any, k: int = 10, flt: str | None = None) -> list[str]:
    rows = conn.execute(
        "SELECT item_id FROM pyrec.recommend('movies', %s::text, %s, filter => %s)",
        [str(user), k, flt],
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_spark_version_serves_filters_folds_in_and_batches(trained: Conn) -> None:
    summary = train(trained, LOCAL)
    version, params = active(trained)
    assert summary["version"] == version == 2
    assert params["engine"] == "spark" and params["spark_master"] == "local[2]"
    assert params["factors"] == 16 and params["iterations"] == 4  # the model's options
    assert spark._SESSIONS, "the training did not run on Spark"
    # its holdout metrics beat popularity's, measured by the same split code as any training
    metrics = trained.execute(
        "SELECT metrics FROM pyrec.model_versions WHERE model = 'movies' AND version = 2"
    ).fetchone()[0]  # type: ignore[index]
    assert metrics["ndcg@10"] > metrics["baseline"]["popularity"]["ndcg@10"]
    # the vectors are Spark's, not version 1's
    same = trained.execute(
        "SELECT count(*) FROM pyrec.m1_v1_items a JOIN pyrec.m1_v2_items b USING (item_id)"
        " WHERE a.embedding = b.embedding"
    ).fetchone()
    assert same == (0,)
    seen = {str(r[0]) for r in trained.execute("SELECT movie_id FROM ratings WHERE viewer_id = 1")}
    top = recommended(trained, 1)
    assert len(top) == 10 and not seen & set(top)
    managed.call(
        dsn_of(trained),
        "create_filter",
        {"model": "movies", "name": "no_horror", "expression": NO_HORROR},
    )
    horror = {
        str(r[0])
        for r in trained.execute("SELECT movie_id FROM movies WHERE 'Horror' = ANY(genre)")
    }
    filtered = recommended(trained, 1, 10, "no_horror")
    assert len(filtered) == 10 and not horror & set(filtered)
    # a user the version has not seen, with history: folded into its vectors
    trained.execute("INSERT INTO ratings VALUES (5000, %s, 4, now())", [int(top[0])])
    sources = trained.execute(
        "SELECT DISTINCT source FROM pyrec.recommend('movies', '5000', 10)"
    ).fetchall()
    assert sources == [("fold-in",)]
    managed.call(dsn_of(trained), "batch_recommend", {"model": "movies", "k": 5})
    batch = trained.execute(
        "SELECT count(*), count(DISTINCT user_id) FROM pyrec.batch_movies"
    ).fetchone()
    assert batch == (943 * 5, 943)  # every user the version knows
    first = trained.execute(
        "SELECT item_id FROM pyrec.batch_movies WHERE user_id = '1' ORDER BY rank"
    ).fetchall()
    assert [str(r[0]) for r in first] == top[:5]  # as recommend() serves them
    # rollback goes back to the version trained without Spark, which serves at once
    trained.execute("SELECT pyrec.rollback('movies')")
    assert active(trained)[0] == 1 and len(recommended(trained, 1)) == 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} in {log}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Spark standalone cluster on this host: a master and a worker (2 cores, 1 GB), the
    processes a real cluster runs, from pyspark's own spark-class; (its URL, master's log)."""
    home = Path(pyspark.__file__).parent
    tmp = tmp_path_factory.mktemp("spark")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOG_DIR": str(tmp)}
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    master = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master += ["--port", str(port), "--webui-port", str(_free_port())]
    worker = [spark_class, "org.apache.spark.deploy.worker.Worker", "--cores", "2"]
    worker += ["--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(tmp), url]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master_log, worker_log = tmp / "master.log", tmp / "worker.log"
        with master_log.open("wb") as out:
            procs.append(subprocess.Popen(master, stdout=out, stderr=subprocess.STDOUT, env=env))
        _wait_for(master_log, "I have been elected leader", procs[0])
        with worker_log.open("wb") as out:
            procs.append(subprocess.Popen(worker, stdout=out, stderr=subprocess.STDOUT, env=env))
        _wait_for(master_log, "Registering worker", procs[0])
        yield url, master_log
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_standalone_cluster_trains_the_version(
    trained: Conn, standalone: tuple[str, Path]
) -> None:
    """The master URL passes through to Spark: a cluster's executors (another JVM, launched
    by its worker) fit the model, the trainer writes the version."""
    url, log = standalone
    options = {"engine": "spark", "holdout": 0, "spark": {"master": url}}
    options["spark"]["conf"] = {"spark.executor.memory": "512m"}
    summary = train(trained, options)
    assert summary["version"] == 2 and active(trained)[1]["spark_master"] == url
    assert "Registering app pyrec train" in log.read_text(errors="replace")
    assert len(recommended(trained, 1)) == 10


def test_text_ids_train_on_spark_and_serve_as_text(trained: Conn) -> None:
    trained.execute(
        "CREATE VIEW text_ratings AS SELECT 'viewer-' || viewer_id AS user_id,"
        " 'movie-' || movie_id AS item_id, rated_at FROM ratings"
    )
    managed.call(
        dsn_of(trained),
        "create_model",
        {"name": "text_movies", "interactions": "text_ratings", "options": json.loads(FAST)},
    )
    summary = train(trained, {**LOCAL, "holdout": 0}, "text_movies")
    assert summary["users"] == 943 and summary["items"] == 1682
    assert active(trained, "text_movies")[1]["engine"] == "spark"
    rows = trained.execute(
        "SELECT item_id FROM pyrec.recommend('text_movies', 'viewer-1', 5)"
    ).fetchall()
    assert len(rows) == 5 and all(str(r[0]).startswith("movie-") for r in rows)


def test_a_spark_that_cannot_start_leaves_the_version_serving(trained: Conn) -> None:
    """A master Spark cannot use fails the training with 58000, a failed run, nothing
    written."""
    bad = {"engine": "spark", "spark": {"master": "nowhere://spark"}}
    with pytest.raises(EngineFailure) as caught:
        train(trained, bad)
    assert caught.value.sqlstate == "58000" and "Spark failed" in caught.value.message
    assert caught.value.hint and "still serves" in caught.value.hint
    assert active(trained)[0] == 1
    status, version, error = last_run(trained)
    assert status == "failed" and version is None and error and "Spark failed" in error
    tables = trained.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'pyrec' AND tablename LIKE 'm1_v2%'"
    ).fetchone()
    assert tables == (0,)
    assert len(recommended(trained, 1)) == 10


def test_a_spark_killed_mid_way_leaves_the_version_serving(trained: Conn) -> None:
    """The external trainer's Spark JVM killed while it fits: the command fails (exit 3,
    SQLSTATE 58000), the run is failed and version 1 still serves."""
    env = _env()
    command = [*PYREC, "train", "movies", "--dsn", dsn_of(trained), "--json", "--engine"]
    command += [
        "spark",
        "--spark-master",
        "local[2]",
        "--options",
        '{"params": {"iterations": 200}}',
    ]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        java: list[int] = []
        while not java:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the training never reached Spark's fit"
            phase = trained.execute(
                "SELECT phase FROM pyrec.training_runs WHERE status = 'running'"
            ).fetchone()
            if phase is not None and phase[0] in ("evaluating", "training"):
                java = _java_children(proc.pid)
            time.sleep(0.2)
        time.sleep(2)  # inside the fit
        for pid in java:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, (out, err)
    error = json.loads(err.strip().splitlines()[-1])["error"]
    assert error["sqlstate"] == "58000", error
    status, version, message = last_run(trained)
    assert status == "failed" and version is None and message, (status, message)
    assert active(trained)[0] == 1 and len(recommended(trained, 1)) == 10


def _java_children(pid: int) -> list[int]:
    """The java processes started by process `pid` (pyspark's driver JVM)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == pid and comm == "java":
            found.append(int(entry))
    return found


def test_the_model_s_engine_option_and_the_cli_flags(trained: Conn) -> None:
    """options.engine stored with the model makes every training Spark's (a cron's `pyrec
    train` included); the flags override it, and merge with its Spark settings."""
    stored = {"engine": "spark", "spark": {"master": "local[1]"}, "holdout": 0}
    managed.call(
        dsn_of(trained),
        "create_model",
        {"name": "cron", "interactions": "ratings", "options": {**json.loads(FAST), **stored}},
    )
    dsn = dsn_of(trained)
    out = ok_json("train", "cron", "--dsn", dsn)
    assert out["version"] == 1 and active(trained, "cron")[1]["spark_master"] == "local[1]"
    out = ok_json("train", "cron", "--dsn", dsn, "--spark-master", "local[2]")
    assert out["version"] == 2 and active(trained, "cron")[1]["spark_master"] == "local[2]"
    out = ok_json("train", "cron", "--dsn", dsn, "--engine", "pyrec")
    assert out["version"] == 3 and "engine" not in active(trained, "cron")[1]
    err = fails_json(2, "train", "cron", "--dsn", dsn, "--spark-conf", "nokey")
    assert "KEY=VALUE" in err["message"]
    err = fails_json(2, "train", "cron", "--dsn", dsn, "--spark-partitions", "-1")
    assert "partitions" in err["message"] and err["sqlstate"] == "22023"


@pytest.mark.parametrize(
    ("options", "mode", "error", "says"),
    [
        ({"engine": "flink"}, "full", InvalidParameter, "unknown engine 'flink'"),
        ({"engine": "spark", "spark": {"mastr": "x"}}, "full", InvalidParameter, '"mastr"'),
        ({"engine": "spark", "spark": {"master": ""}}, "full", InvalidParameter, "master"),
        ({"engine": "spark", "spark": {"conf": {"a": [1]}}}, "full", InvalidParameter, "conf"),
        ({"engine": "spark", "spark": "local"}, "full", InvalidParameter, "JSON object"),
        (LOCAL, "update", FeatureNotSupported, "full only"),
    ],
)
def test_bad_engine_options_are_named_before_anything_runs(
    trained: Conn, options: dict[str, Any], mode: str, error: type[Exception], says: str
) -> None:
    runs = trained.execute("SELECT count(*) FROM pyrec.training_runs").fetchone()
    with pytest.raises(error) as caught:
        managed.call(
            dsn_of(trained), "train", {"model": "movies", "options": options, "mode": mode}
        )
    assert says in str(caught.value)
    assert trained.execute("SELECT count(*) FROM pyrec.training_runs").fetchone() == runs


def test_spark_trains_recipe_als_only(trained: Conn) -> None:
    managed.call(
        dsn_of(trained),
        "create_model",
        {"name": "easy", "interactions": "ratings", "recipe": "ease"},
    )
    with pytest.raises(InvalidParameter, match="does not train recipe ease"):
        managed.call(dsn_of(trained), "train", {"model": "easy", "options": LOCAL})


@pytest.mark.skipif(not PLPYTHON, reason=WHY_SKIPPED)
def test_the_server_refuses_to_start_spark(trained: Conn) -> None:
    with pytest.raises(psycopg.errors.FeatureNotSupported) as caught:
        trained.execute("CALL pyrec.train('movies', %s::jsonb)", [json.dumps(LOCAL)])
    assert "does not run inside the database server" in str(caught.value)
    assert caught.value.diag.message_hint and "pyrec train movies" in caught.value.diag.message_hint
    assert active(trained)[0] == 1


@pytest.fixture(scope="module")
def tcp() -> Iterator[tuple[Cluster, str]]:
    """A cluster that listens on 127.0.0.1 (JDBC has no Unix sockets), with MovieLens-100K
    and model "movies" in database "shop", the managed flavour; (the cluster, its DSN)."""
    with Cluster(tcp=True) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE DATABASE shop")
        dsn = cluster.tcp_dsn("shop")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION vector")
            managed.install(c)
            movielens.load(c)
        managed_movies(dsn, FAST)
        yield cluster, dsn


# Spark's executors load the driver from the jar make spark installs
needs_jdbc = pytest.mark.skipif(
    not os.path.exists(spark.JDBC_JAR), reason=f"no JDBC driver at {spark.JDBC_JAR} (make spark)"
)
JDBC = {"engine": "spark", "spark": {"master": "local[2]", "read": "jdbc", "read_partitions": 3}}


@needs_jdbc
def test_spark_reads_through_jdbc_and_the_version_serves(tcp: tuple[Cluster, str]) -> None:
    """Spark's executors read the pairs by a hash of the user: the version holds every user
    and item, the counts serving needs are the table's, and it serves and filters."""
    _, dsn = tcp
    summary = managed.call(dsn, "train", {"model": "movies", "options": JDBC})
    assert (summary["users"], summary["items"], summary["interactions"]) == (943, 1682, 100000)
    metrics = summary["metrics"]
    assert metrics["sampled_users"] == 943 and metrics["protocol"] == "random_per_user"
    assert 0.3 < metrics["ndcg@10"] < 0.7  # the trainer's read scores 0.45 to 0.46 here
    assert metrics["ndcg@10"] > metrics["baseline"]["popularity"]["ndcg@10"]
    with psycopg.connect(dsn) as c:
        version, params = active(c)
        assert params["spark_read"] == "jdbc"
        items, users = c.execute(
            "SELECT items_table, users_table FROM pyrec._versions WHERE version = %s", [version]
        ).fetchone() or ("", "")
        wrong = c.execute(
            f"SELECT count(*) FROM pyrec.{users} u JOIN (SELECT viewer_id::text AS user_id,"
            " count(DISTINCT movie_id) AS n FROM ratings GROUP BY 1) r USING (user_id)"
            " WHERE u.n_items = r.n"
        ).fetchone()
        assert wrong == (943,)
        top = c.execute(
            f"SELECT item_id, popularity FROM pyrec.{items} ORDER BY popularity DESC LIMIT 1"
        ).fetchone()
        most = c.execute(
            "SELECT movie_id::text, 1.0::real FROM ratings GROUP BY 1 ORDER BY count(*) DESC"
            " LIMIT 1"
        ).fetchone()
        assert top == most
        assert len(recommended(c, 1)) == 10
        managed.call(
            dsn, "create_filter", {"model": "movies", "name": "no_horror", "expression": NO_HORROR}
        )
        kept = recommended(c, 1, 10, "no_horror")
        horror = c.execute(
            "SELECT count(*) FROM movies WHERE movie_id::text = ANY(%s) AND 'Horror' = ANY(genre)",
            [kept],
        ).fetchone()
        assert len(kept) == 10 and horror == (0,)


@needs_jdbc
def test_no_usable_interactions_are_named_and_nothing_is_written(
    tcp: tuple[Cluster, str],
) -> None:
    _, dsn = tcp
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE VIEW no_ratings AS SELECT * FROM ratings WHERE rating > 5")
        managed.call(dsn, "create_model", {"name": "empty", "interactions": "no_ratings"})
        with pytest.raises(PyrecError, match="no_ratings has no usable interactions") as caught:
            managed.call(dsn, "train", {"model": "empty", "options": JDBC})
        assert caught.value.sqlstate == InsufficientData.sqlstate and caught.value.hint
        assert last_run(c)[0] == "failed"
        versions = c.execute(
            "SELECT count(*) FROM pyrec.model_versions WHERE model = 'empty'"
        ).fetchone()
        assert versions == (0,)


@needs_jdbc
def test_events_left_out_count_every_item_a_user_has(tcp: tuple[Cluster, str]) -> None:
    """With options that weigh events (here by their value), the users' item counts come
    from a second JDBC read over all their rows."""
    _, dsn = tcp
    options = {**JDBC, "holdout": 0, "use_event_value": True}
    summary = managed.call(dsn, "train", {"model": "movies", "options": options})
    assert summary["interactions"] == 100000 and summary["metrics"] == {}
    with psycopg.connect(dsn) as c:
        users = c.execute(
            "SELECT users_table FROM pyrec._versions WHERE version = %s", [summary["version"]]
        ).fetchone()
        assert users is not None
        counts = c.execute(f"SELECT sum(n_items), min(n_items) FROM pyrec.{users[0]}").fetchone()
        assert counts == (100000, 20)  # MovieLens-100K: every viewer rated 20 or more


def test_a_socket_connection_is_refused_before_spark_starts(trained: Conn) -> None:
    runs = trained.execute("SELECT count(*) FROM pyrec.training_runs").fetchone()
    with pytest.raises(FeatureNotSupported) as caught:
        train(trained, JDBC)
    assert "TCP" in caught.value.message and caught.value.sqlstate == "0A000"
    assert caught.value.hint and "host=" in caught.value.hint
    assert active(trained)[0] == 1
    assert trained.execute("SELECT count(*) FROM pyrec.training_runs").fetchone() != runs
    assert last_run(trained)[0] == "failed"


@needs_jdbc
def test_a_locked_table_fails_spark_s_read_and_the_version_serves(
    tcp: tuple[Cluster, str],
) -> None:
    """Spark's JDBC connections wait for a lock at most pyrec.lock_timeout, as the trainer's
    reading does; the training then fails with 58000 and the active version still serves."""
    _, dsn = tcp
    with psycopg.connect(dsn, autocommit=True) as c:
        before = active(c)[0]
        c.execute("ALTER DATABASE shop SET pyrec.lock_timeout = '1s'")
        try:
            with psycopg.connect(dsn) as locker:
                locker.execute("LOCK TABLE ratings IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(EngineFailure) as caught:
                    managed.call(dsn, "train", {"model": "movies", "options": JDBC})
                locker.rollback()
        finally:
            c.execute("ALTER DATABASE shop RESET pyrec.lock_timeout")
        assert "lock timeout" in caught.value.message and caught.value.sqlstate == "58000"
        assert active(c)[0] == before and last_run(c)[0] == "failed"
        assert len(recommended(c, 1)) == 10


@needs_jdbc
def test_spark_reads_from_a_standby(tcp: tuple[Cluster, str]) -> None:
    """pyrec train --read-dsn STANDBY --spark-read jdbc: the executors read the standby (a
    viewer inserted on the primary while replay is paused is not in the version), the
    version is written to the primary."""
    cluster, dsn = tcp
    replica = cluster.standby()
    standby = replica.tcp_dsn("shop")
    try:
        with psycopg.connect(dsn, autocommit=True) as p:
            with psycopg.connect(standby, autocommit=True) as s:
                site = Site(dsn, standby, p, s)
                caught_up(site)
                with replay_paused(site):
                    p.execute("INSERT INTO ratings VALUES (7000, 1, 5, now())")
                    try:
                        summary = ok_json(
                            "train", "movies", "--dsn", dsn, "--read-dsn", standby,
                            "--engine", "spark", "--spark-master", "local[2]",
                            "--spark-read", "jdbc", "--options", '{"holdout": 0}',
                        )  # fmt: skip
                    finally:
                        p.execute("DELETE FROM ratings WHERE viewer_id = 7000")
            assert summary["users"] == 943 and "read_from" in summary
            users = p.execute(
                "SELECT users_table FROM pyrec._versions WHERE version = %s", [summary["version"]]
            ).fetchone()
            assert users is not None
            missing = p.execute(
                f"SELECT count(*) FROM pyrec.{users[0]} WHERE user_id = '7000'"
            ).fetchone()
            assert missing == (0,)
    finally:
        replica.stop()


@needs_jdbc
def test_a_standalone_cluster_s_executors_read_through_jdbc(
    tcp: tuple[Cluster, str], standalone: tuple[str, Path]
) -> None:
    """On a standalone cluster the JDBC queries run in the worker's executor, another JVM,
    which gets the driver's jar from spark.jars."""
    _, dsn = tcp
    url, _ = standalone
    spark_options = {**JDBC["spark"], "master": url, "conf": {"spark.executor.memory": "512m"}}
    options = {"engine": "spark", "holdout": 0, "spark": spark_options}
    summary = managed.call(dsn, "train", {"model": "movies", "options": options})
    assert summary["interactions"] == 100000
    with psycopg.connect(dsn) as c:
        assert active(c)[1]["spark_master"] == url
