/*
 * learn_sim.c - the hidden truth and the simulated users of the learning
 * benchmark.
 *
 * The truth never looks at ruvector: for every pool query it is the LB_K
 * base rows with the highest hidden relevance, found by brute force in
 * double precision. Hidden relevance is binary per (query, item) and the
 * items inside the relevant set are ranked by cosine similarity, so the
 * truth is "the nearest items the user actually wants":
 *
 *   LB_TOPIC    relevant: class(x) == m(class(q)), m a seeded permutation
 *               of the classes onto neighbouring classes
 *   LB_QUALITY  relevant: good(x), a seeded LB_GOOD_SHARE of the items
 *   LB_DEPS     relevant: x depends on / recommends q, q on x (directly),
 *               or x is in q's section
 *
 * NDCG@10 is binary against that top 10 (gain 1 for a hit that belongs to
 * it, 1/log2(rank+2) discount, divided by the ideal), recall@10 the share
 * of it retrieved.
 *
 * The user (one impression = one search of one query, top LB_K shown):
 * rank i (0-based) is examined with probability 1/(i+1)^LB_EXAMINE_POWER,
 * each independently; an examined item is judged at random with
 * probability LB_NOISE (clicked with probability LB_NOISE_CLICK), else
 * clicked exactly when it is relevant. A click is an event of reward +1; a
 * click on a relevant item converts (a second +1 event) with probability
 * LB_CONVERSION; an examined item left unclicked gets a rating of
 * LB_SKIP_REWARD with probability LB_SKIP_RATING. The random mode instead
 * gives one event per impression on a uniformly drawn shown item, its
 * reward uniform in [-1, 1]: feedback without any signal.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "learn_bench.h"

uint64_t lb_rng_next(lb_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double lb_rng_unif(lb_rng *r) { return (double)(lb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint32_t lb_rng_below(lb_rng *r, uint32_t n) { return (uint32_t)(lb_rng_unif(r) * n); }

void lb_shuffle(uint32_t *a, size_t n, lb_rng *r)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = lb_rng_below(r, (uint32_t)i);
		uint32_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

double lb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double lb_cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Four partial sums in float, added in double: fast enough for the brute
 * force and far more precise than the gaps between neighbours. */
