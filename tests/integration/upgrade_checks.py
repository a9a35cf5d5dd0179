"""What must survive an upgrade or a dump and restore: the extension's schema, as a snapshot
compared with a readable diff, and the answers users get."""

from __future__ import annotations

import difflib
from typing import Any

import psycopg

from tests.conftest import FAST

Snapshot = dict[str, dict[str, dict[str, Any]]]  # section -> object key -> field -> value

# the extension's members (pg_depend deptype 'e')
_MEMBERS = """
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e
        ON d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = e.oid
     WHERE e.extname = 'pyrec' AND d.deptype = 'e'"""

# relations compared: the members (tables, views, sequences) and the row types of member
# composite types; with user objects, every relation in schema pyrec (per-version tables)
_RELATIONS = f"""
    SELECT c.oid FROM pg_catalog.pg_class c
     WHERE c.oid IN (SELECT objid FROM ({_MEMBERS}) m
                      WHERE classid = 'pg_catalog.pg_class'::regclass)
        OR c.reltype IN (SELECT objid FROM ({_MEMBERS}) m
                          WHERE classid = 'pg_catalog.pg_type'::regclass)
        OR (%(user_objects)s AND c.relnamespace = 'pyrec'::regnamespace
            AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'c', 'f'))"""


def _acl(column: str) -> str:
    """An ACL as sorted text: grant order is not meaning."""
    return f"(SELECT array_agg(a::text ORDER BY a::text) FROM unnest({column}) a)"


