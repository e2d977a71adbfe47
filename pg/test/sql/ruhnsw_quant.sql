-- ruhnsw with quantization = 'sq8': the option and its errors, builds
-- (serial, past maintenance_work_mem, parallel, on no rows), scans whose
-- rows come in exact distance order although the graph walk ranks by int8
-- codes, inserts after the build (values outside the trained range
-- included), VACUUM, iterative scans and an expression index.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
SET jit = off;

-- 400 rows of 16 dimensions in 20 clusters (a sine-hash gives each row
-- its offset), and one row far out on dimension 1: its range (about -4 ..
-- 200) makes that dimension's code step about 0.8, coarse against the
-- clusters' spread, so distances on the codes misorder rows often
CREATE TABLE q8 (id int PRIMARY KEY, v ruvector(16));
INSERT INTO q8
SELECT i, ARRAY(
    SELECT 3 * sin((i % 20) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(1, 400) i;
INSERT INTO q8 VALUES (401, ('[200' || repeat(',0', 15) || ']')::ruvector(16));
CREATE TABLE q8_q (qid int PRIMARY KEY, v ruvector(16));
INSERT INTO q8_q
SELECT k, ARRAY(SELECT 3 * sin((k % 20) * 7.1 + j * 1.7) + 0.3 * cos(k * 3.3 + j)
                FROM generate_series(1, 16) j)::ruvector(16)
FROM generate_series(1, 20) k;

-- Queries whose top k through the index differs from the exact top k
-- (l2_distance is no index operator: that side is always a full scan).
CREATE FUNCTION q8_mismatches(k int) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM q8_q q
    WHERE ARRAY(SELECT id FROM q8 ORDER BY v <-> q.v LIMIT k)
          IS DISTINCT FROM ARRAY(SELECT id FROM q8 ORDER BY l2_distance(v, q.v), id LIMIT k)
$$;
-- Queries whose rows through the index are not in order of their exact
-- distance.
CREATE FUNCTION q8_unsorted(k int) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM q8_q q
    WHERE EXISTS (
        SELECT 1 FROM (
            SELECT d, lag(d) OVER (ORDER BY n) AS prev
            FROM (SELECT row_number() OVER () AS n, l2_distance(v, q.v) AS d
                  FROM (SELECT v FROM q8 ORDER BY v <-> q.v LIMIT k) s) r) t
        WHERE d < prev)
$$;

-- ---- the option ----
CREATE INDEX ON q8 USING ruhnsw (v ruvector_l2_ops) WITH (quantization = 'pq');
CREATE INDEX ON q8 USING ruhnsw (v ruvector_l2_ops) WITH (quantization = '');
CREATE INDEX ON q8 USING ruhnsw (v ruvector_l2_ops) WITH (quantization = 8);
CREATE INDEX ON q8 USING ruhnsw (v ruvector_l1_ops) WITH (quantization = 'sq8');
-- the float index for comparison; 'none' is the default
CREATE INDEX q8_float ON q8 USING ruhnsw (v ruvector_l2_ops) WITH (m = 8, ef_construction = 32, quantization = 'none');
CREATE INDEX q8_idx ON q8 USING ruhnsw (v ruvector_l2_ops) WITH (m = 8, ef_construction = 32, quantization = 'sq8');
SELECT relname, reloptions FROM pg_class WHERE relname IN ('q8_float', 'q8_idx') ORDER BY relname;
-- 16 floats take 72 bytes, their code 28: the sq8 index is smaller
SELECT pg_relation_size('q8_idx') < pg_relation_size('q8_float') AS smaller;
DROP INDEX q8_float;

SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM q8 ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 5;

-- ef_search over the row count: every row is a candidate, and the
-- re-check orders them exactly
SET ruhnsw.ef_search = 500;
SELECT q8_mismatches(10) AS mismatches_top10, q8_mismatches(50) AS mismatches_top50;
-- a small ef_search: whatever comes back is in exact order
SET ruhnsw.ef_search = 10;
SELECT q8_unsorted(10) AS unsorted;
SET ruhnsw.ef_search = 40;
SELECT q8_unsorted(40) AS unsorted, q8_mismatches(10) AS mismatches_top10;
-- the far row is found for a query next to it
SELECT id FROM q8 ORDER BY v <-> ('[199' || repeat(',0', 15) || ']')::ruvector LIMIT 1;

-- ---- inserts after the build, some far outside the trained range ----
INSERT INTO q8
SELECT i, ARRAY(SELECT 3 * sin((i % 20) * 7.1 + j * 1.7) + 0.5 * cos(i * 1.7 + j * 2.9)
                FROM generate_series(1, 16) j)::ruvector(16)
FROM generate_series(402, 600) i;
-- clamped on every dimension: its code is that of a corner of the range,
-- yet the re-check puts it exactly where it belongs
INSERT INTO q8 VALUES (601, array_fill(-50, ARRAY[16])::ruvector(16));
INSERT INTO q8 VALUES (602, array_fill(-49, ARRAY[16])::ruvector(16));
SET ruhnsw.ef_search = 700;
SELECT q8_mismatches(10) AS mismatches_top10, q8_mismatches(50) AS mismatches_top50;
SELECT id, round((v <-> array_fill(-60, ARRAY[16])::ruvector)::numeric, 3) AS d
FROM q8 ORDER BY v <-> array_fill(-60, ARRAY[16])::ruvector LIMIT 3;
SET ruhnsw.ef_search = 40;
SELECT q8_unsorted(40) AS unsorted;

-- ---- VACUUM: dead rows leave the graph, their space is reused ----
DELETE FROM q8 WHERE id % 3 = 0;
VACUUM q8;
SELECT count(*) AS deleted_returned FROM q8_q q,
    LATERAL (SELECT id FROM q8 ORDER BY v <-> q.v LIMIT 40) r WHERE r.id % 3 = 0;
SET ruhnsw.ef_search = 700;
SELECT q8_mismatches(10) AS mismatches_top10, q8_mismatches(50) AS mismatches_top50;
-- inserts after VACUUM take the free elements' places: the index grows
-- by no more than its free space
SELECT pg_relation_size('q8_idx') AS size_before \gset
INSERT INTO q8
SELECT i + 1000, ARRAY(SELECT 3 * sin((i % 20) * 7.1 + j * 1.7) - 0.4 * cos(i * 0.7 + j)
                       FROM generate_series(1, 16) j)::ruvector(16)
FROM generate_series(1, 150) i;
SELECT pg_relation_size('q8_idx') = :size_before AS same_size;
SELECT q8_mismatches(10) AS mismatches_top10;
SET ruhnsw.ef_search = 40;
SELECT q8_unsorted(40) AS unsorted;

-- ---- iterative scans: a filter keeping one row in five ----
-- strict_order leaves out a later round's rows that are nearer than one
-- already returned; with codes that misorder rows this much (see the far
-- row above), that is many of them, but what comes is in exact order
SET ruhnsw.ef_search = 10;
SET ruhnsw.iterative_scan = strict_order;
SELECT count(*) >= 10 AS strict_rows, bool_and(ok) AS strict_sorted FROM (
    SELECT coalesce(d >= lag(d) OVER (ORDER BY n), true) AS ok FROM (
        SELECT row_number() OVER () AS n, d FROM (
            SELECT l2_distance(v, '[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]') AS d FROM q8
            WHERE id % 5 = 1 ORDER BY v <-> '[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]' LIMIT 30) a) b) c;
SET ruhnsw.iterative_scan = relaxed_order;
SELECT count(*) AS relaxed_rows, count(DISTINCT id) AS distinct_rows FROM (
    SELECT id FROM q8 WHERE id % 5 = 1
    ORDER BY v <-> '[1,0,1,0,1,0,1,0,1,0,1,0,1,0,1,0]' LIMIT 30) a;
RESET ruhnsw.iterative_scan;
RESET ruhnsw.ef_search;
DROP INDEX q8_idx;

-- ---- inner product and cosine ----
-- An inner-product graph leaves some rows unreachable (far rows such as
-- 601 and 602 take every link), so its top 10 is not always the exact
-- one. The build links by float distances whatever the quantization, so
-- an sq8 index has the float index's graph: with every reachable row a
-- candidate, both return the same rows, in exact order.
SET ruhnsw.ef_search = 700;
CREATE INDEX q8_ip ON q8 USING ruhnsw (v ruvector_ip_ops);
CREATE TABLE q8_ip_float AS
SELECT qid, ARRAY(SELECT id FROM q8 ORDER BY v <#> q.v LIMIT 10) AS ids FROM q8_q q;
DROP INDEX q8_ip;
CREATE INDEX q8_ip ON q8 USING ruhnsw (v ruvector_ip_ops) WITH (quantization = 'sq8');
SELECT count(*) AS ip_differences FROM q8_q q JOIN q8_ip_float f USING (qid)
WHERE ARRAY(SELECT id FROM q8 ORDER BY v <#> q.v LIMIT 10) IS DISTINCT FROM f.ids;
SELECT count(*) AS ip_unsorted FROM q8_q q
WHERE EXISTS (
    SELECT 1 FROM (
        SELECT d, lag(d) OVER (ORDER BY n) AS prev
        FROM (SELECT row_number() OVER () AS n, -inner_product(v, q.v) AS d
              FROM (SELECT v FROM q8 ORDER BY v <#> q.v LIMIT 10) s) r) t
    WHERE d < prev);
DROP INDEX q8_ip;
DROP TABLE q8_ip_float;
CREATE INDEX q8_cos ON q8 USING ruhnsw (v ruvector_cosine_ops) WITH (quantization = 'sq8');
SELECT count(*) AS cosine_mismatches FROM q8_q q
WHERE ARRAY(SELECT id FROM q8 ORDER BY v <=> q.v LIMIT 10)
      IS DISTINCT FROM ARRAY(SELECT id FROM q8 ORDER BY cosine_distance(v, q.v), id LIMIT 10);
DROP INDEX q8_cos;

-- ---- an expression index: the re-check computes the expression ----
CREATE INDEX q8_expr ON q8 USING ruhnsw ((v * v) ruvector_l2_ops) WITH (quantization = 'sq8');
EXPLAIN (COSTS OFF) SELECT id FROM q8 ORDER BY (v * v) <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 1;
SELECT count(*) AS expr_mismatches FROM q8_q q
WHERE ARRAY(SELECT id FROM q8 ORDER BY (v * v) <-> q.v LIMIT 10)
      IS DISTINCT FROM ARRAY(SELECT id FROM q8 ORDER BY l2_distance(v * v, q.v), id LIMIT 10);
DROP INDEX q8_expr;
RESET ruhnsw.ef_search;

-- ---- builds: past maintenance_work_mem, parallel, on no rows ----
-- 4,000 rows of 64 dimensions: more than 1MB of graph with m = 8
CREATE TABLE q8_big (id int PRIMARY KEY, v ruvector(64));
INSERT INTO q8_big
SELECT i, ARRAY(
    SELECT 2 * sin((i % 50) * 3.7 + j * 0.9) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 64) j) s
    ORDER BY j)::ruvector(64)
FROM generate_series(1, 4000) i;
CREATE TABLE q8_big_q (qid int PRIMARY KEY, v ruvector(64));
INSERT INTO q8_big_q SELECT id, v + v - v FROM q8_big WHERE id % 400 = 7;
-- recall@10 of the index against the exact order
CREATE FUNCTION q8_big_recall() RETURNS numeric LANGUAGE sql AS $$
    SELECT round(count(*)::numeric / (10 * (SELECT count(*) FROM q8_big_q)), 3)
    FROM q8_big_q q,
         LATERAL (SELECT id FROM q8_big ORDER BY v <-> q.v LIMIT 10) i,
         LATERAL (SELECT id FROM q8_big ORDER BY l2_distance(v, q.v), id LIMIT 10) e
    WHERE i.id = e.id
$$;
SET maintenance_work_mem = '1MB';
SET max_parallel_maintenance_workers = 0;
CREATE INDEX q8_big_idx ON q8_big USING ruhnsw (v ruvector_l2_ops) WITH (m = 8, ef_construction = 32, quantization = 'sq8');
SELECT q8_big_recall() >= 0.95 AS recall_ok;
DROP INDEX q8_big_idx;
SET maintenance_work_mem = '64MB';
ALTER TABLE q8_big SET (parallel_workers = 2);
SET max_parallel_maintenance_workers = 2;
SET client_min_messages = debug1;
CREATE INDEX q8_big_idx ON q8_big USING ruhnsw (v ruvector_l2_ops) WITH (m = 8, ef_construction = 32, quantization = 'sq8');
RESET client_min_messages;
SELECT q8_big_recall() >= 0.95 AS recall_ok;
RESET max_parallel_maintenance_workers;
RESET maintenance_work_mem;
ALTER TABLE q8_big RESET (parallel_workers);
DROP TABLE q8_big, q8_big_q;

-- no rows to train on: a NOTICE, and the index works on with vectors
CREATE TABLE q8_empty (id int PRIMARY KEY, v ruvector(3));
CREATE INDEX q8_empty_idx ON q8_empty USING ruhnsw (v ruvector_l2_ops) WITH (quantization = 'sq8');
INSERT INTO q8_empty SELECT i, ARRAY[i, i % 7, -i]::ruvector(3) FROM generate_series(1, 50) i;
SELECT id FROM q8_empty ORDER BY v <-> '[20,3,-20]' LIMIT 3;
DROP TABLE q8_empty;

-- an unlogged table (its init fork holds an empty, untrained index), and
-- the option changed afterwards: it takes effect at REINDEX
CREATE UNLOGGED TABLE q8_unlogged AS SELECT id, v || v || v || v AS v FROM q8 WHERE id <= 300;
CREATE INDEX q8_unlogged_idx ON q8_unlogged USING ruhnsw (v ruvector_l2_ops) WITH (quantization = 'sq8');
SET ruhnsw.ef_search = 400;
SELECT count(*) AS unlogged_mismatches FROM q8_q q
WHERE ARRAY(SELECT id FROM q8_unlogged ORDER BY v <-> (q.v || q.v || q.v || q.v) LIMIT 10)
      IS DISTINCT FROM ARRAY(SELECT id FROM q8_unlogged ORDER BY l2_distance(v, q.v || q.v || q.v || q.v), id LIMIT 10);
SELECT pg_relation_size('q8_unlogged_idx') AS sq8_size \gset
ALTER INDEX q8_unlogged_idx SET (quantization = 'none');
SELECT pg_relation_size('q8_unlogged_idx') = :sq8_size AS unchanged_until_reindex;
REINDEX INDEX q8_unlogged_idx;
SELECT pg_relation_size('q8_unlogged_idx') > :sq8_size AS float_is_larger;
RESET ruhnsw.ef_search;
DROP TABLE q8_unlogged;

RESET enable_seqscan;
DROP TABLE q8, q8_q;
DROP FUNCTION q8_mismatches(int), q8_unsorted(int), q8_big_recall();
RESET jit;
