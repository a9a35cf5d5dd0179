"""Offline evaluation on a real server: the served path, pyrec.evaluate, protocols, data options."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
import scipy.sparse as sp
from psycopg.types.json import Jsonb

from pyrec_pg.catalog.models import get_model
from pyrec_pg.db import Db
from pyrec_pg.db.stub import PsycopgPlpy
from pyrec_pg.ml import evaluation
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.store import interactions
from tests.integration.helpers import catalog_state, raises_pg

Conn = psycopg.Connection[Any]

FAST_PARAMS: dict[str, Any] = {"factors": 16, "iterations": 4}
METRICS = {
    "precision@5",
    "precision@10",
    "precision@25",
    "recall@5",
    "recall@10",
    "recall@25",
    "ndcg@5",
    "ndcg@10",
    "ndcg@25",
    "mrr@25",
    "map@10",
    "coverage@10",
    "users_evaluated",
}
N_USERS, N_ITEMS, N_RATINGS = 943, 1682, 100_000
TIME_TEST_USERS = 301  # users with a rating among the newest 20% of MovieLens-100K


def _create(
    conn: Conn,
    name: str,
    relation: str = "ratings",
    recipe: str = "als",
    options: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "SELECT pyrec.create_model(%s, %s, recipe => %s, options => %s)",
        [name, relation, recipe, Jsonb({"params": FAST_PARAMS} if options is None else options)],
    )


def _evaluate(conn: Conn, model: str, **args: Any) -> dict[str, tuple[float, float | None]]:
    """pyrec.evaluate's rows as {metric: (value, popularity)}; keyword args are passed by name."""
    named = "".join(f", {key} => %s" for key in args)
    values = [Jsonb(v) if key == "options" else v for key, v in args.items()]
    rows = conn.execute(
        f"SELECT metric, value, popularity FROM pyrec.evaluate(%s{named})", [model, *values]
    ).fetchall()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # ordered by metric
    return {r[0]: (r[1], r[2]) for r in rows}


def _values(rows: dict[str, tuple[float, float | None]]) -> dict[str, float]:
    return {key: value for key, (value, _) in rows.items()}


