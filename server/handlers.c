/*
 * handlers.c - the service: one complete HTTP request in, one response
 * out, with no socket in sight (server.c feeds it from libmicrohttpd, the
 * fuzz target and the tests feed it directly).
 *
 * A request goes: route (method + path template) -> API key check ->
 * the ?wait= argument -> JSON body parse -> the route's handler -> the
 * Qdrant envelope {"result": ..., "status": "ok", "time": seconds} or
 * {"status": {"error": "..."}, "time": seconds} -> metrics.
 *
 * This file has the routing, the envelope and the collection-level routes
 * (create, list, info, drop, exists) plus health and metrics; points.c has
 * the point routes.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server_int.h"

/* ======================================================================
 * Collection-level routes
 * ==================================================================== */

static int h_root(rv_ctx *x)
{
	/* Qdrant answers / with a bare object, not the envelope. */
	x->raw = true;
	rv_jw_raw(x->out, "{\"title\":\"ruvector - vector search engine (Qdrant-compatible REST API)\",\"version\":\"");
	rv_jw_raw(x->out, RV_VERSION_STRING);
	rv_jw_raw(x->out, "\"}");
	return 200;
}

static int h_healthz(rv_ctx *x)
{
	x->raw = true;
	x->content_type = "text/plain; charset=utf-8";
	rv_jw_raw(x->out, "ok\n");
	return 200;
}

static int h_readyz(rv_ctx *x)
{
	x->raw = true;
	x->content_type = "text/plain; charset=utf-8";
	if (atomic_load(&x->s->stopping)) {
		rv_jw_raw(x->out, "stopping\n");
		return 503;
	}
	if (!rv_colls_usable(x->s->colls)) {
		rv_jw_raw(x->out, "data directory not usable\n");
		return 503;
	}
	rv_jw_raw(x->out, "ok\n");
	return 200;
}

static int h_metrics(rv_ctx *x)
{
	x->raw = true;
	x->content_type = "text/plain; version=0.0.4; charset=utf-8";
	rv_metrics_write(x->out, x->s->metrics, x->s->colls, rv_service_in_flight(x->s));
	return 200;
}

static int h_list(rv_ctx *x)
{
	char **names;
	size_t n;
	rv_status st = rv_colls_list(&names, &n, x->s->colls, x->err);
	if (st != RV_OK)
		return rv_http_status(st);
	rv_jw_raw(x->out, "{\"collections\":[");
	for (size_t i = 0; i < n; i++) {
		rv_jw_raw(x->out, i ? ",{\"name\":" : "{\"name\":");
		rv_jw_str(x->out, names[i]);
		rv_jw_raw(x->out, "}");
	}
	rv_jw_raw(x->out, "]}");
	rv_colls_names_free(names, n);
	return 200;
}

static int h_info(rv_ctx *x)
{
	rv_coll *c;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return rv_http_status(st);
	rv_stats s = RV_STATS_INIT;
	st = rv_db_stats(&s, c->db);
	if (st != RV_OK) {
		rv_err_set(x->err, st, "%s", rv_errmsg(c->db));
		rv_colls_release(x->s->colls, c);
		return rv_http_status(st);
	}
	rv_colls_release(x->s->colls, c);
	unsigned long long n = (unsigned long long)s.count;
	/* The fixed parts (optimizer, WAL, sharding) describe nothing here;
	 * they are Qdrant's defaults, present because clients parse them. */
	rv_jw_printf(x->out,
		     "{\"status\":\"green\",\"optimizer_status\":\"ok\",\"vectors_count\":%llu,"
		     "\"indexed_vectors_count\":%llu,\"points_count\":%llu,\"segments_count\":1,"
		     "\"config\":{\"params\":{\"vectors\":{\"size\":%u,\"distance\":\"%s\"},"
		     "\"shard_number\":1,\"replication_factor\":1,\"write_consistency_factor\":1,"
		     "\"on_disk_payload\":true},",
		     n, n, n, s.dim, rv_q_metric_name(s.metric));
	rv_jw_printf(x->out,
		     "\"hnsw_config\":{\"m\":%u,\"ef_construct\":%u,\"full_scan_threshold\":10000,"
		     "\"max_indexing_threads\":0,\"on_disk\":false},",
		     s.m, s.ef_construction);
	rv_jw_raw(x->out, "\"optimizer_config\":{\"deleted_threshold\":0.2,\"vacuum_min_vector_number\":1000,"
			  "\"default_segment_number\":0,\"max_segment_size\":null,\"memmap_threshold\":null,"
			  "\"indexing_threshold\":20000,\"flush_interval_sec\":5,\"max_optimization_threads\":null},"
			  "\"wal_config\":{\"wal_capacity_mb\":32,\"wal_segments_ahead\":0},"
			  "\"quantization_config\":null},\"payload_schema\":{}}");
	return 200;
}