# section -> query; the first column is the object's key, the rest are compared fields
QUERIES: dict[str, str] = {
    "extension": """
        SELECT e.extname, e.extrelocatable, e.extnamespace::regnamespace::text AS schema,
               e.extowner::regrole::text AS owner
          FROM pg_catalog.pg_extension e WHERE e.extname = 'pyrec'""",
    "dumped with pg_dump (pg_extension_config_dump)": """
        SELECT u.rel::regclass::text AS relation, coalesce(u.cond, '') AS where_clause
          FROM pg_catalog.pg_extension e, unnest(e.extconfig, e.extcondition) AS u(rel, cond)
         WHERE e.extname = 'pyrec'""",
    "extension members": f"""
        SELECT pg_catalog.pg_describe_object(m.classid, m.objid, 0) AS member,
               pg_catalog.obj_description(m.objid, m.classid::regclass::text) AS comment
          FROM ({_MEMBERS}) m""",
    "schema": f"""
        SELECT n.nspname, n.nspowner::regrole::text AS owner, {_acl("n.nspacl")} AS acl,
               pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
          FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pyrec'""",
    "routines": f"""
        SELECT p.oid::regprocedure::text AS routine, p.prokind AS kind, l.lanname AS language,
               pg_catalog.pg_get_function_arguments(p.oid) AS arguments,
               pg_catalog.pg_get_function_result(p.oid) AS result,
               p.provolatile AS volatility, p.proparallel AS parallel,
               p.prosecdef AS security_definer, p.proisstrict AS strict,
               p.proleakproof AS leakproof, p.procost AS cost, p.prorows AS rows,
               p.proconfig::text AS config, p.proowner::regrole::text AS owner,
               {_acl("p.proacl")} AS acl,
               pg_catalog.obj_description(p.oid, 'pg_proc') AS comment, p.prosrc AS source
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'pyrec'::regnamespace
            OR p.oid IN (SELECT objid FROM ({_MEMBERS}) m
                          WHERE classid = 'pg_catalog.pg_proc'::regclass)""",
    "relations": f"""
        SELECT c.oid::regclass::text AS relation, c.relkind AS kind,
               c.relpersistence AS persistence, c.relrowsecurity AS row_security,
               c.relforcerowsecurity AS force_row_security, c.reloptions::text AS options,
               c.relowner::regrole::text AS owner, {_acl("c.relacl")} AS acl,
               pg_catalog.obj_description(c.oid, 'pg_class') AS comment
          FROM pg_catalog.pg_class c WHERE c.oid IN ({_RELATIONS})""",
    "columns": f"""
        SELECT a.attrelid::regclass::text || '.' || a.attname AS "column",
               row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull AS not_null, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS "default",
               a.attidentity AS identity, a.attgenerated AS generated,
               a.attcollation::regcollation::text AS collation, {_acl("a.attacl")} AS acl,
               pg_catalog.col_description(a.attrelid, a.attnum) AS comment
          FROM pg_catalog.pg_attribute a
          LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid IN ({_RELATIONS}) AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraints": f"""
        SELECT coalesce(c.conrelid::regclass::text, c.contypid::regtype::text) || ' '
               || c.conname AS "constraint", c.contype AS kind,
               pg_catalog.pg_get_constraintdef(c.oid, true) AS definition,
               pg_catalog.obj_description(c.oid, 'pg_constraint') AS comment
          FROM pg_catalog.pg_constraint c
         WHERE c.conrelid IN ({_RELATIONS})
            OR c.contypid IN (SELECT objid FROM ({_MEMBERS}) m
                               WHERE classid = 'pg_catalog.pg_type'::regclass)""",
    "indexes": f"""
        SELECT i.indexrelid::regclass::text AS index,
               pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
               pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment
          FROM pg_catalog.pg_index i WHERE i.indrelid IN ({_RELATIONS})""",
    "views": f"""
        SELECT c.oid::regclass::text AS view, pg_catalog.pg_get_viewdef(c.oid, true) AS definition
          FROM pg_catalog.pg_class c WHERE c.oid IN ({_RELATIONS}) AND c.relkind IN ('v', 'm')""",
    "triggers": f"""
        SELECT t.tgrelid::regclass::text || ' ' || t.tgname AS trigger, t.tgenabled AS enabled,
               pg_catalog.pg_get_triggerdef(t.oid, true) AS definition,
               pg_catalog.obj_description(t.oid, 'pg_trigger') AS comment
          FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid IN ({_RELATIONS}) AND NOT t.tgisinternal""",
    "sequences": f"""
        SELECT s.seqrelid::regclass::text AS sequence, s.seqtypid::regtype::text AS type,
               s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min,
               s.seqmax AS max, s.seqcache AS cache, s.seqcycle AS cycle,
               (SELECT d.refobjid::regclass::text || '.' || a.attname
                       || ' (' || d.deptype::text || ')'
                  FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a
                    ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.seqrelid
                   AND d.refclassid = 'pg_catalog.pg_class'::regclass
                   AND d.deptype IN ('a', 'i')) AS owned_by
          FROM pg_catalog.pg_sequence s WHERE s.seqrelid IN ({_RELATIONS})""",
    "policies": f"""
        SELECT p.polrelid::regclass::text || ' ' || p.polname AS policy, p.polcmd AS command,
               p.polpermissive AS permissive,
               (SELECT array_agg(r::regrole::text ORDER BY r::regrole::text)
                  FROM unnest(p.polroles) r) AS roles,
               pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expression,
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expression
          FROM pg_catalog.pg_policy p WHERE p.polrelid IN ({_RELATIONS})""",
    "types": f"""
        SELECT t.oid::regtype::text AS type, t.typtype AS kind,
               pg_catalog.format_type(t.typbasetype, t.typtypmod) AS base_type,
               t.typnotnull AS not_null, t.typdefault AS "default",
               (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                  FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) AS labels,
               t.typowner::regrole::text AS owner, {_acl("t.typacl")} AS acl
          FROM pg_catalog.pg_type t
         WHERE t.oid IN (SELECT objid FROM ({_MEMBERS}) m
                          WHERE classid = 'pg_catalog.pg_type'::regclass)""",
    # what pg_dump takes as the privileges the extension script set (GRANT/REVOKE in it)
    "initial privileges (pg_init_privs)": f"""
        SELECT pg_catalog.pg_describe_object(i.classoid, i.objoid, i.objsubid) AS object,
               i.privtype AS kind, {_acl("i.initprivs")} AS acl
          FROM pg_catalog.pg_init_privs i
         WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM ({_MEMBERS}) m)
            OR (i.classoid = 'pg_catalog.pg_class'::regclass AND i.objoid IN ({_RELATIONS}))""",
}


def snapshot(conn: psycopg.Connection[Any], user_objects: bool = False) -> Snapshot:
    """The pyrec extension's objects as installed in this database, by section and key.

    Without `user_objects` only what the extension script made (its members, their columns,
    constraints, indexes, triggers, ...), so databases with different models compare equal;
    with it also every other relation in schema pyrec (each trained version's tables)."""
    out: Snapshot = {}
    for section, query in QUERIES.items():
        params = {"user_objects": user_objects} if "%(user_objects)s" in query else None
        cur = conn.execute(query, params)
        names = [c.name for c in cur.description or ()]
        rows: dict[str, dict[str, Any]] = {}
        for row in cur.fetchall():
            key = str(row[0])
            assert key not in rows, f"{section}: key {key!r} twice"
            rows[key] = dict(zip(names[1:], row[1:], strict=True))
        out[section] = rows
    return out


def _field_diff(field: str, a: Any, b: Any, names: tuple[str, str]) -> list[str]:
    if isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b):
        lines = difflib.unified_diff(
            a.splitlines(), b.splitlines(), names[0], names[1], n=2, lineterm=""
        )
        return [f"    {field}:"] + [f"      {line}" for line in lines]
    return [f"    {field}: {a!r} in {names[0]}, {b!r} in {names[1]}"]


