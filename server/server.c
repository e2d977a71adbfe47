/*
 * server.c - the daemon: libmicrohttpd in thread-pool mode in front of the
 * service (handlers.c).
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are in, once per chunk of body, and once more when the
 * body is complete. The first call counts the request as in flight and
 * refuses a declared Content-Length over --max-body at once (413); body
 * chunks are appended to a per-request buffer; a body that grows past the
 * limit without declaring it is dropped as it comes and refused when it
 * ends (libmicrohttpd cannot answer mid-upload); the last call hands the
 * whole request to rv_service_handle() and queues its answer. The per-request state is freed in the completion callback,
 * which libmicrohttpd calls for every request, finished or aborted.
 *
 * Stopping (rv_server_stop, on SIGTERM/SIGINT in `ruvector serve`):
 * /readyz turns 503, the listening socket is closed (quiesce: no new
 * connections), requests already in flight are given time to finish, the
 * daemon stops (its threads are joined, so no handler runs after), and
 * the service commits and closes every collection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server_int.h"

#define LOG_NAME "ruvector"
/* Bytes of an oversized body read and dropped before the connection is
 * cut instead of answered. */
#define DISCARD_MAX ((size_t)64 << 20)

struct rv_server {
	struct MHD_Daemon *d;
	rv_service *svc;
	size_t max_body;
	unsigned port;
	FILE *log;
};

typedef struct conn_req {
	double t0;
	char *body;
	size_t len, cap;
	bool too_large;
	bool responded;
	size_t discarded; /* body bytes dropped after the limit */
} conn_req;

