/*
 * gnn.c - the GNN re-ranker: GCN, GAT and GraphSAGE layers over the
 * candidates' neighbourhood graph, a bilinear query head with item priors,
 * a position-debiased pairwise loss, and backpropagation to every weight.
 *
 * Shapes. Layer l maps H_l (n x in_l) to H_{l+1} (n x out_l); H_0 is the
 * node features. Only the rows that can reach a candidate are computed:
 * need[L] marks the candidates, need[l] = need[l+1] plus their neighbours,
 * and layer l reads rows need[l] and writes rows need[l+1]. Backward walks
 * the same masks in reverse, so the cost is that of the receptive field,
 * not of the whole graph.
 *
 * Precision. Parameters are float, everything computed from them is double:
 * activations, attention, scores, losses and gradients. That costs speed
 * over float SIMD but makes the analytic gradients checkable against
 * central finite differences to 1e-6, which is the proof that the
 * backward pass is right (tests/test_learn.c).
 *
 * Workspace. One block, grown on demand and carved into arrays by
 * ws_layout(), holds what backward needs from forward (aggregates,
 * pre-activations, GAT scores and attention) plus the backward buffers;
 * it stays after a call so rv_gnn_attention() can read the last forward.
 *
 * Priors. prior[item] is one learned float per item id, grown (with its
 * Adam moments and gradient) when a training graph names a larger id. An
 * id past the table scores prior 0 at inference, so unseen items are
 * ranked by their representation alone.
 */
#include <math.h>

#include "learn/learn.h"

#define GNN_MAGIC "RVGN"
#define GNN_VERSION 2 /* 2 adds the head terms; a model without them is still saved as 1 */
#define NO_PARAM SIZE_MAX

typedef struct layer {
	rv_gnn_layer_type type;
	size_t in, out, heads, hd; /* hd = out / heads (GAT), else out */
	size_t w, b, att;          /* offsets into theta of W, bias (GCN/SAGE), a (GAT) */
	/* Workspace views, valid after ws_layout(). */
	double *agg;  /* GCN: mean incl. self (n x in); SAGE: neighbour mean (n x in); GAT: g = W h (n x out) */
	double *z;    /* pre-activation (n x out) */
	double *h;    /* output (n x out) */
	double *raw;  /* GAT: score before LeakyReLU per slot (slots x heads) */
	double *alpha; /* GAT: attention per slot (slots x heads) */
	double *ps, *pd; /* GAT: a_self . g_v and a_nbr . g_u (n x heads) */
	uint8_t *need; /* rows of this layer's input that are computed */
} layer;

struct rv_gnn {
	rv_gnn_opts o;
	const rv_alloc *a;
	rv_err err;
	layer L[RV_GNN_MAX_LAYERS];
	size_t nl, np, wq;     /* layers, parameter count, offset of W_q */
	size_t hu, hb;         /* offsets of the head bias u and base weight beta, or NO_PARAM */
	size_t maxdim;         /* largest in/out of any layer */
	float *theta, *m, *v;  /* parameters and Adam moments (m, v NULL under SGD) */
	double *grad;
	float *prior, *prior_m, *prior_v;
	double *prior_grad;
	size_t nprior;         /* prior table size (item ids < nprior) */
	uint64_t steps;
	/* EWC++ anchor (rv_gnn_set_anchor); ewc = 0: none. */
	float ewc;
	float *a_theta, *a_fis;    /* np each */
	float *a_prior, *a_pfis;   /* a_nitems each */
	size_t a_nitems;
	/* Workspace of the last forward pass. */
	void *ws;
	size_t ws_bytes;
	size_t n, ncand, slots; /* graph size of the last forward; 0 = none */
	bool have_forward;
	double *h0;            /* n x in_dim features */
	double *wqq;           /* W_q q + u (out of the last layer) */
	double *dh_a, *dh_b;   /* backward buffers (n x maxdim) */
	double *dg;            /* GAT: d g (n x maxdim) */
	double *dps, *dpd;     /* GAT (n x max heads) */
	double *tmp;           /* 2 x maxdim */
	double *ds;            /* d loss / d score per candidate */
	uint32_t *offsets;     /* copy of the graph's offsets (n + 1) */
	uint8_t *need_out;     /* candidates mask (n) */
};

/* ------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------- */

static rv_status check_opts(const rv_gnn_opts *o, rv_err *err)
{
	if (o->size < sizeof(rv_gnn_opts))
		return rv_err_set(err, RV_EINVAL, "rv_gnn_opts.size is %zu, expected %zu (use RV_GNN_OPTS_INIT)",
				  o->size, sizeof(rv_gnn_opts));
	if (o->in_dim < 1 || o->in_dim > RV_LEARN_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "gnn in_dim %u out of range 1..%d", o->in_dim, RV_LEARN_MAX_DIM);
	if (o->layers < 1 || o->layers > RV_GNN_MAX_LAYERS)
		return rv_err_set(err, RV_EINVAL, "gnn layers %u out of range 1..%d", o->layers, RV_GNN_MAX_LAYERS);
	for (uint32_t l = 0; l < o->layers; l++) {
		if (o->type[l] != RV_GNN_LAYER_GCN && o->type[l] != RV_GNN_LAYER_GAT && o->type[l] != RV_GNN_LAYER_SAGE)
			return rv_err_set(err, RV_EINVAL, "gnn layer %u: type %d is not GCN (0), GAT (1) or SAGE (2)", l,
					  (int)o->type[l]);
		if (o->out_dim[l] < 1 || o->out_dim[l] > RV_LEARN_MAX_DIM)
			return rv_err_set(err, RV_EINVAL, "gnn layer %u: out_dim %u out of range 1..%d", l, o->out_dim[l],
					  RV_LEARN_MAX_DIM);
		if (o->type[l] == RV_GNN_LAYER_GAT &&
		    (o->heads[l] < 1 || o->heads[l] > RV_GNN_MAX_HEADS || o->out_dim[l] % o->heads[l] != 0))
			return rv_err_set(err, RV_EINVAL, "gnn layer %u: %u heads (need 1..%d dividing out_dim %u)", l,
					  o->heads[l], RV_GNN_MAX_HEADS, o->out_dim[l]);
	}
	if (!(o->lr > 0) || !isfinite(o->lr))
		return rv_err_set(err, RV_EINVAL, "gnn lr %g must be finite and > 0", o->lr);
	if (!(o->l2 >= 0) || !isfinite(o->l2))
		return rv_err_set(err, RV_EINVAL, "gnn l2 %g must be finite and >= 0", o->l2);
	if (!(o->leaky >= 0 && o->leaky < 1))
		return rv_err_set(err, RV_EINVAL, "gnn leaky slope %g must be in [0, 1)", o->leaky);
	if (!(o->prior_lr >= 0) || !isfinite(o->prior_lr))
		return rv_err_set(err, RV_EINVAL, "gnn prior_lr %g must be finite and >= 0", o->prior_lr);
	if (o->head & ~(unsigned)(RV_GNN_HEAD_BIAS | RV_GNN_HEAD_BASE))
		return rv_err_set(err, RV_EINVAL, "gnn head flags 0x%x name unknown terms", o->head);
	if (o->optim != RV_LEARN_SGD && o->optim != RV_LEARN_ADAM)
		return rv_err_set(err, RV_EINVAL, "gnn optimiser %d is neither SGD (0) nor ADAM (1)", (int)o->optim);
	if (o->optim == RV_LEARN_ADAM &&
	    (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) || !isfinite(o->eps)))
		return rv_err_set(err, RV_EINVAL, "Adam needs beta1, beta2 in [0, 1) and eps > 0 (got %g, %g, %g)",
				  o->beta1, o->beta2, o->eps);
	return RV_OK;
}

/* Lays the layers out in theta; returns the parameter count. */
static size_t plan(rv_gnn *m)
{
	size_t off = 0, in = m->o.in_dim;
	m->nl = m->o.layers;
	m->maxdim = in;
	for (size_t l = 0; l < m->nl; l++) {
		layer *y = &m->L[l];
		y->type = m->o.type[l];
		y->in = in;
		y->out = m->o.out_dim[l];
		y->heads = y->type == RV_GNN_LAYER_GAT ? m->o.heads[l] : 1;
		y->hd = y->out / y->heads;
		y->w = off;
		off += y->out * (y->type == RV_GNN_LAYER_SAGE ? 2 * in : in);
		if (y->type == RV_GNN_LAYER_GAT) {
			y->att = off;
			off += y->heads * 2 * y->hd;
		} else {
			y->b = off;
			off += y->out;
		}
		if (y->out > m->maxdim)
			m->maxdim = y->out;
		in = y->out;
	}
	m->wq = off;
	off += in * m->o.in_dim;
	m->hu = m->hb = NO_PARAM;
	if (m->o.head & RV_GNN_HEAD_BIAS) {
		m->hu = off;
		off += in;
	}
	if (m->o.head & RV_GNN_HEAD_BASE)
		m->hb = off++;
	return off;
}

