"""Filter parsing without a server: clauses, guards, values, positions, shorthand whitelist."""

from __future__ import annotations

import pytest
from sqlglot import exp

from pyrec_pg.errors import PyrecError
from pyrec_pg.filters.syntax import MAX_LENGTH, Clause, FilterSyntaxError, parse


def one(text: str) -> Clause:
    clauses = parse(text)
    assert len(clauses) == 1
    return clauses[0]


def error(text: str | None) -> PyrecError:
    with pytest.raises(PyrecError) as info:
        parse(text)
    return info.value


def column(node: exp.Expr) -> tuple[str, str]:
    assert isinstance(node, exp.Column)
    return node.table, node.name


# --- Personalize: clauses ------------------------------------------------------------------


def test_single_clause() -> None:
    c = one('EXCLUDE ItemID WHERE Items.GENRE IN ("Horror", "Thriller")')
    assert (c.action, c.target, c.guard, c.pos) == ("EXCLUDE", "ItemID", None, 0)
    assert isinstance(c.condition, exp.In)
    assert column(c.condition.this) == ("Items", "GENRE")
    assert [v.this for v in c.condition.expressions] == ["Horror", "Thriller"]
    assert all(v.is_string for v in c.condition.expressions)


def test_chained_clauses_keep_order_actions_targets_and_positions() -> None:
    text = (
        'EXCLUDE ItemID WHERE Items.DISCONTINUED IN ("true") | INCLUDE ItemID WHERE'
        ' Items.PRICE < 100 |include itemid where Interactions.EVENT_TYPE IN ("click")'
    )
    clauses = parse(text)
    assert [(c.action, c.target) for c in clauses] == [
        ("EXCLUDE", "ItemID"),
        ("INCLUDE", "ItemID"),
        ("INCLUDE", "ItemID"),
    ]
    assert [c.pos for c in clauses] == [0, text.index("INCLUDE"), text.index("include")]
    assert isinstance(clauses[1].condition, exp.LT)
    assert column(clauses[2].condition.this) == ("Interactions", "EVENT_TYPE")


def test_user_target() -> None:
    c = one('INCLUDE UserID WHERE Users.TIER IN ("gold")')
    assert (c.action, c.target) == ("INCLUDE", "UserID")
    assert column(c.condition.this) == ("Users", "TIER")


def test_keywords_and_dataset_names_ignore_case() -> None:
    c = one('  include   itemid   where   items.genre   in   ("x")   ')
    assert (c.action, c.target) == ("INCLUDE", "ItemID")
    assert column(c.condition.this) == ("Items", "genre")  # dataset canonical, field as written
    c = one("EXCLUDE ItemID WHERE CURRENTUSER.AGE > 3")
    assert column(c.condition.this) == ("CurrentUser", "AGE")


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    c = one("INCLUDE ItemID WHERE Items.A = 1 OR Items.B = 2 AND Items.C = 3")
    assert isinstance(c.condition, exp.Or)
    assert isinstance(c.condition.expression, exp.And)
    c = one("INCLUDE ItemID WHERE (Items.A = 1 OR Items.B = 2) AND Items.C = 3")
    assert isinstance(c.condition, exp.And)
    assert isinstance(c.condition.this, exp.Paren)
    assert isinstance(c.condition.this.this, exp.Or)


@pytest.mark.parametrize(
    ("op", "node"),
    [
        ("=", exp.EQ),
        ("!=", exp.NEQ),
        ("<>", exp.NEQ),
        ("<", exp.LT),
        ("<=", exp.LTE),
        (">", exp.GT),
        (">=", exp.GTE),
    ],
)
def test_comparison_operators(op: str, node: type[exp.Expr]) -> None:
    c = one(f"INCLUDE ItemID WHERE Items.PRICE {op} 10")
    assert isinstance(c.condition, node)
    assert c.condition.expression.this == "10"


# --- Personalize: IF guards ----------------------------------------------------------------


