/*
 * hnsw_search.c - graph traversal: the greedy descent through the upper
 * levels, the ef-bounded beam search of one level, and rv_hnsw_search.
 *
 * The beam search keeps two binary heaps in the scratch: a min-heap of
 * candidates still to expand and a max-heap of the best ef results (worst
 * at the root, so a full result set rejects a farther node in O(1)). A
 * node is visited once per traversal, tracked by an epoch stamp per slot
 * so that starting a traversal costs nothing.
 *
 * Filtering: with an accept callback, rejected nodes are still expanded
 * (they are routes through the graph) but only accepted ones enter the
 * results. As in hnswlib, the loop stops when the nearest unexpanded
 * candidate is farther than the worst result while the results are full;
 * with a selective filter the results fill late, so the traversal visits
 * more of the graph, which is what keeps filtered recall up.
 *
 * Every neighbour read is checked against lv (present, with a list at this
 * level), so edges left pointing to deleted slots are never followed and
 * never returned.
 *
 * SQ8 traversal (hnsw_sq8.c keeps the codes): the same walk, ranking nodes
 * by the code distance (rv_hnsw_node_dist, chosen by the scratch's approx
 * flag so inserts and deletes, which never set it, stay exact). The query
 * is folded into SQ8 form once per search, the beam is widened to
 * k * rerank, and the best k * rerank by code are re-ranked with the float
 * vectors, so the hits and their distances are exact.
 */
#include <math.h>
#include <string.h>

#include "index/hnsw_int.h"

void rv_hnsw_scratch_reset(rv_hnsw_scratch *s)
{
	/* On wrap, old stamps could equal the new epoch: clear them all. */
	if (++s->epoch == 0) {
		memset(s->mark, 0, s->mark_cap * sizeof *s->mark);
		s->epoch = 1;
	}
	s->cand_n = 0;
	s->res_n = 0;
}

/* The list of slot at level; under threads, a copy taken under its
 * stripe, since another thread may be rewriting it. */
static inline const uint32_t *read_list(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot,
					unsigned level, bool locked)
{
	const uint32_t *list = rv_hnsw_links(h, slot, level);
	if (!locked)
		return list;
	pthread_mutex_t *mu = rv_hnsw_stripe(h, slot);
	pthread_mutex_lock(mu);
	memcpy(s->nbuf, list, (size_t)(list[0] + 1) * sizeof *list);
	pthread_mutex_unlock(mu);
	return s->nbuf;
}

void rv_hnsw_greedy(const rv_hnsw *h, rv_hnsw_scratch *s, const float *q, unsigned level,
		    uint32_t skip, uint32_t *ep, float *ep_dist, bool locked)
{
	uint32_t cur = *ep;
	float cur_dist = *ep_dist;
	bool moved = true;
	while (moved) {
		moved = false;
		const uint32_t *list = read_list(h, s, cur, level, locked);
		uint32_t cnt = list[0];
		for (uint32_t j = 0; j < cnt; j++) {
			uint32_t n = list[1 + j];
			if (rv_hnsw_lv(h, n) <= level || n == skip)
				continue;
			float d = rv_hnsw_node_dist(h, s, q, n);
			if (d < cur_dist) {
				cur_dist = d;
				cur = n;
				moved = true;
			}
		}
	}
	*ep = cur;
	*ep_dist = cur_dist;
}

void rv_hnsw_seed(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t ep, float ep_dist,
		  rv_accept_fn accept, void *ctx)
{
	s->mark[ep] = s->epoch;
	rv_hnsw_minheap_push(s->cand, &s->cand_n, (rv_hnsw_cand){ ep_dist, ep });
	if (!accept || accept(ctx, ep))
		rv_hnsw_maxheap_push(s->res, &s->res_n, (rv_hnsw_cand){ ep_dist, ep });
}

/* Restore the min-heap property over cand[0..n) after arbitrary removals. */
static void min_heapify(rv_hnsw_cand *hp, size_t n)
{
	for (size_t start = n / 2; start-- > 0;) {
		rv_hnsw_cand x = hp[start];
		size_t i = start;
		for (;;) {
			size_t c = 2 * i + 1;
			if (c >= n)
				break;
			if (c + 1 < n && hp[c + 1].dist < hp[c].dist)
				c++;
			if (x.dist <= hp[c].dist)
				break;
			hp[i] = hp[c];
			i = c;
		}
		hp[i] = x;
	}
}

/* Make room for one more candidate. With full results, candidates farther
 * than the worst result can never be expanded (the loop stops before
 * them), so they are dropped first; that bounds the heap near ef without a
 * filter. Growing is the fallback (selective filters keep results short). */
