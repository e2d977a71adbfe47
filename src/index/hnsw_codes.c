/*
 * hnsw_codes.c - the quantized side of the index: one code per node, so
 * that a search walks the graph reading a fraction of the bytes it would
 * read from the float vectors, then re-ranks its candidates exactly
 * (rv_hnsw_search_v2 in hnsw_search.c). Three kinds of code, behind one
 * distance switch (rv_hnsw_code_dist in hnsw_int.h):
 *
 *   SQ8     dim levels, the int8 code + 128 as unsigned bytes (the VNNI
 *           kernel then needs one instruction per 64 bytes, not two), and
 *           the decoded vector's squared norm for L2 only (IP and cosine
 *           never read it, so their rows leave it out)
 *   BINARY  one bit per dimension; the distance is the Hamming distance
 *           to the query's own code, a coarse angle estimate
 *   PQ      one byte per sub-space; the distance is a sum of lookups in
 *           the query's tables
 *
 * Layout: row `slot` of a single array, so the traversal can prefetch a
 * row by its address alone. Rows are padded to whole 64-byte lines when
 * that wastes at most an eighth of the row (a 784-byte SQ8 row becomes
 * 832: 13 lines either way, and no row then straddles one more line than
 * it must), else only to 4 bytes (a 132-byte L2 row of 128 dims stays 132:
 * padding it to 192 would cost 45% more memory for the same three lines
 * touched on average). The rows follow the graph's capacity
 * (rv_hnsw_reserve grows both), and a node's row is written by
 * rv_hnsw_link before the node is published, so a search never meets a
 * node without its code. A deleted node's row is left as it is: lv says
 * absent and no traversal reads it; a re-insert rewrites it.
 *
 * The index owns a copy of the quantizer (a round trip through its byte
 * form, on the index's allocator), so the caller's quantizer may go away
 * and a re-enable with another one cannot leave scratches pointing at a
 * freed quantizer: every pooled scratch drops its query form first.
 *
 * Enabling encodes every node, on several threads for a large graph, or
 * copies the codes the caller has stored (a collection stores them in its
 * file: at open, copying 1M x 128 SQ8 codes costs a fraction of encoding
 * them again).
 *
 * Graph construction (insert, delete repair, orphan attachment) keeps
 * exact distances: the codes only speed up reads, never shape the graph.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "index/hnsw_int.h"

#define CODE_ALIGN 64
#define ENCODE_CHUNK 1024      /* slots a thread takes at a time */
#define ENCODE_PER_THREAD 8192 /* fewer nodes than this per thread: fewer threads */

/* Rows of `stride` bytes for `rows` slots, 64-byte aligned inside *raw.
 * NULL on overflow or ENOMEM. */
static uint8_t *rows_alloc(const rv_alloc *a, size_t rows, size_t stride, uint8_t **raw)
{
	size_t bytes;
	*raw = NULL;
	if (!rv_mul_ok(rows, stride, &bytes) || bytes > SIZE_MAX - CODE_ALIGN)
		return NULL;
	*raw = rv_malloc(a, bytes + CODE_ALIGN);
	if (!*raw)
		return NULL;
	uintptr_t p = (uintptr_t)*raw;
	return *raw + ((CODE_ALIGN - p % CODE_ALIGN) % CODE_ALIGN);
}

/* Bytes of a row in use for quantizer q under metric m. */
static size_t row_len(const rv_quantizer *q, rv_metric m)
{
	if (q->kind == RV_QUANT_SQ8)
		return rv_sq8_dim(q->sq8) + (m == RV_METRIC_L2 ? 4 : 0);
	return rv_quantizer_code_size(q);
}

/* The row stride for rows of len bytes (see the top). */
static size_t row_stride(size_t len)
{
	size_t lines = (len + CODE_ALIGN - 1) / CODE_ALIGN * CODE_ALIGN;
	if ((lines - len) * 8 <= len)
		return lines;
	return (len + 3) / 4 * 4;
}

/* Encode x into a row: the quantizer's code, but SQ8 as levels (see the
 * top) with the norm only when the metric reads it. */
