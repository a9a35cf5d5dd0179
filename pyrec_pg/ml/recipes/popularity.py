"""Popularity: every user gets the items with the most (weighted) interactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pyrec_pg.ml.recipes.base import Factors, as_dict, parse_params


def item_popularity(weights: sp.csr_matrix) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Weighted interaction count per item, scaled to [0, 1]."""
    return scaled(np.asarray(weights.sum(axis=0, dtype=np.float64)).ravel())  # exact past 2^24


def scaled(counts: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Weighted interaction counts per item, scaled to [0, 1]."""
    top = counts.max() if counts.size else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)


@dataclass(frozen=True)
class Popularity:
    name: ClassVar[str] = "popularity"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Popularity:
        return parse_params(cls, cls.name, params)

    def params(self) -> dict[str, Any]:
        return as_dict(self)

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        # one dimension: every user vector is [1], so the score is the item's popularity
        items = item_popularity(confidence).reshape(-1, 1)
        users = np.ones((confidence.shape[0], 1), dtype=np.float32)
        return Factors(users=users, items=items)
