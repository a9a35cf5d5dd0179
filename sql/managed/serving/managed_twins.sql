-- Managed flavour: the serving path's Python, fold-in and attribute vectors, in plpgsql over
-- per-version data the external trainer writes (pyrec_pg.entrypoints.managed.prepare_serving).

CREATE TABLE pyrec._fold_data (
    model_id    integer NOT NULL,
    version     integer NOT NULL,
    history_sql text NOT NULL,
    consts      jsonb NOT NULL,
    newest      double precision NOT NULL,
    gram        double precision[] NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, version),
    FOREIGN KEY (model_id, version) REFERENCES pyrec._versions ON DELETE CASCADE
);
COMMENT ON TABLE pyrec._fold_data IS
'Managed flavour: what fold-in needs per ALS version: the history query ($1 consts, $2 newest, $3 user id), Y''Y + reg I row-major';

CREATE FUNCTION pyrec._chol_solve(a double precision[], b double precision[], k integer)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    s double precision;
    ri integer;
    rj integer;
    x double precision[] := b;
BEGIN
    -- Cholesky in place (a: k x k row-major, symmetric positive definite -> its lower factor L)
    FOR j IN 1..k LOOP
        rj := (j - 1) * k;
        s := a[rj + j];
        FOR p IN 1..j - 1 LOOP
            s := s - a[rj + p] * a[rj + p];
        END LOOP;
        IF s <= 0 THEN
            RETURN NULL;  -- not positive definite
        END IF;
        a[rj + j] := sqrt(s);
        FOR i IN j + 1..k LOOP
            ri := (i - 1) * k;
            s := a[ri + j];
            FOR p IN 1..j - 1 LOOP
                s := s - a[ri + p] * a[rj + p];
            END LOOP;
            a[ri + j] := s / a[rj + j];
        END LOOP;
    END LOOP;
    FOR i IN 1..k LOOP  -- L z = b
        ri := (i - 1) * k;
        s := x[i];
        FOR p IN 1..i - 1 LOOP
            s := s - a[ri + p] * x[p];
        END LOOP;
        x[i] := s / a[ri + i];
    END LOOP;
    FOR i IN REVERSE k..1 LOOP  -- L' x = z
        s := x[i];
        FOR p IN i + 1..k LOOP
            s := s - a[(p - 1) * k + i] * x[p];
        END LOOP;
        x[i] := s / a[(i - 1) * k + i];
    END LOOP;
    RETURN x;
END
$fn$;
COMMENT ON FUNCTION pyrec._chol_solve(double precision[], double precision[], integer) IS
'Solves a x = b for a symmetric positive definite k x k matrix (row-major); NULL if it is not';

CREATE FUNCTION pyrec._fold_in_plpgsql(model_id integer, version integer, user_id text,
                                       items text[] DEFAULT NULL) RETURNS vector
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v pyrec._versions;
    f pyrec._fold_data;
    k integer;
    alpha double precision;
    y real[];      -- the history's item vectors, one row each (n x k)
    s real[];      -- sqrt(c - 1) per row
    c real[];      -- confidence c = 1 + alpha w per row
    n integer;
    col vector;
    zt vector[];
    a double precision[];
    b double precision[];
    x double precision[];
