-- complain if this script is sourced in psql rather than run by CREATE EXTENSION
\echo Use "CREATE EXTENSION pyrec" to load this file. \quit
-- Catalog: models, their versions and training runs. Functions reach these by qualified name.

CREATE TABLE pyrec.models (
    model_id       serial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    recipe         text NOT NULL,
    interactions   text NOT NULL,
    items          text,
    users          text,
    columns        jsonb NOT NULL,
    options        jsonb NOT NULL DEFAULT '{}',
    active_version integer,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE pyrec.models IS 'Recommendation models: source relations, column mapping, recipe, serving version';

CREATE TABLE pyrec._versions (
    model_id         integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    version          integer NOT NULL,
    status           text NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive')),
    recipe           text NOT NULL,
    params           jsonb NOT NULL,
    metrics          jsonb NOT NULL,
    dims             integer NOT NULL,
    n_users          integer NOT NULL,
    n_items          integer NOT NULL,
    n_interactions   bigint NOT NULL,
    items_table      text NOT NULL,
    users_table      text NOT NULL,
    training_seconds double precision NOT NULL,
    mode             text NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'update')),
    base_version     integer,
    fold             text NOT NULL DEFAULT 'none' CHECK (fold IN ('none', 'sum', 'least_squares')),
    fold_state       jsonb NOT NULL DEFAULT '{}',
    ann              boolean NOT NULL DEFAULT false,
    item_features    jsonb NOT NULL DEFAULT '{}',
    n_cold_items     integer NOT NULL DEFAULT 0,
    user_features    jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    PRIMARY KEY (model_id, version)
);
COMMENT ON TABLE pyrec._versions IS 'Trained versions of each model; read it through pyrec.model_versions';

CREATE TABLE pyrec._runs (
    run_id        bigserial PRIMARY KEY,
    model_id      integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'train' CHECK (kind IN ('train', 'batch')),
    target        text,
    version       integer,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    phase         text NOT NULL,
    percent       real NOT NULL DEFAULT 0,
    rows_read     bigint,
    pid           integer NOT NULL,
    backend_start timestamptz,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    message       text
);
COMMENT ON TABLE pyrec._runs IS 'Training runs and batch jobs; read them through pyrec.training_runs and pyrec.batch_jobs';

CREATE VIEW pyrec.model_versions AS
SELECT m.name AS model, v.version, v.status, v.recipe, v.params, v.metrics, v.dims,
       v.n_users, v.n_items, v.n_interactions, v.training_seconds, v.mode, v.base_version,
       v.ann AS hnsw_index, v.n_cold_items, v.created_at,
       v.activated_at, v.items_table, v.users_table
FROM pyrec._versions v JOIN pyrec.models m USING (model_id);
COMMENT ON VIEW pyrec.model_versions IS 'Trained versions: status, recipe, parameters, holdout metrics, sizes, timings';

-- a run whose backend is gone (killed, crashed, server restarted) shows as failed at once;
-- a standby cannot tell (the primary's backends are not among its own): it shows the row
CREATE VIEW pyrec._runs_now AS
SELECT r.run_id, r.model_id, r.kind, r.target, r.version,
       CASE WHEN gone THEN 'failed' ELSE r.status END AS status, r.phase, r.percent,
       r.rows_read, r.pid, r.started_at, r.finished_at,
       CASE WHEN gone THEN 'the backend exited before finishing' ELSE r.message END AS message
FROM pyrec._runs r,
     LATERAL (SELECT r.status = 'running' AND NOT pg_catalog.pg_is_in_recovery() AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid = r.pid AND a.backend_start = r.backend_start)) g(gone);
COMMENT ON VIEW pyrec._runs_now IS 'pyrec._runs with runs of vanished backends shown as failed';

CREATE VIEW pyrec.training_runs AS
SELECT r.run_id, m.name AS model, r.version, r.status, r.phase, r.percent, r.rows_read,
       r.pid, r.started_at, r.finished_at, r.finished_at - r.started_at AS duration, r.message
FROM pyrec._runs_now r JOIN pyrec.models m USING (model_id)
WHERE r.kind = 'train';
COMMENT ON VIEW pyrec.training_runs IS 'Progress of running trainings and the outcome of past ones';

CREATE VIEW pyrec.batch_jobs AS
SELECT r.run_id, m.name AS model, r.version, r.target, r.status, r.phase, r.percent,
       r.rows_read AS rows_written, r.pid, r.started_at, r.finished_at,
       r.finished_at - r.started_at AS duration, r.message
FROM pyrec._runs_now r JOIN pyrec.models m USING (model_id)
WHERE r.kind = 'batch';
COMMENT ON VIEW pyrec.batch_jobs IS 'Progress of running batch jobs (batch_recommend, batch_users_for_items) and the outcome of past ones';

-- pg_dump keeps the catalog's rows (the vector tables of each version are dumped as user tables)
SELECT pg_catalog.pg_extension_config_dump('pyrec.models', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._versions', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs_run_id_seq', '');
-- Messages: how error messages show values the caller passed in.

-- the rule of pyrec_pg.runtime.server.shorten, so SQL and Python errors cut huge inputs alike
CREATE FUNCTION pyrec._shown(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE WHEN length(value) > 200
                THEN left(value, 60) || '...(' || length(value) || ' characters)'
                ELSE value END
$fn$;
COMMENT ON FUNCTION pyrec._shown(text) IS
'A caller''s value as error messages show it: over 200 characters, its first 60 and its length';
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
    from pyrec_pg.runtime import server
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

CREATE FUNCTION pyrec._result(outcome jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    e jsonb := outcome->'error';
BEGIN
    IF e IS NULL THEN
        RETURN outcome->'result';
    ELSIF e ? 'detail' AND e ? 'hint' THEN
        RAISE EXCEPTION USING ERRCODE = e->>'sqlstate', MESSAGE = e->>'message',
                              DETAIL = e->>'detail', HINT = e->>'hint';
    ELSIF e ? 'hint' THEN
        RAISE EXCEPTION USING ERRCODE = e->>'sqlstate', MESSAGE = e->>'message', HINT = e->>'hint';
    ELSIF e ? 'detail' THEN
        RAISE EXCEPTION USING ERRCODE = e->>'sqlstate', MESSAGE = e->>'message', DETAIL = e->>'detail';
    ELSE
        RAISE EXCEPTION USING ERRCODE = e->>'sqlstate', MESSAGE = e->>'message';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._result(jsonb) IS 'Returns the result of a pyrec._call outcome or raises its error';

CREATE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('version', '{}'))
        || jsonb_build_object(
               'sql', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'),
               'pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'));
END
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects, the server-side Python package, numpy, scipy and pgvector';
-- Creating and dropping models.

CREATE FUNCTION pyrec.create_model(
    name text,
    interactions text,
    items text DEFAULT NULL,
    users text DEFAULT NULL,
    recipe text DEFAULT 'als',
    options jsonb DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('create_model', jsonb_build_object(
        'name', name, 'interactions', interactions, 'items', items, 'users', users,
        'recipe', recipe, 'options', options)));
END
$fn$;
COMMENT ON FUNCTION pyrec.create_model(text, text, text, text, text, jsonb) IS
'Defines a model over the user''s own tables or views; returns the resolved column mapping';

