"""Compiling parsed filters into a SQL predicate over candidate ids, checked by the server.

The predicate is evaluated inside the serving query, whose parameters are fixed:
$4 the current user's id (text, NULL when unknown), $5 a jsonb of values (the filter's own
literals under "#<n>", then the caller's params by name), $6 the current item's id (text).
Values are always read from $5 and cast to the column's type: nothing is spliced into SQL
but identifiers from the catalog, quoted by the server's quote_ident.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from pyrec_pg.catalog.models import Model, Relation, resolve_relation
from pyrec_pg.db import Db
from pyrec_pg.db.types import INTEGER_TYPES, NUMERIC_TYPES, TEXT_TYPES
from pyrec_pg.errors import (
    CannotCoerce,
    DataException,
    DatatypeMismatch,
    FeatureNotSupported,
    FilterSyntaxError,
    ProgramLimitExceeded,
    PyrecError,
    UndefinedColumn,
    UndefinedFunction,
    UndefinedTable,
    sqlstate_of,
)
from pyrec_pg.filters.syntax import NESTING_HINT, Clause, error, parse, position

CANDIDATE = {"ItemID": "i.item_id", "UserID": "u.user_id"}

DATA_EXCEPTION_CLASS = DataException.sqlstate[:2]  # any 22xxx: a value its type rejects
# what the server says when a filter compares values of different types
MISMATCHES = (UndefinedFunction.sqlstate, DatatypeMismatch.sqlstate, CannotCoerce.sqlstate)


@dataclass(frozen=True)
class Schema:
    """The model's relations as the filter sees them."""

    interactions: Relation
    items: Relation | None
    users: Relation | None
    columns: dict[str, Any]  # the model's column mapping

    @classmethod
    def load(cls, db: Db, model: Model) -> Schema:
        schema = cls(
            interactions=resolve_relation(db, model.interactions, "interactions"),
            items=resolve_relation(db, model.items, "items") if model.items else None,
            users=resolve_relation(db, model.users, "users") if model.users else None,
            columns=model.columns,
        )
        # the columns the filter SQL names: gone if a relation changed since create_model
        inter = schema.interactions
        mapped: dict[str, Relation | None] = {"user": inter, "item": inter, "event_type": inter}
        mapped |= {"items_id": schema.items, "users_id": schema.users}
        for role, rel in mapped.items():
            col = model.columns.get(role)
            if rel is not None and col is not None and col not in rel.columns:
                raise UndefinedColumn(
                    f'column "{col}" mapped as {role} of model "{model.name}" no longer exists'
                    f" in {rel.qualified}",
                    hint="restore the column, or drop and recreate the model",
                )
        return schema


@dataclass(frozen=True)
class CompiledFilter:
    expression: str
    target: str  # ItemID | UserID
    sql: str
    constants: dict[str, Any]
    params: list[str]
    uses_user: bool
    uses_item: bool
    scalar_params: list[str] = field(default_factory=list)
    # the same predicate testing Items/Users fields per candidate (an HNSW scan tests few)
    sql_per_row: str | None = None
    # parameters only EXCLUDE expressions read: an expression missing one of its own is
    # dropped (Personalize's rule), so a request need not give them
    optional_params: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "target": self.target,
            "sql": self.sql,
            "constants": self.constants,
            "params": self.params,
            "uses_user": self.uses_user,
            "uses_item": self.uses_item,
            "scalar_params": self.scalar_params,
            "sql_per_row": self.sql_per_row,
            "optional_params": self.optional_params,
        }


@dataclass(frozen=True)
class Typed:
    """A compiled SQL fragment and its Postgres type (None for a value that takes its type
    from the other side of a comparison)."""

    sql: str
    type: str | None
    is_event_type: bool = False
    pending: exp.Expr | None = None  # a literal or parameter not yet given a type

    @property
    def is_array(self) -> bool:
        return bool(self.type and self.type.endswith("[]"))

    @property
    def element(self) -> str | None:
        return self.type[:-2] if self.type and self.is_array else self.type

    @property
    def is_text(self) -> bool:
        return bool(self.type and self.type.startswith(TEXT_TYPES))


