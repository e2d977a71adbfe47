/*
 * bench_search.c - build, open and search speed and recall of ruvector on
 * one data set: by default Fashion-MNIST (60,000 train images as 784-d L2
 * vectors, 10,000 test images as queries), the data set of ann-benchmarks'
 * fashion-mnist-784-euclidean; any other with --base/--query/--gt.
 *
 *   bench_search [--m 16] [--efc 200] [--threads 2] [--queries 10000]
 *                [--data DIR] [--db FILE.rvf] [--out FILE.md]
 *                [--base B.fvecs --query Q.fvecs --gt GT.ivecs]
 *                [--metric l2|cosine|ip] [--name NAME] [--json FILE]
 *                [--efs 10,20,40,80,120,200,400,800]
 *                [--quant none|sq8|binary|pq] [--rerank R] [--pq-subspaces M]
 *                [--engine NAME]
 *
 * Reads DIR/fashion-mnist-{train,test}.fvecs and DIR/fashion-mnist-gt100.ivecs
 * (scripts/data.sh fashion) unless --base, --query and --gt name the files
 * (the ground truth must have been computed for --metric, default l2).
 * Measures, through the public API only:
 *   - build: create + one batch upsert of all train vectors on --threads
 *     threads; commit; file size; close and reopen (the graph is loaded);
 *   - for each ef in --efs (default 10, 20, 40, 80, 120, 200, 400, 800): recall@10 against
 *     the exact ground truth (first 10 of the 100 stored per query), queries
 *     per second on one thread, p50 and p99 latency;
 *   - the exact scan (RV_SEARCH_EXACT) on a subset, as the baseline;
 *   - memory: rv_stats.memory_bytes (the handle's heap), rv_stats.index_bytes
 *     (graph + codes; the mapped vectors excluded) and the peak RSS.
 * --quant creates a quantized collection (traversal on codes, rerank * k
 * exact re-ranks; the engine is then named ruvector-<quant> unless
 * --engine names it). Recall is always measured from the results, never
 * assumed. --out also
 * writes the tables as Markdown; --json writes one JSON object per line (a
 * "build" record, then one "search" record per ef) for scripts/bench.sh,
 * tagged with --name as the data set.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ruvector.h"

#ifndef RV_DATA_DIR
#define RV_DATA_DIR "data"
#endif
#ifndef RV_BIN_DIR
#define RV_BIN_DIR "."
#endif

#define RECALL_K 10
#define EXACT_QUERIES 200 /* the baseline scan is slow; a subset is enough */

/* The ef sweep: this default unless --efs gives another list. */
#define MAX_EF 32
static uint32_t ef_list[MAX_EF] = { 10, 20, 40, 80, 120, 200, 400, 800 };
static size_t N_EF = 8;

typedef struct vecs {
	void *v; /* float or int32 rows */
	size_t n, dim;
} vecs;

typedef struct row {
	const char *what; /* "ef=10", "exact" */
	uint32_t ef;
	size_t queries;
	double recall, qps, p50_us, p99_us;
	double qps_cpu; /* queries per second of the thread's CPU time */
} row;

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a shared machine, time slices lost to
 * other processes stretch the wall time of a query but not its CPU time. */
static double cpu_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* .fvecs / .ivecs: per row an int32 dimension then that many 4-byte values. */
static int load_vecs(vecs *out, const char *dir, const char *name, const char *given)
{
	int rc = -1;
	char path[4096];
	if (given)
		snprintf(path, sizeof path, "%s", given);
	else
		snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_search: cannot open %s: %s\n"
			"  run ./scripts/data.sh fashion (or scripts/bench.sh) to prepare the data\n",
			path, strerror(errno));
		return -1;
	}
	int32_t d = 0;
	long bytes = -1;
	if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > RV_MAX_DIM || fseek(f, 0, SEEK_END) != 0 ||
	    (bytes = ftell(f)) < 0) {
		fprintf(stderr, "bench_search: %s: not a vecs file\n", path);
		goto done;
	}
	size_t rowb = 4 + 4 * (size_t)d;
	if ((size_t)bytes % rowb != 0) {
		fprintf(stderr, "bench_search: %s: %ld bytes is not a whole number of rows of "
			"dimension %d\n", path, bytes, (int)d);
		goto done;
	}
	out->n = (size_t)bytes / rowb;
	out->dim = (size_t)d;
	out->v = malloc(out->n * out->dim * 4);
	if (!out->v) {
		fprintf(stderr, "bench_search: out of memory loading %s\n", path);
		goto done;
	}
	rewind(f);
	for (size_t i = 0; i < out->n; i++) {
		int32_t di;
		if (fread(&di, 4, 1, f) != 1 || di != d ||
		    fread((char *)out->v + i * out->dim * 4, 4, out->dim, f) != out->dim) {
			fprintf(stderr, "bench_search: %s: bad row %zu\n", path, i);
			goto done;
		}
	}
	rc = 0;
