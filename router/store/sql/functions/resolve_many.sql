-- The batch as JSON, as the service passed it before resolve_batch took
-- arrays: kept so that instances still running the earlier release resolve
-- while a rolling upgrade replaces them (a migration run by the first new
-- instance would otherwise leave them without the function they call).
-- It unpacks the JSON into resolve_batch's arrays; nothing else calls it.
-- Drop it in the release after the next one.
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
) LANGUAGE sql AS $$
    SELECT * FROM resolve_batch(
        ARRAY(SELECT e ->> 'a' FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT e ->> 'e' FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT e ->> 'h' FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT (e ->> 'n')::uuid FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT (e ->> 'c')::uuid FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT (e ->> 't')::timestamptz FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n) ORDER BY n),
        ARRAY(SELECT (b.n - 1)::integer
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n),
                     jsonb_array_elements_text(b.e -> 'k') WITH ORDINALITY AS k(kind, m)
               ORDER BY b.n, k.m),
        ARRAY(SELECT k.kind
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n),
                     jsonb_array_elements_text(b.e -> 'k') WITH ORDINALITY AS k(kind, m)
               ORDER BY b.n, k.m),
        ARRAY(SELECT v.value
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n),
                     jsonb_array_elements_text(b.e -> 'v') WITH ORDINALITY AS v(value, m)
               ORDER BY b.n, v.m),
        ARRAY(SELECT f.verified::boolean
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(e, n),
                     jsonb_array_elements_text(b.e -> 'f') WITH ORDINALITY AS f(verified, m)
               ORDER BY b.n, f.m))
$$;
