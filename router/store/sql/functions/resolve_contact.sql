-- Resolve one contact in one round trip: either the record of an earlier
-- delivery with the same key (adapter, external id), or the customer (found
-- or created) and the whole context the rules see, as JSON. Identifiers
-- arrive strongest first; the contact goes to the customer of the strongest
-- one that is known, and identifiers of other customers are recorded as
-- conflicts, never merged. Concurrent first contacts of one person serialize
-- on per-identifier advisory locks (taken in a fixed order), so they end up
-- with one customer. A new customer returns at once (nothing to read);
-- conflicts are only looked for when a contact carries several identifiers;
-- the counts and the last contact come from one scan of the last 30 days.
-- Called by resolve_batch for the contacts of a batch that share an
-- identifier with another one of the batch, one after the other (the others
-- are resolved together, set-based, with the same result).
CREATE OR REPLACE FUNCTION resolve_contact(
    p_adapter     text,
    p_external_id text,
    p_kinds       text[],
    p_values      text[],
    p_verified    boolean[],
    p_new_id      uuid,
    p_contact_id  uuid,
    p_at          timestamptz,
    p_thread      text
) RETURNS TABLE (
    dup_contact_id  uuid,
    dup_customer_id uuid,
    dup_decision    jsonb,
    customer_id     uuid,
    known           boolean,
    context         jsonb
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_customer uuid;
    v_profile  jsonb;
    v_origin   text;
    v_counts   jsonb;
    v_last     jsonb;
    v_conv     jsonb;
    v_journeys jsonb;
BEGIN
    SELECT c.contact_id, c.customer_id, c.decision
      INTO dup_contact_id, dup_customer_id, dup_decision
      FROM contact_keys k
      JOIN contacts c ON c.contact_id = k.contact_id AND c.received_at = k.received_at
     WHERE k.adapter = p_adapter AND k.external_id = p_external_id;
    IF FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    IF coalesce(cardinality(p_kinds), 0) = 0 THEN
        RETURN;  -- anonymous contact: no customer
    END IF;

    PERFORM pg_advisory_xact_lock(h)
       FROM (SELECT DISTINCT hashtextextended(k || chr(31) || v, 0) AS h
               FROM unnest(p_kinds, p_values) AS u(k, v)) t
      ORDER BY h;

    SELECT i.customer_id INTO v_customer
      FROM unnest(p_kinds, p_values) WITH ORDINALITY AS u(k, v, n)
      JOIN identities i ON i.kind = u.k AND i.value = u.v
     ORDER BY u.n
     LIMIT 1;

    IF v_customer IS NULL THEN
        v_customer := p_new_id;
        INSERT INTO customers (customer_id) VALUES (v_customer);
        INSERT INTO identities (kind, value, customer_id, verified)
        SELECT u.k, u.v, v_customer, u.ver
          FROM unnest(p_kinds, p_values, p_verified) AS u(k, v, ver)
        ON CONFLICT (kind, value) DO NOTHING;
        -- a new customer has no profile, history, conversation or journey yet
        customer_id := v_customer;
        known := false;
        context := jsonb_build_object('attributes', '{}'::jsonb, 'per_channel', '{}'::jsonb,
                                      'journeys', '[]'::jsonb);
        RETURN NEXT;
        RETURN;
    ELSIF cardinality(p_kinds) > 1 THEN
        INSERT INTO identity_conflicts
               (contact_id, adapter, external_id, customer_id, other_customer_id, kind, value)
        SELECT p_contact_id, p_adapter, p_external_id, v_customer, i.customer_id, i.kind, i.value
          FROM unnest(p_kinds, p_values) AS u(k, v)
          JOIN identities i ON i.kind = u.k AND i.value = u.v
         WHERE i.customer_id <> v_customer
        ON CONFLICT DO NOTHING;
    END IF;

    INSERT INTO identities (kind, value, customer_id, verified)
    SELECT u.k, u.v, v_customer, u.ver
      FROM unnest(p_kinds, p_values, p_verified) AS u(k, v, ver)
    ON CONFLICT (kind, value) DO UPDATE
       SET verified = true
     WHERE identities.customer_id = EXCLUDED.customer_id
       AND EXCLUDED.verified AND NOT identities.verified;

    SELECT jsonb_build_object('name', c.name, 'tier', c.tier, 'language', c.language,
                              'segment', c.segment, 'attributes', c.attributes),
           c.origin
      INTO v_profile, v_origin
      FROM customers c WHERE c.customer_id = v_customer;

    -- one scan of the last 30 days gives the counts and, usually, the last contact
    SELECT coalesce(jsonb_object_agg(s.channel, jsonb_build_object(
               'contacts_24h', s.n24, 'contacts_7d', s.n7, 'contacts_30d', s.n30)), '{}'),
           (array_agg(s.last ORDER BY s.last_at DESC))[1]
      INTO v_counts, v_last
      FROM (SELECT x.channel,
                   count(*) FILTER (WHERE x.received_at >= p_at - interval '24 hours') AS n24,
                   count(*) FILTER (WHERE x.received_at >= p_at - interval '7 days') AS n7,
                   count(*) AS n30,
                   max(x.received_at) AS last_at,
                   (array_agg(jsonb_build_object('at', x.received_at, 'channel', x.channel,
                                                 'queue', x.queue, 'agent', x.agent,
                                                 'rule', x.rule)
                              ORDER BY x.received_at DESC))[1] AS last
              FROM contacts x
             WHERE x.customer_id = v_customer
               AND x.received_at >= p_at - interval '30 days'
               AND x.received_at < p_at
             GROUP BY x.channel) s;

    IF v_last IS NULL THEN
        SELECT jsonb_build_object('at', x.received_at, 'channel', x.channel, 'queue', x.queue,
                                  'agent', x.agent, 'rule', x.rule)
          INTO v_last
          FROM contacts x
         WHERE x.customer_id = v_customer AND x.received_at < p_at
         ORDER BY x.received_at DESC
         LIMIT 1;
    END IF;

    IF p_thread IS NOT NULL THEN
        SELECT jsonb_build_object(
                   'id', p_thread,
                   'started_at', min(x.received_at),
                   'last_at', max(x.received_at),
                   'contacts', count(*),
                   'channels', jsonb_agg(DISTINCT x.channel),
                   'last_queue', (array_agg(x.queue ORDER BY x.received_at DESC))[1],
                   'last_agent', (array_agg(x.agent ORDER BY x.received_at DESC))[1],
                   'open', (array_agg(x.closed_at IS NULL AND x.resolved_at IS NULL
                                      ORDER BY x.received_at DESC))[1])
          INTO v_conv
          FROM contacts x
         WHERE x.thread_id = p_thread AND x.customer_id = v_customer AND x.received_at < p_at
        HAVING count(*) > 0;
    END IF;

    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'ref', j.ref, 'type', j.type, 'step', j.step, 'opened_at', j.opened_at,
               'updated_at', j.updated_at, 'data', j.data) ORDER BY j.updated_at DESC), '[]')
      INTO v_journeys
      FROM journeys j
     WHERE j.customer_id = v_customer AND j.status = 'open';

    customer_id := v_customer;
    IF known IS NULL THEN
        known := v_last IS NOT NULL OR v_origin = 'crm';
    END IF;
    context := v_profile || jsonb_build_object(
        'per_channel', v_counts, 'last', v_last, 'conversation', v_conv,
        'journeys', v_journeys);
    RETURN NEXT;
END $$;
