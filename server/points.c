/*
 * points.c - the point routes: upsert, retrieve (by ids and by one id),
 * delete (by ids or by filter), search, batch search and count.
 *
 * Every write is committed before it is acknowledged (rv_coll_commit,
 * shared between concurrent writers), whatever ?wait= says: a client that
 * got "completed" can lose the server to kill -9 a microsecond later and
 * still find its points. Reads go straight to the library, whose handle
 * lets any number of them run beside one writer.
 */
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

#define DELETE_PAGE 1000u /* points removed per round of a delete by filter */

static int fail(rv_ctx *x, rv_status st)
{
	return rv_http_status(st);
}

int rv_h_db_fail(rv_ctx *x, rv_coll *c, rv_status st)
{
	const char *m = rv_errmsg(c->db);
	rv_err_set(x->err, st, "%s", m && *m ? m : rv_status_str(st));
	return rv_http_status(st);
}

void rv_h_write_ack(rv_ctx *x, uint64_t op)
{
	rv_jw_raw(x->out, "{\"operation_id\":");
	rv_jw_u64(x->out, op);
	rv_jw_raw(x->out, ",\"status\":\"completed\"}");
}

/* ======================================================================
 * Upsert
 * ==================================================================== */

int rv_h_upsert(rv_ctx *x)
{
	rv_coll *c = NULL;
	rv_q_points p = { 0 };
	int status = 200;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return fail(x, st);
	if ((st = rv_q_points_parse(&p, x->body, c->dim, c->metric, x->err)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	uint64_t op = atomic_load(&c->write_seq);
	if (p.n) {
		if ((st = rv_db_upsert(c->db, p.pts, p.n)) != RV_OK) {
			status = rv_h_db_fail(x, c, st);
			goto done;
		}
		if ((st = rv_coll_commit(&op, c, x->err)) != RV_OK) {
			status = fail(x, st);
			goto done;
		}
	}
	rv_h_write_ack(x, op);
done:
	rv_q_points_free(&p);
	rv_colls_release(x->s->colls, c);
	return status;
}

/* ======================================================================
 * Retrieve
 * ==================================================================== */

/* {"id":..,"payload":..,"vector":..} for a point, or nothing when it is
 * missing. */
static rv_status write_record(rv_ctx *x, rv_coll *c, const char *id, const rv_q_select *sel, bool with_vector,
			      float *vec, bool *found)
{
	char *payload = NULL;
	*found = false;
	rv_status st = rv_db_get(c->db, id, with_vector ? vec : NULL, sel->mode != RV_SEL_NONE ? &payload : NULL);
	if (st == RV_ENOTFOUND)
		return RV_OK;
	if (st != RV_OK) {
		const char *m = rv_errmsg(c->db);
		return rv_err_set(x->err, st, "%s", m && *m ? m : rv_status_str(st));
	}
	*found = true;
	rv_jw_raw(x->out, "{\"id\":");
	rv_jw_id(x->out, id);
	rv_jw_raw(x->out, ",\"payload\":");
	rv_q_write_payload(x->out, sel, payload);
	rv_jw_raw(x->out, ",\"vector\":");
	if (with_vector)
		rv_jw_floats(x->out, vec, c->dim);
	else
		rv_jw_raw(x->out, "null");
	rv_jw_raw(x->out, "}");
	rv_free(payload);
	return RV_OK;
}

static rv_status with_vector_opt(bool *out, const cJSON *obj, const char *field, rv_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "with_vector");
	if (!v)
		v = cJSON_GetObjectItemCaseSensitive(obj, "with_vectors");
	if (!v || cJSON_IsNull(v)) {
		*out = false;
		return RV_OK;
	}
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return RV_OK;
	}
	/* A list of vector names: there is one, unnamed, vector. */
	if (cJSON_IsArray(v)) {
		*out = cJSON_GetArraySize(v) > 0;
		return RV_OK;
	}
	return rv_err_set(err, RV_EINVAL, "%s%swith_vector: expected true or false, got %s", field, *field ? "." : "",
			  rv_q_type_name(v));
}

