-- Related items, personalized ranking of a given list, and user segments: plpgsql over the
-- active version's vectors, like recommend().

CREATE FUNCTION pyrec.similar_items(
    model text,
    item text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_items text[] DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- with the cosine HNSW index, keep scanning until k rows pass the filter (pgvector 0.8); 100
-- candidates, not 40: recall@10 (ties counted) of random anchors among 100k trained ALS items
-- was 0.96 at 40 and 0.98 at 100, both about 1 ms
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 100
AS $fn$
DECLARE
    v pyrec._versions;
    f record;
    anchor record;
    -- the item itself, and what the caller has shown already (pagination)
    left_out text[] := ARRAY[item] || ARRAY(SELECT x FROM unnest(exclude_items) x WHERE x IS NOT NULL);
    by_index boolean;  -- the version has the cosine index
BEGIN
    IF item IS NULL THEN
        RAISE EXCEPTION 'item must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the item''s id as text, for example pyrec.similar_items(''movies'', ''50'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'similar_items', false, true);
    EXECUTE format('SELECT embedding, history FROM pyrec.%I WHERE item_id = $1', v.items_table)
       INTO anchor USING item;
    IF anchor IS NULL THEN
        -- an item the version does not know: the most popular others (as recommend does)
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'popularity', f.pred,
                                              p_source => 'popular', p_first => f.filter_pred,
                                              p_then => f.live_ann)
          USING NULL::vector, left_out, k, NULL::text, f.vals, item;
    ELSIF anchor.history IS NOT NULL THEN
        -- item-item recipes: the score the item's history row gives every other item
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'dot', f.pred, p_source => 'model',
                                              p_first => f.filter_pred, p_then => f.live_ann)
          USING anchor.history, left_out, k, NULL::text, f.vals, item;
    ELSE
        -- factor models: cosine similarity of item vectors, through the version's cosine HNSW
        -- index when it has one (pyrec_pg.store.vectors.write_version names it after the
        -- table); versions written without it (small catalogs, or trained before it existed)
        -- scan every vector, exactly
        by_index := pg_catalog.to_regclass(format('pyrec.%I', v.items_table || '_cosine')) IS NOT NULL;
        RETURN QUERY EXECUTE pyrec._top_k_sql(v.items_table, 'ItemID', 'cosine',
                                              CASE WHEN by_index THEN f.pred_ann ELSE f.pred END, by_index, 'model',
                                              f.filter_pred, f.live_ann)
          USING anchor.embedding, left_out, k, NULL::text, f.vals, item;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, text, integer, text, jsonb, text[]) IS
'Items most similar to an item ("viewed X also viewed"), leaving out exclude_items; filters may use CurrentItem fields';

