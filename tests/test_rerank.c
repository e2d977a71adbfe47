/*
 * test_rerank.c - the GNN re-ranker of a collection (src/db/db_rerank.c):
 * it learns a hidden preference from position-biased clicks (held-out
 * NDCG@10 for SAGE, GCN and GAT), generalises to items added after
 * training (SAGE), keeps the distance order untrained, explains its
 * scores, moves priors per event, survives its byte form (round trip,
 * every flipped byte and truncation rejected, compaction's renumbering),
 * drops dead slots' priors, and fails allocations cleanly.
 *
 * The collection is built through the public API; the test then works
 * on slots through the internal headers, as the learning layer does.
 * Re-ranking and training times are printed, never asserted.
 */
#include <float.h>
#include <pthread.h>

#include "harness.h"

#include "db/db_rerank.h"
#include "index/hnsw_int.h"
#include "learn/learn.h"

/* ------------------------------------------------------------------------
 * A world with a hidden preference
 *
 * Items come in sub-clusters (tight groups) inside super-clusters; a
 * query is drawn like a new sub-centre of a super-cluster, so its nearest
 * items mix several sub-clusters. Users prefer the items of some
 * sub-clusters (those whose offset from their super-centre points along a
 * hidden direction): utility = -dist / spread + BONUS * preferred. They
 * are shown the top SHOWN by distance, examine position i with
 * probability 1 / (i + 1), and click the best item they examined;
 * sometimes they also reject the worst one they examined.
 * ---------------------------------------------------------------------- */

enum { D = 32, NSUPER = 10, NSUB = 12, PER_SUB = 12, POOL = 50, K = 10, SHOWN = 10 };
#define NITEMS (NSUPER * NSUB * PER_SUB)
#ifndef BONUS
#define BONUS 2.0
#endif
#ifndef SUB_SD
#define SUB_SD 0.35f
#endif
#ifndef ITEM_SD
#define ITEM_SD 0.2f
#endif
#ifndef PREF_P
#define PREF_P 0.4
#endif

typedef struct world {
	rv_db *db;
	float sup[NSUPER * D], subc[NSUPER * NSUB * D];
	bool pref[NSUPER * NSUB];
	float hidden[D];
	rv_rng rng;
	size_t n;         /* items upserted */
	size_t cap;
	float *x;         /* n x D */
	uint32_t *sub;    /* sub-cluster of each item */
	uint32_t *slot;   /* slot of each item */
	uint32_t *item_of_slot; /* slot -> item (cap entries) */
} world;

static const char *item_id(size_t i, char *buf)
{
	snprintf(buf, 32, "item-%zu", i);
	return buf;
}

static uint32_t slot_of_id(rv_db *db, const char *id)
{
	return rv_idmap_find(&db->idmap, id, strlen(id), db->ids);
}

/* Adds n items (per_sub per sub-cluster when n == 0 is not used: items
 * are spread round-robin over sub-clusters). */
static bool world_add(world *w, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2;
		w->x = realloc(w->x, w->cap * D * sizeof(float));
		w->sub = realloc(w->sub, w->cap * sizeof(uint32_t));
		w->slot = realloc(w->slot, w->cap * sizeof(uint32_t));
		w->item_of_slot = realloc(w->item_of_slot, w->cap * 2 * sizeof(uint32_t));
	}
	rv_point *p = calloc(n, sizeof *p);
	char (*ids)[32] = calloc(n, 32);
	for (size_t i = 0; i < n; i++) {
		size_t it = w->n + i;
		uint32_t s = (uint32_t)(it % (NSUPER * NSUB));
		w->sub[it] = s;
		for (size_t j = 0; j < D; j++)
			w->x[it * D + j] = w->subc[s * D + j] + ITEM_SD * rv_rng_gauss(&w->rng);
		p[i].id = item_id(it, ids[i]);
		p[i].vector = w->x + it * D;
	}
	rv_status st = rv_db_upsert(w->db, p, n);
	for (size_t i = 0; st == RV_OK && i < n; i++) {
		size_t it = w->n + i;
		w->slot[it] = slot_of_id(w->db, ids[i]);
		if (w->slot[it] >= w->cap * 2)
			st = RV_ERROR;
		else
			w->item_of_slot[w->slot[it]] = (uint32_t)it;
	}
	free(ids);
	free(p);
	w->n += n;
	return st == RV_OK;
}

static bool world_make(world *w, const char *name, uint64_t seed, const rv_allocator *alloc)
{
	memset(w, 0, sizeof *w);
	rv_rng_seed(&w->rng, seed);
	for (size_t i = 0; i < NSUPER * D; i++)
		w->sup[i] = 1.5f * rv_rng_gauss(&w->rng);
	double nh = 0;
	for (size_t j = 0; j < D; j++) {
		w->hidden[j] = rv_rng_gauss(&w->rng);
		nh += (double)w->hidden[j] * w->hidden[j];
	}
	for (size_t j = 0; j < D; j++)
		w->hidden[j] /= (float)sqrt(nh);
	for (size_t s = 0; s < NSUPER * NSUB; s++) {
		for (size_t j = 0; j < D; j++)
			w->subc[s * D + j] = w->sup[(s / NSUB) * D + j] + SUB_SD * rv_rng_gauss(&w->rng);
		w->pref[s] = rv_rng_uniform(&w->rng) < PREF_P;
	}
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = D;
	o.metric = RV_METRIC_L2;
	o.m = 8;
	o.ef_construction = 100;
	o.ef_search = 100;
	o.threads = 1;
	o.allocator = alloc;
	if (rv_db_create(&w->db, rv_test_path(name), &o) != RV_OK)
		return false;
	return world_add(w, NITEMS);
}

static void world_free(world *w)
{
	rv_db_close(w->db);
	free(w->x);
	free(w->sub);
	free(w->slot);
	free(w->item_of_slot);
}

/* Queries come from the super-clusters q_lo .. q_hi - 1. */
static size_t q_lo = 0, q_hi = NSUPER;

static void make_query(world *w, float *q)
{
	size_t g = q_lo + (size_t)rv_rng_below(&w->rng, q_hi - q_lo);
	for (size_t j = 0; j < D; j++)
		q[j] = w->sup[g * D + j] + SUB_SD * rv_rng_gauss(&w->rng);
}

/* Pool of POOL nearest (slots, ascending distance). */
static size_t pool_of(world *w, const float *q, rv_hnsw_hit *hits)
{
	size_t n = 0;
	rv_err e;
	if (rv_db_knn_locked(w->db, q, POOL, hits, &n, &e) != RV_OK)
		return 0;
	return n;
}

/* The users' preference for preferred items (0: none, they want the
 * nearest items and the plain ranking is already the best). */
static double bonus = BONUS;

/* Hidden utility of every hit of a pool. */
static void utilities(world *w, const float *q, const rv_hnsw_hit *hits, size_t n, double *u)
{
	double m = 0, m2 = 0;
	for (size_t i = 0; i < n; i++)
		m += hits[i].dist;
	m /= (double)n;
	for (size_t i = 0; i < n; i++)
		m2 += (hits[i].dist - m) * (hits[i].dist - m);
	double sd = sqrt(m2 / (double)n) + 1e-9;
	for (size_t i = 0; i < n; i++) {
		uint32_t it = w->item_of_slot[hits[i].slot];
		u[i] = -hits[i].dist / sd + (w->pref[w->sub[it]] ? bonus : 0);
	}
	(void)q;
}

