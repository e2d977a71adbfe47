/*
 * ruvector_ops.c - distances, element-wise arithmetic, comparison and the
 * avg/sum aggregates of the ruvector type, with pgvector's meanings:
 *
 *   <->  l2_distance       sqrt(sum (a_i - b_i)^2)
 *   <=>  cosine_distance   1 - a.b / sqrt(|a|^2 |b|^2), NaN for a zero vector
 *   <#>  negative inner product (so that ascending order is best first)
 *   <+>  l1_distance       sum |a_i - b_i|
 *
 * The squared L2 distance and the dot products run on the library's
 * kernels (src/simd/), chosen once per process by CPU features; they
 * accumulate in float32 as pgvector does. Norms accumulate in double.
 */
#include "ruvector.h"

#include <limits.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/float.h"
#include "utils/varbit.h"

#include "simd/simd.h"

void ruvector_check_same_dims(const Ruvector *a, const Ruvector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("different ruvector dimensions %d and %d", a->dim, b->dim)));
}

PG_FUNCTION_INFO_V1(ruvector_l2_distance);
Datum ruvector_l2_distance(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);

	ruvector_check_same_dims(a, b);
	PG_RETURN_FLOAT8(sqrt((double)rv_simd()->l2sq(a->x, b->x, (size_t)a->dim)));
}

/* The squared distance orders rows the same way and saves the root; the
 * index access methods use it as their support function. */
PG_FUNCTION_INFO_V1(ruvector_l2_squared_distance);
Datum ruvector_l2_squared_distance(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);

	ruvector_check_same_dims(a, b);
	PG_RETURN_FLOAT8((double)rv_simd()->l2sq(a->x, b->x, (size_t)a->dim));
}

PG_FUNCTION_INFO_V1(ruvector_inner_product);
Datum ruvector_inner_product(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);

	ruvector_check_same_dims(a, b);
	PG_RETURN_FLOAT8((double)rv_simd()->dot(a->x, b->x, (size_t)a->dim));
}

PG_FUNCTION_INFO_V1(ruvector_negative_inner_product);
Datum ruvector_negative_inner_product(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);

	ruvector_check_same_dims(a, b);
	PG_RETURN_FLOAT8(-(double)rv_simd()->dot(a->x, b->x, (size_t)a->dim));
}

PG_FUNCTION_INFO_V1(ruvector_cosine_distance);
Datum ruvector_cosine_distance(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);
	const rv_simd_ops *ops = rv_simd();
	double ab, aa, bb, sim;

	ruvector_check_same_dims(a, b);
	ab = ops->dot(a->x, b->x, (size_t)a->dim);
	aa = ops->dot(a->x, a->x, (size_t)a->dim);
	bb = ops->dot(b->x, b->x, (size_t)b->dim);
	/* One root of the product rounds once where two roots round twice.
	 * A zero vector gives 0/0 = NaN, which the clamp leaves alone. */
	sim = ab / sqrt(aa * bb);
	if (sim > 1)
		sim = 1;
	else if (sim < -1)
		sim = -1;
	PG_RETURN_FLOAT8(1.0 - sim);
}

PG_FUNCTION_INFO_V1(ruvector_l1_distance);
Datum ruvector_l1_distance(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);
	float sum = 0;

	ruvector_check_same_dims(a, b);
	for (int i = 0; i < a->dim; i++)
		sum += fabsf(a->x[i] - b->x[i]);
	PG_RETURN_FLOAT8((double)sum);
}

PG_FUNCTION_INFO_V1(ruvector_dims);
Datum ruvector_dims(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);

	PG_RETURN_INT32(a->dim);
}

static double norm_of(const Ruvector *a)
{
	double sum = 0;

	for (int i = 0; i < a->dim; i++)
		sum += (double)a->x[i] * (double)a->x[i];
	return sqrt(sum);
}

PG_FUNCTION_INFO_V1(ruvector_norm);
Datum ruvector_norm(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(norm_of(PG_GETARG_RUVECTOR_P(0)));
}

PG_FUNCTION_INFO_V1(ruvector_l2_normalize);
Datum ruvector_l2_normalize(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *r = ruvector_alloc(a->dim);
	double norm = norm_of(a);

	/* The zero vector has no direction: it stays zero (the allocation is
	 * zeroed), as in pgvector, rather than turning into NaN. */
	if (norm > 0) {
		for (int i = 0; i < a->dim; i++)
			r->x[i] = (float)(a->x[i] / norm);
		/* Subnormal inputs can have a norm so small the quotient overflows. */
		for (int i = 0; i < a->dim; i++)
			if (isinf(r->x[i]))
				float_overflow_error();
	}
	PG_RETURN_RUVECTOR_P(r);
}

