-- Rows of runs, journals and tokens change state several times in their first seconds, and the
-- queue's partial indexes gain and lose an entry at each resume. The default thresholds (20 %
-- of a table) let dead versions and stale statistics build up for a whole burst: vacuum and
-- analyze these tables after 1 % of them changed.

ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE run_journal SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE waitpoints SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE workers SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
