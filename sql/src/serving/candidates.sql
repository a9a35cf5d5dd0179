-- The candidate query of the serving functions, and the parameters every serving query binds.
--
-- Compiled filters read $4, $5 and $6 (pyrec_pg/filters/compiler.py), so each query that
-- runs a filter binds the same parameters in this order, NULL (or empty) where unused:
--   $1 vector   the query vector: the user's, the anchor item's, a segment's mean item vector
--   $2 text[]   ids left out (items the user has seen, the anchor item, users who interacted);
--               rank_items: the ids to rank
--   $3 integer  how many rows (k, n)
--   $4 text     the current user's id (CurrentUser filters and Interactions)
--   $5 jsonb    the filter's values (its literals and the caller's params)
--   $6 text     the current item's id (CurrentItem filters)
--   $7, $8      the query's own: a promotion's filter values (its compiled predicate rebound
--               from $5 to $7, pyrec._promotion) and slot count; frequently_bought_together's
--               time window
-- pyrec._top_k_sql writes the top-k scan most of them run over a version's vectors.

-- measure: 'dot' (inner product, higher scores first), 'cosine' (1 - cosine distance) or
-- 'popularity' (the trained popularity, for users without a vector); target: 'ItemID' scans
-- the version's items (alias i, as compiled item filters expect), 'UserID' its users (alias u).
-- p_first and p_then split p_pred for full scans (not HNSW ones): p_first is tested in the
-- scan, p_then (a per-row test, the live catalog's) only on the best k + 100 candidates, and
-- when fewer than k of them pass it the scan runs again with p_pred whole: a test that reads a
-- whole table then runs only when its hash would pay off
CREATE FUNCTION pyrec._top_k_sql(p_table text, p_target text, p_measure text, p_pred text,
                                 p_ann boolean DEFAULT false, p_source text DEFAULT NULL,
                                 p_first text DEFAULT NULL, p_then text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    v_key text := CASE p_target WHEN 'ItemID' THEN 'item_id' ELSE 'user_id' END;
    v_alias text := CASE p_target WHEN 'ItemID' THEN 'i' ELSE 'u' END;
    v_by_vector boolean := p_measure IN ('dot', 'cosine');
    v_dist text := CASE p_measure WHEN 'dot' THEN v_alias || '.embedding <#> $1'
                                  WHEN 'cosine' THEN v_alias || '.embedding <=> $1'
                                  ELSE v_alias || '.popularity' END;
    v_order text := CASE WHEN v_by_vector AND p_ann THEN 'd'
                         WHEN v_by_vector THEN format('d, %s.%s', v_alias, v_key)
                         ELSE format('d DESC, %s.%s', v_alias, v_key) END;
    -- a test in a vector scan stays a filter of it ("IS TRUE", below)
    v_test text := CASE WHEN v_by_vector THEN '((%s) IS TRUE)' ELSE '(%s)' END;
    v_scan text;
    v_full text;  -- the one scan with the whole test
    v_candidates text;
BEGIN
    -- the filter is part of the candidate scan, so k rows come back whenever k allowed ones
    -- exist (not "top k, then drop"); "IS TRUE" keeps its subqueries filters of a vector
    -- scan: pulled up into a join, they would stop the HNSW index scan. An HNSW index orders
    -- by distance alone (ties at the cut are arbitrary); the rank still breaks ties by id.
    v_scan := 'SELECT %1$s.%2$s, %3$s AS d FROM pyrec.%4$I %1$s WHERE %1$s.%2$s <> ALL ($2) AND %5$s'
              ' ORDER BY %6$s LIMIT %7$s';
    v_full := format(v_scan, v_alias, v_key, v_dist, p_table, format(v_test, p_pred), v_order, '$3');
    IF p_first IS NULL OR p_then IS NULL OR p_then = 'true' OR p_ann THEN
        v_candidates := v_full;
    ELSE
        v_candidates := format(
            'WITH c AS MATERIALIZED (%1$s),
                  ok AS MATERIALIZED (SELECT %2$s.%3$s, %2$s.d FROM c %2$s WHERE (%4$s) IS TRUE ORDER BY %5$s LIMIT $3),
                  done AS (SELECT (SELECT count(*) FROM ok) >= $3 OR (SELECT count(*) FROM c) < $3 + 100 AS yes)
             SELECT * FROM ok WHERE (SELECT yes FROM done)
             UNION ALL
             SELECT * FROM (%6$s) f WHERE NOT (SELECT yes FROM done)',
            format(v_scan, v_alias, v_key, v_dist, p_table, format(v_test, p_first), v_order, '$3 + 100'),
            v_alias, v_key, p_then, v_order, v_full);
    END IF;
    RETURN format(
        'SELECT t.%1$s, %2$s, (row_number() OVER (ORDER BY t.d%3$s, t.%1$s))::integer%4$s
           FROM (%5$s) t
          ORDER BY 3',
        v_key,
        CASE p_measure WHEN 'dot' THEN '(-t.d)::real' WHEN 'cosine' THEN '(1 - t.d)::real' ELSE 't.d' END,
        CASE WHEN v_by_vector THEN '' ELSE ' DESC' END,
        CASE WHEN p_source IS NULL THEN '' ELSE ', ' || quote_literal(p_source) END,
        v_candidates);
END
$fn$;
COMMENT ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text, text, text) IS
'The top-k scan over a version''s item or user vectors that the serving functions run, with a filter in the scan; binds $1 to $6 in the serving order';

-- An HNSW scan with a selective filter misses most of the right answer: the iterative scan
-- walks outwards from the query and tests each candidate, and on an inner-product graph the
-- items a user would rank 50th to 200th are often never reached (recall@10 0.33 with a filter
-- keeping 2% of 100k items, 0.46 with 10%, 0.96 with 30%; bench/bench_scale.py). When the
-- planner expects few items to pass the filter, the serving functions score those items
-- exactly instead: an index lookup per passing item, no graph. The default, 20000, bounds
-- that scan at about 35 to 70 ms on 2 busy cores (3 us per item); above it, recall@10 of the
-- index was 0.82 for a filter keeping 20% of 100k items and 0.97 for 30%.
-- Its texts and default are the setting's in pyrec_pg.db.settings (test_settings checks).
CREATE FUNCTION pyrec._exact_filter_items() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_raw text := nullif(current_setting('pyrec.exact_filter_items', true), '');
BEGIN
    IF v_raw IS NULL THEN
        RETURN 20000;
    ELSIF v_raw !~ '^\s*[0-9]{1,18}\s*$' THEN
        RAISE EXCEPTION 'invalid value for setting pyrec.exact_filter_items: "%"', pyrec._shown(v_raw)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'pyrec.exact_filter_items: on versions with an HNSW index, filters the planner expects to keep at most this many items are scored exactly instead of through the index (0: always the index)',
                  HINT = 'a whole number of at least 0, e.g. SET pyrec.exact_filter_items = 20000';
    END IF;
    RETURN v_raw::bigint;
END
$fn$;
COMMENT ON FUNCTION pyrec._exact_filter_items() IS
'The setting pyrec.exact_filter_items, checked: filters expected to keep at most this many items are scored exactly';

-- VOLATILE: EXPLAIN is a utility statement, which PostgreSQL refuses in a stable function's
-- queries; it plans the query without running it (the binds are the serving order's)
CREATE FUNCTION pyrec._filter_rows(p_table text, p_pred text, p_user text, p_vals jsonb)
RETURNS double precision
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_plan json;
BEGIN
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT 1 FROM pyrec.%I i WHERE (%s)', p_table, p_pred)
       INTO v_plan USING NULL::vector, NULL::text[], NULL::integer, p_user, p_vals, NULL::text;
    RETURN (v_plan->0->'Plan'->>'Plan Rows')::double precision;
END
$fn$;
COMMENT ON FUNCTION pyrec._filter_rows(text, text, text, jsonb) IS
'How many of a version''s items the planner expects a compiled filter to keep (EXPLAIN, nothing run)';

-- p_pred joins: its IN subqueries become semi-joins that read the passing ids first (through
-- the items relation's own indexes) and fetch their vectors by primary key; the subquery with
-- OFFSET 0 keeps the planner from ordering through the HNSW index instead
CREATE FUNCTION pyrec._exact_top_k_sql(p_table text, p_pred text, p_source text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$ BEGIN RETURN format(
    'SELECT t.item_id, (-t.d)::real, (row_number() OVER (ORDER BY t.d, t.item_id))::integer, %1$L
       FROM (SELECT c.item_id, c.embedding <#> $1 AS d
               FROM (SELECT i.item_id, i.embedding FROM pyrec.%2$I i
                      WHERE i.item_id <> ALL ($2) AND %3$s OFFSET 0) c
              ORDER BY d, c.item_id LIMIT $3) t
      ORDER BY 3',
    p_source, p_table, p_pred); END $fn$;
COMMENT ON FUNCTION pyrec._exact_top_k_sql(text, text, text) IS
'The exact top-k by inner product over the items a filter keeps, for filters that keep few (pyrec.exact_filter_items)';

-- recommend()'s candidate query by what it has: a vector (scored exactly over a selective
-- filter's items, or by the top-k scan) or none (the most popular items); p_first and p_then
-- split p_pred as _top_k_sql takes them
-- plpgsql, not sql: a SQL function that plpgsql calls is planned again in every transaction
-- (about 15 to 25 us of each request); a plpgsql one keeps its plan for the session
CREATE FUNCTION pyrec._candidates_sql(v pyrec._versions, p_vector boolean, p_exact boolean, p_how text,
                                      p_pred text, p_pred_ann text, p_first text, p_then text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$ BEGIN RETURN CASE
    WHEN p_vector AND p_exact
        THEN pyrec._exact_top_k_sql(v.items_table, format('(%s) AND (%s) IS TRUE', p_first, p_then), p_how)
    WHEN p_vector
        THEN pyrec._top_k_sql(v.items_table, 'ItemID', 'dot', CASE WHEN v.ann THEN p_pred_ann ELSE p_pred END,
                              v.ann, p_how, p_first, p_then)
    ELSE pyrec._top_k_sql(v.items_table, 'ItemID', 'popularity', p_pred, p_source => 'popular',
                          p_first => p_first, p_then => p_then)
    END; END $fn$;
COMMENT ON FUNCTION pyrec._candidates_sql(pyrec._versions, boolean, boolean, text, text, text, text, text) IS
'recommend()''s candidate query: exact over a selective filter''s items, the top-k scan of the vectors, or the most popular items';
