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
 *                A region the workload has left (hardly any events since
 *                the active version) is carried into the next version as
 *                an away region with the version that served it, and its
 *                queries keep being ranked by that version: what they
 *                learned survives training on other queries (0.4.0,
 *                config.away_regions).
 *
 * Every consolidation makes a version (kept in the file, at most
 * RV_LEARN_MAX_VERSIONS, oldest dropped first); any version can be made
 * active again, and version 0 means "nothing learned". A consolidation
 * may instead make a candidate version that searches interleave with the
 * active one (team-draft interleaving): feedback on the interleaved results
 * credits one side, and the candidate becomes active only once it wins.
 *
 * What a search with learning on applies (unless it passes
 * RV_SEARCH_NO_LEARNING): the MicroLoRA and, unless the version has a
 * re-ranker, its BaseLoRA on the query; with a re-ranker, a candidate pool
 * of k * rerank_pool hits (gathered around the query as the MicroLoRA
 * moved it) that the GNN scores against the query as searched; and, when
 * opts.ef is 0, the ef of the query's region; a query nearest to one of the active version's away regions
 * takes the BaseLoRA, GNN and region ef of the version serving it
 * instead, without the MicroLoRA. A learner missing from config.learners
 * is neither trained nor applied. A version keeps the BaseLoRA or the
 * re-ranker, not both (0.5.0): gathered around the BaseLoRA's moved query,
 * which versions train on towards whatever is clicked, the pool held items
 * far from what was asked, and the re-ranker could only pick from them. A
 * version saved with both ranks by its re-ranker. A hit's score is its
 * distance to the query as searched when a re-ranker ranked it, to the
 * adapted query when only the adapters did.
 *
 * Everything here is saved at the next rv_db_commit(). Calls that change
 * state need a writable handle and take the write lock; status and eval
 * are reads. First version: 0.3.0.
 *
 * Refinements made while implementing the first draft of this header
 * (names kept): rerank_pool is 2..20 (a pool of k leaves the re-ranker
 * nothing to choose from); auto_consolidate is 0 or >= 100 (a
 * consolidation needs 100 events); ewc_lambda is relative to the amount
 * of earlier training and defaults to 20 (below); consolidation trains on
 * the events since the version it starts from and keeps only the learners
 * that help on the held-out events; versions are judged by re-ranking the
 * hits their held-out searches showed, and rv_learn_eval reports that too
 * (ndcg_shown_*, added at its end); the interleaving rules are spelled
 * out; region statistics are readable (rv_learn_region,
 * rv_db_learn_regions, rv_db_learn_region_of); rv_learn_status gained
 * background_status (at its end); a version's learners hold only
 * RV_LEARN_BASE and RV_LEARN_GNN (the MicroLoRA is never part of one).
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

/* "sage", "gcn", "gat"; "unknown" for any other value. Static, never NULL. */
RV_API const char *rv_gnn_kind_name(rv_gnn_kind k);

/* Size of rv_learn_config.category, its NUL included. */
#define RV_LEARN_CATEGORY_MAX 64

