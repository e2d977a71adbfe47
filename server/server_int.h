/*
 * server_int.h - what the server's files share: the route table, the
 * table of open collections (collections.c), metrics (metrics.c), API keys
 * (auth.c), and the Qdrant JSON <-> library translation (qdrant.c,
 * qfilter.c, search.c). server.h is the outside view.
 */
#ifndef RV_SERVER_INT_H
#define RV_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "db/filter.h"
#include "server.h"

/* ======================================================================
 * Routes (handlers.c). The order is the order of the metrics output.
 * ==================================================================== */

typedef enum rv_route {
	RV_R_UNKNOWN = 0,  /* no such route (404) or method (405) */
	RV_R_ROOT,         /* GET / */
	RV_R_HEALTHZ,      /* GET /healthz (also /livez) */
	RV_R_READYZ,       /* GET /readyz */
	RV_R_METRICS,      /* GET /metrics */
	RV_R_LIST,         /* GET /collections */
	RV_R_INFO,         /* GET /collections/{name} */
	RV_R_CREATE,       /* PUT /collections/{name} */
	RV_R_DROP,         /* DELETE /collections/{name} */
	RV_R_EXISTS,       /* GET /collections/{name}/exists */
	RV_R_UPSERT,       /* PUT /collections/{name}/points */
	RV_R_RETRIEVE,     /* POST /collections/{name}/points */
	RV_R_POINT,        /* GET /collections/{name}/points/{id} */
	RV_R_DELETE,       /* POST /collections/{name}/points/delete */
	RV_R_SEARCH,       /* POST /collections/{name}/points/search */
	RV_R_SEARCH_BATCH, /* POST /collections/{name}/points/search/batch */
	RV_R_COUNT,        /* POST /collections/{name}/points/count */
	RV_R_FEEDBACK,     /* POST /collections/{name}/feedback */
	RV_R_LEARNING,     /* GET|PUT /collections/{name}/learning */
	RV_R_N
} rv_route;

/* "POST" and "/collections/{name}/points/search" for the metrics labels. */
const char *rv_route_method(rv_route r);
const char *rv_route_path(rv_route r);

/* ======================================================================
 * Collections (collections.c): DIR/<name>.rvf, each opened once, on first
 * use, and kept open until it is dropped or the service closes.
 * ==================================================================== */

#define RV_COLL_NAME_MAX 64

typedef struct rv_coll {
	char name[RV_COLL_NAME_MAX + 1];
	rv_db *db;
	uint32_t dim;
	rv_metric metric;
	/* Group commit: every write takes a ticket after the library call
	 * returns; a commit that starts after ticket t covers t. */
	atomic_uint_fast64_t write_seq;
	uint64_t committed_seq;        /* guarded by commit_mu */
	pthread_mutex_t commit_mu;
	/* Table bookkeeping, guarded by the table's lock. */
	int state;                     /* COLL_OPENING, COLL_OPEN, COLL_DROPPING */
	int refs;
	struct rv_coll *next;
} rv_coll;

typedef struct rv_colls rv_colls;

/* [A-Za-z0-9_-]{1,64} */
bool rv_coll_name_ok(const char *name);

rv_status rv_colls_open(rv_colls **out, const char *dir, unsigned db_threads, rv_err *err);
/* Commit what is uncommitted and close every collection; frees t. */
rv_status rv_colls_close(rv_colls *t, rv_err *err);

/* The collection, opened on first use. RV_ENOTFOUND when DIR has no such
 * file; other errors are the library's (message names the collection). */
rv_status rv_colls_acquire(rv_coll **out, rv_colls *t, const char *name, rv_err *err);
void rv_colls_release(rv_colls *t, rv_coll *c);

/* Create DIR/<name>.rvf with opts and keep it open (acquired: release it).
 * *exists is set (and RV_EINVAL returned) when the name is taken. */
rv_status rv_colls_create(rv_coll **out, bool *exists, rv_colls *t, const char *name,
			  const rv_open_opts *opts, rv_err *err);

