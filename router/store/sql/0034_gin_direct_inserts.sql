-- The record's two GIN indexes (contacts_tags, contacts_identifier_values)
-- take each new row's entries at once rather than through their pending
-- list (docs/operations.md, "A routing tail that was the GIN pending list").
-- With PostgreSQL's default (fastupdate on), an insert appends its entries to
-- the index's pending list, and the insert that finds the list past
-- gin_pending_list_limit (4 MB) moves the whole list into the index itself,
-- inside its own statement: at a few thousand contacts a second that was one
-- record batch every 50-60 s held for 250-300 ms (200,000 WAL records, half a
-- million buffers), the p99 of every request queued behind it. Entered at
-- once, each row costs a few index page touches and no batch ever pays for
-- the others; measured, PostgreSQL's CPU per contact did not grow, and
-- searches no longer read a pending list.
--
-- A partitioned index takes no storage parameters in PostgreSQL 15 (ALTER
-- INDEX ... SET is refused on it), so each partition's GIN indexes get the
-- setting, here for the partitions that exist and in ensure_partitions for
-- those it creates. Setting it rewrites nothing; it takes a brief ACCESS
-- EXCLUSIVE lock on each GIN index (an insert into that partition waits for
-- this transaction), so the pending lists are moved into the indexes first,
-- under the ordinary lock inserts take, and only then is the setting made.
DO $$
DECLARE
    idx regclass;
    gin regclass[];
BEGIN
    SELECT coalesce(array_agg(i.indexrelid::regclass), '{}') INTO gin
      FROM pg_inherits h
      JOIN pg_index i ON i.indrelid = h.inhrelid
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am a ON a.oid = c.relam
     WHERE h.inhparent = 'contacts'::regclass AND a.amname = 'gin';
    FOREACH idx IN ARRAY gin LOOP
        PERFORM gin_clean_pending_list(idx);
    END LOOP;
    FOREACH idx IN ARRAY gin LOOP
        EXECUTE format('ALTER INDEX %s SET (fastupdate = off)', idx);
    END LOOP;
END $$;
