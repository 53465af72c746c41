-- The agents' surface (docs/agents.md): presence changes on the live stream,
-- the offer and assignment facts in the BI view, and the summary grouped by
-- agent.

-- The lifecycle log carries agents' presence changes too (kind
-- 'agent.presence'): such a row names an agent and no contact, queue or
-- channel. Every row names a contact or an agent.
ALTER TABLE lifecycle_log
    ALTER COLUMN contact_id DROP NOT NULL,
    ALTER COLUMN queue DROP NOT NULL,
    ALTER COLUMN channel DROP NOT NULL,
    ADD COLUMN agent_id text;
ALTER TABLE lifecycle_log ADD CONSTRAINT lifecycle_log_subject
    CHECK (contact_id IS NOT NULL OR agent_id IS NOT NULL) NOT VALID;
ALTER TABLE lifecycle_log VALIDATE CONSTRAINT lifecycle_log_subject;

-- The time of the newest presence change a platform reported (its `at`, or
-- when it arrived): a change reported as older is stale and ignored, so a
-- late retry cannot undo a newer presence. NULL: none reported yet.
ALTER TABLE agents ADD COLUMN presence_reported_at timestamptz;

-- Agents are listed in id order (keyset pages): the primary key serves it.
-- Skill filters read the skills document.
CREATE INDEX agents_skills ON agents USING gin (skills);

-- The BI contract, version 1, gains columns at its end (never removed or
-- reordered): offers made, when the first was made, and the wait from
-- receipt to assignment in milliseconds (never negative: a platform's clock
-- may run behind ours). agent and assigned_at are there since 0002, rollout
-- since 0022.
CREATE OR REPLACE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       coalesce(routing_ms::text::double precision,
                (timings ->> 'total_ms')::double precision) AS routing_ms,
       tier, repeat_24h, repeat_7d, previous_channel, channel_switch, context_degraded,
       outcome, agent, assigned_at, answered_at, abandoned_at, resolved_at, closed_at,
       sla_met, rollout,
       offers_made, offered_at,
       CASE WHEN assigned_at IS NOT NULL  -- (greatest would turn a NULL into 0)
            THEN greatest(extract(epoch FROM assigned_at - received_at) * 1000, 0)::double precision
       END AS wait_to_assign_ms
  FROM contacts;

-- The history filters by agent (the contacts an agent took), in the keyset
-- order like every other filter.
CREATE INDEX contacts_agent_keyset ON contacts (agent, received_at DESC, contact_id DESC);

-- The summary groups and filters by agent: the hourly rollups gain the
-- agent as a grouping column. The rollups of the hours whose records are
-- still stored are dropped and rebuilt from the records by the rollup job
-- (a week of hours per transaction; meanwhile the summary reads the records
-- for the hours not rolled up yet, so its answers stay exact). Rollups of
-- hours before the oldest stored record (records dropped by retention) are
-- kept as they are: they count those contacts under no agent.
ALTER TABLE contact_rollup ADD COLUMN agent text;
DO $$
DECLARE
    first_hour timestamptz;
BEGIN
    SELECT date_trunc('hour', min(received_at), 'UTC') INTO first_hour FROM contacts;
    IF first_hour IS NOT NULL THEN
        DELETE FROM contact_rollup WHERE hour >= first_hour;
        UPDATE rollup_state SET rolled_until = least(rolled_until, first_hour)
         WHERE rolled_until IS NOT NULL;
    END IF;
END $$;
