/*
 * bench_hnsw_sq8.c - HNSW search on float vectors vs on SQ8 codes with an
 * exact re-rank, on the index API (src/index/hnsw.h), in one run.
 *
 *   bench_hnsw_sq8 [--data DIR] [--n N] [--queries Q] [--m 16] [--efc 200]
 *                  [--threads 2] [--rerank R]
 *
 * Data: DIR/fashion-mnist-train.fvecs as the base (60,000 x 784, L2) and
 * DIR/fashion-mnist-test.fvecs as queries, with the ground truth
 * DIR/fashion-mnist-gt100.ivecs when the whole base is used. Without the
 * files (or with --n below the file's size) the ground truth is computed
 * by brute force; without them at all, clustered random data stands in
 * (20,000 x 128, 100 clusters).
 *
 * One graph is built; then, for ef in 16, 32, 64, 128, 256, recall@10 and
 * queries per second on one thread (per second of the thread's CPU time,
 * best of three passes, so that other load on the machine matters less), first with float traversal, then with
 * SQ8 traversal + re-rank (rv_hnsw_enable_sq8 with a quantizer trained on
 * the base). Memory per vector: the code row against the float vector.
 * Recall is measured from the results, never assumed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/hnsw.h"
#include "quant/quant.h"
#include "simd/simd.h"

#define K 10

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a shared machine, other processes stretch
 * the wall time of a pass but not its CPU time. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Rows of a .fvecs/.ivecs file (each row: int32 dim, then dim 4-byte
 * values); at most max rows (0 = all). NULL when missing or malformed. */
static void *load_vecs(const char *path, size_t max, size_t *n, size_t *dim)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	int32_t d;
	void *out = NULL;
	if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > 100000)
		goto done;
	fseek(f, 0, SEEK_END);
	long bytes = ftell(f);
	fseek(f, 0, SEEK_SET);
	size_t rows = (size_t)bytes / (4 + 4 * (size_t)d);
	if (max && rows > max)
		rows = max;
	out = malloc(rows * (size_t)d * 4);
	if (!out)
		goto done;
	for (size_t i = 0; i < rows; i++) {
		int32_t rd;
		if (fread(&rd, 4, 1, f) != 1 || rd != d ||
		    fread((char *)out + i * (size_t)d * 4, 4, (size_t)d, f) != (size_t)d) {
			free(out);
			out = NULL;
			goto done;
		}
	}
	*n = rows;
	*dim = (size_t)d;
done:
	fclose(f);
	return out;
}

/* Gaussian clusters, deterministic. */
static float *clustered(size_t n, size_t dim, size_t clusters, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	float *c = malloc(clusters * dim * sizeof *c), *x = malloc(n * dim * sizeof *x);
	for (size_t i = 0; i < clusters * dim; i++)
		c[i] = (float)rv_rng_uniform(&r) * 2 - 1;
	for (size_t i = 0; i < n; i++) {
		size_t ci = (size_t)rv_rng_below(&r, clusters);
		for (size_t d = 0; d < dim; d++)
			x[i * dim + d] = c[ci * dim + d] + 0.15f * rv_rng_gauss(&r);
	}
	free(c);
	return x;
}

/* Exact top K by brute force (L2). */
static int32_t *brute(const float *base, size_t n, const float *q, size_t nq, size_t dim)
{
	int32_t *gt = malloc(nq * K * sizeof *gt);
	rv_dist_fn l2 = rv_simd()->l2sq;
	for (size_t i = 0; i < nq; i++) {
		float bd[K];
		int32_t bi[K];
		size_t nb = 0;
		for (size_t j = 0; j < n; j++) {
			float d = l2(q + i * dim, base + j * dim, dim);
			if (nb == K && d >= bd[K - 1])
				continue;
			size_t p = nb < K ? nb++ : K - 1;
			while (p > 0 && bd[p - 1] > d) {
				bd[p] = bd[p - 1];
				bi[p] = bi[p - 1];
				p--;
			}
			bd[p] = d;
			bi[p] = (int32_t)j;
		}
		memcpy(gt + i * K, bi, sizeof bi);
	}
	return gt;
}

typedef struct result {
	double recall, qps;
} result;

static result run(const rv_hnsw *h, const float *q, size_t nq, size_t dim, const int32_t *gt,
		  size_t gt_stride, size_t ef, rv_hnsw_traverse mode, unsigned rerank)
{
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	o.ef = ef;
	o.traverse = mode;
	o.rerank = rerank;
	rv_hnsw_hit hits[K];
	size_t found = 0;
	double t0 = cpu_now();
	for (size_t i = 0; i < nq; i++) {
		size_t n = 0;
		rv_err e;
		if (rv_hnsw_search_v2(hits, K, &n, h, q + i * dim, K, &o, &e) != RV_OK) {
			fprintf(stderr, "search: %s\n", e.msg);
			exit(1);
		}
		for (size_t a = 0; a < n; a++)
			for (size_t b = 0; b < K; b++)
				if ((int32_t)hits[a].slot == gt[i * gt_stride + b]) {
					found++;
					break;
				}
	}
	double t = cpu_now() - t0;
	return (result){ (double)found / (double)(nq * K), (double)nq / t };
}

