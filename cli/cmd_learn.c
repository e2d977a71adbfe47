/*
 * cmd_learn.c - `ruvector learn SUBCOMMAND FILE ...`: switch learning on
 * and off, configure the learners, consolidate, roll back, show the
 * versions and judge the gain (include/ruvector_learn.h is the manual of
 * what each does).
 */
#include "cli.h"
#include "ruvector_learn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"usage: " RV_CLI_NAME " learn SUBCOMMAND FILE [options]\n"
	"\n"
	"Subcommands:\n"
	"  status FILE [--json]         learning on/off, learners, events, versions and\n"
	"                               the gain each version measured\n"
	"  on FILE | off FILE           learning on or off for the collection\n"
	"  config FILE [options]        set the learners (unset options keep their value):\n"
	"      --learners L             comma-separated: micro, base, gnn, or all\n"
	"      --gnn K                  sage, gcn or gat\n"
	"      --base-rank N            BaseLoRA rank, 8..16\n"
	"      --ewc L                  EWC++ strength (0 = off)\n"
	"      --rerank-pool N          candidates the GNN re-ranks, as a multiple of k (1..20)\n"
	"      --auto-consolidate N     consolidate in the background every N events (0 = never)\n"
	"      --regions N              ReasoningBank regions, 1..256\n"
	"      --recall-target R        recall the per-region ef aims at, (0, 1]\n"
	"      --away on|off            hand the query regions the workload left to the\n"
	"                               version that served them (default on)\n"
	"      --category FIELD         payload field (dotted path) naming an item's category:\n"
	"                               the GNN re-ranker also learns which categories the\n"
	"                               users of a query's neighbourhood want ('' = none)\n"
	"  consolidate FILE [--candidate]\n"
	"                               train a new version from the replay buffer; with\n"
	"                               --candidate it must win an interleaving test on live\n"
	"                               traffic before it becomes active\n"
	"  rollback FILE VERSION        make VERSION active (0: nothing learned)\n"
	"  eval FILE [--json]           NDCG@10 of the held-out events with and without learning\n";

static const char *learner_names(unsigned l, char *buf, size_t cap)
{
	buf[0] = 0;
	const char *names[] = { "micro", "base", "gnn" };
	for (unsigned i = 0; i < 3; i++)
		if (l & (1u << i)) {
			if (buf[0])
				strncat(buf, ",", cap - strlen(buf) - 1);
			strncat(buf, names[i], cap - strlen(buf) - 1);
		}
	if (!buf[0])
		snprintf(buf, cap, "none");
	return buf;
}

static bool parse_learners(const char *s, unsigned *out)
{
	unsigned l = 0;
	char buf[128];
	if (strlen(s) >= sizeof buf)
		return false;
	strcpy(buf, s);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "micro") == 0)
			l |= RV_LEARN_MICRO;
		else if (strcmp(t, "base") == 0)
			l |= RV_LEARN_BASE;
		else if (strcmp(t, "gnn") == 0)
			l |= RV_LEARN_GNN;
		else if (strcmp(t, "all") == 0)
			l |= RV_LEARN_ALL;
		else
			return false;
	}
	*out = l;
	return l != 0;
}

