-- Dropping a model tears down what every layer made for it: versions, batch outputs, BI
-- views, schedules; so it sits above them all.

CREATE FUNCTION pyrec.drop_model(name text, if_exists boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model_id integer;
    v_row record;
BEGIN
    IF if_exists AND name IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pyrec.models m WHERE m.name = drop_model.name) THEN
        RAISE NOTICE 'model "%" does not exist, skipping', pyrec._shown(name);
        RETURN;
    END IF;
    v_model_id := (pyrec._model(name, p_lock => true)).model_id;
    FOR v_row IN SELECT v.items_table, v.users_table FROM pyrec._versions v WHERE v.model_id = v_model_id LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I, pyrec.%I', v_row.items_table, v_row.users_table);
    END LOOP;
    -- batch outputs it wrote (still marked as this model's) and staging tables of its batch jobs
    FOR v_row IN SELECT r.run_id, r.target FROM pyrec._runs r WHERE r.model_id = v_model_id AND r.kind = 'batch' LOOP
        EXECUTE format('DROP TABLE IF EXISTS pyrec.%I', '_batch_' || v_row.run_id);
        IF starts_with(coalesce(obj_description(to_regclass(v_row.target), 'pg_class'), ''),
                       format('pyrec batch output: model %s version ', name)) THEN
            PERFORM pyrec._drop_bi_views(to_regclass(v_row.target));  -- pyrec.create_bi_view's
            EXECUTE format('DROP TABLE %s', to_regclass(v_row.target));
        END IF;
    END LOOP;
    -- pg_cron 1.4 has cron.unschedule(name), 1.5 and later cron.unschedule(text)
    IF to_regprocedure('cron.unschedule(name)') IS NOT NULL
       OR to_regprocedure('cron.unschedule(text)') IS NOT NULL THEN
        PERFORM pyrec.unschedule_training(name, if_exists => true);
    END IF;
    DELETE FROM pyrec.models m WHERE m.model_id = v_model_id;
END
$fn$;
COMMENT ON FUNCTION pyrec.drop_model(text, boolean) IS 'Drops a model with all its versions, vector tables, runs, batch output tables and the BI views pyrec made over them';
