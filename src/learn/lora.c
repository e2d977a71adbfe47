/*
 * lora.c - the SONA query adapter: a low-rank residual q' = q + s B (A q)
 * trained with a pairwise logistic (BPR) loss, optionally held near its
 * consolidated weights by EWC++.
 *
 * Cost per event is O(dim * rank) and needs no scratch memory: q' is never
 * materialised, because the loss only needs
 *     <q', p - n> = <q, p - n> + <offset, p - n> + s sum_k u_k <B_k, p - n>
 * with u = A q and B_k the k-th column of B (stored contiguously). Every
 * term is a dot product of two contiguous float arrays, so the SIMD kernel
 * does the work. With the L2 score, -||q' - x||^2 differs from 2 <q', x>
 * by -||q'||^2, which cancels between chosen and skipped, and by -||x||^2,
 * which does not depend on the parameters.
 *
 * Gradients (c = -weight * sigmoid(-delta) * kappa, kappa = 1/tau for DOT
 * and 2/tau for L2, diff = p - n):
 *     dL/dB_k = c s u_k diff
 *     dL/dA_k = c s <B_k, diff> q
 * plus l2 * theta for the regulariser and lambda F (theta - theta*) for the
 * EWC penalty. docs/LEARNING-CORE.md derives them.
 *
 * EWC++: the Fisher diagonal is the running average of the squared
 * data-loss gradient, F <- gamma F + (1 - gamma) g^2, updated on every
 * step; rv_lora_consolidate() copies theta into the anchor and arms the
 * penalty. Before the first consolidation the penalty is zero.
 */
#include <math.h>

#include "learn/learn.h"
#include "simd/simd.h"

#define LORA_MAGIC "RVLA"
#define LORA_VERSION 1
#define LORA_MAX_RANK 64

struct rv_lora {
	rv_lora_opts o;
	const rv_alloc *a;
	rv_err err;
	size_t np;       /* 2 * dim * rank */
	float *theta;    /* A (rank x dim), then B by columns (rank x dim) */
	float *m, *v;    /* Adam moments, np each, NULL under SGD */
	float *fisher;   /* np, NULL when EWC is off */
	float *anchor;   /* np, NULL when EWC is off */
	bool anchored;   /* consolidate() was called: the penalty is armed */
	uint64_t steps;
};

/* ------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------- */

static rv_status check_opts(const rv_lora_opts *o, rv_err *err)
{
	if (o->size < sizeof(rv_lora_opts))
		return rv_err_set(err, RV_EINVAL, "rv_lora_opts.size is %zu, expected %zu (use RV_LORA_OPTS_INIT)",
				  o->size, sizeof(rv_lora_opts));
	if (o->dim < 1 || o->dim > RV_LEARN_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "adapter dim %u out of range 1..%d", o->dim, RV_LEARN_MAX_DIM);
	if (o->rank < 1 || o->rank > LORA_MAX_RANK)
		return rv_err_set(err, RV_EINVAL, "adapter rank %u out of range 1..%d", o->rank, LORA_MAX_RANK);
	if (!(o->scale > 0) || !isfinite(o->scale))
		return rv_err_set(err, RV_EINVAL, "adapter scale %g must be finite and > 0", o->scale);
	if (!(o->lr > 0) || !isfinite(o->lr))
		return rv_err_set(err, RV_EINVAL, "adapter lr %g must be finite and > 0", o->lr);
	if (!(o->l2 >= 0) || !isfinite(o->l2))
		return rv_err_set(err, RV_EINVAL, "adapter l2 %g must be finite and >= 0", o->l2);
	if (!(o->temperature > 0) || !isfinite(o->temperature))
		return rv_err_set(err, RV_EINVAL, "adapter temperature %g must be finite and > 0", o->temperature);
	if (o->score != RV_LEARN_SCORE_DOT && o->score != RV_LEARN_SCORE_L2)
		return rv_err_set(err, RV_EINVAL, "adapter score %d is neither DOT (0) nor L2 (1)", (int)o->score);
	if (o->optim != RV_LEARN_SGD && o->optim != RV_LEARN_ADAM)
		return rv_err_set(err, RV_EINVAL, "adapter optimiser %d is neither SGD (0) nor ADAM (1)", (int)o->optim);
	if (o->optim == RV_LEARN_ADAM &&
	    (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0) || !isfinite(o->eps)))
		return rv_err_set(err, RV_EINVAL, "Adam needs beta1, beta2 in [0, 1) and eps > 0 (got %g, %g, %g)",
				  o->beta1, o->beta2, o->eps);
	if (!(o->ewc_lambda >= 0) || !isfinite(o->ewc_lambda))
		return rv_err_set(err, RV_EINVAL, "ewc_lambda %g must be finite and >= 0", o->ewc_lambda);
	if (!(o->ewc_gamma >= 0 && o->ewc_gamma < 1))
		return rv_err_set(err, RV_EINVAL, "ewc_gamma %g must be in [0, 1)", o->ewc_gamma);
	return RV_OK;
}

