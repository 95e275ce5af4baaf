-- Task runs, their journals, and the workers that run them. Datetime waitpoints.

ALTER TABLE waitpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'MANUAL' CHECK (kind IN ('MANUAL', 'DATETIME'));

CREATE TABLE runs (
    id                         TEXT    NOT NULL PRIMARY KEY,
    environment_id             TEXT    NOT NULL REFERENCES environments (id),
    task_id                    TEXT    NOT NULL,
    -- JSON text.
    payload                    TEXT    NOT NULL,
    status                     TEXT    NOT NULL
        CHECK (status IN ('QUEUED', 'EXECUTING', 'WAITING', 'COMPLETED', 'FAILED', 'CANCELED')),
    -- QUEUED: when a worker may take it.
    available_at               INTEGER,
    -- EXECUTING: the worker holding it.
    worker_id                  TEXT,
    -- WAITING: the waitpoint and the journal position of the wait.
    waiting_on                 TEXT,
    waiting_seq                INTEGER,
    -- COMPLETED: JSON text. FAILED: {"name", "message"} as JSON text.
    output                     TEXT,
    error                      TEXT,
    finished_at                INTEGER,
    attempt                    INTEGER NOT NULL,
    max_attempts               INTEGER NOT NULL,
    epoch                      INTEGER NOT NULL,
    sticky_worker              TEXT,
    -- The tags exactly as given, as a JSON array; run_tags indexes them for filters.
    tags                       TEXT    NOT NULL,
    idempotency_key            TEXT,
    inactive_idempotency_key   TEXT,
    idempotency_key_expires_at INTEGER,
    created_at                 INTEGER NOT NULL,
    started_at                 INTEGER,
    updated_at                 INTEGER NOT NULL
) STRICT;

-- One active idempotency key per task of an environment.
CREATE UNIQUE INDEX runs_idempotency_key
    ON runs (environment_id, task_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_inactive_idempotency_key
    ON runs (environment_id, inactive_idempotency_key) WHERE inactive_idempotency_key IS NOT NULL;
CREATE INDEX runs_idempotency_key_any_task
    ON runs (environment_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Lists: newest first per environment, by status or by task.
CREATE INDEX runs_environment ON runs (environment_id, id);
CREATE INDEX runs_environment_status ON runs (environment_id, status, id);
CREATE INDEX runs_environment_task ON runs (environment_id, task_id, id);
-- The queue: what a worker may take, earliest first.
CREATE INDEX runs_queue ON runs (environment_id, task_id, available_at, id) WHERE status = 'QUEUED';
-- Runs to resume when a waitpoint finishes, and runs held by each worker.
CREATE INDEX runs_waiting ON runs (waiting_on) WHERE status = 'WAITING';
CREATE INDEX runs_executing ON runs (worker_id) WHERE status = 'EXECUTING';

CREATE TABLE run_tags (
    environment_id TEXT NOT NULL,
    tag            TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    PRIMARY KEY (environment_id, tag, run_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE run_journal (
    run_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    -- JSON text; NULL for a wait that has not finished.
    result TEXT,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE workers (
    id             TEXT    NOT NULL PRIMARY KEY,
    environment_id TEXT    NOT NULL,
    last_seen_at   INTEGER NOT NULL
) STRICT;
