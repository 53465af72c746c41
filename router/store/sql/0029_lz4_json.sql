-- The routing path's JSON values compressed with lz4 rather than pglz
-- (docs/operations.md, "The record insert's PostgreSQL CPU, by part"). A
-- record row over about 2 kB (a long e-mail body, a rule trace, a large
-- customer context) has its JSON values compressed at insert: pglz costs
-- about twice the CPU of lz4 for a result no smaller. Rows under that size
-- (most chat contacts) are stored as they are either way.
--
-- SET COMPRESSION only changes the catalog: values already stored keep
-- their method (each value records its own) and stay readable, nothing is
-- rewritten, so this is as quick on 10M rows as on none (a catalog update
-- per partition); it takes a brief ACCESS EXCLUSIVE lock on contacts, each
-- partition and deliveries (waiting for the statements running on them,
-- e.g. an export). New monthly partitions copy the parent's methods
-- (ensure_partitions). A server built without lz4 keeps pglz (a notice),
-- and the migration still applies.
DO $$
DECLARE
    t regclass;
BEGIN
    -- SET COMPRESSION does not recurse: the parent, then each partition
    FOR t IN SELECT 'contacts'::regclass
             UNION ALL
             SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'contacts'::regclass
    LOOP
        EXECUTE format(
            'ALTER TABLE %s
                 ALTER COLUMN contact SET COMPRESSION lz4,
                 ALTER COLUMN context SET COMPRESSION lz4,
                 ALTER COLUMN decision SET COMPRESSION lz4,
                 ALTER COLUMN trace SET COMPRESSION lz4,
                 ALTER COLUMN timings SET COMPRESSION lz4,
                 ALTER COLUMN steps SET COMPRESSION lz4', t);
    END LOOP;
    ALTER TABLE deliveries ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: the JSON columns keep pglz';
END $$;