/* Allocates every array of a handle for validated options; theta zeroed. */
static rv_status alloc_lora(rv_lora **out, const rv_lora_opts *o, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_lora *l = rv_calloc(a, 1, sizeof *l);
	*out = NULL;
	if (!l)
		return rv_err_nomem(err);
	l->o = *o;
	l->o.size = sizeof(rv_lora_opts);
	l->a = a;
	l->np = (size_t)2 * o->dim * o->rank;
	l->theta = rv_calloc(a, l->np, sizeof(float));
	if (!l->theta)
		goto nomem;
	if (o->optim == RV_LEARN_ADAM) {
		l->m = rv_calloc(a, l->np, sizeof(float));
		l->v = rv_calloc(a, l->np, sizeof(float));
		if (!l->m || !l->v)
			goto nomem;
	}
	if (o->ewc_lambda > 0) {
		l->fisher = rv_calloc(a, l->np, sizeof(float));
		l->anchor = rv_calloc(a, l->np, sizeof(float));
		if (!l->fisher || !l->anchor)
			goto nomem;
	}
	*out = l;
	goto done;
nomem:
	st = rv_err_nomem(err);
	rv_lora_free(l);
done:
	return st;
}

rv_status rv_lora_create(rv_lora **out, const rv_lora_opts *opts, const rv_alloc *a, rv_err *err)
{
	rv_lora_opts def = RV_LORA_OPTS_INIT;
	const rv_lora_opts *o = opts ? opts : &def;
	rv_status st;
	*out = NULL;
	if ((st = check_opts(o, err)) != RV_OK)
		return st;
	rv_lora *l;
	if ((st = alloc_lora(&l, o, a, err)) != RV_OK)
		return st;
	/* A ~ N(0, 1/dim) so u = A q has the scale of q's entries; B = 0 makes
	 * the adapter the identity until feedback arrives. */
	rv_rng rng;
	rv_rng_seed(&rng, o->seed);
	float sd = 1.0f / sqrtf((float)o->dim);
	for (size_t i = 0; i < (size_t)o->dim * o->rank; i++)
		l->theta[i] = rv_rng_gauss(&rng) * sd;
	*out = l;
	return RV_OK;
}

void rv_lora_orient(rv_lora *l, const float *v)
{
	size_t d = l->o.dim;
	double n = sqrt(rv_learn_dot(v, v, d, true));
	if (!(n > 0) || !isfinite(n))
		return;
	/* A random column's product with q is about |q| / sqrt(dim). */
	double c = 1.0 / (n * sqrt((double)d));
	float *a0 = l->theta;
	for (size_t j = 0; j < d; j++)
		a0[j] = (float)(v[j] * c);
}

void rv_lora_free(rv_lora *l)
{
	if (!l)
		return;
	const rv_alloc *a = l->a;
	rv_dealloc(a, l->anchor);
	rv_dealloc(a, l->fisher);
	rv_dealloc(a, l->v);
	rv_dealloc(a, l->m);
	rv_dealloc(a, l->theta);
	rv_dealloc(a, l);
}

const char *rv_lora_errmsg(const rv_lora *l) { return l ? l->err.msg : "no adapter"; }
const rv_lora_opts *rv_lora_get_opts(const rv_lora *l) { return &l->o; }
float *rv_lora_params(rv_lora *l, size_t *n)
{
	if (n)
		*n = l->np;
	return l->theta;
}
size_t rv_lora_param_count(const rv_lora *l) { return l->np; }
const float *rv_lora_fisher(const rv_lora *l) { return l->fisher; }
uint64_t rv_lora_steps(const rv_lora *l) { return l->steps; }

