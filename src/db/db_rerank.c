/*
 * db_rerank.c - the GNN re-ranker of a collection: training from feedback
 * samples, re-ranking a search's candidate pool, explanations, and the
 * byte form.
 *
 * Model. One GNN layer (src/learn/gnn.c) of kind SAGE, GCN or GAT (4
 * heads) maps a node's vector and its live HNSW layer-0 neighbours' to a
 * representation h (RR_OUT floats). The score of candidate v for query q
 * is
 *
 *   s(q, v) = beta * base_v + <W_q q + u, h_v> + prior[v],
 *   base_v  = -dist(q, v) * base_scale
 *
 * where dist is the collection's distance form (db_int.h) and base_scale
 * is fixed when a re-ranker is first trained: the inverse of the mean
 * spread (standard deviation) of the distances of the results shown in
 * the training samples, so that base differences are O(1) in logits for
 * any metric and data scale. beta is 1, fixed: u and W_q (start at 0)
 * are learned, so an untrained model ranks exactly by distance. A learned
 * beta is what the pairs cannot tell: they compare shown items, which
 * are all near the query, so clicks without any signal fit beta to 0 (no
 * preference among them) and the model then ignores distance over the
 * whole pool (measured on the Debian set: beta 1 -> -0.04 after 2k
 * random clicks, NDCG@10 -62%; with real clicks beta fell to 0.34 and
 * held-out NDCG by 11%). Re-rankers saved with a learned beta still load
 * (the byte form records the head). The
 * priors are per slot; they live in the model's item table (dense item
 * ids) while training and in a sorted sparse array (slot, value) here.
 *
 * Training. Each sample becomes a small graph: its candidates (the item
 * and the shown items it is paired with, db_rerank.h) and their
 * neighbours as context, with the pairs weighted by inverse propensity;
 * one step of rv_gnn_step per sample (Adam for the weights, plain SGD for
 * the priors), samples in a seeded random order, as many epochs as bring
 * the step count near RR_MIN_STEPS (at most RR_MAX_EPOCHS). Vectors and
 * queries are scaled by feat_scale (1 / their RMS norm) while training,
 * and the scale is folded into the weights afterwards, so the learning
 * rate suits unit embeddings and raw features alike. The result keeps
 * only the weights (no Adam moments, no workspace): going on training
 * later restarts the optimiser.
 *
 * Serving. Representations do not depend on the query, and a re-ranker
 * never changes once made (training makes a new one), so neither do the
 * priors. A cache (one row per slot, allocated on first use and published
 * with a compare-and-swap) holds each slot's representation once computed,
 * followed by its prior, so scoring a candidate reads one row instead of
 * searching the prior array; a row is claimed by one thread (state EMPTY
 * -> BUSY), written and then published (READY, release); readers that
 * find it not READY compute their own copy. So apply takes no lock, and a
 * warm re-rank costs W_q q (out x dim) plus one dot of out floats per
 * candidate: the distance term comes with the hits (the search computed
 * it), the prior with the row, the best k are picked by insertion
 * (a pool of 50 for k = 10 needs no full sort), and a pool of up to
 * RR_STACK_POOL hits with a representation of up to RR_STACK_OUT floats
 * allocates nothing. Slots past the cache's size (added after it was made)
 * are computed on every use.
 *
 * Byte form (little-endian; the trailing XXH3-64 covers everything):
 *
 *   "RVRR"  u16 version (3)  u16 kind (rv_gnn_kind)
 *   u32 dim  u32 out  u32 heads  u32 head (RV_GNN_HEAD_*)  f32 leaky
 *   f32 base_scale  f32 feat_scale  u64 steps  u64 observed (0; read and
 *   ignored: it counted per-event prior updates, which are gone)
 *   u32 n_theta  f32 theta[n_theta]     (layout of rv_gnn_params)
 *   u32 n_fisher (0 or n_theta)  f32 fisher[n_fisher]        (version 2)
 *   u8 has_category, then the category term (db_rerank_cat.h) (version 3)
 *   u32 n_priors  n_priors x (u32 slot, f32 value, f32 fisher), slots
 *                 ascending (version 1: no fisher, which reads as 0)
 *   u64 XXH3-64
 *
 * Decoding checks the checksum, then every field against the collection
 * (dimension, parameter count for the layer, slots below its slot count,
 * ascending, finite values) and drops priors of dead slots.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db_rerank.h"
#include "db_rerank_cat.h"
#include "index/hnsw_int.h"
#include "learn/learn.h"
#include "simd/simd.h"

#define RR_MAGIC "RVRR"
#define RR_VERSION 3
#define RR_OUT 32          /* representation size */
#define RR_GAT_HEADS 4
#define RR_LEAKY 0.2f
/* Step sizes, measured on tests/test_rerank.c's world. Weights (Adam):
 * at 0.01 they grow until they fit the users' noise and held-out NDCG
 * falls below the plain ranking; 0.003 is best. Priors (SGD, see
 * rv_gnn_step): 0.01 gives +17-21% NDCG with a preference to learn and
 * -1.7% without one; 0.03 -4.1% without, 0.1 -8.9%. L2: at 1e-4 random
 * clicks on the Debian set (bench/learn --quick) cost -12.7% NDCG@10 and
 * real ones -16%; at 1e-2 -2.8% and -8%, Fiori's gain +225% -> +214%. */
#define RR_LR 0.003f
#define RR_PRIOR_LR 0.01f
#define RR_L2 1e-2f
#define RR_HEAD RV_GNN_HEAD_BIAS
#define RR_MIN_STEPS 3000
#define RR_MAX_EPOCHS 8
/* EWC++ (rv_reranker_train's ewc > 0): samples of the Fisher estimate, at
 * most, and the weight of the previous re-ranker's estimate in the new. */
#define RR_FISHER_SAMPLES 1000
#define RR_FISHER_KEEP 0.8
#define RR_SCALE_SAMPLES 1000 /* samples that estimate base_scale, at most */
#define RR_MAX_DEG (2 * RV_HNSW_M_MAX)
#define RR_CAND (RV_RERANK_MAX_PAIRS + 1)
#define RR_MAX_OUT 1024    /* decode: largest representation accepted */
#define RR_STACK_POOL 256  /* apply: pools up to this size score on the stack */
#define RR_STACK_OUT 64    /* ... with representations up to this size */
#define RR_PICK_MAX 64     /* apply keeps at most this many by insertion; more: a full sort */

enum { RR_EMPTY = 0, RR_BUSY = 1, RR_READY = 2 };

typedef struct rr_cache {
	uint32_t n;               /* slots covered */
	float *rep;               /* n rows of out + 1: the representation, then the prior */
	_Atomic uint8_t *state;   /* RR_EMPTY, RR_BUSY, RR_READY per slot */
} rr_cache;

struct rv_reranker {
	const rv_alloc *a;
	rv_gnn_kind kind;
	uint32_t dim;
	size_t out;               /* representation size */
	rv_gnn *model;            /* the weights; SGD form, no priors (they are below) */
	float base_scale;         /* base_v = -dist * base_scale */
	float feat_scale;         /* training saw vectors and queries times this (folded into model) */
	uint32_t *pslot;          /* prior slots, strictly ascending */
	float *pval;
	float *pfis;              /* per prior slot: its Fisher estimate (EWC++), 0 without */
	size_t np, pcap;
	float *fisher;            /* per weight, in training coordinates, or NULL: EWC++ */
	uint64_t steps;           /* training steps, all calls */
	rv_rcat *cat;             /* the category term, or NULL */
	_Atomic(rr_cache *) cache; /* NULL until first use */
};

/* ------------------------------------------------------------------------
 * Collection access
 * ---------------------------------------------------------------------- */

static inline bool slot_live(const rv_db *db, uint32_t s)
{
	return s < db->vecs.n && (db->flags[s] & RV_SLOT_LIVE) && db->vecs.ptr[s];
}

/* The collection's distance form (db_int.h): L2 squared, 1 - dot, -dot. */
static inline float slot_dist(const rv_db *db, const float *q, uint32_t s)
{
	const rv_simd_ops *ops = rv_simd();
	const float *x = db->vecs.ptr[s];
	if (db->metric == RV_METRIC_L2)
		return ops->l2sq(q, x, db->dim);
	float d = ops->dot(q, x, db->dim);
	return db->metric == RV_METRIC_COSINE ? 1.0f - d : -d;
}

/* Live layer-0 neighbours of slot: their vectors in ptrs (and slots in
 * slots when not NULL), at most RR_MAX_DEG. */
static size_t neighbours(const rv_db *db, uint32_t slot, uint32_t *slots, const float **ptrs)
{
	const rv_hnsw *h = db->index;
	if (!h || slot >= h->cap || rv_hnsw_lv(h, slot) == 0)
		return 0;
	const uint32_t *l = rv_hnsw_links(h, slot, 0);
	uint32_t cnt = l[0] < h->m0 ? l[0] : h->m0;
	size_t n = 0;
	for (uint32_t i = 0; i < cnt && n < RR_MAX_DEG; i++) {
		uint32_t u = l[1 + i];
		if (u == slot || u >= h->cap || rv_hnsw_lv(h, u) == 0 || !slot_live(db, u))
			continue;
		if (slots)
			slots[n] = u;
		ptrs[n++] = db->vecs.ptr[u];
	}
	return n;
}

static size_t max_degree(const rv_db *db)
{
	size_t m0 = db->index ? db->index->m0 : 0;
	return m0 < RR_MAX_DEG ? m0 : RR_MAX_DEG;
}

/* ------------------------------------------------------------------------
 * Model, priors, cache
 * ---------------------------------------------------------------------- */

