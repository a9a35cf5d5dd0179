-- Named filters, stored compiled.

CREATE TABLE pyrec._filters (
    model_id   integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    name       text NOT NULL,
    expression text NOT NULL,
    compiled   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (model_id, name)
);
COMMENT ON TABLE pyrec._filters IS 'Named filters with their compiled SQL; read it through pyrec.filters';

CREATE VIEW pyrec.filters AS
SELECT m.name AS model, f.name, f.expression, f.compiled->>'target' AS target,
       ARRAY(SELECT jsonb_array_elements_text(f.compiled->'params')) AS params,
       f.created_at, f.created_by
FROM pyrec._filters f JOIN pyrec.models m USING (model_id);
COMMENT ON VIEW pyrec.filters IS 'Named filters: expression, what they select (ItemID/UserID), their $PARAMETERS';

COMMENT ON COLUMN pyrec.filters.model IS 'Model the filter belongs to';
COMMENT ON COLUMN pyrec.filters.name IS 'Filter name, usable as the filter argument of recommend()';
COMMENT ON COLUMN pyrec.filters.expression IS 'The filter expression as written (Personalize syntax or a SQL predicate on item columns)';
COMMENT ON COLUMN pyrec.filters.target IS 'What the filter selects: ItemID (recommend, similar_items) or UserID (users_for_item, segments)';
COMMENT ON COLUMN pyrec.filters.params IS 'Names of the $PARAMETERS the expression expects';
COMMENT ON COLUMN pyrec.filters.created_at IS 'When create_filter ran';
COMMENT ON COLUMN pyrec.filters.created_by IS 'Role that ran create_filter';
