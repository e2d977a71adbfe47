-- The ruivfflat index access method: options and settings, plans,
-- results against exact scans for every operator class, inserts after
-- the build, VACUUM, iterative scans, and builds over little or no data.
-- The centres depend on float sums that differ in their last bits
-- between SIMD kernel sets, so what is printed holds for any centres:
-- with ruivfflat.probes at the number of lists a scan reads every row
-- and its order is exact.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
-- enable_seqscan = off makes plans look costly enough to JIT-compile;
-- compiling takes far longer than these queries run
SET jit = off;

-- 200 rows of 8 dimensions from a deterministic generator, and 20 queries
CREATE TABLE ivf_t (id int PRIMARY KEY, v ruvector(8));
INSERT INTO ivf_t
SELECT i, ARRAY(SELECT sin(i * 0.37 + j * 1.3) + cos(i * 0.11 * j) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(1, 200) i;
CREATE TABLE ivf_q (qid int PRIMARY KEY, v ruvector(8));
INSERT INTO ivf_q
SELECT k, ARRAY(SELECT 1.5 * sin(k * 0.91 + j * 0.7) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(1, 20) k;

-- options: pgvector's bounds for lists, unknown names
CREATE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 0);
CREATE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 32769);
CREATE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 'many');
CREATE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (m = 16);
-- one column, ORDER BY only, no unique
CREATE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops, v ruvector_l2_ops);
CREATE UNIQUE INDEX ON ivf_t USING ruivfflat (v ruvector_l2_ops);
-- ruvector_l2_ops is the default operator class, as vector_l2_ops is
-- pgvector's for ivfflat
CREATE INDEX ivf_t_default ON ivf_t USING ruivfflat (v);
SELECT opcname FROM pg_opclass c JOIN pg_index i ON c.oid = i.indclass[0]
WHERE i.indexrelid = 'ivf_t_default'::regclass;
DROP INDEX ivf_t_default;

CREATE INDEX ivf_t_l2 ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 10);
SELECT reloptions FROM pg_class WHERE relname = 'ivf_t_l2';
SELECT amname FROM pg_am a JOIN pg_class c ON c.relam = a.oid WHERE c.relname = 'ivf_t_l2';

SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;
-- the index serves only its own operator; descending order is a sort
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' DESC LIMIT 5;
-- no ORDER BY: never the index
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t WHERE v = '[1,1,1,1,1,1,1,1]';

-- ruivfflat.probes: the default, its bounds
SHOW ruivfflat.probes;
SET ruivfflat.probes = 0;
SET ruivfflat.probes = 32769;
SET ruivfflat.probes = 'all';
-- one probe reads one list: fewer rows than the table, and in order
SELECT count(*) < 200 AS one_list FROM (SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]') s;
SELECT bool_and(d >= prev) AS in_order FROM (
    SELECT d, lag(d, 1, 0::float8) OVER (ORDER BY n) AS prev FROM (
        SELECT row_number() OVER () AS n, v <-> '[1,1,1,1,1,1,1,1]' AS d
        FROM (SELECT v FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]') s) s) s;
-- as many probes as lists (or more: the index has 10) read every row,
-- and the order is the exact one (l2_distance() is not indexable)
SET ruivfflat.probes = 100;
SELECT count(*) FROM (SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]') s;
SELECT id, round((v <-> '[1,1,1,1,1,1,1,1]')::numeric, 6) AS dist
FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS l2_exact_matches FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
EXPLAIN (COSTS OFF) SELECT ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) FROM ivf_q q;
-- three probes of ten lists find most of the exact top 10
SET ruivfflat.probes = 3;
SELECT count(*) >= 150 AS mostly_found FROM ivf_q q,
    LATERAL (SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) r
WHERE r.id = ANY (ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10));
SET ruivfflat.probes = 10;

