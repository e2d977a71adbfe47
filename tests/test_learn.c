/*
 * test_learn.c - the learning core (src/learn/): every analytic gradient
 * against central finite differences, the identity of a fresh adapter,
 * learning a hidden preference measured by NDCG@10 on held-out queries,
 * no harm from random feedback, EWC++ retention, k-means determinism,
 * byte forms (round trips, every flipped byte rejected), bad arguments,
 * and allocation failure without leaks.
 *
 * Timings (MicroLoRA step at d = 384, GNN forward/backward for 100
 * candidates with 16 neighbours each) are printed, never asserted.
 */
#include <float.h>

#include "harness.h"

#include "learn/learn.h"
#include "util/util.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static void gauss_fill(float *x, size_t n, float sd, rv_rng *r)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rv_rng_gauss(r) * sd;
}

static void normalise(float *x, size_t d)
{
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += (double)x[i] * x[i];
	float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0;
	for (size_t i = 0; i < d; i++)
		x[i] *= inv;
}

static double dotd(const float *a, const float *b, size_t d)
{
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* Relative error with a floor, so gradients that are both ~0 compare as equal. */
static double rel_err(double a, double b)
{
	double den = fabs(a) + fabs(b);
	if (den < 1e-6)
		den = 1e-6;
	return fabs(a - b) / den;
}

/* ------------------------------------------------------------------------
 * LoRA
 * ---------------------------------------------------------------------- */

TEST(lora_identity_at_init)
{
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = 64;
	o.rank = 2;
	rv_lora *l;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	rv_rng r;
	rv_rng_seed(&r, 5);
	float q[64], out[64], acc[64] = { 0 };
	gauss_fill(q, 64, 1.0f, &r);
	rv_lora_apply(out, l, q);
	rv_lora_add_delta(acc, l, q);
	bool same = memcmp(out, q, sizeof q) == 0;
	bool zero = true;
	for (int i = 0; i < 64; i++)
		zero &= acc[i] == 0;
	/* A is random (else no gradient could reach B), B is zero. */
	size_t np;
	float *th = rv_lora_params(l, &np);
	double na = 0, nb = 0;
	for (size_t i = 0; i < np / 2; i++)
		na += fabs(th[i]);
	for (size_t i = np / 2; i < np; i++)
		nb += fabs(th[i]);
	rv_lora_free(l);
	CHECK(np == 2 * 64 * 2);
	CHECK(same);
	CHECK(zero);
	CHECK(na > 0);
	CHECK(nb == 0);
}

TEST(lora_orient_points_first_column_along_the_query)
{
	enum { OD = 48 };
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = OD;
	o.rank = 2;
	rv_lora *l;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	rv_rng r;
	rv_rng_seed(&r, 9);
	float q[OD], zero[OD] = { 0 }, out[OD];
	gauss_fill(q, OD, 3.0f, &r);
	size_t np;
	float *th = rv_lora_params(l, &np);
	float keep[2 * OD];
	memcpy(keep, th, sizeof keep);
	rv_lora_orient(l, zero); /* nothing to point along */
	bool unchanged = memcmp(keep, th, sizeof keep) == 0;
	rv_lora_orient(l, q);
	/* Column 0 is q's direction at norm 1/sqrt(dim); column 1 is kept. */
	double nq = 0, na = 0, qa = 0;
	for (int j = 0; j < OD; j++) {
		nq += (double)q[j] * q[j];
		na += (double)th[j] * th[j];
		qa += (double)q[j] * th[j];
	}
	double cosine = qa / sqrt(nq * na);
	bool second_kept = memcmp(keep + OD, th + OD, OD * sizeof(float)) == 0;
	rv_lora_apply(out, l, q); /* B is still zero: the identity */
	bool identity = memcmp(out, q, sizeof q) == 0;
	rv_lora_free(l);
	CHECK(unchanged);
	CHECK_MSG(fabs(cosine - 1) < 1e-6, "cosine %.9f", cosine);
	CHECK_MSG(fabs(sqrt(na) - 1 / sqrt((double)OD)) < 1e-6, "norm %.6f", sqrt(na));
	CHECK(second_kept);
	CHECK(identity);
}

/* Central differences on every parameter of l at ev. */
static double lora_fd_max_err(rv_lora *l, const rv_lora_event *ev)
{
	size_t np;
	float *th = rv_lora_params(l, &np);
	double *g = malloc(np * sizeof(double)), loss, worst = 0;
	if (rv_lora_loss_grad(&loss, g, l, ev) != RV_OK) {
		free(g);
		return 1e9;
	}
	for (size_t i = 0; i < np; i++) {
		float keep = th[i];
		double h = 1e-3 * (fabs(keep) > 1 ? fabs(keep) : 1);
		double lp, lm;
		th[i] = (float)(keep + h);
		double tp = th[i];
		rv_lora_loss_grad(&lp, NULL, l, ev);
		th[i] = (float)(keep - h);
		double tm = th[i];
		rv_lora_loss_grad(&lm, NULL, l, ev);
		th[i] = keep;
		double e = rel_err(g[i], (lp - lm) / (tp - tm));
		if (e > worst)
			worst = e;
	}
	free(g);
	return worst;
}

TEST(lora_gradcheck)
{
	const size_t d = 16;
	rv_rng r;
	rv_rng_seed(&r, 11);
	float q[16], p[16], n[16], off[16];
	gauss_fill(q, d, 0.5f, &r);
	gauss_fill(p, d, 0.5f, &r);
	gauss_fill(n, d, 0.5f, &r);
	gauss_fill(off, d, 0.2f, &r);
	for (int score = 0; score < 2; score++)
		for (uint32_t rank = 1; rank <= 8; rank *= 2)
			for (int ewc = 0; ewc < 2; ewc++) {
				rv_lora_opts o = RV_LORA_OPTS_INIT;
				o.dim = d;
				o.rank = rank;
				o.scale = 0.7f;
				o.l2 = 0.05f;
				o.temperature = 0.6f;
				o.score = (rv_learn_score)score;
				o.ewc_lambda = ewc ? 3.0f : 0.0f;
				o.ewc_gamma = 0.5f;
				rv_lora *l;
				CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
				size_t np;
				float *th = rv_lora_params(l, &np);
				/* Nonzero B so both halves have a data gradient. */
				for (size_t i = np / 2; i < np; i++)
					th[i] = rv_rng_gauss(&r) * 0.3f;
				rv_lora_event ev = { q, p, n, ewc ? off : NULL, 1.3f };
				if (ewc) {
					/* Build a Fisher, anchor, then move away from the anchor. */
					for (int s = 0; s < 5; s++)
						CHECK(rv_lora_step(NULL, l, &ev) == RV_OK);
					rv_lora_consolidate(l);
					for (size_t i = 0; i < np; i++)
						th[i] += rv_rng_gauss(&r) * 0.1f;
				}
				double e = lora_fd_max_err(l, &ev);
				rv_lora_free(l);
				CHECK_MSG(e < 1e-3, "score %d rank %u ewc %d: max relative error %g", score, rank, ewc, e);
			}
}

/* A step leaves no weight subnormal: weight decay drives unused weights
 * there, and every search's product with one costs a microcode assist. */
TEST(lora_step_flushes_subnormal_weights)
{
	const size_t d = 16;
	rv_rng r;
	rv_rng_seed(&r, 5);
	float q[16], p[16], n[16];
	gauss_fill(q, d, 0.5f, &r);
	gauss_fill(p, d, 0.5f, &r);
	gauss_fill(n, d, 0.5f, &r);
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = d;
	o.rank = 2;
	o.l2 = 0.01f;
	rv_lora *l;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	size_t np;
	float *th = rv_lora_params(l, &np);
	for (size_t i = 0; i < np; i++)
		th[i] = (i % 2 ? -1e-40f : 1e-40f);
	CHECK(th[0] != 0 && fabsf(th[0]) < FLT_MIN);
	rv_lora_event ev = { q, p, n, NULL, 1.0f };
	CHECK(rv_lora_step(NULL, l, &ev) == RV_OK);
	size_t sub = 0;
	for (size_t i = 0; i < np; i++)
		sub += th[i] != 0 && fabsf(th[i]) < FLT_MIN;
	CHECK_MSG(sub == 0, "%zu of %zu weights subnormal after a step", sub, np);
	rv_lora_free(l);
}

/* One SGD step must be exactly the documented update: -lr times the
 * gradient of rv_lora_loss_grad for data and l2, proximal for EWC. */
TEST(lora_step_follows_gradient)
{
	const size_t d = 24;
	rv_rng r;
	rv_rng_seed(&r, 12);
	float q[24], p[24], n[24];
	gauss_fill(q, d, 0.5f, &r);
	gauss_fill(p, d, 0.5f, &r);
	gauss_fill(n, d, 0.5f, &r);
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = d;
	o.rank = 2;
	o.lr = 0.1f;
	o.l2 = 0.01f;
	o.ewc_lambda = 5.0f;
	rv_lora *l;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	size_t np;
	float *th = rv_lora_params(l, &np);
	rv_lora_event ev = { q, p, n, NULL, 1.0f };
	for (int s = 0; s < 3; s++)
		CHECK(rv_lora_step(NULL, l, &ev) == RV_OK);
	rv_lora_consolidate(l);
	for (size_t i = 0; i < np; i++)
		th[i] += rv_rng_gauss(&r) * 0.05f;
	double *g = malloc(np * sizeof(double)), loss;
	float *before = malloc(np * sizeof(float)), *fisher = malloc(np * sizeof(float));
	float *anchor = malloc(np * sizeof(float));
	memcpy(before, th, np * sizeof(float));
	memcpy(fisher, rv_lora_fisher(l), np * sizeof(float));
	CHECK(rv_lora_loss_grad(&loss, g, l, &ev) == RV_OK);
	/* The anchor is where consolidate() left theta: recover it from the
	 * penalty part of the gradient, then check the proximal update. */
	rv_lora_step(NULL, l, &ev);
	double worst = 0, moved = 0;
	rv_lora *probe;
	o.ewc_lambda = 0;
	CHECK(rv_lora_create(&probe, &o, NULL, NULL) == RV_OK);
	memcpy(rv_lora_params(probe, NULL), before, np * sizeof(float));
	double *gd = malloc(np * sizeof(double)), ld;
	CHECK(rv_lora_loss_grad(&ld, gd, probe, &ev) == RV_OK); /* data + l2 only */
	rv_lora_free(probe);
	for (size_t i = 0; i < np; i++) {
		double pf = 5.0 * fisher[i];
		anchor[i] = pf > 0 ? (float)(before[i] - (g[i] - gd[i]) / pf) : before[i];
		double want = (before[i] - 0.1 * gd[i] + 0.1 * pf * anchor[i]) / (1 + 0.1 * pf);
		double e = fabs(th[i] - want);
		moved += fabs(th[i] - before[i]);
		if (e > worst)
			worst = e;
	}
	free(g);
	free(gd);
	free(before);
	free(fisher);
	free(anchor);
	rv_lora_free(l);
	CHECK(moved > 1e-3);
	CHECK_MSG(worst < 1e-5, "step differs from -lr * gradient by %g", worst);
}

/* ------------------------------------------------------------------------
 * Learning a hidden preference
 *
 * Items are random unit vectors; queries share a mean direction mu (as real
 * embeddings do) plus noise. Users' true utility is <q, x> + alpha <v, x>
 * for a secret unit vector v orthogonal to mu: among the shown top 10 they
 * click the item of highest utility (plus noise), and the item ranked
 * above it (or a random lower one) counts as skipped. NDCG@10 is measured
 * against the true top 10 over all items on held-out queries.
 * ---------------------------------------------------------------------- */

enum { PD = 64, PN = 2000, PTRAIN = 300, PTEST = 200, PSHOW = 10 };

typedef struct world {
	float *items;  /* PN x PD */
	float *train;  /* PTRAIN x PD */
	float *test;   /* PTEST x PD */
	float v[PD];
	float alpha;
} world;

static void world_make(world *w, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	w->items = malloc(sizeof(float) * PN * PD);
	w->train = malloc(sizeof(float) * PTRAIN * PD);
	w->test = malloc(sizeof(float) * PTEST * PD);
	for (size_t i = 0; i < PN; i++) {
		gauss_fill(w->items + i * PD, PD, 1.0f, &r);
		normalise(w->items + i * PD, PD);
	}
	float mu[PD];
	gauss_fill(mu, PD, 1.0f, &r);
	normalise(mu, PD);
	gauss_fill(w->v, PD, 1.0f, &r);
	double c = dotd(w->v, mu, PD);
	for (size_t i = 0; i < PD; i++)
		w->v[i] -= (float)c * mu[i];
	normalise(w->v, PD);
	w->alpha = 0.6f;
	for (size_t k = 0; k < PTRAIN + PTEST; k++) {
		float *q = k < PTRAIN ? w->train + k * PD : w->test + (k - PTRAIN) * PD;
		gauss_fill(q, PD, 1.0f, &r);
		normalise(q, PD);
		for (size_t i = 0; i < PD; i++)
			q[i] = 0.7f * mu[i] + 0.7f * q[i];
	}
}

static void world_free(world *w)
{
	free(w->items);
	free(w->train);
	free(w->test);
}

/* Indices of the top k items by <q, x> (k <= 16). */
static void topk(int *out, size_t k, const float *items, const float *q)
{
	double best[16];
	size_t have = 0;
	for (size_t i = 0; i < PN; i++) {
		double s = dotd(q, items + i * PD, PD);
		if (have == k && s <= best[k - 1])
			continue;
		size_t j = have < k ? have++ : k - 1;
		while (j > 0 && best[j - 1] < s) {
			best[j] = best[j - 1];
			out[j] = out[j - 1];
			j--;
		}
		best[j] = s;
		out[j] = (int)i;
	}
}

static double utility(const world *w, const float *q, int item)
{
	const float *x = w->items + (size_t)item * PD;
	return dotd(q, x, PD) + w->alpha * dotd(w->v, x, PD);
}

/* The adapted query: q + the deltas of the adapters given (NULL skipped). */
static void adapt(float *out, const float *q, rv_lora *a, rv_lora *b)
{
	memcpy(out, q, PD * sizeof(float));
	if (a)
		rv_lora_add_delta(out, a, q);
	if (b)
		rv_lora_add_delta(out, b, q);
}

/* Mean NDCG@10 over the held-out queries, binary relevance = true top 10. */
static double ndcg_test(const world *w, rv_lora *a, rv_lora *b)
{
	double idcg = 0, sum = 0;
	for (int i = 0; i < 10; i++)
		idcg += 1.0 / log2(i + 2.0);
	for (size_t t = 0; t < PTEST; t++) {
		const float *q = w->test + t * PD;
		/* True top 10 by utility: rank by <q + alpha v, x>. */
		float qt[PD], qa[PD];
		for (size_t i = 0; i < PD; i++)
			qt[i] = q[i] + w->alpha * w->v[i];
		int truth[10], got[10];
		topk(truth, 10, w->items, qt);
		adapt(qa, q, a, b);
		topk(got, 10, w->items, qa);
		double dcg = 0;
		for (int i = 0; i < 10; i++)
			for (int j = 0; j < 10; j++)
				if (got[i] == truth[j]) {
					dcg += 1.0 / log2(i + 2.0);
					break;
				}
		sum += dcg / idcg;
	}
	return sum / PTEST;
}

typedef struct pair_ev {
	int q, chosen, skipped;
} pair_ev;

/* Simulated feedback with MicroLoRA stepped on every event and BaseLoRA
 * consolidated from the replay buffer every `every` events (then MicroLoRA
 * is cleared). random_clicks: the click and the skip are uniform among
 * the shown items, carrying no information. */
static void simulate(const world *w, rv_lora *micro, rv_lora *base, size_t events, size_t every,
		     bool random_clicks, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	pair_ev *log = malloc(events * sizeof *log);
	size_t nlog = 0;
	for (size_t e = 0; e < events; e++) {
		int qi = (int)rv_rng_below(&r, PTRAIN);
		const float *q = w->train + (size_t)qi * PD;
		float qa[PD], off[PD];
		adapt(qa, q, micro, base);
		int shown[PSHOW];
		topk(shown, PSHOW, w->items, qa);
		int c, s;
		if (random_clicks) {
			c = (int)rv_rng_below(&r, PSHOW);
			do
				s = (int)rv_rng_below(&r, PSHOW);
			while (s == c);
		} else {
			/* Click the best by utility seen through noise. */
			double bu = -1e9;
			c = 0;
			for (int i = 0; i < PSHOW; i++) {
				double u = utility(w, q, shown[i]) + 0.02 * rv_rng_gauss(&r);
				if (u > bu) {
					bu = u;
					c = i;
				}
			}
			/* Skipped: an item shown above the click, else any other. */
			if (c > 0)
				s = (int)rv_rng_below(&r, (uint64_t)c);
			else
				s = 1 + (int)rv_rng_below(&r, PSHOW - 1);
		}
		log[nlog++] = (pair_ev){ qi, shown[c], shown[s] };
		memset(off, 0, sizeof off);
		rv_lora_add_delta(off, base, q);
		rv_lora_event ev = { q, w->items + (size_t)shown[c] * PD, w->items + (size_t)shown[s] * PD, off, 1.0f };
		rv_lora_step(NULL, micro, &ev);
		if ((e + 1) % every == 0) {
			/* Consolidation: one pass over the replay buffer, newest last. */
			for (size_t i = 0; i < nlog; i++) {
				const pair_ev *p = &log[i];
				rv_lora_event be = { w->train + (size_t)p->q * PD, w->items + (size_t)p->chosen * PD,
						     w->items + (size_t)p->skipped * PD, NULL, 1.0f };
				rv_lora_step(NULL, base, &be);
			}
			rv_lora_consolidate(base);
			rv_lora_reset(micro);
		}
	}
	free(log);
}

static rv_status make_pair(rv_lora **micro, rv_lora **base, uint64_t seed)
{
	rv_lora_opts mo = RV_LORA_OPTS_INIT;
	mo.dim = PD;
	mo.rank = 2;
	mo.lr = 2e-3f;
	/* Weight decay on both factors acts like a nuclear-norm penalty on
	 * B A: directions whose evidence stays below it are cut to exactly
	 * zero, which is what keeps random clicks from doing harm. */
	mo.l2 = 1.0f;
	mo.temperature = 0.05f;
	mo.seed = seed;
	rv_lora_opts bo = mo;
	bo.rank = 8;
	bo.lr = 5e-4f;
	bo.seed = seed + 1;
	bo.ewc_lambda = 0; /* a single workload here; EWC has its own test */
	rv_status st = rv_lora_create(micro, &mo, NULL, NULL);
	if (st == RV_OK)
		st = rv_lora_create(base, &bo, NULL, NULL);
	return st;
}

TEST(lora_learns_hidden_preference)
{
	world w;
	world_make(&w, 2024);
	rv_lora *micro = NULL, *base = NULL;
	CHECK(make_pair(&micro, &base, 7) == RV_OK);
	double before = ndcg_test(&w, NULL, NULL);
	simulate(&w, micro, base, 3000, 500, false, 99);
	double after = ndcg_test(&w, micro, base);
	float dq[PD] = { 0 };
	rv_lora_add_delta(dq, base, w.test);
	double along = dotd(dq, w.v, PD), norm = sqrt(dotd(dq, dq, PD));
	/* MicroLoRA alone: never consolidated. */
	rv_lora *solo = NULL, *unused = NULL;
	CHECK(make_pair(&solo, &unused, 7) == RV_OK);
	simulate(&w, solo, unused, 3000, 1000000, false, 99);
	double micro_only = ndcg_test(&w, solo, NULL);
	rv_lora_free(solo);
	rv_lora_free(unused);
	rv_lora *rmicro = NULL, *rbase = NULL;
	CHECK(make_pair(&rmicro, &rbase, 7) == RV_OK);
	simulate(&w, rmicro, rbase, 3000, 500, true, 99);
	double random = ndcg_test(&w, rmicro, rbase);
	fprintf(stderr, "   NDCG@10 held-out: no learning %.4f, Micro+Base %.4f (%+.1f%%), MicroLoRA alone %.4f (%+.1f%%), "
		"random clicks %.4f (%+.2f%%); base delta: %.3f along the secret direction, norm %.3f\n",
		before, after, 100 * (after / before - 1), micro_only, 100 * (micro_only / before - 1), random,
		100 * (random / before - 1), along, norm);
	rv_lora_free(micro);
	rv_lora_free(base);
	rv_lora_free(rmicro);
	rv_lora_free(rbase);
	world_free(&w);
	CHECK_MSG(after >= 1.15 * before, "learned %.4f vs %.4f", after, before);
	CHECK_MSG(random >= 0.99 * before, "random clicks %.4f vs %.4f", random, before);
	CHECK_MSG(micro_only >= 1.05 * before, "MicroLoRA alone %.4f vs %.4f", micro_only, before);
	CHECK(along > 0.5 * norm); /* it learned the secret direction, not noise */
}

/* ------------------------------------------------------------------------
 * EWC++: train on workload A, consolidate, train on workload B (users who
 * prefer a different hidden direction) with and without the penalty.
 * ---------------------------------------------------------------------- */

enum { ED = 32, EN = 600, EQ = 400, ETEST = 200 };

typedef struct task {
	rv_lora_event *train, *test;
	size_t ntrain, ntest;
	float *store; /* the vectors the events point into */
} task;

/* Pairs for one hidden direction v: shown = top 10 by <q, x>; chosen = the
 * best by <q, x> + alpha <v, x>; skipped = every other shown item that is
 * worse by that utility (so each query gives several pairs). */
static void task_make(task *t, const float *items, const float *queries, const float *v, size_t nq, size_t ntest_q)
{
	t->train = malloc(sizeof(rv_lora_event) * nq * 9);
	t->test = malloc(sizeof(rv_lora_event) * ntest_q * 9);
	t->ntrain = t->ntest = 0;
	for (size_t k = 0; k < nq + ntest_q; k++) {
		const float *q = queries + k * ED;
		int shown[10];
		double best[10];
		size_t have = 0;
		for (int i = 0; i < EN; i++) {
			double s = dotd(q, items + (size_t)i * ED, ED);
			if (have == 10 && s <= best[9])
				continue;
			size_t j = have < 10 ? have++ : 9;
			while (j > 0 && best[j - 1] < s) {
				best[j] = best[j - 1];
				shown[j] = shown[j - 1];
				j--;
			}
			best[j] = s;
			shown[j] = i;
		}
		int c = 0;
		double bu = -1e9;
		for (int i = 0; i < 10; i++) {
			double u = best[i] + 0.6 * dotd(v, items + (size_t)shown[i] * ED, ED);
			if (u > bu) {
				bu = u;
				c = i;
			}
		}
		for (int i = 0; i < 10; i++) {
			if (i == c)
				continue;
			rv_lora_event e = { q, items + (size_t)shown[c] * ED, items + (size_t)shown[i] * ED, NULL, 1.0f };
			if (k < nq)
				t->train[t->ntrain++] = e;
			else
				t->test[t->ntest++] = e;
		}
	}
}

static void task_free(task *t)
{
	free(t->train);
	free(t->test);
}

static void train_epochs(rv_lora *l, const task *t, int epochs)
{
	for (int e = 0; e < epochs; e++)
		for (size_t i = 0; i < t->ntrain; i++)
			rv_lora_step(NULL, l, &t->train[i]);
}

static void ewc_world(float **items, float **qa, float **qb, float va[ED], float vb[ED], uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	*items = malloc(sizeof(float) * EN * ED);
	*qa = malloc(sizeof(float) * (EQ + ETEST) * ED);
	*qb = malloc(sizeof(float) * (EQ + ETEST) * ED);
	for (size_t i = 0; i < EN; i++) {
		gauss_fill(*items + i * ED, ED, 1.0f, &r);
		normalise(*items + i * ED, ED);
	}
	float mu[ED];
	gauss_fill(mu, ED, 1.0f, &r);
	normalise(mu, ED);
	/* va, vb orthonormal and orthogonal to mu (Gram-Schmidt). */
	float *vs[2] = { va, vb };
	for (int j = 0; j < 2; j++) {
		gauss_fill(vs[j], ED, 1.0f, &r);
		double c = dotd(vs[j], mu, ED);
		for (size_t i = 0; i < ED; i++)
			vs[j][i] -= (float)c * mu[i];
		if (j == 1) {
			c = dotd(vb, va, ED);
			for (size_t i = 0; i < ED; i++)
				vb[i] -= (float)c * va[i];
		}
		normalise(vs[j], ED);
	}
	float *qs[2] = { *qa, *qb };
	for (int j = 0; j < 2; j++)
		for (size_t k = 0; k < EQ + ETEST; k++) {
			float *q = qs[j] + k * ED;
			gauss_fill(q, ED, 1.0f, &r);
			normalise(q, ED);
			for (size_t i = 0; i < ED; i++)
				q[i] = 0.7f * mu[i] + 0.7f * q[i];
		}
}

TEST(ewc_constrains_forgetting)
{
	float *items, *qa, *qb, va[ED], vb[ED];
	ewc_world(&items, &qa, &qb, va, vb, 77);
	task A, B;
	task_make(&A, items, qa, va, EQ, ETEST);
	task_make(&B, items, qb, vb, EQ, ETEST);
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = ED;
	o.rank = 8;
	o.lr = 2e-3f;
	o.l2 = 1e-3f;
	o.temperature = 0.05f;
	o.ewc_gamma = 0.999f;
	o.ewc_lambda = 10.0f;
	rv_lora *ewc, *plain;
	CHECK(rv_lora_create(&ewc, &o, NULL, NULL) == RV_OK);
	o.ewc_lambda = 0;
	CHECK(rv_lora_create(&plain, &o, NULL, NULL) == RV_OK);
	double a0 = rv_lora_eval(plain, A.test, A.ntest);
	int ea = 3, eb = 3;
	train_epochs(ewc, &A, ea);
	train_epochs(plain, &A, ea);
	double a1 = rv_lora_eval(plain, A.test, A.ntest), b1 = rv_lora_eval(plain, B.test, B.ntest);
	bool same = memcmp(rv_lora_params(ewc, NULL), rv_lora_params(plain, NULL),
			   rv_lora_param_count(plain) * sizeof(float)) == 0;
	rv_lora_consolidate(ewc);
	train_epochs(ewc, &B, eb);
	train_epochs(plain, &B, eb);
	double a_ewc = rv_lora_eval(ewc, A.test, A.ntest), a_plain = rv_lora_eval(plain, A.test, A.ntest);
	double b_ewc = rv_lora_eval(ewc, B.test, B.ntest), b_plain = rv_lora_eval(plain, B.test, B.ntest);
	fprintf(stderr, "   held-out pairwise loss on A: untrained %.4f, after A %.4f, after B: with EWC %.4f (rise %.4f), "
		"without %.4f (rise %.4f)\n", a0, a1, a_ewc, a_ewc - a1, a_plain, a_plain - a1);
	fprintf(stderr, "   held-out pairwise loss on B: after A %.4f, after B: with EWC %.4f, without %.4f\n", b1, b_ewc,
		b_plain);
	rv_lora_free(ewc);
	rv_lora_free(plain);
	task_free(&A);
	task_free(&B);
	free(items);
	free(qa);
	free(qb);
	CHECK(same);              /* the penalty is inert before consolidation */
	CHECK(a1 < 0.8 * a0);     /* A was learned */
	CHECK(a_plain - a1 > 0.05); /* without EWC, B overwrites A */
	CHECK_MSG(a_ewc - a1 < 0.5 * (a_plain - a1), "EWC rise %.4f vs plain %.4f", a_ewc - a1, a_plain - a1);
	CHECK_MSG(b1 - b_ewc > 0.3 * (b1 - b_plain), "B improves with EWC: %.4f -> %.4f (plain %.4f)", b1, b_ewc,
		  b_plain);
}

/* ------------------------------------------------------------------------
 * MicroLoRA latency at d = 384 (reported, not asserted)
 * ---------------------------------------------------------------------- */

TEST(lora_step_latency_d384)
{
	enum { D = 384, N = 64, STEPS = 20000 };
	rv_rng r;
	rv_rng_seed(&r, 3);
	float *v = malloc(sizeof(float) * N * D);
	gauss_fill(v, (size_t)N * D, 0.05f, &r);
	for (uint32_t rank = 1; rank <= 2; rank++) {
		rv_lora_opts o = RV_LORA_OPTS_INIT;
		o.dim = D;
		o.rank = rank;
		o.lr = 1e-3f;
		o.temperature = 0.05f;
		rv_lora *l;
		CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
		rv_lora_event ev = { v, v + D, v + 2 * D, NULL, 1.0f };
		double l0 = rv_lora_eval(l, &ev, 1);
		double t0 = rv_now();
		for (int s = 0; s < STEPS; s++) {
			/* Cycle through a few pairs; the fixed one is learned. */
			rv_lora_event e = { v + (size_t)(s % 8) * D, v + (size_t)(8 + s % 8) * D,
					    v + (size_t)(16 + s % 8) * D, NULL, 1.0f };
			CHECK(rv_lora_step(NULL, l, s % 2 ? &e : &ev) == RV_OK);
		}
		double dt = (rv_now() - t0) / STEPS;
		float q[D];
		double t1 = rv_now();
		for (int s = 0; s < STEPS; s++)
			rv_lora_apply(q, l, v + (size_t)(s % N) * D);
		double da = (rv_now() - t1) / STEPS;
		double l1 = rv_lora_eval(l, &ev, 1);
		fprintf(stderr, "   MicroLoRA rank %u, d = %d: %.2f us per feedback step, %.2f us per query apply; "
			"loss on the repeated pair %.4f -> %.4f\n", rank, D, dt * 1e6, da * 1e6, l0, l1);
		rv_lora_free(l);
		CHECK(l1 < l0);
	}
	free(v);
}

/* ------------------------------------------------------------------------
 * Byte forms and bad input
 * ---------------------------------------------------------------------- */

/* Every single-byte change and every truncation of blob must be refused
 * with RV_ECORRUPT by load (a function of bytes -> status). */
typedef rv_status (*load_fn)(const uint8_t *p, size_t n);

static int corrupt_sweep(const uint8_t *blob, size_t n, load_fn load)
{
	uint8_t *c = malloc(n);
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(c, blob, n);
		c[i] ^= (uint8_t)(1u << (i % 8));
		if (load(c, n) != RV_ECORRUPT)
			bad++;
	}
	for (size_t len = 0; len < n; len += 1 + len / 16)
		if (load(blob, len) != RV_ECORRUPT)
			bad++;
	free(c);
	return bad;
}

