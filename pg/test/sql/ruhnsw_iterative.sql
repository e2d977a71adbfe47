-- Iterative ruhnsw index scans (ruhnsw.iterative_scan, max_scan_tuples,
-- scan_mem_multiplier, with pgvector 0.8's meanings and bounds): a scan
-- that goes on past ruhnsw.ef_search rows while the executor asks for
-- more, so a selective WHERE clause still fills its LIMIT.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
SET jit = off;

-- the settings: defaults, bounds, bad values
SHOW ruhnsw.iterative_scan;
SHOW ruhnsw.max_scan_tuples;
SHOW ruhnsw.scan_mem_multiplier;
SET ruhnsw.iterative_scan = on;
SET ruhnsw.iterative_scan = 'strict';
SET ruhnsw.max_scan_tuples = 0;
SET ruhnsw.max_scan_tuples = 2147483648;
SET ruhnsw.scan_mem_multiplier = 0.5;
SET ruhnsw.scan_mem_multiplier = 1001;
SET ruhnsw.scan_mem_multiplier = 'lots';
SET ruhnsw.iterative_scan = relaxed_order;
SET ruhnsw.iterative_scan = strict_order;
SET ruhnsw.max_scan_tuples = 1;
SET ruhnsw.max_scan_tuples = 2147483647;
SET ruhnsw.scan_mem_multiplier = 1;
SET ruhnsw.scan_mem_multiplier = 1000;
SET ruhnsw.scan_mem_multiplier = 2.5;
SHOW ruhnsw.scan_mem_multiplier;
RESET ruhnsw.iterative_scan;
RESET ruhnsw.max_scan_tuples;
RESET ruhnsw.scan_mem_multiplier;

-- 5,000 rows of 16 dimensions in 40 clusters (a deterministic sine-hash
-- gives each row its offset), each row in one of 100 categories (50 rows
-- each, spread over the clusters); 20 queries near the centres
CREATE TABLE it (id int PRIMARY KEY, category int, v ruvector(16));
INSERT INTO it
SELECT i, (i * 37) % 100, ARRAY(
    SELECT 3 * sin((i % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(1, 5000) i;
CREATE TABLE it_q (qid int PRIMARY KEY, category int, v ruvector(16));
INSERT INTO it_q
SELECT k, k * 3, ARRAY(
    SELECT 3 * sin((k % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(k * 3.7719 + j * 11.135 + 0.5) * 24634.6345 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(1, 20) k;
CREATE INDEX it_idx ON it USING ruhnsw (v ruvector_l2_ops);
ANALYZE it;
SET enable_seqscan = off;

-- the exact answers: the 10 nearest rows of the query's category
CREATE TABLE it_exact AS
SELECT q.qid, r.id FROM it_q q,
    LATERAL (SELECT id FROM it WHERE category = q.category
             ORDER BY l2_distance(v, q.v) LIMIT 10) r;

EXPLAIN (COSTS OFF)
SELECT id FROM it WHERE category = 3 ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 10;

-- off: the scan ends after ef_search (40) rows, and a filter keeping 1 %
-- of them leaves far fewer than 10
SELECT count(*) < 200 AS off_falls_short
FROM it_q q, LATERAL (SELECT id FROM it WHERE category = q.category ORDER BY v <-> q.v LIMIT 10) r;

-- relaxed_order: every query gets its 10 rows, nearly all the exact ones
SET ruhnsw.iterative_scan = relaxed_order;
CREATE TABLE it_relaxed AS
SELECT q.qid, r.id FROM it_q q,
    LATERAL (SELECT id FROM it WHERE category = q.category ORDER BY v <-> q.v LIMIT 10) r;
SELECT count(*) AS relaxed_rows,
       (SELECT count(*) FROM it_relaxed JOIN it_exact USING (qid, id)) / 200.0 >= 0.9 AS relaxed_recall_ok
FROM it_relaxed;
-- no row twice, only rows of the category
SELECT count(DISTINCT (qid, id)) AS distinct_rows FROM it_relaxed;
SELECT count(*) AS wrong_category FROM it_relaxed r JOIN it_q q USING (qid) JOIN it t USING (id)
WHERE t.category <> q.category;

-- strict_order: 10 rows too, and in exact order of distance
SET ruhnsw.iterative_scan = strict_order;
CREATE TABLE it_strict AS
SELECT q.qid, r.id, r.d FROM it_q q,
    LATERAL (SELECT id, v <-> q.v AS d FROM it WHERE category = q.category ORDER BY v <-> q.v LIMIT 10) r;
SELECT count(*) AS strict_rows,
       (SELECT count(*) FROM it_strict JOIN it_exact USING (qid, id)) / 200.0 >= 0.9 AS strict_recall_ok
FROM it_strict;
SELECT count(*) AS sorted_queries FROM it_q q
WHERE (SELECT array_agg(d) = array_agg(d ORDER BY d)
       FROM (SELECT v <-> q.v AS d FROM it WHERE category = q.category ORDER BY v <-> q.v LIMIT 10) s);
-- over the whole table as well
SELECT array_agg(d) = array_agg(d ORDER BY d) AS all_sorted, count(*) > 4000 AS most_rows
FROM (SELECT v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' AS d FROM it
      ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;

-- relaxed_order without a filter walks the whole graph: every row once
SET ruhnsw.iterative_scan = relaxed_order;
SELECT count(*) AS all_rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM it ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;

-- ruhnsw.max_scan_tuples: after that many tuples the scan returns what
-- it has seen and ends (the first ef_search rows are searched in full)
SET ruhnsw.max_scan_tuples = 1;
SELECT count(*) >= 40 AND count(*) < 2000 AS bounded
FROM (SELECT id FROM it ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;
SET ruhnsw.max_scan_tuples = 1000;
SELECT count(*) >= 1000 AND count(*) < 5000 AS bounded
FROM (SELECT id FROM it ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;
RESET ruhnsw.max_scan_tuples;

-- ruhnsw.scan_mem_multiplier: the scan's memory stops at work_mem times
-- the multiplier
SET work_mem = '64kB';
SELECT count(*) < 5000 AS memory_bounded
FROM (SELECT id FROM it ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;
SET ruhnsw.scan_mem_multiplier = 1000;
SELECT count(*) AS all_rows
FROM (SELECT id FROM it ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 100000) s;
RESET ruhnsw.scan_mem_multiplier;
RESET work_mem;

-- a filter no row passes ends at max_scan_tuples, not at the table's end
SET ruhnsw.max_scan_tuples = 500;
SELECT count(*) FROM (SELECT id FROM it WHERE category = 1000
    ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 10) s;
RESET ruhnsw.max_scan_tuples;

-- an iterative scan over an empty index, and over deleted rows
CREATE TABLE it_e (id int, v ruvector(2));
CREATE INDEX ON it_e USING ruhnsw (v ruvector_l2_ops);
SELECT id FROM it_e ORDER BY v <-> '[1,1]' LIMIT 3;
INSERT INTO it_e SELECT i, ARRAY[i, i] FROM generate_series(1, 100) i;
DELETE FROM it_e WHERE id > 3;
SELECT id FROM it_e ORDER BY v <-> '[50,50]' LIMIT 5;
VACUUM it_e;
SELECT id FROM it_e ORDER BY v <-> '[50,50]' LIMIT 5;

RESET ruhnsw.iterative_scan;
RESET enable_seqscan;
RESET jit;
DROP TABLE it, it_q, it_exact, it_relaxed, it_strict, it_e;