-- inserts after the build go to their nearest list and are found
INSERT INTO ivf_t VALUES (1001, '[9,9,9,9,9,9,9,9]'), (1002, '[9,9,9,9,9,9,9,9.5]'), (1003, NULL);
SELECT id FROM ivf_t ORDER BY v <-> '[9,9,9,9,9,9,9,9.1]' LIMIT 3;
SET ruivfflat.probes = 1;
SELECT id FROM ivf_t ORDER BY v <-> '[9,9,9,9,9,9,9,9.1]' LIMIT 2;
SET ruivfflat.probes = 10;
-- enough inserts to grow every list by pages of their own
INSERT INTO ivf_t
SELECT i, ARRAY(SELECT sin(i * 0.37 + j * 1.3) + cos(i * 0.11 * j) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(2001, 4000) i;
SELECT count(*) FROM (SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]') s;
SELECT count(*) AS l2_exact_matches_after_insert FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
-- a vector of another dimension count cannot go in
INSERT INTO ivf_t VALUES (1004, '[1,2,3]');

-- deletes and VACUUM: no deleted row comes back, the rest still match
DELETE FROM ivf_t WHERE id % 4 = 0 OR id = 1001 OR id > 2000;
VACUUM ivf_t;
SELECT id FROM ivf_t ORDER BY v <-> '[9,9,9,9,9,9,9,9.1]' LIMIT 2;
SELECT count(*) FROM (SELECT id FROM ivf_t ORDER BY v <-> '[1,1,1,1,1,1,1,1]') s;
SELECT count(*) AS deleted_rows_returned FROM ivf_q q,
    LATERAL (SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) r
WHERE r.id % 4 = 0 OR r.id = 1001 OR r.id > 2000;
SELECT count(*) AS l2_exact_matches_after_vacuum FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
-- the room VACUUM made takes new rows before the index grows
SELECT pg_relation_size('ivf_t_l2') AS size_after_vacuum \gset
INSERT INTO ivf_t
SELECT i, ARRAY(SELECT sin(i * 0.37 + j * 1.3) + cos(i * 0.11 * j) FROM generate_series(1, 8) j)::ruvector
FROM generate_series(3001, 3500) i;
SELECT pg_relation_size('ivf_t_l2') = :size_after_vacuum AS no_new_pages;
SELECT count(*) AS l2_exact_matches_after_reuse FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
DELETE FROM ivf_t WHERE id > 3000;
VACUUM ivf_t;

-- iterative scans: ruivfflat.iterative_scan and ruivfflat.max_probes,
-- their defaults and values
SHOW ruivfflat.iterative_scan;
SHOW ruivfflat.max_probes;
SET ruivfflat.iterative_scan = strict_order;
SET ruivfflat.max_probes = 0;
SET ruivfflat.max_probes = 32769;
-- a WHERE clause that keeps 6 rows, spread over the lists: one probe
-- finds only those in one list, an iterative scan reads on until the
-- LIMIT is met (or the lists run out)
SET ruivfflat.probes = 1;
SELECT count(*) FROM ivf_t WHERE id % 25 = 1;
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 6;
SELECT count(*) < 6 AS too_few FROM
    (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 6) s;
SET ruivfflat.iterative_scan = relaxed_order;
SELECT count(*) FROM
    (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 6) s;
SELECT count(*) FROM
    (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 5) s;
-- every query meets its LIMIT
SELECT count(*) AS queries_with_5 FROM ivf_q q
WHERE (SELECT count(*) FROM (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> q.v LIMIT 5) s) = 5;
-- max_probes caps the lists read in all; below probes, probes wins
SET ruivfflat.max_probes = 1;
SELECT count(*) < 6 AS capped FROM
    (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 6) s;
SET ruivfflat.probes = 10;
SELECT count(*) FROM
    (SELECT id FROM ivf_t WHERE id % 25 = 1 ORDER BY v <-> '[1,1,1,1,1,1,1,1]' LIMIT 6) s;
RESET ruivfflat.max_probes;
RESET ruivfflat.iterative_scan;
RESET ruivfflat.probes;
SHOW ruivfflat.probes;
SET ruivfflat.no_such_setting = 1;
DROP INDEX ivf_t_l2;

-- REINDEX builds the lists again from the table
CREATE INDEX ivf_t_l2 ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 4);
REINDEX INDEX ivf_t_l2;
SET ruivfflat.probes = 4;
SELECT count(*) AS l2_exact_matches_after_reindex FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
DROP INDEX ivf_t_l2;
-- and concurrently (the build, then inserts for the rows it missed)
CREATE INDEX CONCURRENTLY ivf_t_l2 ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 4);
REINDEX INDEX CONCURRENTLY ivf_t_l2;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'ivf_t_l2'::regclass;
SELECT count(*) AS l2_exact_matches_after_concurrently FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
DROP INDEX ivf_t_l2;

