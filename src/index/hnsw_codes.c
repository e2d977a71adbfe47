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
 * Layout: a node's code sits in its level-0 row, right after its list
 * (hnsw_int.h), so one address gives both: a neighbour scored by its code
 * has the head of its list fetched with it, for when the beam expands it.
 * Enabling codes lays every row out again at the wider stride (lists
 * copied, codes written) and dropping them lays the rows back, both under
 * the collection's exclusive lock; the rows then grow with the graph
 * (rv_hnsw_reserve). A node's code is written by rv_hnsw_link before the
 * node is published, so a search never meets a node without its code. A
 * deleted node's code is left as it is: lv says absent and no traversal
 * reads it; a re-insert rewrites it.
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

#define ENCODE_CHUNK 1024      /* slots a thread takes at a time */
#define ENCODE_PER_THREAD 8192 /* fewer nodes than this per thread: fewer threads */

/* Bytes of a code in use for quantizer q under metric m. */
static size_t row_len(const rv_quantizer *q, rv_metric m)
{
	if (q->kind == RV_QUANT_SQ8)
		return rv_sq8_dim(q->sq8) + (m == RV_METRIC_L2 ? 4 : 0);
	return rv_quantizer_code_size(q);
}

/* Encode x into row, a code's place: the quantizer's code, but SQ8 as levels (see the
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

void rv_hnsw_codes_encode_slot(rv_hnsw *h, uint32_t slot)
{
	if (h->qz.kind != RV_QUANT_NONE)
		encode_row(&h->qz, h->is_l2, h->vecs->ptr[slot], rv_hnsw_code(h, slot));
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

/* ---- laying the rows out: every node's list and code, on threads ------ */

typedef struct fill_ctx {
	const rv_hnsw *h;
	const rv_quantizer *q; /* NULL: lists only (codes dropped) */
	uint32_t *rows;        /* the new rows, zeroed */
	size_t stride;         /* their u32 stride */
	size_t len;            /* bytes of a code */
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
	size_t list_bytes = h->l0_list * sizeof(uint32_t);
	/* Stored SQ8 codes are in the int8 form: levels flip the sign bit of
	 * the first dim bytes. */
	size_t flip = c->q && c->q->kind == RV_QUANT_SQ8 ? h->p.dim : 0;
	for (;;) {
		uint32_t lo = atomic_fetch_add(&c->next, ENCODE_CHUNK);
		if (lo >= h->cap)
			break;
		uint32_t hi = h->cap - lo < ENCODE_CHUNK ? h->cap : lo + ENCODE_CHUNK;
		for (uint32_t s = lo; s < hi; s++) {
			uint32_t *row = c->rows + (size_t)s * c->stride;
			/* Every list, absent slots' too: their words stay
			 * counts within the maximum and slots below cap. */
			memcpy(row, h->l0 + (size_t)s * h->l0_stride, list_bytes);
			if (!c->q || !rv_hnsw_lv(h, s))
				continue;
			uint8_t *code = (uint8_t *)(row + h->l0_list);
			const uint8_t *have = c->stored ? c->stored(c->ctx, s) : NULL;
			if (!have) {
				encode_row(c->q, l2, vp[s], code);
				continue;
			}
			memcpy(code, have, c->len);
			for (size_t d = 0; d < flip; d++)
				code[d] ^= 0x80;
		}
	}
}

/* New rows for every slot at stride: the lists, and the codes of q (NULL:
 * none). The caller swaps them in. NULL on ENOMEM. */
static uint32_t *relayout(const rv_hnsw *h, const rv_quantizer *q, size_t stride, size_t len,
			  rv_hnsw_code_fn stored, void *ctx, unsigned threads, uint8_t **raw)
{
	/* At least one row, so that l0 is never NULL. */
	uint32_t *rows = rv_hnsw_rows_alloc(h, h->cap ? h->cap : 1, stride, raw);
	if (!rows)
		return NULL;
	fill_ctx c = { .h = h, .q = q, .rows = rows, .stride = stride, .len = len, .stored = stored,
		       .ctx = ctx };
	atomic_init(&c.next, 0);
	unsigned nt = threads ? threads : 1;
	if ((uint64_t)nt * ENCODE_PER_THREAD > h->count)
		nt = (unsigned)(h->count / ENCODE_PER_THREAD) + 1;
	if (nt > 1)
		rv_parallel(nt, fill_worker, &c);
	else
		fill_worker(&c, 0);
	return rows;
}

/* Put new rows in place of the old. */
static void swap_rows(rv_hnsw *h, uint32_t *rows, uint8_t *raw, size_t stride)
{
	rv_dealloc(h->a, h->l0_raw);
	h->l0_raw = raw;
	h->l0 = rows;
	h->l0_stride = stride;
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

	size_t len = row_len(&own, h->p.metric);
	size_t stride = rv_hnsw_row_words(h->l0_list * sizeof(uint32_t) + len);
	uint32_t *rows = relayout(h, &own, stride, len, stored, ctx, threads, &raw);
	if (!rows) {
		st = rv_err_nomem(err);
		goto done;
	}

	/* Nothing can fail from here: swap the new state in. The old
	 * quantizer goes (its scratch forms first), the rows change. */
	clear_pool(h);
	rv_quantizer_free(&h->qz);
	swap_rows(h, rows, raw, stride);
	h->qz = own;
	h->code_len = len;
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
	rv_quantizer_free(&h->qz);
	h->code_len = 0;
	/* The rows shrink back to the lists. Without the memory for that,
	 * the wide rows stay: correct, the code bytes unread. */
	size_t stride = rv_hnsw_row_words(h->l0_list * sizeof(uint32_t));
	uint8_t *raw;
	uint32_t *rows = relayout(h, NULL, stride, 0, NULL, NULL, 1, &raw);
	if (rows)
		swap_rows(h, rows, raw, stride);
}

rv_quant rv_hnsw_codes_kind(const rv_hnsw *h) { return h ? h->qz.kind : RV_QUANT_NONE; }

const rv_quantizer *rv_hnsw_quantizer(const rv_hnsw *h)
{
	return h && h->qz.kind != RV_QUANT_NONE ? &h->qz : NULL;
}

/* Bytes of a row beyond the list: the code and its share of padding. */
static size_t code_room(const rv_hnsw *h)
{
	if (h->qz.kind == RV_QUANT_NONE)
		return 0;
	return (h->l0_stride - h->l0_list) * sizeof(uint32_t);
}

size_t rv_hnsw_code_bytes(const rv_hnsw *h) { return h ? code_room(h) : 0; }

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

uint64_t rv_hnsw_quantizer_memory(const rv_hnsw *h)
{
	/* Its parameters: min and scale, means, or the centroids with their
	 * transpose and norms. */
	switch (h->qz.kind) {
	case RV_QUANT_SQ8: return 8 * (uint64_t)h->p.dim;
	case RV_QUANT_BINARY: return 4 * (uint64_t)h->p.dim;
	case RV_QUANT_PQ: {
		size_t dsub;
		rv_pq_centroids(h->qz.pq, &dsub);
		uint64_t m = rv_pq_m(h->qz.pq);
		return 4 * (2 * m * 256 * dsub + m * 256);
	}
	default: return 0;
	}
}

uint64_t rv_hnsw_codes_memory(const rv_hnsw *h)
{
	if (!h || h->qz.kind == RV_QUANT_NONE)
		return 0;
	return (uint64_t)h->cap * code_room(h) + rv_hnsw_quantizer_memory(h);
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

size_t rv_hnsw_sq8_code_bytes(const rv_hnsw *h) { return rv_hnsw_sq8_enabled(h) ? code_room(h) : 0; }