int main(int argc, char **argv)
{
	const char *dir = "data";
	size_t max_n = 0, nq_want = 2000;
	unsigned m = 16, efc = 200, threads = 2, rerank = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--data"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--n"))
			max_n = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--queries"))
			nq_want = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--m"))
			m = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--efc"))
			efc = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--threads"))
			threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--rerank"))
			rerank = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}

	char path[4096];
	size_t n = 0, dim = 0, nq = 0, qdim = 0, gn = 0, gdim = 0;
	const char *name = "fashion-mnist";
	snprintf(path, sizeof path, "%s/fashion-mnist-train.fvecs", dir);
	float *base = load_vecs(path, max_n, &n, &dim);
	float *queries = NULL;
	int32_t *gt = NULL;
	size_t gt_stride = K;
	if (base) {
		snprintf(path, sizeof path, "%s/fashion-mnist-test.fvecs", dir);
		queries = load_vecs(path, nq_want, &nq, &qdim);
		if (!queries || qdim != dim) {
			fprintf(stderr, "%s: missing or wrong dimension\n", path);
			return 1;
		}
		snprintf(path, sizeof path, "%s/fashion-mnist-gt100.ivecs", dir);
		if (!max_n || max_n >= 60000)
			gt = load_vecs(path, nq, &gn, &gdim);
		if (gt && (gn != nq || gdim < K)) {
			free(gt);
			gt = NULL;
		}
		if (gt)
			gt_stride = gdim;
	} else {
		name = "clustered random";
		n = max_n ? max_n : 20000;
		dim = 128;
		nq = nq_want;
		float *all = clustered(n + nq, dim, 100, 42);
		base = all;
		queries = malloc(nq * dim * sizeof *queries);
		memcpy(queries, all + n * dim, nq * dim * sizeof *queries);
	}
	if (!gt) {
		fprintf(stderr, "computing ground truth by brute force...\n");
		gt = brute(base, n, queries, nq, dim);
		gt_stride = K;
	}
	printf("data: %s, %zu x %zu, %zu queries, kernels %s (%s)\n", name, n, dim, nq, rv_simd()->name,
	       rv_simd_features());

	const float **ptr = malloc(n * sizeof *ptr);
	for (size_t i = 0; i < n; i++)
		ptr[i] = base + i * dim;
	rv_vecs vecs = { ptr, (uint32_t)n, (uint32_t)dim };
	rv_hnsw_params p = { (uint32_t)dim, RV_METRIC_L2, m, efc, 7 };
	rv_hnsw *h;
	rv_err e;
	uint32_t *slots = malloc(n * sizeof *slots);
	for (size_t i = 0; i < n; i++)
		slots[i] = (uint32_t)i;
	double t0 = now();
	if (rv_hnsw_new(&h, &p, &vecs, NULL, &e) != RV_OK ||
	    rv_hnsw_insert_batch(h, slots, n, threads, NULL, NULL, &e) != RV_OK) {
		fprintf(stderr, "build: %s\n", e.msg);
		return 1;
	}
	printf("build: m %u, ef_construction %u, %u threads: %.1f s\n", m, efc, threads, now() - t0);
	uint64_t mem_float = rv_hnsw_memory(h);

	t0 = now();
	rv_sq8 *q;
	if (rv_sq8_train(&q, base, n, dim, NULL, &e) != RV_OK || rv_hnsw_enable_sq8(h, q, &e) != RV_OK) {
		fprintf(stderr, "sq8: %s\n", e.msg);
		return 1;
	}
	rv_sq8_free(q);
	printf("sq8: train + encode %.2f s; bytes per vector: code row %zu, float vector %zu (%.2fx); "
	       "index memory %.1f MiB -> %.1f MiB\n",
	       now() - t0, rv_hnsw_sq8_code_bytes(h), dim * sizeof(float),
	       (double)(dim * sizeof(float)) / (double)rv_hnsw_sq8_code_bytes(h), mem_float / 1048576.0,
	       rv_hnsw_memory(h) / 1048576.0);

	static const size_t efs[] = { 16, 32, 64, 128, 256 };
	unsigned rfs[3] = { 2, RV_HNSW_RERANK_DEFAULT, 8 };
	size_t nrf = 3;
	if (rerank) {
		rfs[0] = rerank;
		nrf = 1;
	}
	printf("\nrecall@%d and QPS (1 thread, CPU time); SQ8 rf R keeps max(ef, R * k) candidates\n"
	       "and re-ranks the best R * k exactly (default R = %d)\n\n",
	       K, RV_HNSW_RERANK_DEFAULT);
	printf("| ef  | traversal  | recall@10 |   QPS | vs float |\n");
	printf("|-----|------------|-----------|-------|----------|\n");
	for (size_t i = 0; i < sizeof efs / sizeof *efs; i++) {
		/* Alternating passes, best of three for each: the machine may be
		 * shared, and the least disturbed pass is the fastest. */
		result f = { 0, 0 }, s[3] = { { 0, 0 } };
		for (int pass = 0; pass < 3; pass++) {
			result a = run(h, queries, nq, dim, gt, gt_stride, efs[i], RV_HNSW_TRAVERSE_FLOAT, 1);
			if (a.qps > f.qps)
				f = a;
			for (size_t j = 0; j < nrf; j++) {
				result b = run(h, queries, nq, dim, gt, gt_stride, efs[i], RV_HNSW_TRAVERSE_SQ8,
					       rfs[j]);
				if (b.qps > s[j].qps)
					s[j] = b;
			}
		}
		printf("| %3zu | float      | %9.4f | %5.0f |          |\n", efs[i], f.recall, f.qps);
		for (size_t j = 0; j < nrf; j++)
			printf("| %3zu | sq8 rf %-3u | %9.4f | %5.0f | %7.2fx |\n", efs[i], rfs[j], s[j].recall,
			       s[j].qps, s[j].qps / f.qps);
	}

	rv_hnsw_free(h);
	free(slots);
	free(ptr);
	free(gt);
	free(queries);
	free(base);
	return 0;
}