CREATE FUNCTION pyrec.similar_items(model text, item bigint, k integer DEFAULT 10,
                                    filter text DEFAULT NULL, params jsonb DEFAULT NULL,
                                    exclude_items text[] DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.similar_items(model, item::text, k, filter, params, exclude_items) $fn$;
COMMENT ON FUNCTION pyrec.similar_items(text, bigint, integer, text, jsonb, text[]) IS
'Items most similar to an item with an integer id';

CREATE FUNCTION pyrec.rank_items(
    model text,
    user_id text,
    item_ids text[],
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    f record;
    uvec vector;
    how text;
    ukey text;
BEGIN
    IF user_id IS NULL OR item_ids IS NULL THEN
        RAISE EXCEPTION 'user_id and item_ids must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.rank_items(''movies'', ''42'', ARRAY[''1'', ''50'', ''181''])';
    END IF;
    IF cardinality(item_ids) > 10000 THEN
        RAISE EXCEPTION 'item_ids holds % items, at most 10000 are ranked at once', cardinality(item_ids)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'rank the list in parts';
    END IF;
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'rank_items', true, false);
    IF f.uses_user THEN
        ukey := pyrec._user_key(v.model_id, user_id);
    END IF;
    SELECT u.vec, u.how INTO uvec, how
      FROM pyrec._user_vector(v, user_id,
               CASE WHEN v.fold = 'none' THEN '{}' ELSE pyrec._seen_items(v.model_id, user_id) END) u;
    -- every given item comes back once, in list order among equals: items the version does
    -- not know, or the live catalog no longer offers, rank last with a NULL score (source
    -- 'unknown'), never silently dropped; items the filter rules out are dropped, as in
    -- recommend. A given list is short: its items are tested one by one (the per-row forms)
    RETURN QUERY EXECUTE format(
        'WITH given AS (SELECT g.id, min(g.pos) AS pos FROM unnest($2) WITH ORDINALITY g(id, pos)
                         WHERE g.id IS NOT NULL GROUP BY g.id),
              scored AS (
                SELECT g.id, g.pos, i.item_id IS NOT NULL AS known,
                       CASE WHEN $1 IS NULL THEN i.popularity ELSE (-(i.embedding <#> $1))::real END AS s
                  FROM given g LEFT JOIN pyrec.%I i ON i.item_id = g.id AND (%s)
                 WHERE i.item_id IS NULL OR (%s))
         SELECT s.id, s.s, (row_number() OVER (ORDER BY s.known DESC, s.s DESC NULLS LAST, s.pos))::integer,
                CASE WHEN NOT s.known THEN ''unknown'' WHEN $1 IS NULL THEN ''popular'' ELSE %L END
           FROM scored s ORDER BY 3', v.items_table, f.live_ann, f.pred_ann, how)
      USING uvec, item_ids, NULL::integer, ukey, f.vals, NULL::text;
END
$fn$;
COMMENT ON FUNCTION pyrec.rank_items(text, text, text[], text, jsonb) IS
'Personalized ranking of a given list of items; unknown items rank last with a NULL score';

CREATE FUNCTION pyrec.users_for_item(
    model text,
    item_id text,
    n integer DEFAULT 100,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true
) RETURNS TABLE (user_id text, score real, rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    m pyrec.models;
    f record;
    ivec vector;
    seen text[] := '{}';
    live text;
    offered boolean;
BEGIN
    IF item_id IS NULL THEN
        RAISE EXCEPTION 'item_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.users_for_item(''movies'', ''50'', 100)';
    END IF;
    PERFORM pyrec._check_k(n, 'n', 1000000);
    v := pyrec._active_version(model);
    f := pyrec._prepare_filter(v, filter, params, 'UserID', 'users_for_item', false, true);
    EXECUTE format('SELECT embedding FROM pyrec.%I WHERE item_id = $1', v.items_table)
       INTO ivec USING item_id;
    IF ivec IS NULL THEN
        RAISE EXCEPTION 'item "%" is not in version % of model "%"', pyrec._shown(item_id), v.version, model
            USING ERRCODE = 'undefined_object',
                  HINT = 'segments need an item the model was trained with; retrain to include new items';
    END IF;
    live := (SELECT l.pred_ann FROM pyrec._live_items(v.model_id) l);
    IF live <> 'true' THEN
        EXECUTE format('SELECT bool_and(%s) FROM (SELECT $1::text AS item_id) i', live) INTO offered USING item_id;
        IF NOT offered THEN
            RAISE EXCEPTION 'item "%" is no longer offered by the items relation of model "%"',
                            pyrec._shown(item_id), model
                USING ERRCODE = 'undefined_object',
                      HINT = 'its row was deleted or marked unavailable: segments are built for the live catalog';
        END IF;
    END IF;
    IF exclude_seen THEN  -- users who already interacted with the item, read live
        SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
        BEGIN
            EXECUTE format('SELECT coalesce(array_agg(DISTINCT %I::text), ''{}'') FROM %s WHERE %I = $1::%s',
                           m.columns->>'user', m.interactions, m.columns->>'item', m.columns->>'item_type')
               INTO seen USING item_id;
        EXCEPTION
            WHEN invalid_text_representation OR numeric_value_out_of_range THEN
                seen := '{}';
            WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
                RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                                m.interactions, m.name, SQLERRM
                    USING ERRCODE = 'undefined_table',
                          HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
        END;
    END IF;
    RETURN QUERY EXECUTE pyrec._top_k_sql(v.users_table, 'UserID', 'dot', f.pred)
      USING ivec, seen, n, NULL::text, f.vals, item_id;
END
$fn$;
COMMENT ON FUNCTION pyrec.users_for_item(text, text, integer, text, jsonb, boolean) IS
'User segment: the users most likely to interact with an item (who have not yet, by default)';

CREATE FUNCTION pyrec.users_for_items(
    model text,
    item_filter text,
    n integer DEFAULT 100,
    params jsonb DEFAULT NULL,
    user_filter text DEFAULT NULL
) RETURNS TABLE (user_id text, score real, rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    fi record;
    fu record;
    qvec vector;
    matched integer;
BEGIN
    IF item_filter IS NULL THEN
        RAISE EXCEPTION 'item_filter must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example ''INCLUDE ItemID WHERE Items.genre IN ("Horror")''';
    END IF;
    PERFORM pyrec._check_k(n, 'n', 1000000);
    v := pyrec._active_version(model);
    fi := pyrec._prepare_filter(v, item_filter, params, 'ItemID', 'users_for_items (item_filter)', false, false);
    fu := pyrec._prepare_filter(v, user_filter, CASE WHEN user_filter IS NULL THEN NULL ELSE params END,
                                'UserID', 'users_for_items (user_filter)', false, false);
    -- the segment's query is the mean vector of the matching items (item-attribute affinity)
    EXECUTE format('SELECT avg(i.embedding), count(*) FROM pyrec.%I i WHERE (%s)', v.items_table, fi.pred)
       INTO qvec, matched USING NULL::vector, NULL::text[], NULL::integer, NULL::text, fi.vals, NULL::text;
    IF matched = 0 THEN
        RAISE EXCEPTION 'item_filter matches no item of version % of model "%"', v.version, model
            USING ERRCODE = 'no_data_found', HINT = 'check the filter''s values against the items table';
    END IF;
    RETURN QUERY EXECUTE pyrec._top_k_sql(v.users_table, 'UserID', 'dot', fu.pred)
      USING qvec, '{}'::text[], n, NULL::text, fu.vals, NULL::text;
END
$fn$;
COMMENT ON FUNCTION pyrec.users_for_items(text, text, integer, jsonb, text) IS
'User segment: the users most drawn to the items an item filter selects (e.g. a genre or a brand)';

CREATE FUNCTION pyrec.because_you_interacted(
    model text,
    user_id text,
    k integer DEFAULT 10,
    anchors integer DEFAULT 3
) RETURNS TABLE (item_id text, score real, rank integer, anchor_item_id text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    m pyrec.models;
    latest text[];
    seen text[];
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.because_you_interacted(''movies'', ''42'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    PERFORM pyrec._check_k(anchors, 'anchors', 50);
    v := pyrec._active_version(model);
    SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
    seen := pyrec._seen_items(v.model_id, user_id);
    -- the user's latest items (by the timestamp column when there is one), read live
    BEGIN
        EXECUTE format(
            'SELECT array_agg(x.item) FROM (SELECT %I::text AS item, max(%s) AS t FROM %s
               WHERE %I = $1::%s AND %I IS NOT NULL GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 LIMIT $2) x',
            m.columns->>'item',
            CASE WHEN m.columns->>'timestamp' IS NULL THEN '0' ELSE quote_ident(m.columns->>'timestamp') END,
            m.interactions, m.columns->>'user', m.columns->>'user_type', m.columns->>'item')
           INTO latest USING user_id, anchors;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        latest := NULL;
    END;
    IF pyrec._is_forgotten(v.model_id, user_id) THEN
        latest := NULL;  -- a forgotten user's history is not read
    END IF;
    -- each candidate once, credited to the anchor it is most similar to
    RETURN QUERY
    SELECT b.item_id, b.score, (row_number() OVER (ORDER BY b.score DESC, b.item_id))::integer, b.anchor
      FROM (SELECT DISTINCT ON (s.item_id) s.item_id, s.score, a.item AS anchor
              FROM unnest(coalesce(latest, '{}')) a(item),
                   LATERAL pyrec.similar_items(model, a.item, k + cardinality(seen)) s
             WHERE s.item_id <> ALL (seen) AND s.source = 'model'
             ORDER BY s.item_id, s.score DESC, a.item) b
     ORDER BY b.score DESC, b.item_id
     LIMIT k;
END
$fn$;
COMMENT ON FUNCTION pyrec.because_you_interacted(text, text, integer, integer) IS
'Items similar to the user''s latest items, each with the anchor item it is similar to';

CREATE FUNCTION pyrec.frequently_bought_together(
    model text,
    item text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    time_window interval DEFAULT '1 hour'
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    m pyrec.models;
    f record;
    together text;
BEGIN
    IF item IS NULL THEN
        RAISE EXCEPTION 'item must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.frequently_bought_together(''shop'', ''sku-1'', 5)';
    END IF;
    PERFORM pyrec._check_k(k, 'k');
    v := pyrec._active_version(model);
    SELECT * INTO m FROM pyrec.models WHERE models.model_id = v.model_id;
    f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'frequently_bought_together', false, true);
    -- counted live from the interactions: within a session/basket column when there is one,
    -- else within time_window of the same user's events with the item
    IF m.columns->>'session' IS NOT NULL THEN
        together := format(
            'SELECT x.%1$I::text AS item_id, count(DISTINCT x.%2$I) AS n FROM %3$s x
              WHERE x.%2$I IN (SELECT a.%2$I FROM %3$s a WHERE a.%1$I = $6::%4$s AND a.%2$I IS NOT NULL)
                AND x.%1$I <> $6::%4$s GROUP BY 1',
            m.columns->>'item', m.columns->>'session', m.interactions, m.columns->>'item_type');
    ELSIF m.columns->>'timestamp' IS NOT NULL THEN
        together := format(
            'SELECT x.%1$I::text AS item_id, count(DISTINCT x.%2$I) AS n FROM %3$s x
               JOIN %3$s a ON a.%2$I = x.%2$I AND a.%1$I = $6::%4$s
                AND x.%5$I BETWEEN a.%5$I - $7 AND a.%5$I + $7
              WHERE x.%1$I <> $6::%4$s GROUP BY 1',
            m.columns->>'item', m.columns->>'user', m.interactions, m.columns->>'item_type',
            m.columns->>'timestamp');
        IF time_window IS NULL OR time_window <= interval '0' THEN
            RAISE EXCEPTION 'time_window must be a positive interval, got %', coalesce(time_window::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'items bought within time_window of the item count as together, for example ''1 hour''';
        END IF;
        IF m.columns->>'timestamp_type' NOT IN ('timestamp with time zone', 'timestamp without time zone', 'date') THEN
            RAISE EXCEPTION 'frequently_bought_together needs a session column or a timestamp column of a time type'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'map a session/basket/order column: options => ''{"columns": {"session": "order_id"}}''';
        END IF;
    ELSE
        RAISE EXCEPTION 'model "%" has no session and no timestamp column', model
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'map a session/basket/order column: options => ''{"columns": {"session": "order_id"}}''';
    END IF;
    BEGIN
        RETURN QUERY EXECUTE format(
            'SELECT i.item_id, i.n::real, (row_number() OVER (ORDER BY i.n DESC, i.item_id))::integer, ''co-occurrence''
               FROM (%s) i WHERE (%s) ORDER BY i.n DESC, i.item_id LIMIT $3', together, f.pred_ann)
          USING NULL::vector, NULL::text[], k, NULL::text, f.vals, item, time_window;
    EXCEPTION
        WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RETURN;  -- an id that cannot exist in the item column: bought with nothing
        WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
            RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                            m.interactions, m.name, SQLERRM
                USING ERRCODE = 'undefined_table',
                      HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
    END;
END
$fn$;
COMMENT ON FUNCTION pyrec.frequently_bought_together(text, text, integer, text, jsonb, interval) IS
'Items most often in the same session/basket as an item (else within time_window of it), counted live';
