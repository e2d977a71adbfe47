/*
 * db_learn.c - feedback and the search path of learning: search ids,
 * events, the MicroLoRA step per event, and what a search applies (the
 * active version's BaseLoRA and the MicroLoRA on the query, the GNN
 * re-ranking of a candidate pool, the interleaving with a candidate
 * version, the region's ef), each routed by the active version's away
 * regions (db_learn.h) to the version that serves the query's region.
 *
 * Search ids: a handle draws a random base at creation; search number c
 * gets id base + c, and ring entry c % cap remembers its query (as
 * searched, before the adapters) and the slots shown. An id whose entry
 * has been overwritten has expired.
 *
 * Events: rv_db_feedback / rv_db_feedback_vector append to the pending log
 * (a JOURNAL of kind 2 at the next commit) and to the replay ring of the
 * last RV_FB_REPLAY events. With learning on, each event then steps the
 * MicroLoRA (the learning core's rv_lora, rank 2) on pairwise events built
 * from the results shown, with the active BaseLoRA's delta as its offset
 * (so the micro adapter learns the residual on top of the version):
 *   reward > 0 at position p > 0:  chosen = the item, skipped = an item
 *                                  shown above it
 *   reward > 0 at position 0:      skipped = another item shown
 *   reward < 0:                    chosen = another item shown,
 *                                  skipped = the item
 * weighted |reward|; the other item is drawn pseudo-randomly (a hash of
 * the event), one pair per event. An item that was not shown at all
 * (feedback by vector) counts as below everything shown. The event also
 * credits an interleaving and may start the background consolidation.
 * It does not move the re-ranker's item priors: a version's re-ranker
 * changes only through a consolidation, whose held-out gate it passed
 * (per-event prior steps, tried, added nothing measurable on the Fiori
 * set and cost -41% NDCG@10 under random clicks).
 *
 * Interleaving needs to know, at feedback time, which side placed each hit
 * of a search. The re-ranking hook knows the sides but not the search id;
 * the recording hook, called next on the same thread under the same read
 * lock, knows the id. The re-ranker leaves the sides in a small table
 * keyed by a hash of the query and the hits kept, and the recorder moves
 * them into a ring beside the search ring. Two searches with the same key
 * have the same query and hits, hence the same sides, so a collision is
 * harmless.
 *
 * Locks: feedback holds the write lock (it changes the adapters, which
 * searches read under the read lock); the search ring has its own mutex
 * (fb_lock) because many searches record into it at once; the pending
 * interleavings have ls->tdi_lock (taken after fb_lock when both are).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "db_learn.h"
#include "simd/simd.h"

/* MicroLoRA settings. The temperature is about the spread of score
 * differences among the top results of unit vectors (see
 * docs/LEARNING-CORE.md). The weight decay keeps feedback without a
 * consistent direction from moving the adapter (random rewards: +0.97%
 * NDCG in tests/test_feedback.c) while letting consistent preferences
 * through (+140%); at 1.0, as in the core's own test, the random start of
 * A decays away before one pair per event builds B up, and nothing is
 * learned. */
#define ADAPTER_RANK 2
#define ADAPTER_LR 2e-3f
#define ADAPTER_L2 0.1f
#define ADAPTER_TEMPERATURE 0.05f

uint64_t rv_learn_wall_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rv_db_learn_init(rv_db *db)
{
	pthread_mutex_init(&db->fb_lock, NULL);
	/* Random per handle, so ids of two handles (or two runs) rarely
	 * collide; the top bit is clear so that base + counter never wraps
	 * to 0. */
	uint64_t t = (uint64_t)(rv_now() * 1e9) ^ rv_learn_wall_ns();
	db->fb_base = rv_hash64(&db, sizeof db, t) >> 1;
	if (db->fb_base == 0)
		db->fb_base = 1;
}

void rv_db_learn_unload(rv_db *db)
{
	/* The background thread reads the collection: it goes first. */
	if (db->ls) {
		rv_learn_stop_thread(db);
		rv_learn_state_free(db->ls, db->a);
		db->ls = NULL;
	}
	rv_dealloc(db->a, db->fb_ring);
	rv_dealloc(db->a, db->fb_ring_q);
	rv_dealloc(db->a, db->fb_pending);
	rv_dealloc(db->a, db->fb_pending_q);
	rv_dealloc(db->a, db->fb_replay);
	rv_dealloc(db->a, db->fb_replay_q);
	rv_lora_free(db->adapter);
	db->fb_ring = NULL;
	db->fb_ring_q = NULL;
	db->fb_ring_cap = 0;
	db->fb_pending = NULL;
	db->fb_pending_q = NULL;
	db->n_fb_pending = db->fb_pending_cap = 0;
	db->fb_replay = NULL;
	db->fb_replay_q = NULL;
	db->fb_replay_n = db->fb_replay_next = 0;
	db->fb_total = 0;
	db->fb_journals = 0;
	db->adapter = NULL;
	db->adapter_version = 0;
	db->adapter_changed = db->learn_dirty = false;
	db->overlay_seg_id = 0;
	/* A reload (compaction) renumbers slots: remembered searches expire,
	 * but the counter goes on so their ids are never reused. */
}

