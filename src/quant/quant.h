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
#include <string.h>

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

/* A query in SQ8 form. Its fields are sq8.c's to write; they are in the
 * open only so that rv_sq8_distance_levels inlines into a graph walk. */
typedef struct rv_sq8_query {
	const rv_sq8 *q;
	rv_metric metric;
	int32_t (*i8dot)(const int8_t *, const int8_t *, size_t);
	int32_t (*u8i8dot)(const uint8_t *, const int8_t *, size_t);
	size_t dim;
	float k;      /* sum_d q_d (min_d + 128 scale_d) */
	float k_lev;  /* k - 128 alpha sum_d w[d]: the constant against levels */
	float alpha;  /* q_d scale_d ~ alpha w[d] */
	float qnorm;  /* |q|^2 */
	int8_t *w;    /* [dim] */
} rv_sq8_query;

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
/* The first dim bytes of rv_sq8_encode's code; returns the squared norm
 * it would store after them (the same float). For the metrics that do
 * not need the norm (IP, cosine) a code of dim bytes is enough. */
float rv_sq8_encode_int8(const rv_sq8 *q, const float *x, int8_t *code);
/* The same code as levels v_d = c_d + 128 (unsigned bytes, = c_d ^ 0x80),
 * the form rv_sq8_distance_levels reads: its kernel (u8i8dot) needs one
 * VNNI instruction per 64 bytes where the int8 form needs two. */
float rv_sq8_encode_levels(const rv_sq8 *q, const float *x, uint8_t *levels);

/* A reusable per-query state. rv_sq8_query_new allocates it (through the
 * quantizer's allocator) for q, which must outlive it; rv_sq8_query_set
 * loads a query vector for a metric and allocates nothing. Errors:
 * RV_ENOMEM; RV_EINVAL for an unknown metric or non-finite query. */
rv_status rv_sq8_query_new(rv_sq8_query **out, const rv_sq8 *q, rv_err *err);
rv_status rv_sq8_query_set(rv_sq8_query *qq, const float *query, rv_metric metric, rv_err *err);
void rv_sq8_query_free(rv_sq8_query *qq); /* NULL is a no-op */
/* Approximate distance (see above) from the loaded query to one code. */
float rv_sq8_distance(const rv_sq8_query *qq, const uint8_t *code);
/* The same distance for a code held as levels (rv_sq8_encode_levels,
 * followed by the float32 norm for L2): equal up to float rounding. */
static inline float rv_sq8_distance_levels(const rv_sq8_query *qq, const uint8_t *levels)
{
	float dot = qq->k_lev + qq->alpha * (float)qq->u8i8dot(levels, qq->w, qq->dim);
	if (qq->metric == RV_METRIC_IP)
		return -dot;
	if (qq->metric == RV_METRIC_COSINE)
		return 1.0f - dot;
	float norm;
	memcpy(&norm, levels + qq->dim, 4); /* little-endian host, as everywhere */
	return qq->qnorm - 2.0f * dot + norm;
}

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
 * sub-space has 256 centroids from k-means (k-means++ seeding from an
 * rv_rng seeded with (seed, sub-space), a fixed number of Lloyd
 * iterations, an empty cluster re-seeded with the point farthest from its
 * centroid). Training is deterministic for a given seed and sample,
 * whatever the number of threads.
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
	size_t size;      /* sizeof(rv_pq_opts) */
	size_t m;         /* sub-spaces, 1..dim; 0 = dim / 8 (at least 1) */
	unsigned iters;   /* Lloyd iterations; 0 = 12 */
	uint64_t seed;    /* k-means++ seeding */
	unsigned threads; /* sub-spaces trained at once; 0 or 1 = on the calling thread */
} rv_pq_opts;

#define RV_PQ_OPTS_INIT { sizeof(rv_pq_opts), 0, 0, 0x5eed, 0 }

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

/* ========================================================================
 * A trained quantizer of any of the three kinds, as a collection keeps it
 * (quant_seg.c), and the payload of the collection's QUANT segments.
 *
 * Training takes a sample of the collection (the caller picks it); the
 * defaults per kind are the collection's: PQ with pq_m sub-spaces,
 * RV_QUANT_PQ_ITERS Lloyd iterations and seed RV_QUANT_PQ_SEED.
 * ====================================================================== */

#define RV_QUANT_PQ_ITERS 8
#define RV_QUANT_PQ_SEED 0x5eedull

typedef struct rv_quantizer {
	rv_quant kind; /* RV_QUANT_NONE: nothing trained (all pointers NULL) */
	rv_sq8 *sq8;   /* the one matching kind; the others NULL */
	rv_bq *bq;
	rv_pq *pq;
} rv_quantizer;

