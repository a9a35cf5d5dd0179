-- Choosing the serving version: activate any kept version, or roll back to the previous one.

CREATE FUNCTION pyrec.activate(model text, version integer) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    kept integer[];
BEGIN
    IF model IS NULL OR version IS NULL THEN
        RAISE EXCEPTION 'model and version must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT model, version, status FROM pyrec.model_versions lists the versions';
    END IF;
    -- the row lock orders this against trainings writing a new version of the same model
    SELECT * INTO m FROM pyrec.models WHERE models.name = model FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pyrec._versions v WHERE v.model_id = m.model_id AND v.version = version) THEN
        SELECT array_agg(v.version ORDER BY v.version) INTO kept
          FROM pyrec._versions v WHERE v.model_id = m.model_id;
        RAISE EXCEPTION 'model "%" has no version %', model, version USING ERRCODE = 'undefined_object',
            HINT = CASE WHEN kept IS NULL THEN format('train it first: CALL pyrec.train(%L)', model)
                        ELSE format('kept versions: %s (the setting pyrec.keep_versions bounds them)',
                                    array_to_string(kept, ', ')) END;
    END IF;
    UPDATE pyrec.models SET active_version = version WHERE model_id = m.model_id;
    UPDATE pyrec._versions v
       SET status = CASE WHEN v.version = version THEN 'active' ELSE 'inactive' END,
           activated_at = CASE WHEN v.version = version THEN now() ELSE v.activated_at END
     WHERE v.model_id = m.model_id;
    RETURN jsonb_build_object('model', model, 'active_version', version,
                              'previous_version', m.active_version);
END
$fn$;
COMMENT ON FUNCTION pyrec.activate(text, integer) IS
'Serves the given kept version of a model from the next query on; returns the previous one';

CREATE FUNCTION pyrec.rollback(model text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
#variable_conflict use_variable
DECLARE
    m pyrec.models;
    previous integer;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT * INTO m FROM pyrec.models WHERE models.name = model FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(model) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    SELECT max(v.version) INTO previous FROM pyrec._versions v
     WHERE v.model_id = m.model_id AND v.version < coalesce(m.active_version, 0);
    IF previous IS NULL THEN
        RAISE EXCEPTION 'model "%" has no version older than the active one (%)', model,
                        coalesce(m.active_version::text, 'none')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'pyrec.activate(model, version) serves any kept version; SELECT * FROM pyrec.model_versions lists them';
    END IF;
    RETURN pyrec.activate(model, previous);
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
