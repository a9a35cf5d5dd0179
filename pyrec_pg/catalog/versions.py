"""Model versions in pyrec._versions: the active one, activation, and pruning old ones."""

from __future__ import annotations

from dataclasses import dataclass

from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db
from pyrec_pg.errors import NotReady

KEEP_VERSIONS_DEFAULT = 3


@dataclass(frozen=True)
class Version:
    """A trained version's row: where its vectors live and how it folds users in."""

    model_id: int
    version: int
    items_table: str
    users_table: str
    dims: int
    fold: str


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


def activate(db: Db, model_id: int, version: int) -> None:
    db.run(
        "UPDATE pyrec.models SET active_version = $2 WHERE model_id = $1",
        [model_id, version],
        ["int4", "int4"],
    )
    db.run(
        "UPDATE pyrec._versions SET status = CASE WHEN version = $2 THEN 'active'"
        " ELSE 'inactive' END, activated_at = CASE WHEN version = $2 THEN now()"
        " ELSE activated_at END WHERE model_id = $1",
        [model_id, version],
        ["int4", "int4"],
    )


def prune(db: Db, model_id: int) -> None:
    """Drop the oldest inactive versions beyond the setting pyrec.keep_versions."""
    keep = db.scalar("SELECT current_setting('pyrec.keep_versions', true)")
    try:
        n = max(1, int(keep)) if keep else KEEP_VERSIONS_DEFAULT
    except ValueError:
        n = KEEP_VERSIONS_DEFAULT
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
