/*
 * sq8.c - scalar quantization to int8 with a per-dimension affine map.
 *
 * Per-dimension ranges keep the full 8 bits for every dimension even when
 * their spreads differ by orders of magnitude (common in embeddings), at
 * the cost of one float pair per dimension. Distances to a query never
 * decode the codes: the query is folded into int8 weights once (see
 * quant.h for the algebra and the error bound), so scanning a code is one
 * int8 dot product (vpdpbusd on AVX-512 VNNI) plus a few float operations.
 * The squared norm of the decoded vector rides along in the code (4 bytes)
 * because the L2 expansion needs it and recomputing it would mean
 * decoding.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <stdlib.h>

#include "simd/simd.h"

struct rv_sq8 {
	const rv_alloc *a;
	size_t dim;
	float *min;   /* [dim] */
	float *scale; /* [dim], > 0 */
};


static const char magic[4] = { 'R', 'V', 'Q', '8' };

static rv_status sq8_alloc(rv_sq8 **out, size_t dim, const rv_alloc *a, rv_err *err)
{
	rv_sq8 *q = rv_calloc(a, 1, sizeof *q);
	if (!q)
		return rv_err_nomem(err);
	q->a = a;
	q->dim = dim;
	q->min = rv_calloc(a, 2 * dim, sizeof(float));
	if (!q->min) {
		rv_dealloc(a, q);
		return rv_err_nomem(err);
	}
	q->scale = q->min + dim;
	*out = q;
	return RV_OK;
}

rv_status rv_sq8_train_rows(rv_sq8 **out, const rv_rows *x, const rv_alloc *a, rv_err *err)
{
	*out = NULL;
	rv_status st = rv_quant_check_rows(x, "sq8", err);
	if (st != RV_OK)
		return st;
	size_t dim = x->dim;
	rv_sq8 *q;
	if ((st = sq8_alloc(&q, dim, a, err)) != RV_OK)
		return st;
	/* scale holds the running maximum until the end. */
	memcpy(q->min, rv_row(x, 0), dim * sizeof(float));
	memcpy(q->scale, rv_row(x, 0), dim * sizeof(float));
	for (size_t i = 1; i < x->n; i++) {
		const float *v = rv_row(x, i);
		for (size_t d = 0; d < dim; d++) {
			q->min[d] = v[d] < q->min[d] ? v[d] : q->min[d];
			q->scale[d] = v[d] > q->scale[d] ? v[d] : q->scale[d];
		}
	}
	for (size_t d = 0; d < dim; d++) {
		float s = (q->scale[d] - q->min[d]) / 255.0f;
		/* A constant dimension encodes every trained value as -128; any
		 * positive scale reproduces it, and 1 keeps the math finite.
		 * A range so wide that max - min overflows is rejected. */
		if (!isfinite(s)) {
			rv_sq8_free(q);
			return rv_err_set(err, RV_EINVAL, "sq8: dimension %zu range [%g, %g] is too wide for float", d,
					  (double)q->min[d], (double)q->scale[d]);
		}
		q->scale[d] = s > 0 ? s : 1.0f;
	}
	*out = q;
	return RV_OK;
}

rv_status rv_sq8_train(rv_sq8 **out, const float *x, size_t n, size_t dim, const rv_alloc *a, rv_err *err)
{
	rv_rows rows = { x, NULL, n, dim };
	return rv_sq8_train_rows(out, &rows, a, err);
}

void rv_sq8_free(rv_sq8 *q)
{
	if (!q)
		return;
	rv_dealloc(q->a, q->min);
	rv_dealloc(q->a, q);
}

size_t rv_sq8_dim(const rv_sq8 *q) { return q->dim; }
size_t rv_sq8_code_size(const rv_sq8 *q) { return q->dim + 4; }

/* Rounding to nearest, ties to even, of v in [0, 255]: adding and
 * subtracting 1.5 * 2^23 leaves the integer part in float's last place,
 * which is what rintf does in the default rounding mode, but as two plain
 * additions the compiler can vectorise. */
#define ROUND_MAGIC 12582912.0f

