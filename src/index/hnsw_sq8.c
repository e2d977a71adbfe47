/*
 * hnsw_sq8.c - the SQ8 side of the index: one int8 code per node, so that
 * a search walks the graph reading about a quarter of the bytes it would
 * read from the float vectors, then re-ranks its candidates exactly
 * (rv_hnsw_search_v2 in hnsw_search.c).
 *
 * Layout: row `slot` of a single array, 64-byte aligned and padded to a
 * whole number of cache lines, so a code never shares a line with its
 * neighbour's and the traversal can prefetch a row by its address alone.
 * The rows follow the graph's capacity (rv_hnsw_reserve grows both), and a
 * node's row is written by rv_hnsw_link before the node is published, so a
 * search never meets a node without its code. A deleted node's row is left
 * as it is: lv says absent and no traversal reads it; a re-insert rewrites
 * it.
 *
 * The index owns a copy of the quantizer (a round trip through its byte
 * form, on the index's allocator), so the caller's quantizer may go away
 * and a re-enable with another one cannot leave scratches pointing at a
 * freed quantizer: every pooled scratch drops its query object first.
 *
 * Graph construction (insert, delete repair, orphan attachment) keeps
 * exact distances: the codes only speed up reads, never shape the graph.
 */
#include <stdint.h>
#include <string.h>

#include "index/hnsw_int.h"

#define CODE_ALIGN 64

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

bool rv_hnsw_sq8_reserve(rv_hnsw *h, uint32_t need)
{
	if (!h->sq8 || need <= h->codes_cap)
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

void rv_hnsw_sq8_encode_slot(rv_hnsw *h, uint32_t slot)
{
	if (h->sq8)
		rv_sq8_encode(h->sq8, h->vecs->ptr[slot], h->codes + (size_t)slot * h->code_stride);
}

size_t rv_hnsw_sq8_query_bytes(const rv_hnsw *h)
{
	/* The query object: a small header and dim int8 weights. */
	return 64 + (size_t)h->p.dim;
}

void rv_hnsw_sq8_scratch_clear(const rv_hnsw *h, rv_hnsw_scratch *s)
{
	if (!s->sq)
		return;
	rv_sq8_query_free(s->sq);
	s->sq = NULL;
	s->bytes -= rv_hnsw_sq8_query_bytes(h);
}

/* Drop every pooled scratch's query object (all scratches are in the pool:
 * the caller excludes searches). */
static void clear_pool(rv_hnsw *h)
{
	pthread_mutex_lock(&h->pool_mu);
	for (size_t i = 0; i < h->pool_n; i++)
		rv_hnsw_sq8_scratch_clear(h, h->pool[i]);
	pthread_mutex_unlock(&h->pool_mu);
}

rv_status rv_hnsw_enable_sq8(rv_hnsw *h, const rv_sq8 *q, rv_err *err)
{
	rv_status st = RV_OK;
	rv_sq8 *own = NULL;
	uint8_t *raw = NULL;
	rv_buf b;
	rv_buf_init(&b, h ? h->a : NULL);
	if (!h || !q) {
		st = rv_err_set(err, RV_EINVAL, "hnsw enable sq8: NULL argument");
		goto done;
	}
	if (rv_sq8_dim(q) != h->p.dim) {
		st = rv_err_set(err, RV_EINVAL,
				"hnsw enable sq8: dimension mismatch: index has %u, quantizer has %zu",
				h->p.dim, rv_sq8_dim(q));
		goto done;
	}
	rv_sq8_to_bytes(&b, q);
	if (b.failed) {
		st = rv_err_nomem(err);
		goto done;
	}
	if ((st = rv_sq8_from_bytes(&own, b.data, b.len, h->a, err)) != RV_OK)
		goto done;

	size_t stride = (rv_sq8_code_size(own) + CODE_ALIGN - 1) / CODE_ALIGN * CODE_ALIGN;
	uint8_t *codes = rows_alloc(h->a, h->cap, stride, &raw);
	if (!codes) {
		st = rv_err_nomem(err);
		goto done;
	}
	const float *const *vp = h->vecs->ptr;
	for (uint32_t s = 0; s < h->cap; s++)
		if (rv_hnsw_lv(h, s))
			rv_sq8_encode(own, vp[s], codes + (size_t)s * stride);

	/* Nothing can fail from here: swap the new state in. */
	rv_hnsw_disable_sq8(h);
	h->sq8 = own;
	h->codes_raw = raw;
	h->codes = codes;
	h->code_stride = stride;
	h->codes_cap = h->cap;
	own = NULL;
	raw = NULL;
done:
	rv_dealloc(h ? h->a : NULL, raw);
	rv_sq8_free(own);
	rv_buf_free(&b);
	return st;
}

void rv_hnsw_disable_sq8(rv_hnsw *h)
{
	if (!h || !h->sq8)
		return;
	/* The scratches' query objects belong to this quantizer. */
	clear_pool(h);
	rv_dealloc(h->a, h->codes_raw);
	rv_sq8_free(h->sq8);
	h->sq8 = NULL;
	h->codes_raw = NULL;
	h->codes = NULL;
	h->code_stride = 0;
	h->codes_cap = 0;
}

bool rv_hnsw_sq8_enabled(const rv_hnsw *h) { return h && h->sq8; }

size_t rv_hnsw_sq8_code_bytes(const rv_hnsw *h) { return h && h->sq8 ? h->code_stride : 0; }

uint64_t rv_hnsw_sq8_memory(const rv_hnsw *h)
{
	if (!h->sq8)
		return 0;
	/* The copy of the quantizer holds min and scale per dimension. */
	return (uint64_t)h->codes_cap * h->code_stride + CODE_ALIGN + 8 * (uint64_t)h->p.dim;
}
