/*
 * bench_concurrent.c - search latency while a large upsert runs, and a
 * search-only workload to count instructions of the search path.
 *
 *   bench_concurrent latency [base batch dim readers]
 *       Creates a collection of `base` random clustered points, then one
 *       thread upserts `batch` more in a single call while `readers`
 *       threads search (k 10) back to back. Prints the search latency
 *       percentiles during the upsert, how many searches completed inside
 *       the call, and the same percentiles with no upsert running.
 *   bench_concurrent search [n queries dim]
 *       Builds a collection of n points, then runs `queries` searches on
 *       one thread: the workload for
 *       valgrind --tool=callgrind --toggle-collect=rv_hnsw_search_v2
 *
 * Uses the public API only, so the same source measures any build of the
 * library. Data are uniform points around 64 random centres, seeded.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ruvector.h"

#define CENTRES 64
#define MAX_READERS 8
#define MAX_SAMPLES 2000000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: good enough for test data, and seedable. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rng_unit(uint64_t *s) { return (float)((rng_next(s) >> 40) * 0x1.0p-24) * 2.0f - 1.0f; }

/* n points of dim floats: a random centre each, plus noise of 0.3. */
static float *make_points(size_t n, size_t dim, uint64_t seed)
{
	uint64_t s = seed;
	float *c = malloc(CENTRES * dim * sizeof *c), *v = malloc(n * dim * sizeof *v);
	if (!c || !v) {
		free(c);
		free(v);
		return NULL;
	}
	for (size_t i = 0; i < CENTRES * dim; i++)
		c[i] = rng_unit(&s);
	for (size_t i = 0; i < n; i++) {
		const float *ci = c + (rng_next(&s) % CENTRES) * dim;
		for (size_t d = 0; d < dim; d++)
			v[i * dim + d] = ci[d] + 0.3f * rng_unit(&s);
	}
	free(c);
	return v;
}

static rv_status upsert_range(rv_db *db, const float *v, size_t from, size_t to, size_t dim)
{
	size_t n = to - from;
	rv_point *p = calloc(n, sizeof *p);
	char (*ids)[16] = calloc(n, 16);
	if (!p || !ids) {
		free(p);
		free(ids);
		return RV_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], 16, "%zu", from + i);
		p[i] = (rv_point){ .id = ids[i], .vector = v + (from + i) * dim };
	}
	rv_status st = rv_db_upsert(db, p, n);
	free(p);
	free(ids);
	return st;
}

typedef struct run {
	rv_db *db;
	const float *queries;
	size_t nq, dim;
	atomic_int phase;      /* 0 wait, 1 measure, 2 stop */
	double *lat[MAX_READERS];
	size_t n_lat[MAX_READERS];
	atomic_long failed;
} run;

typedef struct reader_arg {
	run *r;
	unsigned id;
} reader_arg;

