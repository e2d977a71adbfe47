/*
 * learn.h - the pure-compute learning core: the query adapter (MicroLoRA,
 * BaseLoRA, EWC++), the ReasoningBank (k-means regions of query space with
 * per-region statistics) and the GNN re-ranker (GCN, GAT, GraphSAGE layers,
 * a scoring head with item priors, a position-debiased pairwise loss and
 * full backpropagation).
 *
 * Internal: not exported from the shared library. Nothing here touches a
 * file, a lock or the database; src/db/ feeds it events and stores its
 * state through the *_save / *_load byte forms. docs/LEARNING-CORE.md gives
 * the maths of every forward pass, loss, gradient and update rule.
 *
 * Conventions (as in include/ruvector.h): outputs first, then the handle,
 * then inputs; fallible calls return rv_status; on RV_EINVAL the handle's
 * *_errmsg() names the bad value. Constructors and loaders take an optional
 * rv_err for their own failures (they have no handle yet). Every
 * allocation goes through the rv_alloc given at create/load (NULL = C
 * library); out-of-memory returns RV_ENOMEM and leaves the handle as it was
 * before the call.
 *
 * Threads: one thread per handle at a time. Handles share nothing, so
 * different handles may be used from different threads at once.
 *
 * Byte forms: each handle saves to a self-contained little-endian blob:
 * a 4-byte magic, a u16 format version, the fields, and a trailing XXH3-64
 * of everything before it. Loaders treat the bytes as untrusted: a bad
 * checksum, magic, size, count, range or non-finite number gives
 * RV_ECORRUPT; a newer format version RV_EVERSION.
 *
 * First version of everything here: 0.1.0.
 */
#ifndef RV_LEARN_H
#define RV_LEARN_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Largest vector dimension the learners accept. */
#define RV_LEARN_MAX_DIM 4096

/* How a query and an item vector are compared inside the learners. */
typedef enum rv_learn_score {
	RV_LEARN_SCORE_DOT = 0, /* score = <q, x> */
	RV_LEARN_SCORE_L2 = 1   /* score = -||q - x||^2 */
} rv_learn_score;

typedef enum rv_learn_optim {
	RV_LEARN_SGD = 0,  /* theta -= lr * g */
	RV_LEARN_ADAM = 1  /* Adam with bias correction */
} rv_learn_optim;

/* ========================================================================
 * Query adapter: low-rank residual q' = q + s * B (A q)
 *
 * A is rank x dim, B is dim x rank. A starts Gaussian with standard
 * deviation 1/sqrt(dim), B starts at zero, so a new adapter is exactly the
 * identity. MicroLoRA is an adapter of rank 1-2 stepped on every feedback
 * event; BaseLoRA is one of rank 8-16 trained from the replay buffer with
 * EWC++ switched on (ewc_lambda > 0). Several adapters add up: the query
 * seen by the ranking is q + sum of their deltas (rv_lora_add_delta), and
 * each is trained with the others' sum passed as the event's offset.
 *
 * Parameters live in one flat array: A row-major (rank x dim), then B
 * stored by columns (column k of B, dim floats, at dim * (rank + k)) so
 * that every inner loop is a contiguous dot product; rv_lora_params()
 * exposes it.
 * ====================================================================== */

typedef struct rv_lora rv_lora;

typedef struct rv_lora_opts {
	size_t size;          /* sizeof(rv_lora_opts), set by RV_LORA_OPTS_INIT */
	uint32_t dim;         /* 1..RV_LEARN_MAX_DIM */
	uint32_t rank;        /* 1..64 (MicroLoRA 1-2, BaseLoRA 8-16) */
	float scale;          /* s > 0 */
	float lr;             /* step size > 0 */
	float l2;             /* L2 regularisation weight >= 0: + l2/2 ||theta||^2 */
	rv_learn_score score; /* DOT or L2 */
	float temperature;    /* tau > 0: the pairwise logit is (score difference) / tau */
	rv_learn_optim optim; /* SGD or ADAM */
	float beta1, beta2, eps; /* Adam */
	float ewc_lambda;     /* 0 = EWC off; else penalty weight lambda */
	float ewc_gamma;      /* Fisher decay in [0, 1) */
	uint64_t seed;        /* initialisation of A */
} rv_lora_opts;