def test_if_guard_is_kept_apart_from_the_condition() -> None:
    c = one(
        "INCLUDE ItemID WHERE Items.GENRE IN ($G) IF CurrentUser.AGE > 18"
        ' AND CurrentUser.MEMBERSHIP = "gold"'
    )
    assert isinstance(c.condition, exp.In)
    assert c.guard is not None and isinstance(c.guard, exp.And)
    assert column(c.guard.this.this) == ("CurrentUser", "AGE")
    assert column(c.guard.expression.this) == ("CurrentUser", "MEMBERSHIP")
    assert c.guard.expression.expression.this == "gold"


def test_each_chained_clause_has_its_own_guard() -> None:
    clauses = parse(
        "INCLUDE ItemID WHERE Items.A = 1 IF CurrentUser.X = $P | EXCLUDE ItemID WHERE Items.B = 2"
    )
    assert clauses[0].guard is not None and isinstance(clauses[0].guard, exp.EQ)
    assert isinstance(clauses[0].guard.expression, exp.Placeholder)
    assert clauses[1].guard is None


def test_a_second_if_is_an_error() -> None:
    e = error("EXCLUDE ItemID WHERE Items.A = 1 IF CurrentUser.B = 2 IF CurrentUser.C = 3")
    assert e.sqlstate == "42601"
    assert 'unexpected text after the end of the expression at position 55 (near "IF' in str(e)


def test_an_empty_if_is_an_error() -> None:
    e = error("INCLUDE ItemID WHERE Items.A = 1 IF")
    assert e.message == "expected a field such as Items.GENRE at the end of the filter"


# --- Personalize: values -------------------------------------------------------------------


def test_not_in() -> None:
    c = one('INCLUDE ItemID WHERE Items.CATEGORY_L2 NOT IN ("boot", "sandal")')
    assert isinstance(c.condition, exp.Not)
    inner = c.condition.this
    assert isinstance(inner, exp.In)
    assert column(inner.this) == ("Items", "CATEGORY_L2")
    assert [v.this for v in inner.expressions] == ["boot", "sandal"]


def test_in_current_item_field_without_parentheses() -> None:
    c = one("EXCLUDE ItemID WHERE Items.GENRE IN CurrentItem.GENRE")
    assert isinstance(c.condition, exp.In)
    [value] = c.condition.expressions
    assert column(value) == ("CurrentItem", "GENRE")


def test_in_parameter_without_parentheses() -> None:
    c = one("EXCLUDE ItemID WHERE Items.GENRE IN $GENRES")
    [value] = c.condition.expressions
    assert isinstance(value, exp.Placeholder) and value.name == "GENRES"


def test_comparison_with_a_parameter_in_parentheses() -> None:
    c = one("INCLUDE ItemID WHERE Items.PRICE > ($VALUE)")
    assert isinstance(c.condition, exp.GT)
    assert isinstance(c.condition.expression, exp.Placeholder)
    assert c.condition.expression.name == "VALUE"


def test_comparison_with_a_current_user_field() -> None:
    c = one("INCLUDE ItemID WHERE Items.AGE_RATING = CurrentUser.AGE_RATING")
    assert column(c.condition.expression) == ("CurrentUser", "AGE_RATING")


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ('"plain"', "plain"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"it\'s"', "it's"),
        ("'single'", "single"),
        ("'it''s'", "it's"),
        ("'with \"double\" inside'", 'with "double" inside'),
        ('"a;b"', "a;b"),
        ('"x\') OR 1=1 --"', "x') OR 1=1 --"),
        ('"\U0001f600 \u202e"', "\U0001f600 \u202e"),
        ('""', ""),
    ],
)
def test_string_values(written: str, value: str) -> None:
    c = one(f"INCLUDE ItemID WHERE Items.TITLE IN ({written})")
    [lit] = c.condition.expressions
    assert isinstance(lit, exp.Literal) and lit.is_string
    assert lit.this == value


@pytest.mark.parametrize("number", ["10", "-3", "2.50", "1e5", "-1.5E-3"])
def test_number_values(number: str) -> None:
    c = one(f"INCLUDE ItemID WHERE Items.PRICE < {number}")
    value = c.condition.expression
    sign = 1
    if isinstance(value, exp.Neg):  # sqlglot writes a negative number as Neg(Literal)
        sign, value = -1, value.this
    assert isinstance(value, exp.Literal) and not value.is_string
    assert sign * float(value.this) == float(number)