static rv_status lora_load_only(const uint8_t *p, size_t n)
{
	rv_lora *l = NULL;
	rv_err e;
	rv_status st = rv_lora_load(&l, p, n, NULL, &e);
	rv_lora_free(l);
	return st;
}

/* Rewrites the version field (after the 4-byte magic) and reseals. */
static void bump_version(uint8_t *p, size_t n)
{
	rv_put_u16(p + 4, 99);
	rv_put_u64(p + n - 8, rv_hash64(p, n - 8, 0));
}

TEST(lora_save_load_roundtrip_and_corruption)
{
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = 12;
	o.rank = 2;
	o.optim = RV_LEARN_ADAM;
	o.ewc_lambda = 2.0f;
	o.score = RV_LEARN_SCORE_L2;
	o.temperature = 0.5f;
	rv_lora *l, *back = NULL;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	rv_rng r;
	rv_rng_seed(&r, 8);
	float v[3 * 12];
	gauss_fill(v, 36, 0.5f, &r);
	rv_lora_event ev = { v, v + 12, v + 24, NULL, 1.0f };
	for (int s = 0; s < 10; s++)
		CHECK(rv_lora_step(NULL, l, &ev) == RV_OK);
	rv_lora_consolidate(l);
	CHECK(rv_lora_step(NULL, l, &ev) == RV_OK);
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_lora_save(&b, l) == RV_OK);
	rv_err e;
	CHECK(rv_lora_load(&back, b.data, b.len, NULL, &e) == RV_OK);
	/* Same parameters, same next step (optimiser, Fisher and anchor came
	 * along), same output. */
	CHECK(memcmp(rv_lora_params(l, NULL), rv_lora_params(back, NULL), 2 * 12 * 2 * sizeof(float)) == 0);
	CHECK(rv_lora_steps(back) == rv_lora_steps(l));
	CHECK(memcmp(rv_lora_fisher(l), rv_lora_fisher(back), 2 * 12 * 2 * sizeof(float)) == 0);
	CHECK(rv_lora_step(NULL, l, &ev) == RV_OK && rv_lora_step(NULL, back, &ev) == RV_OK);
	float q1[12], q2[12];
	rv_lora_apply(q1, l, v);
	rv_lora_apply(q2, back, v);
	CHECK(memcmp(q1, q2, sizeof q1) == 0);
	double la, lb;
	CHECK(rv_lora_loss_grad(&la, NULL, l, &ev) == RV_OK && rv_lora_loss_grad(&lb, NULL, back, &ev) == RV_OK);
	CHECK(la == lb);
	rv_lora_free(back);
	CHECK(corrupt_sweep(b.data, b.len, lora_load_only) == 0);
	bump_version(b.data, b.len);
	CHECK(lora_load_only(b.data, b.len) == RV_EVERSION);
	rv_buf_free(&b);
	rv_lora_free(l);
}