static int h_create(rv_ctx *x)
{
	rv_err *err = x->err;
	const cJSON *b = x->body;
	if (!rv_coll_name_ok(x->name)) {
		rv_err_set(err, RV_EINVAL, "collection name: expected 1..%d characters of A-Z a-z 0-9 _ -, got \"%.80s\"",
			   RV_COLL_NAME_MAX, x->name);
		return 400;
	}
	if (!cJSON_IsObject(b)) {
		rv_err_set(err, RV_EINVAL, "body: expected an object with \"vectors\": {\"size\": N, \"distance\": ...}");
		return 400;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "vectors");
	if (!cJSON_IsObject(v)) {
		rv_err_set(err, RV_EINVAL, "vectors: expected {\"size\": N, \"distance\": \"Cosine\"|\"Euclid\"|\"Dot\"}, got %s",
			   rv_q_type_name(v));
		return 400;
	}
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(v, "size");
	if (!size && v->child && cJSON_IsObject(v->child)) {
		rv_err_set(err, RV_EINVAL, "vectors: named vectors are not supported; give {\"size\": N, \"distance\": ...}");
		return 400;
	}
	if (!size) {
		rv_err_set(err, RV_EINVAL, "vectors.size: missing");
		return 400;
	}
	uint64_t dim, m = 16, ef = 100;
	if (rv_q_uint(&dim, v, "size", 0, 1, RV_MAX_DIM, "vectors", err) != RV_OK)
		return 400;
	const cJSON *dist = cJSON_GetObjectItemCaseSensitive(v, "distance");
	rv_metric metric;
	if (!cJSON_IsString(dist) || !rv_q_metric_parse(&metric, dist->valuestring)) {
		if (cJSON_IsString(dist))
			rv_err_set(err, RV_EINVAL, "vectors.distance: expected Cosine, Euclid or Dot, got \"%.40s\"",
				   dist->valuestring);
		else
			rv_err_set(err, RV_EINVAL, "vectors.distance: expected Cosine, Euclid or Dot, got %s",
				   rv_q_type_name(dist));
		return 400;
	}
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(b, "hnsw_config");
	if (h && !cJSON_IsNull(h)) {
		if (!cJSON_IsObject(h)) {
			rv_err_set(err, RV_EINVAL, "hnsw_config: expected an object, got %s", rv_q_type_name(h));
			return 400;
		}
		if (rv_q_uint(&m, h, "m", 16, 2, 128, "hnsw_config", err) != RV_OK)
			return 400;
		if (rv_q_uint(&ef, h, "ef_construct", m > 100 ? m : 100, m, 4096, "hnsw_config", err) != RV_OK)
			return 400;
	}
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = (uint32_t)dim;
	o.metric = metric;
	o.m = (uint32_t)m;
	o.ef_construction = (uint32_t)ef;
	/* Qdrant searches with ef = ef_construct unless a query says
	 * otherwise; do the same. */
	o.ef_search = (uint32_t)ef;
	rv_coll *c;
	bool exists;
	rv_status st = rv_colls_create(&c, &exists, x->s->colls, x->name, &o, err);
	if (exists)
		return 409;
	if (st != RV_OK)
		return rv_http_status(st);
	rv_colls_release(x->s->colls, c);
	rv_jw_raw(x->out, "true");
	return 200;
}

static int h_drop(rv_ctx *x)
{
	bool existed;
	rv_status st = rv_colls_drop(&existed, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return rv_http_status(st);
	/* Like Qdrant: dropping a collection that is not there is not an
	 * error, the result says whether one was removed. */
	rv_jw_raw(x->out, existed ? "true" : "false");
	return 200;
}

static int h_exists(rv_ctx *x)
{
	bool yes = false;
	if (rv_coll_name_ok(x->name)) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s.rvf", rv_colls_dir(x->s->colls), x->name);
		yes = access(path, F_OK) == 0;
	}
	rv_jw_raw(x->out, yes ? "{\"exists\":true}" : "{\"exists\":false}");
	return 200;
}

