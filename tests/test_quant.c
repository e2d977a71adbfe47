/*
 * test_quant.c - the quantizers (src/quant/): recall of "scan the codes
 * for the R best, re-rank those exactly, keep 10" against brute force on
 * clustered and real data; the documented error bounds; serialisation
 * round trips and rejection of corrupt, truncated or out-of-range bytes;
 * allocation failure during training and loading; k-means determinism.
 */
#include "harness.h"
#include "quant/quant.h"
#include "simd/simd.h"
#include "util/util.h"

/* ------------------------------------------------------------------------
 * Recall harness
 * ---------------------------------------------------------------------- */

typedef struct cand {
	float d;
	int i;
} cand;

static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	return x->d < y->d ? -1 : x->d > y->d ? 1 : x->i - y->i;
}

/* Estimated distance of query q to base vector i. */
typedef float (*approx_fn)(void *ctx, size_t q, size_t i);

static float exact(const float *a, const float *b, size_t dim, rv_metric metric)
{
	if (metric == RV_METRIC_L2)
		return rv_l2sq_scalar(a, b, dim);
	return -rv_dot_scalar(a, b, dim);
}

/* Mean recall@10 over nq queries of: approx scan -> best r -> exact
 * re-rank -> best 10, against brute-force ground truth. */
static double rerank_recall(const float *base, size_t n, const float *queries, size_t nq, size_t dim,
			    rv_metric metric, size_t r, approx_fn fn, void *ctx)
{
	int *gt = rv_test_ground_truth(base, n, queries, nq, dim, 10, metric == RV_METRIC_L2 ? RV_METRIC_L2 : RV_METRIC_IP);
	cand *all = malloc(n * sizeof(cand));
	size_t hit = 0;
	for (size_t q = 0; q < nq; q++) {
		for (size_t i = 0; i < n; i++)
			all[i] = (cand){ fn(ctx, q, i), (int)i };
		qsort(all, n, sizeof(cand), cand_cmp);
		size_t rr = r < n ? r : n;
		for (size_t c = 0; c < rr; c++)
			all[c].d = exact(queries + q * dim, base + (size_t)all[c].i * dim, dim, metric);
		qsort(all, rr, sizeof(cand), cand_cmp);
		for (size_t c = 0; c < 10 && c < rr; c++)
			for (size_t g = 0; g < 10; g++)
				hit += all[c].i == gt[q * 10 + g];
	}
	free(all);
	free(gt);
	return (double)hit / (double)(nq * 10);
}

typedef struct sq8_ctx {
	rv_sq8_query **qq; /* one per query, loaded */
	uint8_t *codes;
	size_t cs;
} sq8_ctx;

static float sq8_fn(void *ctx, size_t q, size_t i)
{
	sq8_ctx *c = ctx;
	return rv_sq8_distance(c->qq[q], c->codes + i * c->cs);
}

typedef struct pq_ctx {
	const rv_pq *pq;
	float *tables; /* nq tables */
	uint8_t *codes;
	size_t ts, cs;
} pq_ctx;

static float pq_fn(void *ctx, size_t q, size_t i)
{
	pq_ctx *c = ctx;
	return rv_pq_distance(c->pq, c->tables + q * c->ts, c->codes + i * c->cs);
}

typedef struct bq_ctx {
	const rv_bq *bq;
	uint8_t *qcodes, *codes;
	size_t cs;
} bq_ctx;

static float bq_fn(void *ctx, size_t q, size_t i)
{
	bq_ctx *c = ctx;
	return (float)rv_bq_distance(c->bq, c->qcodes + q * c->cs, c->codes + i * c->cs);
}

static double sq8_recall(const float *base, size_t n, const float *queries, size_t nq, size_t dim, rv_metric metric,
			 size_t r)
{
	rv_sq8 *q = NULL;
	rv_err e;
	double rec = -1;
	if (rv_sq8_train(&q, base, n, dim, NULL, &e) != RV_OK) {
		fprintf(stderr, "sq8 train: %s\n", e.msg);
		return -1;
	}
	sq8_ctx c = { calloc(nq, sizeof(rv_sq8_query *)), malloc(n * rv_sq8_code_size(q)), rv_sq8_code_size(q) };
	for (size_t i = 0; i < n; i++)
		rv_sq8_encode(q, base + i * dim, c.codes + i * c.cs);
	for (size_t i = 0; i < nq; i++)
		if (rv_sq8_query_new(&c.qq[i], q, &e) != RV_OK ||
		    rv_sq8_query_set(c.qq[i], queries + i * dim, metric, &e) != RV_OK)
			goto done;
	rec = rerank_recall(base, n, queries, nq, dim, metric, r, sq8_fn, &c);
done:
	for (size_t i = 0; i < nq; i++)
		rv_sq8_query_free(c.qq[i]);
	free(c.qq);
	free(c.codes);
	rv_sq8_free(q);
	return rec;
}

