-- recommend()'s ranking argument: popularity and freshness mixed into the score, boosts by
-- filter expressions, and a cap per value of an item field. The model's best candidates (and
-- each boost's best among the items it raises) are re-ranked, so an item from outside the
-- plain top k can enter, and no item a filter excludes ever does.

-- A re-ranked candidate with the values of its diversity field, as pyrec._ranked_sql returns
-- them when a cap applies
CREATE TYPE pyrec._ranked AS (item_id text, score real, rank integer, source text, grps text[]);
COMMENT ON TYPE pyrec._ranked IS 'A candidate of recommend()''s ranking: its score, rank and diversity values';

-- The scores mixed, each over the candidates:
--   relevance   the model's score scaled to 0..1 between the worst and best candidate
--   popularity  ln(1 + trained interactions), scaled to 0..1 by the most popular candidate
--   freshness   0.5 ^ (age in days / half_life_days), from the items relation's creation time
-- score = (1 - popularity - freshness) * relevance + popularity * p + freshness * f + the
-- weights of the boosts whose filters an item passes.
CREATE FUNCTION pyrec._ranking(v pyrec._versions, ranking jsonb, k integer, allow_user boolean,
                               OUT pool integer, OUT mix text, OUT boost text,
                               OUT boost_scan text[], OUT boost_ann text[], OUT boost_vals jsonb,
                               OUT lookup text, OUT cap integer, OUT uses_user boolean)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    extra text[];
    w_pop float8 := 0;
    w_fresh float8 := 0;
    half_life float8 := 30;
    b jsonb;
    f record;
    n integer := 0;
    weight float8;
    rebound text;
    div jsonb;
    field text;
    col text;
    key_type text;
    is_array boolean;
    lookups text[] := '{}';
