-- Managed flavour: the bridge to the Python package, without plpython3u. The two Python
-- entries of the serving path (fold_in, user_from_attributes) have plpgsql twins in
-- serving/managed_twins.sql; everything else the Python does runs in a client (pyrec_pg.entrypoints.managed.call),
-- and the SQL wrappers say so with SQLSTATE 0A000 and a HINT naming the command.

CREATE FUNCTION pyrec._unsupported(fn text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT jsonb_build_object('error', jsonb_build_object(
        'sqlstate', '0A000',
        'message', format('pyrec.%s needs the pyrec_pg Python package, which this database does not run', fn),
        'detail', 'pyrec is installed in its managed flavour (no plpython3u): training and other Python work run in a client',
        'hint', CASE fn
            WHEN 'train' THEN 'train from a client: pyrec train --dsn ''<this database>'' <model>'
            WHEN 'create_model' THEN 'create it from a client: pyrec create-model --dsn ''<this database>'' <name> <interactions> ...'
            WHEN 'create_filter' THEN 'create it from a client: pyrec create-filter --dsn ''<this database>'' <model> <name> <expression>'
            ELSE format('run it from a client: pyrec_pg.entrypoints.managed.call(dsn, %L, {...arguments...})', fn) END))
$fn$;
COMMENT ON FUNCTION pyrec._unsupported(text) IS 'The error outcome of a Python entry point in the managed flavour';

CREATE FUNCTION pyrec._python() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$ SELECT pyrec._unsupported('_python') $fn$;
COMMENT ON FUNCTION pyrec._python() IS 'Managed flavour: there is no server-side Python to import';

CREATE FUNCTION pyrec._call(fn text, arguments jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF fn = 'fold_in' THEN
        RETURN jsonb_build_object('result', pyrec._fold_in_plpgsql((arguments->>'model_id')::integer,
                   (arguments->>'version')::integer, arguments->>'user_id',
                   CASE WHEN arguments ? 'items'
                        THEN ARRAY(SELECT jsonb_array_elements_text(arguments->'items')) END)::text);
    ELSIF fn = 'user_from_attributes' THEN
        RETURN jsonb_build_object('result', pyrec._user_from_attributes_plpgsql((arguments->>'model_id')::integer,
                   (arguments->>'version')::integer, arguments->>'user_id')::text);
    END IF;
    RETURN pyrec._unsupported(fn);
END
$fn$;
COMMENT ON FUNCTION pyrec._call(text, jsonb) IS 'Managed flavour: runs the plpgsql twins of the serving path''s entry points, refuses the others (0A000)';

CREATE PROCEDURE pyrec._call_proc(fn text, arguments jsonb, INOUT outcome jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $fn$
BEGIN
    outcome := pyrec._unsupported(fn);
END
$fn$;
COMMENT ON PROCEDURE pyrec._call_proc(text, jsonb, jsonb) IS 'Managed flavour: training and batch jobs run in a client (0A000)';
