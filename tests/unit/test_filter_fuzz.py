"""Fuzzing the filter compiler without a server: every input compiles to whitelist-shaped SQL
or fails with a PyrecError carrying a SQLSTATE.

Two sources of input, both bounded so they run in the normal test command: hypothesis
(arbitrary text, and expressions built from the fake schema's fields with hostile fragments
spliced in) and atheris, a coverage-guided fuzzer, run in a subprocess for a fixed time.
Every statement that reaches the (fake) server is checked, not only the compiled predicate:
the catalog lookups, the casts of literals, and the predicate inside the server-side check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db
from pyrec_pg.errors import PyrecError
from pyrec_pg.filters import CompiledFilter, compile_filter, parse

from .fakes import FakeCatalog, FakePlan

# --- the fake schema ----------------------------------------------------------------------

RELATIONS: dict[str, dict[str, str]] = {
    "shop.items": {
        "item_id": "integer",
        "title": "text",
        "genre": "text[]",
        "year": "integer",
        "price": "numeric(10,2)",
        "rating": "real",
        "in_stock": "boolean",
        "Label": "character varying(20)",
        "tags": "integer[]",
        "released": "timestamp with time zone",
        'Odd"Col': "text",
    },
    "shop.users": {
        "user_id": "text",  # not the interactions' type: CurrentUser and Users cast $4 to text
        "age": "smallint",
        "gender": "text",
        "membership": "text",
        "premium": "boolean",
        "scores": "double precision[]",
    },
    "shop.events": {
        "user_id": "integer",
        "item_id": "integer",
        "event_type": "text",
        "weight": "real",
    },
    # relations changed since the "drifted" model was created: its mapped columns are gone
    "old.items": {"id": "integer", "year": "integer", "title": "text"},
    "old.users": {"id": "text", "age": "integer"},
}


def _model(name: str, items: str | None, users: str | None, event_type: str | None) -> Model:
    columns: dict[str, Any] = {
        "user": "user_id",
        "item": "item_id",
        "user_type": "integer",
        "item_type": "integer",
    }
    if event_type:
        columns["event_type"] = event_type
    if items:
        columns["items_id"] = "item_id"
    if users:
        columns["users_id"] = "user_id"
    return Model(1, name, "als", "shop.events", items, users, columns, {}, 1)


MODELS = {
    "shop": _model("shop", "shop.items", "shop.users", "event_type"),
    "bare": _model("bare", None, None, None),  # interactions only, no event type
    "drifted": _model("drifted", "old.items", "old.users", "event_type"),
    "no_event_column": _model("no_event_column", "shop.items", "shop.users", "kind"),
}
# the aliases the compiler gives the model's relations in its subqueries
ALIAS_ROLE = {"it": "items", "ci": "items", "us": "users", "cu": "users", "x": "interactions"}
CANDIDATES = {"ItemID": ("i", "item_id"), "UserID": ("u", "user_id")}

# --- what compiled SQL may contain (derived from compiler.py; keep in step with it) --------

ALLOWED_NODES: tuple[type[exp.Expr], ...] = (
    # boolean structure and predicates
    exp.And,
    exp.Or,
    exp.Not,
    exp.Paren,
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Is,
    exp.In,
    exp.Any,
    exp.ArrayOverlaps,  # &&
    exp.DPipe,  # || of value arrays
    exp.Array,  # ARRAY[...]
    exp.Null,
    exp.Boolean,
    # columns, relations and the subqueries that read them
    exp.Column,
    exp.Identifier,
    exp.Table,
    exp.TableAlias,
    exp.Select,
    exp.Subquery,
    exp.Exists,
    exp.From,
    exp.Where,
    exp.Offset,
    # values: ($5->>'key')::type, $4 / $6 ids
    exp.Cast,
    exp.DataType,
    exp.DataTypeParam,
    exp.JSONExtractScalar,
    exp.JSONPath,
    exp.JSONPathRoot,
    exp.JSONPathKey,
    exp.Parameter,
    exp.Literal,
    # $5 ?& ARRAY['key', ...]::text[]: an EXCLUDE expression runs only when its params are given
    exp.JSONBContainsAllTopKeys,
    # functions (checked by name below)
    exp.Coalesce,
    exp.Lower,
    exp.Upper,
    exp.Length,
    exp.Abs,
    exp.Anonymous,
    exp.Dot,
)
FUNCTIONS = {"cardinality"}  # plain function calls sqlglot does not model
PYREC_FUNCTIONS = {"_values", "_event_match", "_text_in"}  # pyrec.<name>(...)
SERVER_PARAMETERS = {"4", "5", "6"}  # current user, values, current item
SELECT_ARGS = {"expressions", "from", "from_", "where", "offset"}


def _type_sql(typ: str) -> str:
    return exp.DataType.build(typ, dialect="postgres").sql("postgres")


def _allowed_types() -> set[str]:
    types = {"text", "numeric", "text[]", "numeric[]"}
    for cols in RELATIONS.values():  # types from the catalog, spliced as the compiler does
        for t in cols.values():
            element = t.removesuffix("[]")
            types |= {t, element, element + "[]"}
    return {_type_sql(t) for t in types}


ALLOWED_TYPES = _allowed_types()


def _blank_quoted(sql: str) -> tuple[str, list[str]]:
    """The SQL with quoted identifiers and string literals blanked, and the literals' bodies."""
    out, literals, i = [], [], 0
    while i < len(sql):
        q = sql[i]
        if q in "'\"":
            j = i + 1
            while j < len(sql) and not (sql[j] == q and sql[j + 1 : j + 2] != q):
                j += 2 if sql[j] == q else 1
            assert j < len(sql), f"unterminated quote in {sql!r}"
            if q == "'":
                literals.append(sql[i + 1 : j].replace("''", "'"))
            out.append(q + " " * (j - i - 1) + q)
            i = j + 1
        else:
            out.append(q)
            i += 1
    return "".join(out), literals


