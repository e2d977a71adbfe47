/*
 * test_server.c - `ruvector serve`, the Qdrant-compatible HTTP server.
 *
 * Most cases start the server in this process (rv_server_start on a free
 * loopback port) over a fresh directory and talk HTTP to it over a plain
 * socket with the small client below; answers are checked against the
 * library used directly (exact search), against brute force (recall) and
 * against filter semantics evaluated here in C on the generated data. The
 * shutdown cases run the real `ruvector serve` binary as a child process:
 * SIGTERM must finish a request in flight, commit and exit 0; kill -9 right
 * after acknowledged writes must lose none of them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "server.h"
#include "server_int.h"

#define BIN RV_BIN_DIR "/ruvector"

/* ======================================================================
 * A string builder and a tiny HTTP/1.1 client
 * ==================================================================== */

typedef struct sb {
	char *s;
	size_t len, cap;
} sb;

static void sb_add(sb *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
	}
}

static void sb_floats(sb *b, const float *v, size_t n)
{
	sb_add(b, "[");
	for (size_t i = 0; i < n; i++)
		sb_add(b, i ? ",%.9g" : "%.9g", (double)v[i]);
	sb_add(b, "]");
}

typedef struct resp {
	int status;
	char *body;
	cJSON *json; /* parsed body, or NULL */
} resp;

static void resp_free(resp *r)
{
	free(r->body);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof *r);
}

static int connect_port(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Read to EOF (we always send Connection: close) and split the answer. */
static bool read_response(int fd, resp *r)
{
	sb b = { 0 };
	char buf[65536];
	ssize_t k;
	while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
		sb_add(&b, "%.*s", (int)k, buf);
	}
	memset(r, 0, sizeof *r);
	if (!b.s || sscanf(b.s, "HTTP/1.%*d %d", &r->status) != 1) {
		free(b.s);
		return false;
	}
	char *body = strstr(b.s, "\r\n\r\n");
	r->body = strdup(body ? body + 4 : "");
	r->json = cJSON_Parse(r->body);
	free(b.s);
	return true;
}

static resp http(unsigned port, const char *method, const char *path, const char *body, const char *headers)
{
	resp r = { 0 };
	int fd = connect_port(port);
	if (fd < 0)
		return r;
	sb req = { 0 };
	size_t blen = body ? strlen(body) : 0;
	sb_add(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path, headers ? headers : "");
	if (body)
		sb_add(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
	sb_add(&req, "\r\n");
	if (send_all(fd, req.s, req.len) && (!body || send_all(fd, body, blen)))
		read_response(fd, &r);
	free(req.s);
	close(fd);
	return r;
}

/* A request whose body is printf-formatted. */
static resp httpf(unsigned port, const char *method, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *body = NULL;
	if (vasprintf(&body, fmt, ap) < 0)
		body = NULL;
	va_end(ap);
	resp r = http(port, method, path, body, NULL);
	free(body);
	return r;
}

/* The "result" member of an answer. */
static cJSON *result(const resp *r)
{
	return cJSON_GetObjectItemCaseSensitive(r->json, "result");
}

/* The error message of an answer, or "". */
static const char *errmsg(const resp *r)
{
	cJSON *st = cJSON_GetObjectItemCaseSensitive(r->json, "status");
	cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "error");
	return cJSON_IsString(e) ? e->valuestring : "";
}

/* A fresh directory under the tests' temporary area. */
static const char *fresh_dir(const char *name)
{
	static char dirs[4][1024];
	static int next;
	char *d = dirs[next++ % 4];
	snprintf(d, 1024, "%s", rv_test_path(name));
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot clean %s\n", d);
	return d;
}

static rv_server *start(const char *dir, const char *keys, size_t max_body, unsigned *port)
{
	rv_server_opts o = RV_SERVER_OPTS_INIT;
	o.data_dir = dir;
	o.port = 0;
	o.threads = 4;
	o.api_key_file = keys;
	o.max_body = max_body;
	rv_err e = { "" };
	rv_server *s = NULL;
	if (rv_server_start(&s, &o, &e) != RV_OK) {
		fprintf(stderr, "rv_server_start: %s\n", e.msg);
		return NULL;
	}
	*port = rv_server_port(s);
	return s;
}

static bool stop(rv_server *s)
{
	rv_err e = { "" };
	if (rv_server_stop(s, 10, &e) != RV_OK) {
		fprintf(stderr, "rv_server_stop: %s\n", e.msg);
		return false;
	}
	return true;
}

static bool create_coll(unsigned port, const char *name, int dim, const char *dist)
{
	char path[128];
	snprintf(path, sizeof path, "/collections/%s", name);
	resp r = httpf(port, "PUT", path, "{\"vectors\":{\"size\":%d,\"distance\":\"%s\"}}", dim, dist);
	bool ok = r.status == 200 && cJSON_IsTrue(result(&r));
	if (!ok)
		fprintf(stderr, "create %s: %d %s\n", name, r.status, r.body ? r.body : "(no answer)");
	resp_free(&r);
	return ok;
}

/* Upsert points [from, to) with vectors v (dim each), ids from idf. */
static bool upsert_range(unsigned port, const char *name, const float *v, int dim, int from, int to,
			 void (*idf)(sb *b, int i), void (*payf)(sb *b, int i))
{
	char path[128];
	snprintf(path, sizeof path, "/collections/%s/points?wait=true", name);
	sb b = { 0 };
	sb_add(&b, "{\"points\":[");
	for (int i = from; i < to; i++) {
		sb_add(&b, i > from ? ",{\"id\":" : "{\"id\":");
		if (idf)
			idf(&b, i);
		else
			sb_add(&b, "%d", i);
		sb_add(&b, ",\"vector\":");
		sb_floats(&b, v + (size_t)i * dim, (size_t)dim);
		if (payf) {
			sb_add(&b, ",\"payload\":");
			payf(&b, i);
		}
		sb_add(&b, "}");
	}
	sb_add(&b, "]}");
	resp r = http(port, "PUT", path, b.s, NULL);
	cJSON *res = result(&r);
	const char *done = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "status"));
	bool ok = r.status == 200 && done && !strcmp(done, "completed");
	if (!ok)
		fprintf(stderr, "upsert: %d %.300s\n", r.status, r.body ? r.body : "(no answer)");
	resp_free(&r);
	free(b.s);
	return ok;
}

/* An id from JSON as the test's integer (-1 when not an integer). */
static long json_id(const cJSON *id)
{
	return cJSON_IsNumber(id) ? (long)id->valuedouble : -1;
}

/* ======================================================================
 * Collections
 * ==================================================================== */