static double pq_recall(const float *base, size_t n, size_t ntrain, const float *queries, size_t nq, size_t dim,
			rv_metric metric, size_t m, size_t r)
{
	rv_pq *q = NULL;
	rv_err e;
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = m;
	o.iters = 8;
	double t0 = rv_now();
	if (rv_pq_train(&q, base, ntrain, dim, &o, NULL, &e) != RV_OK) {
		fprintf(stderr, "pq train: %s\n", e.msg);
		return -1;
	}
	double t1 = rv_now();
	pq_ctx c = { q, malloc(nq * rv_pq_table_size(q) * sizeof(float)), malloc(n * rv_pq_code_size(q)),
		     rv_pq_table_size(q), rv_pq_code_size(q) };
	for (size_t i = 0; i < n; i++)
		rv_pq_encode(q, base + i * dim, c.codes + i * c.cs);
	for (size_t i = 0; i < nq; i++)
		rv_pq_tables(q, queries + i * dim, metric, c.tables + i * c.ts, NULL);
	double rec = rerank_recall(base, n, queries, nq, dim, metric, r, pq_fn, &c);
	fprintf(stderr, "   pq m=%zu: trained on %zu in %.2f s\n", m, ntrain, t1 - t0);
	free(c.tables);
	free(c.codes);
	rv_pq_free(q);
	return rec;
}

static double bq_recall(const float *base, size_t n, const float *queries, size_t nq, size_t dim, rv_metric metric,
			size_t r)
{
	rv_bq *q = NULL;
	if (rv_bq_train(&q, base, n, dim, NULL, NULL) != RV_OK)
		return -1;
	size_t cs = rv_bq_code_size(q);
	bq_ctx c = { q, malloc(nq * cs), malloc(n * cs), cs };
	for (size_t i = 0; i < n; i++)
		rv_bq_encode(q, base + i * dim, c.codes + i * cs);
	for (size_t i = 0; i < nq; i++)
		rv_bq_encode(q, queries + i * dim, c.qcodes + i * cs);
	double rec = rerank_recall(base, n, queries, nq, dim, metric, r, bq_fn, &c);
	free(c.qcodes);
	free(c.codes);
	rv_bq_free(q);
	return rec;
}

/* Clustered data: the last nq of n + nq vectors are the queries, so they
 * come from the same clusters as the base. */
#define CL_N 20000
#define CL_NQ 50
#define CL_DIM 128

static float *clustered(void)
{
	return rv_test_clustered_vectors(CL_N + CL_NQ, CL_DIM, 64, 42);
}

/* The real set: 778 unit-length 384-d embeddings; the last 78 query the
 * first 700. */
static float *fiori(size_t *n, size_t *dim)
{
	float *v = rv_test_load_fvecs("fiori/fiori.fvecs", n, dim);
	if (!v)
		fprintf(stderr, "fiori data missing: run scripts/data.sh fiori\n");
	return v;
}

/* ------------------------------------------------------------------------
 * Recall
 * ---------------------------------------------------------------------- */

TEST(sq8_recall_clustered)
{
	float *v = clustered();
	double l2 = sq8_recall(v, CL_N, v + CL_N * CL_DIM, CL_NQ, CL_DIM, RV_METRIC_L2, 20);
	double ip = sq8_recall(v, CL_N, v + CL_N * CL_DIM, CL_NQ, CL_DIM, RV_METRIC_IP, 20);
	free(v);
	fprintf(stderr, "   sq8 R=20 recall@10: l2 %.4f ip %.4f\n", l2, ip);
	CHECK(l2 >= 0.99);
	CHECK(ip >= 0.99);
}

TEST(pq_recall_clustered)
{
	float *v = clustered();
	/* Isotropic noise around 64 centres: inside a cluster nothing but
	 * the noise separates neighbours, the hardest case for PQ, hence a
	 * deeper re-rank than on real data (docs/QUANT.md has the curve). */
	double l2 = pq_recall(v, CL_N, 5000, v + CL_N * CL_DIM, CL_NQ, CL_DIM, RV_METRIC_L2, CL_DIM / 8, 400);
	free(v);
	fprintf(stderr, "   pq m=16 R=400 recall@10: l2 %.4f\n", l2);
	CHECK(l2 >= 0.95);
}

TEST(bq_recall_clustered)
{
	float *v = clustered();
	double l2 = bq_recall(v, CL_N, v + CL_N * CL_DIM, CL_NQ, CL_DIM, RV_METRIC_L2, 400);
	free(v);
	fprintf(stderr, "   binary R=400 recall@10: l2 %.4f\n", l2);
	CHECK(l2 >= 0.90);
}