def _scope_aliases(node: exp.Expr) -> set[str]:
    """The table aliases visible at `node`: its enclosing SELECTs' FROMs."""
    aliases = set()
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Select) and parent.args.get("from_", parent.args.get("from")):
            src = parent.args.get("from_") or parent.args.get("from")
            aliases.add(src.this.alias)
        parent = parent.parent
    return aliases


class _Where:
    """An assertion message naming the node, rendered only when the assertion fails."""

    def __init__(self, node: exp.Expr, sql: str) -> None:
        self.node, self.sql = node, sql

    def __str__(self) -> str:
        return f"{type(self.node).__name__} {self.node.sql('postgres')[:80]!r} in {self.sql}"


def assert_whitelist_shaped(sql: str, model: Model, target: str, keys: set[str]) -> None:
    """`sql` is a predicate the whitelist could have produced for `model`: see the module doc."""
    bare, literals = _blank_quoted(sql)
    assert ";" not in bare and "--" not in bare and "/*" not in bare, sql
    assert not re.search(r"\$(?![456]\b)", bare), f"unexpected parameter in {sql}"
    assert not re.search(r"(?i)\b[eubx]'", bare), f"special string literal in {sql}"
    assert set(literals) <= keys, f"string literals {set(literals) - keys} spliced into {sql}"

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # the compiler nests as deep as the filter
    try:
        trees = sqlglot.parse(sql, dialect="postgres")
    finally:
        sys.setrecursionlimit(limit)
    assert len(trees) == 1 and trees[0] is not None, sql
    tree = trees[0]
    cand_alias, cand_column = CANDIDATES[target]
    for node in tree.walk():
        where = _Where(node, sql)
        assert not node.comments, where
        assert isinstance(node, ALLOWED_NODES), where
        parent = node.parent
        if isinstance(node, exp.Literal):
            if node.is_string and isinstance(parent, exp.Array):
                guard = parent.parent.parent if parent.parent else None
                assert isinstance(guard, exp.JSONBContainsAllTopKeys), where
                assert node.name in keys, where
            elif node.is_string:
                assert isinstance(parent, exp.Anonymous) and parent.name == "_values", where
                assert parent.expressions.index(node) == 1 and node.name in keys, where
            elif isinstance(parent, exp.Parameter):
                assert node.name in SERVER_PARAMETERS, where
            elif isinstance(parent, exp.Select):
                assert node.name == "1", where  # SELECT 1 in EXISTS
            elif isinstance(parent, exp.Offset):
                assert node.name == "0", where
            else:
                assert isinstance(parent, exp.DataTypeParam), f"spliced number: {where}"
        elif isinstance(node, exp.JSONPathKey):
            assert node.name in keys, where
        elif isinstance(node, exp.JSONPath):
            assert [type(e) for e in node.expressions] == [exp.JSONPathRoot, exp.JSONPathKey]
        elif isinstance(node, exp.JSONExtractScalar | exp.JSONBContainsAllTopKeys):
            assert node.this.sql("postgres") == "$5", where
        elif isinstance(node, exp.Parameter):
            assert isinstance(node.this, exp.Literal), where
        elif isinstance(node, exp.DataType):
            if not isinstance(parent, exp.DataType):
                assert node.sql("postgres") in ALLOWED_TYPES, where
        elif isinstance(node, exp.Coalesce):
            assert [e.sql() for e in node.expressions] == ["FALSE"], where
        elif isinstance(node, exp.Is):
            assert isinstance(node.expression, exp.Null), where
        elif isinstance(node, exp.Anonymous):
            if isinstance(parent, exp.Dot):
                assert node.name in PYREC_FUNCTIONS, where
            else:
                assert node.name in FUNCTIONS, where
        elif isinstance(node, exp.Dot):
            schema = node.this
            assert isinstance(schema, exp.Identifier) and not schema.quoted, where
            assert schema.name == "pyrec" and isinstance(node.expression, exp.Anonymous), where
        elif isinstance(node, exp.Select):
            assert {k for k, v in node.args.items() if v} <= SELECT_ARGS, where
        elif isinstance(node, exp.Table):
            alias = node.alias
            assert alias in ALIAS_ROLE and not node.args.get("catalog"), where
            rel = getattr(model, ALIAS_ROLE[alias])
            assert rel is not None, where
            schema_id, name_id = node.args.get("db"), node.this
            assert schema_id is not None and schema_id.quoted and name_id.quoted, where
            assert f"{schema_id.name}.{name_id.name}" == rel, where
        elif isinstance(node, exp.Column):
            assert not node.args.get("db") and not node.args.get("catalog"), where
            table = node.args.get("table")
            assert isinstance(table, exp.Identifier) and not table.quoted, where
            ident = node.this
            assert isinstance(ident, exp.Identifier), where
            if table.name == cand_alias:
                assert ident.name == cand_column and not ident.quoted, where
            else:
                assert table.name in ALIAS_ROLE, where
                assert table.name in _scope_aliases(node), f"alias out of scope: {where}"
                assert ident.quoted, f"identifier not quoted: {where}"
                assert ident.name in RELATIONS[getattr(model, ALIAS_ROLE[table.name])], where


