-- Bulk imports of CRM exports: progress per file, so an interrupted import resumes.
CREATE TABLE import_runs (
    file_key     text PRIMARY KEY,      -- size + hash of the file's head: the same file resumes
    file_name    text NOT NULL,
    lines_done   bigint NOT NULL DEFAULT 0,
    imported     bigint NOT NULL DEFAULT 0,
    rejected     bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
