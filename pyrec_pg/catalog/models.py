"""Model definitions: validating the user's tables and columns, and reading them back."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pyrec_pg.db import Db
from pyrec_pg.db.types import NUMERIC_TYPES, TEXT_TYPES, TIME_TYPES
from pyrec_pg.errors import (
    DatatypeMismatch,
    DuplicateObject,
    InvalidParameter,
    NullValue,
    UndefinedColumn,
    UndefinedObject,
    UndefinedTable,
)
from pyrec_pg.ml.registry import RECIPES, recipe_params
from pyrec_pg.ml.spark import SparkOptions

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")


def check_name(kind: str, name: str) -> None:
    """Model and filter names: identifier-like, so they read well in SQL and in table names."""
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f'invalid {kind} name "{name}"',
            hint="use up to 48 letters, digits and underscores, starting with a letter",
        )


# candidates tried in order when a role's column is not mapped explicitly
INTERACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userid", "user", "customer_id", "viewer_id", "visitor_id"),
    "item": ("item_id", "itemid", "item", "product_id", "movie_id"),
    "timestamp": ("timestamp", "ts", "event_time", "occurred_at", "created_at", "rated_at"),
    "event_type": ("event_type", "type", "action"),
    "event_value": ("event_value", "value", "rating", "weight"),
    # what frequently_bought_together groups by (an order, a basket, a visit)
    "session": ("session_id", "basket_id", "order_id", "cart_id", "visit_id"),
}
REQUIRED = ("user", "item")
OPTION_KEYS = {
    "columns",
    "event_weights",
    "exclude_seen",
    "seed",
    "holdout",
    "params",
    "protocol",
    "event_types",
    "window_days",
    "recency_half_life_days",
    "use_event_value",
    "event_value_threshold",
    "engine",
    "spark",
}
# what fits a model: pyrec's own solvers (in the server, or in the external trainer), or
# Apache Spark (the external trainer only; recipe als)
ENGINES = ("pyrec", "spark")
ENGINE_RECIPES = {"spark": ("als",)}
PROTOCOLS = ("random_per_user", "random_per_item", "time")
COLUMN_KEYS = {*INTERACTION_COLUMNS, "items_id", "users_id", "items_created", "items_available"}
# when an item entered the catalog: what exploration's item_age_cutoff_days reads
ITEM_CREATED = ("created_at", "creation_timestamp", "added_at", "published_at", "release_date")
# whether an item may be served now (false withdraws it, as deleting its row does): boolean,
# or text holding Personalize's "True"/"False"
ITEM_AVAILABLE = ("available", "in_stock", "active", "is_available", "is_active")
AVAILABLE_TYPES = ("boolean", *TEXT_TYPES)


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    qualified: str  # schema-qualified, quoted by the server's quote_ident
    columns: dict[str, str]  # column name -> format_type()
    primary_key: list[str]


@dataclass(frozen=True)
class Model:
    model_id: int
    name: str
    recipe: str
    interactions: str
    items: str | None
    users: str | None
    columns: dict[str, Any]
    options: dict[str, Any]
    active_version: int | None


def resolve_relation(db: Db, name: str, role: str) -> Relation:
    """Look up a table or view by the name a user gave; raise a clear error if it is not one."""
    try:
        # parse_ident fails on a malformed name on every major; to_regclass returns NULL
        # for one from PostgreSQL 16 on, which would read as "does not exist"
        db.one("SELECT pg_catalog.parse_ident($1)", [name], ["text"])
        row = db.one(
            "SELECT c.oid::int AS oid, n.nspname, c.relname, c.relkind::text AS relkind"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass($1)",
            [name],
            ["text"],
        )
    except db.Error as e:  # syntactically invalid names make to_regclass itself fail
        raise InvalidParameter(
            f'invalid {role} relation name "{name}"',
            hint="give a table or view name, schema-qualified when it is not on the search_path",
        ) from e
    if row is None:
        raise UndefinedTable(
            f'{role} relation "{name}" does not exist',
            hint="give a table or view name, schema-qualified when it is not on the search_path",
        )
    if row["relkind"] not in ("r", "v", "m", "p", "f"):
        raise InvalidParameter(
            f'{role} relation "{name}" is not a table or view',
            hint="pyrec reads datasets from tables, views, materialized views or foreign tables",
        )
    cols = db.rows(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type"
        " FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        [row["oid"]],
        ["oid"],
    )
    pk = db.rows(
        "SELECT a.attname::text AS name FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = $1 AND i.indisprimary",
        [row["oid"]],
        ["oid"],
    )
    return Relation(
        schema=row["nspname"],
        name=row["relname"],
        qualified=db.ident(row["nspname"], row["relname"]),
        columns={c["name"]: c["type"] for c in cols},
        primary_key=[p["name"] for p in pk],
    )


def _pick(rel: Relation, role: str, mapped: str | None, candidates: tuple[str, ...]) -> str | None:
    if mapped is not None:
        if not isinstance(mapped, str) or mapped not in rel.columns:
            raise UndefinedColumn(
                f'column "{mapped}" mapped as {role} does not exist in {rel.qualified}',
                hint=f"columns of {rel.qualified}: {', '.join(rel.columns)}",
            )
        return mapped
    return next((c for c in candidates if c in rel.columns), None)


def _key_column(rel: Relation, role: str, mapped: str | None, preferred: str) -> str:
    """The id column of an items (role items_id) or users (role users_id) relation."""
    entity = "item" if role == "items_id" else "user"
    key = _pick(rel, role, mapped, (preferred, f"{entity}_id", "id"))
    if key is None and len(rel.primary_key) == 1:
        key = rel.primary_key[0]
    if key is None:
        raise UndefinedColumn(
            f"cannot tell which column of {rel.qualified} is the {entity} id",
            hint=f'map it with options => \'{{"columns": {{"{role}": "<column>"}}}}\''
            f"; columns of {rel.qualified}: {', '.join(rel.columns)}",
        )
    return key


def resolve_columns(
    inter: Relation, items: Relation | None, users: Relation | None, mapping: dict[str, Any]
) -> dict[str, Any]:
    """The column each role is read from, explicit mappings first, then common names."""
    unknown = set(mapping) - COLUMN_KEYS
    if unknown:
        raise InvalidParameter(
            f'unknown column role "{sorted(unknown)[0]}" in options.columns',
            hint=f"column roles are: {', '.join(sorted(COLUMN_KEYS))}",
        )
    out: dict[str, Any] = {}
    for role, candidates in INTERACTION_COLUMNS.items():
        col = _pick(inter, role, mapping.get(role), candidates)
        if col is None and role in REQUIRED:
            raise UndefinedColumn(
                f"cannot find the {role} column of {inter.qualified}",
                hint=f'map it with options => \'{{"columns": {{"{role}": "<column>"}}}}\''
                f"; columns of {inter.qualified}: {', '.join(inter.columns)}",
            )
        out[role] = col
    ts = out["timestamp"]
    if ts is not None and inter.columns[ts] not in TIME_TYPES:
        raise DatatypeMismatch(
            f'timestamp column "{ts}" has type {inter.columns[ts]}',
            hint="use a timestamp, date or numeric epoch column, or map another column",
        )
    ev = out["event_value"]
    if ev is not None and inter.columns[ev] not in NUMERIC_TYPES:
        raise DatatypeMismatch(
            f'event value column "{ev}" has type {inter.columns[ev]}',
            hint="event values must be numeric; map another column as event_value",
        )
    et = out["event_type"]
    if et is not None and inter.columns[et] not in TEXT_TYPES:
        raise DatatypeMismatch(
            f'event type column "{et}" has type {inter.columns[et]}',
            hint="event types must be text; map another column as event_type",
        )
    out["user_type"] = inter.columns[out["user"]]
    if ts is not None:
        out["timestamp_type"] = inter.columns[ts]
    out["item_type"] = inter.columns[out["item"]]
    if items is not None:
        out["items_id"] = _key_column(items, "items_id", mapping.get("items_id"), out["item"])
        created = _pick(items, "items_created", mapping.get("items_created"), ITEM_CREATED)
        if created is not None and items.columns[created] not in TIME_TYPES - NUMERIC_TYPES:
            if "items_created" in mapping:
                raise DatatypeMismatch(
                    f'items_created column "{created}" has type {items.columns[created]}',
                    hint="map a timestamp or date column of the items relation",
                )
            created = None
        out["items_created"] = created
        available = _pick(items, "items_available", mapping.get("items_available"), ITEM_AVAILABLE)
        if available is not None and not items.columns[available].startswith(AVAILABLE_TYPES):
            if "items_available" in mapping:
                raise DatatypeMismatch(
                    f'items_available column "{available}" has type {items.columns[available]}',
                    hint='map a boolean column, or a text column holding "True"/"False"',
                )
            available = None
        out["items_available"] = available
    if users is not None:
        out["users_id"] = _key_column(users, "users_id", mapping.get("users_id"), out["user"])
    return out


def validate_options(options: dict[str, Any], recipe: str) -> None:
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise InvalidParameter(
            f'unknown option "{sorted(unknown)[0]}"',
            hint=f"options are: {', '.join(sorted(OPTION_KEYS))}",
        )
    weights = options.get("event_weights", {})
    if not isinstance(weights, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in weights.values()
    ):
        raise InvalidParameter(
            "options.event_weights must map event types to non-negative numbers",
            hint='for example {"event_weights": {"purchase": 5, "click": 1}}',
        )
    for key in ("columns", "params"):
        if not isinstance(options.get(key, {}), dict):
            raise InvalidParameter(
                f"options.{key} must be a JSON object",
                hint='for example {"columns": {"user": "viewer_id"}, "params": {"factors": 32}}',
            )
    holdout = options.get("holdout", 0.25)
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or not 0 <= holdout < 1:
        raise InvalidParameter(
            "options.holdout must be a fraction in [0, 1)",
            hint="0.25 holds out a quarter of each user's interactions for evaluation; 0 skips it",
        )
    seed = options.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise InvalidParameter(
            "options.seed must be an integer between 0 and 2147483647", hint=f"got {seed!r}"
        )
    for key in ("exclude_seen", "use_event_value"):
        if not isinstance(options.get(key, True), bool):
            raise InvalidParameter(f"options.{key} must be true or false")
    for key in ("window_days", "recency_half_life_days"):
        value = options.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            raise InvalidParameter(
                f"options.{key} must be a positive number", hint=f"got {value!r}"
            )
    types = options.get("event_types")
    if types is not None and (
        not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types)
    ):
        raise InvalidParameter(
            "options.event_types must be a non-empty list of event type names",
            hint='for example {"event_types": ["purchase"]}',
        )
    threshold = options.get("event_value_threshold")
    if threshold is not None:
        values = list(threshold.values()) if isinstance(threshold, dict) else [threshold]
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise InvalidParameter(
                "options.event_value_threshold must be a number, or a JSON object mapping"
                " event types to numbers",
                hint='for example {"event_value_threshold": 4} or'
                ' {"event_value_threshold": {"rating": 4}}',
            )
    protocol = options.get("protocol", "random_per_user")
    if protocol not in PROTOCOLS:
        raise InvalidParameter(
            f'unknown evaluation protocol "{protocol}"', hint=f"protocols: {', '.join(PROTOCOLS)}"
        )
    recipe_params(recipe, options.get("params", {}))  # raises on bad recipe parameters
    engine = options.get("engine", "pyrec")
    if engine not in ENGINES:
        raise InvalidParameter(
            f"unknown engine {engine!r}", hint=f"options.engine is one of: {', '.join(ENGINES)}"
        )
    if engine in ENGINE_RECIPES and recipe not in ENGINE_RECIPES[engine]:
        raise InvalidParameter(
            f"engine {engine} does not train recipe {recipe}",
            hint=f"engine {engine} trains: {', '.join(ENGINE_RECIPES[engine])}; leave out"
            ' options.engine (or set it to "pyrec") for the others',
        )
    SparkOptions.parse(options.get("spark"))  # raises on a bad one, whatever the engine


def check_threshold(options: dict[str, Any], columns: dict[str, Any]) -> None:
    """An event value threshold needs the event value column (and, per type, the type's)."""
    threshold = options.get("event_value_threshold")
    if threshold is None:
        return
    if columns.get("event_value") is None:
        raise UndefinedColumn(
            "options.event_value_threshold needs an event value column",
            hint='map one: options => \'{"columns": {"event_value": "<column>"}}\'',
        )
    if isinstance(threshold, dict) and columns.get("event_type") is None:
        raise UndefinedColumn(
            "options.event_value_threshold per event type needs an event type column",
            hint='map one: options => \'{"columns": {"event_type": "<column>"}}\','
            " or give one threshold for every event",
        )


def create_model(
    db: Db,
    name: str | None,
    interactions: str | None,
    items: str | None,
    users: str | None,
    recipe: str | None,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    if name is None:
        raise NullValue(
            "model name must not be null",
            hint="for example pyrec.create_model('movies', 'ratings')",
        )
    if interactions is None:
        raise NullValue(
            "interactions must not be null",
            hint="give the table or view holding (user, item[, timestamp, ...]) rows",
        )
    check_name("model", name)
    recipe = recipe or "als"
    if recipe not in RECIPES:
        raise InvalidParameter(
            f'unknown recipe "{recipe}"', hint=f"recipes are: {', '.join(sorted(RECIPES))}"
        )
    options = options or {}
    validate_options(options, recipe)
    if db.one("SELECT 1 FROM pyrec.models WHERE name = $1", [name], ["text"]):
        raise DuplicateObject(
            f'model "{name}" already exists',
            hint=f"drop it first with SELECT pyrec.drop_model('{name}') or choose another name",
        )
    inter = resolve_relation(db, interactions, "interactions")
    item_rel = resolve_relation(db, items, "items") if items else None
    user_rel = resolve_relation(db, users, "users") if users else None
    columns = resolve_columns(inter, item_rel, user_rel, options.get("columns", {}))
    check_threshold(options, columns)
    db.run(
        "INSERT INTO pyrec.models (name, recipe, interactions, items, users, columns, options)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            name,
            recipe,
            inter.qualified,
            item_rel.qualified if item_rel else None,
            user_rel.qualified if user_rel else None,
            json.dumps(columns),
            json.dumps(options),
        ],
        ["text", "text", "text", "text", "text", "jsonb", "jsonb"],
    )
    return {
        "model": name,
        "recipe": recipe,
        "interactions": inter.qualified,
        "items": item_rel.qualified if item_rel else None,
        "users": user_rel.qualified if user_rel else None,
        "columns": columns,
    }


def get_model(db: Db, name: str | None) -> Model:
    if name is None:
        raise NullValue(
            "model name must not be null", hint="SELECT name FROM pyrec.models lists the models"
        )
    row = db.one(
        "SELECT model_id, name, recipe, interactions, items, users, columns::text AS columns,"
        " options::text AS options, active_version FROM pyrec.models WHERE name = $1",
        [name],
        ["text"],
    )
    if row is None:
        raise UndefinedObject(
            f'model "{name}" does not exist',
            hint="create it with pyrec.create_model(...);"
            " SELECT name FROM pyrec.models lists models",
        )
    return Model(
        model_id=row["model_id"],
        name=row["name"],
        recipe=row["recipe"],
        interactions=row["interactions"],
        items=row["items"],
        users=row["users"],
        columns=json.loads(row["columns"]),
        options=json.loads(row["options"]),
        active_version=row["active_version"],
    )


SOURCES_HINT = "restore the relation and its mapped columns, or drop and recreate the model"


def _base_type(typ: str) -> str:
    return typ.split("(", 1)[0]


def check_sources(db: Db, model: Model) -> None:
    """Raise a clear error when a relation of the model, or a column it maps, was dropped,
    renamed or given another type since create_model (what serving does in SQL too)."""
    cols = model.columns
    roles = {
        "interactions": (model.interactions, [*INTERACTION_COLUMNS]),
        "items": (model.items, ["items_id", "items_created", "items_available"]),
        "users": (model.users, ["users_id"]),
    }
    for role, (qualified, mapped) in roles.items():
        if qualified is None:
            continue
        what = f'{role} relation {qualified} of model "{model.name}"'
        what += " no longer matches its definition"
        try:
            rel = resolve_relation(db, qualified, role)
        except UndefinedTable as e:
            raise UndefinedTable(f"{what}: it does not exist", hint=SOURCES_HINT) from e
        for key in mapped:
            col = cols.get(key)
            if col is None:
                continue
            if col not in rel.columns:
                raise UndefinedColumn(
                    f'{what}: column "{col}" (mapped as {key}) does not exist',
                    hint=SOURCES_HINT + f"; columns of {qualified}: {', '.join(rel.columns)}",
                )
            was = cols.get(f"{key}_type")
            if was is not None and _base_type(rel.columns[col]) != _base_type(str(was)):
                raise DatatypeMismatch(
                    f'{what}: column "{col}" (mapped as {key}) has type {rel.columns[col]},'
                    f" not {was}",
                    hint=SOURCES_HINT,
                )