TEST(collections_create_list_get_delete)
{
	unsigned port;
	const char *dir = fresh_dir("srv-crud");
	rv_server *s = start(dir, NULL, 0, &port);
	CHECK(s);
	resp r = http(port, "PUT", "/collections/c1",
		      "{\"vectors\":{\"size\":8,\"distance\":\"Cosine\"},\"hnsw_config\":{\"m\":8,\"ef_construct\":64}}", NULL);
	CHECK_MSG(r.status == 200 && cJSON_IsTrue(result(&r)), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/c1", "{\"vectors\":{\"size\":8,\"distance\":\"Cosine\"}}", NULL);
	CHECK_MSG(r.status == 409 && strstr(errmsg(&r), "already exists"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/bad.name", "{\"vectors\":{\"size\":8,\"distance\":\"Cosine\"}}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "collection name"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/c3", "{\"vectors\":{\"size\":8,\"distance\":\"Manhattan\"}}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "vectors.distance"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/c3", "{\"vectors\":{\"size\":0,\"distance\":\"Dot\"}}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "vectors.size"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/c3", "{\"vectors\":{\"size\":4,\"distance\":\"Dot\"},\"hnsw_config\":{\"m\":1}}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "hnsw_config.m"), "%d %s", r.status, r.body);
	resp_free(&r);
	CHECK(create_coll(port, "c2", 3, "Dot"));

	r = http(port, "GET", "/collections", NULL, NULL);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(result(&r), "collections");
	CHECK(r.status == 200 && cJSON_GetArraySize(list) == 2);
	CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "name")->valuestring, "c1"));
	CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "name")->valuestring, "c2"));
	resp_free(&r);

	r = http(port, "GET", "/collections/c1", NULL, NULL);
	cJSON *info = result(&r);
	cJSON *cfg = cJSON_GetObjectItem(info, "config");
	cJSON *vec = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "params"), "vectors");
	cJSON *hnsw = cJSON_GetObjectItem(cfg, "hnsw_config");
	CHECK_MSG(r.status == 200, "%s", r.body);
	CHECK(!strcmp(cJSON_GetObjectItem(info, "status")->valuestring, "green"));
	CHECK(cJSON_GetObjectItem(info, "points_count")->valuedouble == 0);
	CHECK(cJSON_GetObjectItem(info, "vectors_count")->valuedouble == 0);
	CHECK(cJSON_GetObjectItem(vec, "size")->valuedouble == 8);
	CHECK(!strcmp(cJSON_GetObjectItem(vec, "distance")->valuestring, "Cosine"));
	CHECK(cJSON_GetObjectItem(hnsw, "m")->valuedouble == 8);
	CHECK(cJSON_GetObjectItem(hnsw, "ef_construct")->valuedouble == 64);
	resp_free(&r);

	r = http(port, "GET", "/collections/c1/exists", NULL, NULL);
	CHECK(r.status == 200 && cJSON_IsTrue(cJSON_GetObjectItem(result(&r), "exists")));
	resp_free(&r);
	r = http(port, "GET", "/collections/nope", NULL, NULL);
	CHECK_MSG(r.status == 404 && strstr(errmsg(&r), "nope"), "%d %s", r.status, r.body);
	resp_free(&r);

	char file[1200];
	snprintf(file, sizeof file, "%s/c1.rvf", dir);
	CHECK(access(file, F_OK) == 0);
	r = http(port, "DELETE", "/collections/c1", NULL, NULL);
	CHECK(r.status == 200 && cJSON_IsTrue(result(&r)));
	resp_free(&r);
	CHECK(access(file, F_OK) != 0);
	r = http(port, "DELETE", "/collections/c1", NULL, NULL);
	CHECK(r.status == 200 && cJSON_IsFalse(result(&r)));
	resp_free(&r);
	r = http(port, "GET", "/collections/c1", NULL, NULL);
	CHECK(r.status == 404);
	resp_free(&r);
	r = http(port, "GET", "/collections", NULL, NULL);
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(result(&r), "collections")) == 1);
	resp_free(&r);
	/* The name is free again. */
	CHECK(create_coll(port, "c1", 2, "Euclid"));
	CHECK(stop(s));
}

/* ======================================================================
 * Points
 * ==================================================================== */

