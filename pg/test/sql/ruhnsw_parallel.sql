-- Building a ruhnsw index: in memory up to maintenance_work_mem (past it
-- the rest goes in on disk, with a NOTICE), and with parallel workers
-- (max_parallel_maintenance_workers): the leader and the workers fill one
-- graph in shared memory. A parallel build finds what a serial one finds.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
SET jit = off;

-- 8,000 rows of 32 dimensions in 50 clusters (a deterministic sine-hash
-- gives each row its offset), 50 queries near the centres
CREATE TABLE par (id int PRIMARY KEY, v ruvector(32));
INSERT INTO par
SELECT i, ARRAY(
    SELECT 3 * sin((i % 50) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 32) j) s
    ORDER BY j)::ruvector(32)
FROM generate_series(1, 8000) i;
CREATE TABLE par_q (qid int PRIMARY KEY, v ruvector(32));
INSERT INTO par_q
SELECT k, ARRAY(
    SELECT 3 * sin((k % 50) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(k * 3.7719 + j * 11.135 + 0.5) * 24634.6345 AS x
          FROM generate_series(1, 32) j) s
    ORDER BY j)::ruvector(32)
FROM generate_series(1, 50) k;
CREATE TABLE par_exact AS
SELECT q.qid, r.id FROM par_q q,
    LATERAL (SELECT id FROM par ORDER BY l2_distance(v, q.v) LIMIT 10) r;
ANALYZE par;

-- recall@10 of the index over the exact order
CREATE FUNCTION par_recall() RETURNS numeric LANGUAGE sql AS $$
    SELECT count(*) / 500.0 FROM par_q q
        CROSS JOIN LATERAL (SELECT id FROM par ORDER BY v <-> q.v LIMIT 10) f
        JOIN par_exact e ON e.qid = q.qid AND e.id = f.id
$$;
-- rows an iterative scan walking the whole graph reaches, each once
CREATE FUNCTION par_reachable() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    SET LOCAL ruhnsw.iterative_scan = relaxed_order;
    SET LOCAL ruhnsw.max_scan_tuples = 1000000;
    SET LOCAL ruhnsw.scan_mem_multiplier = 100;
    SELECT count(DISTINCT id) INTO n FROM (SELECT id FROM par ORDER BY v <-> (SELECT v FROM par_q WHERE qid = 1)
        LIMIT 1000000) s;
    RETURN n;
END $$;
CREATE TABLE par_results (build text PRIMARY KEY, recall numeric);
SET enable_seqscan = off;

-- serial
SET maintenance_work_mem = '128MB';
SET max_parallel_maintenance_workers = 0;
CREATE INDEX par_idx ON par USING ruhnsw (v ruvector_l2_ops);
INSERT INTO par_results VALUES ('serial', par_recall());
SELECT par_reachable() AS reachable;
DROP INDEX par_idx;

-- a graph larger than maintenance_work_mem: written out when full, the
-- rest inserted on disk; the recall holds
SET maintenance_work_mem = '1MB';
CREATE INDEX par_idx ON par USING ruhnsw (v ruvector_l2_ops);
SELECT par_recall() >= 0.95 AS recall_ok;
SELECT par_reachable() = (SELECT count(*) FROM par) AS all_reachable;
DROP INDEX par_idx;
SET maintenance_work_mem = '128MB';

-- parallel: two workers (the table's parallel_workers asks for them; the
-- server allows one per 32MB of maintenance_work_mem beyond the
-- leader's); the DEBUG line says how many were planned
ALTER TABLE par SET (parallel_workers = 2);
SET max_parallel_maintenance_workers = 2;
-- (the server's own line above it speaks of btree's workers only)
SET client_min_messages = debug1;
CREATE INDEX par_idx ON par USING ruhnsw (v ruvector_l2_ops);
RESET client_min_messages;
INSERT INTO par_results VALUES ('parallel', par_recall());
SELECT p.recall >= 0.95 AS recall_ok, abs(p.recall - s.recall) <= 0.01 AS as_serial
FROM par_results p, par_results s WHERE p.build = 'parallel' AND s.build = 'serial';
-- the links depend on the order the participants' rows arrive in, so an
-- element or two may have lost every link to it (as in any HNSW graph)
SELECT par_reachable() >= 7990 AS reachable;
-- the index works on: inserts, deletes, VACUUM
INSERT INTO par SELECT id + 8000, v FROM par WHERE id <= 100;
DELETE FROM par WHERE id % 4 = 0;
VACUUM par;
SELECT count(*) AS deleted_returned FROM par_q q,
    LATERAL (SELECT id FROM par ORDER BY v <-> q.v LIMIT 10) f WHERE f.id % 4 = 0;
SELECT par_reachable() = (SELECT count(*) FROM par) AS all_reachable;
DELETE FROM par WHERE id > 8000;
VACUUM par;

-- REINDEX goes parallel too
REINDEX INDEX par_idx;
SELECT count(*) AS deleted_returned FROM par_q q,
    LATERAL (SELECT id FROM par ORDER BY v <-> q.v LIMIT 10) f WHERE f.id % 4 = 0;
SELECT par_reachable() >= (SELECT count(*) - 10 FROM par) AS reachable;
DROP INDEX par_idx;

-- CREATE INDEX CONCURRENTLY: the workers scan under the leader's snapshot
CREATE INDEX CONCURRENTLY par_idx ON par USING ruhnsw (v ruvector_l2_ops);
SELECT par_reachable() >= (SELECT count(*) - 10 FROM par) AS reachable;
DROP INDEX par_idx;

-- another operator class, and a column without a dimension count (the
-- first row the participants read sets it)
CREATE TABLE par_any (id int, v ruvector);
INSERT INTO par_any SELECT id, v FROM par;
ALTER TABLE par_any SET (parallel_workers = 2);
CREATE INDEX par_any_idx ON par_any USING ruhnsw (v ruvector_cosine_ops);
SELECT count(*) AS cosine_exact FROM par_q q
WHERE (SELECT id FROM par_any ORDER BY v <=> q.v LIMIT 1) =
      (SELECT id FROM par_any ORDER BY cosine_distance(v, q.v) LIMIT 1);
-- the count the participants agreed on holds for inserts
INSERT INTO par_any VALUES (0, '[1,2,3]');
DROP TABLE par_any;
RESET max_parallel_maintenance_workers;
ALTER TABLE par RESET (parallel_workers);

RESET enable_seqscan;
RESET jit;
DROP TABLE par, par_q, par_exact, par_results;
DROP FUNCTION par_recall(), par_reachable();
