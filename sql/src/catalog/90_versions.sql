-- Choosing the serving version: activate any kept version, or roll back to the previous one.

CREATE FUNCTION pyrec.activate(model text, version integer) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models;
    v_kept integer[];
BEGIN
    IF model IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'model and version must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT model, version, status FROM pyrec.model_versions lists the versions';
    END IF;
    v_model := pyrec._model(model, p_lock => true);
    IF NOT EXISTS (SELECT 1 FROM pyrec._versions x
                    WHERE x.model_id = v_model.model_id AND x.version = activate.version) THEN
        SELECT array_agg(x.version ORDER BY x.version) INTO v_kept
          FROM pyrec._versions x WHERE x.model_id = v_model.model_id;
        RAISE EXCEPTION 'model "%" has no version %', model, version USING ERRCODE = 'undefined_object',
            HINT = CASE WHEN v_kept IS NULL THEN format('train it first: CALL pyrec.train(%L)', model)
                        ELSE format('kept versions: %s (the setting pyrec.keep_versions bounds them)',
                                    array_to_string(v_kept, ', ')) END;
    END IF;
    UPDATE pyrec.models m SET active_version = activate.version WHERE m.model_id = v_model.model_id;
    UPDATE pyrec._versions x
       SET status = CASE WHEN x.version = activate.version THEN 'active' ELSE 'inactive' END,
           activated_at = CASE WHEN x.version = activate.version THEN now() ELSE x.activated_at END
     WHERE x.model_id = v_model.model_id;
    RETURN jsonb_build_object('model', model, 'active_version', version,
                              'previous_version', v_model.active_version);
END
$fn$;
COMMENT ON FUNCTION pyrec.activate(text, integer) IS
'Serves the given kept version of a model from the next query on; returns the previous one';

CREATE FUNCTION pyrec.rollback(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models := pyrec._model(model, p_lock => true);
    v_previous integer;
BEGIN
    SELECT max(x.version) INTO v_previous FROM pyrec._versions x
     WHERE x.model_id = v_model.model_id AND x.version < coalesce(v_model.active_version, 0);
    IF v_previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no version older than the active one (%)', model,
                        coalesce(v_model.active_version::text, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'pyrec.activate(model, version) serves any kept version; SELECT * FROM pyrec.model_versions lists them';
    END IF;
    RETURN pyrec.activate(model, v_previous);
END
$fn$;
COMMENT ON FUNCTION pyrec.rollback(text) IS
'Serves the newest kept version older than the active one (undoes a bad training)';

CREATE FUNCTION pyrec.refresh_items(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('refresh_items', jsonb_build_object('model', model)));
END
$fn$;
COMMENT ON FUNCTION pyrec.refresh_items(text) IS
'Gives items added to the items relation since training vectors from their attributes, so they can be recommended now';
