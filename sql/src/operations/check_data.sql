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