# --- compiling against the fake server ----------------------------------------------------

CATALOG_SQL: set[str] = set()  # the catalog lookups resolve_relation makes, filled below
CHECK_PREFIX = {
    "ItemID": "SELECT 1 FROM (SELECT NULL::text AS item_id) i WHERE ",
    "UserID": "SELECT 1 FROM (SELECT NULL::text AS user_id) u WHERE ",
}
CONSTANT_CHECK = re.compile(r"SELECT \(\$1::jsonb->>\$2\)::(.+)")


def _statements(plpy: FakeCatalog) -> Iterator[tuple[str, Any]]:
    for call in plpy.calls:
        if call[0] == "execute":
            query = call[1]
            yield (query.query if isinstance(query, FakePlan) else str(query)), call[2]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON: the server would refuse the jsonb")

    return json.loads(text, parse_constant=refuse)


def check_filter(text: str, model: Model = MODELS["shop"]) -> CompiledFilter | PyrecError:
    """Compile `text`; assert the outcome is clean and every statement sent is whitelisted."""
    plpy = FakeCatalog(RELATIONS)
    try:
        outcome: CompiledFilter | PyrecError = compile_filter(Db(plpy), model, text)
    except PyrecError as e:
        assert isinstance(e.sqlstate, str) and re.fullmatch(r"[0-9A-Z]{5}", e.sqlstate), e
        assert e.sqlstate != "XX000", f"internal error for {text!r}: {e}"
        assert isinstance(e.message, str) and e.message, repr(e)
        outcome = e
    keys: set[str] = set()
    if isinstance(outcome, CompiledFilter):
        keys = set(outcome.constants) | set(outcome.params)
        for name in outcome.params:
            assert re.fullmatch(r"[^\W\d]\w*", name) and f"${name}" in text, (text, name)
        for key in outcome.constants:
            assert re.fullmatch(r"#\d+", key), (text, key)
        _strict_json(json.dumps(outcome.constants))
        assert_every_value_bound(text, outcome)
        for sql in filter(None, (outcome.sql, outcome.sql_per_row)):
            assert_whitelist_shaped(sql, model, outcome.target, keys)
    for sql, args in _statements(plpy):
        if sql in CATALOG_SQL:
            continue
        if m := CONSTANT_CHECK.fullmatch(sql):
            assert _type_sql(m.group(1)) in ALLOWED_TYPES, sql
            assert args[1] in _strict_json(args[0]), (sql, args)
            continue
        assert isinstance(outcome, CompiledFilter), f"unexpected statement {sql!r}"
        prefix = CHECK_PREFIX[outcome.target]
        assert sql.startswith(prefix) and sql.endswith(" LIMIT 0"), sql
        assert sql[len(prefix) : -len(" LIMIT 0")] in (outcome.sql, outcome.sql_per_row), sql
        assert args[:4] == [None] * 4 and args[5] is None, args
        assert _strict_json(args[4]) == outcome.constants, args
    return outcome


def assert_every_value_bound(text: str, compiled: CompiledFilter) -> None:
    """Each literal of the filter is bound once and each $NAME is a parameter: nothing the
    user wrote is dropped on the way (or spliced, which the shape check rules out)."""
    nodes = [
        node
        for clause in parse(text)
        for root in (clause.condition, clause.guard)
        if root is not None
        for node in root.walk()
    ]
    literals = [n for n in nodes if isinstance(n, exp.Literal)]
    names = {str(n.name) for n in nodes if isinstance(n, exp.Placeholder)}
    assert len(compiled.constants) == len(literals), (text, compiled.constants, literals)
    assert set(compiled.params) == names, (text, compiled.params, names)


def _record_catalog_sql() -> None:
    plpy = FakeCatalog(RELATIONS)
    compile_filter(Db(plpy), MODELS["shop"], "year > 1")
    CATALOG_SQL.update(
        sql
        for sql, _ in _statements(plpy)
        if any(word in sql for word in ("pg_class", "pg_attribute", "parse_ident"))
    )
    assert len(CATALOG_SQL) == 4