/* NDCG@K of the order `ranked` (slots) against the hidden utility of
 * the pool: the true top K get gains K..1 by their true rank. */
static double ndcg(world *w, const float *q, const rv_hnsw_hit *pool, size_t n, const rv_hnsw_hit *ranked)
{
	double u[POOL];
	utilities(w, q, pool, n, u);
	int rank[POOL];
	for (size_t i = 0; i < n; i++) {
		rank[i] = 0;
		for (size_t j = 0; j < n; j++)
			rank[i] += u[j] > u[i] || (u[j] == u[i] && j < i);
	}
	double dcg = 0, idcg = 0;
	for (size_t r = 0; r < K && r < n; r++) {
		idcg += (double)(K - r) / log2((double)r + 2);
		for (size_t i = 0; i < n; i++)
			if (pool[i].slot == ranked[r].slot && rank[i] < K)
				dcg += (double)(K - rank[i]) / log2((double)r + 2);
	}
	return idcg > 0 ? dcg / idcg : 0;
}

/* Training samples from simulated users; queries and shown lists are
 * stored in the arrays given (nq x D, nq x SHOWN). */

static size_t simulate(world *w, size_t nq, float *qs, uint32_t *shown, rv_rerank_sample *out, bool with_negatives)
{
	size_t ns = 0;
	rv_hnsw_hit hits[POOL];
	double u[POOL];
	for (size_t i = 0; i < nq; i++) {
		float *q = qs + i * D;
		make_query(w, q);
		size_t n = pool_of(w, q, hits);
		if (n < SHOWN)
			continue;
		utilities(w, q, hits, n, u);
		uint32_t *sh = shown + i * SHOWN;
		for (size_t j = 0; j < SHOWN; j++)
			sh[j] = hits[j].slot;
		int best = -1, worst = -1;
		double best_u = 0;
		for (size_t j = 0; j < SHOWN; j++) {
			if (rv_rng_uniform(&w->rng) >= 1.0 / (double)(j + 1))
				continue;
			double noisy = u[j] + 0.3 * rv_rng_gauss(&w->rng);
			if (best < 0 || noisy > best_u) {
				best = (int)j;
				best_u = noisy;
			}
			if (worst < 0 || u[j] < u[worst])
				worst = (int)j;
		}
		out[ns++] = (rv_rerank_sample){ q, sh, SHOWN, (uint32_t)best, sh[best], 1.0f };
		if (with_negatives && worst != best && (bonus == 0 || !w->pref[w->sub[w->item_of_slot[sh[worst]]]]) &&
		    rv_rng_uniform(&w->rng) < 0.3)
			out[ns++] = (rv_rerank_sample){ q, sh, SHOWN, (uint32_t)worst, sh[worst], -1.0f };
	}
	return ns;
}

/* Mean NDCG@K over nq fresh queries: plain order and re-ranked. */
static void evaluate(world *w, const rv_reranker *r, size_t nq, double *plain, double *learned)
{
	rv_hnsw_hit pool[POOL], re[POOL];
	float q[D];
	double sp = 0, sl = 0;
	size_t cnt = 0;
	for (size_t i = 0; i < nq; i++) {
		make_query(w, q);
		size_t n = pool_of(w, q, pool);
		if (n < K)
			continue;
		memcpy(re, pool, n * sizeof *pool);
		size_t keep = rv_reranker_apply(r, w->db, q, re, n, K);
		if (keep != K)
			continue;
		sp += ndcg(w, q, pool, n, pool);
		sl += ndcg(w, q, pool, n, re);
		cnt++;
	}
	*plain = cnt ? sp / (double)cnt : 0;
	*learned = cnt ? sl / (double)cnt : 0;
}

enum { NTRAIN = 3000, NTEST = 300 };

/* Train a re-ranker of kind on simulated feedback; reports held-out NDCG. */
static void learns_preference(rv_gnn_kind kind, const char *name, double min_gain)
{
	world w;
	CHECK(world_make(&w, name, 11, NULL));
	float *qs = malloc(sizeof(float) * NTRAIN * D);
	uint32_t *shown = malloc(sizeof(uint32_t) * NTRAIN * SHOWN);
	rv_rerank_sample *s = malloc(sizeof *s * NTRAIN * 2);
	size_t ns = simulate(&w, NTRAIN, qs, shown, s, true);
	rv_reranker *r = NULL;
	rv_err e;
	double t0 = rv_now();
	rv_status st = rv_reranker_train(&r, w.db, kind, s, ns, 0.0f, NULL, 7, &e);
	double t1 = rv_now();
	double plain = 0, learned = 0;
	if (st == RV_OK)
		evaluate(&w, r, NTEST, &plain, &learned);
	fprintf(stderr, "   %s: %zu samples, %llu steps in %.2f s; held-out NDCG@10 plain %.4f, re-ranked %.4f (%+.1f%%)\n",
		name, ns, (unsigned long long)(r ? rv_reranker_steps(r) : 0), t1 - t0, plain, learned,
		plain > 0 ? 100.0 * (learned - plain) / plain : 0);
	rv_reranker_free(r);
	free(s);
	free(shown);
	free(qs);
	world_free(&w);
	CHECK_MSG(st == RV_OK, "%s", e.msg);
	CHECK_MSG(learned >= plain * (1.0 + min_gain), "%s: NDCG %.4f -> %.4f", name, plain, learned);
}

TEST(rerank_learns_hidden_preference_sage) { learns_preference(RV_GNN_SAGE, "sage", 0.10); }
TEST(rerank_learns_hidden_preference_gcn) { learns_preference(RV_GNN_GCN, "gcn", 0.10); }
TEST(rerank_learns_hidden_preference_gat) { learns_preference(RV_GNN_GAT, "gat", 0.10); }

/* Users without a preference (they want the nearest items; clicks are
 * as noisy and position-biased as above) teach nothing to add: the
 * re-ranked order must stay about as good as the plain one, which is
 * the best there is. */
TEST(rerank_no_preference_does_no_harm)
{
	bonus = 0;
	learns_preference(RV_GNN_SAGE, "sage, no preference", -0.03);
	bonus = BONUS;
}

/* Trains a SAGE (or kind) re-ranker on NTRAIN simulated queries of w. */
typedef struct trained {
	float *qs;
	uint32_t *shown;
	rv_rerank_sample *s;
	size_t ns;
	rv_reranker *r;
} trained;

static rv_status train_world(trained *t, world *w, rv_gnn_kind kind, size_t nq)
{
	rv_err e;
	t->qs = malloc(sizeof(float) * nq * D);
	t->shown = malloc(sizeof(uint32_t) * nq * SHOWN);
	t->s = malloc(sizeof *t->s * nq * 2);
	t->ns = simulate(w, nq, t->qs, t->shown, t->s, true);
	t->r = NULL;
	rv_status st = rv_reranker_train(&t->r, w->db, kind, t->s, t->ns, 0.0f, NULL, 7, &e);
	if (st != RV_OK)
		fprintf(stderr, "training failed: %s\n", e.msg);
	return st;
}

static void trained_free(trained *t)
{
	rv_reranker_free(t->r);
	free(t->s);
	free(t->shown);
	free(t->qs);
}

static void pool_slots(const rv_hnsw_hit *h, size_t n, uint32_t *slots)
{
	for (size_t i = 0; i < n; i++)
		slots[i] = h[i].slot;
}

/* Untrained (no samples): the learned score is the distance term alone,
 * so apply keeps the order of the hits exactly. */
