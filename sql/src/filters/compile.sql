-- Compiling a filter expression: the Python filter compiler, cached per session.

CREATE FUNCTION pyrec._filter(model_id integer, expression text) RETURNS jsonb
LANGUAGE plpython3u
SET search_path FROM CURRENT
AS $fn$
# compiled ad-hoc filters are cached per session: a repeated filter costs a dict lookup
cache = GD.setdefault("pyrec_filter_cache", {})
key = (model_id, expression)
hit = cache.get(key)
if hit is not None:
    return hit
if "pyrec" not in GD:
    boot = plpy.execute("SELECT pyrec._python()::text AS r")[0]["r"]
    if "pyrec" not in GD:
        return boot
import json
out = GD["pyrec"].dispatch(plpy, "compile_filter",
                           json.dumps({"model_id": model_id, "expression": expression}))
if '"error"' not in out[:10]:
    if len(cache) >= 1000:
        cache.clear()
    cache[key] = out
return out
$fn$;
COMMENT ON FUNCTION pyrec._filter(integer, text) IS 'Compiles a filter expression for a model, cached in the session';
