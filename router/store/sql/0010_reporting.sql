-- Cross-channel reporting: indexes for every history filter, hourly rollups
-- for the summary, indexes that retention needs, the complete BI view and a
-- read-only role for BI tools. See docs/reporting.md.

-- History filters: one index per filter, ending in the keyset order
-- (received_at DESC, contact_id DESC) so that a filtered page, first or deep,
-- is a short index range scan per partition.
DROP INDEX IF EXISTS contacts_channel;
DROP INDEX IF EXISTS contacts_queue;
CREATE INDEX contacts_channel_keyset ON contacts (channel, received_at DESC, contact_id DESC);
CREATE INDEX contacts_queue_keyset ON contacts (queue, received_at DESC, contact_id DESC);
CREATE INDEX contacts_adapter_keyset ON contacts (adapter, received_at DESC, contact_id DESC);
CREATE INDEX contacts_rule_keyset ON contacts (rule, received_at DESC, contact_id DESC);
CREATE INDEX contacts_ruleset_keyset ON contacts (ruleset, received_at DESC, contact_id DESC);
CREATE INDEX contacts_outcome_keyset ON contacts (outcome, received_at DESC, contact_id DESC);
CREATE INDEX contacts_tags ON contacts USING gin (tags);

-- Retention deletes the keys and events of dropped partitions by time range;
-- the rollup job finds the hours whose outcomes changed by recorded_at.
CREATE INDEX contact_keys_time ON contact_keys (received_at);
CREATE INDEX contact_events_contact_time ON contact_events (received_at);
CREATE INDEX contact_events_recorded ON contact_events (recorded_at);

-- A one-customer distinct-count sketch: 512 registers of 16 bits; bit k of
-- register r is set when a customer hashed into r has k trailing zero bits in
-- the rest of its hash (capped at 15). OR-ing sketches (bit_or) merges them;
-- the highest set bit of each register is a HyperLogLog register.
-- Estimated in router/aggregates.py. NULL for anonymous contacts. Written as
-- one expression so that the planner inlines it.
CREATE FUNCTION customer_sketch(id uuid) RETURNS bit(8192)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT set_bit(
        repeat('0', 8192)::bit(8192),
        16 * (uuid_hash_extended(id, 0) & 511)::integer + 15
        - coalesce(round(ln(nullif(
              ((uuid_hash_extended(id, 0) >> 9) & 65535)
              & -((uuid_hash_extended(id, 0) >> 9) & 65535), 0)::double precision) / ln(2))::integer,
            15),
        1)
$$;

-- Hourly rollups of the record, one row per UTC hour and combination of the
-- grouping columns that occurred. Rebuilt per hour (delete + insert) by the
-- rollup job, never updated row by row, so there is no hot row. Fixed-width
-- columns come first and nullable ones last: summaries read every column of
-- tens of thousands of rows, and PostgreSQL reads such rows fastest.
DO $$
BEGIN
    EXECUTE format($t$
        CREATE TABLE contact_rollup (
            hour                timestamptz NOT NULL,
            contacts            integer NOT NULL,
            identified          integer NOT NULL,  -- contacts with a customer
            repeat_24h          integer NOT NULL,
            repeat_7d           integer NOT NULL,
            channel_switch      integer NOT NULL,
            with_outcome        integer NOT NULL,  -- an outcome was reported
            answered            integer NOT NULL,
            answered_within_sla integer NOT NULL,
            abandoned           integer NOT NULL,
            routing_n           integer NOT NULL,  -- contacts with a routing time
            routing_ms_sum      double precision NOT NULL,
            %s,                                    -- lat_0 .. lat_51: routing-time histogram
            channel             text NOT NULL,
            adapter             text NOT NULL,
            queue               text NOT NULL,
            rule                text,
            tier                text,
            customers           bit(8192)          -- distinct-count sketch, NULL if none identified
        )$t$,
        (SELECT string_agg(format('lat_%s integer NOT NULL', i), ', ' ORDER BY i)
           FROM generate_series(0, 51) AS i));
    -- Nothing filters or joins on the counters and the sketch: no statistics.
    FOR i IN 0 .. 51 LOOP
        EXECUTE format('ALTER TABLE contact_rollup ALTER COLUMN lat_%s SET STATISTICS 0', i);
    END LOOP;
END $$;
ALTER TABLE contact_rollup ALTER COLUMN customers SET STATISTICS 0;
CREATE INDEX contact_rollup_hour ON contact_rollup (hour);
-- Re-rolled hours leave dead rows behind: vacuum the (small) table early.
ALTER TABLE contact_rollup SET (autovacuum_vacuum_scale_factor = 0.02,
                                autovacuum_analyze_scale_factor = 0.05);

-- How far the rollups reach: every hour before rolled_until is in
-- contact_rollup; outcome events recorded before events_until are applied.
CREATE TABLE rollup_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rolled_until  timestamptz,
    events_until  timestamptz
);
INSERT INTO rollup_state DEFAULT VALUES;

-- The contract for BI tools, version 1: columns are only ever added (the
-- first eighteen are unchanged from earlier releases); a breaking change
-- would be reporting.routed_contacts_v2. Documented column by column in
-- docs/reporting.md.
CREATE OR REPLACE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       (timings ->> 'total_ms')::double precision AS routing_ms,
       tier, repeat_24h, repeat_7d, previous_channel, channel_switch, context_degraded,
       outcome, agent, assigned_at, answered_at, abandoned_at, resolved_at, closed_at,
       sla_met
  FROM contacts;

COMMENT ON VIEW reporting.routed_contacts_v1 IS
    'omniroute: one row per routed contact, every channel; stable contract (columns only added)';

-- A read-only role for BI tools: it sees the reporting schema and nothing
-- else. Roles are cluster-wide: created once, granted in every database.
-- Without the privilege to create roles the migration goes on (a DBA can
-- create it later, see docs/reporting.md) and grants if it exists.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omniroute_reporting') THEN
        BEGIN
            CREATE ROLE omniroute_reporting NOLOGIN;
        EXCEPTION WHEN insufficient_privilege OR duplicate_object THEN
            RAISE NOTICE 'role omniroute_reporting not created: %', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omniroute_reporting') THEN
        GRANT USAGE ON SCHEMA reporting TO omniroute_reporting;
        GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO omniroute_reporting;
        ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO omniroute_reporting;
    END IF;
END $$;
