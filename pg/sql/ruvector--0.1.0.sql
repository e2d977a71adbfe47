-- ruvector 0.1.0: the ruvector type, its operators, functions, casts and
-- aggregates, under pgvector's names where they take a ruvector.

\echo Use "CREATE EXTENSION ruvector" to load this file. \quit

-- type

CREATE TYPE ruvector;

CREATE FUNCTION ruvector_in(cstring, oid, integer) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_out(ruvector) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_recv(internal, oid, integer) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_send(ruvector) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE ruvector (
	INPUT     = ruvector_in,
	OUTPUT    = ruvector_out,
	TYPMOD_IN = ruvector_typmod_in,
	RECEIVE   = ruvector_recv,
	SEND      = ruvector_send,
	STORAGE   = external
);

-- functions

CREATE FUNCTION l2_distance(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME', 'ruvector_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME', 'ruvector_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME', 'ruvector_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l1_distance(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME', 'ruvector_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_dims(ruvector) RETURNS integer
	AS 'MODULE_PATHNAME', 'ruvector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_norm(ruvector) RETURNS float8
	AS 'MODULE_PATHNAME', 'ruvector_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(ruvector) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binary_quantize(ruvector) RETURNS bit
	AS 'MODULE_PATHNAME', 'ruvector_binary_quantize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subvector(ruvector, integer, integer) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_subvector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- support functions of the operators and the index access methods

CREATE FUNCTION ruvector_l2_squared_distance(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_negative_inner_product(ruvector, ruvector) RETURNS float8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_add(ruvector, ruvector) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_sub(ruvector, ruvector) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_mul(ruvector, ruvector) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_concat(ruvector, ruvector) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_lt(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_le(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_eq(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_ne(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_ge(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_gt(ruvector, ruvector) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_cmp(ruvector, ruvector) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- aggregates: avg keeps {n, sum_1 .. sum_d} in float8, sum adds vectors;
-- both combine partial states, so they run in parallel plans

CREATE FUNCTION ruvector_accum(float8[], ruvector) RETURNS float8[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_combine(float8[], float8[]) RETURNS float8[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_avg(float8[]) RETURNS ruvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE avg(ruvector) (
	SFUNC       = ruvector_accum,
	STYPE       = float8[],
	FINALFUNC   = ruvector_avg,
	COMBINEFUNC = ruvector_combine,
	INITCOND    = '{0}',
	PARALLEL    = SAFE
);

CREATE AGGREGATE sum(ruvector) (
	SFUNC       = ruvector_add,
	STYPE       = ruvector,
	COMBINEFUNC = ruvector_add,
	PARALLEL    = SAFE
);

-- casts

CREATE FUNCTION ruvector(ruvector, integer, boolean) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_typmod_cast' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_ruvector(integer[], integer, boolean) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_ruvector(real[], integer, boolean) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_ruvector(double precision[], integer, boolean) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_ruvector(numeric[], integer, boolean) RETURNS ruvector
	AS 'MODULE_PATHNAME', 'ruvector_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_to_float4(ruvector, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_to_float8(ruvector, integer, boolean) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_to_int4(ruvector, integer, boolean) RETURNS integer[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ruvector_to_numeric(ruvector, integer, boolean) RETURNS numeric[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (ruvector AS ruvector)
	WITH FUNCTION ruvector(ruvector, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS ruvector)
	WITH FUNCTION array_to_ruvector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS ruvector)
	WITH FUNCTION array_to_ruvector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS ruvector)
	WITH FUNCTION array_to_ruvector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS ruvector)
	WITH FUNCTION array_to_ruvector(numeric[], integer, boolean) AS ASSIGNMENT;
-- real[] is implicit as in pgvector (so a ruvector passes where real[] is
-- expected); the wider or lossy targets need an explicit cast or an
-- assignment, which keeps overloaded calls unambiguous.
CREATE CAST (ruvector AS real[])
	WITH FUNCTION ruvector_to_float4(ruvector, integer, boolean) AS IMPLICIT;
CREATE CAST (ruvector AS double precision[])
	WITH FUNCTION ruvector_to_float8(ruvector, integer, boolean) AS ASSIGNMENT;
CREATE CAST (ruvector AS integer[])
	WITH FUNCTION ruvector_to_int4(ruvector, integer, boolean) AS ASSIGNMENT;
CREATE CAST (ruvector AS numeric[])
	WITH FUNCTION ruvector_to_numeric(ruvector, integer, boolean) AS ASSIGNMENT;

-- operators

CREATE OPERATOR <-> (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = l2_distance,
	COMMUTATOR = '<->'
);
CREATE OPERATOR <#> (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_negative_inner_product,
	COMMUTATOR = '<#>'
);
CREATE OPERATOR <=> (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = cosine_distance,
	COMMUTATOR = '<=>'
);
CREATE OPERATOR <+> (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = l1_distance,
	COMMUTATOR = '<+>'
);

CREATE OPERATOR + (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_add,
	COMMUTATOR = +
);
CREATE OPERATOR - (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_sub
);
CREATE OPERATOR * (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_mul,
	COMMUTATOR = *
);
CREATE OPERATOR || (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_concat
);

CREATE OPERATOR < (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_lt,
	COMMUTATOR = > , NEGATOR = >= ,
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_le,
	COMMUTATOR = >= , NEGATOR = > ,
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_eq,
	COMMUTATOR = = , NEGATOR = <> ,
	RESTRICT = eqsel, JOIN = eqjoinsel
);
CREATE OPERATOR <> (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_ne,
	COMMUTATOR = <> , NEGATOR = = ,
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_ge,
	COMMUTATOR = <= , NEGATOR = < ,
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
	LEFTARG = ruvector, RIGHTARG = ruvector, PROCEDURE = ruvector_gt,
	COMMUTATOR = < , NEGATOR = <= ,
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

CREATE OPERATOR CLASS ruvector_ops
	DEFAULT FOR TYPE ruvector USING btree AS
	OPERATOR 1 < ,
	OPERATOR 2 <= ,
	OPERATOR 3 = ,
	OPERATOR 4 >= ,
	OPERATOR 5 > ,
	FUNCTION 1 ruvector_cmp(ruvector, ruvector);

-- the ruhnsw index access method: support function 1 is the distance the
-- graph is built and searched with (smaller is nearer, ordered as the
-- operator); the optional function 2 is a norm, and rows whose norm is 0
-- are left out (they have no cosine distance to anything)

CREATE FUNCTION ruhnsw_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;

CREATE ACCESS METHOD ruhnsw TYPE INDEX HANDLER ruhnsw_handler;

COMMENT ON ACCESS METHOD ruhnsw IS 'ruvector HNSW graph index';

CREATE OPERATOR CLASS ruvector_l2_ops
	FOR TYPE ruvector USING ruhnsw AS
	OPERATOR 1 <-> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 ruvector_l2_squared_distance(ruvector, ruvector);

CREATE OPERATOR CLASS ruvector_ip_ops
	FOR TYPE ruvector USING ruhnsw AS
	OPERATOR 1 <#> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 ruvector_negative_inner_product(ruvector, ruvector);

CREATE OPERATOR CLASS ruvector_cosine_ops
	FOR TYPE ruvector USING ruhnsw AS
	OPERATOR 1 <=> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(ruvector, ruvector),
	FUNCTION 2 vector_norm(ruvector);

CREATE OPERATOR CLASS ruvector_l1_ops
	FOR TYPE ruvector USING ruhnsw AS
	OPERATOR 1 <+> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 l1_distance(ruvector, ruvector);

-- the ruivfflat index access method (pgvector's ivfflat): support function
-- 1 is the distance rows are filed and ordered by (smaller is nearer, the
-- operator's order); the optional function 2 is a norm the rows and
-- queries are divided by (rows whose norm is 0 are left out); the
-- optional function 3 is a norm the k-means centres are divided by
-- (spherical k-means, for the inner product and cosine)

CREATE FUNCTION ruivfflat_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;

CREATE ACCESS METHOD ruivfflat TYPE INDEX HANDLER ruivfflat_handler;

COMMENT ON ACCESS METHOD ruivfflat IS 'ruvector IVFFlat index';

CREATE OPERATOR CLASS ruvector_l2_ops
	DEFAULT FOR TYPE ruvector USING ruivfflat AS
	OPERATOR 1 <-> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 ruvector_l2_squared_distance(ruvector, ruvector);

CREATE OPERATOR CLASS ruvector_ip_ops
	FOR TYPE ruvector USING ruivfflat AS
	OPERATOR 1 <#> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 ruvector_negative_inner_product(ruvector, ruvector),
	FUNCTION 3 vector_norm(ruvector);

CREATE OPERATOR CLASS ruvector_cosine_ops
	FOR TYPE ruvector USING ruivfflat AS
	OPERATOR 1 <=> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 ruvector_negative_inner_product(ruvector, ruvector),
	FUNCTION 2 vector_norm(ruvector),
	FUNCTION 3 vector_norm(ruvector);

CREATE OPERATOR CLASS ruvector_l1_ops
	FOR TYPE ruvector USING ruivfflat AS
	OPERATOR 1 <+> (ruvector, ruvector) FOR ORDER BY float_ops,
	FUNCTION 1 l1_distance(ruvector, ruvector);