BEGIN
    -- the same solve as Als.recalculate_user (pyrec_pg/ml/recipes/als.py): (Y'Y + reg I + Y_u' (C - I) Y_u) x = Y_u' c
    SELECT * INTO v FROM pyrec._versions x
     WHERE x.model_id = _fold_in_plpgsql.model_id AND x.version = _fold_in_plpgsql.version;
    IF NOT FOUND OR v.fold <> 'least_squares' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO f FROM pyrec._fold_data d
     WHERE d.model_id = _fold_in_plpgsql.model_id AND d.version = _fold_in_plpgsql.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'version % of model "%" has no fold-in data', version,
                        (SELECT m.name FROM pyrec.models m WHERE m.model_id = _fold_in_plpgsql.model_id)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'it was trained without the managed trainer: train with pyrec train --dsn ..., or run pyrec_pg.entrypoints.managed.prepare_serving(conn)';
    END IF;
    k := v.dims;
    alpha := (v.fold_state->>'alpha')::double precision;
    -- the user's weighted history, or a given list of items (recommend_for_items), one event each
    EXECUTE format('SELECT array_agg(h.embedding::real[]), array_agg(sqrt($4 * h.w)::real),'
                   ' array_agg((1 + $4 * h.w)::real), count(*)::integer FROM (%s) h',
                   CASE WHEN items IS NULL THEN f.history_sql
                        ELSE format('SELECT 1::float8 AS w, i.embedding FROM pyrec.%I i'
                                    ' WHERE i.item_id = ANY ($5)', v.items_table) END)
       INTO y, s, c, n USING f.consts, f.newest, user_id, alpha, items;
    IF n = 0 THEN
        RETURN NULL;  -- no known item in the live history
    END IF;
    a := f.gram;
    b := array_fill(0::double precision, ARRAY[k]);
    -- Y_u' (C - I) Y_u as inner products of the scaled columns of Y_u (pgvector, in C); a
    -- vector holds at most 16000 values, so long histories go in parts
    FOR lo IN 1..n BY 16000 LOOP
        FOR i IN 1..k LOOP
            col := ARRAY(SELECT unnest(y[lo:lo + 15999][i:i]))::vector;
            zt[i] := col * s[lo:lo + 15999]::vector;
            b[i] := b[i] - (col <#> c[lo:lo + 15999]::vector);
        END LOOP;
        SELECT array_agg(a[(p.i - 1) * k + q.i] - (p.z <#> q.z) ORDER BY p.i, q.i) INTO a
          FROM unnest(zt) WITH ORDINALITY p(z, i), unnest(zt) WITH ORDINALITY q(z, i);
    END LOOP;
    x := pyrec._chol_solve(a, b, k);
    RETURN x::real[]::vector;
END
$fn$;
COMMENT ON FUNCTION pyrec._fold_in_plpgsql(integer, integer, text, text[]) IS
'Managed flavour: an ALS user vector solved from the user''s live history, or from a list of items (pyrec_pg.jobs.foldin.fold_in and fold_in_items in plpgsql)';

CREATE FUNCTION pyrec._user_from_attributes_plpgsql(model_id integer, version integer, user_id text)
RETURNS vector
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    m pyrec.models;
    state jsonb;
    r jsonb;
    col jsonb;
    val jsonb;
    feats integer[] := ARRAY[0];  -- the bias
    off integer := 1;
    hit integer;
BEGIN
    -- the same features as pyrec_pg.jobs.coldstart.Spec.matrix, times the version's weights
    SELECT v.user_features INTO state FROM pyrec._versions v
     WHERE v.model_id = _user_from_attributes_plpgsql.model_id AND v.version = _user_from_attributes_plpgsql.version;
    IF state IS NULL OR state = '{}' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO m FROM pyrec.models x WHERE x.model_id = _user_from_attributes_plpgsql.model_id;
    BEGIN
        -- numeric columns as float8, as Python's float() sees them
        EXECUTE format('SELECT jsonb_build_object(%s) FROM %s r WHERE r.%I IS NOT NULL AND r.%I::text = $1 LIMIT 1',
                       (SELECT string_agg(format('%L, r.%I%s', c->>'name', c->>'name',
                                                 CASE WHEN c->>'kind' = 'bins' THEN '::float8' ELSE '' END), ', ')
                          FROM jsonb_array_elements(state->'spec') c),
                       m.users, m.columns->>'users_id', m.columns->>'users_id')
           INTO r USING user_id;
    EXCEPTION
        WHEN undefined_table OR undefined_column OR invalid_schema_name OR undefined_function
             OR datatype_mismatch OR cannot_coerce THEN
            RETURN NULL;  -- the users relation changed since training: no attributes
    END;
    IF r IS NULL THEN
        RETURN NULL;
    END IF;
    FOR col IN SELECT c FROM jsonb_array_elements(state->'spec') c LOOP
        val := r->(col->>'name');
        IF col->>'kind' = 'bins' THEN
            IF jsonb_typeof(val) = 'number' THEN  -- numpy.searchsorted(edges, value, 'right')
                feats := feats || (off + (SELECT count(*)::integer FROM jsonb_array_elements(col->'edges') e
                                           WHERE e::double precision <= val::double precision));
            END IF;
            off := off + jsonb_array_length(col->'edges') + 1;
            CONTINUE;
        END IF;
        -- text values as Python's str() spells them (booleans True/False)
        FOR hit IN
            SELECT off + o.n - 1
              FROM (SELECT CASE jsonb_typeof(x) WHEN 'boolean' THEN initcap(x::text) ELSE x #>> '{}' END
                      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(val) = 'array' AND col->>'kind' = 'multi'
                                                     THEN val ELSE jsonb_build_array(val) END) x
                     WHERE jsonb_typeof(x) <> 'null') t(s)
              JOIN jsonb_array_elements_text(col->'values') WITH ORDINALITY o(s, n) ON o.s = t.s
        LOOP
            feats := feats || hit;
        END LOOP;
        off := off + jsonb_array_length(col->'values');
    END LOOP;
    -- a feature listed twice counts once
    RETURN (SELECT sum((state->'weights'->f)::text::vector)
              FROM (SELECT DISTINCT f FROM unnest(feats) f) u);
END
$fn$;
COMMENT ON FUNCTION pyrec._user_from_attributes_plpgsql(integer, integer, text) IS
'Managed flavour: a vector for a user with attributes but no history (pyrec_pg.jobs.coldstart.user_vector in plpgsql)';
