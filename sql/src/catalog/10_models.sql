-- Catalog: models, their versions and training runs. Functions reach these by qualified name.

CREATE TABLE pyrec.models (
    model_id       serial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    recipe         text NOT NULL,
    interactions   text NOT NULL,
    items          text,
    users          text,
    columns        jsonb NOT NULL,
    options        jsonb NOT NULL DEFAULT '{}',
    active_version integer,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE pyrec.models IS 'Recommendation models: source relations, column mapping, recipe, serving version';


COMMENT ON COLUMN pyrec.models.model_id IS 'Internal id; version tables are named m<model_id>_v<version>_*';
COMMENT ON COLUMN pyrec.models.name IS 'Model name, as passed to recommend(), train() and the other functions';
COMMENT ON COLUMN pyrec.models.recipe IS 'Recipe trained: auto, als, ease, sims, popularity, trending';
COMMENT ON COLUMN pyrec.models.interactions IS 'The interactions table or view the model reads (user, item, [timestamp, event type, event value])';
COMMENT ON COLUMN pyrec.models.items IS 'Optional items table or view: filters on Items fields, cold-start attributes';
COMMENT ON COLUMN pyrec.models.users IS 'Optional users table or view: filters on CurrentUser fields, cold-start attributes';
COMMENT ON COLUMN pyrec.models.columns IS 'Which column of each relation plays which role, and its type, as resolved at create_model';
COMMENT ON COLUMN pyrec.models.options IS 'Training options given to create_model (event weights, holdout, params, ...)';
COMMENT ON COLUMN pyrec.models.active_version IS 'The version recommend() serves; NULL until the first training succeeds';
COMMENT ON COLUMN pyrec.models.created_at IS 'When create_model ran';
COMMENT ON COLUMN pyrec.models.created_by IS 'Role that ran create_model';

CREATE TABLE pyrec._versions (
    model_id         integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    version          integer NOT NULL,
    status           text NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive')),
    recipe           text NOT NULL,
    params           jsonb NOT NULL,
    metrics          jsonb NOT NULL,
    dims             integer NOT NULL,
    n_users          integer NOT NULL,
    n_items          integer NOT NULL,
    n_interactions   bigint NOT NULL,
    items_table      text NOT NULL,
    users_table      text NOT NULL,
    training_seconds double precision NOT NULL,
    mode             text NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'update')),
    base_version     integer,
    fold             text NOT NULL DEFAULT 'none' CHECK (fold IN ('none', 'sum', 'least_squares')),
    fold_state       jsonb NOT NULL DEFAULT '{}',
    ann              boolean NOT NULL DEFAULT false,
    item_features    jsonb NOT NULL DEFAULT '{}',
    n_cold_items     integer NOT NULL DEFAULT 0,
    user_features    jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    ef_search        integer CHECK (ef_search BETWEEN 1 AND 1000),
    ann_recall       real,
    PRIMARY KEY (model_id, version)
);
COMMENT ON TABLE pyrec._versions IS 'Trained versions of each model; read it through pyrec.model_versions';

CREATE TABLE pyrec._runs (
    run_id        bigserial PRIMARY KEY,
    model_id      integer NOT NULL REFERENCES pyrec.models ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'train' CHECK (kind IN ('train', 'batch')),
    target        text,
    version       integer,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    phase         text NOT NULL,
    percent       real NOT NULL DEFAULT 0,
    rows_read     bigint,
    pid           integer NOT NULL,
    backend_start timestamptz,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    message       text
);
COMMENT ON TABLE pyrec._runs IS 'Training runs and batch jobs; read them through pyrec.training_runs and pyrec.batch_jobs';

CREATE VIEW pyrec.model_versions AS
SELECT m.name AS model, v.version, v.status, v.recipe, v.params, v.metrics, v.dims,
       v.n_users, v.n_items, v.n_interactions, v.training_seconds, v.mode, v.base_version,
       v.ann AS hnsw_index, v.n_cold_items, v.created_at,
       v.activated_at, v.items_table, v.users_table, v.ef_search, v.ann_recall
FROM pyrec._versions v JOIN pyrec.models m USING (model_id);
COMMENT ON VIEW pyrec.model_versions IS 'Trained versions: status, recipe, parameters, holdout metrics, sizes, timings';

COMMENT ON COLUMN pyrec.model_versions.model IS 'Model name';
COMMENT ON COLUMN pyrec.model_versions.version IS 'Version number, 1, 2, ... per model';
COMMENT ON COLUMN pyrec.model_versions.status IS 'active (served), inactive (kept for rollback with pyrec.activate)';
COMMENT ON COLUMN pyrec.model_versions.recipe IS 'Recipe that produced the version (for auto: the candidate that won)';
COMMENT ON COLUMN pyrec.model_versions.params IS 'Hyperparameters the recipe used';
COMMENT ON COLUMN pyrec.model_versions.metrics IS 'Offline metrics on the holdout (precision@k, recall@k, ndcg@k, mrr@25, map@10, coverage@10), the popularity baseline, auto''s candidates';
COMMENT ON COLUMN pyrec.model_versions.dims IS 'Dimensions of the embeddings (pgvector vector(dims))';
COMMENT ON COLUMN pyrec.model_versions.n_users IS 'Users with a trained vector';
COMMENT ON COLUMN pyrec.model_versions.n_items IS 'Items with a trained vector';
COMMENT ON COLUMN pyrec.model_versions.n_interactions IS 'Distinct (user, item) pairs trained on';
COMMENT ON COLUMN pyrec.model_versions.training_seconds IS 'Wall-clock seconds from reading to written vectors';
COMMENT ON COLUMN pyrec.model_versions.mode IS 'full, or update (warm start from base_version)';
COMMENT ON COLUMN pyrec.model_versions.base_version IS 'For mode update: the version it started from';
COMMENT ON COLUMN pyrec.model_versions.hnsw_index IS 'Whether the item vectors have an HNSW index (approximate search for large catalogs)';
COMMENT ON COLUMN pyrec.model_versions.n_cold_items IS 'Items without interactions given vectors from their attributes';
COMMENT ON COLUMN pyrec.model_versions.created_at IS 'When the training that wrote the version committed';
COMMENT ON COLUMN pyrec.model_versions.activated_at IS 'When the version last became active';
COMMENT ON COLUMN pyrec.model_versions.items_table IS 'Table in schema pyrec holding the item vectors';
COMMENT ON COLUMN pyrec.model_versions.users_table IS 'Table in schema pyrec holding the user vectors';
COMMENT ON COLUMN pyrec.model_versions.ef_search IS 'With an HNSW index: the hnsw.ef_search recommend() uses for trained users, the smallest that reached the target recall@10 on a sample of them at training';
COMMENT ON COLUMN pyrec.model_versions.ann_recall IS 'With an HNSW index: recall@10 of the index at ef_search against the exact scan, on that sample (seen items left out, as recommend() does)';