TEST(upsert_both_forms_and_retrieve)
{
	unsigned port;
	rv_server *s = start(fresh_dir("srv-upsert"), NULL, 0, &port);
	CHECK(s);
	CHECK(create_coll(port, "p", 4, "Euclid"));
	resp r = http(port, "PUT", "/collections/p/points",
		      "{\"points\":[{\"id\":1,\"vector\":[1,0,0,0],\"payload\":{\"a\":\"x\",\"n\":1}},"
		      "{\"id\":2,\"vector\":[0,1,0,0]}]}",
		      NULL);
	CHECK_MSG(r.status == 200, "%s", r.body);
	cJSON *ack = result(&r);
	CHECK(!strcmp(cJSON_GetObjectItem(ack, "status")->valuestring, "completed"));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(ack, "operation_id")));
	resp_free(&r);
	/* Batch form; id 3 is given twice and the last one wins. */
	r = http(port, "PUT", "/collections/p/points?wait=false",
		 "{\"batch\":{\"ids\":[3,4,3],\"vectors\":[[0,0,1,0],[0,0,0,1],[0,0,2,0]],"
		 "\"payloads\":[{\"b\":1},null,{\"b\":2}]}}",
		 NULL);
	CHECK_MSG(r.status == 200, "%s", r.body);
	resp_free(&r);
	r = http(port, "GET", "/collections/p", NULL, NULL);
	CHECK(cJSON_GetObjectItem(result(&r), "points_count")->valuedouble == 4);
	resp_free(&r);

	r = http(port, "POST", "/collections/p/points", "{\"ids\":[3,1,99,2],\"with_vector\":true}", NULL);
	cJSON *res = result(&r);
	CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == 3, "%s", r.body);
	cJSON *p3 = cJSON_GetArrayItem(res, 0), *p1 = cJSON_GetArrayItem(res, 1), *p2 = cJSON_GetArrayItem(res, 2);
	CHECK(json_id(cJSON_GetObjectItem(p3, "id")) == 3);
	CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(p3, "payload"), "b")->valuedouble == 2);
	CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(p3, "vector"), 2)->valuedouble == 2);
	CHECK(json_id(cJSON_GetObjectItem(p1, "id")) == 1);
	CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(p1, "payload"), "a")->valuestring, "x"));
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(p1, "payload")) == 2);
	/* No payload stored: {} as Qdrant shows it. */
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(p2, "payload")) && !cJSON_GetObjectItem(p2, "payload")->child);
	resp_free(&r);

	r = http(port, "POST", "/collections/p/points", "{\"ids\":[1],\"with_payload\":false}", NULL);
	p1 = cJSON_GetArrayItem(result(&r), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(p1, "payload")) && cJSON_IsNull(cJSON_GetObjectItem(p1, "vector")));
	resp_free(&r);
	r = http(port, "POST", "/collections/p/points", "{\"ids\":[1],\"with_payload\":[\"n\"]}", NULL);
	cJSON *pay = cJSON_GetObjectItem(cJSON_GetArrayItem(result(&r), 0), "payload");
	CHECK_MSG(cJSON_GetArraySize(pay) == 1 && cJSON_GetObjectItem(pay, "n"), "%s", r.body);
	resp_free(&r);

	r = http(port, "GET", "/collections/p/points/1", NULL, NULL);
	CHECK(r.status == 200 && json_id(cJSON_GetObjectItem(result(&r), "id")) == 1);
	CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(result(&r), "vector"), 0)->valuedouble == 1);
	resp_free(&r);
	r = http(port, "GET", "/collections/p/points/12345", NULL, NULL);
	CHECK(r.status == 404 && strstr(errmsg(&r), "12345"));
	resp_free(&r);

	/* Replacing a point changes its payload and vector. */
	r = http(port, "PUT", "/collections/p/points", "{\"points\":[{\"id\":1,\"vector\":[5,5,5,5],\"payload\":{\"a\":\"y\"}}]}", NULL);
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "GET", "/collections/p/points/1", NULL, NULL);
	CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(result(&r), "payload"), "a")->valuestring, "y"));
	CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(result(&r), "vector"), 0)->valuedouble == 5);
	resp_free(&r);

	/* Bad points are refused whole, with the field named. */
	r = http(port, "PUT", "/collections/p/points",
		 "{\"points\":[{\"id\":7,\"vector\":[1,2,3,4]},{\"id\":8,\"vector\":[1,2,3]}]}", NULL);
	CHECK_MSG(r.status == 400 && !strcmp(errmsg(&r), "points[1].vector: expected 4 numbers, got 3"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/p/points", "{\"points\":[{\"id\":7,\"vector\":[1,2,3,4],\"payload\":[1]}]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "points[0].payload"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/p/points", "{\"points\":[{\"id\":7,\"vector\":[1,2,\"x\",4]}]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "points[0].vector[2]"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/p/points", "{\"batch\":{\"ids\":[7,8],\"vectors\":[[1,2,3,4]]}}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "batch.vectors"), "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/p/points", "{\"ids\":[1],\"with_vector\":true}", NULL);
	CHECK(cJSON_GetArraySize(result(&r)) == 1);
	resp_free(&r);
	r = http(port, "GET", "/collections/p", NULL, NULL);
	CHECK(cJSON_GetObjectItem(result(&r), "points_count")->valuedouble == 4);
	resp_free(&r);
	r = http(port, "PUT", "/collections/missing/points", "{\"points\":[]}", NULL);
	CHECK(r.status == 404);
	resp_free(&r);

	/* Delete by ids. */
	r = http(port, "POST", "/collections/p/points/delete", "{\"points\":[1,2,77]}", NULL);
	CHECK_MSG(r.status == 200, "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/p/points/count", "{}", NULL);
	CHECK(cJSON_GetObjectItem(result(&r), "count")->valuedouble == 2);
	resp_free(&r);
	CHECK(stop(s));
}

static void uuid_like_ids(sb *b, int i)
{
	static const char *ids[] = { "0", "1", "9007199254740992", "\"abc\"", "\"5C56C793-69F3-4FBF-87E6-C4BF54C28C26\"",
				     "\"42\"", "\"007\"", "\"18446744073709551615\"", "\"18446744073709551616\"",
				     "\"with space/and \\\"quote\\\"\"" };
	sb_add(b, "%s", ids[i]);
}

TEST(ids_integer_and_uuid_round_trip)
{
	unsigned port;
	rv_server *s = start(fresh_dir("srv-ids"), NULL, 0, &port);
	CHECK(s);
	CHECK(create_coll(port, "ids", 2, "Euclid"));
	float v[20];
	for (int i = 0; i < 20; i++)
		v[i] = (float)i;
	CHECK(upsert_range(port, "ids", v, 2, 0, 10, uuid_like_ids, NULL));
	resp r = http(port, "POST", "/collections/ids/points",
		      "{\"ids\":[0,1,9007199254740992,\"abc\",\"5c56c793-69f3-4fbf-87e6-c4bf54c28c26\",42,\"007\","
		      "\"18446744073709551615\",\"18446744073709551616\",\"with space/and \\\"quote\\\"\"]}",
		      NULL);
	cJSON *res = result(&r);
	CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == 10, "%s", r.body);
	/* Canonical decimal u64 ids come back as numbers, the rest as strings. */
	const char *expect_text[] = { "0", "1", "9007199254740992", "\"abc\"", "\"5c56c793-69f3-4fbf-87e6-c4bf54c28c26\"",
				      "42", "\"007\"", "18446744073709551615", "\"18446744073709551616\"",
				      "\"with space/and \\\"quote\\\"\"" };
	for (int i = 0; i < 10; i++) {
		char *t = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(res, i), "id"));
		/* cJSON prints big numbers through doubles: compare the raw body. */
		bool in_body = strstr(r.body, expect_text[i]) != NULL;
		CHECK_MSG(in_body, "id %d: expected %s in %s (cJSON sees %s)", i, expect_text[i], r.body, t);
		free(t);
	}
	CHECK(strstr(r.body, "\"id\":18446744073709551615,") != NULL);
	CHECK(strstr(r.body, "\"id\":42,") != NULL);
	resp_free(&r);
	r = http(port, "GET", "/collections/ids/points/5C56C793-69F3-4FBF-87E6-C4BF54C28C26", NULL, NULL);
	CHECK_MSG(r.status == 200 && strstr(r.body, "\"id\":\"5c56c793-69f3-4fbf-87e6-c4bf54c28c26\""), "%s", r.body);
	resp_free(&r);
	r = http(port, "GET", "/collections/ids/points/9007199254740992", NULL, NULL);
	CHECK(r.status == 200 && strstr(r.body, "\"id\":9007199254740992,"));
	resp_free(&r);
	/* Bad ids, named. */
	r = http(port, "PUT", "/collections/ids/points", "{\"points\":[{\"id\":-1,\"vector\":[1,2]}]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "points[0].id"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/ids/points", "{\"points\":[{\"id\":1.5,\"vector\":[1,2]}]}", NULL);
	CHECK(r.status == 400 && strstr(errmsg(&r), "points[0].id"));
	resp_free(&r);
	r = http(port, "PUT", "/collections/ids/points", "{\"points\":[{\"id\":\"\",\"vector\":[1,2]}]}", NULL);
	CHECK(r.status == 400 && strstr(errmsg(&r), "points[0].id"));
	resp_free(&r);
	r = http(port, "PUT", "/collections/ids/points", "{\"points\":[{\"id\":1e300,\"vector\":[1,2]}]}", NULL);
	CHECK(r.status == 400 && strstr(errmsg(&r), "string"));
	resp_free(&r);
	CHECK(stop(s));
}

/* ======================================================================
 * Search against the library
 * ==================================================================== */

TEST(search_equals_library_exact_and_recall)
{
	const int n = 2000, dim = 32, nq = 30, k = 10;
	const char *dists[] = { "Euclid", "Cosine", "Dot" };
	const rv_metric metrics[] = { RV_METRIC_L2, RV_METRIC_COSINE, RV_METRIC_IP };
	unsigned port;
	rv_server *s = start(fresh_dir("srv-search"), NULL, 0, &port);
	CHECK(s);
	float *base = rv_test_random_vectors((size_t)n, (size_t)dim, 11);
	float *qs = rv_test_random_vectors((size_t)nq, (size_t)dim, 12);
	for (int m = 0; m < 3; m++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", m);
		CHECK(create_coll(port, name, dim, dists[m]));
		for (int from = 0; from < n; from += 500)
			CHECK(upsert_range(port, name, base, dim, from, from + 500, NULL, NULL));
		/* The same points in a collection of our own, searched exactly. */
		rv_open_opts o = RV_OPEN_OPTS_INIT;
		o.dim = (uint32_t)dim;
		o.metric = metrics[m];
		rv_db *ref = NULL;
		char rname[32];
		snprintf(rname, sizeof rname, "srv-search-ref%d", m);
		CHECK_OK(rv_db_create(&ref, rv_test_path(rname), &o), ref);
		rv_point *pts = calloc((size_t)n, sizeof *pts);
		char (*ids)[16] = calloc((size_t)n, 16);
		for (int i = 0; i < n; i++) {
			snprintf(ids[i], 16, "%d", i);
			pts[i] = (rv_point){ ids[i], 0, base + (size_t)i * dim, NULL, 0 };
		}
		CHECK_OK(rv_db_upsert(ref, pts, (size_t)n), ref);
		free(pts);
		free(ids);
		size_t found = 0;
		for (int q = 0; q < nq; q++) {
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			so.k = (uint32_t)k;
			so.flags = RV_SEARCH_EXACT;
			rv_results *lr = NULL;
			CHECK_OK(rv_db_search(&lr, ref, qs + (size_t)q * dim, &so), ref);
			const rv_hit *lh = rv_results_hits(lr);
			for (int exact = 1; exact >= 0; exact--) {
				sb b = { 0 };
				sb_add(&b, "{\"vector\":");
				sb_floats(&b, qs + (size_t)q * dim, (size_t)dim);
				sb_add(&b, ",\"limit\":%d,\"params\":{\"exact\":%s}}", k, exact ? "true" : "false");
				char path[64];
				snprintf(path, sizeof path, "/collections/%s/points/search", name);
				resp r = http(port, "POST", path, b.s, NULL);
				free(b.s);
				cJSON *res = result(&r);
				CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == k, "%d %s", r.status, r.body);
				for (int i = 0; i < k; i++) {
					cJSON *h = cJSON_GetArrayItem(res, i);
					long id = json_id(cJSON_GetObjectItem(h, "id"));
					double score = cJSON_GetObjectItem(h, "score")->valuedouble;
					if (exact) {
						/* Same ids in the same order, Qdrant's score convention. */
						double want = m == 0 ? lh[i].score : m == 1 ? 1.0 - lh[i].score : -lh[i].score;
						CHECK_MSG(id == atol(lh[i].id), "%s q%d rank %d: %ld vs %s", name, q, i, id, lh[i].id);
						CHECK_MSG(fabs(score - want) < 1e-5, "%s: score %g, want %g", name, score, want);
					} else {
						for (int j = 0; j < k; j++)
							found += id == atol(lh[j].id);
					}
				}
				resp_free(&r);
			}
			rv_results_free(lr);
		}
		rv_db_close(ref);
		double recall = (double)found / (nq * k);
		CHECK_MSG(recall >= 0.95, "%s recall@%d = %.3f", name, k, recall);
		/* Higher is better for Cosine and Dot, lower for Euclid. */
		sb b = { 0 };
		sb_add(&b, "{\"vector\":");
		sb_floats(&b, qs, (size_t)dim);
		sb_add(&b, ",\"limit\":5,\"params\":{\"exact\":true},\"with_vector\":true,\"score_threshold\":%s}",
		       m == 0 ? "3.0" : m == 1 ? "0.2" : "1.0");
		char path[64];
		snprintf(path, sizeof path, "/collections/%s/points/search", name);
		resp r = http(port, "POST", path, b.s, NULL);
		free(b.s);
		cJSON *res = result(&r), *h;
		CHECK(r.status == 200);
		double prev = m == 0 ? -1e30 : 1e30;
		cJSON_ArrayForEach(h, res)
		{
			double sc = cJSON_GetObjectItem(h, "score")->valuedouble;
			CHECK(m == 0 ? sc >= prev && sc <= 3.0 : sc <= prev && sc >= (m == 1 ? 0.2 : 1.0));
			CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(h, "vector")) == dim);
			prev = sc;
		}
		resp_free(&r);
	}
	free(base);
	free(qs);
	CHECK(stop(s));
}

