/*
 * main.c - the `ruvector` command: dispatch to the subcommands in
 * cli/cmd_*.c, the top-level help and version, and the helpers every
 * subcommand uses to open a collection.
 *
 * The tool is a thin front end: it calls only include/ruvector.h (plus the
 * internal utilities), so whatever it can do, an embedding program can do
 * the same way.
 */
#include "cli.h"

#include <string.h>

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "create", rv_cmd_create, "create an empty collection file" },
	{ "import", rv_cmd_import, "load vectors from fvecs, bvecs, npy, csv or jsonl" },
	{ "search", rv_cmd_search, "find the nearest neighbours of query vectors" },
	{ "get", rv_cmd_get, "print a point's vector and payload" },
	{ "delete", rv_cmd_delete, "delete points by id" },
	{ "info", rv_cmd_info, "print the collection's settings and statistics" },
	{ "compact", rv_cmd_compact, "rewrite the file without deleted data" },
	{ "verify", rv_cmd_verify, "check every checksum in the file" },
	{ "serve", rv_cmd_serve, "serve a directory of collections over HTTP (Qdrant's REST API)" },
	{ "feedback", rv_cmd_feedback, "record feedback on search results (clicks, skips, ratings)" },
	{ "learn", rv_cmd_learn, "learning: on/off, learners, consolidate, rollback, status, eval" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: " RV_CLI_NAME " COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-9s %s\n", "help", "this text, or 'help COMMAND' for a command's options");
	fprintf(f, "\n  --version  print the versions of the tool and the library\n"
		   "\nRun '" RV_CLI_NAME " COMMAND --help' for a command's options.\n");
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

const char *rv_cli_errmsg(const rv_db *db, rv_status st)
{
	const char *m = db ? rv_errmsg(db) : "";
	return m && *m ? m : rv_status_str(st);
}

const char *rv_cli_db_msg(const char *path, const rv_db *db, rv_status st)
{
	const char *m = rv_cli_errmsg(db, st);
	/* Many library messages already start with the path; the caller
	 * names it once. */
	size_t n = strlen(path);
	if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
		m += n + 2;
	return m;
}

int rv_cli_fail_db(const char *path, const rv_db *db, rv_status st)
{
	return rv_cli_fail("%s: %s", path, rv_cli_db_msg(path, db, st));
}

rv_db *rv_cli_open(const char *path, unsigned flags, unsigned threads, rv_progress *progress)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.flags = flags;
	o.threads = threads;
	if (progress) {
		o.progress = rv_progress_library;
		o.progress_ctx = progress;
	}
	rv_db *db = NULL;
	rv_status st = rv_db_open(&db, path, &o);
	if (progress)
		rv_progress_finish(progress);
	if (st != RV_OK) {
		rv_cli_fail_db(path, db, st);
		rv_db_close(db);
		return NULL;
	}
	return db;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return RV_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		int v = rv_libversion_number();
		printf(RV_CLI_NAME " %s (library %d.%d.%d, simd %s)\n", RV_VERSION_STRING, v / 10000,
		       v / 100 % 100, v % 100, rv_simd_name());
		return RV_EXIT_OK;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return RV_EXIT_OK;
	}
	if (strcmp(cmd, "help") == 0) {
		if (argc == 2) {
			usage(stdout);
			return RV_EXIT_OK;
		}
		const struct command *c = find(argv[2]);
		if (!c) {
			fprintf(stderr, RV_CLI_NAME ": unknown command '%s'\n", argv[2]);
			usage(stderr);
			return RV_EXIT_USAGE;
		}
		char *help_argv[] = { argv[2], "--help", NULL };
		return c->run(2, help_argv);
	}
	const struct command *c = find(cmd);
	if (!c) {
		fprintf(stderr, RV_CLI_NAME ": unknown command '%s'\n", cmd);
		usage(stderr);
		return RV_EXIT_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
