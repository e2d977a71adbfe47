/*
 * bq.c - binary quantization: one bit per dimension, set when the value is
 * above that dimension's trained mean.
 *
 * Centering on the mean before taking signs matters: embedding dimensions
 * often have a nonzero offset, and the sign of an offset dimension would be
 * the same for every vector and carry no information. Codes are padded to
 * whole 64-bit words (zero bits, which XOR to zero) so the Hamming kernels
 * run on full words; the kernel itself accepts any byte length.
 */
#include "quant/quant_int.h"

#include "simd/simd.h"

struct rv_bq {
	const rv_alloc *a;
	size_t dim;
	float *mean; /* [dim] */
};

static const char magic[4] = { 'R', 'V', 'Q', 'B' };

static rv_status bq_alloc(rv_bq **out, size_t dim, const rv_alloc *a, rv_err *err)
{
	rv_bq *q = rv_calloc(a, 1, sizeof *q);
	if (!q)
		return rv_err_nomem(err);
	q->a = a;
	q->dim = dim;
	q->mean = rv_calloc(a, dim, sizeof(float));
	if (!q->mean) {
		rv_dealloc(a, q);
		return rv_err_nomem(err);
	}
	*out = q;
	return RV_OK;
}

rv_status rv_bq_train_rows(rv_bq **out, const rv_rows *x, const rv_alloc *a, rv_err *err)
{
	*out = NULL;
	rv_status st = rv_quant_check_rows(x, "binary", err);
	if (st != RV_OK)
		return st;
	size_t dim = x->dim;
	rv_bq *q;
	if ((st = bq_alloc(&q, dim, a, err)) != RV_OK)
		return st;
	/* Sum in double: a float running sum of many vectors loses the low
	 * bits that decide signs near the mean. */
	double *sum = rv_calloc(a, dim, sizeof(double));
	if (!sum) {
		rv_bq_free(q);
		return rv_err_nomem(err);
	}
	for (size_t i = 0; i < x->n; i++) {
		const float *v = rv_row(x, i);
		for (size_t d = 0; d < dim; d++)
			sum[d] += v[d];
	}
	for (size_t d = 0; d < dim; d++)
		q->mean[d] = (float)(sum[d] / (double)x->n);
	rv_dealloc(a, sum);
	*out = q;
	return RV_OK;
}

rv_status rv_bq_train(rv_bq **out, const float *x, size_t n, size_t dim, const rv_alloc *a, rv_err *err)
{
	rv_rows rows = { x, NULL, n, dim };
	return rv_bq_train_rows(out, &rows, a, err);
}

void rv_bq_free(rv_bq *q)
{
	if (!q)
		return;
	rv_dealloc(q->a, q->mean);
	rv_dealloc(q->a, q);
}

size_t rv_bq_dim(const rv_bq *q) { return q->dim; }
size_t rv_bq_code_size(const rv_bq *q) { return 8 * rv_bit_words(q->dim); }

void rv_bq_encode(const rv_bq *q, const float *x, uint8_t *code)
{
	/* Bits gathered eight at a time without branches: a branch per
	 * dimension mispredicts about half the time on real data. */
	size_t full = q->dim / 8, d = 0;
	memset(code, 0, rv_bq_code_size(q));
	for (size_t b = 0; b < full; b++, d += 8) {
		unsigned bits = 0;
		for (unsigned j = 0; j < 8; j++)
			bits |= (unsigned)(x[d + j] > q->mean[d + j]) << j;
		code[b] = (uint8_t)bits;
	}
	for (; d < q->dim; d++)
		code[d >> 3] |= (uint8_t)((unsigned)(x[d] > q->mean[d]) << (d & 7));
}

uint64_t rv_bq_distance(const rv_bq *q, const uint8_t *a, const uint8_t *b)
{
	return rv_simd()->hamming(a, b, rv_bq_code_size(q));
}

void rv_bq_to_bytes(rv_buf *out, const rv_bq *q)
{
	size_t start = out->len;
	rv_quant_put_header(out, magic, q->dim);
	for (size_t d = 0; d < q->dim; d++)
		rv_buf_f32(out, q->mean[d]);
	rv_quant_put_trailer(out, start);
}

rv_status rv_bq_from_bytes(rv_bq **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err)
{
	*out = NULL;
	rv_reader r;
	size_t dim = 0;
	rv_status st = rv_quant_get_header(&r, &dim, bytes, len, magic, "binary", err);
	if (st != RV_OK)
		return st;
	if (rv_reader_left(&r) != 4 * dim)
		return rv_err_set(err, RV_ECORRUPT, "binary parameters: %zu bytes of means for dim %zu, expected %zu",
				  rv_reader_left(&r), dim, 4 * dim);
	rv_bq *q;
	if ((st = bq_alloc(&q, dim, a, err)) != RV_OK)
		return st;
	for (size_t d = 0; d < dim; d++) {
		q->mean[d] = rv_reader_f32(&r);
		if (!isfinite(q->mean[d])) {
			st = rv_err_set(err, RV_ECORRUPT, "binary parameters: dimension %zu has mean %g", d,
					(double)q->mean[d]);
			rv_bq_free(q);
			return st;
		}
	}
	*out = q;
	return RV_OK;
}