/* Wait for the requests using the collection, close it, remove the file.
 * *existed says whether there was one. */
rv_status rv_colls_drop(bool *existed, rv_colls *t, const char *name, rv_err *err);

/* Names of the collection files in DIR, sorted; free with
 * rv_colls_names_free. */
rv_status rv_colls_list(char ***names, size_t *n, rv_colls *t, rv_err *err);
void rv_colls_names_free(char **names, size_t n);

/* Make the caller's write durable (group commit). [out] op: the write's
 * ticket, reported as Qdrant's operation_id. */
rv_status rv_coll_commit(uint64_t *op, rv_coll *c, rv_err *err);

/* Calls fn for every open collection, holding a reference meanwhile. */
void rv_colls_foreach(rv_colls *t, void (*fn)(void *ctx, rv_coll *c), void *ctx);
const char *rv_colls_dir(const rv_colls *t);
bool rv_colls_usable(const rv_colls *t);

/* ======================================================================
 * Metrics (metrics.c): Prometheus text format.
 * ==================================================================== */

typedef struct rv_metrics rv_metrics;

rv_metrics *rv_metrics_new(void);
void rv_metrics_free(rv_metrics *m);
void rv_metrics_record(rv_metrics *m, rv_route r, int status, double seconds);
/* The whole exposition: request counters, latency histograms, in-flight
 * gauge, per-collection gauges. */
void rv_metrics_write(rv_buf *out, rv_metrics *m, rv_colls *colls, long in_flight);

/* ======================================================================
 * API keys (auth.c)
 * ==================================================================== */

typedef enum rv_role { RV_ROLE_NONE = 0, RV_ROLE_RO = 1, RV_ROLE_RW = 2 } rv_role;

typedef struct rv_auth rv_auth;

/* Lines "rw KEY" or "ro KEY"; blank lines and lines starting with '#'
 * are skipped. Errors name the file and line. */
rv_status rv_auth_load(rv_auth **out, const char *path, rv_err *err);
void rv_auth_free(rv_auth *a);
/* The role of the request's key (api-key header, else "Authorization:
 * Bearer KEY"); RV_ROLE_NONE when missing or unknown. Compares every key,
 * each in constant time. */
rv_role rv_auth_check(const rv_auth *a, const char *api_key, const char *authorization);
/* Constant-time equality of a[0..an) and b[0..bn): the time depends on
 * an only (the length of the caller-supplied string), never on where the
 * bytes differ or on bn. */
bool rv_ct_equal(const void *a, size_t an, const void *b, size_t bn);

/* ======================================================================
 * JSON output (qdrant.c): append to an rv_buf; failures are remembered in
 * the buffer (b->failed).
 * ==================================================================== */

void rv_jw_raw(rv_buf *b, const char *s);
void rv_jw_str(rv_buf *b, const char *s);    /* escaped string literal */
void rv_jw_float(rv_buf *b, float v);        /* %.9g; non-finite as null */
void rv_jw_double(rv_buf *b, double v);      /* %.17g; non-finite as null */
void rv_jw_u64(rv_buf *b, uint64_t v);
void rv_jw_floats(rv_buf *b, const float *v, size_t n);
void rv_jw_json(rv_buf *b, const cJSON *x);  /* unformatted */
/* A point id: a JSON number when it is a canonical decimal u64 (no sign,
 * no leading zeros, at most 18446744073709551615), else a string. */
void rv_jw_id(rv_buf *b, const char *id);
void rv_jw_printf(rv_buf *b, const char *fmt, ...) RV_PRINTF(2, 3);

/* ======================================================================
 * Qdrant <-> library (qdrant.c)
 * ==================================================================== */

#define RV_Q_ID_MAX RV_MAX_ID_LEN
#define RV_Q_MAX_LIMIT 10000       /* limit + offset of one search */
#define RV_Q_MAX_HAS_ID 10000      /* ids named by has_id in one filter */
#define RV_Q_MAX_HAS_ID_NODES 64   /* has_id conditions in one filter */
#define RV_Q_MAX_FILTER_DEPTH 32   /* nested Qdrant filters */