def _stored(conn: Conn, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics and params of the model's active version."""
    row = conn.execute(
        "SELECT metrics, params FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
        [model],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def _load(conn: Conn, model: str) -> Interactions:
    """The model's matrix exactly as pyrec builds it (interactions.load through the plpy stub)."""
    stub = PsycopgPlpy.connect(conn.info.dsn)
    try:
        db = Db(stub)
        return interactions.load(db, get_model(db, model))
    finally:
        stub.conn.rollback()
        stub.conn.close()


def _write_pairs(conn: Conn, table: str, data: Interactions, part: sp.csr_matrix) -> None:
    conn.execute(f"CREATE TABLE {table} (viewer_id int NOT NULL, movie_id int NOT NULL)")
    coo = part.tocoo()
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
        for u, i in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
            copy.write_row((int(data.users[u]), int(data.items[i])))
    conn.execute(f"CREATE INDEX ON {table} (viewer_id)")  # recommend reads seen items live
    conn.execute(f"ANALYZE {table}")


def _parse(vector: str) -> npt.NDArray[np.float32]:
    return np.array([float(x) for x in vector[1:-1].split(",")], dtype=np.float32)


def _served_factors(conn: Conn, model: str, data: Interactions) -> Factors:
    """The active version's vectors, read back from its tables, in pyrec's index order."""
    row = conn.execute(
        "SELECT users_table, items_table, dims FROM pyrec.model_versions"
        " WHERE model = %s AND status = 'active'",
        [model],
    ).fetchone()
    assert row is not None
    users_table, items_table, dims = row
    out = []
    for table, key, ids in (
        (users_table, "user_id", data.users),
        (items_table, "item_id", data.items),
    ):
        rows = conn.execute(f"SELECT {key}, embedding::text FROM pyrec.{table}").fetchall()
        vecs = {k: _parse(v) for k, v in rows}
        assert set(vecs) == set(ids.tolist())
        out.append(np.vstack([vecs[k] for k in ids.tolist()]))
    assert out[0].shape[1] == out[1].shape[1] == dims
    return Factors(users=out[0], items=out[1])


@dataclass(frozen=True)
class Served:
    metrics: dict[str, float]
    sources: set[str]
    lists: dict[str, list[str]]  # user id -> recommended item ids, best first


def _served_metrics(
    conn: Conn, model: str, data: Interactions, test: sp.csr_matrix, k: int = 10
) -> Served:
    """precision@k, recall@k and ndcg@k from recommend() rows for every user with test items."""
    users = np.flatnonzero(np.diff(test.indptr))
    ids = [str(data.users[u]) for u in users]
    rows = conn.execute(
        "SELECT t.u, r.item_id, r.source FROM unnest(%s::text[]) WITH ORDINALITY AS t(u, n),"
        " LATERAL pyrec.recommend(%s, t.u, %s) AS r ORDER BY t.n, r.rank",
        [ids, model, k],
    ).fetchall()
    lists: dict[str, list[str]] = {u: [] for u in ids}
    for u, item, _ in rows:
        lists[u].append(item)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg = [], [], []
    for u, uid in zip(users.tolist(), ids, strict=True):
        truth = set(data.items[test.indices[test.indptr[u] : test.indptr[u + 1]]].tolist())
        rel = np.array([item in truth for item in lists[uid]], dtype=bool)
        hits = int(rel.sum())
        precision.append(hits / k)
        recall.append(hits / len(truth))
        ndcg.append(discounts[: rel.size][rel].sum() / discounts[: min(len(truth), k)].sum())
    return Served(
        metrics={
            "users_evaluated": float(len(ids)),
            f"precision@{k}": float(np.mean(precision)),
            f"recall@{k}": float(np.mean(recall)),
            f"ndcg@{k}": float(np.mean(ndcg)),
        },
        sources={r[2] for r in rows},
        lists=lists,
    )


# --- the served path ---------------------------------------------------------------------


def test_served_path_reproduces_the_offline_metrics(conn: Conn) -> None:
    """recommend() from SQL for every test user agrees with the offline evaluator within 0.005:
    a model over the training part of a random_per_item split, served, against pyrec.evaluate
    on the whole data with the same protocol, holdout and seed."""
    _create(conn, "full", options={"params": FAST_PARAMS})
    data = _load(conn, "full")
    assert data.matrix.shape == (N_USERS, N_ITEMS) and data.matrix.nnz == N_RATINGS
    train, test = evaluation.split(data.matrix, "random_per_item", 0.25, seed=0)
    # every user and item keeps training data, so pyrec indexes ratings_train the same way
    assert (np.diff(train.indptr) > 0).all()
    assert (np.diff(sp.csc_matrix(train).indptr) > 0).all()
    _write_pairs(conn, "ratings_train", data, train)
    _create(conn, "served", "ratings_train", options={"holdout": 0, "params": FAST_PARAMS})
    conn.execute("CALL pyrec.train('served')")

    offline = _values(_evaluate(conn, "full", protocol="random_per_item", holdout=0.25, seed=0))
    vectors = _served_factors(conn, "served", data)
    from_vectors = evaluation.ranking_metrics(vectors, train, test)
    in_process = evaluation.ranking_metrics(Als(**FAST_PARAMS).fit(train), train, test)
    served = _served_metrics(conn, "served", data, test)

    assert served.sources == {"model"}
    assert all(len(items) == 10 for items in served.lists.values())
    index = {uid: u for u, uid in enumerate(data.users.tolist())}
    for uid, items in served.lists.items():  # the training items were excluded
        u = index[uid]
        assert not set(items) & set(data.items[train[u].indices].tolist()), uid
    assert served.metrics["users_evaluated"] == offline["users_evaluated"] == N_USERS
    assert from_vectors["users_evaluated"] == N_USERS
    for key in ("precision@10", "ndcg@10", "recall@10"):
        assert served.metrics[key] == pytest.approx(offline[key], abs=0.005), key
        assert from_vectors[key] == pytest.approx(offline[key], abs=0.005), key
        assert in_process[key] == pytest.approx(offline[key], abs=0.005), key
    assert offline["precision@10"] > 0.3  # a real model, not noise


@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "holdout"),
    [
        ("random_per_user", 0.25),
        pytest.param(
            "time",
            0.2,
        ),
    ],
)
def test_served_path_agrees_with_evaluate(conn: Conn, protocol: str, holdout: float) -> None:
    _create(conn, "full", options={"params": FAST_PARAMS})
    data = _load(conn, "full")
    train, test = evaluation.split(data.matrix, protocol, holdout, 0, data.times)
    _write_pairs(conn, "ratings_train", data, train)
    _create(conn, "served", "ratings_train", options={"holdout": 0, "params": FAST_PARAMS})
    conn.execute("CALL pyrec.train('served')")
    offline = _values(_evaluate(conn, "full", protocol=protocol, holdout=holdout, seed=0))
    served = _served_metrics(conn, "served", data, test)
    assert served.metrics["users_evaluated"] == offline["users_evaluated"]
    for key in ("precision@10", "ndcg@10"):
        assert served.metrics[key] == pytest.approx(offline[key], abs=0.005), key


