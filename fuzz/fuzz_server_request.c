/*
 * fuzz_server_request.c - the server's request handling (routing, JSON
 * parsing, Qdrant -> library translation, search and writes) on arbitrary
 * bodies, with no socket: rv_service_handle() over a scratch directory.
 *
 * The first byte picks a route (modulo the table below); the rest is the
 * request body. One route instead takes the body's first line as the path
 * (so paths, names and ids are fuzzed too) and the rest as the body.
 * The directory holds one small collection ("f", 4-d, Cosine, a few points
 * with payloads) so that searches, filters and has_id run for real; it is
 * recreated every few hundred inputs to keep the file small. Every answer
 * must be a well-formed HTTP status with a JSON body, and errors must say
 * something.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
	const char *method, *path;
} routes[] = {
	{ "PUT", "/collections/f/points" },
	{ "POST", "/collections/f/points" },
	{ "POST", "/collections/f/points/search" },
	{ "POST", "/collections/f/points/delete" },
	{ "POST", "/collections/f/points/search/batch" },
	{ "POST", "/collections/f/points/count" },
	{ "PUT", "/collections/g" },
	{ "GET", NULL }, /* path from the body's first line */
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static rv_service *svc;
static unsigned long runs;
static char dir[256];

static void call(const char *method, const char *path, const char *body, size_t len, rv_http_response *resp)
{
	rv_http_request req = { method, path, NULL, NULL, NULL, body, len };
	rv_service_handle(svc, &req, resp);
}

/* Drop every collection (inputs may create some under any name). */
static void drop_all(void)
{
	rv_http_response r;
	call("GET", "/collections", NULL, 0, &r);
	cJSON *j = cJSON_ParseWithLength((const char *)r.body.data, r.body.len);
	rv_http_response_free(&r);
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "collections"))
	{
		char path[128];
		snprintf(path, sizeof path, "/collections/%s", cJSON_GetObjectItem(c, "name")->valuestring);
		call("DELETE", path, NULL, 0, &r);
		rv_http_response_free(&r);
	}
	cJSON_Delete(j);
}

static void seed(void)
{
	static const char create[] = "{\"vectors\":{\"size\":4,\"distance\":\"Cosine\"}}";
	static const char points[] =
		"{\"points\":[{\"id\":1,\"vector\":[1,0,0,0],\"payload\":{\"city\":\"London\",\"n\":1,\"tags\":[\"a\"]}},"
		"{\"id\":2,\"vector\":[0,1,0,0],\"payload\":{\"city\":\"Berlin\",\"n\":2,\"opt\":null}},"
		"{\"id\":\"5c56c793-69f3-4fbf-87e6-c4bf54c28c26\",\"vector\":[0,0,1,0]},"
		"{\"id\":4,\"vector\":[1,1,1,1],\"payload\":{\"city\":[\"Rome\",\"Paris\"],\"n\":4,\"opt\":[]}}]}";
	drop_all();
	rv_http_response r;
	call("PUT", "/collections/f", create, sizeof create - 1, &r);
	rv_http_response_free(&r);
	call("PUT", "/collections/f/points", points, sizeof points - 1, &r);
	rv_http_response_free(&r);
}

static void teardown(void)
{
	drop_all();
	rv_service_close(svc, NULL);
	svc = NULL;
	rmdir(dir);
}

static void setup(void)
{
	/* tmpfs when there is one: the writes commit (fsync) every time. */
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/rv-fuzz-server-%d", base, (int)getpid());
	rv_service_opts o = RV_SERVICE_OPTS_INIT;
	o.data_dir = dir;
	o.db_threads = 1;
	rv_err err = { "" };
	if (rv_service_open(&svc, &o, &err) != RV_OK) {
		fprintf(stderr, "fuzz_server_request: %s\n", err.msg);
		abort();
	}
	seed();
	atexit(teardown);
}

static void check(const rv_http_response *r)
{
	if (r->status < 200 || r->status > 599)
		__builtin_trap();
	if (strncmp(r->content_type, "application/json", 16) != 0)
		return;
	cJSON *j = cJSON_ParseWithLength((const char *)r->body.data, r->body.len);
	if (!j)
		__builtin_trap(); /* every JSON answer parses */
	if (r->status >= 400) {
		const cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "status"), "error");
		if (!cJSON_IsString(e) || !e->valuestring[0])
			__builtin_trap(); /* every error says something */
	} else if (!cJSON_GetObjectItem(j, "result") && !cJSON_GetObjectItem(j, "title")) {
		__builtin_trap();
	}
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!svc)
		setup();
	if (size < 1)
		return 0;
	if (++runs % 500 == 0)
		seed();
	size_t ri = data[0] % N_ROUTES;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	const char *method = routes[ri].method;
	char path[512];
	if (routes[ri].path) {
		snprintf(path, sizeof path, "%s", routes[ri].path);
	} else {
		/* "METHOD path\nbody" */
		const char *nl = memchr(body, '\n', len);
		size_t pl = nl ? (size_t)(nl - body) : len;
		if (pl >= sizeof path)
			pl = sizeof path - 1;
		memcpy(path, body, pl);
		path[pl] = 0;
		for (size_t i = 0; i < pl; i++)
			if (!path[i])
				path[i] = '_';
		static const char *methods[] = { "GET", "PUT", "POST", "DELETE" };
		method = methods[(data[0] / N_ROUTES) % 4];
		body = nl ? nl + 1 : body + len;
		len = nl ? len - pl - 1 : 0;
	}
	rv_http_response r;
	call(method, path, body, len, &r);
	check(&r);
	rv_http_response_free(&r);
	return 0;
}
