-- Versions of the installed pieces (managed flavour: no pg_extension row).

CREATE FUNCTION pyrec.version() RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN (SELECT jsonb_build_object('sql', i.version, 'flavour', i.flavour, 'installed_at', i.installed_at,
                                      'installed_by', i.installed_by)
              FROM pyrec._installation i)
        || jsonb_build_object('pgvector', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'));
END
$fn$;
COMMENT ON FUNCTION pyrec.version() IS 'Versions of the SQL objects (managed flavour) and pgvector';
