/*
 * search.c - a k-nearest search under a translated Qdrant filter
 * (rv_q_filter, see qdrant.c), including has_id conditions, which the
 * library's filter language cannot express because it sees payloads only.
 *
 * How has_id stays exact: let S be the union of every has_id list in the
 * filter. A point outside S has every has_id false, so it matches exactly
 * when the folded filter f->mongo does; the library finds those, asked for
 * k + |S| hits so that dropping the ones inside S (judged separately)
 * still leaves k. Each point inside S is fetched by id and judged with the
 * filter folded for its own has_id truths (compiled once per distinct set
 * of truths) by the library's filter evaluator, so both halves use the
 * same semantics. Their distances are computed here the way the library
 * defines them (ruvector.h, "Scores"), and the two lists are merged.
 * A search therefore returns min(k, matching points) hits whenever the
 * library's own search does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

static rv_status own(rv_q_hits *h, void *p, rv_err *err)
{
	if (!rv_grow(NULL, (void **)&h->owned, &h->cap_owned, h->n_owned + 1, sizeof(void *))) {
		rv_dealloc(NULL, p);
		return rv_err_nomem(err);
	}
	h->owned[h->n_owned++] = p;
	return RV_OK;
}

void rv_q_hits_free(rv_q_hits *h)
{
	rv_results_free(h->results);
	for (size_t i = 0; i < h->n_owned; i++)
		rv_dealloc(NULL, h->owned[i]);
	rv_dealloc(NULL, h->owned);
	rv_dealloc(NULL, h->hits);
	memset(h, 0, sizeof *h);
}

static int cmp_hit(const void *a, const void *b)
{
	const rv_q_hit *x = a, *y = b;
	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The library's distance between the query (already unit length for
 * Cosine) and a stored vector (unit length for Cosine). */
static float distance(rv_metric m, const float *q, const float *v, uint32_t dim)
{
	double s = 0;
	if (m == RV_METRIC_L2) {
		for (uint32_t i = 0; i < dim; i++) {
			double d = (double)q[i] - (double)v[i];
			s += d * d;
		}
		return (float)sqrt(s);
	}
	for (uint32_t i = 0; i < dim; i++)
		s += (double)q[i] * (double)v[i];
	if (m == RV_METRIC_COSINE)
		return s < 1.0 ? (float)(1.0 - s) : 0.0f;
	return (float)-s;
}

typedef struct judge {
	uint64_t mask;
	int truth;      /* 1, 0, or -1 (compiled) */
	rv_filter *compiled;
} judge;

static rv_status db_error(rv_coll *c, rv_status st, rv_err *err)
{
	const char *m = rv_errmsg(c->db);
	return rv_err_set(err, st, "%s", m && *m ? m : rv_status_str(st));
}