/* ------------------------------------------------------------------------
 * Forward
 * ---------------------------------------------------------------------- */

static inline const float *col_a(const rv_lora *l, size_t k) { return l->theta + k * l->o.dim; }
static inline const float *col_b(const rv_lora *l, size_t k)
{
	return l->theta + ((size_t)l->o.rank + k) * l->o.dim;
}

void rv_lora_add_delta(float *acc, const rv_lora *l, const float *q)
{
	const rv_simd_ops *ops = rv_simd();
	size_t d = l->o.dim;
	for (size_t k = 0; k < l->o.rank; k++) {
		float c = l->o.scale * (float)rv_learn_dot(col_a(l, k), q, d, false);
		ops->axpy(acc, c, col_b(l, k), d);
	}
}

void rv_lora_apply(float *out, const rv_lora *l, const float *q)
{
	size_t d = l->o.dim;
	double u[LORA_MAX_RANK];
	/* u first, so out may alias q. */
	for (size_t k = 0; k < l->o.rank; k++)
		u[k] = l->o.scale * rv_learn_dot(col_a(l, k), q, d, false);
	if (out != q)
		memcpy(out, q, d * sizeof(float));
	for (size_t k = 0; k < l->o.rank; k++)
		rv_simd()->axpy(out, (float)u[k], col_b(l, k), d);
}

/* The pieces every loss and gradient needs at one event: u = A q,
 * bd[k] = <B_k, p - n>, and delta = score(q', p) - score(q', n). */
typedef struct terms {
	double u[LORA_MAX_RANK];
	double bd[LORA_MAX_RANK];
	double delta;
	double kappa; /* d delta / d <q', p - n>: (1 or 2) / tau */
} terms;

static void event_terms(terms *t, const rv_lora *l, const rv_lora_event *ev, bool precise)
{
	size_t d = l->o.dim;
	const float *q = ev->query, *p = ev->chosen, *n = ev->skipped;
	double qd = rv_learn_dot(q, p, d, precise) - rv_learn_dot(q, n, d, precise);
	if (ev->offset)
		qd += rv_learn_dot(ev->offset, p, d, precise) - rv_learn_dot(ev->offset, n, d, precise);
	for (size_t k = 0; k < l->o.rank; k++) {
		t->u[k] = rv_learn_dot(col_a(l, k), q, d, precise);
		t->bd[k] = rv_learn_dot(col_b(l, k), p, d, precise) - rv_learn_dot(col_b(l, k), n, d, precise);
		qd += l->o.scale * t->u[k] * t->bd[k];
	}
	double inv = 1.0 / l->o.temperature;
	if (l->o.score == RV_LEARN_SCORE_DOT) {
		t->kappa = inv;
		t->delta = qd * inv;
	} else {
		t->kappa = 2.0 * inv;
		t->delta = (2.0 * qd - rv_learn_dot(p, p, d, precise) + rv_learn_dot(n, n, d, precise)) * inv;
	}
}

static rv_status check_event(rv_err *err, const rv_lora_event *ev)
{
	if (!ev || !ev->query || !ev->chosen || !ev->skipped)
		return rv_err_set(err, RV_EINVAL, "adapter event needs query, chosen and skipped vectors");
	if (!(ev->weight >= 0) || !isfinite(ev->weight))
		return rv_err_set(err, RV_EINVAL, "adapter event weight %g must be finite and >= 0", ev->weight);
	return RV_OK;
}

double rv_lora_eval(const rv_lora *l, const rv_lora_event *ev, size_t n)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		terms t;
		event_terms(&t, l, &ev[i], true);
		sum += rv_learn_softplus_neg(t.delta);
	}
	return n ? sum / (double)n : 0.0;
}

/* ------------------------------------------------------------------------
 * Loss, gradient, step
 * ---------------------------------------------------------------------- */