int rv_h_retrieve(rv_ctx *x)
{
	rv_coll *c = NULL;
	float *vec = NULL;
	int status = 200;
	rv_q_select sel;
	bool with_vector;
	const cJSON *b = x->body;
	if (!cJSON_IsObject(b)) {
		rv_err_set(x->err, RV_EINVAL, "body: expected an object with \"ids\", got %s", rv_q_type_name(b));
		return 400;
	}
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(b, "ids");
	if (!cJSON_IsArray(ids)) {
		rv_err_set(x->err, RV_EINVAL, "ids: expected an array of ids, got %s", rv_q_type_name(ids));
		return 400;
	}
	if (rv_q_select_parse(&sel, cJSON_GetObjectItemCaseSensitive(b, "with_payload"), true, "with_payload",
			      x->err) != RV_OK ||
	    with_vector_opt(&with_vector, b, "", x->err) != RV_OK)
		return 400;
	/* Check every id before touching the collection. */
	size_t i = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, ids)
	{
		char id[RV_Q_ID_MAX + 1], f[48];
		snprintf(f, sizeof f, "ids[%zu]", i++);
		if (rv_q_id(id, v, f, x->err) != RV_OK)
			return 400;
	}
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return fail(x, st);
	if (!(vec = rv_malloc(NULL, (size_t)c->dim * sizeof(float)))) {
		status = fail(x, rv_err_nomem(x->err));
		goto done;
	}
	rv_jw_raw(x->out, "[");
	bool first = true;
	cJSON_ArrayForEach(v, ids)
	{
		char id[RV_Q_ID_MAX + 1];
		bool found;
		rv_q_id(id, v, "ids", x->err);
		if (!first)
			rv_jw_raw(x->out, ",");
		size_t mark = x->out->len;
		if ((st = write_record(x, c, id, &sel, with_vector, vec, &found)) != RV_OK) {
			status = fail(x, st);
			goto done;
		}
		if (found)
			first = false;
		else
			x->out->len = first ? mark : mark - 1; /* take back the comma */
	}
	rv_jw_raw(x->out, "]");
done:
	rv_dealloc(NULL, vec);
	rv_colls_release(x->s->colls, c);
	return status;
}

