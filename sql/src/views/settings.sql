-- The pyrec.* settings with their values in this session, defaults, types and descriptions;
-- the Python package declares them, so the view reads them through the bridge.

CREATE FUNCTION pyrec._settings()
RETURNS TABLE (name text, value text, default_value text, type text, description text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN QUERY
        SELECT s->>'name', s->>'value', s->>'default', s->>'type', s->>'description'
          FROM jsonb_array_elements(pyrec._result(pyrec._call('settings', '{}'))) s;
END
$fn$;
COMMENT ON FUNCTION pyrec._settings() IS 'The pyrec.* settings as the Python package declares them (pyrec.settings reads it)';

CREATE VIEW pyrec.settings AS SELECT * FROM pyrec._settings();
COMMENT ON VIEW pyrec.settings IS
'pyrec.* settings: the value in this session, the default, the type and what each one does';
COMMENT ON COLUMN pyrec.settings.name IS 'Setting name, with its pyrec. prefix (SET pyrec.<name> = ...)';
COMMENT ON COLUMN pyrec.settings.value IS 'Value in this session (the default when not set)';
COMMENT ON COLUMN pyrec.settings.default_value IS 'Value when the setting is not set';
COMMENT ON COLUMN pyrec.settings.type IS 'Type of the value (integer, boolean, text, ...)';
COMMENT ON COLUMN pyrec.settings.description IS 'What the setting does';
