-- Resolve a batch of contacts in one statement and one transaction (see
-- router/store/batching.py). Every identifier of the batch is locked up front
-- in one global order, so concurrent batches cannot deadlock; then each
-- contact is resolved in turn (resolve_contact), seeing the customers created
-- before it.
-- p_batch: [{"a": adapter, "e": external id, "k": [kinds], "v": [values],
--            "f": [verified], "n": new customer id, "c": contact id,
--            "t": received at, "h": thread id}, ...], strongest identifier first.
CREATE OR REPLACE FUNCTION resolve_many(p_batch jsonb)
RETURNS TABLE (
    idx             integer,
    dup_contact_id  uuid,
    dup_customer_id uuid,
    dup_decision    jsonb,
    customer_id     uuid,
    known           boolean,
    context         jsonb
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    item jsonb;
    n    integer := 0;
    r    record;
BEGIN
    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtextextended(u.k || chr(31) || u.v, 0) AS h
               FROM jsonb_array_elements(p_batch) AS e(item),
                    LATERAL unnest(ARRAY(SELECT jsonb_array_elements_text(e.item -> 'k')),
                                   ARRAY(SELECT jsonb_array_elements_text(e.item -> 'v')))
                            AS u(k, v)) t
      ORDER BY h;
    FOR item IN SELECT value FROM jsonb_array_elements(p_batch) LOOP
        FOR r IN SELECT * FROM resolve_contact(
                item ->> 'a', item ->> 'e',
                ARRAY(SELECT jsonb_array_elements_text(item -> 'k')),
                ARRAY(SELECT jsonb_array_elements_text(item -> 'v')),
                ARRAY(SELECT x::boolean FROM jsonb_array_elements_text(item -> 'f') AS x),
                (item ->> 'n')::uuid, (item ->> 'c')::uuid, (item ->> 't')::timestamptz,
                item ->> 'h') LOOP
            idx := n;
            dup_contact_id := r.dup_contact_id;
            dup_customer_id := r.dup_customer_id;
            dup_decision := r.dup_decision;
            customer_id := r.customer_id;
            known := r.known;
            context := r.context;
            RETURN NEXT;
        END LOOP;
        n := n + 1;
    END LOOP;
END $$;
