/*
 * cmd_serve.c - `ruvector serve --data DIR`: the HTTP server (Qdrant's
 * REST API) over a directory of collections, until SIGTERM or SIGINT.
 *
 * The signals are blocked before the daemon's threads start (they inherit
 * the mask), so only this thread receives them, synchronously, in
 * sigwait(): no handler runs in the middle of a request, and the graceful
 * stop (finish requests in flight, commit every collection) happens here,
 * in ordinary code.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server.h"

static const char usage[] =
	"usage: " RV_CLI_NAME " serve --data DIR [--port 6333] [--bind 127.0.0.1] [--threads N]\n"
	"                        [--api-key-file FILE] [--max-body BYTES]\n"
	"\n"
	"Serve the collections in DIR (one DIR/<name>.rvf file each) over HTTP with\n"
	"Qdrant's REST API. Stops on SIGTERM or SIGINT after finishing the requests in\n"
	"flight and committing every collection. Routes: docs/SERVER.md.\n"
	"\n"
	"  --data DIR           the collections' directory (created if missing)\n"
	"  --port N             TCP port (default 6333; 0 picks a free one)\n"
	"  --bind ADDR          IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
	"  --threads N          worker threads (default: CPU count)\n"
	"  --api-key-file FILE  require keys: lines \"rw KEY\" or \"ro KEY\"\n"
	"  --max-body BYTES     largest request body (default 33554432)\n";

int rv_cmd_serve(int argc, char **argv)
{
	const char *data = NULL, *port = NULL, *bind = NULL, *threads = NULL, *keys = NULL, *max_body = NULL;
	const rv_arg_spec specs[] = {
		{ "--data", NULL, RV_ARG_VALUE, &data },
		{ "--port", NULL, RV_ARG_VALUE, &port },
		{ "--bind", NULL, RV_ARG_VALUE, &bind },
		{ "--threads", NULL, RV_ARG_VALUE, &threads },
		{ "--api-key-file", NULL, RV_ARG_VALUE, &keys },
		{ "--max-body", NULL, RV_ARG_VALUE, &max_body },
	};
	size_t npos;
	int a = rv_cli_args("serve", usage, argc, argv, specs, sizeof specs / sizeof specs[0], NULL, 0, 0, &npos,
			    "no positional arguments");
	if (a != RV_CLI_GO)
		return a;
	if (!data)
		return rv_cli_usage("serve", "--data DIR is required");
	rv_server_opts o = RV_SERVER_OPTS_INIT;
	uint64_t v;
	o.data_dir = data;
	o.bind = bind;
	o.api_key_file = keys;
	o.log = stderr;
	if (port) {
		if (!rv_args_uint("serve", "--port", port, 0, 65535, &v))
			return RV_EXIT_USAGE;
		o.port = (unsigned)v;
	}
	if (threads) {
		if (!rv_args_uint("serve", "--threads", threads, 1, 1024, &v))
			return RV_EXIT_USAGE;
		o.threads = (unsigned)v;
	}
	if (max_body) {
		if (!rv_args_uint("serve", "--max-body", max_body, 1, (uint64_t)1 << 40, &v))
			return RV_EXIT_USAGE;
		o.max_body = (size_t)v;
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	rv_server *s = NULL;
	rv_err err = { "" };
	if (rv_server_start(&s, &o, &err) != RV_OK)
		return rv_cli_fail("%s", err.msg);
	int sig = 0;
	do {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
	} while (sig == SIGPIPE);
	fprintf(stderr, RV_CLI_NAME " serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	if (rv_server_stop(s, 30.0, &err) != RV_OK)
		return rv_cli_fail("%s", err.msg);
	return RV_EXIT_OK;
}
