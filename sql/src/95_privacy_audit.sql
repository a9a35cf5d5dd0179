-- Forgetting users (data deletion requests) and the audit trail of admin actions.

CREATE TABLE pyrec._forgotten (
    model_id     integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    user_id      text NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    forgotten_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (model_id, user_id)
);
COMMENT ON TABLE pyrec._forgotten IS 'Users forgotten per model: never trained on, personalized or batched again';
SELECT pg_catalog.pg_extension_config_dump('pyrec._forgotten', '');

CREATE FUNCTION pyrec._is_forgotten(model_id integer, user_id text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT EXISTS (SELECT 1 FROM pyrec._forgotten f WHERE f.model_id = $1 AND f.user_id = $2) $fn$;
COMMENT ON FUNCTION pyrec._is_forgotten(integer, text) IS 'Whether a model has forgotten a user';

CREATE FUNCTION pyrec.forget_user(model text, user_id text)
RETURNS TABLE (model_name text, what text, rows_affected bigint, action text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
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
    FOR m IN SELECT * FROM pyrec.models x WHERE model IS NULL OR x.name = model ORDER BY x.name LOOP
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
                      AND i.user_id = user_id RETURNING 1)
        SELECT count(*) INTO rows_affected FROM d;
        what := 'experiment impressions'; action := 'deleted';
        RETURN NEXT;
        INSERT INTO pyrec._forgotten (model_id, user_id) VALUES (m.model_id, user_id)
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

-- Audit: who did what to which model, recorded by triggers on the catalog so every path
-- (SQL functions, the external trainer, pg_cron jobs) is covered.
CREATE TABLE pyrec.audit (
    audit_id     bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    role         name NOT NULL DEFAULT current_user,
    session_role name NOT NULL DEFAULT session_user,
    action       text NOT NULL,
    model        text,
    details      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE pyrec.audit IS 'Admin actions: create, train, activate (and rollback), schedule, drop, forget, filters, experiments; with role and time';
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit_audit_id_seq', '');

-- the acting role is passed in: inside this SECURITY DEFINER function (roles file)
-- current_user is the extension's owner
CREATE FUNCTION pyrec._audit(actor name, action text, model text, details jsonb DEFAULT '{}')
RETURNS void
LANGUAGE sql
AS $fn$ INSERT INTO pyrec.audit (role, action, model, details) VALUES ($1, $2, $3, coalesce($4, '{}')) $fn$;
COMMENT ON FUNCTION pyrec._audit(name, text, text, jsonb) IS 'Records an admin action in pyrec.audit';

CREATE FUNCTION pyrec._audit_trigger() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    row_new jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    row_old jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    r jsonb := coalesce(row_new, row_old);
    model_name text := CASE WHEN TG_TABLE_NAME = 'models' THEN r->>'name'
                            ELSE (SELECT m.name FROM pyrec.models m WHERE m.model_id = (r->>'model_id')::int) END;
BEGIN
    -- a superuser loading a dump (pg_dump's output sets check_function_bodies off): the dump
    -- brings the audit rows of what it restores, so recording them again would clash
    IF current_setting('check_function_bodies') = 'off'
       AND (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'models' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM pyrec._audit(current_user, 'create_model', model_name, row_new - 'model_id' - 'created_at' - 'created_by');
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM pyrec._audit(current_user, 'drop_model', model_name, jsonb_build_object('active_version', row_old->'active_version'));
        ELSIF row_new->'active_version' IS DISTINCT FROM row_old->'active_version' THEN
            PERFORM pyrec._audit(current_user, 'activate', model_name, jsonb_build_object(
                'from', row_old->'active_version', 'to', row_new->'active_version'));
        END IF;
    ELSIF TG_TABLE_NAME = '_runs' THEN
        IF TG_OP = 'INSERT' THEN
            PERFORM pyrec._audit(current_user, r->>'kind', model_name, jsonb_build_object('run_id', r->'run_id', 'target', r->'target'));
        ELSE
            PERFORM pyrec._audit(current_user, format('%s %s', r->>'kind', r->>'status'), model_name, jsonb_build_object(
                'run_id', r->'run_id', 'version', r->'version', 'message', r->'message'));
        END IF;
    ELSIF TG_TABLE_NAME = '_filters' THEN
        PERFORM pyrec._audit(current_user, CASE TG_OP WHEN 'INSERT' THEN 'create_filter' ELSE 'drop_filter' END, model_name,
                             jsonb_build_object('filter', r->'name', 'expression', r->'expression'));
    ELSIF TG_TABLE_NAME = '_experiments' THEN
        PERFORM pyrec._audit(current_user, CASE TG_OP WHEN 'INSERT' THEN 'create_experiment' WHEN 'DELETE' THEN 'drop_experiment'
                                        ELSE 'stop_experiment' END, NULL,
                             jsonb_build_object('experiment', r->'name', 'variants', r->'variants'));
    ELSIF TG_TABLE_NAME = '_forgotten' THEN
        PERFORM pyrec._audit(current_user, 'forget_user', model_name, jsonb_build_object('user_id', r->'user_id'));
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pyrec._audit_trigger() IS 'Writes pyrec.audit rows for changes of the catalog';

CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE OF active_version ON pyrec.models
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT ON pyrec._runs
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit_outcome AFTER UPDATE OF status ON pyrec._runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR DELETE ON pyrec._filters
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE OF status ON pyrec._experiments
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
CREATE TRIGGER audit AFTER INSERT ON pyrec._forgotten
    FOR EACH ROW EXECUTE FUNCTION pyrec._audit_trigger();