/* Judge and score the points named by has_id; append matches to out. */
static rv_status search_named(rv_q_hits *out, rv_coll *c, const float *qn, unsigned flags, const rv_q_filter *f,
			      rv_err *err)
{
	rv_status st = RV_OK;
	judge *judges = NULL;
	size_t n_judges = 0, cap_judges = 0;
	float *v = NULL;
	char *payload = NULL;
	for (size_t i = 0; i < f->n_ids; i++) {
		const char *id = f->ids[i];
		uint64_t mask = rv_q_filter_mask(f, id);
		judge *j = NULL;
		for (size_t k = 0; k < n_judges; k++)
			if (judges[k].mask == mask)
				j = &judges[k];
		if (!j) {
			if (!rv_grow(NULL, (void **)&judges, &cap_judges, n_judges + 1, sizeof *judges)) {
				st = rv_err_nomem(err);
				goto done;
			}
			j = &judges[n_judges++];
			j->mask = mask;
			j->compiled = NULL;
			char *text = NULL;
			if ((st = rv_q_filter_for_mask(&text, &j->truth, f, mask, err)) != RV_OK)
				goto done;
			if (j->truth == -1) {
				st = rv_filter_compile(&j->compiled, text, strlen(text), NULL, err);
				rv_dealloc(NULL, text);
				if (st != RV_OK)
					goto done;
			}
		}
		if (j->truth == 0)
			continue;
		if (!v && !(v = rv_malloc(NULL, (size_t)c->dim * sizeof(float)))) {
			st = rv_err_nomem(err);
			goto done;
		}
		st = rv_db_get(c->db, id, v, &payload);
		if (st == RV_ENOTFOUND) {
			st = RV_OK;
			continue;
		}
		if (st != RV_OK) {
			st = db_error(c, st, err);
			goto done;
		}
		bool match = true;
		if (j->truth == -1) {
			cJSON *pj = payload ? cJSON_Parse(payload) : NULL;
			match = rv_filter_match(j->compiled, pj);
			cJSON_Delete(pj);
		}
		if (match) {
			rv_q_hit h = { NULL, distance(c->metric, qn, v, c->dim), NULL, NULL };
			char *idc = rv_strndup(NULL, id, strlen(id));
			if (!idc) {
				st = rv_err_nomem(err);
				goto done;
			}
			if ((st = own(out, idc, err)) != RV_OK)
				goto done;
			h.id = idc;
			if ((flags & RV_SEARCH_PAYLOAD) && payload) {
				char *pc = rv_strndup(NULL, payload, strlen(payload));
				if (!pc || (st = own(out, pc, err)) != RV_OK) {
					st = pc ? st : rv_err_nomem(err);
					goto done;
				}
				h.payload = pc;
			}
			if (flags & RV_SEARCH_VECTOR) {
				if ((st = own(out, v, err)) != RV_OK) {
					v = NULL;
					goto done;
				}
				h.vector = v;
				v = NULL;
			}
			out->hits[out->n++] = h;
		}
		rv_free(payload);
		payload = NULL;
	}
done:
	rv_free(payload);
	rv_dealloc(NULL, v);
	for (size_t k = 0; k < n_judges; k++)
		rv_filter_free(judges[k].compiled);
	rv_dealloc(NULL, judges);
	return st;
}

rv_status rv_q_search(rv_q_hits *out, rv_coll *c, const float *query, size_t k, uint32_t ef, unsigned flags,
		      const rv_q_filter *f, rv_err *err)
{
	rv_status st = RV_OK;
	float *qn = NULL;
	memset(out, 0, sizeof *out);
	size_t named = f ? f->n_ids : 0;
	if (k == 0)
		return RV_OK;
	if (!(f && f->none)) {
		rv_search_opts o = RV_SEARCH_OPTS_INIT;
		size_t want = k + named;
		o.k = (uint32_t)(want < 100000 ? want : 100000);
		o.ef = ef;
		o.filter = f ? f->mongo : NULL;
		o.flags = flags;
		if ((st = rv_db_search(&out->results, c->db, query, &o)) != RV_OK)
			return db_error(c, st, err);
	}
	size_t n_lib = rv_results_count(out->results);
	out->hits = rv_calloc(NULL, n_lib + named + 1, sizeof *out->hits);
	if (!out->hits) {
		st = rv_err_nomem(err);
		goto done;
	}
	const rv_hit *lh = rv_results_hits(out->results);
	for (size_t i = 0; i < n_lib; i++) {
		/* Points named by has_id are judged by search_named. */
		if (named && bsearch(&lh[i].id, f->ids, named, sizeof(char *), cmp_str))
			continue;
		out->hits[out->n++] = (rv_q_hit){ lh[i].id, lh[i].score, lh[i].payload, lh[i].vector };
	}
	if (named) {
		qn = rv_malloc(NULL, (size_t)c->dim * sizeof(float));
		if (!qn) {
			st = rv_err_nomem(err);
			goto done;
		}
		double norm = 0;
		for (uint32_t i = 0; i < c->dim; i++) {
			qn[i] = query[i];
			norm += (double)query[i] * query[i];
		}
		if (c->metric == RV_METRIC_COSINE) {
			if (norm == 0) {
				st = rv_err_set(err, RV_EINVAL, "vector: the zero vector has no cosine direction");
				goto done;
			}
			norm = sqrt(norm);
			for (uint32_t i = 0; i < c->dim; i++)
				qn[i] = (float)(qn[i] / norm);
		}
		if ((st = search_named(out, c, qn, flags, f, err)) != RV_OK)
			goto done;
		qsort(out->hits, out->n, sizeof *out->hits, cmp_hit);
	}
	if (out->n > k)
		out->n = k;
done:
	rv_dealloc(NULL, qn);
	if (st != RV_OK)
		rv_q_hits_free(out);
	return st;
}
