-- The view's routing_ms came from the timings document (one JSON lookup per
-- row); the typed column written at routing time holds the same figure. Its
-- text form is the shortest that round-trips, so the value reads exactly as
-- it was recorded (1.234, not 1.2339999675750732). Rows older than the column
-- fall back to the document. Same name, same type: the contract is unchanged.
CREATE OR REPLACE VIEW reporting.routed_contacts_v1 AS
SELECT contact_id, received_at, adapter, provider, channel, external_id, thread_id,
       customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
       preferred_agent, rule, ruleset,
       coalesce(routing_ms::text::double precision,
                (timings ->> 'total_ms')::double precision) AS routing_ms,
       tier, repeat_24h, repeat_7d, previous_channel, channel_switch, context_degraded,
       outcome, agent, assigned_at, answered_at, abandoned_at, resolved_at, closed_at,
       sla_met
  FROM contacts;
