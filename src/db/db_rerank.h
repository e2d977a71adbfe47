/*
 * db_rerank.h - the GNN re-ranker of a collection (db_rerank.c).
 *
 * The re-ranker re-scores the candidate pool of a search: each candidate
 * gets a node representation from one GNN layer (GraphSAGE, GCN or GAT,
 * src/learn/gnn.c) over its HNSW layer-0 neighbourhood, plus a learned
 * prior per item, combined with the candidate's distance to the query:
 *
 *   score(q, v) = -beta * dist(q, v) * base_scale + <W_q q + u, h_v> + prior[v]
 *                 (+ cat(q, v), with a category field: db_rerank_cat.h)
 *
 * (beta is 1 in the re-rankers trained now; db_rerank.c says why)
 *
 * It is trained on chosen-versus-skipped pairs from feedback, with
 * position-bias correction, by rv_reranker_train (called by a
 * consolidation, db_learn*.c), which makes a new re-ranker: once made, a
 * re-ranker never changes (feedback events do not move its priors:
 * db_learn.c says why). A re-ranker belongs to one learning version;
 * versions own their re-ranker and free it.
 *
 * Training pairs from one sample: the item against each other live item
 * shown (the ones above it, which the user went past, and the ones below
 * it, nearest positions first, alternating; an item not shown ranks below
 * all shown), at most RV_RERANK_MAX_PAIRS: the item wins when its reward
 * is positive, loses when negative. Pairs only against the items above
 * (skip-above) would all say "the further item wins" and teach the model
 * to invert the distance order; the pairs below balance them, and the
 * inverse-propensity weight removes the position bias (propensity-
 * weighted SVM-rank, Joachims et al. 2017). Each pair weighs |reward| /
 * propensity of the item's position, 1 / (p + 1)^RV_RERANK_ETA clipped at
 * 1 / RV_RERANK_MAX_WEIGHT; an item not shown weighs |reward|.
 *
 * Slots: priors and cached representations are per slot. A slot's item is
 * found again after compaction through the old_to_new map given to
 * rv_reranker_encode; an item replaced by upsert (new slot) starts from
 * its neighbours' representations (GraphSAGE is inductive) with prior 0.
 * Priors of dead slots are dropped by training, decoding and remapping,
 * and never read (dead slots are never among the hits).
 *
 * Representations do not depend on the query, so each is computed once
 * per re-ranker, on first use, from the live layer-0 neighbours at that
 * moment, and cached with the slot's prior (about 135 bytes per slot of
 * the collection, held from the first apply/score/warm until the
 * re-ranker is freed).
 * Slots added after the cache was sized are computed on every use; a new
 * version (a new re-ranker) starts a new cache.
 *
 * Threads: apply, explain and score are reads (many at once, under the
 * collection's read lock; the cache fills through atomics); train and
 * free run under the write lock (train only reads db, so it may also run
 * under the read lock while searches go on).
 */
#ifndef RV_DB_RERANK_H
#define RV_DB_RERANK_H

#include "db_int.h"
#include "ruvector_learn.h"

typedef struct rv_reranker rv_reranker;

#define RV_RERANK_MAX_PAIRS 10    /* training pairs per sample, at most */
#define RV_RERANK_ETA 1.0         /* propensity exponent: p(position) = 1 / (position + 1)^eta */
#define RV_RERANK_MAX_WEIGHT 10.0 /* inverse-propensity clip */

/* One feedback event as training data. */
typedef struct rv_rerank_sample {
	const float *query;     /* dim floats, as searched (normalised for cosine) */
	const uint32_t *shown;  /* slots shown, best first (dead slots are skipped) */
	uint32_t n_shown;
	uint32_t position;      /* of the rewarded item among shown, or RV_FB_NOT_SHOWN */
	uint32_t slot;          /* the rewarded item */
	float reward;           /* [-1, 1] */
} rv_rerank_sample;

/* Train (or go on training *r, when not NULL) on samples[0..n). *r is
 * replaced only on success: then the old *r is freed and *r is the new
 * re-ranker (so pass a re-ranker of your own, e.g. a clone of a version's,
 * never one that a version still holds). Going on keeps *r's weights, priors and
 * base scale when its kind and dimension match (else it starts afresh);
 * the optimiser restarts. ewc > 0 (EWC++): the re-ranker keeps a Fisher
 * estimate of its weights and priors (the mean squared gradient of the
 * pair loss on the samples, blended with the previous estimate), and
 * training that goes on from one that has it is anchored there:
 * rv_gnn_set_anchor with lambda = ewc, so a weight or prior the earlier
 * pairs determined moves only as far as the new pairs outweigh them.
 * ewc = 0: no estimate, and l2 pulls towards zero. Samples whose item is dead, or with reward 0,
 * give no pairs and are skipped; a position whose shown[] entry is not the
 * item is looked up by slot. Allocates through db's allocator.
 * category (NULL or "": none): a payload field; the re-ranker then also
 * has the category term of db_rerank_cat.h, trained with the rest (going
 * on from *r's when it has one of the same field, by category name, and
 * held by EWC++ like the weights). Each sample's category profile comes
 * from a search of the collection for its query (RV_RCAT_POOL hits; one
 * search per distinct query).
 * Errors: RV_EINVAL (kind, a sample's query, reward, position or counts,
 * named by index; category too long), RV_ENOMEM, RV_ERROR (training
 * diverged: a weight left float range); *r unchanged on any error. */
