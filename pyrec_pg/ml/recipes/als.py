"""Implicit-feedback ALS (Hu, Koren, Volinsky 2008): weighted matrix factorization."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.memory import release
from pyrec_pg.ml.recipes.base import Factors, as_dict, parse_params

F64 = npt.NDArray[np.floating[Any]]
_ROWS_PER_DRAW = 65_536  # rows of the random start drawn at a time (float64 before the cast)
_NNZ_PER_BLOCK = 500_000  # interactions per vectorized block: bounds memory to ~f * 8 * this


@dataclass(frozen=True)
class Als:
    """Confidence c_ui = 1 + alpha * w_ui on observed pairs, preference 1; 0 elsewhere."""

    name: ClassVar[str] = "als"
    factors: int = 64
    iterations: int = 15
    # regularization and alpha: the best of a sweep on validation splits of MovieLens-100K's
    # training parts (bench/sweep_defaults.py; grid and result in docs/design.md, section 5)
    regularization: float = 30.0
    alpha: float = 2.0
    cg_steps: int = 3
    seed: int = 0
    threads: int = 0  # 0: every core; implicit's solver runs this many threads
    # serving's fold-in of history the version has not seen (new users, new events). Lower
    # than training's: on MovieLens users cut to 3 events it trades ndcg@10 0.626 -> 0.599
    # for recommendations that follow those events (6 of 10 horror/thriller after 3 horror
    # films, 4 at 30)
    fold_in_regularization: float = 10.0
    # "implicit" when its compiled solver imports (the fast path), else numpy's CG below
    engine: str = field(default="auto", metadata={"internal": True})

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Als:
        return parse_params(cls, cls.name, params)

    def check(self) -> None:
        bounds = {
            "factors": (1, 1024, self.factors),
            "iterations": (1, 1000, self.iterations),
            "regularization": (0.0, 1e6, self.regularization),
            "alpha": (0.0, 1e6, self.alpha),
            "cg_steps": (1, 100, self.cg_steps),
            "seed": (0, 2**31 - 1, self.seed),
            "threads": (0, 256, self.threads),
            "fold_in_regularization": (0.0, 1e6, self.fold_in_regularization),
        }
        for key, (lo, hi, value) in bounds.items():
            if not lo <= value <= hi:
                raise InvalidParameter(
                    f'parameter "{key}" of recipe als is out of range: {value}',
                    hint=f"{key} must be between {lo} and {hi}",
                )

    def params(self) -> dict[str, Any]:
        out = as_dict(self)
        out.pop("engine")
        return out

    def fit(self, confidence: sp.csr_matrix, init: Factors | None = None) -> Factors:
        """Fit from a random start, or continue from `init` (a warm start: the previous
        version's vectors, rows aligned with this matrix; zeros rows for newcomers)."""
        fitted = self._fit_implicit(confidence, init) if self.engine != "numpy" else None
        if fitted is None:
            fitted = self._fit_numpy(confidence, init)
        return self.foldable(fitted)

    def foldable(self, fitted: Factors) -> Factors:
        """`fitted` with what serving's fold-in needs: it folds new history in with one solve
        against (Y'Y + reg I), computed here once."""
        y = fitted.items.astype(np.float64)
        gram = y.T @ y + self.fold_in_regularization * np.eye(self.factors)
        return replace(
            fitted,
            fold="least_squares",
            fold_state={"alpha": self.alpha, "gram": gram.tolist()},
        )

    @staticmethod
    def recalculate_user(
        gram: F64, item_vectors: F64, weights: F64, alpha: float
    ) -> npt.NDArray[np.float64]:
        """A user's vector from their history (the fold-in serving does, as implicit's
        recalculate_user): `gram` is the version's Y'Y + reg I (fold_state), `item_vectors` the
        vectors of the user's items and `weights` their summed event weights. It solves
        argmin_x sum_i c_i (1 - x.y_i)^2 + sum_others (x.y_j)^2 + reg |x|^2, c = 1 + alpha w:
        (Y'Y + reg I + Y_u' (C - I) Y_u) x = Y_u' c."""
        c = 1.0 + alpha * weights
        a = gram + (item_vectors.T * (c - 1.0)) @ item_vectors
        return np.asarray(np.linalg.solve(a, item_vectors.T @ c), dtype=np.float64)

    def _initial(self, shape: tuple[int, int], init: Factors | None) -> tuple[F64, F64]:
        rng = np.random.default_rng(self.seed)
        users, items = (_normal(rng, n, self.factors) for n in shape)
        if init is not None:  # keep the random start only where init has no vector
            for start, given in ((users, init.users), (items, init.items)):
                have = np.any(given != 0, axis=1)
                start[have] = given[have]
        return users, items

    def _fit_implicit(self, confidence: sp.csr_matrix, init: Factors | None) -> Factors | None:
        """implicit's multithreaded CG solver (Cython), the same objective as _fit_numpy."""
        try:
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
        except ImportError:
            if self.engine == "implicit":
                raise
            return None
        # implicit takes the matrix value as the confidence c itself (cpu/_als.pyx); c shares
        # the matrix's structure (indices, indptr): only its values are new
        values = confidence.data.astype(np.float32)  # a copy: the caller's matrix stays
        values *= np.float32(self.alpha)
        values += np.float32(1.0)
        c = sp.csr_matrix(
            (values, confidence.indices, confidence.indptr), shape=confidence.shape, copy=False
        )
        # its threads each call BLAS: a multithreaded BLAS underneath would oversubscribe
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                use_cg=True,
                num_threads=self.threads or (os.cpu_count() or 1),
                random_state=self.seed,
            )
            model.cg_steps = self.cg_steps  # not a constructor argument in 0.7
            # implicit's own start (uniform, all positive) needs more sweeps to break symmetry
            model.user_factors, model.item_factors = self._initial(c.shape, init)
            model.fit(c, show_progress=False)
        fitted = Factors(
            users=np.ascontiguousarray(model.user_factors, dtype=np.float32),
            items=np.ascontiguousarray(model.item_factors, dtype=np.float32),
        )
        del c, model
        release()  # the solver's transposed copy and the confidences are freed by now
        return fitted

    def _fit_numpy(self, confidence: sp.csr_matrix, init: Factors | None) -> Factors:
        # float32 halves memory traffic; CG's few steps per sweep do not need float64
        c = sp.csr_matrix(confidence, dtype=np.float32) * np.float32(self.alpha)
        ct = sp.csr_matrix(c.T)
        users, items = self._initial(c.shape, init)
        for _ in range(self.iterations):
            users = least_squares(c, users, items, self.regularization, self.cg_steps)
            items = least_squares(ct, items, users, self.regularization, self.cg_steps)
        return Factors(users=users.astype(np.float32), items=items.astype(np.float32))