BEGIN
    IF jsonb_typeof(ranking) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'ranking must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example {"popularity": 0.2, "boosts": [{"filter": "INCLUDE ItemID WHERE Items.in_stock = true", "weight": 0.3}], "diversity": {"field": "Items.genre", "max_per_value": 3}}';
    END IF;
    SELECT array_agg(key ORDER BY key) INTO extra FROM jsonb_object_keys(ranking) key
     WHERE key NOT IN ('popularity', 'freshness', 'half_life_days', 'boosts', 'diversity', 'candidates');
    IF extra IS NOT NULL THEN
        RAISE EXCEPTION 'unknown ranking field "%"', pyrec._shown(extra[1]) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'ranking fields are popularity, freshness, half_life_days, boosts, diversity and candidates';
    END IF;
    w_pop := pyrec._ranking_number(ranking, 'popularity', 0, 1, 0,
                                   'the weight of popularity in the score, from 0 to 1');
    w_fresh := pyrec._ranking_number(ranking, 'freshness', 0, 1, 0,
                                     'the weight of freshness in the score, from 0 to 1');
    IF w_pop + w_fresh > 1 THEN
        RAISE EXCEPTION 'ranking popularity and freshness add up to %, more than 1', round((w_pop + w_fresh)::numeric, 6)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the model''s relevance keeps 1 - popularity - freshness of the score';
    END IF;
    half_life := pyrec._ranking_number(ranking, 'half_life_days', 1e-6, 1e6, 30,
                                       'freshness halves every half_life_days days (default 30)');
    pool := pyrec._ranking_number(ranking, 'candidates', k, 10000, greatest(5 * k, 50),
                                  format('how many of the model''s best items are re-ranked: from k (%s) to 10000, default max(5 k, 50)', k))::integer;
    IF ranking->>'candidates' IS NOT NULL AND (ranking->>'candidates')::numeric <> pool THEN
        RAISE EXCEPTION 'ranking candidates must be a whole number, got %', ranking->>'candidates'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 200';
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = v.model_id;
    mix := format('%s * r.rel + %s * r.pop + %s * r.fresh + r.boost', 1 - w_pop - w_fresh, w_pop, w_fresh);

    -- boosts: filters of the filter language, each adding its weight to the items it keeps
    boost := '0';
    boost_scan := '{}';
    boost_ann := '{}';
    boost_vals := '[]';
    uses_user := false;
    IF ranking ? 'boosts' THEN
        IF jsonb_typeof(ranking->'boosts') IS DISTINCT FROM 'array' OR jsonb_array_length(ranking->'boosts') > 10 THEN
            RAISE EXCEPTION 'ranking boosts must be an array of at most 10 boosts'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'for example [{"filter": "INCLUDE ItemID WHERE Items.in_stock = true", "weight": 0.3}]';
        END IF;
        FOR b IN SELECT x FROM jsonb_array_elements(ranking->'boosts') x LOOP
            n := n + 1;
            IF jsonb_typeof(b) IS DISTINCT FROM 'object' OR b->>'filter' IS NULL THEN
                RAISE EXCEPTION 'ranking boost % must be a JSON object with a filter', n
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'for example {"filter": "INCLUDE ItemID WHERE Items.margin > $MIN", "params": {"MIN": 0.3}, "weight": 0.2}';
            END IF;
            SELECT array_agg(key ORDER BY key) INTO extra FROM jsonb_object_keys(b) key
             WHERE key NOT IN ('filter', 'params', 'weight');
            IF extra IS NOT NULL THEN
                RAISE EXCEPTION 'unknown field "%" in ranking boost %', pyrec._shown(extra[1]), n
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'boost fields are filter, params and weight';
            END IF;
            IF jsonb_typeof(b->'weight') IS DISTINCT FROM 'number'
               OR (b->>'weight')::numeric NOT BETWEEN -1 AND 1 THEN
                RAISE EXCEPTION 'ranking boost % weight must be a number between -1 and 1, got %', n,
                                coalesce(pyrec._shown(b->>'weight'), 'none')
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'the weight is added to the score (0 to 1 before boosts) of the items the filter keeps; negative weights bury them';
            END IF;
            weight := (b->>'weight')::float8;
            f := pyrec._prepare_filter(v, b->>'filter', b->'params', 'ItemID', 'ranking boosts', allow_user, false);
            uses_user := uses_user OR f.uses_user;
            -- each boost's values are bound as element n - 1 of $7 (the compiler says $5)
            rebound := format('($7->%s)', n - 1);
            -- the filter alone: the candidates passed the live catalog's test already
            boost := boost || format(' + CASE WHEN (%s) IS TRUE THEN %s ELSE 0 END',
                                     regexp_replace(f.filter_ann, '\$5(?![0-9])', rebound, 'g'), weight);
            IF weight > 0 THEN  -- its best items join the candidates
                boost_scan := boost_scan || regexp_replace(f.filter_pred, '\$5(?![0-9])', rebound, 'g');
                boost_ann := boost_ann || regexp_replace(f.filter_ann, '\$5(?![0-9])', rebound, 'g');
            END IF;
            boost_vals := boost_vals || jsonb_build_array(f.vals);
        END LOOP;
    END IF;

    -- freshness and diversity read the items relation, one lookup per candidate
    IF w_fresh > 0 THEN
        IF m.columns->>'items_created' IS NULL THEN
            RAISE EXCEPTION 'ranking freshness needs the items'' creation time'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'give the model an items relation with a created_at column, or map one: options => ''{"columns": {"items_created": "<column>"}}''';
        END IF;
        lookups := lookups || format('r.%I::timestamptz AS created', m.columns->>'items_created');
    ELSE
        lookups := lookups || 'NULL::timestamptz AS created'::text;
    END IF;
    IF ranking ? 'diversity' THEN
        div := ranking->'diversity';
        IF jsonb_typeof(div) IS DISTINCT FROM 'object' OR div->>'field' IS NULL
           OR jsonb_typeof(div->'max_per_value') IS DISTINCT FROM 'number'
           OR (SELECT count(*) FROM jsonb_object_keys(div)) <> 2 THEN
            RAISE EXCEPTION 'ranking diversity must be a JSON object with field and max_per_value'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'for example {"field": "Items.genre", "max_per_value": 3}: at most 3 items of each genre';
        END IF;
        IF (div->>'max_per_value')::numeric < 1 OR (div->>'max_per_value')::numeric <> floor((div->>'max_per_value')::numeric)
           OR (div->>'max_per_value')::numeric > 10000 THEN
            RAISE EXCEPTION 'ranking diversity max_per_value must be a whole number from 1 to 10000, got %', div->>'max_per_value'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'for example 3: at most 3 items of each value';
        END IF;
        cap := (div->>'max_per_value')::integer;
        IF m.items IS NULL THEN
            RAISE EXCEPTION 'ranking diversity needs the model''s items relation' USING ERRCODE = 'undefined_table',
                HINT = 'create the model with items => ''<table or view>''';
        END IF;
        field := regexp_replace(div->>'field', '^\s*items\.', '', 'i');
        SELECT coalesce(max(a.attname) FILTER (WHERE a.attname = field),
                        CASE WHEN count(*) FILTER (WHERE lower(a.attname) = lower(field)) = 1
                             THEN max(a.attname) FILTER (WHERE lower(a.attname) = lower(field)) END)
          INTO col
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attnum > 0 AND NOT a.attisdropped;
        IF col IS NULL THEN
            RAISE EXCEPTION 'unknown field "Items.%" in ranking diversity: % has no such column', pyrec._shown(field), m.items
                USING ERRCODE = 'undefined_column',
                      HINT = format('columns of %s: %s', m.items,
                                    (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                                      WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attnum > 0 AND NOT a.attisdropped));
        END IF;
        -- an array field (genres) caps each of its values: an item counts once for each
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) LIKE '%[]' INTO is_array
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attname = col;
        lookups := lookups || CASE WHEN is_array THEN format('r.%I::text[] AS grps', col)
                                   ELSE format('array_remove(ARRAY[r.%I::text], NULL) AS grps', col) END;
    ELSE
        lookups := lookups || 'NULL::text[] AS grps'::text;
    END IF;
    IF w_fresh > 0 OR cap IS NOT NULL THEN
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO key_type
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(m.items) AND a.attname = m.columns->>'items_id' AND NOT a.attisdropped;
        -- by key where the id column has the candidates' own type (an index lookup), else by text
        lookup := format('SELECT %s FROM %s r WHERE %s LIMIT 1', array_to_string(lookups, ', '), m.items,
                         CASE WHEN key_type = m.columns->>'item_type'
                              THEN format('r.%I = i.item_id::%s', m.columns->>'items_id', key_type)
                              ELSE format('r.%I::text = i.item_id', m.columns->>'items_id') END);
    ELSE
        lookup := format('SELECT %s', array_to_string(lookups, ', '));
    END IF;
    mix := replace(mix, 'r.fresh', format('coalesce(power(0.5, greatest(extract(epoch FROM now() - r.created), 0) / %s), 0)',
                                          half_life * 86400));
