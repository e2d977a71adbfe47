/*
 * db_search.c - k nearest neighbours, with or without a payload filter.
 *
 * Strategy, chosen per query:
 *   - no filter: HNSW traversal with ef = max(ef, k);
 *   - filter: estimate the share of points that match from a seeded sample
 *     of slots; when few match (a selective filter), scan exactly the
 *     matching points; otherwise traverse the graph with the filter inside
 *     the traversal (rejected nodes are still routes, only matching ones
 *     become results);
 *   - whenever the graph returns fewer than k hits, widen ef four-fold once
 *     and then fall back to the exact scan, so a search returns
 *     min(k, matching points) hits, always.
 * A quantized collection whose quantizer is trained traverses the graph on
 * codes and re-ranks the best max(rerank * k, ef / 2) of them exactly
 * (rerank: rv_search_opts.rerank, else the collection's), filtered or not;
 * the exact scans stay on the float vectors, so RV_SEARCH_EXACT is exact
 * whatever the quantizer.
 * Results are copied out (ids, payloads, vectors) into one block owned by
 * the rv_results, so they outlive later writes to the collection.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "db/filter.h"
#include "db_int.h"

struct rv_results {
	rv_allocator alloc;
	bool has_alloc;
	size_t n;
	rv_hit *hits;
	uint64_t search_id;
};

size_t rv_results_count(const rv_results *r) { return r ? r->n : 0; }
uint64_t rv_results_search_id(const rv_results *r) { return r ? r->search_id : 0; }
const rv_hit *rv_results_hits(const rv_results *r) { return r ? r->hits : NULL; }

void rv_results_free(rv_results *r)
{
	if (!r)
		return;
	if (r->has_alloc)
		r->alloc.free_fn(r->alloc.ctx, r);
	else
		free(r);
}

typedef struct accept_ctx {
	const rv_db *db;
	const rv_filter *filter;
} accept_ctx;

static bool accept_slot(void *p, uint32_t slot)
{
	const accept_ctx *c = p;
	if (!(c->db->flags[slot] & RV_SLOT_LIVE))
		return false;
	return !c->filter || rv_filter_match(c->filter, c->db->payload[slot]);
}

/* ---- exact scan: bounded max-heap on (dist, slot) ---- */

static bool worse(const rv_hnsw_hit *a, const rv_hnsw_hit *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->slot > b->slot);
}

