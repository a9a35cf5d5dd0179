-- Training: a procedure, so it can commit progress that other sessions see while it runs.
-- No SET clause: a procedure with one cannot commit; the Python qualifies every name itself.

CREATE PROCEDURE pyrec.train(model text, options jsonb DEFAULT '{}')
LANGUAGE plpython3u
AS $fn$
if "pyrec" not in GD:
    plpy.execute("SELECT pyrec._python()")
GD["pyrec"].train(plpy, model, options)
$fn$;
COMMENT ON PROCEDURE pyrec.train(text, jsonb) IS
'Trains a new version (holdout metrics first), then activates it; the previous version serves until then';
