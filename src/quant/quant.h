/*
 * quant.h - vector quantizers: compact codes for float vectors, and fast
 * approximate distances between a float query and a code.
 *
 * Three quantizers, each trained from a sample of the collection:
 *
 *   quantizer   code bytes per vector       distance                  use
 *   SQ8         dim + 4                     int8 dot in the hot loop  re-rank R ~ 2k
 *   binary      8 * ceil(dim / 64)          Hamming (popcount)        coarse filter
 *   PQ          m (one byte per sub-space)  sum of m table lookups    large collections
 *
 * (384 dims: SQ8 388 bytes, binary 48, PQ with m = 48 48; float32 is 1536.)
 *
 * The approximate distances are meant for candidate generation: scan the
 * codes for the R best, then re-rank those R with the exact float vectors.
 * docs/QUANT.md has the recall measured that way.
 *
 * Common rules:
 *   - Training reads n >= 1 vectors of dim floats, row-major, finite
 *     (a NaN or infinity is RV_EINVAL naming the row and column);
 *     1 <= dim <= RV_MAX_DIM. All memory comes from the rv_alloc given at
 *     training or load time (NULL: the C library); allocation failure is
 *     RV_ENOMEM and leaves nothing allocated. Errors are described in err
 *     (may be NULL).
 *   - A trained quantizer is immutable: any number of threads may encode,
 *     decode and compute distances with it at once. A query object
 *     (rv_sq8_query) or table buffer belongs to one thread at a time.
 *   - Distances follow the library's convention, smaller is nearer:
 *       RV_METRIC_L2      squared Euclidean distance
 *       RV_METRIC_IP      -dot(query, x)
 *       RV_METRIC_COSINE  1 - dot(query, x) (both assumed unit length)
 *   - Serialisation: _to_bytes appends a self-contained little-endian blob
 *     (magic, version, shape, parameters, xxHash64 of all of it) to an
 *     rv_buf; _from_bytes accepts only the exact blob and returns
 *     RV_ECORRUPT for anything else (wrong magic or length, bad shape,
 *     non-finite or out-of-range parameter, checksum mismatch), so it is
 *     safe on untrusted bytes. A round trip is bit-exact.
 *   - Distance kernels come from rv_simd() (src/simd/simd.h).
 *
 * First version of everything here: 0.2.0. Internal to the library.
 */
#ifndef RV_QUANT_H
#define RV_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "ruvector.h"
#include "util/util.h"

/* ========================================================================
 * SQ8: scalar quantization to int8, per-dimension affine.
 *
 * Training finds min_d and max_d of every dimension d over the sample;
 * scale_d = (max_d - min_d) / 255 (1 for a constant dimension). A value
 * encodes as
 *     c_d = clamp(round((x_d - min_d) / scale_d), 0, 255) - 128
 * and decodes as x^_d = min_d + scale_d (c_d + 128); values inside the
 * trained range are off by at most scale_d / 2, values outside are clamped.
 *
 * Code layout (rv_sq8_code_size() = dim + 4 bytes):
 *     [0, dim)        int8 c_d
 *     [dim, dim + 4)  float32 LE, |x^|^2 (the decoded vector's squared norm;
 *                     lets L2 run on the dot kernel)
 *
 * Fast distance: with w_d = q_d scale_d,
 *     q . x^ = sum_d q_d (min_d + 128 scale_d) + sum_d w_d c_d
 * The first sum is per query. The query folds w into int8 with one factor
 * alpha = max |w_d| / 127, w_d ~ alpha qw_d, so the hot loop is the int8
 * dot kernel: q . x^ ~ K + alpha * i8dot(qw, c). L2 uses
 *     |q - x^|^2 = |q|^2 - 2 q . x^ + |x^|^2.
 * Error bound against the decoded vector: |estimate(q . x^) - q . x^| <=
 * alpha / 2 * sum_d |c_d| <= 64 alpha dim (2x that for L2); against the
 * original x add sum_d |q_d| scale_d / 2 (x inside the trained range).
 * ====================================================================== */

typedef struct rv_sq8 rv_sq8;
typedef struct rv_sq8_query rv_sq8_query;

/* Train on x[0 .. n*dim). [out] *out: the caller's, free with rv_sq8_free;
 * NULL on failure. Errors: RV_EINVAL (n == 0, dim out of range, non-finite
 * value), RV_ENOMEM. */
rv_status rv_sq8_train(rv_sq8 **out, const float *x, size_t n, size_t dim, const rv_alloc *a, rv_err *err);
void rv_sq8_free(rv_sq8 *q); /* NULL is a no-op */
size_t rv_sq8_dim(const rv_sq8 *q);
size_t rv_sq8_code_size(const rv_sq8 *q); /* dim + 4 */

/* x: dim floats (NaN encodes as the minimum); code: rv_sq8_code_size()
 * bytes, any alignment. */
void rv_sq8_encode(const rv_sq8 *q, const float *x, uint8_t *code);
void rv_sq8_decode(const rv_sq8 *q, const uint8_t *code, float *x);

/* A reusable per-query state. rv_sq8_query_new allocates it (through the
 * quantizer's allocator) for q, which must outlive it; rv_sq8_query_set
 * loads a query vector for a metric and allocates nothing. Errors:
 * RV_ENOMEM; RV_EINVAL for an unknown metric or non-finite query. */
