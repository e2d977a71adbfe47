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

/* Shape and finiteness of a training sample. */
static inline rv_status rv_quant_check_sample(const float *x, size_t n, size_t dim, const char *what, rv_err *err)
{
	if (n == 0)
		return rv_err_set(err, RV_EINVAL, "%s: training needs at least 1 vector, got 0", what);
	if (dim == 0 || dim > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "%s: dim %zu out of range 1..%d", what, dim, RV_MAX_DIM);
	size_t total;
	if (!rv_mul_ok(n, dim, &total))
		return rv_err_set(err, RV_EINVAL, "%s: %zu vectors of %zu dims overflow", what, n, dim);
	for (size_t i = 0; i < total; i++)
		if (!isfinite(x[i]))
			return rv_err_set(err, RV_EINVAL, "%s: vector %zu has non-finite value %g at dimension %zu",
					  what, i / dim, (double)x[i], i % dim);
	return RV_OK;
}

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
