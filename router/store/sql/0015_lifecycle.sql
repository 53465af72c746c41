-- The lifecycle of routed contacts (docs/lifecycle.md).
--
-- open_contacts holds one row per contact that is still open (waiting,
-- assigned or answered), written in the same transaction as its record and
-- deleted when it reaches a terminal state (resolved, closed, abandoned,
-- expired): what is waiting is read here, at a cost in proportion to what is
-- open, not to the history. Its overflow timer is a due time on the row
-- (next_step_at), claimed with FOR UPDATE SKIP LOCKED by any instance.
CREATE TABLE open_contacts (
    contact_id    uuid PRIMARY KEY,
    received_at   timestamptz NOT NULL,        -- the record's, to find its partition
    adapter       text NOT NULL,
    channel       text NOT NULL,
    queue         text NOT NULL,               -- current: the decision's, then each step's
    priority      integer NOT NULL,
    skills        text[] NOT NULL DEFAULT '{}',
    sla_seconds   integer,
    state         text NOT NULL DEFAULT 'waiting'
                  CHECK (state IN ('waiting', 'assigned', 'answered')),
    overflow      jsonb NOT NULL DEFAULT '[]', -- the decision's steps, in order
    step          integer NOT NULL DEFAULT 0,  -- index of the next step to apply
    next_step_at  timestamptz,                 -- its due time; NULL: none left or not waiting
    expires_at    timestamptz NOT NULL,        -- end of the contact's lifetime
    version       integer NOT NULL DEFAULT 0,  -- bumped by every change
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX open_contacts_due ON open_contacts (next_step_at) WHERE next_step_at IS NOT NULL;
CREATE INDEX open_contacts_expiry ON open_contacts (expires_at);
CREATE INDEX open_contacts_waiting ON open_contacts (queue, received_at) WHERE state = 'waiting';

-- The overflow steps applied to the contact, in order:
-- [{"step", "due", "at", "from": {queue, priority, skills}, "to": {...}}].
ALTER TABLE contacts ADD COLUMN steps jsonb NOT NULL DEFAULT '[]';