static rv_status alloc_gnn(rv_gnn **out, const rv_gnn_opts *o, const rv_alloc *a, rv_err *err)
{
	rv_gnn *m = rv_calloc(a, 1, sizeof *m);
	*out = NULL;
	if (!m)
		return rv_err_nomem(err);
	m->o = *o;
	m->o.size = sizeof(rv_gnn_opts);
	m->a = a;
	m->np = plan(m);
	m->theta = rv_calloc(a, m->np, sizeof(float));
	m->grad = rv_calloc(a, m->np, sizeof(double));
	if (!m->theta || !m->grad)
		goto nomem;
	if (o->optim == RV_LEARN_ADAM) {
		m->m = rv_calloc(a, m->np, sizeof(float));
		m->v = rv_calloc(a, m->np, sizeof(float));
		if (!m->m || !m->v)
			goto nomem;
	}
	*out = m;
	return RV_OK;
nomem:
	rv_gnn_free(m);
	return rv_err_nomem(err);
}

rv_status rv_gnn_create(rv_gnn **out, const rv_gnn_opts *opts, const rv_alloc *a, rv_err *err)
{
	rv_status st;
	*out = NULL;
	if (!opts)
		return rv_err_set(err, RV_EINVAL, "gnn options are required (in_dim has no default)");
	if ((st = check_opts(opts, err)) != RV_OK)
		return st;
	rv_gnn *m;
	if ((st = alloc_gnn(&m, opts, a, err)) != RV_OK)
		return st;
	/* Glorot-scaled Gaussian weights, zero biases; W_q = 0 so that an
	 * untrained model ranks exactly by the base scores. */
	rv_rng rng;
	rv_rng_seed(&rng, opts->seed);
	for (size_t l = 0; l < m->nl; l++) {
		layer *y = &m->L[l];
		size_t fan_in = y->type == RV_GNN_LAYER_SAGE ? 2 * y->in : y->in;
		float sd = sqrtf(2.0f / (float)(fan_in + y->out));
		for (size_t i = 0; i < y->out * fan_in; i++)
			m->theta[y->w + i] = rv_rng_gauss(&rng) * sd;
		if (y->type == RV_GNN_LAYER_GAT) {
			float sa = 1.0f / sqrtf((float)y->hd);
			for (size_t i = 0; i < y->heads * 2 * y->hd; i++)
				m->theta[y->att + i] = rv_rng_gauss(&rng) * sa;
		}
	}
	if (m->hb != NO_PARAM)
		m->theta[m->hb] = 1.0f;
	*out = m;
	return RV_OK;
}

void rv_gnn_free(rv_gnn *m)
{
	if (!m)
		return;
	const rv_alloc *a = m->a;
	rv_dealloc(a, m->ws);
	rv_dealloc(a, m->a_theta);
	rv_dealloc(a, m->a_fis);
	rv_dealloc(a, m->a_prior);
	rv_dealloc(a, m->a_pfis);
	rv_dealloc(a, m->prior_grad);
	rv_dealloc(a, m->prior_v);
	rv_dealloc(a, m->prior_m);
	rv_dealloc(a, m->prior);
	rv_dealloc(a, m->v);
	rv_dealloc(a, m->m);
	rv_dealloc(a, m->grad);
	rv_dealloc(a, m->theta);
	rv_dealloc(a, m);
}

const char *rv_gnn_errmsg(const rv_gnn *m) { return m ? m->err.msg : "no gnn"; }
const rv_gnn_opts *rv_gnn_get_opts(const rv_gnn *m) { return &m->o; }
float *rv_gnn_params(rv_gnn *m, size_t *n)
{
	if (n)
		*n = m->np;
	return m->theta;
}
size_t rv_gnn_param_count(const rv_gnn *m) { return m->np; }
float *rv_gnn_priors(rv_gnn *m, size_t *n)
{
	if (n)
		*n = m->nprior;
	return m->prior;
}
size_t rv_gnn_prior_count(const rv_gnn *m) { return m->nprior; }
const double *rv_gnn_grad(const rv_gnn *m) { return m->grad; }
const double *rv_gnn_prior_grad(const rv_gnn *m) { return m->prior_grad; }
uint64_t rv_gnn_steps(const rv_gnn *m) { return m->steps; }

/* ------------------------------------------------------------------------
 * Workspace
 * ---------------------------------------------------------------------- */

/* Carves the workspace for n nodes and `slots` attention slots (edges + n)
 * out of base (NULL: only measure). Returns the bytes needed, or 0 on
 * overflow. Doubles first, then u32, then bytes, so all are aligned. */
static size_t ws_layout(rv_gnn *m, char *base, size_t n, size_t slots)
{
	uint64_t off = 0;
	const uint64_t lim = (uint64_t)SIZE_MAX / 2;
#define TAKE(ptr, type, count)                                                    \
	do {                                                                      \
		uint64_t c_ = (uint64_t)(count);                                  \
		if (c_ > lim / sizeof(type) || off > lim - c_ * sizeof(type))     \
			return 0;                                                 \
		if (base)                                                         \
			(ptr) = (type *)(void *)(base + off);                     \
		off += c_ * sizeof(type);                                         \
	} while (0)
	size_t maxheads = 1;
	TAKE(m->h0, double, (uint64_t)n * m->o.in_dim);
	for (size_t l = 0; l < m->nl; l++) {
		layer *y = &m->L[l];
		TAKE(y->agg, double, (uint64_t)n * (y->type == RV_GNN_LAYER_GAT ? y->out : y->in));
		TAKE(y->z, double, (uint64_t)n * y->out);
		TAKE(y->h, double, (uint64_t)n * y->out);
		if (y->type == RV_GNN_LAYER_GAT) {
			TAKE(y->raw, double, (uint64_t)slots * y->heads);
			TAKE(y->alpha, double, (uint64_t)slots * y->heads);
			TAKE(y->ps, double, (uint64_t)n * y->heads);
			TAKE(y->pd, double, (uint64_t)n * y->heads);
			if (y->heads > maxheads)
				maxheads = y->heads;
		}
	}
	TAKE(m->wqq, double, m->L[m->nl - 1].out);
	TAKE(m->dh_a, double, (uint64_t)n * m->maxdim);
	TAKE(m->dh_b, double, (uint64_t)n * m->maxdim);
	TAKE(m->dg, double, (uint64_t)n * m->maxdim);
	TAKE(m->dps, double, (uint64_t)n * maxheads);
	TAKE(m->dpd, double, (uint64_t)n * maxheads);
	TAKE(m->tmp, double, 2 * m->maxdim);
	TAKE(m->ds, double, n);
	TAKE(m->offsets, uint32_t, n + 1);
	for (size_t l = 0; l < m->nl; l++)
		TAKE(m->L[l].need, uint8_t, n);
	TAKE(m->need_out, uint8_t, n);
#undef TAKE
	return off ? (size_t)off : 1;
}

static rv_status ws_ensure(rv_gnn *m, size_t n, size_t slots)
{
	size_t need = ws_layout(m, NULL, n, slots);
	if (need == 0)
		return rv_err_set(&m->err, RV_EINVAL, "gnn graph of %zu nodes and %zu edges is too large", n, slots - n);
	if (need > m->ws_bytes) {
		void *p = rv_realloc(m->a, m->ws, need);
		if (!p)
			return rv_err_nomem(&m->err);
		m->ws = p;
		m->ws_bytes = need;
	}
	ws_layout(m, m->ws, n, slots);
	return RV_OK;
}

/* ------------------------------------------------------------------------
 * Validation
 * ---------------------------------------------------------------------- */

