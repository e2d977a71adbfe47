/*
 * dispatch.c - pick the distance kernels once, by CPU features.
 *
 * The table is filled under pthread_once and never changes afterwards, so
 * every thread may read it without locks. RUVECTOR_SIMD names a kernel set
 * to force (falls back to the best available when the CPU lacks it).
 *
 * The AVX-512 set is assembled at probe time: its float kernels need only
 * AVX512F, but the int8 and product-quantization kernels need AVX512BW/VL
 * (else the AVX2 ones stand in), the int8 ones prefer AVX512_VNNI (cpuid
 * leaf 7 ECX bit 11) and Hamming prefers AVX512_VPOPCNTDQ (ECX bit 14, else
 * the AVX2 nibble table). The set's features string lists what it uses.
 */
#include "simd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ruvector.h"

#if defined(__x86_64__)
#define RV_X86 1
#include <cpuid.h>
#endif

static const rv_simd_ops ops_scalar = { "scalar", rv_l2sq_scalar, rv_dot_scalar, rv_i8dot_scalar,
					rv_i8l2sq_scalar, rv_hamming_scalar, rv_pq_adc_scalar, rv_u8i8dot_scalar, "",
					rv_axpy_scalar };
#if defined(__aarch64__)
static const rv_simd_ops ops_neon = { "neon", rv_l2sq_neon, rv_dot_neon, rv_i8dot_neon,
				      rv_i8l2sq_neon, rv_hamming_neon, rv_pq_adc_neon, rv_u8i8dot_neon, "neon",
				      rv_axpy_scalar };
#endif
#ifdef RV_X86
static const rv_simd_ops ops_avx2 = { "avx2", rv_l2sq_avx2, rv_dot_avx2, rv_i8dot_avx2,
				      rv_i8l2sq_avx2, rv_hamming_avx2, rv_pq_adc_avx2, rv_u8i8dot_avx2, "avx2 fma",
				      rv_axpy_avx2 };
static rv_simd_ops ops_avx512; /* filled by probe(), read-only afterwards */
static char avx512_features[96];

static unsigned long long xgetbv0(void)
{
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((unsigned long long)hi << 32) | lo;
}

static int has_avx2, has_avx512;

static void build_avx512(int bw_vl, int vnni, int vpopcnt)
{
	ops_avx512 = ops_avx2;
	ops_avx512.name = "avx512";
	ops_avx512.l2sq = rv_l2sq_avx512;
	ops_avx512.dot = rv_dot_avx512;
	ops_avx512.axpy = rv_axpy_avx512;
	strcpy(avx512_features, "avx512f");
	if (bw_vl) {
		ops_avx512.i8dot = vnni ? rv_i8dot_avx512_vnni : rv_i8dot_avx512;
		ops_avx512.i8l2sq = vnni ? rv_i8l2sq_avx512_vnni : rv_i8l2sq_avx512;
		ops_avx512.u8i8dot = vnni ? rv_u8i8dot_avx512_vnni : rv_u8i8dot_avx512;
		ops_avx512.pq_adc = rv_pq_adc_avx512;
		strcat(avx512_features, vnni ? " avx512bw avx512vl avx512vnni" : " avx512bw avx512vl");
	}
	if (vpopcnt) {
		ops_avx512.hamming = rv_hamming_avx512_vpopcnt;
		strcat(avx512_features, " avx512vpopcntdq");
	}
	if (!bw_vl || !vpopcnt)
		strcat(avx512_features, " avx2 fma");
	ops_avx512.features = avx512_features;
}

static void probe(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return;
	int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
	if (!osxsave || !avx)
		return;
	unsigned long long xcr0 = xgetbv0();
	int ymm_os = (xcr0 & 6) == 6, zmm_os = (xcr0 & 0xe6) == 0xe6;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return;
	int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
	int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
	int vnni = (c >> 11) & 1, vpopcnt = (c >> 14) & 1;
	has_avx2 = ymm_os && avx2 && fma;
	has_avx512 = zmm_os && avx512f && has_avx2;
	if (has_avx512)
		build_avx512(avx512bw && avx512vl, avx512bw && avx512vl && vnni, vpopcnt);
}
#endif

static const rv_simd_ops *chosen = &ops_scalar;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	const char *want = getenv("RUVECTOR_SIMD");
#ifdef RV_X86
	probe();
	const rv_simd_ops *best = has_avx512 ? &ops_avx512 : has_avx2 ? &ops_avx2 : &ops_scalar;
	if (want && strcmp(want, "scalar") == 0)
		best = &ops_scalar;
	else if (want && strcmp(want, "avx2") == 0 && has_avx2)
		best = &ops_avx2;
	chosen = best;
#elif defined(__aarch64__)
	/* Advanced SIMD is part of the AArch64 base architecture. */
	chosen = want && strcmp(want, "scalar") == 0 ? &ops_scalar : &ops_neon;
#else
	(void)want;
#endif
}

const rv_simd_ops *rv_simd(void)
{
	pthread_once(&once, choose);
	return chosen;
}

const rv_simd_ops *rv_simd_scalar(void) { return &ops_scalar; }

const rv_simd_ops *rv_simd_avx2(void)
{
	rv_simd();
#ifdef RV_X86
	return has_avx2 ? &ops_avx2 : NULL;
#else
	return NULL;
#endif
}

const rv_simd_ops *rv_simd_avx512(void)
{
	rv_simd();
#ifdef RV_X86
	return has_avx512 ? &ops_avx512 : NULL;
#else
	return NULL;
#endif
}

const rv_simd_ops *rv_simd_neon(void)
{
#if defined(__aarch64__)
	return &ops_neon;
#else
	return NULL;
#endif
}

const char *rv_simd_name(void) { return rv_simd()->name; }

const char *rv_simd_features(void) { return rv_simd()->features; }
