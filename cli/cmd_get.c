/*
 * cmd_get.c - `ruvector get FILE ID`: one point's vector and payload.
 */
#include "cli.h"

#include <stdlib.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " get FILE ID [--json]\n"
	"\n"
	"Print the vector and payload of the point ID.\n"
	"\n"
	"  --json   one line: {\"id\":\"...\",\"vector\":[...],\"payload\":{...} or null}\n"
	"\n"
	"Without --json: three lines, 'id: ...', 'vector: [...]', 'payload: ...'\n"
	"('payload: null' when the point has none). Exit 1 when there is no such id.\n";

int rv_cmd_get(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	bool json = false;
	const rv_arg_spec specs[] = { { "--json", NULL, RV_ARG_FLAG, &json } };
	const char *pos[2];
	size_t npos;
	rv_db *db = NULL;
	float *v = NULL;
	char *payload = NULL;
	int a = rv_cli_args("get", usage, argc, argv, specs, 1, pos, 2, 2, &npos,
			    "the collection FILE and an ID");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	rc = RV_EXIT_ERROR;
	if (!(db = rv_cli_open(pos[0], RV_OPEN_READONLY, 0, NULL)))
		goto done;
	uint32_t dim = rv_db_dim(db);
	if (!(v = rv_malloc(NULL, (size_t)dim * sizeof(float)))) {
		rv_cli_fail("out of memory");
		goto done;
	}
	rv_status st = rv_db_get(db, pos[1], v, &payload);
	if (st == RV_ENOTFOUND) {
		rv_cli_fail("%s: no point with id '%s'", pos[0], pos[1]);
		goto done;
	}
	if (st != RV_OK) {
		rv_cli_fail_db(pos[0], db, st);
		goto done;
	}
	if (json) {
		fputs("{\"id\":", stdout);
		rv_json_string(stdout, pos[1]);
		fputs(",\"vector\":", stdout);
		rv_json_floats(stdout, v, dim);
		printf(",\"payload\":%s}\n", payload ? payload : "null");
	} else {
		printf("id: %s\nvector: ", pos[1]);
		rv_json_floats(stdout, v, dim);
		printf("\npayload: %s\n", payload ? payload : "null");
	}
	rc = RV_EXIT_OK;
done:
	rv_free(payload);
	rv_dealloc(NULL, v);
	rv_db_close(db);
	return rc;
}
