"""The recipe registry: every recipe by name, configured from its parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyrec_pg.errors import InvalidParameter
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.auto import Auto
from pyrec_pg.ml.recipes.base import Recipe
from pyrec_pg.ml.recipes.itemitem import Ease, Sims
from pyrec_pg.ml.recipes.popularity import Popularity
from pyrec_pg.ml.recipes.semantic import Semantic
from pyrec_pg.ml.recipes.trending import Trending
from pyrec_pg.ml.text import TextOptions, split_cold_params

_FACTORIES: dict[str, Callable[[dict[str, Any]], Recipe]] = {
    "als": Als.from_params,
    "auto": Auto.from_params,
    "ease": Ease.from_params,
    "popularity": Popularity.from_params,
    "semantic": Semantic.from_params,
    "sims": Sims.from_params,
    "trending": Trending.from_params,
}
RECIPES = frozenset(_FACTORIES)
# recipes whose items without interactions get vectors mapped from their attributes, and so
# may map them from their text too (params text_columns, text_model)
COLD_START = frozenset({"als", "ease", "sims"})


def recipe_params(name: str, params: dict[str, Any]) -> Recipe:
    """The recipe `name` configured with `params`, raising InvalidParameter on bad values."""
    if name not in _FACTORIES:
        raise InvalidParameter(
            f'unknown recipe "{name}"', hint=f"recipes are: {', '.join(sorted(RECIPES))}"
        )
    if name in COLD_START:
        params, _ = split_cold_params(name, params)
    return _FACTORIES[name](params)


def cold_text(name: str, params: dict[str, Any]) -> TextOptions | None:
    """The text columns (and model) that cold items of recipe `name` are vectored from."""
    return split_cold_params(name, params)[1] if name in COLD_START else None


__all__ = ["COLD_START", "RECIPES", "cold_text", "recipe_params"]