TEST(lora_rejects_bad_arguments)
{
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	rv_lora *l = NULL;
	rv_err e;
	o.dim = 0;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_EINVAL && !l);
	CHECK(strstr(e.msg, "dim 0") != NULL);
	o.dim = 5000;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "5000"));
	o.dim = 8;
	o.rank = 0;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "rank 0"));
	o.rank = 2;
	o.lr = -1;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "lr"));
	o.lr = 0.1f;
	o.ewc_gamma = 1.0f;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "ewc_gamma"));
	o.ewc_gamma = 0.9f;
	CHECK(rv_lora_create(&l, &o, NULL, &e) == RV_OK);
	float v[8] = { 1 };
	rv_lora_event ev = { v, v, v, NULL, NAN };
	CHECK(rv_lora_step(NULL, l, &ev) == RV_EINVAL && strstr(rv_lora_errmsg(l), "weight"));
	ev.weight = 1;
	ev.chosen = NULL;
	CHECK(rv_lora_step(NULL, l, &ev) == RV_EINVAL);
	rv_lora_free(l);
	CHECK(lora_load_only((const uint8_t *)"short", 5) == RV_ECORRUPT);
	CHECK(lora_load_only(NULL, 0) == RV_ECORRUPT);
}

TEST(lora_allocation_failures)
{
	rv_test_alloc ta;
	rv_test_alloc_init(&ta);
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = 16;
	o.rank = 2;
	o.optim = RV_LEARN_ADAM;
	o.ewc_lambda = 1.0f;
	int failures = 0;
	for (long n = 1;; n++) {
		rv_lora *l = NULL;
		rv_err e;
		ta.fail_at = n;
		rv_status st = rv_lora_create(&l, &o, &ta.hooks, &e);
		ta.fail_at = 0;
		if (st == RV_OK) {
			rv_lora_free(l);
			CHECK(ta.live == 0);
			break;
		}
		CHECK_MSG(st == RV_ENOMEM && l == NULL, "allocation %ld: %s", n, rv_status_str(st));
		CHECK_MSG(ta.live == 0, "allocation %ld leaked %ld blocks", n, ta.live);
		failures++;
	}
	CHECK(failures >= 5); /* handle, theta, m, v, fisher, anchor */
	/* Loading fails cleanly too. */
	rv_lora *l;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_lora_save(&b, l) == RV_OK);
	rv_lora_free(l);
	for (long n = 1;; n++) {
		rv_lora *back = NULL;
		rv_err e;
		ta.fail_at = n;
		rv_status st = rv_lora_load(&back, b.data, b.len, &ta.hooks, &e);
		ta.fail_at = 0;
		rv_lora_free(back);
		CHECK(ta.live == 0);
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM);
	}
	/* A save into a buffer that cannot grow reports it and leaves it as it was. */
	rv_buf fb;
	rv_buf_init(&fb, &ta.hooks);
	ta.fail_at = 1;
	CHECK(rv_lora_create(&l, &o, NULL, NULL) == RV_OK);
	CHECK(rv_lora_save(&fb, l) == RV_ENOMEM);
	CHECK(fb.len == 0);
	ta.fail_at = 0;
	rv_buf_free(&fb);
	rv_lora_free(l);
	rv_buf_free(&b);
	CHECK(ta.live == 0);
}

