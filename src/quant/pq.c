/*
 * pq.c - product quantization: m independent 256-centroid codebooks, one
 * per slice of dsub = ceil(dim / m) dimensions, each from k-means.
 *
 * Sub-space j covers dimensions [j dsub, min((j + 1) dsub, dim)); when m
 * does not divide dim the last slice is shorter and the centroid rows keep
 * the full dsub stride with the missing coordinates stored as zeros (the
 * "zero padding"), which every computation skips. A choice of m that would
 * leave a slice with no dimension at all is refused.
 *
 * Training is deterministic: sub-space j runs k-means++ seeding from its
 * own rv_rng, seeded with a hash of (seed, j), so the sub-spaces can be
 * trained on several threads at once and still give the same centroids
 * whatever the thread count. Lloyd runs a fixed number of iterations (no
 * convergence test, so no floating-point ties decide how long it runs),
 * and an empty cluster takes the point currently farthest from its
 * centroid (ties to the lowest index), which splits the worst cluster
 * instead of leaving a dead code.
 *
 * Nearest centroid (encoding, and the assignment step of training): the
 * 256 squared distances of a sub-vector p are |c|^2 - 2 p.c + |p|^2 over
 * a transposed copy of the centroids ([sub-space][coordinate][centroid]),
 * a loop over 256 centroids per coordinate that vectorises, instead of 256
 * short distance calls. The expansion rounds differently from the direct
 * difference, so the few centroids within its rounding error of the
 * smallest are compared again exactly: the choice is always the argmin
 * of the direct squared distance (ties to the lowest index). The same
 * transposed centroids make the per-query tables.
 *
 * Searching builds one table of 256 floats per sub-space for the query;
 * the distance to a code is then m lookups, summed by the pq_adc kernel
 * (an AVX-512 gather where available).
 */
#include "quant/quant_int.h"

#include <float.h>
#include <stdatomic.h>

#include "simd/simd.h"

#define KSUB 256

struct rv_pq {
	const rv_alloc *a;
	size_t dim, m, dsub;
	float *cent;  /* [m][KSUB][dsub], pad coordinates 0 */
	float *tcent; /* [m][dsub][KSUB]: cent transposed (same block as cent) */
	float *cnorm; /* [m][KSUB]: |centroid|^2 (same block) */
};

static const char magic[4] = { 'R', 'V', 'P', 'Q' };

/* Dimensions sub-space j really has. */
static size_t sub_len(const rv_pq *q, size_t j)
{
	size_t lo = j * q->dsub, hi = lo + q->dsub;
	return (hi > q->dim ? q->dim : hi) - lo;
}

static rv_status pq_alloc(rv_pq **out, size_t dim, size_t m, const rv_alloc *a, rv_err *err)
{
	rv_pq *q = rv_calloc(a, 1, sizeof *q);
	if (!q)
		return rv_err_nomem(err);
	q->a = a;
	q->dim = dim;
	q->m = m;
	q->dsub = (dim + m - 1) / m;
	/* One block: the centroids, their transpose and their norms. */
	size_t per = m * KSUB * q->dsub;
	q->cent = rv_calloc(a, 2 * per + m * KSUB, sizeof(float));
	if (!q->cent) {
		rv_dealloc(a, q);
		return rv_err_nomem(err);
	}
	q->tcent = q->cent + per;
	q->cnorm = q->tcent + per;
	*out = q;
	return RV_OK;
}

/* Fill tcent and cnorm of sub-space j from cent. */
static void derive(rv_pq *q, size_t j)
{
	size_t dsub = q->dsub;
	const float *c = q->cent + j * KSUB * dsub;
	float *t = q->tcent + j * KSUB * dsub, *nrm = q->cnorm + j * KSUB;
	for (size_t k = 0; k < KSUB; k++) {
		float s = 0;
		for (size_t d = 0; d < dsub; d++) {
			t[d * KSUB + k] = c[k * dsub + d];
			s += c[k * dsub + d] * c[k * dsub + d];
		}
		nrm[k] = s;
	}
}

/* Squared distance of two short vectors, inline (the sub-vectors are a
 * few floats: a kernel call would cost more than the arithmetic). */