/* Levels v_d = clamp(round((x_d - min_d) / scale_d), 0, 255) into out as
 * v_d ^ flip (flip 0x80: the int8 code v_d - 128; 0: the level itself);
 * returns the decoded vector's squared norm. */
static float encode_levels(const rv_sq8 *q, const float *x, uint8_t *out, uint8_t flip)
{
	const float *min = q->min, *scale = q->scale;
	size_t dim = q->dim;
	/* Eight partial sums: a single running sum would keep the loop
	 * scalar (floating-point addition does not reassociate). */
	double part[8] = { 0 };
	size_t d = 0;
	for (; d + 8 <= dim; d += 8) {
		for (size_t j = 0; j < 8; j++) {
			float v = (x[d + j] - min[d + j]) / scale[d + j];
			/* !(v > 0) also catches NaN. */
			v = !(v > 0) ? 0.0f : v > 255.0f ? 255.0f : v;
			v = (v + ROUND_MAGIC) - ROUND_MAGIC;
			out[d + j] = (uint8_t)((unsigned)v ^ flip);
			float back = min[d + j] + scale[d + j] * v;
			part[j] += (double)back * back;
		}
	}
	for (; d < dim; d++) {
		float v = (x[d] - min[d]) / scale[d];
		v = !(v > 0) ? 0.0f : v > 255.0f ? 255.0f : v;
		v = (v + ROUND_MAGIC) - ROUND_MAGIC;
		out[d] = (uint8_t)((unsigned)v ^ flip);
		float back = min[d] + scale[d] * v;
		part[0] += (double)back * back;
	}
	double norm = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
	return (float)norm;
}

float rv_sq8_encode_int8(const rv_sq8 *q, const float *x, int8_t *code)
{
	return encode_levels(q, x, (uint8_t *)code, 0x80);
}

float rv_sq8_encode_levels(const rv_sq8 *q, const float *x, uint8_t *levels)
{
	return encode_levels(q, x, levels, 0);
}

void rv_sq8_encode(const rv_sq8 *q, const float *x, uint8_t *code)
{
	float nf = rv_sq8_encode_int8(q, x, (int8_t *)code);
	uint32_t bits;
	memcpy(&bits, &nf, 4);
	rv_put_u32(code + q->dim, bits);
}

void rv_sq8_decode(const rv_sq8 *q, const uint8_t *code, float *x)
{
	for (size_t d = 0; d < q->dim; d++)
		x[d] = q->min[d] + q->scale[d] * (float)((int)(int8_t)code[d] + 128);
}

rv_status rv_sq8_query_new(rv_sq8_query **out, const rv_sq8 *q, rv_err *err)
{
	*out = NULL;
	rv_sq8_query *qq = rv_calloc(q->a, 1, sizeof *qq);
	if (!qq)
		return rv_err_nomem(err);
	qq->w = rv_calloc(q->a, q->dim, 1);
	if (!qq->w) {
		rv_dealloc(q->a, qq);
		return rv_err_nomem(err);
	}
	qq->q = q;
	qq->dim = q->dim;
	qq->metric = RV_METRIC_L2;
	qq->i8dot = rv_simd()->i8dot;
	qq->u8i8dot = rv_simd()->u8i8dot;
	qq->alpha = 1;
	*out = qq;
	return RV_OK;
}