/* ======================================================================
 * Rankers: what a ranking applies
 * ==================================================================== */

void rv_learn_active_ranker(rv_learn_ranker *r, const rv_db *db)
{
	const struct rv_learn_state *ls = db->ls;
	memset(r, 0, sizeof *r);
	if (!ls)
		return;
	const rv_lversion *v = rv_learn_find(ls, ls->active);
	unsigned use = ls->cfg.learners;
	if ((use & RV_LEARN_BASE) && v)
		r->base = v->base;
	/* A micro adapter that has not stepped since its reset is the
	 * identity: skipping it keeps the plain query bit for bit. */
	if ((use & RV_LEARN_MICRO) && db->adapter && rv_lora_steps(db->adapter) > 0)
		r->micro = db->adapter;
	if (use & RV_LEARN_GNN)
		r->rerank = ls->live;
	r->pool_mult = ls->cfg.rerank_pool;
	r->routes = v;
}

const rv_lversion *rv_learn_server(const rv_db *db, const rv_lversion *v, const float *q)
{
	if (!v || v->n_away == 0 || !q)
		return v;
	float best = FLT_MAX;
	uint32_t c;
	if (v->regions)
		rv_rbank_assign(&c, &best, v->regions, q);
	rv_dist_fn l2 = rv_simd()->l2sq;
	uint32_t at = UINT32_MAX;
	for (uint32_t i = 0; i < v->n_away; i++) {
		float d = l2(v->away_c + (size_t)i * db->dim, q, db->dim);
		/* <=: a ceded region has the centre of one of v's own. */
		if (d <= best) {
			best = d;
			at = i;
		}
	}
	const rv_lversion *s = at == UINT32_MAX ? NULL : rv_learn_find(db->ls, v->away_v[at]);
	return s ? s : v;
}

void rv_learn_version_ranker(rv_learn_ranker *out, const rv_db *db, const rv_lversion *v, const rv_lversion *routes)
{
	const rv_learn_config *c = &db->ls->cfg;
	*out = (rv_learn_ranker){ v && (c->learners & RV_LEARN_BASE) ? v->base : NULL, NULL,
				  v && (c->learners & RV_LEARN_GNN) ? v->rerank : NULL, c->rerank_pool, routes };
}

const rv_learn_ranker *rv_learn_route(const rv_db *db, const rv_learn_ranker *r, const float *q,
				      rv_learn_ranker *tmp)
{
	const rv_lversion *s = rv_learn_server(db, r->routes, q);
	if (s == r->routes)
		return r;
	rv_learn_version_ranker(tmp, db, s, NULL);
	return tmp;
}

bool rv_learn_adapt_with(const rv_db *db, const rv_learn_ranker *r, float *out, const float *q)
{
	const rv_lora *base = rv_learn_acting_base(r);
	if (!base && !r->micro)
		return false;
	memcpy(out, q, (size_t)db->dim * sizeof(float));
	/* The adapters add up: each delta is taken at the query as searched. */
	if (base)
		rv_lora_add_delta(out, base, q);
	if (r->micro)
		rv_lora_add_delta(out, r->micro, q);
	/* A cosine search compares with unit vectors; an adapted query that
	 * collapsed to zero keeps the plain one. */
	if (db->metric == RV_METRIC_COSINE && !rv_db_normalize(out, db->dim))
		return false;
	return true;
}

size_t rv_learn_rerank_hits(const rv_db *db, const rv_reranker *rr, const float *q, const float *sq,
			    rv_hnsw_hit *hits, size_t n, size_t k)
{
	if (sq != q) {
		for (size_t i = 0; i < n; i++)
			hits[i].dist = rv_hnsw_distance(db->index, q, hits[i].slot);
		rv_hnsw_sort_hits(hits, n);
	}
	return rv_reranker_apply(rr, db, q, hits, n, k);
}

