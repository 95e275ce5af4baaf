-- Workers as their environments know them.
-- - A worker is known by its environment and its id: the same id in another environment is
--   another worker, which neither sees nor changes the first one's runs.
-- - `session`: the newest session of the worker (a process makes a time-ordered one when it
--   starts); claims of older sessions are refused. NULL for workers without sessions.
-- - `tasks`: the task ids it runs, to tell whether anyone serves a task.

ALTER TABLE workers DROP CONSTRAINT workers_pkey;
ALTER TABLE workers ADD PRIMARY KEY (environment_id, id);
ALTER TABLE workers ADD COLUMN session TEXT COLLATE "C";
ALTER TABLE workers ADD COLUMN tasks TEXT[] NOT NULL DEFAULT '{}';

-- Runs held by each worker of an environment.
DROP INDEX runs_executing;
CREATE INDEX runs_executing ON runs (environment_id, worker_id) WHERE status = 'EXECUTING';