bool rv_q_id_is_u64(const char *s);
/* A point id from JSON: an unsigned integer (at most 2^53, where doubles
 * are exact) or a non-empty string of at most 255 bytes; UUIDs are
 * canonicalised to lower-case hyphenated form. field names the value in
 * errors ("points[3].id"). out has room for RV_Q_ID_MAX + 1 bytes. */
rv_status rv_q_id(char *out, const cJSON *v, const char *field, rv_err *err);
/* The same for an id taken from the URL path. */
rv_status rv_q_id_text(char *out, const char *text, const char *field, rv_err *err);

/* A vector of exactly dim finite floats into out. */
rv_status rv_q_vector(float *out, uint32_t dim, rv_metric metric, const cJSON *v, const char *field,
		      rv_err *err);

/* Qdrant distance names. */
bool rv_q_metric_parse(rv_metric *out, const char *name);
const char *rv_q_metric_name(rv_metric m);
/* Library distance (smaller is nearer) -> Qdrant score. */
double rv_q_score(rv_metric m, float dist);

/* Points of an upsert, in either form ({"points":[...]} or
 * {"batch":{...}}), validated against the collection's dimension. When an
 * id repeats, the last occurrence wins (as in Qdrant). */
typedef struct rv_q_points {
	rv_point *pts;
	size_t n;
	char *ids;       /* n * (RV_Q_ID_MAX + 1) */
	float *vecs;     /* n * dim */
	char **payloads; /* n, each NULL or cJSON-printed text */
} rv_q_points;

rv_status rv_q_points_parse(rv_q_points *out, const cJSON *body, uint32_t dim, rv_metric metric,
			    rv_err *err);
void rv_q_points_free(rv_q_points *p);

/* A translated filter (qfilter.c). Conditions on payloads become the library's
 * MongoDB-style filter text. has_id conditions cannot be said in that
 * language (it sees payloads, not ids), so the translation is partial
 * evaluation: for a point named by no has_id, every has_id is false,
 * which gives `mongo` (or `none`: no such point matches); each point that
 * some has_id names is judged on its own (rv_q_filter_for_mask with the
 * set of has_id conditions naming it). */
typedef struct rv_q_hasid {
	const cJSON *node; /* the has_id array inside `qdrant` */
	char **ids;        /* sorted, unique */
	size_t n;
} rv_q_hasid;

typedef struct rv_q_filter {
	bool none;          /* points outside every has_id never match */
	char *mongo;        /* filter for those points; NULL = all match */
	cJSON *qdrant;      /* a copy of the Qdrant filter, when it has has_id */
	rv_q_hasid *hasid;  /* one per has_id condition */
	size_t n_hasid;
	char **ids;         /* sorted, unique union of the has_id lists */
	size_t n_ids;
} rv_q_filter;

/* filter: the request's "filter" value (NULL, JSON null and {} mean no
 * filter). A Qdrant filter has must/should/must_not; any other object is
 * passed to the library as it is. field names it in errors. */
rv_status rv_q_filter_parse(rv_q_filter *out, const cJSON *filter, const char *field, rv_err *err);
void rv_q_filter_free(rv_q_filter *f);
/* Which has_id conditions name id (bit i for hasid[i]). */
uint64_t rv_q_filter_mask(const rv_q_filter *f, const char *id);
/* The filter with has_id condition i taken as bit i of mask: *truth is 1
 * (always), 0 (never) or -1 (depends on the payload: *mongo holds the
 * text, rv_dealloc it). */
rv_status rv_q_filter_for_mask(char **mongo, int *truth, const rv_q_filter *f, uint64_t mask,
			       rv_err *err);

/* with_payload: true/false, an array of paths to keep, or
 * {"include":[...]} / {"exclude":[...]}. */
typedef enum rv_q_sel_mode { RV_SEL_NONE, RV_SEL_ALL, RV_SEL_INCLUDE, RV_SEL_EXCLUDE } rv_q_sel_mode;

