-- Upgrade 0.2.0 -> 0.3.0. Whatever changes in sql/src/ between releases is repeated here, so
-- an updated database equals a fresh install (tests/integration/test_upgrade.py compares them).
-- One headed block per change; each block is written to run once, on the 0.2.0 objects. A
-- routine several changes touched is written once, with its 0.3.0 body.
-- 0.3.0 arranges sql/src in layered folders (sql/Makefile lists them): moving a statement
-- between files changes nothing in a database, so only what a database holds differently is here.
\echo Use "ALTER EXTENSION pyrec UPDATE" to load this file. \quit

-- == Bridge: the Python entry points are imported from pyrec_pg.entrypoints.server (the
-- == package keeps pyrec_pg.runtime.server for databases not updated yet).
CREATE OR REPLACE FUNCTION pyrec._python() RETURNS jsonb
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

-- == One lookup of a model by name (pyrec._model), with the errors every caller raised inline:
-- == the active-version lookup, activate, rollback, drop_model, schedule_training and
-- == create_bi_view use it (same messages, SQLSTATEs and hints).
CREATE FUNCTION pyrec._model(p_name text, p_lock boolean DEFAULT false) RETURNS pyrec.models
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models;
BEGIN
    IF p_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF p_lock THEN
        -- the row lock orders the caller against trainings writing a new version of the model
        SELECT * INTO v_model FROM pyrec.models m WHERE m.name = p_name FOR UPDATE;
    ELSE
        SELECT * INTO v_model FROM pyrec.models m WHERE m.name = p_name;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(p_name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    RETURN v_model;
END
$fn$;
COMMENT ON FUNCTION pyrec._model(text, boolean) IS
'A model''s catalog row by name (locked for update if asked), or the error for a null or unknown name';
REVOKE ALL ON FUNCTION pyrec._model(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._model(text, boolean) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._model(text, boolean) TO pyrec_reader;
CREATE OR REPLACE FUNCTION pyrec._active_version(model text) RETURNS pyrec._versions
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_version pyrec._versions;
BEGIN
    -- one statement, so the model's active_version and its row come from one snapshot (a
    -- training may activate a new version meanwhile)
    SELECT x.* INTO v_version
      FROM pyrec.models m JOIN pyrec._versions x ON x.model_id = m.model_id AND x.version = m.active_version
     WHERE m.name = model;
    IF NOT FOUND THEN
        PERFORM pyrec._model(model);  -- a null or unknown name: its error
        RAISE EXCEPTION 'model "%" has no trained version', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('train it first: CALL pyrec.train(%L)', model);
    END IF;
    RETURN v_version;
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.activate(model text, version integer) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models;
    v_kept integer[];
BEGIN
    IF model IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'model and version must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT model, version, status FROM pyrec.model_versions lists the versions';
    END IF;
    v_model := pyrec._model(model, p_lock => true);
    IF NOT EXISTS (SELECT 1 FROM pyrec._versions x
                    WHERE x.model_id = v_model.model_id AND x.version = activate.version) THEN
        SELECT array_agg(x.version ORDER BY x.version) INTO v_kept
          FROM pyrec._versions x WHERE x.model_id = v_model.model_id;
        RAISE EXCEPTION 'model "%" has no version %', model, version USING ERRCODE = 'undefined_object',
            HINT = CASE WHEN v_kept IS NULL THEN format('train it first: CALL pyrec.train(%L)', model)
                        ELSE format('kept versions: %s (the setting pyrec.keep_versions bounds them)',
                                    array_to_string(v_kept, ', ')) END;
    END IF;
    UPDATE pyrec.models m SET active_version = activate.version WHERE m.model_id = v_model.model_id;
    UPDATE pyrec._versions x
       SET status = CASE WHEN x.version = activate.version THEN 'active' ELSE 'inactive' END,
           activated_at = CASE WHEN x.version = activate.version THEN now() ELSE x.activated_at END
     WHERE x.model_id = v_model.model_id;
    RETURN jsonb_build_object('model', model, 'active_version', version,
                              'previous_version', v_model.active_version);
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.rollback(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models := pyrec._model(model, p_lock => true);
    v_previous integer;
BEGIN
    SELECT max(x.version) INTO v_previous FROM pyrec._versions x
     WHERE x.model_id = v_model.model_id AND x.version < coalesce(v_model.active_version, 0);
    IF v_previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no version older than the active one (%)', model,
                        coalesce(v_model.active_version::text, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'pyrec.activate(model, version) serves any kept version; SELECT * FROM pyrec.model_versions lists them';
    END IF;
    RETURN pyrec.activate(model, v_previous);
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.drop_model(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model_id integer;
    v_row record;
BEGIN
    IF if_exists AND name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pyrec.models m WHERE m.name = drop_model.name) THEN
        RAISE NOTICE 'model "%" does not exist, skipping', pyrec._shown(name);
        RETURN;
    END IF;
    v_model_id := (pyrec._model(name, p_lock => true)).model_id;
    FOR v_row IN SELECT v.items_table, v.users_table FROM pyrec._versions v WHERE v.model_id = v_model_id LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I, pyrec.%I', v_row.items_table, v_row.users_table);
    END LOOP;
    -- batch outputs it wrote (still marked as this model's) and staging tables of its batch jobs
    FOR v_row IN SELECT r.run_id, r.target FROM pyrec._runs r WHERE r.model_id = v_model_id AND r.kind = 'batch' LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I', '_batch_' || v_row.run_id);
        IF starts_with(coalesce(obj_description(to_regclass(v_row.target), 'pg_class'), ''),
                       format('pyrec batch output: model %s version ', name)) THEN
            PERFORM pyrec._drop_bi_views(to_regclass(v_row.target));  -- pyrec.create_bi_view's
            EXECUTE format('DROP TABLE %s', to_regclass(v_row.target));
        END IF;
    END LOOP;
    -- pg_cron 1.4 has cron.unschedule(name), 1.5 and later cron.unschedule(text)
    IF to_regprocedure('cron.unschedule(name)') IS NOT NULL
       OR to_regprocedure('cron.unschedule(text)') IS NOT NULL THEN
        PERFORM pyrec.unschedule_training(name, if_exists => true);
    END IF;
    DELETE FROM pyrec.models m WHERE m.model_id = v_model_id;
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.schedule_training(model text, schedule text, mode text DEFAULT 'full',
                                        options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    job bigint;
    stored jsonb;
BEGIN
    IF model IS NULL OR schedule IS NULL OR mode IS NULL OR options IS NULL THEN
        RAISE EXCEPTION 'model, schedule, mode and options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'for example pyrec.schedule_training(''movies'', ''0 3 * * *'')';
    END IF;
    stored := (pyrec._model(model)).options;
    -- pg_cron runs CALL pyrec.train in the server, which does not start Spark
    IF coalesce(options ->> 'engine', stored ->> 'engine') = 'spark' THEN
        RAISE EXCEPTION 'model % trains on Spark, which pg_cron''s trainings in the server do not start',
            quote_literal(model)
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('schedule the external trainer with the system''s cron instead, e.g. 0 3 * * * pyrec train %s --dsn ...', model);
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
CREATE OR REPLACE FUNCTION pyrec.create_bi_view(
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
    m := pyrec._model(model);
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
            -- parse_ident fails on a malformed name on every major; to_regclass returns NULL
            -- for one from PostgreSQL 16 on
            PERFORM pg_catalog.parse_ident(source);
            src := to_regclass(source);
        EXCEPTION WHEN invalid_name OR syntax_error OR invalid_parameter_value THEN
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

-- == One row-count check (pyrec._check_k): recommend's k check, inline before, calls it
-- == with its own wording ("k is the number of items to return").
DROP FUNCTION pyrec._check_k(integer, text, integer);
CREATE FUNCTION pyrec._check_k(p_k integer, p_what text, p_most integer DEFAULT 10000,
                               p_rows text DEFAULT 'rows') RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF p_k IS NULL OR p_k < 1 OR p_k > p_most THEN
        RAISE EXCEPTION '% must be between 1 and %, got %', p_what, p_most, coalesce(p_k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('%s is the number of %s to return', p_what, p_rows);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._check_k(integer, text, integer, text) IS
'Validates a row count argument: between 1 and a bound, with the error every caller raises';
REVOKE ALL ON FUNCTION pyrec._check_k(integer, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._check_k(integer, text, integer, text) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._check_k(integer, text, integer, text) TO pyrec_reader;
-- (pyrec.recommend: written once, with its 0.3.0 body, in the live catalog section below)

-- == One filter preparation (pyrec._prepare_filter) for every serving function: recommend's
-- == copy in pyrec._serve is gone; the function also returns the per-row predicate HNSW
-- == scans use (a new OUT column, so it is dropped and created again).
-- (pyrec._prepare_filter: dropped and written once, with its 0.3.0 body, in the live catalog section below)
-- (pyrec._serve: written once, with its 0.3.0 body, in the live catalog section below)

-- == One candidate query (pyrec._top_k_sql) and one parameter order ($1 to $8) for the
-- == serving functions' scans: recommend, similar_items, users_for_item, users_for_items.
CREATE FUNCTION pyrec._top_k_sql(p_table text, p_target text, p_measure text, p_pred text,
                                 p_ann boolean DEFAULT false, p_source text DEFAULT NULL,
                                 p_first text DEFAULT NULL, p_then text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    v_key text := CASE p_target WHEN 'ItemID' THEN 'item_id' ELSE 'user_id' END;
    v_alias text := CASE p_target WHEN 'ItemID' THEN 'i' ELSE 'u' END;
    v_by_vector boolean := p_measure IN ('dot', 'cosine');
    v_dist text := CASE p_measure WHEN 'dot' THEN v_alias || '.embedding <#> $1'
                                  WHEN 'cosine' THEN v_alias || '.embedding <=> $1'
                                  ELSE v_alias || '.popularity' END;
    v_order text := CASE WHEN v_by_vector AND p_ann THEN 'd'
                         WHEN v_by_vector THEN format('d, %s.%s', v_alias, v_key)
                         ELSE format('d DESC, %s.%s', v_alias, v_key) END;
    -- a test in a vector scan stays a filter of it ("IS TRUE", below)
    v_test text := CASE WHEN v_by_vector THEN '((%s) IS TRUE)' ELSE '(%s)' END;
    v_scan text;
    v_full text;  -- the one scan with the whole test
    v_candidates text;
BEGIN
    -- the filter is part of the candidate scan, so k rows come back whenever k allowed ones
    -- exist (not "top k, then drop"); "IS TRUE" keeps its subqueries filters of a vector
    -- scan: pulled up into a join, they would stop the HNSW index scan. An HNSW index orders
    -- by distance alone (ties at the cut are arbitrary); the rank still breaks ties by id.
    v_scan := 'SELECT %1$s.%2$s, %3$s AS d FROM pyrec.%4$I %1$s WHERE %1$s.%2$s <> ALL ($2) AND %5$s'
              ' ORDER BY %6$s LIMIT %7$s';
    v_full := format(v_scan, v_alias, v_key, v_dist, p_table, format(v_test, p_pred), v_order, '$3');
    IF p_first IS NULL OR p_then IS NULL OR p_then = 'true' OR p_ann THEN
        v_candidates := v_full;
    ELSE
        v_candidates := format(
            'WITH c AS MATERIALIZED (%1$s),
                  ok AS MATERIALIZED (SELECT %2$s.%3$s, %2$s.d FROM c %2$s WHERE (%4$s) IS TRUE ORDER BY %5$s LIMIT $3),
                  done AS (SELECT (SELECT count(*) FROM ok) >= $3 OR (SELECT count(*) FROM c) < $3 + 100 AS yes)
             SELECT * FROM ok WHERE (SELECT yes FROM done)
             UNION ALL
             SELECT * FROM (%6$s) f WHERE NOT (SELECT yes FROM done)',
            format(v_scan, v_alias, v_key, v_dist, p_table, format(v_test, p_first), v_order, '$3 + 100'),
            v_alias, v_key, p_then, v_order, v_full);
    END IF;
    RETURN format(
        'SELECT t.%1$s, %2$s, (row_number() OVER (ORDER BY t.d%3$s, t.%1$s))::integer%4$s
           FROM (%5$s) t
          ORDER BY 3',
        v_key,
        CASE p_measure WHEN 'dot' THEN '(-t.d)::real' WHEN 'cosine' THEN '(1 - t.d)::real' ELSE 't.d' END,
        CASE WHEN v_by_vector THEN '' ELSE ' DESC' END,
        CASE WHEN p_source IS NULL THEN '' ELSE ', ' || quote_literal(p_source) END,
        v_candidates);
END
$fn$;
COMMENT ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text, text, text) IS
'The top-k scan over a version''s item or user vectors that the serving functions run, with a filter in the scan; binds $1 to $6 in the serving order';
REVOKE ALL ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text, text, text) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text, text, text) TO pyrec_reader;
-- (pyrec.similar_items: written once, with its 0.3.0 body, in the live catalog section below)
-- (pyrec.users_for_item: written once, with its 0.3.0 body, in the live catalog section below)
CREATE OR REPLACE FUNCTION pyrec.users_for_items(
    model text,
    item_filter text,
    n integer DEFAULT 100,
    params jsonb DEFAULT NULL,
    user_filter text DEFAULT NULL
) RETURNS TABLE (user_id text, score real, rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
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
    RETURN QUERY EXECUTE pyrec._top_k_sql(v.users_table, 'UserID', 'dot', fu.pred)
      USING qvec, '{}'::text[], n, NULL::text, fu.vals, NULL::text;
END
$fn$;

-- == Names: parameters are qualified by their function's name and variables take a v_ prefix
-- == where a query reads a column of the same name, so no routine needs a
-- == #variable_conflict pragma (behaviour unchanged).
CREATE OR REPLACE FUNCTION pyrec.unschedule_training(model text, if_exists boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
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
CREATE OR REPLACE FUNCTION pyrec._resolve_filter(model_id integer, filter text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
BEGIN
    -- a named filter of the model wins; anything else is an expression
    SELECT f.compiled INTO v_compiled FROM pyrec._filters f
     WHERE f.model_id = _resolve_filter.model_id AND f.name = filter;
    IF v_compiled IS NULL THEN
        v_compiled := pyrec._result(pyrec._filter(model_id, filter));
    END IF;
    RETURN v_compiled;
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.drop_filter(model text, name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF model IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'model and filter name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT * FROM pyrec.filters lists them';
    END IF;
    DELETE FROM pyrec._filters f USING pyrec.models m
     WHERE f.model_id = m.model_id AND m.name = drop_filter.model AND f.name = drop_filter.name;
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
CREATE OR REPLACE FUNCTION pyrec.forget_user(model text, user_id text)
RETURNS TABLE (model_name text, what text, rows_affected bigint, action text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
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
    FOR m IN SELECT * FROM pyrec.models x WHERE forget_user.model IS NULL OR x.name = forget_user.model ORDER BY x.name LOOP
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
                      AND i.user_id = forget_user.user_id RETURNING 1)
        SELECT count(*) INTO rows_affected FROM d;
        what := 'experiment impressions'; action := 'deleted';
        RETURN NEXT;
        INSERT INTO pyrec._forgotten (model_id, user_id) VALUES (m.model_id, forget_user.user_id)
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
CREATE OR REPLACE FUNCTION pyrec._experiment(name text) RETURNS pyrec._experiments
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    e pyrec._experiments;
BEGIN
    SELECT * INTO e FROM pyrec._experiments x WHERE x.name = _experiment.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'experiment "%" does not exist', pyrec._shown(name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.experiments lists the experiments';
    END IF;
    RETURN e;
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec.experiment_variant(experiment text, user_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    e pyrec._experiments;
BEGIN
    e := pyrec._experiment(experiment);
    RETURN pyrec._variant(e, user_id)->>'name';
END
$fn$;
-- (pyrec._experiment_serve: written once, with its 0.3.0 body, in the live catalog section below)
CREATE OR REPLACE FUNCTION pyrec._seen_items(model_id integer, user_id text) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    seen text[];
BEGIN
    IF pyrec._is_forgotten(model_id, user_id) THEN
        RETURN '{}';  -- a forgotten user's history is not read (pyrec.forget_user)
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = _seen_items.model_id;
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
CREATE OR REPLACE FUNCTION pyrec._user_key(model_id integer, user_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    typ text;
BEGIN
    SELECT m.columns->>'user_type' INTO typ FROM pyrec.models m WHERE m.model_id = _user_key.model_id;
    EXECUTE format('SELECT $1::%s', typ) USING user_id;
    RETURN user_id;
EXCEPTION
    WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_datetime_format THEN
        RETURN NULL;  -- cannot be an id of that type: an unknown user
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec._user_vector(v pyrec._versions, user_id text, history text[],
                                   OUT vec vector, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
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
CREATE OR REPLACE FUNCTION pyrec._promoted(v pyrec._versions, uvec vector, how text, seen text[], k integer,
                                ukey text, pred text, vals jsonb,
                                promo_pred text, promo_vals jsonb, promo_n integer, promo_label text)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
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
-- (pyrec.rank_items: written once, with its 0.3.0 body, in the live catalog section below)
CREATE OR REPLACE FUNCTION pyrec.because_you_interacted(
    model text,
    user_id text,
    k integer DEFAULT 10,
    anchors integer DEFAULT 3
) RETURNS TABLE (item_id text, score real, rank integer, anchor_item_id text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
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
-- (pyrec.frequently_bought_together: written once, with its 0.3.0 body, in the live catalog section below)

-- == Settings: pyrec.settings lists the pyrec.* settings (value, default, type, description).
CREATE FUNCTION pyrec._settings()
RETURNS TABLE (name text, value text, default_value text, type text, description text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN QUERY
        SELECT s->>'name', s->>'value', s->>'default', s->>'type', s->>'description'
          FROM jsonb_array_elements(pyrec._result(pyrec._call('settings', '{}'))) s;
END
$fn$;
COMMENT ON FUNCTION pyrec._settings() IS 'The pyrec.* settings as the Python package declares them (pyrec.settings reads it)';
REVOKE ALL ON FUNCTION pyrec._settings() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._settings() TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._settings() TO pyrec_reader;
CREATE VIEW pyrec.settings AS SELECT * FROM pyrec._settings();
COMMENT ON VIEW pyrec.settings IS
'pyrec.* settings: the value in this session, the default, the type and what each one does';
COMMENT ON COLUMN pyrec.settings.name IS 'Setting name, with its pyrec. prefix (SET pyrec.<name> = ...)';
COMMENT ON COLUMN pyrec.settings.value IS 'Value in this session (the default when not set)';
COMMENT ON COLUMN pyrec.settings.default_value IS 'Value when the setting is not set';
COMMENT ON COLUMN pyrec.settings.type IS 'Type of the value (integer, boolean, text, ...)';
COMMENT ON COLUMN pyrec.settings.description IS 'What the setting does';
GRANT SELECT ON pyrec.settings TO pyrec_reader;

-- == Evaluation rows: pyrec._metric_rows turns an evaluation's JSON into pyrec.evaluate's rows,
-- == so the CLI shows the managed flavour's client-side evaluation with the same rule.
CREATE FUNCTION pyrec._metric_rows(metrics jsonb)
RETURNS TABLE (metric text, value double precision, popularity double precision)
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT e.key, (e.value #>> '{}')::double precision,
           (metrics #>> ARRAY['baseline', 'popularity', e.key])::double precision
      FROM jsonb_each(metrics) e
     WHERE jsonb_typeof(e.value) = 'number' AND e.key NOT IN ('holdout', 'seed')
     ORDER BY e.key
$fn$;
COMMENT ON FUNCTION pyrec._metric_rows(jsonb) IS
'The rows of pyrec.evaluate from an evaluation''s JSON: each metric beside popularity''s on the same split';
REVOKE ALL ON FUNCTION pyrec._metric_rows(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._metric_rows(jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._metric_rows(jsonb) TO pyrec_reader;

CREATE OR REPLACE FUNCTION pyrec.evaluate(
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
    RETURN QUERY SELECT * FROM pyrec._metric_rows(m);
END
$fn$;

-- == Live catalog: a model with an items relation serves only the items still in it and not
-- == marked unavailable (pyrec._live_items, in every item predicate pyrec._prepare_filter
-- == returns); recommend_for_items folds a list of items in; recommend and similar_items take
-- == exclude_items; an EXCLUDE expression missing its parameters is dropped
-- == (pyrec._filter_values). Models created before find their availability column by name,
-- == as create_model does.
CREATE FUNCTION pyrec._live_items(p_model_id integer, OUT pred text, OUT pred_ann text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    rel regclass;
    v_key text;
    v_avail text;
    key_type text;
    avail_type text;
    cond text := '';
BEGIN
    pred := 'true';
    pred_ann := 'true';
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = p_model_id;
    IF m.items IS NULL THEN
        RETURN;
    END IF;
    v_key := m.columns->>'items_id';
    v_avail := m.columns->>'items_available';
    rel := pg_catalog.to_regclass(m.items);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'items relation % of model "%" no longer matches its definition: it does not exist',
                        m.items, m.name
            USING ERRCODE = 'undefined_table',
                  HINT = 'restore it (serving reads which items may be recommended from it), or drop and recreate the model';
    END IF;
    SELECT max(pg_catalog.format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = v_key),
           max(pg_catalog.format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = v_avail)
      INTO key_type, avail_type
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname IN (v_key, v_avail);
    IF key_type IS NULL OR (v_avail IS NOT NULL AND avail_type IS NULL) THEN
        RAISE EXCEPTION 'items relation % of model "%" no longer matches its definition: column "%" (mapped as %) does not exist',
                        m.items, m.name, CASE WHEN key_type IS NULL THEN v_key ELSE v_avail END,
                        CASE WHEN key_type IS NULL THEN 'items_id' ELSE 'items_available' END
            USING ERRCODE = 'undefined_column',
                  HINT = 'restore the column, or drop and recreate the model';
    END IF;
    IF avail_type = 'boolean' THEN
        cond := format(' AND r.%I IS NOT FALSE', v_avail);
    ELSIF avail_type IS NOT NULL THEN  -- text: Personalize's "True"/"False", or any boolean spelling
        cond := format(' AND coalesce(lower(btrim(r.%I)) <> ALL (ARRAY[''false'', ''f'', ''no'', ''n'', ''off'', ''0'']), true)', v_avail);
    END IF;
    pred := format('i.item_id IN (SELECT r.%1$I::text FROM %2$s r WHERE r.%1$I IS NOT NULL%3$s)',
                   v_key, m.items, cond);
    pred_ann := pred;
    IF key_type = m.columns->>'item_type' THEN
        -- OFFSET 0 keeps the planner from turning the EXISTS into the hash above
        pred_ann := format('EXISTS (SELECT 1 FROM %2$s r WHERE r.%1$I = i.item_id::%4$s%3$s OFFSET 0)',
                           v_key, m.items, cond, key_type);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._live_items(integer) IS
'The predicate that keeps serving to the items still in the model''s items relation and not marked unavailable (true without one)';
DROP FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean);
CREATE FUNCTION pyrec._prepare_filter(
    v pyrec._versions, filter text, params jsonb, target text, fn text,
    allow_user boolean, allow_item boolean, OUT pred text, OUT vals jsonb, OUT uses_user boolean,
    OUT pred_ann text, OUT live_ann text, OUT filter_pred text, OUT filter_ann text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
    live text := 'true';  -- the live catalog's test, hash form (pred holds it)
BEGIN
    pred := 'true';
    pred_ann := 'true';
    vals := '{}';
    uses_user := false;
    live_ann := 'true';
    filter_pred := 'true';
    filter_ann := 'true';
    IF target = 'ItemID' THEN  -- items: only those the live catalog still offers
        SELECT l.pred, l.pred_ann INTO live, live_ann FROM pyrec._live_items(v.model_id) l;
    END IF;
    IF filter IS NULL THEN
        IF params IS NOT NULL THEN
            RAISE EXCEPTION 'params were given without a filter' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'params fill the $PARAMETERS of the filter argument';
        END IF;
        pred := live;
        pred_ann := live_ann;
        RETURN;
    END IF;
    v_compiled := pyrec._resolve_filter(v.model_id, filter);
    IF v_compiled->>'target' <> target THEN
        RAISE EXCEPTION 'filter selects % but % returns %',
                        CASE target WHEN 'ItemID' THEN 'users (UserID)' ELSE 'items (ItemID)' END
                            || CASE WHEN fn = 'recommend' THEN ',' ELSE '' END,
                        fn, CASE target WHEN 'ItemID' THEN 'items' ELSE 'users' END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('use an INCLUDE/EXCLUDE %s filter', target);
    END IF;
    IF (v_compiled->>'uses_item')::boolean AND NOT allow_item THEN
        IF fn = 'recommend' THEN
            RAISE EXCEPTION 'CurrentItem fields only apply to related-item recommendations'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'use Items.<field> or CurrentUser.<field> in recommend filters';
        END IF;
        RAISE EXCEPTION 'CurrentItem fields do not apply to %', fn USING ERRCODE = 'feature_not_supported',
            HINT = 'CurrentItem refers to the item of similar_items or users_for_item';
    END IF;
    uses_user := (v_compiled->>'uses_user')::boolean;
    IF uses_user AND NOT allow_user THEN
        RAISE EXCEPTION 'CurrentUser fields and Interactions do not apply to %', fn
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'they need a user: use them in recommend() or rank_items()';
    END IF;
    vals := pyrec._filter_values(v_compiled, params);
    pred := v_compiled->>'sql';
    -- an HNSW scan tests a few candidates: the per-row form looks their fields up one by one
    pred_ann := coalesce(v_compiled->>'sql_per_row', pred);
    filter_pred := pred;
    filter_ann := pred_ann;
    IF live <> 'true' THEN
        pred := format('(%s) AND (%s)', live, pred);
        pred_ann := format('(%s) AND (%s)', live_ann, pred_ann);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) IS
'Resolves and checks a filter for a serving function: the predicate (and its per-row form for HNSW scans) and the values it reads; for items, with the live catalog''s test (also alone in its per-row form, as live_ann, and the filter without it, as filter_pred and, per row, filter_ann)';
CREATE OR REPLACE FUNCTION pyrec._filter_values(compiled jsonb, params jsonb) RETURNS jsonb
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
    -- an EXCLUDE expression whose parameters are not all given is dropped (the compiled SQL
    -- tests for them), so only the others must have values
    missing := ARRAY(SELECT p FROM jsonb_array_elements_text(compiled->'params') p
                      WHERE (params IS NULL OR NOT params ? p)
                        AND NOT coalesce(compiled->'optional_params', '[]') ? p);
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
CREATE FUNCTION pyrec._items_vector(v pyrec._versions, items text[], OUT vec vector, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    -- a list of items (a cart, an anonymous session) folded in as one history, weight 1 each
    IF cardinality(items) = 0 THEN
        RETURN;
    ELSIF v.fold = 'sum' THEN
        EXECUTE format('SELECT sum(history) FROM pyrec.%I WHERE item_id = ANY ($1)', v.items_table)
           INTO vec USING items;
    ELSIF v.fold = 'least_squares' THEN
        vec := (pyrec._result(pyrec._call('fold_in', jsonb_build_object(
                   'model_id', v.model_id, 'version', v.version, 'items', to_jsonb(items)))) #>> '{}')::vector;
    END IF;
    IF vec IS NOT NULL THEN
        how := 'fold-in';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._items_vector(pyrec._versions, text[]) IS
'A vector for a list of items (recommend_for_items): the list folded in as a history the version has not seen';
DROP FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean);
CREATE FUNCTION pyrec._serve(
    v pyrec._versions,
    user_id text,
    k integer,
    filter text,
    params jsonb,
    exclude_seen boolean,
    promotion jsonb,
    exploration jsonb,
    personalized boolean,
    exclude_items text[] DEFAULT NULL,
    given_items text[] DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- with an HNSW index, keep scanning until k rows pass the filter (pgvector 0.8)
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
DECLARE
    uvec vector;
    how text;
    history text[] := '{}';
    seen text[] := '{}';
    f record;
    ukey text;
    promo record;
    exact_max bigint;  -- filters expected to keep at most this many items are scored exactly
    exact boolean := false;
    rk record;
    pool integer := k;  -- candidates read ($3): k, or ranking's pool
    boost_vals jsonb;
    q text;
    pools text[];
    c pyrec._ranked;
    kept pyrec._ranked[];
    counts jsonb;  -- items kept per value of the diversity field
BEGIN
    IF given_items IS NULL THEN
        f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'recommend', true, false);
    ELSE  -- no user: CurrentUser fields and Interactions have nothing to read
        f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'recommend_for_items', false, false);
    END IF;
    IF f.uses_user THEN
        ukey := pyrec._user_key(v.model_id, user_id);
    END IF;
    IF given_items IS NOT NULL THEN
        -- the listed items are the history, and are not recommended back
        history := ARRAY(SELECT DISTINCT g FROM unnest(given_items) g WHERE g IS NOT NULL);
        seen := history;
    ELSIF exclude_seen OR v.fold <> 'none' THEN
        history := pyrec._seen_items(v.model_id, user_id);
        IF exclude_seen THEN
            seen := history;
        END IF;
    END IF;
    IF exclude_items IS NOT NULL THEN  -- what the caller has shown already (pagination)
        seen := seen || ARRAY(SELECT x FROM unnest(exclude_items) x WHERE x IS NOT NULL);
    END IF;
    IF NOT personalized THEN
        NULL;  -- the popular answer (an experiment's control variant)
    ELSIF given_items IS NOT NULL THEN
        SELECT u.vec, u.how INTO uvec, how FROM pyrec._items_vector(v, history) u;
    ELSE
        SELECT u.vec, u.how INTO uvec, how FROM pyrec._user_vector(v, user_id, history) u;
    END IF;
    IF v.ann AND how IS DISTINCT FROM 'model' THEN
        -- vectors solved at request time lie off the trained users' distribution: the graph
        -- search needs more candidates (recall@10 0.77 at 100 on 100k items); this function's
        -- SET clause restores the setting on exit
        PERFORM pg_catalog.set_config('hnsw.ef_search', greatest(400, v.ef_search)::text, true);
    ELSIF v.ann AND v.ef_search IS NOT NULL THEN
        -- a trained user's vector: the version's own setting, the smallest that reached the
        -- target recall on a sample of its users at training (pyrec_pg.store.calibrate); a
        -- filter keeps 100 or more, as the iterative scan reads that many candidates a round
        PERFORM pg_catalog.set_config('hnsw.ef_search',
            CASE WHEN filter IS NULL THEN v.ef_search ELSE greatest(v.ef_search, 100) END::text, true);
    END IF;
    IF promotion IS NOT NULL AND exploration IS NOT NULL THEN
        RAISE EXCEPTION 'a request takes a promotion or exploration, not both'
            USING ERRCODE = 'feature_not_supported', HINT = 'pass one of them';
    END IF;
    IF ranking IS NOT NULL THEN
        IF promotion IS NOT NULL OR exploration IS NOT NULL THEN
            RAISE EXCEPTION 'a request takes ranking or a promotion or exploration, not both'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'a boost with a positive weight raises a filter''s items the way a promotion does';
        END IF;
        rk := pyrec._ranking(v, ranking, k, given_items IS NULL);
        pool := rk.pool;
        boost_vals := rk.boost_vals;
        IF rk.uses_user AND ukey IS NULL THEN
            ukey := pyrec._user_key(v.model_id, user_id);
        END IF;
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
    IF v.ann AND filter IS NOT NULL THEN  -- read outside the block below: its own error stands
        exact_max := nullif(pyrec._exact_filter_items(), 0);  -- 0: the index, no estimate
    END IF;
    BEGIN
        IF promotion IS NOT NULL OR exploration IS NOT NULL THEN
            RETURN QUERY SELECT * FROM pyrec._promoted(v, uvec, how, seen, k, ukey, f.pred, f.vals,
                                                        promo.pred, promo.vals, promo.n, promo.label);
            RETURN;
        END IF;
        IF uvec IS NOT NULL AND exact_max IS NOT NULL THEN
            -- a filter that keeps few items: score them exactly (the HNSW scan would miss most)
            exact := pyrec._filter_rows(v.items_table, f.filter_pred, ukey, f.vals) <= exact_max;
        END IF;
        q := pyrec._candidates_sql(v, uvec IS NOT NULL, exact, how, f.pred, f.pred_ann, f.filter_pred, f.live_ann);
        IF ranking IS NOT NULL THEN
            -- the model's best candidates, and each positive boost's best k among the items it
            -- raises (a list holds at most k of them), re-ranked together: the boost's scan
            -- reads k ($8) where the candidates' reads the pool ($3)
            pools := ARRAY[q];
            FOR b IN 1 .. coalesce(array_length(rk.boost_scan, 1), 0) LOOP
                pools := pools || regexp_replace(pyrec._candidates_sql(
                    v, uvec IS NOT NULL, exact, how,
                    format('(%s) AND (%s)', f.pred, rk.boost_scan[b]),
                    format('(%s) AND (%s)', f.pred_ann, rk.boost_ann[b]),
                    format('(%s) AND (%s)', f.filter_pred, rk.boost_scan[b]), f.live_ann),
                    '\$3(?![0-9])', '$8', 'g');
            END LOOP;
            q := pyrec._ranked_sql(v.items_table, pools, rk.boost, rk.lookup, rk.mix, rk.cap IS NOT NULL);
            IF rk.cap IS NOT NULL THEN
                -- diversity: best first, an item is kept while each of its values has room;
                -- the candidates are not widened when fewer than k fit (the caller's
                -- `candidates` is): on a catalog whose values follow the users' tastes each
                -- widening costs more than the request (6.5 ms against 3.3 at 100k items)
                counts := '{}';
                kept := '{}';
                FOR c IN EXECUTE q USING uvec, seen, pool, ukey, f.vals, NULL::text, boost_vals, k LOOP
                    CONTINUE WHEN EXISTS (SELECT 1 FROM unnest(c.grps) g
                                           WHERE coalesce((counts->>g)::integer, 0) >= rk.cap);
                    SELECT counts || coalesce(jsonb_object_agg(g, coalesce((counts->>g)::integer, 0) + 1), '{}')
                      INTO counts FROM (SELECT DISTINCT g FROM unnest(c.grps) g) d;
                    kept := kept || c;
                    EXIT WHEN cardinality(kept) >= k;
                END LOOP;
                RETURN QUERY SELECT x.i, x.s, x.n::integer, x.src
                               FROM unnest(kept) WITH ORDINALITY x(i, s, r, src, g, n) ORDER BY x.n;
                RETURN;
            END IF;
        END IF;
        RETURN QUERY EXECUTE q USING uvec, seen, pool, ukey, f.vals, NULL::text, boost_vals, k;
    EXCEPTION
        WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
             OR numeric_value_out_of_range OR invalid_parameter_value THEN
            IF filter IS NULL AND ranking IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'a filter value does not fit its field: %', pyrec._shown(SQLERRM)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'check that each value in params has the type of the field it is compared with';
        WHEN undefined_table OR undefined_column THEN
            IF filter IS NULL AND ranking IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'filter of model "%" refers to a relation or column that is gone: %',
                            (SELECT m.name FROM pyrec.models m WHERE m.model_id = v.model_id), SQLERRM
                USING ERRCODE = 'undefined_table',
                      HINT = 'recreate the filter (pyrec.drop_filter / pyrec.create_filter) after changing the tables';
    END;
END
$fn$;
COMMENT ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean, text[], text[], jsonb) IS
'recommend() (or recommend_for_items(), given the items) from a given version: filters, seen and excluded items, fold-in, promotions, exploration, ranking';
DROP FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb);
CREATE FUNCTION pyrec._experiment_serve(experiment text, model text, user_id text, k integer,
                                        filter text, params jsonb, exclude_seen boolean,
                                        promotion jsonb, exploration jsonb,
                                        exclude_items text[] DEFAULT NULL,
                                        given_items text[] DEFAULT NULL,
                                        ranking jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
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
                        var->>'serve' IS DISTINCT FROM 'popular', exclude_items, given_items,
                        ranking)),
    logged AS (
        INSERT INTO pyrec.impressions (experiment_id, variant, user_id, items, scores)
        SELECT e.experiment_id, vname, _experiment_serve.user_id,
               coalesce(array_agg(r.item_id ORDER BY r.rank), '{}'),
               coalesce(array_agg(r.score ORDER BY r.rank), '{}') FROM r)
    SELECT r.item_id, r.score, r.rank, vname || ':' || r.source FROM r ORDER BY r.rank;
END
$fn$;
COMMENT ON FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb, text[], text[], jsonb) IS
'recommend() (or recommend_for_items()) for an experiment: the user''s (session''s) variant serves and the impression is logged';
DROP FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text);
DROP FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text);
CREATE FUNCTION pyrec.recommend(
    model text,
    user_id text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true,
    promotion jsonb DEFAULT NULL,
    exploration jsonb DEFAULT NULL,
    experiment text DEFAULT NULL,
    exclude_items text[] DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the user''s id as text, for example pyrec.recommend(''movies'', ''42'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k', p_rows => 'items');
    IF experiment IS NOT NULL THEN  -- the user's variant serves, and the impression is logged
        RETURN QUERY SELECT * FROM pyrec._experiment_serve(experiment, model, user_id, k, filter,
                                                            params, exclude_seen, promotion, exploration,
                                                            exclude_items, NULL, ranking);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pyrec._serve(pyrec._active_version(model), user_id, k, filter, params,
                                            exclude_seen, promotion, exploration, true, exclude_items,
                                            NULL, ranking);
END
$fn$;
COMMENT ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) IS
'Top-k items for a user from the model''s active version (or the user''s variant of an experiment), leaving out exclude_items, re-ranked by ranking (popularity, freshness, boosts, diversity); source says what answered: model, fold-in (live history the version has not seen), attributes, popular, promotion or exploration';
CREATE FUNCTION pyrec.recommend(model text, user_id bigint, k integer DEFAULT 10,
                                filter text DEFAULT NULL, params jsonb DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, promotion jsonb DEFAULT NULL,
                                exploration jsonb DEFAULT NULL, experiment text DEFAULT NULL,
                                exclude_items text[] DEFAULT NULL, ranking jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(model, user_id::text, k, filter, params, exclude_seen, promotion,
                                      exploration, experiment, exclude_items, ranking) $fn$;
COMMENT ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) IS
'Top-k items for a user with an integer id';
CREATE FUNCTION pyrec.recommend_for_items(
    model text,
    items text[],
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_items text[] DEFAULT NULL,
    promotion jsonb DEFAULT NULL,
    exploration jsonb DEFAULT NULL,
    experiment text DEFAULT NULL,
    session_id text DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION 'items must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the session''s or cart''s item ids, for example pyrec.recommend_for_items(''movies'', ARRAY[''50'', ''181''], 10)';
    END IF;
    IF cardinality(items) > 10000 THEN
        RAISE EXCEPTION 'items holds % ids, at most 10000 are folded in at once', cardinality(items)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'pass the latest items of the session';
    END IF;
    PERFORM pyrec._check_k(k, 'k', p_rows => 'items');
    IF experiment IS NOT NULL THEN  -- the session's variant serves, and the impression is logged
        IF session_id IS NULL THEN
            RAISE EXCEPTION 'an experiment needs session_id' USING ERRCODE = 'null_value_not_allowed',
                HINT = 'variants are assigned by the id of the session (or cart, or visitor): pass session_id';
        END IF;
        RETURN QUERY SELECT * FROM pyrec._experiment_serve(experiment, model, session_id, k, filter,
                                                            params, true, promotion, exploration,
                                                            exclude_items, items, ranking);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pyrec._serve(pyrec._active_version(model), NULL, k, filter, params,
                                            true, promotion, exploration, true, exclude_items, items,
                                            ranking);
END
$fn$;
COMMENT ON FUNCTION pyrec.recommend_for_items(text, text[], integer, text, jsonb, text[], jsonb, jsonb, text, text, jsonb) IS
'Top-k items for a list of items (an anonymous session, a cart): the list folded in as a history and left out of the answer; source says what answered: fold-in, popular (no listed item is known to the version), promotion or exploration';
DROP FUNCTION pyrec.similar_items(text, text, integer, text, jsonb);
DROP FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb);
CREATE FUNCTION pyrec.similar_items(
    model text,
    item text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_items text[] DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- with the cosine HNSW index, keep scanning until k rows pass the filter (pgvector 0.8); 100
-- candidates, not 40: recall@10 (ties counted) of random anchors among 100k trained ALS items
-- was 0.96 at 40 and 0.98 at 100, both about 1 ms
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 100
AS $fn$
DECLARE
    v pyrec._versions;
    f record;
    anchor record;
    -- the item itself, and what the caller has shown already (pagination)
    left_out text[] := ARRAY[item] || ARRAY(SELECT x FROM unnest(exclude_items) x WHERE x IS NOT NULL);
    by_index boolean;  -- the version has the cosine index
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
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'popularity', f.pred,
                                              p_source => 'popular', p_first => f.filter_pred,
                                              p_then => f.live_ann)
          USING NULL::vector, left_out, k, NULL::text, f.vals, item;
    ELSIF anchor.history IS NOT NULL THEN
        -- item-item recipes: the score the item's history row gives every other item
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'dot', f.pred, p_source => 'model',
                                              p_first => f.filter_pred, p_then => f.live_ann)
          USING anchor.history, left_out, k, NULL::text, f.vals, item;
    ELSE
        -- factor models: cosine similarity of item vectors, through the version's cosine HNSW
        -- index when it has one (pyrec_pg.store.vectors.write_version names it after the
        -- table); versions written without it (small catalogs, or trained before it existed)
        -- scan every vector, exactly
        by_index := pg_catalog.to_regclass(format('pyrec.%I', v.items_table || '_cosine')) IS NOT NULL;
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'cosine',
                                              CASE WHEN by_index THEN f.pred_ann ELSE f.pred END, by_index, 'model',
                                              f.filter_pred, f.live_ann)
          USING anchor.embedding, left_out, k, NULL::text, f.vals, item;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb, text[]) IS
'Items most similar to an item ("viewed X also viewed"), leaving out exclude_items; filters may use CurrentItem fields';
CREATE FUNCTION pyrec.similar_items(model text, item bigint, k integer DEFAULT 10,
                                    filter text DEFAULT NULL, params jsonb DEFAULT NULL,
                                    exclude_items text[] DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.similar_items(model, item::text, k, filter, params, exclude_items) $fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb, text[]) IS
'Items most similar to an item with an integer id';
CREATE OR REPLACE FUNCTION pyrec.rank_items(
    model text,
    user_id text,
    item_ids text[],
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
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
    -- not know, or the live catalog no longer offers, rank last with a NULL score (source
    -- 'unknown'), never silently dropped; items the filter rules out are dropped, as in
    -- recommend. A given list is short: its items are tested one by one (the per-row forms)
    RETURN QUERY EXECUTE format(
        'WITH given AS (SELECT g.id, min(g.pos) AS pos FROM unnest($2) WITH ORDINALITY g(id, pos)
                         WHERE g.id IS NOT NULL GROUP BY g.id),
              scored AS (
                SELECT g.id, g.pos, i.item_id IS NOT NULL AS known,
                       CASE WHEN $1 IS NULL THEN i.popularity ELSE (-(i.embedding <#> $1))::real END AS s
                  FROM given g LEFT JOIN pyrec.%I i ON i.item_id = g.id AND (%s)
                 WHERE i.item_id IS NULL OR (%s))
         SELECT s.id, s.s, (row_number() OVER (ORDER BY s.known DESC, s.s DESC NULLS LAST, s.pos))::integer,
                CASE WHEN NOT s.known THEN ''unknown'' WHEN $1 IS NULL THEN ''popular'' ELSE %L END
           FROM scored s ORDER BY 3', v.items_table, f.live_ann, f.pred_ann, how)
      USING uvec, item_ids, NULL::integer, ukey, f.vals, NULL::text;
END
$fn$;
COMMENT ON FUNCTION pyrec.rank_items(text, text, text[], text, jsonb) IS
'Personalized ranking of a given list of items; unknown items rank last with a NULL score';
CREATE OR REPLACE FUNCTION pyrec.users_for_item(
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
DECLARE
    v pyrec._versions;
    m pyrec.models;
    f record;
    ivec vector;
    seen text[] := '{}';
    live text;
    offered boolean;
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
    live := (SELECT l.pred_ann FROM pyrec._live_items(v.model_id) l);
    IF live <> 'true' THEN
        EXECUTE format('SELECT bool_and(%s) FROM (SELECT $1::text AS item_id) i', live) INTO offered USING item_id;
        IF NOT offered THEN
            RAISE EXCEPTION 'item "%" is no longer offered by the items relation of model "%"',
                            pyrec._shown(item_id), model
                USING ERRCODE = 'undefined_object',
                      HINT = 'its row was deleted or marked unavailable: segments are built for the live catalog';
        END IF;
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
    RETURN QUERY EXECUTE pyrec._top_k_sql(v.users_table, 'UserID', 'dot', f.pred)
      USING ivec, seen, n, NULL::text, f.vals, item_id;
END
$fn$;
COMMENT ON FUNCTION pyrec.users_for_item(text, text, integer, text, jsonb, boolean) IS
'User segment: the users most likely to interact with an item (who have not yet, by default)';
CREATE OR REPLACE FUNCTION pyrec.frequently_bought_together(
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
               FROM (%s) i WHERE (%s) ORDER BY i.n DESC, i.item_id LIMIT $3', together, f.pred_ann)
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
CREATE OR REPLACE FUNCTION pyrec._promotion(v pyrec._versions, promotion jsonb, k integer,
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
    -- the promotion's values are bound as $7 beside the main filter's (the compiler says $5);
    -- its filter alone: it is always tested beside the main predicate, which holds the live
    -- catalog's test
    pred := regexp_replace(f.filter_pred, '\$5(?![0-9])', '$7', 'g');
    vals := f.vals;
    uses_user := f.uses_user;
    n := ceil(k * (promotion->>'percent')::numeric / 100.0)::integer;
    label := 'promotion:' || coalesce(promotion->>'name', 'promotion');
END
$fn$;
COMMENT ON FUNCTION pyrec._promotion(pyrec._versions, jsonb, integer) IS
'Checks and compiles recommend()''s promotion argument';
REVOKE ALL ON FUNCTION pyrec._live_items(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._live_items(integer) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._live_items(integer) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._items_vector(pyrec._versions, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._items_vector(pyrec._versions, text[]) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._items_vector(pyrec._versions, text[]) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean, text[], text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean, text[], text[], jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean, text[], text[], jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb, text[], text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb, text[], text[], jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._experiment_serve(text, text, text, integer, text, jsonb, boolean, jsonb, jsonb, text[], text[], jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec.recommend_for_items(text, text[], integer, text, jsonb, text[], jsonb, jsonb, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec.recommend_for_items(text, text[], integer, text, jsonb, text[], jsonb, jsonb, text, text, jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec.recommend_for_items(text, text[], integer, text, jsonb, text[], jsonb, jsonb, text, text, jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb, text[]) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb, text[]) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb, text[]) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb, text[]) TO pyrec_reader;
UPDATE pyrec.models m
   SET columns = m.columns || jsonb_build_object('items_available', (
       SELECT a.attname::text FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname IN ('available', 'in_stock', 'active', 'is_available', 'is_active')
          AND pg_catalog.format_type(a.atttypid, a.atttypmod)
              ~ '^(boolean|text|character varying|character|name|citext)'
        ORDER BY array_position(ARRAY['available', 'in_stock', 'active', 'is_available', 'is_active'],
                                a.attname::text)
        LIMIT 1))
 WHERE m.items IS NOT NULL AND NOT m.columns ? 'items_available';
-- Named filters with a parameter in an EXCLUDE expression are compiled again, so they drop
-- that expression when the parameter is missing; one that no longer compiles (its relation
-- changed) keeps its stored form and says so.
DO $do$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT x.model_id, x.name, x.expression FROM pyrec._filters x
              WHERE x.expression ~* 'EXCLUDE[^|]*\$' LOOP
        BEGIN
            UPDATE pyrec._filters x SET compiled = pyrec._result(pyrec._filter(f.model_id, f.expression))
             WHERE x.model_id = f.model_id AND x.name = f.name;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'filter "%" keeps the form it was stored in (%); recreate it to drop EXCLUDE expressions whose parameters are missing',
                         f.name, SQLERRM;
        END;
    END LOOP;
END
$do$;

-- == similar_items ranks a factor model's items through the version's cosine HNSW index,
-- == which training writes beside the inner-product one from 0.3.0 on (named
-- == <items table>_cosine); versions written before, which lack it, are scanned as before.
-- (pyrec.similar_items: written once, with its 0.3.0 body, in the live catalog section above)

-- == recommend() on a version with an HNSW index scores the items a filter keeps exactly when
-- == the planner expects at most pyrec.exact_filter_items of them (20000 by default): the
-- == index scan missed most of the right answer for selective filters.
-- (pyrec._serve: written once, with its 0.3.0 body, in the live catalog section above)
-- An HNSW scan with a selective filter misses most of the right answer: the iterative scan
-- walks outwards from the query and tests each candidate, and on an inner-product graph the
-- items a user would rank 50th to 200th are often never reached (recall@10 0.33 with a filter
-- keeping 2% of 100k items, 0.46 with 10%, 0.96 with 30%; bench/bench_scale.py). When the
-- planner expects few items to pass the filter, the serving functions score those items
-- exactly instead: an index lookup per passing item, no graph. The default, 20000, bounds
-- that scan at about 35 to 70 ms on 2 busy cores (3 us per item); above it, recall@10 of the
-- index was 0.82 for a filter keeping 20% of 100k items and 0.97 for 30%.
-- Its texts and default are the setting's in pyrec_pg.db.settings (test_settings checks).
CREATE FUNCTION pyrec._exact_filter_items() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_raw text := nullif(current_setting('pyrec.exact_filter_items', true), '');
BEGIN
    IF v_raw IS NULL THEN
        RETURN 20000;
    ELSIF v_raw !~ '^\s*[0-9]{1,18}\s*$' THEN
        RAISE EXCEPTION 'invalid value for setting pyrec.exact_filter_items: "%"', pyrec._shown(v_raw)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'pyrec.exact_filter_items: on versions with an HNSW index, filters the planner expects to keep at most this many items are scored exactly instead of through the index (0: always the index)',
                  HINT = 'a whole number of at least 0, e.g. SET pyrec.exact_filter_items = 20000';
    END IF;
    RETURN v_raw::bigint;
END
$fn$;
COMMENT ON FUNCTION pyrec._exact_filter_items() IS
'The setting pyrec.exact_filter_items, checked: filters expected to keep at most this many items are scored exactly';

-- VOLATILE: EXPLAIN is a utility statement, which PostgreSQL refuses in a stable function's
-- queries; it plans the query without running it (the binds are the serving order's)
CREATE FUNCTION pyrec._filter_rows(p_table text, p_pred text, p_user text, p_vals jsonb)
RETURNS double precision
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_plan json;
BEGIN
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM pyrec.%I i WHERE (%s)', p_table, p_pred)
       INTO v_plan USING NULL::vector, NULL::text[], NULL::integer, p_user, p_vals, NULL::text;
    RETURN (v_plan->0->'Plan'->>'Plan Rows')::double precision;
END
$fn$;
COMMENT ON FUNCTION pyrec._filter_rows(text, text, text, jsonb) IS
'How many of a version''s items the planner expects a compiled filter to keep (EXPLAIN, nothing run)';

-- p_pred joins: its IN subqueries become semi-joins that read the passing ids first (through
-- the items relation's own indexes) and fetch their vectors by primary key; the subquery with
-- OFFSET 0 keeps the planner from ordering through the HNSW index instead
CREATE FUNCTION pyrec._exact_top_k_sql(p_table text, p_pred text, p_source text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$ BEGIN RETURN format(
    'SELECT t.item_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.item_id))::integer, %1$L
       FROM (SELECT c.item_id, c.embedding <#> $1 AS d
               FROM (SELECT i.item_id, i.embedding FROM pyrec.%2$I i
                      WHERE i.item_id <> ALL ($2) AND %3$s OFFSET 0) c
              ORDER BY d, c.item_id LIMIT $3) t
      ORDER BY 3',
    p_source, p_table, p_pred); END $fn$;
COMMENT ON FUNCTION pyrec._exact_top_k_sql(text, text, text) IS
'The exact top-k by inner product over the items a filter keeps, for filters that keep few (pyrec.exact_filter_items)';
REVOKE ALL ON FUNCTION pyrec._exact_filter_items() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._exact_filter_items() TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._exact_filter_items() TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._filter_rows(text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._filter_rows(text, text, text, jsonb) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._filter_rows(text, text, text, jsonb) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._exact_top_k_sql(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._exact_top_k_sql(text, text, text) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._exact_top_k_sql(text, text, text) TO pyrec_reader;

-- == pyrec.version() reports the PostgreSQL server too: its version and major.
CREATE OR REPLACE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('version', '{}'))
        || jsonb_build_object(
               'sql', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'),
               'pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'),
               'postgres', pg_catalog.current_setting('server_version'),
               'postgres_major', pg_catalog.current_setting('server_version_num')::integer / 10000);
END
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects, the server-side Python package, numpy, scipy, pgvector and the PostgreSQL server (its version and major)';

-- recommend()'s ranking argument
CREATE TYPE pyrec._ranked AS (item_id text, score real, rank integer, source text, grps text[]);
COMMENT ON TYPE pyrec._ranked IS 'A candidate of recommend()''s ranking: its score, rank and diversity values';

-- The scores mixed, each over the candidates:
--   relevance   the model's score scaled to 0..1 between the worst and best candidate
--   popularity  ln(1 + trained interactions), scaled to 0..1 by the most popular candidate
--   freshness   0.5 ^ (age in days / half_life_days), from the items relation's creation time
-- score = (1 - popularity - freshness) * relevance + popularity * p + freshness * f + the
-- weights of the boosts whose filters an item passes.
CREATE FUNCTION pyrec._ranking(v pyrec._versions, ranking jsonb, k integer, allow_user boolean,
                               OUT pool integer, OUT mix text, OUT boost text,
                               OUT boost_scan text[], OUT boost_ann text[], OUT boost_vals jsonb,
                               OUT lookup text, OUT cap integer, OUT uses_user boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    extra text[];
    w_pop float8 := 0;
    w_fresh float8 := 0;
    half_life float8 := 30;
    b jsonb;
    f record;
    n integer := 0;
    weight float8;
    rebound text;
    div jsonb;
    field text;
    col text;
    key_type text;
    is_array boolean;
    lookups text[] := '{}';
BEGIN
    IF jsonb_typeof(ranking) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'ranking must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"popularity": 0.2, "boosts": [{"filter": "INCLUDE ItemID WHERE Items.in_stock = true", "weight": 0.3}], "diversity": {"field": "Items.genre", "max_per_value": 3}}';
    END IF;
    SELECT array_agg(key ORDER BY key) INTO extra FROM jsonb_object_keys(ranking) key
     WHERE key NOT IN ('popularity', 'freshness', 'half_life_days', 'boosts', 'diversity', 'candidates');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown ranking field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'ranking fields are popularity, freshness, half_life_days, boosts, diversity and candidates';
    END IF;
    w_pop := pyrec._ranking_number(ranking, 'popularity', 0, 1, 0,
                                   'the weight of popularity in the score, from 0 to 1');
    w_fresh := pyrec._ranking_number(ranking, 'freshness', 0, 1, 0,
                                     'the weight of freshness in the score, from 0 to 1');
    IF w_pop + w_fresh > 1 THEN
        RAISE EXCEPTION 'ranking popularity and freshness add up to %, more than 1', round((w_pop + w_fresh)::numeric, 6)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the model''s relevance keeps 1 - popularity - freshness of the score';
    END IF;
    half_life := pyrec._ranking_number(ranking, 'half_life_days', 1e-6, 1e6, 30,
                                       'freshness halves every half_life_days days (default 30)');
    pool := pyrec._ranking_number(ranking, 'candidates', k, 10000, greatest(5 * k, 50),
                                  format('how many of the model''s best items are re-ranked: from k (%s) to 10000, default max(5 k, 50)', k))::integer;
    IF ranking->>'candidates' IS NOT NULL AND (ranking->>'candidates')::numeric <> pool THEN
        RAISE EXCEPTION 'ranking candidates must be a whole number, got %', ranking->>'candidates'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 200';
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = v.model_id;
    mix := format('%s * r.rel + %s * r.pop + %s * r.fresh + r.boost', 1 - w_pop - w_fresh, w_pop, w_fresh);

    -- boosts: filters of the filter language, each adding its weight to the items it keeps
    boost := '0';
    boost_scan := '{}';
    boost_ann := '{}';
    boost_vals := '[]';
    uses_user := false;
    IF ranking ? 'boosts' THEN
        IF jsonb_typeof(ranking->'boosts') IS DISTINCT FROM 'array' OR jsonb_array_length(ranking->'boosts') > 10 THEN
            RAISE EXCEPTION 'ranking boosts must be an array of at most 10 boosts'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'for example [{"filter": "INCLUDE ItemID WHERE Items.in_stock = true", "weight": 0.3}]';
        END IF;
        FOR b IN SELECT x FROM jsonb_array_elements(ranking->'boosts') x LOOP
            n := n + 1;
            IF jsonb_typeof(b) IS DISTINCT FROM 'object' OR b->>'filter' IS NULL THEN
                RAISE EXCEPTION 'ranking boost % must be a JSON object with a filter', n
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'for example {"filter": "INCLUDE ItemID WHERE Items.margin > $MIN", "params": {"MIN": 0.3}, "weight": 0.2}';
            END IF;
            SELECT array_agg(key ORDER BY key) INTO extra FROM jsonb_object_keys(b) key
             WHERE key NOT IN ('filter', 'params', 'weight');
            IF extra IS NOT NULL THEN
                RAISE EXCEPTION 'unknown field "%" in ranking boost %', pyrec._shown(extra[1]), n
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'boost fields are filter, params and weight';
            END IF;
            IF jsonb_typeof(b->'weight') IS DISTINCT FROM 'number'
               OR (b->>'weight')::numeric NOT BETWEEN -1 AND 1 THEN
                RAISE EXCEPTION 'ranking boost % weight must be a number between -1 and 1, got %', n,
                                coalesce(pyrec._shown(b->>'weight'), 'none')
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'the weight is added to the score (0 to 1 before boosts) of the items the filter keeps; negative weights bury them';
            END IF;
            weight := (b->>'weight')::float8;
            f := pyrec._prepare_filter(v, b->>'filter', b->'params', 'ItemID', 'ranking boosts', allow_user, false);
            uses_user := uses_user OR f.uses_user;
            -- each boost's values are bound as element n - 1 of $7 (the compiler says $5)
            rebound := format('($7->%s)', n - 1);
            -- the filter alone: the candidates passed the live catalog's test already
            boost := boost || format(' + CASE WHEN (%s) IS TRUE THEN %s ELSE 0 END',
                                     regexp_replace(f.filter_ann, '\$5(?![0-9])', rebound, 'g'), weight);
            IF weight > 0 THEN  -- its best items join the candidates
                boost_scan := boost_scan || regexp_replace(f.filter_pred, '\$5(?![0-9])', rebound, 'g');
                boost_ann := boost_ann || regexp_replace(f.filter_ann, '\$5(?![0-9])', rebound, 'g');
            END IF;
            boost_vals := boost_vals || jsonb_build_array(f.vals);
        END LOOP;
    END IF;

    -- freshness and diversity read the items relation, one lookup per candidate
    IF w_fresh > 0 THEN
        IF m.columns->>'items_created' IS NULL THEN
            RAISE EXCEPTION 'ranking freshness needs the items'' creation time'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'give the model an items relation with a created_at column, or map one: options => ''{"columns": {"items_created": "<column>"}}''';
        END IF;
        lookups := lookups || format('r.%I::timestamptz AS created', m.columns->>'items_created');
    ELSE
        lookups := lookups || 'NULL::timestamptz AS created'::text;
    END IF;
    IF ranking ? 'diversity' THEN
        div := ranking->'diversity';
        IF jsonb_typeof(div) IS DISTINCT FROM 'object' OR div->>'field' IS NULL
           OR jsonb_typeof(div->'max_per_value') IS DISTINCT FROM 'number'
           OR (SELECT count(*) FROM jsonb_object_keys(div)) <> 2 THEN
            RAISE EXCEPTION 'ranking diversity must be a JSON object with field and max_per_value'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'for example {"field": "Items.genre", "max_per_value": 3}: at most 3 items of each genre';
        END IF;
        IF (div->>'max_per_value')::numeric < 1 OR (div->>'max_per_value')::numeric <> floor((div->>'max_per_value')::numeric)
           OR (div->>'max_per_value')::numeric > 10000 THEN
            RAISE EXCEPTION 'ranking diversity max_per_value must be a whole number from 1 to 10000, got %', div->>'max_per_value'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 3: at most 3 items of each value';
        END IF;
        cap := (div->>'max_per_value')::integer;
        IF m.items IS NULL THEN
            RAISE EXCEPTION 'ranking diversity needs the model''s items relation' USING ERRCODE = 'undefined_table',
                HINT = 'create the model with items => ''<table or view>''';
        END IF;
        field := regexp_replace(div->>'field', '^\s*items\.', '', 'i');
        SELECT coalesce(max(a.attname) FILTER (WHERE a.attname = field),
                        CASE WHEN count(*) FILTER (WHERE lower(a.attname) = lower(field)) = 1
                             THEN max(a.attname) FILTER (WHERE lower(a.attname) = lower(field)) END)
          INTO col
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attnum > 0 AND NOT a.attisdropped;
        IF col IS NULL THEN
            RAISE EXCEPTION 'unknown field "Items.%" in ranking diversity: % has no such column', pyrec._shown(field), m.items
                USING ERRCODE = 'undefined_column',
                      HINT = format('columns of %s: %s', m.items,
                                    (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                      WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attnum > 0 AND NOT a.attisdropped));
        END IF;
        -- an array field (genres) caps each of its values: an item counts once for each
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) LIKE '%[]' INTO is_array
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attname = col;
        lookups := lookups || CASE WHEN is_array THEN format('r.%I::text[] AS grps', col)
                                   ELSE format('array_remove(ARRAY[r.%I::text], NULL) AS grps', col) END;
    ELSE
        lookups := lookups || 'NULL::text[] AS grps'::text;
    END IF;
    IF w_fresh > 0 OR cap IS NOT NULL THEN
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO key_type
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attname = m.columns->>'items_id' AND NOT a.attisdropped;
        -- by key where the id column has the candidates' own type (an index lookup), else by text
        lookup := format('SELECT %s FROM %s r WHERE %s LIMIT 1', array_to_string(lookups, ', '), m.items,
                         CASE WHEN key_type = m.columns->>'item_type'
                              THEN format('r.%I = i.item_id::%s', m.columns->>'items_id', key_type)
                              ELSE format('r.%I::text = i.item_id', m.columns->>'items_id') END);
    ELSE
        lookup := format('SELECT %s', array_to_string(lookups, ', '));
    END IF;
    mix := replace(mix, 'r.fresh', format('coalesce(power(0.5, greatest(extract(epoch FROM now() - r.created), 0) / %s), 0)',
                                          half_life * 86400));
END
$fn$;
COMMENT ON FUNCTION pyrec._ranking(pyrec._versions, jsonb, integer, boolean) IS
'Checks and compiles recommend()''s ranking argument: the mix of relevance, popularity and freshness, the boosts, the diversity cap';

CREATE FUNCTION pyrec._ranking_number(ranking jsonb, field text, low float8, high float8,
                                      fallback float8, meaning text) RETURNS float8
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF NOT ranking ? field THEN
        RETURN fallback;
    END IF;
    IF jsonb_typeof(ranking->field) IS DISTINCT FROM 'number'
       OR (ranking->>field)::float8 NOT BETWEEN low AND high THEN
        RAISE EXCEPTION 'ranking % must be a number from % to %, got %', field, low, high,
                        coalesce(pyrec._shown(ranking->>field), 'none')
            USING ERRCODE = 'invalid_parameter_value', HINT = meaning;
    END IF;
    RETURN (ranking->>field)::float8;
END
$fn$;
COMMENT ON FUNCTION pyrec._ranking_number(jsonb, text, float8, float8, float8, text) IS
'A number of recommend()''s ranking argument, checked against its range';

-- p_pools: candidate queries in the serving order ($3 their size), each returning (item_id,
-- score, rank, source); the answer re-ranks their union by the mix. Without a diversity cap it
-- keeps the best $8 rows; with one, it returns every candidate best first with the values of
-- its diversity field (grps), and the caller keeps those within the cap
CREATE FUNCTION pyrec._ranked_sql(p_table text, p_pools text[], p_boost text, p_lookup text,
                                  p_mix text, p_capped boolean) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT format(
    'WITH c AS MATERIALIZED (
          SELECT b.item_id, max(b.score) AS score, min(b.source) AS source
            FROM (%1$s) b GROUP BY b.item_id),
          s AS (SELECT i.item_id, c.score::float8 AS score, c.source, greatest(i.popularity, 0)::float8 AS popularity,
                       x.created, x.grps, (%2$s)::float8 AS boost
                  FROM c JOIN pyrec.%3$I i ON i.item_id = c.item_id LEFT JOIN LATERAL (%4$s) x ON true),
          r AS (SELECT s.*,
                       coalesce((s.score - min(s.score) OVER ()) / nullif(max(s.score) OVER () - min(s.score) OVER (), 0), 1) AS rel,
                       coalesce(ln(1 + s.popularity) / nullif(ln(1 + max(s.popularity) OVER ()), 0), 0) AS pop
                  FROM s),
          m AS (SELECT r.item_id, r.source, r.grps, %5$s AS final FROM r)
     SELECT m.item_id, m.final::real AS score, (row_number() OVER (ORDER BY m.final DESC, m.item_id))::integer AS rank,
            m.source%6$s
       FROM m ORDER BY 3%7$s',
    (SELECT string_agg(format('SELECT p.* FROM (%s) p(item_id, score, rank, source)', q), ' UNION ALL ')
       FROM unnest(p_pools) q),
    p_boost, p_table, p_lookup, p_mix,
    CASE WHEN p_capped THEN ', coalesce(m.grps, ''{}'') AS grps' ELSE '' END,
    CASE WHEN p_capped THEN '' ELSE ' LIMIT $8' END) $fn$;
COMMENT ON FUNCTION pyrec._ranked_sql(text, text[], text, text, text, boolean) IS
'The query re-ranking recommend()''s candidates by its ranking argument (pyrec._ranking)';

-- recommend()'s candidate query by what it has: a vector (scored exactly over a selective
-- filter's items, or by the top-k scan) or none (the most popular items); p_first and p_then
-- split p_pred as _top_k_sql takes them
CREATE FUNCTION pyrec._candidates_sql(v pyrec._versions, p_vector boolean, p_exact boolean, p_how text,
                                      p_pred text, p_pred_ann text, p_first text, p_then text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$ BEGIN RETURN CASE
    WHEN p_vector AND p_exact
        THEN pyrec._exact_top_k_sql(v.items_table, format('(%s) AND (%s) IS TRUE', p_first, p_then), p_how)
    WHEN p_vector
        THEN pyrec._top_k_sql(v.items_table, 'ItemID', 'dot', CASE WHEN v.ann THEN p_pred_ann ELSE p_pred END,
                              v.ann, p_how, p_first, p_then)
    ELSE pyrec._top_k_sql(v.items_table, 'ItemID', 'popularity', p_pred, p_source => 'popular',
                          p_first => p_first, p_then => p_then)
    END; END $fn$;
COMMENT ON FUNCTION pyrec._candidates_sql(pyrec._versions, boolean, boolean, text, text, text, text, text) IS
'recommend()''s candidate query: exact over a selective filter''s items, the top-k scan of the vectors, or the most popular items';
REVOKE ALL ON FUNCTION pyrec._ranking(pyrec._versions, jsonb, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._ranking(pyrec._versions, jsonb, integer, boolean) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._ranking(pyrec._versions, jsonb, integer, boolean) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._ranking_number(jsonb, text, float8, float8, float8, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._ranking_number(jsonb, text, float8, float8, float8, text) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._ranking_number(jsonb, text, float8, float8, float8, text) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._ranked_sql(text, text[], text, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._ranked_sql(text, text[], text, text, text, boolean) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._ranked_sql(text, text[], text, text, text, boolean) TO pyrec_reader;
REVOKE ALL ON FUNCTION pyrec._candidates_sql(pyrec._versions, boolean, boolean, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._candidates_sql(pyrec._versions, boolean, boolean, text, text, text, text, text) TO pyrec_admin;
GRANT EXECUTE ON FUNCTION pyrec._candidates_sql(pyrec._versions, boolean, boolean, text, text, text, text, text) TO pyrec_reader;
DROP PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean);
CREATE PROCEDURE pyrec.batch_recommend(
    model text,
    users text DEFAULT NULL,
    k integer DEFAULT 25,
    filter text DEFAULT NULL,
    into_table text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true,
    ranking jsonb DEFAULT NULL
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
    r jsonb;
BEGIN
    CALL pyrec._call_proc('batch_recommend', jsonb_build_object(
        'model', model, 'users', users, 'k', k, 'filter', filter, 'into_table', into_table,
        'params', params, 'exclude_seen', exclude_seen, 'ranking', ranking), outcome);
    r := pyrec._result(outcome);
    RAISE NOTICE '% rows for % users in % (model "%" version %) in % s', r->>'rows', r->>'users',
        r->>'table', r->>'model', r->>'version', round((r->>'seconds')::numeric, 1);
END
$fn$;
COMMENT ON PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean, jsonb) IS
'Top-k items for many users (all, a query or a table) into a table of (user_id, item_id, score, rank, source), replaced atomically; with ranking, each user''s list is recommend()''s with that ranking';
REVOKE ALL ON PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean, jsonb) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean, jsonb) TO pyrec_admin;

-- == Serving checks a forgotten user through plpgsql, which keeps the check's plan for the
-- == session (as SQL, called from plpgsql, it was planned again at every request).
CREATE OR REPLACE FUNCTION pyrec._is_forgotten(model_id integer, user_id text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$ BEGIN RETURN EXISTS (SELECT 1 FROM pyrec._forgotten f WHERE f.model_id = $1 AND f.user_id = $2); END $fn$;

-- == A version with an HNSW index records the ef_search its training chose for trained users
-- == and the recall@10 it measured there; recommend() uses it.
ALTER TABLE pyrec._versions
    ADD COLUMN ef_search integer CHECK (ef_search BETWEEN 1 AND 1000),
    ADD COLUMN ann_recall real;
CREATE OR REPLACE VIEW pyrec.model_versions AS
SELECT m.name AS model, v.version, v.status, v.recipe, v.params, v.metrics, v.dims,
       v.n_users, v.n_items, v.n_interactions, v.training_seconds, v.mode, v.base_version,
       v.ann AS hnsw_index, v.n_cold_items, v.created_at,
       v.activated_at, v.items_table, v.users_table, v.ef_search, v.ann_recall
FROM pyrec._versions v JOIN pyrec.models m USING (model_id);
COMMENT ON COLUMN pyrec.model_versions.ef_search IS 'With an HNSW index: the hnsw.ef_search recommend() uses for trained users, the smallest that reached the target recall@10 on a sample of them at training';
COMMENT ON COLUMN pyrec.model_versions.ann_recall IS 'With an HNSW index: recall@10 of the index at ef_search against the exact scan, on that sample (seen items left out, as recommend() does)';