# --- pyrec.evaluate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "users"),
    [("random_per_user", N_USERS), ("random_per_item", N_USERS), ("time", TIME_TEST_USERS)],
)
def test_evaluate_returns_every_metric_beside_popularity(
    conn: Conn, protocol: str, users: int
) -> None:
    _create(conn, "m")
    rows = _evaluate(conn, "m", protocol=protocol)
    assert set(rows) == METRICS
    for key, (value, popularity) in rows.items():
        assert popularity is not None, key
        if key == "users_evaluated":
            assert value == popularity == users
        else:
            assert 0.0 <= value <= 1.0 and 0.0 <= popularity <= 1.0, key
    assert rows["ndcg@10"][0] != rows["ndcg@10"][1]  # the model is not the baseline
    coverage, popular_coverage = rows["coverage@10"]
    assert popular_coverage is not None and coverage > popular_coverage  # lists differ


def test_evaluate_defaults(conn: Conn) -> None:
    _create(conn, "p", recipe="popularity", options={})
    assert _evaluate(conn, "p") == _evaluate(
        conn, "p", protocol="random_per_user", holdout=0.25, seed=0
    )
    assert _evaluate(conn, "p", protocol="time") == _evaluate(
        conn, "p", protocol="time", holdout=0.2
    )
    pop = _evaluate(conn, "p", protocol="random_per_item")
    assert all(value == popularity for value, popularity in pop.values())  # it is the baseline


def test_evaluate_is_deterministic_per_seed(conn: Conn) -> None:
    _create(conn, "m")
    a = _evaluate(conn, "m", seed=0)
    b = _evaluate(conn, "m", seed=0)
    c = _evaluate(conn, "m", seed=1)
    assert a == b
    assert a["ndcg@10"][0] != c["ndcg@10"][0]
    assert a["ndcg@10"][1] != c["ndcg@10"][1]  # the split changed, so did the baseline
    assert a["users_evaluated"] == c["users_evaluated"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "params"),
    [("als", FAST_PARAMS), ("ease", {}), ("sims", {})],
    ids=["als", "ease", "sims"],
)
def test_personalized_recipes_beat_popularity_on_random_per_item(
    conn: Conn, recipe: str, params: dict[str, Any]
) -> None:
    _create(conn, "m", recipe=recipe, options={"params": params})
    rows = _evaluate(conn, "m", protocol="random_per_item")
    for key in ("precision@10", "ndcg@10", "recall@25", "map@10", "mrr@25"):
        value, popularity = rows[key]
        assert popularity is not None
        assert value > popularity + 0.05, (key, value, popularity)


def test_evaluate_agrees_with_the_metrics_training_stored(trained: Conn) -> None:
    stored, _ = _stored(trained, "movies")
    rows = _evaluate(trained, "movies")
    assert set(rows) == {k for k, v in stored.items() if isinstance(v, int | float)} - {
        "holdout",
        "seed",
    }
    for key, (value, popularity) in rows.items():
        assert value == pytest.approx(stored[key], abs=1e-6), key
        assert popularity == pytest.approx(stored["baseline"]["popularity"][key], abs=1e-6), key


