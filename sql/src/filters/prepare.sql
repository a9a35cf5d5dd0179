-- A filter argument made ready for a serving function: resolved, checked, its values bound.

-- The live catalog: when a model has an items relation, only the items still in it (and not
-- marked unavailable) are served, read at each request, so a deleted or withdrawn item is gone
-- from the moment its row is: no retraining, no refresh. NULL availability counts as available.
-- pred tests the candidates against one hash of the catalog (full scans); pred_ann looks each
-- candidate up by its id (index scans that test a few), where the id column has the type of
-- the interactions' item column, so the cast of a candidate id cannot fail.
CREATE FUNCTION pyrec._live_items(p_model_id integer, OUT pred text, OUT pred_ann text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    rel regclass;
    v_key text;
    v_avail text;
    key_type text;
    avail_type text;
    cond text := '';
BEGIN
    pred := 'true';
    pred_ann := 'true';
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = p_model_id;
    IF m.items IS NULL THEN
        RETURN;
    END IF;
    v_key := m.columns->>'items_id';
    v_avail := m.columns->>'items_available';
    rel := pg_catalog.to_regclass(m.items);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'items relation % of model "%" no longer matches its definition: it does not exist',
                        m.items, m.name
            USING ERRCODE = 'undefined_table',
                  HINT = 'restore it (serving reads which items may be recommended from it), or drop and recreate the model';
    END IF;
    SELECT max(pg_catalog.format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = v_key),
           max(pg_catalog.format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = v_avail)
      INTO key_type, avail_type
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname IN (v_key, v_avail);
    IF key_type IS NULL OR (v_avail IS NOT NULL AND avail_type IS NULL) THEN
        RAISE EXCEPTION 'items relation % of model "%" no longer matches its definition: column "%" (mapped as %) does not exist',
                        m.items, m.name, CASE WHEN key_type IS NULL THEN v_key ELSE v_avail END,
                        CASE WHEN key_type IS NULL THEN 'items_id' ELSE 'items_available' END
            USING ERRCODE = 'undefined_column',
                  HINT = 'restore the column, or drop and recreate the model';
    END IF;
    IF avail_type = 'boolean' THEN
        cond := format(' AND r.%I IS NOT FALSE', v_avail);
    ELSIF avail_type IS NOT NULL THEN  -- text: Personalize's "True"/"False", or any boolean spelling
        cond := format(' AND coalesce(lower(btrim(r.%I)) <> ALL (ARRAY[''false'', ''f'', ''no'', ''n'', ''off'', ''0'']), true)', v_avail);
    END IF;
    pred := format('i.item_id IN (SELECT r.%1$I::text FROM %2$s r WHERE r.%1$I IS NOT NULL%3$s)',
                   v_key, m.items, cond);
    pred_ann := pred;
    IF key_type = m.columns->>'item_type' THEN
        -- OFFSET 0 keeps the planner from turning the EXISTS into the hash above
        pred_ann := format('EXISTS (SELECT 1 FROM %2$s r WHERE r.%1$I = i.item_id::%4$s%3$s OFFSET 0)',
                           v_key, m.items, cond, key_type);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._live_items(integer) IS
'The predicate that keeps serving to the items still in the model''s items relation and not marked unavailable (true without one)';

-- recommend words two of the errors its own way (its messages came first, callers match them)
CREATE FUNCTION pyrec._prepare_filter(
    v pyrec._versions, filter text, params jsonb, target text, fn text,
    allow_user boolean, allow_item boolean, OUT pred text, OUT vals jsonb, OUT uses_user boolean,
    OUT pred_ann text, OUT live_ann text, OUT filter_pred text, OUT filter_ann text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
    live text := 'true';  -- the live catalog's test, hash form (pred holds it)
BEGIN
    pred := 'true';
    pred_ann := 'true';
    vals := '{}';
    uses_user := false;
    live_ann := 'true';
    filter_pred := 'true';
    filter_ann := 'true';
    IF target = 'ItemID' THEN  -- items: only those the live catalog still offers
        SELECT l.pred, l.pred_ann INTO live, live_ann FROM pyrec._live_items(v.model_id) l;
    END IF;
    IF filter IS NULL THEN
        IF params IS NOT NULL THEN
            RAISE EXCEPTION 'params were given without a filter' USING ERRCODE = 'invalid_parameter_value',
                HINT = 'params fill the $PARAMETERS of the filter argument';
        END IF;
        pred := live;
        pred_ann := live_ann;
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
    filter_pred := pred;
    filter_ann := pred_ann;
    IF live <> 'true' THEN
        pred := format('(%s) AND (%s)', live, pred);
        pred_ann := format('(%s) AND (%s)', live_ann, pred_ann);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._prepare_filter(pyrec._versions, text, jsonb, text, text, boolean, boolean) IS
'Resolves and checks a filter for a serving function: the predicate (and its per-row form for HNSW scans) and the values it reads; for items, with the live catalog''s test (also alone in its per-row form, as live_ann, and the filter without it, as filter_pred and, per row, filter_ann)';