/* ------------------------------------------------------------------------
 * ReasoningBank
 * ---------------------------------------------------------------------- */

/* n points around k well-separated centres; label[i] = its centre. */
static float *blobs(int *label, size_t n, size_t k, size_t d, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	float *c = malloc(sizeof(float) * k * d), *x = malloc(sizeof(float) * n * d);
	gauss_fill(c, k * d, 10.0f, &r);
	for (size_t i = 0; i < n; i++) {
		label[i] = (int)(i % k);
		for (size_t t = 0; t < d; t++)
			x[i * d + t] = c[(size_t)label[i] * d + t] + rv_rng_gauss(&r) * 0.5f;
	}
	free(c);
	return x;
}

TEST(rbank_kmeans_deterministic_and_assigns)
{
	enum { N = 600, K = 6, D = 16 };
	int label[N];
	float *x = blobs(label, N, K, D, 21);
	rv_rbank *a, *b;
	CHECK(rv_rbank_create(&a, D, K, 5, NULL, NULL) == RV_OK);
	CHECK(rv_rbank_create(&b, D, K, 5, NULL, NULL) == RV_OK);
	uint32_t c0;
	CHECK(rv_rbank_assign(&c0, NULL, a, x) == RV_EINVAL); /* not fitted */
	CHECK(rv_rbank_fit(a, x, N, 50) == RV_OK);
	CHECK(rv_rbank_fit(b, x, N, 50) == RV_OK);
	CHECK(memcmp(rv_rbank_centroids(a), rv_rbank_centroids(b), sizeof(float) * K * D) == 0);
	/* Each true blob maps to exactly one region and regions are distinct. */
	int map[K];
	for (int j = 0; j < K; j++)
		map[j] = -1;
	for (size_t i = 0; i < N; i++) {
		uint32_t c;
		float d2;
		CHECK(rv_rbank_assign(&c, &d2, a, x + i * D) == RV_OK);
		CHECK(c < K && d2 < 4.0f * D);
		if (map[label[i]] < 0)
			map[label[i]] = (int)c;
		CHECK_MSG(map[label[i]] == (int)c, "point %zu of blob %d split across regions", i, label[i]);
	}
	for (int j = 0; j < K; j++)
		for (int t = j + 1; t < K; t++)
			CHECK(map[j] != map[t]);
	/* A different seed may order regions differently but partitions alike;
	 * a new query near a blob lands in that blob's region. */
	int nl[1];
	float *fresh = blobs(nl, 1, K, D, 21); /* same centres, new noise */
	uint32_t c;
	CHECK(rv_rbank_assign(&c, NULL, a, fresh) == RV_OK);
	CHECK((int)c == map[0]);
	free(fresh);
	/* Statistics. */
	CHECK(rv_rbank_record(a, c, 1.0f) == RV_OK);
	CHECK(rv_rbank_record(a, c, 0.0f) == RV_OK);
	CHECK(rv_rbank_record_gain(a, c, RV_LEARNER_ADAPTER, 0.10f) == RV_OK);
	CHECK(rv_rbank_record_gain(a, c, RV_LEARNER_ADAPTER, 0.20f) == RV_OK);
	CHECK(rv_rbank_record_gain(a, c, RV_LEARNER_RERANKER, 0.05f) == RV_OK);
	CHECK(rv_rbank_record_ef(a, c, 64, 0.97f, 0.95f) == RV_OK);
	CHECK(rv_rbank_record_ef(a, c, 32, 0.90f, 0.95f) == RV_OK); /* misses the target */
	CHECK(rv_rbank_record_ef(a, c, 48, 0.96f, 0.95f) == RV_OK);
	const rv_rbank_stats *s = rv_rbank_get_stats(a, c);
	CHECK(s->count == 2 && s->reward_sum == 1.0);
	CHECK(fabs(s->learner_gain[RV_LEARNER_ADAPTER] - 0.15) < 1e-6);
	CHECK(s->best_ef == 48 && fabsf(s->best_ef_recall - 0.96f) < 1e-6f);
	CHECK(rv_rbank_best_learner(a, c, 1) == RV_LEARNER_ADAPTER);
	CHECK(rv_rbank_best_learner(a, c, 2) == RV_LEARNER_ADAPTER);
	CHECK(rv_rbank_best_learner(a, c, 3) == RV_LEARNER_NONE);
	CHECK(rv_rbank_record(a, K, 1.0f) == RV_EINVAL && strstr(rv_rbank_errmsg(a), "cluster 6"));
	CHECK(rv_rbank_record_gain(a, c, (rv_learner)7, 1.0f) == RV_EINVAL);
	CHECK(rv_rbank_fit(a, x, K - 1, 10) == RV_EINVAL);
	rv_rbank_free(a);
	rv_rbank_free(b);
	free(x);
}

static rv_status rbank_load_only(const uint8_t *p, size_t n)
{
	rv_rbank *b = NULL;
	rv_err e;
	rv_status st = rv_rbank_load(&b, p, n, NULL, &e);
	rv_rbank_free(b);
	return st;
}

TEST(rbank_save_load_roundtrip_and_corruption)
{
	enum { N = 60, K = 3, D = 4 };
	int label[N];
	float *x = blobs(label, N, K, D, 4);
	rv_rbank *a, *back;
	CHECK(rv_rbank_create(&a, D, K, 9, NULL, NULL) == RV_OK);
	CHECK(rv_rbank_fit(a, x, N, 20) == RV_OK);
	CHECK(rv_rbank_record(a, 1, 0.5f) == RV_OK);
	CHECK(rv_rbank_record_gain(a, 2, RV_LEARNER_RERANKER, 0.3f) == RV_OK);
	CHECK(rv_rbank_record_ef(a, 0, 40, 0.99f, 0.9f) == RV_OK);
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_rbank_save(&b, a) == RV_OK);
	rv_err e;
	CHECK(rv_rbank_load(&back, b.data, b.len, NULL, &e) == RV_OK);
	CHECK(memcmp(rv_rbank_centroids(a), rv_rbank_centroids(back), sizeof(float) * K * D) == 0);
	for (uint32_t j = 0; j < K; j++)
		CHECK(memcmp(rv_rbank_get_stats(a, j), rv_rbank_get_stats(back, j), sizeof(rv_rbank_stats)) == 0);
	for (size_t i = 0; i < N; i++) {
		uint32_t c1, c2;
		CHECK(rv_rbank_assign(&c1, NULL, a, x + i * D) == RV_OK);
		CHECK(rv_rbank_assign(&c2, NULL, back, x + i * D) == RV_OK);
		CHECK(c1 == c2);
	}
	rv_rbank_free(back);
	CHECK(corrupt_sweep(b.data, b.len, rbank_load_only) == 0);
	bump_version(b.data, b.len);
	CHECK(rbank_load_only(b.data, b.len) == RV_EVERSION);
	rv_buf_free(&b);
	/* An unfitted bank round-trips too. */
	rv_rbank *u, *u2;
	CHECK(rv_rbank_create(&u, D, K, 1, NULL, NULL) == RV_OK);
	rv_buf_init(&b, NULL);
	CHECK(rv_rbank_save(&b, u) == RV_OK);
	CHECK(rv_rbank_load(&u2, b.data, b.len, NULL, &e) == RV_OK);
	CHECK(!rv_rbank_fitted(u2));
	rv_rbank_free(u2);
	rv_rbank_free(u);
	rv_buf_free(&b);
	rv_rbank_free(a);
	free(x);
}

TEST(rbank_allocation_failures)
{
	enum { N = 40, K = 4, D = 4 };
	int label[N];
	float *x = blobs(label, N, K, D, 6);
	rv_test_alloc ta;
	rv_test_alloc_init(&ta);
	rv_rbank *b = NULL;
	for (long n = 1;; n++) {
		ta.fail_at = n;
		rv_err e;
		rv_status st = rv_rbank_create(&b, D, K, 1, &ta.hooks, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM && ta.live == 0);
	}
	/* A failed fit leaves the bank as it was: first unfitted, then with
	 * its previous centroids. */
	for (int round = 0; round < 2; round++) {
		float before[K * D];
		if (round == 1)
			memcpy(before, rv_rbank_centroids(b), sizeof before);
		long live = ta.live;
		for (long n = 1;; n++) {
			ta.fail_at = n;
			rv_status st = rv_rbank_fit(b, x + round, N - 1, 10);
			ta.fail_at = 0;
			if (st == RV_OK)
				break;
			CHECK(st == RV_ENOMEM && ta.live == live);
			if (round == 0)
				CHECK(!rv_rbank_fitted(b));
			else
				CHECK(memcmp(before, rv_rbank_centroids(b), sizeof before) == 0);
		}
	}
	rv_rbank_free(b);
	CHECK(ta.live == 0);
	free(x);
}