static rv_gnn_layer_type layer_type(rv_gnn_kind k)
{
	return k == RV_GNN_GCN ? RV_GNN_LAYER_GCN : k == RV_GNN_GAT ? RV_GNN_LAYER_GAT : RV_GNN_LAYER_SAGE;
}

static void model_opts(rv_gnn_opts *o, rv_gnn_kind kind, uint32_t dim, size_t out, uint32_t heads, float leaky,
		       unsigned head, rv_learn_optim optim, uint64_t seed)
{
	rv_gnn_opts d = RV_GNN_OPTS_INIT;
	d.in_dim = dim;
	d.layers = 1;
	d.type[0] = layer_type(kind);
	d.out_dim[0] = (uint32_t)out;
	d.heads[0] = heads;
	d.lr = RR_LR;
	d.l2 = RR_L2;
	d.leaky = leaky;
	d.optim = optim;
	d.seed = seed;
	d.head = head;
	d.prior_lr = RR_PRIOR_LR;
	*o = d;
}

/* Subnormal weights become 0 (rv_learn_flush): measured on the Fiori
 * collection, searches with a GNN version took 1.14x the CPU time of
 * plain ones, 0.96x with the subnormals flushed (same instructions). */
static void flush_subnormal(float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = rv_learn_flush(p[i]);
}

/* A serving copy of m: its weights, SGD form (no Adam moments, no
 * workspace), subnormal weights flushed to 0. */
static rv_status serving_model(rv_gnn **out, const rv_gnn *m, const rv_alloc *a, rv_err *e)
{
	rv_gnn_opts o = *rv_gnn_get_opts(m);
	o.optim = RV_LEARN_SGD;
	rv_status st = rv_gnn_create(out, &o, a, e);
	if (st != RV_OK)
		return st;
	size_t n;
	float *dst = rv_gnn_params(*out, &n);
	memcpy(dst, rv_gnn_params((rv_gnn *)m, NULL), n * sizeof(float));
	flush_subnormal(dst, n);
	return RV_OK;
}

/* Index of slot in the prior array, or the insertion point (*found false). */
static size_t prior_find(const rv_reranker *r, uint32_t slot, bool *found)
{
	size_t lo = 0, hi = r->np;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->pslot[mid] < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < r->np && r->pslot[lo] == slot;
	return lo;
}

const rv_rcat *rv_reranker_category(const rv_reranker *r) { return r ? r->cat : NULL; }

float rv_reranker_prior(const rv_reranker *r, uint32_t slot)
{
	bool found;
	size_t i = prior_find(r, slot, &found);
	return found ? r->pval[i] : 0.0f;
}

static bool prior_reserve(rv_reranker *r, size_t extra)
{
	if (r->np + extra <= r->pcap)
		return true;
	size_t cap = r->pcap ? r->pcap : 64;
	while (cap < r->np + extra)
		cap *= 2;
	uint32_t *s = rv_realloc(r->a, r->pslot, cap * sizeof(uint32_t));
	if (!s)
		return false;
	r->pslot = s;
	float *v = rv_realloc(r->a, r->pval, cap * sizeof(float));
	if (!v)
		return false;
	r->pval = v;
	float *f = rv_realloc(r->a, r->pfis, cap * sizeof(float));
	if (!f)
		return false;
	r->pfis = f;
	r->pcap = cap;
	return true;
}

static void cache_free(const rv_alloc *a, rr_cache *c)
{
	if (!c)
		return;
	rv_dealloc(a, c->rep);
	rv_dealloc(a, (void *)c->state);
	rv_dealloc(a, c);
}

/* The cache, made on first use (sized for the collection's slots plus a
 * quarter for growth). NULL when memory is short: callers then compute. */
static rr_cache *get_cache(const rv_reranker *cr, const rv_db *db)
{
	rv_reranker *r = (rv_reranker *)cr; /* the cache is the only state a reader fills */
	rr_cache *c = atomic_load_explicit(&r->cache, memory_order_acquire);
	if (c)
		return c;
	uint64_t want = (uint64_t)db->vecs.n + db->vecs.n / 4 + 256;
	if (want > UINT32_MAX)
		want = UINT32_MAX;
	size_t bytes;
	if (!rv_mul_ok((size_t)want, (r->out + 1) * sizeof(float), &bytes))
		return NULL;
	c = rv_calloc(r->a, 1, sizeof *c);
	if (!c)
		return NULL;
	c->n = (uint32_t)want;
	c->rep = rv_malloc(r->a, bytes);
	c->state = rv_calloc(r->a, c->n, sizeof(uint8_t));
	if (!c->rep || !c->state) {
		cache_free(r->a, c);
		return NULL;
	}
	rr_cache *expect = NULL;
	if (!atomic_compare_exchange_strong_explicit(&r->cache, &expect, c, memory_order_acq_rel,
						     memory_order_acquire)) {
		cache_free(r->a, c);
		return expect;
	}
	return c;
}

/* Scratch of one thread's scoring: neighbour pointers, and the node
 * work, allocated on the first representation computed (a warm re-rank
 * allocates none). */
typedef struct rr_scratch {
	const rv_alloc *a;
	float *work;
	bool failed;              /* work could not be allocated */
	const float *ptrs[RR_MAX_DEG];
	uint32_t nslots[RR_MAX_DEG];
} rr_scratch;

static void scratch_init(rr_scratch *s, const rv_alloc *a)
{
	s->a = a;
	s->work = NULL;
	s->failed = false;
}

static bool scratch_work(rr_scratch *s, const rv_reranker *r)
{
	if (!s->work && !s->failed) {
		s->work = rv_malloc(s->a, rv_gnn_node_work(r->model, RR_MAX_DEG) * sizeof(float));
		s->failed = !s->work;
	}
	return s->work != NULL;
}

static void scratch_free(rr_scratch *s) { rv_dealloc(s->a, s->work); }

/* The row of slot, out + 1 floats: its representation, then its prior.
 * The cached row, or computed into row (and cached when this thread wins
 * the row). Without memory for the work: zeros, and s->failed. */
static const float *get_rep(const rv_reranker *r, const rv_db *db, rr_cache *c, uint32_t slot, float *row,
			    rr_scratch *s)
{
	size_t stride = r->out + 1;
	if (c && slot < c->n) {
		uint8_t st = atomic_load_explicit(&c->state[slot], memory_order_acquire);
		if (st == RR_READY)
			return c->rep + (size_t)slot * stride;
	}
	size_t deg = neighbours(db, slot, NULL, s->ptrs);
	if (!scratch_work(s, r) ||
	    rv_gnn_embed_node(row, NULL, r->model, db->vecs.ptr[slot], s->ptrs, deg, s->work) != RV_OK) {
		/* Never cached: the caller sees s->failed and gives up. */
		memset(row, 0, stride * sizeof(float));
		s->failed = true;
		return row;
	}
	row[r->out] = rv_reranker_prior(r, slot);
	if (c && slot < c->n) {
		uint8_t expect = RR_EMPTY;
		if (atomic_compare_exchange_strong_explicit(&c->state[slot], &expect, RR_BUSY, memory_order_acq_rel,
							    memory_order_relaxed)) {
			memcpy(c->rep + (size_t)slot * stride, row, stride * sizeof(float));
			atomic_store_explicit(&c->state[slot], RR_READY, memory_order_release);
		}
	}
	return row;
}

/* A plain sequential sum: out is small (32), and the SIMD kernel's other
 * summation order would move near-ties, so that the same re-ranker would
 * rank differently from one CPU to another. */