size_t rv_learn_pool_size(const rv_learn_ranker *r, size_t k)
{
	if (!r->rerank)
		return k;
	size_t pool = k * (r->pool_mult ? r->pool_mult : 1);
	size_t cap = k > RV_LEARN_MAX_POOL ? k : RV_LEARN_MAX_POOL;
	return pool < cap ? pool : cap;
}

rv_status rv_learn_rank(rv_hnsw_hit *hits, size_t *n, const rv_db *db, const rv_learn_ranker *r, const float *q,
			size_t k, float *work, rv_err *e)
{
	rv_learn_ranker tmp;
	r = rv_learn_route(db, r, q, &tmp);
	const float *sq = rv_learn_adapt_with(db, r, work, q) ? work : q;
	size_t pool = rv_learn_pool_size(r, k);
	rv_status st = rv_db_knn_locked(db, sq, pool, hits, n, e);
	if (st != RV_OK)
		return st;
	if (r->rerank && *n > 0) {
		double t0 = rv_now();
		/* The adapters gathered the pool; the re-ranker scores it
		 * against q. */
		*n = rv_learn_rerank_hits(db, r->rerank, q, sq, hits, *n, k);
		uint64_t ns = (uint64_t)((rv_now() - t0) * 1e9);
		atomic_fetch_add_explicit(&db->ls->rerank_ns, ns, memory_order_relaxed);
		atomic_fetch_add_explicit(&db->ls->rerank_n, 1, memory_order_relaxed);
	} else if (*n > k)
		*n = k;
	return RV_OK;
}

static bool applies(const rv_db *db, unsigned flags)
{
	return db->learning && db->ls && !(flags & RV_SEARCH_NO_LEARNING);
}

rv_search_route rv_db_learn_route(const rv_db *db, const float *q, unsigned flags)
{
	rv_search_route rt = { applies(db, flags), NULL };
	if (rt.on) {
		const rv_lversion *v = rv_learn_find(db->ls, db->ls->active), *s = rv_learn_server(db, v, q);
		rt.away = s != v ? s : NULL;
	}
	return rt;
}

/* The ranker of a routed search. */
static void route_ranker(rv_learn_ranker *r, const rv_db *db, const rv_search_route *rt)
{
	rv_learn_active_ranker(r, db);
	if (rt->away)
		rv_learn_version_ranker(r, db, rt->away, NULL);
}

bool rv_db_learn_adapt(const rv_db *db, const rv_search_route *rt, float *out, const float *q)
{
	if (!rt->on)
		return false;
	rv_learn_ranker r;
	route_ranker(&r, db, rt);
	return rv_learn_adapt_with(db, &r, out, q);
}

/* ======================================================================
 * The search path: pool, re-ranking, interleaving, ef
 * ==================================================================== */

/* The candidate version searches interleave, or NULL. */
static const rv_lversion *interleaved(const rv_db *db)
{
	const struct rv_learn_state *ls = db->ls;
	return ls->candidate ? rv_learn_find(ls, ls->candidate) : NULL;
}

size_t rv_db_learn_pool(const rv_db *db, const rv_search_route *rt, size_t k)
{
	if (!rt->on)
		return k;
	rv_learn_ranker r;
	route_ranker(&r, db, rt);
	if (!r.rerank && !interleaved(db))
		return k;
	/* With a candidate, both sides rank the same pool: it holds the
	 * candidate's picks that the active side ranks below k. */
	size_t pool = k * r.pool_mult;
	size_t cap = k > RV_LEARN_MAX_POOL ? k : RV_LEARN_MAX_POOL;
	return pool < cap ? pool : cap;
}

/* Key of an interleaved search between the re-ranking and the recording
 * hooks: the query and the hits kept. */
static uint64_t tdi_key(const rv_db *db, const float *q, const rv_hnsw_hit *hits, size_t n)
{
	uint64_t h = (uint64_t)n;
	for (size_t i = 0; i < n; i++)
		h = rv_hash64(&hits[i].slot, sizeof hits[i].slot, h);
	h = rv_hash64(q, (size_t)db->dim * sizeof(float), h);
	return h ? h : 1;
}

/* Team-draft interleaving of the active order a[0..n) and the candidate
 * order b[0..n) (the same slots) into out[0..k); bits[i] set when out[i]
 * was the candidate's pick. Returns the number placed. */