rv_status rv_sq8_query_set(rv_sq8_query *qq, const float *query, rv_metric metric, rv_err *err)
{
	const rv_sq8 *q = qq->q;
	if (metric != RV_METRIC_L2 && metric != RV_METRIC_IP && metric != RV_METRIC_COSINE)
		return rv_err_set(err, RV_EINVAL, "sq8: unknown metric %d", (int)metric);
	/* Eight partial sums per total, so the loops vectorise (see
	 * encode_levels). */
	double kp[8] = { 0 }, np[8] = { 0 };
	float wmax = 0;
	size_t dim = q->dim;
	for (size_t d = 0; d < dim; d++)
		if (!isfinite(query[d]))
			return rv_err_set(err, RV_EINVAL, "sq8: query has non-finite value %g at dimension %zu",
					  (double)query[d], d);
	for (size_t d = 0; d < dim; d++) {
		kp[d & 7] += (double)query[d] * ((double)q->min[d] + 128.0 * q->scale[d]);
		np[d & 7] += (double)query[d] * query[d];
		float w = fabsf(query[d] * q->scale[d]);
		wmax = w > wmax ? w : wmax;
	}
	double k = ((kp[0] + kp[1]) + (kp[2] + kp[3])) + ((kp[4] + kp[5]) + (kp[6] + kp[7]));
	double qnorm = ((np[0] + np[1]) + (np[2] + np[3])) + ((np[4] + np[5]) + (np[6] + np[7]));
	/* An all-zero weight vector (zero query) would divide by zero. */
	float alpha = wmax > 0 ? wmax / 127.0f : 1.0f, inv = 1.0f / alpha;
	int32_t wsum = 0;
	for (size_t d = 0; d < dim; d++) {
		float w = query[d] * q->scale[d] * inv;
		w = w > 127.0f ? 127.0f : w < -127.0f ? -127.0f : w;
		w = (w + ROUND_MAGIC) - ROUND_MAGIC;
		qq->w[d] = (int8_t)(int)w;
		wsum += (int32_t)w;
	}
	qq->metric = metric;
	qq->k = (float)k;
	/* Against levels v = c + 128: w . c = w . v - 128 sum w. */
	qq->k_lev = (float)(k - 128.0 * (double)alpha * (double)wsum);
	qq->alpha = alpha;
	qq->qnorm = (float)qnorm;
	return RV_OK;
}

void rv_sq8_query_free(rv_sq8_query *qq)
{
	if (!qq)
		return;
	rv_dealloc(qq->q->a, qq->w);
	rv_dealloc(qq->q->a, qq);
}

float rv_sq8_distance(const rv_sq8_query *qq, const uint8_t *code)
{
	size_t dim = qq->q->dim;
	float dot = qq->k + qq->alpha * (float)qq->i8dot(qq->w, (const int8_t *)code, dim);
	switch (qq->metric) {
	case RV_METRIC_IP:
		return -dot;
	case RV_METRIC_COSINE:
		return 1.0f - dot;
	default: {
		uint32_t bits = rv_get_u32(code + dim);
		float norm;
		memcpy(&norm, &bits, 4);
		return qq->qnorm - 2.0f * dot + norm;
	}
	}
}

void rv_sq8_to_bytes(rv_buf *out, const rv_sq8 *q)
{
	size_t start = out->len;
	rv_quant_put_header(out, magic, q->dim);
	for (size_t d = 0; d < q->dim; d++)
		rv_buf_f32(out, q->min[d]);
	for (size_t d = 0; d < q->dim; d++)
		rv_buf_f32(out, q->scale[d]);
	rv_quant_put_trailer(out, start);
}

rv_status rv_sq8_from_bytes(rv_sq8 **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err)
{
	*out = NULL;
	rv_reader r;
	size_t dim = 0;
	rv_status st = rv_quant_get_header(&r, &dim, bytes, len, magic, "sq8", err);
	if (st != RV_OK)
		return st;
	if (rv_reader_left(&r) != 8 * dim)
		return rv_err_set(err, RV_ECORRUPT, "sq8 parameters: %zu bytes of ranges for dim %zu, expected %zu",
				  rv_reader_left(&r), dim, 8 * dim);
	rv_sq8 *q;
	if ((st = sq8_alloc(&q, dim, a, err)) != RV_OK)
		return st;
	for (size_t d = 0; d < dim; d++)
		q->min[d] = rv_reader_f32(&r);
	for (size_t d = 0; d < dim; d++)
		q->scale[d] = rv_reader_f32(&r);
	for (size_t d = 0; d < dim; d++) {
		float top = q->min[d] + 255.0f * q->scale[d];
		if (!isfinite(q->min[d]) || !(q->scale[d] > 0) || !isfinite(top)) {
			st = rv_err_set(err, RV_ECORRUPT, "sq8 parameters: dimension %zu has min %g scale %g", d,
					(double)q->min[d], (double)q->scale[d]);
			rv_sq8_free(q);
			return st;
		}
	}
	*out = q;
	return RV_OK;
}