/* ======================================================================
 * Filters against a reference evaluated here
 * ==================================================================== */

#define FN 300

static const char *cities[] = { "London", "Berlin", "Paris", "Rome" };

static bool has_city(int i) { return i % 11 != 0; }
static const char *city(int i) { return cities[i % 4]; }
static int num(int i) { return i % 100; }
static double price(int i) { return (i * 37 % 100) / 100.0; }
static int ntags(int i) { return i % 3; }
static int tag(int i, int j) { return (i + j) % 5; }
static int opt_kind(int i) { return i % 5; } /* missing, null, [], "x", [1] */
static bool is_str_id(int i) { return i % 50 == 7; }

static void filter_ids(sb *b, int i)
{
	if (is_str_id(i))
		sb_add(b, "\"p-%d\"", i);
	else
		sb_add(b, "%d", i);
}

static void filter_payload(sb *b, int i)
{
	sb_add(b, "{\"n\":%d,\"price\":%.2f,\"flag\":%s,\"tags\":[", num(i), price(i), i % 2 ? "true" : "false");
	for (int j = 0; j < ntags(i); j++)
		sb_add(b, j ? ",\"t%d\"" : "\"t%d\"", tag(i, j));
	sb_add(b, "],\"meta\":{\"a\":%d,\"b\":{\"c\":%d}}", i % 7, i % 3);
	if (has_city(i))
		sb_add(b, ",\"city\":\"%s\"", city(i));
	static const char *opts[] = { NULL, "null", "[]", "\"x\"", "[1]" };
	if (opts[opt_kind(i)])
		sb_add(b, ",\"opt\":%s", opts[opt_kind(i)]);
	sb_add(b, "}");
}

static bool has_tag(int i, int t)
{
	for (int j = 0; j < ntags(i); j++)
		if (tag(i, j) == t)
			return true;
	return false;
}

static bool city_is(int i, const char *c) { return has_city(i) && !strcmp(city(i), c); }

static bool in_list(int i, const int *ids, int n)
{
	for (int k = 0; k < n; k++)
		if (ids[k] == i)
			return true;
	return false;
}

static const int named[] = { 3, 10, 57, 150, 151, 299 };

typedef struct fcase {
	const char *filter;
	bool (*ref)(int i);
} fcase;

static bool f_value(int i) { return city_is(i, "London"); }
static bool f_any(int i) { return city_is(i, "Berlin") || city_is(i, "Paris"); }
static bool f_except(int i) { return has_city(i) && !city_is(i, "London") && !city_is(i, "Berlin"); }
static bool f_range(int i) { return num(i) >= 10 && num(i) < 20; }
static bool f_range2(int i) { return price(i) > 0.5 && price(i) <= 0.8; }
static bool f_should(int i) { return city_is(i, "Rome") || num(i) < 5; }
static bool f_must_not(int i) { return !city_is(i, "London"); }
static bool f_is_empty(int i) { return opt_kind(i) <= 2; }
static bool f_is_null(int i) { return opt_kind(i) == 1; }
static bool f_not_empty(int i) { return opt_kind(i) > 2; }
static bool f_has_id(int i) { return in_list(i, named, 6); }
static bool f_not_has_id(int i) { return !in_list(i, named, 6) && num(i) < 50; }
static bool f_nested(int i) { return (city_is(i, "London") || city_is(i, "Paris")) && !(num(i) >= 50); }
static bool f_tags(int i) { return has_tag(i, 2); }
static bool f_tags_any(int i) { return has_tag(i, 0) || has_tag(i, 4); }
static bool f_meta(int i) { return i % 3 == 1 && i % 7 >= 4; }
static bool f_should_has_id(int i) { return (in_list(i, named, 6) || city_is(i, "Rome")) && num(i) >= 50; }
static bool f_must_has_id_and(int i) { return in_list(i, named, 6) && city_is(i, "Rome"); }
static bool f_mongo(int i) { return city_is(i, "London") && num(i) < 50; }
static bool f_none(int i) { return false; }
static bool f_flag(int i) { return i % 2 == 1; }
static bool f_all(int i) { return true; }
static bool f_deep(int i) { return !(!(num(i) < 30)); }

