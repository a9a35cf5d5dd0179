-- A filter argument made ready for a serving function: resolved, checked, its values bound.

-- recommend words two of the errors its own way (its messages came first, callers match them)
CREATE FUNCTION pyrec._prepare_filter(
    v pyrec._versions, filter text, params jsonb, target text, fn text,
    allow_user boolean, allow_item boolean, OUT pred text, OUT vals jsonb, OUT uses_user boolean,
    OUT pred_ann text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
BEGIN
    pred := 'true';
    pred_ann := 'true';
    vals := '{}';
    uses_user := false;
    IF filter IS NULL THEN
        IF params IS NOT NULL THEN
            RAISE EXCEPTION 'params were given without a filter' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'params fill the $PARAMETERS of the filter argument';
        END IF;
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
END
$fn$;
COMMENT ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) IS
'Resolves and checks a filter for a serving function: the predicate (and its per-row form for HNSW scans) and the values it reads';
