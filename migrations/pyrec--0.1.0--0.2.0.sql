-- Upgrade 0.1.0 -> 0.2.0. Whatever changes in sql/src/ between releases is repeated here, so
-- an updated database equals a fresh install (tests/integration/test_upgrade.py compares them).
-- One headed block per change; each block is written to run once, on the 0.1.0 objects.
\echo Use "ALTER EXTENSION pyrec UPDATE" to load this file. \quit

-- == Versions: pyrec._python admits any SQL version the Python package serves (SQL_VERSIONS),
-- == so pyrec_pg can be upgraded before ALTER EXTENSION pyrec UPDATE (docs/upgrades.md).
CREATE OR REPLACE FUNCTION pyrec._python() RETURNS jsonb
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

-- == Dump/restore: pg_dump keeps the impressions' identity sequence (new ids continue after a
-- == restore), and restoring a dump does not write audit rows again (they come with the dump).
SELECT pg_catalog.pg_extension_config_dump('pyrec.impressions_recommendation_id_seq', '');
CREATE OR REPLACE FUNCTION pyrec._audit_trigger() RETURNS trigger
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

-- == Replicas: on a hot standby a running training (the primary's backend, not among the
-- == standby's own) shows as running, not as failed.
CREATE OR REPLACE VIEW pyrec._runs_now AS
SELECT r.run_id, r.model_id, r.kind, r.target, r.version,
       CASE WHEN gone THEN 'failed' ELSE r.status END AS status, r.phase, r.percent,
       r.rows_read, r.pid, r.started_at, r.finished_at,
       CASE WHEN gone THEN 'the backend exited before finishing' ELSE r.message END AS message
FROM pyrec._runs r,
     LATERAL (SELECT r.status = 'running' AND NOT pg_catalog.pg_is_in_recovery() AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid = r.pid AND a.backend_start = r.backend_start)) g(gone);

-- == BI views (sql/src/97_bi_views.sql): metrics in long format, impressions flattened and
-- == per day, batch outputs, pyrec.create_bi_view; drop_model drops the BI views it made.
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

-- drop_model drops the BI views it made: its new body is in the messages block below
COMMENT ON FUNCTION pyrec.drop_model(text, boolean) IS 'Drops a model with all its versions, vector tables, runs, batch output tables and the BI views pyrec made over them';
-- == (end of the BI views block)

-- == Messages: plpgsql errors show a caller's value of over 200 characters (a 10 MB model name,
-- == say) as its first 60 characters and its length, as Python errors do (pyrec._shown).
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
REVOKE ALL ON FUNCTION pyrec._shown(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pyrec._shown(text) TO pyrec_admin, pyrec_reader;
CREATE OR REPLACE FUNCTION pyrec.drop_model(name text, if_exists boolean DEFAULT false) RETURNS void
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
CREATE OR REPLACE FUNCTION pyrec.activate(model text, version integer) RETURNS jsonb
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
CREATE OR REPLACE FUNCTION pyrec.rollback(model text) RETURNS jsonb
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
CREATE OR REPLACE FUNCTION pyrec.drop_filter(model text, name text, if_exists boolean DEFAULT false)
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
CREATE OR REPLACE FUNCTION pyrec._active_version(model text) RETURNS pyrec._versions
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
    -- the promotion's values are bound as $7 beside the main filter's (the compiler says $5)
    pred := regexp_replace(f.pred, '\$5(?![0-9])', '$7', 'g');
    vals := f.vals;
    uses_user := f.uses_user;
    n := ceil(k * (promotion->>'percent')::numeric / 100.0)::integer;
    label := 'promotion:' || coalesce(promotion->>'name', 'promotion');
END
$fn$;
CREATE OR REPLACE FUNCTION pyrec._exploration(v pyrec._versions, exploration jsonb, k integer,
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
CREATE OR REPLACE FUNCTION pyrec._serve(
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
CREATE OR REPLACE FUNCTION pyrec.schedule_training(model text, schedule text, mode text DEFAULT 'full',
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
CREATE OR REPLACE FUNCTION pyrec.unschedule_training(model text, if_exists boolean DEFAULT false) RETURNS boolean
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
CREATE OR REPLACE FUNCTION pyrec._experiment(name text) RETURNS pyrec._experiments
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
CREATE OR REPLACE FUNCTION pyrec._experiment_serve(experiment text, model text, user_id text, k integer,
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
-- == (end of the messages block)

-- == Column comments (sql/src/98_column_comments.sql) for the relations people browse.
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
-- == (end of the column comments block)