static bool cand_room(const rv_hnsw *h, rv_hnsw_scratch *s, size_t ef, float worst)
{
	if (s->cand_n < s->cand_cap)
		return true;
	if (s->res_n == ef) {
		size_t keep = 0;
		for (size_t i = 0; i < s->cand_n; i++)
			if (s->cand[i].dist <= worst)
				s->cand[keep++] = s->cand[i];
		if (keep < s->cand_n) {
			s->cand_n = keep;
			min_heapify(s->cand, keep);
			return true;
		}
	}
	size_t old = s->cand_cap;
	void *p = s->cand;
	if (!rv_grow(h->a, &p, &s->cand_cap, old + 1, sizeof *s->cand))
		return false;
	s->cand = p;
	s->bytes += (s->cand_cap - old) * sizeof *s->cand;
	return true;
}

bool rv_hnsw_search_layer(const rv_hnsw *h, rv_hnsw_scratch *s, const float *q, unsigned level,
			  size_t ef, rv_accept_fn accept, void *ctx, bool locked, bool must_grow)
{
	const float *const *vp = h->vecs->ptr;
	uint32_t *mark = s->mark;
	const uint32_t epoch = s->epoch;
	float worst = s->res_n ? s->res[0].dist : INFINITY;
	uint32_t pending[2 * RV_HNSW_M_MAX];

	while (s->cand_n) {
		if (s->res_n == ef && s->cand[0].dist > worst)
			break;
		rv_hnsw_cand c = rv_hnsw_minheap_pop(s->cand, &s->cand_n);
		const uint32_t *list = read_list(h, s, c.slot, level, locked);
		uint32_t cnt = list[0];

		/* First pass: pick the unvisited live neighbours and start
		 * fetching their vectors, so the distance pass below finds
		 * them in cache instead of stalling on each in turn. */
		uint32_t nt = 0;
		for (uint32_t j = 0; j < cnt; j++) {
			uint32_t n = list[1 + j];
			if (mark[n] == epoch || rv_hnsw_lv(h, n) <= level)
				continue;
			mark[n] = epoch;
			pending[nt++] = n;
			if (s->approx) {
				/* Two lines of the code: the hardware prefetcher
				 * follows the rest of a contiguous row. */
				const uint8_t *row = rv_hnsw_code(h, n);
				RV_HNSW_PREFETCH(row);
				RV_HNSW_PREFETCH(row + 64);
			} else {
				RV_HNSW_PREFETCH(vp[n]);
			}
		}

		for (uint32_t j = 0; j < nt; j++) {
			uint32_t n = pending[j];
			float d = rv_hnsw_node_dist(h, s, q, n);
			if (s->res_n == ef && d >= worst)
				continue;
			if (!cand_room(h, s, ef, worst)) {
				if (must_grow)
					return false;
				continue;
			}
			rv_hnsw_minheap_push(s->cand, &s->cand_n, (rv_hnsw_cand){ d, n });
			if (accept && !accept(ctx, n))
				continue;
			rv_hnsw_maxheap_push(s->res, &s->res_n, (rv_hnsw_cand){ d, n });
			if (s->res_n > ef)
				rv_hnsw_maxheap_pop(s->res, &s->res_n);
			worst = s->res[0].dist;
		}
	}
	return true;
}

size_t rv_hnsw_drain_sorted(rv_hnsw_scratch *s)
{
	size_t n = s->res_n;
	/* Popping the max-heap yields farthest first: fill from the back. */
	for (size_t i = n; i-- > 0;)
		s->sel[i] = rv_hnsw_maxheap_pop(s->res, &s->res_n);
	return n;
}

/* Load the query into the scratch's SQ8 query object (made on first use,
 * kept with the scratch) and switch the traversal to codes. */
static rv_status approx_begin(const rv_hnsw *h, rv_hnsw_scratch *s, const float *query, rv_err *err)
{
	if (!s->sq) {
		rv_status st = rv_sq8_query_new(&s->sq, h->sq8, err);
		if (st != RV_OK)
			return st;
		s->bytes += rv_hnsw_sq8_query_bytes(h);
	}
	rv_status st = rv_sq8_query_set(s->sq, query, h->p.metric, err);
	if (st != RV_OK)
		return st;
	s->approx = true;
	return RV_OK;
}

