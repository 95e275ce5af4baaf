-- Environments and waitpoint tokens. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE environments (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    api_key        TEXT    NOT NULL UNIQUE,
    signing_secret TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE waitpoints (
    id                         TEXT    NOT NULL PRIMARY KEY,
    environment_id             TEXT    NOT NULL REFERENCES environments (id),
    status                     TEXT    NOT NULL CHECK (status IN ('WAITING', 'COMPLETED', 'TIMED_OUT')),
    idempotency_key            TEXT,
    inactive_idempotency_key   TEXT,
    idempotency_key_expires_at INTEGER,
    timeout_at                 INTEGER,
    -- The tags exactly as given, as a JSON array; waitpoint_tags indexes them for filters.
    tags                       TEXT    NOT NULL,
    output                     TEXT,
    output_type                TEXT,
    completed_at               INTEGER,
    completed_via              TEXT,
    created_at                 INTEGER NOT NULL
) STRICT;

-- One active idempotency key per environment.
CREATE UNIQUE INDEX waitpoints_idempotency_key
    ON waitpoints (environment_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX waitpoints_inactive_idempotency_key
    ON waitpoints (environment_id, inactive_idempotency_key) WHERE inactive_idempotency_key IS NOT NULL;
-- Lists: newest first per environment, optionally by status.
CREATE INDEX waitpoints_environment ON waitpoints (environment_id, id);
CREATE INDEX waitpoints_environment_status ON waitpoints (environment_id, status, id);
-- The durable timer: waiting waitpoints by deadline.
CREATE INDEX waitpoints_timeouts ON waitpoints (timeout_at, id) WHERE status = 'WAITING' AND timeout_at IS NOT NULL;

CREATE TABLE waitpoint_tags (
    environment_id TEXT NOT NULL,
    tag            TEXT NOT NULL,
    waitpoint_id   TEXT NOT NULL,
    PRIMARY KEY (environment_id, tag, waitpoint_id)
) STRICT, WITHOUT ROWID;
