-- Checks of arguments that many functions take.

-- k of recommend, similar_items, ...; n of the segments; anchors of because_you_interacted
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