static float dotf(const float *a, const float *b, size_t n)
{
	float s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Scores of slots[0..n) (all live) for q; dist[i] is slots[i]'s distance
 * to q in the collection's form, or dist is NULL to compute it; prof the
 * query's category profile (NULL without a category term). w: out
 * floats, row: out + 1 floats. */
static void score_slots(float *scores, const rv_reranker *r, const rv_db *db, const float *q, const uint32_t *slots,
			const float *dist, size_t n, const rv_rcat_profile *prof, float *w, float *row, rr_scratch *s)
{
	rr_cache *c = get_cache(r, db);
	rv_gnn_head_vector(w, r->model, q);
	float beta = rv_gnn_base_weight(r->model);
	for (size_t i = 0; i < n; i++) {
		const float *h = get_rep(r, db, c, slots[i], row, s);
		float d = dist ? dist[i] : slot_dist(db, q, slots[i]);
		float base = -d * r->base_scale;
		scores[i] = beta * base + dotf(w, h, r->out) + h[r->out];
		if (prof)
			scores[i] += rv_rcat_term(r->cat, prof, rv_rcat_of(r->cat, db, slots[i]));
	}
}

typedef struct warm_ctx {
	const rv_reranker *r;
	const rv_db *db;
	rr_cache *c;
	uint32_t n;
	unsigned threads;
	_Atomic bool failed;
} warm_ctx;

static void warm_part(void *p, unsigned th)
{
	warm_ctx *w = p;
	rr_scratch sc;
	scratch_init(&sc, w->r->a);
	float *row = rv_malloc(w->r->a, (w->r->out + 1) * sizeof(float));
	for (uint32_t slot = th; row && !sc.failed && slot < w->n; slot += w->threads)
		if (slot_live(w->db, slot))
			get_rep(w->r, w->db, w->c, slot, row, &sc);
	if (!row || sc.failed)
		atomic_store(&w->failed, true);
	rv_dealloc(w->r->a, row);
	scratch_free(&sc);
}

rv_status rv_reranker_warm(const rv_reranker *r, const rv_db *db, unsigned threads, rv_err *e)
{
	if (!r || !db || db->dim != r->dim)
		return rv_err_set(e, RV_EINVAL, "re-ranker warm: a re-ranker and a collection of its dimension are required");
	rr_cache *c = get_cache(r, db);
	if (!c)
		return rv_err_nomem(e);
	warm_ctx w = { r, db, c, c->n < db->vecs.n ? c->n : (uint32_t)db->vecs.n, threads ? threads : 1, false };
	rv_parallel(w.threads, warm_part, &w);
	return atomic_load(&w.failed) ? rv_err_nomem(e) : RV_OK;
}

size_t rv_reranker_cached(const rv_reranker *r)
{
	if (!r)
		return 0;
	rr_cache *c = atomic_load_explicit(&((rv_reranker *)r)->cache, memory_order_acquire);
	size_t n = 0;
	for (uint32_t i = 0; c && i < c->n; i++)
		n += atomic_load_explicit(&c->state[i], memory_order_acquire) == RR_READY;
	return n;
}

/* ------------------------------------------------------------------------
 * Handles
 * ---------------------------------------------------------------------- */

static rv_reranker *rr_new(const rv_alloc *a, rv_gnn_kind kind, uint32_t dim)
{
	rv_reranker *r = rv_calloc(a, 1, sizeof *r);
	if (!r)
		return NULL;
	r->a = a;
	r->kind = kind;
	r->dim = dim;
	r->base_scale = 1.0f;
	r->feat_scale = 1.0f;
	atomic_init(&r->cache, NULL);
	return r;
}

void rv_reranker_free(rv_reranker *r)
{
	if (!r)
		return;
	const rv_alloc *a = r->a;
	cache_free(a, atomic_load_explicit(&r->cache, memory_order_acquire));
	rv_dealloc(a, r->pslot);
	rv_dealloc(a, r->pval);
	rv_dealloc(a, r->pfis);
	rv_dealloc(a, r->fisher);
	rv_rcat_free(r->cat);
	rv_gnn_free(r->model);
	rv_dealloc(a, r);
}

rv_gnn_kind rv_reranker_kind(const rv_reranker *r) { return r->kind; }
uint64_t rv_reranker_steps(const rv_reranker *r) { return r->steps; }

size_t rv_reranker_memory(const rv_reranker *r)
{
	if (!r)
		return 0;
	/* The model holds its weights (float) and a gradient (double). */
	size_t bytes = sizeof *r + rv_gnn_param_count(r->model) * (sizeof(float) + sizeof(double));
	if (r->fisher)
		bytes += rv_gnn_param_count(r->model) * sizeof(float);
	bytes += r->pcap * (sizeof(uint32_t) + 2 * sizeof(float)) + rv_rcat_memory(r->cat);
	rr_cache *c = atomic_load_explicit(&((rv_reranker *)r)->cache, memory_order_acquire);
	if (c)
		bytes += sizeof *c + (size_t)c->n * ((r->out + 1) * sizeof(float) + 1);
	return bytes;
}

/* Give c (a clone of r, with no cache yet) the rows r has computed so
 * far. Best effort: short of memory, c computes its own. */
static void cache_copy(rv_reranker *c, const rv_reranker *r)
{
	rr_cache *src = atomic_load_explicit(&((rv_reranker *)r)->cache, memory_order_acquire);
	if (!src)
		return;
	size_t stride = r->out + 1;
	rr_cache *d = rv_calloc(c->a, 1, sizeof *d);
	if (!d)
		return;
	/* The source's rows were allocated at this size: no overflow. */
	d->n = src->n;
	d->rep = rv_malloc(c->a, (size_t)src->n * stride * sizeof(float));
	d->state = rv_calloc(c->a, d->n, sizeof(uint8_t));
	if (!d->rep || !d->state) {
		cache_free(c->a, d);
		return;
	}
	for (uint32_t s = 0; s < src->n; s++) {
		if (atomic_load_explicit(&src->state[s], memory_order_acquire) != RR_READY)
			continue;
		memcpy(d->rep + (size_t)s * stride, src->rep + (size_t)s * stride, stride * sizeof(float));
		atomic_store_explicit(&d->state[s], RR_READY, memory_order_relaxed);
	}
	atomic_store_explicit(&c->cache, d, memory_order_release);
}

rv_status rv_reranker_clone(rv_reranker **out, const rv_reranker *r, const rv_alloc *a, rv_err *e)
{
	rv_status st = RV_OK;
	if (!out || !r)
		return rv_err_set(e, RV_EINVAL, "re-ranker clone: out and source are required");
	*out = NULL;
	rv_reranker *c = rr_new(a, r->kind, r->dim);
	if (!c)
		return rv_err_nomem(e);
	c->out = r->out;
	c->base_scale = r->base_scale;
	c->feat_scale = r->feat_scale;
	c->steps = r->steps;
	if ((st = serving_model(&c->model, r->model, a, e)) != RV_OK)
		goto done;
	if (r->np) {
		if (!prior_reserve(c, r->np)) {
			st = rv_err_nomem(e);
			goto done;
		}
		memcpy(c->pslot, r->pslot, r->np * sizeof(uint32_t));
		memcpy(c->pval, r->pval, r->np * sizeof(float));
		memcpy(c->pfis, r->pfis, r->np * sizeof(float));
		c->np = r->np;
	}
	if (r->fisher) {
		size_t nt = rv_gnn_param_count(r->model);
		if (!(c->fisher = rv_malloc(a, nt * sizeof(float)))) {
			st = rv_err_nomem(e);
			goto done;
		}
		memcpy(c->fisher, r->fisher, nt * sizeof(float));
	}
	if (r->cat && (st = rv_rcat_clone(&c->cat, r->cat, a, e)) != RV_OK)
		goto done;
	/* Last: the copy is optional, every allocation before it is not. */
	cache_copy(c, r);
	*out = c;
	c = NULL;
done:
	rv_reranker_free(c);
	return st;
}

/* ------------------------------------------------------------------------
 * Samples and pairs
 * ---------------------------------------------------------------------- */

static rv_status check_sample(const rv_db *db, const rv_rerank_sample *s, size_t i, rv_err *e)
{
	if (!s->query)
		return rv_err_set(e, RV_EINVAL, "re-ranker sample %zu has no query", i);
	if (s->n_shown && !s->shown)
		return rv_err_set(e, RV_EINVAL, "re-ranker sample %zu: %u shown but no array", i, s->n_shown);
	if (!(s->reward >= -1.0f && s->reward <= 1.0f))
		return rv_err_set(e, RV_EINVAL, "re-ranker sample %zu: reward %g outside [-1, 1]", i, s->reward);
	if (s->position != RV_FB_NOT_SHOWN && s->position >= s->n_shown)
		return rv_err_set(e, RV_EINVAL, "re-ranker sample %zu: position %u but %u shown", i, s->position,
				  s->n_shown);
	for (uint32_t j = 0; j < db->dim; j++)
		if (!isfinite(s->query[j]))
			return rv_err_set(e, RV_EINVAL, "re-ranker sample %zu: query value %u is not finite", i, j);
	return RV_OK;
}

/* One sample's candidates (slots; cand[0] the item) and pairs over them. */
typedef struct rr_pairs {
	uint32_t cand[RR_CAND];
	size_t nc;
	rv_gnn_pair p[RV_RERANK_MAX_PAIRS];
	size_t np;
} rr_pairs;

static void add_pair(rr_pairs *out, const rv_db *db, const rv_rerank_sample *s, uint32_t i, bool item_wins,
		     float w)
{
	uint32_t u = s->shown[i];
	if (out->np == RV_RERANK_MAX_PAIRS || !slot_live(db, u))
		return;
	for (size_t j = 0; j < out->nc; j++)
		if (out->cand[j] == u)
			return;
	uint32_t c = (uint32_t)out->nc;
	out->cand[out->nc++] = u;
	out->p[out->np++] = item_wins ? (rv_gnn_pair){ 0, c, w } : (rv_gnn_pair){ c, 0, w };
}

/* The pairs of db_rerank.h's table, nearest positions first. */
static void make_pairs(rr_pairs *out, const rv_db *db, const rv_rerank_sample *s)
{
	out->nc = out->np = 0;
	if (s->reward == 0 || !slot_live(db, s->slot))
		return;
	uint32_t n = s->n_shown, idx = RV_FB_NOT_SHOWN;
	if (s->position < n && s->shown[s->position] == s->slot)
		idx = s->position;
	for (uint32_t i = 0; idx == RV_FB_NOT_SHOWN && i < n; i++)
		if (s->shown[i] == s->slot)
			idx = i;
	/* The position the user saw it at sets the propensity. */
	uint32_t pos = s->position != RV_FB_NOT_SHOWN ? s->position : idx;
	double w = fabs((double)s->reward);
	if (pos != RV_FB_NOT_SHOWN)
		w *= fmin(pow((double)pos + 1.0, RV_RERANK_ETA), RV_RERANK_MAX_WEIGHT);
	float fw = (float)w;
	bool wins = s->reward > 0;
	out->cand[out->nc++] = s->slot;
	if (idx == RV_FB_NOT_SHOWN) {
		/* Below everything shown: the nearest are the last ones. */
		for (uint32_t i = n; i-- > 0;)
			add_pair(out, db, s, i, wins, fw);
		return;
	}
	/* Above first (the items the user went past), then below, taking
	 * the nearest positions of each side in turn. */
	for (uint32_t d = 1; d <= idx || idx + d < n; d++) {
		if (d <= idx)
			add_pair(out, db, s, idx - d, wins, fw);
		if (idx + d < n)
			add_pair(out, db, s, idx + d, wins, fw);
		if (out->np == RV_RERANK_MAX_PAIRS)
			break;
	}
}

/* 1 / the mean standard deviation of the shown items' distances. */
static float estimate_scale(const rv_db *db, const rv_rerank_sample *samples, size_t n)
{
	size_t stride = n > RR_SCALE_SAMPLES ? n / RR_SCALE_SAMPLES : 1, cnt = 0;
	double sum = 0;
	for (size_t i = 0; i < n; i += stride) {
		const rv_rerank_sample *s = &samples[i];
		double m = 0, m2 = 0;
		size_t k = 0;
		for (uint32_t j = 0; j < s->n_shown && k < 100; j++) {
			if (!slot_live(db, s->shown[j]))
				continue;
			double d = slot_dist(db, s->query, s->shown[j]);
			k++;
			double delta = d - m;
			m += delta / (double)k;
			m2 += delta * (d - m);
		}
		if (k >= 2 && isfinite(m2)) {
			sum += sqrt(m2 / (double)k);
			cnt++;
		}
	}
	double sd = cnt ? sum / (double)cnt : 0;
	return sd > 1e-12 && isfinite(1.0 / sd) ? (float)(1.0 / sd) : 1.0f;
}

/* 1 / the root mean square norm of the shown items' vectors: training
 * runs on vectors of norm ~1 whatever the data's scale, so one learning
 * rate fits unit embeddings and raw features alike. */
static float estimate_feat_scale(const rv_db *db, const rv_rerank_sample *samples, size_t n)
{
	size_t stride = n > RR_SCALE_SAMPLES ? n / RR_SCALE_SAMPLES : 1, cnt = 0;
	double sum = 0;
	for (size_t i = 0; i < n; i += stride) {
		const rv_rerank_sample *s = &samples[i];
		for (uint32_t j = 0; j < s->n_shown && j < 100; j++) {
			if (!slot_live(db, s->shown[j]))
				continue;
			const float *x = db->vecs.ptr[s->shown[j]];
			sum += rv_learn_dot(x, x, db->dim, true);
			cnt++;
		}
	}
	double rms = cnt ? sqrt(sum / (double)cnt) : 0;
	return rms > 1e-12 && isfinite(1.0 / rms) ? (float)(1.0 / rms) : 1.0f;
}

/* ------------------------------------------------------------------------
 * Training
 * ---------------------------------------------------------------------- */

typedef struct rr_train {
	const rv_db *db;
	const rv_alloc *a;
	rv_gnn *m;
	float scale, fs;          /* base_scale, feat_scale */
	size_t dim, maxdeg, maxnodes;
	float *q;                 /* the sample's query times fs */
	/* slot -> training item id, and back */
	uint32_t *item_of, *slot_of;
	size_t nitems, items_cap;
	/* slot -> node of the graph being built (valid where stamp == epoch) */
	uint32_t *stamp, *node_of, epoch;
	/* the graph */
	float *x, *base;
	uint32_t *off, *nbrs, *items;
	const float *ptrs[RR_MAX_DEG];
	uint32_t nslots[RR_MAX_DEG];
	/* the category term (NULL without): each sample's profile, the
	 * current sample's, and the categories of its candidates */
	rv_rcat *cat;
	rv_rcat_profile *prof;
	const rv_rcat_profile *cur;
	uint32_t cats[RR_CAND];
	float base0[RR_CAND];     /* the candidates' distance terms alone */
} rr_train;

static rv_status item_id(rr_train *t, uint32_t slot, uint32_t *id)
{
	if (t->item_of[slot] != RV_GNN_NO_ITEM) {
		*id = t->item_of[slot];
		return RV_OK;
	}
	if (t->nitems >= RV_GNN_MAX_ITEMS)
		return RV_EINVAL;
	if (!rv_grow(t->a, (void **)&t->slot_of, &t->items_cap, t->nitems + 1, sizeof(uint32_t)))
		return RV_ENOMEM;
	t->slot_of[t->nitems] = slot;
	t->item_of[slot] = (uint32_t)t->nitems;
	*id = (uint32_t)t->nitems++;
	return RV_OK;
}

/* Node index of slot in the graph being built, adding it (features copied)
 * when new. */
static uint32_t graph_node(rr_train *t, uint32_t slot, size_t *n)
{
	if (t->stamp[slot] == t->epoch)
		return t->node_of[slot];
	uint32_t v = (uint32_t)(*n)++;
	t->stamp[slot] = t->epoch;
	t->node_of[slot] = v;
	const float *src = t->db->vecs.ptr[slot];
	float *dst = t->x + (size_t)v * t->dim;
	for (size_t i = 0; i < t->dim; i++)
		dst[i] = src[i] * t->fs;
	t->base[v] = 0;
	t->items[v] = RV_GNN_NO_ITEM;
	return v;
}

/* The graph of one sample's candidates and their neighbours, and its
 * query (times feat_scale) in t->q. */
static rv_status sample_graph(rv_gnn_graph *g, rr_train *t, const rv_rerank_sample *s, const rr_pairs *pp,
			      rv_err *e)
{
	rv_status st;
	if (++t->epoch == 0) {
		memset(t->stamp, 0, t->db->vecs.n * sizeof(uint32_t));
		t->epoch = 1;
	}
	size_t n = 0, ne = 0;
	for (size_t c = 0; c < pp->nc; c++) {
		graph_node(t, pp->cand[c], &n);
		t->base[c] = t->base0[c] = -slot_dist(t->db, s->query, pp->cand[c]) * t->scale;
		if (t->cur) { /* the category term enters the score through base */
			t->cats[c] = rv_rcat_of(t->cat, t->db, pp->cand[c]);
			t->base[c] += rv_rcat_term(t->cat, t->cur, t->cats[c]);
		}
		if ((st = item_id(t, pp->cand[c], &t->items[c])) != RV_OK)
			return st == RV_ENOMEM ? rv_err_nomem(e)
					       : rv_err_set(e, st, "re-ranker: more than %u items", RV_GNN_MAX_ITEMS);
	}
	t->off[0] = 0;
	for (size_t c = 0; c < pp->nc; c++) {
		size_t deg = neighbours(t->db, pp->cand[c], t->nslots, t->ptrs);
		for (size_t j = 0; j < deg; j++)
			t->nbrs[ne++] = graph_node(t, t->nslots[j], &n);
		t->off[c + 1] = (uint32_t)ne;
	}
	/* Context nodes: their own neighbourhoods are outside one layer's reach. */
	for (size_t v = pp->nc; v < n; v++)
		t->off[v + 1] = (uint32_t)ne;
	*g = (rv_gnn_graph){ n, pp->nc, t->x, t->off, t->nbrs, t->items, t->base };
	for (size_t i = 0; i < t->dim; i++)
		t->q[i] = s->query[i] * t->fs;
	return RV_OK;
}

/* One step on one sample's graph. */
static rv_status train_step(rr_train *t, const rv_rerank_sample *s, const rr_pairs *pp, rv_err *e)
{
	rv_gnn_graph g;
	rv_status st = sample_graph(&g, t, s, pp, e);
	if (st != RV_OK)
		return st;
	double loss;
	st = rv_gnn_step(&loss, t->m, &g, t->q, pp->p, pp->np);
	if (st != RV_OK)
		return rv_err_set(e, st, "re-ranker training: %s", rv_gnn_errmsg(t->m));
	if (t->cur)
		rv_rcat_step(t->cat, t->cur, t->cats, t->base0, pp->nc, pp->p, pp->np);
	return RV_OK;
}

/* EWC++: the Fisher estimate of the trained weights (fw, np) and of the
 * priors (fp, by item id, nitems), the mean squared gradient of the pair
 * loss over an even spread of up to RR_FISHER_SAMPLES samples, blended
 * with the previous re-ranker's (weight RR_FISHER_KEEP on the old). A
 * weight's mean runs over every sample, as its penalty acts at every
 * step; a prior's over the samples that name its item, as its penalty
 * acts only on the steps whose candidates name it (rv_gnn_set_anchor):
 * averaged over all samples, a prior seen in 1 of 1000 would be held
 * 1000 times too weakly. */
static rv_status fisher_pass(float *fw, float *fp, size_t nitems, rr_train *t, const rv_reranker *prev,
			     const rv_rerank_sample *samples, size_t n, rv_err *e)
{
	size_t np = rv_gnn_param_count(t->m);
	double *aw = rv_calloc(t->a, np ? np : 1, sizeof(double));
	double *ap = rv_calloc(t->a, nitems ? nitems : 1, sizeof(double));
	uint32_t *seen = rv_calloc(t->a, nitems ? nitems : 1, sizeof(uint32_t));
	rv_status st = RV_OK;
	if (!aw || !ap || !seen) {
		st = rv_err_nomem(e);
		goto done;
	}
	if (t->cat && rv_rcat_fisher_begin(t->cat) != RV_OK) {
		st = rv_err_nomem(e);
		goto done;
	}
	size_t stride = n > RR_FISHER_SAMPLES ? (n + RR_FISHER_SAMPLES - 1) / RR_FISHER_SAMPLES : 1, cnt = 0;
	rr_pairs pp;
	for (size_t i = 0; i < n; i += stride) {
		const rv_rerank_sample *s = &samples[i];
		make_pairs(&pp, t->db, s);
		if (pp.np == 0)
			continue;
		rv_gnn_graph g;
		double loss;
		t->cur = t->prof ? &t->prof[i] : NULL;
		if ((st = sample_graph(&g, t, s, &pp, e)) != RV_OK)
			goto done;
		if ((st = rv_gnn_data_grad(&loss, t->m, &g, t->q, pp.p, pp.np)) != RV_OK) {
			st = rv_err_set(e, st, "re-ranker Fisher estimate: %s", rv_gnn_errmsg(t->m));
			goto done;
		}
		const double *gw = rv_gnn_grad(t->m), *gp = rv_gnn_prior_grad(t->m);
		if (t->cur)
			rv_rcat_fisher_add(t->cat, t->cur, t->cats, t->base0, pp.nc, pp.p, pp.np);
		for (size_t j = 0; j < np; j++)
			aw[j] += gw[j] * gw[j];
		/* A candidate's prior gradient is complete once per item:
		 * duplicates in one graph share it. */
		for (size_t c = 0; c < pp.nc; c++) {
			uint32_t it = t->items[c];
			bool dup = false;
			for (size_t k = 0; k < c && !dup; k++)
				dup = t->items[k] == it;
			if (!dup && it < nitems) {
				ap[it] += gp[it] * gp[it];
				seen[it]++;
			}
		}
		cnt++;
	}
	double keep = prev && prev->fisher ? RR_FISHER_KEEP : 0.0, inv = cnt ? (1.0 - keep) / (double)cnt : 0.0;
	/* The term's old estimate is prev's only when it went on from it. */
	bool cat_from_prev = t->cat && prev && prev->cat &&
			     strcmp(rv_rcat_field(prev->cat), rv_rcat_field(t->cat)) == 0;
	rv_rcat_fisher_end(t->cat, cat_from_prev ? keep : 0.0);
	for (size_t j = 0; j < np; j++)
		fw[j] = (float)(keep * (prev && prev->fisher ? prev->fisher[j] : 0.0) + inv * aw[j]);
	for (size_t it = 0; it < nitems; it++)
		fp[it] = seen[it] ? (float)((1.0 - keep) * ap[it] / seen[it]) : 0.0f;
	if (keep > 0)
		for (size_t i = 0; i < prev->np; i++) {
			uint32_t sl = prev->pslot[i];
			if (slot_live(t->db, sl) && t->item_of[sl] < nitems)
				fp[t->item_of[sl]] += (float)(keep * prev->pfis[i]);
		}
done:
	rv_dealloc(t->a, aw);
	rv_dealloc(t->a, ap);
	rv_dealloc(t->a, seen);
	return st;
}

typedef struct rr_prior {
	uint32_t slot;
	float value, fisher;
} rr_prior;

static int prior_cmp(const void *a, const void *b)
{
	uint32_t x = ((const rr_prior *)a)->slot, y = ((const rr_prior *)b)->slot;
	return (x > y) - (x < y);
}

/* The trained re-ranker: serving model, the priors of live slots that
 * are non-zero or have a Fisher estimate, and the Fisher estimate of the
 * weights (fw, fp: NULL without EWC++). */
static rv_status train_result(rv_reranker **out, rr_train *t, rv_gnn_kind kind, const float *fw, const float *fp,
			      rv_err *e)
{
	rv_status st = RV_OK;
	rr_prior *pr = NULL;
	rv_reranker *r = rr_new(t->a, kind, (uint32_t)t->dim);
	if (!r)
		return rv_err_nomem(e);
	r->out = rv_gnn_embed_dim(t->m);
	r->base_scale = t->scale;
	r->feat_scale = t->fs;
	if ((st = serving_model(&r->model, t->m, t->a, e)) != RV_OK)
		goto done;
	rv_gnn_scale_input(r->model, t->fs);
	/* Weights grown out of float range (a decoded model with absurd
	 * values can do that) would poison every later score. The scaling
	 * may have made subnormals again: flushed, as decoding would. */
	size_t nth;
	float *th = rv_gnn_params(r->model, &nth);
	flush_subnormal(th, nth);
	for (size_t i = 0; i < nth; i++)
		if (!isfinite(th[i])) {
			st = rv_err_set(e, RV_ERROR, "re-ranker training diverged (weight %zu is not finite)", i);
			goto done;
		}
	size_t ntab;
	const float *tab = rv_gnn_priors(t->m, &ntab);
	for (size_t i = 0; i < t->nitems && i < ntab; i++)
		if (!isfinite(tab[i])) {
			st = rv_err_set(e, RV_ERROR, "re-ranker training diverged (a prior is not finite)");
			goto done;
		}
	if (!rv_rcat_finite(t->cat)) {
		st = rv_err_set(e, RV_ERROR, "re-ranker training diverged (a category weight is not finite)");
		goto done;
	}
	if (fw) {
		if (!(r->fisher = rv_malloc(t->a, nth * sizeof(float)))) {
			st = rv_err_nomem(e);
			goto done;
		}
		memcpy(r->fisher, fw, nth * sizeof(float));
	}
	size_t cnt = 0;
	for (size_t i = 0; i < t->nitems && i < ntab; i++)
		cnt += (tab[i] != 0 || (fp && fp[i] != 0)) && slot_live(t->db, t->slot_of[i]);
	if (cnt) {
		pr = rv_malloc(t->a, cnt * sizeof *pr);
		if (!pr || !prior_reserve(r, cnt)) {
			st = rv_err_nomem(e);
			goto done;
		}
		size_t k = 0;
		for (size_t i = 0; i < t->nitems && i < ntab; i++)
			if ((tab[i] != 0 || (fp && fp[i] != 0)) && slot_live(t->db, t->slot_of[i]))
				pr[k++] = (rr_prior){ t->slot_of[i], tab[i], fp ? fp[i] : 0.0f };
		qsort(pr, cnt, sizeof *pr, prior_cmp);
		for (size_t i = 0; i < cnt; i++) {
			r->pslot[i] = pr[i].slot;
			r->pval[i] = pr[i].value;
			r->pfis[i] = pr[i].fisher;
		}
		r->np = cnt;
	}
	r->cat = t->cat;
	t->cat = NULL;
	rv_rcat_done(r->cat);
	*out = r;
	r = NULL;
done:
	rv_dealloc(t->a, pr);
	rv_reranker_free(r);
	return st;
}

typedef struct rr_qkey {
	uint64_t h;
	uint32_t i;
} rr_qkey;

static int qkey_cmp(const void *a, const void *b)
{
	const rr_qkey *x = a, *y = b;
	if (x->h != y->h)
		return (x->h > y->h) - (x->h < y->h);
	return (x->i > y->i) - (x->i < y->i);
}

/* The category term of a training run (going on from prev's when it has
 * one of this field; anchored with EWC++ when prev has a Fisher
 * estimate), and each sample's profile: a search for its query, once per
 * distinct query. A collection where no point has the field trains no
 * term. */
static rv_status category_setup(rr_train *t, const rv_reranker *prev, const rv_rerank_sample *samples, size_t n,
				float ewc, const char *field, rv_err *e)
{
	rv_status st = rv_rcat_create(&t->cat, t->db, field, prev ? prev->cat : NULL, e);
	if (st != RV_OK)
		return st;
	if (!rv_rcat_count(t->cat)) {
		rv_rcat_free(t->cat);
		t->cat = NULL;
		return RV_OK;
	}
	if (ewc > 0 && prev && prev->fisher && prev->cat)
		rv_rcat_anchor(t->cat, ewc);
	rr_qkey *key = rv_malloc(t->a, (n ? n : 1) * sizeof *key);
	rv_hnsw_hit *hits = rv_malloc(t->a, RV_RCAT_POOL * sizeof *hits);
	uint32_t *slots = rv_malloc(t->a, RV_RCAT_POOL * sizeof *slots);
	t->prof = rv_malloc(t->a, (n ? n : 1) * sizeof *t->prof);
	if (!key || !hits || !slots || !t->prof) {
		st = rv_err_nomem(e);
		goto done;
	}
	size_t qbytes = t->dim * sizeof(float);
	for (size_t i = 0; i < n; i++)
		key[i] = (rr_qkey){ rv_hash64(samples[i].query, qbytes, 0), (uint32_t)i };
	qsort(key, n, sizeof *key, qkey_cmp);
	for (size_t i = 0; i < n; i++) {
		const rv_rerank_sample *s = &samples[key[i].i];
		/* The same query as the previous key's: the same profile. */
		if (i && key[i].h == key[i - 1].h && memcmp(s->query, samples[key[i - 1].i].query, qbytes) == 0) {
			t->prof[key[i].i] = t->prof[key[i - 1].i];
			continue;
		}
		size_t nh = 0;
		if ((st = rv_db_knn_locked(t->db, s->query, RV_RCAT_POOL, hits, &nh, e)) != RV_OK)
			goto done;
		for (size_t j = 0; j < nh; j++)
			slots[j] = hits[j].slot;
		rv_rcat_profile_of(&t->prof[key[i].i], t->cat, t->db, slots, nh);
	}
done:
	rv_dealloc(t->a, key);
	rv_dealloc(t->a, hits);
	rv_dealloc(t->a, slots);
	return st;
}

rv_status rv_reranker_train(rv_reranker **rp, const rv_db *db, rv_gnn_kind kind, const rv_rerank_sample *samples,
			    size_t n, float ewc, const char *category, uint64_t seed, rv_err *e)
{
	rv_status st = RV_OK;
	rr_train t = { 0 };
	uint32_t *order = NULL;
	float *fw = NULL, *fp = NULL, *pfis = NULL;
	rv_reranker *result = NULL;
	if (!rp || !db)
		return rv_err_set(e, RV_EINVAL, "re-ranker training: output and collection are required");
	if ((unsigned)kind > RV_GNN_GAT)
		return rv_err_set(e, RV_EINVAL, "GNN kind %d is not SAGE (0), GCN (1) or GAT (2)", (int)kind);
	if (n && !samples)
		return rv_err_set(e, RV_EINVAL, "re-ranker training: %zu samples but no array", n);
	if (!(ewc >= 0) || !isfinite(ewc))
		return rv_err_set(e, RV_EINVAL, "re-ranker training: EWC strength %g must be finite and >= 0", (double)ewc);
	if (db->dim > RV_LEARN_MAX_DIM)
		return rv_err_set(e, RV_EINVAL, "re-ranker: dimension %u is above the learners' %d", db->dim,
				  RV_LEARN_MAX_DIM);
	if (category && strlen(category) >= RV_LEARN_CATEGORY_MAX)
		return rv_err_set(e, RV_EINVAL, "re-ranker: category field longer than %d bytes", RV_LEARN_CATEGORY_MAX - 1);
	for (size_t i = 0; i < n; i++)
		if ((st = check_sample(db, &samples[i], i, e)) != RV_OK)
			return st;
	const rv_reranker *prev = *rp;
	if (prev && (prev->kind != kind || prev->dim != db->dim))
		prev = NULL;

	t.db = db;
	t.a = db->a;
	t.dim = db->dim;
	t.maxdeg = max_degree(db);
	t.maxnodes = RR_CAND * (1 + t.maxdeg);
	rv_gnn_opts o;
	model_opts(&o, kind, db->dim, prev ? prev->out : RR_OUT,
		   kind == RV_GNN_GAT ? (prev ? rv_gnn_get_opts(prev->model)->heads[0] : RR_GAT_HEADS) : 1,
		   prev ? rv_gnn_get_opts(prev->model)->leaky : RR_LEAKY, RR_HEAD, RV_LEARN_ADAM, seed);
	if ((st = rv_gnn_create(&t.m, &o, t.a, e)) != RV_OK)
		goto done;
	if (prev) {
		size_t np;
		float *dst = rv_gnn_params(t.m, &np);
		if (np == rv_gnn_param_count(prev->model)) {
			memcpy(dst, rv_gnn_params(prev->model, NULL), np * sizeof(float));
			rv_gnn_scale_input(t.m, 1.0f / prev->feat_scale);
		}
	}
	t.scale = prev ? prev->base_scale : estimate_scale(db, samples, n);
	t.fs = prev ? prev->feat_scale : estimate_feat_scale(db, samples, n);

	size_t ns = db->vecs.n ? db->vecs.n : 1;
	t.item_of = rv_malloc(t.a, ns * sizeof(uint32_t));
	t.stamp = rv_calloc(t.a, ns, sizeof(uint32_t));
	t.node_of = rv_malloc(t.a, ns * sizeof(uint32_t));
	t.x = rv_calloc(t.a, t.maxnodes, t.dim * sizeof(float));
	t.base = rv_malloc(t.a, t.maxnodes * sizeof(float));
	t.items = rv_malloc(t.a, t.maxnodes * sizeof(uint32_t));
	t.off = rv_malloc(t.a, (t.maxnodes + 1) * sizeof(uint32_t));
	t.nbrs = rv_malloc(t.a, (RR_CAND * t.maxdeg + 1) * sizeof(uint32_t));
	order = rv_malloc(t.a, (n ? n : 1) * sizeof(uint32_t));
	t.q = rv_malloc(t.a, t.dim * sizeof(float));
	if (!t.q || !t.item_of || !t.stamp || !t.node_of || !t.x || !t.base || !t.items || !t.off || !t.nbrs || !order) {
		st = rv_err_nomem(e);
		goto done;
	}
	memset(t.item_of, 0xff, ns * sizeof(uint32_t));

	/* Going on: the previous priors of live slots are the starting point. */
	if (prev && prev->np) {
		for (size_t i = 0; i < prev->np; i++) {
			uint32_t id;
			if (slot_live(db, prev->pslot[i]) && (st = item_id(&t, prev->pslot[i], &id)) != RV_OK) {
				st = rv_err_nomem(e);
				goto done;
			}
		}
		if ((st = rv_gnn_reserve_priors(t.m, t.nitems)) != RV_OK) {
			st = rv_err_set(e, st, "%s", rv_gnn_errmsg(t.m));
			goto done;
		}
		float *tab = rv_gnn_priors(t.m, NULL);
		for (size_t i = 0; i < prev->np; i++)
			if (slot_live(db, prev->pslot[i]))
				tab[t.item_of[prev->pslot[i]]] = prev->pval[i];
	}
	if (category && category[0] && (st = category_setup(&t, prev, samples, n, ewc, category, e)) != RV_OK)
		goto done;
	/* EWC++: held near the previous re-ranker, each weight and prior as
	 * firmly as the pairs it learned from determined it. */
	if (ewc > 0 && prev && prev->fisher) {
		/* The items so far are the previous priors' (just loaded into
		 * the table, which is their anchor). */
		size_t ni = t.nitems;
		if (!(pfis = rv_calloc(t.a, ni ? ni : 1, sizeof(float)))) {
			st = rv_err_nomem(e);
			goto done;
		}
		for (size_t i = 0; i < prev->np; i++)
			if (slot_live(db, prev->pslot[i]))
				pfis[t.item_of[prev->pslot[i]]] = prev->pfis[i];
		const float *pstar = ni ? rv_gnn_priors(t.m, NULL) : NULL;
		if ((st = rv_gnn_set_anchor(t.m, ewc, prev->fisher, pstar, pfis, ni)) != RV_OK) {
			st = rv_err_set(e, st, "re-ranker: %s", rv_gnn_errmsg(t.m));
			goto done;
		}
	}

	size_t epochs = n ? (RR_MIN_STEPS + n - 1) / n : 0;
	if (epochs < 1)
		epochs = 1;
	if (epochs > RR_MAX_EPOCHS)
		epochs = RR_MAX_EPOCHS;
	rv_rng rng;
	rv_rng_seed(&rng, seed);
	uint64_t steps = 0;
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	rr_pairs pp;
	for (size_t ep = 0; ep < epochs && n; ep++) {
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = (size_t)rv_rng_below(&rng, i + 1);
			uint32_t tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		for (size_t i = 0; i < n; i++) {
			const rv_rerank_sample *s = &samples[order[i]];
			make_pairs(&pp, db, s);
			if (pp.np == 0)
				continue;
			t.cur = t.prof ? &t.prof[order[i]] : NULL;
			if ((st = train_step(&t, s, &pp, e)) != RV_OK)
				goto done;
			steps++;
		}
	}
	if (t.cat) {
		/* The term's evidence: the Fisher information of sigma over
		 * every sample's pairs, at the trained weights. */
		rv_rcat_info_begin(t.cat);
		for (size_t i = 0; i < n; i++) {
			const rv_rerank_sample *s = &samples[i];
			make_pairs(&pp, db, s);
			for (size_t c = 0; c < pp.nc; c++) {
				t.cats[c] = rv_rcat_of(t.cat, db, pp.cand[c]);
				t.base0[c] = -slot_dist(db, s->query, pp.cand[c]) * t.scale;
			}
			rv_rcat_info_add(t.cat, &t.prof[i], t.cats, t.base0, pp.nc, pp.p, pp.np);
		}
		rv_rcat_info_end(t.cat);
	}
	if (ewc > 0) {
		fw = rv_malloc(t.a, rv_gnn_param_count(t.m) * sizeof(float));
		fp = rv_malloc(t.a, (t.nitems ? t.nitems : 1) * sizeof(float));
		if (!fw || !fp) {
			st = rv_err_nomem(e);
			goto done;
		}
		if ((st = fisher_pass(fw, fp, t.nitems, &t, prev, samples, n, e)) != RV_OK)
			goto done;
	}
	if ((st = train_result(&result, &t, kind, fw, fp, e)) != RV_OK)
		goto done;
	result->steps = (prev ? prev->steps : 0) + steps;
	rv_reranker_free(*rp);
	*rp = result;
	result = NULL;
done:
	rv_dealloc(t.a, fw);
	rv_dealloc(t.a, fp);
	rv_dealloc(t.a, pfis);
	rv_dealloc(t.a, order);
	rv_dealloc(t.a, t.q);
	rv_dealloc(t.a, t.nbrs);
	rv_dealloc(t.a, t.off);
	rv_dealloc(t.a, t.items);
	rv_dealloc(t.a, t.base);
	rv_dealloc(t.a, t.x);
	rv_dealloc(t.a, t.node_of);
	rv_dealloc(t.a, t.stamp);
	rv_dealloc(t.a, t.slot_of);
	rv_dealloc(t.a, t.item_of);
	rv_dealloc(t.a, t.prof);
	rv_rcat_free(t.cat);
	rv_gnn_free(t.m);
	rv_reranker_free(result);
	return st;
}

/* ------------------------------------------------------------------------
 * Re-ranking and explaining
 * ---------------------------------------------------------------------- */

typedef struct rr_order {
	float score;
	uint32_t i;
} rr_order;

static int order_cmp(const void *a, const void *b)
{
	const rr_order *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	/* Ties keep the distance order. */
	return (x->i > y->i) - (x->i < y->i);
}

/* pick[0..keep) = the indices of the keep highest of sv[0..n), best
 * first, ties in index order (the distance order): insertion into the
 * list of the best so far, which a pool of 50 for k = 10 mostly passes
 * by with one comparison. keep <= RR_PICK_MAX. */
static void pick_best(uint32_t *pick, const float *sv, size_t n, size_t keep)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		float s = sv[i];
		if (m == keep && !(s > sv[pick[m - 1]]))
			continue;
		size_t j = m < keep ? m++ : keep - 1;
		for (; j > 0 && s > sv[pick[j - 1]]; j--)
			pick[j] = pick[j - 1];
		pick[j] = (uint32_t)i;
	}
}