/* ------------------------------------------------------------------------
 * GNN re-ranker
 * ---------------------------------------------------------------------- */

/* A random graph: n nodes, the first ncand candidates, each node with up
 * to maxdeg distinct random neighbours (some with none). Arrays malloc'd
 * into *g; free with graph_free. */
typedef struct test_graph {
	rv_gnn_graph g;
	float *x, *base;
	uint32_t *off, *nbrs, *items;
} test_graph;

static void graph_make(test_graph *t, size_t n, size_t ncand, size_t d, size_t maxdeg, uint32_t item0, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	t->x = malloc(sizeof(float) * n * d);
	t->base = malloc(sizeof(float) * n);
	t->off = malloc(sizeof(uint32_t) * (n + 1));
	t->nbrs = malloc(sizeof(uint32_t) * n * maxdeg + 1);
	t->items = malloc(sizeof(uint32_t) * n);
	gauss_fill(t->x, n * d, 1.0f, &r);
	gauss_fill(t->base, n, 0.3f, &r);
	t->off[0] = 0;
	for (size_t v = 0; v < n; v++) {
		size_t deg = v % 5 == 4 ? 0 : 1 + (size_t)rv_rng_below(&r, maxdeg);
		size_t have = 0;
		while (have < deg) {
			uint32_t u = (uint32_t)rv_rng_below(&r, n);
			bool dup = u == v;
			for (size_t j = 0; j < have; j++)
				dup |= t->nbrs[t->off[v] + j] == u;
			if (dup && n <= deg + 1)
				break;
			if (!dup)
				t->nbrs[t->off[v] + have++] = u;
		}
		t->off[v + 1] = t->off[v] + (uint32_t)have;
		t->items[v] = v == 1 ? RV_GNN_NO_ITEM : item0 + (uint32_t)v;
	}
	t->g = (rv_gnn_graph){ n, ncand, t->x, t->off, t->nbrs, t->items, t->base };
}

static void graph_free(test_graph *t)
{
	free(t->x);
	free(t->base);
	free(t->off);
	free(t->nbrs);
	free(t->items);
}

/* Max relative error of every weight and prior gradient against central
 * differences; *nonzero counts gradients that are clearly not zero. */
static double gnn_fd_max_err(rv_gnn *m, const rv_gnn_graph *g, const float *q, const rv_gnn_pair *p, size_t np,
			     size_t *nonzero, size_t *checked)
{
	double loss, worst = 0;
	if (rv_gnn_loss_grad(&loss, m, g, q, p, np, true) != RV_OK)
		return 1e9;
	size_t n, npr;
	float *th = rv_gnn_params(m, &n);
	float *pr = rv_gnn_priors(m, &npr);
	double *ga = malloc(sizeof(double) * (n + npr));
	memcpy(ga, rv_gnn_grad(m), sizeof(double) * n);
	memcpy(ga + n, rv_gnn_prior_grad(m), sizeof(double) * npr);
	*nonzero = *checked = 0;
	for (size_t i = 0; i < n + npr; i++) {
		float *t;
		if (i < n) {
			t = &th[i];
		} else {
			/* Only priors of this graph's candidates have a gradient. */
			uint32_t item = (uint32_t)(i - n);
			bool used = false;
			for (size_t v = 0; v < g->ncand; v++)
				used |= g->items[v] == item;
			if (!used)
				continue;
			t = &pr[i - n];
		}
		float keep = *t;
		double best = 1e9;
		/* Two step sizes: a ReLU kink inside one step spoils only that one. */
		for (int k = 0; k < 2; k++) {
			double h = (k == 0 ? 1e-3 : 1e-4) * (fabs(keep) > 1 ? fabs(keep) : 1), lp, lm;
			*t = (float)(keep + h);
			double tp = *t;
			rv_gnn_loss_grad(&lp, m, g, q, p, np, false);
			*t = (float)(keep - h);
			double tm = *t;
			rv_gnn_loss_grad(&lm, m, g, q, p, np, false);
			*t = keep;
			double e = rel_err(ga[i], (lp - lm) / (tp - tm));
			if (e < best)
				best = e;
		}
		if (best > worst)
			worst = best;
		*nonzero += fabs(ga[i]) > 1e-7;
		(*checked)++;
	}
	free(ga);
	return worst;
}

static void gnn_gradcheck_head(const rv_gnn_layer_type *types, const uint32_t *outs, const uint32_t *heads,
			       uint32_t nl, unsigned head, const char *what)
{
	enum { D = 6, N = 14, NC = 6 };
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = D;
	o.layers = nl;
	/* With l2 > 0 every gradient is nonzero through the regulariser alone;
	 * the deeper stacks run without it so "nonzero" counts data gradients. */
	o.l2 = nl == 1 ? 0.01f : 0.0f;
	o.leaky = 0.2f;
	o.head = head;
	for (uint32_t l = 0; l < nl; l++) {
		o.type[l] = types[l];
		o.out_dim[l] = outs[l];
		o.heads[l] = heads[l];
	}
	rv_gnn *m;
	rv_err e;
	CHECK_MSG(rv_gnn_create(&m, &o, NULL, &e) == RV_OK, "%s", e.msg);
	rv_rng r;
	rv_rng_seed(&r, 31);
	size_t np;
	float *th = rv_gnn_params(m, &np);
	/* Random everything (W_q too, which starts at zero), positive biases
	 * so fewer units sit dead at ReLU's kink. */
	for (size_t i = 0; i < np; i++)
		th[i] = rv_rng_gauss(&r) * 0.5f + (th[i] == 0 ? 0.05f : 0);
	test_graph tg;
	graph_make(&tg, N, NC, D, 4, 3, 17);
	float q[D];
	gauss_fill(q, D, 1.0f, &r);
	rv_gnn_pair pairs[] = { { 0, 1, 1.0f }, { 2, 0, 2.5f }, { 3, 5, 0.7f }, { 4, 2, 1.0f }, { 5, 0, 1.3f } };
	/* Give priors nonzero values so their l2 term is exercised. */
	double loss;
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, pairs, 5, false) == RV_OK);
	size_t npr;
	float *pr = rv_gnn_priors(m, &npr);
	CHECK(npr >= 3 + NC);
	for (size_t i = 0; i < npr; i++)
		pr[i] = rv_rng_gauss(&r) * 0.3f;
	size_t nonzero = 0, checked = 0;
	double worst = gnn_fd_max_err(m, &tg.g, q, pairs, 5, &nonzero, &checked);
	fprintf(stderr, "   %s: %zu gradients checked, %zu nonzero, max relative error %.2e\n", what, checked, nonzero,
		worst);
	graph_free(&tg);
	rv_gnn_free(m);
	CHECK_MSG(worst < 1e-3, "%s: max relative error %g", what, worst);
	CHECK_MSG(nonzero > checked / 2, "%s: only %zu of %zu gradients nonzero", what, nonzero, checked);
}

static void gnn_gradcheck(const rv_gnn_layer_type *types, const uint32_t *outs, const uint32_t *heads, uint32_t nl,
			  const char *what)
{
	gnn_gradcheck_head(types, outs, heads, nl, 0, what);
}

TEST(gnn_gradcheck_gcn)
{
	rv_gnn_layer_type t[] = { RV_GNN_LAYER_GCN, RV_GNN_LAYER_GCN };
	uint32_t out[] = { 5, 4 }, h[] = { 1, 1 };
	gnn_gradcheck(t, out, h, 1, "GCN, 1 layer");
	gnn_gradcheck(t, out, h, 2, "GCN, 2 layers");
}

TEST(gnn_gradcheck_gat_multihead)
{
	rv_gnn_layer_type t[] = { RV_GNN_LAYER_GAT, RV_GNN_LAYER_GAT };
	uint32_t out[] = { 6, 4 }, h[] = { 3, 2 };
	gnn_gradcheck(t, out, h, 1, "GAT 3 heads, 1 layer");
	gnn_gradcheck(t, out, h, 2, "GAT 3 + 2 heads, 2 layers");
}

TEST(gnn_gradcheck_sage)
{
	rv_gnn_layer_type t[] = { RV_GNN_LAYER_SAGE, RV_GNN_LAYER_SAGE };
	uint32_t out[] = { 5, 4 }, h[] = { 1, 1 };
	gnn_gradcheck(t, out, h, 1, "SAGE, 1 layer");
	gnn_gradcheck(t, out, h, 2, "SAGE, 2 layers");
}

TEST(gnn_gradcheck_mixed_stack)
{
	rv_gnn_layer_type t[] = { RV_GNN_LAYER_GAT, RV_GNN_LAYER_SAGE, RV_GNN_LAYER_GCN };
	uint32_t out[] = { 8, 5, 4 }, h[] = { 4, 1, 1 };
	gnn_gradcheck(t, out, h, 3, "GAT(4 heads) -> SAGE -> GCN");
}

/* The optional head terms (bias u, base weight beta), alone and together,
 * on each layer type and a stack; beta's l2 pulls towards 1, which the
 * random start (not 1) exercises. */
TEST(gnn_gradcheck_head_terms)
{
	static const rv_gnn_layer_type t[3][2] = { { RV_GNN_LAYER_GCN, RV_GNN_LAYER_GCN },
						   { RV_GNN_LAYER_GAT, RV_GNN_LAYER_SAGE },
						   { RV_GNN_LAYER_SAGE, RV_GNN_LAYER_GAT } };
	static const char *names[3][3] = { { "GCN + u", "GCN + beta", "GCN + u + beta" },
					   { "GAT + u", "GAT + beta", "GAT + u + beta" },
					   { "SAGE + u", "SAGE + beta", "SAGE + u + beta" } };
	uint32_t out[] = { 6, 4 }, h[] = { 3, 2 };
	for (int k = 0; k < 3; k++)
		for (unsigned head = 1; head <= 3; head++) {
			int before = rv_test_failures;
			gnn_gradcheck_head(t[k], out, h, 1, head, names[k][head - 1]);
			if (rv_test_failures != before)
				return;
		}
	gnn_gradcheck_head(t[1], out, h, 2, RV_GNN_HEAD_BIAS | RV_GNN_HEAD_BASE, "GAT -> SAGE + u + beta");
}

/* EWC++ anchor: the gradient with the Fisher-weighted pull towards the
 * anchor (weights and priors, items past the anchor's table included)
 * against finite differences; rv_gnn_data_grad is that gradient less the
 * regulariser's; a heavy anchor holds the weights where a light one lets
 * them go. */