static void encode_row(const rv_quantizer *q, bool l2, const float *x, uint8_t *row)
{
	if (q->kind == RV_QUANT_SQ8) {
		float norm = rv_sq8_encode_levels(q->sq8, x, row);
		if (l2) {
			uint32_t bits;
			memcpy(&bits, &norm, 4);
			rv_put_u32(row + rv_sq8_dim(q->sq8), bits);
		}
		return;
	}
	rv_quantizer_encode(q, x, row);
}

bool rv_hnsw_codes_reserve(rv_hnsw *h, uint32_t need)
{
	if (h->qz.kind == RV_QUANT_NONE || need <= h->codes_cap)
		return true;
	/* Not a realloc: the aligned start may sit at another offset in the
	 * new block, so the rows are copied across. */
	uint8_t *raw, *codes = rows_alloc(h->a, need, h->code_stride, &raw);
	if (!codes)
		return false;
	memcpy(codes, h->codes, (size_t)h->codes_cap * h->code_stride);
	rv_dealloc(h->a, h->codes_raw);
	h->codes_raw = raw;
	h->codes = codes;
	h->codes_cap = need;
	return true;
}

void rv_hnsw_codes_encode_slot(rv_hnsw *h, uint32_t slot)
{
	if (h->qz.kind != RV_QUANT_NONE)
		encode_row(&h->qz, h->is_l2, h->vecs->ptr[slot], h->codes + (size_t)slot * h->code_stride);
}

/* Heap bytes of a scratch's query form for the current kind. */
static size_t query_bytes(const rv_hnsw *h)
{
	switch (h->qz.kind) {
	case RV_QUANT_SQ8: return 64 + (size_t)h->p.dim; /* header and dim int8 weights */
	case RV_QUANT_BINARY: return h->code_len;
	case RV_QUANT_PQ: return rv_pq_table_size(h->qz.pq) * sizeof(float);
	default: return 0;
	}
}

void rv_hnsw_codes_scratch_clear(const rv_hnsw *h, rv_hnsw_scratch *s)
{
	if (!s->sq && !s->qcode && !s->tables)
		return;
	rv_sq8_query_free(s->sq);
	rv_dealloc(h->a, s->qcode);
	rv_dealloc(h->a, s->tables);
	s->sq = NULL;
	s->qcode = NULL;
	s->tables = NULL;
	s->bytes -= query_bytes(h);
}

rv_status rv_hnsw_codes_begin(const rv_hnsw *h, rv_hnsw_scratch *s, const float *query, rv_err *err)
{
	rv_status st = RV_OK;
	switch (h->qz.kind) {
	case RV_QUANT_SQ8:
		if (!s->sq) {
			if ((st = rv_sq8_query_new(&s->sq, h->qz.sq8, err)) != RV_OK)
				return st;
			s->bytes += query_bytes(h);
		}
		if ((st = rv_sq8_query_set(s->sq, query, h->p.metric, err)) != RV_OK)
			return st;
		break;
	case RV_QUANT_BINARY:
		if (!s->qcode) {
			if (!(s->qcode = rv_malloc(h->a, h->code_len)))
				return rv_err_nomem(err);
			s->bytes += query_bytes(h);
		}
		for (uint32_t d = 0; d < h->p.dim; d++)
			if (!isfinite(query[d]))
				return rv_err_set(err, RV_EINVAL, "hnsw search: query has non-finite value %g at dimension %u",
						  (double)query[d], d);
		rv_bq_encode(h->qz.bq, query, s->qcode);
		break;
	case RV_QUANT_PQ:
		if (!s->tables) {
			if (!(s->tables = rv_malloc(h->a, query_bytes(h))))
				return rv_err_nomem(err);
			s->bytes += query_bytes(h);
		}
		for (uint32_t d = 0; d < h->p.dim; d++)
			if (!isfinite(query[d]))
				return rv_err_set(err, RV_EINVAL, "hnsw search: query has non-finite value %g at dimension %u",
						  (double)query[d], d);
		if ((st = rv_pq_tables(h->qz.pq, query, h->p.metric, s->tables, err)) != RV_OK)
			return st;
		break;
	default:
		return rv_err_set(err, RV_EINVAL, "hnsw search: no codes are enabled");
	}
	s->approx = true;
	return RV_OK;
}

