-- The event log (an outbox): what happened to tokens and runs, appended in the transaction of
-- the change. Writers take a transaction advisory lock before appending, so seq grows in
-- commit order; readers follow it per environment.
CREATE TABLE events (
    seq            BIGSERIAL PRIMARY KEY,
    environment_id TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    tags           TEXT[] NOT NULL,
    data           TEXT   NOT NULL, -- JSON object
    created_at     BIGINT NOT NULL  -- epoch milliseconds
);

CREATE INDEX events_environment ON events (environment_id, seq);