TEST(rerank_untrained_keeps_distance_order)
{
	world w;
	CHECK(world_make(&w, "untrained", 3, NULL));
	rv_reranker *r = NULL;
	rv_err e;
	CHECK_MSG(rv_reranker_train(&r, w.db, RV_GNN_SAGE, NULL, 0, 0.0f, NULL, 1, &e) == RV_OK, "%s", e.msg);
	CHECK(rv_reranker_kind(r) == RV_GNN_SAGE && rv_reranker_steps(r) == 0);
	rv_hnsw_hit pool[POOL], re[POOL];
	float q[D];
	bool same = true;
	for (int i = 0; i < 50; i++) {
		make_query(&w, q);
		size_t n = pool_of(&w, q, pool);
		memcpy(re, pool, sizeof pool);
		same &= rv_reranker_apply(r, w.db, q, re, n, K) == K && memcmp(re, pool, n * sizeof *pool) == 0;
	}
	rv_reranker_free(r);
	world_free(&w);
	CHECK(same);
}

/* Items upserted after training (never in a sample, no prior, no cached
 * representation; some past the cache's size) move by their
 * neighbourhoods: preferred ones up, the others down. */
TEST(rerank_sage_inductive_new_items)
{
	world w;
	trained t;
	CHECK(world_make(&w, "inductive", 21, NULL));
	CHECK(train_world(&t, &w, RV_GNN_SAGE, NTRAIN) == RV_OK);
	rv_hnsw_hit pool[POOL], re[POOL];
	float q[D];
	/* Warm the cache first, so that later slots are past its end. */
	make_query(&w, q);
	size_t n = pool_of(&w, q, pool);
	rv_reranker_apply(t.r, w.db, q, pool, n, K);
	size_t old_n = w.n;
	CHECK(world_add(&w, 720));
	double up_pref = 0, up_other = 0, nd_plain = 0, nd_learned = 0;
	size_t n_pref = 0, n_other = 0, pools = 0, beyond = 0;
	bool no_prior = true;
	for (int i = 0; i < 400; i++) {
		make_query(&w, q);
		n = pool_of(&w, q, pool);
		memcpy(re, pool, sizeof pool);
		rv_reranker_apply(t.r, w.db, q, re, n, n);
		bool any = false;
		for (size_t a = 0; a < n; a++) {
			uint32_t it = w.item_of_slot[pool[a].slot];
			if (it < old_n)
				continue;
			any = true;
			beyond += pool[a].slot >= 2056;
			no_prior &= rv_reranker_prior(t.r, pool[a].slot) == 0;
			size_t b = 0;
			while (re[b].slot != pool[a].slot)
				b++;
			double up = (double)a - (double)b;
			if (w.pref[w.sub[it]]) {
				up_pref += up;
				n_pref++;
			} else {
				up_other += up;
				n_other++;
			}
		}
		if (any) {
			nd_plain += ndcg(&w, q, pool, n, pool);
			nd_learned += ndcg(&w, q, pool, n, re);
			pools++;
		}
	}
	up_pref /= (double)(n_pref ? n_pref : 1);
	up_other /= (double)(n_other ? n_other : 1);
	fprintf(stderr,
		"   new items in %zu pools (%zu past the cache): preferred move %+.2f places (%zu), others %+.2f (%zu); "
		"NDCG@10 there %.4f -> %.4f (%+.1f%%)\n",
		pools, beyond, up_pref, n_pref, up_other, n_other, nd_plain / (double)pools, nd_learned / (double)pools,
		100.0 * (nd_learned - nd_plain) / nd_plain);
	/* A fresh copy sizes its cache after the inserts: same scores for
	 * the items the first one computes on the fly. */
	rv_buf b;
	rv_buf_init(&b, NULL);
	rv_reranker *r2 = NULL;
	rv_err e;
	CHECK(rv_reranker_encode(&b, t.r, NULL) == RV_OK);
	CHECK_MSG(rv_reranker_decode(&r2, w.db, b.data, b.len, &e) == RV_OK, "%s", e.msg);
	uint32_t late[4] = { w.slot[w.n - 1], w.slot[w.n - 2], w.slot[w.n - 3], w.slot[old_n] };
	float s1[4], s2[4];
	CHECK(rv_reranker_score(s1, t.r, w.db, q, late, 4, &e) == RV_OK);
	CHECK(rv_reranker_score(s2, r2, w.db, q, late, 4, &e) == RV_OK);
	CHECK(memcmp(s1, s2, sizeof s1) == 0);
	rv_reranker_free(r2);
	rv_buf_free(&b);
	trained_free(&t);
	world_free(&w);
	CHECK(n_pref > 50 && n_other > 50 && beyond > 0);
	CHECK(no_prior);
	CHECK_MSG(up_pref >= 2.0 && up_pref - up_other >= 4.0, "preferred %+.2f, others %+.2f", up_pref, up_other);
	CHECK(nd_learned > nd_plain * 1.05);
}

/* apply sorts by rv_reranker_score; scores are the same cold and warm
 * (cache), in a clone, and apply keeps min(n, k). */
TEST(rerank_scores_consistent)
{
	world w;
	trained t;
	CHECK(world_make(&w, "consistent", 5, NULL));
	CHECK(train_world(&t, &w, RV_GNN_GAT, 800) == RV_OK);
	rv_reranker *c = NULL;
	rv_err e;
	CHECK(rv_reranker_clone(&c, t.r, NULL, &e) == RV_OK);
	CHECK(rv_reranker_kind(c) == RV_GNN_GAT);
	rv_hnsw_hit pool[POOL], re[POOL];
	uint32_t slots[POOL];
	float q[D], cold[POOL], warm[POOL], cl[POOL];
	bool sorted = true, same = true, perm = true;
	size_t before = rv_reranker_memory(t.r);
	for (int i = 0; i < 30; i++) {
		make_query(&w, q);
		size_t n = pool_of(&w, q, pool);
		pool_slots(pool, n, slots);
		CHECK(rv_reranker_score(cold, t.r, w.db, q, slots, n, &e) == RV_OK);
		CHECK(rv_reranker_score(warm, t.r, w.db, q, slots, n, &e) == RV_OK);
		CHECK(rv_reranker_score(cl, c, w.db, q, slots, n, &e) == RV_OK);
		same &= memcmp(cold, warm, n * sizeof(float)) == 0 && memcmp(cold, cl, n * sizeof(float)) == 0;
		memcpy(re, pool, sizeof pool);
		CHECK(rv_reranker_apply(t.r, w.db, q, re, n, 7) == 7);
		CHECK(rv_reranker_apply(t.r, w.db, q, re, 3, 7) == 3);
		memcpy(re, pool, sizeof pool);
		rv_reranker_apply(t.r, w.db, q, re, n, n);
		for (size_t a = 0; a < n; a++) {
			size_t b = 0;
			while (b < n && slots[b] != re[a].slot)
				b++;
			perm &= b < n && re[a].dist == pool[b].dist;
			if (a && b < n) {
				size_t p = 0;
				while (slots[p] != re[a - 1].slot)
					p++;
				sorted &= cold[p] >= cold[b];
			}
		}
	}
	size_t after = rv_reranker_memory(t.r);
	rv_reranker_free(c);
	trained_free(&t);
	world_free(&w);
	CHECK(same);
	CHECK(perm);
	CHECK(sorted);
	CHECK(after > before); /* the cache counts once made */
}