TEST(fiori_recall)
{
	size_t n = 0, dim = 0;
	float *v = fiori(&n, &dim);
	CHECK_MSG(v != NULL, "run scripts/data.sh fiori");
	CHECK(n > 700 && dim == 384);
	size_t nb = 700, nq = n - nb;
	const float *q = v + nb * dim;
	double s = sq8_recall(v, nb, q, nq, dim, RV_METRIC_COSINE, 20);
	double sl = sq8_recall(v, nb, q, nq, dim, RV_METRIC_L2, 20);
	double p = pq_recall(v, nb, nb, q, nq, dim, RV_METRIC_COSINE, dim / 8, 100);
	double b = bq_recall(v, nb, q, nq, dim, RV_METRIC_COSINE, 200);
	double b100 = bq_recall(v, nb, q, nq, dim, RV_METRIC_COSINE, 100);
	free(v);
	fprintf(stderr, "   fiori recall@10: sq8 R=20 cos %.4f l2 %.4f, pq m=48 R=100 %.4f, binary R=200 %.4f (R=100 %.4f)\n",
		s, sl, p, b, b100);
	CHECK(s >= 0.99 && sl >= 0.99);
	CHECK(p >= 0.95);
	CHECK(b >= 0.90);
}

/* ------------------------------------------------------------------------
 * Codes and distances
 * ---------------------------------------------------------------------- */

TEST(sq8_encode_decode_and_error_bound)
{
	size_t n = 500, dim = 67;
	float *v = rv_test_clustered_vectors(n + 20, dim, 5, 3);
	rv_sq8 *q;
	rv_err e;
	CHECK_OK(rv_sq8_train(&q, v, n, dim, NULL, &e), NULL);
	CHECK(rv_sq8_dim(q) == dim && rv_sq8_code_size(q) == dim + 4);
	/* Per-dimension range: each decoded value within scale_d / 2 of the
	 * original, scale_d = range / 255. */
	float *lo = malloc(dim * sizeof(float)), *hi = malloc(dim * sizeof(float));
	for (size_t d = 0; d < dim; d++) {
		lo[d] = hi[d] = v[d];
		for (size_t i = 1; i < n; i++) {
			lo[d] = fminf(lo[d], v[i * dim + d]);
			hi[d] = fmaxf(hi[d], v[i * dim + d]);
		}
	}
	uint8_t *code = malloc(dim + 4);
	float *back = malloc(dim * sizeof(float));
	rv_sq8_query *qq;
	CHECK_OK(rv_sq8_query_new(&qq, q, &e), NULL);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		rv_sq8_encode(q, v + i * dim, code);
		rv_sq8_decode(q, code, back);
		for (size_t d = 0; d < dim; d++) {
			float s = (hi[d] - lo[d]) / 255;
			if (fabsf(back[d] - v[i * dim + d]) > s * 0.5f * 1.001f + 1e-6f) {
				fprintf(stderr, "vector %zu dim %zu: %g decoded as %g\n", i, d, (double)v[i * dim + d],
					(double)back[d]);
				ok = false;
			}
		}
		/* The documented bound on the fast distance against the decoded
		 * vector: |err(q . x^)| <= alpha/2 sum |c_d|, twice that for L2. */
		for (size_t j = 0; j < 20 && ok; j++) {
			const float *qv = v + (n + j) * dim;
			double wmax = 0, sumc = 0, dot = 0, l2 = 0;
			for (size_t d = 0; d < dim; d++) {
				wmax = fmax(wmax, fabs((double)qv[d] * (hi[d] - lo[d]) / 255));
				sumc += abs((int)(int8_t)code[d]);
				dot += (double)qv[d] * back[d];
				l2 += ((double)qv[d] - back[d]) * ((double)qv[d] - back[d]);
			}
			double bound = wmax / 127 / 2 * sumc * 1.01 + 1e-3;
			CHECK_OK(rv_sq8_query_set(qq, qv, RV_METRIC_IP, &e), NULL);
			double gi = -rv_sq8_distance(qq, code);
			CHECK_OK(rv_sq8_query_set(qq, qv, RV_METRIC_L2, &e), NULL);
			double gl = rv_sq8_distance(qq, code);
			CHECK_OK(rv_sq8_query_set(qq, qv, RV_METRIC_COSINE, &e), NULL);
			double gc = rv_sq8_distance(qq, code);
			if (fabs(gi - dot) > bound || fabs(gl - l2) > 2 * bound + 1e-4 * l2 || fabs(gc - (1 - dot)) > bound) {
				fprintf(stderr, "vector %zu query %zu: dot %g est %g, l2 %g est %g, bound %g\n", i, j, dot,
					gi, l2, gl, bound);
				ok = false;
			}
		}
	}
	CHECK(ok);
	/* Out-of-range values clamp to the ends; NaN encodes as the minimum. */
	for (size_t d = 0; d < dim; d++)
		back[d] = d % 3 == 0 ? 1e30f : d % 3 == 1 ? -1e30f : NAN;
	rv_sq8_encode(q, back, code);
	for (size_t d = 0; d < dim; d++)
		CHECK((int8_t)code[d] == (d % 3 == 0 ? 127 : -128));
	/* Bad query and metric. */
	memcpy(back, v, dim * sizeof(float));
	back[5] = INFINITY;
	CHECK(rv_sq8_query_set(qq, back, RV_METRIC_L2, &e) == RV_EINVAL);
	CHECK_MSG(strstr(e.msg, "dimension 5") != NULL, "%s", e.msg);
	CHECK(rv_sq8_query_set(qq, v, (rv_metric)7, &e) == RV_EINVAL && strstr(e.msg, "7"));
	rv_sq8_query_free(qq);
	rv_sq8_free(q);
	free(code);
	free(back);
	free(lo);
	free(hi);
	free(v);
}

