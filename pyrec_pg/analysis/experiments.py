"""Experiments: A/B variants, attribution of outcomes to them, and offline model comparison."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlglot
from sqlglot import exp

from pyrec_pg.catalog.models import Model, check_name, get_model, resolve_relation
from pyrec_pg.db import Db
from pyrec_pg.errors import (
    DuplicateObject,
    InvalidParameter,
    NotReady,
    NullValue,
    UndefinedColumn,
    UndefinedObject,
)
from pyrec_pg.jobs import training
from pyrec_pg.ml import evaluation
from pyrec_pg.ml.recipes.popularity import Popularity
from pyrec_pg.store import interactions

VARIANT_FIELDS = {
    "name",
    "share",
    "model",
    "serve",
    "control",
    "filter",
    "params",
    "promotion",
    "exploration",
}
SERVES = ("model", "popular")
POWER = 0.8  # of the sample-size rule: users needed to see a min_effect change 80% of the time
MAX_VARIANTS = 26
_VARIANT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
# what an outcome expression may contain: aggregates over the interactions' columns
_AGGREGATES = (exp.Sum, exp.Count, exp.Avg, exp.Max, exp.Min)
_ALLOWED = (
    *_AGGREGATES,
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Star,
    exp.Paren,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Neg,
    exp.Coalesce,
    exp.Distinct,
)


def _variants(db: Db, raw: Any, default_model: str | None) -> tuple[list[dict[str, Any]], str]:
    """Checked variants and the control variant's name."""
    if raw is None:
        raise NullValue("variants must not be null", hint=_VARIANTS_HINT)
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_VARIANTS:
        raise InvalidParameter(
            f"variants must be a JSON array of 2 to {MAX_VARIANTS} objects", hint=_VARIANTS_HINT
        )
    out: list[dict[str, Any]] = []
    for n, v in enumerate(raw, 1):
        if not isinstance(v, dict):
            raise InvalidParameter(f"variant {n} is not a JSON object", hint=_VARIANTS_HINT)
        extra = sorted(set(v) - VARIANT_FIELDS)
        if extra:
            raise InvalidParameter(
                f'unknown field "{extra[0]}" in variant {n}',
                hint="variant fields: " + ", ".join(sorted(VARIANT_FIELDS)),
            )
        name = v.get("name")
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            raise InvalidParameter(
                f"variant {n} needs a name of up to 32 letters, digits, _ or -, got {name!r}",
                hint=_VARIANTS_HINT,
            )
        if any(o["name"] == name for o in out):
            raise InvalidParameter(f'variant name "{name}" is used twice', hint="names are unique")
        share = v.get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not share > 0:
            raise InvalidParameter(
                f'share of variant "{name}" must be a positive number, got {share!r}',
                hint="shares are relative traffic: 50 and 50, or 0.9 and 0.1",
            )
        model = v.get("model", default_model)
        if model is None:
            raise InvalidParameter(
                f'variant "{name}" names no model',
                hint="give each variant a model, or pass model => to create_experiment",
            )
        if get_model(db, str(model)).active_version is None:  # fail now, not per request
            raise NotReady(
                f'model "{model}" of variant "{name}" has no trained version',
                hint=f"train it first: CALL pyrec.train('{model}')",
            )
        serve = v.get("serve", "model")
        if serve not in SERVES:
            raise InvalidParameter(
                f'serve of variant "{name}" must be "model" or "popular", got {serve!r}',
                hint='"popular" serves the most popular unseen items (a holdout/control)',
            )
        for key in ("promotion", "exploration", "params"):
            if key in v and not isinstance(v[key], dict):
                raise InvalidParameter(f'{key} of variant "{name}" must be a JSON object')
        if "params" in v and "filter" not in v:
            raise InvalidParameter(f'variant "{name}" has params but no filter')
        if "filter" in v:
            _check_filter(db, str(model), v["filter"], name)
        out.append({**v, "name": name, "model": str(model), "serve": serve})
    controls = [v["name"] for v in out if v.get("control")]
    if len(controls) > 1:
        raise InvalidParameter(
            f"variants {', '.join(controls)} are all marked control", hint="mark one control"
        )
    for v in out:
        v.pop("control", None)
    return out, controls[0] if controls else out[0]["name"]