/* need_q: the call scores, so a query is required. */
static rv_status check_graph(rv_gnn *m, const rv_gnn_graph *g, const float *q, bool need_q)
{
	rv_err *e = &m->err;
	if (!g || !g->x || !g->offsets)
		return rv_err_set(e, RV_EINVAL, "gnn graph needs features x and offsets");
	if (need_q && !q)
		return rv_err_set(e, RV_EINVAL, "gnn: no query vector");
	if (g->n < 1 || g->n > RV_GNN_MAX_NODES)
		return rv_err_set(e, RV_EINVAL, "gnn graph has %zu nodes (1..%d)", g->n, RV_GNN_MAX_NODES);
	if (g->ncand < 1 || g->ncand > g->n)
		return rv_err_set(e, RV_EINVAL, "gnn graph: ncand %zu out of range 1..%zu", g->ncand, g->n);
	if (g->offsets[0] != 0)
		return rv_err_set(e, RV_EINVAL, "gnn graph: offsets[0] is %u, must be 0", g->offsets[0]);
	/* All offsets first: the edge pass below reads nbrs up to offsets[n]. */
	for (size_t v = 0; v < g->n; v++)
		if (g->offsets[v + 1] < g->offsets[v])
			return rv_err_set(e, RV_EINVAL, "gnn graph: offsets decrease at node %zu (%u < %u)", v,
					  g->offsets[v + 1], g->offsets[v]);
	if (g->offsets[g->n] && !g->nbrs)
		return rv_err_set(e, RV_EINVAL, "gnn graph: %u edges but no nbrs array", g->offsets[g->n]);
	for (size_t v = 0; v < g->n; v++) {
		for (uint32_t j = g->offsets[v]; j < g->offsets[v + 1]; j++) {
			if (g->nbrs[j] >= g->n || g->nbrs[j] == v)
				return rv_err_set(e, RV_EINVAL, "gnn graph: node %zu has neighbour %u (need < %zu, not itself)",
						  v, g->nbrs[j], g->n);
		}
		if (g->items && g->items[v] != RV_GNN_NO_ITEM && g->items[v] >= RV_GNN_MAX_ITEMS)
			return rv_err_set(e, RV_EINVAL, "gnn graph: node %zu has item id %u (max %u)", v, g->items[v],
					  RV_GNN_MAX_ITEMS - 1);
		if (g->base && !isfinite(g->base[v]))
			return rv_err_set(e, RV_EINVAL, "gnn graph: base score of node %zu is not finite", v);
	}
	size_t d = m->o.in_dim;
	for (size_t i = 0; i < g->n * d; i++)
		if (!isfinite(g->x[i]))
			return rv_err_set(e, RV_EINVAL, "gnn graph: feature %zu of node %zu is not finite", i % d, i / d);
	for (size_t i = 0; q && i < d; i++)
		if (!isfinite(q[i]))
			return rv_err_set(e, RV_EINVAL, "gnn: query value %zu is not finite", i);
	return RV_OK;
}

/* ------------------------------------------------------------------------
 * Forward
 * ---------------------------------------------------------------------- */

static inline double dot_df(const double *h, const float *w, size_t n)
{
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += h[i] * w[i];
		s1 += h[i + 1] * w[i + 1];
		s2 += h[i + 2] * w[i + 2];
		s3 += h[i + 3] * w[i + 3];
	}
	for (; i < n; i++)
		s0 += h[i] * w[i];
	return (s0 + s1) + (s2 + s3);
}

