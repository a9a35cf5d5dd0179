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

-- per user and item: readers do not get it (impressions say who was served when)
CREATE VIEW pyrec.impression_log AS
SELECT i.recommendation_id, e.name AS experiment, i.variant, i.user_id, x.item_id,
       x.rank::integer AS rank, x.score, i.shown_at
FROM pyrec.impressions i JOIN pyrec._experiments e USING (experiment_id),
     LATERAL unnest(i.items, i.scores) WITH ORDINALITY x(item_id, score, rank);
COMMENT ON VIEW pyrec.impression_log IS
'Experiment impressions flattened: one row per request and served item, with its rank and score';

COMMENT ON COLUMN pyrec.impression_log.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impression_log.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impression_log.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impression_log.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impression_log.item_id IS 'One item shown';
COMMENT ON COLUMN pyrec.impression_log.rank IS 'Its position in the list, from 1';
COMMENT ON COLUMN pyrec.impression_log.score IS 'Its score';
COMMENT ON COLUMN pyrec.impression_log.shown_at IS 'When the list was served';

CREATE VIEW pyrec.impressions_daily AS
SELECT e.name AS experiment, i.variant, i.shown_at::date AS day, count(*) AS impressions,
       count(DISTINCT i.user_id) AS users, sum(cardinality(i.items)) AS items_shown
FROM pyrec.impressions i JOIN pyrec._experiments e USING (experiment_id)
GROUP BY e.name, i.variant, i.shown_at::date;
COMMENT ON VIEW pyrec.impressions_daily IS
'Experiment traffic per variant and day (session time zone): requests, distinct users, items shown';

COMMENT ON COLUMN pyrec.impressions_daily.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impressions_daily.variant IS 'Variant';
COMMENT ON COLUMN pyrec.impressions_daily.day IS 'Day served (session time zone)';
COMMENT ON COLUMN pyrec.impressions_daily.impressions IS 'recommend() calls served';
COMMENT ON COLUMN pyrec.impressions_daily.users IS 'Distinct users served';
COMMENT ON COLUMN pyrec.impressions_daily.items_shown IS 'Items shown, summed over the calls';

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

COMMENT ON COLUMN pyrec.batch_outputs.model IS 'Model name';
COMMENT ON COLUMN pyrec.batch_outputs.target IS 'Output table';
COMMENT ON COLUMN pyrec.batch_outputs.produced_by IS 'batch_recommend or batch_users_for_items';
COMMENT ON COLUMN pyrec.batch_outputs.version IS 'Model version the rows were scored with';
COMMENT ON COLUMN pyrec.batch_outputs.rows_written IS 'Rows the last job wrote';
COMMENT ON COLUMN pyrec.batch_outputs.written_at IS 'When the last job finished';
COMMENT ON COLUMN pyrec.batch_outputs.present IS 'Whether the table still holds that job''s rows (false: dropped, or written by another model since)';
COMMENT ON COLUMN pyrec.batch_outputs.bi_views IS 'Views pyrec.create_bi_view made over the table';

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
COMMENT ON FUNCTION pyrec.create_bi_view(text, text, text, text[], boolean) IS
'Creates a plain view of a model''s batch_recommend output joined with its items relation (titles...), readable by pyrec_reader, for BI tools';