def _cumulative(shares: list[float]) -> list[float]:
    """Each variant's cumulative share of the traffic, ending at exactly 1 (what a user's
    hash in [0, 1) is compared against)."""
    total = float(sum(shares))
    uptos = np.cumsum([s / total for s in shares]).tolist()
    uptos[-1] = 1.0  # rounding must not leave a gap at the top
    return [float(u) for u in uptos]


_VARIANTS_HINT = (
    'for example \'[{"name": "control", "share": 50, "serve": "popular"},'
    ' {"name": "als", "share": 50, "model": "movies"}]\''
)


def _check_filter(db: Db, model: str, flt: Any, variant: str) -> None:
    if not isinstance(flt, str):
        raise InvalidParameter(f'filter of variant "{variant}" must be text')
    m = get_model(db, model)
    db.scalar("SELECT pyrec._resolve_filter($1, $2)::text", [m.model_id, flt], ["int4", "text"])


def create_experiment(
    db: Db, name: Any, variants: Any, model: str | None, description: str | None
) -> dict[str, Any]:
    if name is None:
        raise NullValue("experiment name must not be null", hint="for example 'homepage_2026'")
    check_name("experiment", str(name))
    checked, control = _variants(db, variants, model)
    if db.one("SELECT 1 FROM pyrec._experiments WHERE name = $1", [name], ["text"]):
        raise DuplicateObject(
            f'experiment "{name}" already exists',
            hint=f"stop and drop it first: SELECT pyrec.drop_experiment('{name}')",
        )
    models = sorted({v["model"] for v in checked})
    db.run(
        "INSERT INTO pyrec._experiments (name, variants, uptos, control, models, description)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [
            name,
            json.dumps(checked),
            _cumulative([v["share"] for v in checked]),
            control,
            models,
            description,
        ],
        ["text", "jsonb", "float8[]", "text", "text[]", "text"],
    )
    return {
        "experiment": name,
        "control": control,
        "variants": {
            v["name"]: round(v["share"] / sum(x["share"] for x in checked), 6) for v in checked
        },
    }


@dataclass(frozen=True)
class Arm:
    """Per-user outcome values of one variant's users (0 where a user had no outcome)."""

    name: str
    values: npt.NDArray[np.float64]
    impressions: int


def compare_to_control(
    arms: list[Arm], control: str, binary: bool, alpha: float, min_effect: float
) -> list[dict[str, Any]]:
    """Per arm: users, conversions, means, and against control the difference with a
    (1 - alpha) confidence interval and a two-sided p-value. Binary outcomes (converted or
    not) use the two-proportion z-test, others Welch's t-test. users_needed: per arm, to
    detect a relative change of min_effect with 80% power at alpha."""
    base = next(a for a in arms if a.name == control)
    out = []
    for a in arms:
        x = (a.values > 0).astype(np.float64) if binary else a.values
        c = (base.values > 0).astype(np.float64) if binary else base.values
        n, nc = x.size, c.size
        row: dict[str, Any] = {
            "variant": a.name,
            "is_control": a.name == control,
            "users": int(n),
            "impressions": a.impressions,
            "converted_users": int((a.values > 0).sum()),
            "conversion_rate": float((a.values > 0).mean()) if n else None,
            "value_per_user": float(a.values.mean()) if n else None,
            "metric": "conversion_rate" if binary else "value_per_user",
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "users_needed": None,
            "enough_data": False,
        }
        needed = _users_needed(c, binary, alpha, min_effect)
        row["users_needed"] = needed
        if a.name != control and n >= 2 and nc >= 2:
            diff, low, high, p = _two_proportions(x, c, alpha) if binary else _welch(x, c, alpha)
            row.update(difference=diff, ci_low=low, ci_high=high, p_value=p)
            row["enough_data"] = needed is not None and min(n, nc) >= needed
        out.append(row)
    return out


