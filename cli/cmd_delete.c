/*
 * cmd_delete.c - `ruvector delete FILE ID...`: delete points and commit.
 *
 * The library counts deletions but does not say which ids were missing, so
 * each id is looked up first to name the missing ones. Exit status: 0 when
 * at least one point was deleted (or every id existed), 1 when none of the
 * ids existed or on an error; missing ids are listed on stderr either way.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " delete FILE ID...\n"
	"\n"
	"Delete the points with the given ids and commit.\n"
	"\n"
	"Prints one line: deleted N points\n"
	"Ids that do not exist are named on stderr ('ruvector: no point with id ...').\n"
	"Exit 0 when at least one point was deleted, 1 when none of the ids existed.\n";

int rv_cmd_delete(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	const char **pos = NULL;
	size_t npos = 0;
	rv_db *db = NULL;
	/* Every argument may be an id; argc bounds their number. */
	pos = rv_calloc(NULL, (size_t)argc, sizeof *pos);
	if (!pos)
		return rv_cli_fail("out of memory");
	int a = rv_cli_args("delete", usage, argc, argv, NULL, 0, pos, 2, (size_t)argc, &npos,
			    "the collection FILE and at least one ID");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	rc = RV_EXIT_ERROR;
	if (!(db = rv_cli_open(pos[0], 0, 0, NULL)))
		goto done;
	const char **ids = pos + 1;
	size_t n = npos - 1, existing = 0;
	for (size_t i = 0; i < n; i++) {
		rv_status st = rv_db_get(db, ids[i], NULL, NULL);
		if (st == RV_OK) {
			existing++;
			continue;
		}
		if (st != RV_ENOTFOUND) {
			rv_cli_fail_db(pos[0], db, st);
			goto done;
		}
		rv_cli_fail("no point with id '%s'", ids[i]);
	}
	size_t deleted = 0;
	if (existing) {
		rv_status st = rv_db_delete(db, ids, n, &deleted);
		if (st == RV_OK)
			st = rv_db_commit(db);
		if (st != RV_OK) {
			rv_cli_fail_db(pos[0], db, st);
			goto done;
		}
	}
	printf("deleted %zu point%s\n", deleted, deleted == 1 ? "" : "s");
	rc = deleted ? RV_EXIT_OK : RV_EXIT_ERROR;
done:
	rv_dealloc(NULL, pos);
	rv_db_close(db);
	return rc;
}
