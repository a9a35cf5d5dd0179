-- Users forgotten per model (pyrec.forget_user): serving and training skip them.

CREATE TABLE pyrec._forgotten (
    model_id     integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    user_id      text NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    forgotten_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (model_id, user_id)
);
COMMENT ON TABLE pyrec._forgotten IS 'Users forgotten per model: never trained on, personalized or batched again';

-- plpgsql, not sql: a SQL function that plpgsql calls is planned again in every transaction
-- (about 15 to 25 us of each request); a plpgsql one keeps its plan for the session
CREATE FUNCTION pyrec._is_forgotten(model_id integer, user_id text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$ BEGIN RETURN EXISTS (SELECT 1 FROM pyrec._forgotten f WHERE f.model_id = $1 AND f.user_id = $2); END $fn$;
COMMENT ON FUNCTION pyrec._is_forgotten(integer, text) IS 'Whether a model has forgotten a user';
