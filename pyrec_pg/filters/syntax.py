"""Parsing filters into sqlglot expression trees: Personalize's grammar and the SQL shorthand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp

from pyrec_pg.errors import FilterSyntaxError, NullValue, ProgramLimitExceeded, PyrecError

MAX_LENGTH = 4000
DATASETS = {
    "items": "Items",
    "users": "Users",
    "interactions": "Interactions",
    "currentitem": "CurrentItem",
    "currentuser": "CurrentUser",
}
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<param>\$[^\W\d]\w*)
      | (?P<field>[^\W\d]\w*\.[^\W\d]\w*)
      | (?P<word>[^\W\d]\w*)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int  # 0-based character offset in the expression


@dataclass(frozen=True)
class Clause:
    """One `INCLUDE|EXCLUDE ItemID|UserID WHERE condition [IF guard]` of a (chained) filter."""

    action: Literal["INCLUDE", "EXCLUDE"]
    target: Literal["ItemID", "UserID"]
    condition: exp.Expr
    guard: exp.Expr | None
    pos: int


def at(node: exp.Expr, pos: int) -> exp.Expr:
    node.meta["pos"] = pos
    return node


def position(node: exp.Expr) -> int | None:
    pos = node.meta.get("pos")
    if pos is None:
        pos = node.meta.get("start")
    if pos is None and isinstance(node.this, exp.Expr):
        pos = node.this.meta.get("start")
    return pos if isinstance(pos, int) else None


GRAMMAR_HINT = (
    "the form is INCLUDE|EXCLUDE ItemID|UserID WHERE Dataset.FIELD IN (values) | op value,"
    " conditions joined by AND/OR, expressions chained with |"
)
NESTING_HINT = "flatten the expression: fewer nested parentheses or NOTs, IN lists instead of ORs"


def blank_quotes(text: str) -> tuple[str, int | None]:
    """The text with quoted parts blanked (same length), and where an unclosed quote opens."""
    out = list(text)
    i = 0
    while i < len(text):
        q = text[i]
        if q in "'\"":
            j = i + 1
            while j < len(text):
                if text[j] == q and text[j + 1 : j + 2] == q:  # doubled quote inside
                    j += 2
                    continue
                if text[j] == q:
                    break
                j += 1
            if j >= len(text):
                return "".join(out), i
            out[i + 1 : j] = " " * (j - i - 1)
            i = j + 1
        else:
            i += 1
    return "".join(out), None


def error(
    cls: type[PyrecError], text: str, pos: int | None, message: str, hint: str | None = None
) -> PyrecError:
    """An error whose message ends with the position and the offending text."""
    if pos is not None:
        near = text[pos : pos + 20].split("\n")[0]
        message = f'{message} at position {pos + 1} (near "{near}")'
    return cls(message, hint=hint)


def check_text(text: str | None) -> str:
    if text is None:
        raise NullValue(
            "filter expression must not be null",
            hint="for example 'EXCLUDE ItemID WHERE Items.genre IN (\"Horror\")'",
        )
    if "\x00" in text:
        raise FilterSyntaxError(
            "filter contains a NUL character", hint="remove control characters from the expression"
        )
    if len(text) > MAX_LENGTH:
        raise ProgramLimitExceeded(
            f"filter is {len(text)} characters long, the limit is {MAX_LENGTH}",
            hint="split it into named filters or shorten the value lists",
        )
    if not text.strip():
        raise FilterSyntaxError(
            "filter is empty", hint='write e.g. EXCLUDE ItemID WHERE Items.GENRE IN ("Horror")'
        )
    return text


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise error(
                FilterSyntaxError,
                text,
                pos,
                f'unexpected character "{text[pos]}"',
                "values are written in double quotes; parameters as $NAME",
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def is_personalize(text: str) -> bool:
    return re.match(r"\s*(INCLUDE|EXCLUDE)\b", text, re.IGNORECASE) is not None


def parse(text: str | None) -> list[Clause]:
    """Parse a Personalize expression (chained with |) or a plain SQL predicate over items."""
    text = check_text(text)
    try:
        if is_personalize(text):
            return _Personalize(text).filter()
        return [Clause("INCLUDE", "ItemID", parse_shorthand(text), None, 0)]
    except RecursionError:
        raise ProgramLimitExceeded("filter is nested too deeply", hint=NESTING_HINT) from None


class _Personalize:
    """Recursive descent over Personalize's grammar; nodes carry their source position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def fail(self, message: str, hint: str | None = GRAMMAR_HINT) -> PyrecError:
        tok = self.peek()
        if tok is None:
            return FilterSyntaxError(f"{message} at the end of the filter", hint=hint)
        return error(FilterSyntaxError, self.text, tok.pos, message, hint)

    def word(self, *words: str) -> Token | None:
        tok = self.peek()
        if tok and tok.kind == "word" and tok.text.upper() in words:
            self.i += 1
            return tok
        return None

    def expect_word(self, *words: str) -> Token:
        tok = self.word(*words)
        if tok is None:
            raise self.fail(f"expected {' or '.join(words)}")
        return tok

    def punct(self, char: str) -> Token | None:
        tok = self.peek()
        if tok and tok.kind == "punct" and tok.text == char:
            self.i += 1
            return tok
        return None

    def filter(self) -> list[Clause]:
        clauses = [self.clause()]
        while self.punct("|"):
            clauses.append(self.clause())
        if self.peek() is not None:
            raise self.fail(
                "unexpected text after the end of the expression",
                "chain expressions with |; combine conditions with AND / OR",
            )
        return clauses

    def clause(self) -> Clause:
        start = self.expect_word("INCLUDE", "EXCLUDE")
        target = self.expect_word("ITEMID", "USERID")
        self.expect_word("WHERE")
        cond = self.condition()
        guard = self.condition() if self.word("IF") else None
        return Clause(
            "INCLUDE" if start.text.upper() == "INCLUDE" else "EXCLUDE",
            "ItemID" if target.text.upper() == "ITEMID" else "UserID",
            cond,
            guard,
            start.pos,
        )

    def condition(self) -> exp.Expr:
        node = self.conjunction()
        while (tok := self.word("OR")) is not None:
            node = at(exp.Or(this=node, expression=self.conjunction()), tok.pos)
        return node

    def conjunction(self) -> exp.Expr:
        node = self.predicate()
        while (tok := self.word("AND")) is not None:
            node = at(exp.And(this=node, expression=self.predicate()), tok.pos)
        return node

    def predicate(self) -> exp.Expr:
        if (tok := self.punct("(")) is not None:
            inner = self.condition()
            if not self.punct(")"):
                raise self.fail('expected ")"')
            return at(exp.Paren(this=inner), tok.pos)
        left = self.field()
        tok = self.peek()
        if tok and tok.kind == "word" and tok.text.upper() == "NOT":
            self.i += 1
            self.expect_word("IN")
            return at(
                exp.Not(this=at(exp.In(this=left, expressions=self.values()), tok.pos)), tok.pos
            )
        if self.word("IN"):
            return at(exp.In(this=left, expressions=self.values()), tok.pos if tok else 0)
        if tok and tok.kind == "op":
            self.i += 1
            ops: dict[str, type[exp.Binary]] = {
                "=": exp.EQ,
                "!=": exp.NEQ,
                "<>": exp.NEQ,
                "<": exp.LT,
                "<=": exp.LTE,
                ">": exp.GT,
                ">=": exp.GTE,
            }
            return at(ops[tok.text](this=left, expression=self.value(parens=True)), tok.pos)
        raise self.fail("expected IN, NOT IN or a comparison (=, !=, <, <=, >, >=)")

    def field(self) -> exp.Expr:
        tok = self.peek()
        if tok is None or tok.kind != "field":
            raise self.fail(
                "expected a field such as Items.GENRE",
                "fields are written Dataset.FIELD with dataset Items, Users,"
                " Interactions, CurrentItem or CurrentUser",
            )
        self.i += 1
        dataset, name = tok.text.split(".")
        canonical = DATASETS.get(dataset.lower())
        if canonical is None:
            raise error(
                FilterSyntaxError,
                self.text,
                tok.pos,
                f'unknown dataset "{dataset}"',
                "datasets are Items, Users, Interactions, CurrentItem and CurrentUser",
            )
        node = exp.column(name, table=canonical)
        node.meta["name_pos"] = tok.pos + len(dataset) + 1
        return at(node, tok.pos)

    def values(self) -> list[exp.Expr]:
        if self.punct("(") is None:
            return [self.value()]  # IN CurrentItem.GENRE, IN $PARAM
        vals = [self.value()]
        while self.punct(","):
            vals.append(self.value())
        if not self.punct(")"):
            raise self.fail('expected "," or ")" in the value list')
        return vals

    def value(self, parens: bool = False) -> exp.Expr:
        if parens and (tok := self.punct("(")) is not None:
            inner = self.value()
            if not self.punct(")"):
                raise self.fail('expected ")"')
            return inner
        tok = self.peek()
        if tok is None:
            raise self.fail("expected a value")
        if tok.kind == "string":
            self.i += 1
            body = tok.text[1:-1]
            body = re.sub(r"\\(.)", r"\1", body) if tok.text[0] == '"' else body.replace("''", "'")
            return at(exp.Literal.string(body), tok.pos)
        if tok.kind == "number":
            self.i += 1
            return at(exp.Literal.number(tok.text), tok.pos)
        if tok.kind == "param":
            self.i += 1
            return at(exp.Placeholder(this=tok.text[1:]), tok.pos)
        if tok.kind == "field":
            return self.field()
        raise self.fail(
            'expected a value: "text", a number, $PARAMETER or CurrentItem/CurrentUser field'
        )