/* rv_reranker_apply; the category profile from pool[0..np) when pool is
 * given, else from the hits. */
static size_t apply(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n, size_t k,
		    const uint32_t *pool, size_t np)
{
	size_t keep = n < k ? n : k;
	if (!r || !db || !q || !hits || n < 2 || keep == 0 || db->dim != r->dim)
		return keep;
	rr_scratch sc;
	scratch_init(&sc, db->a);
	/* Small pools (every search's) use the stack: a search allocates
	 * nothing here. */
	struct {
		uint32_t slots[RR_STACK_POOL];
		float dist[RR_STACK_POOL], sv[RR_STACK_POOL];
		rv_hnsw_hit copy[RR_STACK_POOL];
		float w[RR_STACK_OUT], row[RR_STACK_OUT + 1];
	} st;
	uint32_t pick[RR_PICK_MAX];
	bool sort_all = keep > RR_PICK_MAX;
	char *buf = NULL;
	uint32_t *slots = st.slots;
	float *dist = st.dist, *sv = st.sv, *w = st.w, *row = st.row;
	rv_hnsw_hit *copy = st.copy;
	rr_order *ord = NULL;
	if (n > RR_STACK_POOL || r->out > RR_STACK_OUT || sort_all) {
		size_t per = sizeof(rr_order) + sizeof(rv_hnsw_hit) + sizeof(uint32_t) + 2 * sizeof(float);
		size_t bytes;
		if (!rv_mul_ok(n, per, &bytes) || bytes > SIZE_MAX - (2 * r->out + 1) * sizeof(float))
			return keep;
		buf = rv_malloc(db->a, bytes + (2 * r->out + 1) * sizeof(float));
		if (!buf)
			goto done;
		/* Carve: orders, hits copy, slots, distances, scores, w, row
		 * (all 4-byte aligned). */
		ord = (rr_order *)(void *)buf;
		copy = (rv_hnsw_hit *)(void *)(ord + n);
		slots = (uint32_t *)(void *)(copy + n);
		dist = (float *)(void *)(slots + n);
		sv = dist + n;
		w = sv + n;
		row = w + r->out;
	}
	for (size_t i = 0; i < n; i++) {
		slots[i] = hits[i].slot;
		dist[i] = hits[i].dist;
	}
	/* Hits are live slots; anything else keeps its place at the bottom. */
	for (size_t i = 0; i < n; i++)
		if (!slot_live(db, slots[i]))
			goto done;
	/* The hits come nearest first: their head is the query's profile. */
	rv_rcat_profile prof;
	if (r->cat)
		rv_rcat_profile_of(&prof, r->cat, db, pool ? pool : slots, pool ? np : n);
	score_slots(sv, r, db, q, slots, dist, n, r->cat ? &prof : NULL, w, row, &sc);
	if (sc.failed)
		goto done;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(sv[i]))
			sv[i] = -INFINITY;
	memcpy(copy, hits, n * sizeof *hits);
	if (sort_all) {
		for (size_t i = 0; i < n; i++)
			ord[i] = (rr_order){ sv[i], (uint32_t)i };
		qsort(ord, n, sizeof *ord, order_cmp);
		for (size_t i = 0; i < n; i++)
			hits[i] = copy[ord[i].i];
		goto done;
	}
	pick_best(pick, sv, n, keep);
	/* The kept ones first; the others after them, in the order given
	 * (a NaN score marks a kept one: real scores are never NaN now). */
	for (size_t i = 0; i < keep; i++) {
		hits[i] = copy[pick[i]];
		sv[pick[i]] = NAN;
	}
	for (size_t i = 0, m = keep; i < n; i++)
		if (!isnan(sv[i]))
			hits[m++] = copy[i];
