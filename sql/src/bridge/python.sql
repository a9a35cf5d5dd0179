-- The bridge to the Python package. SQL-facing functions are plpgsql wrappers that pass JSON
-- to pyrec._call (or the procedure pyrec._call_proc) and raise any error it returns, so errors
-- reach the client as clean Postgres errors: SQLSTATE, message, DETAIL, HINT.

CREATE FUNCTION pyrec._python() RETURNS jsonb
LANGUAGE plpython3u
SET search_path FROM CURRENT
AS $fn$
import json, sys
try:
    import pyrec_pg
    from pyrec_pg.entrypoints import server
except ImportError as e:
    return json.dumps({"error": {
        "sqlstate": "58P01",
        "message": "the server's Python cannot import pyrec_pg: %s" % e,
        "detail": "server Python %s, sys.path: %s" % (sys.version.split()[0], ", ".join(sys.path)),
        "hint": "install it into the server's Python with 'make install' from a pyrec_pg"
                " checkout, or start the server with PYTHONPATH set to the checkout"}})
sql_version = plpy.execute(
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'")[0]["extversion"]
# the SQL versions the package serves; a package older than 0.2.0 serves only its own
served = getattr(pyrec_pg, "SQL_VERSIONS", (str(pyrec_pg.__version__),))
if sql_version not in served:
    def key(v):
        return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))
    older = key(sql_version) < min(key(v) for v in served)
    return json.dumps({"error": {
        "sqlstate": "55000",
        "message": "pyrec SQL version %s does not match the Python package version %s at %s"
                   % (sql_version, pyrec_pg.__version__, pyrec_pg.__file__),
        "detail": "that package serves SQL versions %s" % ", ".join(served),
        "hint": "run ALTER EXTENSION pyrec UPDATE in this database" if older else
                "install a pyrec_pg that serves SQL %s into the server's Python with"
                " 'make install'" % sql_version}})
GD["pyrec"] = server
return json.dumps({"result": str(pyrec_pg.__version__)})
$fn$;
COMMENT ON FUNCTION pyrec._python() IS 'Imports pyrec_pg in this session and checks it serves this SQL version';

CREATE FUNCTION pyrec._call(fn text, arguments jsonb) RETURNS jsonb
LANGUAGE plpython3u
SET search_path FROM CURRENT
AS $fn$
if "pyrec" not in GD:
    boot = plpy.execute("SELECT pyrec._python()::text AS r")[0]["r"]
    if "pyrec" not in GD:
        return boot
return GD["pyrec"].dispatch(plpy, fn, arguments)
$fn$;
COMMENT ON FUNCTION pyrec._call(text, jsonb) IS 'Runs a pyrec_pg entry point; returns {"result": ...} or {"error": ...}';

-- No SET clause: a procedure with one cannot commit; the Python qualifies every name itself.
CREATE PROCEDURE pyrec._call_proc(fn text, arguments jsonb, INOUT outcome jsonb DEFAULT NULL)
LANGUAGE plpython3u
AS $fn$
if "pyrec" not in GD:
    boot = plpy.execute("SELECT pyrec._python()::text AS r")[0]["r"]
    if "pyrec" not in GD:
        return (boot,)
return (GD["pyrec"].dispatch(plpy, fn, arguments),)
$fn$;
COMMENT ON PROCEDURE pyrec._call_proc(text, jsonb, jsonb) IS 'Like pyrec._call, for entry points that commit (training)';