#define RV_LORA_OPTS_INIT                                                               \
	{ sizeof(rv_lora_opts), 0, 2, 1.0f, 0.01f, 1e-4f, RV_LEARN_SCORE_DOT, 1.0f, RV_LEARN_SGD, \
	  0.9f, 0.999f, 1e-8f, 0.0f, 0.99f, 1 }

/* One pairwise feedback event: at this query the user chose `chosen` over
 * `skipped`. Loss: weight * -log sigmoid((score(q', chosen) - score(q',
 * skipped)) / tau) with q' = q + offset + s B A q. The temperature tau
 * should be about the spread of score differences among shown results
 * (e.g. 0.05 for unit vectors): with tau much larger the loss never
 * saturates and keeps inflating the adapter past the users' preference. */
typedef struct rv_lora_event {
	const float *query;   /* [in] dim floats */
	const float *chosen;  /* [in] dim floats */
	const float *skipped; /* [in] dim floats */
	const float *offset;  /* [in] dim floats or NULL: the other adapters' delta at this query */
	float weight;         /* >= 0: e.g. an inverse propensity; 0 ignores the event */
} rv_lora_event;

/* [out] *out: a new adapter, the caller's (rv_lora_free). opts NULL means
 * defaults, but dim has no default, so pass opts. Errors: RV_EINVAL (the
 * message in err names the field), RV_ENOMEM. */
rv_status rv_lora_create(rv_lora **out, const rv_lora_opts *opts, const rv_alloc *a, rv_err *err);
void rv_lora_free(rv_lora *l); /* NULL is a no-op */
const char *rv_lora_errmsg(const rv_lora *l); /* valid until the next call on l */
const rv_lora_opts *rv_lora_get_opts(const rv_lora *l);

/* Points A's first column along v, at norm 1/sqrt(dim) so that its
 * product with a query has the size a random column's has; nothing if v is
 * zero. A random A makes a small adapter's fate a draw: with rank 2 and a
 * shift every query needs alike (an item-quality direction), both random
 * columns can be nearly orthogonal to the queries' common direction, and B
 * then learns slowly (in tests 4 seeds in 40 gained +46% to +95% where the
 * others gained +140%). Embeddings share a mean direction, so a query is a
 * start for that column that does not depend on luck. The collection's
 * MicroLoRA is oriented at its first step (and again after a reset). */
void rv_lora_orient(rv_lora *l, const float *v);
/* out[i] = q[i] + s (B A q)[i]; out may equal q. */
void rv_lora_apply(float *out, const rv_lora *l, const float *q);
/* acc[i] += s (B A q)[i]; acc must not overlap q. */
void rv_lora_add_delta(float *acc, const rv_lora *l, const float *q);

/* The full objective at one event (data loss + l2/2 ||theta||^2 + the EWC
 * penalty lambda/2 sum F (theta - theta*)^2 once consolidated) in *loss,
 * and its exact gradient in grad[0..rv_lora_param_count) when grad is not
 * NULL. Accumulates in double. Changes nothing but the error message.
 * Errors: RV_EINVAL. */
rv_status rv_lora_loss_grad(double *loss, double *grad, rv_lora *l, const rv_lora_event *ev);

/* One optimiser step on one event: O(dim * rank) time, no allocation.
 * Updates the EWC++ Fisher estimate with the squared data-loss gradient
 * when EWC is on. Under SGD the EWC penalty is applied as a proximal
 * (implicit) step, theta <- (theta - lr g + lr lambda F theta*) /
 * (1 + lr lambda F), stable for any lambda; under Adam its gradient joins
 * the others. *loss (may be NULL) gets the data loss before the step.
 * Errors: RV_EINVAL (bad event). */
rv_status rv_lora_step(float *loss, rv_lora *l, const rv_lora_event *ev);

/* Mean data loss (no regulariser, no penalty) over n events, in double.
 * Events with weight 0 count as weight 1 here. */
double rv_lora_eval(const rv_lora *l, const rv_lora_event *ev, size_t n);

/* EWC++: move the anchor theta* to the current parameters; from now on
 * the penalty pulls towards them with the current Fisher estimate. */
void rv_lora_consolidate(rv_lora *l);
/* B = 0 (identity again), optimiser state cleared; A, Fisher and anchor
 * are kept. Used to clear MicroLoRA once BaseLoRA has absorbed it. */
void rv_lora_reset(rv_lora *l);

