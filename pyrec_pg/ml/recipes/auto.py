"""auto: tries candidate recipes on a validation split and keeps the best by ndcg@10."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.evaluation import ranking_metrics, split_random_per_user
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors, Recipe, parse_params
from pyrec_pg.ml.recipes.itemitem import Ease, Sims
from pyrec_pg.ml.recipes.popularity import Popularity

# (recipe, params): a small grid around the defaults that did best on MovieLens-100K
CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("als", {}),
    ("ease", {}),
    ("als", {"factors": 128, "regularization": 40.0, "alpha": 3.0}),
    ("ease", {"regularization": 250.0}),
    ("sims", {}),
    ("popularity", {}),
]
_FACTORIES = {"als": Als, "ease": Ease, "sims": Sims, "popularity": Popularity}


@dataclass
class Auto:
    """The first fit searches; later fits (the final one on all data) reuse the winner."""

    name: ClassVar[str] = "auto"
    validation: float = 0.2
    seed: int = 0
    time_budget_seconds: float = 300.0
    candidates: list[Any] = field(default_factory=lambda: [list(c) for c in CANDIDATES])
    # state of the search, not parameters (parse_params skips fields marked internal)
    chosen: dict[str, Any] | None = field(default=None, repr=False, metadata={"internal": True})
    trials: list[dict[str, Any]] = field(
        default_factory=list, repr=False, metadata={"internal": True}
    )

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Auto:
        cands = params.get("candidates")
        rest = {k: v for k, v in params.items() if k != "candidates"}
        auto = parse_params(cls, cls.name, rest)
        if cands is not None:
            if not isinstance(cands, list) or not cands:
                raise InvalidParameter(
                    "parameter candidates of recipe auto must be a list",
                    hint='e.g. [["als", {"factors": 32}], ["ease", {}]]',
                )
            auto.candidates = cands
        for cand in auto.candidates:
            auto._build(cand)  # reject bad candidates before training starts
        return auto

    def check(self) -> None:
        if (
            not 0 < self.validation < 1
            or self.time_budget_seconds <= 0
            or not 0 <= self.seed < 2**31
        ):
            raise InvalidParameter(
                "parameters of recipe auto are out of range",
                hint="validation is a fraction in (0, 1); time_budget_seconds is positive;"
                " seed is between 0 and 2147483647",
            )

    def _build(self, cand: Any) -> Recipe:
        if (
            not isinstance(cand, list | tuple)
            or len(cand) != 2
            or cand[0] not in _FACTORIES
            or not isinstance(cand[1], dict)
        ):
            raise InvalidParameter(
                f"bad candidate {cand!r} for recipe auto",
                hint=f"candidates are [recipe, params] pairs with recipe one of"
                f" {', '.join(sorted(_FACTORIES))}",
            )
        return _FACTORIES[cand[0]].from_params(cand[1])  # type: ignore[no-any-return,attr-defined]

    def params(self) -> dict[str, Any]:
        return {
            "validation": self.validation,
            "seed": self.seed,
            "time_budget_seconds": self.time_budget_seconds,
            "chosen": self.chosen,
            "trials": self.trials,
        }

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        if self.chosen is None:
            self.search(confidence)
        assert self.chosen is not None
        return self._build([self.chosen["recipe"], self.chosen["params"]]).fit(confidence)

    def search(self, confidence: sp.csr_matrix) -> None:
        train, valid = split_random_per_user(confidence, self.validation, self.seed)
        started = time.perf_counter()
        for cand in self.candidates:
            if self.trials and time.perf_counter() - started > self.time_budget_seconds:
                self.trials.append({"recipe": cand[0], "params": cand[1], "skipped": "time budget"})
                continue
            recipe = self._build(cand)
            t = time.perf_counter()
            metrics = ranking_metrics(recipe.fit(train), train, valid, ks=(10,))
            self.trials.append(
                {
                    "recipe": recipe.name,
                    "params": recipe.params(),
                    "ndcg@10": metrics.get("ndcg@10", 0.0),
                    "precision@10": metrics.get("precision@10", 0.0),
                    "seconds": round(time.perf_counter() - t, 3),
                }
            )
        scored = [t for t in self.trials if "ndcg@10" in t]
        best = max(scored, key=lambda t: t["ndcg@10"])
        self.chosen = {"recipe": best["recipe"], "params": best["params"]}
