-- Training: procedures, so progress is committed where other sessions see it while it runs.
-- No SET clause: a procedure with one cannot commit; the Python qualifies every name itself.

CREATE PROCEDURE pyrec.train(model text, options jsonb DEFAULT '{}', mode text DEFAULT 'full')
LANGUAGE plpgsql
AS $fn$
DECLARE
    outcome jsonb;
BEGIN
    CALL pyrec._call_proc('train', jsonb_build_object('model', model, 'options', options, 'mode', mode), outcome);
    RAISE NOTICE '%', pyrec._result(outcome)->>'notice';
END
$fn$;
COMMENT ON PROCEDURE pyrec.train(text, jsonb, text) IS
'Trains a new version (holdout metrics first), then activates it; the previous version serves until then. mode => ''update'' warm-starts from the active version';