rv_status rv_sq8_query_new(rv_sq8_query **out, const rv_sq8 *q, rv_err *err);
rv_status rv_sq8_query_set(rv_sq8_query *qq, const float *query, rv_metric metric, rv_err *err);
void rv_sq8_query_free(rv_sq8_query *qq); /* NULL is a no-op */
/* Approximate distance (see above) from the loaded query to one code. */
float rv_sq8_distance(const rv_sq8_query *qq, const uint8_t *code);

/* Parameters as bytes (appended to out; check out->failed for ENOMEM), and
 * back. from_bytes: RV_ECORRUPT on any malformed input, RV_ENOMEM. */
void rv_sq8_to_bytes(rv_buf *out, const rv_sq8 *q);
rv_status rv_sq8_from_bytes(rv_sq8 **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err);

/* ========================================================================
 * Binary: one bit per dimension, bit d = (x_d > mean_d), mean_d trained.
 *
 * Code layout (rv_bq_code_size() = 8 * ceil(dim / 64) bytes): bit d is bit
 * (d % 8) of byte d / 8; the padding bits after dim are zero, so they never
 * add to a distance. A query is encoded the same way; the distance is the
 * Hamming distance, an estimate of the angle between x - mean and q - mean
 * (angle ~ pi * hamming / dim).
 * ====================================================================== */

typedef struct rv_bq rv_bq;

rv_status rv_bq_train(rv_bq **out, const float *x, size_t n, size_t dim, const rv_alloc *a, rv_err *err);
void rv_bq_free(rv_bq *q);
size_t rv_bq_dim(const rv_bq *q);
size_t rv_bq_code_size(const rv_bq *q);
void rv_bq_encode(const rv_bq *q, const float *x, uint8_t *code); /* also for queries */
/* Hamming distance between two codes of this quantizer. */
uint64_t rv_bq_distance(const rv_bq *q, const uint8_t *a, const uint8_t *b);
void rv_bq_to_bytes(rv_buf *out, const rv_bq *q);
rv_status rv_bq_from_bytes(rv_bq **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err);

/* ========================================================================
 * PQ: product quantization. The vector (zero-padded to m * dsub dims,
 * dsub = ceil(dim / m)) is cut into m sub-vectors of dsub dims; each
 * sub-space has 256 centroids from k-means (k-means++ seeding from a
 * seeded rv_rng, a fixed number of Lloyd iterations, an empty cluster
 * re-seeded with the point farthest from its centroid). Training is
 * deterministic for a given seed and sample.
 *
 * Code layout (rv_pq_code_size() = m bytes): byte j is the centroid index
 * in sub-space j.
 *
 * Distance: per query, rv_pq_tables fills m * 256 floats, entry
 * [j * 256 + k] = the metric's contribution of sub-space j if the vector
 * had centroid k there (squared L2 of the sub-vectors, or -dot); the
 * distance to a code is the sum of m lookups (the pq_adc kernel). COSINE
 * tables are -dot, with 1 added to the first sub-space so the sum is
 * 1 - dot.
 * ====================================================================== */

typedef struct rv_pq rv_pq;

typedef struct rv_pq_opts {
	size_t size;     /* sizeof(rv_pq_opts) */
	size_t m;        /* sub-spaces, 1..dim; 0 = dim / 8 (at least 1) */
	unsigned iters;  /* Lloyd iterations; 0 = 12 */
	uint64_t seed;   /* k-means++ seeding */
} rv_pq_opts;

#define RV_PQ_OPTS_INIT { sizeof(rv_pq_opts), 0, 0, 0x5eed }

/* Train on n >= 1 vectors (n < 256 leaves duplicate centroids). Cost is
 * about (iters + 1) * n * 256 * dim flops: pass a sample (a few thousand
 * to a few tens of thousands of vectors). opts NULL = defaults. Errors:
 * RV_EINVAL (naming the bad value), RV_ENOMEM. */
rv_status rv_pq_train(rv_pq **out, const float *x, size_t n, size_t dim, const rv_pq_opts *opts,
		      const rv_alloc *a, rv_err *err);
void rv_pq_free(rv_pq *q);
size_t rv_pq_dim(const rv_pq *q);
size_t rv_pq_m(const rv_pq *q);
size_t rv_pq_code_size(const rv_pq *q); /* m */
/* Floats rv_pq_tables fills: m * 256. */
size_t rv_pq_table_size(const rv_pq *q);
/* The centroids, m * 256 * dsub floats (sub-space j, centroid k at
 * [(j * 256 + k) * dsub]), valid while q lives. */
const float *rv_pq_centroids(const rv_pq *q, size_t *dsub);

void rv_pq_encode(const rv_pq *q, const float *x, uint8_t *code);
void rv_pq_decode(const rv_pq *q, const uint8_t *code, float *x);
/* RV_EINVAL for an unknown metric. tables: rv_pq_table_size() floats. */
rv_status rv_pq_tables(const rv_pq *q, const float *query, rv_metric metric, float *tables, rv_err *err);
float rv_pq_distance(const rv_pq *q, const float *tables, const uint8_t *code);
void rv_pq_to_bytes(rv_buf *out, const rv_pq *q);
rv_status rv_pq_from_bytes(rv_pq **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err);

#endif /* RV_QUANT_H */
