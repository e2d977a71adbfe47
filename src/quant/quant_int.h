/*
 * quant_int.h - what the quantizer files share: argument checks for
 * training input and the frame every serialised quantizer uses:
 *
 *     offset  size  field
 *     0       4     magic ("RVQ8", "RVQB", "RVPQ")
 *     4       2     version (1)
 *     6       2     reserved, 0
 *     8       4     dim
 *     12      ...   the quantizer's fields
 *     end-8   8     xxHash64 (seed 0) of every byte before it
 */
#ifndef RV_QUANT_INT_H
#define RV_QUANT_INT_H

#include <math.h>

#include "quant/quant.h"

#define RV_QUANT_VERSION 1
#define RV_QUANT_HEADER 12
#define RV_QUANT_TRAILER 8

/* A training sample: n rows of dim floats, either contiguous (base) or
 * one pointer per row (a collection's vectors are not contiguous). */
typedef struct rv_rows {
	const float *base;       /* row i at base + i * dim, when ptr is NULL */
	const float *const *ptr; /* row i at ptr[i] */
	size_t n, dim;
} rv_rows;

static inline const float *rv_row(const rv_rows *r, size_t i)
{
	return r->ptr ? r->ptr[i] : r->base + i * r->dim;
}

/* Shape and finiteness of a training sample. */
static inline rv_status rv_quant_check_rows(const rv_rows *x, const char *what, rv_err *err)
{
	if (x->n == 0)
		return rv_err_set(err, RV_EINVAL, "%s: training needs at least 1 vector, got 0", what);
	if (x->dim == 0 || x->dim > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "%s: dim %zu out of range 1..%d", what, x->dim, RV_MAX_DIM);
	size_t total;
	if (!rv_mul_ok(x->n, x->dim, &total))
		return rv_err_set(err, RV_EINVAL, "%s: %zu vectors of %zu dims overflow", what, x->n, x->dim);
	if (!x->ptr && !x->base)
		return rv_err_set(err, RV_EINVAL, "%s: training vectors are NULL", what);
	for (size_t i = 0; i < x->n; i++) {
		const float *v = rv_row(x, i);
		if (!v)
			return rv_err_set(err, RV_EINVAL, "%s: vector %zu is NULL", what, i);
		for (size_t d = 0; d < x->dim; d++)
			if (!isfinite(v[d]))
				return rv_err_set(err, RV_EINVAL, "%s: vector %zu has non-finite value %g at dimension %zu",
						  what, i, (double)v[d], d);
	}
	return RV_OK;
}

/* The trainers behind the public _train functions (which pass contiguous
 * rows) and rv_quantizer_train_rows. */
rv_status rv_sq8_train_rows(rv_sq8 **out, const rv_rows *x, const rv_alloc *a, rv_err *err);
rv_status rv_bq_train_rows(rv_bq **out, const rv_rows *x, const rv_alloc *a, rv_err *err);
rv_status rv_pq_train_rows(rv_pq **out, const rv_rows *x, const rv_pq_opts *opts, const rv_alloc *a,
			   rv_err *err);

static inline void rv_quant_put_header(rv_buf *out, const char magic[4], size_t dim)
{
	rv_buf_put(out, magic, 4);
	rv_buf_u16(out, RV_QUANT_VERSION);
	rv_buf_u16(out, 0);
	rv_buf_u32(out, (uint32_t)dim);
}

/* Appends the checksum of out->data[start ..]. */
static inline void rv_quant_put_trailer(rv_buf *out, size_t start)
{
	if (!out->failed)
		rv_buf_u64(out, rv_hash64(out->data + start, out->len - start, 0));
}

/* Checks magic, version, reserved, dim range and checksum; on success
 * leaves r positioned after the header with the trailer cut off, and
 * *dim set. */
static inline rv_status rv_quant_get_header(rv_reader *r, size_t *dim, const void *bytes, size_t len,
					    const char magic[4], const char *what, rv_err *err)
{
	if (!bytes || len < RV_QUANT_HEADER + RV_QUANT_TRAILER)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: %zu bytes, need at least %d", what, len,
				  RV_QUANT_HEADER + RV_QUANT_TRAILER);
	const uint8_t *p = bytes;
	if (memcmp(p, magic, 4) != 0)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: bad magic %02x%02x%02x%02x", what, p[0], p[1],
				  p[2], p[3]);
	uint64_t want = rv_get_u64(p + len - RV_QUANT_TRAILER), got = rv_hash64(p, len - RV_QUANT_TRAILER, 0);
	if (want != got)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: checksum %016llx, stored %016llx", what,
				  (unsigned long long)got, (unsigned long long)want);
	rv_reader_init(r, p + 4, len - 4 - RV_QUANT_TRAILER);
	uint16_t version = rv_reader_u16(r), reserved = rv_reader_u16(r);
	uint32_t d = rv_reader_u32(r);
	if (version != RV_QUANT_VERSION)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: version %u, expected %d", what, version,
				  RV_QUANT_VERSION);
	if (reserved != 0)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: reserved field %u is not 0", what, reserved);
	if (d == 0 || d > RV_MAX_DIM)
		return rv_err_set(err, RV_ECORRUPT, "%s parameters: dim %u out of range 1..%d", what, d, RV_MAX_DIM);
	*dim = d;
	return RV_OK;
}

#endif /* RV_QUANT_INT_H */
