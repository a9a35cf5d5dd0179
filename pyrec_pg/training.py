"""The training pipeline: read, evaluate on a holdout, fit, write a version, activate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import evaluation, interactions
from .errors import InvalidParameter, NotReady, ObjectInUse, PyrecError
from .models import Model, get_model, validate_options
from .recipes import Recipe, recipe_params
from .recipes.popularity import item_popularity
from .runtime import Db
from .versions import write_version

LOCK_CLASS = 0x7079  # first key of pyrec's advisory locks ("py"); the second is the model id


class _Run:
    """A row of pyrec.training_runs, committed at each phase so other sessions see progress."""

    def __init__(self, db: Db, model: Model) -> None:
        self.db = db
        self.run_id = int(
            db.scalar(
                "INSERT INTO pyrec._runs (model_id, status, phase, pid, backend_start)"
                " SELECT $1, 'running', 'starting', pg_backend_pid(), backend_start"
                " FROM pg_stat_activity WHERE pid = pg_backend_pid() RETURNING run_id",
                [model.model_id],
                ["int4"],
            )
        )
        self.commit()

    def commit(self) -> None:
        try:
            self.db.commit()
        except Exception as e:  # CALL inside BEGIN ... COMMIT cannot commit
            if getattr(e, "sqlstate", None) == "2D000":
                raise PyrecError(
                    "pyrec.train cannot run inside a transaction block",
                    hint="run CALL pyrec.train(...) on its own, outside BEGIN ... COMMIT",
                    sqlstate="25001",
                ) from e
            raise

    def phase(self, phase: str, percent: float, rows_read: int | None = None) -> None:
        self.db.run(
            "UPDATE pyrec._runs SET phase = $2, percent = $3,"
            " rows_read = coalesce($4, rows_read) WHERE run_id = $1",
            [self.run_id, phase, percent, rows_read],
            ["int8", "text", "float4", "int8"],
        )
        self.commit()

    def finish(self, status: str, version: int | None, message: str | None) -> None:
        self.db.run(
            "UPDATE pyrec._runs SET status = $2, version = $3, message = $4,"
            " percent = CASE WHEN $2 = 'succeeded' THEN 100 ELSE percent END,"
            " finished_at = clock_timestamp() WHERE run_id = $1",
            [self.run_id, status, version, message],
            ["int8", "text", "int4", "text"],
        )


def _mark_abandoned_runs(db: Db) -> None:
    """Runs whose backend is gone (killed, crashed, server restarted) are failed, not running."""
    db.run(
        "UPDATE pyrec._runs r SET status = 'failed', finished_at = clock_timestamp(),"
        " message = 'the training backend exited before finishing'"
        " WHERE r.status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
        " WHERE a.pid = r.pid AND a.backend_start = r.backend_start)"
    )


@dataclass(frozen=True)
class _Plan:
    """What a training or an evaluation runs: the model's options with the call's overrides."""

    options: dict[str, Any]
    recipe: Recipe
    protocol: str
    holdout: float
    seed: int


def _plan(model: Model, overrides: dict[str, Any] | None) -> _Plan:
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise InvalidParameter("training options must be a JSON object")
    options = {**model.options, **overrides}
    validate_options(options, model.recipe)
    recipe = recipe_params(model.recipe, options.get("params", {}))
    data_options = getattr(recipe, "data_options", None)
    if data_options is not None:  # e.g. trending reads events weighted by recency
        options = {**data_options(), **options}
    protocol = str(options.get("protocol", "random_per_user"))
    holdout = float(options.get("holdout", 0.2 if protocol == "time" else 0.25))
    return _Plan(options, recipe, protocol, holdout, int(options.get("seed", 0)))


def train(db: Db, name: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train model `name` into a new version and activate it; the previous one serves until then."""
    model = get_model(db, name)
    plan = _plan(model, overrides)
    if db.scalar("SELECT pg_is_in_recovery()"):
        raise NotReady("cannot train on a standby server", hint="run the training on the primary")
    if not db.scalar(
        "SELECT pg_try_advisory_lock($1, $2)", [LOCK_CLASS, model.model_id], ["int4", "int4"]
    ):
        raise ObjectInUse(
            f'model "{model.name}" is already being trained by another session',
            hint="wait for it to finish; SELECT * FROM pyrec.training_runs shows its progress",
        )
    try:
        _mark_abandoned_runs(db)
        run = _Run(db, model)
        try:
            summary = _train(db, model, plan, run)
        except BaseException as e:
            db.rollback()  # drops any half-written version tables
            run.finish("failed", None, getattr(e, "message", None) or str(e) or type(e).__name__)
            run.commit()
            raise
        run.commit()
        return summary
    finally:
        db.run("SELECT pg_advisory_unlock($1, $2)", [LOCK_CLASS, model.model_id], ["int4", "int4"])


def _train(db: Db, model: Model, plan: _Plan, run: _Run) -> dict[str, Any]:
    started = time.perf_counter()
    recipe = plan.recipe
    run.phase("reading", 0)
    data = interactions.load(db, model, plan.options)
    run.phase("evaluating", 10, data.rows_read)
    metrics: dict[str, Any] = {}
    if plan.holdout > 0:
        metrics = evaluation.holdout_metrics(recipe, data, plan.protocol, plan.holdout, plan.seed)
    run.phase("training", 50)
    factors = recipe.fit(data.matrix)
    factors.check()
    run.phase("writing", 90)
    seconds = round(time.perf_counter() - started, 3)
    version = write_version(
        db,
        model,
        data,
        factors,
        item_popularity(data.matrix),
        {
            "recipe": model.recipe,
            "params": recipe.params(),
            "metrics": metrics,
            "training_seconds": seconds,
        },
    )
    run.finish("succeeded", version, None)
    return {
        "model": model.name,
        "version": version,
        "users": int(data.users.size),
        "items": int(data.items.size),
        "interactions": int(data.matrix.nnz),
        "seconds": seconds,
        "metrics": metrics,
    }


def evaluate(db: Db, name: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Holdout metrics of the model's recipe on demand, without writing a version."""
    model = get_model(db, name)
    plan = _plan(model, overrides)
    if plan.holdout <= 0:
        raise InvalidParameter("holdout must be above 0 to evaluate", hint="e.g. holdout => 0.25")
    data = interactions.load(db, model, plan.options)
    return evaluation.holdout_metrics(plan.recipe, data, plan.protocol, plan.holdout, plan.seed)
