/*
 * test_simd.c - every distance kernel the CPU has matches the scalar
 * reference for all dimensions 1..1024 (and a few large ones) within a
 * relative tolerance, on unaligned inputs too; the dispatcher honours
 * RUVECTOR_SIMD. The integer kernels (int8 dot and squared L2, Hamming)
 * must equal the scalar ones exactly, the scalar ones must equal a 64-bit
 * computation, and extreme inputs (-128, 127, the longest int8 length)
 * must not overflow; the product-quantization kernel agrees within float
 * rounding. axpy (y += a x) must equal the scalar kernel exactly (each
 * element is one rounded product and one rounded sum), agree with double
 * precision, and leave every element past n untouched.
 */
#include "harness.h"
#include "simd/simd.h"
#include "util/util.h"

static bool close_enough(double got, double want, double scale)
{
	return fabs(got - want) <= 1e-5 * scale + 1e-6;
}

static int8_t *random_i8(size_t n, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	int8_t *v = malloc(n);
	for (size_t i = 0; i < n; i++)
		v[i] = (int8_t)(rv_rng_next(&r) & 0xff);
	return v;
}

static void check_quant_kernels(const rv_simd_ops *ops)
{
	const rv_simd_ops *ref = rv_simd_scalar();
	size_t maxn = RV_SIMD_I8_MAX;
	int8_t *a = random_i8(maxn + 3, 7), *b = random_i8(maxn + 3, 8);
	/* Lengths 1..1024, then doubling up to the int8 limit; offsets 0..2
	 * so loads straddle every alignment. */
	for (size_t n = 1; n <= maxn; n = n < 1024 ? n + 1 : n * 2) {
		for (size_t off = 0; off < 3; off++) {
			const int8_t *x = a + off, *y = b + off + (off == 2);
			int64_t dot = 0, l2 = 0;
			uint64_t ham = 0;
			for (size_t i = 0; i < n; i++) {
				dot += (int64_t)x[i] * y[i];
				l2 += ((int64_t)x[i] - y[i]) * ((int64_t)x[i] - y[i]);
				ham += (uint64_t)__builtin_popcount((unsigned)((uint8_t)x[i] ^ (uint8_t)y[i]));
			}
			int32_t gd = ops->i8dot(x, y, n), gl = ops->i8l2sq(x, y, n);
			uint64_t gh = ops->hamming((const uint8_t *)x, (const uint8_t *)y, n);
			CHECK_MSG(gd == dot, "%s i8dot n=%zu off=%zu: %d vs %lld", ops->name, n, off, gd, (long long)dot);
			CHECK_MSG(gl == l2, "%s i8l2sq n=%zu off=%zu: %d vs %lld", ops->name, n, off, gl, (long long)l2);
			CHECK_MSG(gh == ham, "%s hamming n=%zu off=%zu: %llu vs %llu", ops->name, n, off,
				  (unsigned long long)gh, (unsigned long long)ham);
			CHECK(gd == ref->i8dot(x, y, n) && gl == ref->i8l2sq(x, y, n));
		}
	}
	/* Extremes at the longest length: -128 * -128 everywhere, and the
	 * widest difference 127 - (-128). */
	static const int8_t ext[][2] = { { -128, -128 }, { 127, -128 }, { -128, 127 }, { 127, 127 } };
	for (size_t e = 0; e < 4; e++) {
		for (size_t n = maxn - 5; n <= maxn; n++) {
			memset(a, ext[e][0], n);
			memset(b, ext[e][1], n);
			int64_t p = (int64_t)ext[e][0] * ext[e][1], d = (int64_t)ext[e][0] - ext[e][1];
			CHECK_MSG(ops->i8dot(a, b, n) == p * (int64_t)n, "%s i8dot extreme %d*%d n=%zu", ops->name,
				  ext[e][0], ext[e][1], n);
			CHECK_MSG(ops->i8l2sq(a, b, n) == d * d * (int64_t)n, "%s i8l2sq extreme n=%zu", ops->name, n);
			CHECK(ops->hamming((const uint8_t *)a, (const uint8_t *)b, n) ==
			      (uint64_t)__builtin_popcount((unsigned)((uint8_t)ext[e][0] ^ (uint8_t)ext[e][1])) * n);
		}
	}
	free(a);
	free(b);

	/* Product quantization: m tables of 256 floats, codes anywhere. */
	size_t maxm = 1100;
	float *t = rv_test_random_vectors(maxm * 256, 1, 9);
	uint8_t *codes = (uint8_t *)random_i8(maxm + 1, 10);
	for (size_t m = 1; m <= maxm; m++) {
		for (size_t off = 0; off < 2; off++) {
			double want = 0, scale = 0;
			for (size_t j = 0; j < m; j++) {
				want += t[j * 256 + codes[j + off]];
				scale += fabs(t[j * 256 + codes[j + off]]);
			}
			float got = ops->pq_adc(t, codes + off, m), r = ref->pq_adc(t, codes + off, m);
			CHECK_MSG(close_enough(got, want, scale), "%s pq_adc m=%zu: %g vs %g", ops->name, m, (double)got,
				  want);
			CHECK_MSG(close_enough(got, r, scale), "%s pq_adc m=%zu vs scalar: %g vs %g", ops->name, m,
				  (double)got, (double)r);
		}
	}
	free(t);
	free(codes);
}

