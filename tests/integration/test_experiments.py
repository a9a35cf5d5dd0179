"""A/B experiments: deterministic variants, logged impressions, attribution, offline replay."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]

VARIANTS = '[{"name": "control", "share": 50, "serve": "popular"}, {"name": "als", "share": 50}]'


@pytest.fixture
def shop(trained: Conn) -> Conn:
    """Model "shop" over orders(customer_id, product_id, ordered_at, kind, amount): MovieLens
    ratings as 'view' events; outcomes are added as 'purchase' rows by the tests."""
    trained.execute(
        "CREATE TABLE orders AS SELECT viewer_id AS customer_id, movie_id AS product_id,"
        " rated_at AS ordered_at, 'view'::text AS kind, rating::numeric AS amount FROM ratings;"
        " CREATE INDEX ON orders (customer_id)"
    )
    trained.execute(
        "SELECT pyrec.create_model('shop', 'orders', options => %s)",
        [
            '{"columns": {"user": "customer_id", "item": "product_id", "timestamp": "ordered_at",'
            ' "event_type": "kind"}, "params": {"factors": 16, "iterations": 4}}'
        ],
    )
    trained.execute("CALL pyrec.train('shop')")
    return trained


def serve_everyone(conn: Conn, experiment: str, users: range) -> dict[str, str]:
    """Call recommend for each user; the variant each one saw, from the source column."""
    seen = {}
    for u in users:
        rows = conn.execute(
            "SELECT source FROM pyrec.recommend(NULL, %s, 5, experiment => %s)",
            [str(u), experiment],
        ).fetchall()
        assert len(rows) == 5
        variants = {s.split(":")[0] for (s,) in rows}
        assert len(variants) == 1
        seen[str(u)] = variants.pop()
    return seen


def test_users_keep_their_variant_and_each_request_is_logged(trained: Conn) -> None:
    out = trained.execute(
        "SELECT pyrec.create_experiment('home', %s, model => 'movies')", [VARIANTS]
    ).fetchone()
    assert out is not None and out[0]["variants"] == {"control": 0.5, "als": 0.5}
    first = serve_everyone(trained, "home", range(1, 944))
    again = serve_everyone(trained, "home", range(1, 101))
    assert all(first[u] == v for u, v in again.items())
    for u in ("1", "42", "500"):
        assigned = trained.execute("SELECT pyrec.experiment_variant('home', %s)", [u]).fetchone()
        assert assigned == (first[u],)
    share = sum(v == "als" for v in first.values()) / len(first)
    assert 0.44 < share < 0.56, share
    # control serves the popular unseen items; als the model's
    u = next(u for u, v in first.items() if v == "control")
    got = trained.execute(
        "SELECT item_id, source FROM pyrec.recommend('movies', %s, 5, experiment => 'home')", [u]
    ).fetchall()
    assert {s for _, s in got} == {"control:popular"}
    popular = trained.execute(
        "SELECT item_id FROM pyrec.recommend('movies', '99999', 50)"
    ).fetchall()
    seen = {
        str(m)
        for (m,) in trained.execute("SELECT movie_id FROM ratings WHERE viewer_id = %s", [int(u)])
    }
    assert [i for i, _ in got] == [p for (p,) in popular if p not in seen][:5]
    u = next(u for u, v in first.items() if v == "als")
    got = trained.execute(
        "SELECT item_id, score FROM pyrec.recommend('movies', %s, 5, experiment => 'home')", [u]
    ).fetchall()
    assert (
        got
        == trained.execute(
            "SELECT item_id, score FROM pyrec.recommend('movies', %s, 5)", [u]
        ).fetchall()
    )
    n, logged = trained.execute(
        "SELECT count(*), (SELECT items FROM pyrec.impressions"
        " ORDER BY recommendation_id DESC LIMIT 1) FROM pyrec.impressions"
    ).fetchone() or (0, None)
    assert n == 943 + 100 + 2 and logged == [i for i, _ in got]
    listed = trained.execute("SELECT name, status, control, impressions FROM pyrec.experiments")
    assert listed.fetchall() == [("home", "running", "control", 1045)]


def test_variants_can_differ_by_filter(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_experiment('old_films', %s, model => 'movies')",
        [
            '[{"name": "all", "share": 1}, {"name": "old", "share": 1,'
            ' "filter": "INCLUDE ItemID WHERE Items.year < $Y", "params": {"Y": 1970}}]'
        ],
    )
    seen = serve_everyone(trained, "old_films", range(1, 60))
    u = next(u for u, v in seen.items() if v == "old")
    years = trained.execute(
        "SELECT m.year FROM pyrec.recommend('movies', %s, 5, experiment => 'old_films') r"
        " JOIN movies m ON m.movie_id = r.item_id::int",
        [u],
    ).fetchall()
    assert years and all(y < 1970 for (y,) in years)


def simulate(
    conn: Conn, experiment: str, rate: dict[str, float], users: range, seed: float
) -> None:
    """Outcomes: each served user buys within the hour after their first impression with the
    probability of their variant (a purchase of amount 10)."""
    conn.execute("SELECT setseed(%s)", [seed])
    conn.execute(
        "INSERT INTO orders SELECT i.user_id::int, 1, min(i.shown_at) + interval '1 hour',"
        " 'purchase', 10 FROM pyrec.impressions i JOIN pyrec._experiments e USING (experiment_id)"
        " WHERE e.name = %s AND i.user_id::int BETWEEN %s AND %s"
        " GROUP BY i.user_id, i.variant"
        " HAVING random() < (%s::jsonb ->> i.variant)::float8",
        [experiment, users.start, users.stop - 1, psycopg.types.json.Jsonb(rate)],
    )


def results(conn: Conn, experiment: str, outcome: str) -> dict[str, dict[str, Any]]:
    cur = conn.execute(
        "SELECT * FROM pyrec.experiment_results(%s, %s, '1 day')", [experiment, outcome]
    )
    cols = [c.name for c in cur.description or []]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def test_a_better_variant_is_found_and_more_traffic_makes_it_clearer(shop: Conn) -> None:
    shop.execute(
        "SELECT pyrec.create_experiment('checkout', %s, model => 'shop')",
        [
            '[{"name": "A", "share": 1, "control": true, "serve": "popular"},'
            ' {"name": "B", "share": 1}]'
        ],
    )
    rate = {"A": 0.2, "B": 0.4}
    serve_everyone(shop, "checkout", range(1, 201))
    simulate(shop, "checkout", rate, range(1, 201), 0.1)
    early = results(shop, "checkout", "purchase")
    serve_everyone(shop, "checkout", range(201, 944))
    simulate(shop, "checkout", rate, range(201, 944), 0.2)
    late = results(shop, "checkout", "purchase")
    assert late["A"]["is_control"] and late["A"]["difference"] is None
    assert late["A"]["users"] + late["B"]["users"] == 943
    b = late["B"]
    assert b["metric"] == "conversion_rate" and b["difference"] > 0.1
    assert b["ci_low"] < b["difference"] < b["ci_high"] and b["ci_low"] > 0
    assert b["p_value"] < early["B"]["p_value"] < 0.05
    assert b["conversion_rate"] == pytest.approx(b["converted_users"] / b["users"])
    # the same outcome as a value: SUM(amount) of the purchases (views are not in the window)
    value = results(shop, "checkout", "SUM(amount)")
    assert value["B"]["metric"] == "value_per_user"
    assert value["B"]["value_per_user"] == pytest.approx(10 * b["conversion_rate"])
    assert value["B"]["p_value"] < 0.05


def test_identical_variants_rarely_differ(shop: Conn) -> None:
    # A/A: 100 experiments with the same conversion rate; at alpha 0.05 about 5 "find" a difference
    false_positives = 0
    for n in range(100):
        shop.execute(
            "SELECT pyrec.create_experiment(%s, %s, model => 'shop')",
            [f"aa{n}", '[{"name": "A", "share": 1}, {"name": "B", "share": 1}]'],
        )
        shop.execute(
            "INSERT INTO pyrec.impressions (experiment_id, variant, user_id, items, scores)"
            " SELECT e.experiment_id, pyrec.experiment_variant(e.name, v.viewer_id::text),"
            " v.viewer_id::text, '{1}', '{1}' FROM viewers v, pyrec._experiments e"
            " WHERE e.name = %s",
            [f"aa{n}"],
        )
        simulate(shop, f"aa{n}", {"A": 0.3, "B": 0.3}, range(1, 944), n / 100)
        false_positives += results(shop, f"aa{n}", "purchase")["B"]["p_value"] < 0.05
        shop.execute("DELETE FROM orders WHERE kind = 'purchase'")
    assert 1 <= false_positives <= 12, false_positives  # binomial(100, 0.05): 99% inside


def test_experiment_errors(shop: Conn) -> None:
    create = "SELECT pyrec.create_experiment(%s, %s, model => 'movies')"
    with raises_pg(shop, "22023", "variants must be a JSON array of 2"):
        shop.execute(create, ["x", '[{"name": "a", "share": 1}]'])
    with raises_pg(shop, "22004", "variants must not be null"):
        shop.execute(create, ["x", None])
    with raises_pg(shop, "22023", 'share of variant "b" must be a positive number'):
        shop.execute(create, ["x", '[{"name": "a", "share": 1}, {"name": "b", "share": 0}]'])
    with raises_pg(shop, "22023", 'unknown field "weight" in variant 2'):
        shop.execute(create, ["x", '[{"name": "a", "share": 1}, {"name": "b", "weight": 1}]'])
    with raises_pg(shop, "22023", 'variant name "a" is used twice'):
        shop.execute(create, ["x", '[{"name": "a", "share": 1}, {"name": "a", "share": 1}]'])
    with raises_pg(shop, "42704", 'model "nope" does not exist'):
        shop.execute(
            create, ["x", '[{"name": "a", "share": 1}, {"name": "b", "share": 1, "model": "nope"}]']
        )
    with raises_pg(shop, "22023", 'serve of variant "b" must be "model" or "popular"'):
        shop.execute(
            create, ["x", '[{"name": "a", "share": 1}, {"name": "b", "share": 1, "serve": "x"}]']
        )
    shop.execute("SELECT pyrec.create_model('untrained', 'ratings')")
    with raises_pg(
        shop, "55000", 'model "untrained" of variant "b" has no trained version', "train"
    ):
        shop.execute(
            create,
            ["x", '[{"name": "a", "share": 1}, {"name": "b", "share": 1, "model": "untrained"}]'],
        )
    with raises_pg(shop, "22023", "invalid experiment name"):
        shop.execute(create, ["drop table", VARIANTS])
    shop.execute(create, ["ok", VARIANTS])
    with raises_pg(shop, "42710", 'experiment "ok" already exists'):
        shop.execute(create, ["ok", VARIANTS])
    with raises_pg(shop, "42704", 'experiment "nope" does not exist'):
        shop.execute("SELECT * FROM pyrec.recommend('movies', '1', 5, experiment => 'nope')")
    with raises_pg(shop, "22023", 'model "shop" is not part of experiment "ok"'):
        shop.execute("SELECT * FROM pyrec.recommend('shop', '1', 5, experiment => 'ok')")
    with raises_pg(shop, "25006", "read-only transaction", "primary"), shop.transaction():
        shop.execute("SET TRANSACTION READ ONLY")
        shop.execute("SELECT * FROM pyrec.recommend(NULL, '1', 5, experiment => 'ok')")
    results_sql = "SELECT * FROM pyrec.experiment_results('ok', %s)"
    with raises_pg(shop, "55000", "has no event type column"):
        shop.execute(results_sql, ["purchase"])  # movies' ratings have no event types
    shop.execute("SELECT pyrec.create_experiment('shopx', %s, model => 'shop')", [VARIANTS])
    for bad, state, text in [
        ("SUM(price)", "42703", 'outcome column "price" is not a column'),
        ("SUM(amount) + (SELECT 1)", "22023", "outcome may not contain"),
        ("pg_sleep(1)", "22023", "outcome may not contain"),
        ("SUM(amount) + 'x'", "22023", "outcome may not contain text"),
        ("amount * (2)", "22023", "must aggregate"),
        ("SUM(amount", "22023", "not a valid expression"),
    ]:
        with raises_pg(shop, state, text):
            shop.execute("SELECT * FROM pyrec.experiment_results('shopx', %s)", [bad])
    with raises_pg(shop, "22023", "window must be a positive interval"):
        shop.execute("SELECT * FROM pyrec.experiment_results('shopx', 'purchase', '-1 day')")
    shop.execute("SELECT pyrec.stop_experiment('ok')")
    with raises_pg(shop, "55000", 'experiment "ok" is stopped'):
        shop.execute("SELECT * FROM pyrec.recommend(NULL, '1', 5, experiment => 'ok')")
    shop.execute("SELECT pyrec.drop_experiment('ok')")
    with raises_pg(shop, "42704", 'experiment "ok" does not exist'):
        shop.execute("SELECT pyrec.drop_experiment('ok')")


def test_compare_models_on_one_split_per_segment(trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_model('movies_pop', 'ratings', users => 'viewers',"
        " recipe => 'popularity')"
    )
    rows = trained.execute(
        "SELECT model, segment, users, metric, value FROM pyrec.compare_models("
        "ARRAY['movies', 'movies_pop'], segment_by => 'gender', seed => 3)"
    ).fetchall()
    table = {(m, s, metric): (u, v) for m, s, u, metric, v in rows}
    assert {s for _, s, _ in table} == {"all", "F", "M"}
    for model in ("movies", "movies_pop"):
        n_all = table[(model, "all", "ndcg@10")][0]
        assert n_all == table[(model, "F", "ndcg@10")][0] + table[(model, "M", "ndcg@10")][0]
    # ALS beats popularity overall; the held-out users are the same for both models
    assert table[("movies", "all", "ndcg@10")][1] > table[("movies_pop", "all", "ndcg@10")][1]
    assert table[("movies", "M", "ndcg@10")][0] == table[("movies_pop", "M", "ndcg@10")][0]
    # the "all" row is what pyrec.evaluate reports for the same split
    evaluated = trained.execute(
        "SELECT value FROM pyrec.evaluate('movies', seed => 3) WHERE metric = 'ndcg@10'"
    ).fetchone()
    assert evaluated is not None
    assert table[("movies", "all", "ndcg@10")][1] == pytest.approx(evaluated[0], abs=1e-6)
    with raises_pg(trained, "42703", 'segment_by "planet" is not a column'):
        trained.execute("SELECT * FROM pyrec.compare_models(ARRAY['movies'], 'planet')")
    with raises_pg(trained, "22023", "models must be a non-empty array"):
        trained.execute("SELECT * FROM pyrec.compare_models(ARRAY[]::text[])")
