-- Serving: plain plpgsql over the active version's vector tables, no Python on the hot path.

CREATE FUNCTION pyrec._seen_items(model_id integer, user_id text) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    seen text[];
BEGIN
    IF pyrec._is_forgotten(model_id, user_id) THEN
        RETURN '{}';  -- a forgotten user's history is not read (pyrec.forget_user)
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = _seen_items.model_id;
    -- the parameter is cast to the column's own type so an index on the user column is used
    EXECUTE format('SELECT coalesce(array_agg(DISTINCT %I::text) FILTER (WHERE %I IS NOT NULL), ''{}'')'
                   ' FROM %s WHERE %I = $1::%s',
                   m.columns->>'item', m.columns->>'item', m.interactions, m.columns->>'user',
                   m.columns->>'user_type')
       INTO seen USING user_id;
    RETURN seen;
EXCEPTION
    WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_datetime_format THEN
        RETURN '{}';  -- the id cannot exist in a column of that type: nothing seen
    WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function THEN
        RAISE EXCEPTION 'interactions relation % of model "%" no longer matches its definition: %',
                        m.interactions, m.name, SQLERRM
            USING ERRCODE = 'undefined_table',
                  HINT = 'restore the relation and its mapped columns, or drop and recreate the model';
END
$fn$;
COMMENT ON FUNCTION pyrec._seen_items(integer, text) IS 'Items a user interacted with, read live from the model''s interactions relation';