@pytest.mark.parametrize("protocol", ["time", "random_per_item"])
def test_training_stores_metrics_for_the_chosen_protocol(conn: Conn, protocol: str) -> None:
    _create(conn, "m", options={"protocol": protocol, "params": FAST_PARAMS})
    conn.execute("CALL pyrec.train('m')")
    metrics, params = _stored(conn, "m")
    holdout = 0.2 if protocol == "time" else 0.25
    assert (metrics["protocol"], metrics["holdout"], metrics["seed"]) == (protocol, holdout, 0)
    assert params["factors"] == 16
    assert metrics["users_evaluated"] == (TIME_TEST_USERS if protocol == "time" else N_USERS)
    rows = _evaluate(conn, "m", protocol=protocol)  # the same numbers on demand
    for key, (value, popularity) in rows.items():
        assert value == pytest.approx(metrics[key], abs=1e-6), key
        assert popularity == pytest.approx(metrics["baseline"]["popularity"][key], abs=1e-6)


def test_evaluate_follows_the_models_own_protocol(conn: Conn) -> None:
    _create(conn, "p", recipe="popularity", options={"protocol": "time"})
    conn.execute("CALL pyrec.train('p')")
    stored, _ = _stored(conn, "p")
    assert stored["users_evaluated"] == TIME_TEST_USERS
    assert _values(_evaluate(conn, "p"))["users_evaluated"] == TIME_TEST_USERS


def test_evaluate_options_protocol_is_used(conn: Conn) -> None:
    _create(conn, "p", recipe="popularity", options={})
    rows = _values(_evaluate(conn, "p", options={"protocol": "time"}))
    assert rows["users_evaluated"] == TIME_TEST_USERS


_NO_TIMESTAMP = (
    "CREATE VIEW undated AS SELECT viewer_id, movie_id FROM ratings;"
    "SELECT pyrec.create_model('undated', 'undated', recipe => 'popularity')"
)
_NO_HOLDOUT = (
    "SELECT pyrec.create_model('nohold', 'ratings', recipe => 'popularity',"
    " options => '{\"holdout\": 0}')"
)


@pytest.mark.parametrize(
    ("setup", "call", "sqlstate", "message", "hint"),
    [
        ("", "pyrec.evaluate('nope')", "42704", 'model "nope" does not exist', "create_model"),
        ("", "pyrec.evaluate(NULL)", "22004", "model name must not be null", None),
        (
            "",
            "pyrec.evaluate('m', 'loo')",
            "22023",
            'unknown evaluation protocol "loo"',
            "random_per_user, random_per_item, time",
        ),
        ("", "pyrec.evaluate('m', holdout => 0)", "22023", "holdout must be above 0", "0.25"),
        ("", "pyrec.evaluate('m', holdout => 1.5)", "22023", "options.holdout must be a", "0"),
        ("", "pyrec.evaluate('m', holdout => 1)", "22023", "fraction in [0, 1)", "holds out"),
        ("", "pyrec.evaluate('m', holdout => -0.1)", "22023", "options.holdout", "0"),
        ("", "pyrec.evaluate('m', seed => -1)", "22023", "options.seed must be", "got -1"),
        ("", "pyrec.evaluate('m', options => '\"x\"')", "22023", "must be a JSON object", "{"),
        ("", "pyrec.evaluate('m', options => '[]')", "22023", "options must be a JSON", "{"),
        ("", "pyrec.evaluate('m', options => NULL)", "22023", "options must be a JSON", "{"),
        ("", "pyrec.evaluate('m', options => '{\"x\": 1}')", "22023", 'option "x"', "seed"),
        (
            "",
            "pyrec.evaluate('m', options => '{\"params\": {\"factors\": 0}}')",
            "22023",
            '"factors" of recipe als is out of range',
            "1024",
        ),
        (
            _NO_TIMESTAMP,
            "pyrec.evaluate('undated', 'time')",
            "22023",
            "the time protocol needs a timestamp column",
            '"timestamp"',
        ),
        (_NO_HOLDOUT, "pyrec.evaluate('nohold')", "22023", "holdout must be above 0", "holdout"),
    ],
    ids=[
        "unknown-model",
        "null-model",
        "unknown-protocol",
        "holdout-0",
        "holdout-1.5",
        "holdout-1",
        "holdout-negative",
        "seed-negative",
        "options-string",
        "options-array",
        "options-null",
        "unknown-option",
        "bad-recipe-param",
        "time-without-timestamp",
        "model-without-holdout",
    ],
)
def test_evaluate_rejects_bad_input(
    conn: Conn, setup: str, call: str, sqlstate: str, message: str, hint: str | None
) -> None:
    _create(conn, "m")
    if setup:
        conn.execute(setup)
    with raises_pg(conn, sqlstate, message, hint):
        conn.execute(f"SELECT * FROM {call}")