static inline float l2_short(const float *a, const float *b, size_t len)
{
	float s = 0;
	for (size_t t = 0; t < len; t++) {
		float d = a[t] - b[t];
		s += d * d;
	}
	return s;
}

/* acc[k] = |c_k|^2 - 2 p.c_k for the 256 centroids of a sub-space whose
 * transposed centroids are tc and norms nrm; p has len coordinates. */
static void dots(float *restrict acc, const float *restrict tc, const float *restrict nrm,
		 const float *restrict p, size_t len)
{
	for (size_t k = 0; k < KSUB; k++)
		acc[k] = nrm[k];
	for (size_t t = 0; t < len; t++) {
		const float *row = tc + t * KSUB;
		float m2p = -2.0f * p[t];
		for (size_t k = 0; k < KSUB; k++)
			acc[k] += m2p * row[k];
	}
}

/* acc[k] = -p.c_k (the IP and cosine tables). */
static void neg_dots(float *restrict acc, const float *restrict tc, const float *restrict p, size_t len)
{
	for (size_t k = 0; k < KSUB; k++)
		acc[k] = 0;
	for (size_t t = 0; t < len; t++) {
		const float *row = tc + t * KSUB;
		float mp = -p[t];
		for (size_t k = 0; k < KSUB; k++)
			acc[k] += mp * row[k];
	}
}

/* The centroid nearest to p (len coordinates) among the 256 at cent
 * (stride dsub) with transposed copy tc and norms nrm, by direct squared
 * distance, ties to the lowest index; *best_out gets that distance. */
static size_t nearest(const float *cent, size_t dsub, const float *tc, const float *nrm, const float *p,
		      size_t len, float *best_out)
{
	float acc[KSUB];
	dots(acc, tc, nrm, p, len);
	/* Eight running minima and maxima side by side: one chain of
	 * dependent comparisons would cost its latency 256 times. */
	float lo[8], hi[8];
	for (size_t j = 0; j < 8; j++) {
		lo[j] = acc[j];
		hi[j] = nrm[j];
	}
	for (size_t k = 8; k < KSUB; k += 8) {
		for (size_t j = 0; j < 8; j++) {
			lo[j] = acc[k + j] < lo[j] ? acc[k + j] : lo[j];
			hi[j] = nrm[k + j] > hi[j] ? nrm[k + j] : hi[j];
		}
	}
	float mn = lo[0], big = hi[0];
	for (size_t j = 1; j < 8; j++) {
		mn = lo[j] < mn ? lo[j] : mn;
		big = hi[j] > big ? hi[j] : big;
	}
	float pn = 0;
	for (size_t t = 0; t < len; t++)
		pn += p[t] * p[t];
	/* Each expanded value is within about (len + 2) ulps of the sum of
	 * magnitudes |c|^2 + |p|^2 + 2|p||c| <= 2 (|c|^2 + |p|^2) of the
	 * exact one; twice that bounds how far the true nearest can sit
	 * above the smallest expanded value. */
	float tol = 4.0f * (float)(len + 2) * FLT_EPSILON * 2.0f * (big + pn);
	size_t bk = KSUB;
	float best = 0;
	for (size_t k = 0; k < KSUB; k++) {
		if (acc[k] > mn + tol)
			continue;
		float d = l2_short(p, cent + k * dsub, len);
		if (bk == KSUB || d < best) {
			best = d;
			bk = k;
		}
	}
	*best_out = best;
	return bk;
}

/* Scratch for one sub-space's k-means (one per training thread). */
typedef struct km_work {
	float *pts;     /* [n][len] */
	float *dist;    /* [n] distance to the assigned / nearest centroid */
	uint8_t *label; /* [n] */
	double *sum;    /* [KSUB][dsub] */
	size_t *count;  /* [KSUB] */
} km_work;

/* k-means of sub-space j of q over pts (n points of len coordinates),
 * writing the centroids into q->cent and their transpose and norms. */