static const fcase fcases[] = {
	{ "{\"must\":[{\"key\":\"city\",\"match\":{\"value\":\"London\"}}]}", f_value },
	{ "{\"must\":[{\"key\":\"city\",\"match\":{\"any\":[\"Berlin\",\"Paris\"]}}]}", f_any },
	{ "{\"must\":[{\"key\":\"city\",\"match\":{\"except\":[\"London\",\"Berlin\"]}}]}", f_except },
	{ "{\"must\":[{\"key\":\"n\",\"range\":{\"gte\":10,\"lt\":20,\"gt\":null}}]}", f_range },
	{ "{\"must\":{\"key\":\"price\",\"range\":{\"gt\":0.5,\"lte\":0.8}}}", f_range2 },
	{ "{\"should\":[{\"key\":\"city\",\"match\":{\"value\":\"Rome\"}},{\"key\":\"n\",\"range\":{\"lt\":5}}]}", f_should },
	{ "{\"must_not\":[{\"key\":\"city\",\"match\":{\"value\":\"London\"}}]}", f_must_not },
	{ "{\"must\":[{\"is_empty\":{\"key\":\"opt\"}}]}", f_is_empty },
	{ "{\"must\":[{\"is_null\":{\"key\":\"opt\"}}]}", f_is_null },
	{ "{\"must_not\":[{\"is_empty\":{\"key\":\"opt\"}}]}", f_not_empty },
	{ "{\"must\":[{\"key\":\"opt\",\"is_empty\":false}]}", f_not_empty },
	{ "{\"must\":[{\"has_id\":[3,10,\"p-57\",150,151,299,100000]}]}", f_has_id },
	{ "{\"must_not\":[{\"has_id\":[3,10,\"p-57\",150,151,299]}],\"must\":[{\"key\":\"n\",\"range\":{\"lt\":50}}]}",
	  f_not_has_id },
	{ "{\"must\":[{\"should\":[{\"key\":\"city\",\"match\":{\"value\":\"London\"}},"
	  "{\"key\":\"city\",\"match\":{\"value\":\"Paris\"}}]},{\"must_not\":[{\"key\":\"n\",\"range\":{\"gte\":50}}]}]}",
	  f_nested },
	{ "{\"must\":[{\"key\":\"tags\",\"match\":{\"value\":\"t2\"}}]}", f_tags },
	{ "{\"must\":[{\"key\":\"tags[]\",\"match\":{\"any\":[\"t0\",\"t4\"]}}]}", f_tags_any },
	{ "{\"must\":[{\"key\":\"meta.b.c\",\"match\":{\"value\":1}},{\"key\":\"meta.a\",\"range\":{\"gte\":4}}]}", f_meta },
	{ "{\"should\":[{\"has_id\":[3,10,\"p-57\",150,151,299]},{\"key\":\"city\",\"match\":{\"value\":\"Rome\"}}],"
	  "\"must\":[{\"key\":\"n\",\"range\":{\"gte\":50}}]}",
	  f_should_has_id },
	{ "{\"must\":[{\"has_id\":[3,10,\"p-57\",150,151,299]},{\"key\":\"city\",\"match\":{\"value\":\"Rome\"}}]}",
	  f_must_has_id_and },
	{ "{\"city\":{\"$in\":[\"London\"]},\"n\":{\"$lt\":50}}", f_mongo },
	{ "{\"must\":[{\"key\":\"city\",\"match\":{\"any\":[]}}]}", f_none },
	{ "{\"must\":[{\"key\":\"flag\",\"match\":{\"value\":true}}]}", f_flag },
	{ "{\"should\":[],\"must\":[]}", f_all },
	{ "{\"must\":[{\"must_not\":[{\"must_not\":[{\"key\":\"n\",\"range\":{\"lt\":30}}]}]}]}", f_deep },
};

/* The integer index behind a JSON id. */
static int id_index(const cJSON *id)
{
	if (cJSON_IsNumber(id))
		return (int)id->valuedouble;
	if (cJSON_IsString(id) && !strncmp(id->valuestring, "p-", 2))
		return atoi(id->valuestring + 2);
	return -1;
}

TEST(filters_match_reference)
{
	const int dim = 8;
	unsigned port;
	rv_server *s = start(fresh_dir("srv-filter"), NULL, 0, &port);
	CHECK(s);
	CHECK(create_coll(port, "f", dim, "Euclid"));
	float *v = rv_test_random_vectors(FN, (size_t)dim, 21);
	CHECK(upsert_range(port, "f", v, dim, 0, FN, filter_ids, filter_payload));
	for (size_t c = 0; c < sizeof fcases / sizeof fcases[0]; c++) {
		const fcase *fc = &fcases[c];
		int want = 0;
		for (int i = 0; i < FN; i++)
			want += fc->ref(i);
		/* Every match, exactly. */
		resp r = httpf(port, "POST", "/collections/f/points/search",
			       "{\"vector\":[0,0,0,0,0,0,0,0],\"limit\":%d,\"filter\":%s,\"params\":{\"exact\":true}}", FN,
			       fc->filter);
		cJSON *res = result(&r), *h;
		CHECK_MSG(r.status == 200, "case %zu: %d %s", c, r.status, r.body);
		CHECK_MSG(cJSON_GetArraySize(res) == want, "case %zu %s: %d hits, reference %d", c, fc->filter,
			  cJSON_GetArraySize(res), want);
		cJSON_ArrayForEach(h, res)
		{
			int i = id_index(cJSON_GetObjectItem(h, "id"));
			CHECK_MSG(i >= 0 && i < FN && fc->ref(i), "case %zu %s: point %d should not match", c, fc->filter, i);
		}
		resp_free(&r);
		/* k hits through the graph when k match. */
		r = httpf(port, "POST", "/collections/f/points/search",
			  "{\"vector\":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8],\"limit\":10,\"filter\":%s,\"with_payload\":true}",
			  fc->filter);
		res = result(&r);
		CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == (want < 10 ? want : 10), "case %zu: %d hits of %d: %s",
			  c, cJSON_GetArraySize(res), want, r.body);
		double prev = -1;
		cJSON_ArrayForEach(h, res)
		{
			int i = id_index(cJSON_GetObjectItem(h, "id"));
			double sc = cJSON_GetObjectItem(h, "score")->valuedouble;
			CHECK_MSG(i >= 0 && fc->ref(i), "case %zu: point %d should not match", c, i);
			CHECK(sc >= prev);
			CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "payload"), "n")));
			prev = sc;
		}
		resp_free(&r);
		/* count agrees. */
		r = httpf(port, "POST", "/collections/f/points/count", "{\"filter\":%s}", fc->filter);
		CHECK_MSG(r.status == 200 && cJSON_GetObjectItem(result(&r), "count")->valuedouble == want, "case %zu: %s", c,
			  r.body);
		resp_free(&r);
	}
	/* Bad filters are refused with the place named. */
	static const struct {
		const char *filter, *msg;
	} bad[] = {
		{ "{\"must\":[{\"key\":\"n\",\"range\":{}}]}", "filter.must[0].range" },
		{ "{\"must\":[{\"foo\":1}]}", "filter.must[0]: unknown condition" },
		{ "{\"should\":[{\"key\":\"n\",\"match\":{\"text\":\"a\"}}]}", "filter.should[0].match.text" },
		{ "{\"must\":[{\"key\":\"a..b\",\"match\":{\"value\":1}}]}", "filter.must[0].key" },
		{ "{\"must\":[{\"has_id\":[-4]}]}", "filter.must[0].has_id[0]" },
		{ "{\"must\":3}", "filter.must" },
		{ "{\"city\":{\"$gtx\":1}}", "unknown operator" },
		{ "{\"must\":[],\"extra\":1}", "extra" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		resp r = httpf(port, "POST", "/collections/f/points/search", "{\"vector\":[0,0,0,0,0,0,0,0],\"filter\":%s}",
			       bad[i].filter);
		CHECK_MSG(r.status == 400 && strstr(errmsg(&r), bad[i].msg), "%s -> %d %s", bad[i].filter, r.status, r.body);
		resp_free(&r);
	}
	/* Delete by a filter with has_id inside should: exactly the matches go. */
	const fcase *del = &fcases[17];
	int left = 0;
	for (int i = 0; i < FN; i++)
		left += !del->ref(i);
	resp r = httpf(port, "POST", "/collections/f/points/delete", "{\"filter\":%s}", del->filter);
	CHECK_MSG(r.status == 200, "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/f/points/count", "{\"exact\":true}", NULL);
	CHECK_MSG(cJSON_GetObjectItem(result(&r), "count")->valuedouble == left, "%s", r.body);
	resp_free(&r);
	for (int i = 0; i < FN; i++) {
		char path[64], idtext[16];
		if (is_str_id(i))
			snprintf(idtext, sizeof idtext, "p-%d", i);
		else
			snprintf(idtext, sizeof idtext, "%d", i);
		snprintf(path, sizeof path, "/collections/f/points/%s", idtext);
		r = http(port, "GET", path, NULL, NULL);
		CHECK_MSG(r.status == (del->ref(i) ? 404 : 200), "point %d: %d", i, r.status);
		resp_free(&r);
	}
	free(v);
	CHECK(stop(s));
}

/* ======================================================================
 * Keys, limits, errors, metrics
 * ==================================================================== */