done:
	fclose(f);
	if (rc != 0) {
		free(out->v);
		out->v = NULL;
	}
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Run nq queries one after the other on this thread; fill r. */
static int run_queries(row *r, rv_db *db, const vecs *test, const vecs *gt, size_t nq,
		       uint32_t ef, unsigned flags, double *lat)
{
	const int32_t *truth = gt->v;
	size_t found = 0;
	double total = 0, cpu0 = cpu_sec();
	for (size_t q = 0; q < nq; q++) {
		rv_search_opts so = RV_SEARCH_OPTS_INIT;
		so.k = RECALL_K;
		so.ef = ef;
		so.flags = flags;
		long got[RECALL_K];
		size_t ngot = 0;
		rv_results *res = NULL;
		double t0 = now_sec();
		rv_status st = rv_db_search(&res, db, (const float *)test->v + q * test->dim, &so);
		if (st == RV_OK) {
			const rv_hit *h = rv_results_hits(res);
			ngot = rv_results_count(res);
			for (size_t i = 0; i < ngot && i < RECALL_K; i++)
				got[i] = strtol(h[i].id, NULL, 10);
		}
		rv_results_free(res);
		double t = now_sec() - t0;
		if (st != RV_OK) {
			fprintf(stderr, "bench_search: query %zu: %s\n", q, rv_errmsg(db));
			return -1;
		}
		lat[q] = t;
		total += t;
		const int32_t *want = truth + q * gt->dim;
		for (size_t i = 0; i < ngot && i < RECALL_K; i++)
			for (size_t j = 0; j < RECALL_K; j++)
				if (got[i] == want[j]) {
					found++;
					break;
				}
	}
	/* The whole loop's CPU time, recall counting included: a little
	 * more than the searches alone, never less. */
	double cpu = cpu_sec() - cpu0;
	qsort(lat, nq, sizeof *lat, cmp_double);
	r->qps_cpu = cpu > 0 ? (double)nq / cpu : 0;
	r->ef = ef;
	r->queries = nq;
	r->recall = (double)found / (double)(nq * RECALL_K);
	r->qps = (double)nq / total;
	r->p50_us = lat[nq / 2] * 1e6;
	r->p99_us = lat[(size_t)((double)(nq - 1) * 0.99)] * 1e6;
	return 0;
}

/* The 1-minute load average, or -1: QPS on a shared machine means little
 * without it. */