static void kmeans(rv_pq *q, size_t j, const float *pts, size_t n, size_t len, unsigned iters, rv_rng *rng,
		   km_work *w)
{
	size_t dsub = q->dsub;
	float *cent = q->cent + j * KSUB * dsub;
	const float *tc = q->tcent + j * KSUB * dsub, *nrm = q->cnorm + j * KSUB;

	/* k-means++: each next seed is drawn with probability proportional
	 * to its squared distance from the seeds so far. Once every point
	 * coincides with a seed (fewer distinct points than KSUB), draw
	 * uniformly; the duplicates get re-seeded or stay harmless. */
	size_t first = (size_t)rv_rng_below(rng, n);
	memcpy(cent, pts + first * len, len * sizeof(float));
	for (size_t i = 0; i < n; i++)
		w->dist[i] = l2_short(pts + i * len, cent, len);
	for (size_t k = 1; k < KSUB; k++) {
		double total = 0;
		for (size_t i = 0; i < n; i++)
			total += w->dist[i];
		size_t pick = n - 1;
		if (total > 0) {
			double r = rv_rng_uniform(rng) * total, acc = 0;
			for (size_t i = 0; i < n; i++) {
				acc += w->dist[i];
				if (acc > r) {
					pick = i;
					break;
				}
			}
		} else {
			pick = (size_t)rv_rng_below(rng, n);
		}
		float *c = cent + k * dsub;
		memcpy(c, pts + pick * len, len * sizeof(float));
		for (size_t i = 0; i < n; i++) {
			float d = l2_short(pts + i * len, c, len);
			w->dist[i] = d < w->dist[i] ? d : w->dist[i];
		}
	}

	for (unsigned it = 0; it < iters; it++) {
		derive(q, j);
		for (size_t i = 0; i < n; i++) {
			float best;
			w->label[i] = (uint8_t)nearest(cent, dsub, tc, nrm, pts + i * len, len, &best);
			w->dist[i] = best;
		}
		memset(w->sum, 0, KSUB * dsub * sizeof(double));
		memset(w->count, 0, KSUB * sizeof(size_t));
		for (size_t i = 0; i < n; i++) {
			double *s = w->sum + w->label[i] * dsub;
			for (size_t t = 0; t < len; t++)
				s[t] += pts[i * len + t];
			w->count[w->label[i]]++;
		}
		for (size_t k = 0; k < KSUB; k++) {
			float *c = cent + k * dsub;
			if (w->count[k]) {
				for (size_t t = 0; t < len; t++)
					c[t] = (float)(w->sum[k * dsub + t] / (double)w->count[k]);
				continue;
			}
			size_t far = 0;
			for (size_t i = 1; i < n; i++)
				far = w->dist[i] > w->dist[far] ? i : far;
			memcpy(c, pts + far * len, len * sizeof(float));
			w->dist[far] = 0; /* the next empty cluster takes another point */
		}
	}
	derive(q, j);
}

static void work_free(const rv_alloc *a, km_work *w)
{
	rv_dealloc(a, w->count);
	rv_dealloc(a, w->sum);
	rv_dealloc(a, w->label);
	rv_dealloc(a, w->dist);
	rv_dealloc(a, w->pts);
}

static bool work_alloc(const rv_alloc *a, km_work *w, size_t n, size_t dsub)
{
	w->pts = rv_calloc(a, n, dsub * sizeof(float));
	w->dist = rv_calloc(a, n, sizeof(float));
	w->label = rv_calloc(a, n, 1);
	w->sum = rv_calloc(a, KSUB * dsub, sizeof(double));
	w->count = rv_calloc(a, KSUB, sizeof(size_t));
	return w->pts && w->dist && w->label && w->sum && w->count;
}

#define MAX_TRAIN_THREADS 64

typedef struct train_ctx {
	rv_pq *q;
	const rv_rows *x;
	size_t n;
	unsigned iters;
	uint64_t seed;
	km_work *work;        /* one per thread */
	_Atomic size_t next;  /* next sub-space to train */
} train_ctx;

static void train_worker(void *arg, unsigned t)
{
	train_ctx *c = arg;
	rv_pq *q = c->q;
	km_work *w = &c->work[t];
	for (;;) {
		size_t j = atomic_fetch_add(&c->next, 1);
		if (j >= q->m)
			break;
		size_t len = sub_len(q, j);
		for (size_t i = 0; i < c->n; i++)
			memcpy(w->pts + i * len, rv_row(c->x, i) + j * q->dsub, len * sizeof(float));
		uint8_t b[16];
		rv_put_u64(b, c->seed);
		rv_put_u64(b + 8, j);
		rv_rng rng;
		rv_rng_seed(&rng, rv_hash64(b, sizeof b, 0));
		kmeans(q, j, w->pts, c->n, len, c->iters, &rng, w);
	}
}