/* Many threads re-rank at once on a cold cache (rows filled by whoever
 * gets there first): every result equals the single-threaded one. */
typedef struct conc_job {
	world *w;
	const rv_reranker *r;
	const float *qs;
	const rv_hnsw_hit *pools;
	rv_hnsw_hit *out;
	size_t nq, first;
} conc_job;

static void *conc_run(void *p)
{
	conc_job *j = p;
	for (size_t k = 0; k < j->nq; k++) {
		size_t i = (j->first + k) % j->nq;
		memcpy(j->out + i * POOL, j->pools + i * POOL, POOL * sizeof(rv_hnsw_hit));
		rv_reranker_apply(j->r, j->w->db, j->qs + i * D, j->out + i * POOL, POOL, K);
	}
	return NULL;
}

TEST(rerank_concurrent_apply)
{
	enum { NQ = 60, NT = 4 };
	world w;
	trained t;
	CHECK(world_make(&w, "concurrent", 37, NULL));
	CHECK(train_world(&t, &w, RV_GNN_GAT, 300) == RV_OK);
	rv_reranker *fresh = NULL;
	rv_err e;
	CHECK(rv_reranker_clone(&fresh, t.r, NULL, &e) == RV_OK);
	float *qs = malloc(sizeof(float) * NQ * D);
	rv_hnsw_hit *pools = malloc(sizeof(rv_hnsw_hit) * NQ * POOL);
	rv_hnsw_hit *ref = malloc(sizeof(rv_hnsw_hit) * NQ * POOL);
	rv_hnsw_hit *out[NT];
	bool full = true;
	for (size_t i = 0; i < NQ; i++) {
		make_query(&w, qs + i * D);
		full &= pool_of(&w, qs + i * D, pools + i * POOL) == POOL;
	}
	CHECK(full);
	conc_job ref_job = { &w, t.r, qs, pools, ref, NQ, 0 };
	conc_run(&ref_job);
	pthread_t th[NT];
	conc_job jobs[NT];
	for (int k = 0; k < NT; k++) {
		out[k] = malloc(sizeof(rv_hnsw_hit) * NQ * POOL);
		jobs[k] = (conc_job){ &w, fresh, qs, pools, out[k], NQ, (size_t)k * NQ / NT };
		CHECK(pthread_create(&th[k], NULL, conc_run, &jobs[k]) == 0);
	}
	bool same = true;
	for (int k = 0; k < NT; k++) {
		pthread_join(th[k], NULL);
		for (size_t i = 0; i < NQ; i++)
			same &= memcmp(out[k] + i * POOL, ref + i * POOL, K * sizeof(rv_hnsw_hit)) == 0;
		free(out[k]);
	}
	free(ref);
	free(pools);
	free(qs);
	rv_reranker_free(fresh);
	trained_free(&t);
	world_free(&w);
	CHECK(same);
}

/* explain: the item and its live layer-0 neighbours, most influential
 * first; GAT weights are attention and sum to 1; SAGE and GCN shares sum
 * to 1 in absolute value; max truncates; dead slots are not found. */
TEST(rerank_explain)
{
	world w;
	CHECK(world_make(&w, "explain", 9, NULL));
	rv_gnn_kind kinds[3] = { RV_GNN_GAT, RV_GNN_SAGE, RV_GNN_GCN };
	for (int k = 0; k < 3; k++) {
		trained t;
		CHECK(train_world(&t, &w, kinds[k], 300) == RV_OK);
		float q[D];
		make_query(&w, q);
		rv_hnsw_hit pool[POOL];
		size_t n = pool_of(&w, q, pool);
		CHECK(n > 5);
		uint32_t sl[64];
		float wt[64];
		size_t cnt = 0;
		rv_err e;
		for (size_t i = 0; i < 5; i++) {
			uint32_t s = pool[i].slot;
			CHECK_MSG(rv_reranker_explain(t.r, w.db, kinds[k] == RV_GNN_GAT ? NULL : q, s, sl, wt, 64, &cnt, &e) ==
					  RV_OK,
				  "%s", e.msg);
			const rv_hnsw *h = w.db->index;
			const uint32_t *links = h->l0 + (size_t)s * h->l0_stride;
			CHECK(cnt == (size_t)links[0] + 1);
			double sum = 0, sabs = 0;
			bool self = false, members = true, order = true;
			for (size_t j = 0; j < cnt; j++) {
				sum += wt[j];
				sabs += fabs(wt[j]);
				self |= sl[j] == s;
				bool in = sl[j] == s;
				for (uint32_t l = 0; l < links[0]; l++)
					in |= links[1 + l] == sl[j];
				members &= in;
				if (j)
					order &= fabsf(wt[j - 1]) >= fabsf(wt[j]);
			}
			CHECK(self && members && order);
			if (kinds[k] == RV_GNN_GAT) {
				CHECK_MSG(fabs(sum - 1) < 1e-4, "GAT weights sum to %g", sum);
				for (size_t j = 0; j < cnt; j++)
					CHECK(wt[j] >= 0);
			} else {
				CHECK_MSG(fabs(sabs - 1) < 1e-4, "shares sum to %g in absolute value", sabs);
			}
			if (i == 0 && k == 0)
				fprintf(stderr, "   GAT explain of slot %u: %zu inputs, top %u (%.3f), %u (%.3f), %u (%.3f)\n", s,
					cnt, sl[0], wt[0], sl[1], wt[1], sl[2], wt[2]);
		}
		uint32_t s0 = pool[0].slot;
		CHECK(rv_reranker_explain(t.r, w.db, q, s0, sl, wt, 2, &cnt, &e) == RV_OK && cnt == 2);
		if (kinds[k] == RV_GNN_SAGE)
			CHECK(rv_reranker_explain(t.r, w.db, NULL, s0, sl, wt, 2, &cnt, &e) == RV_EINVAL);
		CHECK(rv_reranker_explain(t.r, w.db, q, w.db->vecs.n + 5, sl, wt, 2, &cnt, &e) == RV_ENOTFOUND);
		trained_free(&t);
	}
	/* A deleted item is not found. */
	trained t;
	CHECK(train_world(&t, &w, RV_GNN_SAGE, 100) == RV_OK);
	char id[32];
	const char *ids[1] = { item_id(3, id) };
	CHECK(rv_db_delete(w.db, ids, 1, NULL) == RV_OK);
	uint32_t sl[4];
	float wt[4];
	size_t cnt;
	rv_err e;
	float q[D] = { 0 };
	CHECK(rv_reranker_explain(t.r, w.db, q, w.slot[3], sl, wt, 4, &cnt, &e) == RV_ENOTFOUND);
	trained_free(&t);
	world_free(&w);
}

/* encode -> decode gives identical scores and priors; every flipped byte
 * and every truncation is RV_ECORRUPT; a collection of another dimension
 * is refused. */
