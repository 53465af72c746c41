-- Tell the instances (LISTEN omniroute_live) that lifecycle_log rows were
-- written (the trigger lifecycle_log_written, migration 0017); the
-- notification is sent at commit, once per transaction.
CREATE OR REPLACE FUNCTION lifecycle_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written) THEN
        PERFORM pg_notify('omniroute_live', '');
    END IF;
    RETURN NULL;
END
$$;
