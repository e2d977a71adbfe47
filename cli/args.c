/*
 * args.c - the command line option parser and the message helpers every
 * command uses (see cli.h for the accepted syntax).
 *
 * Options are described by a table per command rather than getopt_long, so
 * that the parser can name the command in every message, accept options
 * after positional arguments (`ruvector search db.rvf -k 5`), and treat a
 * lone "-" as a positional argument.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int rv_cli_fail(const char *fmt, ...)
{
	va_list ap;
	fputs(RV_CLI_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return RV_EXIT_ERROR;
}

int rv_cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, RV_CLI_NAME " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" RV_CLI_NAME " %s --help'.\n", cmd);
	return RV_EXIT_USAGE;
}

void rv_arg_list_free(rv_arg_list *l)
{
	rv_dealloc(NULL, l->items);
	memset(l, 0, sizeof *l);
}

static bool list_add(rv_arg_list *l, const char *v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		const char **p = rv_realloc(NULL, l->items, cap * sizeof *p);
		if (!p)
			return false;
		l->items = p;
		l->cap = cap;
	}
	l->items[l->n++] = v;
	return true;
}

static int store(const char *cmd, const rv_arg_spec *s, const char *value)
{
	if (s->kind == RV_ARG_VALUE) {
		*(const char **)s->dest = value;
	} else if (!list_add(s->dest, value)) {
		rv_cli_fail("out of memory");
		return RV_ARGS_USAGE;
	}
	return RV_ARGS_OK;
}

int rv_args_parse(const char *cmd, int argc, char **argv, const rv_arg_spec *specs, size_t nspecs,
		  const char **pos, size_t pos_max, size_t *npos)
{
	bool options = true;
	*npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!options || a[0] != '-' || a[1] == 0) {
			if (*npos == pos_max) {
				rv_cli_usage(cmd, "unexpected argument '%s'", a);
				return RV_ARGS_USAGE;
			}
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return RV_ARGS_HELP;
		const rv_arg_spec *s = NULL;
		const char *value = NULL;
		if (a[1] == '-') {
			/* --name or --name=value */
			const char *eq = strchr(a, '=');
			size_t n = eq ? (size_t)(eq - a) : strlen(a);
			for (size_t k = 0; k < nspecs && !s; k++)
				if (strlen(specs[k].name) == n && strncmp(specs[k].name, a, n) == 0)
					s = &specs[k];
			if (s && eq) {
				if (s->kind == RV_ARG_FLAG) {
					rv_cli_usage(cmd, "option '%s' takes no value", s->name);
					return RV_ARGS_USAGE;
				}
				value = eq + 1;
			}
		} else {
			/* -k or -kVALUE */
			for (size_t k = 0; k < nspecs && !s; k++) {
				const char *al = specs[k].alias;
				if (!al)
					continue;
				size_t n = strlen(al);
				if (strncmp(al, a, n) == 0 &&
				    (a[n] == 0 || specs[k].kind != RV_ARG_FLAG)) {
					s = &specs[k];
					if (a[n])
						value = a + n;
				}
			}
		}
		if (!s) {
			rv_cli_usage(cmd, "unknown option '%s'", a);
			return RV_ARGS_USAGE;
		}
		if (s->kind == RV_ARG_FLAG) {
			*(bool *)s->dest = true;
			continue;
		}
		if (!value) {
			if (i + 1 >= argc) {
				rv_cli_usage(cmd, "option '%s' needs a value", a);
				return RV_ARGS_USAGE;
			}
			value = argv[++i];
		}
		if (store(cmd, s, value) != RV_ARGS_OK)
			return RV_ARGS_USAGE;
	}
	return RV_ARGS_OK;
}

bool rv_args_uint(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
		  uint64_t *out)
{
	char *end;
	errno = 0;
	/* strtoull accepts "-1" and leading blanks; a count must be digits. */
	if (text[0] < '0' || text[0] > '9') {
		rv_cli_usage(cmd, "%s: '%s' is not a non-negative integer", opt, text);
		return false;
	}
	unsigned long long v = strtoull(text, &end, 10);
	if (*end) {
		rv_cli_usage(cmd, "%s: '%s' is not a non-negative integer", opt, text);
		return false;
	}
	if (errno == ERANGE || v < min || v > max) {
		rv_cli_usage(cmd, "%s: %s is outside %llu..%llu", opt, text, (unsigned long long)min,
			     (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

int rv_cli_args(const char *cmd, const char *usage, int argc, char **argv, const rv_arg_spec *specs,
		size_t nspecs, const char **pos, size_t pos_min, size_t pos_max, size_t *npos,
		const char *expected)
{
	int a = rv_args_parse(cmd, argc, argv, specs, nspecs, pos, pos_max, npos);
	if (a == RV_ARGS_HELP) {
		fputs(usage, stdout);
		return RV_EXIT_OK;
	}
	if (a != RV_ARGS_OK)
		return RV_EXIT_USAGE;
	if (*npos < pos_min)
		return rv_cli_usage(cmd, "expected %s", expected);
	return RV_CLI_GO;
}