TEST(rerank_encode_decode_roundtrip_and_corruption)
{
	world w;
	trained t;
	CHECK(world_make(&w, "codec", 13, NULL));
	CHECK(train_world(&t, &w, RV_GNN_GAT, 400) == RV_OK);
	rv_err e;
	rv_buf b, b2;
	rv_buf_init(&b, NULL);
	rv_buf_init(&b2, NULL);
	CHECK(rv_reranker_encode(&b, t.r, NULL) == RV_OK);
	rv_reranker *r2 = NULL;
	CHECK_MSG(rv_reranker_decode(&r2, w.db, b.data, b.len, &e) == RV_OK, "%s", e.msg);
	CHECK(rv_reranker_kind(r2) == RV_GNN_GAT && rv_reranker_steps(r2) == rv_reranker_steps(t.r));
	/* Re-encoding gives the same bytes. */
	CHECK(rv_reranker_encode(&b2, r2, NULL) == RV_OK);
	CHECK(b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0);
	/* A blob whose "observed" count (bytes 44..51, from the versions that
	 * stepped priors per event) is not 0 still decodes, to the same
	 * model, and encodes with 0 there. */
	CHECK(b.len > 60 && rv_get_u64(b.data + 44) == 0);
	rv_put_u64(b2.data + 44, 20);
	rv_put_u64(b2.data + b2.len - 8, rv_hash64(b2.data, b2.len - 8, 0));
	rv_reranker *r3 = NULL;
	CHECK_MSG(rv_reranker_decode(&r3, w.db, b2.data, b2.len, &e) == RV_OK, "%s", e.msg);
	b2.len = 0;
	CHECK(rv_reranker_encode(&b2, r3, NULL) == RV_OK);
	CHECK(b2.len == b.len && memcmp(b.data, b2.data, b.len) == 0);
	rv_reranker_free(r3);
	/* A subnormal weight (the first, at byte 56) is served as 0: every
	 * product with one would cost the CPU a microcode assist. */
	float tiny = 1e-40f, got;
	uint32_t bits;
	memcpy(&bits, &tiny, 4);
	CHECK(tiny != 0 && fabsf(tiny) < FLT_MIN);
	rv_put_u32(b2.data + 56, bits);
	rv_put_u64(b2.data + b2.len - 8, rv_hash64(b2.data, b2.len - 8, 0));
	r3 = NULL;
	CHECK_MSG(rv_reranker_decode(&r3, w.db, b2.data, b2.len, &e) == RV_OK, "%s", e.msg);
	b2.len = 0;
	CHECK(rv_reranker_encode(&b2, r3, NULL) == RV_OK);
	bits = rv_get_u32(b2.data + 56);
	memcpy(&got, &bits, 4);
	CHECK(got == 0.0f);
	rv_reranker_free(r3);
	bool same = true;
	size_t with_prior = 0;
	for (int i = 0; i < 20; i++) {
		float q[D], s1[POOL], s2[POOL];
		uint32_t slots[POOL];
		rv_hnsw_hit pool[POOL];
		make_query(&w, q);
		size_t n = pool_of(&w, q, pool);
		pool_slots(pool, n, slots);
		CHECK(rv_reranker_score(s1, t.r, w.db, q, slots, n, &e) == RV_OK);
		CHECK(rv_reranker_score(s2, r2, w.db, q, slots, n, &e) == RV_OK);
		same &= memcmp(s1, s2, n * sizeof(float)) == 0;
	}
	for (size_t i = 0; i < w.n; i++) {
		same &= rv_reranker_prior(t.r, w.slot[i]) == rv_reranker_prior(r2, w.slot[i]);
		with_prior += rv_reranker_prior(t.r, w.slot[i]) != 0;
	}
	CHECK(same);
	CHECK(with_prior > 100);
	rv_reranker_free(r2);
	size_t bad = 0;
	for (size_t i = 0; i < b.len; i++) {
		uint8_t keep = b.data[i];
		b.data[i] ^= (uint8_t)(1u << (i % 8));
		r2 = NULL;
		rv_status st = rv_reranker_decode(&r2, w.db, b.data, b.len, &e);
		b.data[i] = keep;
		bad += st != RV_ECORRUPT || r2 != NULL;
	}
	for (size_t len = 0; len < b.len; len += 1 + len / 16) {
		r2 = NULL;
		rv_status st = rv_reranker_decode(&r2, w.db, b.data, len, &e);
		bad += st != RV_ECORRUPT || r2 != NULL;
	}
	CHECK_MSG(bad == 0, "%zu corrupt blobs accepted", bad);
	fprintf(stderr, "   %zu bytes (%zu priors); %zu flips and truncations rejected\n", b.len, with_prior, b.len);
	/* Another collection of another dimension. */
	rv_db *other;
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = D + 1;
	CHECK(rv_db_create(&other, rv_test_path("codec-other"), &o) == RV_OK);
	CHECK(rv_reranker_decode(&r2, other, b.data, b.len, &e) == RV_ECORRUPT);
	rv_db_close(other);
	rv_buf_free(&b);
	rv_buf_free(&b2);
	trained_free(&t);
	world_free(&w);
}

/* EWC++: workload A asks near half the super-clusters; B near the other
 * half, with every preference reversed (taste changed). A re-ranker that
 * goes on from A's with the anchor keeps more of A's gain than one that
 * goes on without it, and still learns B; the Fisher estimate it keeps
 * survives encode and decode. Two parts hold A: the l2 term pulling
 * towards the anchor instead of zero, and the Fisher-weighted pull; the
 * second is measured alone against an anchor of negligible strength
 * (measured: 98% kept, 86% with the l2 part alone, 32% without). */
