-- Column comments for the relations people browse (psql \d+, BI tools' data dictionaries).

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

COMMENT ON COLUMN pyrec.filters.model IS 'Model the filter belongs to';
COMMENT ON COLUMN pyrec.filters.name IS 'Filter name, usable as the filter argument of recommend()';
COMMENT ON COLUMN pyrec.filters.expression IS 'The filter expression as written (Personalize syntax or a SQL predicate on item columns)';
COMMENT ON COLUMN pyrec.filters.target IS 'What the filter selects: ItemID (recommend, similar_items) or UserID (users_for_item, segments)';
COMMENT ON COLUMN pyrec.filters.params IS 'Names of the $PARAMETERS the expression expects';
COMMENT ON COLUMN pyrec.filters.created_at IS 'When create_filter ran';
COMMENT ON COLUMN pyrec.filters.created_by IS 'Role that ran create_filter';

COMMENT ON COLUMN pyrec.impressions.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impressions.experiment_id IS 'Experiment the call was served under';
COMMENT ON COLUMN pyrec.impressions.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impressions.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impressions.items IS 'Items shown, in rank order';
COMMENT ON COLUMN pyrec.impressions.scores IS 'Their scores, in the same order';
COMMENT ON COLUMN pyrec.impressions.shown_at IS 'When the recommendations were served';

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

COMMENT ON COLUMN pyrec.audit.audit_id IS 'Increasing id of the entry';
COMMENT ON COLUMN pyrec.audit.at IS 'When the action happened';
COMMENT ON COLUMN pyrec.audit.role IS 'Effective role (current_user) that did it';
COMMENT ON COLUMN pyrec.audit.session_role IS 'Role that logged in (session_user)';
COMMENT ON COLUMN pyrec.audit.action IS 'create_model, train, activate, schedule, unschedule, drop_model, forget_user, create_filter, ...';
COMMENT ON COLUMN pyrec.audit.model IS 'Model concerned, if any';
COMMENT ON COLUMN pyrec.audit.details IS 'Arguments and outcome of the action';

COMMENT ON COLUMN pyrec.model_metrics.model IS 'Model name';
COMMENT ON COLUMN pyrec.model_metrics.version IS 'Version the metric belongs to';
COMMENT ON COLUMN pyrec.model_metrics.recipe IS 'Recipe that produced the version';
COMMENT ON COLUMN pyrec.model_metrics.trained_at IS 'When the version was trained (the x axis of metrics over time)';
COMMENT ON COLUMN pyrec.model_metrics.activated_at IS 'When the version last became active';
COMMENT ON COLUMN pyrec.model_metrics.active IS 'Whether recommend() serves this version now';
COMMENT ON COLUMN pyrec.model_metrics.mode IS 'full, or update (warm start)';
COMMENT ON COLUMN pyrec.model_metrics.protocol IS 'Holdout protocol: random_per_user, random_per_item or time';
COMMENT ON COLUMN pyrec.model_metrics.holdout IS 'Share of interactions held out';
COMMENT ON COLUMN pyrec.model_metrics.users_evaluated IS 'Users with held-out interactions that the metrics average over';
COMMENT ON COLUMN pyrec.model_metrics.metric IS 'precision, recall, ndcg, mrr, map or coverage';
COMMENT ON COLUMN pyrec.model_metrics.k IS 'Cut-off: the metric is over each user''s top k';
COMMENT ON COLUMN pyrec.model_metrics.value IS 'The version''s score';
COMMENT ON COLUMN pyrec.model_metrics.popularity IS 'The popularity baseline''s score on the same split (the bar to beat)';

COMMENT ON COLUMN pyrec.impression_log.recommendation_id IS 'Id of one recommend(..., experiment => ...) call';
COMMENT ON COLUMN pyrec.impression_log.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impression_log.variant IS 'Variant the user was assigned to';
COMMENT ON COLUMN pyrec.impression_log.user_id IS 'User served';
COMMENT ON COLUMN pyrec.impression_log.item_id IS 'One item shown';
COMMENT ON COLUMN pyrec.impression_log.rank IS 'Its position in the list, from 1';
COMMENT ON COLUMN pyrec.impression_log.score IS 'Its score';
COMMENT ON COLUMN pyrec.impression_log.shown_at IS 'When the list was served';

COMMENT ON COLUMN pyrec.impressions_daily.experiment IS 'Experiment name';
COMMENT ON COLUMN pyrec.impressions_daily.variant IS 'Variant';
COMMENT ON COLUMN pyrec.impressions_daily.day IS 'Day served (session time zone)';
COMMENT ON COLUMN pyrec.impressions_daily.impressions IS 'recommend() calls served';
COMMENT ON COLUMN pyrec.impressions_daily.users IS 'Distinct users served';
COMMENT ON COLUMN pyrec.impressions_daily.items_shown IS 'Items shown, summed over the calls';

COMMENT ON COLUMN pyrec.batch_outputs.model IS 'Model name';
COMMENT ON COLUMN pyrec.batch_outputs.target IS 'Output table';
COMMENT ON COLUMN pyrec.batch_outputs.produced_by IS 'batch_recommend or batch_users_for_items';
COMMENT ON COLUMN pyrec.batch_outputs.version IS 'Model version the rows were scored with';
COMMENT ON COLUMN pyrec.batch_outputs.rows_written IS 'Rows the last job wrote';
COMMENT ON COLUMN pyrec.batch_outputs.written_at IS 'When the last job finished';
COMMENT ON COLUMN pyrec.batch_outputs.present IS 'Whether the table still holds that job''s rows (false: dropped, or written by another model since)';
COMMENT ON COLUMN pyrec.batch_outputs.bi_views IS 'Views pyrec.create_bi_view made over the table';
