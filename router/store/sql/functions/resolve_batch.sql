-- Resolve a batch of contacts in one call and one transaction (see
-- router/store/batching.py), set-based: a few statements for the whole batch
-- instead of about ten per contact (a quarter to a third of the loop's
-- server CPU, bench/resolve_cpu.py).
--
-- 1. Every identifier of the batch is locked up front in one global order
--    (its hash), so concurrent batches cannot deadlock and the first contacts
--    of one person in concurrent batches end up with one customer.
-- 2. The contacts that share an identifier with another contact of the batch
--    (rare: a person writing twice within a few milliseconds, or a retried
--    delivery in the same batch) are set aside: they are resolved one after
--    the other at the end (resolve_contact), each seeing the customers and
--    identities of those before it, so two of them sharing a new identifier
--    get ONE customer (after all the others: they share nothing with them).
-- 3. Their earlier deliveries (same adapter and external id) are returned,
--    read only when a key of the batch is known (a key whose record is gone
--    is resolved anew, as resolve_contact does).
-- 4. One statement resolves all the others together. They share no
--    identifier, so no one of them can see what another writes: each one's
--    customer -- the one of its strongest known identifier, else a new one --
--    is read from the snapshot before any write; then, in the same
--    statement, the new customers, the identities (a new one is added, a
--    known one of the same customer upgraded to verified) and the conflicts
--    (identifiers of other customers: recorded, never merged) are written.
--    No partitioned table is in it: a batch of new people sets up no scan
--    of `contacts`. A new customer's context is empty (nothing to read).
-- 5. One statement reads the known customers' contexts, only when there are
--    any: profile, counts per channel over the last 30 days (one scan, which
--    usually gives the last contact too), the last contact before that only
--    when there was none in 30 days, the conversation of its thread, the
--    open journeys.
--
-- The result per contact is the one resolve_contact gives: `context` has
-- exactly its shape (router/recognition/context.py builds the rules' context
-- from it); `known` is true when the customer has a contact before this one
-- or comes from the CRM. A contact without identifiers (anonymous) and not
-- delivered before has no row.
--
-- Generic plans (plan_cache_mode): a custom plan of the big statement costs
-- 4-20 ms to make, the generic one is made once per connection; the rows of
-- `contacts` are found by index per customer, partitions pruned at run time.
-- A generic plan is kept for the connection's life, so it must not depend on
-- how big the tables were when it was made: made on a new database's empty
-- tables it read `customers` and `contact_keys` whole with hash joins, and
-- cost more with every contact. Seq scans, hash and merge joins are off for
-- the function: every table is reached by index lookups from the batch's
-- rows (nested loops), whatever the statistics said at planning time.
--
-- The batch comes as arrays (no JSON to parse), one element per contact:
-- adapter, external id, thread id, new customer id, contact id, received at;
-- and one element per identifier, contact after contact, strongest first:
-- p_of (the contact's place in the batch, from 0), kind, value, verified.
CREATE OR REPLACE FUNCTION resolve_batch(
    p_adapter     text[],
    p_external_id text[],
    p_thread      text[],
    p_new_id      uuid[],
    p_contact_id  uuid[],
    p_at          timestamptz[],
    p_of          integer[],
    p_kind        text[],
    p_value       text[],
    p_verified    boolean[]
) RETURNS TABLE (
    idx             integer,
    dup_contact_id  uuid,
    dup_customer_id uuid,
    dup_decision    jsonb,
    customer_id     uuid,
    known           boolean,
    context         jsonb
) LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan
  SET enable_seqscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    v_shared         integer[];
    v_keyed          integer[];
    v_skip           integer[];
    v_known          integer[];
    v_known_customer uuid[];
    v_new            integer[];
    v_new_customer   uuid[];
    v_n              integer;
    r                record;
BEGIN
    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtextextended(u.k || chr(31) || u.v, 0) AS h
               FROM unnest(p_kind, p_value) AS u(k, v)) t
      ORDER BY h;

    -- the contacts sharing an identifier with another one of the batch, and
    -- among the others those whose delivery key is known
    WITH shared AS (
        SELECT coalesce(array_agg(DISTINCT s.o), '{}') AS o
          FROM (SELECT d.o, count(*) OVER (PARTITION BY d.k, d.v) AS holders
                  FROM (SELECT DISTINCT u.o, u.k, u.v
                          FROM unnest(p_of, p_kind, p_value) AS u(o, k, v)) d) s
         WHERE s.holders > 1
    )
    SELECT shared.o,
           ARRAY(SELECT (u.n - 1)::integer
                   FROM unnest(p_adapter, p_external_id) WITH ORDINALITY AS u(a, e, n)
                   JOIN contact_keys k ON k.adapter = u.a AND k.external_id = u.e
                  WHERE u.n - 1 <> ALL (shared.o))
      INTO v_shared, v_keyed
      FROM shared;

    -- their earlier deliveries (a key whose record is gone, erased or
    -- expired, is resolved as a new delivery, as resolve_contact does)
    v_skip := v_shared;
    IF cardinality(v_keyed) > 0 THEN
        FOR r IN SELECT u.idx, c.contact_id, c.customer_id, c.decision
                   FROM unnest(v_keyed) AS u(idx)
                   JOIN contact_keys k ON k.adapter = p_adapter[u.idx + 1]
                                      AND k.external_id = p_external_id[u.idx + 1]
                   JOIN contacts c ON c.contact_id = k.contact_id
                                  AND c.received_at = k.received_at LOOP
            idx := r.idx;
            dup_contact_id := r.contact_id;
            dup_customer_id := r.customer_id;
            dup_decision := r.decision;
            customer_id := NULL;
            known := NULL;
            context := NULL;
            RETURN NEXT;
            v_skip := v_skip || r.idx;
        END LOOP;
    END IF;

    -- the others, together: customers found or made, identities, conflicts
    -- (no partitioned table here: nothing to set up for a batch of new people)
    WITH items AS MATERIALIZED (
        SELECT (u.n - 1)::integer AS idx, u.adapter, u.external_id, u.new_id, u.contact_id
          FROM unnest(p_adapter, p_external_id, p_new_id, p_contact_id)
               WITH ORDINALITY AS u(adapter, external_id, new_id, contact_id, n)
         WHERE u.n - 1 <> ALL (v_skip)
    ), ids AS MATERIALIZED (
        -- each identifier of a contact once: its strongest place, verified if ever
        SELECT u.idx, u.k, u.v, min(u.n) AS o, bool_or(u.f) AS f
          FROM unnest(p_of, p_kind, p_value, p_verified) WITH ORDINALITY AS u(idx, k, v, f, n)
         WHERE u.idx <> ALL (v_skip)
         GROUP BY u.idx, u.k, u.v
    ), held AS MATERIALIZED (
        -- the batch's identifiers already known, and whose they are (one
        -- look-up of the key each: a batch is small, the table is not)
        SELECT d.idx, d.o, d.k, d.v, n.customer_id
          FROM ids d
          CROSS JOIN LATERAL (SELECT n.customer_id FROM identities n
                               WHERE n.kind = d.k AND n.value = d.v LIMIT 1) n
    ), cust AS MATERIALIZED (
        SELECT i.idx, coalesce(s.customer_id, i.new_id) AS customer_id,
               s.customer_id IS NOT NULL AS existed
          FROM items i
          LEFT JOIN (SELECT DISTINCT ON (h.idx) h.idx, h.customer_id
                       FROM held h ORDER BY h.idx, h.o) s ON s.idx = i.idx
         WHERE EXISTS (SELECT 1 FROM ids d WHERE d.idx = i.idx)
    ), created AS (
        INSERT INTO customers (customer_id)
        SELECT c.customer_id FROM cust c WHERE NOT c.existed
    ), conflicts AS (
        INSERT INTO identity_conflicts
               (contact_id, adapter, external_id, customer_id, other_customer_id, kind, value)
        SELECT i.contact_id, i.adapter, i.external_id, c.customer_id, h.customer_id, h.k, h.v
          FROM held h
          JOIN cust c ON c.idx = h.idx
          JOIN items i ON i.idx = h.idx
         WHERE h.customer_id <> c.customer_id
        ON CONFLICT DO NOTHING
    ), upserted AS (
        INSERT INTO identities (kind, value, customer_id, verified)
        SELECT d.k, d.v, c.customer_id, d.f
          FROM ids d JOIN cust c ON c.idx = d.idx
        ON CONFLICT (kind, value) DO UPDATE
           SET verified = true
         WHERE identities.customer_id = EXCLUDED.customer_id
           AND EXCLUDED.verified AND NOT identities.verified
    )
    SELECT coalesce(array_agg(c.idx) FILTER (WHERE c.existed), '{}'),
           coalesce(array_agg(c.customer_id) FILTER (WHERE c.existed), '{}'),
           coalesce(array_agg(c.idx) FILTER (WHERE NOT c.existed), '{}'),
           coalesce(array_agg(c.customer_id) FILTER (WHERE NOT c.existed), '{}')
      INTO v_known, v_known_customer, v_new, v_new_customer
      FROM cust c;

    -- a new customer has no profile, history, conversation or journey yet
    RETURN QUERY
    SELECT u.idx, NULL::uuid, NULL::uuid, NULL::jsonb, u.customer_id, false,
           jsonb_build_object('attributes', '{}'::jsonb, 'per_channel', '{}'::jsonb,
                              'journeys', '[]'::jsonb)
      FROM unnest(v_new, v_new_customer) AS u(idx, customer_id);

    -- the known customers' contexts, all in one statement
    IF cardinality(v_known) > 0 THEN
        RETURN QUERY
        SELECT c.idx, NULL::uuid, NULL::uuid, NULL::jsonb, c.customer_id,
               coalesce(s.last, l.last) IS NOT NULL OR p.origin = 'crm',
               jsonb_build_object('name', p.name, 'tier', p.tier, 'language', p.language,
                                  'segment', p.segment, 'attributes', p.attributes)
               || jsonb_build_object('per_channel', s.counts, 'last', coalesce(s.last, l.last),
                                     'conversation', v.conversation, 'journeys', j.journeys)
          FROM unnest(v_known, v_known_customer) AS c(idx, customer_id)
          CROSS JOIN LATERAL (SELECT p_at[c.idx + 1] AS at, p_thread[c.idx + 1] AS thread) i
          LEFT JOIN customers p ON p.customer_id = c.customer_id
          -- one scan of the last 30 days gives the counts and, usually, the last contact
          CROSS JOIN LATERAL (
              SELECT coalesce(jsonb_object_agg(g.channel, jsonb_build_object(
                         'contacts_24h', g.n24, 'contacts_7d', g.n7, 'contacts_30d', g.n30)),
                         '{}') AS counts,
                     (array_agg(g.last ORDER BY g.last_at DESC))[1] AS last
                FROM (SELECT x.channel,
                             count(*) FILTER (WHERE x.received_at >= i.at - interval '24 hours') AS n24,
                             count(*) FILTER (WHERE x.received_at >= i.at - interval '7 days') AS n7,
                             count(*) AS n30,
                             max(x.received_at) AS last_at,
                             (array_agg(jsonb_build_object('at', x.received_at, 'channel', x.channel,
                                                           'queue', x.queue, 'agent', x.agent,
                                                           'rule', x.rule)
                                        ORDER BY x.received_at DESC))[1] AS last
                        FROM contacts x
                       WHERE x.customer_id = c.customer_id
                         AND x.received_at >= i.at - interval '30 days'
                         AND x.received_at < i.at
                       GROUP BY x.channel) g) s
          -- none in 30 days: the last one before
          LEFT JOIN LATERAL (
              SELECT jsonb_build_object('at', x.received_at, 'channel', x.channel,
                                        'queue', x.queue, 'agent', x.agent, 'rule', x.rule) AS last
                FROM contacts x
               WHERE s.last IS NULL
                 AND x.customer_id = c.customer_id AND x.received_at < i.at - interval '30 days'
               ORDER BY x.received_at DESC
               LIMIT 1) l ON true
          LEFT JOIN LATERAL (
              SELECT jsonb_build_object(
                         'id', i.thread,
                         'started_at', min(x.received_at),
                         'last_at', max(x.received_at),
                         'contacts', count(*),
                         'channels', jsonb_agg(DISTINCT x.channel),
                         'last_queue', (array_agg(x.queue ORDER BY x.received_at DESC))[1],
                         'last_agent', (array_agg(x.agent ORDER BY x.received_at DESC))[1],
                         'open', (array_agg(x.closed_at IS NULL AND x.resolved_at IS NULL
                                            ORDER BY x.received_at DESC))[1]) AS conversation
                FROM contacts x
               WHERE i.thread IS NOT NULL
                 AND x.thread_id = i.thread AND x.customer_id = c.customer_id
                 AND x.received_at < i.at
              HAVING count(*) > 0) v ON true
          CROSS JOIN LATERAL (
              SELECT coalesce(jsonb_agg(jsonb_build_object(
                         'ref', jr.ref, 'type', jr.type, 'step', jr.step,
                         'opened_at', jr.opened_at, 'updated_at', jr.updated_at, 'data', jr.data)
                         ORDER BY jr.updated_at DESC), '[]') AS journeys
                FROM journeys jr
               WHERE jr.customer_id = c.customer_id AND jr.status = 'open') j;
    END IF;

    -- the contacts sharing an identifier, one after the other in batch order
    FOREACH v_n IN ARRAY v_shared LOOP  -- in order: array_agg(DISTINCT) sorts
        FOR r IN SELECT * FROM resolve_contact(
                p_adapter[v_n + 1], p_external_id[v_n + 1],
                ARRAY(SELECT u.k FROM unnest(p_of, p_kind) WITH ORDINALITY AS u(o, k, n)
                       WHERE u.o = v_n ORDER BY u.n),
                ARRAY(SELECT u.v FROM unnest(p_of, p_value) WITH ORDINALITY AS u(o, v, n)
                       WHERE u.o = v_n ORDER BY u.n),
                ARRAY(SELECT u.f FROM unnest(p_of, p_verified) WITH ORDINALITY AS u(o, f, n)
                       WHERE u.o = v_n ORDER BY u.n),
                p_new_id[v_n + 1], p_contact_id[v_n + 1], p_at[v_n + 1],
                p_thread[v_n + 1]) LOOP
            idx := v_n;
            dup_contact_id := r.dup_contact_id;
            dup_customer_id := r.dup_customer_id;
            dup_decision := r.dup_decision;
            customer_id := r.customer_id;
            known := r.known;
            context := r.context;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;
