"""Postgres type names (as format_type prints them) grouped by what pyrec does with them."""

from __future__ import annotations

INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
NUMERIC_TYPES = INTEGER_TYPES | {"real", "double precision", "numeric"}
# a tuple, so that str.startswith also matches "character varying(20)"
TEXT_TYPES: tuple[str, ...] = ("text", "character varying", "character", "name", "citext")
# numbers read as seconds since the epoch; smallint cannot hold one
EPOCH_TYPES = NUMERIC_TYPES - {"smallint"}
TIME_TYPES = EPOCH_TYPES | {"timestamp with time zone", "timestamp without time zone", "date"}
