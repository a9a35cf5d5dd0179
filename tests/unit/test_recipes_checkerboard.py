"""Every recipe on a synthetic checkerboard with a known answer, and the algebra they share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.evaluation import ranking_metrics, top_k
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.auto import CANDIDATES, Auto
from pyrec_pg.ml.recipes.base import Factors, Recipe
from pyrec_pg.ml.recipes.itemitem import Ease, Sims, low_rank, svd
from pyrec_pg.ml.recipes.popularity import Popularity
from pyrec_pg.ml.recipes.trending import Trending
from pyrec_pg.ml.registry import RECIPES, recipe_params

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP, HELD_OUT = 4, 15, 12, 5
N_USERS, N_ITEMS = GROUPS * USERS_PER_GROUP, GROUPS * ITEMS_PER_GROUP
K = 5


@dataclass(frozen=True)
class Board:
    """train + test = every user's whole own item group (weights 1..3) plus a few off-block
    interactions; test holds HELD_OUT in-block items per user, so a user's unseen in-block
    items are exactly its test items and a perfect ranker has precision@5 = 1."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    user_group: I64
    item_group: I64


@cache
def _board(seed: int = 0) -> Board:
    rng = np.random.default_rng(seed)
    train = np.zeros((N_USERS, N_ITEMS))
    test = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        g = u // USERS_PER_GROUP
        own = np.arange(g * ITEMS_PER_GROUP, (g + 1) * ITEMS_PER_GROUP)
        train[u, own] = rng.integers(1, 4, own.size)
        held = rng.choice(own, HELD_OUT, replace=False)
        train[u, held] = 0.0
        test[u, held] = 1.0
        if rng.random() < 0.3:  # an off-block interaction
            other = rng.choice([h for h in range(GROUPS) if h != g])
            train[u, rng.integers(other * ITEMS_PER_GROUP, (other + 1) * ITEMS_PER_GROUP)] = 1.0
    return Board(
        train=sp.csr_matrix(train),
        test=sp.csr_matrix(test),
        user_group=np.arange(N_USERS, dtype=np.int64) // USERS_PER_GROUP,
        item_group=np.arange(N_ITEMS, dtype=np.int64) // ITEMS_PER_GROUP,
    )


@cache
def _fit(name: str, params_json: str) -> tuple[Recipe, Factors]:
    """One fit per configuration for the whole module (auto's search takes a few seconds)."""
    recipe = recipe_params(name, json.loads(params_json))
    return recipe, recipe.fit(_board().train)


PERSONALIZED = [
    ("als", {}),
    ("als", {"factors": 4, "regularization": 1.0}),
    ("ease", {}),
    ("ease", {"rank": 4}),  # four singular directions are enough for four blocks
    ("sims", {}),
    ("sims", {"neighbours": 11, "rank": 8}),
    ("auto", {}),
]
EVERY = [*PERSONALIZED, ("popularity", {}), ("trending", {}), ("trending", {"half_life_days": 1})]


def _id(case: tuple[str, dict[str, Any]]) -> str:
    return case[0] + (json.dumps(case[1], sort_keys=True) if case[1] else "")


def test_the_cases_cover_every_recipe() -> None:
    # semantic ranks by item texts, which a checkerboard lacks (tests/unit/test_text.py)
    assert {name for name, _ in EVERY} == RECIPES - {"semantic"}


def test_the_board_is_what_it_claims() -> None:
    b = _board()
    assert b.train.multiply(b.test).nnz == 0
    assert np.diff(b.test.indptr).tolist() == [HELD_OUT] * N_USERS
    test_rows, test_cols = b.test.nonzero()
    assert (b.item_group[test_cols] == b.user_group[test_rows]).all()
    off = b.train.nonzero()
    off_block = b.item_group[off[1]] != b.user_group[off[0]]
    assert 0 < off_block.sum() < N_USERS  # a few, at most one per user
    for u in range(N_USERS):  # in-block: all items of the group, in train or in test
        in_block = (b.train[u] + b.test[u]).toarray().ravel()[b.item_group == b.user_group[u]]
        assert (in_block > 0).all()
    assert len(np.unique(b.train.data)) == 3  # weighted, not binary


