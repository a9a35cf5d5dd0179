"""The recipe interface and the parameter checks every recipe shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter, ModelFitError

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Factors:
    """What a fit produces: score(u, i) = users[u] . items[i]."""

    users: Matrix  # (n_users, d)
    items: Matrix  # (n_items, d)
    # how serving rebuilds a user's vector from live history (fold-in): "least_squares"
    # (ALS: one solve against the item vectors), "sum" (item-item: users = X @ history), "none"
    fold: str = "none"
    history: Matrix | None = None  # (n_items, d) for fold "sum"
    fold_state: dict[str, Any] = field(default_factory=dict)  # what the solve needs

    def check(self) -> None:
        for side, m in (("user", self.users), ("item", self.items)):
            if not np.isfinite(m).all():
                raise ModelFitError(
                    f"training produced non-finite {side} factors",
                    hint="raise the regularization or lower alpha / event weights",
                )


class Recipe(Protocol):
    name: ClassVar[str]

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        """Fit on a (users x items) matrix of non-negative interaction weights."""
        ...

    def params(self) -> dict[str, Any]: ...


P = TypeVar("P")


def parse_params(cls: type[P], recipe: str, given: dict[str, Any]) -> P:
    """Build the dataclass `cls` from user JSON, naming any unknown or mistyped parameter."""
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
    for key, value in given.items():
        if key not in known:
            raise InvalidParameter(
                f'unknown parameter "{key}" for recipe {recipe}',
                hint=f"parameters of {recipe}: {', '.join(known) or 'none'}",
            )
        want = known[key].type
        ok = (
            isinstance(value, int) and not isinstance(value, bool)
            if want in ("int", int)
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok:
            kind = "an integer" if want in ("int", int) else "a number"
            raise InvalidParameter(
                f'parameter "{key}" of recipe {recipe} must be {kind}',
                hint=f"got {value!r}",
            )
    obj = cls(**given)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