-- a run whose backend is gone (killed, crashed, server restarted) shows as failed at once;
-- a standby cannot tell (the primary's backends are not among its own): it shows the row
CREATE VIEW pyrec._runs_now AS
SELECT r.run_id, r.model_id, r.kind, r.target, r.version,
       CASE WHEN gone THEN 'failed' ELSE r.status END AS status, r.phase, r.percent,
       r.rows_read, r.pid, r.started_at, r.finished_at,
       CASE WHEN gone THEN 'the backend exited before finishing' ELSE r.message END AS message
FROM pyrec._runs r,
     LATERAL (SELECT r.status = 'running' AND NOT pg_catalog.pg_is_in_recovery() AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid = r.pid AND a.backend_start = r.backend_start)) g(gone);
COMMENT ON VIEW pyrec._runs_now IS 'pyrec._runs with runs of vanished backends shown as failed';

CREATE VIEW pyrec.training_runs AS
SELECT r.run_id, m.name AS model, r.version, r.status, r.phase, r.percent, r.rows_read,
       r.pid, r.started_at, r.finished_at, r.finished_at - r.started_at AS duration, r.message
FROM pyrec._runs_now r JOIN pyrec.models m USING (model_id)
WHERE r.kind = 'train';
COMMENT ON VIEW pyrec.training_runs IS 'Progress of running trainings and the outcome of past ones';

COMMENT ON COLUMN pyrec.training_runs.run_id IS 'Run id (shared with batch_jobs)';
COMMENT ON COLUMN pyrec.training_runs.model IS 'Model name';
COMMENT ON COLUMN pyrec.training_runs.version IS 'Version the run wrote, once it succeeded';
COMMENT ON COLUMN pyrec.training_runs.status IS 'running, succeeded, or failed (also when its session ended without finishing: see message)';
COMMENT ON COLUMN pyrec.training_runs.phase IS 'Current or last phase: reading, evaluating, training, writing';
COMMENT ON COLUMN pyrec.training_runs.percent IS 'Rough progress, 0 to 100';
COMMENT ON COLUMN pyrec.training_runs.rows_read IS 'Interaction rows read';
COMMENT ON COLUMN pyrec.training_runs.pid IS 'Backend process id of the session running it';
COMMENT ON COLUMN pyrec.training_runs.started_at IS 'When the run started';
COMMENT ON COLUMN pyrec.training_runs.finished_at IS 'When it finished (NULL while running)';
COMMENT ON COLUMN pyrec.training_runs.duration IS 'finished_at - started_at, or the time so far';
COMMENT ON COLUMN pyrec.training_runs.message IS 'Error message of a failed run';

CREATE VIEW pyrec.batch_jobs AS
SELECT r.run_id, m.name AS model, r.version, r.target, r.status, r.phase, r.percent,
       r.rows_read AS rows_written, r.pid, r.started_at, r.finished_at,
       r.finished_at - r.started_at AS duration, r.message
FROM pyrec._runs_now r JOIN pyrec.models m USING (model_id)
WHERE r.kind = 'batch';
COMMENT ON VIEW pyrec.batch_jobs IS 'Progress of running batch jobs (batch_recommend, batch_users_for_items) and the outcome of past ones';

COMMENT ON COLUMN pyrec.batch_jobs.run_id IS 'Run id (shared with training_runs)';
COMMENT ON COLUMN pyrec.batch_jobs.model IS 'Model name';
COMMENT ON COLUMN pyrec.batch_jobs.version IS 'Model version the job scored with';
COMMENT ON COLUMN pyrec.batch_jobs.target IS 'Output table the job writes (replaced atomically when it succeeds)';
COMMENT ON COLUMN pyrec.batch_jobs.status IS 'running, succeeded, or failed (also when its session ended without finishing: see message)';
COMMENT ON COLUMN pyrec.batch_jobs.phase IS 'Current or last phase';
COMMENT ON COLUMN pyrec.batch_jobs.percent IS 'Rough progress, 0 to 100';
COMMENT ON COLUMN pyrec.batch_jobs.rows_written IS 'Rows written to the output table';
COMMENT ON COLUMN pyrec.batch_jobs.pid IS 'Backend process id of the session running it';
COMMENT ON COLUMN pyrec.batch_jobs.started_at IS 'When the job started';
COMMENT ON COLUMN pyrec.batch_jobs.finished_at IS 'When it finished (NULL while running)';
COMMENT ON COLUMN pyrec.batch_jobs.duration IS 'finished_at - started_at, or the time so far';
COMMENT ON COLUMN pyrec.batch_jobs.message IS 'Error message of a failed job';
