-- pyrec, managed flavour: for databases without plpython3u (RDS, Cloud SQL, Azure). A client
-- runs this script in one transaction (pyrec_pg.entrypoints.managed.install); it is not CREATE EXTENSION.
-- Built from sql/src with the files of sql/managed in place of the same paths (docs/managed.md).
DO $do$
DECLARE
    installed text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pyrec') THEN
        RAISE EXCEPTION 'pyrec is already installed in database "%" as an extension', current_database()
            USING ERRCODE = 'duplicate_object',
                  HINT = 'the extension and the managed flavour do not mix; keep the extension, or DROP EXTENSION pyrec CASCADE first';
    END IF;
    IF to_regclass('pyrec._installation') IS NOT NULL THEN
        EXECUTE 'SELECT version FROM pyrec._installation' INTO installed;
        RAISE EXCEPTION 'pyrec % (managed flavour) is already installed in database "%"', installed, current_database()
            USING ERRCODE = 'duplicate_object',
                  HINT = 'nothing to do; to start over, DROP SCHEMA pyrec CASCADE (this drops every model) and install again';
    END IF;
    IF to_regnamespace('pyrec') IS NOT NULL THEN
        RAISE EXCEPTION 'schema "pyrec" already exists in database "%" and is not a pyrec installation', current_database()
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'pyrec needs its own schema: rename or drop the existing one';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector') THEN
        RAISE EXCEPTION 'pgvector is not installed in database "%"', current_database()
            USING ERRCODE = 'undefined_object',
                  HINT = 'run CREATE EXTENSION vector first (managed services offer it)';
    END IF;
END
$do$;

-- what CREATE EXTENSION would set: the functions' SET search_path FROM CURRENT capture it
SELECT pg_catalog.set_config('search_path', pg_catalog.format('pyrec, %I, pg_temp', n.nspname), true)
  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'vector';
-- pgvector's library defines its settings (hnsw.*) when it loads; routines below SET them,
-- and a role without superuser may not SET a setting no library has defined yet
SELECT '[1]'::vector IS NOT NULL AS pgvector_loaded;

CREATE SCHEMA pyrec;
COMMENT ON SCHEMA pyrec IS 'pyrec recommender (managed flavour: trained from outside the server)';

-- without pg_extension, the installed version lives here (one row)
CREATE TABLE pyrec._installation (
    single       boolean PRIMARY KEY DEFAULT true CHECK (single),
    version      text NOT NULL,
    flavour      text NOT NULL DEFAULT 'managed' CHECK (flavour = 'managed'),
    installed_at timestamptz NOT NULL DEFAULT now(),
    installed_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE pyrec._installation IS 'The pyrec version installed by the managed flavour''s script (no pg_extension row)';
INSERT INTO pyrec._installation (version) VALUES ('@PYREC_VERSION@');
