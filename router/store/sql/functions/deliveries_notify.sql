-- Wake the dispatchers (LISTEN omniroute_deliveries) when outbox rows are
-- written (the trigger deliveries_written, migration 0016); the notification
-- is sent at commit, once per transaction.
CREATE OR REPLACE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written) THEN
        PERFORM pg_notify('omniroute_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;