typedef struct rv_q_select {
	rv_q_sel_mode mode;
	const cJSON *paths; /* array of strings (borrowed from the request) */
} rv_q_select;

rv_status rv_q_select_parse(rv_q_select *out, const cJSON *v, bool dflt, const char *field, rv_err *err);
/* The payload as the selection wants it: null (not asked), {} (none
 * stored), the stored text, or a projection of it. */
void rv_q_write_payload(rv_buf *b, const rv_q_select *sel, const char *payload);

/* A boolean option that may be absent. */
rv_status rv_q_bool(bool *out, const cJSON *obj, const char *key, bool dflt, const char *field, rv_err *err);
/* An integer option in [lo, hi] that may be absent. */
rv_status rv_q_uint(uint64_t *out, const cJSON *obj, const char *key, uint64_t dflt, uint64_t lo,
		    uint64_t hi, const char *field, rv_err *err);
/* Name of a JSON value's type for messages ("a string"). */
const char *rv_q_type_name(const cJSON *v);

/* ======================================================================
 * Search with a translated filter (search.c)
 * ==================================================================== */

typedef struct rv_q_hit {
	const char *id;
	float dist;          /* library distance */
	const char *payload; /* NULL when none or not asked for */
	const float *vector; /* NULL when not asked for */
} rv_q_hit;

typedef struct rv_q_hits {
	rv_q_hit *hits;
	size_t n;
	/* owned memory */
	rv_results *results;
	void **owned;
	size_t n_owned, cap_owned;
} rv_q_hits;

/* The k nearest points that pass f (may be NULL), nearest first; flags are
 * RV_SEARCH_*. Points named by has_id conditions are fetched one by one,
 * judged with the library's filter evaluator and merged with the graph's
 * answer for the others (asked for k + |has_id ids| so dropping those
 * still leaves k). Errors carry an HTTP-ready message. */
rv_status rv_q_search(rv_q_hits *out, rv_coll *c, const float *query, size_t k, uint32_t ef,
		      unsigned flags, const rv_q_filter *f, rv_err *err);
void rv_q_hits_free(rv_q_hits *h);

/* ======================================================================
 * The service and its handlers (handlers.c, points.c)
 * ==================================================================== */

struct rv_service {
	rv_colls *colls;
	rv_auth *auth;          /* NULL: no keys needed */
	rv_metrics *metrics;
	atomic_long in_flight;
	atomic_bool stopping;
};

/* What a handler gets: the request, what the route captured, the parsed
 * body (NULL when empty), and where to write. A handler returns the HTTP
 * status; for 2xx it has written the "result" value into out (or, with
 * raw set, the whole body); for errors, err holds the message. */
typedef struct rv_ctx {
	rv_service *s;
	const rv_http_request *req;
	char name[RV_Q_ID_MAX + 1];  /* {name} */
	char point[RV_Q_ID_MAX + 1]; /* {id} */
	cJSON *body;
	rv_buf *out;
	rv_err *err;
	bool raw;
	const char *content_type;
	uint64_t search_id;  /* set by a search: added to the envelope as "search_id" */
} rv_ctx;

/* HTTP status for a library status. */
int rv_http_status(rv_status st);
/* A library call on c failed with st: its message into x->err, the HTTP
 * status back (points.c). */
int rv_h_db_fail(rv_ctx *x, rv_coll *c, rv_status st);
/* A write's answer: {"operation_id": op, "status": "completed"} (points.c). */
void rv_h_write_ack(rv_ctx *x, uint64_t op);

int rv_h_upsert(rv_ctx *x);
int rv_h_retrieve(rv_ctx *x);
int rv_h_point(rv_ctx *x);
int rv_h_delete(rv_ctx *x);
int rv_h_search(rv_ctx *x);
int rv_h_search_batch(rv_ctx *x);
int rv_h_count(rv_ctx *x);
int rv_h_feedback(rv_ctx *x);
int rv_h_learning(rv_ctx *x);
int rv_h_set_learning(rv_ctx *x);

#endif /* RV_SERVER_INT_H */
