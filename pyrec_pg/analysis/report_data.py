"""What the evaluation report shows, read from the catalog and from recommend() over psycopg."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from pyrec_pg.errors import InvalidParameter, NotReady, NullValue, UndefinedObject
from pyrec_pg.ml.registry import recipe_params

# popularity buckets by rank: (label, upper bound as a share of the catalog)
BUCKETS = (("top 1%", 0.01), ("1-10%", 0.10), ("10-50%", 0.50), ("bottom 50%", 1.0))
_AT_K = re.compile(r"^([a-z]+)@(\d+)$")


@dataclass(frozen=True)
class Version:
    version: int
    status: str
    recipe: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    dims: int
    n_users: int
    n_items: int
    n_interactions: int
    training_seconds: float
    mode: str
    base_version: int | None
    created_at: datetime
    items_table: str
    users_table: str

    @property
    def baseline(self) -> dict[str, Any]:
        """The popularity baseline's metrics on the same holdout split ({} without one)."""
        return dict(self.metrics.get("baseline", {}).get("popularity", {}))

    def at_k(self, metrics: dict[str, Any] | None = None) -> dict[str, dict[int, float]]:
        """metric name -> {k: value} for keys like "ndcg@10" (this version's or `metrics`)."""
        out: dict[str, dict[int, float]] = {}
        for key, value in (self.metrics if metrics is None else metrics).items():
            m = _AT_K.match(key)
            if m and isinstance(value, int | float):
                out.setdefault(m.group(1), {})[int(m.group(2))] = float(value)
        return {name: dict(sorted(ks.items())) for name, ks in sorted(out.items())}


@dataclass(frozen=True)
class Bias:
    """Popularity bias and catalog coverage of what the active version serves."""

    k: int
    users: int  # users sampled
    slots: int  # recommended (user, item) slots
    catalog: int  # items the version can serve
    top_items: int  # how many items make the top 1%
    coverage: float  # share of the catalog recommended to at least one sampled user
    buckets: list[tuple[str, float, float]]  # (label, share of interactions, share of slots)
    bucket_items: list[int]  # items in each bucket
    sources: dict[str, int]  # recommend()'s source column -> slots
    most_recommended: list[tuple[str, int, int]]  # (item id, slots, popularity rank from 1)

    @property
    def top_share_interactions(self) -> float:
        return self.buckets[0][1]

    @property
    def top_share_recommended(self) -> float:
        return self.buckets[0][2]


@dataclass(frozen=True)
class Run:
    run_id: int
    version: int | None
    status: str
    started_at: datetime
    seconds: float | None
    message: str | None


@dataclass(frozen=True)
class ReportData:
    model: str
    recipe: str
    versions: list[Version]  # oldest first; only those pyrec.keep_versions kept
    active: Version
    runs: list[Run]  # newest first
    bias: Bias
    labels: dict[str, str]  # item id -> title, for the items the report names
    generated_at: datetime


def collect(conn: psycopg.Connection[Any], model: str, k: int, sample_users: int) -> ReportData:
    """Everything the report shows for `model`, raising PyrecError subclasses on bad input."""
    if model is None:
        raise NullValue(
            "model name must not be null", hint="SELECT name FROM pyrec.models lists the models"
        )
    if not 1 <= k <= 1000 or not 1 <= sample_users <= 1_000_000:
        raise InvalidParameter(
            f"k must be in [1, 1000] and sample_users in [1, 1000000], got {k} and {sample_users}",
            hint="k is the length of the lists sampled; sample_users how many users get one",
        )
    if _scalar(conn, "SELECT to_regclass('pyrec.models') IS NOT NULL") is not True:
        raise NotReady(
            "extension pyrec is not installed in this database",
            hint="CREATE EXTENSION pyrec CASCADE, or connect to the database that has it",
        )
    found = conn.execute(
        "SELECT recipe, active_version, items, columns->>'items_id' FROM pyrec.models"
        " WHERE name = %s",
        [model],
    ).fetchone()
    if found is None:
        raise UndefinedObject(
            f'model "{model}" does not exist',
            hint="SELECT name FROM pyrec.models lists the models",
        )
    versions = _versions(conn, model)
    active = next((v for v in versions if v.version == found[1]), None)
    if active is None:
        raise NotReady(
            f'model "{model}" has no trained version',
            hint=f"train it first: CALL pyrec.train('{model}')",
        )
    bias = popularity_bias(conn, model, active, k, sample_users)
    return ReportData(
        model=model,
        recipe=str(found[0]),
        versions=versions,
        active=active,
        runs=_runs(conn, model),
        bias=bias,
        labels=item_labels(conn, found[2], found[3], [i for i, _, _ in bias.most_recommended]),
        generated_at=_scalar(conn, "SELECT now()"),
    )


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def _versions(conn: psycopg.Connection[Any], model: str) -> list[Version]:
    rows = conn.execute(
        "SELECT version, status, recipe, params, metrics, dims, n_users, n_items, n_interactions,"
        " training_seconds, mode, base_version, created_at, items_table, users_table"
        " FROM pyrec.model_versions WHERE model = %s ORDER BY version",
        [model],
    ).fetchall()
    return [Version(*row) for row in rows]


def _runs(conn: psycopg.Connection[Any], model: str, limit: int = 12) -> list[Run]:
    rows = conn.execute(
        "SELECT run_id, version, status, started_at, extract(epoch FROM duration)::float8,"
        " message FROM pyrec.training_runs WHERE model = %s ORDER BY run_id DESC LIMIT %s",
        [model, limit],
    ).fetchall()
    return [Run(*row) for row in rows]