/* + - * on two vectors of one dimension. An infinite result overflowed;
 * a zero product of non-zero factors underflowed. Both are errors, as
 * for float4 arithmetic. */
static Ruvector *elementwise(const Ruvector *a, const Ruvector *b, char op)
{
	Ruvector *r;

	ruvector_check_same_dims(a, b);
	r = ruvector_alloc(a->dim);
	for (int i = 0; i < a->dim; i++) {
		float x = a->x[i], y = b->x[i], z;

		z = op == '+' ? x + y : op == '-' ? x - y : x * y;
		if (isinf(z))
			float_overflow_error();
		if (op == '*' && z == 0 && x != 0 && y != 0)
			float_underflow_error();
		r->x[i] = z;
	}
	return r;
}

PG_FUNCTION_INFO_V1(ruvector_add);
Datum ruvector_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_RUVECTOR_P(elementwise(PG_GETARG_RUVECTOR_P(0), PG_GETARG_RUVECTOR_P(1), '+'));
}

PG_FUNCTION_INFO_V1(ruvector_sub);
Datum ruvector_sub(PG_FUNCTION_ARGS)
{
	PG_RETURN_RUVECTOR_P(elementwise(PG_GETARG_RUVECTOR_P(0), PG_GETARG_RUVECTOR_P(1), '-'));
}

PG_FUNCTION_INFO_V1(ruvector_mul);
Datum ruvector_mul(PG_FUNCTION_ARGS)
{
	PG_RETURN_RUVECTOR_P(elementwise(PG_GETARG_RUVECTOR_P(0), PG_GETARG_RUVECTOR_P(1), '*'));
}

PG_FUNCTION_INFO_V1(ruvector_concat);
Datum ruvector_concat(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Ruvector *b = PG_GETARG_RUVECTOR_P(1);
	int dim = a->dim + b->dim;
	Ruvector *r;

	ruvector_check_dim(dim);
	r = ruvector_alloc(dim);
	memcpy(r->x, a->x, sizeof(float) * a->dim);
	memcpy(r->x + a->dim, b->x, sizeof(float) * b->dim);
	PG_RETURN_RUVECTOR_P(r);
}

/* subvector(v, start, count): elements start .. start + count - 1,
 * counted from 1 like substring, clipped to the vector. */
PG_FUNCTION_INFO_V1(ruvector_subvector);
Datum ruvector_subvector(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	int32 start = PG_GETARG_INT32(1);
	int32 count = PG_GETARG_INT32(2);
	int64 end = (int64)start + count; /* int64: start + count may overflow int32 */
	Ruvector *r;
	int dim;

	if (count < 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("ruvector must have at least 1 dimension")));
	if (start < 1)
		start = 1;
	if (end > a->dim)
		end = a->dim + 1;
	dim = end > start ? (int)(end - start) : 0;
	ruvector_check_dim(dim);
	r = ruvector_alloc(dim);
	memcpy(r->x, a->x + (start - 1), sizeof(float) * dim);
	PG_RETURN_RUVECTOR_P(r);
}

/* One bit per element, set when the element is positive, first element
 * in the most significant bit: the bit string pgvector returns. */
PG_FUNCTION_INFO_V1(ruvector_binary_quantize);
Datum ruvector_binary_quantize(PG_FUNCTION_ARGS)
{
	Ruvector *a = PG_GETARG_RUVECTOR_P(0);
	Size size = VARBITTOTALLEN(a->dim);
	VarBit *r = (VarBit *)palloc0(size);
	bits8 *bits;

	SET_VARSIZE(r, size);
	VARBITLEN(r) = a->dim;
	bits = VARBITS(r);
	for (int i = 0; i < a->dim; i++)
		if (a->x[i] > 0)
			bits[i / 8] |= (bits8)(0x80 >> (i % 8));
	PG_RETURN_VARBIT_P(r);
}

/* Element by element first, then the shorter vector first: the order of
 * PostgreSQL arrays, which makes it a total order for btree. */
int ruvector_cmp_internal(const Ruvector *a, const Ruvector *b)
{
	int n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++) {
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	return a->dim < b->dim ? -1 : a->dim > b->dim ? 1 : 0;
}

#define RUVECTOR_CMP_FN(name, test)                                                     \
	PG_FUNCTION_INFO_V1(name);                                                      \
	Datum name(PG_FUNCTION_ARGS)                                                    \
	{                                                                               \
		int c = ruvector_cmp_internal(PG_GETARG_RUVECTOR_P(0), PG_GETARG_RUVECTOR_P(1)); \
		PG_RETURN_BOOL(test);                                                   \
	}

