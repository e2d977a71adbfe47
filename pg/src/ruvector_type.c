/*
 * ruvector_type.c - the ruvector type: text and binary forms, the type
 * modifier (ruvector(n)) and the casts from and to SQL arrays.
 *
 * Parsing follows pgvector's vector_in exactly, error messages included
 * with "ruvector" for "vector", so that applications which match on the
 * messages keep working: whitespace around the brackets and the elements,
 * elements read as strtof reads them (as float4in does, which avoids
 * rounding twice through double; rv_strtof gives strtof's result, faster
 * on short decimals), NaN and infinities rejected, nothing but
 * whitespace after the closing bracket.
 */
#include "ruvector.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "util/strtof.h"

PG_MODULE_MAGIC;

Ruvector *ruvector_alloc(int dim)
{
	Size size = RUVECTOR_SIZE(dim);
	Ruvector *v = (Ruvector *)palloc0(size);

	SET_VARSIZE(v, size);
	v->dim = (int16)dim;
	return v;
}

void ruvector_check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("ruvector must have at least 1 dimension")));
	if (dim > RUVECTOR_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("ruvector cannot have more than %d dimensions", RUVECTOR_MAX_DIM)));
}

void ruvector_check_expected_dim(int32 typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void ruvector_check_element(float value)
{
	if (isnan(value))
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("NaN not allowed in ruvector")));
	if (isinf(value))
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("infinite value not allowed in ruvector")));
}

/* array_isspace() is static in the server, and isspace() depends on the
 * locale; these are the characters the array parser skips. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void syntax_error(const char *lit)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			errmsg("invalid input syntax for type ruvector: \"%s\"", lit)));
}

PG_FUNCTION_INFO_V1(ruvector_in);
Datum ruvector_in(PG_FUNCTION_ARGS)
{
	char *lit = PG_GETARG_CSTRING(0);
	int32 typmod = PG_GETARG_INT32(2);
	const char *pt = lit;
	/* Grows by doubling up to the limit, so a short literal costs little
	 * and the longest one at most 64 KB. */
	int cap = 64, dim = 0;
	float *x = (float *)palloc(sizeof(float) * cap);
	Ruvector *result;

	while (is_space(*pt))
		pt++;
	if (*pt != '[')
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("invalid input syntax for type ruvector: \"%s\"", lit),
				errdetail("Vector contents must start with \"[\".")));
	pt++;
	while (is_space(*pt))
		pt++;
	if (*pt == ']')
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("ruvector must have at least 1 dimension")));

	for (;;) {
		char *end;
		float val;

		if (dim == RUVECTOR_MAX_DIM)
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					errmsg("ruvector cannot have more than %d dimensions",
					       RUVECTOR_MAX_DIM)));
		while (is_space(*pt))
			pt++;
		/* strtof would skip to the end and report no conversion anyway,
		 * but an empty element is a syntax error of its own, as in float4in. */
		if (*pt == '\0')
			syntax_error(lit);

		errno = 0;
		val = rv_strtof(pt, &end);
		if (end == pt)
			syntax_error(lit);
		/* Out of range only when it overflowed: an underflow to zero or a
		 * subnormal is accepted, as float4in accepts it. */
		if (errno == ERANGE && isinf(val))
			ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					errmsg("\"%s\" is out of range for type ruvector",
					       pnstrdup(pt, end - pt))));
		ruvector_check_element(val);
		if (dim == cap) {
			cap *= 2;
			x = (float *)repalloc(x, sizeof(float) * cap);
		}
		x[dim++] = val;

		pt = end;
		while (is_space(*pt))
			pt++;
		if (*pt == ',') {
			pt++;
		} else if (*pt == ']') {
			pt++;
			break;
		} else {
			syntax_error(lit);
		}
	}

	while (is_space(*pt))
		pt++;
	if (*pt != '\0')
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("invalid input syntax for type ruvector: \"%s\"", lit),
				errdetail("Junk after closing right brace.")));

	ruvector_check_dim(dim);
	ruvector_check_expected_dim(typmod, dim);
	result = ruvector_alloc(dim);
	memcpy(result->x, x, sizeof(float) * dim);
	pfree(x);
	PG_RETURN_RUVECTOR_P(result);
}