static inline void axpy_df(double *y, double a, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

static inline void axpy_dd(double *y, double a, const double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

static inline double relu(double x) { return x > 0 ? x : 0; }

/* Slot of neighbour j (0 = self, 1..deg) of node v in the attention arrays. */
static inline size_t slot(const uint32_t *off, size_t v, size_t j) { return off[v] + v + j; }
static inline uint32_t slot_src(const uint32_t *off, const uint32_t *nbrs, size_t v, size_t j)
{
	return j == 0 ? (uint32_t)v : nbrs[off[v] + j - 1];
}

static void fwd_layer(rv_gnn *m, size_t l, const double *H, const rv_gnn_graph *g)
{
	layer *y = &m->L[l];
	const uint8_t *in_need = y->need;
	const uint8_t *out_need = l + 1 < m->nl ? m->L[l + 1].need : m->need_out;
	const uint32_t *off = g->offsets, *nb = g->nbrs;
	const float *W = m->theta + y->w;
	size_t in = y->in, out = y->out, n = g->n;

	if (y->type == RV_GNN_LAYER_GAT) {
		const float *att = m->theta + y->att;
		size_t K = y->heads, hd = y->hd;
		for (size_t u = 0; u < n; u++) {
			if (!in_need[u])
				continue;
			double *gu = y->agg + u * out;
			for (size_t o = 0; o < out; o++)
				gu[o] = dot_df(H + u * in, W + o * in, in);
			for (size_t k = 0; k < K; k++) {
				y->ps[u * K + k] = dot_df(gu + k * hd, att + k * 2 * hd, hd);
				y->pd[u * K + k] = dot_df(gu + k * hd, att + k * 2 * hd + hd, hd);
			}
		}
		for (size_t v = 0; v < n; v++) {
			if (!out_need[v])
				continue;
			size_t deg = off[v + 1] - off[v];
			double *zv = y->z + v * out;
			for (size_t k = 0; k < K; k++) {
				/* Softmax over self and neighbours, max subtracted for range. */
				double mx = -INFINITY;
				for (size_t j = 0; j <= deg; j++) {
					uint32_t u = slot_src(off, nb, v, j);
					double r = y->ps[v * K + k] + y->pd[u * K + k];
					double e = r > 0 ? r : m->o.leaky * r;
					y->raw[slot(off, v, j) * K + k] = r;
					y->alpha[slot(off, v, j) * K + k] = e;
					if (e > mx)
						mx = e;
				}
				double sum = 0;
				for (size_t j = 0; j <= deg; j++) {
					double *al = &y->alpha[slot(off, v, j) * K + k];
					*al = exp(*al - mx);
					sum += *al;
				}
				double *zk = zv + k * hd;
				memset(zk, 0, hd * sizeof(double));
				for (size_t j = 0; j <= deg; j++) {
					double *al = &y->alpha[slot(off, v, j) * K + k];
					*al /= sum;
					axpy_dd(zk, *al, y->agg + (size_t)slot_src(off, nb, v, j) * out + k * hd, hd);
				}
			}
			for (size_t o = 0; o < out; o++)
				y->h[v * out + o] = relu(zv[o]);
		}
		return;
	}

	const float *b = m->theta + y->b;
	for (size_t v = 0; v < n; v++) {
		if (!out_need[v])
			continue;
		size_t deg = off[v + 1] - off[v];
		double *ag = y->agg + v * in;
		double *zv = y->z + v * out;
		if (y->type == RV_GNN_LAYER_GCN) {
			/* Mean over self and neighbours (self loop, row-normalised). */
			memcpy(ag, H + v * in, in * sizeof(double));
			for (size_t j = off[v]; j < off[v + 1]; j++)
				axpy_dd(ag, 1.0, H + (size_t)nb[j] * in, in);
			double inv = 1.0 / (double)(deg + 1);
			for (size_t i = 0; i < in; i++)
				ag[i] *= inv;
			for (size_t o = 0; o < out; o++)
				zv[o] = b[o] + dot_df(ag, W + o * in, in);
		} else {
			memset(ag, 0, in * sizeof(double));
			for (size_t j = off[v]; j < off[v + 1]; j++)
				axpy_dd(ag, 1.0, H + (size_t)nb[j] * in, in);
			if (deg)
				for (size_t i = 0; i < in; i++)
					ag[i] /= (double)deg;
			for (size_t o = 0; o < out; o++)
				zv[o] = b[o] + dot_df(H + v * in, W + o * 2 * in, in) + dot_df(ag, W + o * 2 * in + in, in);
		}
		for (size_t o = 0; o < out; o++)
			y->h[v * out + o] = relu(zv[o]);
	}
}

/* Marks the receptive field, copies inputs, runs every layer, and (when q
 * is not NULL) computes W_q q for the head. */
static rv_status forward(rv_gnn *m, const rv_gnn_graph *g, const float *q)
{
	rv_status st;
	size_t n = g->n, slots = (size_t)g->offsets[n] + n;
	m->have_forward = false;
	if ((st = ws_ensure(m, n, slots)) != RV_OK)
		return st;
	const uint32_t *off = g->offsets, *nb = g->nbrs;
	memcpy(m->offsets, off, (n + 1) * sizeof(uint32_t));
	memset(m->need_out, 0, n);
	memset(m->need_out, 1, g->ncand);
	for (size_t l = m->nl; l-- > 0;) {
		const uint8_t *next = l + 1 < m->nl ? m->L[l + 1].need : m->need_out;
		uint8_t *cur = m->L[l].need;
		memcpy(cur, next, n);
		for (size_t v = 0; v < n; v++)
			if (next[v])
				for (size_t j = off[v]; j < off[v + 1]; j++)
					cur[nb[j]] = 1;
	}
	size_t d = m->o.in_dim;
	for (size_t v = 0; v < n; v++)
		if (m->L[0].need[v])
			for (size_t i = 0; i < d; i++)
				m->h0[v * d + i] = g->x[v * d + i];
	const double *H = m->h0;
	for (size_t l = 0; l < m->nl; l++) {
		fwd_layer(m, l, H, g);
		H = m->L[l].h;
	}
	const layer *last = &m->L[m->nl - 1];
	for (size_t o = 0; q && o < last->out; o++)
		m->wqq[o] = rv_learn_dot(m->theta + m->wq + o * d, q, d, true) +
			    (m->hu != NO_PARAM ? m->theta[m->hu + o] : 0.0);
	m->n = n;
	m->ncand = g->ncand;
	m->slots = slots;
	m->have_forward = true;
	return RV_OK;
}

static inline double base_weight(const rv_gnn *m) { return m->hb != NO_PARAM ? m->theta[m->hb] : 1.0; }

static double score_of(const rv_gnn *m, const rv_gnn_graph *g, size_t v)
{
	const layer *last = &m->L[m->nl - 1];
	double s = 0;
	for (size_t o = 0; o < last->out; o++)
		s += m->wqq[o] * last->h[v * last->out + o];
	if (g->base)
		s += base_weight(m) * g->base[v];
	if (g->items && g->items[v] < m->nprior)
		s += m->prior[g->items[v]];
	return s;
}

rv_status rv_gnn_score(float *scores, rv_gnn *m, const rv_gnn_graph *g, const float *query)
{
	rv_status st;
	if (!scores)
		return rv_err_set(&m->err, RV_EINVAL, "gnn score: no output array");
	if ((st = check_graph(m, g, query, true)) != RV_OK)
		return st;
	if ((st = forward(m, g, query)) != RV_OK)
		return st;
	for (size_t v = 0; v < g->ncand; v++)
		scores[v] = (float)score_of(m, g, v);
	return RV_OK;
}

rv_status rv_gnn_embed(float *h, rv_gnn *m, const rv_gnn_graph *g)
{
	rv_status st;
	if (!h)
		return rv_err_set(&m->err, RV_EINVAL, "gnn embed: no output array");
	if ((st = check_graph(m, g, NULL, false)) != RV_OK)
		return st;
	if ((st = forward(m, g, NULL)) != RV_OK)
		return st;
	const layer *last = &m->L[m->nl - 1];
	for (size_t i = 0; i < g->ncand * last->out; i++)
		h[i] = (float)last->h[i];
	return RV_OK;
}

size_t rv_gnn_embed_dim(const rv_gnn *m) { return m->L[m->nl - 1].out; }

rv_status rv_gnn_score_embedded(float *scores, const rv_gnn *m, const float *h, size_t n, const uint32_t *items,
				const float *base, const float *query)
{
	if (!scores || !h || !query)
		return rv_err_set((rv_err *)&m->err, RV_EINVAL, "gnn score: scores, embeddings and query are required");
	size_t d = m->o.in_dim, out = m->L[m->nl - 1].out;
	double wqq[RV_LEARN_MAX_DIM];
	/* W_q q + u once, then one short dot per candidate. */
	for (size_t o = 0; o < out; o++)
		wqq[o] = rv_learn_dot(m->theta + m->wq + o * d, query, d, false) +
			 (m->hu != NO_PARAM ? m->theta[m->hu + o] : 0.0);
	double bw = base_weight(m);
	for (size_t v = 0; v < n; v++) {
		const float *hv = h + v * out;
		double s = base ? bw * base[v] : 0;
		for (size_t o = 0; o < out; o++)
			s += wqq[o] * hv[o];
		if (items && items[v] < m->nprior)
			s += m->prior[items[v]];
		scores[v] = (float)s;
	}
	return RV_OK;
}

rv_status rv_gnn_attention(float *w, size_t cap, size_t *n, const rv_gnn *m, size_t layer_i, uint32_t node)
{
	rv_err *e = (rv_err *)&m->err;
	if (!m->have_forward)
		return rv_err_set(e, RV_EINVAL, "gnn attention: no forward pass yet");
	if (layer_i >= m->nl || m->L[layer_i].type != RV_GNN_LAYER_GAT)
		return rv_err_set(e, RV_EINVAL, "gnn attention: layer %zu is not a GAT layer", layer_i);
	const uint8_t *out_need = layer_i + 1 < m->nl ? m->L[layer_i + 1].need : m->need_out;
	if (node >= m->n || !out_need[node])
		return rv_err_set(e, RV_EINVAL, "gnn attention: node %u is outside the computed receptive field", node);
	const layer *y = &m->L[layer_i];
	size_t deg = m->offsets[node + 1] - m->offsets[node];
	size_t need = (deg + 1) * y->heads;
	*n = need;
	if (cap < need)
		return rv_err_set(e, RV_EBUFS, "gnn attention: %zu floats needed, %zu given", need, cap);
	for (size_t j = 0; j <= deg; j++)
		for (size_t k = 0; k < y->heads; k++)
			w[j * y->heads + k] = (float)y->alpha[slot(m->offsets, node, j) * y->heads + k];
	return RV_OK;
}

/* ------------------------------------------------------------------------
 * Serving one node (one-layer models)
 *
 * A search re-ranks candidates whose representations were cached, and
 * computes the few missing ones on the fly, from many threads at once. So
 * this path touches nothing of the model but its weights: the caller
 * gives the inputs as pointers (no graph, no copies) and the scratch. It
 * runs in float on the SIMD dot kernel; the double path above is the
 * reference it is tested against.
 * ---------------------------------------------------------------------- */

size_t rv_gnn_node_work(const rv_gnn *m, size_t deg)
{
	const layer *y = &m->L[0];
	if (deg > RV_GNN_MAX_NODES)
		return 0;
	/* aggregate or r1, r2 (in each), z (out), per input g (out) and e (heads). */
	return 2 * y->in + y->out + (deg + 1) * (y->out + y->heads);
}

static rv_status check_node(const rv_gnn *m, const float *x, const float *const *nbrs, size_t deg, const float *work)
{
	rv_err *e = (rv_err *)&m->err;
	if (m->nl != 1)
		return rv_err_set(e, RV_EINVAL, "gnn node path needs a one-layer model (this one has %zu)", m->nl);
	if (!x || !work || (deg && !nbrs))
		return rv_err_set(e, RV_EINVAL, "gnn node path: features, neighbours and work are required");
	if (deg > RV_GNN_MAX_NODES)
		return rv_err_set(e, RV_EINVAL, "gnn node path: %zu neighbours (max %d)", deg, RV_GNN_MAX_NODES);
	return RV_OK;
}

static inline const float *node_input(const float *x, const float *const *nbrs, size_t j)
{
	return j == 0 ? x : nbrs[j - 1];
}

/* Pre-activation z (out floats, in work) of one node; for GAT also the
 * per-input transforms and the attention (left in work, see below). */
static float *node_forward(const rv_gnn *m, const float *x, const float *const *nbrs, size_t deg, float *work,
			   float **g_out, float **alpha_out)
{
	const layer *y = &m->L[0];
	size_t in = y->in, out = y->out;
	const float *W = m->theta + y->w;
	float *agg = work, *z = work + 2 * in, *g = z + out, *al = g + (deg + 1) * out;
	if (y->type == RV_GNN_LAYER_GAT) {
		const float *att = m->theta + y->att;
		size_t K = y->heads, hd = y->hd;
		for (size_t j = 0; j <= deg; j++) {
			const float *xj = node_input(x, nbrs, j);
			for (size_t o = 0; o < out; o++)
				g[j * out + o] = (float)rv_learn_dot(W + o * in, xj, in, false);
		}
		for (size_t k = 0; k < K; k++) {
			const float *as = att + k * 2 * hd, *an = as + hd;
			float ps = 0, mx = -INFINITY;
			for (size_t t = 0; t < hd; t++)
				ps += as[t] * g[k * hd + t];
			for (size_t j = 0; j <= deg; j++) {
				float r = ps;
				for (size_t t = 0; t < hd; t++)
					r += an[t] * g[j * out + k * hd + t];
				float ev = r > 0 ? r : m->o.leaky * r;
				al[j * K + k] = ev;
				if (ev > mx)
					mx = ev;
			}
			double sum = 0;
			for (size_t j = 0; j <= deg; j++) {
				al[j * K + k] = expf(al[j * K + k] - mx);
				sum += al[j * K + k];
			}
			float inv = (float)(1.0 / sum);
			float *zk = z + k * hd;
			memset(zk, 0, hd * sizeof(float));
			for (size_t j = 0; j <= deg; j++) {
				float a = al[j * K + k] *= inv;
				for (size_t t = 0; t < hd; t++)
					zk[t] += a * g[j * out + k * hd + t];
			}
		}
		*g_out = g;
		*alpha_out = al;
		return z;
	}
	const float *b = m->theta + y->b;
	memset(agg, 0, in * sizeof(float));
	for (size_t j = y->type == RV_GNN_LAYER_GCN ? 0 : 1; j <= deg; j++) {
		const float *xj = node_input(x, nbrs, j);
		for (size_t i = 0; i < in; i++)
			agg[i] += xj[i];
	}
	size_t cnt = y->type == RV_GNN_LAYER_GCN ? deg + 1 : deg;
	if (cnt) {
		float inv = 1.0f / (float)cnt;
		for (size_t i = 0; i < in; i++)
			agg[i] *= inv;
	}
	for (size_t o = 0; o < out; o++) {
		if (y->type == RV_GNN_LAYER_GCN)
			z[o] = b[o] + (float)rv_learn_dot(W + o * in, agg, in, false);
		else
			z[o] = b[o] + (float)(rv_learn_dot(W + o * 2 * in, x, in, false) +
					      rv_learn_dot(W + o * 2 * in + in, agg, in, false));
	}
	*g_out = *alpha_out = NULL;
	return z;
}

rv_status rv_gnn_embed_node(float *h, float *attn, const rv_gnn *m, const float *x, const float *const *nbrs,
			    size_t deg, float *work)
{
	rv_status st;
	if ((st = check_node(m, x, nbrs, deg, work)) != RV_OK)
		return st;
	if (!h)
		return rv_err_set((rv_err *)&m->err, RV_EINVAL, "gnn node path: no output array");
	float *g, *al;
	const float *z = node_forward(m, x, nbrs, deg, work, &g, &al);
	const layer *y = &m->L[0];
	for (size_t o = 0; o < y->out; o++)
		h[o] = z[o] > 0 ? z[o] : 0;
	if (attn && al)
		memcpy(attn, al, (deg + 1) * y->heads * sizeof(float));
	return RV_OK;
}

void rv_gnn_head_vector(float *w, const rv_gnn *m, const float *query)
{
	size_t d = m->o.in_dim, out = m->L[m->nl - 1].out;
	for (size_t o = 0; o < out; o++)
		w[o] = (float)(rv_learn_dot(m->theta + m->wq + o * d, query, d, false) +
			       (m->hu != NO_PARAM ? m->theta[m->hu + o] : 0.0));
}

float rv_gnn_base_weight(const rv_gnn *m) { return (float)base_weight(m); }

void rv_gnn_scale_input(rv_gnn *m, float c)
{
	/* Layer 0 sees the features only through W (GAT's attention reads
	 * W h, so it follows); the head sees the query only through W_q. */
	const layer *y = &m->L[0];
	size_t nw = y->out * (y->type == RV_GNN_LAYER_SAGE ? 2 * y->in : y->in);
	for (size_t i = 0; i < nw; i++)
		m->theta[y->w + i] *= c;
	size_t nq = m->L[m->nl - 1].out * m->o.in_dim;
	for (size_t i = 0; i < nq; i++)
		m->theta[m->wq + i] *= c;
}

rv_status rv_gnn_explain_node(float *w, const rv_gnn *m, const float *query, const float *x,
			      const float *const *nbrs, size_t deg, float *work)
{
	rv_status st;
	rv_err *e = (rv_err *)&m->err;
	if ((st = check_node(m, x, nbrs, deg, work)) != RV_OK)
		return st;
	const layer *y = &m->L[0];
	if (!w || (!query && y->type != RV_GNN_LAYER_GAT))
		return rv_err_set(e, RV_EINVAL, "gnn explain: output and (for GCN and SAGE) query are required");
	float *g, *al;
	const float *z = node_forward(m, x, nbrs, deg, work, &g, &al);
	if (y->type == RV_GNN_LAYER_GAT) {
		for (size_t j = 0; j <= deg; j++) {
			double s = 0;
			for (size_t k = 0; k < y->heads; k++)
				s += al[j * y->heads + k];
			w[j] = (float)(s / (double)y->heads);
		}
		return RV_OK;
	}
	/* <w_head, h> = sum over active units o of w_o z_o, and z is linear in
	 * each input: fold the active rows into one vector per weight block
	 * (r1 for self, r2 for the neighbour mean), then one dot per input. */
	size_t in = y->in, out = y->out, d = m->o.in_dim;
	const float *W = m->theta + y->w;
	float *r1 = work, *r2 = work + in;
	memset(r1, 0, 2 * in * sizeof(float));
	for (size_t o = 0; o < out; o++) {
		if (!(z[o] > 0))
			continue;
		float wo = (float)(rv_learn_dot(m->theta + m->wq + o * d, query, d, false) +
				   (m->hu != NO_PARAM ? m->theta[m->hu + o] : 0.0));
		if (y->type == RV_GNN_LAYER_GCN) {
			for (size_t i = 0; i < in; i++)
				r1[i] += wo * W[o * in + i];
		} else {
			for (size_t i = 0; i < in; i++) {
				r1[i] += wo * W[o * 2 * in + i];
				r2[i] += wo * W[o * 2 * in + in + i];
			}
		}
	}
	double total = 0;
	for (size_t j = 0; j <= deg; j++) {
		const float *xj = node_input(x, nbrs, j);
		double c;
		if (y->type == RV_GNN_LAYER_GCN)
			c = rv_learn_dot(r1, xj, in, true) / (double)(deg + 1);
		else
			c = j == 0 ? rv_learn_dot(r1, xj, in, true) : rv_learn_dot(r2, xj, in, true) / (double)deg;
		w[j] = (float)c;
		total += fabs(c);
	}
	for (size_t j = 0; j <= deg; j++)
		w[j] = total > 0 ? (float)(w[j] / total) : 0.0f;
	return RV_OK;
}

/* ------------------------------------------------------------------------
 * Backward
 * ---------------------------------------------------------------------- */

/* dHn: gradient w.r.t. layer l's output (rows out_need). Writes the
 * gradient w.r.t. its input into dH (rows in_need) unless l == 0. */
static void bwd_layer(rv_gnn *m, size_t l, const double *H, const double *dHn, double *dH, const rv_gnn_graph *g)
{
	layer *y = &m->L[l];
	const uint8_t *in_need = y->need;
	const uint8_t *out_need = l + 1 < m->nl ? m->L[l + 1].need : m->need_out;
	const uint32_t *off = g->offsets, *nb = g->nbrs;
	const float *W = m->theta + y->w;
	double *gW = m->grad + y->w;
	size_t in = y->in, out = y->out, n = g->n;
	bool want_dh = l > 0;
	if (want_dh)
		for (size_t u = 0; u < n; u++)
			if (in_need[u])
				memset(dH + u * in, 0, in * sizeof(double));

	if (y->type == RV_GNN_LAYER_GAT) {
		const float *att = m->theta + y->att;
		double *gatt = m->grad + y->att;
		size_t K = y->heads, hd = y->hd;
		for (size_t u = 0; u < n; u++)
			if (in_need[u]) {
				memset(m->dg + u * out, 0, out * sizeof(double));
				memset(m->dps + u * K, 0, K * sizeof(double));
				memset(m->dpd + u * K, 0, K * sizeof(double));
			}
		double *dO = m->tmp;
		for (size_t v = 0; v < n; v++) {
			if (!out_need[v])
				continue;
			size_t deg = off[v + 1] - off[v];
			for (size_t k = 0; k < K; k++) {
				bool any = false;
				for (size_t t = 0; t < hd; t++) {
					size_t o = k * hd + t;
					dO[t] = y->z[v * out + o] > 0 ? dHn[v * out + o] : 0;
					any |= dO[t] != 0;
				}
				if (!any)
					continue;
				/* dalpha_j = dO . g_u; then the softmax Jacobian. */
				double sum_ad = 0;
				for (size_t j = 0; j <= deg; j++) {
					uint32_t u = slot_src(off, nb, v, j);
					double al = y->alpha[slot(off, v, j) * K + k];
					double da = 0;
					const double *gu = y->agg + (size_t)u * out + k * hd;
					for (size_t t = 0; t < hd; t++)
						da += dO[t] * gu[t];
					sum_ad += al * da;
					axpy_dd(m->dg + (size_t)u * out + k * hd, al, dO, hd);
				}
				for (size_t j = 0; j <= deg; j++) {
					uint32_t u = slot_src(off, nb, v, j);
					size_t s = slot(off, v, j) * K + k;
					double al = y->alpha[s];
					const double *gu = y->agg + (size_t)u * out + k * hd;
					double da = 0;
					for (size_t t = 0; t < hd; t++)
						da += dO[t] * gu[t];
					double de = al * (da - sum_ad);
					double dr = de * (y->raw[s] > 0 ? 1.0 : m->o.leaky);
					m->dps[v * K + k] += dr;
					m->dpd[(size_t)u * K + k] += dr;
				}
			}
		}
		for (size_t u = 0; u < n; u++) {
			if (!in_need[u])
				continue;
			const double *gu = y->agg + u * out;
			double *dgu = m->dg + u * out;
			for (size_t k = 0; k < K; k++) {
				double a1 = m->dps[u * K + k], a2 = m->dpd[u * K + k];
				if (a1 != 0) {
					axpy_dd(gatt + k * 2 * hd, a1, gu + k * hd, hd);
					axpy_df(dgu + k * hd, a1, att + k * 2 * hd, hd);
				}
				if (a2 != 0) {
					axpy_dd(gatt + k * 2 * hd + hd, a2, gu + k * hd, hd);
					axpy_df(dgu + k * hd, a2, att + k * 2 * hd + hd, hd);
				}
			}
			for (size_t o = 0; o < out; o++) {
				if (dgu[o] == 0)
					continue;
				axpy_dd(gW + o * in, dgu[o], H + u * in, in);
				if (want_dh)
					axpy_df(dH + u * in, dgu[o], W + o * in, in);
			}
		}
		return;
	}

	double *gb = m->grad + y->b;
	double *d1 = m->tmp, *d2 = m->tmp + m->maxdim;
	for (size_t v = 0; v < n; v++) {
		if (!out_need[v])
			continue;
		size_t deg = off[v + 1] - off[v];
		const double *ag = y->agg + v * in;
		memset(d1, 0, in * sizeof(double));
		memset(d2, 0, in * sizeof(double));
		for (size_t o = 0; o < out; o++) {
			double dz = y->z[v * out + o] > 0 ? dHn[v * out + o] : 0;
			if (dz == 0)
				continue;
			gb[o] += dz;
			if (y->type == RV_GNN_LAYER_GCN) {
				axpy_dd(gW + o * in, dz, ag, in);
				if (want_dh)
					axpy_df(d1, dz, W + o * in, in);
			} else {
				axpy_dd(gW + o * 2 * in, dz, H + v * in, in);
				axpy_dd(gW + o * 2 * in + in, dz, ag, in);
				if (want_dh) {
					axpy_df(d1, dz, W + o * 2 * in, in);
					axpy_df(d2, dz, W + o * 2 * in + in, in);
				}
			}
		}
		if (!want_dh)
			continue;
		if (y->type == RV_GNN_LAYER_GCN) {
			/* Each of the deg + 1 summands of the mean gets 1/(deg + 1). */
			double inv = 1.0 / (double)(deg + 1);
			axpy_dd(dH + v * in, inv, d1, in);
			for (size_t j = off[v]; j < off[v + 1]; j++)
				axpy_dd(dH + (size_t)nb[j] * in, inv, d1, in);
		} else {
			axpy_dd(dH + v * in, 1.0, d1, in);
			if (deg) {
				double inv = 1.0 / (double)deg;
				for (size_t j = off[v]; j < off[v + 1]; j++)
					axpy_dd(dH + (size_t)nb[j] * in, inv, d2, in);
			}
		}
	}
}

/* Grows the prior table (and its moments and gradient) to cover `need`
 * ids; new entries are zero. On failure the table keeps its old size. */
static rv_status grow_priors(rv_gnn *m, size_t need)
{
	if (need <= m->nprior)
		return RV_OK;
	size_t cap = m->nprior ? m->nprior : 64;
	while (cap < need)
		cap *= 2;
	float *p = rv_realloc(m->a, m->prior, cap * sizeof(float));
	if (!p)
		return rv_err_nomem(&m->err);
	m->prior = p;
	double *pg = rv_realloc(m->a, m->prior_grad, cap * sizeof(double));
	if (!pg)
		return rv_err_nomem(&m->err);
	m->prior_grad = pg;
	if (m->o.optim == RV_LEARN_ADAM) {
		float *pm = rv_realloc(m->a, m->prior_m, cap * sizeof(float));
		if (!pm)
			return rv_err_nomem(&m->err);
		m->prior_m = pm;
		float *pv = rv_realloc(m->a, m->prior_v, cap * sizeof(float));
		if (!pv)
			return rv_err_nomem(&m->err);
		m->prior_v = pv;
		memset(m->prior_m + m->nprior, 0, (cap - m->nprior) * sizeof(float));
		memset(m->prior_v + m->nprior, 0, (cap - m->nprior) * sizeof(float));
	}
	memset(m->prior + m->nprior, 0, (cap - m->nprior) * sizeof(float));
	memset(m->prior_grad + m->nprior, 0, (cap - m->nprior) * sizeof(double));
	m->nprior = cap;
	return RV_OK;
}

/* What the l2 term pulls towards zero: theta itself, except beta, which
 * is pulled towards 1 (the plain ranking's weight). */
static inline double reg_offset(const rv_gnn *m, size_t i)
{
	return i == m->hb ? (double)m->theta[i] - 1.0 : (double)m->theta[i];
}

rv_status rv_gnn_reserve_priors(rv_gnn *m, size_t n)
{
	if (n > RV_GNN_MAX_ITEMS)
		return rv_err_set(&m->err, RV_EINVAL, "gnn priors: %zu items (max %u)", n, RV_GNN_MAX_ITEMS);
	return grow_priors(m, n);
}

rv_status rv_gnn_set_anchor(rv_gnn *m, float lambda, const float *fisher, const float *prior_star,
			    const float *prior_fisher, size_t nitems)
{
	if (!(lambda >= 0) || !isfinite(lambda))
		return rv_err_set(&m->err, RV_EINVAL, "gnn anchor: lambda %g must be finite and >= 0", (double)lambda);
	if (lambda > 0 && !fisher)
		return rv_err_set(&m->err, RV_EINVAL, "gnn anchor: a Fisher estimate of the weights is required");
	if (nitems > RV_GNN_MAX_ITEMS || (nitems && (!prior_star || !prior_fisher)))
		return rv_err_set(&m->err, RV_EINVAL, "gnn anchor: %zu items need their priors and Fisher estimate",
				  nitems);
	for (size_t i = 0; lambda > 0 && i < m->np; i++)
		if (!(fisher[i] >= 0) || !isfinite(fisher[i]))
			return rv_err_set(&m->err, RV_EINVAL, "gnn anchor: Fisher value %zu is %g", i, (double)fisher[i]);
	for (size_t i = 0; lambda > 0 && i < nitems; i++)
		if (!(prior_fisher[i] >= 0) || !isfinite(prior_fisher[i]) || !isfinite(prior_star[i]))
			return rv_err_set(&m->err, RV_EINVAL, "gnn anchor: item %zu has prior %g, Fisher %g", i,
					  (double)prior_star[i], (double)prior_fisher[i]);
	rv_dealloc(m->a, m->a_theta);
	rv_dealloc(m->a, m->a_fis);
	rv_dealloc(m->a, m->a_prior);
	rv_dealloc(m->a, m->a_pfis);
	m->a_theta = m->a_fis = m->a_prior = m->a_pfis = NULL;
	m->a_nitems = 0;
	m->ewc = 0;
	if (lambda == 0)
		return RV_OK;
	m->a_theta = rv_malloc(m->a, m->np * sizeof(float));
	m->a_fis = rv_malloc(m->a, m->np * sizeof(float));
	m->a_prior = rv_malloc(m->a, (nitems ? nitems : 1) * sizeof(float));
	m->a_pfis = rv_malloc(m->a, (nitems ? nitems : 1) * sizeof(float));
	if (!m->a_theta || !m->a_fis || !m->a_prior || !m->a_pfis) {
		rv_gnn_set_anchor(m, 0, NULL, NULL, NULL, 0);
		return rv_err_nomem(&m->err);
	}
	memcpy(m->a_theta, m->theta, m->np * sizeof(float));
	memcpy(m->a_fis, fisher, m->np * sizeof(float));
	if (nitems) {
		memcpy(m->a_prior, prior_star, nitems * sizeof(float));
		memcpy(m->a_pfis, prior_fisher, nitems * sizeof(float));
	}
	m->a_nitems = nitems;
	m->ewc = lambda;
	return RV_OK;
}

/* The regulariser of parameter i: its weight (the l2 strength, plus
 * lambda F_i when anchored) and the offset it pulls on. Anchored, the l2
 * term too pulls towards theta*: the anchor stands for the earlier
 * posterior, which already holds the l2 prior, and a decay towards zero
 * on top of it would erase, at Adam's full step size, every weight the
 * new data does not touch. */
static inline void reg_term(const rv_gnn *m, size_t i, double *w, double *off)
{
	if (m->ewc > 0) {
		*w = m->o.l2 + (double)m->ewc * m->a_fis[i];
		*off = (double)m->theta[i] - m->a_theta[i];
	} else {
		*w = m->o.l2;
		*off = reg_offset(m, i);
	}
}

static inline void prior_reg(const rv_gnn *m, uint32_t it, double *w, double *off)
{
	if (m->ewc > 0 && it < m->a_nitems) {
		*w = m->o.l2 + (double)m->ewc * m->a_pfis[it];
		*off = (double)m->prior[it] - m->a_prior[it];
	} else {
		*w = m->o.l2;
		*off = m->prior[it];
	}
}

static rv_status loss_grad(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
			   const rv_gnn_pair *pairs, size_t npairs, bool want_grad, bool reg)
{
	rv_status st;
	if ((st = check_graph(m, g, query, true)) != RV_OK)
		return st;
	if (npairs && !pairs)
		return rv_err_set(&m->err, RV_EINVAL, "gnn loss: %zu pairs but no array", npairs);
	for (size_t i = 0; i < npairs; i++) {
		if (pairs[i].chosen >= g->ncand || pairs[i].skipped >= g->ncand)
			return rv_err_set(&m->err, RV_EINVAL, "gnn loss: pair %zu names node %u/%u, candidates are < %zu", i,
					  pairs[i].chosen, pairs[i].skipped, g->ncand);
		if (!(pairs[i].weight >= 0) || !isfinite(pairs[i].weight))
			return rv_err_set(&m->err, RV_EINVAL, "gnn loss: pair %zu weight %g must be finite and >= 0", i,
					  pairs[i].weight);
	}
	size_t maxitem = 0;
	if (g->items)
		for (size_t v = 0; v < g->ncand; v++)
			if (g->items[v] != RV_GNN_NO_ITEM && (size_t)g->items[v] + 1 > maxitem)
				maxitem = (size_t)g->items[v] + 1;
	if ((st = grow_priors(m, maxitem)) != RV_OK)
		return st;
	if ((st = forward(m, g, query)) != RV_OK)
		return st;

	size_t nc = g->ncand;
	double *s = m->dh_b; /* scores of the candidates; dh_b is free until backward */
	for (size_t v = 0; v < nc; v++)
		s[v] = score_of(m, g, v);
	double *ds = m->ds;
	memset(ds, 0, nc * sizeof(double));
	double total = 0;
	for (size_t i = 0; i < npairs; i++) {
		double delta = s[pairs[i].chosen] - s[pairs[i].skipped], w = pairs[i].weight;
		total += w * rv_learn_softplus_neg(delta);
		double c = -w * rv_learn_sigmoid_neg(delta);
		ds[pairs[i].chosen] += c;
		ds[pairs[i].skipped] -= c;
	}
	double rw, ro;
	for (size_t i = 0; reg && i < m->np; i++) {
		reg_term(m, i, &rw, &ro);
		total += 0.5 * rw * ro * ro;
	}
	/* Priors are regularised where they are used (once per candidate
	 * naming them), which keeps a step O(candidates) however many items
	 * the table holds. */
	if (g->items && reg)
		for (size_t v = 0; v < nc; v++)
			if (g->items[v] != RV_GNN_NO_ITEM) {
				prior_reg(m, g->items[v], &rw, &ro);
				total += 0.5 * rw * ro * ro;
			}
	*loss = total;
	if (!want_grad)
		return RV_OK;

	for (size_t i = 0; i < m->np; i++) {
		rw = ro = 0;
		if (reg)
			reg_term(m, i, &rw, &ro);
		m->grad[i] = rw * ro;
	}
	if (g->items) {
		for (size_t v = 0; v < nc; v++)
			if (g->items[v] != RV_GNN_NO_ITEM)
				m->prior_grad[g->items[v]] = 0;
		for (size_t v = 0; v < nc; v++)
			if (g->items[v] != RV_GNN_NO_ITEM) {
				rw = ro = 0;
				if (reg)
					prior_reg(m, g->items[v], &rw, &ro);
				m->prior_grad[g->items[v]] += ds[v] + rw * ro;
			}
	}

	/* Head: s_v = <W_q q + u, h_v>: dW_q[o][:] = (sum_v ds_v h_v[o]) q,
	 * du[o] = sum_v ds_v h_v[o], dh_v = ds_v (W_q q + u). */
	const layer *last = &m->L[m->nl - 1];
	size_t outL = last->out, d = m->o.in_dim;
	double *dh = m->dh_a;
	for (size_t o = 0; o < outL; o++) {
		double acc = 0;
		for (size_t v = 0; v < nc; v++)
			acc += ds[v] * last->h[v * outL + o];
		if (acc != 0)
			for (size_t i = 0; i < d; i++)
				m->grad[m->wq + o * d + i] += acc * query[i];
		if (m->hu != NO_PARAM)
			m->grad[m->hu + o] += acc;
	}
	/* s_v = beta base_v + ...: d beta = sum_v ds_v base_v. */
	if (m->hb != NO_PARAM && g->base)
		for (size_t v = 0; v < nc; v++)
			m->grad[m->hb] += ds[v] * g->base[v];
	for (size_t v = 0; v < g->n; v++)
		if (m->need_out[v])
			for (size_t o = 0; o < outL; o++)
				dh[v * outL + o] = ds[v] * m->wqq[o];
	double *cur = m->dh_a, *prev = m->dh_b;
	for (size_t l = m->nl; l-- > 0;) {
		const double *H = l == 0 ? m->h0 : m->L[l - 1].h;
		bwd_layer(m, l, H, cur, prev, g);
		double *t = cur;
		cur = prev;
		prev = t;
	}
	return RV_OK;
}

rv_status rv_gnn_loss_grad(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
			   const rv_gnn_pair *pairs, size_t npairs, bool want_grad)
{
	return loss_grad(loss, m, g, query, pairs, npairs, want_grad, true);
}

rv_status rv_gnn_data_grad(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
			   const rv_gnn_pair *pairs, size_t npairs)
{
	return loss_grad(loss, m, g, query, pairs, npairs, true, false);
}

rv_status rv_gnn_step(double *loss, rv_gnn *m, const rv_gnn_graph *g, const float *query,
		      const rv_gnn_pair *pairs, size_t npairs)
{
	double l;
	rv_status st = rv_gnn_loss_grad(&l, m, g, query, pairs, npairs, true);
	if (st != RV_OK)
		return st;
	if (loss)
		*loss = l;
	const rv_gnn_opts *o = &m->o;
	m->steps++;
	double bc1 = 1, bc2 = 1;
	if (o->optim == RV_LEARN_ADAM) {
		bc1 = 1.0 - pow(o->beta1, (double)m->steps);
		bc2 = 1.0 - pow(o->beta2, (double)m->steps);
	}
	for (size_t i = 0; i < m->np; i++)
		m->theta[i] = rv_learn_update(m->theta[i], m->grad[i], m->m ? m->m + i : NULL, m->v ? m->v + i : NULL,
					      o->optim, o->lr, o->beta1, o->beta2, o->eps, bc1, bc2);
	/* Priors: only the ones this graph touched move (plus their decay),
	 * so a step costs O(candidates), not O(items). With prior_lr set
	 * they step by plain SGD: each is seen a few times, and Adam would
	 * move it a full step per sighting however weak the evidence. */
	bool psgd = o->prior_lr > 0;
	float plr = psgd ? o->prior_lr : o->lr;
	rv_learn_optim popt = psgd ? RV_LEARN_SGD : o->optim;
	if (g->items)
		for (size_t v = 0; v < g->ncand; v++) {
			uint32_t it = g->items[v];
			if (it == RV_GNN_NO_ITEM || m->prior_grad[it] == 0)
				continue;
			if (psgd) {
				/* The regulariser's part implicitly (a proximal
				 * step): with EWC++, (l2 + lambda F) prior_lr can
				 * pass 2, where an explicit step diverges (it did,
				 * on the Debian set). k = its weight times the
				 * candidates naming the item (each added it once). */
				double rw, ro;
				prior_reg(m, it, &rw, &ro);
				size_t cnt = 0;
				for (size_t u = 0; u < g->ncand; u++)
					cnt += g->items[u] == it;
				double k = (double)cnt * rw, star = (double)m->prior[it] - ro;
				double x = (double)m->prior[it] - plr * (m->prior_grad[it] - k * ro);
				m->prior[it] = (float)((x + plr * k * star) / (1.0 + plr * k));
				m->prior_grad[it] = 0;
				continue;
			}
			m->prior[it] = rv_learn_update(m->prior[it], m->prior_grad[it],
						       m->prior_m ? m->prior_m + it : NULL,
						       m->prior_v ? m->prior_v + it : NULL, popt, plr,
						       o->beta1, o->beta2, o->eps, bc1, bc2);
			/* Zeroed so a duplicate item id in the graph is not stepped twice. */
			m->prior_grad[it] = 0;
		}
	return RV_OK;
}

/* ------------------------------------------------------------------------
 * Byte form
 *
 *   magic "RVGN", u16 version, u16 flags (bit 0: Adam moments), u32
 *   in_dim, u32 layers, per layer u32 type, out_dim, heads; f32 lr, l2,
 *   leaky, beta1, beta2, eps; u32 optim; (version 2: u32 head, f32
 *   prior_lr); u64 seed,
 *   u64 steps; u64 np, f32 theta[np] (+ m[np], v[np]); u64 nprior, f32
 *   prior[nprior] (+ m, v); u64 XXH3.
 *
 * A model without head terms and with prior_lr 0 is written as version 1,
 * byte for byte what earlier builds wrote and read.
 * ---------------------------------------------------------------------- */

static void put_floats(rv_buf *b, const float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rv_buf_f32(b, p[i]);
}

static bool get_floats(rv_reader *r, float *p, size_t n, bool nonneg)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = rv_reader_f32(r);
		if (!isfinite(p[i]) || (nonneg && p[i] < 0))
			return false;
	}
	return !r->bad;
}

