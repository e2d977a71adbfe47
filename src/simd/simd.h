/*
 * simd.h - float32 distance kernels, chosen once per process by CPU
 * features.
 *
 * rv_simd() returns the dispatch table, filled on first use under a
 * thread-safe once-init and read-only afterwards (the only process-wide
 * state in the library). RUVECTOR_SIMD=scalar|avx2|avx512 forces a kernel
 * set when the CPU supports it.
 *
 * Kernels take n >= 1 elements, any alignment.
 */
#ifndef RV_SIMD_H
#define RV_SIMD_H

#include <stddef.h>

typedef float (*rv_dist_fn)(const float *a, const float *b, size_t n);

typedef struct rv_simd_ops {
	const char *name;  /* "scalar", "avx2", "avx512" */
	rv_dist_fn l2sq;   /* sum (a_i - b_i)^2 */
	rv_dist_fn dot;    /* sum a_i b_i */
} rv_simd_ops;

const rv_simd_ops *rv_simd(void);

/* Each kernel set, for tests; NULL when the CPU (or the build) lacks it. */
const rv_simd_ops *rv_simd_scalar(void);
const rv_simd_ops *rv_simd_avx2(void);
const rv_simd_ops *rv_simd_avx512(void);

/* The kernels behind the tables (one file per ISA). */
float rv_l2sq_avx2(const float *a, const float *b, size_t n);
float rv_dot_avx2(const float *a, const float *b, size_t n);
float rv_l2sq_avx512(const float *a, const float *b, size_t n);
float rv_dot_avx512(const float *a, const float *b, size_t n);

/* Scalar references (simd_scalar.c). */
float rv_l2sq_scalar(const float *a, const float *b, size_t n);
float rv_dot_scalar(const float *a, const float *b, size_t n);

#endif /* RV_SIMD_H */
