/*
 * ruvector_learn.h - how a collection learns from feedback: the learners,
 * consolidation into versions, rollback, status and evaluation.
 *
 * The feedback calls themselves (rv_results_search_id, rv_db_feedback,
 * rv_db_feedback_vector, rv_db_set_learning) are in ruvector.h. This header
 * adds what a demanding user controls on top of them:
 *
 *   MicroLoRA    a rank-2 residual on the query, stepped on every event
 *                (microseconds); always the first learner to act.
 *   BaseLoRA     a rank-8..16 residual trained from the replay buffer by
 *                rv_db_learn_consolidate() (or a background thread after
 *                every `auto_consolidate` events), with an EWC++ penalty
 *                (online Fisher estimate) that holds the weights earlier
 *                workloads needed.
 *   GNN          a re-ranker: the candidates of a search (a pool several
 *                times larger than k) are re-scored from node
 *                representations computed by a GCN, GAT or GraphSAGE layer
 *                over their HNSW layer-0 neighbourhoods, plus learned item
 *                priors; trained on chosen-versus-skipped pairs with
 *                position-bias correction.
 *   regions      ReasoningBank: k-means over the queries of the replay
 *                buffer; each region keeps its statistics (events, which
 *                learner helps there, the ef that meets the recall target).
 *
 * Every consolidation makes a version (kept in the file, at most
 * RV_LEARN_MAX_VERSIONS, oldest dropped first); any version can be made
 * active again, and version 0 means "nothing learned". A consolidation
 * may instead make a candidate version that searches interleave with the
 * active one (team-draft interleaving): feedback on the interleaved results
 * credits one side, and the candidate becomes active only once it wins.
 *
 * Everything here is saved at the next rv_db_commit(). Calls that change
 * state need a writable handle and take the write lock; status and eval
 * are reads. First version: 0.3.0.
 */
#ifndef RUVECTOR_LEARN_H
#define RUVECTOR_LEARN_H

#include "ruvector.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Learners (bit flags). */
enum {
	RV_LEARN_MICRO = 1u << 0, /* MicroLoRA query adapter, per event */
	RV_LEARN_BASE = 1u << 1,  /* BaseLoRA + EWC++, per consolidation */
	RV_LEARN_GNN = 1u << 2,   /* GNN re-ranker + item priors, per consolidation */
	RV_LEARN_ALL = 7u
};

typedef enum rv_gnn_kind {
	RV_GNN_SAGE = 0, /* GraphSAGE (mean aggregator): inductive, the default */
	RV_GNN_GCN = 1,
	RV_GNN_GAT = 2   /* multi-head attention; rv_db_explain() shows the weights */
} rv_gnn_kind;

/* "sage", "gcn", "gat". */
RV_API const char *rv_gnn_kind_name(rv_gnn_kind k);

typedef struct rv_learn_config {
	size_t size;               /* sizeof(rv_learn_config), set by RV_LEARN_CONFIG_INIT */
	unsigned learners;         /* RV_LEARN_* the collection uses (default RV_LEARN_ALL) */
	rv_gnn_kind gnn;           /* default RV_GNN_SAGE */
	uint32_t base_rank;        /* BaseLoRA rank, 8..16 (default 8) */
	float ewc_lambda;          /* EWC++ strength, >= 0; 0 turns EWC++ off (default 1) */
	uint32_t rerank_pool;      /* candidates the GNN re-ranks, as a multiple of k, 1..20 (default 5) */
	uint32_t auto_consolidate; /* consolidate in a background thread every this many
	                              events; 0 = only when asked (default 0) */
	uint32_t regions;          /* ReasoningBank regions, 1..256 (default 16) */
	float recall_target;       /* for the per-region ef, in (0, 1] (default 0.95) */
} rv_learn_config;

#define RV_LEARN_CONFIG_INIT { sizeof(rv_learn_config), RV_LEARN_ALL, RV_GNN_SAGE, 8, 1.0f, 5, 0, 16, 0.95f }

/* Set the learning configuration of the collection (saved at commit).
 * Learning itself is switched on and off with rv_db_set_learning().
 * Errors: RV_EINVAL (a field out of range, named), RV_EREADONLY. */
RV_API rv_status rv_db_learn_configure(rv_db *db, const rv_learn_config *cfg);

/* The configuration in force. cfg->size must be set (RV_LEARN_CONFIG_INIT). */
RV_API rv_status rv_db_learn_get_config(rv_learn_config *cfg, rv_db *db);