rv_status rv_reranker_train(rv_reranker **r, const rv_db *db, rv_gnn_kind kind, const rv_rerank_sample *samples,
			    size_t n, float ewc, const char *category, uint64_t seed, rv_err *e);
/* Reorder hits[0..n) (ascending dist, from the graph or an exact scan)
 * by the learned score for query q; returns min(n, k), the hits to keep,
 * which are the first ones, best first (ties in the order given); the
 * others follow them. Each hit's dist must be its distance to q in the
 * collection's form (db_int.h), as the index and rv_hnsw_distance give
 * it: it is the score's distance term (and is kept as it is). A pool
 * of up to 256 hits, keeping up to 64, whose representations are cached
 * allocates nothing. Never fails: without memory for its scratch it
 * keeps the order it was given. */
size_t rv_reranker_apply(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n,
			 size_t k);
/* The same, with the category profile read from pool[0..np) (live
 * slots, nearest first) instead of the hits: for re-ranking part of a
 * pool, such as the hits a logged search showed, as the search that
 * ranked the whole pool would. A pool slot that is not live: the hits'
 * profile, as rv_reranker_apply. */
size_t rv_reranker_apply_pool(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n,
			      size_t k, const uint32_t *pool, size_t np);
/* The neighbours of slot that moved its score for q, most influential
 * first: up to max (slot, weight) pairs, *n of them. The item itself is
 * one of the entries (its own features count too). GAT: the attention,
 * averaged over heads (all entries sum to 1); GCN, SAGE: each input's
 * signed share of the representation term <W_q q + u, h> (absolute values
 * sum to 1). q may be NULL for GAT.
 * Errors: RV_ENOTFOUND (slot not live), RV_EINVAL. */
rv_status rv_reranker_explain(const rv_reranker *r, const rv_db *db, const float *q, uint32_t slot,
			      uint32_t *slots, float *weights, size_t max, size_t *n, rv_err *e);
rv_gnn_kind rv_reranker_kind(const rv_reranker *r);
/* A copy of r (weights, priors) allocated through a, which takes the
 * representations r has cached so far: activating a version clones its
 * re-ranker, and a version's warm re-ranker then serves warm at once
 * (without memory for the copy the clone computes its own). A read of
 * r, like apply. Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_reranker_clone(rv_reranker **out, const rv_reranker *r, const rv_alloc *a, rv_err *e);
/* Compute the representation of every live slot into r's cache now, on
 * `threads` threads, so that searches never pay for one (a cold slot costs
 * a GNN layer over its neighbours: tens of microseconds at a few hundred
 * dimensions, against well under one for a cached one). A read, like
 * apply. Errors: RV_EINVAL, RV_ENOMEM (what was computed stays cached). */
rv_status rv_reranker_warm(const rv_reranker *r, const rv_db *db, unsigned threads, rv_err *e);
/* How many slots have their representation cached (0 for NULL). */
size_t rv_reranker_cached(const rv_reranker *r);
void rv_reranker_free(rv_reranker *r); /* NULL is a no-op */
size_t rv_reranker_memory(const rv_reranker *r);

/* Serialise (slots renumbered through old_to_new when not NULL; entries
 * of slots mapped to RV_NO_SLOT are dropped; old_to_new must cover every
 * slot the collection had) / read back. The representation cache is not
 * saved. Decode checks everything against db (call it once db's slots are
 * loaded): a malformed blob is RV_ECORRUPT, a newer format RV_EVERSION.
 * Layout at the top of db_rerank.c. */
rv_status rv_reranker_encode(rv_buf *b, const rv_reranker *r, const uint32_t *old_to_new);
rv_status rv_reranker_decode(rv_reranker **out, const rv_db *db, const void *bytes, size_t n, rv_err *e);

/* The learned score of each of slots[0..n) for q (what apply sorts by,
 * higher first); for evaluation and tests. Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_reranker_score(float *scores, const rv_reranker *r, const rv_db *db, const float *q,
			    const uint32_t *slots, size_t n, rv_err *e);
/* The item prior of slot (0 when it has none). */
float rv_reranker_prior(const rv_reranker *r, uint32_t slot);
/* The category term, or NULL when the re-ranker has none. */
const struct rv_rcat *rv_reranker_category(const rv_reranker *r);
/* Training steps taken over all rv_reranker_train calls. */
uint64_t rv_reranker_steps(const rv_reranker *r);

#endif /* RV_DB_RERANK_H */
