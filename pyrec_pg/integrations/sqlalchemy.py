"""SQLAlchemy 2 constructs for pyrec's SQL API (recommend() and co.) and its catalog as classes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy import event, func
from sqlalchemy.dialects.postgresql import ARRAY, INTERVAL, JSONB, REAL
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    QueryableAttribute,
    Session,
    mapped_column,
    relationship,
)
from sqlalchemy.sql import roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

from pyrec_pg.errors import ActiveTransaction, FeatureNotSupported

__all__ = [
    "AuditEntry",
    "BatchJob",
    "BatchOutput",
    "Catalog",
    "Experiment",
    "Filter",
    "Impression",
    "ImpressionLogEntry",
    "ImpressionsDaily",
    "Model",
    "ModelMetric",
    "ModelVersion",
    "TrainingRun",
    "batch_recommend",
    "because_you_interacted",
    "create_model",
    "frequently_bought_together",
    "rank_items",
    "recommend",
    "recommend_for_items",
    "similar_items",
    "train",
    "users_for_item",
    "users_for_items",
]

# An argument: a Python value (bound) or any SQL expression, e.g. a column for a LATERAL join.
Expr = ColumnElement[Any] | QueryableAttribute[Any]
Id = str | int | Expr
Text = str | Expr
Int = int | Expr
Json = Mapping[str, Any] | Expr
Bind = Engine | Connection | Session

Type = TypeEngine[Any]
Columns = tuple[tuple[str, Type], ...]

ITEMS: Columns = (
    ("item_id", sa.Text()),
    ("score", REAL()),
    ("rank", sa.Integer()),
    ("source", sa.Text()),
)
USERS: Columns = (("user_id", sa.Text()), ("score", REAL()), ("rank", sa.Integer()))
ANCHORED: Columns = (*ITEMS[:3], ("anchor_item_id", sa.Text()))


class _Named(ColumnElement[Any]):
    """`name => value`: Postgres' named notation, so omitted arguments keep the SQL defaults."""

    __visit_name__ = "pyrec_named_argument"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it an instance attribute)
        ("name", InternalTraversal.dp_string),
        ("value", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, name: str, value: ColumnElement[Any]) -> None:
        self.name = name
        self.value = value
        self.type = value.type


@compiles(_Named)
def _compile_named(element: _Named, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.preparer.quote(element.name)} => {compiler.process(element.value, **kw)}"


def _value(value: Any, type_: Type) -> ColumnElement[Any]:
    """A bound, typed parameter, or an SQL expression cast to the argument's type."""
    if isinstance(value, roles.ExpressionElementRole):  # columns, ORM attributes, subqueries
        return sa.cast(value, type_)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(type_, sa.Text):
        value = str(value)  # ids are text in pyrec's API; integer ids are accepted as well
    return sa.literal(value, type_)


def _args(
    required: Sequence[tuple[Any, Type]], optional: Mapping[str, tuple[Any, Type]]
) -> list[ColumnElement[Any]]:
    """The required arguments by position, the optional ones given (not None) by name."""
    args = [_value(v, t) for v, t in required]
    return args + [_Named(k, _value(v, t)) for k, (v, t) in optional.items() if v is not None]


def _call(
    function: str,
    columns: Sequence[tuple[str, Type]],
    required: Sequence[tuple[Any, Type]],
    optional: Mapping[str, tuple[Any, Type]],
    name: str | None,
) -> TableValuedAlias:
    fn: sa.Function[Any] = getattr(func.pyrec, function)(*_args(required, optional))
    return fn.table_valued(*(sa.column(c, t) for c, t in columns), name=name)


