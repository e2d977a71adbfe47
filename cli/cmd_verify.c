/*
 * cmd_verify.c - `ruvector verify FILE`: check every segment header and
 * checksum without opening the collection (rv_verify_file).
 */
#include "cli.h"

static const char usage[] =
	"usage: " RV_CLI_NAME " verify FILE [-v]\n"
	"\n"
	"Check the file's segments, checksums and manifests without opening the\n"
	"collection. Prints each problem ('problem: ...'), with -v also each check\n"
	"that passed ('ok: ...'), then one summary line:\n"
	"  FILE: ok (N checks passed)\n"
	"  FILE: P problem(s), N checks passed: <status>\n"
	"Exit 0 only when the file is intact, 1 otherwise.\n"
	"\n"
	"  -v, --verbose   also list the checks that passed\n";

typedef struct tally {
	bool verbose;
	unsigned long long ok, bad;
} tally;

static void finding(void *ctx, int ok, const char *msg)
{
	tally *t = ctx;
	if (ok) {
		t->ok++;
		if (t->verbose)
			printf("ok: %s\n", msg);
	} else {
		t->bad++;
		printf("problem: %s\n", msg);
	}
}

int rv_cmd_verify(int argc, char **argv)
{
	bool verbose = false;
	const rv_arg_spec specs[] = { { "--verbose", "-v", RV_ARG_FLAG, &verbose } };
	const char *pos[1];
	size_t npos;
	int a = rv_cli_args("verify", usage, argc, argv, specs, 1, pos, 1, 1, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO)
		return a;
	tally t = { .verbose = verbose };
	rv_status st = rv_verify_file(pos[0], finding, &t);
	if (st == RV_OK && t.bad == 0) {
		printf("%s: ok (%llu checks passed)\n", pos[0], t.ok);
		return RV_EXIT_OK;
	}
	/* A failure without findings (missing file, I/O error) still counts
	 * as one problem in the summary. */
	unsigned long long bad = t.bad ? t.bad : 1;
	printf("%s: %llu problem%s, %llu checks passed: %s\n", pos[0], bad, bad == 1 ? "" : "s", t.ok,
	       rv_status_str(st == RV_OK ? RV_ECORRUPT : st));
	return RV_EXIT_ERROR;
}
