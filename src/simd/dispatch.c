/*
 * dispatch.c - pick the distance kernels once, by CPU features.
 *
 * The table is filled under pthread_once and never changes afterwards, so
 * every thread may read it without locks. RUVECTOR_SIMD names a kernel set
 * to force (falls back to the best available when the CPU lacks it).
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

static const rv_simd_ops ops_scalar = { "scalar", rv_l2sq_scalar, rv_dot_scalar };
#ifdef RV_X86
static const rv_simd_ops ops_avx2 = { "avx2", rv_l2sq_avx2, rv_dot_avx2 };
static const rv_simd_ops ops_avx512 = { "avx512", rv_l2sq_avx512, rv_dot_avx512 };

static unsigned long long xgetbv0(void)
{
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((unsigned long long)hi << 32) | lo;
}

static int has_avx2, has_avx512;

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
	has_avx2 = ymm_os && avx2 && fma;
	has_avx512 = zmm_os && avx512f && has_avx2;
}
#endif

static const rv_simd_ops *chosen = &ops_scalar;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
#ifdef RV_X86
	probe();
	const rv_simd_ops *best = has_avx512 ? &ops_avx512 : has_avx2 ? &ops_avx2 : &ops_scalar;
	const char *want = getenv("RUVECTOR_SIMD");
	if (want && strcmp(want, "scalar") == 0)
		best = &ops_scalar;
	else if (want && strcmp(want, "avx2") == 0 && has_avx2)
		best = &ops_avx2;
	chosen = best;
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

const char *rv_simd_name(void) { return rv_simd()->name; }