def _normal(rng: np.random.Generator, rows: int, cols: int) -> npt.NDArray[np.float32]:
    """rng.normal(0, 0.01, (rows, cols)) as float32, drawn in blocks of rows: the same values
    (the generator's stream is consumed in order), without a float64 copy of the whole."""
    out = np.empty((rows, cols), dtype=np.float32)
    for lo in range(0, rows, _ROWS_PER_DRAW):
        hi = min(rows, lo + _ROWS_PER_DRAW)
        out[lo:hi] = rng.normal(0.0, 0.01, (hi - lo, cols))
    return out


def least_squares(c: sp.csr_matrix, x: F64, y: F64, reg: float, steps: int) -> F64:
    """Update each row x_u toward (Y'Y + Y'(C_u - I)Y + reg I)^-1 Y'C_u p_u; c holds C - I.

    Conjugate gradient warm-started from the current x, vectorized over blocks of rows
    (implicit's CG solver): each step costs O(nnz * f), with no per-row Python loop.
    """
    n, f = c.shape[0], y.shape[1]
    gram = y.T @ y + np.float32(reg) * np.eye(f, dtype=y.dtype)
    out = np.empty_like(x)
    indptr = c.indptr
    # row blocks of about _NNZ_PER_BLOCK interactions; the last block ends at the last row
    bounds = np.searchsorted(indptr, np.arange(0, c.nnz, _NNZ_PER_BLOCK))
    starts = np.unique(np.concatenate(([0], np.minimum(bounds, n), [n])))
    for lo, hi in itertools.pairwise(starts.tolist()):
        block = c[lo:hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(block.indptr))
        yc = y[block.indices]  # (nnz, f) item vectors of each interaction

        def apply(p: F64, block: sp.csr_matrix = block, rows: F64 = rows, yc: F64 = yc) -> F64:
            s = np.einsum("ij,ij->i", yc, p[rows]) * block.data
            return p @ gram + sp.csr_matrix((s, block.indices, block.indptr), shape=block.shape) @ y

        pattern = sp.csr_matrix((1.0 + block.data, block.indices, block.indptr), shape=block.shape)
        xb = x[lo:hi].copy()
        r = pattern @ y - apply(xb)
        p = r.copy()
        rs = np.einsum("ij,ij->i", r, r)
        for _ in range(steps):
            ap = apply(p)
            denom = np.einsum("ij,ij->i", p, ap)
            step = np.divide(rs, denom, out=np.zeros_like(rs), where=denom > 0)
            xb += step[:, None] * p
            r -= step[:, None] * ap
            rs_new = np.einsum("ij,ij->i", r, r)
            beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)
            p = r + beta[:, None] * p
            rs = rs_new
        out[lo:hi] = xb
    return out
