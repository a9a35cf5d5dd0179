-- Managed flavour: filter expressions are compiled by the Python (sqlglot) in a client. Named
-- filters are stored compiled in pyrec._filters as always; ad-hoc expressions serve once a
-- client has compiled them for the model (pyrec_pg.entrypoints.managed.call(dsn, 'compile_filter', ...)).

CREATE TABLE pyrec._compiled_filters (
    model_id    integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    expression  text NOT NULL,
    compiled    jsonb NOT NULL,
    compiled_at timestamptz NOT NULL DEFAULT now(),
    compiled_by name NOT NULL DEFAULT current_user
);
-- expressions may be longer than a btree entry allows: the unique key is their digest
CREATE UNIQUE INDEX _compiled_filters_key ON pyrec._compiled_filters (model_id, md5(expression));
COMMENT ON TABLE pyrec._compiled_filters IS
'Managed flavour: ad-hoc filter expressions compiled by a client, as pyrec._filter would compile them';

CREATE FUNCTION pyrec._filter(model_id integer, expression text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_compiled jsonb;
    v_model text;
BEGIN
    SELECT f.compiled INTO v_compiled FROM pyrec._compiled_filters f
     WHERE f.model_id = _filter.model_id AND md5(f.expression) = md5(_filter.expression)
       AND f.expression = _filter.expression;
    IF FOUND THEN
        RETURN jsonb_build_object('result', v_compiled);
    END IF;
    SELECT m.name INTO v_model FROM pyrec.models m WHERE m.model_id = _filter.model_id;
    RETURN jsonb_build_object('error', jsonb_build_object(
        'sqlstate', '0A000',
        'message', format('filter %s is neither a named filter of model "%s" nor an expression compiled for it',
                          quote_literal(CASE WHEN length(expression) > 200 THEN left(expression, 200) || '...'
                                             ELSE expression END), v_model),
        'detail', 'pyrec is installed in its managed flavour (no plpython3u): filter expressions are compiled by the pyrec_pg package in a client',
        'hint', format('name it once from a client: pyrec create-filter --dsn ''<this database>'' %s <name> <expression>, '
                       'or compile the expression for the model: pyrec_pg.entrypoints.managed.call(dsn, ''compile_filter'', '
                       '{"model": "%s", "expression": ...})', quote_ident(v_model), v_model)));
END
$fn$;
COMMENT ON FUNCTION pyrec._filter(integer, text) IS
'Managed flavour: the compiled form of an expression a client compiled for the model (pyrec._compiled_filters)';
