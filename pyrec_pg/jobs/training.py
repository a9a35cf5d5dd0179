"""The training pipeline: read, evaluate on a holdout, fit, write a version, activate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pyrec_pg.catalog.models import Model, check_threshold, get_model, validate_options
from pyrec_pg.catalog.runs import Run, abandoned
from pyrec_pg.catalog.versions import Trained
from pyrec_pg.db import Db, settings, standby
from pyrec_pg.db.jdbc import jdbc_of
from pyrec_pg.errors import (
    FeatureNotSupported,
    InvalidParameter,
    LockNotAvailable,
    NotReady,
    NullValue,
    ObjectInUse,
    PyrecError,
    SerializationFailure,
    sqlstate_of,
)
from pyrec_pg.jobs import coldstart as attributes
from pyrec_pg.jobs.text import Embedded, embed_items
from pyrec_pg.ml import evaluation, text
from pyrec_pg.ml.attributes import Cold
from pyrec_pg.ml.interactions import Interactions
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors, Recipe
from pyrec_pg.ml.recipes.popularity import item_popularity
from pyrec_pg.ml.recipes.semantic import Semantic
from pyrec_pg.ml.registry import cold_text, recipe_params
from pyrec_pg.ml.spark import Holdout, JdbcSource, SparkAls, SparkOptions
from pyrec_pg.store import interactions
from pyrec_pg.store.attributes import require_items
from pyrec_pg.store.vectors import read_vectors, write_version

LOCK_CLASS = 0x7079  # first key of pyrec's advisory locks ("py"); the second is the model id


@dataclass(frozen=True)
class _Plan:
    """What a training or an evaluation runs: the model's options with the call's overrides."""

    options: dict[str, Any]
    recipe: Recipe
    protocol: str
    holdout: float
    seed: int
    texts: text.TextOptions | None = None  # cold items' vectors from these text columns too

    @property
    def with_times(self) -> bool:
        """Whether reading gets each pair's last event time: only the "time" protocol's
        split uses it."""
        return self.protocol == "time" and self.holdout > 0


def _plan(model: Model, overrides: dict[str, Any] | None, in_server: bool) -> _Plan:
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise InvalidParameter("training options must be a JSON object")
    options = {**model.options, **overrides}
    options = _merged_spark(options, model.options.get("spark"), overrides.get("spark"))
    validate_options(options, model.recipe)
    check_threshold(options, model.columns)
    recipe: Recipe = recipe_params(model.recipe, options.get("params", {}))
    if options.get("engine") == "spark" and isinstance(recipe, Als):
        if in_server:
            raise FeatureNotSupported(
                f'model "{model.name}" trains on Spark (options.engine), which does not run'
                " inside the database server",
                hint=f"train it with the external trainer: pyrec train {model.name} --dsn ..."
                " (from system cron for scheduled retrains), or pass"
                ' options => \'{"engine": "pyrec"}\' to train this once in the server',
            )
        recipe = SparkAls(recipe, SparkOptions.parse(options.get("spark")))
    texts = cold_text(model.recipe, options.get("params", {}))
    needs = recipe.model if isinstance(recipe, Semantic) else texts.model if texts else None
    if needs is not None:  # a missing text extra fails here, before any work
        text.require(needs)
        require_items(model)
    data_options = getattr(recipe, "data_options", None)
    if data_options is not None:  # e.g. trending reads events weighted by recency
        options = {**data_options(), **options}
    protocol = str(options.get("protocol", "random_per_user"))
    holdout = float(options.get("holdout", 0.2 if protocol == "time" else 0.25))
    return _Plan(options, recipe, protocol, holdout, int(options.get("seed", 0)), texts)


def _merged_spark(options: dict[str, Any], stored: Any, given: Any) -> dict[str, Any]:
    """The call's options.spark over the model's, key by key (and conf by setting), so that
    `--spark-master` keeps the model's Spark configuration."""
    if not (isinstance(stored, dict) and isinstance(given, dict)):
        return options
    merged = {**stored, **given}
    if isinstance(stored.get("conf"), dict) and isinstance(given.get("conf"), dict):
        merged["conf"] = {**stored["conf"], **given["conf"]}
    return {**options, "spark": merged}