float *rv_lora_params(rv_lora *l, size_t *n);        /* the flat theta; n may be NULL */
size_t rv_lora_param_count(const rv_lora *l);        /* 2 * dim * rank */
const float *rv_lora_fisher(const rv_lora *l);       /* NULL unless EWC is on */
uint64_t rv_lora_steps(const rv_lora *l);            /* steps taken */

/* Append the adapter (options, parameters, optimiser and EWC state) to
 * out. RV_ENOMEM when the buffer could not grow. */
rv_status rv_lora_save(rv_buf *out, const rv_lora *l);
/* [out] *out: the adapter stored in bytes[0..n). Errors: RV_ECORRUPT,
 * RV_EVERSION, RV_ENOMEM (message in err). */
rv_status rv_lora_load(rv_lora **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err);

/* ---- Versions of an adapter, regions (0.3.0; used by src/db/db_learn*.c) ----
 *
 * [out] *out: a new adapter with the options opts (dim and rank must equal
 * from's) whose parameters start as from's. When both keep EWC state
 * (ewc_lambda > 0) it also starts from from's Fisher estimate; when opts
 * has EWC on, the penalty is armed with the anchor at from's parameters
 * (EWC++: the next training is held near the previous version). Optimiser
 * moments and the step count start at zero. Errors: RV_EINVAL (opts, or a
 * shape unlike from's), RV_ENOMEM. */
rv_status rv_lora_derive(rv_lora **out, const rv_lora *from, const rv_lora_opts *opts, const rv_alloc *a,
			 rv_err *err);
/* The dimension of a ReasoningBank's vectors (rv_rbank is below). */
struct rv_rbank;
uint32_t rv_rbank_dim(const struct rv_rbank *b);

/* ========================================================================
 * ReasoningBank: k-means regions of query space with statistics
 *
 * rv_rbank_fit clusters trajectories' query vectors (k-means++ seeding from
 * the bank's seed, then Lloyd iterations, squared L2); the same input and
 * seed always give the same centroids. A new query is assigned to its
 * nearest centroid; each region keeps how often it was seen, its mean
 * reward, the smallest ef that met the recall target there, and the mean
 * gain each learner brought there.
 * ====================================================================== */

typedef enum rv_learner {
	RV_LEARNER_NONE = 0,     /* the unlearned ranking */
	RV_LEARNER_ADAPTER = 1,  /* SONA query adapter */
	RV_LEARNER_RERANKER = 2, /* GNN re-ranker */
	RV_LEARNER_COUNT = 3
} rv_learner;

typedef struct rv_rbank_stats {
	uint64_t count;                       /* events recorded */
	double reward_sum;                    /* sum of rewards; mean = reward_sum / count */
	uint32_t best_ef;                     /* 0 = none met the target yet */
	float best_ef_recall;                 /* recall measured at best_ef */
	uint64_t learner_n[RV_LEARNER_COUNT]; /* gain observations per learner */
	double learner_gain[RV_LEARNER_COUNT]; /* running mean gain per learner */
} rv_rbank_stats;

typedef struct rv_rbank rv_rbank;

/* dim 1..RV_LEARN_MAX_DIM, k 1..65536. Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_rbank_create(rv_rbank **out, uint32_t dim, uint32_t k, uint64_t seed,
			  const rv_alloc *a, rv_err *err);
void rv_rbank_free(rv_rbank *b);
const char *rv_rbank_errmsg(const rv_rbank *b);

/* Cluster x[0..n*dim) (n >= k, finite) with at most iters Lloyd rounds
 * (stops early once no assignment changes); clears the statistics.
 * Errors: RV_EINVAL, RV_ENOMEM (bank unchanged). */
rv_status rv_rbank_fit(rv_rbank *b, const float *x, size_t n, uint32_t iters);
bool rv_rbank_fitted(const rv_rbank *b);
uint32_t rv_rbank_k(const rv_rbank *b);
const float *rv_rbank_centroids(const rv_rbank *b); /* k * dim, NULL before fit */

/* Nearest region of q: *cluster, and its squared distance in *dist2 (may
 * be NULL). Errors: RV_EINVAL before the first fit. */
rv_status rv_rbank_assign(uint32_t *cluster, float *dist2, const rv_rbank *b, const float *q);

/* Statistics updates. Errors: RV_EINVAL for an unknown cluster, learner,
 * or a non-finite number. */