static size_t team_draft(rv_hnsw_hit *out, uint64_t bits[2], const rv_hnsw_hit *a, const rv_hnsw_hit *b, size_t n,
			 size_t k, uint64_t seed, const rv_db *db, const float *sq)
{
	rv_rng rng;
	rv_rng_seed(&rng, seed);
	size_t ia = 0, ib = 0, na = 0, nb = 0, m = 0;
	bits[0] = bits[1] = 0;
	while (m < k && m < n) {
		bool cand = nb < na || (nb == na && (rv_rng_next(&rng) & 1));
		const rv_hnsw_hit *src = cand ? b : a;
		size_t *at = cand ? &ib : &ia;
		/* The side's best slot not placed yet (pools are small: a scan
		 * of what is placed is cheaper than a set). */
		for (;;) {
			if (*at >= n)
				break;
			uint32_t s = src[*at].slot;
			bool taken = false;
			for (size_t j = 0; j < m && !taken; j++)
				taken = out[j].slot == s;
			if (!taken)
				break;
			(*at)++;
		}
		if (*at >= n)
			break; /* both orders hold the same slots: the other side is out too */
		out[m].slot = src[*at].slot;
		/* The score shown is the distance to the active query, whoever
		 * placed the hit. */
		out[m].dist = cand ? rv_hnsw_distance(db->index, sq, out[m].slot) : src[*at].dist;
		if (cand && m < 128)
			bits[m / 64] |= (uint64_t)1 << (m % 64);
		(*at)++;
		if (cand)
			nb++;
		else
			na++;
		m++;
	}
	return m;
}

/* Ranks the pool by the candidate version and interleaves; false when
 * out of memory (the active order stands). hits: the pool in the active
 * order, their distances to aq (q when the active side re-ranked, else
 * its adapted query). */
static bool interleave(const rv_db *db, const rv_lversion *cv, const float *q, const float *aq, rv_hnsw_hit *hits,
		       size_t n, size_t k, size_t *kept)
{
	struct rv_learn_state *ls = db->ls;
	size_t dim = db->dim;
	rv_hnsw_hit *a = rv_malloc(db->a, 2 * n * sizeof *a);
	float *cq = rv_malloc(db->a, dim * sizeof(float));
	bool ok = false;
	if (!a || !cq)
		goto done;
	rv_hnsw_hit *b = a + n;
	memcpy(a, hits, n * sizeof *a);
	rv_learn_ranker cv_r, tmp;
	rv_learn_version_ranker(&cv_r, db, cv, cv);
	const rv_learn_ranker *cr = rv_learn_route(db, &cv_r, q, &tmp);
	/* The candidate's distances: to q when its re-ranker scores them
	 * (rv_learn_rerank_hits), else to its adapted query. */
	const float *bq = cr->rerank || !rv_learn_adapt_with(db, cr, cq, q) ? q : cq;
	for (size_t i = 0; i < n; i++) {
		b[i].slot = a[i].slot;
		b[i].dist = bq == aq ? a[i].dist : rv_hnsw_distance(db->index, bq, a[i].slot);
	}
	/* They come nearly in the active order. */
	rv_hnsw_sort_hits(b, n);
	if (cr->rerank)
		rv_reranker_apply(cr->rerank, db, q, b, n, n);
	uint64_t seed = rv_hash64(q, dim * sizeof(float), 0x7d1);
	rv_tdi_entry t = { 0, ls->candidate, 0, { 0, 0 } };
	size_t m = team_draft(hits, t.bits, a, b, n, k, seed, db, aq);
	t.n = (uint32_t)m;
	t.id = tdi_key(db, q, hits, m);
	pthread_mutex_lock(&ls->tdi_lock);
	ls->pending[ls->pending_next] = t;
	ls->pending_next = (ls->pending_next + 1) % RV_TDI_PENDING;
	pthread_mutex_unlock(&ls->tdi_lock);
	*kept = m;
	ok = true;
done:
	rv_dealloc(db->a, a);
	rv_dealloc(db->a, cq);
	return ok;
}