static void check_ops(const rv_simd_ops *ops)
{
	size_t maxn = 4100;
	float *a = rv_test_random_vectors(maxn + 2, 1, 5), *b = rv_test_random_vectors(maxn + 2, 1, 6);
	float *acc = malloc((maxn + 2) * sizeof(float)), *ref = malloc((maxn + 2) * sizeof(float));
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
			/* axpy into a copy of y with a guard element past the end. */
			memcpy(acc, y, (n + 1) * sizeof(float));
			memcpy(ref, y, (n + 1) * sizeof(float));
			float c = 0.75f - 0.5f * (float)off;
			ops->axpy(acc, c, x, n);
			rv_axpy_scalar(ref, c, x, n);
			bool ok = acc[n] == y[n] && memcmp(acc, ref, n * sizeof(float)) == 0;
			for (size_t i = 0; i < n && ok; i++)
				ok = close_enough(acc[i], (double)y[i] + (double)c * x[i],
						  fabs((double)y[i]) + fabs((double)c * x[i]));
			CHECK_MSG(ok, "%s axpy n=%zu off=%zu", ops->name, n, off);
		}
	}
	free(a);
	free(b);
	free(acc);
	free(ref);
	check_quant_kernels(ops);
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
	if (strstr(o->features, "avx512bw")) {
		/* The set the dispatcher installs on a CPU without VNNI and
		 * VPOPCNTDQ: test it too, whatever this CPU has. */
		rv_simd_ops plain = *o;
		plain.name = "avx512-plain";
		plain.i8dot = rv_i8dot_avx512;
		plain.i8l2sq = rv_i8l2sq_avx512;
		plain.hamming = rv_hamming_avx2;
		check_ops(&plain);
	}
}

TEST(neon_matches_scalar)
{
	const rv_simd_ops *o = rv_simd_neon();
	if (!o) {
		fprintf(stderr, "   not an AArch64 build: nothing to compare\n");
		return;
	}
	check_ops(o);
}

TEST(features_name_the_extensions)
{
	const rv_simd_ops *o = rv_simd();
	CHECK(rv_simd_features() == o->features);
	CHECK(strcmp(rv_simd_scalar()->features, "") == 0);
	const rv_simd_ops *x = rv_simd_avx512();
	if (x) {
		/* The string must agree with the kernels actually installed. */
		bool vnni = strstr(x->features, "avx512vnni") != NULL;
		bool vpop = strstr(x->features, "avx512vpopcntdq") != NULL;
		CHECK(vnni == (x->i8dot == rv_i8dot_avx512_vnni));
		CHECK(vpop == (x->hamming == rv_hamming_avx512_vpopcnt));
		fprintf(stderr, "   avx512 set uses: %s\n", x->features);
	}
	fprintf(stderr, "   chosen: %s (%s)\n", rv_simd_name(), rv_simd_features());
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