rv_status rv_gnn_save(rv_buf *out, const rv_gnn *m)
{
	size_t start = out->len;
	const rv_gnn_opts *o = &m->o;
	bool adam = o->optim == RV_LEARN_ADAM;
	rv_buf_put(out, GNN_MAGIC, 4);
	bool v2 = o->head || o->prior_lr != 0;
	rv_buf_u16(out, v2 ? 2 : 1);
	rv_buf_u16(out, adam ? 1 : 0);
	rv_buf_u32(out, o->in_dim);
	rv_buf_u32(out, o->layers);
	for (uint32_t l = 0; l < o->layers; l++) {
		rv_buf_u32(out, (uint32_t)o->type[l]);
		rv_buf_u32(out, o->out_dim[l]);
		rv_buf_u32(out, o->heads[l]);
	}
	rv_buf_f32(out, o->lr);
	rv_buf_f32(out, o->l2);
	rv_buf_f32(out, o->leaky);
	rv_buf_f32(out, o->beta1);
	rv_buf_f32(out, o->beta2);
	rv_buf_f32(out, o->eps);
	rv_buf_u32(out, (uint32_t)o->optim);
	if (v2) {
		rv_buf_u32(out, o->head);
		rv_buf_f32(out, o->prior_lr);
	}
	rv_buf_u64(out, o->seed);
	rv_buf_u64(out, m->steps);
	rv_buf_u64(out, m->np);
	put_floats(out, m->theta, m->np);
	if (adam) {
		put_floats(out, m->m, m->np);
		put_floats(out, m->v, m->np);
	}
	rv_buf_u64(out, m->nprior);
	put_floats(out, m->prior, m->nprior);
	if (adam) {
		put_floats(out, m->prior_m, m->nprior);
		put_floats(out, m->prior_v, m->nprior);
	}
	rv_learn_seal(out, start);
	if (out->failed) {
		out->len = start;
		return RV_ENOMEM;
	}
	return RV_OK;
}