@dataclass
class _Compiler:
    db: Db
    text: str
    schema: Schema
    model: Model
    constants: dict[str, Any] = field(default_factory=dict)
    constant_types: dict[str, tuple[str, exp.Expr]] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    scalar_params: set[str] = field(default_factory=set)  # compared with =, <, LIKE ...
    uses_user: bool = False
    uses_item: bool = False
    dataset: str | None = None  # the dataset of the clause being compiled (Items, Users, ...)
    per_row: bool = False  # Items/Users tests as per-candidate lookups instead of one hash

    def fail(
        self,
        cls: type[PyrecError],
        node: exp.Expr | None,
        message: str,
        hint: str | None = None,
    ) -> PyrecError:
        return error(cls, self.text, position(node) if node is not None else None, message, hint)

    # --- clauses --------------------------------------------------------------------------

    def clause(self, c: Clause) -> str:
        datasets = {col.table for col in c.condition.find_all(exp.Column)} - {
            "CurrentItem",
            "CurrentUser",
        }
        allowed = {"ItemID": {"Items", "Interactions"}, "UserID": {"Users", "Interactions"}}[
            c.target
        ]
        for col in c.condition.find_all(exp.Column):
            if col.table not in allowed | {"CurrentItem", "CurrentUser"}:
                hint = (
                    (
                        "item filters test Items.<field> or Interactions.EVENT_TYPE; the current"
                        " user's fields are CurrentUser.<field>"
                    )
                    if c.target == "ItemID"
                    else ("user filters test Users.<field> or Interactions.EVENT_TYPE")
                )
                raise self.fail(
                    FeatureNotSupported,
                    col,
                    f"{col.table}.{col.name} cannot be filtered in a {c.target} filter",
                    hint,
                )
        if len(datasets) > 1:
            raise self.fail(
                FeatureNotSupported,
                c.condition,
                f"one expression cannot combine {' and '.join(sorted(datasets))} fields",
                "chain two expressions with |, e.g. EXCLUDE ItemID WHERE"
                ' Interactions.EVENT_TYPE IN ("click") | INCLUDE ItemID WHERE ...',
            )
        self.dataset = next(iter(datasets), None)
        cond = self.boolean(c.condition)
        member = self.membership(c, cond)
        if c.guard is not None:
            self.dataset = None
            for col in c.guard.find_all(exp.Column):
                if col.table not in ("CurrentUser", "CurrentItem"):
                    raise self.fail(
                        FeatureNotSupported,
                        col,
                        f"the IF condition can only test CurrentUser fields, not"
                        f" {col.table}.{col.name}",
                        "e.g. ... IF CurrentUser.MEMBERSHIP = $PREMIUM",
                    )
            guard = f"coalesce(({self.boolean(c.guard)}), false)"
            # an unmet IF makes the clause a no-op: it neither restricts nor removes anything
            member = (
                f"(NOT {guard} OR {member})" if c.action == "INCLUDE" else f"({guard} AND {member})"
            )
        return member

    def membership(self, c: Clause, cond: str) -> str:
        cand = CANDIDATE[c.target]
        if self.dataset is None:  # only current-user/item fields and values: a constant
            return f"coalesce(({cond}), false)"
        inter = self.schema.interactions
        cols = self.schema.columns
        if self.dataset == "Interactions":
            if c.target == "ItemID":
                self.uses_user = True
                return (
                    f"{cand} IN (SELECT x.{self.db.ident(cols['item'])}::text FROM"
                    f" {inter.qualified} x WHERE x.{self.db.ident(cols['user'])} ="
                    f" $4::{cols['user_type']} AND ({cond}))"
                )
            return (
                f"{cand} IN (SELECT x.{self.db.ident(cols['user'])}::text FROM"
                f" {inter.qualified} x WHERE ({cond}))"
            )
        rel, key, alias = self.relation(self.dataset, None)
        k = f"{alias}.{self.db.ident(key)}"
        # per row: one key lookup per candidate, for index scans that test few of them; only
        # where every candidate id has the key's own type, so the cast cannot fail. OFFSET 0
        # keeps the planner from turning the EXISTS into one hash of every matching row
        own = cols["item_type" if c.target == "ItemID" else "user_type"]
        source = f"FROM {rel.qualified} {alias} WHERE"
        if self.per_row and rel.columns.get(key) == own:
            return f"EXISTS (SELECT 1 {source} {k} = {cand}::{own} AND ({cond}) OFFSET 0)"
        return f"{cand} IN (SELECT {k}::text {source} {k} IS NOT NULL AND ({cond}))"

    def relation(self, dataset: str, node: exp.Expr | None) -> tuple[Relation, str, str]:
        if dataset in ("Items", "CurrentItem"):
            rel, key, alias = self.schema.items, self.schema.columns.get("items_id"), "it"
            option = "items"
        else:
            rel, key, alias = self.schema.users, self.schema.columns.get("users_id"), "us"
            option = "users"
        if rel is None or key is None:
            raise self.fail(
                UndefinedTable,
                node,
                f'model "{self.model.name}" has no {option} relation for {dataset} fields',
                f"create the model with {option} => '<table or view>'",
            )
        return rel, key, alias

    # --- expressions ----------------------------------------------------------------------

    def boolean(self, node: exp.Expr) -> str:
        t = self.expr(node)
        if t.pending is not None:
            raise self.fail(
                DatatypeMismatch,
                node,
                "a filter condition must be true or false",
                "compare a field with a value, e.g. Items.PRICE < 10",
            )
        if t.type not in (None, "boolean"):
            raise self.fail(
                DatatypeMismatch,
                node,
                f"condition {node.sql()} is of type {t.type}, not boolean",
                "compare the field with a value",
            )
        return t.sql

    def expr(self, node: exp.Expr) -> Typed:
        if isinstance(node, exp.In | exp.Between | exp.Like | exp.ILike | exp.Is):
            t = self.predicate(node)
            # sqlglot keeps NOT IN / NOT LIKE / IS NOT NULL ... as a negate flag on the node
            return Typed(f"(NOT {t.sql})", "boolean") if node.args.get("negate") else t
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this)
            return Typed(f"({inner.sql})", inner.type, inner.is_event_type, inner.pending)
        if isinstance(node, exp.And | exp.Or):
            op = "AND" if isinstance(node, exp.And) else "OR"
            return Typed(
                f"({self.boolean(node.this)} {op} {self.boolean(node.expression)})", "boolean"
            )
        if isinstance(node, exp.Not):
            return Typed(f"(NOT {self.boolean(node.this)})", "boolean")
        if isinstance(node, exp.EQ | exp.NEQ | exp.LT | exp.LTE | exp.GT | exp.GTE):
            return self.compare(node)
        if isinstance(node, exp.Boolean):
            return Typed("true" if node.this else "false", "boolean")
        if isinstance(node, exp.Null):
            return Typed("NULL", None)
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Lower | exp.Upper):
            arg = self.operand(node.this)
            fn = node.sql_name().lower()
            if not arg.is_text:
                raise self.fail(
                    DatatypeMismatch,
                    node,
                    f"{fn}() needs text, not {arg.type}",
                    f"apply {fn}() to text columns only",
                )
            return Typed(f"{fn}({arg.sql})", "text")
        if isinstance(node, exp.Length):
            if node.args.get("encoding") or node.args.get("binary"):
                raise self.fail(
                    FeatureNotSupported,
                    node,
                    "length() takes one argument in a filter",
                    "write length(<column>)",
                )
            arg = self.operand(node.this)
            fn = "cardinality" if arg.is_array else "length"
            return Typed(f"{fn}({arg.sql})", "integer")
        if isinstance(node, exp.Abs):
            arg = self.operand(node.this)
            return Typed(f"abs({arg.sql})", arg.type)
        if isinstance(node, exp.Literal | exp.Placeholder | exp.Neg):
            return Typed("", None, pending=node)
        raise self.fail(
            FeatureNotSupported,
            node,
            f"{node.sql()} is not allowed in a filter",
            "see docs/filters.md for what filters may contain",
        )

    def predicate(self, node: exp.Expr) -> Typed:
        """IN, BETWEEN, LIKE / ILIKE and IS NULL, before any negation."""
        if isinstance(node, exp.In):
            return self.in_list(node)
        if isinstance(node, exp.Between):
            if node.args.get("symmetric"):
                raise self.fail(
                    FeatureNotSupported,
                    node,
                    "BETWEEN SYMMETRIC is not allowed in a filter",
                    "write the bounds low to high: BETWEEN <low> AND <high>",
                )
            left = self.operand(node.this)
            low = self.cast(node.args["low"], left)
            high = self.cast(node.args["high"], left)
            return Typed(f"({left.sql} BETWEEN {low} AND {high})", "boolean")
        if isinstance(node, exp.Like | exp.ILike):
            left = self.operand(node.this)
            if not left.is_text:
                raise self.fail(
                    DatatypeMismatch,
                    node,
                    f"LIKE needs text, {node.this.sql()} is {left.type}",
                    "use LIKE on text columns only",
                )
            pattern = self.cast(node.expression, Typed("", "text"))
            op = "LIKE" if isinstance(node, exp.Like) else "ILIKE"
            return Typed(f"({left.sql} {op} {pattern})", "boolean")
        if isinstance(node, exp.Is):
            left = self.operand(node.this)
            if not isinstance(node.expression, exp.Null):
                raise self.fail(
                    FeatureNotSupported,
                    node,
                    "only IS NULL / IS NOT NULL are allowed",
                    "compare with = for other values",
                )
            return Typed(f"({left.sql} IS NULL)", "boolean")
        raise self.fail(
            FeatureNotSupported,
            node,
            f"{node.sql()} is not allowed in a filter",
            "see docs/filters.md for what filters may contain",
        )

    def operand(self, node: exp.Expr) -> Typed:
        t = self.expr(node)
        if t.pending is not None:
            raise self.fail(
                DatatypeMismatch,
                node,
                f"{node.sql()} must be compared with a field, not used alone",
                "put a field on the left, e.g. Items.PRICE <= $MAX_PRICE",
            )
        return t

    def column(self, node: exp.Column) -> Typed:
        dataset = node.table
        if dataset == "Interactions":
            rel = self.schema.interactions
            name = self.field_name(rel, node, dataset)
            is_event = name == self.schema.columns.get("event_type")
            if not is_event:
                raise self.fail(
                    FeatureNotSupported,
                    node,
                    f"Interactions.{node.name} cannot be filtered on",
                    "interaction filters test Interactions.EVENT_TYPE only"
                    " (the model's event type column)",
                )
            return Typed(f"x.{self.db.ident(name)}", rel.columns[name], is_event_type=True)
        rel, key, alias = self.relation(dataset, node)
        name = self.field_name(rel, node, dataset)
        col = self.db.ident(name)
        if dataset == "CurrentUser":
            self.uses_user = True
            users_type = rel.columns[key]
            return Typed(
                f"(SELECT cu.{col} FROM {rel.qualified} cu WHERE cu.{self.db.ident(key)}"
                f" = $4::{users_type})",
                rel.columns[name],
            )
        if dataset == "CurrentItem":
            self.uses_item = True
            return Typed(
                f"(SELECT ci.{col} FROM {rel.qualified} ci WHERE ci.{self.db.ident(key)}"
                f" = $6::{rel.columns[key]})",
                rel.columns[name],
            )
        return Typed(f"{alias}.{col}", rel.columns[name])

    def field_name(self, rel: Relation, node: exp.Column, dataset: str) -> str:
        """The real column for a field: exact name first, then a unique case-insensitive match."""
        name = node.name
        if dataset == "Interactions" and name.upper() == "EVENT_TYPE":
            et = self.schema.columns.get("event_type")
            if et is None:
                raise self.fail(
                    UndefinedColumn,
                    node,
                    f'model "{self.model.name}" has no event type column',
                    'map one with options => \'{"columns": {"event_type":'
                    ' "<column>"}}\' when creating the model',
                )
            return str(et)
        if name in rel.columns:
            return name
        if not node.meta.get("quoted"):
            if name.lower() in rel.columns:  # SQL folds unquoted names to lower case
                return name.lower()
            matches = [c for c in rel.columns if c.lower() == name.lower()]
            if len(matches) == 1:
                return matches[0]
        raise self.fail(
            UndefinedColumn,
            node,
            f'unknown field "{dataset}.{name}": {rel.qualified} has no such column',
            f"columns of {rel.qualified}: {', '.join(rel.columns)}",
        )

    # --- values ---------------------------------------------------------------------------

    def cast(self, node: exp.Expr, like: Typed) -> str:
        """SQL reading value `node` (literal, parameter or field) with the type of `like`."""
        t = self.expr(node)
        if t.pending is None:
            return t.sql
        typ = self.value_type(t.pending, like)
        if isinstance(t.pending, exp.Placeholder):
            self.scalar_params.add(str(t.pending.name))
        return f"({self.value_sql(t.pending, typ)})::{typ}"

    def value_type(self, node: exp.Expr, like: Typed) -> str:
        """The type a value is read as: its field's, except where SQL would not coerce it."""
        typ = like.element or "text"
        lit = node.this if isinstance(node, exp.Neg) else node
        if isinstance(lit, exp.Literal) and not lit.is_string:
            if like.element and like.element.startswith(TEXT_TYPES):
                raise self.fail(
                    DatatypeMismatch,
                    node,
                    "a number is compared with a text field",
                    'quote the value ("5") to compare it as text',
                )
            if typ in INTEGER_TYPES and not lit.is_int:
                return "numeric"  # year > 1.5 compares as numeric, as SQL does
        return typ

    def value_key(self, node: exp.Expr, typ: str) -> str:
        """The quoted key in $5 under which a parameter's or a literal's value is bound."""
        if isinstance(node, exp.Placeholder):
            name = str(node.name)
            if name not in self.params:
                self.params.append(name)
            return self.db.literal(name)
        key = f"#{len(self.constants)}"
        self.constants[key] = self.literal(node, typ)
        self.constant_types[key] = (typ, node)
        return self.db.literal(key)

    def value_sql(self, node: exp.Expr, typ: str) -> str:
        return f"$5->>{self.value_key(node, typ)}"

    def literal(self, node: exp.Expr, typ: str) -> Any:
        neg = isinstance(node, exp.Neg)
        lit = node.this if neg else node
        if not isinstance(lit, exp.Literal):
            raise self.fail(FeatureNotSupported, node, f"{node.sql()} is not a value")
        value: Any = lit.this
        if neg:
            value = f"-{value}"
        if typ in NUMERIC_TYPES:
            try:
                number = int(value) if typ in INTEGER_TYPES else float(value)
            except ValueError:
                raise self.fail(
                    DatatypeMismatch,
                    node,
                    f'value "{value}" is not a valid {typ}',
                    "compare numeric fields with numbers",
                ) from None
            if isinstance(number, float) and (typ == "numeric" or not math.isfinite(number)):
                # the text as written, for the server to cast: JSON has no inf or nan, and a
                # float would round numeric's 0.10000000000000001 or 1e400
                return str(value)
            return number
        return str(value)

    def value_array(self, node: exp.Expr, like: Typed) -> str:
        """An array of values with the element type of `like`, for IN."""
        t = self.expr(node)
        elem = (like.element or "text") if t.pending is None else self.value_type(t.pending, like)
        if t.pending is None:
            return f"{t.sql}::{elem}[]" if t.is_array else f"ARRAY[{t.sql}]::{elem}[]"
        if isinstance(t.pending, exp.Placeholder):
            return f"pyrec._values($5, {self.value_key(t.pending, elem)})::{elem}[]"
        return f"ARRAY[({self.value_sql(t.pending, elem)})::{elem}]"

    def in_list(self, node: exp.In) -> Typed:
        if node.args.get("query") or node.args.get("unnest") or not node.expressions:
            raise self.fail(
                FeatureNotSupported,
                node,
                "IN takes a list of values",
                'e.g. IN ("a", "b") or IN ($LIST)',
            )
        left = self.operand(node.this)
        values = " || ".join(self.value_array(v, left) for v in node.expressions)
        if left.is_event_type:
            sql = f"pyrec._event_match({left.sql}, {values})"
        elif left.is_array:
            sql = f"({left.sql} && ({values}))"
        elif left.is_text:
            sql = f"pyrec._text_in({left.sql}, {values})"
        else:
            sql = f"({left.sql} = ANY ({values}))"
        return Typed(sql, "boolean")

    def compare(self, node: exp.Binary) -> Typed:
        ops = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
        op = ops[type(node)]
        left, right = self.expr(node.this), self.expr(node.expression)
        if left.pending is not None and right.pending is not None:
            raise self.fail(
                DatatypeMismatch,
                node,
                f"{node.sql()} compares two values",
                "compare a field with a value",
            )
        if left.pending is not None:  # value op field: flip so the field is on the left
            flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
            node = type(node)(this=node.expression, expression=node.this)
            node.meta.update(node.this.meta)
            op = flipped.get(op, op)
            left, right = right, left
            node_right = node.expression
        else:
            node_right = node.expression
        rhs = right.sql if right.pending is None else self.cast(node_right, left)
        if left.is_event_type and op in ("=", "<>"):
            sql = f"pyrec._event_match({left.sql}, ARRAY[{rhs}]::text[])"
            return Typed(sql if op == "=" else f"(NOT {sql})", "boolean")
        if left.is_array:
            if op not in ("=", "<>"):
                raise self.fail(
                    DatatypeMismatch,
                    node,
                    f"{node.this.sql()} has several values and cannot be compared with {op}",
                    "use = or IN with multi-valued fields",
                )
            sql = f"({rhs} = ANY ({left.sql}))"
            return Typed(sql if op == "=" else f"(NOT {sql})", "boolean")
        if left.is_text and op in ("=", "<>"):
            sql = f"pyrec._text_in({left.sql}, ARRAY[{rhs}]::text[])"
            return Typed(sql if op == "=" else f"(NOT {sql})", "boolean")
        return Typed(f"({left.sql} {op} {rhs})", "boolean")


