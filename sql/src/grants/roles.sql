-- Roles and privileges: pyrec_reader serves and reads metrics, pyrec_admin also creates,
-- trains, schedules, drops and forgets. Roles belong to the cluster, not to this database:
-- they are created when missing and DROP EXTENSION leaves them.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pyrec_reader') THEN
        CREATE ROLE pyrec_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pyrec_admin') THEN
        CREATE ROLE pyrec_admin NOLOGIN;
    END IF;
END
$do$;
-- From PostgreSQL 16 on, granting a role and commenting on it take ADMIN OPTION on it: roles
-- that another role made (installing into a second database) keep what it gave them.
DO $do$
BEGIN
    IF pg_catalog.pg_has_role('pyrec_reader', 'MEMBER WITH ADMIN OPTION') THEN
        COMMENT ON ROLE pyrec_reader IS 'pyrec: recommend, similar items, ranking, segments, read models and metrics';
    END IF;
    IF pg_catalog.pg_has_role('pyrec_admin', 'MEMBER WITH ADMIN OPTION') THEN
        COMMENT ON ROLE pyrec_admin IS 'pyrec: everything pyrec_reader can, and create, train, batch, schedule, drop, forget';
    END IF;
    IF NOT pg_catalog.pg_has_role('pyrec_admin', 'pyrec_reader', 'MEMBER') THEN
        GRANT pyrec_reader TO pyrec_admin;
    END IF;
END
$do$;

-- Functions are executable by PUBLIC by default; pyrec's are not: each role gets its own.
REVOKE ALL ON ALL ROUTINES IN SCHEMA pyrec FROM PUBLIC;
REVOKE ALL ON FUNCTION public.recommend(text, integer, text, jsonb), public.recommend(bigint, integer, text, jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA pyrec TO pyrec_reader;
GRANT CREATE ON SCHEMA pyrec TO pyrec_admin;  -- each training's vector tables, batch staging
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA pyrec TO pyrec_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA pyrec TO pyrec_reader;
GRANT EXECUTE ON FUNCTION public.recommend(text, integer, text, jsonb), public.recommend(bigint, integer, text, jsonb) TO pyrec_reader;
-- what changes models stays with admins (table privileges stop a reader anyway: this says it first)
REVOKE EXECUTE ON FUNCTION
    pyrec.create_model(text, text, text, text, text, jsonb), pyrec.drop_model(text, boolean),
    pyrec.activate(text, integer), pyrec.rollback(text), pyrec.refresh_items(text),
    pyrec.create_filter(text, text, text), pyrec.drop_filter(text, text, boolean),
    pyrec.schedule_training(text, text, text, jsonb), pyrec.unschedule_training(text, boolean),
    pyrec.forget_user(text, text), pyrec.create_experiment(text, jsonb, text, text),
    pyrec.stop_experiment(text), pyrec.drop_experiment(text), pyrec.check_data(text),
    pyrec.evaluate(text, text, double precision, integer, jsonb),
    pyrec.compare_models(text[], text, text, double precision, integer),
    pyrec.experiment_results(text, text, interval, double precision, double precision),
    pyrec._drop_bi_views(regclass), pyrec.create_bi_view(text, text, text, text[], boolean)
FROM pyrec_reader;
REVOKE EXECUTE ON PROCEDURE
    pyrec.train(text, jsonb, text), pyrec._call_proc(text, jsonb, jsonb),
    pyrec.batch_recommend(text, text, integer, text, text, jsonb, boolean, jsonb),
    pyrec.batch_users_for_items(text, text, integer, text, text, jsonb, boolean)
FROM pyrec_reader;

-- catalog: readers read what serving reads; impressions are the one table they write
GRANT SELECT ON pyrec.models, pyrec._versions, pyrec._filters, pyrec._experiments,
    pyrec._forgotten, pyrec.model_versions, pyrec.training_runs, pyrec.batch_jobs,
    pyrec.filters, pyrec.experiments TO pyrec_reader;
GRANT INSERT ON pyrec.impressions TO pyrec_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON pyrec.models, pyrec._versions, pyrec._runs, pyrec._filters,
    pyrec._experiments, pyrec.impressions, pyrec._forgotten TO pyrec_admin;
GRANT SELECT ON pyrec.audit, pyrec._runs_now TO pyrec_admin;
-- BI views and settings: readers chart metrics and outputs; the impression log is per user
-- and item, so admins only
GRANT SELECT ON pyrec.model_metrics, pyrec.impressions_daily, pyrec.batch_outputs, pyrec.settings
    TO pyrec_reader;
GRANT SELECT ON pyrec.impression_log TO pyrec_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pyrec TO pyrec_admin;
-- the audit trail is append-only for everyone: rows come only through pyrec._audit, which
-- runs as the extension's owner for that reason (SECURITY DEFINER, search_path pinned)
ALTER FUNCTION pyrec._audit(name, text, text, jsonb) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION pyrec._audit(name, text, text, jsonb) FROM pyrec_reader;