MODES = ("full", "update")


def train(
    db: Db, name: str | None, overrides: dict[str, Any] | None = None, mode: str | None = "full"
) -> dict[str, Any]:
    """Train model `name` into a new version and activate it; the previous one serves until then.

    mode "update" warm-starts ALS from the active version's vectors (Personalize's
    trainingMode UPDATE) and runs a third of the sweeps; other recipes refit in full.

    When `db` has a reader (a hot standby's Db), the user's relations are read there and
    everything else (the model's row, the lock, the run, the version) goes through `db`; the
    summary then says where the standby's replay stood (`read_from`).
    """
    if mode is None:
        raise NullValue("mode must not be null", hint='mode is "full" (default) or "update"')
    if mode not in MODES:
        raise InvalidParameter(
            f"unknown training mode {mode!r}", hint='mode is "full" (default) or "update"'
        )
    model = get_model(db, name)
    plan = _plan(model, overrides, db.in_server)
    if mode == "update" and isinstance(plan.recipe, SparkAls):
        raise FeatureNotSupported(
            "engine spark trains in full only: Spark's ALS cannot start from the active"
            " version's vectors",
            hint='train with mode "full", or update with engine pyrec:'
            ' options => \'{"engine": "pyrec"}\'',
        )
    for setting in settings.SETTINGS:  # a bad value fails now, not after the fit
        settings.get(db, setting.name)
    if db.scalar("SELECT pg_is_in_recovery()"):
        raise NotReady(
            "cannot train on a standby server",
            hint="run the training on the primary; the external trainer can read from a"
            " standby: pyrec train MODEL --dsn PRIMARY --read-dsn STANDBY",
        )
    # a reader that is not a standby of this database is refused before the run starts
    read_from = standby.check(db, db.reader) if db.reader is not db else None
    if not db.scalar(
        "SELECT pg_try_advisory_lock($1, $2)", [LOCK_CLASS, model.model_id], ["int4", "int4"]
    ):
        raise ObjectInUse(
            f'model "{model.name}" is already being trained by another session',
            hint="wait for it to finish; SELECT * FROM pyrec.training_runs shows its progress",
        )
    try:
        abandoned(db, "train")
        run = Run(db, model, "train")
        try:
            summary = _train(db, model, plan, run, mode)
            if read_from is not None:
                summary["read_from"] = read_from
        except BaseException as e:
            db.rollback()  # drops any half-written version tables
            run.finish("failed", None, getattr(e, "message", None) or str(e) or type(e).__name__)
            run.commit()
            raise
        run.commit()
        return summary
    finally:
        db.run("SELECT pg_advisory_unlock($1, $2)", [LOCK_CLASS, model.model_id], ["int4", "int4"])


@contextmanager
def _reading_sources(db: Db, model: Model) -> Iterator[Db]:
    """The Db that reads the model's relations (`db.reader`). Until its transaction ends,
    wait at most pyrec.lock_timeout (default 1min, 0 forever) for a lock on them held by
    another session (an ALTER TABLE, a VACUUM FULL), then fail with 55P03, instead of
    hanging silently at "reading". A standby's transaction ends with the block, so it holds
    no lock or snapshot that the replay of the primary's WAL would wait for while we fit."""
    reader = db.reader
    timeout = settings.get(db, "pyrec.lock_timeout")
    reader.run("SELECT set_config('lock_timeout', $1, true)", [timeout], ["text"])
    try:
        yield reader
    except (db.Error, reader.Error) as e:
        if reader is not db and sqlstate_of(e) == SerializationFailure.sqlstate:
            raise SerializationFailure(
                f'reading the relations of model "{model.name}" on the standby was cancelled: {e}',
                hint="the standby cancels a read that holds back its replay of the primary's"
                " changes for longer than max_standby_streaming_delay: set hot_standby_feedback"
                " = on on the standby (or raise max_standby_streaming_delay), then retry",
            ) from e
        if sqlstate_of(e) != LockNotAvailable.sqlstate:
            raise
        sources = ", ".join(r for r in (model.interactions, model.items, model.users) if r)
        raise LockNotAvailable(
            f'model "{model.name}" could not read its relations ({sources}): another session'
            f" held a conflicting lock for longer than pyrec.lock_timeout ({timeout})",
            hint="pg_locks shows the session holding it: retry when it is done, or wait longer"
            " with SET pyrec.lock_timeout = '10min'",
        ) from e
    except PyrecError as e:  # e.g. a relation the standby has not replayed yet
        if reader is not db and e.detail is None:
            e.detail = (
                "read on a hot standby, which shows the primary's changes once it replays them"
            )
        raise
    if reader is not db:
        reader.rollback()  # it wrote nothing: this only releases its locks and snapshot


