-- Retention: what a purge may delete, found through indexes.

-- Finished waitpoints and runs, the earliest finished first. A record whose idempotency key
-- never expires is kept for good, so it is left out: a purge never walks past it again.
CREATE INDEX waitpoints_finished ON waitpoints (completed_at)
    WHERE completed_at IS NOT NULL AND (idempotency_key IS NULL OR idempotency_key_expires_at IS NOT NULL);
CREATE INDEX runs_finished ON runs (finished_at)
    WHERE finished_at IS NOT NULL AND (idempotency_key IS NULL OR idempotency_key_expires_at IS NOT NULL);
-- The token each CREATE_TOKEN entry names (its result is {"id": "waitpoint_…", …}): a token that
-- a run which has not finished created is kept, for the run's replay reads it back.
CREATE INDEX run_journal_token_creates ON run_journal (json_extract(result, '$.id'), run_id)
    WHERE kind = 'CREATE_TOKEN';
