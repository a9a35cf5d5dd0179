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
       v.activated_at, v.items_table, v.users_table
FROM pyrec._versions v JOIN pyrec.models m USING (model_id);
COMMENT ON VIEW pyrec.model_versions IS 'Trained versions: status, recipe, parameters, holdout metrics, sizes, timings';

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

CREATE VIEW pyrec.batch_jobs AS
SELECT r.run_id, m.name AS model, r.version, r.target, r.status, r.phase, r.percent,
       r.rows_read AS rows_written, r.pid, r.started_at, r.finished_at,
       r.finished_at - r.started_at AS duration, r.message
FROM pyrec._runs_now r JOIN pyrec.models m USING (model_id)
WHERE r.kind = 'batch';
COMMENT ON VIEW pyrec.batch_jobs IS 'Progress of running batch jobs (batch_recommend, batch_users_for_items) and the outcome of past ones';

-- pg_dump keeps the catalog's rows (the vector tables of each version are dumped as user tables)
SELECT pg_catalog.pg_extension_config_dump('pyrec.models', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._versions', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs_run_id_seq', '');
