-- Workers as their environments know them.
-- - A worker is known by its environment and its id: the same id in another environment is
--   another worker, which neither sees nor changes the first one's runs.
-- - `session`: the newest session of the worker (a process makes a time-ordered one when it
--   starts); claims of older sessions are refused. NULL for workers without sessions.
-- - `tasks`: the task ids it runs, as a JSON array, to tell whether anyone serves a task.

CREATE TABLE workers_by_environment (
    environment_id TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    session        TEXT,
    tasks          TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (environment_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO workers_by_environment (environment_id, id, last_seen_at)
    SELECT environment_id, id, last_seen_at FROM workers;
DROP TABLE workers;
ALTER TABLE workers_by_environment RENAME TO workers;

-- Runs held by each worker of an environment.
DROP INDEX runs_executing;
CREATE INDEX runs_executing ON runs (environment_id, worker_id) WHERE status = 'EXECUTING';