rv_status rv_hnsw_search_v2(rv_hnsw_hit *hits, size_t cap, size_t *n, const rv_hnsw *h,
			    const float *query, size_t k, const rv_hnsw_search_opts *opts, rv_err *err)
{
	rv_status st = RV_OK;
	rv_hnsw_scratch *s = NULL;
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	if (n)
		*n = 0;
	if (!h || !query || !n || (!hits && k))
		return rv_err_set(err, RV_EINVAL, "hnsw search: NULL argument");
	if (opts) {
		if (opts->size < sizeof(size_t) || opts->size > sizeof o)
			return rv_err_set(err, RV_EINVAL, "hnsw search: options size %zu, expected %zu",
					  opts->size, sizeof o);
		/* An older caller's shorter struct keeps the defaults of the
		 * fields it does not know. */
		memcpy(&o, opts, opts->size);
	}
	if (k == 0)
		return rv_err_set(err, RV_EINVAL, "hnsw search: k must be at least 1");
	if (o.traverse != RV_HNSW_TRAVERSE_AUTO && o.traverse != RV_HNSW_TRAVERSE_FLOAT &&
	    o.traverse != RV_HNSW_TRAVERSE_SQ8)
		return rv_err_set(err, RV_EINVAL, "hnsw search: unknown traversal mode %d", (int)o.traverse);
	if (o.traverse == RV_HNSW_TRAVERSE_SQ8 && !h->sq8)
		return rv_err_set(err, RV_EINVAL, "hnsw search: SQ8 traversal asked for, but SQ8 is not enabled");
	if (o.rerank > RV_HNSW_RERANK_MAX)
		return rv_err_set(err, RV_EINVAL, "hnsw search: rerank factor %u out of range 0..%d",
				  o.rerank, RV_HNSW_RERANK_MAX);
	if (cap < k) {
		*n = k;
		return rv_err_set(err, RV_EBUFS, "hnsw search: room for %zu hits, k is %zu", cap, k);
	}
	if (h->count == 0)
		return RV_OK;

	bool approx = h->sq8 && o.traverse != RV_HNSW_TRAVERSE_FLOAT;
	/* The result set never needs to exceed the graph. With codes, the
	 * beam also holds the k * rerank candidates that exact distances
	 * re-rank, which is what makes up for the codes' error. */
	size_t beam = o.ef > k ? o.ef : k, rerank = 0;
	if (approx) {
		size_t rf = o.rerank ? o.rerank : RV_HNSW_RERANK_DEFAULT;
		if (!rv_mul_ok(k, rf, &rerank))
			rerank = SIZE_MAX;
		if (rerank > beam)
			beam = rerank;
	}
	if (beam > h->count)
		beam = (size_t)h->count;
	s = rv_hnsw_acquire(h, beam);
	if (!s)
		return rv_err_nomem(err);
	if (approx && (st = approx_begin(h, s, query, err)) != RV_OK)
		goto done;

	uint32_t ep = h->entry;
	float ep_dist = rv_hnsw_node_dist(h, s, query, ep);
	for (int l = h->max_level; l > 0; l--)
		rv_hnsw_greedy(h, s, query, (unsigned)l, RV_HNSW_NONE, &ep, &ep_dist, false);

	rv_hnsw_scratch_reset(s);
	rv_hnsw_seed(h, s, ep, ep_dist, o.accept, o.ctx);
	if (!rv_hnsw_search_layer(h, s, query, 0, beam, o.accept, o.ctx, false, true)) {
		st = rv_err_nomem(err);
		goto done;
	}
	size_t got = rv_hnsw_drain_sorted(s);
	if (approx) {
		/* Exact distances for the best k * rerank by code only: each
		 * is a float vector fetched from memory, and with a wide beam
		 * (large ef) re-ranking all of it would cost as much as the
		 * reads the codes saved. The true k nearest sit near the top
		 * of the approximate order. */
		const float *const *vp = h->vecs->ptr;
		if (got > rerank)
			got = rerank;
		for (size_t i = 0; i < got; i++)
			RV_HNSW_PREFETCH(vp[s->sel[i].slot]);
		for (size_t i = 0; i < got; i++)
			s->sel[i].dist = rv_hnsw_dist(h, query, vp[s->sel[i].slot]);
		rv_hnsw_sort_cands(s->sel, got);
	}
	if (got > k)
		got = k;
	for (size_t i = 0; i < got; i++)
		hits[i] = (rv_hnsw_hit){ s->sel[i].slot, s->sel[i].dist };
	*n = got;
done:
	if (s) {
		s->approx = false;
		rv_hnsw_release(h, s);
	}
	return st;
}

rv_status rv_hnsw_search(rv_hnsw_hit *hits, size_t cap, size_t *n, const rv_hnsw *h,
			 const float *query, size_t k, size_t ef, rv_accept_fn accept, void *ctx,
			 rv_err *err)
{
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	o.ef = ef;
	o.accept = accept;
	o.ctx = ctx;
	return rv_hnsw_search_v2(hits, cap, n, h, query, k, &o, err);
}

float rv_hnsw_distance(const rv_hnsw *h, const float *query, uint32_t slot)
{
	return rv_hnsw_dist(h, query, h->vecs->ptr[slot]);
}
