-- The ruhnsw index access method: options, plans, results against exact
-- scans for every operator class, inserts after the build, VACUUM, and
-- the ruhnsw.ef_search setting.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
-- enable_seqscan = off makes plans look costly enough to JIT-compile;
-- compiling takes far longer than these queries run
SET jit = off;

-- 200 rows of 8 dimensions from a deterministic generator, and 20 queries
CREATE TABLE hnsw_t (id int PRIMARY KEY, v ruvector(8));
INSERT INTO hnsw_t
SELECT i, ARRAY(SELECT sin(i * 0.37 + j * 1.3) + cos(i * 0.11 * j) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(1, 200) i;
CREATE TABLE hnsw_q (qid int PRIMARY KEY, v ruvector(8));
INSERT INTO hnsw_q
SELECT k, ARRAY(SELECT 1.5 * sin(k * 0.91 + j * 0.7) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(1, 20) k;

-- options: bounds, ef_construction >= 2 * m, unknown names
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (m = 1);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (m = 101);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (ef_construction = 3);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (ef_construction = 1001);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (m = 16, ef_construction = 31);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (lists = 10);
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (m = 'many');
-- one column, ORDER BY only, no unique
CREATE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops, v ruvector_l2_ops);
CREATE UNIQUE INDEX ON hnsw_t USING ruhnsw (v ruvector_l2_ops);
CREATE INDEX ON hnsw_t USING ruhnsw (v);

CREATE INDEX hnsw_t_l2 ON hnsw_t USING ruhnsw (v ruvector_l2_ops) WITH (m = 8, ef_construction = 32);
SELECT reloptions FROM pg_class WHERE relname = 'hnsw_t_l2';
SELECT amname FROM pg_am a JOIN pg_class c ON c.relam = a.oid WHERE c.relname = 'hnsw_t_l2';

SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;
-- the index serves only its own operator; descending order is a sort
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' DESC LIMIT 5;
-- no ORDER BY: never the index
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t WHERE v = '[1,1,1,1,1,1,1,1]';

SELECT id, round((v <-> '[1,1,1,1,1,1,1,1]')::numeric, 6) AS dist
FROM hnsw_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;

-- the index scan equals the exact order (l2_distance() is not indexable)
-- for all 20 queries
SELECT count(*) AS l2_exact_matches FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY l2_distance(v, q.v) LIMIT 10);
EXPLAIN (COSTS OFF) SELECT ARRAY(SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) FROM hnsw_q q;

-- inserts after the build are found
INSERT INTO hnsw_t VALUES (1001, '[9,9,9,9,9,9,9,9]'), (1002, '[9,9,9,9,9,9,9,9.5]'), (1003, NULL);
SELECT id FROM hnsw_t ORDER BY v <-> '[9,9,9,9,9,9,9,9.1]' LIMIT 3;
SELECT count(*) AS l2_exact_matches_after_insert FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY l2_distance(v, q.v) LIMIT 10);
-- a vector of another dimension count cannot go in
INSERT INTO hnsw_t VALUES (1004, '[1,2,3]');

-- deletes and VACUUM: no deleted row comes back, the rest still match
DELETE FROM hnsw_t WHERE id % 4 = 0 OR id = 1001;
VACUUM hnsw_t;
SELECT id FROM hnsw_t ORDER BY v <-> '[9,9,9,9,9,9,9,9.1]' LIMIT 2;
SELECT count(*) AS deleted_rows_returned FROM hnsw_q q,
    LATERAL (SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) r
WHERE r.id % 4 = 0 OR r.id = 1001;
SELECT count(*) AS l2_exact_matches_after_vacuum FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY l2_distance(v, q.v) LIMIT 10);
-- rows inserted after the VACUUM are found as well
INSERT INTO hnsw_t VALUES (2001, '[-9,-9,-9,-9,-9,-9,-9,-9]');
SELECT id FROM hnsw_t ORDER BY v <-> '[-8,-8,-8,-8,-8,-8,-8,-8]' LIMIT 1;

-- ruhnsw.ef_search: the default, its bounds, and a scan returns at most
-- that many rows
SHOW ruhnsw.ef_search;
SET ruhnsw.ef_search = 0;
SET ruhnsw.ef_search = 1001;
SET ruhnsw.ef_search = 5;
SELECT count(*) FROM (SELECT id FROM hnsw_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 10) s;
SET ruhnsw.ef_search = 1000;
SELECT count(*) FROM (SELECT id FROM hnsw_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 1000) s;
SELECT count(*) FROM hnsw_t WHERE v IS NOT NULL;
RESET ruhnsw.ef_search;
SHOW ruhnsw.ef_search;
SET ruhnsw.no_such_setting = 1;
DROP INDEX hnsw_t_l2;

-- REINDEX rebuilds the graph from the table
CREATE INDEX hnsw_t_l2 ON hnsw_t USING ruhnsw (v ruvector_l2_ops);
REINDEX INDEX hnsw_t_l2;
SELECT count(*) AS l2_exact_matches_after_reindex FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY l2_distance(v, q.v) LIMIT 10);
DROP INDEX hnsw_t_l2;

-- ruvector_cosine_ops: zero vectors (no direction) and NULLs are not in
-- the index
CREATE INDEX hnsw_t_cos ON hnsw_t USING ruhnsw (v ruvector_cosine_ops);
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS cosine_exact_matches FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <=> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY cosine_distance(v, q.v) LIMIT 10);
INSERT INTO hnsw_t VALUES (3001, '[0,0,0,0,0,0,0,0]');
SELECT count(*) FROM (SELECT id FROM hnsw_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 1000) s WHERE id = 3001;
DELETE FROM hnsw_t WHERE id = 3001;
DROP INDEX hnsw_t_cos;