rv_status rv_gnn_load(rv_gnn **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_gnn *m = NULL;
	rv_reader r;
	*out = NULL;
	if (!bytes || !rv_learn_check_seal(bytes, n))
		return rv_err_set(err, RV_ECORRUPT, "gnn state: checksum mismatch or truncated (%zu bytes)", n);
	rv_reader_init(&r, bytes, n - 8);
	const uint8_t *magic = rv_reader_bytes(&r, 4);
	if (!magic || memcmp(magic, GNN_MAGIC, 4) != 0)
		return rv_err_set(err, RV_ECORRUPT, "gnn state: bad magic");
	uint16_t version = rv_reader_u16(&r);
	if (version > GNN_VERSION)
		return rv_err_set(err, RV_EVERSION, "gnn state has format version %u, this build reads up to %d", version,
				  GNN_VERSION);
	uint16_t flags = rv_reader_u16(&r);
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = rv_reader_u32(&r);
	o.layers = rv_reader_u32(&r);
	if (r.bad || version == 0 || (flags & ~1u) || o.layers < 1 || o.layers > RV_GNN_MAX_LAYERS)
		return rv_err_set(err, RV_ECORRUPT, "gnn state: bad header (version %u, flags 0x%x, layers %u)", version,
				  flags, o.layers);
	for (uint32_t l = 0; l < o.layers; l++) {
		o.type[l] = (rv_gnn_layer_type)rv_reader_u32(&r);
		o.out_dim[l] = rv_reader_u32(&r);
		o.heads[l] = rv_reader_u32(&r);
	}
	o.lr = rv_reader_f32(&r);
	o.l2 = rv_reader_f32(&r);
	o.leaky = rv_reader_f32(&r);
	o.beta1 = rv_reader_f32(&r);
	o.beta2 = rv_reader_f32(&r);
	o.eps = rv_reader_f32(&r);
	o.optim = (rv_learn_optim)rv_reader_u32(&r);
	if (version >= 2) {
		o.head = rv_reader_u32(&r);
		o.prior_lr = rv_reader_f32(&r);
		/* Version 2 exists only for models that need its fields. */
		if (o.head == 0 && o.prior_lr == 0)
			return rv_err_set(err, RV_ECORRUPT, "gnn state: version 2 without head terms or prior_lr");
	}
	o.seed = rv_reader_u64(&r);
	uint64_t steps = rv_reader_u64(&r);
	uint64_t np = rv_reader_u64(&r);
	if (r.bad)
		return rv_err_set(err, RV_ECORRUPT, "gnn state: truncated header");
	rv_err tmp;
	if (check_opts(&o, &tmp) != RV_OK)
		return rv_err_set(err, RV_ECORRUPT, "gnn state: %s", tmp.msg);
	bool adam = o.optim == RV_LEARN_ADAM;
	if ((flags & 1) != adam)
		return rv_err_set(err, RV_ECORRUPT, "gnn state: flags 0x%x do not match the optimiser", flags);
	size_t per = adam ? 3 : 1;
	if ((st = alloc_gnn(&m, &o, a, err)) != RV_OK)
		return st;
	if (np != m->np || rv_reader_left(&r) < per * 4 * np + 8) {
		st = rv_err_set(err, RV_ECORRUPT, "gnn state: %llu parameters stored, the layers need %zu",
				(unsigned long long)np, m->np);
		goto done;
	}
	bool ok = get_floats(&r, m->theta, m->np, false);
	if (ok && adam)
		ok = get_floats(&r, m->m, m->np, false) && get_floats(&r, m->v, m->np, true);
	uint64_t nprior = rv_reader_u64(&r);
	if (!ok || r.bad || nprior > RV_GNN_MAX_ITEMS || rv_reader_left(&r) != per * 4 * nprior) {
		st = rv_err_set(err, RV_ECORRUPT, "gnn state: bad parameters or prior table (%llu priors)",
				(unsigned long long)nprior);
		goto done;
	}
	if (nprior) {
		if ((st = grow_priors(m, (size_t)nprior)) != RV_OK) {
			rv_err_set(err, st, "%s", m->err.msg);
			goto done;
		}
		/* grow_priors rounds up; the stored size is the real one. */
		m->nprior = (size_t)nprior;
		ok = get_floats(&r, m->prior, m->nprior, false);
		if (ok && adam)
			ok = get_floats(&r, m->prior_m, m->nprior, false) && get_floats(&r, m->prior_v, m->nprior, true);
		if (!ok) {
			st = rv_err_set(err, RV_ECORRUPT, "gnn state: a prior is not a finite number");
			goto done;
		}
	}
	m->steps = steps;
	*out = m;
	m = NULL;
done:
	rv_gnn_free(m);
	return st;
}