def _normal_quantile(q: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q))


def _two_proportions(
    x: npt.NDArray[np.float64], c: npt.NDArray[np.float64], alpha: float
) -> tuple[float, float | None, float | None, float | None]:
    from scipy import stats

    p1, p0, n1, n0 = x.mean(), c.mean(), x.size, c.size
    diff = float(p1 - p0)
    pooled = (x.sum() + c.sum()) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))  # under "no difference"
    p = float(2 * stats.norm.sf(abs(diff) / se0)) if se0 > 0 else None
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = _normal_quantile(1 - alpha / 2)
    return diff, diff - z * se, diff + z * se, p


def _welch(
    x: npt.NDArray[np.float64], c: npt.NDArray[np.float64], alpha: float
) -> tuple[float, float | None, float | None, float | None]:
    from scipy import stats

    diff = float(x.mean() - c.mean())
    v1, v0 = x.var(ddof=1) / x.size, c.var(ddof=1) / c.size
    se = math.sqrt(v1 + v0)
    if se == 0:
        return diff, diff, diff, None
    df = (v1 + v0) ** 2 / (v1**2 / (x.size - 1) + v0**2 / (c.size - 1))
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    t = float(stats.t.ppf(1 - alpha / 2, df))
    return diff, diff - t * se, diff + t * se, p


def _users_needed(
    c: npt.NDArray[np.float64], binary: bool, alpha: float, min_effect: float
) -> int | None:
    """Users per arm for a two-sided test at alpha to detect mean * (1 + min_effect)."""
    if c.size < 2:
        return None
    mean = float(c.mean())
    delta = abs(mean) * min_effect
    if delta == 0:
        return None
    z = _normal_quantile(1 - alpha / 2) + _normal_quantile(POWER)
    if binary:
        p1 = min(mean * (1 + min_effect), 1.0)
        var = mean * (1 - mean) + p1 * (1 - p1)
    else:
        var = 2 * float(c.var(ddof=1))
    return math.ceil(z * z * var / (delta * delta))


def _outcome_sql(db: Db, model: Model, outcome: str) -> tuple[str, bool, list[Any]]:
    """(SQL of one user's outcome over their rows `x` in the window, binary?, bound values)."""
    cols = model.columns
    if "(" not in outcome:  # an event type: did the user do it, and how often
        et = cols.get("event_type")
        if et is None:
            raise NotReady(
                f"outcome {outcome!r} is an event type, but {model.interactions} has no"
                " event type column",
                hint="map one (options.columns.event_type) or pass an aggregate such as"
                " 'SUM(order_value)'",
            )
        return f"count(*) FILTER (WHERE lower(x.{db.ident(et)}::text) = lower($3))", True, [outcome]
    try:
        tree = sqlglot.parse_one(outcome, read="postgres")
    except sqlglot.errors.ParseError as e:
        raise InvalidParameter(
            f"outcome is not a valid expression: {str(e).splitlines()[0]}",
            hint="an aggregate over the interactions' columns, such as 'SUM(order_value)'",
        ) from e
    real = set(_columns(db, model))
    for node in tree.walk():
        if not isinstance(node, _ALLOWED):
            raise InvalidParameter(
                f"outcome may not contain {node.key.upper()}: {node.sql()[:80]}",
                hint="use SUM, COUNT, AVG, MIN, MAX over columns, numbers and + - * /",
            )
        if isinstance(node, exp.Column):
            if node.table or node.name.lower() not in real:
                raise UndefinedColumn(
                    f'outcome column "{node.sql()}" is not a column of {model.interactions}',
                    hint="columns: " + ", ".join(sorted(real)),
                )
            node.set("this", exp.to_identifier(node.name.lower(), quoted=True))
            node.set("table", exp.to_identifier("x"))
        if isinstance(node, exp.Literal) and node.is_string:
            raise InvalidParameter("outcome may not contain text literals", hint="numbers only")
    if not any(isinstance(n, _AGGREGATES) for n in tree.walk()):
        raise InvalidParameter(
            "outcome must aggregate a user's rows", hint="for example 'SUM(order_value)'"
        )
    return f"coalesce(({tree.sql(dialect='postgres')})::float8, 0)", False, []


