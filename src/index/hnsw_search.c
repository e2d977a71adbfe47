/*
 * hnsw_search.c - graph traversal: the greedy descent through the upper
 * levels, the ef-bounded beam search of one level, and rv_hnsw_search.
 *
 * The beam search keeps two binary heaps in the scratch: a min-heap of
 * candidates still to expand and a max-heap of the best ef results (worst
 * at the root, so a full result set rejects a farther node in O(1)). A
 * node is visited once per traversal, tracked by an epoch stamp per slot
 * (one byte, cleared once every 255 traversals) so that starting a
 * traversal costs next to nothing.
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
 * A search may run while rv_hnsw_batch_link links new nodes: it reads each
 * list in place under its stripe's sequence counter and reads it again if
 * a writer went through meanwhile, and takes the entry point and top level
 * from one atomic word (hnsw_int.h, Locking). On one thread this costs
 * some 20 instructions per list read, 2.4% of a search (callgrind).
 *
 * Code traversal (hnsw_codes.c keeps the codes): the same walk, ranking
 * nodes by the code distance (rv_hnsw_node_dist, chosen by the scratch's
 * approx flag so inserts and deletes, which never set it, stay exact). The
 * query is put in code form once per search (SQ8 weights, a binary code or
 * PQ tables), and the best max(k * rerank, ef / 2) nodes by code are
 * re-ranked with the float vectors, so the hits and their distances are
 * exact. The beam stays max(ef, k), the walk of a float search; when the
 * re-rank depth exceeds it, the rest comes from a pool of the nodes the
 * beam scored and let go (they cost no distance more), which keeps recall
 * at a small ef that of a float walk (Fashion-MNIST: within 0.0003 at
 * every ef from 10 to 800) where re-ranking the beam alone lost up to 0.05.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

void rv_hnsw_scratch_reset(rv_hnsw_scratch *s)
{
	/* One byte per slot keeps the stamps of a large graph in cache (they
	 * are read at random, once per neighbour); the price is a clear
	 * every 255 traversals, when old stamps could equal the new epoch. */
	if (++s->epoch == 0) {
		memset(s->mark, 0, s->mark_cap * sizeof *s->mark);
		s->epoch = 1;
	}
	s->cand_n = 0;
	s->res_n = 0;
	s->pool_n = 0;
}

/* Whether c would enter the pool (see pool_offer): the one comparison
 * most offers late in a walk end with, kept inline in the walk. */
static inline bool pool_wants(const rv_hnsw_scratch *s, rv_hnsw_cand c)
{
	return s->pool_n < s->pool_max || rv_hnsw_cand_before(c, s->pool[0]);
}

/* Put a scored, accepted node that the beam's results did not keep
 * (rejected, or evicted by a nearer one) in the pool: a max-heap of the
 * best pool_max of them, worst at [0]. The caller checked pool_wants. */
static void pool_offer(rv_hnsw_scratch *s, rv_hnsw_cand c)
{
	if (s->pool_n < s->pool_max) {
		rv_hnsw_maxheap_push(s->pool, &s->pool_n, c);
		return;
	}
	/* Replace the root and sift it down: one pass, not a pop and a push. */
	size_t i = 0, n = s->pool_n;
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= n)
			break;
		if (l + 1 < n && rv_hnsw_cand_before(s->pool[l], s->pool[l + 1]))
			l++;
		if (!rv_hnsw_cand_before(c, s->pool[l]))
			break;
		s->pool[i] = s->pool[l];
		i = l;
	}
	s->pool[i] = c;
}

/* A copy of the list of slot at level taken under its stripe: the
 * threaded insert, whose writers read the lists they then extend under
 * the same stripes. */
