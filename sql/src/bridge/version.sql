-- Versions of the installed pieces.

CREATE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN pyrec._result(pyrec._call('version', '{}'))
        || jsonb_build_object(
               'sql', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pyrec'),
               'pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'),
               'postgres', pg_catalog.current_setting('server_version'),
               'postgres_major', pg_catalog.current_setting('server_version_num')::integer / 10000);
END
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects, the server-side Python package, numpy, scipy, pgvector and the PostgreSQL server (its version and major)';
