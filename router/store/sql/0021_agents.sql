-- Agents, their presence and load, and offers (docs/agents.md).
--
-- An agent's load is the sum of the units of the work it holds (offered or
-- assigned contacts, table agent_work). The load is kept on the agent's row
-- and only ever raised by an UPDATE that takes the row lock and checks the
-- capacity in the same statement; the trigger below refuses any raise past
-- the capacity or a channel maximum, whoever writes it, so capacity is never
-- exceeded however many instances assign at once. Lowering the capacity
-- under the current load is allowed (the agent gets nothing new until the
-- load falls below it).
CREATE TABLE agents (
    agent_id        text PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    skills          jsonb NOT NULL DEFAULT '{}',   -- {"billing": 3, ...}: level 1-5
    capacity        integer NOT NULL DEFAULT 100 CHECK (capacity BETWEEN 0 AND 100000),
    channel_max     jsonb NOT NULL DEFAULT '{}',   -- {"chat": 3, ...}: contacts at once
    presence        text NOT NULL DEFAULT 'offline'
                    CHECK (presence IN ('available', 'busy', 'away', 'offline')),
    presence_at     timestamptz NOT NULL DEFAULT now(),
    load_units      integer NOT NULL DEFAULT 0 CHECK (load_units >= 0),
    load_by_channel jsonb NOT NULL DEFAULT '{}',   -- {"chat": 2, ...}: contacts held
    idle_since      timestamptz NOT NULL DEFAULT now(),  -- last time the load became 0
    last_offer_at   timestamptz,                   -- round robin order
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_available ON agents (presence) WHERE presence = 'available';

-- agents_capacity_guard() is in sql/functions/agents_capacity_guard.sql; the
-- migration defines it first so the trigger can name it.
CREATE FUNCTION agents_capacity_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ch text;
    held integer;
BEGIN
    IF NEW.load_units > OLD.load_units AND NEW.load_units > NEW.capacity THEN
        RAISE EXCEPTION 'agent % over capacity: % > %', NEW.agent_id, NEW.load_units, NEW.capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_capacity';
    END IF;
    FOR ch, held IN SELECT key, value::integer FROM jsonb_each_text(NEW.load_by_channel) LOOP
        IF NEW.channel_max ? ch
           AND held > coalesce((OLD.load_by_channel ->> ch)::integer, 0)
           AND held > (NEW.channel_max ->> ch)::integer THEN
            RAISE EXCEPTION 'agent % over its % maximum', NEW.agent_id, ch
                USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_channel_max';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
CREATE TRIGGER agents_capacity BEFORE UPDATE OF load_units, load_by_channel ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_capacity_guard();

-- The work an agent holds: one row per contact offered to or assigned to it,
-- deleted when the offer is rejected or expires, or the contact ends.
CREATE TABLE agent_work (
    contact_id  uuid PRIMARY KEY,
    agent_id    text NOT NULL REFERENCES agents (agent_id),
    offer_id    uuid NOT NULL,
    channel     text NOT NULL,
    units       integer NOT NULL CHECK (units >= 0),
    state       text NOT NULL CHECK (state IN ('offered', 'assigned')),
    since       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_work_agent ON agent_work (agent_id);

-- Every offer made: a reservation of the agent's capacity until accepted,
-- rejected or expired. At most one open offer per contact.
CREATE TABLE offers (
    offer_id     uuid PRIMARY KEY,
    contact_id   uuid NOT NULL,
    agent_id     text NOT NULL,
    queue        text NOT NULL,
    channel      text NOT NULL,
    units        integer NOT NULL,
    status       text NOT NULL DEFAULT 'offered'
                 CHECK (status IN ('offered', 'accepted', 'rejected', 'expired', 'cancelled')),
    offered_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    explanation  jsonb NOT NULL DEFAULT '{}'       -- candidates and why this agent
);
CREATE UNIQUE INDEX offers_one_open ON offers (contact_id) WHERE status = 'offered';
CREATE INDEX offers_due ON offers (expires_at) WHERE status = 'offered';
CREATE INDEX offers_contact ON offers (contact_id, offered_at);

-- A waiting contact's assignment state.
ALTER TABLE open_contacts
    ADD COLUMN agent_id        text,                    -- offered to / assigned to
    ADD COLUMN offers          integer NOT NULL DEFAULT 0,
    ADD COLUMN passed_over     text[] NOT NULL DEFAULT '{}',  -- rejected or let expire
    ADD COLUMN preferred_until timestamptz;             -- offer only the preferred agent until then
CREATE INDEX open_contacts_assignable ON open_contacts (queue, priority DESC, received_at)
    WHERE state = 'waiting' AND agent_id IS NULL;

-- The record's offer facts, for reporting (agent and assigned_at exist
-- since 0002): offers made and when the first was made.
ALTER TABLE contacts
    ADD COLUMN offers_made  integer NOT NULL DEFAULT 0,
    ADD COLUMN offered_at   timestamptz;
