-- The record insert's batch as one array of rows (records.insert_many,
-- docs/operations.md, "The record insert's PostgreSQL CPU, by part"): one
-- argument of this type's array instead of an array per column. The
-- driver checks every element of every array argument for a nested array
-- before it encodes it; with one array of rows that is once a row rather
-- than once a row and column, and each row's fields go straight to their
-- encoders.
--
-- The fields are what records._row gives, in its order: the record's own
-- columns, the open row's values, then the JSON document (parsed in SQL).
-- Only that statement uses the type: no table or function holds it, so it
-- can be changed or dropped without touching any data.
--
-- Changing it: the driver reads a composite type's fields once per
-- connection and keeps them, and the server refuses a row whose field count
-- differs from the type's. ALTER TYPE record_row ADD ATTRIBUTE (or DROP, or
-- ALTER ... TYPE) therefore breaks the insert of every instance still
-- running the code written for the old fields, as soon as it commits. A
-- change made during a rolling upgrade is a new type with the new fields
-- (record_row_2, in a new migration, used by the new code), and this one is
-- dropped in the release after next, as resolve_many was kept for the
-- instances still on its release. ADD ATTRIBUTE (new fields at the end) is
-- fine only when every instance is stopped for the upgrade.
CREATE TYPE record_row AS (
    contact_id        uuid,
    received_at       timestamptz,
    adapter           text,
    provider          text,
    channel           text,
    external_id       text,
    thread_id         text,
    customer_id       uuid,
    known_customer    boolean,
    queue             text,
    priority          integer,
    sla_seconds       integer,
    preferred_agent   text,
    rule              text,
    ruleset           text,
    tier              text,
    repeat_24h        boolean,
    repeat_7d         boolean,
    previous_channel  text,
    channel_switch    boolean,
    context_degraded  boolean,
    routing_ms        real,
    rollout           text,
    -- the open row's (all NULL and false when its lifecycle is not kept)
    expires_at        timestamptz,
    next_step_at      timestamptz,
    offer_first       text,
    preferred_until   timestamptz,
    assign            boolean,
    -- contact, context, decision, trace and timings as one JSON text
    document          text
);
