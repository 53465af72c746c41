-- One-time values of signatures that do not cover the body (Mailgun signs
-- timestamp + token, not the message). A value is claimed by the first
-- delivery that presents it, in every instance alike: the same value with
-- another delivery is a replay and is refused; the same delivery again (the
-- provider's retry) matches the fingerprint and goes on to the duplicate path.
-- Rows are kept until the signature's timestamp has left the replay window,
-- then purged by a background job. Only digests are stored: no token, no
-- message id.
CREATE TABLE replay_nonces (
    scope        text NOT NULL,         -- the adapter kind that issued the value
    nonce        bytea NOT NULL,        -- SHA-256 of the value
    fingerprint  bytea NOT NULL,        -- SHA-256 of adapter name + external ids
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX replay_nonces_expires ON replay_nonces (expires_at);
