-- Serving an experiment: the user's variant answers and the impression is logged.

CREATE FUNCTION pyrec._experiment(name text) RETURNS pyrec._experiments
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
COMMENT ON FUNCTION pyrec._experiment(text) IS 'An experiment''s row, with a clear error when there is none';

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