TEST(gnn_gradcheck_anchor)
{
	enum { D = 6, N = 14, NC = 6 };
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = D;
	o.out_dim[0] = 5;
	o.l2 = 0.01f;
	o.head = RV_GNN_HEAD_BIAS;
	rv_gnn *m;
	rv_err e;
	CHECK_MSG(rv_gnn_create(&m, &o, NULL, &e) == RV_OK, "%s", e.msg);
	rv_rng r;
	rv_rng_seed(&r, 41);
	size_t np, npr;
	float *th = rv_gnn_params(m, &np);
	for (size_t i = 0; i < np; i++)
		th[i] = rv_rng_gauss(&r) * 0.5f + 0.05f;
	test_graph tg;
	graph_make(&tg, N, NC, D, 4, 3, 23);
	float q[D];
	gauss_fill(q, D, 1.0f, &r);
	rv_gnn_pair pairs[] = { { 0, 1, 1.0f }, { 2, 0, 2.5f }, { 3, 5, 0.7f }, { 4, 2, 1.0f } };
	double loss;
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, pairs, 4, false) == RV_OK);
	float *pr = rv_gnn_priors(m, &npr);
	for (size_t i = 0; i < npr; i++)
		pr[i] = rv_rng_gauss(&r) * 0.3f;
	float *fis = malloc(sizeof(float) * np), *star = malloc(sizeof(float) * np);
	float pstar[64], pfis[64];
	size_t na = npr > 4 ? npr - 4 : npr; /* the last items have no anchor */
	CHECK(na <= 64);
	for (size_t i = 0; i < np; i++)
		fis[i] = fabsf(rv_rng_gauss(&r));
	for (size_t i = 0; i < na; i++) {
		pstar[i] = rv_rng_gauss(&r) * 0.3f;
		pfis[i] = fabsf(rv_rng_gauss(&r));
	}
	const float lambda = 3.0f;
	CHECK_MSG(rv_gnn_set_anchor(m, lambda, fis, pstar, pfis, na) == RV_OK, "%s", rv_gnn_errmsg(m));
	memcpy(star, th, sizeof(float) * np);
	for (size_t i = 0; i < np; i++)
		th[i] += rv_rng_gauss(&r) * 0.2f;
	size_t nonzero = 0, checked = 0;
	double worst = gnn_fd_max_err(m, &tg.g, q, pairs, 4, &nonzero, &checked);
	fprintf(stderr, "   anchored SAGE: %zu gradients checked, max relative error %.2e\n", checked, worst);
	CHECK_MSG(worst < 1e-3, "max relative error %g", worst);
	/* Data gradient = full gradient - (l2 + lambda F)(theta - theta*). */
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, pairs, 4, true) == RV_OK);
	double *full = malloc(sizeof(double) * np);
	memcpy(full, rv_gnn_grad(m), sizeof(double) * np);
	double dl;
	CHECK(rv_gnn_data_grad(&dl, m, &tg.g, q, pairs, 4) == RV_OK);
	CHECK(dl < loss);
	double derr = 0;
	for (size_t i = 0; i < np; i++) {
		double reg = ((double)o.l2 + lambda * (double)fis[i]) * ((double)th[i] - star[i]);
		double d = fabs(full[i] - reg - rv_gnn_grad(m)[i]);
		derr = d > derr ? d : derr;
	}
	CHECK_MSG(derr < 1e-9, "data gradient off by %g", derr);
	/* Bad anchors are refused. */
	fis[3] = -1.0f;
	CHECK(rv_gnn_set_anchor(m, lambda, fis, pstar, pfis, na) == RV_EINVAL);
	CHECK(rv_gnn_set_anchor(m, NAN, fis, pstar, pfis, na) == RV_EINVAL);
	CHECK(rv_gnn_set_anchor(m, 1.0f, NULL, NULL, NULL, 0) == RV_EINVAL);
	fis[3] = 1.0f;
	/* Held: 300 steps from the anchor under a heavy one and a light one. */
	double drift[2];
	for (int k = 0; k < 2; k++) {
		memcpy(th, star, sizeof(float) * np);
		for (size_t i = 0; i < np; i++)
			fis[i] = 1.0f;
		CHECK(rv_gnn_set_anchor(m, k == 0 ? 1000.0f : 0.0f, fis, pstar, pfis, na) == RV_OK);
		for (int it = 0; it < 300; it++)
			CHECK(rv_gnn_step(NULL, m, &tg.g, q, pairs, 4) == RV_OK);
		drift[k] = 0;
		for (size_t i = 0; i < np; i++)
			drift[k] += ((double)th[i] - star[i]) * ((double)th[i] - star[i]);
		drift[k] = sqrt(drift[k]);
	}
	fprintf(stderr, "   drift from the anchor after 300 steps: %.4f anchored (lambda 1000), %.4f free\n", drift[0],
		drift[1]);
	CHECK_MSG(drift[0] < 0.2 * drift[1], "anchored drift %g, free %g", drift[0], drift[1]);
	free(full);
	free(fis);
	free(star);
	graph_free(&tg);
	rv_gnn_free(m);
}

/* The serving path (one node, float, no workspace) against the reference
 * forward pass: representations, attention, the head vector; explain
 * weights sum to 1 (GAT) or in absolute value to 1 (GCN, SAGE). */
TEST(gnn_node_path_matches_forward)
{
	enum { D = 24, N = 30, NC = 10 };
	const rv_gnn_layer_type types[3] = { RV_GNN_LAYER_GCN, RV_GNN_LAYER_GAT, RV_GNN_LAYER_SAGE };
	for (int k = 0; k < 3; k++) {
		rv_gnn_opts o = RV_GNN_OPTS_INIT;
		o.in_dim = D;
		o.type[0] = types[k];
		o.out_dim[0] = 12;
		o.heads[0] = types[k] == RV_GNN_LAYER_GAT ? 3 : 1;
		o.head = RV_GNN_HEAD_BIAS | RV_GNN_HEAD_BASE;
		rv_gnn *m;
		CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
		rv_rng r;
		rv_rng_seed(&r, 40 + (uint64_t)k);
		size_t np;
		float *th = rv_gnn_params(m, &np);
		for (size_t i = 0; i < np; i++)
			th[i] = rv_rng_gauss(&r) * 0.4f + 0.05f;
		test_graph tg;
		graph_make(&tg, N, NC, D, 6, 0, 77 + (uint64_t)k);
		float q[D], href[NC * 12], hn[12], w[12], attn[7 * 3], aref[7 * 3], ex[7];
		gauss_fill(q, D, 1.0f, &r);
		CHECK(rv_gnn_embed(href, m, &tg.g) == RV_OK);
		float scores[NC], s2[NC];
		CHECK(rv_gnn_score(scores, m, &tg.g, q) == RV_OK);
		CHECK(rv_gnn_score_embedded(s2, m, href, NC, tg.items, tg.base, q) == RV_OK);
		rv_gnn_head_vector(w, m, q);
		float *work = malloc(sizeof(float) * rv_gnn_node_work(m, 6));
		double worst = 0, worst_s = 0, worst_a = 0, worst_ex = 0;
		for (size_t v = 0; v < NC; v++) {
			size_t deg = tg.off[v + 1] - tg.off[v];
			const float *nb[6];
			for (size_t j = 0; j < deg; j++)
				nb[j] = tg.x + (size_t)tg.nbrs[tg.off[v] + j] * D;
			CHECK(rv_gnn_embed_node(hn, attn, m, tg.x + v * D, nb, deg, work) == RV_OK);
			double s = rv_gnn_base_weight(m) * tg.base[v];
			for (size_t i = 0; i < 12; i++) {
				worst = fmax(worst, fabs(hn[i] - href[v * 12 + i]));
				s += (double)w[i] * hn[i];
			}
			size_t npr;
			float *pr = rv_gnn_priors(m, &npr);
			if (tg.items[v] < npr)
				s += pr[tg.items[v]];
			worst_s = fmax(worst_s, fmax(fabs(s - scores[v]), fabs(s2[v] - scores[v])));
			if (types[k] == RV_GNN_LAYER_GAT) {
				size_t na;
				CHECK(rv_gnn_attention(aref, 7 * 3, &na, m, 0, (uint32_t)v) == RV_OK);
				CHECK(na == (deg + 1) * 3);
				for (size_t i = 0; i < na; i++)
					worst_a = fmax(worst_a, fabs(aref[i] - attn[i]));
			}
			CHECK(rv_gnn_explain_node(ex, m, q, tg.x + v * D, nb, deg, work) == RV_OK);
			double sum = 0, sabs = 0;
			for (size_t j = 0; j <= deg; j++) {
				sum += ex[j];
				sabs += fabs(ex[j]);
			}
			double target = types[k] == RV_GNN_LAYER_GAT ? sum : sabs;
			if (sabs > 0)
				worst_ex = fmax(worst_ex, fabs(target - 1));
		}
		free(work);
		graph_free(&tg);
		rv_gnn_free(m);
		CHECK_MSG(worst < 1e-4, "type %d: representation differs by %g", k, worst);
		CHECK_MSG(worst_s < 1e-3, "type %d: score differs by %g", k, worst_s);
		CHECK_MSG(worst_a < 1e-5, "type %d: attention differs by %g", k, worst_a);
		CHECK_MSG(worst_ex < 1e-5, "type %d: explain weights off by %g", k, worst_ex);
	}
}

/* Head terms survive save/load (format version 2); a model without them
 * still saves as version 1. Every flipped byte of a version-2 blob is
 * rejected. */
TEST(gnn_head_terms_save_load)
{
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = 5;
	o.out_dim[0] = 4;
	rv_gnn *m, *m2;
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	CHECK(rv_gnn_save(&b, m) == RV_OK);
	CHECK(b.len > 6 && b.data[4] == 1 && b.data[5] == 0);
	rv_gnn_free(m);
	b.len = 0;
	o.head = RV_GNN_HEAD_BIAS | RV_GNN_HEAD_BASE;
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	size_t np;
	float *th = rv_gnn_params(m, &np);
	CHECK(np == 4 * 10 + 4 + 4 * 5 + 4 + 1);
	CHECK(th[np - 1] == 1.0f);
	th[np - 1] = 0.75f;
	th[np - 2] = -0.5f;
	CHECK(rv_gnn_save(&b, m) == RV_OK);
	CHECK(b.data[4] == 2);
	CHECK(rv_gnn_load(&m2, b.data, b.len, NULL, NULL) == RV_OK);
	size_t np2;
	float *th2 = rv_gnn_params(m2, &np2);
	CHECK(np2 == np && memcmp(th, th2, np * sizeof(float)) == 0);
	CHECK(rv_gnn_get_opts(m2)->head == o.head);
	CHECK(rv_gnn_base_weight(m2) == 0.75f);
	rv_gnn_free(m2);
	for (size_t i = 0; i < b.len; i++) {
		b.data[i] ^= 0x10;
		rv_err e;
		rv_status st = rv_gnn_load(&m2, b.data, b.len, NULL, &e);
		b.data[i] ^= 0x10;
		CHECK_MSG(st == RV_ECORRUPT && m2 == NULL, "flip at %zu gave %d", i, (int)st);
	}
	rv_gnn_free(m);
	rv_buf_free(&b);
}

/* With prior_lr the priors take a plain SGD step (the weights Adam):
 * prior' = prior - prior_lr * gradient, exactly; the option survives
 * save/load (format version 2 even without head terms). */
