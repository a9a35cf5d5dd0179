"""Implicit ALS: recovers block structure, solves the normal equations, validates parameters."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.recipes import als as als_module
from pyrec_pg.ml.recipes.als import Als, least_squares
from pyrec_pg.ml.registry import recipe_params

GROUP_USERS, GROUP_ITEMS = 20, 20


def _checkerboard(seed: int = 0) -> np.ndarray:
    """Two user groups, each with 14 of the 20 items of its own item group."""
    rng = np.random.default_rng(seed)
    m = np.zeros((2 * GROUP_USERS, 2 * GROUP_ITEMS))
    for u in range(2 * GROUP_USERS):
        g = u // GROUP_USERS
        m[u, rng.choice(np.arange(g * GROUP_ITEMS, (g + 1) * GROUP_ITEMS), 14, replace=False)] = 1
    return m


def test_als_recommends_unseen_items_of_the_users_own_group() -> None:
    m = _checkerboard()
    f = Als(factors=8, iterations=8).fit(sp.csr_matrix(m))
    assert f.users.dtype == np.float32 and f.items.dtype == np.float32
    assert f.users.shape == (2 * GROUP_USERS, 8)
    assert f.items.shape == (2 * GROUP_ITEMS, 8)
    assert np.isfinite(f.users).all() and np.isfinite(f.items).all()
    f.check()
    scores = f.users.astype(np.float64) @ f.items.T.astype(np.float64)
    scores[m > 0] = -np.inf
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    for u in range(2 * GROUP_USERS):
        assert (top5[u] // GROUP_ITEMS == u // GROUP_USERS).all(), (u, top5[u])


def test_als_fit_is_deterministic_per_seed() -> None:
    c = sp.csr_matrix(_checkerboard())
    a = Als(factors=4, iterations=2, seed=5).fit(c)
    b = Als(factors=4, iterations=2, seed=5).fit(c)
    other = Als(factors=4, iterations=2, seed=6).fit(c)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
    assert not np.array_equal(a.users, other.users)


def _problem(seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """c (users x items) holding alpha * w on observed pairs, warm start x, item factors y."""
    rng = np.random.default_rng(seed)
    n_users, n_items, f = 7, 9, 4
    mask = rng.random((n_users, n_items)) < 0.4
    mask[3] = False  # a user without interactions in the middle
    mask[-2:] = False  # and two at the end
    mask[0, :3] = True
    c = sp.csr_matrix(np.where(mask, 2.0 * rng.integers(1, 5, mask.shape), 0.0))
    return c, rng.normal(size=(n_users, f)), rng.normal(size=(n_items, f))


def _exact(c: sp.csr_matrix, y: np.ndarray, reg: float) -> np.ndarray:
    """Row by row: (Y'Y + Y'(C_u - I)Y + reg I) x = Y' C_u p_u, with C_u - I = diag(c_u)."""
    f = y.shape[1]
    dense = c.toarray()
    out = np.empty((c.shape[0], f))
    for u, cu in enumerate(dense):
        a = y.T @ y + y.T @ np.diag(cu) @ y + reg * np.eye(f)
        p = (cu > 0).astype(np.float64)
        b = y.T @ ((1.0 + cu) * p)
        out[u] = np.linalg.solve(a, b)
    return out


def test_least_squares_with_many_cg_steps_solves_the_normal_equations() -> None:
    c, x, y = _problem()
    reg = 0.5
    got = least_squares(c, x, y, reg, 50)
    np.testing.assert_allclose(got, _exact(c, y, reg), rtol=1e-7, atol=1e-9)
    assert np.allclose(got[[3, 5, 6]], 0.0)  # no interactions: the solution is 0


def test_least_squares_few_steps_is_not_yet_exact() -> None:
    # guards the exactness test above: the warm start is far from the solution
    c, x, y = _problem()
    assert not np.allclose(least_squares(c, x, y, 0.5, 1), _exact(c, y, 0.5), atol=1e-3)


