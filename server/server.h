/*
 * server.h - `ruvector serve`: an HTTP server speaking Qdrant's REST API
 * over a directory of collections (DIR/<name>.rvf, one file each).
 *
 * Two layers, so that everything that reads untrusted bytes can be tested
 * and fuzzed without a socket:
 *
 *   rv_service  the request -> response core: routing, API keys, JSON
 *               parsing and translation into library calls, the table of
 *               open collections, metrics. rv_service_handle() takes one
 *               complete request (method, path, headers that matter, body)
 *               and fills one response. Thread-safe: the daemon calls it
 *               from all of its worker threads at once.
 *   rv_server   the daemon: libmicrohttpd in thread-pool mode, collecting
 *               request bodies (with the --max-body limit), handing each
 *               complete request to the service, and stopping gracefully
 *               (stop accepting, finish requests in flight, commit every
 *               collection).
 *
 * docs/SERVER.md is the user's manual (routes, compatibility notes, the API
 * key file, metrics).
 */
#ifndef RV_SERVER_H
#define RV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ruvector.h"
#include "util/util.h"

#define RV_SERVER_DEFAULT_PORT 6333
#define RV_SERVER_DEFAULT_MAX_BODY ((size_t)32 << 20)

/* ======================================================================
 * The service: requests in, responses out, no sockets.
 * ==================================================================== */

typedef struct rv_service rv_service;

typedef struct rv_service_opts {
	size_t size;              /* sizeof(rv_service_opts), set by RV_SERVICE_OPTS_INIT */
	const char *data_dir;     /* required; created when missing (one level) */
	const char *api_key_file; /* NULL: no key needed; else lines "rw KEY" / "ro KEY" */
	unsigned db_threads;      /* rv_open_opts.threads of each collection; 0 = all cores */
} rv_service_opts;

#define RV_SERVICE_OPTS_INIT { sizeof(rv_service_opts), NULL, NULL, 0 }

typedef struct rv_http_request {
	const char *method;        /* "GET", "PUT", "POST", "DELETE", ... */
	const char *path;          /* percent-decoded, without the query string */
	const char *wait;          /* value of the ?wait= argument, or NULL */
	const char *api_key;       /* the "api-key" header, or NULL */
	const char *authorization; /* the "Authorization" header, or NULL */
	const char *body;          /* body bytes, need not end in NUL; NULL when none */
	size_t body_len;
} rv_http_request;

typedef struct rv_http_response {
	int status;               /* HTTP status code */
	const char *content_type; /* static string */
	rv_buf body;              /* C-library memory (free() releases body.data) */
} rv_http_response;

/* Open the service over opts->data_dir (and load the API key file).
 * Errors: RV_EINVAL (bad key file: the message names file and line),
 * RV_EIO (the directory cannot be created or read), RV_ENOMEM. */
rv_status rv_service_open(rv_service **out, const rv_service_opts *opts, rv_err *err);

/* Answer one complete request. Never fails: every problem becomes an HTTP
 * error response with a JSON body {"status":{"error":"..."},"time":...}.
 * resp is initialised here; release it with rv_http_response_free(). */
void rv_service_handle(rv_service *s, const rv_http_request *req, rv_http_response *resp);
void rv_http_response_free(rv_http_response *resp);

/* A response the daemon makes itself (413 for a body over the limit, 503
 * while stopping), in the same JSON error shape, counted in the metrics
 * under the request's route. */
void rv_service_error(rv_service *s, const char *method, const char *path, int status,
		      const char *msg, double started, rv_http_response *resp);

/* Requests in flight, for the metrics gauge and for draining on shutdown. */
void rv_service_begin(rv_service *s);
void rv_service_end(rv_service *s);
long rv_service_in_flight(rv_service *s);
/* While stopping, /readyz answers 503. */
void rv_service_set_stopping(rv_service *s, bool stopping);

/* Commit every open collection that has uncommitted changes, then close
 * them all and free the service. No request may be running. Returns the
 * first commit failure (every collection is still tried and closed). */
rv_status rv_service_close(rv_service *s, rv_err *err);

/* ======================================================================
 * The daemon.
 * ==================================================================== */

typedef struct rv_server rv_server;

typedef struct rv_server_opts {
	size_t size;              /* sizeof(rv_server_opts), set by RV_SERVER_OPTS_INIT */
	const char *data_dir;     /* required */
	const char *bind;         /* IPv4 or IPv6 address; NULL = "127.0.0.1" */
	unsigned port;            /* 0 = any free port (see rv_server_port) */
	unsigned threads;         /* worker threads; 0 = CPU count */
	const char *api_key_file; /* NULL = no keys */
	size_t max_body;          /* largest request body; 0 = 32 MiB */
	FILE *log;                /* one line per start/stop, or NULL */
} rv_server_opts;

#define RV_SERVER_OPTS_INIT { sizeof(rv_server_opts), NULL, NULL, RV_SERVER_DEFAULT_PORT, 0, NULL, 0, NULL }

/* Open the service and start listening. Returns when the socket is bound;
 * requests are answered on the daemon's own threads.
 * Errors: those of rv_service_open; RV_EINVAL (bad address, named);
 * RV_EIO (cannot bind: the message has the address and port). */
rv_status rv_server_start(rv_server **out, const rv_server_opts *opts, rv_err *err);

/* The port actually bound (useful with port 0). */
unsigned rv_server_port(const rv_server *s);

/* Graceful stop: stop accepting connections, wait up to drain_seconds for
 * the requests in flight to finish, stop the daemon, commit and close
 * every collection, free s. Returns the first commit failure. */
rv_status rv_server_stop(rv_server *s, double drain_seconds, rv_err *err);

#endif /* RV_SERVER_H */