int rv_h_point(rv_ctx *x)
{
	rv_coll *c = NULL;
	float *vec = NULL;
	char id[RV_Q_ID_MAX + 1];
	int status = 200;
	bool found;
	rv_q_select all = { RV_SEL_ALL, NULL };
	if (rv_q_id_text(id, x->point, "id", x->err) != RV_OK)
		return 400;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return fail(x, st);
	if (!(vec = rv_malloc(NULL, (size_t)c->dim * sizeof(float)))) {
		status = fail(x, rv_err_nomem(x->err));
		goto done;
	}
	if ((st = write_record(x, c, id, &all, true, vec, &found)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	if (!found) {
		rv_err_set(x->err, RV_ENOTFOUND, "Not found: Point with id %.255s does not exists!", id);
		status = 404;
	}
done:
	rv_dealloc(NULL, vec);
	rv_colls_release(x->s->colls, c);
	return status;
}

/* ======================================================================
 * Delete
 * ==================================================================== */

/* A query vector for scans that only want "every match": any finite,
 * non-zero vector visits the same set of points. */
static float *scan_query(uint32_t dim)
{
	float *q = rv_malloc(NULL, (size_t)dim * sizeof(float));
	if (q)
		for (uint32_t i = 0; i < dim; i++)
			q[i] = 1.0f;
	return q;
}

static rv_status delete_by_filter(rv_ctx *x, rv_coll *c, const rv_q_filter *f)
{
	rv_status st = RV_OK;
	float *q = scan_query(c->dim);
	const char **ids = rv_calloc(NULL, DELETE_PAGE, sizeof(char *));
	if (!q || !ids) {
		st = rv_err_nomem(x->err);
		goto done;
	}
	/* Exact filtered scans, a page at a time: each round removes what it
	 * found, so the next one finds the rest. */
	for (;;) {
		rv_q_hits h;
		if ((st = rv_q_search(&h, c, q, DELETE_PAGE, 0, RV_SEARCH_EXACT, f, x->err)) != RV_OK)
			goto done;
		for (size_t i = 0; i < h.n; i++)
			ids[i] = h.hits[i].id;
		size_t deleted = 0;
		if (h.n && (st = rv_db_delete(c->db, ids, h.n, &deleted)) != RV_OK) {
			const char *m = rv_errmsg(c->db);
			rv_err_set(x->err, st, "%s", m && *m ? m : rv_status_str(st));
		}
		size_t n = h.n;
		rv_q_hits_free(&h);
		if (st != RV_OK || n < DELETE_PAGE || deleted == 0)
			break;
	}
done:
	rv_dealloc(NULL, ids);
	rv_dealloc(NULL, q);
	return st;
}

int rv_h_delete(rv_ctx *x)
{
	rv_coll *c = NULL;
	char **ids = NULL;
	size_t n = 0;
	int status = 200;
	rv_q_filter f = { 0 };
	const cJSON *b = x->body;
	if (!cJSON_IsObject(b)) {
		rv_err_set(x->err, RV_EINVAL, "body: expected {\"points\": [ids]} or {\"filter\": {...}}, got %s",
			   rv_q_type_name(b));
		return 400;
	}
	const cJSON *points = cJSON_GetObjectItemCaseSensitive(b, "points");
	const cJSON *filter = cJSON_GetObjectItemCaseSensitive(b, "filter");
	if (!!points == !!filter) {
		rv_err_set(x->err, RV_EINVAL, "body: expected {\"points\": [ids]} or {\"filter\": {...}}");
		return 400;
	}
	rv_status st = RV_OK;
	if (points) {
		if (!cJSON_IsArray(points)) {
			rv_err_set(x->err, RV_EINVAL, "points: expected an array of ids, got %s", rv_q_type_name(points));
			return 400;
		}
		size_t cnt = (size_t)cJSON_GetArraySize(points);
		if (cnt && !(ids = rv_calloc(NULL, cnt, sizeof(char *)))) {
			status = fail(x, rv_err_nomem(x->err));
			goto done;
		}
		const cJSON *v;
		cJSON_ArrayForEach(v, points)
		{
			char id[RV_Q_ID_MAX + 1], fld[48];
			snprintf(fld, sizeof fld, "points[%zu]", n);
			if ((st = rv_q_id(id, v, fld, x->err)) != RV_OK) {
				status = 400;
				goto done;
			}
			if (!(ids[n] = rv_strndup(NULL, id, strlen(id)))) {
				status = fail(x, rv_err_nomem(x->err));
				goto done;
			}
			n++;
		}
	} else if ((st = rv_q_filter_parse(&f, filter, "filter", x->err)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	if ((st = rv_colls_acquire(&c, x->s->colls, x->name, x->err)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	if (points) {
		if (n && (st = rv_db_delete(c->db, (const char *const *)ids, n, NULL)) != RV_OK) {
			status = rv_h_db_fail(x, c, st);
			goto done;
		}
	} else if ((st = delete_by_filter(x, c, &f)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	uint64_t op;
	if ((st = rv_coll_commit(&op, c, x->err)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	rv_h_write_ack(x, op);
done:
	for (size_t i = 0; i < n; i++)
		rv_dealloc(NULL, ids[i]);
	rv_dealloc(NULL, ids);
	rv_q_filter_free(&f);
	rv_colls_release(x->s->colls, c);
	return status;
}

/* ======================================================================
 * Search
 * ==================================================================== */

typedef struct search_req {
	float *vector;
	uint64_t limit, offset, ef;
	bool exact, with_vector, has_threshold;
	double threshold;
	rv_q_select sel;
	rv_q_filter filter;
} search_req;

static void search_req_free(search_req *r)
{
	rv_dealloc(NULL, r->vector);
	rv_q_filter_free(&r->filter);
	memset(r, 0, sizeof *r);
}

static rv_status parse_search(search_req *r, const cJSON *b, rv_coll *c, const char *field, rv_err *err)
{
	char f[160];
	const char *dot = *field ? "." : "";
	rv_status st;
	memset(r, 0, sizeof *r);
	if (!cJSON_IsObject(b))
		return rv_err_set(err, RV_EINVAL, "%s: expected a search object with \"vector\", got %s",
				  *field ? field : "body", rv_q_type_name(b));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "vector");
	snprintf(f, sizeof f, "%s%svector", field, dot);
	if (!v)
		return rv_err_set(err, RV_EINVAL, "%s: missing", f);
	if (!(r->vector = rv_malloc(NULL, (size_t)c->dim * sizeof(float))))
		return rv_err_nomem(err);
	if ((st = rv_q_vector(r->vector, c->dim, c->metric, v, f, err)) != RV_OK)
		return st;
	if ((st = rv_q_uint(&r->limit, b, "limit", 10, 1, RV_Q_MAX_LIMIT, field, err)) != RV_OK ||
	    (st = rv_q_uint(&r->offset, b, "offset", 0, 0, RV_Q_MAX_LIMIT, field, err)) != RV_OK)
		return st;
	if (r->limit + r->offset > RV_Q_MAX_LIMIT)
		return rv_err_set(err, RV_EINVAL, "%s%slimit: limit + offset is %llu, at most %d", field, dot,
				  (unsigned long long)(r->limit + r->offset), RV_Q_MAX_LIMIT);
	snprintf(f, sizeof f, "%s%sfilter", field, dot);
	if ((st = rv_q_filter_parse(&r->filter, cJSON_GetObjectItemCaseSensitive(b, "filter"), f, err)) != RV_OK)
		return st;
	snprintf(f, sizeof f, "%s%swith_payload", field, dot);
	if ((st = rv_q_select_parse(&r->sel, cJSON_GetObjectItemCaseSensitive(b, "with_payload"), false, f, err)) !=
	    RV_OK)
		return st;
	if ((st = with_vector_opt(&r->with_vector, b, field, err)) != RV_OK)
		return st;
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(b, "params");
	if (params && !cJSON_IsNull(params)) {
		snprintf(f, sizeof f, "%s%sparams", field, dot);
		if (!cJSON_IsObject(params))
			return rv_err_set(err, RV_EINVAL, "%s: expected an object, got %s", f, rv_q_type_name(params));
		if ((st = rv_q_uint(&r->ef, params, "hnsw_ef", 0, 1, 100000, f, err)) != RV_OK ||
		    (st = rv_q_bool(&r->exact, params, "exact", false, f, err)) != RV_OK)
			return st;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "score_threshold");
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t))
			return rv_err_set(err, RV_EINVAL, "%s%sscore_threshold: expected a number, got %s", field, dot,
					  rv_q_type_name(t));
		r->has_threshold = true;
		r->threshold = t->valuedouble;
	}
	return RV_OK;
}

static rv_status run_search(rv_ctx *x, rv_coll *c, const search_req *r)
{
	rv_q_hits h;
	unsigned flags = (r->sel.mode != RV_SEL_NONE ? RV_SEARCH_PAYLOAD : 0) |
			 (r->with_vector ? RV_SEARCH_VECTOR : 0) | (r->exact ? RV_SEARCH_EXACT : 0);
	rv_status st = rv_q_search(&h, c, r->vector, (size_t)(r->limit + r->offset), (uint32_t)r->ef, flags,
				   &r->filter, x->err);
	if (st != RV_OK)
		return st;
	if (h.results)
		x->search_id = rv_results_search_id(h.results);
	rv_jw_raw(x->out, "[");
	bool first = true;
	for (size_t i = (size_t)r->offset; i < h.n; i++) {
		const rv_q_hit *hit = &h.hits[i];
		double score = rv_q_score(c->metric, hit->dist);
		/* Qdrant: a threshold keeps the hits at least that similar,
		 * which for Euclid means at most that far. */
		if (r->has_threshold &&
		    (c->metric == RV_METRIC_L2 ? score > r->threshold : score < r->threshold))
			continue;
		rv_jw_raw(x->out, first ? "{\"id\":" : ",{\"id\":");
		first = false;
		rv_jw_id(x->out, hit->id);
		rv_jw_raw(x->out, ",\"version\":0,\"score\":");
		rv_jw_printf(x->out, "%.9g", score);
		rv_jw_raw(x->out, ",\"payload\":");
		rv_q_write_payload(x->out, &r->sel, hit->payload);
		rv_jw_raw(x->out, ",\"vector\":");
		if (hit->vector)
			rv_jw_floats(x->out, hit->vector, c->dim);
		else
			rv_jw_raw(x->out, "null");
		rv_jw_raw(x->out, "}");
	}
	rv_jw_raw(x->out, "]");
	rv_q_hits_free(&h);
	return RV_OK;
}

int rv_h_search(rv_ctx *x)
{
	rv_coll *c = NULL;
	search_req r = { 0 };
	int status = 200;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return fail(x, st);
	if ((st = parse_search(&r, x->body, c, "", x->err)) != RV_OK || (st = run_search(x, c, &r)) != RV_OK)
		status = fail(x, st);
	search_req_free(&r);
	rv_colls_release(x->s->colls, c);
	return status;
}

int rv_h_search_batch(rv_ctx *x)
{
	rv_coll *c = NULL;
	search_req *reqs = NULL;
	size_t n = 0;
	int status = 200;
	const cJSON *b = x->body;
	const cJSON *searches = cJSON_IsObject(b) ? cJSON_GetObjectItemCaseSensitive(b, "searches") : NULL;
	if (!cJSON_IsArray(searches)) {
		rv_err_set(x->err, RV_EINVAL, "searches: expected an array of search requests, got %s",
			   rv_q_type_name(searches));
		return 400;
	}
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return fail(x, st);
	size_t cnt = (size_t)cJSON_GetArraySize(searches);
	if (cnt && !(reqs = rv_calloc(NULL, cnt, sizeof *reqs))) {
		status = fail(x, rv_err_nomem(x->err));
		goto done;
	}
	/* Parse them all first, so a bad one fails the batch before any
	 * work is done. */
	const cJSON *s;
	cJSON_ArrayForEach(s, searches)
	{
		char f[48];
		snprintf(f, sizeof f, "searches[%zu]", n);
		st = parse_search(&reqs[n++], s, c, f, x->err);
		if (st != RV_OK) {
			status = fail(x, st);
			goto done;
		}
	}
	rv_jw_raw(x->out, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			rv_jw_raw(x->out, ",");
		if ((st = run_search(x, c, &reqs[i])) != RV_OK) {
			status = fail(x, st);
			goto done;
		}
	}
	rv_jw_raw(x->out, "]");
done:
	for (size_t i = 0; i < n; i++)
		search_req_free(&reqs[i]);
	rv_dealloc(NULL, reqs);
	rv_colls_release(x->s->colls, c);
	return status;
}

/* ======================================================================
 * Count
 * ==================================================================== */

int rv_h_count(rv_ctx *x)
{
	rv_coll *c = NULL;
	rv_q_filter f = { 0 };
	float *q = NULL;
	int status = 200;
	const cJSON *b = x->body;
	if (b && !cJSON_IsObject(b)) {
		rv_err_set(x->err, RV_EINVAL, "body: expected an object, got %s", rv_q_type_name(b));
		return 400;
	}
	bool exact;
	rv_status st;
	if ((st = rv_q_bool(&exact, b, "exact", true, "", x->err)) != RV_OK ||
	    (st = rv_q_filter_parse(&f, cJSON_GetObjectItemCaseSensitive(b, "filter"), "filter", x->err)) != RV_OK)
		return fail(x, st);
	if ((st = rv_colls_acquire(&c, x->s->colls, x->name, x->err)) != RV_OK) {
		status = fail(x, st);
		goto done;
	}
	uint64_t total = rv_db_count(c->db), n = total;
	bool filtered = f.none || f.mongo || f.n_hasid;
	if (filtered && total > 0) {
		/* The library counts nothing by filter; an exact filtered scan
		 * for all of them does, up to its k limit. */
		if (total > 100000) {
			rv_err_set(x->err, RV_EINVAL,
				   "count with a filter works on collections of at most 100000 points; this one has %llu",
				   (unsigned long long)total);
			status = 400;
			goto done;
		}
		rv_q_hits h;
		if (!(q = scan_query(c->dim))) {
			status = fail(x, rv_err_nomem(x->err));
			goto done;
		}
		if ((st = rv_q_search(&h, c, q, (size_t)total, 0, RV_SEARCH_EXACT, &f, x->err)) != RV_OK) {
			status = fail(x, st);
			goto done;
		}
		n = h.n;
		rv_q_hits_free(&h);
	} else if (filtered) {
		n = 0;
	}
	rv_jw_raw(x->out, "{\"count\":");
	rv_jw_u64(x->out, n);
	rv_jw_raw(x->out, "}");
done:
	rv_dealloc(NULL, q);
	rv_q_filter_free(&f);
	rv_colls_release(x->s->colls, c);
	return status;
}
