-- The record's offer facts (contacts.offers_made, contacts.offered_at, 0021)
-- are no longer written into the record at each offer: an assignment round
-- counts the offers on the contact's open row, which it updates anyway
-- (open_contacts.offers, 0021, and the time of the first offer here), and
-- the facts are copied into the record by the next write of the record
-- that the contact's lifecycle makes anyway (docs/agents.md, "Reporting"):
-- an outcome event (an accepted offer is one), expiry, erasure. An update of
-- a record rewrote every one of its indexes (the row is wide, its pages are
-- full: no HOT update), which was half of an offer's buffers.
--
-- Safe on a live database during a rolling upgrade: a nullable column
-- without a default is added to the catalog only (no table rewrite; the
-- lock is held for an instant). Instances of the previous release name the
-- columns they write and read, so the new column is invisible to them;
-- they go on writing the facts into the record at each offer, and the
-- copies made by this release keep the larger count and the earlier time
-- of the two, so that neither undoes the other.
ALTER TABLE open_contacts ADD COLUMN offered_at timestamptz;

-- Room on the agents' pages for their rows' new versions: every offer and
-- every end of a contact rewrites its agent's load (load_units,
-- load_by_channel, last_offer_at, idle_since, updated_at), none of them
-- indexed, so with room on the row's page the update is HOT and no index
-- (the skills' GIN index among them) gets an entry. The table is small (a
-- row per agent): half-full pages cost little space.
--
-- Safe on a live database during a rolling upgrade: setting a storage
-- parameter takes a lock that reads and writes of the table do not wait
-- for (SHARE UPDATE EXCLUSIVE), and rewrites nothing; pages already full
-- stay so until their rows move, which their next updates do (a row that
-- does not fit its page moves to a page filled only to this factor).
-- Instances of the previous release are not affected.
ALTER TABLE agents SET (fillfactor = 50);

-- The waiting contacts of a queue in its order, without the channel
-- (0021): every read of the assigner goes by open_contacts_assignable_channel
-- (0023: queue, channel, then the same order), the aged read too (queue and
-- its channels as the index's condition), so this index was only written:
-- an entry at every waiting contact's insert and each time an offer's
-- contact waits again.
--
-- Safe on a live database during a rolling upgrade: no statement of this
-- release or the previous one names the index, and the planner already
-- preferred the other one for both reads (their plans are checked in
-- tests/test_offers.py); dropping it holds the table's lock for an instant
-- (it waits for the transactions using open_contacts, which are short).
DROP INDEX IF EXISTS open_contacts_assignable;
