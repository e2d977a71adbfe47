/*
 * simd_scalar.c - the reference kernels. Written so the compiler can
 * auto-vectorise them (four independent accumulators), and used as the
 * truth the SIMD kernels are tested against. The integer kernels are
 * exact; every other set must return bit-identical results for them.
 */
#include "simd.h"

#include <string.h>

float rv_l2sq_scalar(const float *a, const float *b, size_t n)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
		float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
		s0 += d0 * d0;
		s1 += d1 * d1;
		s2 += d2 * d2;
		s3 += d3 * d3;
	}
	for (; i < n; i++) {
		float d = a[i] - b[i];
		s0 += d * d;
	}
	return (s0 + s1) + (s2 + s3);
}

float rv_dot_scalar(const float *a, const float *b, size_t n)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < n; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

/* int8 products fit int16 only for |a|,|b| < 128 on one side, so each
 * product is formed in int32; n <= RV_SIMD_I8_MAX keeps the sum in range. */
int32_t rv_i8dot_scalar(const int8_t *a, const int8_t *b, size_t n)
{
	int32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (int32_t)a[i] * (int32_t)b[i];
	return s;
}

int32_t rv_u8i8dot_scalar(const uint8_t *u, const int8_t *s, size_t n)
{
	int32_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += (int32_t)u[i] * (int32_t)s[i];
	return t;
}

int32_t rv_i8l2sq_scalar(const int8_t *a, const int8_t *b, size_t n)
{
	int32_t s = 0;
	for (size_t i = 0; i < n; i++) {
		int32_t d = (int32_t)a[i] - (int32_t)b[i];
		s += d * d;
	}
	return s;
}

/* Eight bytes at a time through memcpy: the inputs carry no alignment
 * promise, and memcpy into a uint64_t compiles to one unaligned load. */
uint64_t rv_hamming_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes)
{
	uint64_t s = 0;
	size_t i = 0;
	for (; i + 8 <= nbytes; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		s += (uint64_t)__builtin_popcountll(x ^ y);
	}
	for (; i < nbytes; i++)
		s += (uint64_t)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return s;
}

float rv_pq_adc_scalar(const float *tables, const uint8_t *codes, size_t m)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t j = 0;
	for (; j + 4 <= m; j += 4) {
		s0 += tables[(j + 0) * 256 + codes[j + 0]];
		s1 += tables[(j + 1) * 256 + codes[j + 1]];
		s2 += tables[(j + 2) * 256 + codes[j + 2]];
		s3 += tables[(j + 3) * 256 + codes[j + 3]];
	}
	for (; j < m; j++)
		s0 += tables[j * 256 + codes[j]];
	return (s0 + s1) + (s2 + s3);
}

void rv_axpy_scalar(float *y, float a, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}
