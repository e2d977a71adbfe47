-- Element-wise arithmetic, concatenation, comparison and the btree class.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;

-- + - *
SELECT '[1,2,3]'::ruvector + '[4,5,6]';
SELECT '[1,2,3]'::ruvector - '[4,5,6]';
SELECT '[1,2,3]'::ruvector * '[4,5,6]';
SELECT '[0.5,-1]'::ruvector * '[0,3]';
SELECT '[1,2]'::ruvector + '[3]';
SELECT '[1,2]'::ruvector - '[3]';
SELECT '[1,2]'::ruvector * '[3]';
SELECT '[3e38]'::ruvector + '[3e38]';
SELECT '[-3e38]'::ruvector - '[3e38]';
SELECT '[1e20]'::ruvector * '[1e20]';
SELECT '[1e-30]'::ruvector * '[1e-30]';
SELECT '[1,2]'::ruvector + NULL;

-- || concatenation
SELECT '[1,2]'::ruvector || '[3]';
SELECT '[1]'::ruvector || '[2]' || '[3,4]';
SELECT vector_dims(array_fill(1, ARRAY[8000])::ruvector || array_fill(2, ARRAY[8000])::ruvector);
SELECT array_fill(1, ARRAY[8000])::ruvector || array_fill(2, ARRAY[8001])::ruvector;

-- comparison: element by element, then the shorter first
SELECT '[1,2,3]'::ruvector = '[1,2,3]', '[1,2,3]'::ruvector = '[1,2,4]';
SELECT '[1,2,3]'::ruvector <> '[1,2,3]', '[1,2,3]'::ruvector <> '[1,2,4]';
SELECT '[1,2,3]'::ruvector < '[1,2,4]', '[1,2,4]'::ruvector < '[1,2,3]';
SELECT '[1,2,3]'::ruvector <= '[1,2,3]', '[1,2,4]'::ruvector <= '[1,2,3]';
SELECT '[1,2,4]'::ruvector > '[1,2,3]', '[1,2,3]'::ruvector > '[1,2,3]';
SELECT '[1,2,3]'::ruvector >= '[1,2,3]', '[1,2,3]'::ruvector >= '[1,2,4]';
SELECT '[1,2]'::ruvector < '[1,2,3]', '[1,3]'::ruvector < '[1,2,3]';
SELECT '[1,2]'::ruvector = '[1,2,0]';
SELECT '[0]'::ruvector = '[-0]';
SELECT ruvector_cmp('[1,2]', '[1,2]'), ruvector_cmp('[1,2]', '[1,3]'), ruvector_cmp('[2]', '[1,3]');

-- ORDER BY, DISTINCT, GROUP BY and a btree index use the operator class
CREATE TABLE t_cmp (id int, v ruvector);
INSERT INTO t_cmp VALUES (1, '[3,1]'), (2, '[1,2,3]'), (3, '[1,2]'), (4, '[-1,5]'),
	(5, '[1,2]'), (6, '[3]'), (7, NULL);
SELECT v FROM t_cmp ORDER BY v;
SELECT v FROM t_cmp ORDER BY v DESC NULLS LAST;
SELECT DISTINCT v FROM t_cmp ORDER BY v;
SELECT v, count(*) FROM t_cmp GROUP BY v ORDER BY v;
CREATE INDEX t_cmp_v ON t_cmp USING btree (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM t_cmp WHERE v = '[1,2]';
SELECT id FROM t_cmp WHERE v = '[1,2]' ORDER BY id;
SELECT id FROM t_cmp WHERE v > '[1,2]' ORDER BY v, id;
SELECT id FROM t_cmp WHERE v <= '[1,2]' ORDER BY v, id;
RESET enable_seqscan;
SELECT opcname FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
	WHERE opcintype = 'ruvector'::regtype AND amname = 'btree';
CREATE UNIQUE INDEX t_cmp_u ON t_cmp (v);
DELETE FROM t_cmp WHERE id = 5;
CREATE UNIQUE INDEX t_cmp_u ON t_cmp (v);
INSERT INTO t_cmp VALUES (8, '[1,2]');
DROP TABLE t_cmp;
