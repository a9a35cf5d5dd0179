"""Recipes: each turns a user-item matrix into user and item vectors that pgvector serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidParameter
from .base import Factors, Recipe

_FACTORIES: dict[str, Callable[[dict[str, Any]], Recipe]] = {}


def _register() -> None:
    from .als import Als
    from .auto import Auto
    from .itemitem import Ease, Sims
    from .popularity import Popularity
    from .trending import Trending

    _FACTORIES["als"] = Als.from_params
    _FACTORIES["auto"] = Auto.from_params
    _FACTORIES["ease"] = Ease.from_params
    _FACTORIES["popularity"] = Popularity.from_params
    _FACTORIES["sims"] = Sims.from_params
    _FACTORIES["trending"] = Trending.from_params


_register()
RECIPES = frozenset(_FACTORIES)


def recipe_params(name: str, params: dict[str, Any]) -> Recipe:
    """The recipe `name` configured with `params`, raising InvalidParameter on bad values."""
    if name not in _FACTORIES:
        raise InvalidParameter(
            f'unknown recipe "{name}"', hint=f"recipes are: {', '.join(sorted(RECIPES))}"
        )
    return _FACTORIES[name](params)


__all__ = ["RECIPES", "Factors", "Recipe", "recipe_params"]