TEST(pq_adc_equals_distance_to_decoded)
{
	/* dim 10 with m 4: sub-spaces of 3, the last one padded. */
	size_t n = 600, dim = 10;
	float *v = rv_test_random_vectors(n + 5, dim, 11);
	rv_pq *q;
	rv_err e;
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = 4;
	o.iters = 4;
	CHECK_OK(rv_pq_train(&q, v, n, dim, &o, NULL, &e), NULL);
	size_t dsub;
	const float *cent = rv_pq_centroids(q, &dsub);
	CHECK(dsub == 3 && rv_pq_m(q) == 4 && rv_pq_code_size(q) == 4 && rv_pq_dim(q) == dim);
	for (size_t k = 0; k < 256; k++) /* pad coordinates stay zero */
		CHECK(cent[(3 * 256 + k) * 3 + 1] == 0 && cent[(3 * 256 + k) * 3 + 2] == 0);
	float *t = malloc(rv_pq_table_size(q) * sizeof(float));
	float back[12];
	uint8_t code[4];
	static const rv_metric ms[] = { RV_METRIC_L2, RV_METRIC_IP, RV_METRIC_COSINE };
	for (size_t i = 0; i < 50; i++) {
		rv_pq_encode(q, v + i * dim, code);
		rv_pq_decode(q, code, back);
		/* Encoding picks the nearest centroid per sub-space: no other
		 * code is closer to the vector. */
		for (size_t j = 0; j < 4; j++) {
			size_t len = j < 3 ? 3 : 1;
			float best = rv_l2sq_scalar(v + i * dim + j * 3, cent + (j * 256 + code[j]) * 3, len);
			for (size_t k = 0; k < 256; k++)
				CHECK(rv_l2sq_scalar(v + i * dim + j * 3, cent + (j * 256 + k) * 3, len) >= best);
		}
		for (size_t mi = 0; mi < 3; mi++) {
			const float *qv = v + (n + i % 5) * dim;
			CHECK_OK(rv_pq_tables(q, qv, ms[mi], t, &e), NULL);
			double want = ms[mi] == RV_METRIC_L2 ? rv_l2sq_scalar(qv, back, dim) : -rv_dot_scalar(qv, back, dim);
			if (ms[mi] == RV_METRIC_COSINE)
				want += 1;
			double got = rv_pq_distance(q, t, code);
			CHECK_MSG(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "metric %d: %g vs %g", ms[mi], got, want);
		}
	}
	CHECK(rv_pq_tables(q, v, (rv_metric)9, t, &e) == RV_EINVAL);
	free(t);
	rv_pq_free(q);
	free(v);
}

TEST(bq_hamming_counts_sign_flips)
{
	size_t n = 300, dim = 131; /* three words, the last one partial */
	float *v = rv_test_clustered_vectors(n, dim, 4, 12);
	rv_bq *q;
	CHECK_OK(rv_bq_train(&q, v, n, dim, NULL, NULL), NULL);
	CHECK(rv_bq_code_size(q) == 24 && rv_bq_dim(q) == dim);
	double *mean = calloc(dim, sizeof(double));
	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < dim; d++)
			mean[d] += v[i * dim + d] / (double)n;
	uint8_t a[24], b[24];
	for (size_t i = 0; i + 1 < n; i++) {
		rv_bq_encode(q, v + i * dim, a);
		rv_bq_encode(q, v + (i + 1) * dim, b);
		uint64_t want = 0;
		for (size_t d = 0; d < dim; d++) {
			/* Skip values within float rounding of the mean. */
			bool x = v[i * dim + d] > mean[d], y = v[(i + 1) * dim + d] > mean[d];
			want += x != y;
			CHECK(((a[d / 8] >> (d % 8)) & 1) == (v[i * dim + d] > (float)mean[d] ? 1 : 0) ||
			      fabs(v[i * dim + d] - mean[d]) < 1e-5);
		}
		uint64_t got = rv_bq_distance(q, a, b);
		CHECK_MSG(got + 3 >= want && got <= want + 3, "pair %zu: %llu vs %llu", i, (unsigned long long)got,
			  (unsigned long long)want);
		CHECK(got == rv_hamming_scalar(a, b, 24));
		CHECK(a[16] >> 3 == 0 && a[17] == 0 && a[23] == 0); /* padding bits stay zero */
	}
	free(mean);
	rv_bq_free(q);
	free(v);
}

