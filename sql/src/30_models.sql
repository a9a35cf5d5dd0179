-- Creating and dropping models.

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

CREATE FUNCTION pyrec.drop_model(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    mid integer;
    t record;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT m.model_id INTO mid FROM pyrec.models m WHERE m.name = name FOR UPDATE;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'model "%" does not exist, skipping', pyrec._shown(name);
            RETURN;
        END IF;
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    FOR t IN SELECT v.items_table, v.users_table FROM pyrec._versions v WHERE v.model_id = mid LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I, pyrec.%I', t.items_table, t.users_table);
    END LOOP;
    -- batch outputs it wrote (still marked as this model's) and staging tables of its batch jobs
    FOR t IN SELECT r.run_id, r.target FROM pyrec._runs r WHERE r.model_id = mid AND r.kind = 'batch' LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I', '_batch_' || t.run_id);
        IF starts_with(coalesce(obj_description(to_regclass(t.target), 'pg_class'), ''),
                       format('pyrec batch output: model %s version ', name)) THEN
            PERFORM pyrec._drop_bi_views(to_regclass(t.target));  -- pyrec.create_bi_view's
            EXECUTE format('DROP TABLE %s', to_regclass(t.target));
        END IF;
    END LOOP;
    IF to_regprocedure('cron.unschedule(name)') IS NOT NULL THEN
        PERFORM pyrec.unschedule_training(name, if_exists => true);
    END IF;
    DELETE FROM pyrec.models m WHERE m.model_id = mid;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_model(text, boolean) IS 'Drops a model with all its versions, vector tables, runs, batch output tables and the BI views pyrec made over them';

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