def compile_filter(db: Db, model: Model, text: str | None) -> CompiledFilter:
    """Parse, resolve against the model's real columns, compile, and let the server check it."""
    clauses = parse(text)
    assert text is not None
    try:
        return _compile(db, model, text, clauses)
    except RecursionError:
        raise ProgramLimitExceeded("filter is nested too deeply", hint=NESTING_HINT) from None


def _compile(db: Db, model: Model, text: str, clauses: list[Clause]) -> CompiledFilter:
    targets = {c.target for c in clauses}
    if len(targets) > 1:
        raise FilterSyntaxError(
            "a filter cannot mix ItemID and UserID expressions",
            hint="item filters use ItemID, user segment filters use UserID",
        )
    target = targets.pop()
    schema = Schema.load(db, model)
    comp = _Compiler(db, text, schema, model)
    sql = _predicate(comp, clauses)
    # the same again, key lookups per candidate: constants and parameters come out the same
    per_row = _Compiler(db, text, schema, model, per_row=True)
    sql_per_row = _predicate(per_row, clauses)
    assert per_row.constants == comp.constants and per_row.params == comp.params
    compiled = CompiledFilter(
        text,
        target,
        sql,
        comp.constants,
        comp.params,
        comp.uses_user,
        comp.uses_item,
        sorted(comp.scalar_params),
        sql_per_row if sql_per_row != sql else None,
        _optional_params(clauses),
    )
    for key, (typ, node) in comp.constant_types.items():
        if not typ.startswith(TEXT_TYPES):
            check_constant(db, comp, key, typ, node)
    check(db, compiled)
    return compiled


