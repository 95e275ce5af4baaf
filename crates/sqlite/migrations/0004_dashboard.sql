-- The dashboard and the hosted approval pages.

-- What each token's approval page asks (JSON text), as given at create; NULL: the default page.
ALTER TABLE waitpoints ADD COLUMN approval TEXT;

-- Tokens timing out soonest, per environment.
CREATE INDEX waitpoints_environment_timeouts ON waitpoints (environment_id, timeout_at, id)
    WHERE status = 'WAITING' AND kind = 'MANUAL' AND timeout_at IS NOT NULL;
-- Runs waiting longest, per environment (a waiting run's updated_at is when it began to wait).
CREATE INDEX runs_environment_waiting ON runs (environment_id, updated_at, id) WHERE status = 'WAITING';
-- The runs that waited on a token (the entry's name is the token's public id).
CREATE INDEX run_journal_token_waits ON run_journal (name, run_id) WHERE kind = 'WAIT_TOKEN';

-- The status of each tagged token beside its tag (kept in step by every finish), so a list
-- filtered by tags and statuses walks only the entries that match both.
ALTER TABLE waitpoint_tags ADD COLUMN status TEXT NOT NULL DEFAULT 'WAITING';
UPDATE waitpoint_tags SET status = COALESCE(
    (SELECT w.status FROM waitpoints w WHERE w.id = waitpoint_tags.waitpoint_id), 'WAITING');
CREATE INDEX waitpoint_tags_status ON waitpoint_tags (environment_id, tag, status, waitpoint_id);