static const uint32_t *read_list_locked(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot,
					unsigned level)
{
	const uint32_t *list = rv_hnsw_links(h, slot, level);
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
	for (;;) {
		/* Scan cur's list in place; a scan that overlapped a writer
		 * (the stripe counter moved) is thrown away and done again,
		 * so the step taken is always one over a whole list. */
		uint32_t best = cur, v = 0;
		float best_dist = cur_dist;
		const uint32_t *list;
		if (locked) {
			list = read_list_locked(h, s, cur, level);
		} else {
			v = rv_hnsw_read_begin(h, cur);
			list = rv_hnsw_links(h, cur, level);
		}
		uint32_t cnt = rv_hnsw_ld(list);
		for (uint32_t j = 0; j < cnt; j++) {
			uint32_t n = rv_hnsw_ld(list + 1 + j);
			if (rv_hnsw_lv_acq(h, n) <= level || n == skip)
				continue;
			float d = rv_hnsw_node_dist(h, s, q, n);
			if (d < best_dist) {
				best_dist = d;
				best = n;
			}
		}
		if (!locked && rv_hnsw_read_retry(h, cur, v))
			continue;
		if (best == cur)
			break;
		cur = best;
		cur_dist = best_dist;
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
			if (c + 1 < n && rv_hnsw_cand_before(hp[c + 1], hp[c]))
				c++;
			if (!rv_hnsw_cand_before(hp[c], x))
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

#define FLOAT_PREFETCH 64

bool rv_hnsw_search_layer(const rv_hnsw *h, rv_hnsw_scratch *s, const float *q, unsigned level,
			  size_t ef, rv_accept_fn accept, void *ctx, bool locked, bool must_grow)
{
	const float *const *vp = h->vecs->ptr;
	uint8_t *mark = s->mark;
	const uint8_t epoch = s->epoch;
	float worst = s->res_n ? s->res[0].dist : INFINITY;
	uint32_t pending[2 * RV_HNSW_M_MAX];
	/* Bytes of a float vector to prefetch: its first line. Measured: more
	 * lines cost more than they save, on 128 dims (the vectors mostly in
	 * cache) and on 784 (the hardware prefetcher streams the rest). */
	size_t fbytes = (size_t)h->p.dim * sizeof(float);
	if (fbytes > FLOAT_PREFETCH)
		fbytes = FLOAT_PREFETCH;

	while (s->cand_n) {
		if (s->res_n == ef && s->cand[0].dist > worst)
			break;
		rv_hnsw_cand c = rv_hnsw_minheap_pop(s->cand, &s->cand_n);
		/* The next node to expand is probably the new top of the heap:
		 * fetch its list while this one's neighbours are scored. */
		if (s->cand_n && level == 0)
			RV_HNSW_PREFETCH(rv_hnsw_links(h, s->cand[0].slot, 0));

		/* First pass: pick the unvisited live neighbours and start
		 * fetching their vectors, so the distance pass below finds
		 * them in cache instead of stalling on each in turn. Without
		 * the stripe lock the list is read in place, and the pass is
		 * undone and done again when a writer went through the
		 * stripe meanwhile (see Locking in hnsw_int.h): the second
		 * pass then only ever sees neighbours of one whole list. */
		uint32_t nt;
		for (;;) {
			uint32_t v = 0;
			const uint32_t *list;
			if (locked) {
				list = read_list_locked(h, s, c.slot, level);
			} else {
				v = rv_hnsw_read_begin(h, c.slot);
				list = rv_hnsw_links(h, c.slot, level);
			}
			/* A pointer walk, not an index: one instruction less
			 * per neighbour, measured, in the hottest loop. */
			const uint32_t *it = list + 1, *end = it + rv_hnsw_ld(list);
			nt = 0;
			for (; it < end; it++) {
				uint32_t n = rv_hnsw_ld(it);
				if (mark[n] == epoch || rv_hnsw_lv_acq(h, n) <= level)
					continue;
				mark[n] = epoch;
				pending[nt++] = n;
				if (s->approx) {
					rv_hnsw_code_prefetch(h, n);
				} else {
					const char *fv = (const char *)vp[n];
					for (size_t off = 0; off < fbytes; off += 64)
						RV_HNSW_PREFETCH(fv + off);
				}
			}
			if (locked || !rv_hnsw_read_retry(h, c.slot, v))
				break;
			/* Marked in this pass only: unvisited again. */
			for (uint32_t j = 0; j < nt; j++)
				mark[pending[j]] = 0;
		}

		for (uint32_t j = 0; j < nt; j++) {
			uint32_t n = pending[j];
			float d = rv_hnsw_node_dist(h, s, q, n);
			int ok = -1; /* accepted: not asked yet */
			if (s->res_n == ef && d >= worst) {
				rv_hnsw_cand lost = { d, n };
				if (s->pool_max && pool_wants(s, lost) && (!accept || accept(ctx, n)))
					pool_offer(s, lost);
				continue;
			}
			if (!cand_room(h, s, ef, worst)) {
				if (must_grow)
					return false;
				continue;
			}
			rv_hnsw_minheap_push(s->cand, &s->cand_n, (rv_hnsw_cand){ d, n });
			if (ok < 0)
				ok = !accept || accept(ctx, n);
			if (!ok)
				continue;
			rv_hnsw_maxheap_push(s->res, &s->res_n, (rv_hnsw_cand){ d, n });
			if (s->res_n > ef) {
				rv_hnsw_cand out = rv_hnsw_maxheap_pop(s->res, &s->res_n);
				if (s->pool_max && pool_wants(s, out))
					pool_offer(s, out);
			}
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

/* Candidates whose vectors the re-rank fetches ahead of the one it
 * computes. */
#define RERANK_AHEAD 4

/* The re-rank depth is at least beam / RERANK_BEAM_SHARE. Measured on
 * 128-dim text embeddings, whose SQ8 order is the loosest: with a depth
 * of k * rerank alone, recall stops at 0.998 however wide the beam, where
 * floats reach 1.0; half the beam lifts it to the float figure, at 5-10%
 * of the QPS of a wide beam on 784-dim images, which did not need it. */
#define RERANK_BEAM_SHARE 2

static inline void prefetch_bytes(const void *p, size_t n)
{
	const char *c = p;
	for (size_t off = 0; off < n; off += 64)
		RV_HNSW_PREFETCH(c + off);
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
	    o.traverse != RV_HNSW_TRAVERSE_CODES)
		return rv_err_set(err, RV_EINVAL, "hnsw search: unknown traversal mode %d", (int)o.traverse);
	if (o.traverse == RV_HNSW_TRAVERSE_CODES && h->qz.kind == RV_QUANT_NONE)
		return rv_err_set(err, RV_EINVAL, "hnsw search: code traversal asked for, but no codes are enabled");
	if (o.rerank > RV_HNSW_RERANK_MAX)
		return rv_err_set(err, RV_EINVAL, "hnsw search: rerank factor %u out of range 0..%d",
				  o.rerank, RV_HNSW_RERANK_MAX);
	if (cap < k) {
		*n = k;
		return rv_err_set(err, RV_EBUFS, "hnsw search: room for %zu hits, k is %zu", cap, k);
	}
	/* One load gives a consistent entry point and top level (see
	 * Locking in hnsw_int.h); a graph that is empty, or whose first node
	 * is not linked yet, has no entry. */
	uint32_t ep;
	int top;
	rv_hnsw_get_top(h, &ep, &top);
	uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
	if (ep == RV_HNSW_NONE || count == 0)
		return RV_OK;

	bool approx = h->qz.kind != RV_QUANT_NONE && o.traverse != RV_HNSW_TRAVERSE_FLOAT;
	/* The beam is max(ef, k), as for floats, so ef buys the same walk.
	 * With codes, the re-rank depth (k * rerank, or half a wide beam) may
	 * exceed the beam: the rest then comes from a pool of the nodes the
	 * walk scored and the beam let go, which cost no distance more. That
	 * is what makes up for the codes' error when ef is small. */
	size_t beam = o.ef > k ? o.ef : k, rerank = 0, pool = 0;
	if (approx) {
		size_t rf = o.rerank ? o.rerank : RV_HNSW_RERANK_DEFAULT;
		if (!rv_mul_ok(k, rf, &rerank))
			rerank = SIZE_MAX;
	}
	/* A wide beam asks for high recall, which the codes' error would cap
	 * at a fixed re-rank depth: re-rank at least a share of the beam. */
	if (approx && rerank < beam / RERANK_BEAM_SHARE)
		rerank = beam / RERANK_BEAM_SHARE;
	/* The result set never needs to exceed the graph. */
	if (beam > count)
		beam = (size_t)count;
	if (rerank > beam)
		pool = rerank < count ? rerank : (size_t)count;
	s = rv_hnsw_acquire(h, beam);
	if (!s)
		return rv_err_nomem(err);
	if (pool > beam && !rv_hnsw_scratch_pool(h, s, pool)) {
		st = rv_err_nomem(err);
		goto done;
	}
	if (approx && (st = rv_hnsw_codes_begin(h, s, query, err)) != RV_OK)
		goto done;

	float ep_dist = rv_hnsw_node_dist(h, s, query, ep);
	for (int l = top; l > 0; l--)
		rv_hnsw_greedy(h, s, query, (unsigned)l, RV_HNSW_NONE, &ep, &ep_dist, false);

	rv_hnsw_scratch_reset(s);
	rv_hnsw_seed(h, s, ep, ep_dist, o.accept, o.ctx);
	/* The pool keeps the best pool - beam of the nodes the beam's
	 * results let go; with the results they make the re-rank set. */
	if (pool > beam)
		s->pool_max = pool - beam;
	if (!rv_hnsw_search_layer(h, s, query, 0, beam, o.accept, o.ctx, false, true)) {
		st = rv_err_nomem(err);
		goto done;
	}
	size_t got = rv_hnsw_drain_sorted(s);
	if (s->pool_max) {
		/* Everything in the pool ranks after the results (it lost to
		 * them, or to nodes that later lost to them): append it, in
		 * order. */
		size_t extra = s->pool_n;
		for (size_t i = extra; i-- > 0;)
			s->sel[got + i] = rv_hnsw_maxheap_pop(s->pool, &s->pool_n);
		got += extra;
	}
	if (approx) {
		/* Exact distances for the best of the approximate order only:
		 * each is a float vector fetched from memory, and re-ranking a
		 * whole wide beam would cost much of what the codes saved. The
		 * true k nearest sit near the top of that order. */
		const float *const *vp = h->vecs->ptr;
		if (got > rerank)
			got = rerank;
		/* Whole vectors, a few candidates ahead: the first line alone
		 * leaves the rest of a long vector to stall the kernel. */
		size_t vbytes = (size_t)h->p.dim * sizeof(float);
		for (size_t i = 0; i < got && i < RERANK_AHEAD; i++)
			prefetch_bytes(vp[s->sel[i].slot], vbytes);
		for (size_t i = 0; i < got; i++) {
			if (i + RERANK_AHEAD < got)
				prefetch_bytes(vp[s->sel[i + RERANK_AHEAD].slot], vbytes);
			s->sel[i].dist = rv_hnsw_dist(h, query, vp[s->sel[i].slot]);
		}
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
		s->pool_max = 0;
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

static int hit_cmp(const void *pa, const void *pb)
{
	const rv_hnsw_hit *a = pa, *b = pb;
	if (a->dist != b->dist)
		return a->dist < b->dist ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

/* Insertion sort for the short lists searches and pools hold, qsort
 * beyond. */
void rv_hnsw_sort_hits(rv_hnsw_hit *hits, size_t n)
{
	if (n > 64) {
		qsort(hits, n, sizeof *hits, hit_cmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		rv_hnsw_hit x = hits[i];
		size_t j = i;
		for (; j > 0 && hit_cmp(&x, &hits[j - 1]) < 0; j--)
			hits[j] = hits[j - 1];
		hits[j] = x;
	}
}