static void heap_sift_down(rv_hnsw_hit *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && worse(&h[l], &h[m]))
			m = l;
		if (r < n && worse(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		rv_hnsw_hit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void heap_push(rv_hnsw_hit *h, size_t *n, size_t k, rv_hnsw_hit x)
{
	if (*n < k) {
		size_t i = (*n)++;
		h[i] = x;
		while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
			rv_hnsw_hit t = h[i];
			h[i] = h[(i - 1) / 2];
			h[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (worse(&h[0], &x)) {
		h[0] = x;
		heap_sift_down(h, k, 0);
	}
}

static size_t exact_scan(rv_hnsw_hit *hits, size_t k, const rv_db *db, const float *q,
			 const accept_ctx *ac)
{
	size_t n = 0;
	for (uint32_t s = 0; s < db->vecs.n; s++) {
		if (!accept_slot((void *)ac, s))
			continue;
		rv_hnsw_hit x = { s, rv_hnsw_distance(db->index, q, s) };
		heap_push(hits, &n, k, x);
	}
	rv_hnsw_sort_hits(hits, n);
	return n;
}

/* Share of live points the filter accepts, from up to 512 sampled slots
 * (a fixed seed per query vector keeps a query's plan repeatable). */
static double match_share(const rv_db *db, const accept_ctx *ac, const float *q)
{
	rv_rng r;
	rv_rng_seed(&r, rv_hash64(q, (size_t)db->dim * sizeof(float), 7));
	uint32_t live = 0, hit = 0;
	uint32_t tries = db->vecs.n < 512 ? db->vecs.n : 512;
	for (uint32_t i = 0; i < tries * 2 && live < tries; i++) {
		uint32_t s = db->vecs.n <= 512 ? i : (uint32_t)rv_rng_below(&r, db->vecs.n);
		if (s >= db->vecs.n)
			break;
		if (!(db->flags[s] & RV_SLOT_LIVE))
			continue;
		live++;
		hit += rv_filter_match(ac->filter, db->payload[s]);
	}
	return live ? (double)hit / live : 0.0;
}

static float user_score(rv_metric m, float d)
{
	switch (m) {
	case RV_METRIC_L2: return d > 0 ? sqrtf(d) : 0.0f;
	case RV_METRIC_COSINE: return d > 0 ? d : 0.0f;
	case RV_METRIC_IP: return d;
	}
	return d;
}

static rv_status make_results(rv_results **out, const rv_db *db, const rv_hnsw_hit *hits, size_t n,
			      unsigned flags)
{
	bool want_pay = flags & RV_SEARCH_PAYLOAD, want_vec = flags & RV_SEARCH_VECTOR;
	size_t head = sizeof(rv_results) + n * sizeof(rv_hit);
	size_t vec_bytes = want_vec ? n * (size_t)db->dim * sizeof(float) : 0;
	size_t str_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		str_bytes += strlen(db->ids[hits[i].slot]) + 1;
		if (want_pay && db->payload_text[hits[i].slot])
			str_bytes += strlen(db->payload_text[hits[i].slot]) + 1;
	}
	head = (head + 15) & ~(size_t)15;
	rv_results *r = rv_malloc(db->a, head + vec_bytes + str_bytes);
	if (!r)
		return RV_ENOMEM;
	memset(r, 0, sizeof *r);
	if (db->a) {
		r->alloc = *db->a;
		r->has_alloc = true;
	}
	r->n = n;
	r->hits = (rv_hit *)(r + 1);
	float *vp = (float *)((char *)r + head);
	char *sp = (char *)r + head + vec_bytes;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = hits[i].slot;
		rv_hit *h = &r->hits[i];
		size_t len = strlen(db->ids[s]) + 1;
		memcpy(sp, db->ids[s], len);
		h->id = sp;
		sp += len;
		h->score = user_score(db->metric, hits[i].dist);
		h->payload = NULL;
		if (want_pay && db->payload_text[s]) {
			len = strlen(db->payload_text[s]) + 1;
			memcpy(sp, db->payload_text[s], len);
			h->payload = sp;
			sp += len;
		}
		h->vector = NULL;
		if (want_vec) {
			memcpy(vp, db->vecs.ptr[s], (size_t)db->dim * sizeof(float));
			h->vector = vp;
			vp += db->dim;
		}
	}
	*out = r;
	return RV_OK;
}

/* The graph search with the collection's traversal: on codes once the
 * quantizer is trained (the index re-ranks exactly, see rv_hnsw_search_v2). */
static rv_status graph_search(rv_hnsw_hit *hits, size_t k, size_t *n, const rv_db *db, const float *q, size_t ef,
			      unsigned rerank, rv_accept_fn accept, void *ctx, rv_err *e)
{
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	o.ef = ef;
	o.accept = accept;
	o.ctx = ctx;
	o.rerank = rerank;
	return rv_hnsw_search_v2(hits, k, n, db->index, q, k, &o, e);
}

rv_status rv_db_knn_locked(const rv_db *db, const float *q, size_t k, rv_hnsw_hit *hits, size_t *n, rv_err *e)
{
	accept_ctx ac = { db, NULL };
	rv_accept_fn accept = db->zombies ? accept_slot : NULL;
	size_t want = k < db->live ? k : (size_t)db->live;
	size_t ef = db->ef_search > k ? db->ef_search : k;
	*n = 0;
	if (want == 0)
		return RV_OK;
	rv_status st = graph_search(hits, k, n, db, q, ef, db->rerank, accept, &ac, e);
	if (st == RV_OK && *n < want)
		*n = exact_scan(hits, k, db, q, &ac);
	return st;
}

/* Searches of small queries keep their buffers on the stack: no heap
 * allocation on the search path but the results handed out. */
#define STACK_QUERY_FLOATS 2048 /* the query and its adapted copy, dim <= 1024 */
#define STACK_HITS 512          /* a candidate pool of k <= 128 */

rv_status rv_db_search(rv_results **out, rv_db *db, const float *query, const rv_search_opts *opts)
{
	rv_search_opts own = RV_SEARCH_OPTS_INIT;
	if (!out)
		return rv_db_fail(db, RV_EINVAL, "out is NULL");
	*out = NULL;
	/* The first rv_search_opts layout (0.1.0) ends with flags. */
	if (!rv_db_take_opts(&own, opts, sizeof own, offsetof(rv_search_opts, flags) + sizeof(unsigned)))
		return rv_db_fail(db, RV_EINVAL,
				  "rv_search_opts.size is %zu, this library knows up to %zu (use RV_SEARCH_OPTS_INIT)",
				  opts->size, sizeof own);
	/* rerank sits where the 0.1.0 layout had padding, which an older
	 * caller may have left uninitialised: only the whole 0.2.0 struct
	 * (it grew by `reserved`) sets it. */
	if (opts && opts->size < sizeof own)
		own.rerank = 0;
	opts = &own;
	if (opts->k < 1 || opts->k > 100000)
		return rv_db_fail(db, RV_EINVAL, "k %u out of range 1..100000", opts->k);
	if (opts->rerank > RV_RERANK_MAX)
		return rv_db_fail(db, RV_EINVAL, "rerank %u out of range 0..%d", opts->rerank, RV_RERANK_MAX);
	if (!query)
		return rv_db_fail(db, RV_EINVAL, "query is NULL");
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	for (uint32_t d = 0; d < db->dim; d++)
		if (!isfinite(query[d]))
			return rv_db_fail(db, RV_EINVAL, "query[%u] is %g, must be finite", d, (double)query[d]);

	rv_status st = RV_OK;
	rv_err e = { { 0 } };
	rv_filter *filter = NULL;
	float *q = NULL, q_stack[STACK_QUERY_FLOATS];
	rv_hnsw_hit *hits = NULL, hits_stack[STACK_HITS];
	if (opts->filter) {
		st = rv_filter_compile(&filter, opts->filter, strlen(opts->filter), db->a, &e);
		if (st != RV_OK)
			return rv_db_fail_err(db, st, &e);
	}
	size_t k = opts->k;
	size_t ef = opts->ef; /* 0: the region's or the collection's, below */
	unsigned rerank = opts->rerank ? opts->rerank : db->rerank;
	/* q: the query as searched (normalised); q + dim: the adapted one. */
	q = 2 * (size_t)db->dim <= STACK_QUERY_FLOATS ? q_stack : rv_malloc(db->a, (size_t)db->dim * sizeof(float) * 2);
	if (!q) {
		st = rv_db_fail(db, RV_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(q, query, (size_t)db->dim * sizeof(float));
	if (db->metric == RV_METRIC_COSINE && !rv_db_normalize(q, db->dim)) {
		st = rv_db_fail(db, RV_EINVAL, "query is the zero vector, which has no cosine direction");
		goto done;
	}

	pthread_rwlock_rdlock(&db->lock);
	const float *sq = q; /* the query the ranking uses */
	rv_search_route rt = rv_db_learn_route(db, q, opts->flags);
	if (rv_db_learn_adapt(db, &rt, q + db->dim, q))
		sq = q + db->dim;
	if (!ef)
		ef = rv_db_learn_ef(db, &rt, q);
	/* The graph gathers `pool` candidates; a learned re-ranker then picks
	 * k of them. */
	size_t final_k = k;
	k = rv_db_learn_pool(db, &rt, k);
	if (ef < k)
		ef = k;
	hits = k * 4 <= STACK_HITS ? hits_stack : rv_malloc(db->a, k * 4 * sizeof *hits);
	if (!hits) {
		pthread_rwlock_unlock(&db->lock);
		st = rv_db_fail(db, RV_ENOMEM, "out of memory for %zu candidates", k);
		goto done;
	}
	accept_ctx ac = { db, filter };
	rv_accept_fn accept = filter || db->zombies ? accept_slot : NULL;
	size_t n = 0;
	bool exact = (opts->flags & RV_SEARCH_EXACT) || db->live == 0;
	if (!exact && filter) {
		double share = match_share(db, &ac, sq);
		double expect = share * (double)db->live;
		exact = expect <= (double)(4 * ef > 1000 ? 4 * ef : 1000) || share < 0.002;
	}
	if (!exact) {
		size_t want = k < db->live ? k : (size_t)db->live;
		st = graph_search(hits, k, &n, db, sq, ef, rerank, accept, &ac, &e);
		if (st == RV_OK && n < want)
			st = graph_search(hits, k, &n, db, sq, ef * 4, rerank, accept, &ac, &e);
		if (st == RV_OK && n < want)
			exact = true;
	}
	if (st == RV_OK && exact)
		n = exact_scan(hits, k, db, sq, &ac);
	if (st == RV_OK && k > final_k)
		n = rv_db_learn_rerank(db, &rt, q, sq, hits, n, final_k);
	else if (n > final_k)
		n = final_k;
	if (st == RV_OK && make_results(out, db, hits, n, opts->flags) != RV_OK)
		st = rv_err_set(&e, RV_ENOMEM, "out of memory for %zu results", n);
	if (st == RV_OK && ((*out)->search_id = rv_db_learn_record(db, q, hits, n)) == 0) {
		rv_results_free(*out);
		*out = NULL;
		st = rv_err_set(&e, RV_ENOMEM, "out of memory remembering the search");
	}
	pthread_rwlock_unlock(&db->lock);
	if (st != RV_OK)
		rv_db_fail_err(db, st, &e);
done:
	rv_filter_free(filter);
	if (q != q_stack)
		rv_dealloc(db->a, q);
	if (hits != hits_stack)
		rv_dealloc(db->a, hits);
	return st;
}