TEST(rerank_ewc_keeps_earlier_workload)
{
	enum { NQ = 2000 };
	const float EWC = 10.0f;
	world w;
	CHECK(world_make(&w, "ewc", 19, NULL));
	float *qs = malloc(sizeof(float) * NQ * D);
	uint32_t *shown = malloc(sizeof(uint32_t) * NQ * SHOWN);
	rv_rerank_sample *s = malloc(sizeof *s * NQ * 2);
	rv_reranker *ra = NULL, *plain_a = NULL, *r1 = NULL, *r2 = NULL, *r3 = NULL;
	rv_err e;
	rv_buf b, b2;
	rv_buf_init(&b, NULL);
	rv_buf_init(&b2, NULL);
	q_lo = 0;
	q_hi = NSUPER / 2;
	size_t ns = simulate(&w, NQ, qs, shown, s, true);
	CHECK_MSG(rv_reranker_train(&ra, w.db, RV_GNN_SAGE, s, ns, EWC, NULL, 7, &e) == RV_OK, "%s", e.msg);
	CHECK_MSG(rv_reranker_train(&plain_a, w.db, RV_GNN_SAGE, s, ns, 0.0f, NULL, 7, &e) == RV_OK, "%s", e.msg);
	double p_a, l_a;
	rv_rng_seed(&w.rng, 77);
	evaluate(&w, ra, 1000, &p_a, &l_a);
	/* The estimate is part of the byte form: one float per weight and
	 * per prior more, and it round-trips. */
	CHECK(rv_reranker_encode(&b, ra, NULL) == RV_OK && rv_reranker_encode(&b2, plain_a, NULL) == RV_OK);
	size_t nw = rv_get_u32(b.data + 52); /* n_theta */
	CHECK_MSG(b.len >= b2.len + 4 * nw, "%zu bytes with the estimate, %zu without, %zu weights", b.len, b2.len, nw);
	rv_reranker *dec = NULL;
	CHECK_MSG(rv_reranker_decode(&dec, w.db, b.data, b.len, &e) == RV_OK, "%s", e.msg);
	b2.len = 0;
	CHECK(rv_reranker_encode(&b2, dec, NULL) == RV_OK);
	{
		size_t at = 0;
		while (at < b.len && at < b2.len && b.data[at] == b2.data[at])
			at++;
		CHECK_MSG(b2.len == b.len && at == b.len, "lengths %zu %zu, first difference at %zu", b.len, b2.len, at);
	}

	/* Workload B, going on from the decoded A with and without EWC++. */
	for (size_t i = 0; i < NSUPER * NSUB; i++)
		w.pref[i] = !w.pref[i];
	q_lo = NSUPER / 2;
	q_hi = NSUPER;
	ns = simulate(&w, NQ, qs, shown, s, true);
	CHECK(rv_reranker_clone(&r1, dec, NULL, &e) == RV_OK && rv_reranker_clone(&r2, dec, NULL, &e) == RV_OK &&
	      rv_reranker_clone(&r3, dec, NULL, &e) == RV_OK);
	CHECK_MSG(rv_reranker_train(&r1, w.db, RV_GNN_SAGE, s, ns, EWC, NULL, 8, &e) == RV_OK, "%s", e.msg);
	CHECK_MSG(rv_reranker_train(&r2, w.db, RV_GNN_SAGE, s, ns, 0.0f, NULL, 8, &e) == RV_OK, "%s", e.msg);
	CHECK_MSG(rv_reranker_train(&r3, w.db, RV_GNN_SAGE, s, ns, 1e-6f, NULL, 8, &e) == RV_OK, "%s", e.msg);
	double p_b, l_b1, l_b2;
	evaluate(&w, r1, NTEST, &p_b, &l_b1);
	evaluate(&w, r2, NTEST, &p_b, &l_b2);
	/* Back to A. */
	for (size_t i = 0; i < NSUPER * NSUB; i++)
		w.pref[i] = !w.pref[i];
	q_lo = 0;
	q_hi = NSUPER / 2;
	/* The same 1000 queries for the three (paired). */
	double p1, l1, p2, l2, p3, l3;
	rv_rng_seed(&w.rng, 77);
	evaluate(&w, r1, 1000, &p1, &l1);
	rv_rng_seed(&w.rng, 77);
	evaluate(&w, r2, 1000, &p2, &l2);
	rv_rng_seed(&w.rng, 77);
	evaluate(&w, r3, 1000, &p3, &l3);
	q_lo = 0;
	q_hi = NSUPER;
	double kept1 = (l1 - p1) / (l_a - p_a), kept2 = (l2 - p2) / (l_a - p_a), kept3 = (l3 - p3) / (l_a - p_a);
	fprintf(stderr,
		"   A: NDCG@10 %.4f -> %.4f; after B: kept %.0f%% with EWC++ (lambda %g), %.0f%% with the anchor's "
		"l2 part alone, %.0f%% without; B: %.4f -> %.4f with, %.4f without\n",
		p_a, l_a, 100 * kept1, (double)EWC, 100 * kept3, 100 * kept2, p_b, l_b1, l_b2);
	rv_reranker_free(dec);
	rv_reranker_free(r1);
	rv_reranker_free(r2);
	rv_reranker_free(r3);
	rv_reranker_free(ra);
	rv_reranker_free(plain_a);
	rv_buf_free(&b);
	rv_buf_free(&b2);
	free(s);
	free(shown);
	free(qs);
	world_free(&w);
	CHECK_MSG(l_a > p_a * 1.1, "A was not learned: %.4f -> %.4f", p_a, l_a);
	CHECK_MSG(kept1 > kept2 + 0.15, "kept %.2f with EWC++, %.2f without", kept1, kept2);
	CHECK_MSG(kept1 > kept3 + 0.06, "kept %.2f with EWC++, %.2f with its l2 part alone", kept1, kept3);
	CHECK_MSG(l_b1 > p_b * 1.05, "B not learned with EWC++: %.4f -> %.4f", p_b, l_b1);
}

/* Compaction renumbers slots: encoding through the same old_to_new map
 * keeps each prior with its item, and drops the deleted items' ones. */
TEST(rerank_compaction_remap_keeps_priors)
{
	world w;
	trained t;
	CHECK(world_make(&w, "remap", 17, NULL));
	CHECK(train_world(&t, &w, RV_GNN_SAGE, 400) == RV_OK);
	CHECK(rv_db_commit(w.db) == RV_OK);
	/* Delete every 7th item, including some with priors. */
	size_t del_with_prior = 0;
	char (*idbuf)[32] = malloc(w.n * 32);
	const char **ids = malloc(w.n * sizeof *ids);
	size_t nd = 0;
	for (size_t i = 0; i < w.n; i += 7) {
		ids[nd++] = item_id(i, idbuf[i]);
		del_with_prior += rv_reranker_prior(t.r, w.slot[i]) != 0;
	}
	CHECK(rv_db_delete(w.db, ids, nd, NULL) == RV_OK);
	CHECK(rv_db_commit(w.db) == RV_OK);
	/* The map compaction uses: live slots keep their order. */
	uint32_t nslots = w.db->vecs.n, next = 0;
	uint32_t *map = malloc(nslots * sizeof *map);
	for (uint32_t s = 0; s < nslots; s++)
		map[s] = (w.db->flags[s] & RV_SLOT_LIVE) ? next++ : RV_NO_SLOT;
	float *before = calloc(w.n, sizeof(float));
	size_t kept_with_prior = 0;
	for (size_t i = 0; i < w.n; i++) {
		before[i] = rv_reranker_prior(t.r, w.slot[i]);
		kept_with_prior += i % 7 != 0 && before[i] != 0;
	}
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_reranker_encode(&b, t.r, map) == RV_OK);
	CHECK(rv_db_compact(w.db) == RV_OK);
	rv_reranker *r2 = NULL;
	rv_err e;
	CHECK_MSG(rv_reranker_decode(&r2, w.db, b.data, b.len, &e) == RV_OK, "%s", e.msg);
	bool moved = true, kept = true;
	size_t found = 0;
	for (size_t i = 0; i < w.n; i++) {
		if (i % 7 == 0)
			continue;
		char id[32];
		uint32_t s = slot_of_id(w.db, item_id(i, id));
		moved &= s == map[w.slot[i]];
		kept &= rv_reranker_prior(r2, s) == before[i];
		found += rv_reranker_prior(r2, s) != 0;
	}
	/* Nothing else holds a prior: the count of priors is the kept ones. */
	rv_buf b2;
	rv_buf_init(&b2, NULL);
	CHECK(rv_reranker_encode(&b2, r2, NULL) == RV_OK);
	fprintf(stderr, "   %zu priors kept through compaction, %zu dropped with their items\n", found, del_with_prior);
	rv_reranker_free(r2);
	rv_buf_free(&b2);
	rv_buf_free(&b);
	free(before);
	free(map);
	free(ids);
	free(idbuf);
	trained_free(&t);
	world_free(&w);
	CHECK(moved);
	CHECK(kept);
	CHECK(found == kept_with_prior && found > 50 && del_with_prior > 0);
}

/* Dead slots: a deleted item's prior is dropped by further training and
 * by decoding; a replaced item (new slot) starts without a prior. */
