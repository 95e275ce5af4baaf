-- A run waits on a set of waitpoints (one for a token or datetime wait): its waits, by journal
-- position, replace the single waitpoint a waiting run named.

-- The waitpoints of each wait of a run, in the wait's order: those of the wait it is suspended
-- on (at waiting_seq), and those of its earlier waits.
CREATE TABLE run_waits (
    run_id       TEXT COLLATE "C" NOT NULL,
    seq          INTEGER          NOT NULL,
    position     INTEGER          NOT NULL,
    waitpoint_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, seq, position)
);
-- The runs to look at when a waitpoint finishes, and the runs that waited on a token.
CREATE INDEX run_waits_waitpoint ON run_waits (waitpoint_id, run_id);
ALTER TABLE run_waits SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);

-- The token waits recorded so far (an entry's name is the token's public id, 'waitpoint_…'),
-- then what each waiting run waits on (a datetime wait's waitpoint is not in its entry).
INSERT INTO run_waits (run_id, seq, position, waitpoint_id)
    SELECT run_id, seq, 0, substr(name, 11) FROM run_journal WHERE kind = 'WAIT_TOKEN';
INSERT INTO run_waits (run_id, seq, position, waitpoint_id)
    SELECT id, waiting_seq, 0, waiting_on FROM runs WHERE status = 'WAITING'
    ON CONFLICT DO NOTHING;

-- WAITING: how many of the wait's waitpoints must complete.
ALTER TABLE runs ADD COLUMN waiting_needed INTEGER;
UPDATE runs SET waiting_needed = 1 WHERE status = 'WAITING';

DROP INDEX runs_waiting;
DROP INDEX run_journal_token_waits;
ALTER TABLE runs DROP COLUMN waiting_on;
