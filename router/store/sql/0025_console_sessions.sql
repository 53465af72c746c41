-- The supervisors' console (docs/console.md): one row per signed-in browser.
-- The session id sent in the cookie is never stored, only its SHA-256; the
-- CSRF token is the synchronizer token the console's forms carry. A session
-- ends at sign-out, after idle_seconds without a request, or at expires_at
-- (absolute), whichever comes first.
CREATE TABLE console_sessions (
    id_hash         bytea PRIMARY KEY,
    token_name      text NOT NULL,
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    idle_seconds    integer NOT NULL CHECK (idle_seconds > 0),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