def test_parameters_keep_their_names() -> None:
    c = one('INCLUDE ItemID WHERE Items.GENRE IN ($GENRES, $other_1, "x")')
    names = [v.name for v in c.condition.expressions if isinstance(v, exp.Placeholder)]
    assert names == ["GENRES", "other_1"]


# --- Personalize: errors and their positions -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'INCLUDE ItemID WHERE Items.GENRE IN ("x") junk',
            'unexpected text after the end of the expression at position 43 (near "junk")',
        ),
        (
            'INCLUDE ItemID WHERE Products.GENRE IN ("x")',
            'unknown dataset "Products" at position 22 (near "Products.GENRE IN ("")',
        ),
        (
            'INCLUDE ItemID WHERE Items.GENRE ~ "x"',
            'unexpected character "~" at position 34 (near "~ "x"")',
        ),
        (
            'INCLUDE ItemID WHERE Items.GENRE IN ("x"); DROP TABLE t',
            'unexpected character ";" at position 42 (near "; DROP TABLE t")',
        ),
        ("INCLUDE ItemID WHERE Items.GENRE IN ($$x$$)", 'unexpected character "$" at position 38'),
        ('INCLUDE ItemID WHERE Items.TITLE IN ("x)', 'unexpected character """ at position 38'),
        ("INCLUDE ItemID WHERE Items..GENRE IN (1)", 'unexpected character "." at position 27'),
        ('INCLUDE ActionID WHERE Items.A IN ("x")', "expected ITEMID or USERID at position 9"),
        ('INCLUDE ItemID Items.A IN ("x")', "expected WHERE at position 16"),
        ('INCLUDE ItemID WHERE A IN ("x")', "expected a field such as Items.GENRE at position 22"),
        ("INCLUDE ItemID WHERE NOT Items.A IN (1)", "expected a field such as Items.GENRE"),
        (
            "INCLUDE ItemID WHERE Items.A LIKE 1",
            "expected IN, NOT IN or a comparison (=, !=, <, <=, >, >=) at position 30",
        ),
        ("INCLUDE ItemID WHERE Items.A NOT 1", "expected IN at position 34"),
        ("INCLUDE ItemID WHERE Items.A IN (1 2)", 'expected "," or ")" in the value list at'),
        ("INCLUDE ItemID WHERE Items.A IN ()", "expected a value"),
        ("INCLUDE ItemID WHERE Items.A = ((1))", "expected a value"),
        ("INCLUDE ItemID WHERE (Items.A = 1", 'expected ")" at the end of the filter'),
        ("INCLUDE ItemID WHERE Items.A = 1 |", "expected INCLUDE or EXCLUDE at the end"),
        (
            "INCLUDE ItemID WHERE Items.A = 1 | DROP TABLE ratings",
            'expected INCLUDE or EXCLUDE at position 36 (near "DROP TABLE ratings")',
        ),
        ("INCLUDE ItemID WHERE Items.A = 1 || INCLUDE ItemID WHERE Items.B = 2", "position 35"),
        ("INCLUDE", "expected ITEMID or USERID at the end of the filter"),
    ],
)
def test_personalize_syntax_errors_name_the_position(text: str, message: str) -> None:
    e = error(text)
    assert isinstance(e, FilterSyntaxError) and e.sqlstate == "42601"
    assert message in e.message


def test_position_is_one_based_and_counts_characters_not_bytes() -> None:
    text = 'INCLUDE ItemID WHERE Items.TITLE IN ("\U0001f600\u00e9") ~'
    e = error(text)
    assert f"at position {len(text)} (near" in e.message
    assert text[len(text) - 1] == "~"


def test_near_text_stops_at_a_newline() -> None:
    e = error('INCLUDE ItemID WHERE Items.A IN ("x")\n junk\n more')
    assert e.message.endswith('at position 40 (near "junk")')


# --- the SQL shorthand ---------------------------------------------------------------------


def test_shorthand_is_one_include_clause_over_items() -> None:
    c = one("genre = 'Comedy' AND year >= 1990")
    assert (c.action, c.target, c.guard, c.pos) == ("INCLUDE", "ItemID", None, 0)
    assert isinstance(c.condition, exp.And)
    assert column(c.condition.this.this) == ("Items", "genre")
    assert column(c.condition.expression.this) == ("Items", "year")