TEST(rerank_dead_slots_dropped)
{
	world w;
	trained t;
	CHECK(world_make(&w, "dead", 23, NULL));
	CHECK(train_world(&t, &w, RV_GNN_SAGE, 400) == RV_OK);
	size_t victim = SIZE_MAX;
	for (size_t i = 0; i < w.n && victim == SIZE_MAX; i++)
		if (rv_reranker_prior(t.r, w.slot[i]) != 0)
			victim = i;
	CHECK(victim != SIZE_MAX);
	uint32_t old_slot = w.slot[victim];
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_reranker_encode(&b, t.r, NULL) == RV_OK);
	/* Replace it (upsert of the same id: a new slot). */
	char id[32];
	rv_point p = { item_id(victim, id), 0, w.x + victim * D, NULL, 0 };
	CHECK(rv_db_upsert(w.db, &p, 1) == RV_OK);
	uint32_t new_slot = slot_of_id(w.db, id);
	CHECK(new_slot != old_slot);
	rv_reranker *r2 = NULL;
	rv_err e;
	CHECK(rv_reranker_decode(&r2, w.db, b.data, b.len, &e) == RV_OK);
	CHECK(rv_reranker_prior(r2, old_slot) == 0 && rv_reranker_prior(r2, new_slot) == 0);
	/* Going on training with samples naming the dead slot. */
	CHECK(rv_reranker_train(&r2, w.db, RV_GNN_SAGE, t.s, 50, 0.0f, NULL, 3, &e) == RV_OK);
	CHECK(rv_reranker_prior(r2, old_slot) == 0);
	CHECK(rv_reranker_steps(r2) > rv_reranker_steps(t.r));
	/* Training on the original (with the prior) also drops it. */
	CHECK(rv_reranker_prior(t.r, old_slot) != 0);
	CHECK(rv_reranker_train(&t.r, w.db, RV_GNN_SAGE, t.s, 10, 0.0f, NULL, 3, &e) == RV_OK);
	CHECK(rv_reranker_prior(t.r, old_slot) == 0);
	rv_reranker_free(r2);
	rv_buf_free(&b);
	trained_free(&t);
	world_free(&w);
}

TEST(rerank_rejects_bad_input)
{
	world w;
	CHECK(world_make(&w, "badinput", 29, NULL));
	float q[D] = { 0 };
	uint32_t shown[3] = { w.slot[0], w.slot[1], w.slot[2] };
	rv_rerank_sample s = { q, shown, 3, 1, w.slot[1], 1.0f };
	rv_reranker *r = NULL;
	rv_err e;
	CHECK(rv_reranker_train(&r, w.db, (rv_gnn_kind)3, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL && r == NULL);
	fprintf(stderr, "   %s\n", e.msg);
	s.reward = 1.5f;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	s.reward = NAN;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	s.reward = 1;
	s.position = 3;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	fprintf(stderr, "   %s\n", e.msg);
	s.position = 1;
	q[5] = INFINITY;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	q[5] = 0;
	s.query = NULL;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &s, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	s.query = q;
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, NULL, 1, 0.0f, NULL, 1, &e) == RV_EINVAL);
	CHECK(r == NULL);
	/* Shown slots that are out of range or not live are skipped; a
	 * position whose entry is another item is looked up by slot. */
	uint32_t odd[4] = { UINT32_MAX, w.slot[5], 999999, w.slot[1] };
	rv_rerank_sample ok = { q, odd, 4, 0, w.slot[1], 1.0f };
	CHECK(rv_reranker_train(&r, w.db, RV_GNN_SAGE, &ok, 1, 0.0f, NULL, 1, &e) == RV_OK);
	CHECK(rv_reranker_steps(r) > 0);
	uint32_t bogus = w.db->vecs.n + 10;
	float sc;
	CHECK(rv_reranker_score(&sc, r, w.db, q, &bogus, 1, &e) == RV_EINVAL);
	rv_reranker_free(r);
	world_free(&w);
}

/* Every allocation of train, warm, clone, encode, decode, score and
 * explain fails in turn: RV_ENOMEM, nothing leaked, the re-ranker as it
 * was; apply on a warm cache allocates nothing, and on a cold one keeps
 * the order it was given when it cannot compute a representation. */
