-- The event log (an outbox): what happened to tokens and runs, appended in the transaction of
-- the change. seq grows in commit order (one writer); readers follow it per environment.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    tags           TEXT    NOT NULL, -- JSON array, as given
    data           TEXT    NOT NULL, -- JSON object
    created_at     INTEGER NOT NULL  -- epoch milliseconds
);

CREATE INDEX events_environment ON events (environment_id, seq);