@pytest.mark.parametrize("case", PERSONALIZED, ids=_id)
def test_personalized_top_k_is_the_users_own_held_out_group(
    case: tuple[str, dict[str, Any]],
) -> None:
    b = _board()
    _, f = _fit(case[0], json.dumps(case[1]))
    users = np.arange(N_USERS, dtype=np.int64)
    recs = top_k(f, b.train, users, K)
    assert (recs >= 0).all()
    assert (b.item_group[recs] == b.user_group[:, None]).all(), recs
    seen = b.train.toarray() > 0
    assert not np.take_along_axis(seen, recs, axis=1).any()  # nothing already seen


@pytest.mark.parametrize("case", PERSONALIZED, ids=_id)
def test_personalized_precision_is_near_the_maximum(case: tuple[str, dict[str, Any]]) -> None:
    b = _board()
    _, f = _fit(case[0], json.dumps(case[1]))
    m = ranking_metrics(f, b.train, b.test)
    best = float(np.mean(np.minimum(np.diff(b.test.indptr), K) / K))
    assert best == 1.0
    assert m["users_evaluated"] == N_USERS
    assert m["precision@5"] >= best - 0.02, m
    assert m["recall@5"] >= 0.98 and m["ndcg@5"] >= 0.98, m
    assert m["mrr@25"] >= 0.98, m
    # popularity knows nothing of the blocks: far from the maximum
    assert ranking_metrics(Popularity().fit(b.train), b.train, b.test)["precision@5"] < 0.5


@pytest.mark.parametrize("case", [c for c in EVERY if c[0] in ("popularity", "trending")], ids=_id)
def test_popularity_and_trending_rank_every_user_by_weighted_count(
    case: tuple[str, dict[str, Any]],
) -> None:
    b = _board()
    _, f = _fit(case[0], json.dumps(case[1]))
    counts = np.asarray(b.train.sum(axis=0)).ravel()
    np.testing.assert_allclose(f.items.ravel(), counts / counts.max(), rtol=1e-6)
    assert (f.users == 1.0).all()
    users = np.arange(N_USERS, dtype=np.int64)
    recs = top_k(f, b.train, users, K)
    seen = b.train.toarray() > 0
    for u in users:
        assert not seen[u, recs[u]].any()
        # the K heaviest unseen items, heaviest first, ties by item index
        unseen = np.flatnonzero(~seen[u])
        best = unseen[np.lexsort((unseen, -counts[unseen]))][:K]
        assert recs[u].tolist() == best.tolist(), u


def test_trending_reads_events_with_its_half_life() -> None:
    assert Trending().data_options() == {"recency_half_life_days": 7.0}
    t = recipe_params("trending", {"half_life_days": 0.5})
    assert isinstance(t, Trending)
    assert t.data_options() == {"recency_half_life_days": 0.5}
    assert t.params() == {"half_life_days": 0.5}


def _expected_dims(recipe: Recipe) -> int:
    if isinstance(recipe, Als):
        return recipe.factors
    if isinstance(recipe, Ease | Sims):
        return min(recipe.rank, N_ITEMS)
    if isinstance(recipe, Auto):
        assert recipe.chosen is not None
        return _expected_dims(recipe_params(recipe.chosen["recipe"], recipe.chosen["params"]))
    return 1


@pytest.mark.parametrize("case", EVERY, ids=_id)
def test_factors_shapes_dtypes_and_finiteness(case: tuple[str, dict[str, Any]]) -> None:
    recipe, f = _fit(case[0], json.dumps(case[1]))
    d = _expected_dims(recipe)
    assert f.users.shape == (N_USERS, d) and f.items.shape == (N_ITEMS, d)
    assert f.users.dtype == np.float32 and f.items.dtype == np.float32
    assert np.isfinite(f.users).all() and np.isfinite(f.items).all()
    f.check()


# --- auto -------------------------------------------------------------------------------


