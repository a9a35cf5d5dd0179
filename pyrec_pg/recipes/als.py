"""Implicit-feedback ALS (Hu, Koren, Volinsky 2008): weighted matrix factorization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import InvalidParameter
from .base import Factors, as_dict, parse_params

F64 = npt.NDArray[np.float64]
_BATCH = 256  # rows whose normal equations are solved in one batched LAPACK call


@dataclass(frozen=True)
class Als:
    """Confidence c_ui = 1 + alpha * w_ui on observed pairs, preference 1; 0 elsewhere."""

    name: ClassVar[str] = "als"
    factors: int = 64
    iterations: int = 15
    regularization: float = 5.0
    alpha: float = 2.0
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Als:
        return parse_params(cls, cls.name, params)

    def check(self) -> None:
        bounds = {
            "factors": (1, 1024, self.factors),
            "iterations": (1, 1000, self.iterations),
            "regularization": (0.0, 1e6, self.regularization),
            "alpha": (0.0, 1e6, self.alpha),
            "seed": (0, 2**31 - 1, self.seed),
        }
        for key, (lo, hi, value) in bounds.items():
            if not lo <= value <= hi:
                raise InvalidParameter(
                    f'parameter "{key}" of recipe als is out of range: {value}',
                    hint=f"{key} must be between {lo} and {hi}",
                )

    def params(self) -> dict[str, Any]:
        return as_dict(self)

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        c = sp.csr_matrix(confidence, dtype=np.float64) * self.alpha
        ct = sp.csr_matrix(c.T)
        rng = np.random.default_rng(self.seed)
        scale = 0.01
        users = rng.normal(0.0, scale, (c.shape[0], self.factors))
        items = rng.normal(0.0, scale, (c.shape[1], self.factors))
        for _ in range(self.iterations):
            users = least_squares(c, items, self.regularization)
            items = least_squares(ct, users, self.regularization)
        return Factors(users=users.astype(np.float32), items=items.astype(np.float32))


def least_squares(c: sp.csr_matrix, y: F64, reg: float) -> F64:
    """Solve each row's (Y'Y + Y'(C_u - I)Y + reg I) x = Y'C_u p_u, batched; c holds C - I."""
    n, f = c.shape[0], y.shape[1]
    base = y.T @ y + reg * np.eye(f)
    out = np.zeros((n, f))
    indptr, indices, data = c.indptr, c.indices, c.data
    rows = np.flatnonzero(np.diff(indptr))  # rows without interactions keep a zero vector
    for start in range(0, rows.size, _BATCH):
        batch = rows[start : start + _BATCH]
        a = np.empty((batch.size, f, f))
        b = np.empty((batch.size, f))
        for j, r in enumerate(batch):
            lo, hi = indptr[r], indptr[r + 1]
            yu = y[indices[lo:hi]]
            cu = data[lo:hi]
            a[j] = base + (yu.T * cu) @ yu
            b[j] = (1.0 + cu) @ yu
        out[batch] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
    return out
