-- The ruvector type: text input and output, type modifiers, binary
-- send/receive and the casts from and to arrays.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS ruvector;
RESET client_min_messages;

-- text input: whitespace around brackets and elements, signs, exponents
SELECT '[1,2,3]'::ruvector;
SELECT ' [ 1 , 2 , 3 ] '::ruvector;
SELECT (E'\t[\n1,\r2,\f3' || chr(11) || E']\n')::ruvector;
SELECT '[-1.5,+2.25,3e2,-4E-2,.5,6.]'::ruvector;
SELECT '[1.23456789]'::ruvector;
SELECT '[0.1,0.2,0.3]'::ruvector;
SELECT '[-0]'::ruvector;
SELECT '[1e-45]'::ruvector;
SELECT '[1e-50]'::ruvector;
SELECT '[3.4028235e38,-3.4028235e38]'::ruvector;
SELECT '[1,2,3]'::ruvector::text;
SELECT NULL::ruvector;

-- text input errors
SELECT '1,2,3'::ruvector;
SELECT '(1,2,3)'::ruvector;
SELECT ''::ruvector;
SELECT '['::ruvector;
SELECT '[ '::ruvector;
SELECT '[]'::ruvector;
SELECT '[ ]'::ruvector;
SELECT '[,]'::ruvector;
SELECT '[1,]'::ruvector;
SELECT '[1,,2]'::ruvector;
SELECT '[1 2]'::ruvector;
SELECT '[1,2'::ruvector;
SELECT '[1,2,3]]'::ruvector;
SELECT '[1,2,3] x'::ruvector;
SELECT '[a]'::ruvector;
SELECT '[1a]'::ruvector;
SELECT '[0x10]'::ruvector;
SELECT '[NaN]'::ruvector;
SELECT '[nan]'::ruvector;
SELECT '[Infinity]'::ruvector;
SELECT '[-inf]'::ruvector;
SELECT '[4e38]'::ruvector;
SELECT '[-1e39]'::ruvector;
SELECT '[1,2,1e400]'::ruvector;

-- the dimension limit: 16000 is accepted, 16001 is not
SELECT vector_dims(('[' || array_to_string(array_fill(1, ARRAY[16000]), ',') || ']')::ruvector);
SELECT ('[' || array_to_string(array_fill(1, ARRAY[16001]), ',') || ']')::ruvector;

-- output uses the shortest text that reads back to the same float
SELECT '[1.1,2.2,3.3]'::ruvector::text = '[1.1,2.2,3.3]';
SELECT '[0.30000001]'::ruvector;
SELECT '[123456789]'::ruvector;
SELECT '[1e20,-1e-20]'::ruvector;
SELECT v::text::ruvector = v FROM (SELECT '[0.1,1e-7,3.14159265,-2.5e30]'::ruvector AS v) s;

-- elements read exactly as float4 reads them: ties between two floats go
-- to even, and random decimals of every length and exponent give the same
-- bits as float4in
SELECT '[16777217,-16777219,8388608.5,33554434]'::ruvector;
SELECT count(*) FILTER (WHERE ('[' || t || ']')::ruvector::real[] <> ARRAY[t::real]) AS differ, count(*) AS n
FROM (SELECT CASE i % 4
		WHEN 0 THEN round(((random() - 0.5) * 10 ^ (i % 17 - 8))::numeric, i % 13)::text
		WHEN 1 THEN ((random() - 0.5) * 10 ^ (i % 60 - 30))::text
		WHEN 2 THEN ((random() - 0.5)::real * 1000)::text
		ELSE to_char(random() * 100 - 50, '9.99999999EEEE') END AS t
      FROM generate_series(1, 20000) i) s;

-- type modifiers
SELECT '[1,2,3]'::ruvector(3);
SELECT '[1,2]'::ruvector(3);
SELECT '[1,2,3,4]'::ruvector(3);
SELECT '[1]'::ruvector(0);
SELECT '[1]'::ruvector(-1);
SELECT '[1]'::ruvector(16001);
SELECT '[1]'::ruvector(1, 2);
SELECT '[1]'::ruvector('a');
SELECT '[1,2,3]'::ruvector::ruvector(2);
CREATE TABLE t_typmod (v ruvector(3));
INSERT INTO t_typmod VALUES ('[1,2,3]');
INSERT INTO t_typmod VALUES ('[1,2]');
INSERT INTO t_typmod VALUES ('[1,2,3]'::ruvector(3) || '[4]');
INSERT INTO t_typmod VALUES (ARRAY[4,5,6]);
INSERT INTO t_typmod VALUES (ARRAY[4,5]);
SELECT * FROM t_typmod;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	WHERE attrelid = 't_typmod'::regclass AND attname = 'v';
CREATE TABLE t_bad_typmod (v ruvector(16001));
CREATE TABLE t_max_typmod (v ruvector(16000));
-- 64 KB values go out of line (TOAST) and come back whole
INSERT INTO t_max_typmod SELECT array_fill(0.5, ARRAY[16000])::real[];
SELECT vector_dims(v), vector_norm(v), v <-> v, v = (SELECT array_fill(0.5, ARRAY[16000])::real[]::ruvector)
	FROM t_max_typmod;