static void *reader(void *p)
{
	reader_arg *a = p;
	run *r = a->r;
	while (atomic_load(&r->phase) == 0)
		;
	for (size_t q = a->id; atomic_load(&r->phase) == 1; q += MAX_READERS) {
		rv_search_opts o = RV_SEARCH_OPTS_INIT;
		o.k = 10;
		rv_results *res = NULL;
		double t0 = now_s();
		if (rv_db_search(&res, r->db, r->queries + (q % r->nq) * r->dim, &o) != RV_OK)
			atomic_fetch_add(&r->failed, 1);
		double t1 = now_s();
		rv_results_free(res);
		if (r->n_lat[a->id] < MAX_SAMPLES)
			r->lat[a->id][r->n_lat[a->id]++] = t1 - t0;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Gather the readers' samples and print the percentiles. */
static void report(const char *what, run *r, unsigned readers, double seconds)
{
	size_t n = 0;
	for (unsigned i = 0; i < readers; i++)
		n += r->n_lat[i];
	double *all = malloc((n ? n : 1) * sizeof *all);
	if (!all)
		return;
	size_t k = 0;
	for (unsigned i = 0; i < readers; i++) {
		memcpy(all + k, r->lat[i], r->n_lat[i] * sizeof *all);
		k += r->n_lat[i];
		r->n_lat[i] = 0;
	}
	qsort(all, n, sizeof *all, cmp_double);
	if (n == 0) {
		printf("%-28s no search completed in %.3f s\n", what, seconds);
	} else {
		printf("%-28s %8zu searches in %7.3f s   p50 %8.3f ms   p99 %8.3f ms   max %8.3f ms\n", what, n,
		       seconds, all[n / 2] * 1e3, all[(size_t)((double)(n - 1) * 0.99)] * 1e3, all[n - 1] * 1e3);
	}
	free(all);
}

/* Readers measure while body runs (or for `idle` seconds when body is
 * NULL). */
static void measure(const char *what, run *r, unsigned readers, rv_status (*body)(void *), void *ctx,
		    double idle)
{
	pthread_t th[MAX_READERS];
	reader_arg args[MAX_READERS];
	atomic_store(&r->phase, 0);
	for (unsigned i = 0; i < readers; i++) {
		args[i] = (reader_arg){ r, i };
		pthread_create(&th[i], NULL, reader, &args[i]);
	}
	double t0 = now_s();
	atomic_store(&r->phase, 1);
	if (body) {
		if (body(ctx) != RV_OK)
			fprintf(stderr, "upsert failed: %s\n", rv_errmsg(r->db));
	} else {
		while (now_s() - t0 < idle)
			usleep(1000);
	}
	double t1 = now_s();
	atomic_store(&r->phase, 2);
	for (unsigned i = 0; i < readers; i++)
		pthread_join(th[i], NULL);
	report(what, r, readers, t1 - t0);
}

typedef struct upsert_job {
	rv_db *db;
	const float *v;
	size_t from, to, dim;
} upsert_job;

static rv_status upsert_body(void *p)
{
	upsert_job *j = p;
	return upsert_range(j->db, j->v, j->from, j->to, j->dim);
}

static rv_db *create(const char *path, size_t dim)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = (uint32_t)dim;
	o.metric = RV_METRIC_L2;
	o.threads = 1;
	rv_db *db = NULL;
	unlink(path);
	if (rv_db_create(&db, path, &o) != RV_OK) {
		fprintf(stderr, "create %s: %s\n", path, db ? rv_errmsg(db) : "out of memory");
		rv_db_close(db);
		return NULL;
	}
	return db;
}

static int latency(size_t base, size_t batch, size_t dim, unsigned readers)
{
	const char *path = "/tmp/bench_concurrent.rvf";
	size_t nq = 1000;
	float *v = make_points(base + batch + nq, dim, 1);
	rv_db *db = v ? create(path, dim) : NULL;
	if (!db || upsert_range(db, v, 0, base, dim) != RV_OK) {
		free(v);
		rv_db_close(db);
		return 1;
	}
	run r = { .db = db, .queries = v + (base + batch) * dim, .nq = nq, .dim = dim };
	for (unsigned i = 0; i < readers; i++)
		r.lat[i] = malloc(MAX_SAMPLES * sizeof(double));
	printf("collection of %zu points, dim %zu; one upsert of %zu points; %u search threads, k 10\n", base,
	       dim, batch, readers);
	upsert_job j = { db, v, base, base + batch, dim };
	measure("searches during the upsert", &r, readers, upsert_body, &j, 0);
	measure("searches with no writer", &r, readers, NULL, NULL, 1.0);
	if (atomic_load(&r.failed))
		printf("%ld searches failed\n", atomic_load(&r.failed));
	for (unsigned i = 0; i < readers; i++)
		free(r.lat[i]);
	rv_db_close(db);
	unlink(path);
	free(v);
	return 0;
}

static int search_only(size_t n, size_t queries, size_t dim)
{
	const char *path = "/tmp/bench_concurrent_search.rvf";
	float *v = make_points(n + 1000, dim, 2);
	rv_db *db = v ? create(path, dim) : NULL;
	if (!db || upsert_range(db, v, 0, n, dim) != RV_OK) {
		free(v);
		rv_db_close(db);
		return 1;
	}
	double t0 = now_s(), sum = 0;
	for (size_t q = 0; q < queries; q++) {
		rv_search_opts o = RV_SEARCH_OPTS_INIT;
		o.k = 10;
		rv_results *res = NULL;
		if (rv_db_search(&res, db, v + (n + q % 1000) * dim, &o) != RV_OK) {
			fprintf(stderr, "search: %s\n", rv_errmsg(db));
			break;
		}
		/* Use the result, so the work cannot be left out. */
		if (rv_results_count(res))
			sum += rv_results_hits(res)[0].score;
		rv_results_free(res);
	}
	printf("%zu searches over %zu points (dim %zu) in %.3f s (checksum %.3f)\n", queries, n, dim,
	       now_s() - t0, sum);
	rv_db_close(db);
	unlink(path);
	free(v);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "latency";
	if (strcmp(mode, "latency") == 0) {
		size_t base = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
		size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 20000;
		size_t dim = argc > 4 ? strtoul(argv[4], NULL, 10) : 32;
		unsigned readers = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 1;
		if (readers < 1 || readers > MAX_READERS || dim < 1 || base < 10) {
			fprintf(stderr, "readers 1..%d, dim >= 1, base >= 10\n", MAX_READERS);
			return 2;
		}
		return latency(base, batch, dim, readers);
	}
	if (strcmp(mode, "search") == 0) {
		size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
		size_t queries = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;
		size_t dim = argc > 4 ? strtoul(argv[4], NULL, 10) : 32;
		if (n < 10 || dim < 1) {
			fprintf(stderr, "n >= 10, dim >= 1\n");
			return 2;
		}
		return search_only(n, queries, dim);
	}
	fprintf(stderr, "usage: %s latency [base batch dim readers] | search [n queries dim]\n", argv[0]);
	return 2;
}