static enum MHD_Result queue(struct MHD_Connection *con, rv_http_response *resp)
{
	struct MHD_Response *r;
	unsigned status = (unsigned)resp->status;
	const char *ctype = resp->content_type;
	if (resp->body.len) {
		/* The body's buffer is handed over; libmicrohttpd frees it
		 * with free(), which is what rv_dealloc(NULL, ...) does. */
		r = MHD_create_response_from_buffer(resp->body.len, resp->body.data, MHD_RESPMEM_MUST_FREE);
		if (r)
			resp->body.data = NULL;
	} else {
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	rv_http_response_free(resp);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ok = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result too_large(rv_server *s, struct MHD_Connection *con, const char *method, const char *url,
				 conn_req *r)
{
	char msg[128];
	rv_http_response resp;
	snprintf(msg, sizeof msg, "body: larger than the limit of %zu bytes (--max-body)", s->max_body);
	rv_service_error(s->svc, method, url, 413, msg, r->t0, &resp);
	r->responded = true;
	/* On the first call this answers before the body is read (the
	 * connection is closed after it). */
	return queue(con, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	rv_server *s = cls;
	conn_req *r = *con_cls;
	if (!r) {
		if (!(r = rv_calloc(NULL, 1, sizeof *r)))
			return MHD_NO;
		r->t0 = rv_now();
		*con_cls = r;
		rv_service_begin(s->svc);
		const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno || end == cl || n > s->max_body)
				return too_large(s, con, method, url, r);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->responded)
			return MHD_YES;
		if (r->too_large || n > s->max_body - r->len) {
			/* libmicrohttpd cannot answer in the middle of an upload:
			 * drop what came, answer 413 at the end, and give up on
			 * a client that keeps sending far past the limit. */
			rv_dealloc(NULL, r->body);
			r->body = NULL;
			r->cap = 0;
			r->too_large = true;
			r->discarded = r->discarded + n < r->discarded ? SIZE_MAX : r->discarded + n;
			return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		if (r->len + n > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			while (cap < r->len + n)
				cap *= 2;
			char *p = rv_realloc(NULL, r->body, cap);
			if (!p)
				return MHD_NO;
			r->body = p;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		return MHD_YES;
	}
	if (r->too_large && !r->responded)
		return too_large(s, con, method, url, r);
	if (r->responded)
		return MHD_YES;
	r->responded = true;
	rv_http_request req = {
		.method = method,
		.path = url,
		.wait = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "wait"),
		.api_key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "api-key"),
		.authorization = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
		.body = r->body,
		.body_len = r->len,
	};
	rv_http_response resp;
	rv_service_handle(s->svc, &req, &resp);
	return queue(con, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	rv_server *s = cls;
	conn_req *r = *con_cls;
	if (!r)
		return;
	rv_dealloc(NULL, r->body);
	rv_dealloc(NULL, r);
	*con_cls = NULL;
	rv_service_end(s->svc);
}

rv_status rv_server_start(rv_server **out, const rv_server_opts *opts, rv_err *err)
{
	rv_status st;
	*out = NULL;
	if (!opts || opts->size != sizeof(rv_server_opts))
		return rv_err_set(err, RV_EINVAL, "rv_server_opts.size mismatch (use RV_SERVER_OPTS_INIT)");
	if (opts->port > 65535)
		return rv_err_set(err, RV_EINVAL, "port %u out of range 0..65535", opts->port);
	const char *bind = opts->bind ? opts->bind : "127.0.0.1";
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr *addr;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO;
	memset(&a4, 0, sizeof a4);
	memset(&a6, 0, sizeof a6);
	if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)opts->port);
		addr = (struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, bind, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)opts->port);
		addr = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		return rv_err_set(err, RV_EINVAL, "--bind: \"%.64s\" is not an IPv4 or IPv6 address", bind);
	}
	rv_server *s = rv_calloc(NULL, 1, sizeof *s);
	if (!s)
		return rv_err_nomem(err);
	s->max_body = opts->max_body ? opts->max_body : RV_SERVER_DEFAULT_MAX_BODY;
	s->log = opts->log;
	rv_service_opts so = RV_SERVICE_OPTS_INIT;
	so.data_dir = opts->data_dir;
	so.api_key_file = opts->api_key_file;
	if ((st = rv_service_open(&s->svc, &so, err)) != RV_OK) {
		rv_dealloc(NULL, s);
		return st;
	}
	unsigned threads = opts->threads ? opts->threads : rv_cpu_count();
	if (opts->log)
		flags |= MHD_USE_ERROR_LOG;
	/* One thread with its own poll loop when asked for one; otherwise a
	 * pool of threads sharing the listening socket. */
	s->d = MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, addr,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)120, MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
				MHD_OPTION_END);
	if (!s->d) {
		int e = errno;
		rv_service_close(s->svc, NULL);
		rv_dealloc(NULL, s);
		return rv_err_set(err, RV_EIO, "cannot listen on %s port %u: %s", bind, opts->port,
				  e ? strerror(e) : "libmicrohttpd refused to start");
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : opts->port;
	if (s->log)
		fprintf(s->log, LOG_NAME " serve: listening on http://%s%s%s:%u (data %s, %u thread%s)\n",
			addr->sa_family == AF_INET6 ? "[" : "", bind, addr->sa_family == AF_INET6 ? "]" : "", s->port,
			opts->data_dir, threads, threads == 1 ? "" : "s");
	*out = s;
	return RV_OK;
}

unsigned rv_server_port(const rv_server *s)
{
	return s->port;
}

rv_status rv_server_stop(rv_server *s, double drain_seconds, rv_err *err)
{
	if (!s)
		return RV_OK;
	rv_service_set_stopping(s->svc, true);
	MHD_socket ls = MHD_quiesce_daemon(s->d);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	double until = rv_now() + drain_seconds;
	long left;
	while ((left = rv_service_in_flight(s->svc)) > 0 && rv_now() < until) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (left > 0 && s->log)
		fprintf(s->log, LOG_NAME " serve: %ld request%s still running after %.0f s; stopping anyway\n",
			left, left == 1 ? "" : "s", drain_seconds);
	MHD_stop_daemon(s->d);
	rv_status st = rv_service_close(s->svc, err);
	if (s->log)
		fprintf(s->log, LOG_NAME " serve: %s\n",
			st == RV_OK ? "stopped; every collection committed" : "stopped; a commit failed");
	rv_dealloc(NULL, s);
	return st;
}