done:
	scratch_free(&sc);
	rv_dealloc(db->a, buf);
	return keep;
}

size_t rv_reranker_apply(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n,
			 size_t k)
{
	return apply(r, db, q, hits, n, k, NULL, 0);
}

size_t rv_reranker_apply_pool(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n,
			      size_t k, const uint32_t *pool, size_t np)
{
	for (size_t i = 0; pool && i < np; i++)
		if (!slot_live(db, pool[i]))
			return apply(r, db, q, hits, n, k, NULL, 0);
	return apply(r, db, q, hits, n, k, pool, np);
}

/* The category profile of slots[0..n) as a pool: ordered by distance to q. */
static rv_status profile_of_slots(rv_rcat_profile *p, const rv_reranker *r, const rv_db *db, const float *q,
				  const uint32_t *slots, size_t n, rv_err *e)
{
	rr_order *ord = rv_malloc(db->a, (n ? n : 1) * sizeof *ord);
	uint32_t *sorted = rv_malloc(db->a, (n ? n : 1) * sizeof *sorted);
	if (!ord || !sorted) {
		rv_dealloc(db->a, ord);
		rv_dealloc(db->a, sorted);
		return rv_err_nomem(e);
	}
	/* order_cmp puts the highest score first: score by -distance. */
	for (size_t i = 0; i < n; i++)
		ord[i] = (rr_order){ -slot_dist(db, q, slots[i]), (uint32_t)i };
	qsort(ord, n, sizeof *ord, order_cmp);
	for (size_t i = 0; i < n; i++)
		sorted[i] = slots[ord[i].i];
	rv_rcat_profile_of(p, r->cat, db, sorted, n);
	rv_dealloc(db->a, ord);
	rv_dealloc(db->a, sorted);
	return RV_OK;
}