_record_catalog_sql()


# --- the harness checks itself ------------------------------------------------------------


def test_the_fake_schema_compiles_every_kind_of_predicate() -> None:
    texts = [
        'INCLUDE ItemID WHERE Items.GENRE IN ("a", $G) AND Items.year > 3 | EXCLUDE ItemID'
        ' WHERE Interactions.EVENT_TYPE = "x" | INCLUDE ItemID WHERE Items.title ='
        " CurrentUser.gender IF CurrentUser.age > $A",
        "lower(title) LIKE 'a\\b' AND length(genre) BETWEEN 1 AND $N AND price IS NOT NULL"
        ' AND in_stock AND NOT "Odd""Col" ILIKE \'x\' AND upper("Label") = \'L\''
        " AND abs(rating) < 2.5 AND tags IN ($T) AND released > $WHEN",
        "INCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE AND Items.TAGS = 3",
        "INCLUDE UserID WHERE Users.AGE >= 18 AND Users.SCORES IN (1.5)"
        ' | EXCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("*")',
        "INCLUDE ItemID WHERE CurrentUser.PREMIUM = $P",
    ]
    for text in texts:
        out = check_filter(text)
        assert isinstance(out, CompiledFilter), (text, out)
    assert isinstance(check_filter("year > 1", MODELS["bare"]), PyrecError)


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("drifted", "year > 1"),  # compiled SQL naming the items' old key it."item_id"
        ("drifted", "INCLUDE ItemID WHERE Items.YEAR > CurrentUser.AGE"),  # KeyError user_id
        ("drifted", "INCLUDE ItemID WHERE Items.YEAR > CurrentItem.YEAR"),  # KeyError item_id
        ("no_event_column", 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")'),  # 'kind'
    ],
)
def test_regression_a_model_whose_relations_changed_fails_cleanly(model: str, text: str) -> None:
    out = check_filter(text, MODELS[model])
    assert isinstance(out, PyrecError) and out.sqlstate == "42703", out
    assert "no longer exists" in out.message


@pytest.mark.parametrize(
    "sql",
    [
        'it."year" > 5',  # a spliced number
        "it.\"title\" = 'x'",  # a spliced string
        "it.\"year\" > ($5->>'#9')::integer",  # a key the compiler did not make
        'i.item_id IN (SELECT it."item_id"::text FROM "shop"."items" it WHERE'
        ' it."nope" IS NULL)',  # a column the relation lacks
        'i.item_id IN (SELECT it."item_id"::text FROM "public"."canary" it WHERE true)',
        'i.item_id IN (SELECT it.item_id::text FROM "shop"."items" it WHERE true)',
        'it."year" IS NULL',  # an alias out of scope
        "pg_sleep(1) IS NULL",
        "pyrec.drop_filter(1) IS NULL",
        "(i.item_id)::regclass IS NULL",
        "true -- x",
        "true; SELECT 1",
        "coalesce(true, true)",
        'i.item_id IN (SELECT it."item_id"::text FROM "shop"."items" it JOIN'
        ' "shop"."users" us ON true WHERE true)',
        "$1 IS NULL",
        "i.title IS NULL",
        "i.item_id = U&'x'",
    ],
)
def test_the_shape_check_rejects_what_the_whitelist_would_not_produce(sql: str) -> None:
    with pytest.raises(AssertionError):
        assert_whitelist_shaped(sql, MODELS["shop"], "ItemID", {"#0", "G"})


@pytest.mark.parametrize(
    ("text", "sqlstate", "message"),
    [
        ("length(title, 'UTF8') > 1", "0A000", "length() takes one argument"),
        ("length(title, year) > 1", "0A000", "length() takes one argument"),
        ("year BETWEEN SYMMETRIC 2 AND 1", "0A000", "BETWEEN SYMMETRIC is not allowed"),
    ],
)
def test_regression_parts_of_the_filter_are_not_dropped(
    text: str, sqlstate: str, message: str
) -> None:
    out = check_filter(text)
    assert isinstance(out, PyrecError) and out.sqlstate == sqlstate and message in out.message


@pytest.mark.parametrize(
    ("text", "constant"),
    [
        ("INCLUDE ItemID WHERE Items.YEAR > 1e400", "1e400"),  # was float inf: not JSON
        ("rating = 'NaN'", "NaN"),  # was float nan: not JSON
        ("rating < 'inf'", "inf"),
        ("year > 0.10000000000000001", "0.10000000000000001"),  # was rounded to 0.1
        ("price = 1.5", "1.5"),
    ],
)
def test_regression_numbers_reach_the_server_as_written(text: str, constant: str) -> None:
    out = check_filter(text)
    assert isinstance(out, CompiledFilter) and out.constants == {"#0": constant}, out


# --- hypothesis: arbitrary text -----------------------------------------------------------