/* ======================================================================
 * Routing
 * ==================================================================== */

typedef int (*handler_fn)(rv_ctx *x);

static const struct route_def {
	rv_route r;
	const char *method;
	const char *path;
	bool write; /* needs a read-write key */
	bool open;  /* no key needed */
	bool body;  /* takes a JSON body */
	handler_fn fn;
} routes[] = {
	{ RV_R_ROOT, "GET", "/", false, false, false, h_root },
	{ RV_R_HEALTHZ, "GET", "/healthz", false, true, false, h_healthz },
	{ RV_R_HEALTHZ, "GET", "/livez", false, true, false, h_healthz },
	{ RV_R_READYZ, "GET", "/readyz", false, true, false, h_readyz },
	{ RV_R_METRICS, "GET", "/metrics", false, false, false, h_metrics },
	{ RV_R_LIST, "GET", "/collections", false, false, false, h_list },
	{ RV_R_INFO, "GET", "/collections/{name}", false, false, false, h_info },
	{ RV_R_CREATE, "PUT", "/collections/{name}", true, false, true, h_create },
	{ RV_R_DROP, "DELETE", "/collections/{name}", true, false, false, h_drop },
	{ RV_R_EXISTS, "GET", "/collections/{name}/exists", false, false, false, h_exists },
	{ RV_R_UPSERT, "PUT", "/collections/{name}/points", true, false, true, rv_h_upsert },
	{ RV_R_RETRIEVE, "POST", "/collections/{name}/points", false, false, true, rv_h_retrieve },
	{ RV_R_POINT, "GET", "/collections/{name}/points/{id}", false, false, false, rv_h_point },
	{ RV_R_DELETE, "POST", "/collections/{name}/points/delete", true, false, true, rv_h_delete },
	{ RV_R_SEARCH, "POST", "/collections/{name}/points/search", false, false, true, rv_h_search },
	{ RV_R_SEARCH_BATCH, "POST", "/collections/{name}/points/search/batch", false, false, true,
	  rv_h_search_batch },
	{ RV_R_COUNT, "POST", "/collections/{name}/points/count", false, false, true, rv_h_count },
	{ RV_R_FEEDBACK, "POST", "/collections/{name}/feedback", true, false, true, rv_h_feedback },
	{ RV_R_LEARNING, "GET", "/collections/{name}/learning", false, false, false, rv_h_learning },
	{ RV_R_LEARNING, "PUT", "/collections/{name}/learning", true, false, true, rv_h_set_learning },
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

const char *rv_route_method(rv_route r)
{
	for (size_t i = 0; i < N_ROUTES; i++)
		if (routes[i].r == r)
			return routes[i].method;
	return "other";
}

const char *rv_route_path(rv_route r)
{
	for (size_t i = 0; i < N_ROUTES; i++)
		if (routes[i].r == r)
			return routes[i].path;
	return "unmatched";
}

/* Match path against a template; {name} and {id} take one non-empty
 * segment each (copied into x when x is not NULL). *too_long is set when
 * a captured segment is over RV_Q_ID_MAX bytes. */
static bool match(const char *tpl, const char *path, rv_ctx *x, bool *too_long)
{
	const char *p = tpl, *q = path;
	if (*q != '/')
		return false;
	while (*p && *q) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *qe = q;
			while (*qe && *qe != '/')
				qe++;
			size_t n = (size_t)(qe - q);
			if (n == 0)
				return false;
			if (n > RV_Q_ID_MAX)
				*too_long = true;
			else if (x) {
				char *dst = p[1] == 'n' ? x->name : x->point;
				memcpy(dst, q, n);
				dst[n] = 0;
			}
			p = pe + 1;
			q = qe;
		} else if (*p == *q) {
			p++;
			q++;
		} else {
			return false;
		}
	}
	return *p == 0 && *q == 0;
}

/* The route for (method, path): *path_known is set when the path exists
 * under another method. */
