-- A/B experiments: creating, stopping and dropping them, and reading their results.

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
