"""Item-item recipes served as low-rank vectors: EASE (Steck 2019) and cosine item similarity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.recipes.base import Factors, as_dict, parse_params

F64 = npt.NDArray[np.float64]
MAX_ITEMS = 30_000  # the item-item matrix is dense: 30k items take 7.2 GB in float64


def _check_rank(recipe: str, rank: int) -> None:
    if not 1 <= rank <= 2000:
        raise InvalidParameter(
            f'parameter "rank" of recipe {recipe} is out of range: {rank}',
            hint="rank must be between 1 and 2000 (pgvector serves the vectors)",
        )


def _binary(x: sp.csr_matrix) -> sp.csr_matrix:
    b = sp.csr_matrix(x, dtype=np.float64, copy=True)
    b.data[:] = 1.0
    return b


def _dense_gram(x: sp.csr_matrix, recipe: str) -> F64:
    if x.shape[1] > MAX_ITEMS:
        raise InvalidParameter(
            f"recipe {recipe} handles up to {MAX_ITEMS} items, the data has {x.shape[1]}",
            hint="use recipe als for larger catalogs",
        )
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def svd(b: F64, rank: int, seed: int = 0) -> tuple[F64, F64, F64]:
    """The top-`rank` singular triplets; randomized (Halko et al. 2011) when rank is small."""
    n = b.shape[0]
    if rank * 3 >= n:
        u, s, vt = np.linalg.svd(b, full_matrices=False)
        return u[:, :rank], s[:rank], vt[:rank]
    sketch = b @ np.random.default_rng(seed).standard_normal((n, rank + 32))
    for _ in range(3):  # power iterations sharpen the spectrum
        sketch = b @ (b.T @ np.linalg.qr(sketch)[0])
    q = np.linalg.qr(sketch)[0]
    u_small, s, vt = np.linalg.svd(q.T @ b, full_matrices=False)
    return (q @ u_small)[:, :rank], s[:rank], vt[:rank]


def low_rank(x: sp.csr_matrix, b: F64, rank: int) -> Factors:
    """Serve scores X B through rank-r vectors: B ~ U S V', user = x U S, item = V."""
    r = min(rank, b.shape[0])
    u, s, vt = svd(b, r)
    item_vecs = vt.T
    history = (u * s).astype(np.float32)
    user_vecs = np.asarray(x @ history)
    return Factors(
        users=user_vecs.astype(np.float32),
        items=item_vecs.astype(np.float32),
        fold="sum",
        history=history,
    )


@dataclass(frozen=True)
class Ease:
    """B = I - P diag(1/diag P), P = (X'X + lambda I)^-1, diag(B) = 0 (Steck 2019)."""

    name: ClassVar[str] = "ease"
    # the best of a sweep on validation splits of MovieLens-100K's training parts
    # (bench/sweep_defaults.py; grid and result in docs/design.md, section 5)
    regularization: float = 500.0
    rank: int = 256

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Ease:
        return parse_params(cls, cls.name, params)

    def check(self) -> None:
        if not 0 < self.regularization <= 1e9:
            raise InvalidParameter(
                f'parameter "regularization" of recipe ease is out of range: {self.regularization}',
                hint="regularization must be positive (hundreds suit MovieLens-sized data)",
            )
        _check_rank(self.name, self.rank)

    def params(self) -> dict[str, Any]:
        return as_dict(self)

    def weights(self, x: sp.csr_matrix) -> F64:
        g = _dense_gram(x, self.name)
        g[np.diag_indices_from(g)] += self.regularization
        p = np.linalg.inv(g)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        return b

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        x = _binary(confidence)
        return low_rank(x, self.weights(x), self.rank)


@dataclass(frozen=True)
class Sims:
    """Item-item cosine similarity of co-occurrence (ItemKNN), the basis of similar items."""

    name: ClassVar[str] = "sims"
    neighbours: int = 100
    shrink: float = 10.0
    rank: int = 256

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Sims:
        return parse_params(cls, cls.name, params)

    def check(self) -> None:
        if not 1 <= self.neighbours <= 10_000 or not 0 <= self.shrink <= 1e6:
            raise InvalidParameter(
                "parameters of recipe sims are out of range",
                hint="neighbours between 1 and 10000, shrink between 0 and 1e6",
            )
        _check_rank(self.name, self.rank)

    def params(self) -> dict[str, Any]:
        return as_dict(self)

    def weights(self, x: sp.csr_matrix) -> F64:
        g = _dense_gram(x, self.name)
        norms = np.sqrt(np.diag(g))
        sim = g / (np.outer(norms, norms) + self.shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[0]:  # keep each item's strongest neighbours
            cut = np.partition(sim, -self.neighbours, axis=0)[-self.neighbours]
            sim[sim < cut] = 0.0
        return sim

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        x = _binary(confidence)
        return low_rank(x, self.weights(x), self.rank)
