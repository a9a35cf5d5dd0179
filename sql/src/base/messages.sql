-- Messages: how error messages show values the caller passed in.

-- the rule of pyrec_pg.entrypoints.server.shorten, so SQL and Python errors cut huge inputs alike
CREATE FUNCTION pyrec._shown(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE WHEN length(value) > 200
                THEN left(value, 60) || '...(' || length(value) || ' characters)'
                ELSE value END
$fn$;
COMMENT ON FUNCTION pyrec._shown(text) IS
'A caller''s value as error messages show it: over 200 characters, its first 60 and its length';