/* Train a quantizer of `kind` (not NONE) on x[0 .. n*dim); pq_m: PQ
 * sub-spaces (0 = dim / 8); threads: PQ sub-spaces trained at once.
 * On failure *out is left empty (kind NONE). Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_quantizer_train(rv_quantizer *out, rv_quant kind, const float *x, size_t n, size_t dim,
			     size_t pq_m, unsigned threads, const rv_alloc *a, rv_err *err);
/* The same from rows[0..n), one pointer per vector of dim floats. */
rv_status rv_quantizer_train_rows(rv_quantizer *out, rv_quant kind, const float *const *rows, size_t n,
				  size_t dim, size_t pq_m, unsigned threads, const rv_alloc *a, rv_err *err);
/* Free what q holds and leave it empty. NULL is a no-op. */
void rv_quantizer_free(rv_quantizer *q);
size_t rv_quantizer_dim(const rv_quantizer *q);
/* Bytes of the quantizer's code (rv_sq8_code_size, rv_bq_code_size,
 * rv_pq_code_size); 0 when empty. */
size_t rv_quantizer_code_size(const rv_quantizer *q);
/* The quantizer's own encoder. */
void rv_quantizer_encode(const rv_quantizer *q, const float *x, uint8_t *code);
/* A copy (through the byte form) on allocator a. */
rv_status rv_quantizer_copy(rv_quantizer *out, const rv_quantizer *q, const rv_alloc *a, rv_err *err);
/* The parameters' byte form (the kind's _to_bytes blob), and back; the
 * blob's magic must be the one of `kind`. */
void rv_quantizer_to_bytes(rv_buf *out, const rv_quantizer *q);
rv_status rv_quantizer_from_bytes(rv_quantizer *out, rv_quant kind, const void *bytes, size_t len,
				  const rv_alloc *a, rv_err *err);

/* ---- QUANT segment payloads (docs/FORMAT.md, "QUANT segment") ---------
 *
 * Kind 1, the trained quantizer of the collection:
 *     0   u32  kind (1)
 *     4   u32  quantizer: 1 sq8, 2 binary, 3 pq (rv_quant)
 *     8   u32  dim
 *     12  u32  code bytes per vector (what the quantizer's encoder writes)
 *     16  u64  sample: vectors the quantizer was trained on (>= 1)
 *     24  u64  parameter bytes L
 *     32  L    the quantizer's byte form (rv_quantizer_to_bytes)
 * Kind 2, stored codes of a run of slots (so that open copies them instead
 * of encoding every vector again):
 *     0   u32  kind (2)
 *     4   u32  first slot
 *     8   u32  count
 *     12  u32  code bytes per vector
 *     16  count * code bytes: codes, slot by slot
 * Both end exactly where the payload ends. */

#define RV_QSEG_QUANTIZER 1u
#define RV_QSEG_CODES 2u
#define RV_QSEG_QUANTIZER_HEADER 32
#define RV_QSEG_CODES_HEADER 16

typedef struct rv_qseg {
	uint32_t kind;         /* RV_QSEG_* */
	/* kind 1 */
	rv_quant quant;
	uint32_t dim;
	uint32_t code_bytes;   /* both kinds */
	uint64_t sample;
	const uint8_t *params; /* into the payload */
	size_t params_len;
	/* kind 2 */
	uint32_t first, count;
	const uint8_t *codes;  /* into the payload: count * code_bytes */
} rv_qseg;

/* Append a kind-1 payload for q (trained on `sample` vectors) / the
 * header of a kind-2 payload (the caller appends the codes). Check
 * out->failed for ENOMEM. */
void rv_qseg_put_quantizer(rv_buf *out, const rv_quantizer *q, uint64_t sample);
void rv_qseg_put_codes_header(rv_buf *out, uint32_t first, uint32_t count, uint32_t code_bytes);

/* Parse a payload: layout, lengths and ranges (no allocation; for kind 1
 * the parameters are only framed, rv_qseg_load decodes them).
 * RV_ECORRUPT with the reason (naming the field and its byte offset). */
rv_status rv_qseg_parse(rv_qseg *out, const uint8_t *p, size_t len, rv_err *err);

/* Decode the quantizer of a parsed kind-1 payload and check it against its
 * header (kind, dim, code bytes). RV_ECORRUPT, RV_ENOMEM. */
rv_status rv_qseg_load(rv_quantizer *out, const rv_qseg *s, const rv_alloc *a, rv_err *err);

#endif /* RV_QUANT_H */
