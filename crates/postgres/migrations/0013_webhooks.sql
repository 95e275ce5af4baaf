-- Outbound webhooks: an environment's subscriptions to its event log, and how far delivery
-- of each got (delivered_through: the log position every event up to which is done).
CREATE TABLE webhooks (
    id                TEXT    PRIMARY KEY,
    environment_id    TEXT    NOT NULL REFERENCES environments (id),
    url               TEXT    NOT NULL,
    secret            TEXT    NOT NULL,
    kinds             TEXT    NOT NULL, -- JSON array of event kinds; empty for all
    tags              TEXT    NOT NULL, -- JSON array; empty for all
    created_at        BIGINT  NOT NULL,
    delivered_through BIGINT  NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    retry_at          BIGINT,
    last_error        TEXT
);

CREATE INDEX webhooks_environment ON webhooks (environment_id, id);