def test_evaluate_of_a_model_without_holdout_with_an_explicit_one(conn: Conn) -> None:
    conn.execute(_NO_HOLDOUT)
    rows = _evaluate(conn, "nohold", holdout=0.25)
    assert rows["users_evaluated"] == (N_USERS, N_USERS)


def _everything(conn: Conn) -> tuple[Any, ...]:
    return (
        catalog_state(conn),
        conn.execute("SELECT * FROM pyrec._runs ORDER BY run_id").fetchall(),
        conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg\\_%'"
            " AND n.nspname <> 'information_schema' ORDER BY 1, 2"
        ).fetchall(),
    )


def test_evaluate_writes_nothing(trained: Conn) -> None:
    before = _everything(trained)
    with trained.transaction():
        trained.execute("SET TRANSACTION READ ONLY")  # it would fail if it wrote anything
        rows = _evaluate(trained, "movies", protocol="random_per_item")
    assert rows["users_evaluated"][0] == N_USERS
    _evaluate(trained, "movies", protocol="time")
    assert _everything(trained) == before


# --- training with auto, trending and the data options -----------------------------------


def test_auto_training_records_its_choice_and_trials(conn: Conn) -> None:
    candidates = [["als", FAST_PARAMS], ["popularity", {}]]
    _create(conn, "a", recipe="auto", options={"params": {"candidates": candidates}})
    conn.execute("CALL pyrec.train('a')")
    row = conn.execute(
        "SELECT recipe, dims, params, metrics FROM pyrec.model_versions WHERE model = 'a'"
    ).fetchone()
    assert row is not None
    recipe, dims, params, metrics = row
    assert recipe == "auto"
    assert set(params) == {"validation", "seed", "time_budget_seconds", "chosen", "trials"}
    trials = params["trials"]
    assert [t["recipe"] for t in trials] == ["als", "popularity"]
    assert all(0 <= t["ndcg@10"] <= 1 and t["seconds"] >= 0 for t in trials)
    best = max(trials, key=lambda t: t["ndcg@10"])
    assert params["chosen"] == {"recipe": best["recipe"], "params": best["params"]}
    assert params["chosen"]["recipe"] == "als"
    assert params["chosen"]["params"]["factors"] == 16 == dims  # the final fit is the winner's
    assert metrics["ndcg@10"] > metrics["baseline"]["popularity"]["ndcg@10"]
    recs = conn.execute("SELECT source FROM pyrec.recommend('a', '42', 5)").fetchall()
    assert recs == [("model",)] * 5


def _items_table(conn: Conn, model: str) -> str:
    row = conn.execute(
        "SELECT items_table FROM pyrec.model_versions WHERE model = %s AND status = 'active'",
        [model],
    ).fetchone()
    assert row is not None
    return str(row[0])


def _served_popularity(conn: Conn, model: str) -> dict[str, float]:
    rows = conn.execute(f"SELECT item_id, popularity FROM pyrec.{_items_table(conn, model)}")
    return {k: float(v) for k, v in rows.fetchall()}


def _ranking(conn: Conn, model: str) -> list[str]:
    table = _items_table(conn, model)
    rows = conn.execute(f"SELECT item_id FROM pyrec.{table} ORDER BY popularity DESC, item_id")
    return [r[0] for r in rows.fetchall()]