CREATE FUNCTION pyrec.drop_model(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    mid integer;
    t record;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT m.model_id INTO mid FROM pyrec.models m WHERE m.name = name FOR UPDATE;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'model "%" does not exist, skipping', pyrec._shown(name);
            RETURN;
        END IF;
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    FOR t IN SELECT v.items_table, v.users_table FROM pyrec._versions v WHERE v.model_id = mid LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I, pyrec.%I', t.items_table, t.users_table);
    END LOOP;
    -- batch outputs it wrote (still marked as this model's) and staging tables of its batch jobs
    FOR t IN SELECT r.run_id, r.target FROM pyrec._runs r WHERE r.model_id = mid AND r.kind = 'batch' LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I', '_batch_' || t.run_id);
        IF starts_with(coalesce(obj_description(to_regclass(t.target), 'pg_class'), ''),
                       format('pyrec batch output: model %s version ', name)) THEN
            PERFORM pyrec._drop_bi_views(to_regclass(t.target));  -- pyrec.create_bi_view's
            EXECUTE format('DROP TABLE %s', to_regclass(t.target));
        END IF;
    END LOOP;
    IF to_regprocedure('cron.unschedule(name)') IS NOT NULL THEN
        PERFORM pyrec.unschedule_training(name, if_exists => true);
    END IF;
    DELETE FROM pyrec.models m WHERE m.model_id = mid;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_model(text, boolean) IS 'Drops a model with all its versions, vector tables, runs, batch output tables and the BI views pyrec made over them';

CREATE FUNCTION pyrec.default_model() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    chosen text := nullif(current_setting('pyrec.default_model', true), '');
    n integer;
BEGIN
    IF chosen IS NOT NULL THEN
        RETURN chosen;
    END IF;
    SELECT count(*), min(m.name) INTO n, chosen FROM pyrec.models m;
    IF n = 1 THEN
        RETURN chosen;
    END IF;
    RAISE EXCEPTION '%', CASE WHEN n = 0 THEN 'there is no model to recommend from'
                              ELSE format('there are %s models and no default one', n) END
        USING ERRCODE = 'undefined_object',
              HINT = CASE WHEN n = 0 THEN 'create one with pyrec.create_model(...) and train it'
                          ELSE 'choose one with SET pyrec.default_model = ''name'', or call pyrec.recommend(model, user_id, k)' END;
END
$fn$;
COMMENT ON FUNCTION pyrec.default_model() IS 'The model unqualified recommend() uses: setting pyrec.default_model, else the only model';
-- Choosing the serving version: activate any kept version, or roll back to the previous one.

CREATE FUNCTION pyrec.activate(model text, version integer) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    kept integer[];
BEGIN
    IF model IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'model and version must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT model, version, status FROM pyrec.model_versions lists the versions';
    END IF;
    -- the row lock orders this against trainings writing a new version of the same model
    SELECT * INTO m FROM pyrec.models WHERE models.name = model FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pyrec._versions v WHERE v.model_id = m.model_id AND v.version = version) THEN
        SELECT array_agg(v.version ORDER BY v.version) INTO kept
          FROM pyrec._versions v WHERE v.model_id = m.model_id;
        RAISE EXCEPTION 'model "%" has no version %', model, version USING ERRCODE = 'undefined_object',
            HINT = CASE WHEN kept IS NULL THEN format('train it first: CALL pyrec.train(%L)', model)
                        ELSE format('kept versions: %s (the setting pyrec.keep_versions bounds them)',
                                    array_to_string(kept, ', ')) END;
    END IF;
    UPDATE pyrec.models SET active_version = version WHERE model_id = m.model_id;
    UPDATE pyrec._versions v
       SET status = CASE WHEN v.version = version THEN 'active' ELSE 'inactive' END,
           activated_at = CASE WHEN v.version = version THEN now() ELSE v.activated_at END
     WHERE v.model_id = m.model_id;
    RETURN jsonb_build_object('model', model, 'active_version', version,
                              'previous_version', m.active_version);
END
$fn$;
COMMENT ON FUNCTION pyrec.activate(text, integer) IS
'Serves the given kept version of a model from the next query on; returns the previous one';

CREATE FUNCTION pyrec.rollback(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    previous integer;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT * INTO m FROM pyrec.models WHERE models.name = model FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT max(v.version) INTO previous FROM pyrec._versions v
     WHERE v.model_id = m.model_id AND v.version < coalesce(m.active_version, 0);
    IF previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no version older than the active one (%)', model,
                        coalesce(m.active_version::text, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'pyrec.activate(model, version) serves any kept version; SELECT * FROM pyrec.model_versions lists them';
    END IF;
    RETURN pyrec.activate(model, previous);
END
$fn$;
COMMENT ON FUNCTION pyrec.rollback(text) IS
'Serves the newest kept version older than the active one (undoes a bad training)';

CREATE FUNCTION pyrec.refresh_items(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('refresh_items', jsonb_build_object('model', model)));
END
$fn$;
COMMENT ON FUNCTION pyrec.refresh_items(text) IS
'Gives items added to the items relation since training vectors from their attributes, so they can be recommended now';
-- Training: procedures, so progress is committed where other sessions see it while it runs.
-- No SET clause: a procedure with one cannot commit; the Python qualifies every name itself.

CREATE PROCEDURE pyrec.train(model text, options jsonb DEFAULT '{}', mode text DEFAULT 'full')
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
BEGIN
    CALL pyrec._call_proc('train', jsonb_build_object('model', model, 'options', options, 'mode', mode), outcome);
    RAISE NOTICE '%', pyrec._result(outcome)->>'notice';
END
$fn$;
COMMENT ON PROCEDURE pyrec.train(text, jsonb, text) IS
'Trains a new version (holdout metrics first), then activates it; the previous version serves until then. mode => ''update'' warm-starts from the active version';
-- Offline evaluation on demand (training stores the same metrics in pyrec.model_versions).
-- protocol, holdout and seed default to the model's options, as training uses them.

CREATE FUNCTION pyrec.evaluate(
    model text,
    protocol text DEFAULT NULL,
    holdout double precision DEFAULT NULL,
    seed integer DEFAULT NULL,
    options jsonb DEFAULT '{}'
) RETURNS TABLE (metric text, value double precision, popularity double precision)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m jsonb;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example options => ''{"params": {"factors": 32}}''';
    END IF;
    m := pyrec._result(pyrec._call('evaluate', jsonb_build_object(
        'model', model,
        'options', options || jsonb_strip_nulls(jsonb_build_object(
            'protocol', protocol, 'holdout', holdout, 'seed', seed)))));
    RETURN QUERY
        SELECT e.key, (e.value #>> '{}')::double precision,
               (m #>> ARRAY['baseline', 'popularity', e.key])::double precision
          FROM jsonb_each(m) e
         WHERE jsonb_typeof(e.value) = 'number' AND e.key NOT IN ('holdout', 'seed')
         ORDER BY e.key;
END
$fn$;
COMMENT ON FUNCTION pyrec.evaluate(text, text, double precision, integer, jsonb) IS
'Holdout metrics (precision, recall, ndcg, mrr, map, coverage) of a model''s recipe next to popularity, without training a version';
-- Filters: compiled by the Python filter compiler, stored (named) or cached per session (ad hoc).

CREATE TABLE pyrec._filters (
    model_id   integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    name       text NOT NULL,
    expression text NOT NULL,
    compiled   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (model_id, name)
);
COMMENT ON TABLE pyrec._filters IS 'Named filters with their compiled SQL; read it through pyrec.filters';
SELECT pg_catalog.pg_extension_config_dump('pyrec._filters', '');

CREATE VIEW pyrec.filters AS
SELECT m.name AS model, f.name, f.expression, f.compiled->>'target' AS target,
       ARRAY(SELECT jsonb_array_elements_text(f.compiled->'params')) AS params,
       f.created_at, f.created_by
FROM pyrec._filters f JOIN pyrec.models m USING (model_id);
COMMENT ON VIEW pyrec.filters IS 'Named filters: expression, what they select (ItemID/UserID), their $PARAMETERS';

-- Helpers the compiled predicates call; plain SQL so the planner inlines them.
CREATE FUNCTION pyrec._values(vals jsonb, key text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT CASE jsonb_typeof(vals->key)
             WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(vals->key))
             WHEN 'null' THEN NULL
             ELSE ARRAY[vals->>key] END
$fn$;
COMMENT ON FUNCTION pyrec._values(jsonb, text) IS 'A filter parameter as an array: a JSON array, or one value';

CREATE FUNCTION pyrec._text_in(field text, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    -- a text field may hold several |-separated values (Personalize's multi-valued fields)
    SELECT field = ANY (vals) OR (strpos(field, '|') > 0 AND string_to_array(field, '|') && vals)
$fn$;
COMMENT ON FUNCTION pyrec._text_in(text, text[]) IS 'Whether a (possibly |-separated multi-valued) text field matches any value';

CREATE FUNCTION pyrec._event_match(event_type text, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    -- as in Personalize: "*" matches every event type, and matching ignores case
    SELECT '*' = ANY (vals) OR lower(event_type) = ANY (SELECT lower(v) FROM unnest(vals) v)
$fn$;
COMMENT ON FUNCTION pyrec._event_match(text, text[]) IS 'Whether an event type matches a filter''s list ("*" matches all, case ignored)';

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

CREATE FUNCTION pyrec._resolve_filter(model_id integer, filter text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    compiled jsonb;
BEGIN
    -- a named filter of the model wins; anything else is an expression
    SELECT f.compiled INTO compiled FROM pyrec._filters f
     WHERE f.model_id = model_id AND f.name = filter;
    IF compiled IS NULL THEN
        compiled := pyrec._result(pyrec._filter(model_id, filter));
    END IF;
    RETURN compiled;
END
$fn$;
COMMENT ON FUNCTION pyrec._resolve_filter(integer, text) IS 'The compiled form of a named filter or a filter expression';

CREATE FUNCTION pyrec._filter_values(compiled jsonb, params jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    missing text[];
BEGIN
    IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object, got %', jsonb_typeof(params)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example params => ''{"GENRES": ["Comedy", "Drama"]}''';
    END IF;
    missing := ARRAY(SELECT p FROM jsonb_array_elements_text(compiled->'params') p
                      WHERE params IS NULL OR NOT params ? p);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'filter parameter $% has no value', pyrec._shown(missing[1])
            USING ERRCODE = 'undefined_parameter',
                  HINT = format('pass it with params => ''{"%s": ...}''', pyrec._shown(missing[1]));
    END IF;
    missing := ARRAY(SELECT p FROM jsonb_array_elements_text(compiled->'scalar_params') p
                      WHERE jsonb_typeof(params->p) IN ('array', 'object'));
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'a filter value does not fit its field: parameter $% must be a single value, not a JSON %',
                        pyrec._shown(missing[1]), jsonb_typeof(params->missing[1])
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('pass one value in params, or use IN ($%s) to match any of several values', pyrec._shown(missing[1]));
    END IF;
    -- the filter's own literals come last so a caller's params can never replace them
    RETURN coalesce(params, '{}') || (compiled->'constants');
END
$fn$;
COMMENT ON FUNCTION pyrec._filter_values(jsonb, jsonb) IS 'The values a compiled filter reads: the caller''s params and the filter''s literals';

CREATE FUNCTION pyrec.create_filter(model text, name text, expression text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('create_filter', jsonb_build_object(
        'model', model, 'name', name, 'expression', expression)));
END
$fn$;
COMMENT ON FUNCTION pyrec.create_filter(text, text, text) IS
'Validates and stores a named filter (Personalize syntax or a SQL predicate over item columns)';

CREATE FUNCTION pyrec.drop_filter(model text, name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
BEGIN
    IF model IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'model and filter name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT * FROM pyrec.filters lists them';
    END IF;
    DELETE FROM pyrec._filters f USING pyrec.models m
     WHERE f.model_id = m.model_id AND m.name = model AND f.name = name;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'filter "%" of model "%" does not exist, skipping', pyrec._shown(name), pyrec._shown(model);
            RETURN;
        END IF;
        RAISE EXCEPTION 'filter "%" of model "%" does not exist', pyrec._shown(name), pyrec._shown(model)
            USING ERRCODE = 'undefined_object', HINT = 'SELECT * FROM pyrec.filters lists them';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_filter(text, text, boolean) IS 'Drops a named filter';
-- Serving: plain plpgsql over the active version's vector tables, no Python on the hot path.

CREATE FUNCTION pyrec._active_version(model text) RETURNS pyrec._versions
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    v pyrec._versions;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT * INTO m FROM pyrec.models WHERE models.name = model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT * INTO v FROM pyrec._versions
     WHERE _versions.model_id = m.model_id AND _versions.version = m.active_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" has no trained version', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('train it first: CALL pyrec.train(%L)', model);
    END IF;
    RETURN v;
END
$fn$;
COMMENT ON FUNCTION pyrec._active_version(text) IS 'The serving version of a model, with clear errors when there is none';

CREATE FUNCTION pyrec._seen_items(model_id integer, user_id text) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    seen text[];
BEGIN
    IF pyrec._is_forgotten(model_id, user_id) THEN
        RETURN '{}';  -- a forgotten user's history is not read (pyrec.forget_user)
    END IF;
    SELECT * INTO m FROM pyrec.models WHERE models.model_id = model_id;
    -- the parameter is cast to the column's own type so an index on the user column is used
    EXECUTE format('SELECT coalesce(array_agg(DISTINCT %I::text) FILTER (WHERE %I IS NOT NULL), ''{}'')'
                   ' FROM %s WHERE %I = $1::%s',
                   m.columns->>'item', m.columns->>'item', m.interactions, m.columns->>'user',
                   m.columns->>'user_type')
       INTO seen USING user_id;
    RETURN seen;
EXCEPTION
    WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_datetime_format THEN
        RETURN '{}';  -- the id cannot exist in a column of that type: nothing seen
    WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
        RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                        m.interactions, m.name, SQLERRM
            USING ERRCODE = 'undefined_table',
                  HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
END
$fn$;
COMMENT ON FUNCTION pyrec._seen_items(integer, text) IS 'Items a user interacted with, read live from the model''s interactions relation';

CREATE FUNCTION pyrec._user_key(model_id integer, user_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    typ text;
BEGIN
    SELECT m.columns->>'user_type' INTO typ FROM pyrec.models m WHERE m.model_id = model_id;
    EXECUTE format('SELECT $1::%s', typ) USING user_id;
    RETURN user_id;
EXCEPTION
    WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_datetime_format THEN
        RETURN NULL;  -- cannot be an id of that type: an unknown user
END
$fn$;
COMMENT ON FUNCTION pyrec._user_key(integer, text) IS 'The user id if it fits the type of the interactions'' user column, else NULL';

CREATE FUNCTION pyrec._user_vector(v pyrec._versions, user_id text, history text[],
                                   OUT vec vector, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    n integer;
BEGIN
    IF pyrec._is_forgotten(v.model_id, user_id) THEN
        RETURN;  -- forgotten: no vector, no fold-in, no attributes (pyrec.forget_user)
    END IF;
    EXECUTE format('SELECT embedding, n_items FROM pyrec.%I WHERE user_id = $1', v.users_table)
       INTO vec, n USING user_id;
    how := 'model';
    -- history the version has not seen (a new user, or new events): fold it in, no retraining
    IF cardinality(history) > 0 AND (vec IS NULL OR n <> cardinality(history)) THEN
        IF v.fold = 'sum' THEN  -- item-item: the user's vector sums their items' history vectors
            EXECUTE format('SELECT sum(history) FROM pyrec.%I WHERE item_id = ANY ($1)', v.items_table)
               INTO vec USING history;
            how := 'fold-in';
        ELSIF v.fold = 'least_squares' THEN  -- ALS: one small solve against the item vectors
            vec := (pyrec._result(pyrec._call('fold_in', jsonb_build_object(
                       'model_id', v.model_id, 'version', v.version, 'user_id', user_id))) #>> '{}')::vector;
            how := 'fold-in';
        END IF;
    END IF;
    -- no history at all: a user of the users relation gets a vector from their attributes
    IF vec IS NULL AND v.user_features <> '{}' THEN
        vec := (pyrec._result(pyrec._call('user_from_attributes', jsonb_build_object(
                   'model_id', v.model_id, 'version', v.version, 'user_id', user_id))) #>> '{}')::vector;
        how := 'attributes';
    END IF;
    IF vec IS NULL THEN
        how := NULL;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._user_vector(pyrec._versions, text, text[]) IS
'A user''s vector: the trained one, or one folded in from live history the version has not seen';

CREATE FUNCTION pyrec._promotion(v pyrec._versions, promotion jsonb, k integer,
                                 OUT pred text, OUT vals jsonb, OUT n integer, OUT label text,
                                 OUT uses_user boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f record;
    extra text[];
BEGIN
    IF jsonb_typeof(promotion) IS DISTINCT FROM 'object' OR promotion->>'filter' IS NULL THEN
        RAISE EXCEPTION 'promotion must be a JSON object with a filter' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"name": "summer", "filter": "INCLUDE ItemID WHERE Items.genre IN (\"Comedy\")", "percent": 20}';
    END IF;
    SELECT array_agg(key) INTO extra FROM jsonb_object_keys(promotion) key
     WHERE key NOT IN ('name', 'filter', 'percent', 'params');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown promotion field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'promotion fields are name, filter, percent and params';
    END IF;
    IF jsonb_typeof(promotion->'percent') IS DISTINCT FROM 'number'
       OR (promotion->>'percent')::numeric NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'promotion percent must be a number between 1 and 100, got %',
                        coalesce(pyrec._shown(promotion->>'percent'), 'none')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'percent is the share of the k slots filled from the promotion''s filter';
    END IF;
    f := pyrec._prepare_filter(v, promotion->>'filter', promotion->'params', 'ItemID', 'promotions', true, false);
    -- the promotion's values are bound as $7 beside the main filter's (the compiler says $5)
    pred := regexp_replace(f.pred, '\$5(?![0-9])', '$7', 'g');
    vals := f.vals;
    uses_user := f.uses_user;
    n := ceil(k * (promotion->>'percent')::numeric / 100.0)::integer;
    label := 'promotion:' || coalesce(promotion->>'name', 'promotion');
END
$fn$;
COMMENT ON FUNCTION pyrec._promotion(pyrec._versions, jsonb, integer) IS
'Checks and compiles recommend()''s promotion argument';

CREATE FUNCTION pyrec._promoted(v pyrec._versions, uvec vector, how text, seen text[], k integer,
                                ukey text, pred text, vals jsonb,
                                promo_pred text, promo_vals jsonb, promo_n integer, promo_label text)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
#variable_conflict use_variable
DECLARE
    score_sql text;
    order_sql text;
BEGIN
    IF uvec IS NULL THEN
        score_sql := 'i.popularity';
        order_sql := 'i.popularity DESC, i.item_id';
    ELSE
        score_sql := '(-(i.embedding <#> $1))::real';
        order_sql := CASE WHEN v.ann THEN 'i.embedding <#> $1' ELSE 'i.embedding <#> $1, i.item_id' END;
    END IF;
    -- promoted items (both filters) take ceil(k * percent / 100) slots spread evenly through
    -- the list, the others keep their order
    RETURN QUERY EXECUTE format(
        'WITH p AS (SELECT i.item_id, %1$s AS s FROM pyrec.%2$I i
                     WHERE i.item_id <> ALL ($2) AND ((%3$s) AND (%4$s)) IS TRUE ORDER BY %5$s LIMIT $8),
              r AS (SELECT i.item_id, %1$s AS s FROM pyrec.%2$I i
                     WHERE i.item_id <> ALL ($2) AND ((%3$s) IS TRUE) AND i.item_id NOT IN (SELECT p.item_id FROM p)
                     ORDER BY %5$s LIMIT $3 - (SELECT count(*) FROM p)),
              x AS (SELECT r.item_id, r.s, (row_number() OVER (ORDER BY r.s DESC, r.item_id))::numeric AS key,
                           0 AS promo FROM r
                    UNION ALL
                    SELECT p.item_id, p.s, (row_number() OVER (ORDER BY p.s DESC, p.item_id))
                           * ((SELECT count(*) FROM r) + 1)::numeric / ((SELECT count(*) FROM p) + 1), 1 FROM p)
         SELECT x.item_id, x.s::real, (row_number() OVER (ORDER BY x.key, x.promo DESC, x.s DESC))::integer,
                CASE WHEN x.promo = 1 THEN %6$L ELSE %7$L END
           FROM x ORDER BY 3',
        score_sql, v.items_table, pred, promo_pred, order_sql, promo_label, coalesce(how, 'popular'))
      USING uvec, seen, k, ukey, vals, NULL::text, promo_vals, promo_n;
END
$fn$;
COMMENT ON FUNCTION pyrec._promoted(pyrec._versions, vector, text, text[], integer, text, text, jsonb, text, jsonb, integer, text) IS
'recommend() with a promotion: a share of the slots from a second filter, spread through the list';

CREATE FUNCTION pyrec._exploration(v pyrec._versions, exploration jsonb, k integer,
                                   OUT pred text, OUT n integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    extra text[];
    weight numeric;
    cutoff numeric;
BEGIN
    IF jsonb_typeof(exploration) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'exploration must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"weight": 0.3, "item_age_cutoff_days": 30}';
    END IF;
    SELECT array_agg(key) INTO extra FROM jsonb_object_keys(exploration) key
     WHERE key NOT IN ('weight', 'item_age_cutoff_days');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown exploration field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'exploration fields are weight and item_age_cutoff_days';
    END IF;
    IF jsonb_typeof(exploration->'weight') IS DISTINCT FROM 'number'
       OR (exploration->>'weight')::numeric NOT BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'exploration weight must be a number between 0 and 1, got %',
                        coalesce(pyrec._shown(exploration->>'weight'), 'none')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the share of the k slots given to fresh items (0: none)';
    END IF;
    weight := (exploration->>'weight')::numeric;
    n := ceil(k * weight)::integer;
    IF exploration ? 'item_age_cutoff_days' THEN
        IF jsonb_typeof(exploration->'item_age_cutoff_days') IS DISTINCT FROM 'number'
           OR (exploration->>'item_age_cutoff_days')::numeric <= 0 THEN
            RAISE EXCEPTION 'exploration item_age_cutoff_days must be a positive number'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 30';
        END IF;
        cutoff := (exploration->>'item_age_cutoff_days')::numeric;
        SELECT * INTO m FROM pyrec.models WHERE model_id = v.model_id;
        IF m.columns->>'items_created' IS NULL THEN
            RAISE EXCEPTION 'item_age_cutoff_days needs the items'' creation time'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'give the model an items relation with a created_at column, or map one: options => ''{"columns": {"items_created": "<column>"}}''';
        END IF;
        -- fresh: entered the catalog within the cutoff (read live from the items relation)
        pred := format('i.item_id IN (SELECT r.%I::text FROM %s r WHERE r.%I >= now() - %L::interval)',
                       m.columns->>'items_id', m.items, m.columns->>'items_created', cutoff || ' days');
    ELSE
        pred := 'i.popularity <= 0';  -- fresh: no interactions when the version was trained
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._exploration(pyrec._versions, jsonb, integer) IS
'Checks recommend()''s exploration argument: which items are fresh and how many slots they get';

CREATE FUNCTION pyrec._serve(
    v pyrec._versions,
    user_id text,
    k integer,
    filter text,
    params jsonb,
    exclude_seen boolean,
    promotion jsonb,
    exploration jsonb,
    personalized boolean
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- with an HNSW index, keep scanning until k rows pass the filter (pgvector 0.8)
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
#variable_conflict use_variable
DECLARE
    uvec vector;
    how text;
    history text[] := '{}';
    seen text[] := '{}';
    compiled jsonb;
    pred text := 'true';
    pred_ann text := 'true';
    vals jsonb := '{}';
    ukey text;
    promo record;
BEGIN
    IF filter IS NOT NULL THEN
        compiled := pyrec._resolve_filter(v.model_id, filter);
        IF compiled->>'target' <> 'ItemID' THEN
            RAISE EXCEPTION 'filter selects users (UserID), but recommend returns items'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'use an INCLUDE/EXCLUDE ItemID filter';
        END IF;
        IF (compiled->>'uses_item')::boolean THEN
            RAISE EXCEPTION 'CurrentItem fields only apply to related-item recommendations'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'use Items.<field> or CurrentUser.<field> in recommend filters';
        END IF;
        vals := pyrec._filter_values(compiled, params);
        pred := compiled->>'sql';
        -- an HNSW scan tests a few candidates: look their fields up one by one
        pred_ann := coalesce(compiled->>'sql_per_row', pred);
        IF (compiled->>'uses_user')::boolean THEN
            ukey := pyrec._user_key(v.model_id, user_id);
        END IF;
    ELSIF params IS NOT NULL THEN
        RAISE EXCEPTION 'params were given without a filter' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'params fill the $PARAMETERS of the filter argument';
    END IF;
    IF exclude_seen OR v.fold <> 'none' THEN
        history := pyrec._seen_items(v.model_id, user_id);
    END IF;
    IF exclude_seen THEN
        seen := history;
    END IF;
    IF personalized THEN  -- else the popular answer (an experiment's control variant)
        SELECT u.vec, u.how INTO uvec, how FROM pyrec._user_vector(v, user_id, history) u;
    END IF;
    IF v.ann AND how IS DISTINCT FROM 'model' THEN
        -- vectors solved at request time lie off the trained users' distribution: the graph
        -- search needs more candidates (recall@10 0.77 at 100 on 100k items); this function's
        -- SET clause restores the setting on exit
        PERFORM pg_catalog.set_config('hnsw.ef_search', '400', true);
    END IF;
    IF promotion IS NOT NULL AND exploration IS NOT NULL THEN
        RAISE EXCEPTION 'a request takes a promotion or exploration, not both'
            USING ERRCODE = 'feature_not_supported', HINT = 'pass one of them';
    END IF;
    IF promotion IS NOT NULL THEN
        promo := pyrec._promotion(v, promotion, k);
        IF promo.uses_user AND ukey IS NULL THEN
            ukey := pyrec._user_key(v.model_id, user_id);
        END IF;
    ELSIF exploration IS NOT NULL THEN
        -- exploration mixes fresh items in the way a promotion does, with its own label
        SELECT e.pred AS pred, '{}'::jsonb AS vals, e.n AS n, 'exploration' AS label,
               false AS uses_user INTO promo
          FROM pyrec._exploration(v, exploration, k) e;
        IF promo.n = 0 THEN
            exploration := NULL;
        END IF;
    END IF;
    BEGIN
        IF promotion IS NOT NULL OR exploration IS NOT NULL THEN
            RETURN QUERY SELECT * FROM pyrec._promoted(v, uvec, how, seen, k, ukey, pred, vals,
                                                        promo.pred, promo.vals, promo.n, promo.label);
        ELSIF uvec IS NOT NULL THEN
            -- the filter is part of the candidate scan, so k rows come back whenever k allowed
            -- unseen items exist (not "top k, then drop"); "IS TRUE" keeps its subqueries
            -- filters of the scan: pulled up into a join, they would stop the HNSW index scan
            RETURN QUERY EXECUTE format(
                'SELECT t.item_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.item_id))::integer, %L
                   FROM (SELECT i.item_id, i.embedding <#> $1 AS d FROM pyrec.%I i
                          WHERE i.item_id <> ALL ($2) AND ((%s) IS TRUE) ORDER BY %s LIMIT $3) t
                  ORDER BY 3', how, v.items_table, CASE WHEN v.ann THEN pred_ann ELSE pred END,
                -- an HNSW index orders by distance alone (ties at the cut are arbitrary)
                CASE WHEN v.ann THEN 'd' ELSE 'd, i.item_id' END)
              USING uvec, seen, k, ukey, vals, NULL::text;
        ELSE
            -- unknown user (or one who arrived after training): the most popular unseen items
            RETURN QUERY EXECUTE format(
                'SELECT t.item_id, t.popularity, (row_number() OVER (ORDER BY t.popularity DESC, t.item_id))::integer, ''popular''
                   FROM (SELECT i.item_id, i.popularity FROM pyrec.%I i
                          WHERE i.item_id <> ALL ($2) AND (%s) ORDER BY i.popularity DESC, i.item_id LIMIT $3) t
                  ORDER BY 3', v.items_table, pred)
              USING uvec, seen, k, ukey, vals, NULL::text;
        END IF;
    EXCEPTION
        WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
             OR numeric_value_out_of_range OR invalid_parameter_value THEN
            IF filter IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'a filter value does not fit its field: %', pyrec._shown(SQLERRM)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'check that each value in params has the type of the field it is compared with';
        WHEN undefined_table OR undefined_column THEN
            IF filter IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'filter of model "%" refers to a relation or column that is gone: %',
                            (SELECT m.name FROM pyrec.models m WHERE m.model_id = v.model_id), SQLERRM
                USING ERRCODE = 'undefined_table',
                      HINT = 'recreate the filter (pyrec.drop_filter / pyrec.create_filter) after changing the tables';
    END;
END
$fn$;
COMMENT ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean) IS
'recommend() from a given version: filters, seen items, fold-in, promotions, exploration';

CREATE FUNCTION pyrec.recommend(
    model text,
    user_id text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true,
    promotion jsonb DEFAULT NULL,
    exploration jsonb DEFAULT NULL,
    experiment text DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the user''s id as text, for example pyrec.recommend(''movies'', ''42'', 10)';
    END IF;
    IF k IS NULL OR k < 1 OR k > 10000 THEN
        RAISE EXCEPTION 'k must be between 1 and 10000, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'k is the number of items to return';
    END IF;
    IF experiment IS NOT NULL THEN  -- the user's variant serves, and the impression is logged
        RETURN QUERY SELECT * FROM pyrec._experiment_serve(experiment, model, user_id, k, filter,
                                                            params, exclude_seen, promotion, exploration);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pyrec._serve(pyrec._active_version(model), user_id, k, filter, params,
                                            exclude_seen, promotion, exploration, true);
END
$fn$;
COMMENT ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text) IS
'Top-k items for a user from the model''s active version (or the user''s variant of an experiment); source says what answered: model, fold-in (live history the version has not seen), attributes, popular, promotion or exploration';

CREATE FUNCTION pyrec.recommend(model text, user_id bigint, k integer DEFAULT 10,
                                filter text DEFAULT NULL, params jsonb DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, promotion jsonb DEFAULT NULL,
                                exploration jsonb DEFAULT NULL, experiment text DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(model, user_id::text, k, filter, params, exclude_seen, promotion,
                                      exploration, experiment) $fn$;
COMMENT ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text) IS
'Top-k items for a user with an integer id';

-- The mission's unqualified recommend(user_id, k, filter), for the default model.
CREATE FUNCTION public.recommend(user_id text, k integer DEFAULT 10, filter text DEFAULT NULL,
                                 params jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(pyrec.default_model(), user_id, k, filter, params) $fn$;
COMMENT ON FUNCTION public.recommend(text, integer, text, jsonb) IS
'Top-k items for a user from the default model (setting pyrec.default_model, else the only model)';

CREATE FUNCTION public.recommend(user_id bigint, k integer DEFAULT 10, filter text DEFAULT NULL,
                                 params jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(pyrec.default_model(), user_id::text, k, filter, params) $fn$;
COMMENT ON FUNCTION public.recommend(bigint, integer, text, jsonb) IS
'Top-k items for a user with an integer id from the default model';
-- Related items, personalized ranking of a given list, and user segments: plpgsql over the
-- active version's vectors, like recommend().

CREATE FUNCTION pyrec._prepare_filter(
    v pyrec._versions, filter text, params jsonb, target text, fn text,
    allow_user boolean, allow_item boolean, OUT pred text, OUT vals jsonb, OUT uses_user boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    compiled jsonb;
BEGIN
    pred := 'true';
    vals := '{}';
    uses_user := false;
    IF filter IS NULL THEN
        IF params IS NOT NULL THEN
            RAISE EXCEPTION 'params were given without a filter' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'params fill the $PARAMETERS of the filter argument';
        END IF;
        RETURN;
    END IF;
    compiled := pyrec._resolve_filter(v.model_id, filter);
    IF compiled->>'target' <> target THEN
        RAISE EXCEPTION 'filter selects % but % returns %', CASE target WHEN 'ItemID' THEN 'users (UserID)' ELSE 'items (ItemID)' END,
                        fn, CASE target WHEN 'ItemID' THEN 'items' ELSE 'users' END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('use an INCLUDE/EXCLUDE %s filter', target);
    END IF;
    IF (compiled->>'uses_item')::boolean AND NOT allow_item THEN
        RAISE EXCEPTION 'CurrentItem fields do not apply to %', fn USING ERRCODE = 'feature_not_supported',
            HINT = 'CurrentItem refers to the item of similar_items or users_for_item';
    END IF;
    uses_user := (compiled->>'uses_user')::boolean;
    IF uses_user AND NOT allow_user THEN
        RAISE EXCEPTION 'CurrentUser fields and Interactions do not apply to %', fn
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'they need a user: use them in recommend() or rank_items()';
    END IF;
    vals := pyrec._filter_values(compiled, params);
    pred := compiled->>'sql';
END
$fn$;
COMMENT ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) IS
'Resolves and checks a filter for a serving function: the predicate and the values it reads';

CREATE FUNCTION pyrec._check_k(k integer, what text, most integer DEFAULT 10000) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF k IS NULL OR k < 1 OR k > most THEN
        RAISE EXCEPTION '% must be between 1 and %, got %', what, most, coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('%s is the number of rows to return', what);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._check_k(integer, text, integer) IS 'Validates a row count argument';

CREATE FUNCTION pyrec.similar_items(
    model text,
    item text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    f record;
    anchor record;
BEGIN
    IF item IS NULL THEN
        RAISE EXCEPTION 'item must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the item''s id as text, for example pyrec.similar_items(''movies'', ''50'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'similar_items', false, true);
    EXECUTE format('SELECT embedding, history FROM pyrec.%I WHERE item_id = $1', v.items_table)
       INTO anchor USING item;
    IF anchor IS NULL THEN
        -- an item the version does not know: the most popular others (as recommend does)
        RETURN QUERY EXECUTE format(
            'SELECT t.item_id, t.popularity, (row_number() OVER (ORDER BY t.popularity DESC, t.item_id))::integer, ''popular''
               FROM (SELECT i.item_id, i.popularity FROM pyrec.%I i
                      WHERE i.item_id <> $1 AND (%s) ORDER BY i.popularity DESC, i.item_id LIMIT $3) t
              ORDER BY 3', v.items_table, f.pred)
          USING item, NULL::text[], k, NULL::text, f.vals, item;
    ELSIF anchor.history IS NOT NULL THEN
        -- item-item recipes: the score the item's history row gives every other item
        RETURN QUERY EXECUTE format(
            'SELECT t.item_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.item_id))::integer, ''model''
               FROM (SELECT i.item_id, i.embedding <#> $1 AS d FROM pyrec.%I i
                      WHERE i.item_id <> $2 AND (%s) ORDER BY d, i.item_id LIMIT $3) t
              ORDER BY 3', v.items_table, f.pred)
          USING anchor.history, item, k, NULL::text, f.vals, item;
    ELSE
        -- factor models: cosine similarity of item vectors
        RETURN QUERY EXECUTE format(
            'SELECT t.item_id, (1 - t.d)::real, (row_number() OVER (ORDER BY t.d, t.item_id))::integer, ''model''
               FROM (SELECT i.item_id, i.embedding <=> $1 AS d FROM pyrec.%I i
                      WHERE i.item_id <> $2 AND (%s) ORDER BY d, i.item_id LIMIT $3) t
              ORDER BY 3', v.items_table, f.pred)
          USING anchor.embedding, item, k, NULL::text, f.vals, item;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb) IS
'Items most similar to an item ("viewed X also viewed"); filters may use CurrentItem fields';

CREATE FUNCTION pyrec.similar_items(model text, item bigint, k integer DEFAULT 10,
                                    filter text DEFAULT NULL, params jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.similar_items(model, item::text, k, filter, params) $fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb) IS
'Items most similar to an item with an integer id';

CREATE FUNCTION pyrec.rank_items(
    model text,
    user_id text,
    item_ids text[],
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    f record;
    uvec vector;
    how text;
    ukey text;
BEGIN
    IF user_id IS NULL OR item_ids IS NULL THEN
        RAISE EXCEPTION 'user_id and item_ids must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.rank_items(''movies'', ''42'', ARRAY[''1'', ''50'', ''181''])';
    END IF;
    IF cardinality(item_ids) > 10000 THEN
        RAISE EXCEPTION 'item_ids holds % items, at most 10000 are ranked at once', cardinality(item_ids)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'rank the list in parts';
    END IF;
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'rank_items', true, false);
    IF f.uses_user THEN
        ukey := pyrec._user_key(v.model_id, user_id);
    END IF;
    SELECT u.vec, u.how INTO uvec, how
      FROM pyrec._user_vector(v, user_id,
               CASE WHEN v.fold = 'none' THEN '{}' ELSE pyrec._seen_items(v.model_id, user_id) END) u;
    -- every given item comes back once, in list order among equals: items the version does
    -- not know rank last with a NULL score (source 'unknown'), never silently dropped; items
    -- the filter rules out are dropped, as in recommend
    RETURN QUERY EXECUTE format(
        'WITH given AS (SELECT g.id, min(g.pos) AS pos FROM unnest($2) WITH ORDINALITY g(id, pos)
                         WHERE g.id IS NOT NULL GROUP BY g.id),
              scored AS (
                SELECT g.id, g.pos, i.item_id IS NOT NULL AS known,
                       CASE WHEN $1 IS NULL THEN i.popularity ELSE (-(i.embedding <#> $1))::real END AS s
                  FROM given g LEFT JOIN pyrec.%I i ON i.item_id = g.id
                 WHERE i.item_id IS NULL OR (%s))
         SELECT s.id, s.s, (row_number() OVER (ORDER BY s.known DESC, s.s DESC NULLS LAST, s.pos))::integer,
                CASE WHEN NOT s.known THEN ''unknown'' WHEN $1 IS NULL THEN ''popular'' ELSE %L END
           FROM scored s ORDER BY 3', v.items_table, f.pred, how)
      USING uvec, item_ids, NULL::integer, ukey, f.vals, NULL::text;
END
$fn$;
COMMENT ON FUNCTION pyrec.rank_items(text, text, text[], text, jsonb) IS
'Personalized ranking of a given list of items; unknown items rank last with a NULL score';

CREATE FUNCTION pyrec.users_for_item(
    model text,
    item_id text,
    n integer DEFAULT 100,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true
) RETURNS TABLE (user_id text, score real, rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    m pyrec.models;
    f record;
    ivec vector;
    seen text[] := '{}';
BEGIN
    IF item_id IS NULL THEN
        RAISE EXCEPTION 'item_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.users_for_item(''movies'', ''50'', 100)';
    END IF;
    PERFORM pyrec._check_k(n, 'n', 1000000);
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'UserID', 'users_for_item', false, true);
    EXECUTE format('SELECT embedding FROM pyrec.%I WHERE item_id = $1', v.items_table)
       INTO ivec USING item_id;
    IF ivec IS NULL THEN
        RAISE EXCEPTION 'item "%" is not in version % of model "%"', pyrec._shown(item_id), v.version, model
            USING ERRCODE = 'undefined_object',
                  HINT = 'segments need an item the model was trained with; retrain to include new items';
    END IF;
    IF exclude_seen THEN  -- users who already interacted with the item, read live
        SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
        BEGIN
            EXECUTE format('SELECT coalesce(array_agg(DISTINCT %I::text), ''{}'') FROM %s WHERE %I = $1::%s',
                           m.columns->>'user', m.interactions, m.columns->>'item', m.columns->>'item_type')
               INTO seen USING item_id;
        EXCEPTION
            WHEN invalid_text_representation OR numeric_value_out_of_range THEN
                seen := '{}';
            WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
                RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                                m.interactions, m.name, SQLERRM
                    USING ERRCODE = 'undefined_table',
                          HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
        END;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT t.user_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.user_id))::integer
           FROM (SELECT u.user_id, u.embedding <#> $1 AS d FROM pyrec.%I u
                  WHERE u.user_id <> ALL ($2) AND (%s) ORDER BY d, u.user_id LIMIT $3) t
          ORDER BY 3', v.users_table, f.pred)
      USING ivec, seen, n, NULL::text, f.vals, item_id;
END
$fn$;
COMMENT ON FUNCTION pyrec.users_for_item(text, text, integer, text, jsonb, boolean) IS
'User segment: the users most likely to interact with an item (who have not yet, by default)';

CREATE FUNCTION pyrec.users_for_items(
    model text,
    item_filter text,
    n integer DEFAULT 100,
    params jsonb DEFAULT NULL,
    user_filter text DEFAULT NULL
) RETURNS TABLE (user_id text, score real, rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    fi record;
    fu record;
    qvec vector;
    matched integer;
BEGIN
    IF item_filter IS NULL THEN
        RAISE EXCEPTION 'item_filter must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example ''INCLUDE ItemID WHERE Items.genre IN ("Horror")''';
    END IF;
    PERFORM pyrec._check_k(n, 'n', 1000000);
    v := pyrec._active_version(model);
    fi := pyrec._prepare_filter(v, item_filter, params, 'ItemID', 'users_for_items (item_filter)', false, false);
    fu := pyrec._prepare_filter(v, user_filter, CASE WHEN user_filter IS NULL THEN NULL ELSE params END,
                                'UserID', 'users_for_items (user_filter)', false, false);
    -- the segment's query is the mean vector of the matching items (item-attribute affinity)
    EXECUTE format('SELECT avg(i.embedding), count(*) FROM pyrec.%I i WHERE (%s)', v.items_table, fi.pred)
       INTO qvec, matched USING NULL::vector, NULL::text[], NULL::integer, NULL::text, fi.vals, NULL::text;
    IF matched = 0 THEN
        RAISE EXCEPTION 'item_filter matches no item of version % of model "%"', v.version, model
            USING ERRCODE = 'no_data_found', HINT = 'check the filter''s values against the items table';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT t.user_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.user_id))::integer
           FROM (SELECT u.user_id, u.embedding <#> $1 AS d FROM pyrec.%I u
                  WHERE (%s) ORDER BY d, u.user_id LIMIT $3) t
          ORDER BY 3', v.users_table, fu.pred)
      USING qvec, NULL::text[], n, NULL::text, fu.vals, NULL::text;
END
$fn$;
COMMENT ON FUNCTION pyrec.users_for_items(text, text, integer, jsonb, text) IS
'User segment: the users most drawn to the items an item filter selects (e.g. a genre or a brand)';

CREATE FUNCTION pyrec.because_you_interacted(
    model text,
    user_id text,
    k integer DEFAULT 10,
    anchors integer DEFAULT 3
) RETURNS TABLE (item_id text, score real, rank integer, anchor_item_id text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    m pyrec.models;
    latest text[];
    seen text[];
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.because_you_interacted(''movies'', ''42'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    PERFORM pyrec._check_k(anchors, 'anchors', 50);
    v := pyrec._active_version(model);
    SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
    seen := pyrec._seen_items(v.model_id, user_id);
    -- the user's latest items (by the timestamp column when there is one), read live
    BEGIN
        EXECUTE format(
            'SELECT array_agg(x.item) FROM (SELECT %I::text AS item, max(%s) AS t FROM %s
               WHERE %I = $1::%s AND %I IS NOT NULL GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 LIMIT $2) x',
            m.columns->>'item',
            CASE WHEN m.columns->>'timestamp' IS NULL THEN '0' ELSE quote_ident(m.columns->>'timestamp') END,
            m.interactions, m.columns->>'user', m.columns->>'user_type', m.columns->>'item')
           INTO latest USING user_id, anchors;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        latest := NULL;
    END;
    IF pyrec._is_forgotten(v.model_id, user_id) THEN
        latest := NULL;  -- a forgotten user's history is not read
    END IF;
    -- each candidate once, credited to the anchor it is most similar to
    RETURN QUERY
    SELECT b.item_id, b.score, (row_number() OVER (ORDER BY b.score DESC, b.item_id))::integer, b.anchor
      FROM (SELECT DISTINCT ON (s.item_id) s.item_id, s.score, a.item AS anchor
              FROM unnest(coalesce(latest, '{}')) a(item),
                   LATERAL pyrec.similar_items(model, a.item, k + cardinality(seen)) s
             WHERE s.item_id <> ALL (seen) AND s.source = 'model'
             ORDER BY s.item_id, s.score DESC, a.item) b
     ORDER BY b.score DESC, b.item_id
     LIMIT k;
END
$fn$;
COMMENT ON FUNCTION pyrec.because_you_interacted(text, text, integer, integer) IS
'Items similar to the user''s latest items, each with the anchor item it is similar to';

CREATE FUNCTION pyrec.frequently_bought_together(
    model text,
    item text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    time_window interval DEFAULT '1 hour'
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    v pyrec._versions;
    m pyrec.models;
    f record;
    together text;
BEGIN
    IF item IS NULL THEN
        RAISE EXCEPTION 'item must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.frequently_bought_together(''shop'', ''sku-1'', 5)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    v := pyrec._active_version(model);
    SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'frequently_bought_together', false, true);
    -- counted live from the interactions: within a session/basket column when there is one,
    -- else within time_window of the same user's events with the item
    IF m.columns->>'session' IS NOT NULL THEN
        together := format(
            'SELECT x.%1$I::text AS item_id, count(DISTINCT x.%2$I) AS n FROM %3$s x
              WHERE x.%2$I IN (SELECT a.%2$I FROM %3$s a WHERE a.%1$I = $6::%4$s AND a.%2$I IS NOT NULL)
                AND x.%1$I <> $6::%4$s GROUP BY 1',
            m.columns->>'item', m.columns->>'session', m.interactions, m.columns->>'item_type');
    ELSIF m.columns->>'timestamp' IS NOT NULL THEN
        together := format(
            'SELECT x.%1$I::text AS item_id, count(DISTINCT x.%2$I) AS n FROM %3$s x
               JOIN %3$s a ON a.%2$I = x.%2$I AND a.%1$I = $6::%4$s
                AND x.%5$I BETWEEN a.%5$I - $7 AND a.%5$I + $7
              WHERE x.%1$I <> $6::%4$s GROUP BY 1',
            m.columns->>'item', m.columns->>'user', m.interactions, m.columns->>'item_type',
            m.columns->>'timestamp');
        IF time_window IS NULL OR time_window <= interval '0' THEN
            RAISE EXCEPTION 'time_window must be a positive interval, got %', coalesce(time_window::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'items bought within time_window of the item count as together, for example ''1 hour''';
        END IF;
        IF m.columns->>'timestamp_type' NOT IN ('timestamp with time zone', 'timestamp without time zone', 'date') THEN
            RAISE EXCEPTION 'frequently_bought_together needs a session column or a timestamp column of a time type'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'map a session/basket/order column: options => ''{"columns": {"session": "order_id"}}''';
        END IF;
    ELSE
        RAISE EXCEPTION 'model "%" has no session and no timestamp column', model
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'map a session/basket/order column: options => ''{"columns": {"session": "order_id"}}''';
    END IF;
    BEGIN
        RETURN QUERY EXECUTE format(
            'SELECT i.item_id, i.n::real, (row_number() OVER (ORDER BY i.n DESC, i.item_id))::integer, ''co-occurrence''
               FROM (%s) i WHERE (%s) ORDER BY i.n DESC, i.item_id LIMIT $3', together, f.pred)
          USING NULL::vector, NULL::text[], k, NULL::text, f.vals, item, time_window;
    EXCEPTION
        WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RETURN;  -- an id that cannot exist in the item column: bought with nothing
        WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
            RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                            m.interactions, m.name, SQLERRM
                USING ERRCODE = 'undefined_table',
                      HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
    END;
END
$fn$;
COMMENT ON FUNCTION pyrec.frequently_bought_together(text, text, integer, text, jsonb, interval) IS
'Items most often in the same session/basket as an item (else within time_window of it), counted live';
-- Batch recommendations: a procedure, so its progress is committed where others see it.

CREATE PROCEDURE pyrec.batch_recommend(
    model text,
    users text DEFAULT NULL,
    k integer DEFAULT 25,
    filter text DEFAULT NULL,
    into_table text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
    r jsonb;
BEGIN
    CALL pyrec._call_proc('batch_recommend', jsonb_build_object(
        'model', model, 'users', users, 'k', k, 'filter', filter, 'into_table', into_table,
        'params', params, 'exclude_seen', exclude_seen), outcome);
    r := pyrec._result(outcome);
    RAISE NOTICE '% rows for % users in % (model "%" version %) in % s', r->>'rows', r->>'users',
        r->>'table', r->>'model', r->>'version', round((r->>'seconds')::numeric, 1);
END
$fn$;
COMMENT ON PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean) IS
'Top-k items for many users (all, a query or a table) into a table of (user_id, item_id, score, rank, source), replaced atomically';

CREATE PROCEDURE pyrec.batch_users_for_items(
    model text,
    items text DEFAULT NULL,
    n integer DEFAULT 100,
    filter text DEFAULT NULL,
    into_table text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
    r jsonb;
BEGIN
    CALL pyrec._call_proc('batch_users_for_items', jsonb_build_object(
        'model', model, 'items', items, 'n', n, 'filter', filter, 'into_table', into_table,
        'params', params, 'exclude_seen', exclude_seen), outcome);
    r := pyrec._result(outcome);
    RAISE NOTICE '% rows for % items in % (model "%" version %) in % s%', r->>'rows', r->>'items',
        r->>'table', r->>'model', r->>'version', round((r->>'seconds')::numeric, 1),
        CASE WHEN (r->>'items_without_vectors')::int > 0
             THEN format('; %s items are not in the version', r->>'items_without_vectors')
             ELSE '' END;
END
$fn$;
COMMENT ON PROCEDURE pyrec.batch_users_for_items(text, text, integer, text, text, jsonb, boolean) IS
'Segments for many items (all, a query or a table): the top-n users of each into a table of (item_id, user_id, score, rank), replaced atomically';
-- Scheduled retrains through pg_cron, when it is installed in this database.

CREATE FUNCTION pyrec._cron_job_name(model text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT 'pyrec-train-' || model $fn$;
COMMENT ON FUNCTION pyrec._cron_job_name(text) IS 'The pg_cron job name of a model''s scheduled training';

CREATE FUNCTION pyrec._require_cron() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF to_regprocedure('cron.schedule(text, text, text)') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('install it (shared_preload_libraries = ''pg_cron'', cron.database_name = %L, '
                                'then CREATE EXTENSION pg_cron), or call "pyrec train --dsn ... <model>" '
                                'from the system''s cron', current_database());
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._require_cron() IS 'Raises a clear error when pg_cron is not available here';

CREATE FUNCTION pyrec.schedule_training(model text, schedule text, mode text DEFAULT 'full',
                                        options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    job bigint;
BEGIN
    IF model IS NULL OR schedule IS NULL OR mode IS NULL OR options IS NULL THEN
        RAISE EXCEPTION 'model, schedule, mode and options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'for example pyrec.schedule_training(''movies'', ''0 3 * * *'')';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pyrec.models m WHERE m.name = model) THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF mode NOT IN ('full', 'update') THEN
        RAISE EXCEPTION 'unknown training mode %', quote_literal(pyrec._shown(mode))
            USING ERRCODE = 'invalid_parameter_value', HINT = 'mode is "full" or "update"';
    END IF;
    IF jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example ''{"params": {"factors": 32}}''';
    END IF;
    PERFORM pyrec._require_cron();
    BEGIN
        -- the same job name replaces the model's previous schedule
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
          USING pyrec._cron_job_name(model), schedule,
                format('CALL pyrec.train(%L, %L::jsonb, mode => %L)', model, options, mode);
    EXCEPTION WHEN invalid_parameter_value OR syntax_error OR internal_error THEN
        RAISE EXCEPTION 'invalid schedule %: %', quote_literal(pyrec._shown(schedule)), pyrec._shown(SQLERRM)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a cron expression: minute hour day-of-month month day-of-week, e.g. ''0 3 * * *'' (daily at 03:00)';
    END;
    PERFORM pyrec._audit(current_user, 'schedule_training', model, jsonb_build_object(
        'schedule', schedule, 'mode', mode, 'options', options, 'job', job));
    RETURN job;
END
$fn$;
COMMENT ON FUNCTION pyrec.schedule_training(text, text, text, jsonb) IS
'Retrains a model on a cron schedule through pg_cron (one schedule per model; returns the job id)';

CREATE FUNCTION pyrec.unschedule_training(model text, if_exists boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    found_job boolean;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    PERFORM pyrec._require_cron();
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO found_job
      USING pyrec._cron_job_name(model);
    IF NOT found_job THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'model "%" has no scheduled training', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'pyrec.schedule_training(model, schedule) creates one';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1::name)' USING pyrec._cron_job_name(model);
    PERFORM pyrec._audit(current_user, 'unschedule_training', model);
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION pyrec.unschedule_training(text, boolean) IS 'Removes a model''s scheduled training';
-- Data readiness of a model's relations, one row per check.

CREATE FUNCTION pyrec.check_data(model text)
RETURNS TABLE (check_name text, value double precision, ok boolean, detail text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN QUERY
    SELECT c.check_name, c.value, c.ok, c.detail
      FROM jsonb_to_recordset(pyrec._result(pyrec._call('check_data',
               jsonb_build_object('model', model)))) AS c(check_name text, value double precision,
                                                          ok boolean, detail text);
END
$fn$;
COMMENT ON FUNCTION pyrec.check_data(text) IS
'Counts, sparsity, NULL ids, duplicates, ids missing from the items/users relations, and whether each recipe has its minimum data';
-- Experiments: A/B tests served by recommend(..., experiment => name), impressions logged
-- beside the outcome data, attribution and offline comparison in SQL.

CREATE TABLE pyrec._experiments (
    experiment_id serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    -- [{"name", "share", "model", "serve", "filter", "params", "promotion", ...}, ...]
    variants      jsonb NOT NULL,
    uptos         float8[] NOT NULL,  -- each variant's cumulative share, for the assignment
    control       text NOT NULL,
    models        text[] NOT NULL,
    description   text,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    name NOT NULL DEFAULT current_user,
    stopped_at    timestamptz
);
COMMENT ON TABLE pyrec._experiments IS 'A/B experiments: variants with traffic shares; read it through pyrec.experiments';

-- append-only and lean (no index, no foreign key): logging must not slow serving; results
-- read an experiment's impressions in one scan
CREATE TABLE pyrec.impressions (
    recommendation_id bigint GENERATED ALWAYS AS IDENTITY,
    experiment_id     integer NOT NULL,
    variant           text NOT NULL,
    user_id           text NOT NULL,
    items             text[] NOT NULL,  -- in rank order: items[1] was ranked first
    scores            real[] NOT NULL,
    shown_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pyrec.impressions IS 'What recommend(..., experiment => name) served: one row per request, items in rank order';

CREATE VIEW pyrec.experiments AS
SELECT e.name, e.status, e.control, e.models,
       e.variants,
       e.description, e.created_at, e.created_by, e.stopped_at,
       (SELECT count(*) FROM pyrec.impressions i WHERE i.experiment_id = e.experiment_id) AS impressions
FROM pyrec._experiments e;
COMMENT ON VIEW pyrec.experiments IS 'A/B experiments: status, control, variants and their shares, impressions so far';

SELECT pg_catalog.pg_extension_config_dump('pyrec._experiments', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._experiments_experiment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.impressions', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.impressions_recommendation_id_seq', '');

CREATE FUNCTION pyrec._experiment(name text) RETURNS pyrec._experiments
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    e pyrec._experiments;
BEGIN
    SELECT * INTO e FROM pyrec._experiments x WHERE x.name = name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'experiment "%" does not exist', pyrec._shown(name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.experiments lists the experiments';
    END IF;
    RETURN e;
END
$fn$;
COMMENT ON FUNCTION pyrec._experiment(text) IS 'An experiment''s row, with a clear error when there is none';

CREATE FUNCTION pyrec.create_experiment(
    name text,
    variants jsonb,
    model text DEFAULT NULL,
    description text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('create_experiment', jsonb_build_object(
        'name', name, 'variants', variants, 'model', model, 'description', description)));
END
$fn$;
COMMENT ON FUNCTION pyrec.create_experiment(text, jsonb, text, text) IS
'Starts an A/B experiment: variants (models, or one model with other filters, promotions or exploration) with traffic shares';

CREATE FUNCTION pyrec.stop_experiment(name text) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    id integer := (pyrec._experiment(stop_experiment.name)).experiment_id;
BEGIN
    UPDATE pyrec._experiments SET status = 'stopped', stopped_at = now()
     WHERE experiment_id = id AND status = 'running';
END
$fn$;
COMMENT ON FUNCTION pyrec.stop_experiment(text) IS 'Stops serving an experiment (its impressions stay for results)';

CREATE FUNCTION pyrec.drop_experiment(name text) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    id integer := (pyrec._experiment(drop_experiment.name)).experiment_id;
BEGIN
    DELETE FROM pyrec.impressions WHERE experiment_id = id;
    DELETE FROM pyrec._experiments WHERE experiment_id = id;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_experiment(text) IS 'Drops an experiment and its impressions';

CREATE FUNCTION pyrec._variant(e pyrec._experiments, user_id text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $fn$
DECLARE
    -- a stable hash of (experiment, user) in [0, 1): a user always gets the same variant
    bucket float8 := ((pg_catalog.hashtextextended(e.name || '/' || user_id, 0)
                       & 9223372036854775807) % 1000000) / 1000000.0;
BEGIN
    FOR n IN 1 .. cardinality(e.uptos) LOOP
        IF e.uptos[n] > bucket THEN
            RETURN e.variants -> (n - 1);
        END IF;
    END LOOP;
    RETURN e.variants -> (cardinality(e.uptos) - 1);
END
$fn$;
COMMENT ON FUNCTION pyrec._variant(pyrec._experiments, text) IS 'The variant a user is assigned to: a stable hash of experiment and user against cumulative shares';

CREATE FUNCTION pyrec.experiment_variant(experiment text, user_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    e pyrec._experiments;
BEGIN
    e := pyrec._experiment(experiment);
    RETURN pyrec._variant(e, user_id)->>'name';
END
$fn$;
COMMENT ON FUNCTION pyrec.experiment_variant(text, text) IS 'The variant of an experiment a user sees (deterministic)';

CREATE FUNCTION pyrec._experiment_serve(experiment text, model text, user_id text, k integer,
                                        filter text, params jsonb, exclude_seen boolean,
                                        promotion jsonb, exploration jsonb)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    e pyrec._experiments;
    var jsonb;
    vname text;
BEGIN
    SELECT * INTO e FROM pyrec._experiments x WHERE x.name = experiment;  -- inline: hot path
    IF NOT FOUND THEN
        e := pyrec._experiment(experiment);  -- raises the error
    END IF;
    IF e.status <> 'running' THEN
        RAISE EXCEPTION 'experiment "%" is stopped', experiment
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call recommend without experiment, or start a new experiment';
    END IF;
    IF model IS NOT NULL AND NOT model = ANY (e.models) THEN
        RAISE EXCEPTION 'model "%" is not part of experiment "%"', pyrec._shown(model), experiment
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('its variants serve %s; pass model => NULL to let the experiment choose',
                                array_to_string(e.models, ', '));
    END IF;
    IF current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'experiment "%" logs impressions, which a read-only transaction cannot', experiment
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'serve experiment traffic from the primary outside READ ONLY transactions; recommend() without experiment works anywhere';
    END IF;
    var := pyrec._variant(e, user_id);
    vname := var->>'name';
    -- when the log row is all this transaction writes, its commit need not wait for the WAL
    -- flush (a crash may lose the last few impressions, never anything else)
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NULL THEN
        PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    END IF;
    -- one statement serves and logs: a variant's own filter, promotion or exploration
    -- replaces the request's
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT * FROM pyrec._serve(pyrec._active_version(var->>'model'), user_id, k,
                        CASE WHEN var ? 'filter' THEN var->>'filter' ELSE filter END,
                        CASE WHEN var ? 'filter' THEN var->'params' ELSE params END,
                        exclude_seen,
                        CASE WHEN var ? 'promotion' THEN var->'promotion' ELSE promotion END,
                        CASE WHEN var ? 'exploration' THEN var->'exploration' ELSE exploration END,
                        var->>'serve' IS DISTINCT FROM 'popular')),
    logged AS (
        INSERT INTO pyrec.impressions (experiment_id, variant, user_id, items, scores)
        SELECT e.experiment_id, vname, user_id,
               coalesce(array_agg(r.item_id ORDER BY r.rank), '{}'),
               coalesce(array_agg(r.score ORDER BY r.rank), '{}') FROM r)
    SELECT r.item_id, r.score, r.rank, vname || ':' || r.source FROM r ORDER BY r.rank;
END
$fn$;
COMMENT ON FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb) IS
'recommend() for an experiment: the user''s variant serves and the impression is logged';

CREATE FUNCTION pyrec.experiment_results(
    experiment text,
    outcome text,
    "window" interval DEFAULT '7 days',
    alpha double precision DEFAULT 0.05,
    min_effect double precision DEFAULT 0.1
) RETURNS TABLE (variant text, is_control boolean, users bigint, impressions bigint,
                 converted_users bigint, conversion_rate double precision,
                 value_per_user double precision, metric text, difference double precision,
                 ci_low double precision, ci_high double precision, p_value double precision,
                 users_needed bigint, enough_data boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM jsonb_to_recordset(pyrec._result(pyrec._call('experiment_results',
        jsonb_build_object('experiment', experiment, 'outcome', outcome,
                           'window_seconds', extract(epoch FROM "window"), 'alpha', alpha,
                           'min_effect', min_effect))))
        AS r(variant text, is_control boolean, users bigint, impressions bigint,
             converted_users bigint, conversion_rate double precision,
             value_per_user double precision, metric text, difference double precision,
             ci_low double precision, ci_high double precision, p_value double precision,
             users_needed bigint, enough_data boolean);
END
$fn$;
COMMENT ON FUNCTION pyrec.experiment_results(text, text, interval, double precision, double precision) IS
'Attribution per variant: outcomes (an event type, or an aggregate such as SUM(order_value)) within a window after each user''s first impression, the difference to control with a confidence interval and p-value, and whether the sample is large enough';

CREATE FUNCTION pyrec.compare_models(
    models text[],
    segment_by text DEFAULT NULL,
    protocol text DEFAULT NULL,
    holdout double precision DEFAULT NULL,
    seed integer DEFAULT NULL
) RETURNS TABLE (model text, segment text, users integer, metric text, value double precision)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM jsonb_to_recordset(pyrec._result(pyrec._call('compare_models',
        jsonb_build_object('models', models, 'segment_by', segment_by, 'protocol', protocol,
                           'holdout', holdout, 'seed', seed))))
        AS r(model text, segment text, users integer, metric text, value double precision);
END
$fn$;
COMMENT ON FUNCTION pyrec.compare_models(text[], text, text, double precision, integer) IS
'Offline replay: several models fitted and scored on one held-out split, metrics per model and per segment of a users attribute (long format, for charts)';
-- Forgetting users (data deletion requests) and the audit trail of admin actions.

CREATE TABLE pyrec._forgotten (
    model_id     integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    user_id      text NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    forgotten_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (model_id, user_id)
);
COMMENT ON TABLE pyrec._forgotten IS 'Users forgotten per model: never trained on, personalized or batched again';
SELECT pg_catalog.pg_extension_config_dump('pyrec._forgotten', '');

CREATE FUNCTION pyrec._is_forgotten(model_id integer, user_id text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT EXISTS (SELECT 1 FROM pyrec._forgotten f WHERE f.model_id = $1 AND f.user_id = $2) $fn$;
COMMENT ON FUNCTION pyrec._is_forgotten(integer, text) IS 'Whether a model has forgotten a user';

CREATE FUNCTION pyrec.forget_user(model text, user_id text)
RETURNS TABLE (model_name text, what text, rows_affected bigint, action text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    t record;
    n bigint;
    found_any boolean := false;
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.forget_user(NULL, ''42'') forgets user 42 in every model';
    END IF;
    IF model IS NOT NULL THEN
        PERFORM pyrec._active_version(model);  -- a clear error for an unknown model
    END IF;
    FOR m IN SELECT * FROM pyrec.models x WHERE model IS NULL OR x.name = model ORDER BY x.name LOOP
        found_any := true;
        -- the vectors of every kept version (rollback must not bring the user back)
        n := 0;
        FOR t IN SELECT v.users_table FROM pyrec._versions v WHERE v.model_id = m.model_id LOOP
            EXECUTE format('DELETE FROM pyrec.%I WHERE user_id = $1', t.users_table) USING user_id;
            GET DIAGNOSTICS rows_affected = ROW_COUNT;
            n := n + rows_affected;
        END LOOP;
        model_name := m.name; what := 'user vectors (every kept version)'; rows_affected := n;
        action := 'deleted';
        RETURN NEXT;
        -- rows of batch outputs this model wrote (recommendations and segments)
        n := 0;
        FOR t IN SELECT DISTINCT r.target FROM pyrec._runs r
                  WHERE r.model_id = m.model_id AND r.kind = 'batch' AND to_regclass(r.target) IS NOT NULL
                    AND starts_with(coalesce(obj_description(to_regclass(r.target), 'pg_class'), ''),
                                    format('pyrec batch output: model %s version ', m.name)) LOOP
            EXECUTE format('WITH d AS (DELETE FROM %s WHERE user_id = $1 RETURNING 1) SELECT count(*) FROM d',
                           to_regclass(t.target)) INTO rows_affected USING user_id;
            n := n + rows_affected;
        END LOOP;
        what := 'batch output rows'; rows_affected := n; action := 'deleted';
        RETURN NEXT;
        -- impressions of experiments serving this model
        WITH d AS (DELETE FROM pyrec.impressions i USING pyrec._experiments e
                    WHERE i.experiment_id = e.experiment_id AND m.name = ANY (e.models)
                      AND i.user_id = user_id RETURNING 1)
        SELECT count(*) INTO rows_affected FROM d;
        what := 'experiment impressions'; action := 'deleted';
        RETURN NEXT;
        INSERT INTO pyrec._forgotten (model_id, user_id) VALUES (m.model_id, user_id)
            ON CONFLICT DO NOTHING;
        -- what stays in the user's own tables: pyrec cannot delete from them
        BEGIN
            EXECUTE format('SELECT count(*) FROM %s WHERE %I = $1::%s', m.interactions,
                           m.columns->>'user', m.columns->>'user_type')
               INTO rows_affected USING user_id;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            rows_affected := 0;
        END;
        what := format('rows in %s (interactions)', m.interactions);
        action := CASE WHEN rows_affected > 0 THEN 'left for you to delete: pyrec no longer reads them'
                       ELSE 'none' END;
        RETURN NEXT;
        IF m.users IS NOT NULL AND m.columns ? 'users_id' THEN
            BEGIN
                EXECUTE format('SELECT count(*) FROM %s WHERE %I::text = $1', m.users, m.columns->>'users_id')
                   INTO rows_affected USING user_id;
            END;
            what := format('rows in %s (users)', m.users);
            action := CASE WHEN rows_affected > 0 THEN 'left for you to delete: pyrec no longer reads them'
                           ELSE 'none' END;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF NOT found_any THEN
        RAISE EXCEPTION 'there is no model to forget the user in' USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.forget_user(text, text) IS
'Forgets a user (one model, or every model when model is NULL): deletes their vectors, batch rows and impressions at once, keeps them out of later trainings and personalization, and reports what remains in your own tables';

-- Audit: who did what to which model, recorded by triggers on the catalog so every path
-- (SQL functions, the external trainer, pg_cron jobs) is covered.
CREATE TABLE pyrec.audit (
    audit_id     bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    role         name NOT NULL DEFAULT current_user,
    session_role name NOT NULL DEFAULT session_user,
    action       text NOT NULL,
    model        text,
    details      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE pyrec.audit IS 'Admin actions: create, train, activate (and rollback), schedule, drop, forget, filters, experiments; with role and time';
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit_audit_id_seq', '');

-- the acting role is passed in: inside this SECURITY DEFINER function (roles file)
-- current_user is the extension's owner
CREATE FUNCTION pyrec._audit(actor name, action text, model text, details jsonb DEFAULT '{}')
RETURNS void
LANGUAGE sql
AS $fn$ INSERT INTO pyrec.audit (role, action, model, details) VALUES ($1, $2, $3, coalesce($4, '{}')) $fn$;
COMMENT ON FUNCTION pyrec._audit(name, text, text, jsonb) IS 'Records an admin action in pyrec.audit';

CREATE FUNCTION pyrec._audit_trigger() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    row_new jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    row_old jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    r jsonb := coalesce(row_new, row_old);
    model_name text := CASE WHEN TG_TABLE_NAME = 'models' THEN r->>'name'
                            ELSE (SELECT m.name FROM pyrec.models m WHERE m.model_id = (r->>'model_id')::int) END;
BEGIN
    -- a superuser loading a dump (pg_dump's output sets check_function_bodies off): the dump
    -- brings the audit rows of what it restores, so recording them again would clash
    IF current_setting('check_function_bodies') = 'off'
       AND (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'models' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM pyrec._audit(current_user, 'create_model', model_name, row_new - 'model_id' - 'created_at' - 'created_by');
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM pyrec._audit(current_user, 'drop_model', model_name, jsonb_build_object('active_version', row_old->'active_version'));
        ELSIF row_new->'active_version' IS DISTINCT FROM row_old->'active_version' THEN
            PERFORM pyrec._audit(current_user, 'activate', model_name, jsonb_build_object(
                'from', row_old->'active_version', 'to', row_new->'active_version'));
        END IF;
    ELSIF TG_TABLE_NAME = '_runs' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM pyrec._audit(current_user, r->>'kind', model_name, jsonb_build_object('run_id', r->'run_id', 'target', r->'target'));
        ELSE
            PERFORM pyrec._audit(current_user, format('%s %s', r->>'kind', r->>'status'), model_name, jsonb_build_object(
                'run_id', r->'run_id', 'version', r->'version', 'message', r->'message'));
        END IF;
    ELSIF TG_TABLE_NAME = '_filters' THEN
        PERFORM pyrec._audit(current_user, CASE TG_OP WHEN 'INSERT' THEN 'create_filter' ELSE 'drop_filter' END, model_name,
                             jsonb_build_object('filter', r->'name', 'expression', r->'expression'));
    ELSIF TG_TABLE_NAME = '_experiments' THEN
        PERFORM pyrec._audit(current_user, CASE TG_OP WHEN 'INSERT' THEN 'create_experiment' WHEN 'DELETE' THEN 'drop_experiment'
                                        ELSE 'stop_experiment' END, NULL,
                             jsonb_build_object('experiment', r->'name', 'variants', r->'variants'));
    ELSIF TG_TABLE_NAME = '_forgotten' THEN
        PERFORM pyrec._audit(current_user, 'forget_user', model_name, jsonb_build_object('user_id', r->'user_id'));
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pyrec._audit_trigger() IS 'Writes pyrec.audit rows for changes of the catalog';

CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE OF active_version ON pyrec.models
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT ON pyrec._runs
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit_outcome AFTER UPDATE OF status ON pyrec._runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR DELETE ON pyrec._filters
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE OF status ON pyrec._experiments
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT ON pyrec._forgotten
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
-- Roles and privileges: pyrec_reader serves and reads metrics, pyrec_admin also creates,
-- trains, schedules, drops and forgets. Roles belong to the cluster, not to this database:
-- they are created when missing and DROP EXTENSION leaves them.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pyrec_reader') THEN
        CREATE ROLE pyrec_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pyrec_admin') THEN
        CREATE ROLE pyrec_admin NOLOGIN;
    END IF;
END
$do$;
COMMENT ON ROLE pyrec_reader IS 'pyrec: recommend, similar items, ranking, segments, read models and metrics';
COMMENT ON ROLE pyrec_admin IS 'pyrec: everything pyrec_reader can, and create, train, batch, schedule, drop, forget';
GRANT pyrec_reader TO pyrec_admin;

-- Functions are executable by PUBLIC by default; pyrec's are not: each role gets its own.
REVOKE ALL ON ALL ROUTINES IN SCHEMA pyrec FROM PUBLIC;
REVOKE ALL ON FUNCTION public.recommend(text, integer, text, jsonb), public.recommend(bigint, integer, text, jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA pyrec TO pyrec_reader;
GRANT CREATE ON SCHEMA pyrec TO pyrec_admin;  -- each training's vector tables, batch staging
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA pyrec TO pyrec_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA pyrec TO pyrec_reader;
GRANT EXECUTE ON FUNCTION public.recommend(text, integer, text, jsonb), public.recommend(bigint, integer, text, jsonb) TO pyrec_reader;
-- what changes models stays with admins (table privileges stop a reader anyway: this says it first)
REVOKE EXECUTE ON FUNCTION
    pyrec.create_model(text, text, text, text, text, jsonb), pyrec.drop_model(text, boolean),
    pyrec.activate(text, integer), pyrec.rollback(text), pyrec.refresh_items(text),
    pyrec.create_filter(text, text, text), pyrec.drop_filter(text, text, boolean),
    pyrec.schedule_training(text, text, text, jsonb), pyrec.unschedule_training(text, boolean),
    pyrec.forget_user(text, text), pyrec.create_experiment(text, jsonb, text, text),
    pyrec.stop_experiment(text), pyrec.drop_experiment(text), pyrec.check_data(text),
    pyrec.evaluate(text, text, double precision, integer, jsonb),
    pyrec.compare_models(text[], text, text, double precision, integer),
    pyrec.experiment_results(text, text, interval, double precision, double precision)
FROM pyrec_reader;
REVOKE EXECUTE ON PROCEDURE
    pyrec.train(text, jsonb, text), pyrec._call_proc(text, jsonb, jsonb),
    pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean),
    pyrec.batch_users_for_items(text, text, integer, text, text, jsonb, boolean)
FROM pyrec_reader;

-- catalog: readers read what serving reads; impressions are the one table they write
GRANT SELECT ON pyrec.models, pyrec._versions, pyrec._filters, pyrec._experiments,
    pyrec._forgotten, pyrec.model_versions, pyrec.training_runs, pyrec.batch_jobs,
    pyrec.filters, pyrec.experiments TO pyrec_reader;
GRANT INSERT ON pyrec.impressions TO pyrec_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON pyrec.models, pyrec._versions, pyrec._runs, pyrec._filters,
    pyrec._experiments, pyrec.impressions, pyrec._forgotten TO pyrec_admin;
GRANT SELECT ON pyrec.audit, pyrec._runs_now TO pyrec_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pyrec TO pyrec_admin;
-- the audit trail is append-only for everyone: rows come only through pyrec._audit, which
-- runs as the extension's owner for that reason (SECURITY DEFINER, search_path pinned)
ALTER FUNCTION pyrec._audit(name, text, text, jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION pyrec._audit(name, text, text, jsonb) FROM pyrec_reader;
-- Views for BI tools (Metabase, Superset, Tableau) that browse tables and cannot call
-- functions: metrics per version in long format, impressions, batch outputs, and plain views
-- joining a batch output with the model's item titles (pyrec.create_bi_view).

-- one row per version and metric, so a chart can plot e.g. ndcg@10 over trainings
CREATE VIEW pyrec.model_metrics AS
SELECT m.name AS model, v.version, v.recipe, v.created_at AS trained_at, v.activated_at,
       v.status = 'active' AS active, v.mode, v.metrics->>'protocol' AS protocol,
       (v.metrics->>'holdout')::double precision AS holdout,
       (v.metrics->>'users_evaluated')::integer AS users_evaluated,
       split_part(e.key, '@', 1) AS metric, split_part(e.key, '@', 2)::integer AS k,
       (e.value #>> '{}')::double precision AS value,
       (v.metrics #>> ARRAY['baseline', 'popularity', e.key])::double precision AS popularity
FROM pyrec._versions v JOIN pyrec.models m USING (model_id),
     LATERAL jsonb_each(v.metrics) e
WHERE e.key ~ '^[a-z_]+@[0-9]+$' AND jsonb_typeof(e.value) = 'number';
COMMENT ON VIEW pyrec.model_metrics IS
'Holdout metrics of every kept version in long format (model, version, metric, k, value), beside popularity''s score on the same split';

-- per user and item: readers do not get it (impressions say who was served when)
CREATE VIEW pyrec.impression_log AS
SELECT i.recommendation_id, e.name AS experiment, i.variant, i.user_id, x.item_id,
       x.rank::integer AS rank, x.score, i.shown_at
FROM pyrec.impressions i JOIN pyrec._experiments e USING (experiment_id),
     LATERAL unnest(i.items, i.scores) WITH ORDINALITY x(item_id, score, rank);
COMMENT ON VIEW pyrec.impression_log IS
'Experiment impressions flattened: one row per request and served item, with its rank and score';

CREATE VIEW pyrec.impressions_daily AS
SELECT e.name AS experiment, i.variant, i.shown_at::date AS day, count(*) AS impressions,
       count(DISTINCT i.user_id) AS users, sum(cardinality(i.items)) AS items_shown
FROM pyrec.impressions i JOIN pyrec._experiments e USING (experiment_id)
GROUP BY e.name, i.variant, i.shown_at::date;
COMMENT ON VIEW pyrec.impressions_daily IS
'Experiment traffic per variant and day (session time zone): requests, distinct users, items shown';

CREATE FUNCTION pyrec._bi_views_on(target regclass) RETURNS regclass[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(array_agg(DISTINCT r.ev_class::regclass), '{}')
      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
       AND d.refobjid = $1 AND r.ev_class <> $1
       AND starts_with(coalesce(pg_catalog.obj_description(r.ev_class, 'pg_class'), ''), 'pyrec BI view: ')
$fn$;
COMMENT ON FUNCTION pyrec._bi_views_on(regclass) IS 'The views pyrec.create_bi_view made over a batch output table';

CREATE FUNCTION pyrec._drop_bi_views(target regclass) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v regclass;
BEGIN
    FOREACH v IN ARRAY pyrec._bi_views_on(target) LOOP
        EXECUTE format('DROP VIEW %s', v);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pyrec._drop_bi_views(regclass) IS
'Drops the views pyrec.create_bi_view made over a batch output table (drop_model calls it)';

-- the output a batch job left in each target, whether it is still there, and BI views on it
CREATE VIEW pyrec.batch_outputs AS
SELECT DISTINCT ON (j.model, j.target)
       j.model, j.target, substring(t.note FROM '\((batch_[a-z_]+)\)') AS produced_by, j.version,
       j.rows_written, j.finished_at AS written_at,
       coalesce(starts_with(t.note, format('pyrec batch output: model %s version ', j.model)), false)
           AS present,
       ARRAY(SELECT format('%I.%I', n.nspname, c.relname)
               FROM unnest(pyrec._bi_views_on(t.oid)) x
               JOIN pg_catalog.pg_class c ON c.oid = x
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1) AS bi_views
FROM pyrec.batch_jobs j
     LEFT JOIN LATERAL (SELECT c.oid, pg_catalog.obj_description(c.oid, 'pg_class') AS note
                          FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(j.target)) t ON true
WHERE j.status = 'succeeded'
ORDER BY j.model, j.target, j.run_id DESC;
COMMENT ON VIEW pyrec.batch_outputs IS
'Batch output tables per model: the last job that wrote each, whether its rows are still there (present), and the BI views over it';

CREATE FUNCTION pyrec.create_bi_view(
    model text,
    view_name text,
    source text DEFAULT NULL,
    item_columns text[] DEFAULT NULL,
    replace boolean DEFAULT false
) RETURNS text
LANGUAGE plpgsql
-- no SET clause: names resolve as the caller sees them (an unqualified view_name goes into the
-- caller's current schema, as batch_recommend's into_table does); pyrec's own are qualified
AS $fn$
#variable_conflict use_variable
DECLARE
    batch_columns constant text[] := ARRAY['user_id', 'rank', 'item_id', 'score', 'source'];
    m pyrec.models;
    src regclass;
    src_name text;
    items regclass;
    id_type text;
    available text[];
    parts text[];
    qualified text;
    existing regclass;
    staging text := format('_bi_view_%s', pg_catalog.pg_backend_pid());
    select_list text;
    join_on text;
    shared boolean;
BEGIN
    IF model IS NULL OR view_name IS NULL THEN
        RAISE EXCEPTION 'model and view_name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.create_bi_view(''movies'', ''reporting.movie_recs'')';
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.name = model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF m.items IS NULL THEN
        RAISE EXCEPTION 'model "%" has no items relation to join its batch output with', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'recreate the model with items => ''<your item table>'', or join the batch output yourself';
    END IF;
    -- the batch output: the given table, else the one this model's latest batch_recommend wrote
    IF source IS NULL THEN
        SELECT to_regclass(o.target) INTO src FROM pyrec.batch_outputs o
         WHERE o.model = m.name AND o.present AND o.produced_by = 'batch_recommend'
         ORDER BY o.written_at DESC LIMIT 1;
        IF src IS NULL THEN
            RAISE EXCEPTION 'model "%" has no batch_recommend output', model
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('write one first: CALL pyrec.batch_recommend(%L)', model);
        END IF;
    ELSE
        BEGIN
            src := to_regclass(source);
        EXCEPTION WHEN invalid_name OR syntax_error THEN
            RAISE EXCEPTION 'source "%" is not a valid table name', pyrec._shown(source)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'a name such as public.newsletter_recs';
        END;
        IF src IS NULL THEN
            RAISE EXCEPTION 'source table "%" does not exist', pyrec._shown(source) USING ERRCODE = 'undefined_table',
                HINT = format('SELECT target FROM pyrec.batch_outputs WHERE model = %L lists its batch outputs', model);
        END IF;
    END IF;
    -- schema-qualified whatever the caller's search_path (messages, the view's comment)
    SELECT format('%I.%I', n.nspname, c.relname) INTO src_name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = src;
    IF source IS NOT NULL THEN
        IF NOT starts_with(coalesce(pg_catalog.obj_description(src, 'pg_class'), ''),
                           format('pyrec batch output: model %s version ', m.name))
           OR strpos(pg_catalog.obj_description(src, 'pg_class'), '(batch_recommend)') = 0 THEN
            RAISE EXCEPTION '% is not a batch_recommend output of model "%"', src_name, model
                USING ERRCODE = 'wrong_object_type',
                      HINT = format('SELECT target FROM pyrec.batch_outputs WHERE model = %L lists its batch outputs', model);
        END IF;
    END IF;
    items := to_regclass(m.items);
    SELECT array_agg(a.attname::text ORDER BY a.attnum),
           max(pg_catalog.format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = m.columns->>'items_id')
      INTO available, id_type
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = items AND a.attnum > 0 AND NOT a.attisdropped;
    IF items IS NULL OR id_type IS NULL THEN
        RAISE EXCEPTION 'items relation % of model "%" no longer matches its definition', m.items, model
            USING ERRCODE = 'undefined_table',
                  HINT = 'restore the relation and its id column, or drop and recreate the model';
    END IF;
    -- every item column but the id, unless the caller chose some
    IF item_columns IS NULL THEN
        item_columns := ARRAY(SELECT c FROM unnest(available) c
                               WHERE c <> m.columns->>'items_id' AND c <> ALL (batch_columns));
    ELSIF array_position(item_columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'item_columns must not contain NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = format('name columns of %s, for example ARRAY[''title'']', m.items);
    ELSE
        FOR pos IN 1 .. cardinality(item_columns) LOOP
            IF item_columns[pos] <> ALL (available) THEN
                RAISE EXCEPTION 'column "%" does not exist in items relation %', pyrec._shown(item_columns[pos]), m.items
                    USING ERRCODE = 'undefined_column',
                          HINT = format('its columns are %s', array_to_string(available, ', '));
            END IF;
            IF item_columns[pos] = ANY (batch_columns) OR item_columns[pos] = ANY (item_columns[:pos - 1]) THEN
                RAISE EXCEPTION 'column "%" would appear twice in the view', pyrec._shown(item_columns[pos])
                    USING ERRCODE = 'duplicate_column',
                          HINT = 'the view has user_id, rank, item_id, score and source; list each item column once';
            END IF;
        END LOOP;
    END IF;
    -- the view's name: schema.name, or name in the current schema
    BEGIN
        parts := parse_ident(view_name);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'view_name "%" is not a valid view name', pyrec._shown(view_name)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'a name such as movie_recs or reporting.movie_recs';
    END;
    IF cardinality(parts) = 1 THEN
        parts := ARRAY[current_schema()::text, parts[1]];
        IF parts[1] IS NULL THEN
            RAISE EXCEPTION 'view_name "%" has no schema and search_path names none', pyrec._shown(view_name)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'qualify it, for example public.movie_recs';
        END IF;
    ELSIF cardinality(parts) <> 2 THEN
        RAISE EXCEPTION 'view_name "%" must be a view name or schema.view', pyrec._shown(view_name)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'for example reporting.movie_recs';
    END IF;
    qualified := format('%I.%I', parts[1], parts[2]);
    existing := to_regclass(qualified);
    IF existing IS NOT NULL THEN
        IF NOT starts_with(coalesce(pg_catalog.obj_description(existing, 'pg_class'), ''), 'pyrec BI view: ') THEN
            RAISE EXCEPTION '% exists and was not made by pyrec.create_bi_view', pyrec._shown(qualified)
                USING ERRCODE = 'duplicate_table', HINT = 'choose another view_name, or drop that relation first';
        ELSIF NOT replace THEN
            RAISE EXCEPTION 'BI view % already exists', pyrec._shown(qualified) USING ERRCODE = 'duplicate_table',
                HINT = 'pass replace => true to replace it';
        END IF;
        EXECUTE format('DROP VIEW %s', existing);
    END IF;
    -- the id column's own type when the batch's ids are of it, so an index on it is used
    join_on := CASE WHEN id_type = m.columns->>'item_type'
                    THEN format('i.%I = b.item_id::%s', m.columns->>'items_id', id_type)
                    ELSE format('i.%I::text = b.item_id', m.columns->>'items_id') END;
    SELECT string_agg(format('b.%I', c), ', ') INTO select_list FROM unnest(batch_columns) c;
    SELECT select_list || coalesce(string_agg(format(', i.%I', u.c), '' ORDER BY u.pos), '') INTO select_list
      FROM unnest(item_columns) WITH ORDINALITY u(c, pos);
    -- like batch outputs, the view belongs to pyrec_admin: any admin may replace or drop it,
    -- and it reads the batch table and the items relation with pyrec_admin's rights
    shared := to_regrole('pyrec_admin') IS NOT NULL AND to_regrole('pyrec_reader') IS NOT NULL;
    IF shared AND NOT has_table_privilege('pyrec_admin', items, 'SELECT') THEN
        RAISE EXCEPTION 'pyrec_admin cannot read the items relation %', m.items
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT ON %s TO pyrec_reader: the view reads it with the rights of its owner, pyrec_admin', m.items);
    END IF;
    -- made in schema pyrec (where pyrec_admin may own objects), then moved into place
    EXECUTE format('CREATE VIEW pyrec.%I AS SELECT %s FROM %s b LEFT JOIN %s i ON %s',
                   staging, select_list, src, items, join_on);
    IF shared THEN
        EXECUTE format('ALTER VIEW pyrec.%I OWNER TO pyrec_admin', staging);
        EXECUTE format('GRANT SELECT ON pyrec.%I TO pyrec_reader', staging);
    END IF;
    IF parts[1] <> 'pyrec' THEN
        EXECUTE format('ALTER VIEW pyrec.%I SET SCHEMA %I', staging, parts[1]);
    END IF;
    EXECUTE format('ALTER VIEW %I.%I RENAME TO %I', parts[1], staging, parts[2]);
    EXECUTE format('COMMENT ON VIEW %s IS %L', qualified,
                   format('pyrec BI view: model %s, batch output %s joined with %s', m.name, src_name, m.items));
    PERFORM pyrec._audit(current_user, 'create_bi_view', m.name,
                         jsonb_build_object('view', qualified, 'source', src_name));
    RETURN qualified;
END
$fn$;
COMMENT ON FUNCTION pyrec.create_bi_view(text, text, text, text[], boolean) IS
'Creates a plain view of a model''s batch_recommend output joined with its items relation (titles...), readable by pyrec_reader, for BI tools';

-- grants: 96_roles.sql ran before these objects existed
REVOKE ALL ON FUNCTION pyrec._bi_views_on(regclass), pyrec._drop_bi_views(regclass),
    pyrec.create_bi_view(text, text, text, text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._bi_views_on(regclass), pyrec._drop_bi_views(regclass),
    pyrec.create_bi_view(text, text, text, text[], boolean) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._bi_views_on(regclass) TO pyrec_reader;  -- batch_outputs calls it
GRANT SELECT ON pyrec.model_metrics, pyrec.impressions_daily, pyrec.batch_outputs TO pyrec_reader;
GRANT SELECT ON pyrec.impression_log TO pyrec_admin;
-- Column comments for the relations people browse (psql \d+, BI tools' data dictionaries).

COMMENT ON COLUMN pyrec.models.model_id IS 'Internal id; version tables are named m<model_id>_v<version>_*';
COMMENT ON COLUMN pyrec.models.name IS 'Model name, as passed to recommend(), train() and the other functions';
COMMENT ON COLUMN pyrec.models.recipe IS 'Recipe trained: auto, als, ease, sims, popularity, trending';
COMMENT ON COLUMN pyrec.models.interactions IS 'The interactions table or view the model reads (user, item, [timestamp, event type, event value])';
COMMENT ON COLUMN pyrec.models.items IS 'Optional items table or view: filters on Items fields, cold-start attributes';
COMMENT ON COLUMN pyrec.models.users IS 'Optional users table or view: filters on CurrentUser fields, cold-start attributes';
COMMENT ON COLUMN pyrec.models.columns IS 'Which column of each relation plays which role, and its type, as resolved at create_model';
COMMENT ON COLUMN pyrec.models.options IS 'Training options given to create_model (event weights, holdout, params, ...)';
COMMENT ON COLUMN pyrec.models.active_version IS 'The version recommend() serves; NULL until the first training succeeds';
COMMENT ON COLUMN pyrec.models.created_at IS 'When create_model ran';
COMMENT ON COLUMN pyrec.models.created_by IS 'Role that ran create_model';

COMMENT ON COLUMN pyrec.model_versions.model IS 'Model name';
COMMENT ON COLUMN pyrec.model_versions.version IS 'Version number, 1, 2, ... per model';
COMMENT ON COLUMN pyrec.model_versions.status IS 'active (served), inactive (kept for rollback with pyrec.activate)';
COMMENT ON COLUMN pyrec.model_versions.recipe IS 'Recipe that produced the version (for auto: the candidate that won)';
COMMENT ON COLUMN pyrec.model_versions.params IS 'Hyperparameters the recipe used';
COMMENT ON COLUMN pyrec.model_versions.metrics IS 'Offline metrics on the holdout (precision@k, recall@k, ndcg@k, mrr@25, map@10, coverage@10), the popularity baseline, auto''s candidates';
COMMENT ON COLUMN pyrec.model_versions.dims IS 'Dimensions of the embeddings (pgvector vector(dims))';
COMMENT ON COLUMN pyrec.model_versions.n_users IS 'Users with a trained vector';
COMMENT ON COLUMN pyrec.model_versions.n_items IS 'Items with a trained vector';
COMMENT ON COLUMN pyrec.model_versions.n_interactions IS 'Distinct (user, item) pairs trained on';
COMMENT ON COLUMN pyrec.model_versions.training_seconds IS 'Wall-clock seconds from reading to written vectors';
COMMENT ON COLUMN pyrec.model_versions.mode IS 'full, or update (warm start from base_version)';
COMMENT ON COLUMN pyrec.model_versions.base_version IS 'For mode update: the version it started from';
COMMENT ON COLUMN pyrec.model_versions.hnsw_index IS 'Whether the item vectors have an HNSW index (approximate search for large catalogs)';
COMMENT ON COLUMN pyrec.model_versions.n_cold_items IS 'Items without interactions given vectors from their attributes';
COMMENT ON COLUMN pyrec.model_versions.created_at IS 'When the training that wrote the version committed';
COMMENT ON COLUMN pyrec.model_versions.activated_at IS 'When the version last became active';
COMMENT ON COLUMN pyrec.model_versions.items_table IS 'Table in schema pyrec holding the item vectors';
COMMENT ON COLUMN pyrec.model_versions.users_table IS 'Table in schema pyrec holding the user vectors';

COMMENT ON COLUMN pyrec.training_runs.run_id IS 'Run id (shared with batch_jobs)';
COMMENT ON COLUMN pyrec.training_runs.model IS 'Model name';
COMMENT ON COLUMN pyrec.training_runs.version IS 'Version the run wrote, once it succeeded';
COMMENT ON COLUMN pyrec.training_runs.status IS 'running, succeeded, or failed (also when its session ended without finishing: see message)';
COMMENT ON COLUMN pyrec.training_runs.phase IS 'Current or last phase: reading, evaluating, training, writing';
COMMENT ON COLUMN pyrec.training_runs.percent IS 'Rough progress, 0 to 100';
COMMENT ON COLUMN pyrec.training_runs.rows_read IS 'Interaction rows read';
COMMENT ON COLUMN pyrec.training_runs.pid IS 'Backend process id of the session running it';
COMMENT ON COLUMN pyrec.training_runs.started_at IS 'When the run started';
COMMENT ON COLUMN pyrec.training_runs.finished_at IS 'When it finished (NULL while running)';
COMMENT ON COLUMN pyrec.training_runs.duration IS 'finished_at - started_at, or the time so far';
COMMENT ON COLUMN pyrec.training_runs.message IS 'Error message of a failed run';

COMMENT ON COLUMN pyrec.batch_jobs.run_id IS 'Run id (shared with training_runs)';
COMMENT ON COLUMN pyrec.batch_jobs.model IS 'Model name';
COMMENT ON COLUMN pyrec.batch_jobs.version IS 'Model version the job scored with';
COMMENT ON COLUMN pyrec.batch_jobs.target IS 'Output table the job writes (replaced atomically when it succeeds)';
COMMENT ON COLUMN pyrec.batch_jobs.status IS 'running, succeeded, or failed (also when its session ended without finishing: see message)';
COMMENT ON COLUMN pyrec.batch_jobs.phase IS 'Current or last phase';
COMMENT ON COLUMN pyrec.batch_jobs.percent IS 'Rough progress, 0 to 100';
COMMENT ON COLUMN pyrec.batch_jobs.rows_written IS 'Rows written to the output table';
COMMENT ON COLUMN pyrec.batch_jobs.pid IS 'Backend process id of the session running it';
COMMENT ON COLUMN pyrec.batch_jobs.started_at IS 'When the job started';
COMMENT ON COLUMN pyrec.batch_jobs.finished_at IS 'When it finished (NULL while running)';
COMMENT ON COLUMN pyrec.batch_jobs.duration IS 'finished_at - started_at, or the time so far';
COMMENT ON COLUMN pyrec.batch_jobs.message IS 'Error message of a failed job';

COMMENT ON COLUMN pyrec.filters.model IS 'Model the filter belongs to';
COMMENT ON COLUMN pyrec.filters.name IS 'Filter name, usable as the filter argument of recommend()';
COMMENT ON COLUMN pyrec.filters.expression IS 'The filter expression as written (Personalize syntax or a SQL predicate on item columns)';
COMMENT ON COLUMN pyrec.filters.target IS 'What the filter selects: ItemID (recommend, similar_items) or UserID (users_for_item, segments)';
COMMENT ON COLUMN pyrec.filters.params IS 'Names of the $PARAMETERS the expression expects';
COMMENT ON COLUMN pyrec.filters.created_at IS 'When create_filter ran';
COMMENT ON COLUMN pyrec.filters.created_by IS 'Role that ran create_filter';

COMMENT ON COLUMN pyrec.impressions.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impressions.experiment_id IS 'Experiment the call was served under';
COMMENT ON COLUMN pyrec.impressions.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impressions.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impressions.items IS 'Items shown, in rank order';
COMMENT ON COLUMN pyrec.impressions.scores IS 'Their scores, in the same order';
COMMENT ON COLUMN pyrec.impressions.shown_at IS 'When the recommendations were served';

COMMENT ON COLUMN pyrec.experiments.name IS 'Experiment name, as passed to recommend(..., experiment => name)';
COMMENT ON COLUMN pyrec.experiments.status IS 'running or stopped';
COMMENT ON COLUMN pyrec.experiments.control IS 'The control variant, the baseline of experiment_results';
COMMENT ON COLUMN pyrec.experiments.models IS 'Models the variants serve';
COMMENT ON COLUMN pyrec.experiments.variants IS 'Variants with their share of users, model or popular, filter, promotion, exploration';
COMMENT ON COLUMN pyrec.experiments.description IS 'Free text given at create_experiment';
COMMENT ON COLUMN pyrec.experiments.created_at IS 'When create_experiment ran';
COMMENT ON COLUMN pyrec.experiments.created_by IS 'Role that ran create_experiment';
COMMENT ON COLUMN pyrec.experiments.stopped_at IS 'When stop_experiment ran (NULL while running)';
COMMENT ON COLUMN pyrec.experiments.impressions IS 'Recommendation calls logged so far';

COMMENT ON COLUMN pyrec.audit.audit_id IS 'Increasing id of the entry';
COMMENT ON COLUMN pyrec.audit.at IS 'When the action happened';
COMMENT ON COLUMN pyrec.audit.role IS 'Effective role (current_user) that did it';
COMMENT ON COLUMN pyrec.audit.session_role IS 'Role that logged in (session_user)';
COMMENT ON COLUMN pyrec.audit.action IS 'create_model, train, activate, schedule, unschedule, drop_model, forget_user, create_filter, ...';
COMMENT ON COLUMN pyrec.audit.model IS 'Model concerned, if any';
COMMENT ON COLUMN pyrec.audit.details IS 'Arguments and outcome of the action';

COMMENT ON COLUMN pyrec.model_metrics.model IS 'Model name';
COMMENT ON COLUMN pyrec.model_metrics.version IS 'Version the metric belongs to';
COMMENT ON COLUMN pyrec.model_metrics.recipe IS 'Recipe that produced the version';
COMMENT ON COLUMN pyrec.model_metrics.trained_at IS 'When the version was trained (the x axis of metrics over time)';
COMMENT ON COLUMN pyrec.model_metrics.activated_at IS 'When the version last became active';
COMMENT ON COLUMN pyrec.model_metrics.active IS 'Whether recommend() serves this version now';
COMMENT ON COLUMN pyrec.model_metrics.mode IS 'full, or update (warm start)';
COMMENT ON COLUMN pyrec.model_metrics.protocol IS 'Holdout protocol: random_per_user, random_per_item or time';
COMMENT ON COLUMN pyrec.model_metrics.holdout IS 'Share of interactions held out';
COMMENT ON COLUMN pyrec.model_metrics.users_evaluated IS 'Users with held-out interactions that the metrics average over';
COMMENT ON COLUMN pyrec.model_metrics.metric IS 'precision, recall, ndcg, mrr, map or coverage';
COMMENT ON COLUMN pyrec.model_metrics.k IS 'Cut-off: the metric is over each user''s top k';
COMMENT ON COLUMN pyrec.model_metrics.value IS 'The version''s score';
COMMENT ON COLUMN pyrec.model_metrics.popularity IS 'The popularity baseline''s score on the same split (the bar to beat)';

COMMENT ON COLUMN pyrec.impression_log.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impression_log.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impression_log.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impression_log.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impression_log.item_id IS 'One item shown';
COMMENT ON COLUMN pyrec.impression_log.rank IS 'Its position in the list, from 1';
COMMENT ON COLUMN pyrec.impression_log.score IS 'Its score';
COMMENT ON COLUMN pyrec.impression_log.shown_at IS 'When the list was served';

COMMENT ON COLUMN pyrec.impressions_daily.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impressions_daily.variant IS 'Variant';
COMMENT ON COLUMN pyrec.impressions_daily.day IS 'Day served (session time zone)';
COMMENT ON COLUMN pyrec.impressions_daily.impressions IS 'recommend() calls served';
COMMENT ON COLUMN pyrec.impressions_daily.users IS 'Distinct users served';
COMMENT ON COLUMN pyrec.impressions_daily.items_shown IS 'Items shown, summed over the calls';

COMMENT ON COLUMN pyrec.batch_outputs.model IS 'Model name';
COMMENT ON COLUMN pyrec.batch_outputs.target IS 'Output table';
COMMENT ON COLUMN pyrec.batch_outputs.produced_by IS 'batch_recommend or batch_users_for_items';
COMMENT ON COLUMN pyrec.batch_outputs.version IS 'Model version the rows were scored with';
COMMENT ON COLUMN pyrec.batch_outputs.rows_written IS 'Rows the last job wrote';
COMMENT ON COLUMN pyrec.batch_outputs.written_at IS 'When the last job finished';
COMMENT ON COLUMN pyrec.batch_outputs.present IS 'Whether the table still holds that job''s rows (false: dropped, or written by another model since)';
COMMENT ON COLUMN pyrec.batch_outputs.bi_views IS 'Views pyrec.create_bi_view made over the table';
