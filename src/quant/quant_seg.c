/*
 * quant_seg.c - a quantizer of any kind behind one tagged struct, as a
 * collection holds it, and the codec of the collection's QUANT segment
 * payloads (layouts in quant.h and docs/FORMAT.md).
 *
 * The collection stores its trained quantizer in a QUANT segment of kind
 * 1: a small header (which kind, dim, code size, how many vectors it was
 * trained on) framing the quantizer's own serialised form, which carries
 * its own magic, version and checksum. The codes are stored too, in QUANT
 * segments of kind 2 (runs of slots, like VEC segments): copying them at
 * open costs a fraction of encoding every vector again (docs/QUANT.md has
 * the figures; for PQ, which searches 256 centroids per sub-space, a
 * million vectors would take seconds).
 *
 * Everything parsed here comes from the file and is untrusted: lengths are
 * checked before use, with the offset of the field named in the message;
 * the quantizer blob goes through the quantizers' own strict parsers.
 */
#include "quant/quant_int.h"

const char *rv_quant_name(rv_quant q)
{
	switch (q) {
	case RV_QUANT_NONE: return "none";
	case RV_QUANT_SQ8: return "sq8";
	case RV_QUANT_BINARY: return "binary";
	case RV_QUANT_PQ: return "pq";
	}
	return "unknown";
}

/* ======================================================================
 * The tagged quantizer
 * ==================================================================== */

static rv_status train(rv_quantizer *out, rv_quant kind, const rv_rows *x, size_t pq_m, unsigned threads,
		       const rv_alloc *a, rv_err *err)
{
	memset(out, 0, sizeof *out);
	rv_status st;
	switch (kind) {
	case RV_QUANT_SQ8:
		st = rv_sq8_train_rows(&out->sq8, x, a, err);
		break;
	case RV_QUANT_BINARY:
		st = rv_bq_train_rows(&out->bq, x, a, err);
		break;
	case RV_QUANT_PQ: {
		rv_pq_opts o = RV_PQ_OPTS_INIT;
		o.m = pq_m;
		o.iters = RV_QUANT_PQ_ITERS;
		o.seed = RV_QUANT_PQ_SEED;
		o.threads = threads;
		st = rv_pq_train_rows(&out->pq, x, &o, a, err);
		break;
	}
	default:
		return rv_err_set(err, RV_EINVAL, "quantizer: cannot train kind %d (%s)", (int)kind,
				  rv_quant_name(kind));
	}
	if (st == RV_OK)
		out->kind = kind;
	return st;
}

rv_status rv_quantizer_train(rv_quantizer *out, rv_quant kind, const float *x, size_t n, size_t dim,
			     size_t pq_m, unsigned threads, const rv_alloc *a, rv_err *err)
{
	rv_rows rows = { x, NULL, n, dim };
	return train(out, kind, &rows, pq_m, threads, a, err);
}

rv_status rv_quantizer_train_rows(rv_quantizer *out, rv_quant kind, const float *const *rows, size_t n,
				  size_t dim, size_t pq_m, unsigned threads, const rv_alloc *a, rv_err *err)
{
	rv_rows r = { NULL, rows, n, dim };
	if (!rows) {
		memset(out, 0, sizeof *out);
		return rv_err_set(err, RV_EINVAL, "quantizer: training rows are NULL");
	}
	return train(out, kind, &r, pq_m, threads, a, err);
}

void rv_quantizer_free(rv_quantizer *q)
{
	if (!q)
		return;
	rv_sq8_free(q->sq8);
	rv_bq_free(q->bq);
	rv_pq_free(q->pq);
	memset(q, 0, sizeof *q);
}

size_t rv_quantizer_dim(const rv_quantizer *q)
{
	switch (q->kind) {
	case RV_QUANT_SQ8: return rv_sq8_dim(q->sq8);
	case RV_QUANT_BINARY: return rv_bq_dim(q->bq);
	case RV_QUANT_PQ: return rv_pq_dim(q->pq);
	default: return 0;
	}
}

size_t rv_quantizer_code_size(const rv_quantizer *q)
{
	switch (q->kind) {
	case RV_QUANT_SQ8: return rv_sq8_code_size(q->sq8);
	case RV_QUANT_BINARY: return rv_bq_code_size(q->bq);
	case RV_QUANT_PQ: return rv_pq_code_size(q->pq);
	default: return 0;
	}
}