static const struct route_def *find_route(const char *method, const char *path, rv_ctx *x, bool *path_known,
					  bool *too_long)
{
	*path_known = false;
	for (size_t i = 0; i < N_ROUTES; i++) {
		bool tl = false;
		if (!match(routes[i].path, path, NULL, &tl))
			continue;
		if (strcmp(routes[i].method, method) != 0) {
			*path_known = true;
			continue;
		}
		*too_long = tl;
		if (x && !tl)
			match(routes[i].path, path, x, &tl);
		return &routes[i];
	}
	return NULL;
}

int rv_http_status(rv_status st)
{
	switch (st) {
	case RV_OK: return 200;
	case RV_EINVAL: return 400;
	case RV_ENOTFOUND: return 404;
	case RV_EBUSY: return 409;
	case RV_ENOMEM: return 503;
	default: return 500;
	}
}

/* ======================================================================
 * The envelope
 * ==================================================================== */

static void error_body(rv_buf *b, const char *msg, double elapsed)
{
	b->len = 0;
	b->failed = false;
	rv_jw_raw(b, "{\"status\":{\"error\":");
	rv_jw_str(b, msg);
	rv_jw_raw(b, "},\"time\":");
	rv_jw_printf(b, "%.6f", elapsed);
	rv_jw_raw(b, "}");
}

static void respond_error(rv_http_response *resp, int status, const char *msg, double elapsed)
{
	resp->status = status;
	resp->content_type = "application/json";
	error_body(&resp->body, msg, elapsed);
}

void rv_http_response_free(rv_http_response *resp)
{
	rv_buf_free(&resp->body);
}

void rv_service_error(rv_service *s, const char *method, const char *path, int status, const char *msg,
		      double started, rv_http_response *resp)
{
	bool known, too_long;
	const struct route_def *d = find_route(method ? method : "", path ? path : "", NULL, &known, &too_long);
	memset(resp, 0, sizeof *resp);
	rv_buf_init(&resp->body, NULL);
	double el = rv_now() - started;
	respond_error(resp, status, msg, el);
	rv_metrics_record(s->metrics, d ? d->r : RV_R_UNKNOWN, status, el);
}

void rv_service_begin(rv_service *s)
{
	atomic_fetch_add(&s->in_flight, 1);
}

void rv_service_end(rv_service *s)
{
	atomic_fetch_sub(&s->in_flight, 1);
}

long rv_service_in_flight(rv_service *s)
{
	return atomic_load(&s->in_flight);
}

void rv_service_set_stopping(rv_service *s, bool stopping)
{
	atomic_store(&s->stopping, stopping);
}

static bool only_space(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			return false;
	return true;
}