def _columns(db: Db, model: Model) -> list[str]:
    return [
        r["name"]
        for r in db.rows(
            "SELECT attname::text AS name FROM pg_attribute WHERE attrelid = $1::regclass"
            " AND attnum > 0 AND NOT attisdropped",
            [model.interactions],
            ["text"],
        )
    ]


def results(
    db: Db,
    name: Any,
    outcome: Any,
    window_seconds: Any,
    alpha: Any,
    min_effect: Any,
) -> list[dict[str, Any]]:
    """Attribution of an experiment: each user's outcome within `window` after their first
    impression, read from the interactions relation of the control variant's model."""
    if name is None or outcome is None:
        raise NullValue(
            "experiment and outcome must not be null",
            hint="for example pyrec.experiment_results('homepage', 'purchase', '7 days')",
        )
    row = db.one(
        "SELECT experiment_id, variants, control FROM pyrec._experiments WHERE name = $1",
        [name],
        ["text"],
    )
    if row is None:
        raise UndefinedObject(
            f'experiment "{name}" does not exist',
            hint="SELECT name FROM pyrec.experiments lists the experiments",
        )
    if window_seconds is None or not float(window_seconds) > 0:
        raise InvalidParameter("window must be a positive interval", hint="for example '7 days'")
    if alpha is None or not 0 < float(alpha) < 1:
        raise InvalidParameter("alpha must be between 0 and 1", hint="0.05 is usual")
    if min_effect is None or not float(min_effect) > 0:
        raise InvalidParameter(
            "min_effect must be positive", hint="the relative change worth detecting, e.g. 0.1"
        )
    variants = row["variants"] if isinstance(row["variants"], list) else json.loads(row["variants"])
    control = row["control"]
    model = get_model(db, next(v["model"] for v in variants if v["name"] == control))
    ts = model.columns.get("timestamp")
    if ts is None:
        raise NotReady(
            f"{model.interactions} has no timestamp column to tell outcomes after an impression",
            hint='map one: options => \'{"columns": {"timestamp": "<column>"}}\'',
        )
    value, binary, extra = _outcome_sql(db, model, str(outcome))
    user, t = db.ident(model.columns["user"]), db.ident(ts)
    # each user counts in the variant of their first impression, from its time on; one hash
    # join over the interactions (a per-user lookup would cast the column and miss its index)
    sql = f"""
        WITH firsts AS (
            SELECT DISTINCT ON (user_id) user_id, variant, shown_at
              FROM pyrec.impressions WHERE experiment_id = $1 ORDER BY user_id, shown_at),
        counts AS (
            SELECT user_id, count(*) AS n FROM pyrec.impressions
             WHERE experiment_id = $1 GROUP BY user_id),
        outcomes AS (
            SELECT f.user_id, {value} AS v
              FROM firsts f JOIN {model.interactions} x ON x.{user}::text = f.user_id
               AND x.{t} > f.shown_at AND x.{t} <= f.shown_at + make_interval(secs => $2)
             WHERE x.{t} > (SELECT min(shown_at) FROM firsts)
             GROUP BY f.user_id)
        SELECT f.variant, c.n, coalesce(o.v, 0) AS v
          FROM firsts f JOIN counts c USING (user_id) LEFT JOIN outcomes o USING (user_id)"""
    rows = db.rows(
        sql,
        [row["experiment_id"], float(window_seconds), *extra],
        ["int4", "float8", *(["text"] * len(extra))],
    )
    arms = []
    for v in variants:
        mine = [r for r in rows if r["variant"] == v["name"]]
        arms.append(
            Arm(
                v["name"],
                np.asarray([float(r["v"] or 0) for r in mine], dtype=np.float64),
                int(sum(int(r["n"]) for r in mine)),
            )
        )
    return compare_to_control(arms, control, binary, float(alpha), float(min_effect))


