/*
 * cmd_compact.c - `ruvector compact FILE`: rewrite the file with only the
 * live data and report the size before and after.
 */
#include "cli.h"

#include <sys/stat.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " compact FILE [-q]\n"
	"\n"
	"Commit, then rewrite FILE without deleted points, replaced graph\n"
	"checkpoints and old manifests (atomically: the old file is replaced only\n"
	"when the new one is complete).\n"
	"\n"
	"  -q, --quiet   no progress line (it is shown only on a terminal)\n"
	"\n"
	"Prints one line: compacted FILE: B1 -> B2 bytes\n";

static bool file_size(const char *path, unsigned long long *out)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return false;
	*out = (unsigned long long)sb.st_size;
	return true;
}

int rv_cmd_compact(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	bool quiet = false;
	const rv_arg_spec specs[] = { { "--quiet", "-q", RV_ARG_FLAG, &quiet } };
	const char *pos[1];
	size_t npos;
	rv_db *db = NULL;
	rv_progress prog;
	int a = rv_cli_args("compact", usage, argc, argv, specs, 1, pos, 1, 1, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	rc = RV_EXIT_ERROR;
	unsigned long long before = 0, after = 0;
	rv_progress_init(&prog, stderr, rv_progress_wanted(stderr, quiet), "compact");
	if (!(db = rv_cli_open(pos[0], 0, 0, &prog)))
		goto done;
	file_size(pos[0], &before);
	rv_status st = rv_db_compact(db);
	rv_progress_finish(&prog);
	if (st != RV_OK) {
		rv_cli_fail_db(pos[0], db, st);
		goto done;
	}
	if (!file_size(pos[0], &after)) {
		rv_cli_fail("%s: cannot read the new size", pos[0]);
		goto done;
	}
	printf("compacted %s: %llu -> %llu bytes\n", pos[0], before, after);
	rc = RV_EXIT_OK;
done:
	rv_db_close(db);
	return rc;
}