TEST(bad_training_arguments_name_the_value)
{
	float v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (float)i;
	rv_err e;
	rv_sq8 *s = (rv_sq8 *)v;
	rv_bq *b = (rv_bq *)v;
	rv_pq *p = (rv_pq *)v;
	CHECK(rv_sq8_train(&s, v, 0, 8, NULL, &e) == RV_EINVAL && s == NULL && strstr(e.msg, "0"));
	CHECK(rv_bq_train(&b, v, 8, 0, NULL, &e) == RV_EINVAL && b == NULL && strstr(e.msg, "dim 0"));
	CHECK(rv_sq8_train(&s, v, 1, RV_MAX_DIM + 1, NULL, &e) == RV_EINVAL && strstr(e.msg, "16001"));
	v[21] = NAN;
	CHECK(rv_pq_train(&p, v, 8, 8, NULL, NULL, &e) == RV_EINVAL && p == NULL);
	CHECK_MSG(strstr(e.msg, "vector 2") && strstr(e.msg, "dimension 5"), "%s", e.msg);
	v[21] = 0;
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = 9;
	CHECK(rv_pq_train(&p, v, 8, 8, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "m 9"));
	o.m = 6; /* dim 10, m 6: sub-spaces of 2 leave the sixth empty */
	CHECK(rv_pq_train(&p, v, 6, 10, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "m 6"));
	o.m = 2;
	o.size = 4;
	CHECK(rv_pq_train(&p, v, 8, 8, &o, NULL, &e) == RV_EINVAL && strstr(e.msg, "size 4"));
	/* Fewer vectors than centroids still trains (duplicates). */
	o = (rv_pq_opts)RV_PQ_OPTS_INIT;
	o.m = 2;
	CHECK_OK(rv_pq_train(&p, v, 8, 8, &o, NULL, &e), NULL);
	uint8_t code[2];
	float back[8];
	rv_pq_encode(p, v + 8, code);
	rv_pq_decode(p, code, back);
	CHECK(memcmp(back, v + 8, sizeof back) == 0); /* a training vector is its own centroid */
	rv_pq_free(p);
}

/* ------------------------------------------------------------------------
 * Determinism
 * ---------------------------------------------------------------------- */

TEST(kmeans_is_deterministic_for_a_seed)
{
	size_t n = 1000, dim = 16;
	float *v = rv_test_clustered_vectors(n, dim, 8, 21);
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = 4;
	o.iters = 5;
	rv_pq *a, *b, *c;
	CHECK_OK(rv_pq_train(&a, v, n, dim, &o, NULL, NULL), NULL);
	CHECK_OK(rv_pq_train(&b, v, n, dim, &o, NULL, NULL), NULL);
	o.seed++;
	CHECK_OK(rv_pq_train(&c, v, n, dim, &o, NULL, NULL), NULL);
	size_t ds;
	size_t bytes = 4 * 256 * 4 * sizeof(float);
	CHECK(memcmp(rv_pq_centroids(a, &ds), rv_pq_centroids(b, &ds), bytes) == 0);
	CHECK(memcmp(rv_pq_centroids(a, &ds), rv_pq_centroids(c, &ds), bytes) != 0);
	/* No dead centroids: 1000 distinct points, every one of the 256 codes
	 * per sub-space is some point's nearest after re-seeding empties. */
	uint8_t used[4][256] = { { 0 } }, code[4];
	for (size_t i = 0; i < n; i++) {
		rv_pq_encode(a, v + i * dim, code);
		for (int j = 0; j < 4; j++)
			used[j][code[j]] = 1;
	}
	size_t live = 0;
	for (int j = 0; j < 4; j++)
		for (int k = 0; k < 256; k++)
			live += used[j][k];
	fprintf(stderr, "   %zu of 1024 centroids in use\n", live);
	CHECK(live >= 1000);
	rv_pq_free(a);
	rv_pq_free(b);
	rv_pq_free(c);
	free(v);
}

/* ------------------------------------------------------------------------
 * Serialisation
 * ---------------------------------------------------------------------- */

typedef struct blob_ops {
	const char *name;
	rv_status (*load)(void **out, const void *p, size_t n, const rv_alloc *a, rv_err *e);
	void (*save)(rv_buf *b, const void *q);
	void (*destroy)(void *q);
} blob_ops;

