"""Entry points the extension's PL/Python functions call, turning pyrec errors into ereports."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .. import __version__, models, training
from ..errors import PyrecError
from . import Db, Plpy

T = TypeVar("T")


def _call(plpy: Any, fn: Callable[[Db], T]) -> T:
    try:
        return fn(Db(plpy))
    except PyrecError as e:
        plpy.error(e.message, detail=e.detail, hint=e.hint, sqlstate=e.sqlstate)
        raise  # unreachable: plpy.error raises


def _json(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    if not isinstance(value, dict):
        raise PyrecError("options must be a JSON object", sqlstate="22023",
                         hint='for example \'{"params": {"factors": 32}}\'')
    return value


def version(plpy: Plpy) -> str:
    import numpy
    import scipy

    return json.dumps({
        "python_package": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "module_path": __file__.rsplit("/runtime/", 1)[0],
    })


def create_model(plpy: Plpy, name: str | None, interactions: str | None, items: str | None,
                 users: str | None, recipe: str | None, options: str | None) -> str:
    return _call(plpy, lambda db: json.dumps(models.create_model(
        db, name, interactions, items, users, recipe, _json(options))))


def train(plpy: Plpy, name: str | None, options: str | None) -> None:
    summary = _call(plpy, lambda db: training.train(db, name, _json(options)))
    m = summary["metrics"]
    quality = (f"; holdout precision@10 {m['precision@10']:.3f}, ndcg@10 {m['ndcg@10']:.3f}"
               if "ndcg@10" in m else "")
    plpy.notice(
        f'model "{summary["model"]}" version {summary["version"]} is active: '
        f"{summary['users']} users, {summary['items']} items, "
        f"{summary['interactions']} interactions in {summary['seconds']:.1f} s{quality}"
    )