typedef struct rv_learn_config {
	size_t size;               /* sizeof(rv_learn_config), set by RV_LEARN_CONFIG_INIT */
	unsigned learners;         /* RV_LEARN_* the collection uses (default RV_LEARN_ALL) */
	rv_gnn_kind gnn;           /* default RV_GNN_SAGE */
	uint32_t base_rank;        /* BaseLoRA rank, 8..16 (default 8) */
	float ewc_lambda;          /* EWC++ strength, finite, >= 0; 0 turns EWC++ off (default 50).
	                              The penalty weighs each weight's drift from the previous
	                              version by its Fisher estimate times ewc_lambda times the
	                              ratio of the previous version's training pairs to this
	                              one's: at 1 the old pairs would count like the new ones if
	                              the Fisher estimate were exact, but near a trained optimum
	                              the gradients it averages are small, so useful values are
	                              about 10..100 (at 50, about 70% of an old workload's gain
	                              stays after a conflicting new one, which gets about a third
	                              of the gain it would get without EWC++; at 20, half of it
	                              and half of the old one's). The GNN re-ranker has its own
	                              EWC++ at ewc_lambda / 20: each weight and item prior is
	                              held near the previous re-ranker's by its Fisher estimate,
	                              which is saved with the version */
	uint32_t rerank_pool;      /* candidates the GNN re-ranks, as a multiple of k, 2..20 (default 5) */
	uint32_t auto_consolidate; /* consolidate in a background thread every this many
	                              events, 0 or >= 100; 0 = only when asked (default 0) */
	uint32_t regions;          /* ReasoningBank regions, 1..256 (default 16); fewer when the
	                              training set has fewer than 2 queries per region */
	float recall_target;       /* for the per-region ef, in (0, 1] (default 0.99): a region of
	                              a version with learners searches with the smallest ef whose
	                              recall@10 meets it when that is below the collection's
	                              ef_search (faster, and lower recall); never above it. At 0.95
	                              Fashion-MNIST searched 2x faster and its held-out NDCG@10
	                              moved by up to 2% */
	uint32_t away_regions;     /* 1 (default): a consolidation hands the query regions the
	                              workload has left to the version that served them, so what
	                              their queries were taught survives training on other
	                              queries (rv_learn_status.away_regions counts them); 0: every
	                              query takes the active version (0.4.0) */
	char category[RV_LEARN_CATEGORY_MAX]; /* payload field (dotted path) whose value is an
	                              item's category, or "" (default): none. With one, the GNN
	                              re-ranker also learns how much users want items of the
	                              category their query's neighbourhood is in, and of which
	                              other categories (a term sigma p_q(c_v) + sum_a p_q(a)
	                              M[a][c_v], p_q the categories of the query's candidate
	                              pool; sigma weighed against the distance as the clicks
	                              imply once they establish it): what no query adapter or
	                              item prior can express when relevance follows a label
	                              the vectors hardly encode (Debian sections: +22% NDCG@10).
	                              Values are strings, numbers or booleans; the 256 most
	                              frequent at a consolidation are the categories (0.5.0) */
} rv_learn_config;

#define RV_LEARN_CONFIG_INIT { sizeof(rv_learn_config), RV_LEARN_ALL, RV_GNN_SAGE, 8, 50.0f, 5, 0, 16, 0.99f, 1, "" }

/* Set the learning configuration of the collection (saved at commit).
 * Learning itself is switched on and off with rv_db_set_learning(). The
 * new settings apply to the next consolidation (base_rank, ewc_lambda,
 * gnn, regions, recall_target) and at once to searches (learners,
 * rerank_pool) and to the background thread (auto_consolidate).
 * cfg->size must be set (RV_LEARN_CONFIG_INIT); a smaller size from an
 * older header keeps the defaults of the later fields.
 * Errors: RV_EINVAL (a field out of range, named), RV_EREADONLY. */
RV_API rv_status rv_db_learn_configure(rv_db *db, const rv_learn_config *cfg);

/* The configuration in force. cfg->size must be set (RV_LEARN_CONFIG_INIT);
 * only that many bytes are written. Errors: RV_EINVAL. */
RV_API rv_status rv_db_learn_get_config(rv_learn_config *cfg, rv_db *db);

enum {
	RV_CONSOLIDATE_CANDIDATE = 1u << 0 /* make a candidate for interleaving, not the active version */
};

