/*
 * cli.h - what the `ruvector` command's files share: exit codes, messages,
 * the option parser and JSON output helpers (cli/args.c, cli/output.c, in
 * the support library), and the command entry points (cli/cmd_*.c).
 *
 * Conventions every command follows (docs/CLI.md is the user's manual):
 *   exit 0   success
 *   exit 1   runtime error; one message on stderr starting "ruvector: "
 *   exit 2   usage error; the message and a hint to --help on stderr
 *   --help   usage on stdout, exit 0
 * Results go to stdout, progress and diagnostics to stderr.
 */
#ifndef RV_CLI_H
#define RV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "progress.h"
#include "ruvector.h"
#include "util/util.h"

#define RV_CLI_NAME "ruvector"

enum {
	RV_EXIT_OK = 0,
	RV_EXIT_ERROR = 1,
	RV_EXIT_USAGE = 2
};

/* ======================================================================
 * Messages
 * ==================================================================== */

/* "ruvector: <message>" on stderr; returns RV_EXIT_ERROR. */
int rv_cli_fail(const char *fmt, ...) RV_PRINTF(1, 2);
/* "ruvector <cmd>: <message>" and "Try 'ruvector <cmd> --help'." on
 * stderr; returns RV_EXIT_USAGE. */
int rv_cli_usage(const char *cmd, const char *fmt, ...) RV_PRINTF(2, 3);

/* ======================================================================
 * Options
 *
 * Long options take their value as the next argument or after '='
 * (--dim 128, --dim=128); a short alias takes it as the next argument or
 * glued (-k 10, -k10). "-" alone is a positional argument (standard input);
 * "--" ends the options. A value option given twice keeps the last value;
 * a list option collects every value in order.
 * ==================================================================== */

typedef enum rv_arg_kind {
	RV_ARG_FLAG,  /* dest: bool * */
	RV_ARG_VALUE, /* dest: const char ** */
	RV_ARG_LIST   /* dest: rv_arg_list * */
} rv_arg_kind;

typedef struct rv_arg_list {
	const char **items;
	size_t n, cap;
} rv_arg_list;

typedef struct rv_arg_spec {
	const char *name;  /* "--dim" */
	const char *alias; /* "-k", or NULL */
	rv_arg_kind kind;
	void *dest;
} rv_arg_spec;

enum {
	RV_ARGS_OK = 0,
	RV_ARGS_HELP = 1, /* --help or -h was given */
	RV_ARGS_USAGE = 2 /* bad command line; the message is printed */
};

/* Parse argv[1..argc) (argv[0] is the command name) against specs; the
 * positional arguments go to pos[0..*npos), at most pos_max of them. */
int rv_args_parse(const char *cmd, int argc, char **argv, const rv_arg_spec *specs, size_t nspecs,
		  const char **pos, size_t pos_max, size_t *npos);
void rv_arg_list_free(rv_arg_list *l);

/* A command's whole argument step: rv_args_parse, then --help (prints
 * usage, returns RV_EXIT_OK), then at least pos_min positional arguments
 * (else a usage error "expected <expected>", RV_EXIT_USAGE). Returns
 * RV_CLI_GO when the command should go on. */
#define RV_CLI_GO (-1)
int rv_cli_args(const char *cmd, const char *usage, int argc, char **argv, const rv_arg_spec *specs,
		size_t nspecs, const char **pos, size_t pos_min, size_t pos_max, size_t *npos,
		const char *expected);

/* Parse text as a decimal integer in [min, max]; on failure print a usage
 * error naming opt and return false. */
bool rv_args_uint(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
		  uint64_t *out);

/* ======================================================================
 * Output
 * ==================================================================== */

/* s as a JSON string literal (quotes included). Control characters and
 * '"', '\\' are escaped; other bytes are written as they are. */
void rv_json_string(FILE *f, const char *s);
/* "[v0,v1,...]" with %.9g, which reads back as the same float. */
void rv_json_floats(FILE *f, const float *v, size_t n);
/* A float with %.9g; non-finite values as null (JSON has no NaN). */
void rv_json_float(FILE *f, float v);

/* Parse a query vector given as text: a JSON array of numbers ("[1, 2]")
 * or bare comma-separated numbers ("1,2"). On success *out (rv_malloc) holds
 * *n floats. On failure err says what is wrong and where. */
rv_status rv_parse_vector(const char *text, float **out, size_t *n, rv_err *err);

/* Search ids of the command line, which carry the query (output.c says
 * why): "q1." + base64url of the float32 values. Write one as a JSON
 * string; parse one back into *out (rv_malloc, *n floats). */
#define RV_CLI_SEARCH_ID_PREFIX "q1."
void rv_cli_search_id(FILE *f, const float *q, size_t dim);
rv_status rv_cli_parse_search_id(const char *s, float **out, size_t *n, rv_err *err);

/* ======================================================================
 * Commands: argv[0] is the command name. Each returns the exit code.
 * ==================================================================== */

int rv_cmd_create(int argc, char **argv);
int rv_cmd_import(int argc, char **argv);
int rv_cmd_search(int argc, char **argv);
int rv_cmd_get(int argc, char **argv);
int rv_cmd_delete(int argc, char **argv);
int rv_cmd_info(int argc, char **argv);
int rv_cmd_compact(int argc, char **argv);
int rv_cmd_verify(int argc, char **argv);
int rv_cmd_serve(int argc, char **argv);
int rv_cmd_feedback(int argc, char **argv);
int rv_cmd_learn(int argc, char **argv);

/* Open a collection for a command, printing "ruvector: FILE: why" on
 * failure. progress (may be NULL) shows the library's long phases.
 * Returns NULL on failure. Defined in main.c. */
rv_db *rv_cli_open(const char *path, unsigned flags, unsigned threads, rv_progress *progress);
/* The handle's message, or the status name when it has none. */
const char *rv_cli_errmsg(const rv_db *db, rv_status st);
/* The same without a leading "PATH: ", for messages that name the path
 * themselves. */
const char *rv_cli_db_msg(const char *path, const rv_db *db, rv_status st);
/* "ruvector: PATH: <the handle's message>" on stderr; returns
 * RV_EXIT_ERROR. */
int rv_cli_fail_db(const char *path, const rv_db *db, rv_status st);

#endif /* RV_CLI_H */
