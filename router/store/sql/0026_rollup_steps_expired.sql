-- The summary counts overflow steps applied and contacts expired
-- (docs/reporting.md): two counters of the hourly rollups, per hour of the
-- contacts' arrival and group, like the outcome counters. The rollups made
-- before them lack them, so they are made again: the rollup job rebuilds
-- every hour from the records (a week per transaction), and until it has,
-- the summary reads the records themselves (it always reads the hours past
-- rolled_until from there), so no figure is ever wrong meanwhile.
ALTER TABLE contact_rollup
    ADD COLUMN steps   integer NOT NULL DEFAULT 0,  -- overflow steps applied
    ADD COLUMN expired integer NOT NULL DEFAULT 0;  -- contacts whose outcome is expired
ALTER TABLE contact_rollup ALTER COLUMN steps SET STATISTICS 0;
ALTER TABLE contact_rollup ALTER COLUMN expired SET STATISTICS 0;
DELETE FROM contact_rollup;
UPDATE rollup_state SET rolled_until = NULL, events_until = NULL;
