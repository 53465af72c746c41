-- Keep a row leased by this release from a claim that does not know the
-- lease column (the trigger deliveries_lease_kept, migration 0033: an update
-- that adds an attempt to a row whose leased_until has not run out): the
-- update is dropped, so the claim does not return the row and its instance
-- does not send it while another attempt may be in flight.
CREATE OR REPLACE FUNCTION deliveries_lease_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;
