-- Versions of the installed pieces (managed flavour: no pg_extension row).

CREATE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN (SELECT jsonb_build_object('sql', i.version, 'flavour', i.flavour, 'installed_at', i.installed_at,
                                      'installed_by', i.installed_by)
              FROM pyrec._installation i)
        || jsonb_build_object('pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'),
                              'postgres', pg_catalog.current_setting('server_version'),
                              'postgres_major', pg_catalog.current_setting('server_version_num')::integer / 10000);
END
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects (managed flavour), pgvector and the PostgreSQL server (its version and major)';