void rv_quantizer_encode(const rv_quantizer *q, const float *x, uint8_t *code)
{
	switch (q->kind) {
	case RV_QUANT_SQ8: rv_sq8_encode(q->sq8, x, code); break;
	case RV_QUANT_BINARY: rv_bq_encode(q->bq, x, code); break;
	case RV_QUANT_PQ: rv_pq_encode(q->pq, x, code); break;
	default: break;
	}
}

void rv_quantizer_to_bytes(rv_buf *out, const rv_quantizer *q)
{
	switch (q->kind) {
	case RV_QUANT_SQ8: rv_sq8_to_bytes(out, q->sq8); break;
	case RV_QUANT_BINARY: rv_bq_to_bytes(out, q->bq); break;
	case RV_QUANT_PQ: rv_pq_to_bytes(out, q->pq); break;
	default: break;
	}
}

rv_status rv_quantizer_from_bytes(rv_quantizer *out, rv_quant kind, const void *bytes, size_t len,
				  const rv_alloc *a, rv_err *err)
{
	memset(out, 0, sizeof *out);
	rv_status st;
	switch (kind) {
	case RV_QUANT_SQ8: st = rv_sq8_from_bytes(&out->sq8, bytes, len, a, err); break;
	case RV_QUANT_BINARY: st = rv_bq_from_bytes(&out->bq, bytes, len, a, err); break;
	case RV_QUANT_PQ: st = rv_pq_from_bytes(&out->pq, bytes, len, a, err); break;
	default:
		return rv_err_set(err, RV_ECORRUPT, "quantizer kind %d is not sq8 (1), binary (2) or pq (3)",
				  (int)kind);
	}
	if (st == RV_OK)
		out->kind = kind;
	return st;
}

rv_status rv_quantizer_copy(rv_quantizer *out, const rv_quantizer *q, const rv_alloc *a, rv_err *err)
{
	memset(out, 0, sizeof *out);
	if (q->kind == RV_QUANT_NONE)
		return RV_OK;
	rv_buf b;
	rv_buf_init(&b, a);
	rv_quantizer_to_bytes(&b, q);
	rv_status st = b.failed ? rv_err_nomem(err) : rv_quantizer_from_bytes(out, q->kind, b.data, b.len, a, err);
	rv_buf_free(&b);
	return st;
}

/* ======================================================================
 * QUANT segment payloads
 * ==================================================================== */

void rv_qseg_put_quantizer(rv_buf *out, const rv_quantizer *q, uint64_t sample)
{
	rv_buf_u32(out, RV_QSEG_QUANTIZER);
	rv_buf_u32(out, (uint32_t)q->kind);
	rv_buf_u32(out, (uint32_t)rv_quantizer_dim(q));
	rv_buf_u32(out, (uint32_t)rv_quantizer_code_size(q));
	rv_buf_u64(out, sample);
	size_t len_at = out->len;
	rv_buf_u64(out, 0); /* parameter bytes, patched below */
	size_t start = out->len;
	rv_quantizer_to_bytes(out, q);
	if (!out->failed)
		rv_put_u64(out->data + len_at, (uint64_t)(out->len - start));
}

void rv_qseg_put_codes_header(rv_buf *out, uint32_t first, uint32_t count, uint32_t code_bytes)
{
	rv_buf_u32(out, RV_QSEG_CODES);
	rv_buf_u32(out, first);
	rv_buf_u32(out, count);
	rv_buf_u32(out, code_bytes);
}

/* Code bytes a quantizer of kind and dim writes (pq: m is only known from
 * the parameters; any 1..dim passes here and rv_qseg_load checks it). */
static bool code_bytes_fit(rv_quant kind, uint32_t dim, uint32_t bytes)
{
	switch (kind) {
	case RV_QUANT_SQ8: return bytes == dim + 4;
	case RV_QUANT_BINARY: return bytes == 8 * ((dim + 63) / 64);
	case RV_QUANT_PQ: return bytes >= 1 && bytes <= dim;
	default: return false;
	}
}