size_t rv_db_learn_rerank(const rv_db *db, const rv_search_route *rt, const float *q, const float *sq,
			  rv_hnsw_hit *hits, size_t n, size_t k)
{
	size_t keep = n < k ? n : k;
	if (!rt->on || n == 0)
		return keep;
	struct rv_learn_state *ls = db->ls;
	rv_learn_ranker r;
	route_ranker(&r, db, rt);
	const rv_lversion *cv = interleaved(db);
	if (r.rerank) {
		double t0 = rv_now();
		/* Interleaving needs the whole pool in the active order. */
		rv_learn_rerank_hits(db, r.rerank, q, sq, hits, n, cv ? n : k);
		uint64_t ns = (uint64_t)((rv_now() - t0) * 1e9);
		atomic_fetch_add_explicit(&ls->rerank_ns, ns, memory_order_relaxed);
		atomic_fetch_add_explicit(&ls->rerank_n, 1, memory_order_relaxed);
	}
	/* Only the queries of a share show the candidate's picks, so a
	 * candidate that is no better costs the others nothing while it is
	 * on trial; by the query, so that a query repeats its results (the
	 * smaller share is part of the larger), and the candidate's number,
	 * so that each trial meets other queries. */
	size_t kept;
	if (cv && rv_hash64(q, (size_t)db->dim * sizeof(float), cv->info.version) % rv_learn_tdi_share(cv) == 0 &&
	    interleave(db, cv, q, r.rerank ? q : sq, hits, n, k, &kept))
		return kept;
	return keep;
}

size_t rv_db_learn_ef(const rv_db *db, const rv_search_route *rt, const float *q)
{
	size_t ef = db->ef_search;
	if (!rt->on)
		return ef;
	const rv_lversion *v = rt->away ? rt->away : rv_learn_find(db->ls, db->ls->active);
	unsigned use = db->ls->cfg.learners;
	uint32_t c;
	/* A version that changes no ranking leaves the ef alone too: the
	 * region's ef can be below ef_search (its recall just meets the
	 * target), and with nothing learned a search must rank as plain
	 * (measured on Fashion-MNIST with versions without learners: up to
	 * 2% NDCG@10 either way between checkpoints at a target of 0.95,
	 * 1.3% at 0.99). */
	if (!v || !((v->base && (use & RV_LEARN_BASE)) || (v->rerank && (use & RV_LEARN_GNN))))
		return ef;
	if (!v->regions || rv_rbank_assign(&c, NULL, v->regions, q) != RV_OK)
		return ef;
	/* Never above ef_search: the regions save effort where the target
	 * allows, they do not spend more than the collection was set to (at
	 * 0.99, uncapped, Fashion-MNIST's searches with learning cost 1.42x
	 * the CPU time of those without). */
	const rv_rbank_stats *s = rv_rbank_get_stats(v->regions, c);
	return s && s->best_ef && s->best_ef < ef ? s->best_ef : ef;
}

/* ======================================================================
 * Search ring
 * ==================================================================== */

/* Move the sides of the interleaved search just ranked (if it was) into
 * the ring beside the search ring. Caller holds fb_lock. */
static void record_sides(rv_db *db, size_t at, uint64_t id, const float *q, const rv_hnsw_hit *hits, size_t n)
{
	struct rv_learn_state *ls = db->ls;
	if (!ls)
		return;
	if (ls->tdi_ring && ls->tdi_cap == db->fb_ring_cap)
		ls->tdi_ring[at].id = 0;
	if (!ls->candidate)
		return;
	uint64_t key = tdi_key(db, q, hits, n);
	rv_tdi_entry t = { 0, 0, 0, { 0, 0 } };
	pthread_mutex_lock(&ls->tdi_lock);
	for (unsigned i = 0; i < RV_TDI_PENDING; i++) {
		if (ls->pending[i].id == key && ls->pending[i].n == n) {
			t = ls->pending[i];
			ls->pending[i].id = 0;
			break;
		}
	}
	pthread_mutex_unlock(&ls->tdi_lock);
	if (!t.id)
		return;
	if (!ls->tdi_ring) {
		/* Searches hold only the read lock: allocate under fb_lock. */
		ls->tdi_ring = rv_calloc(db->a, db->fb_ring_cap, sizeof *ls->tdi_ring);
		if (!ls->tdi_ring)
			return; /* this search just goes uncredited */
		ls->tdi_cap = db->fb_ring_cap;
	}
	t.id = id;
	ls->tdi_ring[at] = t;
}

