-- Monthly partitions of contacts from the month of `start` for `months`
-- months; returns how many it created. A month's partition can be created
-- when the default partition already holds rows of that month (written while
-- the partition was missing: a long stop, a clock far off, an import of old
-- data): those rows move into the new partition in the same transaction, so
-- nothing is lost or doubled, and an insert into the default partition waits
-- for the move (the new table takes the parent's compression methods, 0029).
-- A new partition's GIN indexes take each row's entries at once, without a
-- pending list (0034: a partitioned index cannot carry the setting itself).
-- The idempotency keys are unpartitioned and point at
-- (contact_id, received_at), which do not change.
CREATE OR REPLACE FUNCTION ensure_partitions(start timestamptz, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m       timestamptz := date_trunc('month', start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    name    text;
    idx     regclass;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('contacts_%s', to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'));
        IF to_regclass(format('%I.%I', current_schema(), name)) IS NULL THEN
            LOCK TABLE contacts_default IN SHARE ROW EXCLUSIVE MODE;
            IF EXISTS (SELECT 1 FROM contacts_default
                        WHERE received_at >= m AND received_at < m + interval '1 month') THEN
                EXECUTE format('CREATE TABLE %I (LIKE contacts INCLUDING DEFAULTS INCLUDING COMPRESSION)', name);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM contacts_default
                                     WHERE received_at >= %L AND received_at < %L RETURNING *)
                     INSERT INTO %I SELECT * FROM moved',
                    m, m + interval '1 month', name);
                EXECUTE format(
                    'ALTER TABLE contacts ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                    name, m, m + interval '1 month');
            ELSE
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF contacts FOR VALUES FROM (%L) TO (%L)',
                    name, m, m + interval '1 month');
            END IF;
            FOR idx IN SELECT i.indexrelid::regclass
                         FROM pg_index i
                         JOIN pg_class c ON c.oid = i.indexrelid
                         JOIN pg_am a ON a.oid = c.relam
                        WHERE i.indrelid = format('%I.%I', current_schema(), name)::regclass
                          AND a.amname = 'gin'
            LOOP
                EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', idx);
            END LOOP;
            created := created + 1;
        END IF;
        m := m + interval '1 month';
    END LOOP;
    RETURN created;
END $$;
