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
-- the version's items (alias i, as compiled item filters expect), 'UserID' its users (alias u)
CREATE FUNCTION pyrec._top_k_sql(p_table text, p_target text, p_measure text, p_pred text,
                                 p_ann boolean DEFAULT false, p_source text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    v_key text := CASE p_target WHEN 'ItemID' THEN 'item_id' ELSE 'user_id' END;
    v_alias text := CASE p_target WHEN 'ItemID' THEN 'i' ELSE 'u' END;
    v_by_vector boolean := p_measure IN ('dot', 'cosine');
BEGIN
    -- the filter is part of the candidate scan, so k rows come back whenever k allowed ones
    -- exist (not "top k, then drop"); "IS TRUE" keeps its subqueries filters of a vector
    -- scan: pulled up into a join, they would stop the HNSW index scan. An HNSW index orders
    -- by distance alone (ties at the cut are arbitrary); the rank still breaks ties by id.
    RETURN format(
        'SELECT t.%1$s, %2$s, (row_number() OVER (ORDER BY t.d%3$s, t.%1$s))::integer%4$s
           FROM (SELECT %5$s.%1$s, %6$s AS d FROM pyrec.%7$I %5$s
                  WHERE %5$s.%1$s <> ALL ($2) AND %8$s ORDER BY %9$s LIMIT $3) t
          ORDER BY 3',
        v_key,
        CASE p_measure WHEN 'dot' THEN '(-t.d)::real' WHEN 'cosine' THEN '(1 - t.d)::real' ELSE 't.d' END,
        CASE WHEN v_by_vector THEN '' ELSE ' DESC' END,
        CASE WHEN p_source IS NULL THEN '' ELSE ', ' || quote_literal(p_source) END,
        v_alias,
        CASE p_measure WHEN 'dot' THEN v_alias || '.embedding <#> $1'
                       WHEN 'cosine' THEN v_alias || '.embedding <=> $1'
                       ELSE v_alias || '.popularity' END,
        p_table,
        CASE WHEN v_by_vector THEN format('((%s) IS TRUE)', p_pred) ELSE format('(%s)', p_pred) END,
        CASE WHEN v_by_vector AND p_ann THEN 'd'
             WHEN v_by_vector THEN format('d, %s.%s', v_alias, v_key)
             ELSE format('d DESC, %s.%s', v_alias, v_key) END);
END
$fn$;
COMMENT ON FUNCTION pyrec._top_k_sql(text, text, text, text, boolean, text) IS
'The top-k scan over a version''s item or user vectors that the serving functions run, with a filter in the scan; binds $1 to $6 in the serving order';
