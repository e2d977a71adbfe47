/*
 * db_rerank.h - the GNN re-ranker of a collection (db_rerank.c).
 *
 * The re-ranker re-scores the candidate pool of a search: each candidate
 * gets a node representation from one GNN layer (GraphSAGE, GCN or GAT,
 * src/learn/gnn.c) over its HNSW layer-0 neighbourhood, plus a learned
 * prior per item, combined with the candidate's distance to the query.
 * It is trained on chosen-versus-skipped pairs from feedback, with
 * position-bias correction, by rv_reranker_train (called by a
 * consolidation, db_learn*.c); item priors also move on every event
 * (rv_reranker_observe). A re-ranker belongs to one learning version;
 * versions own their re-ranker and free it.
 *
 * Slots: priors and cached representations are per slot. A slot's item is
 * found again after compaction through the old_to_new map given to
 * rv_reranker_encode; an item replaced by upsert (new slot) starts from
 * its neighbours' representations (GraphSAGE is inductive).
 *
 * Threads: apply and explain are reads (many at once, under the
 * collection's read lock); train, observe and free run under the write
 * lock.
 */
#ifndef RV_DB_RERANK_H
#define RV_DB_RERANK_H

#include "db_int.h"
#include "ruvector_learn.h"

typedef struct rv_reranker rv_reranker;

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
 * replaced only on success. */
rv_status rv_reranker_train(rv_reranker **r, const rv_db *db, rv_gnn_kind kind, const rv_rerank_sample *samples,
			    size_t n, uint64_t seed, rv_err *e);
/* Instant update from one event (item priors). */
rv_status rv_reranker_observe(rv_reranker *r, const rv_db *db, const rv_rerank_sample *s, rv_err *e);
/* Reorder hits[0..n) (ascending dist, from the graph or an exact scan)
 * by the learned score for query q; returns min(n, k), the hits to keep,
 * which are the first ones. */
size_t rv_reranker_apply(const rv_reranker *r, const rv_db *db, const float *q, rv_hnsw_hit *hits, size_t n,
			 size_t k);
/* The neighbours of slot that moved its score for q, most influential
 * first: up to max (slot, weight) pairs, *n of them. */
rv_status rv_reranker_explain(const rv_reranker *r, const rv_db *db, const float *q, uint32_t slot,
			      uint32_t *slots, float *weights, size_t max, size_t *n, rv_err *e);
rv_gnn_kind rv_reranker_kind(const rv_reranker *r);
rv_status rv_reranker_clone(rv_reranker **out, const rv_reranker *r, const rv_alloc *a, rv_err *e);
void rv_reranker_free(rv_reranker *r); /* NULL is a no-op */
size_t rv_reranker_memory(const rv_reranker *r);

/* Serialise (slots renumbered through old_to_new when not NULL; entries
 * of slots mapped to RV_NO_SLOT are dropped) / read back. */
rv_status rv_reranker_encode(rv_buf *b, const rv_reranker *r, const uint32_t *old_to_new);
rv_status rv_reranker_decode(rv_reranker **out, const rv_db *db, const void *bytes, size_t n, rv_err *e);

#endif /* RV_DB_RERANK_H */