rv_status rv_rbank_record(rv_rbank *b, uint32_t cluster, float reward);
rv_status rv_rbank_record_gain(rv_rbank *b, uint32_t cluster, rv_learner learner, float gain);
/* ef met the recall target there if recall >= target; keeps the smallest. */
rv_status rv_rbank_record_ef(rv_rbank *b, uint32_t cluster, uint32_t ef, float recall, float target);

const rv_rbank_stats *rv_rbank_get_stats(const rv_rbank *b, uint32_t cluster); /* NULL if out of range */
/* The learner with the highest mean gain in the region among those with at
 * least min_n observations; RV_LEARNER_NONE when none beats zero gain. */
rv_learner rv_rbank_best_learner(const rv_rbank *b, uint32_t cluster, uint64_t min_n);

rv_status rv_rbank_save(rv_buf *out, const rv_rbank *b);
rv_status rv_rbank_load(rv_rbank **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err);

/* ========================================================================
 * GNN re-ranker
 *
 * A stack of 1..RV_GNN_MAX_LAYERS layers maps node features H0 = X (the
 * candidates and their HNSW neighbours) to representations H; every layer
 * ends in ReLU:
 *   GCN   h'_v = relu(W mean(h_v, h_u for u in N(v)) + b)
 *   SAGE  h'_v = relu(W [h_v ; mean(h_u for u in N(v))] + b)   (mean = 0 if no neighbours)
 *   GAT   per head k: g_u = W_k h_u, e_vu = leaky(a_k . [g_v ; g_u]) over
 *         u in {v} + N(v), alpha = softmax_u(e), h'_v[k] = relu(sum alpha_vu g_u);
 *         heads are concatenated (out_dim = heads * head dim).
 * The head scores node v for query q:
 *   s_v = beta base_v + <W_q q + u, h_v> + prior[item_v]
 * with W_q out_dim x in_dim, initialised to zero so an untrained model keeps
 * the base ranking. The head bias u (a query-independent preference for
 * some representations) and the learned weight beta of the base score are
 * optional (opts.head); without them u = 0 and beta = 1. beta starts at 1
 * and its l2 term pulls it towards 1, not 0. Training minimises, over (chosen, skipped) pairs,
 *   sum weight * -log sigmoid(s_chosen - s_skipped) + l2/2 ||theta||^2
 * where weight is the inverse propensity of the position the chosen item
 * was shown at (position-bias correction), and backpropagates through every
 * layer to all weights and the priors.
 *
 * Every sum runs in double (parameters are stored as float), which is what
 * lets tests compare each gradient with central finite differences.
 *
 * Nothing in the model depends on node identity except the priors, so the
 * layers apply unchanged to graphs of items never seen in training
 * (inductive); unseen items simply have prior 0.
 *
 * Parameters are one flat float array (rv_gnn_params): per layer in order,
 * GCN: W (out x in) row-major, b (out); SAGE: W (out x 2 in), b (out); GAT:
 * W (out x in, head k owns rows k*hd..), a (heads x 2 hd: a_src then a_dst
 * per head); then W_q (out_last x in_dim); then u (out_last) with
 * RV_GNN_HEAD_BIAS, then beta (1) with RV_GNN_HEAD_BASE. Priors are a separate array
 * indexed by item id, grown on demand.
 * ====================================================================== */

#define RV_GNN_MAX_LAYERS 4
#define RV_GNN_MAX_HEADS 16
#define RV_GNN_MAX_NODES 1000000
#define RV_GNN_MAX_ITEMS (1u << 28)
#define RV_GNN_NO_ITEM UINT32_MAX

typedef enum rv_gnn_layer_type {
	RV_GNN_LAYER_GCN = 0,
	RV_GNN_LAYER_GAT = 1,
	RV_GNN_LAYER_SAGE = 2
} rv_gnn_layer_type;

typedef struct rv_gnn_opts {
	size_t size;       /* sizeof(rv_gnn_opts), set by RV_GNN_OPTS_INIT */
	uint32_t in_dim;   /* feature (and query) dimension, 1..RV_LEARN_MAX_DIM */
	uint32_t layers;   /* 1..RV_GNN_MAX_LAYERS */
	rv_gnn_layer_type type[RV_GNN_MAX_LAYERS];
	uint32_t out_dim[RV_GNN_MAX_LAYERS]; /* 1..RV_LEARN_MAX_DIM; GAT: a multiple of heads */
	uint32_t heads[RV_GNN_MAX_LAYERS];   /* GAT only, 1..RV_GNN_MAX_HEADS */
	float lr, l2;
	float leaky;       /* LeakyReLU slope for GAT scores, in [0, 1) */
	rv_learn_optim optim;
	float beta1, beta2, eps;
	uint64_t seed;
	unsigned head;     /* RV_GNN_HEAD_* terms of the scoring head (default 0: none) */
	float prior_lr;    /* >= 0; 0 (default): priors step like the weights; > 0: they
	                      step by plain SGD with this step size (see rv_gnn_step) */
} rv_gnn_opts;