-- ruvector_cosine_ops: rows and queries are normalised, the centres come
-- from spherical k-means; zero vectors (no direction) and NULLs are not in
-- the index
SET ruivfflat.probes = 10;
CREATE INDEX ivf_t_cos ON ivf_t USING ruivfflat (v ruvector_cosine_ops) WITH (lists = 10);
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS cosine_exact_matches FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <=> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY cosine_distance(v, q.v) LIMIT 10);
INSERT INTO ivf_t VALUES (3001, '[0,0,0,0,0,0,0,0]'), (3002, '[-5,-5,-5,-5,-5,-5,-5,-4]');
SELECT count(*) FROM (SELECT id FROM ivf_t ORDER BY v <=> '[1,1,1,1,1,1,1,1]' LIMIT 1000) s WHERE id = 3001;
-- the direction counts, not the length
SELECT id FROM ivf_t ORDER BY v <=> '[-1,-1,-1,-1,-1,-1,-1,-0.8]' LIMIT 1;
DELETE FROM ivf_t WHERE id > 3000;
DROP INDEX ivf_t_cos;

-- ruvector_ip_ops: the rows keep their length, the centres are unit
-- vectors
CREATE INDEX ivf_t_ip ON ivf_t USING ruivfflat (v ruvector_ip_ops) WITH (lists = 10);
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <#> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS ip_exact_matches FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <#> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY inner_product(v, q.v) DESC NULLS LAST LIMIT 10);
DROP INDEX ivf_t_ip;

-- ruvector_l1_ops
CREATE INDEX ivf_t_l1 ON ivf_t USING ruivfflat (v ruvector_l1_ops) WITH (lists = 10);
EXPLAIN (COSTS OFF) SELECT id FROM ivf_t ORDER BY v <+> '[1,1,1,1,1,1,1,1]' LIMIT 5;
SELECT count(*) AS l1_exact_matches FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <+> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l1_distance(v, q.v) LIMIT 10);
DROP INDEX ivf_t_l1;

