"""Model versions in pyrec._versions: the active one, activation, and pruning old ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db, settings
from pyrec_pg.errors import NotReady


@dataclass(frozen=True)
class Version:
    """A trained version's row: where its vectors live and how it folds users in."""

    model_id: int
    version: int
    items_table: str
    users_table: str
    dims: int
    fold: str


@dataclass(frozen=True)
class Trained:
    """What a training records in a new version's row beside its vectors."""

    recipe: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_seconds: float
    mode: str = "full"  # or "update": warm-started from base_version
    base_version: int | None = None
    fold_state: dict[str, Any] | None = None  # None: the recipe's own (Factors.fold_state)
    user_features: dict[str, Any] = field(default_factory=dict)  # the users' attribute model


def active_version(db: Db, model: Model) -> Version:
    """The version serving `model`; NotReady when it was never trained."""
    row = db.one(
        "SELECT version, items_table, users_table, dims, fold FROM pyrec._versions"
        " WHERE model_id = $1 AND version = (SELECT active_version FROM pyrec.models"
        " WHERE model_id = $1)",
        [model.model_id],
        ["int4"],
    )
    if row is None:
        raise NotReady(
            f'model "{model.name}" has no trained version',
            hint=f"train it first: CALL pyrec.train('{model.name}')",
        )
    return Version(model_id=model.model_id, **row)


def activate(db: Db, model: Model, version: int) -> None:
    """Serve `version` from the next query on: pyrec.activate, the rule SQL callers use too."""
    db.run("SELECT pyrec.activate($1, $2)", [model.name, version], ["text", "int4"])


def prune(db: Db, model_id: int) -> None:
    """Drop the oldest inactive versions beyond the setting pyrec.keep_versions."""
    n = settings.get(db, "pyrec.keep_versions")
    old = db.rows(
        "SELECT version, items_table, users_table FROM pyrec._versions"
        " WHERE model_id = $1 AND status <> 'active' ORDER BY version DESC OFFSET $2",
        [model_id, n - 1],
        ["int4", "int4"],
    )
    for row in old:
        db.run(
            f"DROP TABLE IF EXISTS {db.ident('pyrec', row['items_table'])},"
            f" {db.ident('pyrec', row['users_table'])}"
        )
        db.run(
            "DELETE FROM pyrec._versions WHERE model_id = $1 AND version = $2",
            [model_id, row["version"]],
            ["int4", "int4"],
        )