/* Drop every pooled scratch's query form (all scratches are in the pool:
 * the caller excludes searches). */
static void clear_pool(rv_hnsw *h)
{
	pthread_mutex_lock(&h->pool_mu);
	for (size_t i = 0; i < h->pool_n; i++)
		rv_hnsw_codes_scratch_clear(h, h->pool[i]);
	pthread_mutex_unlock(&h->pool_mu);
}

/* ---- enabling: every node's row, on threads --------------------------- */

typedef struct fill_ctx {
	const rv_hnsw *h;
	const rv_quantizer *q;
	uint8_t *codes;
	size_t len, stride;
	rv_hnsw_code_fn stored;
	void *ctx;
	_Atomic uint32_t next; /* first slot of the next chunk */
} fill_ctx;

static void fill_worker(void *arg, unsigned t)
{
	fill_ctx *c = arg;
	const rv_hnsw *h = c->h;
	const float *const *vp = h->vecs->ptr;
	bool l2 = h->is_l2;
	/* Stored SQ8 codes are in the int8 form: levels flip the sign bit of
	 * the first dim bytes. */
	size_t flip = c->q->kind == RV_QUANT_SQ8 ? h->p.dim : 0;
	for (;;) {
		uint32_t lo = atomic_fetch_add(&c->next, ENCODE_CHUNK);
		if (lo >= h->cap)
			break;
		uint32_t hi = h->cap - lo < ENCODE_CHUNK ? h->cap : lo + ENCODE_CHUNK;
		for (uint32_t s = lo; s < hi; s++) {
			if (!rv_hnsw_lv(h, s))
				continue;
			uint8_t *row = c->codes + (size_t)s * c->stride;
			const uint8_t *have = c->stored ? c->stored(c->ctx, s) : NULL;
			if (!have) {
				encode_row(c->q, l2, vp[s], row);
				continue;
			}
			memcpy(row, have, c->len);
			for (size_t d = 0; d < flip; d++)
				row[d] ^= 0x80;
		}
	}
}

rv_status rv_hnsw_enable_codes(rv_hnsw *h, const rv_quantizer *q, rv_hnsw_code_fn stored, void *ctx,
			       unsigned threads, rv_err *err)
{
	rv_status st = RV_OK;
	rv_quantizer own = { RV_QUANT_NONE, NULL, NULL, NULL };
	uint8_t *raw = NULL;
	if (!h || !q) {
		st = rv_err_set(err, RV_EINVAL, "hnsw enable codes: NULL argument");
		goto done;
	}
	if (q->kind == RV_QUANT_NONE) {
		st = rv_err_set(err, RV_EINVAL, "hnsw enable codes: the quantizer is empty");
		goto done;
	}
	if (rv_quantizer_dim(q) != h->p.dim) {
		st = rv_err_set(err, RV_EINVAL,
				"hnsw enable codes: dimension mismatch: index has %u, quantizer has %zu", h->p.dim,
				rv_quantizer_dim(q));
		goto done;
	}
	if ((st = rv_quantizer_copy(&own, q, h->a, err)) != RV_OK)
		goto done;

	size_t len = row_len(&own, h->p.metric), stride = row_stride(len);
	/* At least one row, so that codes is never NULL while on. */
	uint8_t *codes = rows_alloc(h->a, h->cap ? h->cap : 1, stride, &raw);
	if (!codes) {
		st = rv_err_nomem(err);
		goto done;
	}
	fill_ctx c = { .h = h, .q = &own, .codes = codes, .len = len, .stride = stride, .stored = stored,
		       .ctx = ctx };
	atomic_init(&c.next, 0);
	unsigned nt = threads ? threads : 1;
	if ((uint64_t)nt * ENCODE_PER_THREAD > h->count)
		nt = (unsigned)(h->count / ENCODE_PER_THREAD) + 1;
	if (nt > 1)
		rv_parallel(nt, fill_worker, &c);
	else
		fill_worker(&c, 0);

	/* Nothing can fail from here: swap the new state in. */
	rv_hnsw_disable_codes(h);
	h->qz = own;
	h->codes_raw = raw;
	h->codes = codes;
	h->code_len = len;
	h->code_stride = stride;
	h->codes_cap = h->cap ? h->cap : 1;
	h->hamming = rv_simd()->hamming;
	h->pq_adc = rv_simd()->pq_adc;
	memset(&own, 0, sizeof own);
	raw = NULL;
done:
	rv_dealloc(h ? h->a : NULL, raw);
	rv_quantizer_free(&own);
	return st;
}

