-- The bridge to the Python package: import it once per session and check its version.

CREATE FUNCTION pyrec._python() RETURNS text
LANGUAGE plpython3u
SET search_path FROM CURRENT
AS $fn$
import sys
try:
    import pyrec_pg
    from pyrec_pg.runtime import server
except ImportError as e:
    plpy.error(
        "the server's Python cannot import pyrec_pg: %s" % e,
        detail="server Python %s, sys.path: %s" % (sys.version.split()[0], ", ".join(sys.path)),
        hint="install it into the server's Python with 'make install' from a pyrec_pg checkout,"
             " or start the server with PYTHONPATH set to the checkout",
        sqlstate="58P01")
sql_version = plpy.execute(
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'")[0]["extversion"]
if pyrec_pg.__version__ != sql_version:
    plpy.error(
        "pyrec SQL version %s does not match the Python package version %s at %s"
        % (sql_version, pyrec_pg.__version__, pyrec_pg.__file__),
        hint="run ALTER EXTENSION pyrec UPDATE, or install the matching pyrec_pg into the"
             " server's Python with 'make install'",
        sqlstate="55000")
GD["pyrec"] = server
return pyrec_pg.__version__
$fn$;
COMMENT ON FUNCTION pyrec._python() IS 'Imports pyrec_pg in this session and checks it matches the SQL version';

CREATE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpython3u
SET search_path FROM CURRENT
AS $fn$
if "pyrec" not in GD:
    plpy.execute("SELECT pyrec._python()")
import json
info = json.loads(GD["pyrec"].version(plpy))
info["sql"] = plpy.execute(
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'")[0]["extversion"]
info["pgvector"] = plpy.execute(
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'")[0]["extversion"]
return json.dumps(info)
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects, the server-side Python package, numpy, scipy and pgvector';
