-- Offline evaluation on demand (training stores the same metrics in pyrec.model_versions).
-- protocol, holdout and seed default to the model's options, as training uses them.

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
    RETURN QUERY SELECT * FROM pyrec._metric_rows(m);
END
$fn$;
COMMENT ON FUNCTION pyrec.evaluate(text, text, double precision, integer, jsonb) IS
'Holdout metrics (precision, recall, ndcg, mrr, map, coverage) of a model''s recipe next to popularity, without training a version';