static rv_status ld_sq8(void **o, const void *p, size_t n, const rv_alloc *a, rv_err *e)
{
	return rv_sq8_from_bytes((rv_sq8 **)o, p, n, a, e);
}
static rv_status ld_bq(void **o, const void *p, size_t n, const rv_alloc *a, rv_err *e)
{
	return rv_bq_from_bytes((rv_bq **)o, p, n, a, e);
}
static rv_status ld_pq(void **o, const void *p, size_t n, const rv_alloc *a, rv_err *e)
{
	return rv_pq_from_bytes((rv_pq **)o, p, n, a, e);
}
static void sv_sq8(rv_buf *b, const void *q) { rv_sq8_to_bytes(b, q); }
static void sv_bq(rv_buf *b, const void *q) { rv_bq_to_bytes(b, q); }
static void sv_pq(rv_buf *b, const void *q) { rv_pq_to_bytes(b, q); }
static void fr_sq8(void *q) { rv_sq8_free(q); }
static void fr_bq(void *q) { rv_bq_free(q); }
static void fr_pq(void *q) { rv_pq_free(q); }

static const blob_ops blobs[3] = {
	{ "sq8", ld_sq8, sv_sq8, fr_sq8 },
	{ "binary", ld_bq, sv_bq, fr_bq },
	{ "pq", ld_pq, sv_pq, fr_pq },
};

/* Trains the three quantizers on small data (dim 10, PQ m 4: padded). */
static void train_three(void *q[3], float **data)
{
	size_t n = 300, dim = 10;
	float *v = rv_test_clustered_vectors(n, dim, 3, 31);
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = 4;
	o.iters = 3;
	q[0] = q[1] = q[2] = NULL;
	rv_sq8_train((rv_sq8 **)&q[0], v, n, dim, NULL, NULL);
	rv_bq_train((rv_bq **)&q[1], v, n, dim, NULL, NULL);
	rv_pq_train((rv_pq **)&q[2], v, n, dim, &o, NULL, NULL);
	*data = v;
}

/* Rewrites the checksum so a semantic check, not the hash, must refuse. */
static void reseal(uint8_t *p, size_t n)
{
	rv_put_u64(p + n - 8, rv_hash64(p, n - 8, 0));
}

TEST(serialisation_round_trips_bit_exactly)
{
	void *q[3];
	float *v;
	train_three(q, &v);
	CHECK(q[0] && q[1] && q[2]);
	for (int k = 0; k < 3; k++) {
		rv_buf a, b;
		rv_buf_init(&a, NULL);
		rv_buf_init(&b, NULL);
		rv_buf_u8(&a, 0x77); /* appends after what the buffer holds */
		blobs[k].save(&a, q[k]);
		void *back = NULL;
		rv_err e;
		CHECK_OK(blobs[k].load(&back, a.data + 1, a.len - 1, NULL, &e), NULL);
		blobs[k].save(&b, back);
		CHECK_MSG(!a.failed && b.len == a.len - 1 && memcmp(a.data + 1, b.data, b.len) == 0, "%s", blobs[k].name);
		/* Same codes from the copy. */
		uint8_t c1[64], c2[64];
		for (size_t i = 0; i < 300; i++) {
			if (k == 0) {
				rv_sq8_encode(q[0], v + i * 10, c1);
				rv_sq8_encode(back, v + i * 10, c2);
				CHECK(memcmp(c1, c2, 14) == 0);
			} else if (k == 1) {
				rv_bq_encode(q[1], v + i * 10, c1);
				rv_bq_encode(back, v + i * 10, c2);
				CHECK(memcmp(c1, c2, 8) == 0);
			} else {
				rv_pq_encode(q[2], v + i * 10, c1);
				rv_pq_encode(back, v + i * 10, c2);
				CHECK(memcmp(c1, c2, 4) == 0);
			}
		}
		blobs[k].destroy(back);
		rv_buf_free(&a);
		rv_buf_free(&b);
	}
	for (int k = 0; k < 3; k++)
		blobs[k].destroy(q[k]);
	free(v);
}

