-- The outbox's lease in a column of its own, which no index covers, so
-- that a claim is a HOT update (router/store/deliveries.py, docs/operations.md
-- "The outbox's claims"). Before, a claim leased its rows by moving
-- next_attempt_at past the attempt's timeout; next_attempt_at is a key of
-- the due index (deliveries_due), so every claim wrote a new entry in each of
-- the table's four indexes for each row it claimed. Now a claim sets
-- leased_until and leaves next_attempt_at as it was: a leased row stays in
-- the due index (the claim's scan steps over it, reading its heap tuple) and
-- is due again once its lease has run out. The marks and the releases clear
-- the lease; a retry by hand too.
--
-- Room on the outbox's pages for the claimed rows' new versions: the rows a
-- claim takes were written together and share their pages, and each gets a
-- new version in the claim's one statement, so a page needs room for about
-- as many versions again as it holds rows for all of them to be HOT. Pages
-- already full stay so until their rows move.
--
-- Safe on a live database during a rolling upgrade: a nullable column
-- without a default is added to the catalog only (no table rewrite; the
-- lock is held for an instant), and setting a storage parameter rewrites
-- nothing. Rows pending or leased by the previous release keep its lease
-- (next_attempt_at in the future): this release does not claim them before
-- it runs out, as the previous one did not. The previous release's claims,
-- though, know nothing of leased_until and would claim a row this release
-- holds (due, its lease running) and send it a second time while the first
-- attempt may still be in flight: the trigger below drops such an update
-- (a claim adds an attempt; the previous release's UPDATE ... RETURNING then
-- does not return the row, so it does not send it). This release's own
-- claims never take a leased row, so the trigger never drops one of them.
ALTER TABLE deliveries ADD COLUMN leased_until timestamptz;

ALTER TABLE deliveries SET (fillfactor = 50);

CREATE OR REPLACE FUNCTION deliveries_lease_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_lease_kept BEFORE UPDATE ON deliveries
    FOR EACH ROW WHEN (NEW.attempts > OLD.attempts AND OLD.leased_until > now())
    EXECUTE FUNCTION deliveries_lease_kept();