static double load_average(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int parse_uint(const char *s, const char *name, unsigned long lo, unsigned long hi,
		      unsigned long *out);

/* "10,20,40": up to MAX_EF values of 1..100000 into ef_list. */
static int parse_efs(const char *s)
{
	size_t n = 0;
	const char *p = s;
	while (*p) {
		char tok[16];
		size_t len = strcspn(p, ",");
		unsigned long v;
		if (len == 0 || len >= sizeof tok || n == MAX_EF) {
			fprintf(stderr, "bench_search: --efs must be up to %d comma-separated values, "
				"got \"%s\"\n", MAX_EF, s);
			return -1;
		}
		memcpy(tok, p, len);
		tok[len] = 0;
		if (parse_uint(tok, "each --efs value", 1, 100000, &v) != 0)
			return -1;
		ef_list[n++] = (uint32_t)v;
		p += len;
		if (*p == ',')
			p++;
	}
	if (n == 0) {
		fprintf(stderr, "bench_search: --efs is empty\n");
		return -1;
	}
	N_EF = n;
	return 0;
}

static int parse_uint(const char *s, const char *name, unsigned long lo, unsigned long hi,
		      unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		fprintf(stderr, "bench_search: %s must be %lu..%lu, got \"%s\"\n", name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 1;
	unsigned long m = 16, efc = 200, threads = 2, nq_opt = 10000, rerank = 0, pq_m = 0;
	rv_quant quant = RV_QUANT_NONE;
	const char *engine = NULL;
	char engine_buf[64];
	const char *dir = RV_DATA_DIR, *out_md = NULL, *out_json = NULL;
	const char *base_path = NULL, *query_path = NULL, *gt_path = NULL;
	const char *name = "fashion-mnist-784-euclidean", *metric_name = "l2";
	rv_metric metric = RV_METRIC_L2;
	int name_given = 0;
	const char *path = RV_BIN_DIR "/bench/fashion-mnist.rvf";
	vecs train = { 0 }, test = { 0 }, gt = { 0 };
	rv_point *pts = NULL;
	char (*ids)[24] = NULL;
	double *lat = NULL;
	rv_db *db = NULL;
	FILE *md = NULL, *js = NULL;

	/* Every option takes a value: options sit at odd positions. */
	for (int a = 1; a < argc; a += 2) {
		const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
		int bad = 0;
		if (!val)
			bad = 1;
		else if (strcmp(arg, "--m") == 0)
			bad = parse_uint(val, "--m", 2, 128, &m);
		else if (strcmp(arg, "--efc") == 0)
			bad = parse_uint(val, "--efc", 1, 100000, &efc);
		else if (strcmp(arg, "--threads") == 0)
			bad = parse_uint(val, "--threads", 0, 1024, &threads);
		else if (strcmp(arg, "--queries") == 0)
			bad = parse_uint(val, "--queries", 1, 1000000, &nq_opt);
		else if (strcmp(arg, "--data") == 0)
			dir = val;
		else if (strcmp(arg, "--db") == 0)
			path = val;
		else if (strcmp(arg, "--out") == 0)
			out_md = val;
		else if (strcmp(arg, "--json") == 0)
			out_json = val;
		else if (strcmp(arg, "--efs") == 0)
			bad = parse_efs(val);
		else if (strcmp(arg, "--rerank") == 0)
			bad = parse_uint(val, "--rerank", 0, RV_RERANK_MAX, &rerank);
		else if (strcmp(arg, "--pq-subspaces") == 0)
			bad = parse_uint(val, "--pq-subspaces", 0, RV_MAX_DIM, &pq_m);
		else if (strcmp(arg, "--engine") == 0)
			engine = val;
		else if (strcmp(arg, "--quant") == 0) {
			if (strcmp(val, "none") == 0)
				quant = RV_QUANT_NONE;
			else if (strcmp(val, "sq8") == 0)
				quant = RV_QUANT_SQ8;
			else if (strcmp(val, "binary") == 0)
				quant = RV_QUANT_BINARY;
			else if (strcmp(val, "pq") == 0)
				quant = RV_QUANT_PQ;
			else {
				fprintf(stderr, "bench_search: --quant must be none, sq8, binary or pq, got \"%s\"\n",
					val);
				bad = 1;
			}
		}
		else if (strcmp(arg, "--base") == 0)
			base_path = val;
		else if (strcmp(arg, "--query") == 0)
			query_path = val;
		else if (strcmp(arg, "--gt") == 0)
			gt_path = val;
		else if (strcmp(arg, "--name") == 0) {
			name = val;
			name_given = 1;
		}
		else if (strcmp(arg, "--metric") == 0) {
			metric_name = val;
			if (strcmp(val, "l2") == 0)
				metric = RV_METRIC_L2;
			else if (strcmp(val, "cosine") == 0)
				metric = RV_METRIC_COSINE;
			else if (strcmp(val, "ip") == 0)
				metric = RV_METRIC_IP;
			else {
				fprintf(stderr, "bench_search: --metric must be l2, cosine or ip, "
					"got \"%s\"\n", val);
				bad = 1;
			}
		} else
			bad = 1;
		if (bad) {
			fprintf(stderr, "usage: bench_search [--m 16] [--efc 200] [--threads 2] "
				"[--queries 10000] [--data DIR] [--db FILE.rvf] [--out FILE.md]\n"
				"       [--base B.fvecs --query Q.fvecs --gt GT.ivecs] "
				"[--metric l2|cosine|ip] [--name NAME] [--json FILE] [--efs 10,20,...]\n"
				"       [--quant none|sq8|binary|pq] [--rerank R] [--pq-subspaces M] "
				"[--engine NAME]\n");
			return 2;
		}
	}

	if (!base_path != !query_path || !base_path != !gt_path) {
		fprintf(stderr, "bench_search: --base, --query and --gt go together\n");
		return 2;
	}
	if (base_path && strcmp(name, "fashion-mnist-784-euclidean") == 0 && !name_given)
		name = "data";
	if (load_vecs(&train, dir, "fashion-mnist-train.fvecs", base_path) != 0 ||
	    load_vecs(&test, dir, "fashion-mnist-test.fvecs", query_path) != 0 ||
	    load_vecs(&gt, dir, "fashion-mnist-gt100.ivecs", gt_path) != 0)
		goto done;
	if (train.dim != test.dim || gt.n != test.n || gt.dim < RECALL_K) {
		fprintf(stderr, "bench_search: data sets disagree: train dim %zu, test dim %zu, "
			"%zu test rows, %zu ground-truth rows of %zu\n", train.dim, test.dim,
			test.n, gt.n, gt.dim);
		goto done;
	}
	size_t nq = nq_opt < test.n ? nq_opt : test.n;
	long rss_data = peak_rss_kib();

	if (out_md) {
		md = fopen(out_md, "w");
		if (!md) {
			fprintf(stderr, "bench_search: cannot create %s: %s\n", out_md, strerror(errno));
			goto done;
		}
	}
	if (out_json) {
		js = fopen(out_json, "w");
		if (!js) {
			fprintf(stderr, "bench_search: cannot create %s: %s\n", out_json,
				strerror(errno));
			goto done;
		}
	}

	/* ---- build ---- */
	pts = calloc(train.n, sizeof *pts);
	ids = calloc(train.n, sizeof *ids);
	lat = calloc(nq > EXACT_QUERIES ? nq : EXACT_QUERIES, sizeof *lat);
	if (!pts || !ids || !lat) {
		fprintf(stderr, "bench_search: out of memory\n");
		goto done;
	}
	for (size_t i = 0; i < train.n; i++) {
		snprintf(ids[i], sizeof ids[i], "%zu", i);
		pts[i] = (rv_point){ .id = ids[i], .vector = (const float *)train.v + i * train.dim };
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		fprintf(stderr, "bench_search: cannot remove %s: %s\n", path, strerror(errno));
		goto done;
	}
	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.dim = (uint32_t)train.dim;
	oo.metric = metric;
	oo.m = (uint32_t)m;
	oo.ef_construction = (uint32_t)efc;
	oo.threads = (unsigned)threads;
	oo.quant = quant;
	oo.rerank = (uint32_t)rerank;
	oo.pq_subspaces = (uint32_t)pq_m;
	if (!engine) {
		snprintf(engine_buf, sizeof engine_buf, "ruvector%s%s", quant ? "-" : "",
			 quant ? rv_quant_name(quant) : "");
		engine = engine_buf;
	}

	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	double load0 = load_average();
	printf("%s %s, %s (%s, dim %zu): %zu vectors, %zu queries, kernels %s, quantizer %s\n"
	       "%ld cores, load average %.2f at the start\n",
	       engine, RV_VERSION_STRING, name, metric_name, train.dim, train.n, nq, rv_simd_name(),
	       rv_quant_name(quant), cores, load0);
	if (md)
		fprintf(md, "# ruvector %s on %s\n\n"
			"%zu train vectors, %zu test queries, distance kernels `%s`, "
			"%ld cores, load average %.2f at the start.\n\n",
			RV_VERSION_STRING, name, train.n, nq, rv_simd_name(), cores, load0);

	double t0 = now_sec();
	rv_status st = rv_db_create(&db, path, &oo);
	if (st == RV_OK)
		st = rv_db_upsert(db, pts, train.n);
	double t_build = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "bench_search: build: %s: %s\n", rv_status_str(st),
			db ? rv_errmsg(db) : "out of memory");
		goto done;
	}
	t0 = now_sec();
	st = rv_db_commit(db);
	double t_commit = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "bench_search: commit: %s\n", rv_errmsg(db));
		goto done;
	}
	rv_db_close(db);
	db = NULL;
	t0 = now_sec();
	st = rv_db_open(&db, path, &oo);
	double t_open = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "bench_search: open: %s: %s\n", rv_status_str(st),
			db ? rv_errmsg(db) : "out of memory");
		goto done;
	}
	rv_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	if (rv_db_stats(&s, db) != RV_OK) {
		fprintf(stderr, "bench_search: stats: %s\n", rv_errmsg(db));
		goto done;
	}
	if (s.count != train.n) {
		fprintf(stderr, "bench_search: reopened collection has %llu points, expected %zu\n",
			(unsigned long long)s.count, train.n);
		goto done;
	}

	printf("\n  build\n");
	printf("  %-32s %10.2f s   (m=%lu, ef_construction=%lu, %lu threads, %.1f us/vector)\n",
	       "create + upsert", t_build, m, efc, threads, t_build * 1e6 / (double)train.n);
	printf("  %-32s %10.3f s\n", "commit", t_commit);
	printf("  %-32s %10.1f MiB (%.0f bytes/vector)\n", "file size",
	       (double)s.file_bytes / (1 << 20), (double)s.file_bytes / (double)train.n);
	printf("  %-32s %10.1f ms  (graph loaded, %u levels)\n", "open (close + reopen)",
	       t_open * 1e3, s.graph_levels);
	if (md)
		fprintf(md, "## Build\n\n| step | result |\n|---|---|\n"
			"| create + upsert (m = %lu, ef_construction = %lu, %lu threads) | "
			"%.2f s (%.1f us/vector) |\n"
			"| commit | %.3f s |\n| file size | %.1f MiB (%.0f bytes/vector) |\n"
			"| open (close + reopen) | %.1f ms |\n",
			m, efc, threads, t_build, t_build * 1e6 / (double)train.n, t_commit,
			(double)s.file_bytes / (1 << 20), (double)s.file_bytes / (double)train.n,
			t_open * 1e3);

	/* ---- search ---- */
	row rows[MAX_EF + 1];
	printf("\n  search, one thread, k=%d, %zu queries\n", RECALL_K, nq);
	printf("  %-10s %10s %12s %12s %12s %12s\n", "ef", "recall@10", "QPS", "QPS (CPU)", "p50 us", "p99 us");
	if (md)
		fprintf(md, "\n## Search, one thread, k = %d\n\n"
			"| ef | recall@10 | QPS | p50 (us) | p99 (us) | queries |\n"
			"|---:|---:|---:|---:|---:|---:|\n", RECALL_K);
	/* Warm the caches and the mapped file once, untimed. */
	if (run_queries(&rows[0], db, &test, &gt, nq < 200 ? nq : 200, ef_list[0], 0, lat) != 0)
		goto done;
	for (size_t e = 0; e < N_EF; e++) {
		if (run_queries(&rows[e], db, &test, &gt, nq, ef_list[e], 0, lat) != 0)
			goto done;
		printf("  %-10u %10.4f %12.0f %12.0f %12.1f %12.1f\n", ef_list[e], rows[e].recall,
		       rows[e].qps, rows[e].qps_cpu, rows[e].p50_us, rows[e].p99_us);
		fflush(stdout);
		if (md)
			fprintf(md, "| %u | %.4f | %.0f | %.1f | %.1f | %zu |\n", ef_list[e],
				rows[e].recall, rows[e].qps, rows[e].p50_us, rows[e].p99_us, nq);
		if (js)
			fprintf(js, "{\"dataset\":\"%s\",\"engine\":\"%s\",\"kind\":\"search\","
				"\"ef\":%u,\"recall\":%.4f,\"qps\":%.1f,\"qps_cpu\":%.1f,\"p50_us\":%.1f,"
				"\"p99_us\":%.1f,\"queries\":%zu}\n", name, engine, ef_list[e],
				rows[e].recall, rows[e].qps, rows[e].qps_cpu, rows[e].p50_us, rows[e].p99_us, nq);
	}
	size_t ne = nq < EXACT_QUERIES ? nq : EXACT_QUERIES;
	if (run_queries(&rows[N_EF], db, &test, &gt, ne, 0, RV_SEARCH_EXACT, lat) != 0)
		goto done;
	printf("  %-10s %10.4f %12.0f %12.1f %12.1f   (first %zu queries)\n", "exact",
	       rows[N_EF].recall, rows[N_EF].qps, rows[N_EF].p50_us, rows[N_EF].p99_us, ne);
	if (md)
		fprintf(md, "| exact scan | %.4f | %.0f | %.1f | %.1f | %zu |\n", rows[N_EF].recall,
			rows[N_EF].qps, rows[N_EF].p50_us, rows[N_EF].p99_us, ne);

	/* ---- memory ---- */
	if (rv_db_stats(&s, db) != RV_OK) {
		fprintf(stderr, "bench_search: stats: %s\n", rv_errmsg(db));
		goto done;
	}
	long rss_end = peak_rss_kib();
	printf("\n  %-32s %10.1f MiB (%.0f bytes/vector; the mapped file excluded)\n",
	       "memory held by the handle", (double)s.memory_bytes / (1 << 20),
	       (double)s.memory_bytes / (double)train.n);
	printf("  %-32s %10.1f MiB (%.0f bytes/vector: graph + codes of %u bytes; quantizer %s)\n",
	       "of which the index", (double)s.index_bytes / (1 << 20),
	       (double)s.index_bytes / (double)train.n, s.code_bytes, s.quant);
	printf("  %-32s %10.1f MiB (%.1f MiB of it the benchmark's own copy of the data)\n",
	       "peak RSS of the process", (double)rss_end / 1024, (double)rss_data / 1024);
	if (md)
		fprintf(md, "\n## Memory\n\n| what | MiB |\n|---|---:|\n"
			"| held by the handle (rv_stats.memory_bytes) | %.1f |\n"
			"| peak RSS of the process | %.1f |\n"
			"| of which the benchmark's copy of the data | %.1f |\n",
			(double)s.memory_bytes / (1 << 20), (double)rss_end / 1024,
			(double)rss_data / 1024);
	printf("  %-32s %10.2f\n", "load average at the end", load_average());
	char settings[128] = "";
	if (quant)
		snprintf(settings, sizeof settings, "%s codes of %u bytes per vector in memory, rerank %u",
			 rv_quant_name(quant), s.code_bytes, s.rerank);
	if (js)
		fprintf(js, "{\"dataset\":\"%s\",\"engine\":\"%s\",\"kind\":\"build\","
			"\"version\":\"%s\",\"n\":%zu,\"dim\":%zu,\"metric\":\"%s\","
			"\"m\":%lu,\"ef_construction\":%lu,\"threads\":%lu,\"build_s\":%.3f,"
			"\"commit_s\":%.3f,\"index_bytes\":%llu,\"index_what\":\"file\","
			"\"open_ms\":%.2f,\"memory_bytes\":%llu,\"memory_what\":"
			"\"rv_stats.memory_bytes (vectors in the mapped file)\","
			"\"quant\":\"%s\",\"code_bytes\":%u,\"rerank\":%u,\"index_mem_bytes\":%llu,"
			"\"settings\":\"%s\",\"load_start\":%.2f,\"load_end\":%.2f}\n",
			name, engine, RV_VERSION_STRING, train.n, train.dim, metric_name, m, efc, threads,
			t_build, t_commit, (unsigned long long)s.file_bytes, t_open * 1e3,
			(unsigned long long)s.memory_bytes, s.quant, s.code_bytes, s.rerank,
			(unsigned long long)s.index_bytes, settings, load0, load_average());
	if (js && fclose(js) != 0) {
		js = NULL;
		fprintf(stderr, "bench_search: write %s: %s\n", out_json, strerror(errno));
		goto done;
	}
	js = NULL;
	if (md)
		fprintf(md, "\nLoad average at the end: %.2f.\n", load_average());
	if (md && fclose(md) != 0) {
		md = NULL;
		fprintf(stderr, "bench_search: write %s: %s\n", out_md, strerror(errno));
		goto done;
	}
	md = NULL;
	rc = 0;
done:
	if (md)
		fclose(md);
	if (js)
		fclose(js);
	rv_db_close(db);
	free(lat);
	free(ids);
	free(pts);
	free(gt.v);
	free(test.v);
	free(train.v);
	return rc;
}