rv_status rv_reranker_score(float *scores, const rv_reranker *r, const rv_db *db, const float *q,
			    const uint32_t *slots, size_t n, rv_err *e)
{
	rv_status st = RV_OK;
	rr_scratch sc;
	float *buf = NULL;
	if (!scores || !r || !db || !q || (n && !slots))
		return rv_err_set(e, RV_EINVAL, "re-ranker score: scores, re-ranker, collection, query and slots are required");
	if (db->dim != r->dim)
		return rv_err_set(e, RV_EINVAL, "re-ranker has dimension %u, collection %u", r->dim, db->dim);
	for (size_t i = 0; i < n; i++)
		if (!slot_live(db, slots[i]))
			return rv_err_set(e, RV_EINVAL, "re-ranker score: slot %u is not a live point", slots[i]);
	scratch_init(&sc, db->a);
	if (!(buf = rv_malloc(db->a, (2 * r->out + 1) * sizeof(float)))) {
		st = rv_err_nomem(e);
		goto done;
	}
	rv_rcat_profile prof;
	if (r->cat && (st = profile_of_slots(&prof, r, db, q, slots, n, e)) != RV_OK)
		goto done;
	score_slots(scores, r, db, q, slots, NULL, n, r->cat ? &prof : NULL, buf, buf + r->out, &sc);
	if (sc.failed)
		st = rv_err_nomem(e);
done:
	rv_dealloc(db->a, buf);
	scratch_free(&sc);
	return st;
}