def _clause_params(c: Clause) -> list[str]:
    """The $PARAMETERS an expression reads, in its condition or its IF guard, in order."""
    nodes = [c.condition] + ([c.guard] if c.guard is not None else [])
    names = [str(p.name) for n in nodes for p in n.find_all(exp.Placeholder)]
    return list(dict.fromkeys(names))


def _optional_params(clauses: list[Clause]) -> list[str]:
    needed = {p for c in clauses if c.action == "INCLUDE" for p in _clause_params(c)}
    excluded = [p for c in clauses if c.action == "EXCLUDE" for p in _clause_params(c)]
    return [p for p in dict.fromkeys(excluded) if p not in needed]


def _predicate(comp: _Compiler, clauses: list[Clause]) -> str:
    includes = [comp.clause(c) for c in clauses if c.action == "INCLUDE"]
    excludes = []
    for c in clauses:
        if c.action != "EXCLUDE":
            continue
        member = comp.clause(c)
        names = _clause_params(c)
        if names:
            # an EXCLUDE expression runs only when all its parameters were given, else it
            # is dropped with the rest applied (Personalize's rule; INCLUDE needs them all)
            given = ", ".join(comp.db.literal(n) for n in names)
            member = f"($5 ?& ARRAY[{given}]::text[] AND {member})"
        excludes.append(member)
    parts = []
    if includes:
        parts.append("(" + " OR ".join(includes) + ")")
    if excludes:
        parts.append("NOT (" + " OR ".join(excludes) + ")")
    return " AND ".join(parts)


