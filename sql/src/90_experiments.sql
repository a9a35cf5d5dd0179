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