/* Optional terms of the scoring head (bit flags). */
enum {
	RV_GNN_HEAD_BIAS = 1u << 0, /* u: s_v gets <u, h_v>, whatever the query */
	RV_GNN_HEAD_BASE = 1u << 1  /* beta: s_v gets beta base_v instead of base_v */
};

#define RV_GNN_OPTS_INIT                                                                   \
	{ sizeof(rv_gnn_opts), 0, 1,                                                          \
	  { RV_GNN_LAYER_SAGE, RV_GNN_LAYER_SAGE, RV_GNN_LAYER_SAGE, RV_GNN_LAYER_SAGE },     \
	  { 32, 32, 32, 32 }, { 1, 1, 1, 1 }, 0.01f, 1e-4f, 0.2f, RV_LEARN_ADAM, 0.9f, 0.999f, \
	  1e-8f, 1, 0, 0.0f }

/* A small graph, borrowed for the duration of a call. Nodes 0..ncand-1
 * are the candidates being ranked; the rest are context (their HNSW
 * neighbours). Adjacency is CSR: the neighbours of node v are
 * nbrs[offsets[v] .. offsets[v+1]), each < n and != v (self is always
 * included by the layers themselves). Only the candidates' receptive field
 * (nodes within `layers` hops) is computed. */
typedef struct rv_gnn_graph {
	size_t n;                /* nodes, 1..RV_GNN_MAX_NODES */
	size_t ncand;            /* scored nodes 0..ncand-1, 1..n */
	const float *x;          /* n * in_dim features */
	const uint32_t *offsets; /* n + 1, offsets[0] = 0, non-decreasing */
	const uint32_t *nbrs;    /* offsets[n] node indices */
	const uint32_t *items;   /* n item ids (< RV_GNN_MAX_ITEMS) or RV_GNN_NO_ITEM; NULL = none */
	const float *base;       /* n base scores (e.g. -distance) or NULL = 0 */
} rv_gnn_graph;

/* One training pair on a graph: candidate `chosen` was preferred to
 * candidate `skipped`. */
typedef struct rv_gnn_pair {
	uint32_t chosen, skipped; /* node indices < ncand */
	float weight;             /* >= 0: 1 / p(position the chosen item was shown at) */
} rv_gnn_pair;

typedef struct rv_gnn rv_gnn;

rv_status rv_gnn_create(rv_gnn **out, const rv_gnn_opts *opts, const rv_alloc *a, rv_err *err);
void rv_gnn_free(rv_gnn *m);
const char *rv_gnn_errmsg(const rv_gnn *m);
const rv_gnn_opts *rv_gnn_get_opts(const rv_gnn *m);

/* Forward pass: scores[v] of the candidates v < ncand. Keeps the
 * activations (and GAT attention) of this graph until the next call.
 * Errors: RV_EINVAL (graph or query), RV_ENOMEM. */
rv_status rv_gnn_score(float *scores, rv_gnn *m, const rv_gnn_graph *g, const float *query);

/* Node representations do not depend on the query: only the head does.
 * rv_gnn_embed computes the candidates' final representations h
 * (ncand x rv_gnn_embed_dim floats) so a caller can cache them per item
 * (valid until the weights or the item's neighbourhood change), and
 * rv_gnn_score_embedded scores n cached candidates for a query in
 * O(in_dim * embed_dim + n * embed_dim):
 *   scores[v] = base[v] + <W_q q, h_v> + prior[items[v]]
 * (base, items may be NULL). It gives rv_gnn_score's result to float
 * rounding. Neither needs a query-specific graph. Errors: RV_EINVAL,
 * RV_ENOMEM (embed). */
rv_status rv_gnn_embed(float *h, rv_gnn *m, const rv_gnn_graph *g);
size_t rv_gnn_embed_dim(const rv_gnn *m);
rv_status rv_gnn_score_embedded(float *scores, const rv_gnn *m, const float *h, size_t n, const uint32_t *items,
				const float *base, const float *query);

