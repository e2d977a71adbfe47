/*
 * learn_util.c - small numeric and byte-form helpers shared by the learners.
 *
 * The pairwise losses need log(1 + e^-x) and 1/(1 + e^x) for scores that
 * can be large in either sign; the naive forms overflow, so both branch on
 * the sign. Byte forms end in an XXH3-64 of everything before it, checked
 * before any field is trusted, so a single flipped byte anywhere is
 * reported as corruption rather than as a plausible but wrong value.
 */
#include <math.h>

#include "learn/learn.h"
#include "simd/simd.h"

double rv_learn_softplus_neg(double x)
{
	/* log(1 + e^-x): for x < 0 rewrite as -x + log(1 + e^x). */
	if (x >= 0)
		return log1p(exp(-x));
	return -x + log1p(exp(x));
}

double rv_learn_sigmoid_neg(double x)
{
	/* 1 / (1 + e^x) without overflow. */
	if (x >= 0) {
		double e = exp(-x);
		return e / (1.0 + e);
	}
	return 1.0 / (1.0 + exp(x));
}

double rv_learn_dot(const float *a, const float *b, size_t n, bool precise)
{
	if (!precise)
		return rv_simd()->dot(a, b, n);
	/* Four partial sums keep the adds independent. */
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += (double)a[i] * b[i];
		s1 += (double)a[i + 1] * b[i + 1];
		s2 += (double)a[i + 2] * b[i + 2];
		s3 += (double)a[i + 3] * b[i + 3];
	}
	for (; i < n; i++)
		s0 += (double)a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

void rv_learn_seal(rv_buf *out, size_t start)
{
	if (out->failed)
		return;
	rv_buf_u64(out, rv_hash64(out->data + start, out->len - start, 0));
}

bool rv_learn_check_seal(const uint8_t *bytes, size_t n)
{
	if (n < 8)
		return false;
	return rv_get_u64(bytes + n - 8) == rv_hash64(bytes, n - 8, 0);
}
