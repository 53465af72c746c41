-- The live view (docs/api.md#live): every lifecycle change of a contact
-- (routed, step, assigned, answered, abandoned, resolved, closed, expired) as
-- a row of an append-only log, written in the transaction of the change. The
-- live stream reads it by id (a client resumes with the last id it saw), the
-- live queue figures count its recent outcomes; rows older than a day are
-- purged by a job.
CREATE TABLE lifecycle_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    contact_id  uuid NOT NULL,
    kind        text NOT NULL,
    queue       text NOT NULL,
    channel     text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'
);
-- the recent outcomes and the purge read by time
CREATE INDEX lifecycle_log_at ON lifecycle_log (at);

-- Tell the instances (LISTEN omniroute_live) that rows were written; sent at
-- commit, once per transaction.
CREATE FUNCTION lifecycle_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written) THEN
        PERFORM pg_notify('omniroute_live', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER lifecycle_log_written AFTER INSERT ON lifecycle_log
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION lifecycle_log_notify();
