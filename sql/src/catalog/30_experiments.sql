-- Experiments and impressions: A/B tests served by recommend(..., experiment => name), the
-- impressions they log (serving/experiments.sql serves them, operations/experiments.sql reports).

CREATE TABLE pyrec._experiments (
    experiment_id serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    -- [{"name", "share", "model", "serve", "filter", "params", "promotion", ...}, ...]
    variants      jsonb NOT NULL,
    uptos         float8[] NOT NULL,  -- each variant's cumulative share, for the assignment
    control       text NOT NULL,
    models        text[] NOT NULL,
    description   text,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    name NOT NULL DEFAULT current_user,
    stopped_at    timestamptz
);
COMMENT ON TABLE pyrec._experiments IS 'A/B experiments: variants with traffic shares; read it through pyrec.experiments';

-- append-only and lean (no index, no foreign key): logging must not slow serving; results
-- read an experiment's impressions in one scan
CREATE TABLE pyrec.impressions (
    recommendation_id bigint GENERATED ALWAYS AS IDENTITY,
    experiment_id     integer NOT NULL,
    variant           text NOT NULL,
    user_id           text NOT NULL,
    items             text[] NOT NULL,  -- in rank order: items[1] was ranked first
    scores            real[] NOT NULL,
    shown_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pyrec.impressions IS 'What recommend(..., experiment => name) served: one row per request, items in rank order';

COMMENT ON COLUMN pyrec.impressions.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impressions.experiment_id IS 'Experiment the call was served under';
COMMENT ON COLUMN pyrec.impressions.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impressions.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impressions.items IS 'Items shown, in rank order';
COMMENT ON COLUMN pyrec.impressions.scores IS 'Their scores, in the same order';
COMMENT ON COLUMN pyrec.impressions.shown_at IS 'When the recommendations were served';

CREATE VIEW pyrec.experiments AS
SELECT e.name, e.status, e.control, e.models,
       e.variants,
       e.description, e.created_at, e.created_by, e.stopped_at,
       (SELECT count(*) FROM pyrec.impressions i WHERE i.experiment_id = e.experiment_id) AS impressions
FROM pyrec._experiments e;
COMMENT ON VIEW pyrec.experiments IS 'A/B experiments: status, control, variants and their shares, impressions so far';

COMMENT ON COLUMN pyrec.experiments.name IS 'Experiment name, as passed to recommend(..., experiment => name)';
COMMENT ON COLUMN pyrec.experiments.status IS 'running or stopped';
COMMENT ON COLUMN pyrec.experiments.control IS 'The control variant, the baseline of experiment_results';
COMMENT ON COLUMN pyrec.experiments.models IS 'Models the variants serve';
COMMENT ON COLUMN pyrec.experiments.variants IS 'Variants with their share of users, model or popular, filter, promotion, exploration';
COMMENT ON COLUMN pyrec.experiments.description IS 'Free text given at create_experiment';
COMMENT ON COLUMN pyrec.experiments.created_at IS 'When create_experiment ran';
COMMENT ON COLUMN pyrec.experiments.created_by IS 'Role that ran create_experiment';
COMMENT ON COLUMN pyrec.experiments.stopped_at IS 'When stop_experiment ran (NULL while running)';
COMMENT ON COLUMN pyrec.experiments.impressions IS 'Recommendation calls logged so far';
