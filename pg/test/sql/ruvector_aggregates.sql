-- avg and sum, serial and as parallel partial aggregates.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;

SELECT avg(v) FROM unnest(ARRAY['[1,2,3]', '[3,5,7]']::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY['[1,2,3]', '[3,5,7]', NULL]::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY[]::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY[NULL]::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY['[1,2]', '[3]']::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY['[3e38]', '[3e38]']::ruvector[]) v;
SELECT avg(v) FROM unnest(ARRAY['[0.1]', '[0.2]', '[0.3]']::ruvector[]) v;

SELECT sum(v) FROM unnest(ARRAY['[1,2,3]', '[3,5,7]']::ruvector[]) v;
SELECT sum(v) FROM unnest(ARRAY['[1,2,3]', '[3,5,7]', NULL]::ruvector[]) v;
SELECT sum(v) FROM unnest(ARRAY[]::ruvector[]) v;
SELECT sum(v) FROM unnest(ARRAY['[1,2]', '[3]']::ruvector[]) v;
SELECT sum(v) FROM unnest(ARRAY['[3e38]', '[3e38]']::ruvector[]) v;

-- grouped; the elements are small integers so that every float32 sum is
-- exact and the result does not depend on the order rows arrive in
CREATE TABLE t_agg (g int, v ruvector(2));
INSERT INTO t_agg SELECT i % 3, ARRAY[i % 100, -(i % 7)] FROM generate_series(1, 30000) i;
SELECT g, avg(v), sum(v) FROM t_agg GROUP BY g ORDER BY g;

-- parallel: the partial states of the workers go through the combine
-- functions and must give the serial result
ANALYZE t_agg;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM t_agg;
SELECT avg(v), sum(v) FROM t_agg;
SELECT avg(v), sum(v) FROM t_agg WHERE g = 5;
RESET parallel_leader_participation;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;
SELECT avg(v), sum(v) FROM t_agg;

-- the combine function directly: an empty state defers to the other
SELECT ruvector_combine('{0}', '{2,4,6}'), ruvector_combine('{2,4,6}', '{0}');
SELECT ruvector_combine('{1,1,2}', '{2,4,6}');
SELECT ruvector_combine('{1,1,2}', '{2,4}');
SELECT ruvector_avg(ruvector_accum(ruvector_accum('{0}', '[1,2]'), '[3,4]'));
SELECT ruvector_accum('{}', '[1]');
DROP TABLE t_agg;