rv_status rv_lora_loss_grad(double *loss, double *grad, rv_lora *l, const rv_lora_event *ev)
{
	rv_status st;
	if ((st = check_event(&l->err, ev)) != RV_OK)
		return st;
	size_t d = l->o.dim, r = l->o.rank;
	terms t;
	event_terms(&t, l, ev, true);
	double w = ev->weight, s = l->o.scale;
	double c = -w * rv_learn_sigmoid_neg(t.delta) * t.kappa;
	double total = w * rv_learn_softplus_neg(t.delta);
	bool pen = l->fisher && l->anchored;
	for (size_t i = 0; i < l->np; i++) {
		double th = l->theta[i];
		total += 0.5 * l->o.l2 * th * th;
		if (pen) {
			double dd = th - l->anchor[i];
			total += 0.5 * l->o.ewc_lambda * l->fisher[i] * dd * dd;
		}
	}
	if (grad) {
		for (size_t k = 0; k < r; k++) {
			double ga = c * s * t.bd[k], gb = c * s * t.u[k];
			double *gA = grad + k * d, *gB = grad + (r + k) * d;
			for (size_t j = 0; j < d; j++) {
				gA[j] = ga * ev->query[j];
				gB[j] = gb * ((double)ev->chosen[j] - ev->skipped[j]);
			}
		}
		for (size_t i = 0; i < l->np; i++) {
			grad[i] += l->o.l2 * (double)l->theta[i];
			if (pen)
				grad[i] += l->o.ewc_lambda * (double)l->fisher[i] * ((double)l->theta[i] - l->anchor[i]);
		}
	}
	*loss = total;
	return RV_OK;
}

rv_status rv_lora_step(float *loss, rv_lora *l, const rv_lora_event *ev)
{
	rv_status st;
	if ((st = check_event(&l->err, ev)) != RV_OK)
		return st;
	size_t d = l->o.dim, r = l->o.rank;
	terms t;
	event_terms(&t, l, ev, false);
	if (loss)
		*loss = (float)(ev->weight * rv_learn_softplus_neg(t.delta));
	double s = l->o.scale;
	double c = -(double)ev->weight * rv_learn_sigmoid_neg(t.delta) * t.kappa;
	l->steps++;
	const rv_lora_opts *o = &l->o;
	double bc1 = 1, bc2 = 1;
	if (o->optim == RV_LEARN_ADAM) {
		bc1 = 1.0 - pow(o->beta1, (double)l->steps);
		bc2 = 1.0 - pow(o->beta2, (double)l->steps);
	}
	bool ewc = l->fisher != NULL, pen = ewc && l->anchored;
	float gamma = o->ewc_gamma;
	/* Both halves of column k are updated in one pass; the data gradient of
	 * A_k uses <B_k, diff> from before the step (t.bd), as the exact
	 * gradient at the current point requires. */
	for (size_t k = 0; k < r; k++) {
		for (int half = 0; half < 2; half++) {
			size_t base = (half == 0 ? k : r + k) * d;
			double coef = half == 0 ? c * s * t.bd[k] : c * s * t.u[k];
			float *th = l->theta + base;
			for (size_t j = 0; j < d; j++) {
				double x = half == 0 ? (double)ev->query[j]
						     : (double)ev->chosen[j] - ev->skipped[j];
				double gd = coef * x;
				double g = gd + o->l2 * th[j];
				/* The penalty uses the Fisher from before this event, so
				 * the step follows rv_lora_loss_grad. */
				double pf = pen ? o->ewc_lambda * (double)l->fisher[base + j] : 0;
				if (ewc)
					l->fisher[base + j] = (float)(gamma * l->fisher[base + j] + (1.0 - gamma) * gd * gd);
				float nt;
				if (pen && o->optim == RV_LEARN_SGD) {
					/* Proximal step on the quadratic penalty: minimises
					 * lr * <g, t> + lr * pf/2 (t - anchor)^2 + (t - theta)^2 / 2
					 * in closed form. Unlike the explicit step it cannot
					 * overshoot the anchor however large lambda * F is. */
					double lr = o->lr;
					nt = (float)((th[j] - lr * g + lr * pf * l->anchor[base + j]) / (1.0 + lr * pf));
				} else {
					g += pf * ((double)th[j] - (pen ? l->anchor[base + j] : 0));
					nt = rv_learn_update(th[j], g, l->m ? l->m + base + j : NULL,
							    l->v ? l->v + base + j : NULL, o->optim, o->lr, o->beta1,
							    o->beta2, o->eps, bc1, bc2);
				}
				/* No subnormal weights: they cost every search a
				 * microcode assist per product (0.36x of a plain
				 * search's CPU time with ALL on Fiori, together with
				 * the re-ranker's). */
				th[j] = rv_learn_flush(nt);
			}
		}
	}
	return RV_OK;
}