TEST(api_keys)
{
	unsigned port;
	const char *keys = rv_test_path("srv-keys.txt");
	FILE *f = fopen(keys, "w");
	CHECK(f);
	fprintf(f, "# keys\n\nrw secret-rw-key\nro  secret-ro-key  \n");
	fclose(f);
	rv_server *s = start(fresh_dir("srv-auth"), keys, 0, &port);
	CHECK(s);
	resp r = http(port, "GET", "/collections", NULL, NULL);
	CHECK_MSG(r.status == 401 && strstr(errmsg(&r), "API key"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "GET", "/collections", NULL, "api-key: secret-rw-kez\r\n");
	CHECK(r.status == 401);
	resp_free(&r);
	r = http(port, "GET", "/collections", NULL, "api-key: secret-rw-key-longer\r\n");
	CHECK(r.status == 401);
	resp_free(&r);
	r = http(port, "GET", "/collections", NULL, "api-key: secret-ro-key\r\n");
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "PUT", "/collections/k", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}", "api-key: secret-ro-key\r\n");
	CHECK_MSG(r.status == 403 && strstr(errmsg(&r), "read-only"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/k", "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}", "api-key: secret-rw-key\r\n");
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "PUT", "/collections/k/points", "{\"points\":[{\"id\":1,\"vector\":[1,2]}]}",
		 "Authorization: Bearer secret-rw-key\r\n");
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "POST", "/collections/k/points/search", "{\"vector\":[1,1]}", "Authorization: Bearer secret-ro-key\r\n");
	CHECK(r.status == 200 && cJSON_GetArraySize(result(&r)) == 1);
	resp_free(&r);
	r = http(port, "POST", "/collections/k/points/delete", "{\"points\":[1]}", "Authorization: Bearer secret-ro-key\r\n");
	CHECK(r.status == 403);
	resp_free(&r);
	r = http(port, "GET", "/collections", NULL, "Authorization: Basic secret-rw-key\r\n");
	CHECK(r.status == 401);
	resp_free(&r);
	/* Health needs no key. */
	r = http(port, "GET", "/healthz", NULL, NULL);
	CHECK(r.status == 200 && !strncmp(r.body, "ok", 2));
	resp_free(&r);
	CHECK(stop(s));

	/* The comparison itself. */
	CHECK(rv_ct_equal("abc", 3, "abc", 3));
	CHECK(!rv_ct_equal("abc", 3, "abd", 3));
	CHECK(!rv_ct_equal("ab", 2, "abc", 3));
	CHECK(!rv_ct_equal("abcd", 4, "abc", 3));
	CHECK(!rv_ct_equal("", 0, "a", 1));
	CHECK(rv_ct_equal("", 0, "", 0));

	/* A bad key file is refused with its line. */
	f = fopen(keys, "w");
	fprintf(f, "rw good\nadmin bad\n");
	fclose(f);
	rv_server_opts o = RV_SERVER_OPTS_INIT;
	o.data_dir = fresh_dir("srv-auth2");
	o.port = 0;
	o.api_key_file = keys;
	rv_err e = { "" };
	rv_server *s2 = NULL;
	CHECK(rv_server_start(&s2, &o, &e) == RV_EINVAL);
	CHECK_MSG(strstr(e.msg, ":2:") != NULL, "%s", e.msg);
}

TEST(limits_and_errors)
{
	unsigned port;
	rv_server *s = start(fresh_dir("srv-limits"), NULL, 4096, &port);
	CHECK(s);
	CHECK(create_coll(port, "l", 4, "Cosine"));
	sb big = { 0 };
	sb_add(&big, "{\"points\":[");
	for (int i = 0; i < 200; i++)
		sb_add(&big, "%s{\"id\":%d,\"vector\":[1,2,3,4]}", i ? "," : "", i);
	sb_add(&big, "]}");
	resp r = http(port, "PUT", "/collections/l/points", big.s, NULL);
	free(big.s);
	CHECK_MSG(r.status == 413 && strstr(errmsg(&r), "4096"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/l/points", "{\"points\":[{\"id\":1,\"vector\":[1,2,3,4]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "malformed JSON"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/l/points", "{\"points\":[]} trailing", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "after the value"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "GET", "/no/such/route", NULL, NULL);
	CHECK(r.status == 404 && strstr(errmsg(&r), "unknown route"));
	resp_free(&r);
	r = http(port, "PATCH", "/collections/l", NULL, NULL);
	CHECK(r.status == 405);
	resp_free(&r);
	r = http(port, "POST", "/collections/l/points/search", "{\"vector\":[1,2,3,4],\"limit\":0}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "limit"), "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/l/points/search", "{\"vector\":[0,0,0,0]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "zero vector"), "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/l/points/search", "{\"vector\":[1,2,3,4e39]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "vector[3]"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/l/points?wait=maybe", "{\"points\":[]}", NULL);
	CHECK(r.status == 400 && strstr(errmsg(&r), "wait"));
	resp_free(&r);
	r = http(port, "POST", "/collections/l/points/search/batch",
		 "{\"searches\":[{\"vector\":[1,2,3,4]},{\"vector\":[1,2]}]}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "searches[1].vector"), "%s", r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/l/points", "{\"points\":[{\"id\":1,\"vector\":[1,0,0,0]},{\"id\":2,\"vector\":[0,1,0,0]}]}", NULL);
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "POST", "/collections/l/points/search/batch",
		 "{\"searches\":[{\"vector\":[1,0,0,0],\"limit\":1},{\"vector\":[0,1,0,0],\"limit\":2}]}", NULL);
	cJSON *res = result(&r);
	CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == 2, "%s", r.body);
	CHECK(cJSON_GetArraySize(cJSON_GetArrayItem(res, 0)) == 1 && cJSON_GetArraySize(cJSON_GetArrayItem(res, 1)) == 2);
	CHECK(json_id(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetArrayItem(res, 1), 0), "id")) == 2);
	resp_free(&r);
	/* offset skips the nearest. */
	r = http(port, "POST", "/collections/l/points/search", "{\"vector\":[1,0.1,0,0],\"limit\":1,\"offset\":1}", NULL);
	CHECK(r.status == 200 && json_id(cJSON_GetObjectItem(cJSON_GetArrayItem(result(&r), 0), "id")) == 2);
	resp_free(&r);
	/* The server answers normally after all that. */
	r = http(port, "GET", "/readyz", NULL, NULL);
	CHECK(r.status == 200);
	resp_free(&r);
	CHECK(stop(s));
}

/* The value of one series of the exposition, or -1. */
static double metric_value(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);
	while ((p = strstr(p, series))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atof(p + n + 1);
		p += n;
	}
	return -1;
}

TEST(metrics_count_requests)
{
	unsigned port;
	rv_server *s = start(fresh_dir("srv-metrics"), NULL, 0, &port);
	CHECK(s);
	CHECK(create_coll(port, "m", 2, "Euclid"));
	float v[10] = { 0 };
	CHECK(upsert_range(port, "m", v, 2, 0, 5, NULL, NULL));
	resp r = http(port, "GET", "/metrics", NULL, NULL);
	CHECK(r.status == 200);
	const char *list = "ruvector_http_requests_total{method=\"GET\",route=\"/collections\",status=\"200\"}";
	const char *lat = "ruvector_http_request_duration_seconds_count{method=\"GET\",route=\"/collections\"}";
	double before = metric_value(r.body, list);
	CHECK(before == -1); /* none yet */
	CHECK(metric_value(r.body, "ruvector_collection_vectors{collection=\"m\"}") == 5);
	CHECK(metric_value(r.body, "ruvector_collection_file_bytes{collection=\"m\"}") > 0);
	CHECK(metric_value(r.body, "ruvector_http_requests_total{method=\"PUT\",route=\"/collections/{name}\",status=\"200\"}") == 1);
	resp_free(&r);
	for (int i = 0; i < 3; i++) {
		r = http(port, "GET", "/collections", NULL, NULL);
		resp_free(&r);
	}
	r = http(port, "GET", "/collections/none", NULL, NULL);
	resp_free(&r);
	r = http(port, "GET", "/metrics", NULL, NULL);
	CHECK_MSG(metric_value(r.body, list) == 3, "%s", r.body);
	CHECK(metric_value(r.body, lat) == 3);
	CHECK(metric_value(r.body, "ruvector_http_request_duration_seconds_bucket{method=\"GET\",route=\"/collections\",le=\"+Inf\"}") == 3);
	CHECK(metric_value(r.body, "ruvector_http_requests_total{method=\"GET\",route=\"/collections/{name}\",status=\"404\"}") == 1);
	CHECK(metric_value(r.body, "ruvector_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}") == 1);
	CHECK(metric_value(r.body, "ruvector_http_requests_in_flight") == 1);
	resp_free(&r);
	CHECK(stop(s));
}

