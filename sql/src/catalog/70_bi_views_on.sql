-- The BI views pyrec.create_bi_view makes over batch outputs, found by their comment, so that
-- dropping a model or a batch output can drop them too.

CREATE FUNCTION pyrec._bi_views_on(target regclass) RETURNS regclass[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(array_agg(DISTINCT r.ev_class::regclass), '{}')
      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
       AND d.refobjid = $1 AND r.ev_class <> $1
       AND starts_with(coalesce(pg_catalog.obj_description(r.ev_class, 'pg_class'), ''), 'pyrec BI view: ')
$fn$;
COMMENT ON FUNCTION pyrec._bi_views_on(regclass) IS 'The views pyrec.create_bi_view made over a batch output table';

CREATE FUNCTION pyrec._drop_bi_views(target regclass) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v regclass;
BEGIN
    FOREACH v IN ARRAY pyrec._bi_views_on(target) LOOP
        EXECUTE format('DROP VIEW %s', v);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pyrec._drop_bi_views(regclass) IS
'Drops the views pyrec.create_bi_view made over a batch output table (drop_model calls it)';