void rv_hnsw_disable_codes(rv_hnsw *h)
{
	if (!h || h->qz.kind == RV_QUANT_NONE)
		return;
	/* The scratches' query forms belong to this quantizer. */
	clear_pool(h);
	rv_dealloc(h->a, h->codes_raw);
	rv_quantizer_free(&h->qz);
	h->codes_raw = NULL;
	h->codes = NULL;
	h->code_len = 0;
	h->code_stride = 0;
	h->codes_cap = 0;
}

rv_quant rv_hnsw_codes_kind(const rv_hnsw *h) { return h ? h->qz.kind : RV_QUANT_NONE; }

const rv_quantizer *rv_hnsw_quantizer(const rv_hnsw *h)
{
	return h && h->qz.kind != RV_QUANT_NONE ? &h->qz : NULL;
}

size_t rv_hnsw_code_bytes(const rv_hnsw *h) { return h ? h->code_stride : 0; }

size_t rv_hnsw_code_of(const rv_hnsw *h, uint32_t slot, uint8_t *out)
{
	if (!h || h->qz.kind == RV_QUANT_NONE || slot >= h->cap || !rv_hnsw_lv(h, slot))
		return 0;
	memcpy(out, rv_hnsw_code(h, slot), h->code_len);
	if (h->qz.kind == RV_QUANT_SQ8)
		for (size_t d = 0; d < h->p.dim; d++)
			out[d] ^= 0x80;
	return h->code_len;
}

uint64_t rv_hnsw_codes_memory(const rv_hnsw *h)
{
	if (!h || h->qz.kind == RV_QUANT_NONE)
		return 0;
	uint64_t bytes = (uint64_t)h->codes_cap * h->code_stride + CODE_ALIGN;
	/* The quantizer copy: its parameters (min and scale, means, or the
	 * centroids with their transpose and norms). */
	switch (h->qz.kind) {
	case RV_QUANT_SQ8: bytes += 8 * (uint64_t)h->p.dim; break;
	case RV_QUANT_BINARY: bytes += 4 * (uint64_t)h->p.dim; break;
	default: {
		size_t dsub;
		rv_pq_centroids(h->qz.pq, &dsub);
		uint64_t m = rv_pq_m(h->qz.pq);
		bytes += 4 * (2 * m * 256 * dsub + m * 256);
		break;
	}
	}
	return bytes;
}

/* ---- the first cut's SQ8 names ----------------------------------------- */

rv_status rv_hnsw_enable_sq8(rv_hnsw *h, const rv_sq8 *q, rv_err *err)
{
	if (!q)
		return rv_err_set(err, RV_EINVAL, "hnsw enable sq8: NULL argument");
	rv_quantizer w = { RV_QUANT_SQ8, (rv_sq8 *)q, NULL, NULL };
	return rv_hnsw_enable_codes(h, &w, NULL, NULL, 1, err);
}

void rv_hnsw_disable_sq8(rv_hnsw *h) { rv_hnsw_disable_codes(h); }

bool rv_hnsw_sq8_enabled(const rv_hnsw *h) { return h && h->qz.kind == RV_QUANT_SQ8; }

size_t rv_hnsw_sq8_code_bytes(const rv_hnsw *h) { return rv_hnsw_sq8_enabled(h) ? h->code_stride : 0; }
