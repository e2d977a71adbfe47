/*
 * simd.h - distance kernels, chosen once per process by CPU features.
 *
 * rv_simd() returns the dispatch table, filled on first use under a
 * thread-safe once-init and read-only afterwards (the only process-wide
 * state in the library). RUVECTOR_SIMD=scalar|avx2|avx512 forces a kernel
 * set when the CPU supports it.
 *
 * Kernels take n >= 1 elements, any alignment.
 *
 * Besides the float32 kernels the table holds the kernels the quantizers
 * (src/quant/) run in their hot loops:
 *   i8dot     sum a_i b_i over signed int8, exact in int32 for n <= 32768
 *   i8l2sq    sum (a_i - b_i)^2 over signed int8, exact for n <= 32768
 *             (255^2 * 32768 < 2^31; RV_MAX_DIM is 16000)
 *   hamming   number of differing bits between two n-byte strings
 *   pq_adc    sum_j tables[j * 256 + codes[j]] for j < m: the asymmetric
 *             distance of a product-quantized code, one 256-entry float
 *             table per sub-quantizer
 *   u8i8dot   sum u_i s_i of unsigned u and signed s (bytes), exact in
 *             int32 for n <= 32768: SQ8 codes held as levels 0..255
 *             against a query's int8 weights, one vpdpbusd per 64 bytes
 *             on VNNI (i8dot needs a second one to undo its sign trick)
 * and one the learners (src/learn/) run on every search with an adapter:
 *   axpy      y_i += a x_i: a low-rank adapter's delta added to a query
 *             (y and x must not overlap). Every set rounds the product
 *             and then the sum, as the scalar one does, never fusing
 *             them: each element is exactly the scalar kernel's, so an
 *             adapted query does not depend on the CPU (NEON uses the
 *             scalar kernel)
 * Every kernel of every set returns exactly the scalar reference's value
 * for the integer kernels; pq_adc sums in a different order, so it agrees
 * within float rounding (relative 1e-5 of the sum of |entries| used).
 */
#ifndef RV_SIMD_H
#define RV_SIMD_H

#include <stddef.h>
#include <stdint.h>

typedef float (*rv_dist_fn)(const float *a, const float *b, size_t n);
typedef int32_t (*rv_i8_fn)(const int8_t *a, const int8_t *b, size_t n);
typedef uint64_t (*rv_hamming_fn)(const uint8_t *a, const uint8_t *b, size_t nbytes);
typedef float (*rv_pq_adc_fn)(const float *tables, const uint8_t *codes, size_t m);
typedef int32_t (*rv_u8i8_fn)(const uint8_t *u, const int8_t *s, size_t n);
typedef void (*rv_axpy_fn)(float *y, float a, const float *x, size_t n);

/* Largest n the int8 kernels accept without int32 overflow. */
#define RV_SIMD_I8_MAX 32768

typedef struct rv_simd_ops {
	const char *name;  /* "scalar", "avx2", "avx512", "neon" */
	rv_dist_fn l2sq;   /* sum (a_i - b_i)^2 */
	rv_dist_fn dot;    /* sum a_i b_i */
	rv_i8_fn i8dot;    /* int8 sum a_i b_i */
	rv_i8_fn i8l2sq;   /* int8 sum (a_i - b_i)^2 */
	rv_hamming_fn hamming;
	rv_pq_adc_fn pq_adc;
	rv_u8i8_fn u8i8dot;
	/* The instruction-set extensions this set's kernels use, space
	 * separated, e.g. "avx512f avx512bw avx512vnni avx512vpopcntdq". */
	const char *features;
	rv_axpy_fn axpy;   /* y_i += a x_i */
} rv_simd_ops;

const rv_simd_ops *rv_simd(void);

/* rv_simd()->features: which optional extensions (VNNI, VPOPCNTDQ) the
 * chosen set uses. Static string, never NULL. Thread-safe. */
const char *rv_simd_features(void);

/* Each kernel set, for tests; NULL when the CPU (or the build) lacks it. */
const rv_simd_ops *rv_simd_scalar(void);
const rv_simd_ops *rv_simd_avx2(void);
const rv_simd_ops *rv_simd_avx512(void);
const rv_simd_ops *rv_simd_neon(void);

/* The kernels behind the tables (one file per ISA). */
float rv_l2sq_avx2(const float *a, const float *b, size_t n);
float rv_dot_avx2(const float *a, const float *b, size_t n);
int32_t rv_i8dot_avx2(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8l2sq_avx2(const int8_t *a, const int8_t *b, size_t n);
uint64_t rv_hamming_avx2(const uint8_t *a, const uint8_t *b, size_t nbytes);
float rv_pq_adc_avx2(const float *tables, const uint8_t *codes, size_t m);
int32_t rv_u8i8dot_avx2(const uint8_t *u, const int8_t *s, size_t n);
void rv_axpy_avx2(float *y, float a, const float *x, size_t n);

float rv_l2sq_avx512(const float *a, const float *b, size_t n);
float rv_dot_avx512(const float *a, const float *b, size_t n);
/* Need AVX512BW; the _vnni ones AVX512_VNNI, the _vpopcnt one
 * AVX512_VPOPCNTDQ (dispatch.c checks before installing them). */
int32_t rv_i8dot_avx512(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8l2sq_avx512(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8dot_avx512_vnni(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8l2sq_avx512_vnni(const int8_t *a, const int8_t *b, size_t n);
uint64_t rv_hamming_avx512_vpopcnt(const uint8_t *a, const uint8_t *b, size_t nbytes);
float rv_pq_adc_avx512(const float *tables, const uint8_t *codes, size_t m);
int32_t rv_u8i8dot_avx512(const uint8_t *u, const int8_t *s, size_t n);
int32_t rv_u8i8dot_avx512_vnni(const uint8_t *u, const int8_t *s, size_t n);
void rv_axpy_avx512(float *y, float a, const float *x, size_t n);

#if defined(__aarch64__)
float rv_l2sq_neon(const float *a, const float *b, size_t n);
float rv_dot_neon(const float *a, const float *b, size_t n);
int32_t rv_i8dot_neon(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8l2sq_neon(const int8_t *a, const int8_t *b, size_t n);
uint64_t rv_hamming_neon(const uint8_t *a, const uint8_t *b, size_t nbytes);
float rv_pq_adc_neon(const float *tables, const uint8_t *codes, size_t m);
int32_t rv_u8i8dot_neon(const uint8_t *u, const int8_t *s, size_t n);
#endif

/* Scalar references (simd_scalar.c). */
float rv_l2sq_scalar(const float *a, const float *b, size_t n);
float rv_dot_scalar(const float *a, const float *b, size_t n);
int32_t rv_i8dot_scalar(const int8_t *a, const int8_t *b, size_t n);
int32_t rv_i8l2sq_scalar(const int8_t *a, const int8_t *b, size_t n);
uint64_t rv_hamming_scalar(const uint8_t *a, const uint8_t *b, size_t nbytes);
float rv_pq_adc_scalar(const float *tables, const uint8_t *codes, size_t m);
int32_t rv_u8i8dot_scalar(const uint8_t *u, const int8_t *s, size_t n);
void rv_axpy_scalar(float *y, float a, const float *x, size_t n);

#endif /* RV_SIMD_H */
