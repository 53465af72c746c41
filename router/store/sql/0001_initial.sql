-- omniroute schema v1: customers and their identities, the routed-contact
-- record (partitioned by month), idempotency keys, rulesets.

CREATE TABLE customers (
    customer_id   uuid PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    origin        text NOT NULL DEFAULT 'contact',      -- 'contact' | 'crm'
    name          text,
    tier          text,
    language      text,
    segment       text,
    attributes    jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE identities (
    kind          text NOT NULL,
    value         text NOT NULL,
    customer_id   uuid NOT NULL REFERENCES customers ON DELETE CASCADE,
    verified      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_customer ON identities (customer_id);

-- The reporting record: one row per routed contact.
CREATE TABLE contacts (
    contact_id      uuid NOT NULL,             -- UUIDv7 carrying received_at
    received_at     timestamptz NOT NULL,
    adapter         text NOT NULL,
    provider        text NOT NULL,
    channel         text NOT NULL,
    external_id     text NOT NULL,
    thread_id       text,
    customer_id     uuid,
    known_customer  boolean NOT NULL,
    queue           text NOT NULL,
    priority        integer NOT NULL,
    skills          text[] NOT NULL DEFAULT '{}',
    sla_seconds     integer,
    tags            text[] NOT NULL DEFAULT '{}',
    preferred_agent text,
    rule            text,
    ruleset         text NOT NULL,
    contact         jsonb NOT NULL,            -- the normalized contact
    context         jsonb NOT NULL,            -- the customer context the rules saw
    decision        jsonb NOT NULL,            -- the full decision (overflow steps...)
    trace           jsonb,                     -- rule-by-rule evaluation
    timings         jsonb NOT NULL,            -- milliseconds per stage
    PRIMARY KEY (contact_id, received_at)
) PARTITION BY RANGE (received_at);

CREATE TABLE contacts_default PARTITION OF contacts DEFAULT;

CREATE INDEX contacts_time ON contacts (received_at DESC, contact_id DESC);
CREATE INDEX contacts_customer ON contacts (customer_id, received_at DESC);
CREATE INDEX contacts_channel ON contacts (channel, received_at DESC);
CREATE INDEX contacts_queue ON contacts (queue, received_at DESC);

-- Idempotency: the first delivery of (adapter, external_id) holds the key.
-- Unpartitioned, so it holds across partitions and retention.
CREATE TABLE contact_keys (
    adapter       text NOT NULL,
    external_id   text NOT NULL,
    contact_id    uuid NOT NULL,
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (adapter, external_id)
);

CREATE TABLE rulesets (
    version       text PRIMARY KEY,
    sources       jsonb NOT NULL,
    first_loaded_at timestamptz NOT NULL DEFAULT now(),
    loaded_at     timestamptz NOT NULL DEFAULT now()
);

-- Monthly partitions from the month of `start` for `months` months.
CREATE FUNCTION ensure_partitions(start timestamptz, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m       timestamptz := date_trunc('month', start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    name    text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('contacts_%s', to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'));
        IF to_regclass(format('%I.%I', current_schema(), name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF contacts FOR VALUES FROM (%L) TO (%L)',
                name, m, m + interval '1 month');
            created := created + 1;
        END IF;
        m := m + interval '1 month';
    END LOOP;
    RETURN created;
END $$;

SELECT ensure_partitions(now() - interval '1 month', 4);

-- Resolve one contact in one round trip: either the record of an earlier
-- delivery with the same key, or the customer (found or created) and the
-- context the rules need. Identifiers arrive strongest first. Concurrent
-- first contacts of one person serialize on per-identity advisory locks
-- (taken in sorted order), so they end up with one customer.
CREATE FUNCTION resolve_contact(
    p_adapter     text,
    p_external_id text,
    p_kinds       text[],
    p_values      text[],
    p_verified    boolean[],
    p_new_id      uuid,
    p_at          timestamptz
) RETURNS TABLE (
    dup_contact_id  uuid,
    dup_customer_id uuid,
    dup_decision    jsonb,
    customer_id     uuid,
    known           boolean,
    name            text,
    tier            text,
    language        text,
    segment         text,
    attributes      jsonb,
    contacts_24h    integer,
    contacts_7d     integer,
    last_at         timestamptz,
    last_channel    text,
    last_queue      text
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_customer uuid;
    v_origin   text;
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

    PERFORM pg_advisory_xact_lock(hashtextextended(t.k || chr(31) || t.v, 0))
       FROM (SELECT DISTINCT k, v FROM unnest(p_kinds, p_values) AS u(k, v)) t
      ORDER BY hashtextextended(t.k || chr(31) || t.v, 0);

    SELECT i.customer_id INTO v_customer
      FROM unnest(p_kinds, p_values) WITH ORDINALITY AS u(k, v, n)
      JOIN identities i ON i.kind = u.k AND i.value = u.v
     ORDER BY u.n
     LIMIT 1;

    IF v_customer IS NULL THEN
        v_customer := p_new_id;
        INSERT INTO customers (customer_id) VALUES (v_customer);
        known := false;
    END IF;

    INSERT INTO identities (kind, value, customer_id, verified)
    SELECT u.k, u.v, v_customer, u.ver
      FROM unnest(p_kinds, p_values, p_verified) AS u(k, v, ver)
    ON CONFLICT (kind, value) DO UPDATE
       SET verified = true
     WHERE identities.customer_id = EXCLUDED.customer_id
       AND EXCLUDED.verified AND NOT identities.verified;

    customer_id := v_customer;
    SELECT c.name, c.tier, c.language, c.segment, c.attributes, c.origin
      INTO name, tier, language, segment, attributes, v_origin
      FROM customers c WHERE c.customer_id = v_customer;

    SELECT count(*) FILTER (WHERE x.received_at >= p_at - interval '24 hours'),
           count(*)
      INTO contacts_24h, contacts_7d
      FROM contacts x
     WHERE x.customer_id = v_customer
       AND x.received_at >= p_at - interval '7 days'
       AND x.received_at <= p_at;

    SELECT x.received_at, x.channel, x.queue
      INTO last_at, last_channel, last_queue
      FROM contacts x
     WHERE x.customer_id = v_customer AND x.received_at <= p_at
     ORDER BY x.received_at DESC
     LIMIT 1;

    IF known IS NULL THEN
        known := last_at IS NOT NULL OR v_origin = 'crm';
    END IF;
    RETURN NEXT;
END $$;

CREATE SCHEMA IF NOT EXISTS reporting;

-- The stable contract for BI tools: columns are only ever added.
CREATE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       (timings ->> 'total_ms')::double precision AS routing_ms
  FROM contacts;
