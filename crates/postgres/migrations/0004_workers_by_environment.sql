-- A worker is known by its environment and its id: the same id in another environment is
-- another worker, which neither sees nor changes the first one's runs.

ALTER TABLE workers DROP CONSTRAINT workers_pkey;
ALTER TABLE workers ADD PRIMARY KEY (environment_id, id);

-- Runs held by each worker of an environment.
DROP INDEX runs_executing;
CREATE INDEX runs_executing ON runs (environment_id, worker_id) WHERE status = 'EXECUTING';