CREATE FUNCTION pyrec._user_key(model_id integer, user_id text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    typ text;
BEGIN
    SELECT m.columns->>'user_type' INTO typ FROM pyrec.models m WHERE m.model_id = _user_key.model_id;
    EXECUTE format('SELECT $1::%s', typ) USING user_id;
    RETURN user_id;
EXCEPTION
    WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_datetime_format THEN
        RETURN NULL;  -- cannot be an id of that type: an unknown user
END
$fn$;
COMMENT ON FUNCTION pyrec._user_key(integer, text) IS 'The user id if it fits the type of the interactions'' user column, else NULL';

CREATE FUNCTION pyrec._user_vector(v pyrec._versions, user_id text, history text[],
                                   OUT vec vector, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    n integer;
BEGIN
    IF pyrec._is_forgotten(v.model_id, user_id) THEN
        RETURN;  -- forgotten: no vector, no fold-in, no attributes (pyrec.forget_user)
    END IF;
    EXECUTE format('SELECT embedding, n_items FROM pyrec.%I WHERE user_id = $1', v.users_table)
       INTO vec, n USING user_id;
    how := 'model';
    -- history the version has not seen (a new user, or new events): fold it in, no retraining
    IF cardinality(history) > 0 AND (vec IS NULL OR n <> cardinality(history)) THEN
        IF v.fold = 'sum' THEN  -- item-item: the user's vector sums their items' history vectors
            EXECUTE format('SELECT sum(history) FROM pyrec.%I WHERE item_id = ANY ($1)', v.items_table)
               INTO vec USING history;
            how := 'fold-in';
        ELSIF v.fold = 'least_squares' THEN  -- ALS: one small solve against the item vectors
            vec := (pyrec._result(pyrec._call('fold_in', jsonb_build_object(
                       'model_id', v.model_id, 'version', v.version, 'user_id', user_id))) #>> '{}')::vector;
            how := 'fold-in';
        END IF;
    END IF;
    -- no history at all: a user of the users relation gets a vector from their attributes
    IF vec IS NULL AND v.user_features <> '{}' THEN
        vec := (pyrec._result(pyrec._call('user_from_attributes', jsonb_build_object(
                   'model_id', v.model_id, 'version', v.version, 'user_id', user_id))) #>> '{}')::vector;
        how := 'attributes';
    END IF;
    IF vec IS NULL THEN
        how := NULL;
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._user_vector(pyrec._versions, text, text[]) IS
'A user''s vector: the trained one, or one folded in from live history the version has not seen';

CREATE FUNCTION pyrec._items_vector(v pyrec._versions, items text[], OUT vec vector, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    -- a list of items (a cart, an anonymous session) folded in as one history, weight 1 each
    IF cardinality(items) = 0 THEN
        RETURN;
    ELSIF v.fold = 'sum' THEN
        EXECUTE format('SELECT sum(history) FROM pyrec.%I WHERE item_id = ANY ($1)', v.items_table)
           INTO vec USING items;
    ELSIF v.fold = 'least_squares' THEN
        vec := (pyrec._result(pyrec._call('fold_in', jsonb_build_object(
                   'model_id', v.model_id, 'version', v.version, 'items', to_jsonb(items)))) #>> '{}')::vector;
    END IF;
    IF vec IS NOT NULL THEN
        how := 'fold-in';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._items_vector(pyrec._versions, text[]) IS
'A vector for a list of items (recommend_for_items): the list folded in as a history the version has not seen';

CREATE FUNCTION pyrec._promotion(v pyrec._versions, promotion jsonb, k integer,
                                 OUT pred text, OUT vals jsonb, OUT n integer, OUT label text,
                                 OUT uses_user boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    f record;
    extra text[];
BEGIN
    IF jsonb_typeof(promotion) IS DISTINCT FROM 'object' OR promotion->>'filter' IS NULL THEN
        RAISE EXCEPTION 'promotion must be a JSON object with a filter' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"name": "summer", "filter": "INCLUDE ItemID WHERE Items.genre IN (\"Comedy\")", "percent": 20}';
    END IF;
    SELECT array_agg(key) INTO extra FROM jsonb_object_keys(promotion) key
     WHERE key NOT IN ('name', 'filter', 'percent', 'params');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown promotion field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'promotion fields are name, filter, percent and params';
    END IF;
    IF jsonb_typeof(promotion->'percent') IS DISTINCT FROM 'number'
       OR (promotion->>'percent')::numeric NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'promotion percent must be a number between 1 and 100, got %',
                        coalesce(pyrec._shown(promotion->>'percent'), 'none')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'percent is the share of the k slots filled from the promotion''s filter';
    END IF;
    f := pyrec._prepare_filter(v, promotion->>'filter', promotion->'params', 'ItemID', 'promotions', true, false);
    -- the promotion's values are bound as $7 beside the main filter's (the compiler says $5);
    -- its filter alone: it is always tested beside the main predicate, which holds the live
    -- catalog's test
    pred := regexp_replace(f.filter_pred, '\$5(?![0-9])', '$7', 'g');
    vals := f.vals;
    uses_user := f.uses_user;
    n := ceil(k * (promotion->>'percent')::numeric / 100.0)::integer;
    label := 'promotion:' || coalesce(promotion->>'name', 'promotion');
END
$fn$;
COMMENT ON FUNCTION pyrec._promotion(pyrec._versions, jsonb, integer) IS
'Checks and compiles recommend()''s promotion argument';

CREATE FUNCTION pyrec._promoted(v pyrec._versions, uvec vector, how text, seen text[], k integer,
                                ukey text, pred text, vals jsonb,
                                promo_pred text, promo_vals jsonb, promo_n integer, promo_label text)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
DECLARE
    score_sql text;
    order_sql text;
BEGIN
    IF uvec IS NULL THEN
        score_sql := 'i.popularity';
        order_sql := 'i.popularity DESC, i.item_id';
    ELSE
        score_sql := '(-(i.embedding <#> $1))::real';
        order_sql := CASE WHEN v.ann THEN 'i.embedding <#> $1' ELSE 'i.embedding <#> $1, i.item_id' END;
    END IF;
    -- promoted items (both filters) take ceil(k * percent / 100) slots spread evenly through
    -- the list, the others keep their order
    RETURN QUERY EXECUTE format(
        'WITH p AS (SELECT i.item_id, %1$s AS s FROM pyrec.%2$I i
                     WHERE i.item_id <> ALL ($2) AND ((%3$s) AND (%4$s)) IS TRUE ORDER BY %5$s LIMIT $8),
              r AS (SELECT i.item_id, %1$s AS s FROM pyrec.%2$I i
                     WHERE i.item_id <> ALL ($2) AND ((%3$s) IS TRUE) AND i.item_id NOT IN (SELECT p.item_id FROM p)
                     ORDER BY %5$s LIMIT $3 - (SELECT count(*) FROM p)),
              x AS (SELECT r.item_id, r.s, (row_number() OVER (ORDER BY r.s DESC, r.item_id))::numeric AS key,
                           0 AS promo FROM r
                    UNION ALL
                    SELECT p.item_id, p.s, (row_number() OVER (ORDER BY p.s DESC, p.item_id))
                           * ((SELECT count(*) FROM r) + 1)::numeric / ((SELECT count(*) FROM p) + 1), 1 FROM p)
         SELECT x.item_id, x.s::real, (row_number() OVER (ORDER BY x.key, x.promo DESC, x.s DESC))::integer,
                CASE WHEN x.promo = 1 THEN %6$L ELSE %7$L END
           FROM x ORDER BY 3',
        score_sql, v.items_table, pred, promo_pred, order_sql, promo_label, coalesce(how, 'popular'))
      USING uvec, seen, k, ukey, vals, NULL::text, promo_vals, promo_n;
END
$fn$;
COMMENT ON FUNCTION pyrec._promoted(pyrec._versions, vector, text, text[], integer, text, text, jsonb, text, jsonb, integer, text) IS
'recommend() with a promotion: a share of the slots from a second filter, spread through the list';

CREATE FUNCTION pyrec._exploration(v pyrec._versions, exploration jsonb, k integer,
                                   OUT pred text, OUT n integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    extra text[];
    weight numeric;
    cutoff numeric;
BEGIN
    IF jsonb_typeof(exploration) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'exploration must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"weight": 0.3, "item_age_cutoff_days": 30}';
    END IF;
    SELECT array_agg(key) INTO extra FROM jsonb_object_keys(exploration) key
     WHERE key NOT IN ('weight', 'item_age_cutoff_days');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown exploration field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'exploration fields are weight and item_age_cutoff_days';
    END IF;
    IF jsonb_typeof(exploration->'weight') IS DISTINCT FROM 'number'
       OR (exploration->>'weight')::numeric NOT BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'exploration weight must be a number between 0 and 1, got %',
                        coalesce(pyrec._shown(exploration->>'weight'), 'none')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the share of the k slots given to fresh items (0: none)';
    END IF;
    weight := (exploration->>'weight')::numeric;
    n := ceil(k * weight)::integer;
    IF exploration ? 'item_age_cutoff_days' THEN
        IF jsonb_typeof(exploration->'item_age_cutoff_days') IS DISTINCT FROM 'number'
           OR (exploration->>'item_age_cutoff_days')::numeric <= 0 THEN
            RAISE EXCEPTION 'exploration item_age_cutoff_days must be a positive number'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 30';
        END IF;
        cutoff := (exploration->>'item_age_cutoff_days')::numeric;
        SELECT * INTO m FROM pyrec.models WHERE model_id = v.model_id;
        IF m.columns->>'items_created' IS NULL THEN
            RAISE EXCEPTION 'item_age_cutoff_days needs the items'' creation time'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'give the model an items relation with a created_at column, or map one: options => ''{"columns": {"items_created": "<column>"}}''';
        END IF;
        -- fresh: entered the catalog within the cutoff (read live from the items relation)
        pred := format('i.item_id IN (SELECT r.%I::text FROM %s r WHERE r.%I >= now() - %L::interval)',
                       m.columns->>'items_id', m.items, m.columns->>'items_created', cutoff || ' days');
    ELSE
        pred := 'i.popularity <= 0';  -- fresh: no interactions when the version was trained
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._exploration(pyrec._versions, jsonb, integer) IS
'Checks recommend()''s exploration argument: which items are fresh and how many slots they get';

CREATE FUNCTION pyrec._serve(
    v pyrec._versions,
    user_id text,
    k integer,
    filter text,
    params jsonb,
    exclude_seen boolean,
    promotion jsonb,
    exploration jsonb,
    personalized boolean,
    exclude_items text[] DEFAULT NULL,
    given_items text[] DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- with an HNSW index, keep scanning until k rows pass the filter (pgvector 0.8)
SET hnsw.iterative_scan = 'relaxed_order'
-- 100 candidates, not 40: recall@10 of folded-in users' vectors was 0.71 at 40 (100k items)
SET hnsw.ef_search = 100
AS $fn$
DECLARE
    uvec vector;
    how text;
    history text[] := '{}';
    seen text[] := '{}';
    f record;
    ukey text;
    promo record;
    exact_max bigint;  -- filters expected to keep at most this many items are scored exactly
    exact boolean := false;
    rk record;
    pool integer := k;  -- candidates read ($3): k, or ranking's pool
    boost_vals jsonb;
    q text;
    pools text[];
    c pyrec._ranked;
    kept pyrec._ranked[];
    counts jsonb;  -- items kept per value of the diversity field
BEGIN
    IF given_items IS NULL THEN
        f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'recommend', true, false);
    ELSE  -- no user: CurrentUser fields and Interactions have nothing to read
        f := pyrec._prepare_filter(v, filter, params, 'ItemID', 'recommend_for_items', false, false);
    END IF;
    IF f.uses_user THEN
        ukey := pyrec._user_key(v.model_id, user_id);
    END IF;
    IF given_items IS NOT NULL THEN
        -- the listed items are the history, and are not recommended back
        history := ARRAY(SELECT DISTINCT g FROM unnest(given_items) g WHERE g IS NOT NULL);
        seen := history;
    ELSIF exclude_seen OR v.fold <> 'none' THEN
        history := pyrec._seen_items(v.model_id, user_id);
        IF exclude_seen THEN
            seen := history;
        END IF;
    END IF;
    IF exclude_items IS NOT NULL THEN  -- what the caller has shown already (pagination)
        seen := seen || ARRAY(SELECT x FROM unnest(exclude_items) x WHERE x IS NOT NULL);
    END IF;
    IF NOT personalized THEN
        NULL;  -- the popular answer (an experiment's control variant)
    ELSIF given_items IS NOT NULL THEN
        SELECT u.vec, u.how INTO uvec, how FROM pyrec._items_vector(v, history) u;
    ELSE
        SELECT u.vec, u.how INTO uvec, how FROM pyrec._user_vector(v, user_id, history) u;
    END IF;
    IF v.ann AND how IS DISTINCT FROM 'model' THEN
        -- vectors solved at request time lie off the trained users' distribution: the graph
        -- search needs more candidates (recall@10 0.77 at 100 on 100k items); this function's
        -- SET clause restores the setting on exit
        PERFORM pg_catalog.set_config('hnsw.ef_search', greatest(400, v.ef_search)::text, true);
    ELSIF v.ann AND v.ef_search IS NOT NULL THEN
        -- a trained user's vector: the version's own setting, the smallest that reached the
        -- target recall on a sample of its users at training (pyrec_pg.store.calibrate); a
        -- filter keeps 100 or more, as the iterative scan reads that many candidates a round
        PERFORM pg_catalog.set_config('hnsw.ef_search',
            CASE WHEN filter IS NULL THEN v.ef_search ELSE greatest(v.ef_search, 100) END::text, true);
    END IF;
    IF promotion IS NOT NULL AND exploration IS NOT NULL THEN
        RAISE EXCEPTION 'a request takes a promotion or exploration, not both'
            USING ERRCODE = 'feature_not_supported', HINT = 'pass one of them';
    END IF;
    IF ranking IS NOT NULL THEN
        IF promotion IS NOT NULL OR exploration IS NOT NULL THEN
            RAISE EXCEPTION 'a request takes ranking or a promotion or exploration, not both'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'a boost with a positive weight raises a filter''s items the way a promotion does';
        END IF;
        rk := pyrec._ranking(v, ranking, k, given_items IS NULL);
        pool := rk.pool;
        boost_vals := rk.boost_vals;
        IF rk.uses_user AND ukey IS NULL THEN
            ukey := pyrec._user_key(v.model_id, user_id);
        END IF;
    END IF;
    IF promotion IS NOT NULL THEN
        promo := pyrec._promotion(v, promotion, k);
        IF promo.uses_user AND ukey IS NULL THEN
            ukey := pyrec._user_key(v.model_id, user_id);
        END IF;
    ELSIF exploration IS NOT NULL THEN
        -- exploration mixes fresh items in the way a promotion does, with its own label
        SELECT e.pred AS pred, '{}'::jsonb AS vals, e.n AS n, 'exploration' AS label,
               false AS uses_user INTO promo
          FROM pyrec._exploration(v, exploration, k) e;
        IF promo.n = 0 THEN
            exploration := NULL;
        END IF;
    END IF;
    IF v.ann AND filter IS NOT NULL THEN  -- read outside the block below: its own error stands
        exact_max := nullif(pyrec._exact_filter_items(), 0);  -- 0: the index, no estimate
    END IF;
    BEGIN
        IF promotion IS NOT NULL OR exploration IS NOT NULL THEN
            RETURN QUERY SELECT * FROM pyrec._promoted(v, uvec, how, seen, k, ukey, f.pred, f.vals,
                                                        promo.pred, promo.vals, promo.n, promo.label);
            RETURN;
        END IF;
        IF uvec IS NOT NULL AND exact_max IS NOT NULL THEN
            -- a filter that keeps few items: score them exactly (the HNSW scan would miss most)
            exact := pyrec._filter_rows(v.items_table, f.filter_pred, ukey, f.vals) <= exact_max;
        END IF;
        q := pyrec._candidates_sql(v, uvec IS NOT NULL, exact, how, f.pred, f.pred_ann, f.filter_pred, f.live_ann);
        IF ranking IS NOT NULL THEN
            -- the model's best candidates, and each positive boost's best k among the items it
            -- raises (a list holds at most k of them), re-ranked together: the boost's scan
            -- reads k ($8) where the candidates' reads the pool ($3)
            pools := ARRAY[q];
            FOR b IN 1 .. coalesce(array_length(rk.boost_scan, 1), 0) LOOP
                pools := pools || regexp_replace(pyrec._candidates_sql(
                    v, uvec IS NOT NULL, exact, how,
                    format('(%s) AND (%s)', f.pred, rk.boost_scan[b]),
                    format('(%s) AND (%s)', f.pred_ann, rk.boost_ann[b]),
                    format('(%s) AND (%s)', f.filter_pred, rk.boost_scan[b]), f.live_ann),
                    '\$3(?![0-9])', '$8', 'g');
            END LOOP;
            q := pyrec._ranked_sql(v.items_table, pools, rk.boost, rk.lookup, rk.mix, rk.cap IS NOT NULL);
            IF rk.cap IS NOT NULL THEN
                -- diversity: best first, an item is kept while each of its values has room;
                -- the candidates are not widened when fewer than k fit (the caller's
                -- `candidates` is): on a catalog whose values follow the users' tastes each
                -- widening costs more than the request (6.5 ms against 3.3 at 100k items)
                counts := '{}';
                kept := '{}';
                FOR c IN EXECUTE q USING uvec, seen, pool, ukey, f.vals, NULL::text, boost_vals, k LOOP
                    CONTINUE WHEN EXISTS (SELECT 1 FROM unnest(c.grps) g
                                           WHERE coalesce((counts->>g)::integer, 0) >= rk.cap);
                    SELECT counts || coalesce(jsonb_object_agg(g, coalesce((counts->>g)::integer, 0) + 1), '{}')
                      INTO counts FROM (SELECT DISTINCT g FROM unnest(c.grps) g) d;
                    kept := kept || c;
                    EXIT WHEN cardinality(kept) >= k;
                END LOOP;
                RETURN QUERY SELECT x.i, x.s, x.n::integer, x.src
                               FROM unnest(kept) WITH ORDINALITY x(i, s, r, src, g, n) ORDER BY x.n;
                RETURN;
            END IF;
        END IF;
        RETURN QUERY EXECUTE q USING uvec, seen, pool, ukey, f.vals, NULL::text, boost_vals, k;
    EXCEPTION
        WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
             OR numeric_value_out_of_range OR invalid_parameter_value THEN
            IF filter IS NULL AND ranking IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'a filter value does not fit its field: %', pyrec._shown(SQLERRM)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'check that each value in params has the type of the field it is compared with';
        WHEN undefined_table OR undefined_column THEN
            IF filter IS NULL AND ranking IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION 'filter of model "%" refers to a relation or column that is gone: %',
                            (SELECT m.name FROM pyrec.models m WHERE m.model_id = v.model_id), SQLERRM
                USING ERRCODE = 'undefined_table',
                      HINT = 'recreate the filter (pyrec.drop_filter / pyrec.create_filter) after changing the tables';
    END;
END
$fn$;
COMMENT ON FUNCTION pyrec._serve(pyrec._versions, text, integer, text, jsonb, boolean, jsonb, jsonb, boolean, text[], text[], jsonb) IS
'recommend() (or recommend_for_items(), given the items) from a given version: filters, seen and excluded items, fold-in, promotions, exploration, ranking';

CREATE FUNCTION pyrec.recommend(
    model text,
    user_id text,
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true,
    promotion jsonb DEFAULT NULL,
    exploration jsonb DEFAULT NULL,
    experiment text DEFAULT NULL,
    exclude_items text[] DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the user''s id as text, for example pyrec.recommend(''movies'', ''42'', 10)';
    END IF;
    PERFORM pyrec._check_k(k, 'k', p_rows => 'items');
    IF experiment IS NOT NULL THEN  -- the user's variant serves, and the impression is logged
        RETURN QUERY SELECT * FROM pyrec._experiment_serve(experiment, model, user_id, k, filter,
                                                            params, exclude_seen, promotion, exploration,
                                                            exclude_items, NULL, ranking);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pyrec._serve(pyrec._active_version(model), user_id, k, filter, params,
                                            exclude_seen, promotion, exploration, true, exclude_items,
                                            NULL, ranking);
END
$fn$;
COMMENT ON FUNCTION pyrec.recommend(text, text, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) IS
'Top-k items for a user from the model''s active version (or the user''s variant of an experiment), leaving out exclude_items, re-ranked by ranking (popularity, freshness, boosts, diversity); source says what answered: model, fold-in (live history the version has not seen), attributes, popular, promotion or exploration';

CREATE FUNCTION pyrec.recommend(model text, user_id bigint, k integer DEFAULT 10,
                                filter text DEFAULT NULL, params jsonb DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, promotion jsonb DEFAULT NULL,
                                exploration jsonb DEFAULT NULL, experiment text DEFAULT NULL,
                                exclude_items text[] DEFAULT NULL, ranking jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(model, user_id::text, k, filter, params, exclude_seen, promotion,
                                      exploration, experiment, exclude_items, ranking) $fn$;
COMMENT ON FUNCTION pyrec.recommend(text, bigint, integer, text, jsonb, boolean, jsonb, jsonb, text, text[], jsonb) IS
'Top-k items for a user with an integer id';

CREATE FUNCTION pyrec.recommend_for_items(
    model text,
    items text[],
    k integer DEFAULT 10,
    filter text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_items text[] DEFAULT NULL,
    promotion jsonb DEFAULT NULL,
    exploration jsonb DEFAULT NULL,
    experiment text DEFAULT NULL,
    session_id text DEFAULT NULL,
    ranking jsonb DEFAULT NULL
) RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION 'items must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'pass the session''s or cart''s item ids, for example pyrec.recommend_for_items(''movies'', ARRAY[''50'', ''181''], 10)';
    END IF;
    IF cardinality(items) > 10000 THEN
        RAISE EXCEPTION 'items holds % ids, at most 10000 are folded in at once', cardinality(items)
            USING ERRCODE = 'program_limit_exceeded', HINT = 'pass the latest items of the session';
    END IF;
    PERFORM pyrec._check_k(k, 'k', p_rows => 'items');
    IF experiment IS NOT NULL THEN  -- the session's variant serves, and the impression is logged
        IF session_id IS NULL THEN
            RAISE EXCEPTION 'an experiment needs session_id' USING ERRCODE = 'null_value_not_allowed',
                HINT = 'variants are assigned by the id of the session (or cart, or visitor): pass session_id';
        END IF;
        RETURN QUERY SELECT * FROM pyrec._experiment_serve(experiment, model, session_id, k, filter,
                                                            params, true, promotion, exploration,
                                                            exclude_items, items, ranking);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM pyrec._serve(pyrec._active_version(model), NULL, k, filter, params,
                                            true, promotion, exploration, true, exclude_items, items,
                                            ranking);
END
$fn$;
COMMENT ON FUNCTION pyrec.recommend_for_items(text, text[], integer, text, jsonb, text[], jsonb, jsonb, text, text, jsonb) IS
'Top-k items for a list of items (an anonymous session, a cart): the list folded in as a history and left out of the answer; source says what answered: fold-in, popular (no listed item is known to the version), promotion or exploration';

-- The unqualified recommend(user_id, k, filter) of the SQL API, for the default model.
CREATE FUNCTION public.recommend(user_id text, k integer DEFAULT 10, filter text DEFAULT NULL,
                                 params jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(pyrec.default_model(), user_id, k, filter, params) $fn$;
COMMENT ON FUNCTION public.recommend(text, integer, text, jsonb) IS
'Top-k items for a user from the default model (setting pyrec.default_model, else the only model)';

CREATE FUNCTION public.recommend(user_id bigint, k integer DEFAULT 10, filter text DEFAULT NULL,
                                 params jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score real, rank integer, source text)
LANGUAGE sql STABLE
AS $fn$ SELECT * FROM pyrec.recommend(pyrec.default_model(), user_id::text, k, filter, params) $fn$;
COMMENT ON FUNCTION public.recommend(bigint, integer, text, jsonb) IS
'Top-k items for a user with an integer id from the default model';