uint64_t rv_db_learn_record(rv_db *db, const float *q, const rv_hnsw_hit *hits, size_t n)
{
	uint64_t id = 0;
	pthread_mutex_lock(&db->fb_lock);
	if (!db->fb_ring) {
		size_t per = (size_t)db->dim * sizeof(float) + sizeof(rv_fb_search);
		size_t cap = RV_FB_RING_BYTES / per;
		if (cap > RV_FB_SEARCHES)
			cap = RV_FB_SEARCHES;
		if (cap < 16)
			cap = 16;
		rv_fb_search *ring = rv_calloc(db->a, cap, sizeof *ring);
		float *qs = rv_malloc(db->a, cap * (size_t)db->dim * sizeof(float));
		if (!ring || !qs) {
			rv_dealloc(db->a, ring);
			rv_dealloc(db->a, qs);
			goto done;
		}
		db->fb_ring = ring;
		db->fb_ring_q = qs;
		db->fb_ring_cap = cap;
	}
	uint64_t c = ++db->fb_counter;
	id = db->fb_base + c;
	size_t at = c % db->fb_ring_cap;
	rv_fb_search *e = &db->fb_ring[at];
	e->id = id;
	e->n = (uint32_t)(n < RV_FB_SHOWN ? n : RV_FB_SHOWN);
	for (uint32_t i = 0; i < e->n; i++)
		e->slots[i] = hits[i].slot;
	memcpy(db->fb_ring_q + at * db->dim, q, (size_t)db->dim * sizeof(float));
	record_sides(db, at, id, q, hits, n);
done:
	pthread_mutex_unlock(&db->fb_lock);
	return id;
}

/* ======================================================================
 * Events
 * ==================================================================== */

static bool learnable(const rv_db *db) { return db->dim <= RV_LEARN_MAX_DIM; }

static rv_status ensure_adapter(rv_db *db)
{
	if (db->adapter)
		return RV_OK;
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = db->dim;
	o.rank = ADAPTER_RANK;
	o.lr = ADAPTER_LR;
	o.l2 = ADAPTER_L2;
	o.temperature = ADAPTER_TEMPERATURE;
	/* Rank by the metric the collection searches with: the adapted
	 * query's L2 distance, or its inner product (cosine: unit vectors). */
	o.score = db->metric == RV_METRIC_L2 ? RV_LEARN_SCORE_L2 : RV_LEARN_SCORE_DOT;
	o.seed = db->seed ^ 0x5eed;
	rv_err e = { { 0 } };
	rv_status st = rv_lora_create(&db->adapter, &o, db->a, &e);
	if (st != RV_OK)
		return rv_db_fail(db, st, "query adapter: %s", e.msg);
	return RV_OK;
}

/* Room for one more pending and replay event, allocated before anything
 * changes so that a failure leaves the handle as it was. */
static bool reserve_event(rv_db *db)
{
	size_t dim = db->dim;
	if (!db->fb_replay) {
		db->fb_replay = rv_malloc(db->a, RV_FB_REPLAY * sizeof *db->fb_replay);
		db->fb_replay_q = rv_malloc(db->a, RV_FB_REPLAY * dim * sizeof(float));
		if (!db->fb_replay || !db->fb_replay_q) {
			rv_dealloc(db->a, db->fb_replay);
			rv_dealloc(db->a, db->fb_replay_q);
			db->fb_replay = NULL;
			db->fb_replay_q = NULL;
			return false;
		}
	}
	if (db->n_fb_pending < db->fb_pending_cap)
		return true;
	size_t cap = db->fb_pending_cap ? db->fb_pending_cap * 2 : 64;
	rv_fb_event *ev = rv_realloc(db->a, db->fb_pending, cap * sizeof *ev);
	if (!ev)
		return false;
	db->fb_pending = ev;
	float *q = rv_realloc(db->a, db->fb_pending_q, cap * dim * sizeof(float));
	if (!q)
		return false; /* the larger event array is kept, harmless */
	db->fb_pending_q = q;
	db->fb_pending_cap = cap;
	return true;
}

static void replay_push(rv_db *db, const rv_fb_event *ev, const float *q)
{
	size_t i = db->fb_replay_next;
	db->fb_replay[i] = *ev;
	memcpy(db->fb_replay_q + i * db->dim, q, (size_t)db->dim * sizeof(float));
	db->fb_replay_next = (i + 1) % RV_FB_REPLAY;
	if (db->fb_replay_n < RV_FB_REPLAY)
		db->fb_replay_n++;
}