rv_status rv_qseg_parse(rv_qseg *out, const uint8_t *p, size_t len, rv_err *err)
{
	memset(out, 0, sizeof *out);
	if (!p || len < 4)
		return rv_err_set(err, RV_ECORRUPT, "QUANT payload of %zu bytes has no kind", len);
	rv_reader r;
	rv_reader_init(&r, p, len);
	out->kind = rv_reader_u32(&r);
	if (out->kind == RV_QSEG_QUANTIZER) {
		uint32_t quant = rv_reader_u32(&r);
		out->dim = rv_reader_u32(&r);
		out->code_bytes = rv_reader_u32(&r);
		out->sample = rv_reader_u64(&r);
		uint64_t plen = rv_reader_u64(&r);
		if (r.bad)
			return rv_err_set(err, RV_ECORRUPT, "QUANT quantizer: header is %zu bytes, needs %d", len,
					  RV_QSEG_QUANTIZER_HEADER);
		if (quant < RV_QUANT_SQ8 || quant > RV_QUANT_PQ)
			return rv_err_set(err, RV_ECORRUPT,
					  "QUANT quantizer: kind %u at byte 4 is not sq8 (1), binary (2) or pq (3)",
					  quant);
		out->quant = (rv_quant)quant;
		if (out->dim < 1 || out->dim > RV_MAX_DIM)
			return rv_err_set(err, RV_ECORRUPT, "QUANT quantizer: dim %u at byte 8 out of range 1..%d",
					  out->dim, RV_MAX_DIM);
		if (!code_bytes_fit(out->quant, out->dim, out->code_bytes))
			return rv_err_set(err, RV_ECORRUPT,
					  "QUANT quantizer: %u code bytes at byte 12 do not fit %s of dim %u",
					  out->code_bytes, rv_quant_name(out->quant), out->dim);
		if (out->sample == 0)
			return rv_err_set(err, RV_ECORRUPT, "QUANT quantizer: trained on 0 vectors (byte 16)");
		if (plen != rv_reader_left(&r))
			return rv_err_set(err, RV_ECORRUPT,
					  "QUANT quantizer: %llu parameter bytes at byte 24, the payload has %zu",
					  (unsigned long long)plen, rv_reader_left(&r));
		out->params = p + RV_QSEG_QUANTIZER_HEADER;
		out->params_len = (size_t)plen;
		return RV_OK;
	}
	if (out->kind == RV_QSEG_CODES) {
		out->first = rv_reader_u32(&r);
		out->count = rv_reader_u32(&r);
		out->code_bytes = rv_reader_u32(&r);
		if (r.bad)
			return rv_err_set(err, RV_ECORRUPT, "QUANT codes: header is %zu bytes, needs %d", len,
					  RV_QSEG_CODES_HEADER);
		if (out->code_bytes < 1 || out->code_bytes > RV_MAX_DIM + 4)
			return rv_err_set(err, RV_ECORRUPT, "QUANT codes: %u code bytes at byte 12 out of range 1..%d",
					  out->code_bytes, RV_MAX_DIM + 4);
		if ((uint64_t)out->first + out->count > UINT32_MAX)
			return rv_err_set(err, RV_ECORRUPT, "QUANT codes: slots %u + %u at byte 4 overflow", out->first,
					  out->count);
		if ((uint64_t)out->count * out->code_bytes != rv_reader_left(&r))
			return rv_err_set(err, RV_ECORRUPT,
					  "QUANT codes: %u codes of %u bytes (byte 8) do not match the %zu bytes that follow",
					  out->count, out->code_bytes, rv_reader_left(&r));
		out->codes = p + RV_QSEG_CODES_HEADER;
		return RV_OK;
	}
	return rv_err_set(err, RV_ECORRUPT, "QUANT payload: kind %u at byte 0 is not 1 (quantizer) or 2 (codes)",
			  out->kind);
}

rv_status rv_qseg_load(rv_quantizer *out, const rv_qseg *s, const rv_alloc *a, rv_err *err)
{
	memset(out, 0, sizeof *out);
	if (s->kind != RV_QSEG_QUANTIZER)
		return rv_err_set(err, RV_EINVAL, "QUANT payload of kind %u holds no quantizer", s->kind);
	rv_err e = { { 0 } };
	rv_status st = rv_quantizer_from_bytes(out, s->quant, s->params, s->params_len, a, &e);
	if (st != RV_OK)
		return rv_err_set(err, st, "QUANT quantizer at byte %d: %s", RV_QSEG_QUANTIZER_HEADER, e.msg);
	if (rv_quantizer_dim(out) != s->dim || rv_quantizer_code_size(out) != s->code_bytes) {
		st = rv_err_set(err, RV_ECORRUPT,
				"QUANT quantizer: the parameters are for dim %zu with %zu code bytes, the header says "
				"dim %u with %u",
				rv_quantizer_dim(out), rv_quantizer_code_size(out), s->dim, s->code_bytes);
		rv_quantizer_free(out);
	}
	return st;
}