TEST(gnn_prior_sgd_step)
{
	enum { D = 6, N = 12, NC = 5 };
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = D;
	o.out_dim[0] = 4;
	o.prior_lr = 0.25f;
	rv_gnn *m;
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	size_t np;
	float *th = rv_gnn_params(m, &np);
	rv_rng r;
	rv_rng_seed(&r, 8);
	for (size_t i = 0; i < np; i++)
		th[i] = rv_rng_gauss(&r) * 0.3f;
	test_graph tg;
	graph_make(&tg, N, NC, D, 3, 0, 5);
	float q[D];
	gauss_fill(q, D, 1.0f, &r);
	rv_gnn_pair pairs[] = { { 0, 2, 1.0f }, { 3, 4, 2.0f } };
	double loss;
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, pairs, 2, true) == RV_OK);
	size_t npr;
	float before[NC];
	double g[NC];
	float *pr = rv_gnn_priors(m, &npr);
	for (size_t v = 0; v < NC; v++) {
		uint32_t it = tg.items[v];
		before[v] = it < npr ? pr[it] : 0;
		g[v] = it < npr ? rv_gnn_prior_grad(m)[it] : 0;
	}
	CHECK(rv_gnn_step(NULL, m, &tg.g, q, pairs, 2) == RV_OK);
	pr = rv_gnn_priors(m, &npr);
	/* Plain SGD on the pair term, the l2 part implicit (proximal):
	 * p' = (p - lr (g - k p)) / (1 + lr k), k = l2 times the candidates
	 * naming the item. */
	bool exact = true;
	for (size_t v = 0; v < NC; v++) {
		uint32_t it = tg.items[v];
		if (it >= npr)
			continue;
		size_t cnt = 0;
		for (size_t u = 0; u < NC; u++)
			cnt += tg.items[u] == it;
		double k = (double)cnt * o.l2, lr = 0.25;
		double want = ((double)before[v] - lr * (g[v] - k * before[v])) / (1.0 + lr * k);
		exact &= fabs(pr[it] - want) <= 1e-6 * (1.0 + fabs(want));
		/* and it is not the explicit step's value when l2 acts */
		exact &= before[v] == 0 || fabs(want - (before[v] - lr * g[v])) > 0 || k == 0;
	}
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_gnn_save(&b, m) == RV_OK);
	CHECK(b.data[4] == 2);
	rv_gnn *m2;
	CHECK(rv_gnn_load(&m2, b.data, b.len, NULL, NULL) == RV_OK);
	CHECK(rv_gnn_get_opts(m2)->prior_lr == 0.25f && rv_gnn_get_opts(m2)->head == 0);
	rv_gnn_free(m2);
	rv_buf_free(&b);
	graph_free(&tg);
	rv_gnn_free(m);
	CHECK(exact);
}

TEST(gnn_identity_at_init_and_attention)
{
	enum { D = 8, N = 20, NC = 8 };
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = D;
	o.layers = 2;
	o.type[0] = RV_GNN_LAYER_GAT;
	o.out_dim[0] = 8;
	o.heads[0] = 2;
	o.type[1] = RV_GNN_LAYER_GAT;
	o.out_dim[1] = 6;
	o.heads[1] = 3;
	rv_gnn *m;
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	test_graph tg;
	graph_make(&tg, N, NC, D, 5, 0, 9);
	float q[D], s[NC];
	rv_rng r;
	rv_rng_seed(&r, 2);
	gauss_fill(q, D, 1.0f, &r);
	float w[64];
	size_t n;
	CHECK(rv_gnn_attention(w, 64, &n, m, 0, 0) == RV_EINVAL); /* no forward yet */
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_OK);
	/* W_q = 0 and no priors: the untrained model keeps the base scores. */
	for (size_t v = 0; v < NC; v++)
		CHECK(s[v] == tg.base[v]);
	/* Attention: one weight per (self + neighbour) and head, each head a
	 * distribution. */
	for (uint32_t v = 0; v < NC; v++) {
		size_t deg = tg.off[v + 1] - tg.off[v];
		CHECK(rv_gnn_attention(w, 64, &n, m, 1, v) == RV_OK);
		CHECK(n == (deg + 1) * 3);
		for (size_t k = 0; k < 3; k++) {
			double sum = 0;
			for (size_t j = 0; j <= deg; j++) {
				CHECK(w[j * 3 + k] > 0);
				sum += w[j * 3 + k];
			}
			CHECK(fabs(sum - 1) < 1e-5);
		}
		if (deg == 0)
			CHECK(w[0] == 1.0f);
	}
	CHECK(rv_gnn_attention(w, 1, &n, m, 1, 0) == RV_EBUFS && n > 1);
	CHECK(rv_gnn_attention(w, 64, &n, m, 1, NC) == RV_EINVAL); /* not a candidate of the last layer */
	/* A node one hop from a candidate has layer-0 attention. */
	CHECK(rv_gnn_attention(w, 64, &n, m, 0, tg.nbrs[tg.off[0]]) == RV_OK);
	/* Moving a neighbour's features changes the candidate's score once the
	 * head is trained away from zero, and its attention shifts. */
	size_t np;
	float *th = rv_gnn_params(m, &np);
	for (size_t i = np - 6 * D; i < np; i++)
		th[i] = rv_rng_gauss(&r);
	uint32_t v0 = 0;
	while (tg.off[v0 + 1] == tg.off[v0])
		v0++;
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_OK);
	float before = s[v0], att_before[64];
	CHECK(rv_gnn_attention(att_before, 64, &n, m, 1, v0) == RV_OK);
	uint32_t u = tg.nbrs[tg.off[v0]];
	for (size_t i = 0; i < D; i++)
		tg.x[(size_t)u * D + i] += 2.0f;
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_OK);
	CHECK(rv_gnn_attention(w, 64, &n, m, 1, v0) == RV_OK);
	CHECK(s[v0] != before);
	CHECK(memcmp(w, att_before, n * sizeof(float)) != 0);
	graph_free(&tg);
	rv_gnn_free(m);
}

/* GraphSAGE learns that items are good when their neighbourhood lies
 * along a secret direction, and applies it to graphs of items never seen
 * in training (no priors, new features). */
enum { GD = 16, GC = 20, GX = 60, GDEG = 4 };

/* Candidates 0..GC-1 each with GDEG context neighbours; utility of v =
 * base_v + <w, mean of its neighbours' features>. */
static void sage_world(test_graph *t, double *util, const float *w, uint32_t item0, rv_rng *r)
{
	size_t n = GC + GX;
	t->x = malloc(sizeof(float) * n * GD);
	t->base = malloc(sizeof(float) * n);
	t->off = malloc(sizeof(uint32_t) * (n + 1));
	t->nbrs = malloc(sizeof(uint32_t) * GC * GDEG);
	t->items = malloc(sizeof(uint32_t) * n);
	gauss_fill(t->x, n * GD, 1.0f, r);
	gauss_fill(t->base, n, 0.5f, r);
	t->off[0] = 0;
	for (size_t v = 0; v < n; v++) {
		size_t deg = v < GC ? GDEG : 0;
		for (size_t j = 0; j < deg; j++)
			t->nbrs[t->off[v] + j] = (uint32_t)(GC + rv_rng_below(r, GX));
		t->off[v + 1] = t->off[v] + (uint32_t)deg;
		t->items[v] = item0 + (uint32_t)v;
	}
	for (size_t v = 0; v < GC; v++) {
		double s = 0;
		for (size_t j = 0; j < GDEG; j++)
			s += dotd(w, t->x + (size_t)t->nbrs[t->off[v] + j] * GD, GD);
		util[v] = t->base[v] + s / GDEG;
	}
	t->g = (rv_gnn_graph){ n, GC, t->x, t->off, t->nbrs, t->items, t->base };
}

/* NDCG@5 of ranking by s against graded gains util (shifted positive). */
static double ndcg5(const float *s, const double *util)
{
	int rank[GC], ideal[GC];
	for (int i = 0; i < GC; i++)
		rank[i] = ideal[i] = i;
	for (int i = 0; i < GC; i++)
		for (int j = i + 1; j < GC; j++) {
			if (s[rank[j]] > s[rank[i]]) {
				int t = rank[i];
				rank[i] = rank[j];
				rank[j] = t;
			}
			if (util[ideal[j]] > util[ideal[i]]) {
				int t = ideal[i];
				ideal[i] = ideal[j];
				ideal[j] = t;
			}
		}
	double lo = util[ideal[GC - 1]], dcg = 0, idcg = 0;
	for (int i = 0; i < 5; i++) {
		dcg += (util[rank[i]] - lo) / log2(i + 2.0);
		idcg += (util[ideal[i]] - lo) / log2(i + 2.0);
	}
	return dcg / idcg;
}

TEST(gnn_sage_learns_and_generalises_to_unseen_items)
{
	rv_rng r;
	rv_rng_seed(&r, 404);
	float w[GD], mu[GD];
	gauss_fill(w, GD, 1.0f, &r);
	normalise(w, GD);
	for (size_t i = 0; i < GD; i++)
		w[i] *= 1.5f;
	gauss_fill(mu, GD, 1.0f, &r);
	normalise(mu, GD);
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = GD;
	o.layers = 1;
	o.type[0] = RV_GNN_LAYER_SAGE;
	o.out_dim[0] = 16;
	o.lr = 0.01f;
	rv_gnn *m;
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	double first = 0, last = 0;
	for (int it = 0; it < 300; it++) {
		test_graph tg;
		double util[GC];
		sage_world(&tg, util, w, (uint32_t)(it * (GC + GX)), &r);
		float q[GD];
		for (size_t i = 0; i < GD; i++)
			q[i] = mu[i] + 0.1f * rv_rng_gauss(&r);
		rv_gnn_pair pairs[12];
		for (int k = 0; k < 12; k++) {
			uint32_t a = (uint32_t)rv_rng_below(&r, GC), b = (uint32_t)rv_rng_below(&r, GC);
			if (util[a] < util[b]) {
				uint32_t t = a;
				a = b;
				b = t;
			}
			pairs[k] = (rv_gnn_pair){ a, b, 1.0f };
		}
		double loss;
		CHECK(rv_gnn_step(&loss, m, &tg.g, q, pairs, 12) == RV_OK);
		if (it < 30)
			first += loss / 30;
		if (it >= 270)
			last += loss / 30;
		graph_free(&tg);
	}
	/* Held out: fresh graphs, fresh features, item ids past the prior table. */
	double base_ndcg = 0, learned = 0;
	size_t seen_items = rv_gnn_prior_count(m);
	for (int it = 0; it < 100; it++) {
		test_graph tg;
		double util[GC];
		sage_world(&tg, util, w, (uint32_t)(seen_items + (size_t)it * (GC + GX)), &r);
		float q[GD], s[GC];
		for (size_t i = 0; i < GD; i++)
			q[i] = mu[i] + 0.1f * rv_rng_gauss(&r);
		CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_OK);
		base_ndcg += ndcg5(tg.base, util) / 100;
		learned += ndcg5(s, util) / 100;
		graph_free(&tg);
	}
	fprintf(stderr, "   SAGE training loss %.4f -> %.4f; held-out graphs of unseen items: NDCG@5 base %.4f, "
		"learned %.4f (%+.1f%%)\n", first, last, base_ndcg, learned, 100 * (learned / base_ndcg - 1));
	rv_gnn_free(m);
	CHECK(last < 0.8 * first);
	CHECK_MSG(learned > 1.1 * base_ndcg, "learned %.4f vs base %.4f", learned, base_ndcg);
}

static rv_status gnn_load_only(const uint8_t *p, size_t n)
{
	rv_gnn *m = NULL;
	rv_err e;
	rv_status st = rv_gnn_load(&m, p, n, NULL, &e);
	rv_gnn_free(m);
	return st;
}

static rv_gnn_opts small_stack(void)
{
	rv_gnn_opts o = RV_GNN_OPTS_INIT;
	o.in_dim = 5;
	o.layers = 2;
	o.type[0] = RV_GNN_LAYER_GAT;
	o.out_dim[0] = 4;
	o.heads[0] = 2;
	o.type[1] = RV_GNN_LAYER_SAGE;
	o.out_dim[1] = 3;
	return o;
}