def test_shorthand_is_chosen_unless_the_text_starts_with_include_or_exclude() -> None:
    c = one("included = 1 OR exclude_me = 2")
    assert isinstance(c.condition, exp.Or)
    assert column(c.condition.this.this) == ("Items", "included")


def test_shorthand_qualified_columns_map_to_datasets() -> None:
    c = one("items.year = 1 AND currentuser.age > 3 AND Year < 2")
    cols = [column(col) for col in c.condition.find_all(exp.Column)]
    assert sorted(cols) == [("CurrentUser", "age"), ("Items", "Year"), ("Items", "year")]


def test_shorthand_quoted_column_is_marked_quoted() -> None:
    c = one("\"Label\" IS NULL AND title = 'x'")
    flags = {col.name: col.meta.get("quoted") for col in c.condition.find_all(exp.Column)}
    assert flags == {"Label": True, "title": False}


def test_shorthand_parameters_become_placeholders() -> None:
    c = one("genre IN ($G) AND year > $Y")
    names = sorted(p.name for p in c.condition.find_all(exp.Placeholder))
    assert names == ["G", "Y"]
    assert not list(c.condition.find_all(exp.Parameter))


@pytest.mark.parametrize("param", [":G", "?", "@G", "%s", "$1"])
def test_other_parameter_spellings_are_rejected(param: str) -> None:
    assert "parameters are written $NAME" in error(f"genre IN ({param}) AND year > $Y").message


@pytest.mark.parametrize(
    "text",
    [
        "year BETWEEN 1980 AND 1990",
        "title LIKE 'Star%' OR title ILIKE 'star%'",
        "year IS NULL",
        "NOT (year > 1990)",
        "genre NOT IN ('Drama', 'Comedy')",
        "lower(title) = 'x' AND upper(title) = 'X' AND length(title) < 3 AND abs(year) > 1",
        "year > -5 AND TRUE AND year <> NULL",
        "(((year = 1)))",
        "title = 'a;b' OR title = '--' OR title = '/* */'",
        "title = 'it''s'",
    ],
)
def test_shorthand_whitelist_accepts(text: str) -> None:
    one(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pg_sleep(10) IS NULL", "function pg_sleep() is not allowed in a filter at position 1"),
        (
            "year > 1990 AND pg_sleep(1) IS NULL",
            'function pg_sleep() is not allowed in a filter at position 17 (near "pg_sleep(1)',
        ),
        ("title = pg_read_file('/etc/passwd')", "function pg_read_file() is not allowed"),
        ("title = current_setting('x')", "function current_setting() is not allowed"),
        ("title = set_config('a', 'b', false)", "function set_config() is not allowed"),
        ("title = dblink('a', 'b')", "function dblink() is not allowed"),
        ("current_user = 'x'", "function current_user() is not allowed"),
        ("pg_catalog.lower(title) = 'x'", "is not allowed in a filter at position 1"),
        ("title::regclass IS NULL", "a type cast is not allowed in a filter at position 1"),
        ("CAST(title AS regclass) IS NULL", "a type cast is not allowed"),
        ("year = 1::int", "a type cast is not allowed in a filter at position 8"),
        ("year IN (SELECT viewer_id FROM ratings)", "a subquery is not allowed"),
        ("year = (SELECT 1)", "a subquery is not allowed"),
        ("EXISTS (SELECT 1)", "function exists() is not allowed"),
        ("year = 1 UNION SELECT 1", "union expression is not allowed"),
        ("year > 1990 -- comment", "comments are not allowed in filters"),
        ("year > 1990 /* comment */", "comments are not allowed in filters"),
        ("year /* c */ > 1990", "comments are not allowed in filters"),
        ("genre = 'x'; DROP TABLE ratings", "filter must be a single expression"),
        ("year = 1; SELECT 1", "filter must be a single expression"),
        ("title = $$x$$", "is not allowed in a filter at position 9"),
        ("year = 1 + 1", "add expression is not allowed"),
        ("title ~ 'x'", "is not allowed in a filter"),
        ("CASE WHEN year > 1 THEN TRUE END", "is not allowed in a filter"),
        ("title = ANY(ARRAY['x'])", "is not allowed in a filter"),
        ("title = 'x", "unterminated quoted string at position 9"),
        ("year >", "filter is not a valid SQL expression at position 6"),
        (
            "pg_catalog.pg_class.relname = 'x'",
            'column reference "pg_catalog.pg_class.relname" is not allowed at position 21',
        ),
        ("public.ratings.viewer_id = 1", 'column reference "public.ratings.viewer_id"'),
    ],
)
def test_shorthand_whitelist_rejects(text: str, message: str) -> None:
    e = error(text)
    assert isinstance(e, FilterSyntaxError) and e.sqlstate == "42601"
    assert message in e.message
    assert e.hint