enum {
	RV_CONSOLIDATE_CANDIDATE = 1u << 0 /* make a candidate for interleaving, not the active version */
};

/* Train the consolidated learners (BaseLoRA with EWC++, the GNN re-ranker,
 * the regions) from the replay buffer and make a new version. The newest
 * tenth of the replay buffer is held out from training and the version
 * records NDCG@10 on it before and after. Runs on the calling thread;
 * searches go on meanwhile and switch to the new version when it is ready.
 * [out] version  the new version number (may be NULL)
 * Errors: RV_EINVAL (fewer than 100 events in the replay buffer, learning
 * needs dim <= 4096), RV_EREADONLY, RV_ENOMEM. */
RV_API rv_status rv_db_learn_consolidate(rv_db *db, unsigned flags, uint32_t *version);

/* Make version v the active one (0: nothing learned: searches use the
 * plain ranking until the next event or consolidation). The MicroLoRA
 * adapter restarts from zero on top of it. Any candidate is dropped.
 * Errors: RV_ENOTFOUND (no such version kept), RV_EREADONLY. */
RV_API rv_status rv_db_learn_rollback(rv_db *db, uint32_t version);

#define RV_LEARN_MAX_VERSIONS 32

typedef struct rv_learn_version {
	uint32_t version;
	uint32_t parent;          /* the version active when it was made (0 = none) */
	uint64_t created_ns;      /* wall clock, ns since 1970 */
	uint64_t events;          /* feedback events ever recorded when it was made */
	unsigned learners;        /* RV_LEARN_* trained into it */
	float ndcg_before;        /* held-out NDCG@10 of the unlearned ranking */
	float ndcg_after;         /* ... of this version */
	int active;               /* the version searches use */
	int candidate;            /* being interleaved against the active one */
	uint64_t interleave_wins, interleave_losses; /* candidate's record so far */
} rv_learn_version;

typedef struct rv_learn_status {
	size_t size;              /* sizeof(rv_learn_status), set by RV_LEARN_STATUS_INIT */
	int learning;             /* rv_db_set_learning() */
	rv_learn_config config;
	uint32_t active_version;  /* 0 = none */
	uint64_t events;          /* feedback events ever recorded */
	uint64_t replay_events;   /* in the replay buffer */
	uint64_t events_since_consolidation;
	uint64_t micro_steps;     /* MicroLoRA steps since the active version */
	uint32_t regions;         /* ReasoningBank regions in the active version */
	uint32_t n_versions;
	rv_learn_version versions[RV_LEARN_MAX_VERSIONS]; /* oldest first */
} rv_learn_status;

#define RV_LEARN_STATUS_INIT { sizeof(rv_learn_status) }

RV_API rv_status rv_db_learn_status(rv_learn_status *out, rv_db *db);

typedef struct rv_learn_eval {
	size_t size;              /* sizeof(rv_learn_eval), set by RV_LEARN_EVAL_INIT */
	uint64_t events;          /* held-out events judged */
	uint64_t searches;        /* distinct searches among them */
	double ndcg_plain;        /* NDCG@10 of the rewarded items, no learning */
	double ndcg_learned;      /* ... with the active version + MicroLoRA */
	double micro_us;          /* mean MicroLoRA step, microseconds */
	double rerank_us;         /* mean GNN re-ranking of one pool, microseconds */
} rv_learn_eval;

#define RV_LEARN_EVAL_INIT { sizeof(rv_learn_eval) }

/* Judge learning on the newest tenth of the replay buffer (the events a
 * consolidation holds out): re-run each event's query with and without
 * learning and compute NDCG@10 with the rewards as gains.
 * Errors: RV_EINVAL (no events), RV_ENOMEM. */
RV_API rv_status rv_db_learn_eval(rv_learn_eval *out, rv_db *db);

/* Why a hit of an earlier search ranks where it does under the GNN: the
 * neighbours of the item that the re-ranker looked at and their weights
 * (GAT: attention averaged over heads; GCN/SAGE: the aggregation weights).
 * Fills up to max entries, most influential first; [out] n the number.
 * ids point into the handle and stay valid until its next write.
 * Errors: RV_ENOTFOUND (search expired, item not among its hits),
 * RV_EINVAL (no re-ranker in the active version). */
RV_API rv_status rv_db_explain(rv_db *db, uint64_t search_id, const char *item_id,
                               const char **ids, float *weights, size_t max, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* RUVECTOR_LEARN_H */