/* Train the consolidated learners (BaseLoRA with EWC++, the GNN re-ranker,
 * the regions) from the replay buffer and make a new version.
 *
 * Training set: the events of the replay buffer recorded since the
 * active version was made (all of them when no version is active) whose
 * item still exists, each with the hits that were shown: the remembered
 * search when it has not expired, else the plain (unlearned) top 10 for
 * its query computed again. One query in ten (by a hash of the query
 * vector as searched, so for good and the same on every handle: no
 * version trains on it, whichever search or rv_db_feedback_vector call
 * brings it) is held out of training, the held-out events of the whole
 * replay buffer are the test set, and the
 * version records NDCG@10 on it (rewards as gains, per search,
 * re-ranking the hits each search showed, as ndcg_shown_* of
 * rv_db_learn_eval) of the plain ranking (ndcg_before) and of its own
 * (ndcg_after).
 *
 * The BaseLoRA starts from the active version's (same rank) and is held
 * near it by EWC++ with its Fisher estimate (config.ewc_lambda); while
 * the active version has none, from the weights of the BaseLoRA the last
 * consolidation on this handle trained, kept or not, so that training
 * adds up until one is good enough to keep (not stored in the file); the GNN
 * goes on training from the active version's re-ranker (on queries as
 * the new BaseLoRA adapts them), held near it by its own EWC++ (see
 * ewc_lambda); a GNN that cannot be trained (too few
 * usable pairs) is left out rather than failing. Held-out NDCG@10 is
 * that of each ranker's order of the hits a held-out search showed, the
 * gains its rewards weighed by the inverse propensity of the position
 * they were shown at (as in training: clicks favour the top of the
 * ranking shown). The version keeps the
 * combination (BaseLoRA, GNN, or both) with the best held-out NDCG gain
 * over the plain ranking among those whose gain, paired over the held-out
 * searches, exceeds sqrt(4 + 2 ln k) standard errors, where this is the
 * k-th consolidation since the active version's own (since the first
 * while the active version has no learner): 2 at k = 1, so that the
 * chance that a version fitted to noise passes grows like ln k over a
 * run of consolidations, not like k; a learner the active version has
 * is added to that combination unless the combination with it is
 * significantly worse than plain (gain below -2 standard errors) or
 * leaving it out is better by more than 2 standard errors of their paired
 * difference. Its learners field says what was kept. When none does, of
 * those that the held-out searches do not show significantly worse than
 * plain (gain above -2 standard errors) the one with the most learners (then the best
 * gain) is kept and the
 * version becomes the candidate for interleaving (below), whatever the
 * flags: logged feedback cannot judge items nobody was shown, live
 * traffic can. The version keeps the active version's
 * learners instead (copies of them) when the held-out searches do not
 * show those significantly worse than plain and either no new
 * combination qualifies, or the active learners beat the best new one
 * by more than 2 standard errors of their paired difference, or the best
 * new one leaves out one of the active learners and does not beat them
 * by more than 2 standard errors (a re-ranker
 * trained on from the live one can lose what it knew once the hits shown
 * are mostly ones users want). Otherwise, with no combination, it has
 * none. The regions are k-means over
 * the training queries; per region the version keeps events, mean reward,
 * each learner's held-out gain, and the smallest ef meeting
 * config.recall_target for recall@10 against an exact scan of that
 * region's queries (up to 48 of them, adapted by the version's BaseLoRA;
 * the mean less its standard error must meet the target, so that it
 * holds for the region's other queries too).
 *
 * Without RV_CONSOLIDATE_CANDIDATE the new version becomes active and the
 * MicroLoRA restarts from zero on top of it (events that arrive while it
 * trains still step the old MicroLoRA, and are then part of the next
 * consolidation's training set). The version relearns what the MicroLoRA
 * knew from the same events: its BaseLoRA is also trained against the
 * ranking it starts from, not only against the hits the MicroLoRA shaped. With it, the new version becomes the
 * candidate (replacing any earlier candidate, which stays kept as an
 * ordinary version) and the active version is unchanged. A candidate
 * the consolidation makes by itself replaces one on trial only when that
 * one does not lead its trial (see Interleaving below).
 *
 * Runs on the calling thread: the snapshot and the install take the
 * write lock briefly; the training holds the read lock, so searches go on
 * (and switch to the new version when it is installed) while feedback and
 * other writes wait (a search id can expire meanwhile if more than 4096
 * searches run). If a consolidation is already running (the background
 * thread), this waits for it first. A compaction in between makes it
 * start over. Closing the handle stops a background consolidation at its
 * next check (it may finish its current training step first).
 * [out] version  the new version number (may be NULL)
 * Errors: RV_EINVAL (fewer than 100 usable events since the active
 * version, flags unknown, learning needs dim <= 4096), RV_EREADONLY,
 * RV_ENOMEM. */
RV_API rv_status rv_db_learn_consolidate(rv_db *db, unsigned flags, uint32_t *version);

/* Make version v the active one (0: nothing learned: searches use the
 * plain ranking until the next event or consolidation). The MicroLoRA
 * adapter restarts from zero on top of it and the GNN's item priors from
 * the version's, so searches rank exactly as right after v was made. Any
 * candidate stops being one (it stays kept). The next consolidation
 * trains on the events since v was made.
 * Errors: RV_ENOTFOUND (no such version kept), RV_EREADONLY. */
