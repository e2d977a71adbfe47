/*
 * metrics.c - counters and histograms for GET /metrics, in the Prometheus
 * text exposition format (version 0.0.4).
 *
 * Every request is recorded once, when its response is made: a counter by
 * (route, status code) and a latency histogram by route. Routes are the
 * fixed templates of the route table ("/collections/{name}/points/search"),
 * never raw paths, so the number of series is bounded whatever clients
 * send. All counters are relaxed atomics: workers never wait on each other
 * to count.
 *
 * Names:
 *   ruvector_http_requests_total{method,route,status}        counter
 *   ruvector_http_request_duration_seconds{method,route}     histogram
 *   ruvector_http_requests_in_flight                          gauge
 *   ruvector_collections_open                                 gauge
 *   ruvector_collection_vectors{collection}                   gauge (open collections)
 *   ruvector_collection_file_bytes{collection}                gauge (every file in DIR)
 *   ruvector_collection_feedback_events{collection}           counter (open collections)
 *   ruvector_uptime_seconds                                   gauge
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server_int.h"

static const int statuses[] = { 200, 400, 401, 403, 404, 405, 409, 413, 500, 503 };
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */

static const double bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				 0.1,    0.25,  0.5,    1,     2.5,  5,     10 };
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

struct rv_metrics {
	atomic_uint_fast64_t count[RV_R_N][N_STATUS];
	atomic_uint_fast64_t other_code[RV_R_N]; /* last status outside the list */
	atomic_uint_fast64_t hist[RV_R_N][N_BOUNDS + 1]; /* per bucket, not cumulative */
	atomic_uint_fast64_t sum_us[RV_R_N];
	double started;
};

rv_metrics *rv_metrics_new(void)
{
	rv_metrics *m = rv_calloc(NULL, 1, sizeof *m);
	if (!m)
		return NULL;
	/* Zeroed memory is a valid initial state for these atomics on every
	 * platform we build on; initialise formally all the same. */
	for (size_t r = 0; r < RV_R_N; r++) {
		for (size_t s = 0; s < N_STATUS; s++)
			atomic_init(&m->count[r][s], 0);
		for (size_t b = 0; b <= N_BOUNDS; b++)
			atomic_init(&m->hist[r][b], 0);
		atomic_init(&m->sum_us[r], 0);
		atomic_init(&m->other_code[r], 0);
	}
	m->started = rv_now();
	return m;
}

void rv_metrics_free(rv_metrics *m)
{
	rv_dealloc(NULL, m);
}