PG_FUNCTION_INFO_V1(ruvector_out);
Datum ruvector_out(PG_FUNCTION_ARGS)
{
	Ruvector *v = PG_GETARG_RUVECTOR_P(0);
	/* Each element takes at most FLOAT_SHORTEST_DECIMAL_LEN - 1 characters
	 * plus a separator; the brackets and the terminator fit in the rest. */
	char *buf = (char *)palloc(FLOAT_SHORTEST_DECIMAL_LEN * v->dim + 2);
	char *p = buf;

	*p++ = '[';
	for (int i = 0; i < v->dim; i++) {
		if (i > 0)
			*p++ = ',';
		p += float_to_shortest_decimal_bufn(v->x[i], p);
	}
	*p++ = ']';
	*p = '\0';
	PG_FREE_IF_COPY(v, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(ruvector_typmod_in);
Datum ruvector_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType *ta = PG_GETARG_ARRAYTYPE_P(0);
	int n;
	int32 *tl = ArrayGetIntegerTypmods(ta, &n);

	if (n != 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("invalid type modifier")));
	if (*tl < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("dimensions for type ruvector must be at least 1")));
	if (*tl > RUVECTOR_MAX_DIM)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("dimensions for type ruvector cannot exceed %d", RUVECTOR_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

/* Binary form: int16 dimensions, int16 zero, then the elements as
 * big-endian float4, the same bytes as pgvector's vector_send. */
PG_FUNCTION_INFO_V1(ruvector_recv);
Datum ruvector_recv(PG_FUNCTION_ARGS)
{
	StringInfo buf = (StringInfo)PG_GETARG_POINTER(0);
	int32 typmod = PG_GETARG_INT32(2);
	int16 dim = (int16)pq_getmsgint(buf, sizeof(int16));
	int16 unused = (int16)pq_getmsgint(buf, sizeof(int16));
	Ruvector *result;

	ruvector_check_dim(dim);
	ruvector_check_expected_dim(typmod, dim);
	if (unused != 0)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected unused to be 0, not %d", unused)));
	result = ruvector_alloc(dim);
	for (int i = 0; i < dim; i++) {
		result->x[i] = pq_getmsgfloat4(buf);
		ruvector_check_element(result->x[i]);
	}
	PG_RETURN_RUVECTOR_P(result);
}

PG_FUNCTION_INFO_V1(ruvector_send);
Datum ruvector_send(PG_FUNCTION_ARGS)
{
	Ruvector *v = PG_GETARG_RUVECTOR_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, (uint16)v->dim);
	pq_sendint16(&buf, (uint16)v->unused);
	for (int i = 0; i < v->dim; i++)
		pq_sendfloat4(&buf, v->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* The length coercion ruvector -> ruvector(n): applies the typmod check
 * on assignment and explicit casts. */
PG_FUNCTION_INFO_V1(ruvector_typmod_cast);
Datum ruvector_typmod_cast(PG_FUNCTION_ARGS)
{
	Ruvector *v = PG_GETARG_RUVECTOR_P(0);

	ruvector_check_expected_dim(PG_GETARG_INT32(1), v->dim);
	PG_RETURN_RUVECTOR_P(v);
}

PG_FUNCTION_INFO_V1(ruvector_from_array);
Datum ruvector_from_array(PG_FUNCTION_ARGS)
{
	ArrayType *array = PG_GETARG_ARRAYTYPE_P(0);
	int32 typmod = PG_GETARG_INT32(1);
	Oid elemtype = ARR_ELEMTYPE(array);
	int16 typlen;
	bool typbyval;
	char typalign;
	Datum *elems;
	int n;
	Ruvector *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("array must be 1-D")));
	if (ARR_HASNULL(array) && array_contains_nulls(array))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				errmsg("array must not contain nulls")));
	if (elemtype != INT4OID && elemtype != FLOAT4OID && elemtype != FLOAT8OID &&
	    elemtype != NUMERICOID)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("unsupported array type")));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, NULL, &n);
	ruvector_check_dim(n);
	ruvector_check_expected_dim(typmod, n);

	result = ruvector_alloc(n);
	for (int i = 0; i < n; i++) {
		switch (elemtype) {
		case INT4OID:
			result->x[i] = (float)DatumGetInt32(elems[i]);
			break;
		case FLOAT4OID:
			result->x[i] = DatumGetFloat4(elems[i]);
			break;
		case FLOAT8OID:
			/* A double beyond float range becomes infinite here and is
			 * rejected below with the element message. */
			result->x[i] = (float)DatumGetFloat8(elems[i]);
			break;
		default:
			result->x[i] = DatumGetFloat4(
				DirectFunctionCall1(numeric_float4, elems[i]));
			break;
		}
	}
	/* Only the Datum array: pass-by-reference elements point into the
	 * input array. */
	pfree(elems);
	for (int i = 0; i < n; i++)
		ruvector_check_element(result->x[i]);
	PG_RETURN_RUVECTOR_P(result);
}

static ArrayType *to_array(const Ruvector *v, Oid elemtype)
{
	Datum *d = (Datum *)palloc(sizeof(Datum) * v->dim);
	int16 typlen;
	bool typbyval;
	char typalign;
	ArrayType *result;

	for (int i = 0; i < v->dim; i++) {
		float f = v->x[i];

		switch (elemtype) {
		case FLOAT4OID:
			d[i] = Float4GetDatum(f);
			break;
		case FLOAT8OID:
			d[i] = Float8GetDatum((double)f);
			break;
		case INT4OID:
			/* Round half to even and range-check as the float4 -> integer
			 * cast does. */
			f = rintf(f);
			if (!FLOAT4_FITS_IN_INT32(f))
				ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("integer out of range")));
			d[i] = Int32GetDatum((int32)f);
			break;
		default:
			d[i] = DirectFunctionCall1(float4_numeric, Float4GetDatum(f));
			break;
		}
	}
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	result = construct_array(d, v->dim, elemtype, typlen, typbyval, typalign);
	pfree(d);
	return result;
}

PG_FUNCTION_INFO_V1(ruvector_to_float4);
Datum ruvector_to_float4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(to_array(PG_GETARG_RUVECTOR_P(0), FLOAT4OID));
}

PG_FUNCTION_INFO_V1(ruvector_to_float8);
Datum ruvector_to_float8(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(to_array(PG_GETARG_RUVECTOR_P(0), FLOAT8OID));
}

PG_FUNCTION_INFO_V1(ruvector_to_int4);
Datum ruvector_to_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(to_array(PG_GETARG_RUVECTOR_P(0), INT4OID));
}

PG_FUNCTION_INFO_V1(ruvector_to_numeric);
Datum ruvector_to_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(to_array(PG_GETARG_RUVECTOR_P(0), NUMERICOID));
}
