-- GET /v1/offers?agent=... without a status (docs/api.md#offers): every page
-- is a range of this index in the listing's order (the agent's offers newest
-- first, the offer id breaking ties), read from the cursor up to the page's
-- limit. Before it, such a page either read offers_newest (0028) and
-- skipped every other agent's offers until it had a page, or read all of
-- the agent's offers (offers_agent, 0023) and sorted them. With a status,
-- offers_agent still serves it.
--
-- Built in the migration's transaction, as every migration is (CREATE
-- INDEX CONCURRENTLY cannot run in one): inserts and updates of offers
-- (assignment rounds, accept, reject, the offers' timer) wait while it is
-- built; reads go on. Where offers is large, build it beforehand by hand,
-- under this name, without holding writes up (docs/operations.md, "Data"):
--     CREATE INDEX CONCURRENTLY offers_agent_newest
--         ON omniroute.offers (agent_id, offered_at DESC, offer_id DESC);
-- and this migration then finds it and builds nothing. A concurrent build
-- that failed leaves an invalid index of the name, never used by the
-- planner: it is dropped and built again here.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_index
                WHERE indexrelid = to_regclass('offers_agent_newest') AND NOT indisvalid) THEN
        DROP INDEX offers_agent_newest;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS offers_agent_newest ON offers (agent_id, offered_at DESC, offer_id DESC);