def test_auto_picks_a_personalized_recipe_and_records_its_trials() -> None:
    recipe, _ = _fit("auto", "{}")
    assert isinstance(recipe, Auto)
    p = recipe.params()
    assert set(p) == {"validation", "seed", "time_budget_seconds", "chosen", "trials"}
    trials = p["trials"]
    assert [t["recipe"] for t in trials] == [name for name, _ in CANDIDATES]
    for t, (name, given) in zip(trials, CANDIDATES, strict=True):
        assert set(t) == {"recipe", "params", "ndcg@10", "precision@10", "seconds"}
        assert 0.0 <= t["ndcg@10"] <= 1.0 and 0.0 <= t["precision@10"] <= 1.0
        assert t["params"] == recipe_params(name, given).params()  # the full parameters
    best = max(trials, key=lambda t: t["ndcg@10"])
    assert p["chosen"] == {"recipe": best["recipe"], "params": best["params"]}
    assert p["chosen"]["recipe"] in ("als", "ease", "sims")
    pop = next(t for t in trials if t["recipe"] == "popularity")
    assert best["ndcg@10"] > pop["ndcg@10"] + 0.2
    json.dumps(p)  # stored as jsonb in pyrec.model_versions


def test_auto_search_uses_its_own_validation_split_not_the_test_items() -> None:
    """The trials score the candidates on a split of the matrix auto is given."""
    b = _board()
    from pyrec_pg.ml.evaluation import split_random_per_user

    auto = Auto(candidates=[["ease", {}], ["popularity", {}]], validation=0.3, seed=4)
    auto.fit(b.train)
    train, valid = split_random_per_user(b.train, 0.3, 4)
    for t in auto.trials:
        f = recipe_params(t["recipe"], t["params"]).fit(train)
        expected = ranking_metrics(f, train, valid, ks=(10,))
        assert t["ndcg@10"] == expected["ndcg@10"] and t["precision@10"] == expected["precision@10"]


def test_auto_second_fit_reuses_the_choice() -> None:
    b = _board()
    auto = Auto(candidates=[["als", {"factors": 4, "regularization": 1.0}], ["popularity", {}]])
    first = auto.fit(b.train)
    chosen, trials = auto.chosen, [dict(t) for t in auto.trials]
    assert chosen is not None and chosen["recipe"] == "als" and len(trials) == 2
    other = sp.csr_matrix(b.train[:, np.arange(N_ITEMS)[::-1]])  # another matrix: no new search
    second = auto.fit(other)
    assert auto.chosen == chosen and auto.trials == trials
    direct = Als(factors=4, regularization=1.0).fit(other)
    assert np.array_equal(second.users, direct.users)
    assert np.array_equal(second.items, direct.items)
    assert np.array_equal(auto.fit(b.train).items, first.items)


def test_auto_time_budget_skips_the_remaining_candidates() -> None:
    auto = Auto(
        candidates=[["ease", {"rank": 4}], ["als", {}], ["sims", {}]], time_budget_seconds=1e-9
    )
    auto.fit(_board().train)
    assert "ndcg@10" in auto.trials[0]  # the first candidate always runs
    assert auto.trials[1:] == [
        {"recipe": "als", "params": {}, "skipped": "time budget"},
        {"recipe": "sims", "params": {}, "skipped": "time budget"},
    ]
    assert auto.chosen == {"recipe": "ease", "params": {"regularization": 500.0, "rank": 4}}


def test_auto_from_params() -> None:
    auto = recipe_params(
        "auto", {"validation": 0.3, "seed": 2, "candidates": [["sims", {"shrink": 0}]]}
    )
    assert isinstance(auto, Auto)
    assert (auto.validation, auto.seed, auto.candidates) == (0.3, 2, [["sims", {"shrink": 0}]])
    assert auto.params()["chosen"] is None and auto.params()["trials"] == []
    default = recipe_params("auto", {})
    assert isinstance(default, Auto)
    assert default.candidates == [list(c) for c in CANDIDATES]
    default.candidates.append(["popularity", {}])  # instances do not share the list
    again = recipe_params("auto", {})
    assert isinstance(again, Auto) and len(again.candidates) == len(CANDIDATES)


