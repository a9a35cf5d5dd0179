"""Popularity recipe, Factors checks and pgvector text literals."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter, ModelFitError
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.recipes.popularity import Popularity, item_popularity
from pyrec_pg.store.codec import vector_literals

WEIGHTS = sp.csr_matrix(
    np.array(
        [
            [1.0, 0.0, 2.0, 0.0, 1.0],
            [1.0, 0.0, 3.0, 0.0, 0.0],
            [1.0, 1.0, 3.0, 0.0, 0.0],
        ]
    )
)  # item totals: 3, 1, 8, 0, 1


def test_item_popularity_is_scaled_to_unit_max() -> None:
    pop = item_popularity(WEIGHTS)
    assert pop.dtype == np.float32
    np.testing.assert_allclose(pop, np.array([3, 1, 8, 0, 1]) / 8, rtol=1e-6)
    assert pop.max() == 1.0 and pop.min() >= 0.0


def test_item_popularity_of_nothing_is_zero() -> None:
    assert item_popularity(sp.csr_matrix((2, 3))).tolist() == [0.0, 0.0, 0.0]
    assert item_popularity(sp.csr_matrix((2, 0))).size == 0


def test_popularity_fit_ranks_by_count_for_every_user() -> None:
    f = Popularity().fit(WEIGHTS)
    assert f.users.shape == (3, 1) and f.items.shape == (5, 1)
    assert f.users.dtype == np.float32 and f.items.dtype == np.float32
    assert (f.users == 1.0).all()
    scores = f.users @ f.items.T
    for row in scores:
        assert np.argsort(-row, kind="stable").tolist() == [2, 0, 1, 4, 3]


def test_popularity_takes_no_parameters() -> None:
    assert Popularity.from_params({}) == Popularity()
    assert Popularity().params() == {}
    with pytest.raises(InvalidParameter) as info:
        Popularity.from_params({"k": 1})
    assert info.value.hint == "parameters of popularity: none"


@pytest.mark.parametrize("side", ["users", "items"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_factors_check_rejects_non_finite_values(side: str, bad: float) -> None:
    users = np.ones((2, 3), dtype=np.float32)
    items = np.ones((4, 3), dtype=np.float32)
    (users if side == "users" else items)[1, 2] = bad
    with pytest.raises(ModelFitError) as info:
        Factors(users=users, items=items).check()
    assert info.value.sqlstate == "22000"
    assert f"non-finite {side[:-1]} factors" in info.value.message
    assert info.value.hint


def test_factors_check_accepts_finite_values() -> None:
    Factors(users=np.zeros((2, 3), np.float32), items=np.full((1, 3), -1e30, np.float32)).check()


def _strtof(text: str) -> np.float32:
    """C's strtof, as pgvector's vector_in parses each value (no rounding through double)."""
    libc = ctypes.CDLL(None)
    libc.strtof.restype, libc.strtof.argtypes = ctypes.c_float, [ctypes.c_char_p, ctypes.c_void_p]
    return np.float32(libc.strtof(text.encode(), None))


@pytest.mark.parametrize("rows", [1, 50, 4000])  # the %.9g path and the numpy path
def test_vector_literals_round_trip_float32_exactly(rows: int) -> None:
    rng = np.random.default_rng(rows)
    scale = 10.0 ** rng.integers(-45, 38, (rows, 7))
    with np.errstate(over="ignore"):
        m = (rng.normal(size=(rows, 7)) * scale).astype(np.float32)
    m[~np.isfinite(m)] = 1.0
    m[0] = [0.0, -0.0, 1.0, -1.0, 1e-45, 3.4028235e38, 0.1]  # extremes, subnormal, 0.1
    if rows > 1:
        m[1] = [1e-38, 9.99999994e-9, 1e9, 999999999.0, -1.17549435e-38, 100.0, 1e-45 * 3]
    lits = vector_literals(m)
    assert len(lits) == rows
    for literal in lits:
        assert literal.startswith("[") and literal.endswith("]") and " " not in literal
    back = np.array([[_strtof(x) for x in s[1:-1].split(",")] for s in lits], dtype=np.float32)
    assert np.array_equal(back.view(np.uint32), m.view(np.uint32))  # bit for bit


def test_vector_literal_text_form() -> None:
    assert vector_literals(np.array([[1.0, -0.5, 2.0]], dtype=np.float32)) == ["[1,-0.5,2]"]
    assert vector_literals(np.zeros((0, 3), dtype=np.float32)) == []