RUVECTOR_CMP_FN(ruvector_lt, c < 0)
RUVECTOR_CMP_FN(ruvector_le, c <= 0)
RUVECTOR_CMP_FN(ruvector_eq, c == 0)
RUVECTOR_CMP_FN(ruvector_ne, c != 0)
RUVECTOR_CMP_FN(ruvector_ge, c >= 0)
RUVECTOR_CMP_FN(ruvector_gt, c > 0)

PG_FUNCTION_INFO_V1(ruvector_cmp);
Datum ruvector_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(ruvector_cmp_internal(PG_GETARG_RUVECTOR_P(0), PG_GETARG_RUVECTOR_P(1)));
}

/*
 * avg(ruvector): the state is a float8[] of n followed by the running sums
 * ({0} before the first row), so that parallel workers' states combine by
 * adding and the sums keep double precision until the final division.
 */
static float8 *state_values(ArrayType *state, const char *caller, int *dim)
{
	if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 1 || ARR_HASNULL(state) ||
	    ARR_ELEMTYPE(state) != FLOAT8OID)
		elog(ERROR, "%s: expected state array", caller);
	*dim = ARR_DIMS(state)[0] - 1;
	return (float8 *)ARR_DATA_PTR(state);
}

static ArrayType *state_array(Datum *d, int dim)
{
	return construct_array(d, dim + 1, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
			       TYPALIGN_DOUBLE);
}

PG_FUNCTION_INFO_V1(ruvector_accum);
Datum ruvector_accum(PG_FUNCTION_ARGS)
{
	ArrayType *state = PG_GETARG_ARRAYTYPE_P(0);
	Ruvector *v = PG_GETARG_RUVECTOR_P(1);
	int dim;
	float8 *s = state_values(state, "ruvector_accum", &dim);
	bool first = dim == 0;
	Datum *d;
	ArrayType *result;

	if (first)
		dim = v->dim;
	else
		ruvector_check_expected_dim(dim, v->dim);
	d = (Datum *)palloc(sizeof(Datum) * (dim + 1));
	d[0] = Float8GetDatum(s[0] + 1.0);
	for (int i = 0; i < dim; i++) {
		double sum = first ? (double)v->x[i] : s[i + 1] + v->x[i];

		if (isinf(sum))
			float_overflow_error();
		d[i + 1] = Float8GetDatum(sum);
	}
	result = state_array(d, dim);
	pfree(d);
	PG_RETURN_ARRAYTYPE_P(result);
}

PG_FUNCTION_INFO_V1(ruvector_combine);
Datum ruvector_combine(PG_FUNCTION_ARGS)
{
	ArrayType *state1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType *state2 = PG_GETARG_ARRAYTYPE_P(1);
	int dim1, dim2, dim;
	float8 *s1 = state_values(state1, "ruvector_combine", &dim1);
	float8 *s2 = state_values(state2, "ruvector_combine", &dim2);
	Datum *d;
	ArrayType *result;

	/* A worker that saw no rows holds {0}: the other state wins as is. */
	if (s1[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(state2);
	if (s2[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(state1);
	ruvector_check_expected_dim(dim1, dim2);
	dim = dim1;
	d = (Datum *)palloc(sizeof(Datum) * (dim + 1));
	d[0] = Float8GetDatum(s1[0] + s2[0]);
	for (int i = 1; i <= dim; i++) {
		double sum = s1[i] + s2[i];

		if (isinf(sum))
			float_overflow_error();
		d[i] = Float8GetDatum(sum);
	}
	result = state_array(d, dim);
	pfree(d);
	PG_RETURN_ARRAYTYPE_P(result);
}

PG_FUNCTION_INFO_V1(ruvector_avg);
Datum ruvector_avg(PG_FUNCTION_ARGS)
{
	ArrayType *state = PG_GETARG_ARRAYTYPE_P(0);
	int dim;
	float8 *s = state_values(state, "ruvector_avg", &dim);
	Ruvector *r;

	/* SQL's average of no rows is NULL. */
	if (s[0] == 0.0)
		PG_RETURN_NULL();
	ruvector_check_dim(dim);
	r = ruvector_alloc(dim);
	for (int i = 0; i < dim; i++) {
		r->x[i] = (float)(s[i + 1] / s[0]);
		ruvector_check_element(r->x[i]);
	}
	PG_RETURN_RUVECTOR_P(r);
}
