"""Column resolution and option validation of model definitions, on hand-made relations."""

from __future__ import annotations

from typing import Any

import pytest

from pyrec_pg.catalog.models import Relation, resolve_columns, validate_options
from pyrec_pg.errors import DatatypeMismatch, InvalidParameter, UndefinedColumn


def _rel(columns: dict[str, str], pk: list[str] | None = None, name: str = "t") -> Relation:
    return Relation("public", name, f"public.{name}", columns, pk or [])


EVENTS = _rel(
    {
        "customer_id": "integer",
        "user_id": "bigint",
        "product_id": "text",
        "created_at": "date",
        "ts": "timestamp with time zone",
        "weight": "real",
        "rating": "smallint",
        "action": "text",
    },
    name="events",
)


def test_auto_detection_follows_candidate_order() -> None:
    cols = resolve_columns(EVENTS, None, None, {})
    assert cols == {
        "user": "user_id",  # before customer_id although it comes later in the table
        "item": "product_id",
        "timestamp": "ts",  # before created_at
        "event_type": "action",
        "event_value": "rating",  # before weight
        "session": None,
        "user_type": "bigint",
        "item_type": "text",
        "timestamp_type": "timestamp with time zone",
    }


def test_optional_roles_are_none_when_absent() -> None:
    cols = resolve_columns(_rel({"userid": "integer", "movie_id": "integer"}), None, None, {})
    assert cols["user"] == "userid" and cols["item"] == "movie_id"
    assert cols["timestamp"] is None and cols["event_type"] is None
    assert cols["event_value"] is None
    assert "items_id" not in cols and "users_id" not in cols


def test_explicit_mapping_wins() -> None:
    mapping = {"user": "customer_id", "timestamp": "created_at", "event_value": "weight"}
    cols = resolve_columns(EVENTS, None, None, mapping)
    assert cols["user"] == "customer_id" and cols["user_type"] == "integer"
    assert cols["timestamp"] == "created_at"
    assert cols["event_value"] == "weight"


def test_mapping_to_a_missing_column() -> None:
    with pytest.raises(UndefinedColumn) as info:
        resolve_columns(EVENTS, None, None, {"item": "sku"})
    assert info.value.message == 'column "sku" mapped as item does not exist in public.events'
    assert info.value.hint is not None and "product_id" in info.value.hint


def test_missing_user_column_lists_the_columns() -> None:
    rel = _rel({"who": "text", "item_id": "text", "at": "date"})
    with pytest.raises(UndefinedColumn) as info:
        resolve_columns(rel, None, None, {})
    e = info.value
    assert e.sqlstate == "42703"
    assert e.message == "cannot find the user column of public.t"
    assert e.hint is not None
    assert '"columns": {"user": "<column>"}' in e.hint
    assert e.hint.endswith("columns of public.t: who, item_id, at")


def test_missing_item_column() -> None:
    with pytest.raises(UndefinedColumn, match="item column"):
        resolve_columns(_rel({"user_id": "int"}), None, None, {})


def test_unknown_role() -> None:
    with pytest.raises(InvalidParameter) as info:
        resolve_columns(EVENTS, None, None, {"user": "user_id", "price": "x"})
    assert info.value.message == 'unknown column role "price" in options.columns'
    assert info.value.hint is not None and "event_value" in info.value.hint


@pytest.mark.parametrize(
    ("column", "type_", "role"),
    [
        ("ts", "text", "timestamp"),
        ("rating", "text", "event value"),
        ("action", "integer", "event type"),
    ],
)
def test_wrongly_typed_optional_columns(column: str, type_: str, role: str) -> None:
    rel = _rel({"user_id": "int", "item_id": "int", column: type_})
    with pytest.raises(DatatypeMismatch) as info:
        resolve_columns(rel, None, None, {})
    assert info.value.sqlstate == "42804"
    assert info.value.message == f'{role} column "{column}" has type {type_}'
    assert info.value.hint


@pytest.mark.parametrize("type_", ["bigint", "date", "timestamp without time zone", "numeric"])
def test_accepted_timestamp_types(type_: str) -> None:
    rel = _rel({"user_id": "int", "item_id": "int", "event_time": type_})
    assert resolve_columns(rel, None, None, {})["timestamp"] == "event_time"