# --- limits ---------------------------------------------------------------------------------


def test_length_limit() -> None:
    assert MAX_LENGTH == 4000
    at_limit = "year IN (" + ",".join(["1"] * 1995) + ") "
    assert len(at_limit) == MAX_LENGTH
    one(at_limit)
    over = 'INCLUDE ItemID WHERE Items.TITLE IN ("' + "x" * (MAX_LENGTH - 39) + '")'
    assert len(over) == MAX_LENGTH + 1
    e = error(over)
    assert e.sqlstate == "54000"
    assert e.message == "filter is 4001 characters long, the limit is 4000"
    assert e.hint and "named filters" in e.hint
    e = error("x" * 10_000)
    assert e.sqlstate == "54000" and "10000 characters" in e.message


def test_length_is_checked_before_anything_else() -> None:
    assert error("pg_sleep(1) -- " + "x" * MAX_LENGTH).sqlstate == "54000"


@pytest.mark.parametrize(
    "text", ["year = 1\x00", "\x00", 'INCLUDE ItemID WHERE Items.A IN ("\x00")', "\x00" * 5000]
)
def test_nul_character(text: str) -> None:
    e = error(text)
    assert isinstance(e, FilterSyntaxError) and e.sqlstate == "42601"
    assert e.message == "filter contains a NUL character"


def test_null_and_empty() -> None:
    e = error(None)
    assert e.sqlstate == "22004" and e.message == "filter expression must not be null"
    for blank in ("", "   ", "\n\t"):
        e = error(blank)
        assert e.sqlstate == "42601" and e.message == "filter is empty" and e.hint


def test_moderate_nesting_parses() -> None:
    one("(" * 30 + "year > 1" + ")" * 30)
    one("NOT " * 60 + "year > 1")
    one("lower(" * 25 + "title" + ")" * 25 + " = 'x'")
    one("INCLUDE ItemID WHERE " + "(" * 200 + "Items.A = 1" + ")" * 200)
    one("year > 1 AND " * 300 + "year > 1")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("(" * 60 + "year > 1" + ")" * 60, id="60-parentheses"),
        pytest.param("(" * 300 + "year > 1" + ")" * 300, id="300-parentheses"),
        pytest.param("NOT " * 150 + "year > 1", id="150-NOTs"),
        pytest.param("lower(" * 60 + "title" + ")" * 60 + " = 'x'", id="60-nested-calls"),
        pytest.param(
            "INCLUDE ItemID WHERE " + "(" * 500 + "Items.A = 1" + ")" * 500,
            id="personalize-500-parentheses",
        ),
    ],
)
def test_deep_nesting_is_a_clean_error(text: str) -> None:
    try:
        parse(text)
    except PyrecError as e:
        assert e.sqlstate in ("42601", "54000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "year IN (SELECT viewer_id FROM ratings)",
            'at position 10 (near "SELECT',
            id="subquery-points-inside",
        ),
        pytest.param("EXISTS (SELECT 1 FROM ratings)", 'at position 1 (near "EXISTS', id="exists"),
        pytest.param("year > 1990 -- DROP TABLE x", "at position 13", id="comment"),
        pytest.param("year = 1; DROP TABLE x", "at position 9", id="statements"),
        pytest.param("title = 'x", "at position 9", id="unterminated-string"),
    ],
)
def test_shorthand_errors_name_the_offending_position(text: str, message: str) -> None:
    assert message in error(text).message