TEST(corrupt_parameters_are_refused)
{
	void *q[3];
	float *v;
	train_three(q, &v);
	for (int k = 0; k < 3; k++) {
		rv_buf a;
		rv_buf_init(&a, NULL);
		blobs[k].save(&a, q[k]);
		uint8_t *p = malloc(a.len + 1);
		void *back;
		rv_err e;
		/* Every truncation, one byte too many, every single-bit flip. */
		for (size_t n = 0; n < a.len; n++) {
			memcpy(p, a.data, n);
			CHECK_MSG(blobs[k].load(&back, p, n, NULL, &e) == RV_ECORRUPT && back == NULL, "%s len %zu",
				  blobs[k].name, n);
		}
		memcpy(p, a.data, a.len);
		p[a.len] = 0;
		CHECK(blobs[k].load(&back, p, a.len + 1, NULL, &e) == RV_ECORRUPT);
		for (size_t i = 0; i < a.len * 8; i++) {
			memcpy(p, a.data, a.len);
			p[i / 8] ^= (uint8_t)(1u << (i % 8));
			CHECK_MSG(blobs[k].load(&back, p, a.len, NULL, &e) == RV_ECORRUPT, "%s bit %zu", blobs[k].name, i);
		}
		/* Well-sealed but wrong: version, reserved, dim, a NaN parameter. */
		struct {
			size_t off;
			uint32_t val;
			size_t width;
			const char *msg;
		} bad[] = {
			{ 4, 2, 2, "version 2" },
			{ 6, 1, 2, "reserved" },
			{ 8, 0, 4, "dim 0" },
			{ 8, 13, 4, "" }, /* sizes no longer match (PQ: nor m with dsub) */
			{ 8, RV_MAX_DIM + 1, 4, "16001" },
			{ k == 2 ? 20 : 12, 0x7fc00000, 4, "" },
		};
		for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
			memcpy(p, a.data, a.len);
			if (bad[b].width == 2)
				rv_put_u16(p + bad[b].off, (uint16_t)bad[b].val);
			else
				rv_put_u32(p + bad[b].off, bad[b].val);
			reseal(p, a.len);
			CHECK_MSG(blobs[k].load(&back, p, a.len, NULL, &e) == RV_ECORRUPT && strstr(e.msg, bad[b].msg),
				  "%s case %zu: %s", blobs[k].name, b, e.msg);
		}
		if (k == 0) { /* a zero scale */
			memcpy(p, a.data, a.len);
			rv_put_u32(p + 12 + 40 + 8, 0);
			reseal(p, a.len);
			CHECK(ld_sq8(&back, p, a.len, NULL, &e) == RV_ECORRUPT && strstr(e.msg, "dimension 2"));
		}
		if (k == 2) { /* m that does not fit, a nonzero pad coordinate */
			memcpy(p, a.data, a.len);
			rv_put_u32(p + 12, 5);
			reseal(p, a.len);
			CHECK(ld_pq(&back, p, a.len, NULL, &e) == RV_ECORRUPT && strstr(e.msg, "m 5"));
			memcpy(p, a.data, a.len);
			size_t pad = 20 + ((3 * 256 + 7) * 3 + 2) * 4; /* sub-space 3, centroid 7, coordinate 2 */
			rv_put_u32(p + pad, 0x3f800000);
			reseal(p, a.len);
			CHECK_MSG(ld_pq(&back, p, a.len, NULL, &e) == RV_ECORRUPT && strstr(e.msg, "centroid 7"), "%s", e.msg);
		}
		free(p);
		rv_buf_free(&a);
	}
	for (int k = 0; k < 3; k++)
		blobs[k].destroy(q[k]);
	free(v);
}

/* ------------------------------------------------------------------------
 * Allocation failure
 * ---------------------------------------------------------------------- */

TEST(allocation_failure_gives_enomem_without_leaks)
{
	size_t n = 300, dim = 12;
	float *v = rv_test_clustered_vectors(n, dim, 3, 41);
	rv_pq_opts o = RV_PQ_OPTS_INIT;
	o.m = 3;
	o.iters = 2;
	for (int k = 0; k < 3; k++) {
		rv_buf blob;
		rv_buf_init(&blob, NULL);
		bool done = false;
		for (long fail = 1; !done && fail < 100; fail++) {
			rv_test_alloc t;
			rv_test_alloc_init(&t);
			t.fail_at = fail;
			void *q = NULL;
			rv_err e;
			rv_status st = k == 0 ? rv_sq8_train((rv_sq8 **)&q, v, n, dim, &t.hooks, &e)
				     : k == 1 ? rv_bq_train((rv_bq **)&q, v, n, dim, &t.hooks, &e)
					      : rv_pq_train((rv_pq **)&q, v, n, dim, &o, &t.hooks, &e);
			if (st == RV_OK) {
				done = true;
				CHECK_MSG(t.count == fail - 1, "%s: %ld allocations, failing the %ldth did not fail",
					  blobs[k].name, t.count, fail);
				blobs[k].save(&blob, q);
				if (k == 0) { /* the query object too */
					rv_sq8_query *qq = NULL;
					for (long f2 = 1; f2 <= 2; f2++) {
						t.fail_at = f2;
						long before = t.live;
						CHECK(rv_sq8_query_new(&qq, q, &e) == RV_ENOMEM && qq == NULL);
						CHECK(t.live == before);
					}
					t.fail_at = 0;
					CHECK_OK(rv_sq8_query_new(&qq, q, &e), NULL);
					rv_sq8_query_free(qq);
				}
				blobs[k].destroy(q);
			} else {
				CHECK_MSG(st == RV_ENOMEM && q == NULL, "%s fail at %ld: %s", blobs[k].name, fail,
					  rv_status_str(st));
			}
			CHECK_MSG(t.live == 0, "%s fail at %ld: %ld blocks leaked", blobs[k].name, fail, t.live);
		}
		CHECK(done && !blob.failed);
		/* Loading: the same for every allocation of from_bytes. */
		done = false;
		for (long fail = 1; !done && fail < 100; fail++) {
			rv_test_alloc t;
			rv_test_alloc_init(&t);
			t.fail_at = fail;
			void *q = NULL;
			rv_status st = blobs[k].load(&q, blob.data, blob.len, &t.hooks, NULL);
			if (st == RV_OK) {
				done = true;
				blobs[k].destroy(q);
			} else {
				CHECK(st == RV_ENOMEM && q == NULL);
			}
			CHECK(t.live == 0);
		}
		CHECK(done);
		rv_buf_free(&blob);
	}
	free(v);
}

