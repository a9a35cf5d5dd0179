"""semantic: items ranked by the meaning of their text (a sentence encoder's vectors)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter, NotReady
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.text import DEFAULT_MODEL, parse_columns, parse_model

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Semantic:
    """Item vectors are the unit-length embeddings of the items' text; a user's vector is the
    sum of their items' vectors, so a score is the summed cosine to their history and
    similar_items ranks by the cosine of two texts. Training binds the embeddings (rows
    aligned with the matrix's columns) before fitting: the recipe learns nothing else."""

    name: ClassVar[str] = "semantic"
    columns: tuple[str, ...] = ()  # the items relation's text columns; empty: every text column
    model: str = DEFAULT_MODEL
    embeddings: Matrix | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Semantic:
        known = ("columns", "model")
        for key in params:
            if key not in known:
                raise InvalidParameter(
                    f'unknown parameter "{key}" for recipe semantic',
                    hint=f"parameters of semantic: {', '.join(known)}",
                )
        columns = parse_columns("columns", params.get("columns", []), cls.name, True)
        model = parse_model("model", params.get("model", DEFAULT_MODEL), cls.name)
        return cls(columns=columns, model=model)

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "model": self.model}

    def bound(self, columns: tuple[str, ...], embeddings: Matrix) -> Semantic:
        """This recipe with the columns it read and the embeddings of the matrix's items."""
        return replace(self, columns=columns, embeddings=embeddings)

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        items = self.embeddings
        if items is None:
            raise NotReady(
                "recipe semantic was fitted before its item texts were embedded",
                hint="train it through pyrec.train, which reads the items relation's text",
            )
        if items.shape[0] != confidence.shape[1]:
            raise ValueError(f"{items.shape[0]} embeddings for {confidence.shape[1]} items")
        seen = sp.csr_matrix(confidence, dtype=np.float32, copy=True)
        seen.data[:] = 1.0  # each item of the history counts once, whatever its weight
        users = np.asarray(seen @ items, dtype=np.float32)
        return Factors(users=users, items=items, fold="sum", history=items)
