/*
 * cmd_create.c - `ruvector create FILE --dim N --metric l2|cosine|ip ...`:
 * a new, empty collection file, quantized or not (--quant).
 *
 * Only the syntax of the numbers and the dimension range are checked here;
 * the library checks the HNSW settings (m, ef) and its message is shown as
 * it is, so the rules live in one place.
 */
#include "cli.h"

#include <string.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " create FILE --dim N --metric l2|cosine|ip [options]\n"
	"\n"
	"Create an empty collection in FILE (which must not exist).\n"
	"\n"
	"  --dim N               vector dimension, 1..16000 (required)\n"
	"  --metric M            l2 (Euclidean), cosine or ip (inner product) (required)\n"
	"  --m M                 HNSW links per node, 2..128 (default 16)\n"
	"  --ef-construction E   candidate list while building, >= m (default 200)\n"
	"  --ef-search E         default candidate list while searching (default 64)\n"
	"  --quant Q             none (default), sq8, binary or pq: searches walk the graph\n"
	"                        on compact codes of the vectors and re-rank exactly\n"
	"  --rerank N            candidates re-ranked with exact distances, as a multiple\n"
	"                        of k, 1..1000 (default: 2 sq8, 16 binary, 10 pq)\n"
	"  --pq-subspaces M      pq: code bytes per vector, 1..dim (default dim / 8)\n"
	"\n"
	"Prints one line: created FILE (dim N, metric M, m M, ef_construction E, ef_search E\n"
	"[, quant Q, rerank R[, pq_subspaces S]])\n";

int rv_cmd_create(int argc, char **argv)
{
	const char *dim = NULL, *metric = NULL, *m = NULL, *efc = NULL, *efs = NULL;
	const char *quant = NULL, *rerank = NULL, *pq = NULL;
	const rv_arg_spec specs[] = {
		{ "--dim", NULL, RV_ARG_VALUE, &dim },
		{ "--metric", NULL, RV_ARG_VALUE, &metric },
		{ "--m", "-m", RV_ARG_VALUE, &m },
		{ "--ef-construction", NULL, RV_ARG_VALUE, &efc },
		{ "--ef-search", NULL, RV_ARG_VALUE, &efs },
		{ "--quant", NULL, RV_ARG_VALUE, &quant },
		{ "--rerank", NULL, RV_ARG_VALUE, &rerank },
		{ "--pq-subspaces", NULL, RV_ARG_VALUE, &pq },
	};
	const char *pos[1];
	size_t npos;
	int a = rv_cli_args("create", usage, argc, argv, specs, sizeof specs / sizeof specs[0], pos, 1, 1, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO)
		return a;
	if (!dim)
		return rv_cli_usage("create", "--dim is required");
	if (!metric)
		return rv_cli_usage("create", "--metric is required (l2, cosine or ip)");

	rv_open_opts o = RV_OPEN_OPTS_INIT;
	uint64_t v;
	if (!rv_args_uint("create", "--dim", dim, 1, RV_MAX_DIM, &v))
		return RV_EXIT_USAGE;
	o.dim = (uint32_t)v;
	if (strcmp(metric, "l2") == 0)
		o.metric = RV_METRIC_L2;
	else if (strcmp(metric, "cosine") == 0)
		o.metric = RV_METRIC_COSINE;
	else if (strcmp(metric, "ip") == 0)
		o.metric = RV_METRIC_IP;
	else
		return rv_cli_usage("create", "--metric: '%s' is not l2, cosine or ip", metric);
	if (m) {
		if (!rv_args_uint("create", "--m", m, 0, UINT32_MAX, &v))
			return RV_EXIT_USAGE;
		o.m = (uint32_t)v;
	}
	if (efc) {
		if (!rv_args_uint("create", "--ef-construction", efc, 0, UINT32_MAX, &v))
			return RV_EXIT_USAGE;
		o.ef_construction = (uint32_t)v;
	}
	if (efs) {
		if (!rv_args_uint("create", "--ef-search", efs, 0, UINT32_MAX, &v))
			return RV_EXIT_USAGE;
		o.ef_search = (uint32_t)v;
	}
	if (quant) {
		if (strcmp(quant, "none") == 0)
			o.quant = RV_QUANT_NONE;
		else if (strcmp(quant, "sq8") == 0)
			o.quant = RV_QUANT_SQ8;
		else if (strcmp(quant, "binary") == 0)
			o.quant = RV_QUANT_BINARY;
		else if (strcmp(quant, "pq") == 0)
			o.quant = RV_QUANT_PQ;
		else
			return rv_cli_usage("create", "--quant: '%s' is not none, sq8, binary or pq", quant);
	}
	/* Ranges are the library's to check (its message names the rule);
	 * here only the syntax. */
	if (rerank) {
		if (!rv_args_uint("create", "--rerank", rerank, 0, UINT32_MAX, &v))
			return RV_EXIT_USAGE;
		o.rerank = (uint32_t)v;
	}
	if (pq) {
		if (!rv_args_uint("create", "--pq-subspaces", pq, 0, UINT32_MAX, &v))
			return RV_EXIT_USAGE;
		o.pq_subspaces = (uint32_t)v;
	}

	rv_db *db = NULL;
	rv_status st = rv_db_create(&db, pos[0], &o);
	if (st != RV_OK) {
		rv_cli_fail_db(pos[0], db, st);
		rv_db_close(db);
		return RV_EXIT_ERROR;
	}
	/* The settings as the file has them (the library resolves the
	 * quantizer's defaults). */
	rv_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	st = rv_db_stats(&s, db);
	rv_db_close(db);
	if (st != RV_OK) {
		fprintf(stderr, RV_CLI_NAME ": %s: cannot read the settings back\n", pos[0]);
		return RV_EXIT_ERROR;
	}
	printf("created %s (dim %u, metric %s, m %u, ef_construction %u, ef_search %u", pos[0], s.dim,
	       rv_metric_name(s.metric), s.m, s.ef_construction, s.ef_search);
	if (o.quant != RV_QUANT_NONE)
		printf(", quant %s, rerank %u", s.quant, s.rerank);
	if (o.quant == RV_QUANT_PQ)
		printf(", pq_subspaces %u", s.pq_subspaces);
	printf(")\n");
	return RV_EXIT_OK;
}