TEST(gnn_save_load_roundtrip_and_corruption)
{
	rv_gnn_opts o = small_stack();
	rv_gnn *m, *back;
	CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
	test_graph tg;
	graph_make(&tg, 9, 4, 5, 3, 2, 5);
	float q[5] = { 0.5f, -1, 0.25f, 1, 0 };
	rv_gnn_pair p[] = { { 0, 1, 1.0f }, { 2, 3, 2.0f } };
	for (int s = 0; s < 4; s++)
		CHECK(rv_gnn_step(NULL, m, &tg.g, q, p, 2) == RV_OK);
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_gnn_save(&b, m) == RV_OK);
	rv_err e;
	CHECK(rv_gnn_load(&back, b.data, b.len, NULL, &e) == RV_OK);
	CHECK(rv_gnn_param_count(back) == rv_gnn_param_count(m));
	CHECK(memcmp(rv_gnn_params(m, NULL), rv_gnn_params(back, NULL), rv_gnn_param_count(m) * sizeof(float)) == 0);
	CHECK(rv_gnn_prior_count(back) == rv_gnn_prior_count(m));
	CHECK(rv_gnn_steps(back) == 4);
	/* Same scores now and after one more identical step each. */
	float s1[4], s2[4];
	CHECK(rv_gnn_step(NULL, m, &tg.g, q, p, 2) == RV_OK && rv_gnn_step(NULL, back, &tg.g, q, p, 2) == RV_OK);
	CHECK(rv_gnn_score(s1, m, &tg.g, q) == RV_OK && rv_gnn_score(s2, back, &tg.g, q) == RV_OK);
	CHECK(memcmp(s1, s2, sizeof s1) == 0);
	rv_gnn_free(back);
	CHECK(corrupt_sweep(b.data, b.len, gnn_load_only) == 0);
	bump_version(b.data, b.len);
	CHECK(gnn_load_only(b.data, b.len) == RV_EVERSION);
	rv_buf_free(&b);
	graph_free(&tg);
	rv_gnn_free(m);
}

TEST(gnn_rejects_bad_input)
{
	rv_gnn_opts o = small_stack();
	rv_gnn *m = NULL;
	rv_err e;
	o.heads[0] = 3; /* does not divide out_dim 4 */
	CHECK(rv_gnn_create(&m, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "3 heads"));
	o = small_stack();
	o.type[1] = (rv_gnn_layer_type)9;
	CHECK(rv_gnn_create(&m, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "type 9"));
	o = small_stack();
	o.layers = 5;
	CHECK(rv_gnn_create(&m, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "layers 5"));
	CHECK(rv_gnn_create(&m, NULL, NULL, &e) == RV_EINVAL);
	o = small_stack();
	CHECK(rv_gnn_create(&m, &o, NULL, &e) == RV_OK);
	test_graph tg;
	graph_make(&tg, 9, 4, 5, 3, 2, 5);
	float q[5] = { 1, 0, 0, 0, 0 }, s[9];
	rv_gnn_pair p = { 0, 7, 1.0f };
	double loss;
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, &p, 1, true) == RV_EINVAL); /* 7 is not a candidate */
	CHECK(strstr(rv_gnn_errmsg(m), "7") != NULL);
	p.skipped = 1;
	p.weight = -1;
	CHECK(rv_gnn_loss_grad(&loss, m, &tg.g, q, &p, 1, true) == RV_EINVAL);
	p.weight = 1;
	uint32_t keep = tg.nbrs[0];
	tg.nbrs[0] = 0; /* node 0's first neighbour is itself */
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_EINVAL && strstr(rv_gnn_errmsg(m), "neighbour 0"));
	tg.nbrs[0] = 99;
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_EINVAL);
	tg.nbrs[0] = keep;
	uint32_t keep_off = tg.off[3];
	tg.off[3] = tg.off[4] + 100; /* beyond the next offset */
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_EINVAL && strstr(rv_gnn_errmsg(m), "decrease"));
	tg.off[3] = keep_off;
	tg.x[7] = NAN;
	CHECK_MSG(rv_gnn_score(s, m, &tg.g, q) == RV_EINVAL && strstr(rv_gnn_errmsg(m), "not finite"), "%s",
		  rv_gnn_errmsg(m));
	tg.x[7] = 0;
	tg.g.ncand = 0;
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_EINVAL);
	tg.g.ncand = 4;
	CHECK(rv_gnn_score(s, m, &tg.g, q) == RV_OK);
	CHECK(gnn_load_only((const uint8_t *)"RVGN", 4) == RV_ECORRUPT);
	graph_free(&tg);
	rv_gnn_free(m);
}

TEST(gnn_allocation_failures)
{
	rv_test_alloc ta;
	rv_test_alloc_init(&ta);
	rv_gnn_opts o = small_stack();
	o.optim = RV_LEARN_ADAM;
	rv_gnn *m = NULL;
	for (long n = 1;; n++) {
		rv_err e;
		ta.fail_at = n;
		rv_status st = rv_gnn_create(&m, &o, &ta.hooks, &e);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM && m == NULL && ta.live == 0);
	}
	test_graph tg;
	graph_make(&tg, 9, 4, 5, 3, 2, 5);
	float q[5] = { 0.5f, -1, 0.25f, 1, 0 };
	rv_gnn_pair p[] = { { 0, 1, 1.0f }, { 2, 3, 2.0f } };
	/* Training allocates (workspace, prior table): each failure is
	 * RV_ENOMEM, changes no weight, and the next call works. */
	size_t np = rv_gnn_param_count(m);
	float *before = malloc(np * sizeof(float));
	memcpy(before, rv_gnn_params(m, NULL), np * sizeof(float));
	int failures = 0;
	for (long n = 1;; n++) {
		ta.fail_at = n;
		rv_status st = rv_gnn_step(NULL, m, &tg.g, q, p, 2);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM);
		CHECK(memcmp(before, rv_gnn_params(m, NULL), np * sizeof(float)) == 0);
		failures++;
	}
	CHECK(failures >= 2);
	CHECK(memcmp(before, rv_gnn_params(m, NULL), np * sizeof(float)) != 0);
	/* A bigger graph regrows the workspace; a failed regrow keeps working after. */
	test_graph big;
	graph_make(&big, 40, 20, 5, 6, 100, 6);
	ta.fail_at = 1;
	CHECK(rv_gnn_step(NULL, m, &big.g, q, p, 2) == RV_ENOMEM);
	ta.fail_at = 0;
	CHECK(rv_gnn_step(NULL, m, &big.g, q, p, 2) == RV_OK);
	/* Loading under failures. */
	rv_buf b;
	rv_buf_init(&b, NULL);
	CHECK(rv_gnn_save(&b, m) == RV_OK);
	for (long n = 1;; n++) {
		rv_gnn *back = NULL;
		rv_err e;
		long live = ta.live;
		ta.fail_at = n;
		rv_status st = rv_gnn_load(&back, b.data, b.len, &ta.hooks, &e);
		ta.fail_at = 0;
		rv_gnn_free(back);
		CHECK(ta.live == live);
		if (st == RV_OK)
			break;
		CHECK(st == RV_ENOMEM);
	}
	rv_buf_free(&b);
	free(before);
	graph_free(&tg);
	graph_free(&big);
	rv_gnn_free(m);
	CHECK(ta.live == 0);
}

/* Re-ranking cost: 100 candidates with 16 HNSW neighbours each at d = 384
 * (reported, not asserted). */
TEST(gnn_rerank_latency_100x16_d384)
{
	enum { D = 384, C = 100, K = 16, CTX = 1600 };
	size_t n = C + CTX;
	rv_rng r;
	rv_rng_seed(&r, 12);
	float *x = malloc(sizeof(float) * n * D), base[C + CTX], q[D];
	uint32_t *off = malloc(sizeof(uint32_t) * (n + 1)), *nb = malloc(sizeof(uint32_t) * C * K), items[C + CTX];
	gauss_fill(x, n * D, 0.05f, &r);
	gauss_fill(base, n, 1.0f, &r);
	gauss_fill(q, D, 0.05f, &r);
	off[0] = 0;
	for (size_t v = 0; v < n; v++) {
		size_t deg = v < C ? K : 0;
		for (size_t j = 0; j < deg; j++)
			nb[off[v] + j] = (uint32_t)(C + v * K + j) % (uint32_t)n;
		off[v + 1] = off[v] + (uint32_t)deg;
		items[v] = (uint32_t)v;
	}
	rv_gnn_graph g = { n, C, x, off, nb, items, base };
	rv_gnn_pair p[10];
	for (int i = 0; i < 10; i++)
		p[i] = (rv_gnn_pair){ (uint32_t)(i * 7 + 3), (uint32_t)i, 1.0f / (1 + i) };
	const rv_gnn_layer_type types[3] = { RV_GNN_LAYER_GCN, RV_GNN_LAYER_GAT, RV_GNN_LAYER_SAGE };
	const char *names[3] = { "GCN", "GAT (4 heads)", "SAGE" };
	for (int t = 0; t < 3; t++) {
		rv_gnn_opts o = RV_GNN_OPTS_INIT;
		o.in_dim = D;
		o.type[0] = types[t];
		o.out_dim[0] = 32;
		o.heads[0] = 4;
		rv_gnn *m;
		CHECK(rv_gnn_create(&m, &o, NULL, NULL) == RV_OK);
		float s[C];
		CHECK(rv_gnn_score(s, m, &g, q) == RV_OK); /* warm the workspace */
		int reps = 20;
		double t0 = rv_now();
		for (int i = 0; i < reps; i++)
			CHECK(rv_gnn_score(s, m, &g, q) == RV_OK);
		double fwd = (rv_now() - t0) / reps;
		double t1 = rv_now(), loss0 = 0, loss;
		for (int i = 0; i < reps; i++) {
			CHECK(rv_gnn_step(&loss, m, &g, q, p, 10) == RV_OK);
			if (i == 0)
				loss0 = loss;
		}
		double step = (rv_now() - t1) / reps;
		/* Cached representations: embed once, then only the head per query. */
		size_t ed = rv_gnn_embed_dim(m);
		float *h = malloc(sizeof(float) * C * ed), s2[C];
		CHECK(rv_gnn_embed(h, m, &g) == RV_OK);
		CHECK(rv_gnn_score(s, m, &g, q) == RV_OK);
		int hreps = 2000;
		double t2 = rv_now();
		for (int i = 0; i < hreps; i++)
			CHECK(rv_gnn_score_embedded(s2, m, h, C, items, base, q) == RV_OK);
		double head = (rv_now() - t2) / hreps;
		double worst = 0;
		for (size_t v = 0; v < C; v++)
			if (fabs(s[v] - s2[v]) > worst)
				worst = fabs(s[v] - s2[v]);
		free(h);
		fprintf(stderr, "   %s, 1 layer -> 32, %d candidates x %d neighbours, d = %d: forward %.0f us, "
			"forward + backward + step %.0f us, re-rank from cached representations %.1f us; "
			"loss %.3f -> %.3f\n", names[t], C, K, D, fwd * 1e6, step * 1e6, head * 1e6, loss0, loss);
		rv_gnn_free(m);
		CHECK(loss < loss0);
		CHECK_MSG(worst < 1e-4, "cached scores differ by %g", worst);
	}
	free(x);
	free(off);
	free(nb);
}
