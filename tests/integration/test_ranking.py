"""recommend()'s ranking argument: popularity, freshness, boosts and diversity caps."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]

TOP = (
    "SELECT item_id, score, rank, source"
    " FROM pyrec.recommend('movies', %s, %s, %s, %s, ranking => %s)"
)


def top(
    conn: Conn,
    user: str,
    k: int,
    ranking: dict[str, Any] | None = None,
    flt: str | None = None,
    params: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    return conn.execute(
        TOP,
        [
            user,
            k,
            flt,
            json.dumps(params) if params else None,
            json.dumps(ranking) if ranking is not None else None,
        ],
    ).fetchall()


def boost_of(item: str, weight: float = 1.0) -> dict[str, Any]:
    return {
        "filter": "INCLUDE ItemID WHERE Items.movie_id IN ($ID)",
        "params": {"ID": [int(item)]},
        "weight": weight,
    }


@pytest.mark.parametrize("ann", [False, True], ids=["exact", "hnsw"])
def test_a_boost_lifts_an_item_into_the_top_10_unless_the_filter_excludes_it(
    trained: Conn, ann: bool
) -> None:
    if ann:
        trained.execute("SET pyrec.ann_min_items = 100")  # MovieLens' 1682 items count as large
        trained.execute("CALL pyrec.train('movies')")
    plain = [r[0] for r in top(trained, "42", 300)]
    # the relevance of the worst candidate scales to 0: a boost of 1 lifts it level with the best
    lifted = top(trained, "42", 10, {"boosts": [boost_of(plain[40])]})
    assert lifted[0][0] == plain[40] and lifted[0][1] > 1
    for outside in (plain[40], plain[-1]):  # in the default 50 candidates, and far outside them
        boosted = top(trained, "42", 10, {"boosts": [boost_of(outside)]})
        assert outside not in plain[:10] and outside in {r[0] for r in boosted}
        assert [r[2] for r in boosted] == list(range(1, 11))
        assert len({r[0] for r in boosted}) == 10
        # the filter rules first: an item it excludes never enters, however boosted
        kept_out = top(
            trained,
            "42",
            10,
            {"boosts": [boost_of(outside)]},
            "EXCLUDE ItemID WHERE Items.movie_id IN ($X)",
            {"X": [int(outside)]},
        )
        assert outside not in {r[0] for r in kept_out} and len(kept_out) == 10
    # a negative weight buries: the plain first item leaves the top 10
    buried = top(trained, "42", 10, {"boosts": [boost_of(plain[0], -1.0)]})
    assert plain[0] not in {r[0] for r in buried}


def test_without_influences_the_order_is_the_model_s(trained: Conn) -> None:
    plain = top(trained, "42", 10)
    mixed = top(trained, "42", 10, {})
    assert [r[0] for r in mixed] == [r[0] for r in plain]
    assert mixed[0][1] == pytest.approx(1.0)  # the best candidate's relevance, scaled to 1
    assert [r[3] for r in mixed] == [r[3] for r in plain]


def test_popularity_weight_one_orders_the_candidates_by_popularity(trained: Conn) -> None:
    candidates = {r[0] for r in top(trained, "42", 100)}
    ranked = [r[0] for r in top(trained, "42", 10, {"popularity": 1.0})]
    counts = dict(
        trained.execute(
            "SELECT movie_id::text, count(*) FROM ratings"
            " WHERE movie_id::text = ANY(%s) GROUP BY 1",
            [list(candidates)],
        ).fetchall()
    )
    best = sorted(candidates, key=lambda i: (-counts[i], i))[:10]
    assert set(ranked) <= candidates
    assert [counts[i] for i in ranked] == [counts[i] for i in best]
    # half and half moves the list between the two
    half = [r[0] for r in top(trained, "42", 10, {"popularity": 0.5})]
    plain = [r[0] for r in top(trained, "42", 10)]
    assert half != plain and half != ranked


@pytest.mark.parametrize("ann", [False, True], ids=["exact", "hnsw"])
def test_diversity_caps_hold_in_every_list(trained: Conn, ann: bool) -> None:
    if ann:
        trained.execute("SET pyrec.ann_min_items = 100")
        trained.execute("CALL pyrec.train('movies')")
    genres = dict(trained.execute("SELECT movie_id::text, genre FROM movies").fetchall())
    capped_somewhere = False
    for user in range(1, 31):
        plain = [r[0] for r in top(trained, str(user), 10)]
        capped = {"diversity": {"field": "Items.genre", "max_per_value": 2}}
        rows = top(trained, str(user), 10, capped)
        # the cap holds even when the 50 candidates run out before k rows fit it
        assert 0 < len(rows) <= 10 and [r[2] for r in rows] == list(range(1, len(rows) + 1))
        assert max(Counter(g for r in rows for g in genres[r[0]]).values()) <= 2
        rows = top(trained, str(user), 10, {**capped, "candidates": 1000})
        per_genre = Counter(g for r in rows for g in genres[r[0]])
        assert max(per_genre.values()) <= 2, (user, per_genre)
        capped_somewhere |= max(Counter(g for i in plain for g in genres[i]).values()) > 2
        # the kept items are the best ones that fit: scores still fall
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    assert capped_somewhere  # the cap changed some list
    # recommend_for_items takes it too
    rows = trained.execute(
        "SELECT item_id FROM pyrec.recommend_for_items('movies', ARRAY['50', '181'], 10,"
        " ranking => %s)",
        [json.dumps({"diversity": {"field": "genre", "max_per_value": 1}})],
    ).fetchall()
    per_genre = Counter(g for (i,) in rows for g in genres[i])
    assert rows and max(per_genre.values()) == 1


def test_freshness_raises_new_items(trained: Conn) -> None:
    trained.execute("ALTER TABLE movies ADD COLUMN created_at timestamptz")
    trained.execute("UPDATE movies SET created_at = now() - interval '1000 days'")
    trained.execute(
        "SELECT pyrec.create_model('fresh', 'ratings', items => 'movies',"
        ' options => \'{"params": {"factors": 16, "iterations": 4}}\')'
    )
    trained.execute("CALL pyrec.train('fresh')")
    fresh = "SELECT item_id FROM pyrec.recommend('fresh', '42', 10, ranking => %s)"
    plain = [r[0] for r in trained.execute(fresh, [None])]
    new = [r[0] for r in trained.execute("SELECT item_id FROM pyrec.recommend('fresh', '42', 40)")][
        -3:
    ]
    trained.execute("UPDATE movies SET created_at = now() WHERE movie_id::text = ANY(%s)", [new])
    ranked = [r[0] for r in trained.execute(fresh, [json.dumps({"freshness": 0.5})])]
    assert set(new) <= set(ranked[:3]) and set(new).isdisjoint(plain)
    # its half-life: 1000-day-old items are worth nothing either way; a long one narrows the gap
    slow = [
        r[0]
        for r in trained.execute(fresh, [json.dumps({"freshness": 0.5, "half_life_days": 100000})])
    ]
    assert slow[:3] != ranked[:3]


@pytest.mark.parametrize(
    ("ranking", "sqlstate", "message", "hint"),
    [
        ("[1]", "22023", "ranking must be a JSON object", "popularity"),
        (
            '{"popularty": 0.1}',
            "22023",
            'unknown ranking field "popularty"',
            "popularity, freshness",
        ),
        ('{"popularity": 2}', "22023", "ranking popularity must be a number from 0 to 1", "weight"),
        ('{"popularity": 0.7, "freshness": 0.6}', "22023", "add up to 1.3", "relevance"),
        ('{"candidates": 5}', "22023", "ranking candidates must be a number from 10", "k (10)"),
        (
            '{"freshness": 0.2}',
            "55000",
            "freshness needs the items' creation time",
            "items_created",
        ),
        ('{"boosts": {}}', "22023", "boosts must be an array", "weight"),
        (
            '{"boosts": [{"filter": "INCLUDE ItemID WHERE Items.year > 1990"}]}',
            "22023",
            "boost 1 weight must be a number between -1 and 1, got none",
            "negative",
        ),
        (
            '{"boosts": [{"filter": "INCLUDE ItemID WHERE Items.yeer > 1990", "weight": 0.1}]}',
            "42703",
            'unknown field "Items.yeer"',
            "columns of",
        ),
        (
            '{"diversity": {"field": "Items.colour", "max_per_value": 2}}',
            "42703",
            'unknown field "Items.colour" in ranking diversity',
            "genre",
        ),
        (
            '{"diversity": {"field": "genre", "max_per_value": 0}}',
            "22023",
            "max_per_value must be a whole number from 1",
            "at most 3",
        ),
        ('{"diversity": {"field": "genre"}}', "22023", "field and max_per_value", "genre"),
    ],
)
def test_bad_ranking_is_refused(
    trained: Conn, ranking: str, sqlstate: str, message: str, hint: str
) -> None:
    with raises_pg(trained, sqlstate, message, hint):
        trained.execute(
            "SELECT * FROM pyrec.recommend('movies', '42', 10, ranking => %s)", [ranking]
        )


def test_ranking_with_a_promotion_is_refused(trained: Conn) -> None:
    with raises_pg(trained, "0A000", "ranking or a promotion", "boost"):
        trained.execute(
            "SELECT * FROM pyrec.recommend('movies', '42', 10, ranking => '{}',"
            ' promotion => \'{"filter": "INCLUDE ItemID WHERE Items.year > 1990", "percent": 20}\')'
        )


def test_a_boost_value_of_the_wrong_type_names_the_value(trained: Conn) -> None:
    bad = {
        "boosts": [
            {
                "filter": "INCLUDE ItemID WHERE Items.year > $Y",
                "params": {"Y": "soon"},
                "weight": 0.2,
            }
        ]
    }
    with raises_pg(trained, "22023", "does not fit its field", "params"):
        top(trained, "42", 10, bad)


def test_batch_with_ranking_writes_recommend_s_lists(trained: Conn) -> None:
    ranking = {
        "popularity": 0.2,
        "boosts": [
            {"filter": "INCLUDE ItemID WHERE Items.year < $Y", "params": {"Y": 1970}, "weight": 0.3}
        ],
        "diversity": {"field": "Items.genre", "max_per_value": 2},
        "candidates": 300,
    }
    trained.execute(
        "CALL pyrec.batch_recommend('movies',"
        " 'SELECT viewer_id FROM viewers WHERE viewer_id <= 20', 10,"
        " filter => 'EXCLUDE ItemID WHERE Items.genre IN (\"Horror\")', ranking => %s)",
        [json.dumps(ranking)],
    )
    genres = dict(trained.execute("SELECT movie_id::text, genre FROM movies").fetchall())
    for user in range(1, 21):
        written = trained.execute(
            "SELECT item_id, score, rank, source FROM pyrec.batch_movies WHERE user_id = %s"
            " ORDER BY rank",
            [str(user)],
        ).fetchall()
        served = top(
            trained, str(user), 10, ranking, 'EXCLUDE ItemID WHERE Items.genre IN ("Horror")'
        )
        assert [r[0] for r in written] == [r[0] for r in served]
        assert [r[1] for r in written] == pytest.approx([r[1] for r in served])
        assert all("Horror" not in genres[r[0]] for r in written)
        assert max(Counter(g for r in written for g in genres[r[0]]).values()) <= 2
    with raises_pg(trained, "22023", 'unknown ranking field "boost"', "boosts"):
        trained.execute("CALL pyrec.batch_recommend('movies', ranking => '{\"boost\": []}')")
