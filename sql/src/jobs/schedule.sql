-- Scheduled retrains through pg_cron, when it is installed in this database.

CREATE FUNCTION pyrec._cron_job_name(model text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT 'pyrec-train-' || model $fn$;
COMMENT ON FUNCTION pyrec._cron_job_name(text) IS 'The pg_cron job name of a model''s scheduled training';

CREATE FUNCTION pyrec._require_cron() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF to_regprocedure('cron.schedule(text, text, text)') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('install it (shared_preload_libraries = ''pg_cron'', cron.database_name = %L, '
                                'then CREATE EXTENSION pg_cron), or call "pyrec train --dsn ... <model>" '
                                'from the system''s cron', current_database());
    END IF;
END
$fn$;
COMMENT ON FUNCTION pyrec._require_cron() IS 'Raises a clear error when pg_cron is not available here';

CREATE FUNCTION pyrec.schedule_training(model text, schedule text, mode text DEFAULT 'full',
                                        options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    job bigint;
    stored jsonb;
BEGIN
    IF model IS NULL OR schedule IS NULL OR mode IS NULL OR options IS NULL THEN
        RAISE EXCEPTION 'model, schedule, mode and options must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'for example pyrec.schedule_training(''movies'', ''0 3 * * *'')';
    END IF;
    stored := (pyrec._model(model)).options;
    -- pg_cron runs CALL pyrec.train in the server, which does not start Spark
    IF coalesce(options ->> 'engine', stored ->> 'engine') = 'spark' THEN
        RAISE EXCEPTION 'model % trains on Spark, which pg_cron''s trainings in the server do not start',
            quote_literal(model)
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('schedule the external trainer with the system''s cron instead, e.g. 0 3 * * * pyrec train %s --dsn ...', model);
    END IF;
    IF mode NOT IN ('full', 'update') THEN
        RAISE EXCEPTION 'unknown training mode %', quote_literal(pyrec._shown(mode))
            USING ERRCODE = 'invalid_parameter_value', HINT = 'mode is "full" or "update"';
    END IF;
    IF jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example ''{"params": {"factors": 32}}''';
    END IF;
    PERFORM pyrec._require_cron();
    BEGIN
        -- the same job name replaces the model's previous schedule
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
          USING pyrec._cron_job_name(model), schedule,
                format('CALL pyrec.train(%L, %L::jsonb, mode => %L)', model, options, mode);
    EXCEPTION WHEN invalid_parameter_value OR syntax_error OR internal_error THEN
        RAISE EXCEPTION 'invalid schedule %: %', quote_literal(pyrec._shown(schedule)), pyrec._shown(SQLERRM)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a cron expression: minute hour day-of-month month day-of-week, e.g. ''0 3 * * *'' (daily at 03:00)';
    END;
    PERFORM pyrec._audit(current_user, 'schedule_training', model, jsonb_build_object(
        'schedule', schedule, 'mode', mode, 'options', options, 'job', job));
    RETURN job;
END
$fn$;
COMMENT ON FUNCTION pyrec.schedule_training(text, text, text, jsonb) IS
'Retrains a model on a cron schedule through pg_cron (one schedule per model; returns the job id)';

CREATE FUNCTION pyrec.unschedule_training(model text, if_exists boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    found_job boolean;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    PERFORM pyrec._require_cron();
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO found_job
      USING pyrec._cron_job_name(model);
    IF NOT found_job THEN
        IF if_exists THEN
            RETURN false;
        END IF;
        RAISE EXCEPTION 'model "%" has no scheduled training', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'pyrec.schedule_training(model, schedule) creates one';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1::name)' USING pyrec._cron_job_name(model);
    PERFORM pyrec._audit(current_user, 'unschedule_training', model);
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION pyrec.unschedule_training(text, boolean) IS 'Removes a model''s scheduled training';