def popularity_bias(
    conn: psycopg.Connection[Any], model: str, active: Version, k: int, sample_users: int
) -> Bias:
    """Serve top-k lists to a deterministic sample of the version's users (by md5 of the id)
    and compare where the slots go with where the training interactions went. The catalog
    is ranked and summed in the database: only bucket totals and the slots travel."""
    items = sql.Identifier("pyrec", active.items_table)
    users = sql.Identifier("pyrec", active.users_table)
    ranked = sql.SQL(
        "SELECT item_id, popularity, row_number() OVER (ORDER BY popularity DESC, item_id) AS pos"
        " FROM {}"
    ).format(items)
    row = conn.execute(
        sql.SQL("SELECT count(*), coalesce(sum(popularity), 0)::float8 FROM {}").format(items)
    ).fetchone()
    catalog, total_weight = (int(row[0]), float(row[1]) or 1.0) if row else (0, 1.0)
    bounds = [0]  # bucket j holds the items ranked bounds[j] + 1 to bounds[j + 1]
    for _, upto in BUCKETS:
        bounds.append(max(bounds[-1], min(catalog, math.ceil(upto * catalog))))
    sums = sql.SQL(", ").join(
        sql.SQL(
            "coalesce(sum(popularity) FILTER (WHERE pos > {} AND pos <= {}), 0)::float8"
        ).format(sql.Literal(lo), sql.Literal(hi))
        for lo, hi in itertools.pairwise(bounds)
    )
    weights = conn.execute(sql.SQL("SELECT {} FROM ({}) r").format(sums, ranked)).fetchone() or ()
    recs = conn.execute(
        sql.SQL(
            "SELECT r.item_id, r.source, k.pos FROM (SELECT user_id FROM {} ORDER BY md5(user_id)"
            " LIMIT %s) u CROSS JOIN LATERAL pyrec.recommend(%s, u.user_id, %s) r"
            " LEFT JOIN ({}) k ON k.item_id = r.item_id"
        ).format(users, ranked),
        [sample_users, model, k],
    ).fetchall()
    # slots on items outside the version's table (exploration, promotions) fall in no bucket
    total_slots = max(len(recs), 1)
    buckets = [
        (
            label,
            float(weights[j]) / total_weight,
            sum(1 for _, _, pos in recs if pos is not None and lo < pos <= hi) / total_slots,
        )
        for j, ((label, _), (lo, hi)) in enumerate(
            zip(BUCKETS, itertools.pairwise(bounds), strict=True)
        )
    ]
    position = {item: int(pos) for item, _, pos in recs if pos is not None}
    counts = Counter(item for item, _, _ in recs)
    return Bias(
        k=k,
        users=int(min(sample_users, active.n_users)),
        slots=len(recs),
        catalog=catalog,
        top_items=bounds[1],
        coverage=len(counts) / catalog if catalog else 0.0,
        buckets=buckets,
        bucket_items=[hi - lo for lo, hi in itertools.pairwise(bounds)],
        sources=dict(Counter(source for _, source, _ in recs).most_common()),
        most_recommended=[(item, n, position.get(item, 0)) for item, n in counts.most_common(10)],
    )


LABEL_COLUMNS = ["title", "name", "label", "item_name", "product_name"]


def item_labels(
    conn: psycopg.Connection[Any], relation: str | None, key: str | None, ids: list[str]
) -> dict[str, str]:
    """Titles of `ids` from the items relation's first text column named like a title,
    when it has one that the current role may read ({} otherwise: labels are a nicety)."""
    if not relation or not key or not ids:
        return {}
    found = conn.execute(
        "SELECT a.attrelid::regclass::text, a.attname::text, format_type(k.atttypid, k.atttypmod)"
        " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attribute k"
        "   ON k.attrelid = a.attrelid AND k.attname = %(key)s AND NOT k.attisdropped"
        " WHERE a.attrelid = to_regclass(%(rel)s) AND a.attname = ANY(%(names)s)"
        "   AND NOT a.attisdropped AND a.atttypid IN ('text'::regtype, 'varchar'::regtype)"
        "   AND has_column_privilege(a.attrelid, a.attnum, 'SELECT')"
        "   AND has_column_privilege(k.attrelid, k.attnum, 'SELECT')"
        " ORDER BY array_position(%(names)s, a.attname::text) LIMIT 1",
        {"key": key, "rel": relation, "names": LABEL_COLUMNS},
    ).fetchone()
    if found is None:
        return {}
    # the relation's and type's names as Postgres prints them are quoted where they must be
    query = sql.SQL("SELECT {k}::text, {t} FROM {r} WHERE {k} = ANY(%s::text[]::{ty}[])").format(
        k=sql.Identifier(key), t=sql.Identifier(found[1]), r=sql.SQL(found[0]), ty=sql.SQL(found[2])
    )
    try:
        with conn.transaction():  # a savepoint: a failure here leaves the caller's work intact
            rows = conn.execute(query, [ids]).fetchall()
    except psycopg.Error:
        return {}
    return {str(i): str(t) for i, t in rows if t is not None}


def default_params(recipe: str) -> dict[str, Any]:
    """A recipe's parameters when none are given ({} for an unknown recipe)."""
    try:
        return recipe_params(recipe, {}).params()
    except InvalidParameter:
        return {}


def short_params(recipe: str, params: dict[str, Any]) -> str:
    """The parameters that differ from the recipe's defaults, as "a=1, b=2" ("defaults")."""
    defaults = default_params(recipe)
    changed = {key: v for key, v in params.items() if defaults.get(key, object()) != v}
    return ", ".join(f"{key}={v}" for key, v in changed.items()) or "defaults"


def is_chosen(trial: dict[str, Any], chosen: dict[str, Any]) -> bool:
    """Whether an auto trial is the candidate the version was trained with."""
    return bool(
        trial.get("recipe") == chosen.get("recipe") and trial.get("params") == chosen.get("params")
    )