def _truth(conn: Conn, query: str) -> list[tuple[str, float]]:
    """(item id, weight) pairs of a ground-truth query, heaviest first, ties by id as text."""
    rows = conn.execute(f"SELECT id::text, w::float8 FROM ({query}) q ORDER BY w DESC, id::text")
    return [(r[0], float(r[1])) for r in rows.fetchall()]


def _train_popularity(conn: Conn, name: str, relation: str, options: dict[str, Any]) -> None:
    _create(conn, name, relation, "popularity", {"holdout": 0, **options})
    conn.execute("CALL pyrec.train(%s)", [name])


def _assert_matches(conn: Conn, model: str, truth: list[tuple[str, float]]) -> None:
    assert _ranking(conn, model) == [item for item, _ in truth]
    top = truth[0][1]
    served = _served_popularity(conn, model)
    for item, w in truth:
        assert served[item] == pytest.approx(w / top, rel=1e-6, abs=1e-9), item
    recs = conn.execute(f"SELECT item_id FROM pyrec.recommend('{model}', 'nobody', 10)")
    assert [r[0] for r in recs.fetchall()] == [item for item, _ in truth[:10]]


WINDOW = "rated_at >= (SELECT max(rated_at) FROM ratings) - interval '720 hours'"


def test_popularity_with_a_window_counts_only_the_last_days(conn: Conn) -> None:
    _train_popularity(conn, "recent", "ratings", {"window_days": 30})
    truth = _truth(
        conn, f"SELECT movie_id AS id, count(*) AS w FROM ratings WHERE {WINDOW} GROUP BY 1"
    )
    sizes = conn.execute(
        f"SELECT count(DISTINCT viewer_id), count(DISTINCT movie_id), count(*) FROM ratings"
        f" WHERE {WINDOW}"
    ).fetchone()
    assert sizes is not None and sizes[2] < N_RATINGS / 2  # the window is a real restriction
    row = conn.execute(
        "SELECT n_users, n_items, n_interactions FROM pyrec.model_versions WHERE model = 'recent'"
    ).fetchone()
    assert row == sizes
    _assert_matches(conn, "recent", truth)
    everything = _truth(conn, "SELECT movie_id AS id, count(*) AS w FROM ratings GROUP BY 1")
    assert [i for i, _ in everything[:10]] != [i for i, _ in truth[:10]]


EVENTS = (
    "CREATE VIEW events AS SELECT viewer_id, movie_id, rated_at,"
    " CASE WHEN rating >= 4 THEN 'like' ELSE 'view' END AS event_type FROM ratings"
)


def test_popularity_with_event_types_counts_only_those_events(conn: Conn) -> None:
    conn.execute(EVENTS)
    _train_popularity(conn, "liked", "events", {"event_types": ["LIKE"]})  # case-insensitive
    truth = _truth(
        conn, "SELECT movie_id AS id, count(*) AS w FROM ratings WHERE rating >= 4 GROUP BY 1"
    )
    row = conn.execute(
        "SELECT n_interactions FROM pyrec.model_versions WHERE model = 'liked'"
    ).fetchone()
    likes = conn.execute("SELECT count(*) FROM ratings WHERE rating >= 4").fetchone()
    assert row == likes
    _assert_matches(conn, "liked", truth)


def test_popularity_with_event_weights(conn: Conn) -> None:
    conn.execute(EVENTS)
    _train_popularity(conn, "weighted", "events", {"event_weights": {"like": 3, "view": 0.5}})
    truth = _truth(
        conn,
        "SELECT movie_id AS id, sum(CASE WHEN rating >= 4 THEN 3 ELSE 0.5 END) AS w"
        " FROM ratings GROUP BY 1",
    )
    _assert_matches(conn, "weighted", truth)


def test_popularity_weighted_by_the_event_value(conn: Conn) -> None:
    _train_popularity(conn, "rated", "ratings", {"use_event_value": True})
    truth = _truth(conn, "SELECT movie_id AS id, sum(rating) AS w FROM ratings GROUP BY 1")
    _assert_matches(conn, "rated", truth)
    counted = _truth(conn, "SELECT movie_id AS id, count(*) AS w FROM ratings GROUP BY 1")
    assert [i for i, _ in counted[:25]] != [i for i, _ in truth[:25]]