INTER = _rel({"viewer_id": "integer", "movie_id": "integer"})


@pytest.mark.parametrize(
    ("columns", "pk", "key"),
    [
        ({"id": "integer", "movie_id": "integer"}, [], "movie_id"),  # same name as in inter
        ({"id": "integer", "title": "text"}, [], "id"),
        ({"code": "integer", "title": "text"}, ["code"], "code"),  # single-column primary key
    ],
)
def test_items_key_column(columns: dict[str, str], pk: list[str], key: str) -> None:
    cols = resolve_columns(INTER, _rel(columns, pk, "movies"), None, {})
    assert cols["items_id"] == key


@pytest.mark.parametrize("pk", [[], ["code", "region"]])
def test_items_key_column_not_found(pk: list[str]) -> None:
    items = _rel({"code": "integer", "region": "text"}, pk, "movies")
    with pytest.raises(UndefinedColumn) as info:
        resolve_columns(INTER, items, None, {})
    assert info.value.message == "cannot tell which column of public.movies is the item id"
    assert info.value.hint is not None and "code, region" in info.value.hint


def test_users_key_column_and_explicit_key_mapping() -> None:
    users = _rel({"viewer_id": "integer", "uid": "integer"}, ["uid"], "viewers")
    items = _rel({"code": "integer", "movie_id": "integer"}, [], "movies")
    cols = resolve_columns(INTER, items, users, {"items_id": "code"})
    assert cols["users_id"] == "viewer_id"
    assert cols["items_id"] == "code"
    with pytest.raises(UndefinedColumn, match='"nope" mapped as users_id'):
        resolve_columns(INTER, items, users, {"users_id": "nope"})


def test_valid_options_pass() -> None:
    validate_options({}, "als")
    validate_options(
        {
            "columns": {"user": "u"},
            "event_weights": {"purchase": 5, "view": 0.5, "skip": 0},
            "exclude_seen": True,
            "seed": 3,
            "holdout": 0,
            "params": {"factors": 8},
        },
        "als",
    )
    validate_options({"holdout": 0.999}, "popularity")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"factors": 8}, 'unknown option "factors"'),
        ({"event_weights": {"click": -1}}, "event_weights"),
        ({"event_weights": {"click": True}}, "event_weights"),
        ({"event_weights": {"click": "2"}}, "event_weights"),
        ({"event_weights": [1, 2]}, "event_weights"),
        ({"event_weights": None}, "event_weights"),
        ({"columns": ["user_id"]}, "options.columns must be a JSON object"),
        ({"params": 8}, "options.params must be a JSON object"),
        ({"holdout": 1}, "options.holdout must be a fraction in [0, 1)"),
        ({"holdout": -0.1}, "holdout"),
        ({"holdout": "0.2"}, "holdout"),
        ({"params": {"factors": 0}}, 'parameter "factors" of recipe als is out of range'),
    ],
)
def test_bad_options(options: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        validate_options(options, "als")
    assert words in info.value.message


def test_unknown_option_hint_lists_options() -> None:
    with pytest.raises(InvalidParameter) as info:
        validate_options({"zzz": 1}, "als")
    assert info.value.hint == (
        "options are: columns, engine, event_types, event_value_threshold, event_weights,"
        " exclude_seen, holdout, params, protocol, recency_half_life_days, seed, spark,"
        " use_event_value, window_days"
    )


def test_items_key_column_detects_item_id_when_interactions_use_another_name() -> None:
    inter = _rel({"user_id": "integer", "product_id": "integer"}, [], "events")
    items = _rel({"item_id": "integer", "name": "text"}, [], "items_v")
    assert resolve_columns(inter, items, None, {})["items_id"] == "item_id"


@pytest.mark.parametrize(
    "options",
    [{"seed": "x"}, {"seed": True}, {"seed": -1}, {"exclude_seen": 1}, {"holdout": False}],
)
def test_bad_seed_exclude_seen_and_holdout_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(InvalidParameter):
        validate_options(options, "als")