/* The MicroLoRA's step for one event (see the file comment). */
static void train(rv_db *db, const float *q, const uint32_t *shown, uint32_t n_shown, uint32_t pos,
		  uint32_t slot, float reward)
{
	if (reward == 0 || n_shown == 0)
		return;
	const float *item = db->vecs.ptr[slot];
	uint32_t others[RV_FB_SHOWN];
	uint32_t n = 0;
	if (reward > 0 && pos != 0) {
		for (uint32_t j = 0; j < n_shown && j < pos; j++)
			if (shown[j] != slot)
				others[n++] = shown[j];
	} else {
		for (uint32_t j = 0; j < n_shown; j++)
			if (shown[j] != slot)
				others[n++] = shown[j];
	}
	if (n == 0)
		return;
	/* The active BaseLoRA's delta is the offset: the micro adapter
	 * learns what the version does not already do (nothing of a
	 * BaseLoRA that does not act under its re-ranker). */
	struct rv_learn_state *ls = db->ls;
	rv_learn_ranker r;
	rv_learn_active_ranker(&r, db);
	const rv_lora *base = rv_learn_acting_base(&r);
	const float *offset = NULL;
	if (base && ls->scratch) {
		memset(ls->scratch, 0, (size_t)db->dim * sizeof(float));
		rv_lora_add_delta(ls->scratch, base, q);
		offset = ls->scratch;
	}
	/* One pair per event, the other item drawn from the candidates: the
	 * adapter's weight decay acts once per step, so several steps per
	 * event would decay it faster than one event's evidence builds it. */
	uint64_t h = rv_hash64(q, (size_t)db->dim * sizeof(float), ((uint64_t)slot << 32) ^ db->fb_total);
	const float *other = db->vecs.ptr[others[h % n]];
	rv_lora_event ev = { q, reward > 0 ? item : other, reward > 0 ? other : item, offset, fabsf(reward) };
	/* The first step starts A's first column along the query (see
	 * rv_lora_orient). */
	if (rv_lora_steps(db->adapter) == 0)
		rv_lora_orient(db->adapter, q);
	rv_lora_step(NULL, db->adapter, &ev);
	db->adapter_changed = true;
}

/* Record one validated event and learn from it. Caller holds the write
 * lock; q is the query as searched (dim floats). */
static rv_status add_event(rv_db *db, uint64_t search_id, const float *q, const uint32_t *shown, uint32_t n_shown,
			   uint32_t pos, uint32_t slot, const char *item_id, float reward)
{
	struct rv_learn_state *ls = db->ls;
	unsigned use = ls ? ls->cfg.learners : 0;
	bool learn = db->learning && learnable(db) && reward != 0 && (use & RV_LEARN_MICRO);
	rv_status st;
	if (learn && (st = ensure_adapter(db)) != RV_OK)
		return st;
	if (!reserve_event(db))
		return rv_db_fail(db, RV_ENOMEM, "out of memory for a feedback event");
	rv_fb_event ev;
	memset(&ev, 0, sizeof ev);
	ev.search_id = search_id;
	ev.time_ns = rv_learn_wall_ns();
	ev.reward = reward;
	ev.position = pos;
	ev.slot = slot;
	size_t len = strlen(item_id);
	ev.id_len = (uint8_t)len;
	memcpy(ev.id, item_id, len + 1);
	db->fb_pending[db->n_fb_pending] = ev;
	memcpy(db->fb_pending_q + db->n_fb_pending * db->dim, q, (size_t)db->dim * sizeof(float));
	db->n_fb_pending++;
	replay_push(db, &ev, q);
	db->fb_total++;
	if (learn)
		train(db, q, shown, n_shown, pos, slot, reward);
	if (db->learning && search_id && pos != RV_FB_NOT_SHOWN)
		rv_learn_credit(db, search_id, pos, reward);
	db->learn_dirty = true;
	db->dirty = true;
	rv_learn_maybe_start(db);
	return RV_OK;
}

static rv_status check_common(rv_db *db, const char *item_id, float reward)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (!item_id)
		return rv_db_fail(db, RV_EINVAL, "item id is NULL");
	size_t len = strlen(item_id);
	if (len < 1 || len > RV_MAX_ID_LEN)
		return rv_db_fail(db, RV_EINVAL, "item id length %zu out of range 1..%d", len, RV_MAX_ID_LEN);
	if (!isfinite(reward) || reward < -1.0f || reward > 1.0f)
		return rv_db_fail(db, RV_EINVAL, "reward %g out of range [-1, 1]", (double)reward);
	return RV_OK;
}