def _warm_start(db: Db, model: Model, recipe: Als, data: Interactions) -> Factors:
    """The active version's vectors aligned with the new data's users and items."""
    row = db.one(
        "SELECT version, dims, items_table, users_table FROM pyrec._versions"
        " WHERE model_id = $1 AND version = $2",
        [model.model_id, model.active_version],
        ["int4", "int4"],
    )
    if row is None:
        raise NotReady(
            f'model "{model.name}" has no active version to update',
            hint=f"run a full training first: CALL pyrec.train('{model.name}')",
        )
    if int(row["dims"]) != recipe.factors:
        raise InvalidParameter(
            f"factors changed from {row['dims']} (version {row['version']}) to {recipe.factors}",
            hint="an update keeps the vectors' size: run a full training (mode => 'full')",
        )
    users, _ = read_vectors(db, row["users_table"], "user_id", data.users.tolist(), recipe.factors)
    items, _ = read_vectors(db, row["items_table"], "item_id", data.items.tolist(), recipe.factors)
    return Factors(users=users, items=items)


@dataclass(frozen=True)
class _Fitted:
    """What reading and fitting hand the rest of a training (cold starts, the version)."""

    data: Interactions
    factors: Factors
    metrics: dict[str, Any]
    popularity: npt.NDArray[np.float32]
    embedded: Embedded | None = None  # semantic: the items' text vectors
    warm: bool = False  # an update, started from the active version's vectors


