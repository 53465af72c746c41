-- Erasure finds every contact that carries one of the customer's identifiers,
-- whoever the contact was attached to (a contact with a stronger identifier of
-- another customer goes to that customer, carrying the person's identifiers
-- with it). The identifiers are only in the contact snapshot: index their
-- values, one GIN entry per identifier (the kinds and flags of the snapshot
-- are left out, which keeps the index small). Erasure asks
--   jsonb_path_query_array(contact, '$.identifiers[*].value') @> '["<value>"]'
-- and checks the kind itself. Building it reads every stored contact once.
CREATE INDEX contacts_identifier_values ON contacts
    USING gin (jsonb_path_query_array(contact, '$.identifiers[*].value') jsonb_path_ops);