rv_status rv_db_feedback(rv_db *db, uint64_t search_id, const char *item_id, float reward)
{
	rv_status st = check_common(db, item_id, reward);
	if (st != RV_OK)
		return st;
	float *q = rv_malloc(db->a, (size_t)db->dim * sizeof(float));
	if (!q)
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	uint32_t shown[RV_FB_SHOWN], n_shown = 0;
	rv_db_write_lock(db);
	pthread_mutex_lock(&db->fb_lock);
	uint64_t c = search_id - db->fb_base;
	const rv_fb_search *e = NULL;
	if (db->fb_ring && search_id > db->fb_base && c <= db->fb_counter)
		e = &db->fb_ring[c % db->fb_ring_cap];
	if (e && e->id == search_id) {
		n_shown = e->n;
		memcpy(shown, e->slots, n_shown * sizeof *shown);
		memcpy(q, db->fb_ring_q + (c % db->fb_ring_cap) * db->dim, (size_t)db->dim * sizeof(float));
	} else {
		e = NULL;
	}
	pthread_mutex_unlock(&db->fb_lock);
	if (!e) {
		st = rv_db_fail(db, RV_ENOTFOUND,
				"search id %llu is unknown or expired (this handle remembers its last %zu searches)",
				(unsigned long long)search_id, db->fb_ring_cap ? db->fb_ring_cap : (size_t)RV_FB_SEARCHES);
		goto done;
	}
	uint32_t slot = rv_idmap_find(&db->idmap, item_id, strlen(item_id), db->ids);
	uint32_t pos = RV_FB_NOT_SHOWN;
	for (uint32_t i = 0; slot != RV_NO_SLOT && i < n_shown; i++)
		if (shown[i] == slot)
			pos = i;
	if (slot == RV_NO_SLOT || pos == RV_FB_NOT_SHOWN) {
		st = rv_db_fail(db, RV_EINVAL, "item \"%s\" is not among the %u hits of search %llu%s", item_id,
				n_shown, (unsigned long long)search_id,
				slot == RV_NO_SLOT ? " (no live point has that id)" : "");
		goto done;
	}
	st = add_event(db, search_id, q, shown, n_shown, pos, slot, item_id, reward);
done:
	rv_db_write_unlock(db);
	rv_dealloc(db->a, q);
	return st;
}

rv_status rv_db_feedback_vector(rv_db *db, const float *query, const char *item_id, float reward)
{
	rv_status st = check_common(db, item_id, reward);
	if (st != RV_OK)
		return st;
	if (!query)
		return rv_db_fail(db, RV_EINVAL, "query is NULL");
	for (uint32_t d = 0; d < db->dim; d++)
		if (!isfinite(query[d]))
			return rv_db_fail(db, RV_EINVAL, "query[%u] is %g, must be finite", d, (double)query[d]);
	rv_err e = { { 0 } };
	float *q = rv_malloc(db->a, (size_t)db->dim * sizeof(float) * 2);
	if (!q)
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	float *qa = q + db->dim;
	memcpy(q, query, (size_t)db->dim * sizeof(float));
	if (db->metric == RV_METRIC_COSINE && !rv_db_normalize(q, db->dim)) {
		rv_dealloc(db->a, q);
		return rv_db_fail(db, RV_EINVAL, "query is the zero vector, which has no cosine direction");
	}
	rv_hnsw_hit hits[RV_FB_VECTOR_SHOWN];
	uint32_t shown[RV_FB_VECTOR_SHOWN], n_shown = 0;
	size_t n = 0;
	rv_db_write_lock(db);
	uint32_t slot = rv_idmap_find(&db->idmap, item_id, strlen(item_id), db->ids);
	if (slot == RV_NO_SLOT) {
		st = rv_db_fail(db, RV_ENOTFOUND, "no point with id \"%s\"", item_id);
		goto done;
	}
	/* What a search would show now stands in for what was shown. */
	rv_search_route rt = rv_db_learn_route(db, q, 0);
	const float *sq = rv_db_learn_adapt(db, &rt, qa, q) ? qa : q;
	if ((st = rv_db_knn_locked(db, sq, RV_FB_VECTOR_SHOWN, hits, &n, &e)) != RV_OK) {
		rv_db_fail_err(db, st, &e);
		goto done;
	}
	uint32_t pos = RV_FB_NOT_SHOWN;
	for (size_t i = 0; i < n; i++) {
		shown[n_shown] = hits[i].slot;
		if (hits[i].slot == slot)
			pos = n_shown;
		n_shown++;
	}
	st = add_event(db, 0, q, shown, n_shown, pos, slot, item_id, reward);
done:
	rv_db_write_unlock(db);
	rv_dealloc(db->a, q);
	return st;
}

rv_status rv_db_set_learning(rv_db *db, int on)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (on && !learnable(db))
		return rv_db_fail(db, RV_EINVAL, "learning needs dimension <= %d, the collection has %u",
				  RV_LEARN_MAX_DIM, db->dim);
	rv_db_write_lock(db);
	if (db->learning != (on != 0)) {
		db->learning = on != 0;
		db->dirty = true;
	}
	rv_db_write_unlock(db);
	return RV_OK;
}
