-- Forgetting users (data deletion requests).

CREATE FUNCTION pyrec.forget_user(model text, user_id text)
RETURNS TABLE (model_name text, what text, rows_affected bigint, action text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    t record;
    n bigint;
    found_any boolean := false;
BEGIN
    IF user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'for example pyrec.forget_user(NULL, ''42'') forgets user 42 in every model';
    END IF;
    IF model IS NOT NULL THEN
        PERFORM pyrec._active_version(model);  -- a clear error for an unknown model
    END IF;
    FOR m IN SELECT * FROM pyrec.models x WHERE forget_user.model IS NULL OR x.name = forget_user.model ORDER BY x.name LOOP
        found_any := true;
        -- the vectors of every kept version (rollback must not bring the user back)
        n := 0;
        FOR t IN SELECT v.users_table FROM pyrec._versions v WHERE v.model_id = m.model_id LOOP
            EXECUTE format('DELETE FROM pyrec.%I WHERE user_id = $1', t.users_table) USING user_id;
            GET DIAGNOSTICS rows_affected = ROW_COUNT;
            n := n + rows_affected;
        END LOOP;
        model_name := m.name; what := 'user vectors (every kept version)'; rows_affected := n;
        action := 'deleted';
        RETURN NEXT;
        -- rows of batch outputs this model wrote (recommendations and segments)
        n := 0;
        FOR t IN SELECT DISTINCT r.target FROM pyrec._runs r
                  WHERE r.model_id = m.model_id AND r.kind = 'batch' AND to_regclass(r.target) IS NOT NULL
                    AND starts_with(coalesce(obj_description(to_regclass(r.target), 'pg_class'), ''),
                                    format('pyrec batch output: model %s version ', m.name)) LOOP
            EXECUTE format('WITH d AS (DELETE FROM %s WHERE user_id = $1 RETURNING 1) SELECT count(*) FROM d',
                           to_regclass(t.target)) INTO rows_affected USING user_id;
            n := n + rows_affected;
        END LOOP;
        what := 'batch output rows'; rows_affected := n; action := 'deleted';
        RETURN NEXT;
        -- impressions of experiments serving this model
        WITH d AS (DELETE FROM pyrec.impressions i USING pyrec._experiments e
                    WHERE i.experiment_id = e.experiment_id AND m.name = ANY (e.models)
                      AND i.user_id = forget_user.user_id RETURNING 1)
        SELECT count(*) INTO rows_affected FROM d;
        what := 'experiment impressions'; action := 'deleted';
        RETURN NEXT;
        INSERT INTO pyrec._forgotten (model_id, user_id) VALUES (m.model_id, forget_user.user_id)
            ON CONFLICT DO NOTHING;
        -- what stays in the user's own tables: pyrec cannot delete from them
        BEGIN
            EXECUTE format('SELECT count(*) FROM %s WHERE %I = $1::%s', m.interactions,
                           m.columns->>'user', m.columns->>'user_type')
               INTO rows_affected USING user_id;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            rows_affected := 0;
        END;
        what := format('rows in %s (interactions)', m.interactions);
        action := CASE WHEN rows_affected > 0 THEN 'left for you to delete: pyrec no longer reads them'
                       ELSE 'none' END;
        RETURN NEXT;
        IF m.users IS NOT NULL AND m.columns ? 'users_id' THEN
            BEGIN
                EXECUTE format('SELECT count(*) FROM %s WHERE %I::text = $1', m.users, m.columns->>'users_id')
                   INTO rows_affected USING user_id;
            END;
            what := format('rows in %s (users)', m.users);
            action := CASE WHEN rows_affected > 0 THEN 'left for you to delete: pyrec no longer reads them'
                           ELSE 'none' END;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF NOT found_any THEN
        RAISE EXCEPTION 'there is no model to forget the user in' USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec.forget_user(text, text) IS
'Forgets a user (one model, or every model when model is NULL): deletes their vectors, batch rows and impressions at once, keeps them out of later trainings and personalization, and reports what remains in your own tables';