@pytest.mark.parametrize(
    ("candidates", "words", "hint"),
    [
        ("als", "parameter candidates of recipe auto must be a list", "e.g."),
        ({"als": {}}, "must be a list", "e.g."),
        ([], "must be a list", "e.g."),
        (["als"], "bad candidate 'als' for recipe auto", "als, ease, popularity, sims"),
        ([["als"]], "bad candidate ['als']", "[recipe, params] pairs"),
        ([["als", {}, {}]], "bad candidate", "[recipe, params] pairs"),
        ([["als", []]], "bad candidate ['als', []]", "[recipe, params] pairs"),
        ([["svd", {}]], "bad candidate ['svd', {}]", "recipe one of"),
        ([["auto", {}]], "bad candidate ['auto', {}]", "recipe one of"),
        ([["trending", {}]], "bad candidate ['trending', {}]", "recipe one of"),
        ([["ease", {}], ["als", {"factors": 0}]], '"factors" of recipe als is out of range', "1"),
        ([["sims", {"k": 3}]], 'unknown parameter "k" for recipe sims', "neighbours"),
    ],
)
def test_auto_rejects_bad_candidates(candidates: Any, words: str, hint: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        recipe_params("auto", {"candidates": candidates})
    assert words in info.value.message
    assert info.value.sqlstate == "22023"
    assert info.value.hint is not None and hint in info.value.hint


@pytest.mark.parametrize("key", ["chosen", "trials"])
def test_auto_rejects_its_recorded_outputs_as_parameters(key: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        recipe_params("auto", {key: None})
    assert info.value.message == f'unknown parameter "{key}" for recipe auto'
    assert (
        info.value.hint == "parameters of auto: validation, seed, time_budget_seconds, candidates"
    )


def test_auto_unknown_parameter_hint_lists_only_accepted_parameters() -> None:
    with pytest.raises(InvalidParameter) as info:
        recipe_params("auto", {"budget": 1})
    assert (
        info.value.hint == "parameters of auto: validation, seed, time_budget_seconds, candidates"
    )


def test_auto_rejects_a_negative_seed_up_front() -> None:
    with pytest.raises(InvalidParameter):
        recipe_params("auto", {"seed": -1, "candidates": [["popularity", {}]]})


# --- parameter validation of every recipe ----------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "params", "words", "hint"),
    [
        ("als", {"rank": 8}, 'unknown parameter "rank" for recipe als', "factors"),
        ("als", {"factors": 2000}, '"factors" of recipe als is out of range: 2000', "1024"),
        ("ease", {"regularization": 0}, '"regularization" of recipe ease is out of range', "pos"),
        ("ease", {"regularization": -5.0}, "out of range: -5.0", "positive"),
        ("ease", {"regularization": 1e10}, "out of range", "positive"),
        ("ease", {"rank": 0}, '"rank" of recipe ease is out of range: 0', "between 1 and 2000"),
        ("ease", {"rank": 2001}, "out of range: 2001", "pgvector"),
        ("ease", {"rank": 8.5}, 'parameter "rank" of recipe ease must be an integer', "8.5"),
        ("ease", {"regularization": "500"}, "must be a number", "'500'"),
        ("ease", {"factors": 8}, 'unknown parameter "factors" for recipe ease', "rank"),
        ("sims", {"neighbours": 0}, "parameters of recipe sims are out of range", "neighbours"),
        ("sims", {"neighbours": 10_001}, "out of range", "between 1 and 10000"),
        ("sims", {"shrink": -1}, "out of range", "shrink between 0 and 1e6"),
        ("sims", {"rank": 0}, '"rank" of recipe sims is out of range: 0', "2000"),
        ("sims", {"neighbours": True}, '"neighbours" of recipe sims must be an integer', "True"),
        ("sims", {"regularization": 1}, 'unknown parameter "regularization"', "shrink"),
        ("popularity", {"half_life_days": 7}, "unknown parameter", "none"),
        ("trending", {"half_life_days": 0}, '"half_life_days" of recipe trending is out of', "pos"),
        ("trending", {"half_life_days": -1}, "out of range: -1", "days"),
        ("trending", {"half_life_days": 36_501}, "out of range", "days"),
        ("trending", {"half_life_days": "7"}, "must be a number", "'7'"),
        ("trending", {"window": 7}, 'unknown parameter "window" for recipe trending', "half"),
        ("auto", {"validation": 0}, "parameters of recipe auto are out of range", "(0, 1)"),
        ("auto", {"validation": 1}, "out of range", "validation is a fraction"),
        ("auto", {"time_budget_seconds": 0}, "out of range", "positive"),
        ("auto", {"seed": 1.5}, 'parameter "seed" of recipe auto must be an integer', "1.5"),
        ("auto", {"budget": 1}, 'unknown parameter "budget" for recipe auto', "time_budget"),
        (
            "knn",
            {},
            'unknown recipe "knn"',
            "als, auto, ease, popularity, semantic, sims, trending",
        ),
    ],
)
def test_recipe_parameter_errors(
    recipe: str, params: dict[str, Any], words: str, hint: str
) -> None:
    with pytest.raises(InvalidParameter) as info:
        recipe_params(recipe, params)
    assert words in info.value.message, info.value.message
    assert info.value.sqlstate == "22023"
    assert info.value.hint is not None and hint in info.value.hint, info.value.hint


@pytest.mark.parametrize(
    ("recipe", "params", "cls"),
    [
        ("als", {"factors": 1, "regularization": 0}, Als),
        ("ease", {"regularization": 1e9, "rank": 2000}, Ease),
        ("sims", {"neighbours": 10_000, "shrink": 0, "rank": 1}, Sims),
        ("popularity", {}, Popularity),
        ("trending", {"half_life_days": 36_500}, Trending),
        ("auto", {"validation": 0.99, "time_budget_seconds": 0.001}, Auto),
    ],
)
def test_boundary_parameters_are_accepted(recipe: str, params: dict[str, Any], cls: type) -> None:
    r = recipe_params(recipe, params)
    assert isinstance(r, cls)
    for key, value in params.items():
        assert r.params()[key] == value


# --- EASE, item similarity and the low-rank serving --------------------------------------


def test_ease_closed_form_by_hand() -> None:
    # X'X = [[2, 1], [1, 2]]; + I = [[3, 1], [1, 3]]; P = [[3, -1], [-1, 3]] / 8
    # B = I - P diag(1 / diag P) = I - [[1, -1/3], [-1/3, 1]] = [[0, 1/3], [1/3, 0]]
    x = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(
        Ease(regularization=1.0).weights(x), [[0.0, 1 / 3], [1 / 3, 0.0]], atol=1e-12
    )


def test_ease_weights_match_the_closed_form_and_the_constrained_regression() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((9, 5)) < 0.5).astype(np.float64)
    lam = 2.5
    b = Ease(regularization=lam).weights(sp.csr_matrix(x))
    assert np.array_equal(np.diag(b), np.zeros(5))
    g = x.T @ x
    p = np.linalg.inv(g + lam * np.eye(5))
    np.testing.assert_allclose(b, np.eye(5) - p @ np.diag(1.0 / np.diag(p)), atol=1e-12)
    # column j: ridge regression of item j on the other items (Steck 2019, eq. 2)
    for j in range(5):
        rest = [i for i in range(5) if i != j]
        col = np.linalg.solve(g[np.ix_(rest, rest)] + lam * np.eye(4), g[rest, j])
        np.testing.assert_allclose(b[rest, j], col, atol=1e-10)


