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
 * Training is deterministic: one rv_rng seeded from opts->seed drives the
 * k-means++ seeding of every sub-space in order, Lloyd runs a fixed number
 * of iterations (no convergence test, so no floating-point ties decide how
 * long it runs), and an empty cluster takes the point currently farthest
 * from its centroid (ties to the lowest index), which splits the worst
 * cluster instead of leaving a dead code.
 *
 * Searching builds one table of 256 floats per sub-space for the query;
 * the distance to a code is then m lookups, summed by the pq_adc kernel
 * (an AVX-512 gather where available).
 */
#include "quant/quant_int.h"

#include "simd/simd.h"

#define KSUB 256

struct rv_pq {
	const rv_alloc *a;
	size_t dim, m, dsub;
	float *cent; /* [m][KSUB][dsub], pad coordinates 0 */
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
	q->cent = rv_calloc(a, m * KSUB, q->dsub * sizeof(float));
	if (!q->cent) {
		rv_dealloc(a, q);
		return rv_err_nomem(err);
	}
	*out = q;
	return RV_OK;
}

/* Scratch for one sub-space's k-means, reused across sub-spaces. */
typedef struct km_work {
	float *pts;     /* [n][len] */
	float *dist;    /* [n] distance to the assigned / nearest centroid */
	uint8_t *label; /* [n] */
	double *sum;    /* [KSUB][dsub] */
	size_t *count;  /* [KSUB] */
} km_work;

/* Centroid k of sub-space cent (stride dsub), first len coordinates. */
static void kmeans(float *cent, size_t dsub, const float *pts, size_t n, size_t len, unsigned iters, rv_rng *rng,
		   km_work *w)
{
	rv_dist_fn l2 = rv_simd()->l2sq;

	/* k-means++: each next seed is drawn with probability proportional
	 * to its squared distance from the seeds so far. Once every point
	 * coincides with a seed (fewer distinct points than KSUB), draw
	 * uniformly; the duplicates get re-seeded or stay harmless. */
	size_t first = (size_t)rv_rng_below(rng, n);
	memcpy(cent, pts + first * len, len * sizeof(float));
	for (size_t i = 0; i < n; i++)
		w->dist[i] = l2(pts + i * len, cent, len);
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
			float d = l2(pts + i * len, c, len);
			w->dist[i] = d < w->dist[i] ? d : w->dist[i];
		}
	}

	for (unsigned it = 0; it < iters; it++) {
		for (size_t i = 0; i < n; i++) {
			const float *p = pts + i * len;
			float best = l2(p, cent, len);
			size_t bk = 0;
			for (size_t k = 1; k < KSUB; k++) {
				float d = l2(p, cent + k * dsub, len);
				if (d < best) {
					best = d;
					bk = k;
				}
			}
			w->label[i] = (uint8_t)bk;
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
}

rv_status rv_pq_train(rv_pq **out, const float *x, size_t n, size_t dim, const rv_pq_opts *opts,
		      const rv_alloc *a, rv_err *err)
{
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	km_work w = { 0 };
	rv_pq *q = NULL;
	*out = NULL;
	rv_status st = rv_quant_check_sample(x, n, dim, "pq", err);
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
	w.pts = rv_calloc(a, n, dsub * sizeof(float));
	w.dist = rv_calloc(a, n, sizeof(float));
	w.label = rv_calloc(a, n, 1);
	w.sum = rv_calloc(a, KSUB * dsub, sizeof(double));
	w.count = rv_calloc(a, KSUB, sizeof(size_t));
	if (!w.pts || !w.dist || !w.label || !w.sum || !w.count) {
		st = rv_err_nomem(err);
		goto done;
	}
	rv_rng rng;
	rv_rng_seed(&rng, o.seed);
	for (size_t j = 0; j < q->m; j++) {
		size_t len = sub_len(q, j);
		for (size_t i = 0; i < n; i++)
			memcpy(w.pts + i * len, x + i * dim + j * dsub, len * sizeof(float));
		kmeans(q->cent + j * KSUB * dsub, dsub, w.pts, n, len, o.iters, &rng, &w);
	}
	*out = q;
	q = NULL;
done:
	rv_dealloc(a, w.count);
	rv_dealloc(a, w.sum);
	rv_dealloc(a, w.label);
	rv_dealloc(a, w.dist);
	rv_dealloc(a, w.pts);
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
	rv_dist_fn l2 = rv_simd()->l2sq;
	for (size_t j = 0; j < q->m; j++) {
		size_t len = sub_len(q, j);
		const float *p = x + j * q->dsub, *cent = q->cent + j * KSUB * q->dsub;
		float best = l2(p, cent, len);
		size_t bk = 0;
		for (size_t k = 1; k < KSUB; k++) {
			float d = l2(p, cent + k * q->dsub, len);
			if (d < best) {
				best = d;
				bk = k;
			}
		}
		code[j] = (uint8_t)bk;
	}
}

void rv_pq_decode(const rv_pq *q, const uint8_t *code, float *x)
{
	for (size_t j = 0; j < q->m; j++)
		memcpy(x + j * q->dsub, q->cent + (j * KSUB + code[j]) * q->dsub, sub_len(q, j) * sizeof(float));
}

rv_status rv_pq_tables(const rv_pq *q, const float *query, rv_metric metric, float *tables, rv_err *err)
{
	const rv_simd_ops *ops = rv_simd();
	if (metric != RV_METRIC_L2 && metric != RV_METRIC_IP && metric != RV_METRIC_COSINE)
		return rv_err_set(err, RV_EINVAL, "pq: unknown metric %d", (int)metric);
	for (size_t j = 0; j < q->m; j++) {
		size_t len = sub_len(q, j);
		const float *p = query + j * q->dsub, *cent = q->cent + j * KSUB * q->dsub;
		float *t = tables + j * KSUB;
		for (size_t k = 0; k < KSUB; k++)
			t[k] = metric == RV_METRIC_L2 ? ops->l2sq(p, cent + k * q->dsub, len)
						      : -ops->dot(p, cent + k * q->dsub, len);
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
	*out = q;
	q = NULL;
done:
	rv_pq_free(q);
	return st;
}