RV_API rv_status rv_db_learn_rollback(rv_db *db, uint32_t version);

#define RV_LEARN_MAX_VERSIONS 32

typedef struct rv_learn_version {
	uint32_t version;
	uint32_t parent;          /* the version active when it was made (0 = none) */
	uint64_t created_ns;      /* wall clock, ns since 1970 */
	uint64_t events;          /* feedback events ever recorded when it was made */
	unsigned learners;        /* RV_LEARN_BASE / RV_LEARN_GNN kept in it */
	float ndcg_before;        /* held-out NDCG@10 of the unlearned ranking */
	float ndcg_after;         /* ... of this version */
	int active;               /* the version searches use */
	int candidate;            /* being interleaved against the active one */
	uint64_t interleave_wins, interleave_losses; /* its record while it was the candidate */
} rv_learn_version;

/* Interleaving. While a candidate exists and learning is on, the searches
 * (without RV_SEARCH_NO_LEARNING) of one query in eight, chosen by a hash
 * of the query vector and the candidate's number, and of one in two (a
 * superset) while the candidate leads (after at least 10 decisive events
 * the test below favours it e to 1), rank their candidate pool twice, by
 * the active version and by the candidate, and show a team-draft
 * interleaving of the two (coin flips seeded by the query, so a query
 * repeats its results while the share stays); the other queries show the
 * active ranking alone, so a candidate that is no better costs them
 * nothing. Feedback with a search id on such a search credits the side
 * that placed the item when reward > 0, a win for that side (wins and
 * losses above are the candidate's); reward <= 0 credits nothing (a skip
 * falls on either side about as often as it places unwanted hits, and
 * counted it only dilutes the clicks).
 * A sequential probability ratio test (win rate 1/2 against 0.57;
 * promoting a candidate that is no better 1% / k of the time, where k
 * counts the consolidations since the active version's own (so over a
 * run of trials the chance that any such candidate is promoted grows
 * like ln k, not k), and dropping one that wins 57% of the time 5% of
 * the time, however long it runs) promotes the candidate after at least
 * 50 decisive events (it becomes active, as by rv_db_learn_rollback) or
 * drops it as soon as it says so (it stays kept, no longer interleaved);
 * 2000 decisive events without a decision also drop it. A consolidation
 * makes a candidate by itself when its new learners' held-out gain over
 * the plain ranking is short of the gate but above -2 standard errors (see
 * rv_db_learn_consolidate); while the candidate on trial leads, such a
 * version is kept but not interleaved, and the trial goes on. Searches
 * whose interleaving record was crowded out by more than 64 concurrent
 * interleaved searches, and feedback given by vector, are not credited. */

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
	rv_status background_status; /* the last background consolidation's result (RV_OK before any) */
	/* Per versions[i]: its away regions, query regions the workload had
	 * left (or an earlier version ranked better) when it was made, which
	 * it hands to the earlier version that served them (0.4.0) */
	uint32_t away_regions[RV_LEARN_MAX_VERSIONS];
} rv_learn_status;

#define RV_LEARN_STATUS_INIT                                                                  \
	{ sizeof(rv_learn_status), 0, RV_LEARN_CONFIG_INIT, 0, 0, 0, 0, 0, 0, 0,              \
	  { { 0, 0, 0, 0, 0, 0.0f, 0.0f, 0, 0, 0, 0 } }, RV_OK, { 0 } }

/* The learning state: configuration, counters and the kept versions.
 * out->size must be set (RV_LEARN_STATUS_INIT); a smaller size from an
 * older header gets its known prefix. Errors: RV_EINVAL. Thread-safe
 * (a read). */
RV_API rv_status rv_db_learn_status(rv_learn_status *out, rv_db *db);