# sqlglot node types the shorthand may contain; anything else is rejected where it occurs
SHORTHAND_NODES: tuple[type[exp.Expr], ...] = (
    exp.And,
    exp.Or,
    exp.Not,
    exp.Paren,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Is,
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Parameter,
    exp.Placeholder,
    exp.Var,
    exp.Neg,
    exp.Lower,
    exp.Upper,
    exp.Length,
    exp.Abs,
    exp.Tuple,
)


def parse_shorthand(text: str) -> exp.Expr:
    """A plain SQL boolean expression over item columns, checked against a node whitelist."""
    bare, unclosed = blank_quotes(text)
    if unclosed is not None:
        raise error(
            FilterSyntaxError,
            text,
            unclosed,
            "unterminated quoted string",
            "close the quote; a quote inside a value is written twice ('it''s')",
        )
    comment = re.search(r"--|/\*", bare)
    if comment:
        raise error(
            FilterSyntaxError,
            text,
            comment.start(),
            "comments are not allowed in filters",
            "remove -- and /* */ from the expression",
        )
    semicolon = bare.find(";")
    if semicolon >= 0:
        raise error(
            FilterSyntaxError,
            text,
            semicolon,
            "filter must be a single expression, not several statements",
            "remove the ';' and what follows",
        )
    marker = re.search(r"(?<![\w$:]):\w|\?|@\w|%s", bare)
    if marker:
        raise error(
            FilterSyntaxError,
            text,
            marker.start(),
            "parameters are written $NAME",
            'e.g. genre = $GENRE, with params => \'{"GENRE": "Comedy"}\'',
        )
    try:
        tree = sqlglot.parse(text, dialect="postgres")
    except RecursionError:
        raise  # too deeply nested: parse() reports it as such
    # beyond ParseError and TokenError, sqlglot's parser raises whatever its code meets on
    # some malformed input (ValueError for x::t(""), AttributeError for {:}): nothing but
    # sqlglot runs in this call, so any of them means the text is not a valid expression
    except Exception as e:
        errs = getattr(e, "errors", None) or []
        start = errs[0].get("start_context") if errs else None
        pos = len(start) if isinstance(start, str) else None
        raise error(
            FilterSyntaxError,
            text,
            pos,
            "filter is not a valid SQL expression",
            "use a boolean expression such as genre = 'Comedy' AND year >= 1990, or"
            ' Personalize syntax: INCLUDE ItemID WHERE Items.GENRE IN ("Comedy")',
        ) from e
    statements = [t for t in tree if t is not None]
    if len(statements) != 1:
        raise FilterSyntaxError(
            "filter must be a single expression, not several statements", hint="remove the ';'"
        )
    node = statements[0]
    for sub in node.walk():
        if sub.comments:
            raise FilterSyntaxError(
                "comments are not allowed in filters",
                hint="remove -- and /* */ from the expression",
            )
        if not isinstance(sub, SHORTHAND_NODES):
            pos = _keyword_position(bare, sub)
            pos = _first_position(sub) if pos is None else pos
            label = _describe(sub)
            raise error(
                FilterSyntaxError,
                text,
                pos,
                f"{label} is not allowed in a filter",
                "filters may use columns, literals, $PARAMS, comparisons, IN, BETWEEN,"
                " LIKE, IS NULL, AND/OR/NOT and lower/upper/length/abs",
            )
        if isinstance(sub, exp.Placeholder | exp.Parameter):
            name = sub.this.name if isinstance(sub.this, exp.Expr) else str(sub.this or "")
            if not re.fullmatch(r"[^\W\d]\w*", name) or not re.search(
                rf"\${re.escape(name)}\b", bare
            ):
                raise error(
                    FilterSyntaxError,
                    text,
                    _first_position(sub),
                    "parameters are written $NAME",
                    "e.g. year >= $FROM",
                )
        if isinstance(sub, exp.Column) and (sub.args.get("db") or sub.args.get("catalog")):
            raise error(
                FilterSyntaxError,
                text,
                _first_position(sub),
                f'column reference "{sub.sql()}" is not allowed',
                "refer to item columns by name, optionally as items.<column>",
            )
    return _normalize_shorthand(node)