void rv_lora_consolidate(rv_lora *l)
{
	if (!l->anchor)
		return;
	memcpy(l->anchor, l->theta, l->np * sizeof(float));
	l->anchored = true;
}

void rv_lora_reset(rv_lora *l)
{
	size_t half = l->np / 2;
	memset(l->theta + half, 0, half * sizeof(float));
	if (l->m) {
		memset(l->m, 0, l->np * sizeof(float));
		memset(l->v, 0, l->np * sizeof(float));
	}
	l->steps = 0;
}

/* ------------------------------------------------------------------------
 * Byte form
 *
 *   magic "RVLA", u16 version, u16 flags (bit 0 anchored, bit 1 Adam
 *   moments, bit 2 EWC arrays), u32 dim, u32 rank, f32 scale, lr, l2,
 *   u32 score, f32 temperature, u32 optim, f32 beta1, beta2, eps, ewc_lambda, ewc_gamma,
 *   u64 seed, u64 steps, f32 theta[np], then m[np] v[np] if Adam, then
 *   fisher[np] anchor[np] if EWC, u64 XXH3 of all the above.
 * ---------------------------------------------------------------------- */

static void put_floats(rv_buf *b, const float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rv_buf_f32(b, p[i]);
}

rv_status rv_lora_save(rv_buf *out, const rv_lora *l)
{
	size_t start = out->len;
	const rv_lora_opts *o = &l->o;
	rv_buf_put(out, LORA_MAGIC, 4);
	rv_buf_u16(out, LORA_VERSION);
	rv_buf_u16(out, (uint16_t)((l->anchored ? 1 : 0) | (l->m ? 2 : 0) | (l->fisher ? 4 : 0)));
	rv_buf_u32(out, o->dim);
	rv_buf_u32(out, o->rank);
	rv_buf_f32(out, o->scale);
	rv_buf_f32(out, o->lr);
	rv_buf_f32(out, o->l2);
	rv_buf_u32(out, (uint32_t)o->score);
	rv_buf_f32(out, o->temperature);
	rv_buf_u32(out, (uint32_t)o->optim);
	rv_buf_f32(out, o->beta1);
	rv_buf_f32(out, o->beta2);
	rv_buf_f32(out, o->eps);
	rv_buf_f32(out, o->ewc_lambda);
	rv_buf_f32(out, o->ewc_gamma);
	rv_buf_u64(out, o->seed);
	rv_buf_u64(out, l->steps);
	put_floats(out, l->theta, l->np);
	if (l->m) {
		put_floats(out, l->m, l->np);
		put_floats(out, l->v, l->np);
	}
	if (l->fisher) {
		put_floats(out, l->fisher, l->np);
		put_floats(out, l->anchor, l->np);
	}
	rv_learn_seal(out, start);
	if (out->failed) {
		out->len = start;
		return RV_ENOMEM;
	}
	return RV_OK;
}

/* Reads n floats, each finite (and >= 0 when nonneg), else false. */
static bool get_floats(rv_reader *r, float *p, size_t n, bool nonneg)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = rv_reader_f32(r);
		if (!isfinite(p[i]) || (nonneg && p[i] < 0))
			return false;
	}
	return !r->bad;
}