rv_status rv_pq_train(rv_pq **out, const float *x, size_t n, size_t dim, const rv_pq_opts *opts,
		      const rv_alloc *a, rv_err *err)
{
	rv_rows rows = { x, NULL, n, dim };
	return rv_pq_train_rows(out, &rows, opts, a, err);
}

rv_status rv_pq_train_rows(rv_pq **out, const rv_rows *x, const rv_pq_opts *opts, const rv_alloc *a,
			   rv_err *err)
{
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	km_work w[MAX_TRAIN_THREADS];
	unsigned nt = 0;
	rv_pq *q = NULL;
	size_t n = x->n, dim = x->dim;
	*out = NULL;
	memset(w, 0, sizeof w);
	rv_status st = rv_quant_check_rows(x, "pq", err);
	if (st != RV_OK)
		goto done;
	if (opts) {
		if (opts->size < sizeof o) {
			st = rv_err_set(err, RV_EINVAL, "pq: options size %zu, expected %zu", opts->size, sizeof o);
			goto done;
		}
		o = *opts;
	}
	if (o.m == 0)
		o.m = dim / 8 ? dim / 8 : 1;
	if (o.iters == 0)
		o.iters = 12;
	if (o.m > dim) {
		st = rv_err_set(err, RV_EINVAL, "pq: m %zu exceeds dim %zu", o.m, dim);
		goto done;
	}
	size_t dsub = (dim + o.m - 1) / o.m;
	if ((o.m - 1) * dsub >= dim) {
		st = rv_err_set(err, RV_EINVAL,
				"pq: m %zu leaves the last sub-space empty for dim %zu (sub-spaces of %zu); pick m "
				"dividing dim",
				o.m, dim, dsub);
		goto done;
	}
	if (o.iters > 1000) {
		st = rv_err_set(err, RV_EINVAL, "pq: %u iterations, at most 1000", o.iters);
		goto done;
	}
	if ((st = pq_alloc(&q, dim, o.m, a, err)) != RV_OK)
		goto done;
	nt = o.threads <= 1 ? 1 : o.threads;
	if (nt > MAX_TRAIN_THREADS)
		nt = MAX_TRAIN_THREADS;
	if (nt > o.m)
		nt = (unsigned)o.m;
	for (unsigned t = 0; t < nt; t++) {
		if (!work_alloc(a, &w[t], n, dsub)) {
			st = rv_err_nomem(err);
			goto done;
		}
	}
	train_ctx c = { .q = q, .x = x, .n = n, .iters = o.iters, .seed = o.seed, .work = w };
	atomic_init(&c.next, 0);
	if (nt > 1)
		rv_parallel(nt, train_worker, &c);
	else
		train_worker(&c, 0);
	*out = q;
	q = NULL;
done:
	for (unsigned t = 0; t < nt; t++)
		work_free(a, &w[t]);
	rv_pq_free(q);
	return st;
}

void rv_pq_free(rv_pq *q)
{
	if (!q)
		return;
	rv_dealloc(q->a, q->cent);
	rv_dealloc(q->a, q);
}

size_t rv_pq_dim(const rv_pq *q) { return q->dim; }
size_t rv_pq_m(const rv_pq *q) { return q->m; }
size_t rv_pq_code_size(const rv_pq *q) { return q->m; }
size_t rv_pq_table_size(const rv_pq *q) { return q->m * KSUB; }

const float *rv_pq_centroids(const rv_pq *q, size_t *dsub)
{
	if (dsub)
		*dsub = q->dsub;
	return q->cent;
}

void rv_pq_encode(const rv_pq *q, const float *x, uint8_t *code)
{
	size_t dsub = q->dsub;
	for (size_t j = 0; j < q->m; j++) {
		float best;
		code[j] = (uint8_t)nearest(q->cent + j * KSUB * dsub, dsub, q->tcent + j * KSUB * dsub,
					   q->cnorm + j * KSUB, x + j * dsub, sub_len(q, j), &best);
	}
}