def test_ease_fit_binarizes_and_full_rank_serves_x_times_b_exactly() -> None:
    b = _board()
    ease = Ease(rank=N_ITEMS)
    x = (b.train > 0).astype(np.float64)
    f = ease.fit(b.train)
    assert f.users.shape == (N_USERS, N_ITEMS)
    expected = x @ ease.weights(sp.csr_matrix(x))
    got = f.users.astype(np.float64) @ f.items.T.astype(np.float64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    weighted_same = ease.fit(b.train * 7.0)  # weights do not matter, only the pattern
    np.testing.assert_array_equal(weighted_same.users, f.users)


def test_sims_weights_are_shrunk_cosine_without_self_similarity() -> None:
    rng = np.random.default_rng(5)
    x = (rng.random((12, 6)) < 0.5).astype(np.float64)
    x[0] = 1.0  # no empty item column
    sim = Sims(shrink=3.0).weights(sp.csr_matrix(x))
    g = x.T @ x
    for i in range(6):
        for j in range(6):
            want = 0.0 if i == j else g[i, j] / (np.sqrt(g[i, i] * g[j, j]) + 3.0)
            assert sim[i, j] == pytest.approx(want, abs=1e-12)
    kept = Sims(neighbours=2, shrink=3.0).weights(sp.csr_matrix(x))
    for j in range(6):  # each item keeps (at least, with ties) its two strongest neighbours
        top2 = np.sort(sim[:, j])[-2]
        want = np.flatnonzero((sim[:, j] >= top2) & (sim[:, j] != 0))
        assert np.flatnonzero(kept[:, j]).tolist() == want.tolist()
        assert np.array_equal(kept[want, j], sim[want, j])


def _low_rank_matrix(n: int, r: int, seed: int) -> F64:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, r)) @ rng.standard_normal((r, n))


