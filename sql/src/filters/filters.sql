-- Filters: compiled by the Python filter compiler, stored (named) or cached per session (ad hoc).

-- Helpers the compiled predicates call; plain SQL so the planner inlines them.
CREATE FUNCTION pyrec._values(vals jsonb, key text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT CASE jsonb_typeof(vals->key)
             WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(vals->key))
             WHEN 'null' THEN NULL
             ELSE ARRAY[vals->>key] END
$fn$;
COMMENT ON FUNCTION pyrec._values(jsonb, text) IS 'A filter parameter as an array: a JSON array, or one value';

CREATE FUNCTION pyrec._text_in(field text, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    -- a text field may hold several |-separated values (Personalize's multi-valued fields)
    SELECT field = ANY (vals) OR (strpos(field, '|') > 0 AND string_to_array(field, '|') && vals)
$fn$;
COMMENT ON FUNCTION pyrec._text_in(text, text[]) IS 'Whether a (possibly |-separated multi-valued) text field matches any value';

CREATE FUNCTION pyrec._event_match(event_type text, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    -- as in Personalize: "*" matches every event type, and matching ignores case
    SELECT '*' = ANY (vals) OR lower(event_type) = ANY (SELECT lower(v) FROM unnest(vals) v)
$fn$;
COMMENT ON FUNCTION pyrec._event_match(text, text[]) IS 'Whether an event type matches a filter''s list ("*" matches all, case ignored)';

CREATE FUNCTION pyrec._resolve_filter(model_id integer, filter text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
BEGIN
    -- a named filter of the model wins; anything else is an expression
    SELECT f.compiled INTO v_compiled FROM pyrec._filters f
     WHERE f.model_id = _resolve_filter.model_id AND f.name = filter;
    IF v_compiled IS NULL THEN
        v_compiled := pyrec._result(pyrec._filter(model_id, filter));
    END IF;
    RETURN v_compiled;
END
$fn$;
COMMENT ON FUNCTION pyrec._resolve_filter(integer, text) IS 'The compiled form of a named filter or a filter expression';

CREATE FUNCTION pyrec._filter_values(compiled jsonb, params jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    missing text[];
BEGIN
    IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object, got %', jsonb_typeof(params)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example params => ''{"GENRES": ["Comedy", "Drama"]}''';
    END IF;
    -- an EXCLUDE expression whose parameters are not all given is dropped (the compiled SQL
    -- tests for them), so only the others must have values
    missing := ARRAY(SELECT p FROM jsonb_array_elements_text(compiled->'params') p
                      WHERE (params IS NULL OR NOT params ? p)
                        AND NOT coalesce(compiled->'optional_params', '[]') ? p);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'filter parameter $% has no value', pyrec._shown(missing[1])
            USING ERRCODE = 'undefined_parameter',
                  HINT = format('pass it with params => ''{"%s": ...}''', pyrec._shown(missing[1]));
    END IF;
    missing := ARRAY(SELECT p FROM jsonb_array_elements_text(compiled->'scalar_params') p
                      WHERE jsonb_typeof(params->p) IN ('array', 'object'));
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'a filter value does not fit its field: parameter $% must be a single value, not a JSON %',
                        pyrec._shown(missing[1]), jsonb_typeof(params->missing[1])
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('pass one value in params, or use IN ($%s) to match any of several values', pyrec._shown(missing[1]));
    END IF;
    -- the filter's own literals come last so a caller's params can never replace them
    RETURN coalesce(params, '{}') || (compiled->'constants');
END
$fn$;
COMMENT ON FUNCTION pyrec._filter_values(jsonb, jsonb) IS 'The values a compiled filter reads: the caller''s params and the filter''s literals';

CREATE FUNCTION pyrec.create_filter(model text, name text, expression text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('create_filter', jsonb_build_object(
        'model', model, 'name', name, 'expression', expression)));
END
$fn$;
COMMENT ON FUNCTION pyrec.create_filter(text, text, text) IS
'Validates and stores a named filter (Personalize syntax or a SQL predicate over item columns)';

CREATE FUNCTION pyrec.drop_filter(model text, name text, if_exists boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF model IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'model and filter name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT * FROM pyrec.filters lists them';
    END IF;
    DELETE FROM pyrec._filters f USING pyrec.models m
     WHERE f.model_id = m.model_id AND m.name = drop_filter.model AND f.name = drop_filter.name;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'filter "%" of model "%" does not exist, skipping', pyrec._shown(name), pyrec._shown(model);
            RETURN;
        END IF;
        RAISE EXCEPTION 'filter "%" of model "%" does not exist', pyrec._shown(name), pyrec._shown(model)
            USING ERRCODE = 'undefined_object', HINT = 'SELECT * FROM pyrec.filters lists them';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_filter(text, text, boolean) IS 'Drops a named filter';