HOSTILE = [
    "'", '"', "''", '\\"', "\\", "--", "/*", "*/", ";", "; DROP TABLE x", "$$", "$q$", "$1",
    "?", ":x", "@x", "%s", "::regclass", "::text", "E'\\x27'", "U&'\\0041'", "x'00'", "->>",
    "*", "items.*", "ARRAY[1]", "(SELECT 1)", "UNION SELECT 1", "EXISTS (SELECT 1)",
    "pg_sleep(1)", "pyrec._values($5, 'x')", "COLLATE \"C\"", "IS DISTINCT FROM", "IS TRUE",
    "\u202e", "\u200f", "\uff59ear", "\U0001f600", "\u0660", "\u00b2", "\n", "\t", "\x00",
    "|", "||", "&&", "(", ")", ",", "NOT", "-", "- -", "1e400", "99999999999999999999",
    "-0", ".5", "1.", "0x10", "1_000", "$", "$G", "$\u00e9", "#0",
]  # fmt: skip

SQL_ALPHABET = st.sampled_from(
    [*"abcxyzIN()'\",;|$.:-*/\\ =<>!%@?#_0123456789\n", "\u00e9", "\u0660", "\U0001f600"]
)
ARBITRARY = st.one_of(
    st.text(max_size=200),
    st.text(SQL_ALPHABET, max_size=200),
    st.lists(st.sampled_from(HOSTILE), max_size=20).map("".join),
    st.lists(st.sampled_from(HOSTILE), max_size=20).map(" ".join),
    st.tuples(
        st.sampled_from(["INCLUDE ItemID WHERE ", "EXCLUDE UserID WHERE ", ""]),
        st.text(SQL_ALPHABET, max_size=100),
    ).map("".join),
)
# examples per hypothesis test (arbitrary text is cheaper: twice as many), bounded to keep the
# whole module near 40 s; raise it for a longer hunt: PYREC_FUZZ_EXAMPLES=20000
EXAMPLES = int(os.environ.get("PYREC_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _event(outcome: CompiledFilter | PyrecError) -> None:
    event("compiled" if isinstance(outcome, CompiledFilter) else f"error {outcome.sqlstate}")


@settings(FUZZ, max_examples=2 * EXAMPLES)
@example(text='x::t.n ("")', model="shop")  # sqlglot's ValueError escaped as a crash
@example(text="{{:}}", model="shop")  # and its AttributeError
@example(text='INCL$1E::etG. xtN (""|X \xdc AND Users.YEA\xdfR \x01 3', model="bare")
@given(text=ARBITRARY, model=st.sampled_from(sorted(MODELS)))
def test_arbitrary_text_compiles_cleanly_or_fails_cleanly(text: str, model: str) -> None:
    _event(check_filter(text, MODELS[model]))


# --- hypothesis: grammar-shaped expressions -----------------------------------------------


def _spellings(name: str) -> list[str]:
    return sorted({name, name.upper(), name.lower(), name.capitalize()})


def _fields(dataset: str, relation: str) -> list[str]:
    return [
        f"{ds}.{s}"
        for ds in _spellings(dataset)
        for col in RELATIONS[relation]
        if re.fullmatch(r"\w+", col)
        for s in _spellings(col)
    ]


P_FIELDS = st.one_of(
    st.sampled_from(_fields("Items", "shop.items")),
    st.sampled_from(_fields("Users", "shop.users")),
    st.sampled_from(_fields("CurrentUser", "shop.users")),
    st.sampled_from(_fields("CurrentItem", "shop.items")),
    st.sampled_from(["Interactions.EVENT_TYPE", "interactions.event_type", "Interactions.WEIGHT"]),
    st.sampled_from(["Items.NOPE", "Bogus.X", "Items.Odd", "CurrentUser.NOPE"]),
)
TEXT = st.one_of(st.text(max_size=8), st.sampled_from(HOSTILE))
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e5", "1e400", "-0", "1.5", "0.0", "\u0663", "1\u0660", "-1e-400"]),
)
PARAMS = st.sampled_from(["$G", "$Y", "$T", "$P", "$\u00e9t\u00e9", "$_x", "$A1"])
P_VALUE = st.one_of(
    NUMBER,
    TEXT.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    TEXT.map(lambda s: "'" + s.replace("'", "''") + "'"),
    PARAMS,
    st.sampled_from(["CurrentUser.AGE", "CurrentUser.GENDER", "CurrentItem.GENRE"]),
    st.sampled_from(["CurrentItem.YEAR", "CurrentItem.TAGS", '"*"', "Items.YEAR"]),
)
OPS_LIST = ["=", "!=", "<>", "<", "<=", ">", ">="]
OPS = st.sampled_from(OPS_LIST)


def _p_leaf() -> st.SearchStrategy[str]:
    values = st.lists(P_VALUE, min_size=1, max_size=4).map(lambda v: "(" + ", ".join(v) + ")")
    return st.one_of(
        st.tuples(P_FIELDS, st.sampled_from(["IN", "NOT IN", "in", "not in"]), values),
        st.tuples(P_FIELDS, OPS, P_VALUE),
        st.tuples(P_FIELDS, OPS, P_VALUE.map(lambda v: f"({v})")),
        st.tuples(P_FIELDS, st.sampled_from(["IN", "NOT IN"]), st.one_of(PARAMS, P_FIELDS)),
    ).map(" ".join)


S_COLUMNS = st.one_of(
    st.sampled_from([s for c in RELATIONS["shop.items"] for s in _spellings(c)]),
    st.sampled_from(['"Label"', '"Odd""Col"', '"title"', '"Title"', "items.year", "Items.genre"]),
    st.sampled_from(["currentuser.age", "currentitem.genre", "users.age", "x.y", "nope"]),
    st.sampled_from(["interactions.event_type", "lower(title)", 'upper("Label")']),
    st.sampled_from(["length(genre)", "length(title)", "abs(year)", "abs(price)", "lower(year)"]),
    st.sampled_from(["length(title, 'UTF8')", "length(title, $G)", "length(title, year)"]),
)
S_VALUE = st.one_of(
    NUMBER,
    TEXT.map(lambda s: "'" + s.replace("'", "''") + "'"),
    PARAMS,
    st.sampled_from(["NULL", "TRUE", "false", "-year", "- 1", "year", "title", "lower('x')"]),
)


def _s_leaf() -> st.SearchStrategy[str]:
    values = st.lists(S_VALUE, min_size=1, max_size=4).map(lambda v: "(" + ", ".join(v) + ")")
    return st.one_of(
        st.tuples(S_COLUMNS, OPS, S_VALUE).map(" ".join),
        st.tuples(S_VALUE, OPS, S_COLUMNS).map(" ".join),
        st.tuples(S_COLUMNS, st.sampled_from(["IN", "NOT IN"]), values).map(" ".join),
        st.tuples(
            S_COLUMNS,
            st.sampled_from(["BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "BETWEEN ASYMMETRIC"]),
            S_VALUE,
            S_VALUE,
        ).map(lambda t: f"{t[0]} {t[1]} {t[2]} AND {t[3]}"),
        st.tuples(
            S_COLUMNS, st.sampled_from(["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"]), S_VALUE
        ).map(" ".join),
        st.tuples(S_COLUMNS, st.sampled_from(["IS NULL", "IS NOT NULL", "IS TRUE"])).map(" ".join),
        S_COLUMNS,
        st.sampled_from(["TRUE", "FALSE", "NULL", "1=1", "in_stock", "NOT in_stock"]),
    )


def _condition(leaf: st.SearchStrategy[str], prefix_not: bool) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        shapes = [
            st.tuples(inner, st.sampled_from(["AND", "OR", "and", "Or"]), inner).map(" ".join),
            inner.map(lambda c: f"({c})"),
        ]
        if prefix_not:  # SQL has a NOT prefix; Personalize only NOT IN
            shapes.append(inner.map(lambda c: f"NOT {c}"))
        return st.one_of(shapes)

    return st.recursive(leaf, extend, max_leaves=8)


def _kind(typ: str) -> str:
    element = typ.removesuffix("[]")
    kind = (
        "int"
        if element in ("smallint", "integer", "bigint")
        else "num"
        if element.startswith(("numeric", "real", "double"))
        else "bool"
        if element == "boolean"
        else "time"
        if element.startswith("timestamp")
        else "text"
    )
    return kind + ("[]" if typ.endswith("[]") else "")


def _typed_fields(dataset: str, relation: str) -> dict[str, list[str]]:
    """Personalize field spellings by kind (text, int, num, bool, time, with [] for arrays)."""
    fields: dict[str, list[str]] = {}
    for col, typ in RELATIONS[relation].items():
        if re.fullmatch(r"\w+", col):
            fields.setdefault(_kind(typ), []).extend(f"{dataset}.{s}" for s in _spellings(col))
    return fields


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


TYPED_VALUES: dict[str, st.SearchStrategy[str]] = {
    "text": st.one_of(TEXT.map(_quoted), st.sampled_from(['"Drama"', '"*"', "CurrentUser.GENDER"])),
    "int": st.one_of(st.integers(-40000, 40000).map(str), st.just("CurrentUser.AGE")),
    "num": st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
        st.integers(-100, 100).map(str),
    ),
    "bool": st.sampled_from(['"true"', '"false"', '"t"', "CurrentUser.PREMIUM"]),
    "time": st.sampled_from(['"2020-01-01"', '"2020-01-01 10:00+02"', '"epoch"']),
}


def _typed_leaf(fields: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """A predicate whose values fit its field: the kind of input that compiles."""

    def leaf(kind: str) -> st.SearchStrategy[str]:
        element = kind.removesuffix("[]")
        value = st.one_of(TYPED_VALUES[element], PARAMS)
        values = st.lists(value, min_size=1, max_size=4).map(lambda v: "(" + ", ".join(v) + ")")
        field = st.sampled_from(fields[kind])
        ops = ["=", "!="] if kind.endswith("[]") or element == "bool" else OPS_LIST
        return st.one_of(
            st.tuples(field, st.sampled_from(["IN", "NOT IN"]), values).map(" ".join),
            st.tuples(field, st.sampled_from(["IN", "NOT IN"]), PARAMS).map(" ".join),
            st.tuples(field, st.sampled_from(ops), value).map(" ".join),
        )

    return st.one_of([leaf(kind) for kind in sorted(fields)])


ITEM_FIELDS = _typed_fields("Items", "shop.items")
USER_FIELDS = _typed_fields("Users", "shop.users")
GUARD_FIELDS = _typed_fields("CurrentUser", "shop.users")
EVENT_LEAF = st.tuples(
    st.sampled_from(["IN", "NOT IN", "=", "!="]),
    st.lists(TYPED_VALUES["text"], min_size=1, max_size=3),
).map(lambda t: f"Interactions.EVENT_TYPE {t[0]} ({', '.join(t[1])})")


def _clause(target: str) -> st.SearchStrategy[str]:
    """One expression: mostly over one dataset with fitting values, sometimes anything."""
    fields = ITEM_FIELDS if target == "ItemID" else USER_FIELDS
    condition = st.one_of(
        _condition(_typed_leaf(fields), prefix_not=False),
        _condition(_typed_leaf(fields), prefix_not=False),
        _condition(EVENT_LEAF, prefix_not=False),
        _condition(_p_leaf(), prefix_not=False),
    )
    guard = st.one_of(
        st.just(""),
        _condition(_typed_leaf(GUARD_FIELDS), prefix_not=False).map(lambda c: f" IF {c}"),
        _p_leaf().map(lambda c: f" IF {c}"),
    )
    return st.tuples(
        st.sampled_from(["INCLUDE", "EXCLUDE", "include", "Exclude"]),
        st.sampled_from([target, target.upper(), target.lower()]),
        condition,
        guard,
    ).map(lambda t: f"{t[0]} {t[1]} WHERE {t[2]}{t[3]}")


def _shorthand_leaf() -> st.SearchStrategy[str]:
    """A shorthand predicate over an item column with a value of its kind."""

    def leaf(col: str) -> st.SearchStrategy[str]:
        kind = _kind(RELATIONS["shop.items"][col])
        element = kind.removesuffix("[]")
        name = st.sampled_from(
            [exp.to_identifier(col, quoted=True).sql("postgres")]
            + (_spellings(col) if col.isidentifier() else [])
        )
        if element == "text" and not kind.endswith("[]"):
            name = st.one_of(name, name.map(lambda n: f"lower({n})"))
        if element in ("int", "num") and not kind.endswith("[]"):
            name = st.one_of(name, name.map(lambda n: f"abs({n})"))
        if kind.endswith("[]"):
            name = st.one_of(name, name.map(lambda n: f"length({n})"))
        value = st.one_of(
            TYPED_VALUES[element].map(
                lambda v: "'" + v[1:-1].replace("'", "''") + "'" if v.startswith('"') else v
            ),
            PARAMS,
        ).map(lambda v: v.lower() if v.startswith("Current") else v)
        values = st.lists(value, min_size=1, max_size=4).map(lambda v: "(" + ", ".join(v) + ")")
        return st.one_of(
            st.tuples(name, st.sampled_from(OPS_LIST), value).map(" ".join),
            st.tuples(value, st.sampled_from(OPS_LIST), name).map(" ".join),
            st.tuples(name, st.sampled_from(["IN", "NOT IN"]), values).map(" ".join),
            st.tuples(name, value, value).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
            st.tuples(name, st.sampled_from(["LIKE", "NOT ILIKE"]), value).map(" ".join),
            st.tuples(name, st.sampled_from(["IS NULL", "IS NOT NULL"])).map(" ".join),
        )

    return st.one_of([leaf(col) for col in sorted(RELATIONS["shop.items"])])


CLAUSES = {target: _clause(target) for target in CANDIDATES}
PERSONALIZE = st.one_of(
    [st.lists(c, min_size=1, max_size=3).map(" | ".join) for c in CLAUSES.values()]
)
MIXED_TARGETS = st.lists(st.one_of(list(CLAUSES.values())), min_size=2, max_size=3).map("|".join)
SHORTHAND = st.one_of(
    _condition(_shorthand_leaf(), prefix_not=True),
    _condition(_shorthand_leaf(), prefix_not=True),
    _condition(_s_leaf(), prefix_not=True),
)


@st.composite
def _hostile(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A well-formed expression with a hostile fragment spliced in, or deeply nested, or long."""
    text = draw(base)
    how = draw(st.sampled_from(["splice", "replace", "nest", "not", "long", "repeat"]))
    if how in ("splice", "replace"):
        at = draw(st.integers(0, len(text)))
        end = at if how == "splice" else draw(st.integers(at, len(text)))
        return text[:at] + draw(st.sampled_from(HOSTILE)) + text[end:]
    if how == "nest":
        n = draw(st.sampled_from([1, 2, 50, 150, 400, 1000, 1999]))
        head, sep, cond = text.partition(" WHERE ")
        if sep:
            return head + sep + "(" * n + cond + ")" * n
        return "(" * n + text + ")" * n
    if how == "not":
        return "NOT " * draw(st.sampled_from([1, 2, 100, 300, 999])) + text
    if how == "long":
        return text + " OR " + text + " AND title = '" + "x" * draw(st.integers(3000, 4100)) + "'"
    sep = draw(st.sampled_from([" AND ", " OR ", " | "]))
    return sep.join([text] * draw(st.integers(2, 400)))


GRAMMAR = st.one_of(
    PERSONALIZE,
    SHORTHAND,
    MIXED_TARGETS,
    _hostile(PERSONALIZE),
    _hostile(SHORTHAND),
)


@FUZZ
@given(text=GRAMMAR, model=st.sampled_from(["shop", "shop", "shop", *MODELS]))
# regression examples: inputs that once crashed or produced SQL the whitelist did not make
@example(text="length(title, 'UTF8') IS NULL", model="shop")  # the argument was dropped
@example(text="length(title, $G) IS NULL", model="shop")
@example(text="year BETWEEN SYMMETRIC 2 AND 1", model="shop")  # ran as BETWEEN 2 AND 1
@example(text="INCLUDE ItemID WHERE Items.YEAR > 1e400", model="shop")  # inf: no JSON
@example(text="INCLUDE ItemID WHERE Items.RATING = -1e400", model="shop")
@example(text="rating = 'NaN'", model="shop")
def test_grammar_shaped_filters_compile_to_whitelisted_sql(text: str, model: str) -> None:
    _event(check_filter(text, MODELS[model]))


# --- atheris: coverage-guided, in a subprocess for a fixed time ---------------------------

ATHERIS_SECONDS = 20
ATHERIS_DICT = [
    "INCLUDE", "EXCLUDE", "ItemID", "UserID", "WHERE", "IF", "AND", "OR", "NOT", "IN", "LIKE",
    "ILIKE", "BETWEEN", "IS", "NULL", "TRUE", "|", "(", ")", ",", "=", "<", ">=", "!=", "<>",
    "Items.", "Users.", "CurrentUser.", "CurrentItem.", "Interactions.EVENT_TYPE", "$G",
    "lower(", "upper(", "length(", "abs(", *[c for c in RELATIONS["shop.items"] if c.isalnum()],
    *HOSTILE,
]  # fmt: skip
ATHERIS_SEEDS = [
    'INCLUDE ItemID WHERE Items.GENRE IN ("a", $G) AND Items.YEAR > 3',
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE = "x" | INCLUDE ItemID WHERE Items.TITLE ='
    " CurrentUser.GENDER IF CurrentUser.AGE > $A",
    "lower(title) LIKE 'a' AND length(genre) BETWEEN 1 AND $N AND price IS NOT NULL",
    'NOT in_stock OR tags IN ($T) OR "Odd""Col" = \'x\' OR year = -1.5',
    "INCLUDE UserID WHERE Users.AGE >= 18 | EXCLUDE UserID WHERE Users.GENDER NOT IN ($G)",
]


def atheris_main() -> None:  # pragma: no cover - runs in the fuzzing subprocess
    """Entry point of the atheris subprocess (see test_atheris_finds_nothing)."""
    import atheris

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        model = MODELS["bare" if fdp.ConsumeIntInRange(0, 7) == 0 else "shop"]
        text = fdp.ConsumeBytes(fdp.remaining_bytes()).decode("utf-8", "replace")
        check_filter(text, model)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


ATHERIS_LAUNCHER = """
import atheris
with atheris.instrument_imports(include=["pyrec_pg.filters", "sqlglot"]):
    import sqlglot.dialects.postgres
    import pyrec_pg.filters
from tests.unit.test_filter_fuzz import atheris_main
atheris_main()
"""


def _dict_entry(word: str) -> str:
    """A libFuzzer dictionary line: printable ASCII as is, other bytes as \\xNN."""
    body = "".join(
        chr(b) if 32 <= b < 127 and chr(b) not in '\\"' else f"\\x{b:02x}" for b in word.encode()
    )
    return f'"{body}"'


def test_atheris_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, seed in enumerate(ATHERIS_SEEDS):
        (corpus / f"seed{n}").write_bytes(b"\x01" + seed.encode())
    (tmp_path / "filters.dict").write_text("".join(_dict_entry(w) + "\n" for w in ATHERIS_DICT))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            ATHERIS_LAUNCHER,
            f"-max_total_time={ATHERIS_SECONDS}",
            "-runs=2000000",
            f"-dict={tmp_path / 'filters.dict'}",
            f"-artifact_prefix={tmp_path}/",
            "-max_len=4200",
            "-rss_limit_mb=2048",
            str(corpus),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=ATHERIS_SECONDS + 30,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash", "oom")))
    assert proc.returncode == 0 and not crashes, proc.stderr[-6000:]
    assert re.search(r"Done \d+ runs", proc.stderr), proc.stderr[-3000:]
