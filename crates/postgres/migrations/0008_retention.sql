-- Retention: what a purge may delete, found through indexes.

-- Finished waitpoints and runs, the earliest finished first. A record whose idempotency key
-- never expires is kept for good, so it is left out: a purge never walks past it again.
CREATE INDEX waitpoints_finished ON waitpoints (completed_at)
    WHERE completed_at IS NOT NULL AND (idempotency_key IS NULL OR idempotency_key_expires_at IS NOT NULL);
CREATE INDEX runs_finished ON runs (finished_at)
    WHERE finished_at IS NOT NULL AND (idempotency_key IS NULL OR idempotency_key_expires_at IS NOT NULL);
-- The token each CREATE_TOKEN entry names (its result is {"id": "waitpoint_…", …}): a token that
-- a run which has not finished created is kept, for the run's replay reads it back.
CREATE INDEX run_journal_token_creates ON run_journal (((result::json) ->> 'id'), run_id)
    WHERE kind = 'CREATE_TOKEN';

-- Purges delete from the tag tables as steadily as from the others: vacuum and analyze them
-- after 1 % of them changed too (migration 3 did so for the other tables).
ALTER TABLE waitpoint_tags SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE run_tags SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
