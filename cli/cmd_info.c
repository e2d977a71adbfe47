/*
 * cmd_info.c - `ruvector info FILE`: settings and statistics (everything in
 * rv_stats) and the distance kernels of this machine. For quantization it
 * also shows memory per vector: the codes' bytes and the whole index's
 * (graph and codes; the vectors stay in the mapped file).
 */
#include "cli.h"

#include <string.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " info FILE [--json]\n"
	"\n"
	"Print the collection's settings and statistics, one 'key: value' per line\n"
	"(or one JSON object with --json, same keys).\n";

int rv_cmd_info(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	bool json = false;
	const rv_arg_spec specs[] = { { "--json", NULL, RV_ARG_FLAG, &json } };
	const char *pos[1];
	size_t npos;
	rv_db *db = NULL;
	int a = rv_cli_args("info", usage, argc, argv, specs, 1, pos, 1, 1, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	rc = RV_EXIT_ERROR;
	if (!(db = rv_cli_open(pos[0], RV_OPEN_READONLY, 0, NULL)))
		goto done;
	rv_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	rv_status st = rv_db_stats(&s, db);
	if (st != RV_OK) {
		rv_cli_fail_db(pos[0], db, st);
		goto done;
	}
	const struct {
		const char *key;
		unsigned long long v;
	} nums[] = {
		{ "dim", s.dim },
		{ "m", s.m },
		{ "ef_construction", s.ef_construction },
		{ "ef_search", s.ef_search },
		{ "count", s.count },
		{ "slots", s.slots },
		{ "deleted", s.deleted },
		{ "generation", s.generation },
		{ "file_bytes", s.file_bytes },
		{ "live_segment_bytes", s.live_segment_bytes },
		{ "segments", s.segments },
		{ "graph_nodes", s.graph_nodes },
		{ "graph_levels", s.graph_levels },
		{ "unsaved_graph_ops", s.unsaved_graph_ops },
		{ "memory_bytes", s.memory_bytes },
		{ "rerank", s.rerank },
		{ "pq_subspaces", s.pq_subspaces },
		{ "code_bytes", s.code_bytes },
		{ "index_bytes", s.index_bytes },
		{ "index_per_vector", s.count ? (s.index_bytes + s.count / 2) / s.count : 0 },
	};
	/* The kernels this process dispatches to (RUVECTOR_SIMD can force
	 * them), as the library reports them. */
	const char *simd = rv_simd_name();
	if (json) {
		fputs("{\"file\":", stdout);
		rv_json_string(stdout, pos[0]);
		printf(",\"metric\":\"%s\",\"quant\":\"%s\",\"quant_trained\":%s", rv_metric_name(s.metric), s.quant,
		       s.quant_trained ? "true" : "false");
		for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
			printf(",\"%s\":%llu", nums[i].key, nums[i].v);
		printf(",\"dirty\":%s,\"simd\":\"%s\",\"simd_features\":\"%s\",\"version\":\"%s\"}\n",
		       s.dirty ? "true" : "false", simd, rv_simd_features(), RV_VERSION_STRING);
	} else {
		printf("%-19s %s\n", "file:", pos[0]);
		printf("%-19s %s\n", "metric:", rv_metric_name(s.metric));
		printf("%-19s %s%s\n", "quant:", s.quant,
		       strcmp(s.quant, "none") == 0 ? "" : s.quant_trained ? " (trained)" : " (not trained yet)");
		for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
			char key[32];
			snprintf(key, sizeof key, "%s:", nums[i].key);
			printf("%-19s %llu\n", key, nums[i].v);
		}
		printf("%-19s %s\n", "dirty:", s.dirty ? "yes" : "no");
		printf("%-19s %s\n", "simd:", simd);
		printf("%-19s %s\n", "simd features:", rv_simd_features());
		printf("%-19s %s\n", "version:", RV_VERSION_STRING);
	}
	rc = RV_EXIT_OK;
done:
	rv_db_close(db);
	return rc;
}
