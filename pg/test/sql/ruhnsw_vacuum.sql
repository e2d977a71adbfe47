-- VACUUM of a ruhnsw index: the elements of deleted rows leave the
-- graph, the elements that linked to them get new links, a deleted entry
-- point gives way, and later inserts reuse the space. After heavy
-- deletes the remaining rows keep their recall, no deleted row is ever
-- returned, and every remaining row can still be reached.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;
SET jit = off;

-- 4,000 rows of 16 dimensions in 40 clusters (a deterministic
-- sine-hash gives each row its offset), 30 queries near the centres
CREATE TABLE vac (id int PRIMARY KEY, v ruvector(16));
INSERT INTO vac
SELECT i, ARRAY(
    SELECT 3 * sin((i % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(1, 4000) i;
CREATE TABLE vac_q (qid int PRIMARY KEY, v ruvector(16));
INSERT INTO vac_q
SELECT k, ARRAY(
    SELECT 3 * sin((k % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(k * 3.7719 + j * 11.135 + 0.5) * 24634.6345 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(1, 30) k;
CREATE INDEX vac_idx ON vac USING ruhnsw (v ruvector_l2_ops);
SET enable_seqscan = off;

-- recall@10 of the index over the exact order, for the rows there are now
CREATE FUNCTION vac_recall() RETURNS numeric LANGUAGE sql AS $$
    SELECT count(*) / (10.0 * (SELECT count(*) FROM vac_q)) FROM vac_q q,
        LATERAL (SELECT id FROM vac ORDER BY v <-> q.v LIMIT 10) f
    WHERE f.id IN (SELECT id FROM vac ORDER BY l2_distance(v, q.v) LIMIT 10)
$$;
-- rows an iterative scan walking the whole graph reaches, each once
CREATE FUNCTION vac_reachable() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    SET LOCAL ruhnsw.iterative_scan = relaxed_order;
    SET LOCAL ruhnsw.max_scan_tuples = 1000000;
    SET LOCAL ruhnsw.scan_mem_multiplier = 100;
    SELECT count(DISTINCT id) INTO n
    FROM (SELECT id FROM vac ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 1000000) s;
    RETURN n;
END $$;
SELECT vac_recall() >= 0.95 AS recall_ok, vac_reachable() = 4000 AS all_reachable;

-- half the rows go
DELETE FROM vac WHERE id % 2 = 0;
VACUUM vac;
SELECT count(*) AS deleted_returned FROM vac_q q,
    LATERAL (SELECT id FROM vac ORDER BY v <-> q.v LIMIT 10) f WHERE f.id % 2 = 0;
SELECT vac_recall() >= 0.95 AS recall_ok, vac_reachable() = (SELECT count(*) FROM vac) AS all_reachable;
SELECT count(*) AS rows_returned FROM vac_q q, LATERAL (SELECT id FROM vac ORDER BY v <-> q.v LIMIT 10) f;

-- then 90 % of all rows are gone (the entry point is most likely among them)
DELETE FROM vac WHERE id % 10 <> 1;
VACUUM vac;
SELECT count(*) AS deleted_returned FROM vac_q q,
    LATERAL (SELECT id FROM vac ORDER BY v <-> q.v LIMIT 10) f WHERE f.id % 10 <> 1;
SELECT vac_recall() >= 0.95 AS recall_ok, vac_reachable() = (SELECT count(*) FROM vac) AS all_reachable;

-- inserts fill the space the deleted rows left: the index does not grow
SELECT pg_relation_size('vac_idx') AS size_before \gset
INSERT INTO vac
SELECT i, ARRAY(
    SELECT 3 * sin((i % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(10001, 12000) i;
SELECT pg_relation_size('vac_idx') = :size_before AS same_size;
SELECT vac_recall() >= 0.95 AS recall_ok, vac_reachable() = (SELECT count(*) FROM vac) AS all_reachable;
-- an inserted row is found first for its own vector
SELECT count(*) AS found_themselves FROM vac t
WHERE t.id > 10000 AND t.id <= 10100
  AND (SELECT id FROM vac ORDER BY v <-> t.v LIMIT 1) = t.id;

-- a second round of deletes and inserts over the reused space
DELETE FROM vac WHERE id % 3 = 0;
VACUUM vac;
INSERT INTO vac
SELECT i, ARRAY(
    SELECT 3 * sin((i % 40) * 7.1 + j * 1.7) + (x - floor(x)) - 0.5
    FROM (SELECT j, sin(i * 12.9898 + j * 78.233) * 43758.5453 AS x
          FROM generate_series(1, 16) j) s
    ORDER BY j)::ruvector(16)
FROM generate_series(20001, 21000) i;
SELECT count(*) AS deleted_returned FROM vac_q q,
    LATERAL (SELECT id FROM vac ORDER BY v <-> q.v LIMIT 10) f WHERE f.id % 3 = 0 AND f.id < 20001;
SELECT vac_recall() >= 0.95 AS recall_ok, vac_reachable() = (SELECT count(*) FROM vac) AS all_reachable;

-- every row gone: the graph is empty, and the next insert starts anew
DELETE FROM vac;
VACUUM vac;
SELECT count(*) FROM (SELECT id FROM vac ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 10) s;
INSERT INTO vac VALUES (1, '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]'), (2, '[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]'),
    (3, '[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3]');
SELECT id FROM vac ORDER BY v <-> '[2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9,2.9]' LIMIT 3;
SELECT pg_relation_size('vac_idx') = :size_before AS same_size;

-- the other operator classes go through the same repair
CREATE TABLE vac_c (id int, v ruvector(3));
INSERT INTO vac_c SELECT i, ARRAY[cos(i * 0.1), sin(i * 0.1), 0.5 + i % 7] FROM generate_series(1, 500) i;
CREATE INDEX ON vac_c USING ruhnsw (v ruvector_cosine_ops) WITH (m = 4, ef_construction = 16);
DELETE FROM vac_c WHERE id % 5 <> 0;
VACUUM vac_c;
SET ruhnsw.ef_search = 200;
SELECT count(*) FILTER (WHERE id % 5 <> 0) AS deleted_returned, count(*) AS rows_returned
FROM (SELECT id FROM vac_c ORDER BY v <=> '[1,0,3]' LIMIT 200) s;
RESET ruhnsw.ef_search;

RESET enable_seqscan;
RESET jit;
DROP TABLE vac, vac_q, vac_c;
DROP FUNCTION vac_recall(), vac_reachable();