def _normalize_shorthand(node: exp.Expr) -> exp.Expr:
    """Columns become Items.<col>; $NAME parameters become placeholders."""

    def fix(sub: exp.Expr) -> exp.Expr:
        if isinstance(sub, exp.Parameter):
            name = sub.this.name if isinstance(sub.this, exp.Expr) else str(sub.this)
            return at(exp.Placeholder(this=name), _first_position(sub) or 0)
        if isinstance(sub, exp.Column):
            table = sub.table
            dataset = DATASETS.get(table.lower(), table) if table else "Items"
            col = exp.column(sub.name, table=dataset)
            col.meta["pos"] = _first_position(sub)
            col.meta["quoted"] = bool(sub.this.args.get("quoted"))
            return col
        return sub

    return node.transform(fix, copy=True)


def _keyword_position(bare: str, node: exp.Expr) -> int | None:
    """Where a subquery or set operation starts: its first keyword outside quotes."""
    words = {
        exp.Exists: "EXISTS",
        exp.Union: "UNION",
        exp.Intersect: "INTERSECT",
        exp.Except: "EXCEPT",
    }
    word = next((w for t, w in words.items() if isinstance(node, t)), None)
    if word is None and isinstance(node, exp.Subquery | exp.Select):
        word = "SELECT"
    found = re.search(rf"\b{word}\b", bare, re.IGNORECASE) if word else None
    return found.start() if found else None


def _first_position(node: exp.Expr) -> int | None:
    for sub in node.walk():
        start = sub.meta.get("start") if sub.meta else None
        if isinstance(start, int):
            return start
        if isinstance(sub, exp.Expr) and isinstance(sub.this, exp.Expr):
            s = sub.this.meta.get("start") if sub.this.meta else None
            if isinstance(s, int):
                return s
    return None


def _describe(node: exp.Expr) -> str:
    if isinstance(node, exp.Cast | exp.TryCast):
        return "a type cast"
    if isinstance(node, exp.Func):
        name = node.sql_name() if not isinstance(node, exp.Anonymous) else str(node.this)
        return f"function {name.lower()}()"
    if isinstance(node, exp.Subquery | exp.Select | exp.Exists):
        return "a subquery"
    return f"{type(node).__name__.lower()} expression"
