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

COMMENT ON COLUMN pyrec.audit.audit_id IS 'Increasing id of the entry';
COMMENT ON COLUMN pyrec.audit.at IS 'When the action happened';
COMMENT ON COLUMN pyrec.audit.role IS 'Effective role (current_user) that did it';
COMMENT ON COLUMN pyrec.audit.session_role IS 'Role that logged in (session_user)';
COMMENT ON COLUMN pyrec.audit.action IS 'create_model, train, activate, schedule, unschedule, drop_model, forget_user, create_filter, ...';
COMMENT ON COLUMN pyrec.audit.model IS 'Model concerned, if any';
COMMENT ON COLUMN pyrec.audit.details IS 'Arguments and outcome of the action';

-- the acting role is passed in: inside this SECURITY DEFINER function (grants/roles.sql)
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