def check_constant(db: Db, comp: _Compiler, key: str, typ: str, node: exp.Expr) -> None:
    """Let the server cast a literal to its field's type, so a bad value fails at compile time."""
    try:
        db.rows(
            f"SELECT ($1::jsonb->>$2)::{typ}", [json.dumps(comp.constants), key], ["text", "text"]
        )
    except db.Error as e:
        if (sqlstate_of(e) or "").startswith(DATA_EXCEPTION_CLASS):
            raise comp.fail(
                DatatypeMismatch,
                node,
                f'value "{comp.constants[key]}" is not a valid {typ}',
                "compare each field with values of its own type",
            ) from e
        raise


def check(db: Db, f: CompiledFilter) -> None:
    """Have the server analyze the predicate: column types, operators, functions."""
    cand = "item_id" if f.target == "ItemID" else "user_id"
    alias = "i" if f.target == "ItemID" else "u"
    types = ["text", "text", "text", "text", "jsonb", "text"]
    try:
        for sql in filter(None, (f.sql, f.sql_per_row)):
            db.rows(
                f"SELECT 1 FROM (SELECT NULL::text AS {cand}) {alias} WHERE {sql} LIMIT 0",
                [None, None, None, None, json.dumps(f.constants), None],
                types,
            )
    except db.Error as e:
        if sqlstate_of(e) in MISMATCHES:
            raise DatatypeMismatch(
                f"filter compares values of different types: {e.args[0] if e.args else e}",
                hint="compare each field with values of its own type (numbers unquoted for"
                " numeric fields)",
            ) from e
        raise