@pytest.mark.parametrize("seed", [0, 7])
def test_randomized_svd_agrees_with_numpy_on_a_low_rank_matrix(seed: int) -> None:
    n, r = 120, 6
    b = _low_rank_matrix(n, r, seed)
    assert r * 3 < n  # the randomized path
    u, s, vt = svd(b, r, seed=seed)
    assert u.shape == (n, r) and s.shape == (r,) and vt.shape == (r, n)
    full_u, full_s, full_vt = np.linalg.svd(b)
    np.testing.assert_allclose(s, full_s[:r], rtol=1e-9)
    scale = np.abs(b).max()
    np.testing.assert_allclose((u * s) @ vt, b, atol=1e-9 * scale)
    np.testing.assert_allclose(
        (u * s) @ vt, (full_u[:, :r] * full_s[:r]) @ full_vt[:r], atol=1e-9 * scale
    )
    np.testing.assert_allclose(u.T @ u, np.eye(r), atol=1e-10)
    np.testing.assert_allclose(vt @ vt.T, np.eye(r), atol=1e-10)


def test_randomized_svd_finds_the_top_of_a_decaying_spectrum() -> None:
    rng = np.random.default_rng(1)
    n = 150
    q1 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    q2 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    spectrum = 0.8 ** np.arange(n)
    b = (q1 * spectrum) @ q2.T
    u, s, vt = svd(b, 10)
    np.testing.assert_allclose(s, spectrum[:10], rtol=1e-8)
    best = (q1[:, :10] * spectrum[:10]) @ q2[:, :10].T  # Eckart-Young: the best rank-10
    np.testing.assert_allclose((u * s) @ vt, best, atol=1e-8)


def test_full_svd_path_for_large_ranks() -> None:
    b = _low_rank_matrix(30, 12, 2)
    u, s, vt = svd(b, 10)  # 10 * 3 >= 30: numpy's own SVD, truncated
    full_u, full_s, full_vt = np.linalg.svd(b, full_matrices=False)
    np.testing.assert_array_equal(s, full_s[:10])
    np.testing.assert_array_equal(u, full_u[:, :10])
    np.testing.assert_array_equal(vt, full_vt[:10])


def test_low_rank_serves_the_rank_r_approximation_of_x_b() -> None:
    rng = np.random.default_rng(4)
    x = sp.csr_matrix((rng.random((20, 90)) < 0.2).astype(np.float64))
    b = _low_rank_matrix(90, 5, 9)
    f = low_rank(x, b, 5)
    assert f.users.dtype == np.float32 and f.items.dtype == np.float32
    assert f.users.shape == (20, 5) and f.items.shape == (90, 5)
    got = f.users.astype(np.float64) @ f.items.T.astype(np.float64)
    want = np.asarray(x.toarray() @ b)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    big = low_rank(x, b, 500)  # rank above the number of items: all of them
    assert big.items.shape == (90, 90)