static void print_time(FILE *f, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char buf[32];
	if (gmtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
		fputs(buf, f);
	else
		fputs("-", f);
}

static void status_json(const rv_learn_status *s)
{
	char lb[64];
	printf("{\"learning\":%s,\"learners\":\"%s\",\"gnn\":\"%s\",\"base_rank\":%u,\"ewc_lambda\":",
	       s->learning ? "true" : "false", learner_names(s->config.learners, lb, sizeof lb),
	       rv_gnn_kind_name(s->config.gnn), s->config.base_rank);
	rv_json_float(stdout, s->config.ewc_lambda);
	printf(",\"rerank_pool\":%u,\"auto_consolidate\":%u,\"regions_wanted\":%u,\"recall_target\":",
	       s->config.rerank_pool, s->config.auto_consolidate, s->config.regions);
	rv_json_float(stdout, s->config.recall_target);
	printf(",\"away_regions\":%s,\"category\":", s->config.away_regions ? "true" : "false");
	rv_json_string(stdout, s->config.category);
	printf(",\"active_version\":%u,\"events\":%llu,\"replay_events\":%llu,"
	       "\"events_since_consolidation\":%llu,\"micro_steps\":%llu,\"regions\":%u,\"versions\":[",
	       s->active_version, (unsigned long long)s->events, (unsigned long long)s->replay_events,
	       (unsigned long long)s->events_since_consolidation, (unsigned long long)s->micro_steps, s->regions);
	for (uint32_t i = 0; i < s->n_versions; i++) {
		const rv_learn_version *v = &s->versions[i];
		printf("%s{\"version\":%u,\"parent\":%u,\"created\":\"", i ? "," : "", v->version, v->parent);
		print_time(stdout, v->created_ns);
		printf("\",\"events\":%llu,\"learners\":\"%s\",\"ndcg_before\":", (unsigned long long)v->events,
		       learner_names(v->learners, lb, sizeof lb));
		rv_json_float(stdout, v->ndcg_before);
		fputs(",\"ndcg_after\":", stdout);
		rv_json_float(stdout, v->ndcg_after);
		printf(",\"active\":%s,\"candidate\":%s,\"interleave_wins\":%llu,\"interleave_losses\":%llu,"
		       "\"away_regions\":%u}",
		       v->active ? "true" : "false", v->candidate ? "true" : "false",
		       (unsigned long long)v->interleave_wins, (unsigned long long)v->interleave_losses, s->away_regions[i]);
	}
	puts("]}");
}

static void status_text(const rv_learn_status *s)
{
	char lb[64];
	printf("learning          %s\n", s->learning ? "on" : "off");
	printf("learners          %s (gnn %s, base rank %u, ewc %g, re-rank pool %ux k)\n",
	       learner_names(s->config.learners, lb, sizeof lb), rv_gnn_kind_name(s->config.gnn),
	       s->config.base_rank, (double)s->config.ewc_lambda, s->config.rerank_pool);
	if (s->config.auto_consolidate)
		printf("consolidation     every %u events, in the background\n", s->config.auto_consolidate);
	else
		printf("consolidation     when asked ('ruvector learn consolidate')\n");
	printf("active version    %u%s\n", s->active_version, s->active_version ? "" : " (nothing consolidated)");
	printf("events            %llu (replay buffer %llu, since consolidation %llu)\n",
	       (unsigned long long)s->events, (unsigned long long)s->replay_events,
	       (unsigned long long)s->events_since_consolidation);
	printf("micro steps       %llu\n", (unsigned long long)s->micro_steps);
	printf("regions           %u (recall target %g; away regions %s)\n", s->regions, (double)s->config.recall_target,
	       s->config.away_regions ? "on" : "off");
	if (s->config.category[0])
		printf("category field    %s\n", s->config.category);
	if (!s->n_versions)
		return;
	printf("\nversion  parent  created               events    learners         ndcg@10 before  after   gain\n");
	for (uint32_t i = 0; i < s->n_versions; i++) {
		const rv_learn_version *v = &s->versions[i];
		printf("%c%6u  %6u  ", v->active ? '*' : v->candidate ? '?' : ' ', v->version, v->parent);
		print_time(stdout, v->created_ns);
		printf("  %8llu  %-15s  %14.4f  %6.4f  %+.1f%%", (unsigned long long)v->events,
		       learner_names(v->learners, lb, sizeof lb), (double)v->ndcg_before, (double)v->ndcg_after,
		       v->ndcg_before > 0 ? 100.0 * ((double)v->ndcg_after / v->ndcg_before - 1.0) : 0.0);
		if (s->away_regions[i])
			printf("  (%u away regions)", s->away_regions[i]);
		if (v->candidate)
			printf("  (candidate: %llu wins, %llu losses)", (unsigned long long)v->interleave_wins,
			       (unsigned long long)v->interleave_losses);
		putchar('\n');
	}
	printf("(* active, ? candidate under interleaving; away regions: query regions a version hands to the\n"
	       " earlier version that served them, as the workload left them)\n");
}

int rv_cmd_learn(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	bool json = false, candidate = false;
	const char *learners_s = NULL, *gnn_s = NULL, *rank_s = NULL, *ewc_s = NULL, *pool_s = NULL,
		   *auto_s = NULL, *regions_s = NULL, *target_s = NULL, *away_s = NULL,
		   *category_s = NULL;
	const rv_arg_spec specs[] = {
		{ "--json", NULL, RV_ARG_FLAG, &json },
		{ "--candidate", NULL, RV_ARG_FLAG, &candidate },
		{ "--learners", NULL, RV_ARG_VALUE, &learners_s },
		{ "--gnn", NULL, RV_ARG_VALUE, &gnn_s },
		{ "--base-rank", NULL, RV_ARG_VALUE, &rank_s },
		{ "--ewc", NULL, RV_ARG_VALUE, &ewc_s },
		{ "--rerank-pool", NULL, RV_ARG_VALUE, &pool_s },
		{ "--auto-consolidate", NULL, RV_ARG_VALUE, &auto_s },
		{ "--regions", NULL, RV_ARG_VALUE, &regions_s },
		{ "--recall-target", NULL, RV_ARG_VALUE, &target_s },
		{ "--away", NULL, RV_ARG_VALUE, &away_s },
		{ "--category", NULL, RV_ARG_VALUE, &category_s },
	};
	const char *pos[3];
	size_t npos;
	rv_db *db = NULL;
	int a = rv_cli_args("learn", usage, argc, argv, specs, sizeof specs / sizeof specs[0], pos, 2, 3, &npos,
			    "a SUBCOMMAND and the collection FILE");
	if (a != RV_CLI_GO)
		return a;
	const char *sub = pos[0], *path = pos[1];
	enum { STATUS, ON, OFF, CONFIG, CONSOLIDATE, ROLLBACK, EVAL } what;
	if (strcmp(sub, "status") == 0)
		what = STATUS;
	else if (strcmp(sub, "on") == 0)
		what = ON;
	else if (strcmp(sub, "off") == 0)
		what = OFF;
	else if (strcmp(sub, "config") == 0)
		what = CONFIG;
	else if (strcmp(sub, "consolidate") == 0)
		what = CONSOLIDATE;
	else if (strcmp(sub, "rollback") == 0)
		what = ROLLBACK;
	else if (strcmp(sub, "eval") == 0)
		what = EVAL;
	else
		return rv_cli_usage("learn", "unknown subcommand '%s' (status, on, off, config, consolidate, "
					     "rollback, eval)", sub);
	bool config_opts = learners_s || gnn_s || rank_s || ewc_s || pool_s || auto_s || regions_s || target_s ||
			   away_s || category_s;
	if (config_opts && what != CONFIG)
		return rv_cli_usage("learn", "learner options go with 'learn config'");
	if (json && what != STATUS && what != EVAL)
		return rv_cli_usage("learn", "--json goes with 'learn status' and 'learn eval'");
	if (candidate && what != CONSOLIDATE)
		return rv_cli_usage("learn", "--candidate goes with 'learn consolidate'");
	if ((what == ROLLBACK) != (npos == 3))
		return rv_cli_usage("learn", what == ROLLBACK ? "rollback needs a VERSION"
							    : "unexpected argument '%s'", pos[npos - 1]);
	uint64_t version = 0;
	if (what == ROLLBACK && !rv_args_uint("learn", "VERSION", pos[2], 0, UINT32_MAX, &version))
		return RV_EXIT_USAGE;

	/* Settings are checked before the file is touched. */
	rv_learn_config want = RV_LEARN_CONFIG_INIT;
	unsigned learners = 0;
	rv_gnn_kind gnn = RV_GNN_SAGE;
	uint64_t rank = 0, pool = 0, autoc = 0, regions = 0;
	double ewc = 0, target = 0;
	if (learners_s && !parse_learners(learners_s, &learners))
		return rv_cli_usage("learn", "--learners: '%s' is not a list of micro, base, gnn, all", learners_s);
	if (gnn_s) {
		if (strcmp(gnn_s, "sage") == 0)
			gnn = RV_GNN_SAGE;
		else if (strcmp(gnn_s, "gcn") == 0)
			gnn = RV_GNN_GCN;
		else if (strcmp(gnn_s, "gat") == 0)
			gnn = RV_GNN_GAT;
		else
			return rv_cli_usage("learn", "--gnn: '%s' is not sage, gcn or gat", gnn_s);
	}
	if (rank_s && !rv_args_uint("learn", "--base-rank", rank_s, 8, 16, &rank))
		return RV_EXIT_USAGE;
	if (pool_s && !rv_args_uint("learn", "--rerank-pool", pool_s, 1, 20, &pool))
		return RV_EXIT_USAGE;
	if (auto_s && !rv_args_uint("learn", "--auto-consolidate", auto_s, 0, UINT32_MAX, &autoc))
		return RV_EXIT_USAGE;
	if (regions_s && !rv_args_uint("learn", "--regions", regions_s, 1, 256, &regions))
		return RV_EXIT_USAGE;
	if (ewc_s) {
		char *end = NULL;
		ewc = strtod(ewc_s, &end);
		if (end == ewc_s || *end || !(ewc >= 0 && ewc < 1e30))
			return rv_cli_usage("learn", "--ewc: '%s' is not a number >= 0", ewc_s);
	}
	if (target_s) {
		char *end = NULL;
		target = strtod(target_s, &end);
		if (end == target_s || *end || !(target > 0 && target <= 1))
			return rv_cli_usage("learn", "--recall-target: '%s' is not a number in (0, 1]", target_s);
	}
	if (away_s && strcmp(away_s, "on") != 0 && strcmp(away_s, "off") != 0)
		return rv_cli_usage("learn", "--away: '%s' is not on or off", away_s);
	if (category_s && strlen(category_s) >= RV_LEARN_CATEGORY_MAX)
		return rv_cli_usage("learn", "--category: a field of at most %d bytes", RV_LEARN_CATEGORY_MAX - 1);

	rc = RV_EXIT_ERROR;
	bool writes = what != STATUS && what != EVAL;
	if (!(db = rv_cli_open(path, writes ? 0 : RV_OPEN_READONLY, 0, NULL)))
		goto done;
	rv_status st = RV_OK;
	switch (what) {
	case STATUS: {
		rv_learn_status *s = rv_calloc(NULL, 1, sizeof *s);
		if (!s) {
			rv_cli_fail("out of memory");
			goto done;
		}
		s->size = sizeof *s;
		if ((st = rv_db_learn_status(s, db)) == RV_OK) {
			if (json)
				status_json(s);
			else
				status_text(s);
		}
		rv_dealloc(NULL, s);
		break;
	}
	case ON:
	case OFF:
		st = rv_db_set_learning(db, what == ON);
		if (st == RV_OK && (st = rv_db_commit(db)) == RV_OK)
			printf("learning %s\n", what == ON ? "on" : "off");
		break;
	case CONFIG:
		if ((st = rv_db_learn_get_config(&want, db)) != RV_OK)
			break;
		if (learners_s)
			want.learners = learners;
		if (gnn_s)
			want.gnn = gnn;
		if (rank_s)
			want.base_rank = (uint32_t)rank;
		if (ewc_s)
			want.ewc_lambda = (float)ewc;
		if (pool_s)
			want.rerank_pool = (uint32_t)pool;
		if (auto_s)
			want.auto_consolidate = (uint32_t)autoc;
		if (regions_s)
			want.regions = (uint32_t)regions;
		if (target_s)
			want.recall_target = (float)target;
		if (away_s)
			want.away_regions = strcmp(away_s, "on") == 0;
		if (category_s)
			snprintf(want.category, sizeof want.category, "%s", category_s);
		if ((st = rv_db_learn_configure(db, &want)) == RV_OK && (st = rv_db_commit(db)) == RV_OK) {
			char lb[64];
			printf("learners %s, gnn %s, base rank %u, ewc %g, re-rank pool %u, auto-consolidate %u, "
			       "regions %u, recall target %g, away regions %s, category %s\n",
			       learner_names(want.learners, lb, sizeof lb), rv_gnn_kind_name(want.gnn), want.base_rank,
			       (double)want.ewc_lambda, want.rerank_pool, want.auto_consolidate, want.regions,
			       (double)want.recall_target, want.away_regions ? "on" : "off",
			       want.category[0] ? want.category : "none");
		}
		break;
	case CONSOLIDATE: {
		uint32_t v = 0;
		if ((st = rv_db_learn_consolidate(db, candidate ? RV_CONSOLIDATE_CANDIDATE : 0, &v)) == RV_OK &&
		    (st = rv_db_commit(db)) == RV_OK) {
			rv_learn_status *s = rv_calloc(NULL, 1, sizeof *s);
			const rv_learn_version *made = NULL;
			if (s) {
				s->size = sizeof *s;
				if (rv_db_learn_status(s, db) == RV_OK)
					for (uint32_t i = 0; i < s->n_versions; i++)
						if (s->versions[i].version == v)
							made = &s->versions[i];
			}
			/* A consolidation makes a candidate by itself when its
			 * held-out gain is positive but not significant. */
			printf("version %u%s", v, candidate || (made && made->candidate) ? " (candidate)" : "");
			if (made)
				printf(": held-out ndcg@10 %.4f -> %.4f", (double)made->ndcg_before,
				       (double)made->ndcg_after);
			putchar('\n');
			rv_dealloc(NULL, s);
		}
		break;
	}
	case ROLLBACK:
		if ((st = rv_db_learn_rollback(db, (uint32_t)version)) == RV_OK && (st = rv_db_commit(db)) == RV_OK)
			printf("active version %u\n", (uint32_t)version);
		break;
	case EVAL: {
		rv_learn_eval ev;
		memset(&ev, 0, sizeof ev);
		ev.size = sizeof ev;
		if ((st = rv_db_learn_eval(&ev, db)) != RV_OK)
			break;
		double gain = ev.ndcg_plain > 0 ? 100.0 * (ev.ndcg_learned / ev.ndcg_plain - 1.0) : 0.0;
		if (json)
			printf("{\"events\":%llu,\"searches\":%llu,\"ndcg_plain\":%.6f,\"ndcg_learned\":%.6f,"
			       "\"gain_percent\":%.3f,\"micro_us\":%.3f,\"rerank_us\":%.3f}\n",
			       (unsigned long long)ev.events, (unsigned long long)ev.searches, ev.ndcg_plain,
			       ev.ndcg_learned, gain, ev.micro_us, ev.rerank_us);
		else
			printf("held-out events   %llu (%llu searches)\n"
			       "ndcg@10           %.4f without learning, %.4f with (%+.1f%%)\n"
			       "micro step        %.2f us\n"
			       "re-ranking        %.2f us per pool\n",
			       (unsigned long long)ev.events, (unsigned long long)ev.searches, ev.ndcg_plain,
			       ev.ndcg_learned, gain, ev.micro_us, ev.rerank_us);
		break;
	}
	}
	if (st != RV_OK) {
		rv_cli_fail_db(path, db, st);
		goto done;
	}
	rc = RV_EXIT_OK;
done:
	rv_db_close(db);
	return rc;
}
