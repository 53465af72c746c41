-- Assignment (docs/agents.md, "Assignment"): the preferred agent a waiting
-- contact is offered to first, and the indexes the assigner and the agent
-- desktops read by.
--
-- preferred_agent is the decision's preferred_agent, else the customer's last
-- agent (from the context), written with the open row; preferred_until (0021)
-- ends the window in which only that agent is offered the contact.
ALTER TABLE open_contacts ADD COLUMN preferred_agent text;

-- GET /v1/offers?agent=...&status=...: an agent's offers, newest first.
CREATE INDEX offers_agent ON offers (agent_id, status, offered_at DESC);

-- The assigner reads the first waiting contacts of each queue and channel.
CREATE INDEX open_contacts_assignable_channel ON open_contacts (queue, channel, priority DESC, received_at)
    WHERE state = 'waiting' AND agent_id IS NULL;