DROP TABLE t_max_typmod;
DROP TABLE t_typmod;

-- binary form: int16 dimensions, int16 zero, big-endian float4 elements
SELECT ruvector_send('[1,2,3]');
SELECT ruvector_send('[-0.5]');

-- binary round trip through COPY, and the receive checks on crafted input
\getenv abs_builddir PG_ABS_BUILDDIR
\set filename :abs_builddir '/results/ruvector_binary.data'
CREATE TABLE t_bin (id int, v ruvector);
INSERT INTO t_bin VALUES (1, '[1,2,3]'), (2, '[-1.5,0,3.25e-8]'), (3, NULL);
COPY t_bin TO :'filename' (FORMAT binary);
CREATE TABLE t_bin3 (id int, v ruvector(3));
COPY t_bin3 FROM :'filename' (FORMAT binary);
SELECT * FROM t_bin3 ORDER BY id;
SELECT count(*) FROM t_bin b JOIN t_bin3 c USING (id) WHERE b.v = c.v;
CREATE TABLE t_bin2 (id int, v ruvector(2));
COPY t_bin2 FROM :'filename' (FORMAT binary);
DROP TABLE t_bin, t_bin2, t_bin3;
-- a one-column binary file whose field is the given bytes
CREATE TABLE t_recv (v ruvector);
COPY (SELECT '\x000200003f80000040000000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
SELECT * FROM t_recv;
COPY (SELECT '\x000100013f800000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x00000000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x3e8100003f800000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\xffff00003f800000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x000100007fc00000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x00010000ff800000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x000200003f800000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
COPY (SELECT '\x000100003f80000000'::bytea) TO :'filename' (FORMAT binary);
COPY t_recv FROM :'filename' (FORMAT binary);
SELECT count(*) FROM t_recv;
DROP TABLE t_recv;

-- casts from arrays
SELECT ARRAY[1,2,3]::ruvector;
SELECT ARRAY[1.5,2.5,3.5]::real[]::ruvector;
SELECT ARRAY[1.5,2.5,3.5]::double precision[]::ruvector;
SELECT ARRAY[1.5,2.5,3.5]::numeric[]::ruvector;
SELECT '{1,2,3}'::real[]::ruvector(3);
SELECT '{1,2,3}'::real[]::ruvector(2);
SELECT ARRAY[0.1::double precision]::ruvector;
SELECT ARRAY[1e300::double precision]::ruvector;
SELECT ARRAY['NaN'::real]::ruvector;
SELECT ARRAY['Infinity'::double precision]::ruvector;
SELECT ARRAY['NaN'::numeric]::ruvector;
SELECT ARRAY[1,NULL,3]::ruvector;
SELECT ARRAY[[1,2],[3,4]]::ruvector;
SELECT '{}'::real[]::ruvector;
SELECT ARRAY[1,2]::bigint[]::ruvector;
SELECT array_fill(1, ARRAY[16001])::ruvector;
SELECT '[1:3]={7,8,9}'::int[]::ruvector;

-- casts to arrays
SELECT '[1,2,3]'::ruvector::real[];
SELECT '[1.5,-2.25,3e-5]'::ruvector::double precision[];
SELECT '[1.5,2.5,-3.5,2.4,1e9]'::ruvector::integer[];
SELECT '[3e9]'::ruvector::integer[];
SELECT '[1.5,-2.25,3e-5]'::ruvector::numeric[];
SELECT pg_typeof('[1]'::ruvector::real[]), pg_typeof('[1]'::ruvector::numeric[]);
-- real[] is an implicit cast, as in pgvector
CREATE FUNCTION t_real_len(real[]) RETURNS int LANGUAGE sql AS 'SELECT array_length($1, 1)';
SELECT t_real_len('[1,2,3]'::ruvector);
DROP FUNCTION t_real_len(real[]);
-- assignment casts into array columns
CREATE TABLE t_arrays (r real[], d double precision[], i integer[], n numeric[]);
INSERT INTO t_arrays VALUES ('[1,2]'::ruvector, '[1,2]'::ruvector, '[1,2]'::ruvector, '[1,2]'::ruvector);
SELECT * FROM t_arrays;
DROP TABLE t_arrays;