void rv_service_handle(rv_service *s, const rv_http_request *req, rv_http_response *resp)
{
	double t0 = rv_now();
	rv_err err = { "" };
	rv_ctx *x = NULL;
	int status;
	rv_route route = RV_R_UNKNOWN;
	memset(resp, 0, sizeof *resp);
	rv_buf_init(&resp->body, NULL);
	resp->content_type = "application/json";
	const char *method = req->method ? req->method : "";
	const char *path = req->path ? req->path : "";
	bool known = false, too_long = false;

	x = rv_calloc(NULL, 1, sizeof *x);
	if (!x) {
		status = 503;
		rv_err_nomem(&err);
		goto error;
	}
	const struct route_def *d = find_route(method, path, x, &known, &too_long);
	if (!d) {
		status = known ? 405 : 404;
		rv_err_set(&err, RV_ENOTFOUND, known ? "method %.10s is not allowed on %.200s" : "unknown route: %.10s %.200s",
			   method, path);
		goto error;
	}
	route = d->r;
	if (too_long) {
		status = 400;
		rv_err_set(&err, RV_EINVAL, "path: a name or id is longer than %d bytes", RV_Q_ID_MAX);
		goto error;
	}
	if (s->auth && !d->open) {
		rv_role role = rv_auth_check(s->auth, req->api_key, req->authorization);
		if (role == RV_ROLE_NONE) {
			status = 401;
			rv_err_set(&err, RV_EINVAL,
				   "Unauthorized: give a valid API key in the api-key header or as Authorization: Bearer KEY");
			goto error;
		}
		if (d->write && role != RV_ROLE_RW) {
			status = 403;
			rv_err_set(&err, RV_EINVAL, "Forbidden: this API key is read-only");
			goto error;
		}
	}
	if (req->wait && strcmp(req->wait, "true") != 0 && strcmp(req->wait, "false") != 0) {
		status = 400;
		rv_err_set(&err, RV_EINVAL, "wait: expected true or false, got \"%.40s\"", req->wait);
		goto error;
	}
	if (d->body && req->body && !only_space(req->body, req->body + req->body_len)) {
		const char *end = NULL;
		x->body = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
		if (!x->body) {
			size_t at = end && end >= req->body ? (size_t)(end - req->body) : 0;
			status = 400;
			rv_err_set(&err, RV_EINVAL, "malformed JSON body: parse error at byte %zu", at);
			goto error;
		}
		if (end && !only_space(end, req->body + req->body_len)) {
			status = 400;
			rv_err_set(&err, RV_EINVAL, "malformed JSON body: unexpected data after the value at byte %zu",
				   (size_t)(end - req->body));
			goto error;
		}
	}
	x->s = s;
	x->req = req;
	x->out = &resp->body;
	x->err = &err;
	x->content_type = "application/json";
	/* The envelope's head; a raw handler's output drops it again. */
	rv_jw_raw(x->out, "{\"result\":");
	size_t start = x->out->len;
	status = d->fn(x);
	if (status >= 400)
		goto error;
	if (x->out->failed) {
		status = 503;
		rv_err_nomem(&err);
		goto error;
	}
	if (x->raw) {
		/* Drop the envelope's opening written above. */
		memmove(x->out->data, x->out->data + start, x->out->len - start);
		x->out->len -= start;
		resp->content_type = x->content_type;
	} else {
		/* A search's id, for feedback, beside Qdrant's fields (clients
		 * ignore members they do not know). A string: u64 > 2^53. */
		if (x->search_id)
			rv_jw_printf(x->out, ",\"search_id\":\"%llu\"", (unsigned long long)x->search_id);
		rv_jw_printf(x->out, ",\"status\":\"ok\",\"time\":%.6f}", rv_now() - t0);
	}
	if (x->out->failed) {
		status = 503;
		rv_err_nomem(&err);
		goto error;
	}
	resp->status = status;
	goto done;
error:
	if (!err.msg[0])
		rv_err_set(&err, RV_ERROR, "request failed");
	rv_buf_free(&resp->body);
	rv_buf_init(&resp->body, NULL);
	respond_error(resp, status, err.msg, rv_now() - t0);
	if (resp->body.failed) {
		/* Not even the error fits: an empty body still carries the
		 * status. */
		rv_buf_free(&resp->body);
		rv_buf_init(&resp->body, NULL);
	}
done:
	if (x)
		cJSON_Delete(x->body);
	rv_dealloc(NULL, x);
	rv_metrics_record(s->metrics, route, resp->status, rv_now() - t0);
}

/* ======================================================================
 * Life cycle
 * ==================================================================== */

rv_status rv_service_open(rv_service **out, const rv_service_opts *opts, rv_err *err)
{
	rv_status st;
	*out = NULL;
	if (!opts || opts->size != sizeof(rv_service_opts))
		return rv_err_set(err, RV_EINVAL, "rv_service_opts.size mismatch (use RV_SERVICE_OPTS_INIT)");
	rv_service *s = rv_calloc(NULL, 1, sizeof *s);
	if (!s)
		return rv_err_nomem(err);
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->stopping, false);
	if (!(s->metrics = rv_metrics_new())) {
		st = rv_err_nomem(err);
		goto fail;
	}
	if (opts->api_key_file && (st = rv_auth_load(&s->auth, opts->api_key_file, err)) != RV_OK)
		goto fail;
	if ((st = rv_colls_open(&s->colls, opts->data_dir, opts->db_threads, err)) != RV_OK)
		goto fail;
	*out = s;
	return RV_OK;
fail:
	rv_auth_free(s->auth);
	rv_metrics_free(s->metrics);
	rv_dealloc(NULL, s);
	return st;
}

rv_status rv_service_close(rv_service *s, rv_err *err)
{
	if (!s)
		return RV_OK;
	rv_status st = rv_colls_close(s->colls, err);
	rv_auth_free(s->auth);
	rv_metrics_free(s->metrics);
	rv_dealloc(NULL, s);
	return st;
}
