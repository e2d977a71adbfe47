/*
 * import_vecs.c - the TEXMEX vector formats of the ANN benchmarks.
 *
 *   fvecs: per row a little-endian int32 dimension d, then d float32
 *   bvecs: per row a little-endian int32 dimension d, then d uint8
 *          (converted to float 0..255)
 *
 * Every row repeats the dimension; all must equal the first. The first
 * dimension is checked against RV_MAX_DIM before anything is allocated, so a
 * garbage header cannot ask for gigabytes. When the size of the input is
 * known, the row count is size / row size, and a size that is not a whole
 * number of rows is refused before any row is returned (it means a
 * truncated file, or rows of different dimensions).
 *
 * Rows are numbered from 0 in messages, like their default ids.
 */
#include "import_int.h"

#include <errno.h>
#include <math.h>

static size_t elem_bytes(const rv_import *r) { return r->format == RV_IMPORT_FVECS ? 4 : 1; }

static rv_status vecs_row(rv_import *r, rv_import_batch *b, bool *got, rv_err *err)
{
	uint64_t row = r->rows;
	uint64_t at = r->offset;
	if (!r->dim_read) {
		uint8_t d4[4];
		size_t n = rv_import_read(r, d4, 4);
		if (n == 0 && !r->src_error) {
			*got = false;
			return RV_OK;
		}
		if (n < 4)
			goto short_read;
		int32_t d = (int32_t)rv_get_u32(d4);
		if ((uint32_t)d != r->dim)
			return rv_err_set(err, RV_EINVAL,
					  "row %llu (byte offset %llu): dimension %d differs from %u in row 0",
					  (unsigned long long)row, (unsigned long long)at, (int)d, r->dim);
	}
	r->dim_read = false;
	if (rv_import_read(r, r->row_buf, r->row_bytes) < r->row_bytes)
		goto short_read;
	float *v = rv_import_row_vector(b, r->dim);
	if (!v)
		return rv_err_nomem(err);
	if (r->format == RV_IMPORT_FVECS) {
		for (uint32_t i = 0; i < r->dim; i++) {
			uint32_t u = rv_get_u32(r->row_buf + 4 * (size_t)i);
			memcpy(&v[i], &u, 4);
			if (!isfinite(v[i]))
				return rv_err_set(err, RV_EINVAL,
						  "row %llu (byte offset %llu): value %u is not finite (%g)",
						  (unsigned long long)row, (unsigned long long)at, i,
						  (double)v[i]);
		}
	} else {
		for (uint32_t i = 0; i < r->dim; i++)
			v[i] = (float)r->row_buf[i];
	}
	*got = true;
	return rv_import_row_finish(r, b, NULL, 0, NULL, 0, row, err);

short_read:
	if (r->src_error)
		return rv_err_set(err, RV_EIO, "row %llu: read error: %s", (unsigned long long)row,
				  strerror(errno));
	return rv_err_set(err, RV_EINVAL, "row %llu (byte offset %llu): truncated: the file ends inside the row",
			  (unsigned long long)row, (unsigned long long)at);
}

rv_status rv_import_vecs_open(rv_import *r, rv_err *err)
{
	const char *fmt = rv_import_format_name(r->format);
	r->row = vecs_row;
	uint8_t d4[4];
	size_t n = rv_import_read(r, d4, 4);
	if (n == 0 && !r->src_error) {
		/* An empty file is an empty data set. */
		r->total = 0;
		r->total_known = true;
		return RV_OK;
	}
	if (n < 4) {
		if (r->src_error)
			return rv_err_set(err, RV_EIO, "read error: %s", strerror(errno));
		return rv_err_set(err, RV_EINVAL, "%s: %zu bytes, too short for a 4-byte dimension", fmt, n);
	}
	int32_t d = (int32_t)rv_get_u32(d4);
	if (d <= 0 || d > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL,
				  "%s: row 0 has dimension %d, outside 1..%d (not a %s file?)", fmt,
				  (int)d, RV_MAX_DIM, fmt);
	rv_status st = rv_import_check_dim(r, (uint32_t)d, "row", 0, err);
	if (st != RV_OK)
		return st;
	r->dim_read = true;
	r->row_bytes = (size_t)d * elem_bytes(r);
	if (!(r->row_buf = rv_malloc(r->a, r->row_bytes)))
		return rv_err_nomem(err);
	if (r->size_known) {
		uint64_t row = 4 + (uint64_t)r->row_bytes;
		if (r->size % row != 0)
			return rv_err_set(err, RV_EINVAL,
					  "%s: file size %llu is not a multiple of the row size %llu "
					  "(4 + %d values of %zu bytes): truncated, or rows of different "
					  "dimensions",
					  fmt, (unsigned long long)r->size, (unsigned long long)row, (int)d,
					  elem_bytes(r));
		r->total = r->size / row;
		r->total_known = true;
	}
	return RV_OK;
}
