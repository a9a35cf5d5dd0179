-- pg_dump keeps the catalog's rows (the vector tables of each version are dumped as user tables)
SELECT pg_catalog.pg_extension_config_dump('pyrec.models', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._versions', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._runs_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._filters', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._experiments', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._experiments_experiment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.impressions', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.impressions_recommendation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec._forgotten', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit', '');
SELECT pg_catalog.pg_extension_config_dump('pyrec.audit_audit_id_seq', '');
