-- Environments and waitpoint tokens. Times are milliseconds since the Unix epoch (UTC).
-- Keys and ids use the "C" collation: they compare and sort bytewise, as in SQLite, whatever
-- the database's default collation (keyset pagination relies on `ORDER BY id` and `id < $n`).

CREATE TABLE environments (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name           TEXT COLLATE "C" NOT NULL UNIQUE,
    api_key        TEXT COLLATE "C" NOT NULL UNIQUE,
    signing_secret TEXT             NOT NULL,
    created_at     BIGINT           NOT NULL
);

CREATE TABLE waitpoints (
    id                         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    environment_id             TEXT COLLATE "C" NOT NULL REFERENCES environments (id),
    status                     TEXT             NOT NULL CHECK (status IN ('WAITING', 'COMPLETED', 'TIMED_OUT')),
    idempotency_key            TEXT COLLATE "C",
    inactive_idempotency_key   TEXT COLLATE "C",
    idempotency_key_expires_at BIGINT,
    timeout_at                 BIGINT,
    -- The tags exactly as given (order and duplicates kept); waitpoint_tags indexes them for filters.
    tags                       TEXT[]           NOT NULL,
    output                     TEXT,
    output_type                TEXT,
    completed_at               BIGINT,
    completed_via              TEXT,
    created_at                 BIGINT           NOT NULL
);

-- One active idempotency key per environment; also the arbiter of `INSERT ... ON CONFLICT`.
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
    environment_id TEXT COLLATE "C" NOT NULL,
    tag            TEXT COLLATE "C" NOT NULL,
    waitpoint_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (environment_id, tag, waitpoint_id)
);