void rv_metrics_record(rv_metrics *m, rv_route r, int status, double seconds)
{
	if ((unsigned)r >= RV_R_N)
		r = RV_R_UNKNOWN;
	size_t s = 0;
	while (s < N_STATUS - 1 && statuses[s] != status)
		s++;
	if (s == N_STATUS - 1)
		atomic_store_explicit(&m->other_code[r], (uint_fast64_t)status, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->count[r][s], 1, memory_order_relaxed);
	if (!(seconds >= 0))
		seconds = 0;
	size_t b = 0;
	while (b < N_BOUNDS && seconds > bounds[b])
		b++;
	atomic_fetch_add_explicit(&m->hist[r][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us[r], (uint_fast64_t)llround(seconds * 1e6), memory_order_relaxed);
}

static uint64_t load(atomic_uint_fast64_t *a)
{
	return (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
}

typedef struct coll_ctx {
	rv_buf *out;
	size_t open;
} coll_ctx;

static void write_coll(void *p, rv_coll *c)
{
	coll_ctx *x = p;
	x->open++;
	rv_jw_printf(x->out, "ruvector_collection_vectors{collection=\"%s\"} %llu\n", c->name,
		     (unsigned long long)rv_db_count(c->db));
}

static void write_feedback(void *p, rv_coll *c)
{
	coll_ctx *x = p;
	rv_stats s = RV_STATS_INIT;
	if (rv_db_stats(&s, c->db) == RV_OK)
		rv_jw_printf(x->out, "ruvector_collection_feedback_events{collection=\"%s\"} %llu\n", c->name,
			     (unsigned long long)s.feedback_events);
}

void rv_metrics_write(rv_buf *out, rv_metrics *m, rv_colls *colls, long in_flight)
{
	rv_jw_raw(out, "# HELP ruvector_http_requests_total HTTP requests answered, by route and status code.\n"
		       "# TYPE ruvector_http_requests_total counter\n");
	for (size_t r = 0; r < RV_R_N; r++)
		for (size_t s = 0; s < N_STATUS; s++) {
			uint64_t n = load(&m->count[r][s]);
			if (!n)
				continue;
			int code = s < N_STATUS - 1 ? statuses[s] : (int)load(&m->other_code[r]);
			rv_jw_printf(out, "ruvector_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
				     rv_route_method((rv_route)r), rv_route_path((rv_route)r), code,
				     (unsigned long long)n);
		}
	rv_jw_raw(out, "# HELP ruvector_http_request_duration_seconds Time from request to response, by route.\n"
		       "# TYPE ruvector_http_request_duration_seconds histogram\n");
	for (size_t r = 0; r < RV_R_N; r++) {
		uint64_t cum = 0, per[N_BOUNDS + 1];
		for (size_t b = 0; b <= N_BOUNDS; b++)
			cum += per[b] = load(&m->hist[r][b]);
		if (!cum)
			continue;
		const char *meth = rv_route_method((rv_route)r), *path = rv_route_path((rv_route)r);
		uint64_t run = 0;
		for (size_t b = 0; b <= N_BOUNDS; b++) {
			run += per[b];
			char le[32];
			if (b < N_BOUNDS)
				snprintf(le, sizeof le, "%g", bounds[b]);
			else
				snprintf(le, sizeof le, "+Inf");
			rv_jw_printf(out,
				     "ruvector_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%s\"} "
				     "%llu\n",
				     meth, path, le, (unsigned long long)run);
		}
		rv_jw_printf(out, "ruvector_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", meth,
			     path, (double)load(&m->sum_us[r]) / 1e6);
		rv_jw_printf(out, "ruvector_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
			     meth, path, (unsigned long long)cum);
	}
	rv_jw_printf(out,
		     "# HELP ruvector_http_requests_in_flight Requests received and not yet answered.\n"
		     "# TYPE ruvector_http_requests_in_flight gauge\n"
		     "ruvector_http_requests_in_flight %ld\n",
		     in_flight);
	rv_jw_raw(out, "# HELP ruvector_collection_vectors Live points of each open collection.\n"
		       "# TYPE ruvector_collection_vectors gauge\n");
	coll_ctx x = { out, 0 };
	rv_colls_foreach(colls, write_coll, &x);
	rv_jw_raw(out, "# HELP ruvector_collection_feedback_events Feedback events logged by each open collection.\n"
		       "# TYPE ruvector_collection_feedback_events counter\n");
	rv_colls_foreach(colls, write_feedback, &x);
	rv_jw_printf(out,
		     "# HELP ruvector_collections_open Collections open in this process.\n"
		     "# TYPE ruvector_collections_open gauge\n"
		     "ruvector_collections_open %zu\n",
		     x.open);
	rv_jw_raw(out, "# HELP ruvector_collection_file_bytes Size of each collection file.\n"
		       "# TYPE ruvector_collection_file_bytes gauge\n");
	char **names = NULL;
	size_t n = 0;
	rv_err e = { "" };
	if (rv_colls_list(&names, &n, colls, &e) == RV_OK) {
		for (size_t i = 0; i < n; i++) {
			char path[4096];
			struct stat sb;
			snprintf(path, sizeof path, "%s/%s.rvf", rv_colls_dir(colls), names[i]);
			if (stat(path, &sb) == 0)
				rv_jw_printf(out, "ruvector_collection_file_bytes{collection=\"%s\"} %lld\n", names[i],
					     (long long)sb.st_size);
		}
		rv_colls_names_free(names, n);
	}
	rv_jw_printf(out,
		     "# HELP ruvector_uptime_seconds Seconds since the server started.\n"
		     "# TYPE ruvector_uptime_seconds gauge\n"
		     "ruvector_uptime_seconds %.3f\n",
		     rv_now() - m->started);
}