/* Serving a one-layer model without a graph. The representation of one
 * node from its own features x and its neighbours' (nbrs[0..deg), in_dim
 * floats each, none equal to x's node), in float arithmetic on the SIMD
 * kernels: rv_gnn_embed's result to float rounding. It neither reads nor
 * writes the model's workspace, so any number of threads may call it (and
 * the two below) at once on one model. work: rv_gnn_node_work(m, deg)
 * floats. attn (NULL, or (deg + 1) x heads floats; GAT only) gets the
 * attention as rv_gnn_attention lays it out.
 * Errors: RV_EINVAL (more than one layer, no output, deg too large). */
rv_status rv_gnn_embed_node(float *h, float *attn, const rv_gnn *m, const float *x, const float *const *nbrs,
			    size_t deg, float *work);
size_t rv_gnn_node_work(const rv_gnn *m, size_t deg); /* floats; 0 when deg is too large */
/* The head's query vector w = W_q q + u (rv_gnn_embed_dim floats): the
 * representation-dependent part of a score is <w, h_v>. */
void rv_gnn_head_vector(float *w, const rv_gnn *m, const float *query);
/* Fold an input scale into the weights: afterwards the model gives on
 * features x and query q what it gave before on c x and c q (layer 0's
 * W and W_q are multiplied by c; exact up to float rounding). A caller
 * that trains on normalised inputs serves raw ones this way. c > 0. */
void rv_gnn_scale_input(rv_gnn *m, float c);
/* The base weight beta (1 without RV_GNN_HEAD_BASE). */
float rv_gnn_base_weight(const rv_gnn *m);
/* Which inputs of one node (w[0] itself, w[1..deg] its neighbours) moved
 * its score: GAT: the attention averaged over heads (sums to 1); GCN and
 * SAGE: each input's signed contribution to <W_q q + u, h_v> at the
 * node's ReLU pattern, divided by the sum of their absolute values (so
 * the absolute values sum to 1; all zero when no unit is active). query
 * may be NULL for GAT. One-layer models; work as for rv_gnn_embed_node.
 * Errors: RV_EINVAL. */
rv_status rv_gnn_explain_node(float *w, const rv_gnn *m, const float *query, const float *x,
			      const float *const *nbrs, size_t deg, float *work);

/* After rv_gnn_score or rv_gnn_loss_grad: the GAT attention of node v
 * (within layers - layer - 1 hops of a candidate; any candidate qualifies) in
 * layer `layer`: w[j * heads + k] for j = 0 (v itself) and j = 1..deg (its
 * neighbours in adjacency order), head k. cap floats available; RV_EBUFS
 * with *n = needed when too small. Errors: RV_EINVAL (layer not GAT, node
 * out of range, or no forward pass yet). */
rv_status rv_gnn_attention(float *w, size_t cap, size_t *n, const rv_gnn *m, size_t layer, uint32_t node);

/* Objective over pairs on one graph and, when want_grad, its gradient in
 * double: rv_gnn_grad() (rv_gnn_param_count entries) and
 * rv_gnn_prior_grad() (indexed by item id; valid for the items of this
 * graph's candidates). The objective is
 *   sum_pairs weight * -log sigmoid(s_chosen - s_skipped)
 *   + l2/2 ||theta||^2 + l2/2 sum_{candidates v} prior[item_v]^2.
 * Grows the prior table to cover the candidates' items. Does not change
 * the weights.
 * Errors: RV_EINVAL, RV_ENOMEM. */
rv_status rv_gnn_loss_grad(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
			   const rv_gnn_pair *pairs, size_t npairs, bool want_grad);
/* The gradient of the pair term alone (no l2, no anchor) at the current
 * parameters, in rv_gnn_grad() and rv_gnn_prior_grad() as above, *loss
 * its value: what an EWC++ Fisher estimate squares. */
rv_status rv_gnn_data_grad(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
			   const rv_gnn_pair *pairs, size_t npairs);
