-- Managed flavour: privileges on its own tables, as grants/roles.sql grants the catalog's.
GRANT SELECT ON pyrec._installation, pyrec._fold_data, pyrec._compiled_filters TO pyrec_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON pyrec._fold_data, pyrec._compiled_filters TO pyrec_admin;
-- there is no superuser on managed services: the installing role trains too, and trainings
-- hand the tables they write to pyrec_admin (ALTER TABLE ... OWNER needs its membership)
DO $do$
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, 'pyrec_admin', 'MEMBER') THEN
        EXECUTE pg_catalog.format('GRANT pyrec_admin TO %I', current_user);
    END IF;
END
$do$;