TEST(rerank_allocation_failures)
{
	rv_test_alloc ta;
	rv_test_alloc_init(&ta);
	world w;
	CHECK(world_make(&w, "alloc", 31, &ta.hooks));
	trained t;
	CHECK(train_world(&t, &w, RV_GNN_GAT, 60) == RV_OK);
	rv_err e;
	long live = ta.live;
	size_t fails = 0;
	/* train (going on from t.r) */
	for (long n = 1;; n++) {
		rv_reranker *keep = t.r;
		ta.fail_at = n;
		rv_status st = rv_reranker_train(&t.r, w.db, RV_GNN_GAT, t.s, t.ns, 0.0f, NULL, 5, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK_MSG(st == RV_ENOMEM && t.r == keep && ta.live == live, "train fail %ld: %d, live %ld vs %ld", n,
			  (int)st, ta.live, live);
		fails++;
	}
	live = ta.live;
	/* warm: a failure keeps what was computed (the cache stays) */
	for (long n = 1;; n++) {
		ta.fail_at = n;
		rv_status st = rv_reranker_warm(t.r, w.db, 1, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM && ta.live <= live + 3);
		fails++;
	}
	live = ta.live; /* warm made the cache */
	/* clone */
	for (long n = 1;; n++) {
		rv_reranker *c = NULL;
		ta.fail_at = n;
		rv_status st = rv_reranker_clone(&c, t.r, &ta.hooks, &e);
		ta.fail_at = 0;
		if (st == RV_OK) {
			rv_reranker_free(c);
			break;
		}
		CHECK(st == RV_ENOMEM && c == NULL && ta.live == live);
		fails++;
	}
	/* encode, decode */
	rv_buf b;
	for (long n = 1;; n++) {
		rv_buf_init(&b, &ta.hooks);
		ta.fail_at = n;
		rv_status st = rv_reranker_encode(&b, t.r, NULL);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		rv_buf_free(&b);
		CHECK(st == RV_ENOMEM && ta.live == live);
		fails++;
	}
	long live_b = ta.live;
	for (long n = 1;; n++) {
		rv_reranker *d = NULL;
		ta.fail_at = n;
		rv_status st = rv_reranker_decode(&d, w.db, b.data, b.len, &e);
		ta.fail_at = 0;
		if (st == RV_OK) {
			rv_reranker_free(d);
			break;
		}
		CHECK(st == RV_ENOMEM && d == NULL && ta.live == live_b);
		fails++;
	}
	rv_buf_free(&b);
	/* score, explain, apply */
	float q[D], sc[POOL];
	uint32_t slots[POOL], es[64];
	float ew[64];
	rv_hnsw_hit pool[POOL], re[POOL], want[POOL];
	/* A query whose top K the re-ranker changes, so that a kept order
	 * and a re-ranked one tell apart below. */
	size_t np = 0;
	bool moved = false;
	for (int i = 0; i < 100 && !moved; i++) {
		make_query(&w, q);
		np = pool_of(&w, q, pool);
		memcpy(want, pool, sizeof pool);
		moved = rv_reranker_apply(t.r, w.db, q, want, np, K) == K && memcmp(want, pool, K * sizeof *pool) != 0;
	}
	CHECK(moved);
	pool_slots(pool, np, slots);
	for (long n = 1;; n++) {
		ta.fail_at = n;
		rv_status st = rv_reranker_score(sc, t.r, w.db, q, slots, np, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM && ta.live == live);
		fails++;
	}
	for (long n = 1;; n++) {
		size_t cnt = 99;
		ta.fail_at = n;
		rv_status st = rv_reranker_explain(t.r, w.db, q, slots[0], es, ew, 64, &cnt, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM && cnt == 0 && ta.live == live);
		fails++;
	}
	long count0 = ta.count;
	memcpy(re, pool, sizeof pool);
	ta.fail_at = 1;
	CHECK(rv_reranker_apply(t.r, w.db, q, re, np, K) == K);
	ta.fail_at = 0;
	CHECK(ta.count == count0 && ta.live == live && memcmp(re, want, np * sizeof *re) == 0);
	/* A clone of the warm re-ranker takes its cache: apply allocates
	 * nothing there either. */
	rv_reranker *cl = NULL;
	CHECK(rv_reranker_clone(&cl, t.r, &ta.hooks, &e) == RV_OK);
	CHECK(rv_reranker_memory(cl) == rv_reranker_memory(t.r));
	long live_cl = ta.live;
	count0 = ta.count;
	memcpy(re, pool, sizeof pool);
	ta.fail_at = 1;
	CHECK(rv_reranker_apply(cl, w.db, q, re, np, K) == K);
	ta.fail_at = 0;
	CHECK(ta.count == count0 && ta.live == live_cl && memcmp(re, want, np * sizeof *re) == 0);
	rv_reranker_free(cl);
	/* A decoded copy starts cold: each failure either leaves the order
	 * as it was given or still reaches the re-ranked one. */
	rv_reranker *cold = NULL;
	rv_buf_init(&b, &ta.hooks);
	CHECK(rv_reranker_encode(&b, t.r, NULL) == RV_OK);
	CHECK(rv_reranker_decode(&cold, w.db, b.data, b.len, &e) == RV_OK);
	rv_buf_free(&b);
	long live_c = ta.live;
	size_t kept_order = 0;
	for (long n = 1; n < 6; n++) {
		memcpy(re, pool, sizeof pool);
		ta.fail_at = n;
		size_t keep = rv_reranker_apply(cold, w.db, q, re, np, K);
		ta.fail_at = 0;
		CHECK(keep == K);
		bool as_given = memcmp(re, pool, np * sizeof *re) == 0;
		CHECK(as_given || memcmp(re, want, K * sizeof *re) == 0);
		kept_order += as_given;
		if (ta.live > live_c) {
			/* The cache was made: the rest runs warm or fills it. */
			break;
		}
	}
	CHECK(kept_order > 0);
	rv_reranker_free(cold);
	fprintf(stderr, "   %zu injected allocation failures, all clean\n", fails);
	trained_free(&t);
	world_free(&w);
	CHECK(ta.live == 0);
}

/* ------------------------------------------------------------------------
 * Speed at d = 384 (printed, not asserted)
 * ---------------------------------------------------------------------- */

TEST(slow_rerank_latency_d384)
{
	enum { BD = 384, BN = 3000, BP = 100, BQ = 200, BT = 150 };
	float *x = rv_test_clustered_vectors(BN, BD, 40, 77);
	rv_db *db;
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = BD;
	o.metric = RV_METRIC_COSINE;
	o.m = 16;
	o.ef_construction = 100;
	o.ef_search = BP;
	CHECK(rv_db_create(&db, rv_test_path("latency"), &o) == RV_OK);
	rv_point *p = calloc(BN, sizeof *p);
	char (*ids)[32] = calloc(BN, 32);
	for (size_t i = 0; i < BN; i++) {
		p[i].id = item_id(i, ids[i]);
		p[i].vector = x + i * BD;
	}
	CHECK(rv_db_upsert(db, p, BN) == RV_OK);
	/* Queries near items; a position-biased user clicks an item of the
	 * top ten (favouring clusters by slot parity, which is arbitrary but
	 * consistent). */
	rv_rng rng;
	rv_rng_seed(&rng, 5);
	float *qs = malloc(sizeof(float) * BQ * BD);
	rv_hnsw_hit *pools = malloc(sizeof(rv_hnsw_hit) * BQ * BP);
	size_t *pn = malloc(sizeof(size_t) * BQ);
	uint32_t *shown = malloc(sizeof(uint32_t) * BQ * SHOWN);
	rv_rerank_sample *s = malloc(sizeof *s * BT);
	rv_err e;
	for (size_t i = 0; i < BQ; i++) {
		float *q = qs + i * BD;
		const float *base = x + (size_t)rv_rng_below(&rng, BN) * BD;
		double nn = 0;
		for (size_t j = 0; j < BD; j++) {
			q[j] = base[j] + 0.3f * rv_rng_gauss(&rng);
			nn += (double)q[j] * q[j];
		}
		for (size_t j = 0; j < BD; j++)
			q[j] /= (float)sqrt(nn);
		CHECK(rv_db_knn_locked(db, q, BP, pools + i * BP, &pn[i], &e) == RV_OK && pn[i] == BP);
		for (size_t j = 0; j < SHOWN; j++)
			shown[i * SHOWN + j] = pools[i * BP + j].slot;
	}
	for (size_t i = 0; i < BT; i++) {
		size_t qi = i % BQ;
		uint32_t pos = 0;
		for (uint32_t j = 0; j < SHOWN; j++)
			if (rv_rng_uniform(&rng) < 1.0 / (j + 1) && shown[qi * SHOWN + j] % 2 == 0)
				pos = j;
		s[i] = (rv_rerank_sample){ qs + qi * BD, shown + qi * SHOWN, SHOWN, pos, shown[qi * SHOWN + pos], 1.0f };
	}
	rv_gnn_kind kinds[3] = { RV_GNN_SAGE, RV_GNN_GCN, RV_GNN_GAT };
	const char *names[3] = { "SAGE", "GCN", "GAT" };
	for (int k = 0; k < 3; k++) {
		rv_reranker *r = NULL;
		double t0 = rv_now();
		CHECK_MSG(rv_reranker_train(&r, db, kinds[k], s, BT, 0.0f, NULL, 1, &e) == RV_OK, "%s", e.msg);
		double t1 = rv_now();
		uint64_t steps = rv_reranker_steps(r);
		rv_hnsw_hit h[BP];
		/* Cold: every representation computed (and cached) on the way. */
		double c0 = rv_now();
		for (size_t i = 0; i < 20; i++) {
			memcpy(h, pools + i * BP, sizeof h);
			rv_reranker_apply(r, db, qs + i * BD, h, BP, 10);
		}
		double c1 = rv_now();
		/* Warm: the same pools again (representations cached). */
		for (size_t i = 20; i < BQ; i++) {
			memcpy(h, pools + i * BP, sizeof h);
			rv_reranker_apply(r, db, qs + i * BD, h, BP, 10);
		}
		double w0 = rv_now();
		size_t reps = 0;
		for (int rep = 0; rep < 5; rep++)
			for (size_t i = 0; i < BQ; i++, reps++) {
				memcpy(h, pools + i * BP, sizeof h);
				rv_reranker_apply(r, db, qs + i * BD, h, BP, 10);
			}
		double w1 = rv_now();
		fprintf(stderr,
			"   %s: training %.2f ms per step (%llu steps; 10k samples ~%.0f s); re-rank 100 candidates at "
			"d = 384: %.1f us warm, %.0f us cold; %.1f MB\n",
			names[k], 1e3 * (t1 - t0) / (double)(steps ? steps : 1), (unsigned long long)steps,
			(t1 - t0) / (double)(steps ? steps : 1) * 10000, 1e6 * (w1 - w0) / (double)reps,
			1e6 * (c1 - c0) / 20, rv_reranker_memory(r) / 1e6);
		rv_reranker_free(r);
	}
	rv_db_close(db);
	free(s);
	free(shown);
	free(pn);
	free(pools);
	free(qs);
	free(ids);
	free(p);
	free(x);
}
