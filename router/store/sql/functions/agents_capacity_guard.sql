-- Refuse any raise of an agent's load past its capacity or a channel maximum
-- (docs/agents.md); lowering the capacity under the load is allowed.
CREATE OR REPLACE FUNCTION agents_capacity_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
