-- A token may be rejected: status REJECTED, its error in output. SQLite cannot change a CHECK
-- constraint in place, so the table is made again with the new one and its rows copied over
-- (nothing references waitpoints by foreign key; its indexes are made again below).

CREATE TABLE waitpoints_with_rejections (
    id                         TEXT    NOT NULL PRIMARY KEY,
    environment_id             TEXT    NOT NULL REFERENCES environments (id),
    status                     TEXT    NOT NULL CHECK (status IN ('WAITING', 'COMPLETED', 'TIMED_OUT', 'REJECTED')),
    idempotency_key            TEXT,
    inactive_idempotency_key   TEXT,
    idempotency_key_expires_at INTEGER,
    timeout_at                 INTEGER,
    -- The tags exactly as given, as a JSON array; waitpoint_tags indexes them for filters.
    tags                       TEXT    NOT NULL,
    -- COMPLETED: the output, if any. REJECTED: the error, {"code", "message", "data"?}.
    output                     TEXT,
    output_type                TEXT,
    completed_at               INTEGER,
    completed_via              TEXT,
    created_at                 INTEGER NOT NULL,
    kind                       TEXT    NOT NULL DEFAULT 'MANUAL' CHECK (kind IN ('MANUAL', 'DATETIME')),
    -- What the token's approval page asks (JSON text), as given at create; NULL: the default page.
    approval                   TEXT
) STRICT;
INSERT INTO waitpoints_with_rejections (id, environment_id, status, idempotency_key, inactive_idempotency_key,
        idempotency_key_expires_at, timeout_at, tags, output, output_type, completed_at, completed_via, created_at,
        kind, approval)
    SELECT id, environment_id, status, idempotency_key, inactive_idempotency_key, idempotency_key_expires_at,
        timeout_at, tags, output, output_type, completed_at, completed_via, created_at, kind, approval
    FROM waitpoints;
DROP TABLE waitpoints;
ALTER TABLE waitpoints_with_rejections RENAME TO waitpoints;

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
-- Tokens timing out soonest, per environment.
CREATE INDEX waitpoints_environment_timeouts ON waitpoints (environment_id, timeout_at, id)
    WHERE status = 'WAITING' AND kind = 'MANUAL' AND timeout_at IS NOT NULL;
