-- Every running omniroute process, kept current by its heartbeat: which
-- ruleset version each one serves, so an operator sees a rules change reach
-- all of them. Rows of stopped processes stop beating and are pruned.
CREATE TABLE instances (
    instance_id     uuid PRIMARY KEY,
    host            text NOT NULL,
    port            integer NOT NULL,
    pid             integer NOT NULL,
    ruleset         text NOT NULL,
    rules_errors    jsonb NOT NULL DEFAULT '[]',
    started_at      timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_heartbeat ON instances (heartbeat_at);