void rv_pq_decode(const rv_pq *q, const uint8_t *code, float *x)
{
	for (size_t j = 0; j < q->m; j++)
		memcpy(x + j * q->dsub, q->cent + (j * KSUB + code[j]) * q->dsub, sub_len(q, j) * sizeof(float));
}

rv_status rv_pq_tables(const rv_pq *q, const float *query, rv_metric metric, float *tables, rv_err *err)
{
	if (metric != RV_METRIC_L2 && metric != RV_METRIC_IP && metric != RV_METRIC_COSINE)
		return rv_err_set(err, RV_EINVAL, "pq: unknown metric %d", (int)metric);
	size_t dsub = q->dsub;
	for (size_t j = 0; j < q->m; j++) {
		size_t len = sub_len(q, j);
		const float *p = query + j * dsub, *tc = q->tcent + j * KSUB * dsub;
		float *t = tables + j * KSUB;
		if (metric == RV_METRIC_L2) {
			/* |p - c|^2 = |c|^2 - 2 p.c + |p|^2 */
			dots(t, tc, q->cnorm + j * KSUB, p, len);
			float pn = 0;
			for (size_t d = 0; d < len; d++)
				pn += p[d] * p[d];
			for (size_t k = 0; k < KSUB; k++)
				t[k] = t[k] + pn > 0 ? t[k] + pn : 0.0f;
		} else {
			neg_dots(t, tc, p, len);
		}
	}
	if (metric == RV_METRIC_COSINE)
		for (size_t k = 0; k < KSUB; k++)
			tables[k] += 1.0f;
	return RV_OK;
}

float rv_pq_distance(const rv_pq *q, const float *tables, const uint8_t *code)
{
	return rv_simd()->pq_adc(tables, code, q->m);
}

void rv_pq_to_bytes(rv_buf *out, const rv_pq *q)
{
	size_t start = out->len;
	rv_quant_put_header(out, magic, q->dim);
	rv_buf_u32(out, (uint32_t)q->m);
	rv_buf_u32(out, (uint32_t)q->dsub);
	for (size_t i = 0; i < q->m * KSUB * q->dsub; i++)
		rv_buf_f32(out, q->cent[i]);
	rv_quant_put_trailer(out, start);
}

rv_status rv_pq_from_bytes(rv_pq **out, const void *bytes, size_t len, const rv_alloc *a, rv_err *err)
{
	rv_pq *q = NULL;
	rv_reader r;
	size_t dim = 0;
	*out = NULL;
	rv_status st = rv_quant_get_header(&r, &dim, bytes, len, magic, "pq", err);
	if (st != RV_OK)
		goto done;
	size_t m = rv_reader_u32(&r), dsub = rv_reader_u32(&r);
	if (r.bad || m == 0 || m > dim || dsub != (dim + m - 1) / m || (m - 1) * dsub >= dim) {
		st = rv_err_set(err, RV_ECORRUPT, "pq parameters: m %zu with sub-spaces of %zu does not fit dim %zu",
				m, dsub, dim);
		goto done;
	}
	/* m * 256 * dsub * 4 < 2^40 here (dim <= RV_MAX_DIM), no overflow. */
	size_t want = m * KSUB * dsub * 4;
	if (rv_reader_left(&r) != want) {
		st = rv_err_set(err, RV_ECORRUPT, "pq parameters: %zu bytes of centroids, expected %zu",
				rv_reader_left(&r), want);
		goto done;
	}
	if ((st = pq_alloc(&q, dim, m, a, err)) != RV_OK)
		goto done;
	for (size_t j = 0; j < m; j++) {
		size_t sl = sub_len(q, j);
		for (size_t k = 0; k < KSUB; k++) {
			for (size_t t = 0; t < dsub; t++) {
				float v = rv_reader_f32(&r);
				/* Padding must be the zeros training writes. */
				if (!isfinite(v) || (t >= sl && v != 0)) {
					st = rv_err_set(err, RV_ECORRUPT,
							"pq parameters: sub-space %zu centroid %zu coordinate %zu is %g",
							j, k, t, (double)v);
					goto done;
				}
				q->cent[(j * KSUB + k) * dsub + t] = v;
			}
		}
	}
	for (size_t j = 0; j < m; j++)
		derive(q, j);
	*out = q;
	q = NULL;
done:
	rv_pq_free(q);
	return st;
}
