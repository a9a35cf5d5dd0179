-- Batch recommendations: a procedure, so its progress is committed where others see it.

CREATE PROCEDURE pyrec.batch_recommend(
    model text,
    users text DEFAULT NULL,
    k integer DEFAULT 25,
    filter text DEFAULT NULL,
    into_table text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true,
    ranking jsonb DEFAULT NULL
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
    r jsonb;
BEGIN
    CALL pyrec._call_proc('batch_recommend', jsonb_build_object(
        'model', model, 'users', users, 'k', k, 'filter', filter, 'into_table', into_table,
        'params', params, 'exclude_seen', exclude_seen, 'ranking', ranking), outcome);
    r := pyrec._result(outcome);
    RAISE NOTICE '% rows for % users in % (model "%" version %) in % s', r->>'rows', r->>'users',
        r->>'table', r->>'model', r->>'version', round((r->>'seconds')::numeric, 1);
END
$fn$;
COMMENT ON PROCEDURE pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean, jsonb) IS
'Top-k items for many users (all, a query or a table) into a table of (user_id, item_id, score, rank, source), replaced atomically; with ranking, each user''s list is recommend()''s with that ranking';

CREATE PROCEDURE pyrec.batch_users_for_items(
    model text,
    items text DEFAULT NULL,
    n integer DEFAULT 100,
    filter text DEFAULT NULL,
    into_table text DEFAULT NULL,
    params jsonb DEFAULT NULL,
    exclude_seen boolean DEFAULT true
)
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
    r jsonb;
BEGIN
    CALL pyrec._call_proc('batch_users_for_items', jsonb_build_object(
        'model', model, 'items', items, 'n', n, 'filter', filter, 'into_table', into_table,
        'params', params, 'exclude_seen', exclude_seen), outcome);
    r := pyrec._result(outcome);
    RAISE NOTICE '% rows for % items in % (model "%" version %) in % s%', r->>'rows', r->>'items',
        r->>'table', r->>'model', r->>'version', round((r->>'seconds')::numeric, 1),
        CASE WHEN (r->>'items_without_vectors')::int > 0
             THEN format('; %s items are not in the version', r->>'items_without_vectors')
             ELSE '' END;
END
$fn$;
COMMENT ON PROCEDURE pyrec.batch_users_for_items(text, text, integer, text, text, jsonb, boolean) IS
'Segments for many items (all, a query or a table): the top-n users of each into a table of (item_id, user_id, score, rank), replaced atomically';