def test_least_squares_row_blocks_cover_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    c, x, y = _problem(seed=2)
    whole = least_squares(c, x, y, 1.0, 2)
    # block sizes dividing nnz once left the trailing empty rows unwritten
    for size in (1, 2, 3, c.nnz):
        monkeypatch.setattr(als_module, "_NNZ_PER_BLOCK", size)
        np.testing.assert_allclose(least_squares(c, x, y, 1.0, 2), whole, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"rank": 8}, 'unknown parameter "rank"'),
        ({"factors": True}, 'parameter "factors" of recipe als must be an integer'),
        ({"factors": "8"}, "must be an integer"),
        ({"factors": 8.0}, "must be an integer"),
        ({"alpha": "2"}, 'parameter "alpha" of recipe als must be a number'),
        ({"alpha": False}, "must be a number"),
        ({"regularization": None}, "must be a number"),
        ({"factors": 0}, 'parameter "factors" of recipe als is out of range: 0'),
        ({"factors": 1025}, "out of range"),
        ({"iterations": 0}, "out of range"),
        ({"regularization": -0.1}, "out of range"),
        ({"alpha": 1e7}, "out of range"),
        ({"cg_steps": 101}, "out of range"),
        ({"seed": -1}, "out of range"),
    ],
)
def test_from_params_rejects_bad_parameters(params: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        Als.from_params(params)
    e = info.value
    assert words in e.message
    assert e.sqlstate == "22023"
    assert e.hint


def test_from_params_hints() -> None:
    with pytest.raises(InvalidParameter) as info:
        Als.from_params({"rank": 8})
    assert info.value.hint is not None and "factors" in info.value.hint
    with pytest.raises(InvalidParameter) as info:
        Als.from_params({"factors": 0})
    assert info.value.hint == "factors must be between 1 and 1024"
    with pytest.raises(InvalidParameter) as info:
        Als.from_params({"factors": "8"})
    assert info.value.hint == "got '8'"


def test_from_params_accepts_valid_values() -> None:
    a = Als.from_params({"factors": 16, "alpha": 1, "regularization": 0.5, "cg_steps": 100})
    assert a == Als(factors=16, alpha=1, regularization=0.5, cg_steps=100)
    assert a.params() == {
        "factors": 16,
        "iterations": 15,
        "regularization": 0.5,
        "alpha": 1,
        "cg_steps": 100,
        "seed": 0,
        "threads": 0,
        "fold_in_regularization": 10.0,
    }
    assert Als.from_params({}) == Als()
    with pytest.raises(InvalidParameter, match="unknown parameter"):
        Als.from_params({"engine": "numpy"})  # internal, not a user parameter


@pytest.mark.parametrize("threads", [1, 2])
def test_implicit_engine_fits_the_same_objective_as_numpy(threads: int) -> None:
    c = sp.csr_matrix(_checkerboard(3) * 2.0)
    fast = replace(Als(factors=6, iterations=6, threads=threads), engine="implicit").fit(c)
    slow = replace(Als(factors=6, iterations=6), engine="numpy").fit(c)
    np.testing.assert_allclose(fast.users, slow.users, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(fast.items, slow.items, rtol=2e-3, atol=2e-4)


def test_numpy_engine_serves_when_implicit_does_not_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)  # import now raises ImportError
    c = sp.csr_matrix(_checkerboard())
    got = Als(factors=4, iterations=2).fit(c)
    want = replace(Als(factors=4, iterations=2), engine="numpy").fit(c)
    assert np.array_equal(got.users, want.users)
    with pytest.raises(ImportError):
        replace(Als(factors=4, iterations=2), engine="implicit").fit(c)


def test_recipe_params_names_known_recipes() -> None:
    assert isinstance(recipe_params("als", {"factors": 4}), Als)
    with pytest.raises(InvalidParameter) as info:
        recipe_params("svd", {})
    assert info.value.hint == "recipes are: als, auto, ease, popularity, semantic, sims, trending"