double lb_dot(const float *a, const float *b, size_t d)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t i = 0;
	for (; i + 4 <= d; i += 4) {
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	double s = (double)s0 + s1 + s2 + s3;
	for (; i < d; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* ======================================================================
 * Topic permutation
 * ==================================================================== */

/* Randomised backtracking: class c takes one of its candidates in a
 * seeded order, each target used once. */
static int assign(int c, int n, int width, const lb_set *s, const int *avoid, int *perm, int *used, lb_rng *rng)
{
	if (c == n)
		return 1;
	uint32_t order[LB_MAX_CLASSES];
	int m = 0;
	for (int j = 0; j < width && j < n - 1; j++) {
		int t = s->class_order[c][j];
		if (!used[t] && (!avoid || avoid[c] != t))
			order[m++] = (uint32_t)t;
	}
	lb_shuffle(order, (size_t)m, rng);
	for (int j = 0; j < m; j++) {
		int t = (int)order[j];
		used[t] = 1;
		perm[c] = t;
		if (assign(c + 1, n, width, s, avoid, perm, used, rng))
			return 1;
		used[t] = 0;
	}
	return 0;
}

void lb_topic_perm(int *perm, const lb_set *s, uint64_t seed, const int *avoid)
{
	lb_rng rng = { seed };
	for (int width = LB_NEIGHBOUR_CLASSES; width < s->n_classes; width++) {
		int used[LB_MAX_CLASSES] = { 0 };
		if (assign(0, s->n_classes, width, s, avoid, perm, used, &rng))
			return;
	}
	/* Unreachable for two or more classes: a cyclic shift always fits
	 * once every other class is a candidate. */
	for (int c = 0; c < s->n_classes; c++)
		perm[c] = (c + 1) % s->n_classes;
}

/* ======================================================================
 * Relevance and truth
 * ==================================================================== */

static int in_sorted(const uint32_t *a, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == x;
}

int lb_relevant(const lb_workload *w, size_t q, uint32_t r)
{
	const lb_set *s = w->set;
	switch (s->variant) {
	case LB_TOPIC:
		return s->base_class[r] == w->perm[s->query_class[q]];
	case LB_QUALITY:
		return (w->good ? w->good : s->good)[r] != 0;
	case LB_DEPS:
		if (s->query_section[q] != UINT32_MAX && s->base_section[r] == s->query_section[q])
			return 1;
		return in_sorted(s->rel + s->rel_off[q], s->rel_off[q + 1] - s->rel_off[q], r);
	}
	return 0;
}

int lb_truth(lb_workload *w)
{
	const lb_set *s = w->set;
	free(w->truth);
	w->truth = malloc(s->nq * LB_K * sizeof *w->truth);
	if (!w->truth)
		return -1;
	for (size_t q = 0; q < s->nq; q++) {
		const float *qv = s->queries + q * s->dim;
		double best[LB_K];
		uint32_t *out = w->truth + q * LB_K;
		size_t n = 0;
		for (uint32_t r = 0; r < s->n; r++) {
			if (!lb_relevant(w, q, r))
				continue;
			double sim = lb_dot(qv, s->base + (size_t)r * s->dim, s->dim);
			if (n == LB_K && sim <= best[LB_K - 1])
				continue;
			/* Insertion into the sorted top list; equal similarity
			 * keeps the lower row first. */
			size_t i = n < LB_K ? n++ : LB_K - 1;
			while (i > 0 && best[i - 1] < sim) {
				best[i] = best[i - 1];
				out[i] = out[i - 1];
				i--;
			}
			best[i] = sim;
			out[i] = r;
		}
		/* The loaders keep only queries with LB_K relevant items. */
		for (size_t i = n; i < LB_K; i++)
			out[i] = UINT32_MAX;
	}
	return 0;
}

/* ======================================================================
 * Metrics
 * ==================================================================== */

static double discount(size_t i) { return 1.0 / log2((double)i + 2.0); }

static int in_truth(const lb_workload *w, size_t q, uint32_t r)
{
	const uint32_t *t = w->truth + q * LB_K;
	for (size_t i = 0; i < LB_K; i++)
		if (t[i] == r)
			return 1;
	return 0;
}

static size_t truth_size(const lb_workload *w, size_t q)
{
	const uint32_t *t = w->truth + q * LB_K;
	size_t n = 0;
	while (n < LB_K && t[n] != UINT32_MAX)
		n++;
	return n;
}

double lb_ndcg(const lb_workload *w, size_t q, const uint32_t *rows, size_t n)
{
	size_t nt = truth_size(w, q);
	if (nt == 0)
		return 0;
	double dcg = 0, idcg = 0;
	for (size_t i = 0; i < n && i < LB_K; i++)
		if (in_truth(w, q, rows[i]))
			dcg += discount(i);
	for (size_t i = 0; i < nt; i++)
		idcg += discount(i);
	return dcg / idcg;
}

double lb_recall(const lb_workload *w, size_t q, const uint32_t *rows, size_t n)
{
	size_t nt = truth_size(w, q);
	if (nt == 0)
		return 0;
	size_t hit = 0;
	for (size_t i = 0; i < n && i < LB_K; i++)
		hit += (size_t)in_truth(w, q, rows[i]);
	return (double)hit / (double)nt;
}

/* ======================================================================
 * Users
 * ==================================================================== */

size_t lb_user(lb_event *ev, const lb_workload *w, size_t q, const uint32_t *rows, size_t n, bool random_mode,
	       lb_rng *rng)
{
	size_t m = 0;
	if (n == 0)
		return 0;
	if (random_mode) {
		ev[0].row = rows[lb_rng_below(rng, (uint32_t)n)];
		ev[0].reward = (float)(2.0 * lb_rng_unif(rng) - 1.0);
		ev[0].kind = 3;
		return 1;
	}
	for (size_t i = 0; i < n && i < LB_K; i++) {
		/* Every draw is made whatever the outcome, so that the
		 * stream of random numbers does not depend on the results
		 * and two learners see the same users. */
		double u_exam = lb_rng_unif(rng), u_noise = lb_rng_unif(rng), u_click = lb_rng_unif(rng);
		double u_conv = lb_rng_unif(rng), u_rate = lb_rng_unif(rng);
		if (u_exam >= pow((double)i + 1.0, -LB_EXAMINE_POWER))
			continue;
		int rel = lb_relevant(w, q, rows[i]);
		int click = u_noise < LB_NOISE ? u_click < LB_NOISE_CLICK : rel;
		if (click) {
			ev[m++] = (lb_event){ rows[i], 1.0f, 0 };
			if (rel && u_conv < LB_CONVERSION)
				ev[m++] = (lb_event){ rows[i], 1.0f, 1 };
		} else if (u_rate < LB_SKIP_RATING) {
			ev[m++] = (lb_event){ rows[i], LB_SKIP_REWARD, 2 };
		}
	}
	return m;
}
