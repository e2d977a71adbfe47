-- Recall of ruhnsw against the exact order: 10,000 rows of 32 dimensions
-- in 50 clusters (deterministic: a sine-hash gives each row its offset
-- from its cluster's centre), 50 queries near the centres, recall@10 of
-- the index scan over the exact ORDER BY.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;

CREATE TABLE hnsw_big (id int PRIMARY KEY, v ruvector(32));
INSERT INTO hnsw_big
SELECT i, ARRAY(
    SELECT 3 * sin((i % 50) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 32) j) s
    ORDER BY j)::ruvector(32)
FROM generate_series(1, 10000) i;
CREATE TABLE hnsw_bq (qid int PRIMARY KEY, v ruvector(32));
INSERT INTO hnsw_bq
SELECT k, ARRAY(
    SELECT 3 * sin((k % 50) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(k * 3.7719 + j * 11.135 + 0.5) * 24634.6345 AS x
          FROM generate_series(1, 32) j) s
    ORDER BY j)::ruvector(32)
FROM generate_series(1, 50) k;

-- the exact top 10 (l2_distance() is not indexable)
CREATE TABLE hnsw_exact AS
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big ORDER BY l2_distance(v, q.v) LIMIT 10) r;

CREATE INDEX hnsw_big_idx ON hnsw_big USING ruhnsw (v ruvector_l2_ops) WITH (m = 16, ef_construction = 64);
ANALYZE hnsw_big;

-- on a table of this size the planner picks the index by itself
EXPLAIN (COSTS OFF)
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big ORDER BY v <-> q.v LIMIT 10) r;

CREATE TABLE hnsw_found AS
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big ORDER BY v <-> q.v LIMIT 10) r;
SELECT count(*) = 500 AS all_rows,
       (SELECT count(*) FROM hnsw_found f JOIN hnsw_exact e USING (qid, id)) / 500.0 >= 0.95 AS recall_ok
FROM hnsw_found;

-- the same graph grown by inserts alone reaches the same recall
CREATE TABLE hnsw_big2 (id int PRIMARY KEY, v ruvector(32));
CREATE INDEX hnsw_big2_idx ON hnsw_big2 USING ruhnsw (v ruvector_l2_ops);
INSERT INTO hnsw_big2 SELECT * FROM hnsw_big;
ANALYZE hnsw_big2;
CREATE TABLE hnsw_found2 AS
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big2 ORDER BY v <-> q.v LIMIT 10) r;
SELECT (SELECT count(*) FROM hnsw_found2 f JOIN hnsw_exact e USING (qid, id)) / 500.0 >= 0.95 AS recall_ok;

-- after deleting a third of the rows and a VACUUM: no deleted row is
-- returned, and the recall over the remaining rows holds
DELETE FROM hnsw_big2 WHERE id % 3 = 0;
VACUUM hnsw_big2;
CREATE TABLE hnsw_exact3 AS
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big2 ORDER BY l2_distance(v, q.v) LIMIT 10) r;
CREATE TABLE hnsw_found3 AS
SELECT q.qid, r.id FROM hnsw_bq q,
    LATERAL (SELECT id FROM hnsw_big2 ORDER BY v <-> q.v LIMIT 10) r;
SELECT count(*) FILTER (WHERE id % 3 = 0) AS deleted_returned,
       count(*) = 500 AS all_rows,
       (SELECT count(*) FROM hnsw_found3 f JOIN hnsw_exact3 e USING (qid, id)) / 500.0 >= 0.95 AS recall_ok
FROM hnsw_found3;

DROP TABLE hnsw_big, hnsw_bq, hnsw_exact, hnsw_found, hnsw_big2, hnsw_found2, hnsw_exact3, hnsw_found3;