-- ruvector_ip_ops
CREATE INDEX hnsw_t_ip ON hnsw_t USING ruhnsw (v ruvector_ip_ops);
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <#> '[1,1,1,1,1,1,1,1]' LIMIT 5;
-- the inner product is no metric (a long vector is "near" everything in
-- its direction, and rows 1002 and 2001 are long), so a graph search
-- misses more of the exact top 10 than under the distances above; a
-- wider search misses fewer
SELECT count(*) >= 12 AS ip_mostly_exact FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <#> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY inner_product(v, q.v) DESC NULLS LAST LIMIT 10);
SET ruhnsw.ef_search = 100;
SELECT count(*) >= 16 AS ip_wider_mostly_exact FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <#> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY inner_product(v, q.v) DESC NULLS LAST LIMIT 10);
-- and every one of the top 10 it returns is among the exact top 20
SELECT count(*) AS ip_outside_exact_top20 FROM hnsw_q q,
    LATERAL (SELECT id FROM hnsw_t ORDER BY v <#> q.v LIMIT 10) r
WHERE r.id <> ALL (ARRAY(SELECT id FROM hnsw_t ORDER BY inner_product(v, q.v) DESC NULLS LAST LIMIT 20));
RESET ruhnsw.ef_search;
DROP INDEX hnsw_t_ip;

-- ruvector_l1_ops
CREATE INDEX hnsw_t_l1 ON hnsw_t USING ruhnsw (v ruvector_l1_ops);
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_t ORDER BY v <+> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS l1_exact_matches FROM hnsw_q q
WHERE ARRAY(SELECT id FROM hnsw_t ORDER BY v <+> q.v LIMIT 10) =
      ARRAY(SELECT id FROM hnsw_t ORDER BY l1_distance(v, q.v) LIMIT 10);
DROP INDEX hnsw_t_l1;

-- an index on an empty table fills by inserts alone; an unconstrained
-- column takes the first vector's dimension count
CREATE TABLE hnsw_e (id int, v ruvector);
CREATE INDEX hnsw_e_idx ON hnsw_e USING ruhnsw (v ruvector_l2_ops) WITH (m = 2, ef_construction = 4);
SELECT id FROM hnsw_e ORDER BY v <-> '[1,2]' LIMIT 3;
INSERT INTO hnsw_e VALUES (1, '[1,1]');
SELECT id FROM hnsw_e ORDER BY v <-> '[1,2]' LIMIT 3;
INSERT INTO hnsw_e SELECT i, ARRAY[i, -i] FROM generate_series(2, 60) i;
SELECT id FROM hnsw_e ORDER BY v <-> '[30,-30.2]' LIMIT 3;
INSERT INTO hnsw_e VALUES (100, '[1,2,3]');
-- a build over rows of mixed dimension counts fails with the same message
DROP INDEX hnsw_e_idx;
INSERT INTO hnsw_e VALUES (0, '[1,2,3]');
CREATE INDEX ON hnsw_e USING ruhnsw (v ruvector_l2_ops);
-- pgvector's hnsw limit of 2,000 dimensions: such a vector leaves no room
-- for its links on its page, so they go to another; built and inserted
-- rows alike are found
CREATE TABLE hnsw_wide (id int, v ruvector(2000));
INSERT INTO hnsw_wide
SELECT i, ARRAY(SELECT sin(i * 0.3 + j * 0.01) FROM generate_series(1, 2000) j)
FROM generate_series(1, 20) i;
CREATE INDEX ON hnsw_wide USING ruhnsw (v ruvector_l2_ops);
INSERT INTO hnsw_wide
SELECT i, ARRAY(SELECT sin(i * 0.3 + j * 0.01) FROM generate_series(1, 2000) j)
FROM generate_series(21, 40) i;
SELECT count(*) AS wide_exact_matches FROM hnsw_wide w
WHERE ARRAY(SELECT id FROM hnsw_wide ORDER BY v <-> w.v LIMIT 5) =
      ARRAY(SELECT id FROM hnsw_wide ORDER BY l2_distance(v, w.v) LIMIT 5);
-- a vector must fit on a page by itself
CREATE TABLE hnsw_wider (v ruvector(2035));
CREATE INDEX ON hnsw_wider USING ruhnsw (v ruvector_l2_ops);
CREATE TABLE hnsw_fits (v ruvector(2034));
CREATE INDEX ON hnsw_fits USING ruhnsw (v ruvector_l2_ops);

-- unlogged tables: the index's init fork holds an empty graph
CREATE UNLOGGED TABLE hnsw_u (id int, v ruvector(3));
INSERT INTO hnsw_u VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]');
CREATE INDEX ON hnsw_u USING ruhnsw (v ruvector_l2_ops);
SELECT id FROM hnsw_u ORDER BY v <-> '[0,0.9,0.1]' LIMIT 2;

-- a NULL query vector from a subquery reaches the index (a constant NULL
-- is folded away by the planner): the rows come back in no particular
-- order, as from pgvector; a query of another dimension count fails
EXPLAIN (COSTS OFF) SELECT id FROM hnsw_u ORDER BY v <-> (SELECT NULL::ruvector) LIMIT 3;
SELECT count(*) FROM (SELECT id FROM hnsw_u ORDER BY v <-> (SELECT NULL::ruvector) LIMIT 3) s;
SELECT id FROM hnsw_u ORDER BY v <-> '[1,2]' LIMIT 3;

RESET enable_seqscan;
RESET jit;
DROP TABLE hnsw_t, hnsw_q, hnsw_e, hnsw_wide, hnsw_wider, hnsw_fits, hnsw_u;