def compare_models(
    db: Db,
    names: Any,
    segment_by: str | None,
    overrides: dict[str, Any],
) -> list[dict[str, Any]]:
    """Offline replay: every model's recipe fitted on one training split of the first model's
    data and scored on the same held-out users; metrics per model and per segment."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidParameter(
            "models must be a non-empty array of model names",
            hint="for example ARRAY['movies_als', 'movies_ease']",
        )
    models = [get_model(db, n) for n in names]
    first = models[0]
    for m in models[1:]:
        roles = ("user", "item")
        if m.interactions != first.interactions or any(
            m.columns.get(r) != first.columns.get(r) for r in roles
        ):
            raise InvalidParameter(
                f'model "{m.name}" reads {m.interactions}, "{first.name}" {first.interactions}',
                hint="compare models over the same interactions relation and column mapping",
            )
    plan = training._plan(first, overrides, db.in_server)
    if plan.holdout <= 0:
        raise InvalidParameter("holdout must be above 0 to compare", hint="e.g. holdout => 0.25")
    data = interactions.load(db, first, plan.options, plan.protocol == "time")
    train, test = evaluation.split(data.matrix, plan.protocol, plan.holdout, plan.seed, data.times)
    segments = _segments(db, first, segment_by, data.users)
    popular = Popularity().fit(train)  # users absent from training get it, as when served
    out: list[dict[str, Any]] = []
    for m in models:
        recipe = training._plan(m, None, db.in_server).recipe
        per_user, users, top10 = evaluation.per_user_metrics(
            recipe.fit(train), train, test, fallback=popular
        )
        labels = ["all"] if segments is None else ["all", *sorted(set(segments[users]))]
        for label in labels:
            mask = np.ones(users.size, dtype=bool)
            if label != "all" and segments is not None:
                mask = segments[users] == label
            values = {k: float(v[mask].mean()) for k, v in per_user.items()}
            values["coverage@10"] = evaluation.coverage(top10[mask], train.shape[1])
            out.extend(
                {
                    "model": m.name,
                    "segment": label,
                    "users": int(mask.sum()),
                    "metric": metric,
                    "value": round(value, 6),
                }
                for metric, value in values.items()
            )
    return out


def _segments(
    db: Db, model: Model, column: str | None, users: npt.NDArray[np.str_]
) -> npt.NDArray[np.object_] | None:
    """Each training user's value of a users-relation column, as text ('(none)' if absent)."""
    if column is None:
        return None
    if model.users is None:
        raise NotReady(
            f'model "{model.name}" has no users relation to segment by',
            hint="create the model with users => 'your_users_table'",
        )
    rel = resolve_relation(db, model.users, "users")
    if column not in rel.columns:
        raise UndefinedColumn(
            f'segment_by "{column}" is not a column of {model.users}',
            hint="columns: " + ", ".join(sorted(rel.columns)),
        )
    key = model.columns["users_id"]
    rows = db.rows(
        f"SELECT {db.ident(key)}::text AS u, {db.ident(column)}::text AS s FROM {rel.qualified}"
    )
    by_user = {r["u"]: r["s"] for r in rows}
    return np.asarray(
        [by_user.get(u) if by_user.get(u) is not None else "(none)" for u in users.tolist()],
        dtype=object,
    )