rv_status rv_lora_load(rv_lora **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_lora *l = NULL;
	rv_reader r;
	*out = NULL;
	if (!bytes || !rv_learn_check_seal(bytes, n))
		return rv_err_set(err, RV_ECORRUPT, "adapter state: checksum mismatch or truncated (%zu bytes)", n);
	rv_reader_init(&r, bytes, n - 8);
	const uint8_t *magic = rv_reader_bytes(&r, 4);
	if (!magic || memcmp(magic, LORA_MAGIC, 4) != 0)
		return rv_err_set(err, RV_ECORRUPT, "adapter state: bad magic");
	uint16_t version = rv_reader_u16(&r);
	if (version > LORA_VERSION)
		return rv_err_set(err, RV_EVERSION, "adapter state has format version %u, this build reads up to %d",
				  version, LORA_VERSION);
	if (version == 0)
		return rv_err_set(err, RV_ECORRUPT, "adapter state: format version 0");
	uint16_t flags = rv_reader_u16(&r);
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = rv_reader_u32(&r);
	o.rank = rv_reader_u32(&r);
	o.scale = rv_reader_f32(&r);
	o.lr = rv_reader_f32(&r);
	o.l2 = rv_reader_f32(&r);
	o.score = (rv_learn_score)rv_reader_u32(&r);
	o.temperature = rv_reader_f32(&r);
	o.optim = (rv_learn_optim)rv_reader_u32(&r);
	o.beta1 = rv_reader_f32(&r);
	o.beta2 = rv_reader_f32(&r);
	o.eps = rv_reader_f32(&r);
	o.ewc_lambda = rv_reader_f32(&r);
	o.ewc_gamma = rv_reader_f32(&r);
	o.seed = rv_reader_u64(&r);
	uint64_t steps = rv_reader_u64(&r);
	if (r.bad)
		return rv_err_set(err, RV_ECORRUPT, "adapter state: truncated header");
	rv_err tmp;
	if (check_opts(&o, &tmp) != RV_OK)
		return rv_err_set(err, RV_ECORRUPT, "adapter state: %s", tmp.msg);
	bool has_m = flags & 2, has_f = flags & 4;
	if ((flags & ~7u) || has_m != (o.optim == RV_LEARN_ADAM) || has_f != (o.ewc_lambda > 0) ||
	    ((flags & 1) && !has_f))
		return rv_err_set(err, RV_ECORRUPT, "adapter state: flags 0x%x do not match the options", flags);
	size_t np = (size_t)2 * o.dim * o.rank;
	size_t arrays = 1 + (has_m ? 2 : 0) + (has_f ? 2 : 0);
	if (rv_reader_left(&r) != arrays * np * 4)
		return rv_err_set(err, RV_ECORRUPT, "adapter state: %zu bytes of parameters, expected %zu",
				  rv_reader_left(&r), arrays * np * 4);
	if ((st = alloc_lora(&l, &o, a, err)) != RV_OK)
		return st;
	bool ok = get_floats(&r, l->theta, np, false);
	if (ok && has_m)
		ok = get_floats(&r, l->m, np, false) && get_floats(&r, l->v, np, true);
	if (ok && has_f)
		ok = get_floats(&r, l->fisher, np, true) && get_floats(&r, l->anchor, np, false);
	if (!ok) {
		st = rv_err_set(err, RV_ECORRUPT, "adapter state: a parameter is not a finite number");
		goto done;
	}
	l->anchored = flags & 1;
	l->steps = steps;
	*out = l;
	l = NULL;
done:
	rv_lora_free(l);
	return st;
}

/* ------------------------------------------------------------------------
 * Versions
 * ---------------------------------------------------------------------- */

rv_status rv_lora_derive(rv_lora **out, const rv_lora *from, const rv_lora_opts *opts, const rv_alloc *a,
			 rv_err *err)
{
	rv_status st;
	*out = NULL;
	if (!from || !opts)
		return rv_err_set(err, RV_EINVAL, "adapter derive: %s is NULL", !from ? "from" : "opts");
	if ((st = check_opts(opts, err)) != RV_OK)
		return st;
	if (opts->dim != from->o.dim || opts->rank != from->o.rank)
		return rv_err_set(err, RV_EINVAL, "adapter derive: shape %u x %u differs from the source's %u x %u",
				  opts->dim, opts->rank, from->o.dim, from->o.rank);
	rv_lora *l;
	if ((st = alloc_lora(&l, opts, a, err)) != RV_OK)
		return st;
	memcpy(l->theta, from->theta, l->np * sizeof(float));
	if (l->fisher) {
		/* The Fisher estimate says how much each weight mattered to the
		 * data the source was trained on; the anchor pins those weights. */
		if (from->fisher)
			memcpy(l->fisher, from->fisher, l->np * sizeof(float));
		memcpy(l->anchor, from->theta, l->np * sizeof(float));
		l->anchored = true;
	}
	*out = l;
	return RV_OK;
}
