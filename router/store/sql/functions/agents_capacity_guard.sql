-- Refuse any raise of an agent's load past its capacity or a channel maximum
-- (docs/agents.md); lowering the capacity under the load is allowed. Only
-- the channels with a maximum are looked at: most agents have none, and
-- their loads' updates (every offer, every end of a contact) then run no
-- query here.
CREATE OR REPLACE FUNCTION agents_capacity_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ch text;
    most integer;
    held integer;
BEGIN
    IF NEW.load_units > OLD.load_units AND NEW.load_units > NEW.capacity THEN
        RAISE EXCEPTION 'agent % over capacity: % > %', NEW.agent_id, NEW.load_units, NEW.capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_capacity';
    END IF;
    IF NEW.channel_max = '{}'::jsonb THEN
        RETURN NEW;
    END IF;
    FOR ch, most IN SELECT key, value::integer FROM jsonb_each_text(NEW.channel_max) LOOP
        held := coalesce((NEW.load_by_channel ->> ch)::integer, 0);
        IF held > coalesce((OLD.load_by_channel ->> ch)::integer, 0) AND held > most THEN
            RAISE EXCEPTION 'agent % over its % maximum', NEW.agent_id, ch
                USING ERRCODE = 'check_violation', CONSTRAINT = 'agents_channel_max';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
