-- The event log (an outbox): what happened to tokens and runs, appended in the transaction of
-- the change (`id` in insert order). Readers follow `seq`, a position given to committed events
-- in order by whoever reads the log next, one sequencer at a time: every event sequenced later
-- comes after every one sequenced before, whatever order the writers committed in, and writers
-- never wait for each other.
CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    seq            BIGINT UNIQUE,   -- NULL until sequenced
    environment_id TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    tags           TEXT[] NOT NULL,
    data           TEXT   NOT NULL, -- JSON object
    created_at     BIGINT NOT NULL  -- epoch milliseconds
);

CREATE INDEX events_environment ON events (environment_id, seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
