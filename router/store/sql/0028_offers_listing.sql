-- GET /v1/offers without an agent (docs/api.md#offers): every page is a
-- range of an index in the listing's order (newest first, the offer id
-- breaking ties), read up to the page's limit; nothing is sorted. With an
-- agent, offers_agent (0023) serves it.
CREATE INDEX offers_newest ON offers (offered_at DESC, offer_id DESC);
CREATE INDEX offers_status_newest ON offers (status, offered_at DESC, offer_id DESC);
