"""Every object the extension creates is documented with COMMENT ON (psql \\d+, BI tools)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.pg

UNDOCUMENTED = """
SELECT 'function ' || p.oid::regprocedure::text
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'pyrec'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'relation ' || c.oid::regclass::text
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'pyrec'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'S')
   AND obj_description(c.oid, 'pg_class') IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d  -- serial/identity sequences
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0)
   AND c.relname !~ '^m[0-9]+_v[0-9]+_'  -- a trained version's vectors
UNION ALL
-- columns of the relations people browse (internal ones start with an underscore)
SELECT 'column ' || c.oid::regclass::text || '.' || a.attname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'pyrec'::regnamespace AND c.relkind IN ('r', 'v', 'm')
   AND c.relname !~ '^_' AND c.relname !~ '^m[0-9]+_v[0-9]+_'
   AND col_description(c.oid, a.attnum) IS NULL
UNION ALL
SELECT 'type ' || t.oid::regtype::text
  FROM pg_catalog.pg_type t
 WHERE t.typnamespace = 'pyrec'::regnamespace AND t.typtype IN ('c', 'e', 'd')
   AND t.typrelid = 0 AND obj_description(t.oid, 'pg_type') IS NULL
ORDER BY 1
"""


def test_every_extension_object_has_a_comment(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        missing: list[Any] = [r[0] for r in conn.execute(UNDOCUMENTED)]
    assert missing == [], "COMMENT ON missing for:\n" + "\n".join(missing)


def test_the_check_sees_a_missing_comment(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("COMMENT ON COLUMN pyrec.models.recipe IS NULL")
        conn.execute("CREATE FUNCTION pyrec.undocumented() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        missing = [r[0] for r in conn.execute(UNDOCUMENTED)]
    assert missing == ["column pyrec.models.recipe", "function pyrec.undocumented()"]