-- fewer rows than lists: the index builds (with pgvector's notice), the
-- distinct rows are centres (a row is its list's nearest centre), and
-- the rest of the lists stay empty
CREATE TABLE ivf_few (id int, v ruvector(3));
INSERT INTO ivf_few VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]'), (4, '[1,1,1]'), (5, '[1,1,1]');
CREATE INDEX ivf_few_idx ON ivf_few USING ruivfflat (v ruvector_l2_ops) WITH (lists = 20);
SET ruivfflat.probes = 1;
SELECT id FROM ivf_few ORDER BY v <-> '[0,1,0]';
SELECT id FROM ivf_few ORDER BY v <-> '[1,1,1]';
INSERT INTO ivf_few VALUES (6, '[0,1,0]');
SELECT id FROM ivf_few ORDER BY v <-> '[0,1,0]';
SET ruivfflat.probes = 20;
SELECT id FROM ivf_few ORDER BY v <-> '[0,0.9,0.1]' LIMIT 3;
SELECT count(*) FROM (SELECT id FROM ivf_few ORDER BY v <-> '[0,0,0]') s;

-- an empty table with a dimension count builds as well (every centre is
-- random) and fills by inserts; without a dimension count the rows must
-- tell it, and an empty table cannot
CREATE TABLE ivf_e (id int, v ruvector(2));
CREATE INDEX ivf_e_idx ON ivf_e USING ruivfflat (v ruvector_l2_ops) WITH (lists = 3);
SELECT id FROM ivf_e ORDER BY v <-> '[1,2]' LIMIT 3;
INSERT INTO ivf_e SELECT i, ARRAY[i, -i] FROM generate_series(1, 60) i;
SELECT id FROM ivf_e ORDER BY v <-> '[30,-30.2]' LIMIT 3;
CREATE TABLE ivf_n (id int, v ruvector);
CREATE INDEX ON ivf_n USING ruivfflat (v ruvector_l2_ops) WITH (lists = 3);
INSERT INTO ivf_n SELECT i, ARRAY[i, -i] FROM generate_series(1, 60) i;
CREATE INDEX ivf_n_idx ON ivf_n USING ruivfflat (v ruvector_l2_ops) WITH (lists = 3);
SET ruivfflat.probes = 3;
SELECT id FROM ivf_n ORDER BY v <-> '[30,-30.2]' LIMIT 3;
INSERT INTO ivf_n VALUES (100, '[1,2,3]');
-- a build over rows of mixed dimension counts fails with the same message
DROP INDEX ivf_n_idx;
INSERT INTO ivf_n VALUES (0, '[1,2,3]');
CREATE INDEX ON ivf_n USING ruivfflat (v ruvector_l2_ops) WITH (lists = 3);

-- one list is a flat scan
CREATE INDEX ivf_t_one ON ivf_t USING ruivfflat (v ruvector_l2_ops) WITH (lists = 1);
SET ruivfflat.probes = 1;
SELECT count(*) AS one_list_exact_matches FROM ivf_q q
WHERE ARRAY(SELECT id FROM ivf_t ORDER BY v <-> q.v LIMIT 10) =
      ARRAY(SELECT id FROM ivf_t ORDER BY l2_distance(v, q.v) LIMIT 10);
DROP INDEX ivf_t_one;

-- a vector must fit on a page by itself, entries and centres alike
CREATE TABLE ivf_wide (id int, v ruvector(2034));
INSERT INTO ivf_wide
SELECT i, ARRAY(SELECT sin(i * 0.3 + j * 0.01) FROM generate_series(1, 2034) j)
FROM generate_series(1, 20) i;
CREATE INDEX ON ivf_wide USING ruivfflat (v ruvector_l2_ops) WITH (lists = 3);
SET ruivfflat.probes = 3;
SELECT count(*) AS wide_exact_matches FROM ivf_wide w
WHERE ARRAY(SELECT id FROM ivf_wide ORDER BY v <-> w.v LIMIT 5) =
      ARRAY(SELECT id FROM ivf_wide ORDER BY l2_distance(v, w.v) LIMIT 5);
CREATE TABLE ivf_wider (v ruvector(2035));
CREATE INDEX ON ivf_wider USING ruivfflat (v ruvector_l2_ops);

-- unlogged tables: the index's init fork holds the centres and empty lists
CREATE UNLOGGED TABLE ivf_u (id int, v ruvector(3));
INSERT INTO ivf_u VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]');
CREATE INDEX ON ivf_u USING ruivfflat (v ruvector_l2_ops) WITH (lists = 2);
SET ruivfflat.probes = 2;
SELECT id FROM ivf_u ORDER BY v <-> '[0,0.9,0.1]' LIMIT 2;

-- a NULL query vector from a subquery reaches the index (a constant NULL
-- is folded away by the planner): the rows of the probed lists come back
-- in no particular order, as from pgvector; a query of another dimension
-- count fails
EXPLAIN (COSTS OFF) SELECT id FROM ivf_u ORDER BY v <-> (SELECT NULL::ruvector) LIMIT 3;
SELECT count(*) FROM (SELECT id FROM ivf_u ORDER BY v <-> (SELECT NULL::ruvector) LIMIT 3) s;
SELECT id FROM ivf_u ORDER BY v <-> '[1,2]' LIMIT 3;

RESET ruivfflat.probes;
RESET enable_seqscan;
RESET jit;
DROP TABLE ivf_t, ivf_q, ivf_few, ivf_e, ivf_n, ivf_wide, ivf_wider, ivf_u;