/* ======================================================================
 * Concurrency
 * ==================================================================== */

typedef struct worker {
	unsigned port;
	int kind; /* 0 upsert, 1 search, 2 create/drop */
	int base;
	int failures;
	int done;
} worker;

static void *work(void *p)
{
	worker *w = p;
	float v[8];
	for (int round = 0; round < 25; round++) {
		resp r;
		if (w->kind == 0) {
			sb b = { 0 };
			sb_add(&b, "{\"points\":[");
			for (int i = 0; i < 20; i++) {
				int id = w->base + round * 20 + i;
				for (int d = 0; d < 8; d++)
					v[d] = (float)((id * 31 + d * 7) % 13) - 6.0f;
				sb_add(&b, "%s{\"id\":%d,\"vector\":", i ? "," : "", id);
				sb_floats(&b, v, 8);
				sb_add(&b, ",\"payload\":{\"w\":%d}}", w->base);
			}
			sb_add(&b, "]}");
			r = http(w->port, "PUT", "/collections/cc/points", b.s, NULL);
			free(b.s);
		} else if (w->kind == 1) {
			r = http(w->port, "POST", "/collections/cc/points/search",
				 "{\"vector\":[1,2,3,4,5,6,7,8],\"limit\":5,\"with_payload\":true,"
				 "\"filter\":{\"must_not\":[{\"key\":\"w\",\"match\":{\"value\":-1}}]}}",
				 NULL);
		} else {
			char path[64];
			snprintf(path, sizeof path, "/collections/tmp%d", w->base);
			r = http(w->port, round % 2 ? "DELETE" : "PUT", path,
				 "{\"vectors\":{\"size\":3,\"distance\":\"Dot\"}}", NULL);
		}
		if (r.status != 200) {
			fprintf(stderr, "worker %d: %d %s\n", w->kind, r.status, r.body ? r.body : "(none)");
			w->failures++;
		}
		resp_free(&r);
		w->done++;
	}
	return NULL;
}