/* ------------------------------------------------------------------------
 * SQ8 as levels: the u8i8dot kernels and the levels distance
 * ---------------------------------------------------------------------- */

TEST(u8i8dot_kernels_match_scalar)
{
	/* Every kernel set this CPU has, at every length up to 1100 and at
	 * doubling lengths up to what the int8 kernels promise, three
	 * alignments, random bytes and the extremes (255 against -128, 127). */
	const rv_simd_ops *sets[] = { rv_simd_scalar(), rv_simd_avx2(), rv_simd_avx512(), rv_simd_neon() };
	size_t cap = RV_SIMD_I8_MAX + 8;
	uint8_t *u = malloc(cap);
	int8_t *s = malloc(cap);
	rv_rng r;
	rv_rng_seed(&r, 77);
	int checked = 0;
	for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
		if (!sets[k])
			continue;
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < cap; i++) {
				u[i] = pass ? 255 : (uint8_t)rv_rng_below(&r, 256);
				s[i] = pass ? (int8_t)(i % 2 ? -128 : 127) : (int8_t)((int)rv_rng_below(&r, 256) - 128);
			}
			for (size_t n = 1; n <= RV_SIMD_I8_MAX; n = n < 1100 ? n + 1 : n * 2) {
				for (size_t off = 0; off < 3; off++) {
					int32_t want = rv_u8i8dot_scalar(u + off, s + off, n);
					int32_t got = sets[k]->u8i8dot(u + off, s + off, n);
					CHECK_MSG(got == want, "%s: n %zu offset %zu: %d, scalar %d", sets[k]->name, n, off, got,
						  want);
					checked++;
				}
			}
		}
	}
	fprintf(stderr, "   %d comparisons\n", checked);
	CHECK(checked > 6000);
	free(u);
	free(s);
}

TEST(sq8_levels_distance_matches_int8_form)
{
	/* The levels form (code + 128) gives the int8 form's distance, for
	 * every metric, within float rounding of the larger terms. */
	size_t n = 300, dim = 37;
	float *v = rv_test_random_vectors(n + 4, dim, 91);
	rv_sq8 *q;
	rv_err e;
	CHECK_OK(rv_sq8_train(&q, v, n, dim, NULL, &e), NULL);
	rv_sq8_query *qq;
	CHECK_OK(rv_sq8_query_new(&qq, q, &e), NULL);
	uint8_t *code = malloc(dim + 4), *lev = malloc(dim + 4);
	static const rv_metric ms[] = { RV_METRIC_L2, RV_METRIC_IP, RV_METRIC_COSINE };
	for (size_t mi = 0; mi < 3; mi++) {
		CHECK_OK(rv_sq8_query_set(qq, v + (n + mi) * dim, ms[mi], &e), NULL);
		for (size_t i = 0; i < n; i++) {
			rv_sq8_encode(q, v + i * dim, code);
			float norm = rv_sq8_encode_levels(q, v + i * dim, lev);
			memcpy(lev + dim, &norm, 4);
			for (size_t d = 0; d < dim; d++)
				CHECK(lev[d] == (uint8_t)(code[d] ^ 0x80));
			CHECK(memcmp(lev + dim, code + dim, 4) == 0);
			float a = rv_sq8_distance(qq, code), b = rv_sq8_distance_levels(qq, lev);
			CHECK_MSG(fabsf(a - b) <= 1e-4f * (1 + fabsf(a)), "metric %d vector %zu: %g vs %g", (int)ms[mi], i,
				  (double)a, (double)b);
		}
	}
	free(code);
	free(lev);
	rv_sq8_query_free(qq);
	rv_sq8_free(q);
	free(v);
}
