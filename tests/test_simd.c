/*
 * test_simd.c - every distance kernel the CPU has matches the scalar
 * reference for all dimensions 1..1024 (and a few large ones) within a
 * relative tolerance, on unaligned inputs too; the dispatcher honours
 * RUVECTOR_SIMD.
 */
#include "harness.h"
#include "simd/simd.h"
#include "util/util.h"

static bool close_enough(double got, double want, double scale)
{
	return fabs(got - want) <= 1e-5 * scale + 1e-6;
}

static void check_ops(const rv_simd_ops *ops)
{
	size_t maxn = 4100;
	float *a = rv_test_random_vectors(maxn + 1, 1, 5), *b = rv_test_random_vectors(maxn + 1, 1, 6);
	for (size_t n = 1; n <= maxn; n = n < 1024 ? n + 1 : n * 2) {
		for (size_t off = 0; off < 2; off++) { /* off = 1: unaligned */
			const float *x = a + off, *y = b + off;
			double l2 = 0, dot = 0, scale = 0;
			for (size_t i = 0; i < n; i++) {
				l2 += (double)(x[i] - y[i]) * (x[i] - y[i]);
				dot += (double)x[i] * y[i];
				scale += fabs((double)x[i] * y[i]) + (double)(x[i] - y[i]) * (x[i] - y[i]);
			}
			CHECK_MSG(close_enough(ops->l2sq(x, y, n), l2, scale), "%s l2sq n=%zu: %g vs %g", ops->name, n,
				  (double)ops->l2sq(x, y, n), l2);
			CHECK_MSG(close_enough(ops->dot(x, y, n), dot, scale), "%s dot n=%zu: %g vs %g", ops->name, n,
				  (double)ops->dot(x, y, n), dot);
		}
	}
	free(a);
	free(b);
}

TEST(scalar_matches_double)
{
	check_ops(rv_simd_scalar());
}

TEST(avx2_matches_scalar)
{
	const rv_simd_ops *o = rv_simd_avx2();
	if (!o) {
		fprintf(stderr, "   CPU has no AVX2: nothing to compare\n");
		return;
	}
	check_ops(o);
}

TEST(avx512_matches_scalar)
{
	const rv_simd_ops *o = rv_simd_avx512();
	if (!o) {
		fprintf(stderr, "   CPU has no AVX-512: nothing to compare\n");
		return;
	}
	check_ops(o);
}

TEST(dispatch_picks_best_and_names_it)
{
	const rv_simd_ops *o = rv_simd();
	CHECK(strcmp(o->name, rv_simd_name()) == 0);
	const char *force = getenv("RUVECTOR_SIMD");
	if (force && (strcmp(force, "scalar") == 0 || strcmp(force, "avx2") == 0))
		CHECK(strcmp(o->name, force) == 0 || (strcmp(force, "avx2") == 0 && !rv_simd_avx2()));
	else if (rv_simd_avx512())
		CHECK(strcmp(o->name, "avx512") == 0);
	else if (rv_simd_avx2())
		CHECK(strcmp(o->name, "avx2") == 0);
	else
		CHECK(strcmp(o->name, "scalar") == 0);
}