TEST(concurrent_readers_writers_and_collections)
{
	unsigned port;
	rv_server *s = start(fresh_dir("srv-conc"), NULL, 0, &port);
	CHECK(s);
	CHECK(create_coll(port, "cc", 8, "Euclid"));
	worker w[7] = { { port, 0, 0, 0, 0 },     { port, 0, 10000, 0, 0 }, { port, 0, 20000, 0, 0 },
			{ port, 1, 0, 0, 0 },     { port, 1, 0, 0, 0 },     { port, 2, 1, 0, 0 },
			{ port, 2, 2, 0, 0 } };
	pthread_t t[7];
	for (int i = 0; i < 7; i++)
		pthread_create(&t[i], NULL, work, &w[i]);
	for (int i = 0; i < 7; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 7; i++)
		CHECK_MSG(w[i].failures == 0 && w[i].done == 25, "worker %d: %d failures", i, w[i].failures);
	resp r = http(port, "GET", "/collections/cc", NULL, NULL);
	CHECK_MSG(cJSON_GetObjectItem(result(&r), "points_count")->valuedouble == 3 * 25 * 20, "%s", r.body);
	resp_free(&r);
	/* A delete by filter larger than one internal page (1000 points):
	 * every point has w >= 0, so all 1500 go. */
	r = http(port, "POST", "/collections/cc/points/delete",
		 "{\"filter\":{\"must\":[{\"key\":\"w\",\"range\":{\"gte\":0}}]}}", NULL);
	CHECK_MSG(r.status == 200, "%s", r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/cc/points/count", "{}", NULL);
	CHECK_MSG(cJSON_GetObjectItem(result(&r), "count")->valuedouble == 0, "%s", r.body);
	resp_free(&r);
	CHECK(stop(s));
}

/* ======================================================================
 * The real binary: SIGTERM and kill -9
 * ==================================================================== */

typedef struct child {
	pid_t pid;
	unsigned port;
	char log[1024];
} child;

/* Servers still running when the tests end (a failed CHECK returns
 * early) are killed, so no test leaves a process behind. */
static pid_t live[8];

static void reap_children(void)
{
	for (int i = 0; i < 8; i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
}

static void forget(pid_t pid)
{
	for (int i = 0; i < 8; i++)
		if (live[i] == pid)
			live[i] = 0;
}

static bool spawn(child *c, const char *dir, const char *name)
{
	static bool registered;
	if (!registered) {
		atexit(reap_children);
		registered = true;
	}
	snprintf(c->log, sizeof c->log, "%s", rv_test_path(name));
	c->pid = fork();
	if (c->pid == 0) {
		/* Die with the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		FILE *f = freopen(c->log, "w", stderr);
		(void)f;
		execl(BIN, BIN, "serve", "--data", dir, "--port", "0", "--threads", "2", (char *)NULL);
		_exit(127);
	}
	if (c->pid < 0)
		return false;
	for (int i = 0; i < 8; i++)
		if (live[i] == 0) {
			live[i] = c->pid;
			break;
		}
	/* The port is in the first line of the log. */
	for (int tries = 0; tries < 500; tries++) {
		FILE *f = fopen(c->log, "r");
		char line[512] = "";
		if (f) {
			if (fgets(line, sizeof line, f)) {
				char *p = strstr(line, "127.0.0.1:");
				if (p && sscanf(p, "127.0.0.1:%u", &c->port) == 1) {
					fclose(f);
					return true;
				}
			}
			fclose(f);
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	forget(c->pid);
	return false;
}

static void payload_of(sb *b, int i)
{
	sb_add(b, "{\"i\":%d,\"s\":\"v%d\"}", i, i);
}

TEST(sigterm_finishes_requests_and_commits)
{
	const int dim = 16, n0 = 200, n1 = 3000;
	const char *dir = fresh_dir("srv-term");
	child c;
	CHECK_MSG(spawn(&c, dir, "srv-term.log"), "cannot start %s", BIN);
	CHECK(create_coll(c.port, "t", dim, "Euclid"));
	float *v = rv_test_random_vectors((size_t)(n0 + n1), (size_t)dim, 31);
	CHECK(upsert_range(c.port, "t", v, dim, 0, n0, NULL, payload_of));
	/* A second upsert is in flight when SIGTERM arrives: headers and
	 * half the body sent, the rest after the signal. */
	sb b = { 0 };
	sb_add(&b, "{\"points\":[");
	for (int i = n0; i < n0 + n1; i++) {
		sb_add(&b, i > n0 ? ",{\"id\":%d,\"vector\":" : "{\"id\":%d,\"vector\":", i);
		sb_floats(&b, v + (size_t)i * dim, (size_t)dim);
		sb_add(&b, "}");
	}
	sb_add(&b, "]}");
	int fd = connect_port(c.port);
	CHECK(fd >= 0);
	char head[256];
	snprintf(head, sizeof head,
		 "PUT /collections/t/points HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", b.len);
	CHECK(send_all(fd, head, strlen(head)) && send_all(fd, b.s, b.len / 2));
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	CHECK(kill(c.pid, SIGTERM) == 0);
	/* New connections are refused once the server stops accepting. */
	bool refused = false;
	for (int tries = 0; tries < 200 && !refused; tries++) {
		int fd2 = connect_port(c.port);
		if (fd2 < 0)
			refused = true;
		else
			close(fd2);
		struct timespec t10 = { 0, 10 * 1000 * 1000 };
		nanosleep(&t10, NULL);
	}
	CHECK(refused);
	CHECK(send_all(fd, b.s + b.len / 2, b.len - b.len / 2));
	resp r;
	CHECK(read_response(fd, &r));
	close(fd);
	free(b.s);
	CHECK_MSG(r.status == 200, "in-flight upsert: %d %s", r.status, r.body);
	resp_free(&r);
	int status = 0;
	CHECK(waitpid(c.pid, &status, 0) == c.pid);
	forget(c.pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
	/* Everything is in the file, committed. */
	char file[1200];
	snprintf(file, sizeof file, "%s/t.rvf", dir);
	rv_db *db = NULL;
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	CHECK_OK(rv_db_open(&db, file, &o), db);
	CHECK(rv_db_count(db) == (uint64_t)(n0 + n1));
	rv_stats st = RV_STATS_INIT;
	CHECK_OK(rv_db_stats(&st, db), db);
	CHECK(!st.dirty);
	float got[16];
	char *pay = NULL;
	CHECK_OK(rv_db_get(db, "17", got, &pay), db);
	CHECK(pay && strstr(pay, "\"s\":\"v17\""));
	rv_free(pay);
	CHECK(memcmp(got, v + 17 * dim, sizeof got) == 0);
	CHECK_OK(rv_db_get(db, "3100", got, NULL), db);
	CHECK(memcmp(got, v + 3100 * dim, sizeof got) == 0);
	rv_db_close(db);
	free(v);
	CHECK(rv_verify_file(file, NULL, NULL) == RV_OK);
}

TEST(kill9_after_acknowledged_writes_loses_nothing)
{
	const int dim = 8, batches = 30, per = 20, n = batches * per;
	const char *dir = fresh_dir("srv-kill9");
	child c;
	CHECK_MSG(spawn(&c, dir, "srv-kill9.log"), "cannot start %s", BIN);
	CHECK(create_coll(c.port, "k", dim, "Cosine"));
	float *v = rv_test_random_vectors((size_t)n, (size_t)dim, 41);
	resp r;
	for (int b = 0; b < batches; b++) {
		CHECK(upsert_range(c.port, "k", v, dim, b * per, (b + 1) * per, NULL, payload_of));
		if (b == batches / 2) {
			/* Deletes are writes too. */
			r = http(c.port, "POST", "/collections/k/points/delete", "{\"points\":[0,1,2]}", NULL);
			CHECK(r.status == 200);
			resp_free(&r);
		}
	}
	/* The last acknowledged write was an upsert; kill at once. */
	CHECK(kill(c.pid, SIGKILL) == 0);
	int status;
	CHECK(waitpid(c.pid, &status, 0) == c.pid && WIFSIGNALED(status));
	forget(c.pid);

	CHECK_MSG(spawn(&c, dir, "srv-kill9b.log"), "cannot restart %s", BIN);
	r = http(c.port, "GET", "/collections/k", NULL, NULL);
	CHECK_MSG(r.status == 200 && cJSON_GetObjectItem(result(&r), "points_count")->valuedouble == n - 3, "%s", r.body);
	resp_free(&r);
	sb b = { 0 };
	sb_add(&b, "{\"with_vector\":true,\"ids\":[");
	for (int i = 0; i < n; i++)
		sb_add(&b, i ? ",%d" : "%d", i);
	sb_add(&b, "]}");
	r = http(c.port, "POST", "/collections/k/points", b.s, NULL);
	free(b.s);
	cJSON *res = result(&r), *h;
	CHECK_MSG(r.status == 200 && cJSON_GetArraySize(res) == n - 3, "%d points back", cJSON_GetArraySize(res));
	cJSON_ArrayForEach(h, res)
	{
		int i = (int)json_id(cJSON_GetObjectItem(h, "id"));
		CHECK(i >= 3 && i < n);
		CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "payload"), "i")->valuedouble == i);
		/* Cosine stores the unit vector. */
		double norm = 0, dot = 0;
		for (int d = 0; d < dim; d++)
			norm += (double)v[i * dim + d] * v[i * dim + d];
		for (int d = 0; d < dim; d++)
			dot += cJSON_GetArrayItem(cJSON_GetObjectItem(h, "vector"), d)->valuedouble * v[i * dim + d];
		CHECK(fabs(dot / sqrt(norm) - 1.0) < 1e-5);
	}
	resp_free(&r);
	kill(c.pid, SIGTERM);
	CHECK(waitpid(c.pid, &status, 0) == c.pid);
	forget(c.pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(v);
}

TEST(feedback_and_learning_routes)
{
	unsigned port;
	const char *dir = fresh_dir("srv-learn");
	rv_server *s = start(dir, NULL, 0, &port);
	CHECK(s);
	resp r = http(port, "PUT", "/collections/fb", "{\"vectors\":{\"size\":3,\"distance\":\"Euclid\"}}", NULL);
	CHECK(r.status == 200);
	resp_free(&r);
	r = http(port, "PUT", "/collections/fb/points",
		 "{\"points\":[{\"id\":1,\"vector\":[0,0,0]},{\"id\":2,\"vector\":[1,0,0]},{\"id\":3,\"vector\":[2,0,0]}]}",
		 NULL);
	CHECK(r.status == 200);
	resp_free(&r);
	/* A search answers with its id beside Qdrant's members. */
	r = http(port, "POST", "/collections/fb/points/search", "{\"vector\":[0.1,0,0],\"limit\":3}", NULL);
	cJSON *sid = cJSON_GetObjectItemCaseSensitive(r.json, "search_id");
	CHECK_MSG(r.status == 200 && cJSON_IsString(sid), "%d %s", r.status, r.body);
	char id[32];
	snprintf(id, sizeof id, "%s", sid->valuestring);
	resp_free(&r);
	r = httpf(port, "POST", "/collections/fb/feedback", "{\"search_id\":\"%s\",\"id\":3,\"reward\":1}", id);
	CHECK_MSG(r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	r = httpf(port, "POST", "/collections/fb/feedback", "{\"search_id\":\"%s\",\"id\":3,\"reward\":7}", id);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "reward"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/fb/feedback", "{\"search_id\":\"99\",\"id\":3,\"reward\":1}", NULL);
	CHECK_MSG(r.status == 404, "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/fb/feedback", "{\"vector\":[2,0,0],\"id\":2,\"reward\":-0.5}", NULL);
	CHECK_MSG(r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "POST", "/collections/fb/feedback", "{\"id\":2,\"reward\":1}", NULL);
	CHECK_MSG(r.status == 400 && strstr(errmsg(&r), "search_id"), "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "PUT", "/collections/fb/learning", "{\"enabled\":true}", NULL);
	CHECK_MSG(r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "GET", "/collections/fb/learning", NULL, NULL);
	cJSON *res = result(&r);
	CHECK_MSG(r.status == 200 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "enabled")) &&
			  cJSON_GetObjectItemCaseSensitive(res, "feedback_events")->valuedouble == 2,
		  "%d %s", r.status, r.body);
	resp_free(&r);
	r = http(port, "GET", "/metrics", NULL, NULL);
	CHECK_MSG(r.status == 200 && strstr(r.body, "ruvector_collection_feedback_events{collection=\"fb\"} 2"), "%s",
		  r.body);
	resp_free(&r);
	CHECK(stop(s));
}