RECENCY = (
    "SELECT movie_id AS id, sum(power(0.5, ((SELECT max(extract(epoch FROM rated_at))"
    " FROM ratings) - extract(epoch FROM rated_at)) / ({days} * 86400.0))) AS w"
    " FROM ratings GROUP BY 1"
)


def test_popularity_with_recency_decay_and_trending(conn: Conn) -> None:
    _train_popularity(conn, "decayed", "ratings", {"recency_half_life_days": 10})
    truth = dict(_truth(conn, RECENCY.format(days=10)))
    top = max(truth.values())
    served = _served_popularity(conn, "decayed")
    assert set(served) == set(truth)
    for item, w in truth.items():
        assert served[item] == pytest.approx(w / top, rel=1e-5, abs=1e-7), item
    # trending is popularity read with its half-life
    _create(conn, "trend", "ratings", "trending", {"holdout": 0, "params": {"half_life_days": 10}})
    conn.execute("CALL pyrec.train('trend')")
    trend = _served_popularity(conn, "trend")
    assert trend.keys() == served.keys()
    for item, p in served.items():
        assert trend[item] == pytest.approx(p, rel=1e-6, abs=1e-9), item
    counted = dict(_truth(conn, "SELECT movie_id AS id, count(*) AS w FROM ratings GROUP BY 1"))
    assert max(truth, key=truth.__getitem__) != max(counted, key=counted.__getitem__)


def test_trending_beats_all_time_popularity_on_the_newest_ratings(conn: Conn) -> None:
    _create(conn, "trend", "ratings", "trending", {"params": {"half_life_days": 14}})
    _create(conn, "pop", "ratings", "popularity", {})
    conn.execute("CALL pyrec.train('trend')")
    metrics, params = _stored(conn, "trend")
    assert params == {"half_life_days": 14}
    assert metrics["users_evaluated"] == N_USERS
    trend = _values(_evaluate(conn, "trend", protocol="time"))
    pop = _values(_evaluate(conn, "pop", protocol="time"))
    assert trend["users_evaluated"] == pop["users_evaluated"] == TIME_TEST_USERS
    assert trend["ndcg@10"] > pop["ndcg@10"] + 0.02
    assert trend["precision@10"] > pop["precision@10"]


def test_trending_with_a_short_half_life_over_years_of_events(conn: Conn) -> None:
    conn.execute(
        "CREATE TABLE clicks AS SELECT g % 50 AS user_id, g % 37 AS item_id,"
        " timestamptz '2020-01-01' + g * interval '1 day' AS ts FROM generate_series(0, 1500) g"
    )
    _create(conn, "t", "clicks", "trending", {"holdout": 0, "params": {"half_life_days": 1}})
    conn.execute("CALL pyrec.train('t')")
    newest = conn.execute("SELECT item_id FROM pyrec.recommend('t', 'nobody', 1)").fetchone()
    assert newest == (str(1500 % 37),)


def test_data_options_are_stored_with_the_model_and_reapplied(conn: Conn) -> None:
    _train_popularity(conn, "recent", "ratings", {"window_days": 30})
    first = _ranking(conn, "recent")
    conn.execute("INSERT INTO ratings VALUES (5000, 1, 5, '1997-01-01')")  # outside the window
    conn.execute("CALL pyrec.train('recent')")
    assert _ranking(conn, "recent") == first
    options = conn.execute("SELECT options FROM pyrec.models WHERE name = 'recent'").fetchone()
    assert options == ({"holdout": 0, "window_days": 30},)
    overridden = json.dumps({"window_days": 10000})
    conn.execute("CALL pyrec.train('recent', %s)", [overridden])
    row = conn.execute(
        "SELECT n_interactions FROM pyrec.model_versions WHERE model = 'recent'"
        " AND status = 'active'"
    ).fetchone()
    assert row == (N_RATINGS + 1,)
