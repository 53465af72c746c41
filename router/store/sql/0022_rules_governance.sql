-- Rules governance: who published which ruleset version, when, why, and on
-- top of which version; and which side of each rollout a contact fell on.

-- The rulesets table keeps one row per version (a content hash) with its
-- files. A version is published by an entry here; the newest entry is the
-- published version. Publishing an earlier version again (a rollback) is a
-- new entry, so the trail is complete and never rewritten.
CREATE TABLE ruleset_publications (
    publication   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version       text NOT NULL REFERENCES rulesets (version),
    -- the version published before this one (NULL: the first publication)
    parent        text,
    -- the name of the API token that published it (or "start-up")
    author        text NOT NULL,
    comment       text NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ruleset_publications_version ON ruleset_publications (version, publication DESC);

-- Where a version came from when it was first stored: 'files' (loaded from
-- disk) or 'published' (sent to the API or the command line).
ALTER TABLE rulesets ADD COLUMN origin text NOT NULL DEFAULT 'files';

-- The rollout sides of the rules that decided or added to a contact:
-- "rule:in" / "rule:out" for every rollout rule whose conditions held,
-- comma-separated in rule order; NULL when no rollout rule applied.
ALTER TABLE contacts ADD COLUMN rollout text;
ALTER TABLE contact_rollup ADD COLUMN rollout text;

-- Columns are only ever added to the BI contract: rollout goes last.
CREATE OR REPLACE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       coalesce(routing_ms::text::double precision,
                (timings ->> 'total_ms')::double precision) AS routing_ms,
       tier, repeat_24h, repeat_7d, previous_channel, channel_switch, context_degraded,
       outcome, agent, assigned_at, answered_at, abandoned_at, resolved_at, closed_at,
       sla_met, rollout
  FROM contacts;
