"""Data readiness: what a model's relations hold, and whether each recipe has enough to train."""

from __future__ import annotations

from typing import Any

from pyrec_pg.catalog.models import Model, check_sources, get_model
from pyrec_pg.db import Db
from pyrec_pg.ml.registry import RECIPES

MIN_INTERACTIONS = 1000  # Personalize's minimum for its personalization recipes
MIN_ACTIVE_USERS = 25  # users with at least 2 interactions (one to learn, one to evaluate)


def _row(name: str, value: float | None, ok: bool, detail: str) -> dict[str, Any]:
    return {"check_name": name, "value": value, "ok": ok, "detail": detail}


def _orphans(db: Db, model: Model, role: str) -> tuple[str, int] | None:
    """Interactions whose item (or user) is missing from the model's items (users) relation."""
    rel = model.items if role == "item" else model.users
    if rel is None:
        return None
    col = db.ident(model.columns[role])
    key = db.ident(model.columns[f"{role}s_id"])
    n = db.scalar(
        f"SELECT count(*) FROM {model.interactions} x WHERE x.{col} IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {rel} r WHERE r.{key}::text = x.{col}::text)"
    )
    return rel, int(n)


def _user_index(db: Db, model: Model) -> dict[str, Any]:
    """Whether an index leads with the interactions' user column: every request reads the
    user's history there (seen items, fold-in), a key lookup with it, a scan without."""
    col = model.columns["user"]
    row = db.one(
        "SELECT c.relkind::text AS kind, EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = c.oid AND a.attname = $2) AS indexed"
        " FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
        [model.interactions, col],
        ["text", "text"],
    )
    name = f"index on {model.interactions} ({col})"
    if row is None or row["kind"] not in ("r", "p", "m"):
        return _row(
            name, None, True, "a view or foreign table: index the user column where it is read"
        )
    detail = "serving reads each user's history there at every request"
    if not row["indexed"]:
        detail += f": CREATE INDEX ON {model.interactions} ({db.ident(col)})"
    return _row(name, 1 if row["indexed"] else 0, bool(row["indexed"]), detail)


def check_data(db: Db, name: str | None) -> list[dict[str, Any]]:
    """One row per check: a name, a value, whether it passes, and what it means."""
    model = get_model(db, name)
    check_sources(db, model)
    user, item = db.ident(model.columns["user"]), db.ident(model.columns["item"])
    inter = model.interactions
    totals = db.one(
        f"SELECT count(*) AS n, count(*) FILTER (WHERE {user} IS NULL) AS null_users,"
        f" count(*) FILTER (WHERE {item} IS NULL) AS null_items FROM {inter}"
    )
    pairs = db.one(
        f"WITH p AS (SELECT {user} AS u, {item} AS i, count(*) AS n FROM {inter}"
        f" WHERE {user} IS NOT NULL AND {item} IS NOT NULL GROUP BY 1, 2)"
        " SELECT count(*) AS pairs, coalesce(sum(n), 0) - count(*) AS duplicates,"
        " count(DISTINCT u) AS users, count(DISTINCT i) AS items,"
        " (SELECT count(*) FROM (SELECT u FROM p GROUP BY u HAVING sum(n) >= 2) a) AS active"
        " FROM p"
    )
    assert totals is not None and pairs is not None
    rows, users, items = int(totals["n"]), int(pairs["users"]), int(pairs["items"])
    active = int(pairs["active"])
    usable = rows - int(totals["null_users"]) - int(totals["null_items"])
    out = [
        _row("interactions", rows, rows > 0, f"rows in {inter}"),
        _row("users", users, users > 0, "distinct users with an interaction"),
        _row("items", items, items > 0, "distinct items with an interaction"),
        _row("user-item pairs", int(pairs["pairs"]), True, "distinct (user, item) pairs"),
        _row(
            "sparsity",
            1.0 - int(pairs["pairs"]) / (users * items) if users and items else None,
            True,
            "share of the user x item matrix with no interaction",
        ),
        _row(
            "users with >= 2 interactions",
            active,
            active >= MIN_ACTIVE_USERS,
            f"needed to learn and to evaluate on a holdout (at least {MIN_ACTIVE_USERS})",
        ),
        _row(
            "duplicate interactions",
            int(pairs["duplicates"]),
            True,
            "repeats of a (user, item) pair; training sums their weights",
        ),
        _row(
            "NULL user ids",
            int(totals["null_users"]),
            not totals["null_users"],
            "rows training skips",
        ),
        _row(
            "NULL item ids",
            int(totals["null_items"]),
            not totals["null_items"],
            "rows training skips",
        ),
    ]
    for role in ("item", "user"):
        found = _orphans(db, model, role)
        if found is not None:
            rel, n = found
            article = "an" if role == "item" else "a"
            out.append(
                _row(
                    f"interactions with {article} {role} missing from {rel}",
                    n,
                    n == 0,
                    f"filters on {role} attributes never match these {role}s",
                )
            )
    out.append(_user_index(db, model))
    if model.items is not None:
        key = db.ident(model.columns["items_id"])
        cold = db.scalar(
            f"SELECT count(*) FROM {model.items} t WHERE NOT EXISTS (SELECT 1 FROM {inter} x"
            f" WHERE x.{item}::text = t.{key}::text)"
        )
        out.append(
            _row(
                "items without interactions",
                int(cold),
                True,
                f"items in {model.items} no one interacted with yet (cold items)",
            )
        )
    ts = model.columns.get("timestamp")
    if ts is not None:
        span = db.one(
            f"SELECT count(*) FILTER (WHERE {db.ident(ts)} IS NULL) AS nulls,"
            f" (max({db.ident(ts)})::text) AS newest, (min({db.ident(ts)})::text) AS oldest"
            f" FROM {inter}"
        )
        assert span is not None
        out.append(
            _row(
                "NULL timestamps",
                int(span["nulls"]),
                not span["nulls"],
                f"newest {span['newest']}, oldest {span['oldest']}",
            )
        )
    for recipe in sorted(RECIPES):
        out.append(_recipe_row(model, recipe, usable, active))
    return out


def _recipe_row(model: Model, recipe: str, usable: int, active: int) -> dict[str, Any]:
    mine = " (this model's recipe)" if recipe == model.recipe else ""
    if recipe in ("popularity", "trending"):
        needs_time = recipe == "trending" and model.columns.get("timestamp") is None
        ok = usable > 0 and not needs_time
        detail = "needs a timestamp column" if needs_time else "needs at least 1 interaction"
        return _row(f"recipe {recipe}", max(0, 1 - usable), ok, detail + mine)
    short = max(0, MIN_INTERACTIONS - usable) + max(0, MIN_ACTIVE_USERS - active)
    return _row(
        f"recipe {recipe}",
        short,
        short == 0,
        f"needs {MIN_INTERACTIONS} interactions (has {usable}) and {MIN_ACTIVE_USERS} users"
        f" with >= 2 (has {active}); value = how many are missing{mine}",
    )
