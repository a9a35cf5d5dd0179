-- Looking models and versions up, with the errors every caller raises.

-- volatile because it may lock the row (FOR UPDATE is refused in a stable function)
CREATE FUNCTION pyrec._model(p_name text, p_lock boolean DEFAULT false) RETURNS pyrec.models
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_model pyrec.models;
BEGIN
    IF p_name IS NULL THEN
        RAISE EXCEPTION 'model name must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    IF p_lock THEN
        -- the row lock orders the caller against trainings writing a new version of the model
        SELECT * INTO v_model FROM pyrec.models m WHERE m.name = p_name FOR UPDATE;
    ELSE
        SELECT * INTO v_model FROM pyrec.models m WHERE m.name = p_name;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', pyrec._shown(p_name) USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM pyrec.models lists the models';
    END IF;
    RETURN v_model;
END
$fn$;
COMMENT ON FUNCTION pyrec._model(text, boolean) IS
'A model''s catalog row by name (locked for update if asked), or the error for a null or unknown name';

CREATE FUNCTION pyrec._active_version(model text) RETURNS pyrec._versions
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_version pyrec._versions;
BEGIN
    -- one statement, so the model's active_version and its row come from one snapshot (a
    -- training may activate a new version meanwhile)
    SELECT x.* INTO v_version
      FROM pyrec.models m JOIN pyrec._versions x ON x.model_id = m.model_id AND x.version = m.active_version
     WHERE m.name = model;
    IF NOT FOUND THEN
        PERFORM pyrec._model(model);  -- a null or unknown name: its error
        RAISE EXCEPTION 'model "%" has no trained version', model
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('train it first: CALL pyrec.train(%L)', model);
    END IF;
    RETURN v_version;
END
$fn$;
COMMENT ON FUNCTION pyrec._active_version(text) IS 'The serving version of a model, with clear errors when there is none';