typedef struct rr_weight {
	float w;
	uint32_t slot;
	uint32_t j; /* input index: 0 = the item */
} rr_weight;

static int weight_cmp(const void *a, const void *b)
{
	const rr_weight *x = a, *y = b;
	float ax = fabsf(x->w), ay = fabsf(y->w);
	if (ax != ay)
		return ax < ay ? 1 : -1;
	return (x->j > y->j) - (x->j < y->j);
}

rv_status rv_reranker_explain(const rv_reranker *r, const rv_db *db, const float *q, uint32_t slot,
			      uint32_t *slots, float *weights, size_t max, size_t *n, rv_err *e)
{
	rv_status st = RV_OK;
	rr_scratch sc;
	rr_weight *ws = NULL;
	float *w = NULL;
	if (!r || !db || !n || (max && (!slots || !weights)))
		return rv_err_set(e, RV_EINVAL, "re-ranker explain: re-ranker, collection, outputs and count are required");
	*n = 0;
	if (db->dim != r->dim)
		return rv_err_set(e, RV_EINVAL, "re-ranker has dimension %u, collection %u", r->dim, db->dim);
	if (!q && r->kind != RV_GNN_GAT)
		return rv_err_set(e, RV_EINVAL, "re-ranker explain: a %s re-ranker needs the query",
				  r->kind == RV_GNN_GCN ? "GCN" : "SAGE");
	if (!slot_live(db, slot))
		return rv_err_set(e, RV_ENOTFOUND, "re-ranker explain: slot %u is not a live point", slot);
	scratch_init(&sc, db->a);
	if (!scratch_work(&sc, r)) {
		st = rv_err_nomem(e);
		goto done;
	}
	size_t deg = neighbours(db, slot, sc.nslots, sc.ptrs);
	ws = rv_malloc(db->a, (deg + 1) * sizeof *ws);
	w = rv_malloc(db->a, (deg + 1) * sizeof *w);
	if (!ws || !w) {
		st = rv_err_nomem(e);
		goto done;
	}
	if ((st = rv_gnn_explain_node(w, r->model, q, db->vecs.ptr[slot], sc.ptrs, deg, sc.work)) != RV_OK) {
		st = rv_err_set(e, st, "re-ranker explain: %s", rv_gnn_errmsg(r->model));
		goto done;
	}
	for (size_t j = 0; j <= deg; j++)
		ws[j] = (rr_weight){ w[j], j == 0 ? slot : sc.nslots[j - 1], (uint32_t)j };
	qsort(ws, deg + 1, sizeof *ws, weight_cmp);
	size_t cnt = deg + 1 < max ? deg + 1 : max;
	for (size_t i = 0; i < cnt; i++) {
		slots[i] = ws[i].slot;
		weights[i] = ws[i].w;
	}
	*n = cnt;
done:
	rv_dealloc(db->a, w);
	rv_dealloc(db->a, ws);
	scratch_free(&sc);
	return st;
}

/* ------------------------------------------------------------------------
 * Byte form (layout at the top)
 * ---------------------------------------------------------------------- */

