-- Creating models and choosing the default one (dropping is operations/drop_model.sql).

CREATE FUNCTION pyrec.create_model(
    name text,
    interactions text,
    items text DEFAULT NULL,
    users text DEFAULT NULL,
    recipe text DEFAULT 'als',
    options jsonb DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('create_model', jsonb_build_object(
        'name', name, 'interactions', interactions, 'items', items, 'users', users,
        'recipe', recipe, 'options', options)));
END
$fn$;
COMMENT ON FUNCTION pyrec.create_model(text, text, text, text, text, jsonb) IS
'Defines a model over the user''s own tables or views; returns the resolved column mapping';

CREATE FUNCTION pyrec.default_model() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    chosen text := nullif(current_setting('pyrec.default_model', true), '');
    n integer;
BEGIN
    IF chosen IS NOT NULL THEN
        RETURN chosen;
    END IF;
    SELECT count(*), min(m.name) INTO n, chosen FROM pyrec.models m;
    IF n = 1 THEN
        RETURN chosen;
    END IF;
    RAISE EXCEPTION '%', CASE WHEN n = 0 THEN 'there is no model to recommend from'
                              ELSE format('there are %s models and no default one', n) END
        USING ERRCODE = 'undefined_object',
              HINT = CASE WHEN n = 0 THEN 'create one with pyrec.create_model(...) and train it'
                          ELSE 'choose one with SET pyrec.default_model = ''name'', or call pyrec.recommend(model, user_id, k)' END;
END
$fn$;
COMMENT ON FUNCTION pyrec.default_model() IS 'The model unqualified recommend() uses: setting pyrec.default_model, else the only model';