def differences(a: Snapshot, b: Snapshot, names: tuple[str, str]) -> list[str]:
    """Readable lines naming every object that is only in one snapshot or differs."""
    lines: list[str] = []
    # a relation only on one side is named once, not with each of its columns, indexes, ...
    alone = a["relations"].keys() ^ b["relations"].keys()

    def part_of_alone(section: str, key: str) -> bool:
        return section not in ("relations", "extension members") and any(
            key == r or key.startswith((r + ".", r + " ")) for r in alone
        )

    for section in QUERIES:
        left, right = a[section], b[section]
        for key in sorted(left.keys() - right.keys()):
            if not part_of_alone(section, key):
                lines.append(f"{section}: {key}: only in {names[0]}")
        for key in sorted(right.keys() - left.keys()):
            if not part_of_alone(section, key):
                lines.append(f"{section}: {key}: only in {names[1]}")
        for key in sorted(left.keys() & right.keys()):
            changed = [f for f in left[key] if left[key][f] != right[key][f]]
            if changed:
                lines.append(f"{section}: {key}: differs")
                for f in changed:
                    lines.extend(_field_diff(f, left[key][f], right[key][f], names))
    return lines


# what users see, on a database with models "movies" (ALS over MovieLens with items and users),
# "popular" (popularity), the filter "no_horror" and the experiment "home"
SERVING = {
    "recommend": "SELECT * FROM pyrec.recommend('movies', '1', 10)",
    "recommend, named filter": "SELECT * FROM pyrec.recommend('movies', '42', 10, 'no_horror')",
    "recommend, expression filter": "SELECT * FROM pyrec.recommend('movies', '42', 10,"
    " 'INCLUDE ItemID WHERE Items.genre IN ($G)', '{\"G\": [\"Comedy\"]}')",
    "recommend, unknown user": "SELECT * FROM pyrec.recommend('movies', '999999', 5)",
    "recommend, default model": "SELECT * FROM recommend(7, 5)",
    "recommend, experiment": "SELECT * FROM pyrec.recommend(NULL, '5', 5, experiment => 'home')",
    "similar_items": "SELECT * FROM pyrec.similar_items('movies', '50', 10)",
    "rank_items": "SELECT * FROM pyrec.rank_items('movies', '42', ARRAY['1', '7', '9', '50'])",
    "users_for_item": "SELECT * FROM pyrec.users_for_item('movies', '50', 10)",
    "popularity model": "SELECT * FROM pyrec.recommend('popular', '1', 10)",
    "versions": "SELECT model, version, status, recipe, params, metrics, n_items"
    " FROM pyrec.model_versions ORDER BY 1, 2",
    "filters": "SELECT model, name, expression, target, params FROM pyrec.filters ORDER BY 1, 2",
}
EXPERIMENT = '[{"name": "control", "share": 50, "serve": "popular"}, {"name": "als", "share": 50}]'


def populate(c: psycopg.Connection[Any]) -> None:
    """What SERVING asks about, on the MovieLens tables: "movies" trained twice (two
    versions), "popular", the filters "no_horror" and "skip_genres", the experiment "home"."""
    c.execute(
        "SELECT pyrec.create_model('movies', 'ratings', items => 'movies',"
        f" users => 'viewers', options => '{FAST}')"
    )
    c.execute("SELECT pyrec.create_model('popular', 'ratings', recipe => 'popularity')")
    for model in ("movies", "movies", "popular"):
        c.execute("CALL pyrec.train(%s)", [model])
    c.execute(
        "SELECT pyrec.create_filter('movies', 'no_horror',"
        " 'EXCLUDE ItemID WHERE Items.genre IN (\"Horror\")')"
    )
    c.execute(
        "SELECT pyrec.create_filter('movies', 'skip_genres',"
        " 'EXCLUDE ItemID WHERE Items.genre IN ($G)')"
    )
    c.execute("SELECT pyrec.create_experiment('home', %s, model => 'movies')", [EXPERIMENT])


def serve(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every SERVING query's rows, from a new session (it imports the server's pyrec_pg anew).
    The experiment's request logs an impression."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET pyrec.default_model = 'movies'")
        return {what: c.execute(q).fetchall() for what, q in SERVING.items()}


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The SERVING answers that differ, before and after."""
    return {w: (before[w], after[w]) for w in SERVING if before[w] != after[w]}