END
$fn$;
COMMENT ON FUNCTION pyrec._ranking(pyrec._versions, jsonb, integer, boolean) IS
'Checks and compiles recommend()''s ranking argument: the mix of relevance, popularity and freshness, the boosts, the diversity cap';

CREATE FUNCTION pyrec._ranking_number(ranking jsonb, field text, low float8, high float8,
                                      fallback float8, meaning text) RETURNS float8
LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    IF NOT ranking ? field THEN
        RETURN fallback;
    END IF;
    IF jsonb_typeof(ranking->field) IS DISTINCT FROM 'number'
       OR (ranking->>field)::float8 NOT BETWEEN low AND high THEN
        RAISE EXCEPTION 'ranking % must be a number from % to %, got %', field, low, high,
                        coalesce(pyrec._shown(ranking->>field), 'none')
            USING ERRCODE = 'invalid_parameter_value', HINT = meaning;
    END IF;
    RETURN (ranking->>field)::float8;
END
$fn$;
COMMENT ON FUNCTION pyrec._ranking_number(jsonb, text, float8, float8, float8, text) IS
'A number of recommend()''s ranking argument, checked against its range';

-- p_pools: candidate queries in the serving order ($3 their size), each returning (item_id,
-- score, rank, source); the answer re-ranks their union by the mix. Without a diversity cap it
-- keeps the best $8 rows; with one, it returns every candidate best first with the values of
-- its diversity field (grps), and the caller keeps those within the cap
CREATE FUNCTION pyrec._ranked_sql(p_table text, p_pools text[], p_boost text, p_lookup text,
                                  p_mix text, p_capped boolean) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT format(
    'WITH c AS MATERIALIZED (
          SELECT b.item_id, max(b.score) AS score, min(b.source) AS source
            FROM (%1$s) b GROUP BY b.item_id),
          s AS (SELECT i.item_id, c.score::float8 AS score, c.source, greatest(i.popularity, 0)::float8 AS popularity,
                       x.created, x.grps, (%2$s)::float8 AS boost
                  FROM c JOIN pyrec.%3$I i ON i.item_id = c.item_id LEFT JOIN LATERAL (%4$s) x ON true),
          r AS (SELECT s.*,
                       coalesce((s.score - min(s.score) OVER ()) / nullif(max(s.score) OVER () - min(s.score) OVER (), 0), 1) AS rel,
                       coalesce(ln(1 + s.popularity) / nullif(ln(1 + max(s.popularity) OVER ()), 0), 0) AS pop
                  FROM s),
          m AS (SELECT r.item_id, r.source, r.grps, %5$s AS final FROM r)
     SELECT m.item_id, m.final::real AS score, (row_number() OVER (ORDER BY m.final DESC, m.item_id))::integer AS rank,
            m.source%6$s
       FROM m ORDER BY 3%7$s',
    (SELECT string_agg(format('SELECT p.* FROM (%s) p(item_id, score, rank, source)', q), ' UNION ALL ')
       FROM unnest(p_pools) q),
    p_boost, p_table, p_lookup, p_mix,
    CASE WHEN p_capped THEN ', coalesce(m.grps, ''{}'') AS grps' ELSE '' END,
    CASE WHEN p_capped THEN '' ELSE ' LIMIT $8' END) $fn$;
COMMENT ON FUNCTION pyrec._ranked_sql(text, text[], text, text, text, boolean) IS
'The query re-ranking recommend()''s candidates by its ranking argument (pyrec._ranking)';