def _read_and_fit(db: Db, model: Model, plan: _Plan, run: Run, mode: str | None) -> _Fitted:
    """Read the pairs into this process, measure the recipe on a holdout, fit."""
    recipe = plan.recipe
    run.phase("reading", 0)
    with _reading_sources(db, model) as source:
        data = interactions.load(source, model, plan.options, plan.with_times)
        # semantic: every item of the items relation with text, its vector its text's
        embedded = (
            embed_items(db, source, model, recipe, data) if isinstance(recipe, Semantic) else None
        )
    if embedded is not None:
        recipe, data = embedded.recipe, embedded.data
    warm, update = None, None
    if mode == "update" and isinstance(recipe, Als):
        warm = _warm_start(db, model, recipe, data)
        update = replace(recipe, iterations=max(2, recipe.iterations // 3))
    run.phase("evaluating", 10, data.rows_read)
    metrics: dict[str, Any] = {}
    # a warm start has seen the holdout's interactions: its metrics would flatter it
    if plan.holdout > 0 and warm is None:
        metrics = evaluation.holdout_metrics(recipe, data, plan.protocol, plan.holdout, plan.seed)
    run.phase("training", 50)
    factors = recipe.fit(data.matrix) if update is None else update.fit(data.matrix, warm)
    return _Fitted(data, factors, metrics, item_popularity(data.matrix), embedded, warm is not None)


def _fit_in_spark(db: Db, model: Model, plan: _Plan, recipe: SparkAls, run: Run) -> _Fitted:
    """Spark's executors read the pairs through JDBC (from the standby when there is a
    reader), measure the recipe on a holdout and fit; the trainer gets the factors, the
    counts serving needs and a sample of the users' pairs, never all of them."""
    run.phase("reading", 0)
    with _reading_sources(db, model) as source:
        query = interactions.pairs_sql(source, model, plan.options, plan.with_times)
        target = jdbc_of(source, f"pyrec train {model.name}"[:63])
    # Spark's connections wait for locks as the trainer's reading does (libpq's options
    # syntax, which pgjdbc takes too: a space in a value is escaped)
    timeout = str(settings.get(db, "pyrec.lock_timeout")).replace("\\", "\\\\")
    startup = ("options", "-c lock_timeout=" + timeout.replace(" ", "\\ "))
    jdbc = JdbcSource(
        model.interactions, target.url, (*target.properties, startup), query.pairs, query.distinct
    )
    run.phase("training", 10)
    holdout = Holdout(plan.protocol, plan.holdout, plan.seed) if plan.holdout > 0 else None
    fit = recipe.fit_source(jdbc, holdout)
    data = Interactions(
        users=fit.users,
        items=fit.items,
        matrix=fit.sample,
        rows_read=fit.rows_read,
        newest=query.newest,
        distinct_items=fit.n_items,
        pairs=fit.pairs,
    )
    return _Fitted(data, fit.factors, fit.metrics, fit.popularity)


def _train(db: Db, model: Model, plan: _Plan, run: Run, mode: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    if isinstance(plan.recipe, SparkAls) and plan.recipe.spark.read == "jdbc":
        fitted = _fit_in_spark(db, model, plan, plan.recipe, run)
    else:
        fitted = _read_and_fit(db, model, plan, run, mode)
    data, factors, metrics, embedded = fitted.data, fitted.factors, fitted.metrics, fitted.embedded
    recipe = embedded.recipe if embedded is not None else plan.recipe
    factors.check()
    # items (users) with attributes but no interactions get vectors from what similar ones learned
    cold = users = None
    if embedded is not None:  # no item is cold: the state embeds items added later
        cold = Cold(ids=[], vectors=factors.items[:0], state=embedded.state)
    if factors.fold != "none":
        with _reading_sources(db, model) as source:
            if embedded is None:
                cold = attributes.learn(
                    source, model, "item", data.items, factors.items, plan.texts
                )
            users = attributes.learn(source, model, "user", data.users, factors.users)
    run.phase("writing", 90)
    seconds = round(time.perf_counter() - started, 3)
    version = write_version(
        db,
        model,
        data,
        factors,
        fitted.popularity,
        Trained(
            recipe=model.recipe,
            params={**recipe.params(), **(plan.texts.as_params("text_") if plan.texts else {})},
            metrics=metrics,
            training_seconds=seconds,
            mode="update" if fitted.warm else "full",
            base_version=model.active_version if fitted.warm else None,
            # fold-in weighs live history as training did: same options, same reference time
            fold_state={**factors.fold_state, "options": plan.options, "newest": data.newest},
            user_features=users.state if users is not None else {},
        ),
        cold,
    )
    run.finish("succeeded", version, None)
    return {
        "model": model.name,
        "version": version,
        "users": int(data.users.size),
        "items": int(data.items.size),
        "interactions": data.n_pairs,
        "seconds": seconds,
        "metrics": metrics,
        "mode": "update" if fitted.warm else "full",
        **({"texts": embedded.stats} if embedded is not None else {}),
    }


def evaluate(db: Db, name: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Holdout metrics of the model's recipe on demand, without writing a version."""
    model = get_model(db, name)
    plan = _plan(model, overrides, db.in_server)
    if plan.holdout <= 0:
        raise InvalidParameter("holdout must be above 0 to evaluate", hint="e.g. holdout => 0.25")
    data = interactions.load(db, model, plan.options, plan.protocol == "time")
    recipe = plan.recipe
    if isinstance(recipe, Semantic):
        embedded = embed_items(db, db, model, recipe, data)
        recipe, data = embedded.recipe, embedded.data
    return evaluation.holdout_metrics(recipe, data, plan.protocol, plan.holdout, plan.seed)
