-- Typed columns that reporting groups and filters by, filled at routing time,
-- and the outcome of each contact as the platform reports it.

ALTER TABLE contacts
    ADD COLUMN tier            text,            -- the customer's tier when routed
    ADD COLUMN repeat_24h      boolean NOT NULL DEFAULT false,  -- same customer within 24 h before
    ADD COLUMN repeat_7d       boolean NOT NULL DEFAULT false,  -- same customer within 7 d before
    ADD COLUMN previous_channel text,           -- channel of the customer's previous contact (7 d)
    ADD COLUMN channel_switch  boolean NOT NULL DEFAULT false,  -- previous contact (7 d) on another channel
    ADD COLUMN context_degraded boolean NOT NULL DEFAULT false, -- routed without the full context
    ADD COLUMN routing_ms      real,            -- time to route and record
    ADD COLUMN outcome         text,            -- last outcome event: assigned, answered, ...
    ADD COLUMN agent           text,            -- the agent assigned / who answered
    ADD COLUMN assigned_at     timestamptz,
    ADD COLUMN answered_at     timestamptz,
    ADD COLUMN abandoned_at    timestamptz,
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN closed_at       timestamptz,
    ADD COLUMN sla_met         boolean;         -- answered within the decision's SLA

-- Outcome events reported by the platform, idempotent per (contact, event_id).
CREATE TABLE contact_events (
    contact_id   uuid NOT NULL,
    received_at  timestamptz NOT NULL,         -- the contact's, to find its partition
    event_id     text NOT NULL,
    type         text NOT NULL,
    at           timestamptz NOT NULL,
    agent        text,
    data         jsonb NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, event_id)
);
CREATE INDEX contact_events_time ON contact_events (at);

CREATE OR REPLACE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       (timings ->> 'total_ms')::double precision AS routing_ms
  FROM contacts;
