-- Outcomes of the Python entry points as Postgres errors.

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