def recommend(
    model: Text | None,
    user_id: Id,
    k: Int | None = None,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    exclude_seen: bool | Expr | None = None,
    promotion: Json | None = None,
    exploration: Json | None = None,
    experiment: Text | None = None,
    exclude_items: Sequence[str | int] | Expr | None = None,
    ranking: Json | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.recommend(...)` as a FROM clause with columns item_id, score, rank, source.

    Arguments left as None keep the SQL defaults (k 10, exclude_seen true); model is None only
    with an experiment. `.lateral()` makes it a per-row join, e.g. with user_id a column."""
    return _call(
        "recommend",
        ITEMS,
        [(model, sa.Text()), (user_id, sa.Text())],
        {
            "k": (k, sa.Integer()),
            "filter": (filter, sa.Text()),
            "params": (params, JSONB()),
            "exclude_seen": (exclude_seen, sa.Boolean()),
            "promotion": (promotion, JSONB()),
            "exploration": (exploration, JSONB()),
            "experiment": (experiment, sa.Text()),
            "exclude_items": (_ids(exclude_items), ARRAY(sa.Text())),
            "ranking": (ranking, JSONB()),
        },
        name,
    )


def recommend_for_items(
    model: Text | None,
    items: Sequence[str | int] | Expr,
    k: Int | None = None,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    exclude_items: Sequence[str | int] | Expr | None = None,
    promotion: Json | None = None,
    exploration: Json | None = None,
    experiment: Text | None = None,
    session_id: Text | None = None,
    ranking: Json | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.recommend_for_items(...)`: top-k items for a cart or an anonymous session (the
    listed items folded in as a history); columns as recommend()."""
    return _call(
        "recommend_for_items",
        ITEMS,
        [(model, sa.Text()), (_ids(items), ARRAY(sa.Text()))],
        {
            "k": (k, sa.Integer()),
            "filter": (filter, sa.Text()),
            "params": (params, JSONB()),
            "exclude_items": (_ids(exclude_items), ARRAY(sa.Text())),
            "promotion": (promotion, JSONB()),
            "exploration": (exploration, JSONB()),
            "experiment": (experiment, sa.Text()),
            "session_id": (session_id, sa.Text()),
            "ranking": (ranking, JSONB()),
        },
        name,
    )


def similar_items(
    model: Text,
    item: Id,
    k: Int | None = None,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    exclude_items: Sequence[str | int] | Expr | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.similar_items(...)`: columns item_id, score, rank, source."""
    return _call(
        "similar_items",
        ITEMS,
        [(model, sa.Text()), (item, sa.Text())],
        {
            "k": (k, sa.Integer()),
            "filter": (filter, sa.Text()),
            "params": (params, JSONB()),
            "exclude_items": (_ids(exclude_items), ARRAY(sa.Text())),
        },
        name,
    )


def _ids(ids: Sequence[str | int] | Expr | None) -> list[str] | Expr | None:
    """Item ids as pyrec's text ids (integers accepted), or an SQL expression as it is."""
    if ids is None or not isinstance(ids, Sequence) or isinstance(ids, str):
        return ids  # type: ignore[return-value]
    return [str(i) for i in ids]


def rank_items(
    model: Text,
    user_id: Id,
    item_ids: Sequence[str | int] | Expr,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.rank_items(...)`: the given items in the user's order; columns as recommend()."""
    if isinstance(item_ids, Sequence):
        item_ids = [str(i) for i in item_ids]
    return _call(
        "rank_items",
        ITEMS,
        [(model, sa.Text()), (user_id, sa.Text()), (item_ids, ARRAY(sa.Text()))],
        {"filter": (filter, sa.Text()), "params": (params, JSONB())},
        name,
    )


def users_for_item(
    model: Text,
    item_id: Id,
    n: Int | None = None,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    exclude_seen: bool | Expr | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.users_for_item(...)`: a segment, columns user_id, score, rank."""
    return _call(
        "users_for_item",
        USERS,
        [(model, sa.Text()), (item_id, sa.Text())],
        {
            "n": (n, sa.Integer()),
            "filter": (filter, sa.Text()),
            "params": (params, JSONB()),
            "exclude_seen": (exclude_seen, sa.Boolean()),
        },
        name,
    )


def users_for_items(
    model: Text,
    item_filter: Text,
    n: Int | None = None,
    *,
    params: Json | None = None,
    user_filter: Text | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.users_for_items(...)`: the users drawn to the items a filter selects."""
    return _call(
        "users_for_items",
        USERS,
        [(model, sa.Text()), (item_filter, sa.Text())],
        {
            "n": (n, sa.Integer()),
            "params": (params, JSONB()),
            "user_filter": (user_filter, sa.Text()),
        },
        name,
    )


def because_you_interacted(
    model: Text,
    user_id: Id,
    k: Int | None = None,
    *,
    anchors: Int | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.because_you_interacted(...)`: columns item_id, score, rank, anchor_item_id."""
    return _call(
        "because_you_interacted",
        ANCHORED,
        [(model, sa.Text()), (user_id, sa.Text())],
        {"k": (k, sa.Integer()), "anchors": (anchors, sa.Integer())},
        name,
    )


def frequently_bought_together(
    model: Text,
    item: Id,
    k: Int | None = None,
    *,
    filter: Text | None = None,
    params: Json | None = None,
    time_window: dt.timedelta | Expr | None = None,
    name: str | None = None,
) -> TableValuedAlias:
    """`pyrec.frequently_bought_together(...)`: columns item_id, score, rank, source."""
    return _call(
        "frequently_bought_together",
        ITEMS,
        [(model, sa.Text()), (item, sa.Text())],
        {
            "k": (k, sa.Integer()),
            "filter": (filter, sa.Text()),
            "params": (params, JSONB()),
            "time_window": (time_window, INTERVAL()),
        },
        name,
    )


def create_model(
    bind: Session | Connection,
    name: str,
    interactions: str,
    *,
    items: str | None = None,
    users: str | None = None,
    recipe: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`SELECT pyrec.create_model(...)` in the caller's transaction; returns its JSON result
    (the resolved column mapping)."""
    args = _args(
        [(name, sa.Text()), (interactions, sa.Text())],
        {
            "items": (items, sa.Text()),
            "users": (users, sa.Text()),
            "recipe": (recipe, sa.Text()),
            "options": (options, JSONB()),
        },
    )
    call = func.pyrec.create_model(*args, type_=JSONB())
    return cast(dict[str, Any], bind.execute(sa.select(call)).scalar_one())


class _Call(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """`CALL <procedure>(...)`: SQLAlchemy has no construct for it."""

    inherit_cache = True
    _traverse_internals = [("procedure", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, procedure: sa.Function[Any]) -> None:
        self.procedure = procedure


@compiles(_Call)
def _compile_call(element: _Call, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CALL {compiler.process(element.procedure, **kw)}"


def _call_procedure(
    bind: Bind, procedure: str, model: str, args: Mapping[str, tuple[Any, Type]]
) -> Connection:
    """Runs `CALL pyrec.<procedure>(model, name => value, ...)` outside a transaction block
    (the procedure commits its progress as it goes); returns the connection, still open."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    if isinstance(bind, Engine):
        conn = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
    elif bind.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        conn = bind
    else:
        raise ActiveTransaction(
            f"pyrec.{procedure} cannot run inside a transaction block",
            hint="pass the Engine (or a Session bound to it), or a Connection with"
            " execution_options(isolation_level='AUTOCOMMIT')",
        )
    try:
        conn.execute(_Call(getattr(func.pyrec, procedure)(*_args([(model, sa.Text())], args))))
    except BaseException:
        if conn is not bind:
            conn.close()
        raise
    return conn


def train(
    bind: Bind, model: str, *, options: Mapping[str, Any] | None = None, mode: str | None = None
) -> int:
    """`CALL pyrec.train(...)` on an autocommit connection; returns the version it trained
    (now active). A Session's pending work is not part of it: commit first."""
    conn = _call_procedure(
        bind, "train", model, {"options": (options, JSONB()), "mode": (mode, sa.Text())}
    )
    try:
        version = conn.execute(
            sa.select(Model.active_version).where(Model.name == model)
        ).scalar_one()
        return cast(int, version)
    finally:
        if conn is not bind:
            conn.close()


def batch_recommend(
    bind: Bind,
    model: str,
    *,
    users: str | None = None,
    k: int | None = None,
    filter: str | None = None,
    into_table: str | None = None,
    params: Mapping[str, Any] | None = None,
    exclude_seen: bool | None = None,
    ranking: Mapping[str, Any] | None = None,
) -> str:
    """`CALL pyrec.batch_recommend(...)` on an autocommit connection; returns the table it
    wrote (BI tools read it through pyrec.create_bi_view)."""
    conn = _call_procedure(
        bind,
        "batch_recommend",
        model,
        {
            "users": (users, sa.Text()),
            "k": (k, sa.Integer()),
            "filter": (filter, sa.Text()),
            "into_table": (into_table, sa.Text()),
            "params": (params, JSONB()),
            "exclude_seen": (exclude_seen, sa.Boolean()),
            "ranking": (ranking, JSONB()),
        },
    )
    try:
        target = conn.execute(
            sa.select(BatchJob.target)
            .where(BatchJob.model == model)
            .order_by(BatchJob.run_id.desc())
            .limit(1)
        ).scalar_one()
        return cast(str, target)
    finally:
        if conn is not bind:
            conn.close()


# -- the catalog ----------------------------------------------------------------------------

Timestamp = sa.DateTime(timezone=True)


class Catalog(DeclarativeBase):
    """pyrec's catalog tables and views (schema pyrec), read-only through the ORM: models,
    versions and filters change through pyrec's functions, which validate them."""

    metadata = sa.MetaData(schema="pyrec")
    type_annotation_map: ClassVar[dict[Any, Type]] = {
        dict[str, Any]: JSONB(),
        list[str]: ARRAY(sa.Text()),
        list[float]: ARRAY(REAL()),
        dt.datetime: Timestamp,
        dt.timedelta: INTERVAL(),
        float: sa.Double(),
        str: sa.Text(),
    }


@event.listens_for(Catalog, "before_insert", propagate=True)
@event.listens_for(Catalog, "before_update", propagate=True)
@event.listens_for(Catalog, "before_delete", propagate=True)
def _read_only(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    raise FeatureNotSupported(
        f"pyrec's catalog is read-only through the ORM ({type(target).__name__})",
        hint="change it through pyrec's functions: create_model(), train(), pyrec.activate,"
        " pyrec.create_filter, pyrec.drop_model, ...",
    )


class Model(Catalog):
    __tablename__ = "models"

    model_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    recipe: Mapped[str]
    interactions: Mapped[str]
    items: Mapped[str | None]
    users: Mapped[str | None]
    columns: Mapped[dict[str, Any]]
    options: Mapped[dict[str, Any]]
    active_version: Mapped[int | None]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str]

    versions: Mapped[list[ModelVersion]] = relationship(
        primaryjoin="Model.name == foreign(ModelVersion.model)",
        order_by="ModelVersion.version",
        viewonly=True,
    )
    filters: Mapped[list[Filter]] = relationship(
        primaryjoin="Model.name == foreign(Filter.model)", order_by="Filter.name", viewonly=True
    )


class ModelVersion(Catalog):
    __tablename__ = "model_versions"

    model: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str]
    recipe: Mapped[str]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    dims: Mapped[int]
    n_users: Mapped[int]
    n_items: Mapped[int]
    n_interactions: Mapped[int] = mapped_column(sa.BigInteger)
    training_seconds: Mapped[float]
    mode: Mapped[str]
    base_version: Mapped[int | None]
    hnsw_index: Mapped[bool]
    n_cold_items: Mapped[int]
    created_at: Mapped[dt.datetime]
    activated_at: Mapped[dt.datetime | None]
    items_table: Mapped[str]
    users_table: Mapped[str]
    ef_search: Mapped[int | None]
    ann_recall: Mapped[float | None] = mapped_column(REAL)


class TrainingRun(Catalog):
    __tablename__ = "training_runs"

    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    model: Mapped[str]
    version: Mapped[int | None]
    status: Mapped[str]
    phase: Mapped[str]
    percent: Mapped[float] = mapped_column(REAL)
    rows_read: Mapped[int | None] = mapped_column(sa.BigInteger)
    pid: Mapped[int]
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    duration: Mapped[dt.timedelta | None]
    message: Mapped[str | None]


class BatchJob(Catalog):
    __tablename__ = "batch_jobs"

    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    model: Mapped[str]
    version: Mapped[int | None]
    target: Mapped[str | None]
    status: Mapped[str]
    phase: Mapped[str]
    percent: Mapped[float] = mapped_column(REAL)
    rows_written: Mapped[int | None] = mapped_column(sa.BigInteger)
    pid: Mapped[int]
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    duration: Mapped[dt.timedelta | None]
    message: Mapped[str | None]


class Filter(Catalog):
    __tablename__ = "filters"

    model: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    expression: Mapped[str]
    target: Mapped[str]
    params: Mapped[list[str]]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str]


class Experiment(Catalog):
    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(primary_key=True)
    status: Mapped[str]
    control: Mapped[str]
    models: Mapped[list[str]]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    description: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str]
    stopped_at: Mapped[dt.datetime | None]
    impressions: Mapped[int] = mapped_column(sa.BigInteger)


class Impression(Catalog):
    """pyrec.impressions (admins only): one row per request served by an experiment."""

    __tablename__ = "impressions"

    recommendation_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    experiment_id: Mapped[int]
    variant: Mapped[str]
    user_id: Mapped[str]
    items: Mapped[list[str]]
    scores: Mapped[list[float]]
    shown_at: Mapped[dt.datetime]


class AuditEntry(Catalog):
    """pyrec.audit (admins only): who did what to which model."""

    __tablename__ = "audit"

    audit_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    at: Mapped[dt.datetime]
    role: Mapped[str]
    session_role: Mapped[str]
    action: Mapped[str]
    model: Mapped[str | None]
    details: Mapped[dict[str, Any]]


class ModelMetric(Catalog):
    """pyrec.model_metrics: holdout metrics in long format, one row per version and metric."""

    __tablename__ = "model_metrics"

    model: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    recipe: Mapped[str]
    trained_at: Mapped[dt.datetime]
    activated_at: Mapped[dt.datetime | None]
    active: Mapped[bool]
    mode: Mapped[str]
    protocol: Mapped[str | None]
    holdout: Mapped[float | None]
    users_evaluated: Mapped[int | None]
    metric: Mapped[str] = mapped_column(primary_key=True)
    k: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[float]
    popularity: Mapped[float | None]


class BatchOutput(Catalog):
    """pyrec.batch_outputs: each batch output table and the last job that wrote it."""

    __tablename__ = "batch_outputs"

    model: Mapped[str] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(primary_key=True)
    produced_by: Mapped[str | None]
    version: Mapped[int | None]
    rows_written: Mapped[int | None] = mapped_column(sa.BigInteger)
    written_at: Mapped[dt.datetime | None]
    present: Mapped[bool]
    bi_views: Mapped[list[str]]


class ImpressionLogEntry(Catalog):
    """pyrec.impression_log (admins only): one row per served item of an experiment."""

    __tablename__ = "impression_log"

    recommendation_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    experiment: Mapped[str]
    variant: Mapped[str]
    user_id: Mapped[str]
    item_id: Mapped[str]
    rank: Mapped[int] = mapped_column(primary_key=True)
    score: Mapped[float] = mapped_column(REAL)
    shown_at: Mapped[dt.datetime]


class ImpressionsDaily(Catalog):
    """pyrec.impressions_daily: experiment traffic per variant and day."""

    __tablename__ = "impressions_daily"

    experiment: Mapped[str] = mapped_column(primary_key=True)
    variant: Mapped[str] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    impressions: Mapped[int] = mapped_column(sa.BigInteger)
    users: Mapped[int] = mapped_column(sa.BigInteger)
    items_shown: Mapped[int] = mapped_column(sa.BigInteger)
