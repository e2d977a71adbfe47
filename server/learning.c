/*
 * learning.c - the learning routes, on the library's feedback API:
 *
 *   POST /collections/{name}/feedback
 *        {"search_id": "123", "id": <point id>, "reward": r}   feedback on a search
 *        {"vector": [...],    "id": <point id>, "reward": r}   feedback on a query
 *        (search_id is the "search_id" member of a search response)
 *   GET  /collections/{name}/learning    learning state and counters
 *   PUT  /collections/{name}/learning    {"enabled": true|false}
 *
 * Feedback is a write: committed before it is acknowledged, like upserts.
 */
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

/* search_id as a decimal string (u64 does not fit a JSON number) or a
 * number below 2^53. */
static rv_status parse_search_id(uint64_t *out, const cJSON *v, rv_err *err)
{
	if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 9007199254740992.0 &&
	    (double)(uint64_t)v->valuedouble == v->valuedouble) {
		*out = (uint64_t)v->valuedouble;
		return RV_OK;
	}
	if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
		char *end = NULL;
		unsigned long long id = strtoull(v->valuestring, &end, 10);
		if (*end == 0 && id != 0) {
			*out = id;
			return RV_OK;
		}
	}
	return rv_err_set(err, RV_EINVAL, "search_id: expected the decimal string a search returned, got %s",
			  rv_q_type_name(v));
}

int rv_h_feedback(rv_ctx *x)
{
	const cJSON *b = x->body;
	if (!cJSON_IsObject(b)) {
		rv_err_set(x->err, RV_EINVAL, "body: expected an object with id, reward and search_id or vector");
		return 400;
	}
	const cJSON *reward = cJSON_GetObjectItemCaseSensitive(b, "reward");
	if (!cJSON_IsNumber(reward)) {
		rv_err_set(x->err, RV_EINVAL, "reward: expected a number in [-1, 1], got %s", rv_q_type_name(reward));
		return 400;
	}
	char id[RV_Q_ID_MAX + 1];
	rv_status st = rv_q_id(id, cJSON_GetObjectItemCaseSensitive(b, "id"), "id", x->err);
	if (st != RV_OK)
		return 400;
	const cJSON *sid = cJSON_GetObjectItemCaseSensitive(b, "search_id");
	const cJSON *vec = cJSON_GetObjectItemCaseSensitive(b, "vector");
	if ((sid != NULL) == (vec != NULL)) {
		rv_err_set(x->err, RV_EINVAL, "body: give exactly one of search_id and vector");
		return 400;
	}
	uint64_t search_id = 0;
	if (sid && parse_search_id(&search_id, sid, x->err) != RV_OK)
		return 400;

	rv_coll *c = NULL;
	float *q = NULL;
	int status = 200;
	if ((st = rv_colls_acquire(&c, x->s->colls, x->name, x->err)) != RV_OK)
		return rv_http_status(st);
	if (vec) {
		if (!(q = malloc((size_t)c->dim * sizeof *q))) {
			status = rv_http_status(rv_err_nomem(x->err));
			goto done;
		}
		if ((st = rv_q_vector(q, c->dim, c->metric, vec, "vector", x->err)) != RV_OK) {
			status = 400;
			goto done;
		}
	}
	uint64_t op = atomic_load(&c->write_seq);
	st = q ? rv_db_feedback_vector(c->db, q, id, (float)reward->valuedouble)
	       : rv_db_feedback(c->db, search_id, id, (float)reward->valuedouble);
	if (st != RV_OK) {
		status = rv_h_db_fail(x, c, st);
		goto done;
	}
	if ((st = rv_coll_commit(&op, c, x->err)) != RV_OK) {
		status = rv_http_status(st);
		goto done;
	}
	rv_h_write_ack(x, op);
done:
	free(q);
	rv_colls_release(x->s->colls, c);
	return status;
}

static int write_learning(rv_ctx *x, rv_coll *c)
{
	rv_stats s = RV_STATS_INIT;
	rv_status st = rv_db_stats(&s, c->db);
	if (st != RV_OK)
		return rv_h_db_fail(x, c, st);
	rv_jw_raw(x->out, "{\"enabled\":");
	rv_jw_raw(x->out, s.learning ? "true" : "false");
	rv_jw_raw(x->out, ",\"feedback_events\":");
	rv_jw_u64(x->out, s.feedback_events);
	rv_jw_raw(x->out, ",\"replay_events\":");
	rv_jw_u64(x->out, s.replay_events);
	rv_jw_raw(x->out, ",\"adapter_version\":");
	rv_jw_u64(x->out, s.adapter_version);
	rv_jw_raw(x->out, ",\"adapter_steps\":");
	rv_jw_u64(x->out, s.adapter_steps);
	rv_jw_raw(x->out, "}");
	return 200;
}

int rv_h_learning(rv_ctx *x)
{
	rv_coll *c = NULL;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return rv_http_status(st);
	int status = write_learning(x, c);
	rv_colls_release(x->s->colls, c);
	return status;
}

int rv_h_set_learning(rv_ctx *x)
{
	const cJSON *on = cJSON_IsObject(x->body) ? cJSON_GetObjectItemCaseSensitive(x->body, "enabled") : NULL;
	if (!cJSON_IsBool(on)) {
		rv_err_set(x->err, RV_EINVAL, "enabled: expected true or false, got %s", rv_q_type_name(on));
		return 400;
	}
	rv_coll *c = NULL;
	rv_status st = rv_colls_acquire(&c, x->s->colls, x->name, x->err);
	if (st != RV_OK)
		return rv_http_status(st);
	int status;
	uint64_t op = atomic_load(&c->write_seq);
	if ((st = rv_db_set_learning(c->db, cJSON_IsTrue(on))) != RV_OK)
		status = rv_h_db_fail(x, c, st);
	else if ((st = rv_coll_commit(&op, c, x->err)) != RV_OK)
		status = rv_http_status(st);
	else
		status = write_learning(x, c);
	rv_colls_release(x->s->colls, c);
	return status;
}
