"""Trending: popularity where each event counts less the older it is (a half-life in days)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.recipes.base import Factors, as_dict, parse_params
from pyrec_pg.ml.recipes.popularity import Popularity


@dataclass(frozen=True)
class Trending:
    name: ClassVar[str] = "trending"
    half_life_days: float = 7.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Trending:
        return parse_params(cls, cls.name, params)

    def check(self) -> None:
        if not 0 < self.half_life_days <= 36_500:
            raise InvalidParameter(
                f'parameter "half_life_days" of recipe trending is out of range: '
                f"{self.half_life_days}",
                hint="a positive number of days, e.g. 1 for today's trends, 7 for this week's",
            )

    def params(self) -> dict[str, Any]:
        return as_dict(self)

    def data_options(self) -> dict[str, Any]:
        """Events are weighted by recency when they are read (interactions.weight_sql)."""
        return {"recency_half_life_days": self.half_life_days}

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        return Popularity().fit(confidence)
