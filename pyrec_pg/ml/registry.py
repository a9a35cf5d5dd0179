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
from pyrec_pg.ml.recipes.trending import Trending

_FACTORIES: dict[str, Callable[[dict[str, Any]], Recipe]] = {
    "als": Als.from_params,
    "auto": Auto.from_params,
    "ease": Ease.from_params,
    "popularity": Popularity.from_params,
    "sims": Sims.from_params,
    "trending": Trending.from_params,
}
RECIPES = frozenset(_FACTORIES)


def recipe_params(name: str, params: dict[str, Any]) -> Recipe:
    """The recipe `name` configured with `params`, raising InvalidParameter on bad values."""
    if name not in _FACTORIES:
        raise InvalidParameter(
            f'unknown recipe "{name}"', hint=f"recipes are: {', '.join(sorted(RECIPES))}"
        )
    return _FACTORIES[name](params)


__all__ = ["RECIPES", "recipe_params"]