rv_status rv_reranker_encode(rv_buf *b, const rv_reranker *r, const uint32_t *old_to_new)
{
	rr_prior *pr = NULL;
	size_t start = b->len, cnt = 0;
	if (r->np) {
		pr = rv_malloc(b->a, r->np * sizeof *pr);
		if (!pr)
			return RV_ENOMEM;
		for (size_t i = 0; i < r->np; i++) {
			uint32_t s = old_to_new ? old_to_new[r->pslot[i]] : r->pslot[i];
			if (s != RV_NO_SLOT && (r->pval[i] != 0 || r->pfis[i] != 0))
				pr[cnt++] = (rr_prior){ s, r->pval[i], r->pfis[i] };
		}
		/* Compaction keeps the kept slots' order; sort anyway, the
		 * reader insists on ascending slots. */
		qsort(pr, cnt, sizeof *pr, prior_cmp);
	}
	const rv_gnn_opts *o = rv_gnn_get_opts(r->model);
	size_t nt;
	const float *th = rv_gnn_params(r->model, &nt);
	rv_buf_put(b, RR_MAGIC, 4);
	rv_buf_u16(b, RR_VERSION);
	rv_buf_u16(b, (uint16_t)r->kind);
	rv_buf_u32(b, r->dim);
	rv_buf_u32(b, (uint32_t)r->out);
	rv_buf_u32(b, o->heads[0]);
	rv_buf_u32(b, o->head);
	rv_buf_f32(b, o->leaky);
	rv_buf_f32(b, r->base_scale);
	rv_buf_f32(b, r->feat_scale);
	rv_buf_u64(b, r->steps);
	rv_buf_u64(b, 0); /* observed: no longer counted */
	rv_buf_u32(b, (uint32_t)nt);
	for (size_t i = 0; i < nt; i++)
		rv_buf_f32(b, th[i]);
	rv_buf_u32(b, r->fisher ? (uint32_t)nt : 0);
	for (size_t i = 0; r->fisher && i < nt; i++)
		rv_buf_f32(b, r->fisher[i]);
	rv_buf_u8(b, r->cat != NULL); /* version 3 */
	if (r->cat)
		rv_rcat_encode(b, r->cat);
	rv_buf_u32(b, (uint32_t)cnt);
	for (size_t i = 0; i < cnt; i++) {
		rv_buf_u32(b, pr[i].slot);
		rv_buf_f32(b, pr[i].value);
		rv_buf_f32(b, pr[i].fisher);
	}
	rv_learn_seal(b, start);
	rv_dealloc(b->a, pr);
	if (b->failed) {
		b->len = start;
		return RV_ENOMEM;
	}
	return RV_OK;
}

/* Parameters of one layer of kind with this shape (and the head), as
 * plan() in gnn.c lays them out; 0 on overflow. */
static uint64_t param_count(rv_gnn_kind kind, uint64_t dim, uint64_t out, unsigned head)
{
	uint64_t n = out * dim * (kind == RV_GNN_SAGE ? 2 : 1);
	n += kind == RV_GNN_GAT ? 2 * out : out; /* a (heads x 2 hd) or the bias */
	n += out * dim;                          /* W_q */
	if (head & RV_GNN_HEAD_BIAS)
		n += out;
	if (head & RV_GNN_HEAD_BASE)
		n += 1;
	return n;
}

rv_status rv_reranker_decode(rv_reranker **out, const rv_db *db, const void *bytes, size_t n, rv_err *e)
{
	rv_status st = RV_OK;
	rv_reranker *r = NULL;
	rv_reader rd;
	if (!out || !db)
		return rv_err_set(e, RV_EINVAL, "re-ranker decode: output and collection are required");
	*out = NULL;
	if (!bytes || !rv_learn_check_seal(bytes, n))
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: checksum mismatch or truncated (%zu bytes)", n);
	rv_reader_init(&rd, bytes, n - 8);
	const uint8_t *magic = rv_reader_bytes(&rd, 4);
	if (!magic || memcmp(magic, RR_MAGIC, 4) != 0)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: bad magic");
	uint16_t version = rv_reader_u16(&rd);
	if (rd.bad || version == 0)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: bad version %u", version);
	if (version > RR_VERSION)
		return rv_err_set(e, RV_EVERSION, "re-ranker state has format version %u, this build reads up to %d",
				  version, RR_VERSION);
	uint16_t kind = rv_reader_u16(&rd);
	uint32_t dim = rv_reader_u32(&rd), outd = rv_reader_u32(&rd), heads = rv_reader_u32(&rd);
	uint32_t head = rv_reader_u32(&rd);
	float leaky = rv_reader_f32(&rd), scale = rv_reader_f32(&rd), fscale = rv_reader_f32(&rd);
	uint64_t steps = rv_reader_u64(&rd);
	(void)rv_reader_u64(&rd); /* observed: read and ignored */
	uint32_t nt = rv_reader_u32(&rd);
	if (rd.bad)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: truncated header");
	if (kind > RV_GNN_GAT)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: GNN kind %u", kind);
	if (dim != db->dim)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: dimension %u, collection has %u", dim, db->dim);
	if (dim > RV_LEARN_MAX_DIM || outd < 1 || outd > RR_MAX_OUT)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: dimension %u or representation size %u out of range",
				  dim, outd);
	if (kind == RV_GNN_GAT ? (heads < 1 || heads > RV_GNN_MAX_HEADS || outd % heads != 0) : heads != 1)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u heads for a representation of %u", heads, outd);
	/* A learned beta (RV_GNN_HEAD_BASE) is no longer trained but still
	 * loads: the model reads it from its weights. */
	if ((head & ~(unsigned)(RV_GNN_HEAD_BIAS | RV_GNN_HEAD_BASE)) || !(leaky >= 0 && leaky < 1) || !(scale > 0) ||
	    !isfinite(scale) || !(fscale > 0) || !isfinite(fscale) || !isfinite(1.0f / fscale))
		return rv_err_set(e, RV_ECORRUPT,
				  "re-ranker state: head 0x%x, slope %g, base scale %g or feature scale %g out of range",
				  head, leaky, scale, fscale);
	uint64_t want = param_count((rv_gnn_kind)kind, dim, outd, head);
	if (nt != want || rv_reader_left(&rd) < (size_t)nt * 4 + 4)
		return rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u weights stored, the layer has %llu", nt,
				  (unsigned long long)want);
	r = rr_new(db->a, (rv_gnn_kind)kind, dim);
	if (!r)
		return rv_err_nomem(e);
	r->out = outd;
	r->base_scale = scale;
	r->feat_scale = fscale;
	r->steps = steps;
	rv_gnn_opts o;
	model_opts(&o, (rv_gnn_kind)kind, dim, outd, heads, leaky, head, RV_LEARN_SGD, 1);
	rv_err ge;
	if ((st = rv_gnn_create(&r->model, &o, db->a, &ge)) != RV_OK) {
		st = rv_err_set(e, st == RV_ENOMEM ? st : RV_ECORRUPT, "re-ranker state: %s", ge.msg);
		goto done;
	}
	size_t np;
	float *th = rv_gnn_params(r->model, &np);
	if (np != nt) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u weights stored, the layer has %zu", nt, np);
		goto done;
	}
	for (size_t i = 0; i < np; i++) {
		th[i] = rv_reader_f32(&rd);
		if (!isfinite(th[i])) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: weight %zu is not finite", i);
			goto done;
		}
	}
	flush_subnormal(th, np);
	/* Version 2: the EWC++ Fisher estimate of the weights (none or all),
	 * and one per prior. */
	uint32_t nf = version >= 2 ? rv_reader_u32(&rd) : 0;
	if (rd.bad || (nf != 0 && nf != nt) || rv_reader_left(&rd) < (size_t)nf * 4 + 4) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u Fisher values for %u weights", nf, nt);
		goto done;
	}
	if (nf && !(r->fisher = rv_malloc(db->a, nf * sizeof(float)))) {
		st = rv_err_nomem(e);
		goto done;
	}
	for (uint32_t i = 0; i < nf; i++) {
		r->fisher[i] = rv_reader_f32(&rd);
		if (!(r->fisher[i] >= 0) || !isfinite(r->fisher[i])) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: Fisher value %u is %g", i, (double)r->fisher[i]);
			goto done;
		}
	}
	uint8_t has_cat = version >= 3 ? rv_reader_u8(&rd) : 0;
	if (rd.bad || has_cat > 1) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: category flag %u", has_cat);
		goto done;
	}
	if (has_cat && (st = rv_rcat_decode(&r->cat, db, &rd, e)) != RV_OK)
		goto done;
	size_t per = version >= 2 ? 12 : 8;
	uint32_t cnt = rv_reader_u32(&rd);
	if (rd.bad || cnt > db->vecs.n || rv_reader_left(&rd) != (size_t)cnt * per) {
		st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: %u priors in %zu bytes for a collection of %u slots", cnt,
				rv_reader_left(&rd), db->vecs.n);
		goto done;
	}
	if (cnt && !prior_reserve(r, cnt)) {
		st = rv_err_nomem(e);
		goto done;
	}
	uint32_t last = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		uint32_t s = rv_reader_u32(&rd);
		float v = rv_reader_f32(&rd), f = version >= 2 ? rv_reader_f32(&rd) : 0.0f;
		if (s >= db->vecs.n || (i && s <= last) || !isfinite(v) || !(f >= 0) || !isfinite(f)) {
			st = rv_err_set(e, RV_ECORRUPT, "re-ranker state: prior %u names slot %u (after %u, of %u) or is not finite",
					i, s, last, db->vecs.n);
			goto done;
		}
		last = s;
		/* A point deleted since: its prior goes. */
		if (!slot_live(db, s))
			continue;
		r->pslot[r->np] = s;
		r->pfis[r->np] = f;
		r->pval[r->np++] = v;
	}
	*out = r;
	r = NULL;
done:
	rv_reranker_free(r);
	return st;
}
