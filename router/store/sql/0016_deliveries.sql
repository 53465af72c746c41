-- The outbox: events to deliver to the configured destinations, written in
-- the same transaction as what they report (a routed contact's record), so an
-- acknowledged contact's events are delivered even if the process dies.
-- Every instance dispatches: due rows are claimed with FOR UPDATE SKIP LOCKED
-- and leased (next_attempt_at moves past the attempt's timeout, so the claims
-- of a killed instance come back). delivery_id is the event id the receiver
-- sees (webhook-id), the same on every attempt.
CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    destination     text NOT NULL,
    event_type      text NOT NULL,
    contact_id      uuid,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    -- a retry by hand starts a new retry horizon from here
    retried_at      timestamptz
);
-- what the dispatchers claim: only pending rows, by due time
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at) WHERE status = 'pending';
-- the API's listing, newest first, by status
CREATE INDEX deliveries_listing ON deliveries (status, created_at DESC, delivery_id DESC);
CREATE INDEX deliveries_contact ON deliveries (contact_id);

-- Wake the dispatchers (LISTEN omniroute_deliveries) when rows are written;
-- the notification is sent at commit, once per transaction.
CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM written) THEN
        PERFORM pg_notify('omniroute_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_written AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
