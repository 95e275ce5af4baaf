-- A run's waits are written at each wait and read at each finish, by waitpoint: a waitpoint has
-- one or a few waits. Statistics sampled early in a burst (a few hundred waits on as many
-- waitpoints) made the planner expect hundreds of waits per waitpoint once the table had grown
-- a hundredfold, and scan every wait to find a finish's few. Say how distinct the column is (a
-- waitpoint for about every two waits), keep the table analyzed like those of 0003, and analyze it now so
-- that both take effect.

ALTER TABLE run_waits ALTER COLUMN waitpoint_id SET (n_distinct = -0.5);
ALTER TABLE run_waits SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ANALYZE run_waits;