/* One ReasoningBank region of a version. */
typedef struct rv_learn_region {
	uint32_t region;          /* 0..n-1 */
	uint64_t events;          /* training and held-out events whose query fell here */
	float mean_reward;
	uint32_t ef;              /* smallest ef meeting recall_target at k = 10 here; 0 = none
	                             up to 1024 did. Searches use it when it is below the
	                             collection's ef_search, else ef_search */
	float ef_recall;          /* mean recall@10 measured at that ef */
	unsigned helps;           /* RV_LEARN_BASE or RV_LEARN_GNN: the learner with the highest
	                             positive held-out NDCG gain here (>= 3 searches), else 0 */
	float base_gain, gnn_gain;/* mean held-out NDCG@10 gain over the plain ranking */
	uint64_t base_n, gnn_n;   /* held-out searches behind each gain */
} rv_learn_region;

/* The regions of version v (0: the active one) into out[0..cap); [out] n
 * gets their number (RV_EBUFS with *n set when cap is too small; out may
 * then be NULL). A version without regions has 0.
 * Errors: RV_ENOTFOUND (no such version), RV_EBUFS. Thread-safe. */
RV_API rv_status rv_db_learn_regions(rv_learn_region *out, size_t cap, size_t *n, rv_db *db, uint32_t version);

/* The region of the active version a query (dim finite floats) falls in.
 * Errors: RV_EINVAL (query), RV_ENOTFOUND (no active version, or it has
 * no regions). Thread-safe. */
RV_API rv_status rv_db_learn_region_of(uint32_t *region, rv_db *db, const float *query);

typedef struct rv_learn_eval {
	size_t size;              /* sizeof(rv_learn_eval), set by RV_LEARN_EVAL_INIT */
	uint64_t events;          /* held-out events judged */
	uint64_t searches;        /* distinct searches among them */
	double ndcg_plain;        /* NDCG@10 of the rewarded items, no learning (searched again) */
	double ndcg_learned;      /* ... with the active version + MicroLoRA */
	double micro_us;          /* mean MicroLoRA step, microseconds */
	double rerank_us;         /* mean GNN re-ranking of one pool, microseconds */
	double ndcg_shown_plain;  /* NDCG@10 re-ranking the hits each search showed, no learning */
	double ndcg_shown_learned;/* ... with the active version + MicroLoRA */
	uint64_t reranks;         /* pools re-ranked since the handle opened (rerank_us is their
	                             mean: two evals give the mean of the pools between them) */
} rv_learn_eval;

#define RV_LEARN_EVAL_INIT { sizeof(rv_learn_eval), 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0 }

/* Judge learning on the held-out events of the replay buffer (one query
 * in ten, never trained on: see rv_db_learn_consolidate), NDCG@10 with the rewards as gains (events of
 * one search count as one ranking; searches without a positive reward are
 * skipped), two ways: ndcg_plain/ndcg_learned re-run each query with and
 * without learning (what searches would show now; an item never shown has
 * no reward, so this favours the ranking that was in force when the
 * feedback came), and ndcg_shown_plain/ndcg_shown_learned re-rank the
 * hits each search showed (the remembered search, or the plain top 10
 * again once expired) with and without learning, which is what
 * consolidation records. "With learning" is what a search with learning
 * on would rank, whether learning is on or not. micro_us times MicroLoRA steps on a copy
 * of the adapter over those events; rerank_us is the mean time the
 * searches of this handle (and this call) spent re-ranking one pool, 0
 * when nothing re-ranked. out->size must be set (RV_LEARN_EVAL_INIT).
 * Errors: RV_EINVAL (no events with a positive reward), RV_ENOMEM.
 * Thread-safe (a read). */
RV_API rv_status rv_db_learn_eval(rv_learn_eval *out, rv_db *db);

/* Why a hit of an earlier search ranks where it does under the GNN: the
 * neighbours of the item that the re-ranker looked at and their weights
 * (GAT: attention averaged over heads; GCN/SAGE: the aggregation weights).
 * Fills up to max entries, most influential first; [out] n the number.
 * ids point into the handle and stay valid until its next write.
 * Errors: RV_ENOTFOUND (search expired, item not among its hits),
 * RV_EINVAL (no re-ranker in the active version, NULL arguments).
 * Thread-safe (a read). */
RV_API rv_status rv_db_explain(rv_db *db, uint64_t search_id, const char *item_id,
                               const char **ids, float *weights, size_t max, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* RUVECTOR_LEARN_H */