/* EWC++ anchor. With lambda > 0 the regulariser of rv_gnn_loss_grad
 * becomes
 *   1/2 sum_i (l2 + lambda F_i) (theta_i - theta*_i)^2
 *   + 1/2 sum_{candidates v} (l2 + lambda Fp_{item_v}) (prior[item_v] - p*_{item_v})^2
 * with theta* the parameters at this call, F = fisher (rv_gnn_param_count
 * floats) and, for item ids < nitems, p* = prior_star and Fp =
 * prior_fisher (items past them: p* = 0, Fp = 0). The l2 term then pulls
 * towards the anchor, not zero: the anchor stands for what earlier
 * training concluded, l2 prior included. lambda = 0 removes the anchor
 * (the plain l2 term again). The arrays are copied.
 * Errors: RV_EINVAL (negative or non-finite values), RV_ENOMEM (no anchor). */
rv_status rv_gnn_set_anchor(rv_gnn *m, float lambda, const float *fisher, const float *prior_star,
			    const float *prior_fisher, size_t nitems);
/* rv_gnn_loss_grad then one optimiser step on the weights and priors.
 * The priors take the weights' optimiser and lr, or plain SGD with
 * opts.prior_lr when that is set: a prior is seen only when its item is
 * a candidate, a few times in all, and Adam's normalised step would move
 * it as far on one noisy sighting as on strong evidence (measured in
 * tests/test_rerank.c: users without a preference then lose 5.6% NDCG
 * to the re-ranker, 1.7% with SGD priors). An SGD prior takes its
 * regulariser implicitly (proximal step: p = (p - lr g_data + lr k p*) /
 * (1 + lr k), k its l2 + lambda F), which stays stable however large the
 * anchor's weight.
 * *loss (may be NULL) gets the objective before the step. */
rv_status rv_gnn_step(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
		      const rv_gnn_pair *pairs, size_t npairs);

float *rv_gnn_params(rv_gnn *m, size_t *n);
size_t rv_gnn_param_count(const rv_gnn *m);
float *rv_gnn_priors(rv_gnn *m, size_t *n); /* n = rv_gnn_prior_count */
size_t rv_gnn_prior_count(const rv_gnn *m);
/* Grow the prior table (new entries 0) to cover item ids < n, so a caller
 * can set priors through rv_gnn_priors. Errors: RV_EINVAL (n past
 * RV_GNN_MAX_ITEMS), RV_ENOMEM (table unchanged). */
rv_status rv_gnn_reserve_priors(rv_gnn *m, size_t n);
const double *rv_gnn_grad(const rv_gnn *m);       /* valid after a loss_grad with want_grad */
const double *rv_gnn_prior_grad(const rv_gnn *m); /* same */
uint64_t rv_gnn_steps(const rv_gnn *m);

rv_status rv_gnn_save(rv_buf *out, const rv_gnn *m);
rv_status rv_gnn_load(rv_gnn **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err);

/* ------------------------------------------------------------------------
 * Shared helpers (learn_util.c)
 * ---------------------------------------------------------------------- */

/* log(1 + exp(-x)) and sigmoid(-x), both stable for any finite x. */
double rv_learn_softplus_neg(double x);
double rv_learn_sigmoid_neg(double x);
/* sum a_i b_i: double accumulation when precise, else the SIMD kernel. */
double rv_learn_dot(const float *a, const float *b, size_t n, bool precise);
/* The byte-form trailer: append / verify the XXH3-64 of bytes[0..n). */
void rv_learn_seal(rv_buf *out, size_t start);
bool rv_learn_check_seal(const uint8_t *bytes, size_t n);
/* x, or 0 when x is subnormal. Weight decay drives unused weights into
 * the subnormal range, where every product with one costs the CPU a
 * microcode assist; such a weight moves a score by less than 1e-37. */
static inline float rv_learn_flush(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }

/* One SGD or Adam update of a parameter theta with gradient g; m, v are
 * its Adam moments (unused by SGD), bc1 = 1 - b1^t and bc2 = 1 - b2^t the
 * bias corrections at step t >= 1. Returns the new value. */
static inline float rv_learn_update(float theta, double g, float *m, float *v, rv_learn_optim optim, float lr,
				    float b1, float b2, float eps, double bc1, double bc2)
{
	if (optim == RV_LEARN_SGD)
		return (float)(theta - lr * g);
	*m = (float)(b1 * *m + (1.0 - b1) * g);
	*v = (float)(b2 * *v + (1.0 - b2) * g * g);
	double mh = *m / bc1, vh = *v / bc2;
	return (float)(theta - lr * mh / (sqrt(vh) + eps));
}

#endif /* RV_LEARN_H */
