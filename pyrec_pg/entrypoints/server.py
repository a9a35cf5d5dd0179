"""Entry points behind the extension's SQL functions: JSON in, JSON result or error out.

Errors travel back as data and the plpgsql wrapper raises them (pyrec._result), because an
exception escaping PL/Python gets a "plpy.Error: " prefix and a literal "DETAIL: None".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyrec_pg import SQL_VERSIONS, __version__, filters
from pyrec_pg.analysis import experiments, readiness
from pyrec_pg.catalog import models
from pyrec_pg.db import Db, settings
from pyrec_pg.errors import DuplicateObject, InvalidParameter, NullValue, error_fields
from pyrec_pg.jobs import batch, foldin, segments, training
from pyrec_pg.jobs import coldstart as attributes


def _options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(
            "options must be a JSON object",
            hint='for example \'{"params": {"factors": 32}}\'',
        )
    return value


def _version(db: Db, args: dict[str, Any]) -> dict[str, Any]:
    import numpy
    import scipy

    # the SQL installed in this database, and the version its files on this server offer
    sql = db.one(
        "SELECT e.extversion, a.default_version FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_available_extensions a ON a.name = e.extname"
        " WHERE e.extname = 'pyrec'"
    )
    update = sql is not None and sql["extversion"] != sql["default_version"]
    return {
        "python_package": str(__version__),
        "sql_versions_served": list(SQL_VERSIONS),
        "sql_available": None if sql is None else sql["default_version"],
        "update_pending": update,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "module_path": __file__.rsplit("/entrypoints/", 1)[0],
    }


def _create_model(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return models.create_model(
        db,
        a.get("name"),
        a.get("interactions"),
        a.get("items"),
        a.get("users"),
        a.get("recipe"),
        _options(a.get("options")),
    )


def _train(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    s = training.train(db, a.get("model"), _options(a.get("options")), a.get("mode", "full"))
    m = s["metrics"]
    quality = (
        f"; holdout precision@10 {m['precision@10']:.3f}, ndcg@10 {m['ndcg@10']:.3f}"
        if "ndcg@10" in m
        else ""
    )
    how = " (update of the previous version)" if s["mode"] == "update" else ""
    s["notice"] = (
        f'model "{s["model"]}" version {s["version"]}{how} is active: {s["users"]} users,'
        f" {s['items']} items, {s['interactions']} interactions in"
        f" {s['seconds']:.1f} s{quality}{_read_from(s.get('read_from'))}"
    )
    return s


def _read_from(source: dict[str, Any] | None) -> str:
    """Where a training read its data, for its notice: nothing when it read on the primary."""
    if source is None:
        return ""
    text = "; read from a hot standby"
    if source["lag_bytes"] == 0:
        text += " caught up with the primary"
    elif source["lag_bytes"] is not None:
        text += f" {source['lag_bytes']} bytes of WAL"
        if source["lag_seconds"] is not None:
            text += f" (at most {source['lag_seconds']:.1f} s)"
        text += " behind the primary"
    if source["replayed_until"]:
        until = datetime.fromisoformat(source["replayed_until"])
        text += f" (last commit replayed: {until.isoformat(' ', 'seconds')})"
    return text


def _model_by_id(db: Db, model_id: Any) -> models.Model:
    name = db.scalar("SELECT name FROM pyrec.models WHERE model_id = $1", [model_id], ["int4"])
    return models.get_model(db, name)


def _compile_filter(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    model = (
        _model_by_id(db, a["model_id"]) if "model_id" in a else models.get_model(db, a.get("model"))
    )
    return filters.compile_filter(db, model, a.get("expression")).to_json()


def _create_filter(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    model = models.get_model(db, a.get("model"))
    name = a.get("name")
    if name is None:
        raise NullValue(
            "filter name must not be null",
            hint="for example pyrec.create_filter('movies', 'no_horror', '<expression>')",
        )
    models.check_name("filter", name)
    compiled = filters.compile_filter(db, model, a.get("expression"))
    if db.one(
        "SELECT 1 FROM pyrec._filters WHERE model_id = $1 AND name = $2",
        [model.model_id, name],
        ["int4", "text"],
    ):
        raise DuplicateObject(
            f'filter "{name}" already exists for model "{model.name}"',
            hint=f"drop it first with SELECT pyrec.drop_filter('{model.name}', '{name}')",
        )
    db.run(
        "INSERT INTO pyrec._filters (model_id, name, expression, compiled) VALUES ($1, $2, $3, $4)",
        [model.model_id, name, compiled.expression, json.dumps(compiled.to_json())],
        ["int4", "text", "text", "jsonb"],
    )
    return compiled.to_json()


def _batch_recommend(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return batch.batch_recommend(
        db,
        a.get("model"),
        a.get("users"),
        a.get("k"),
        a.get("filter"),
        a.get("params"),
        a.get("into_table"),
        a.get("exclude_seen") is not False,
        a.get("ranking"),
    )


def _batch_users_for_items(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return segments.batch_users_for_items(
        db,
        a.get("model"),
        a.get("items"),
        a.get("n"),
        a.get("filter"),
        a.get("params"),
        a.get("into_table"),
        a.get("exclude_seen") is not False,
    )


def _create_experiment(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return experiments.create_experiment(
        db, a.get("name"), a.get("variants"), a.get("model"), a.get("description")
    )


def _experiment_results(db: Db, a: dict[str, Any]) -> list[dict[str, Any]]:
    return experiments.results(
        db,
        a.get("experiment"),
        a.get("outcome"),
        a.get("window_seconds"),
        a.get("alpha"),
        a.get("min_effect"),
    )


def _compare_models(db: Db, a: dict[str, Any]) -> list[dict[str, Any]]:
    overrides = {k: a[k] for k in ("protocol", "holdout", "seed") if a.get(k) is not None}
    return experiments.compare_models(db, a.get("models"), a.get("segment_by"), overrides)


def _fold_in(db: Db, a: dict[str, Any]) -> str | None:
    if a.get("items") is not None:  # a list of items instead of a user's history
        items = [str(i) for i in a["items"]]
        return foldin.fold_in_items(db, int(a["model_id"]), int(a["version"]), items)
    return foldin.fold_in(db, int(a["model_id"]), int(a["version"]), str(a["user_id"]))


def _user_from_attributes(db: Db, a: dict[str, Any]) -> str | None:
    return attributes.user_vector(db, int(a["model_id"]), int(a["version"]), str(a["user_id"]))


def _refresh_items(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return attributes.refresh(db, a.get("model"))


def _check_data(db: Db, a: dict[str, Any]) -> list[dict[str, Any]]:
    return readiness.check_data(db, a.get("model"))


def _evaluate(db: Db, a: dict[str, Any]) -> dict[str, Any]:
    return training.evaluate(db, a.get("model"), _options(a.get("options")))


ENTRIES: dict[str, Callable[[Db, dict[str, Any]], Any]] = {
    "batch_recommend": _batch_recommend,
    "batch_users_for_items": _batch_users_for_items,
    "check_data": _check_data,
    "compare_models": _compare_models,
    "create_experiment": _create_experiment,
    "experiment_results": _experiment_results,
    "fold_in": _fold_in,
    "refresh_items": _refresh_items,
    "user_from_attributes": _user_from_attributes,
    "evaluate": _evaluate,
    "compile_filter": _compile_filter,
    "create_filter": _create_filter,
    "version": _version,
    "settings": lambda db, a: settings.listing(db),
    "create_model": _create_model,
    "train": _train,
}


_LAST: list[Db] = []


def _db(plpy: Any) -> Db:
    """The server's plpy is one object per session: reuse its Db, so plans prepared once
    (PL/Python keeps them for the session) serve every later call."""
    if not _LAST or _LAST[0].plpy is not plpy:
        _LAST[:] = [Db(plpy)]
    return _LAST[0]


def dispatch(plpy: Any, fn: str, args: str | None, reader: Db | None = None) -> str:
    """Run entry `fn` with JSON `args`; return '{"result": ...}' or '{"error": {...}}'.

    `reader` (outside the server: a hot standby's Db) is where a training reads the user's
    relations; see pyrec_pg.jobs.training.train."""
    try:
        db = _db(plpy) if reader is None else Db(plpy, reader)
        result = ENTRIES[fn](db, json.loads(args) if args else {})
    except Exception as e:
        fields = error_fields(e)
        if fields is None:
            raise
        return json.dumps({"error": fields})
    return json.dumps({"result": result})
