/*
 * test_quant_db.c - quantized collections through the public API: each
 * quantizer's recall against brute force at the default settings, the
 * training rule, the settings kept in the file across close / open and
 * compaction, deletes and replaces, filtered search, the per-search
 * re-rank, concurrent readers, the option-size rule, allocation failures,
 * and a damaged QUANT segment (RV_ECORRUPT naming it, at open and in
 * rv_verify_file).
 */
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#include <xxhash.h>

#include "harness.h"
#include "quant/quant.h"
#include "store/format.h"
#include "util/util.h"

#define DIM 32
#define NQ 60

static char g_path[1024];

static rv_db *make_quant(const char *name, uint32_t dim, rv_metric metric, rv_quant quant, uint32_t pq_m,
			 uint32_t rerank)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = dim;
	o.metric = metric;
	o.threads = 2;
	o.quant = quant;
	o.pq_subspaces = pq_m;
	o.rerank = rerank;
	rv_db *db = NULL;
	snprintf(g_path, sizeof g_path, "%s", rv_test_path(name));
	if (rv_db_create(&db, g_path, &o) != RV_OK) {
		fprintf(stderr, "create: %s\n", rv_errmsg(db));
		rv_db_close(db);
		return NULL;
	}
	return db;
}

static rv_db *reopen(const char *path, unsigned flags)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.flags = flags;
	o.threads = 2;
	rv_db *db = NULL;
	if (rv_db_open(&db, path, &o) != RV_OK) {
		fprintf(stderr, "open %s: %s\n", path, rv_errmsg(db));
		rv_db_close(db);
		return NULL;
	}
	return db;
}

static void pay_mod10(char *buf, size_t cap, size_t i) { snprintf(buf, cap, "{\"c\":%zu}", i % 10); }

/* Upsert v[from..to) with ids "<i>" (payload from pay, may be NULL) in one
 * batch. */
static rv_status put_range(rv_db *db, const float *v, size_t from, size_t to, uint32_t dim,
			   void (*pay)(char *, size_t, size_t))
{
	size_t n = to - from;
	rv_point *p = calloc(n, sizeof *p);
	char (*ids)[24] = calloc(n, 24);
	char (*pays)[64] = calloc(n, 64);
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], 24, "%zu", from + i);
		p[i].id = ids[i];
		p[i].vector = v + (from + i) * dim;
		if (pay) {
			pay(pays[i], 64, from + i);
			p[i].payload = pays[i];
		}
	}
	rv_status st = rv_db_upsert(db, p, n);
	free(p);
	free(ids);
	free(pays);
	return st;
}

/* Exact k nearest of each query among the base rows whose keep[i] is set
 * (NULL: all), by brute force in double: ids as indices. */
static int *truth_among(const float *base, size_t n, const bool *keep, const float *qs, size_t nq, uint32_t dim,
			size_t k, rv_metric metric)
{
	int *gt = malloc(nq * k * sizeof *gt);
	double *best = malloc(k * sizeof *best);
	for (size_t q = 0; q < nq; q++) {
		size_t have = 0;
		for (size_t i = 0; i < n; i++) {
			if (keep && !keep[i])
				continue;
			double d = 0, dot = 0, na = 0, nb = 0;
			for (uint32_t j = 0; j < dim; j++) {
				double a = qs[q * dim + j], b = base[i * dim + j];
				d += (a - b) * (a - b);
				dot += a * b;
				na += a * a;
				nb += b * b;
			}
			if (metric == RV_METRIC_IP)
				d = -dot;
			else if (metric == RV_METRIC_COSINE)
				d = 1 - dot / (sqrt(na) * sqrt(nb));
			size_t at = have < k ? have++ : k;
			if (at == k && d >= best[k - 1])
				continue;
			if (at == k)
				at = k - 1;
			while (at > 0 && best[at - 1] > d) {
				best[at] = best[at - 1];
				gt[q * k + at] = gt[q * k + at - 1];
				at--;
			}
			best[at] = d;
			gt[q * k + at] = (int)i;
		}
		for (size_t j = have; j < k; j++)
			gt[q * k + j] = -1;
	}
	free(best);
	return gt;
}

/* Recall@k against gt (point i has id "<i>"); filter and rerank passed to
 * every search (NULL / 0: none / the collection's). -1 on a failed search
 * or a hit that breaks the filter check (keep). */
static double recall_ef(rv_db *db, const float *qs, size_t nq, uint32_t dim, const int *gt, size_t k,
			const char *filter, uint32_t ef, uint32_t rerank, const bool *keep)
{
	size_t found = 0, total = 0;
	for (size_t q = 0; q < nq; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = (uint32_t)k;
		s.filter = filter;
		s.ef = ef;
		s.rerank = rerank;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, qs + q * dim, &s) != RV_OK) {
			fprintf(stderr, "search: %s\n", rv_errmsg(db));
			return -1;
		}
		for (size_t h = 0; h < rv_results_count(r); h++) {
			long id = strtol(rv_results_hits(r)[h].id, NULL, 10);
			if (keep && !keep[id]) {
				rv_results_free(r);
				return -1;
			}
			for (size_t j = 0; j < k; j++)
				found += gt[q * k + j] == id;
		}
		for (size_t j = 0; j < k; j++)
			total += gt[q * k + j] >= 0;
		rv_results_free(r);
	}
	return total ? (double)found / (double)total : 1.0;
}

/* recall_ef at the collection's ef_search. */
static double recall_at(rv_db *db, const float *qs, size_t nq, uint32_t dim, const int *gt, size_t k,
			const char *filter, uint32_t rerank, const bool *keep)
{
	return recall_ef(db, qs, nq, dim, gt, k, filter, 0, rerank, keep);
}

static bool stats_of(rv_db *db, rv_stats *s)
{
	memset(s, 0, sizeof *s);
	s->size = sizeof *s;
	return rv_db_stats(s, db) == RV_OK;
}

/* Ids and scores of the top k for each query, "id:score;" concatenated. */
static char *answers(rv_db *db, const float *qs, size_t nq, uint32_t dim, size_t k)
{
	size_t cap = nq * k * 48 + 1, len = 0;
	char *out = malloc(cap);
	out[0] = 0;
	for (size_t q = 0; q < nq; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = (uint32_t)k;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, qs + q * dim, &s) != RV_OK) {
			free(out);
			return NULL;
		}
		for (size_t h = 0; h < rv_results_count(r); h++)
			len += (size_t)snprintf(out + len, cap - len, "%s:%.6g;", rv_results_hits(r)[h].id,
						(double)rv_results_hits(r)[h].score);
		rv_results_free(r);
	}
	return out;
}

/* ======================================================================
 * Recall of each quantizer, and reopen
 * ==================================================================== */

typedef struct kind_case {
	rv_quant quant;
	rv_metric metric;
	uint32_t pq_m;
	double min_recall;         /* at the default settings */
	double max_recall_rerank1; /* at most this with rerank 1 */
	uint32_t code_bytes;       /* per vector in memory */
} kind_case;

/* Every hit's score is its exact distance (the re-rank replaced the codes'
 * estimate), within float rounding of a double computation. */
static bool scores_exact(rv_db *db, const float *v, size_t n, const float *qs, uint32_t dim, rv_metric metric)
{
	for (size_t q = 0; q < 10; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.rerank = 1;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, qs + q * dim, &s) != RV_OK)
			return false;
		for (size_t h = 0; h < rv_results_count(r); h++) {
			size_t i = (size_t)strtol(rv_results_hits(r)[h].id, NULL, 10);
			double d = 0, dot = 0, na = 0, nb = 0;
			for (uint32_t j = 0; j < dim; j++) {
				double a = qs[q * dim + j], b = v[i * dim + j];
				d += (a - b) * (a - b);
				dot += a * b;
				na += a * a;
				nb += b * b;
			}
			double want = metric == RV_METRIC_L2 ? sqrt(d) : metric == RV_METRIC_IP ? -dot
											       : 1 - dot / sqrt(na * nb);
			double got = rv_results_hits(r)[h].score;
			if (i >= n || fabs(got - want) > 1e-4 * (1 + fabs(want))) {
				fprintf(stderr, "query %zu hit %zu (id %zu): score %g, exact %g\n", q, h, i, got, want);
				rv_results_free(r);
				return false;
			}
		}
		rv_results_free(r);
	}
	return true;
}

static void recall_case(const kind_case *c, const char *name)
{
	size_t n = 4000;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 400, 101 + (uint64_t)c->quant);
	const float *qs = v + n * DIM;
	rv_db *db = make_quant(name, DIM, c->metric, c->quant, c->pq_m, 0);
	CHECK(db);
	rv_stats s;
	CHECK(stats_of(db, &s) && strcmp(s.quant, rv_quant_name(c->quant)) == 0 && !s.quant_trained &&
	      s.code_bytes == 0 && s.rerank > 0);
	/* One batch: trained before its points enter the graph. */
	CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
	CHECK(stats_of(db, &s) && s.quant_trained);
	CHECK_MSG(s.code_bytes == c->code_bytes, "%s: %u code bytes per vector, expected %u", name, s.code_bytes,
		  c->code_bytes);
	CHECK(s.index_bytes > (uint64_t)n * s.code_bytes && s.index_bytes <= s.memory_bytes);
	int *gt = truth_among(v, n, NULL, qs, NQ, DIM, 10, c->metric);
	double r = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, NULL);
	/* A beam of k with re-ranking of k only (rerank 1, ef 10) leaves the
	 * order to the codes: the coarser the code, the lower the recall. */
	double r1 = recall_ef(db, qs, NQ, DIM, gt, 10, NULL, 10, 1, NULL);
	fprintf(stderr, "   %s (%s): recall@10 %.4f with the default rerank %u, %.4f with ef 10 and rerank 1; %u code bytes per vector\n",
		rv_quant_name(c->quant), rv_metric_name(c->metric), r, s.rerank, r1, s.code_bytes);
	CHECK_MSG(r >= c->min_recall, "%s recall %.4f below %.2f", name, r, c->min_recall);
	CHECK_MSG(r1 <= c->max_recall_rerank1, "%s: recall %.4f with ef 10 and rerank 1, expected the codes to lose some",
		  name, r1);
	CHECK(scores_exact(db, v, n, qs, DIM, c->metric));
	char *before = answers(db, qs, NQ, DIM, 10);
	CHECK(before);
	CHECK_OK(rv_db_commit(db), db);
	rv_db_close(db);

	/* The file says quantized: the header's required feature bit and a
	 * QUANT segment that verify checks. */
	FILE *f = fopen(g_path, "rb");
	uint8_t hdr[64];
	CHECK(f && fread(hdr, 1, 64, f) == 64);
	fclose(f);
	CHECK(rv_get_u64(hdr + 16) == RV_FEATURE_QUANT);
	CHECK(rv_verify_file(g_path, NULL, NULL) == RV_OK);

	/* Reopened (codes recomputed, or for PQ read back): the same answers,
	 * read-only too. */
	for (int ro = 0; ro < 2; ro++) {
		db = reopen(g_path, ro ? RV_OPEN_READONLY : 0);
		CHECK(db);
		CHECK(stats_of(db, &s) && s.quant_trained && s.code_bytes == c->code_bytes &&
		      strcmp(s.quant, rv_quant_name(c->quant)) == 0);
		char *after = answers(db, qs, NQ, DIM, 10);
		CHECK(after && strcmp(before, after) == 0);
		free(after);
		rv_db_close(db);
	}
	free(before);
	free(gt);
	free(v);
}

TEST(sq8_recall_l2)
{
	kind_case c = { RV_QUANT_SQ8, RV_METRIC_L2, 0, 0.98, 1.0, DIM + 4 };
	recall_case(&c, "q-sq8-l2.rvf");
}

TEST(sq8_recall_cosine)
{
	kind_case c = { RV_QUANT_SQ8, RV_METRIC_COSINE, 0, 0.98, 1.0, DIM };
	recall_case(&c, "q-sq8-cos.rvf");
}

TEST(binary_recall)
{
	kind_case c = { RV_QUANT_BINARY, RV_METRIC_COSINE, 0, 0.93, 0.90, 8 };
	recall_case(&c, "q-bin.rvf");
}

TEST(pq_recall)
{
	/* 16 sub-spaces of 2 dims: 16 bytes per vector. */
	kind_case c = { RV_QUANT_PQ, RV_METRIC_L2, 16, 0.98, 0.98, 16 };
	recall_case(&c, "q-pq.rvf");
}

TEST(pq_recall_ip_default_subspaces)
{
	/* dim / 8 = 4 sub-spaces: 4 bytes per vector, the coarsest default. */
	kind_case c = { RV_QUANT_PQ, RV_METRIC_IP, 0, 0.97, 0.90, 4 };
	recall_case(&c, "q-pq-ip.rvf");
}

/* ======================================================================
 * Training rule, deletes, replaces, compaction, filters
 * ==================================================================== */

TEST(trained_at_the_threshold_and_saved_at_commit)
{
	size_t n = RV_QUANT_TRAIN_MIN + 200;
	float *v = rv_test_clustered_vectors(n, DIM, 50, 7);
	rv_db *db = make_quant("q-rule.rvf", DIM, RV_METRIC_L2, RV_QUANT_SQ8, 0, 0);
	CHECK(db);
	rv_stats s;
	/* Below the threshold, committed: no quantizer, floats. */
	CHECK_OK(put_range(db, v, 0, RV_QUANT_TRAIN_MIN - 1, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	CHECK(stats_of(db, &s) && !s.quant_trained && s.code_bytes == 0);
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	CHECK(stats_of(db, &s) && !s.quant_trained && strcmp(s.quant, "sq8") == 0);
	/* The upsert that reaches it trains (a single point here). */
	CHECK_OK(put_range(db, v, RV_QUANT_TRAIN_MIN - 1, RV_QUANT_TRAIN_MIN, DIM, NULL), db);
	CHECK(stats_of(db, &s) && s.quant_trained && s.code_bytes == DIM + 4);
	uint32_t segs_before = s.segments;
	/* Closed before a commit: the training is lost with the point, and
	 * the file is as it was. */
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	CHECK(stats_of(db, &s) && !s.quant_trained && s.count == RV_QUANT_TRAIN_MIN - 1);
	CHECK_OK(put_range(db, v, RV_QUANT_TRAIN_MIN - 1, n, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	CHECK(stats_of(db, &s) && s.quant_trained && s.segments > segs_before);
	rv_db_close(db);
	CHECK((db = reopen(g_path, RV_OPEN_READONLY)) != NULL);
	CHECK(stats_of(db, &s) && s.quant_trained && s.count == n);
	rv_db_close(db);
	free(v);
}

/* Keep flags: ids alive after the mutations below. */
static void mutate(rv_db *db, float *v, size_t n, bool *keep, uint64_t seed)
{
	/* Delete a fifth, replace a tenth with new vectors (nearby ones, so
	 * replaced points move). */
	rv_rng r;
	rv_rng_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		keep[i] = true;
	const char *ids[64];
	char buf[64][24];
	size_t nd = 0;
	for (size_t i = 0; i < n; i++) {
		if (rv_rng_below(&r, 5) != 0)
			continue;
		snprintf(buf[nd], 24, "%zu", i);
		ids[nd] = buf[nd];
		nd++;
		keep[i] = false;
		if (nd == 64) {
			rv_db_delete(db, ids, nd, NULL);
			nd = 0;
		}
	}
	rv_db_delete(db, ids, nd, NULL);
	for (size_t i = 0; i < n; i += 10) {
		if (!keep[i])
			continue;
		for (size_t d = 0; d < DIM; d++)
			v[i * DIM + d] += 0.3f * (float)(rv_rng_uniform(&r) - 0.5);
		char id[24];
		snprintf(id, sizeof id, "%zu", i);
		rv_point p = { .id = id, .vector = v + i * DIM };
		rv_db_upsert(db, &p, 1);
	}
}

static void mutations_case(rv_quant quant, uint32_t pq_m, double min_recall, const char *name)
{
	size_t n = 3000;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 300, 55);
	const float *qs = v + n * DIM;
	bool *keep = calloc(n, sizeof *keep);
	rv_db *db = make_quant(name, DIM, RV_METRIC_L2, quant, pq_m, 0);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	mutate(db, v, n, keep, 9);
	int *gt = truth_among(v, n, keep, qs, NQ, DIM, 10, RV_METRIC_L2);
	/* recall_at fails on any hit that was deleted. */
	double r0 = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, keep);
	CHECK_OK(rv_db_commit(db), db);
	double r = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, keep);
	char *before = answers(db, qs, NQ, DIM, 10);
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	double r2 = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, keep);
	char *reopened = answers(db, qs, NQ, DIM, 10);
	rv_stats s1, s2;
	CHECK(stats_of(db, &s1) && s1.quant_trained && s1.deleted > 0);
	CHECK_OK(rv_db_compact(db), db);
	CHECK(stats_of(db, &s2) && s2.quant_trained && s2.deleted == 0 && s2.count == s1.count &&
	      s2.code_bytes == s1.code_bytes);
	double r3 = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, keep);
	char *compacted = answers(db, qs, NQ, DIM, 10);
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	CHECK(stats_of(db, &s2) && s2.quant_trained && s2.deleted == 0);
	char *compacted_reopened = answers(db, qs, NQ, DIM, 10);
	fprintf(stderr, "   %s after deletes and replaces: recall@10 %.4f, committed %.4f, reopened %.4f, compacted %.4f\n",
		rv_quant_name(quant), r0, r, r2, r3);
	CHECK(r0 >= min_recall && r >= min_recall && r2 == r && r3 >= min_recall);
	/* Reopen and compaction keep the quantizer and the codes: the same
	 * answers (compaction renumbers slots, not distances). */
	CHECK(before && reopened && compacted && compacted_reopened);
	CHECK(strcmp(before, reopened) == 0);
	CHECK(strcmp(compacted, compacted_reopened) == 0);
	CHECK(rv_verify_file(g_path, NULL, NULL) == RV_OK);
	free(before);
	free(reopened);
	free(compacted);
	free(compacted_reopened);
	rv_db_close(db);
	free(gt);
	free(keep);
	free(v);
}

TEST(sq8_deletes_replaces_compaction) { mutations_case(RV_QUANT_SQ8, 0, 0.98, "q-mut-sq8.rvf"); }
TEST(pq_deletes_replaces_compaction) { mutations_case(RV_QUANT_PQ, 8, 0.95, "q-mut-pq.rvf"); }
/* Binary codes estimate angles around the mean: on L2 data their order
 * is the loosest of the three, hence the lower bar at the default rerank. */
TEST(binary_deletes_replaces_compaction) { mutations_case(RV_QUANT_BINARY, 0, 0.88, "q-mut-bin.rvf"); }

TEST(pq_codes_added_after_training_are_saved)
{
	/* Commits before, at and after training: the saved codes cover every
	 * slot in runs (QUANT segments of kind 2) that continue each other. */
	size_t n = RV_QUANT_TRAIN_MIN_PQ + 600;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 100, 77);
	const float *qs = v + n * DIM;
	rv_db *db = make_quant("q-pq-runs.rvf", DIM, RV_METRIC_L2, RV_QUANT_PQ, 8, 0);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, 2000, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	CHECK_OK(put_range(db, v, 2000, RV_QUANT_TRAIN_MIN_PQ + 100, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	for (size_t i = RV_QUANT_TRAIN_MIN_PQ + 100; i < n; i += 100) {
		CHECK_OK(put_range(db, v, i, i + 100, DIM, NULL), db);
		CHECK_OK(rv_db_commit(db), db);
	}
	char *before = answers(db, qs, NQ, DIM, 10);
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	char *after = answers(db, qs, NQ, DIM, 10);
	CHECK(before && after && strcmp(before, after) == 0);
	int *gt = truth_among(v, n, NULL, qs, NQ, DIM, 10, RV_METRIC_L2);
	double r = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, NULL);
	fprintf(stderr, "   pq m=8 over 6 commits: recall@10 %.4f\n", r);
	CHECK(r >= 0.95);
	free(before);
	free(after);
	free(gt);
	rv_db_close(db);
	free(v);
}

TEST(filtered_search)
{
	size_t n = 4000;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 200, 31);
	const float *qs = v + n * DIM;
	rv_db *db = make_quant("q-filter.rvf", DIM, RV_METRIC_L2, RV_QUANT_SQ8, 0, 0);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, n, DIM, pay_mod10), db);
	/* One tenth matches: the graph with the filter inside the traversal;
	 * two thousandths (c = 3 of the first 80 only... here c in {3, 4}):
	 * still the graph; a tiny set: the exact scan. */
	bool *keep = calloc(n, sizeof *keep);
	for (size_t i = 0; i < n; i++)
		keep[i] = i % 10 == 3;
	int *gt = truth_among(v, n, keep, qs, NQ, DIM, 10, RV_METRIC_L2);
	double r = recall_at(db, qs, NQ, DIM, gt, 10, "{\"c\":3}", 0, keep);
	for (size_t i = 0; i < n; i++)
		keep[i] = i % 10 >= 5;
	int *gt2 = truth_among(v, n, keep, qs, NQ, DIM, 10, RV_METRIC_L2);
	double r2 = recall_at(db, qs, NQ, DIM, gt2, 10, "{\"c\":{\"$gte\":5}}", 0, keep);
	fprintf(stderr, "   sq8 filtered recall@10: 10%% match %.4f, 50%% match %.4f\n", r, r2);
	CHECK(r >= 0.95 && r2 >= 0.95);
	free(gt);
	free(gt2);
	free(keep);
	rv_db_close(db);
	free(v);
}

TEST(rerank_per_search)
{
	size_t n = 3000;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 300, 13);
	const float *qs = v + n * DIM;
	rv_db *db = make_quant("q-rerank.rvf", DIM, RV_METRIC_COSINE, RV_QUANT_BINARY, 0, 2);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
	rv_stats s;
	CHECK(stats_of(db, &s) && s.rerank == 2);
	/* Committed first: a commit may add links to the graph (nodes no
	 * search could reach get one), which changes answers slightly. */
	CHECK_OK(rv_db_commit(db), db);
	int *gt = truth_among(v, n, NULL, qs, NQ, DIM, 10, RV_METRIC_COSINE);
	double r_coll = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, NULL);
	double r_wide = recall_at(db, qs, NQ, DIM, gt, 10, NULL, 30, NULL);
	fprintf(stderr, "   binary recall@10: collection rerank 2 %.4f, per-search rerank 30 %.4f\n", r_coll, r_wide);
	CHECK(r_wide > r_coll && r_wide >= 0.97);
	/* Out of range. */
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.rerank = RV_RERANK_MAX + 1;
	rv_results *r = NULL;
	CHECK(rv_db_search(&r, db, qs, &so) == RV_EINVAL && strstr(rv_errmsg(db), "rerank 1001"));
	/* The setting survives reopening. */
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	CHECK(stats_of(db, &s) && s.rerank == 2 && strcmp(s.quant, "binary") == 0);
	CHECK(recall_at(db, qs, NQ, DIM, gt, 10, NULL, 0, NULL) == r_coll);
	rv_db_close(db);
	free(gt);
	free(v);
}

/* ======================================================================
 * Settings and option sizes
 * ==================================================================== */

TEST(bad_settings_are_named)
{
	struct {
		rv_quant q;
		uint32_t pq_m, rerank;
		const char *msg;
	} bad[] = {
		{ (rv_quant)7, 0, 0, "unknown quant 7" },
		{ RV_QUANT_SQ8, 4, 0, "pq_subspaces 4 given, but quant is sq8" },
		{ RV_QUANT_PQ, 33, 0, "pq_subspaces 33 does not fit dim 32" },
		{ RV_QUANT_PQ, 7, 0, "pq_subspaces 7 does not fit dim 32" }, /* ceil(32/7) * 6 = 30 < 32 fits; */
		{ RV_QUANT_NONE, 0, 3, "rerank 3 given, but there is no quantizer" },
		{ RV_QUANT_SQ8, 0, RV_RERANK_MAX + 1, "rerank 1001 out of range" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rv_open_opts o = RV_OPEN_OPTS_INIT;
		o.dim = DIM;
		o.quant = bad[i].q;
		o.pq_subspaces = bad[i].pq_m;
		o.rerank = bad[i].rerank;
		rv_db *db = NULL;
		const char *path = rv_test_path("q-bad.rvf");
		rv_status st = rv_db_create(&db, path, &o);
		if (bad[i].pq_m == 7) {
			/* 7 leaves no sub-space empty for 32 dims: accepted. */
			CHECK_OK(st, db);
		} else {
			CHECK_MSG(st == RV_EINVAL && strstr(rv_errmsg(db), bad[i].msg), "case %zu: %s: %s", i,
				  rv_status_str(st), rv_errmsg(db));
		}
		rv_db_close(db);
	}
	/* PQ sub-spaces that would leave one empty: 10 dims in 4 of 3. */
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = 10;
	o.quant = RV_QUANT_PQ;
	o.pq_subspaces = 4;
	rv_db *db = NULL;
	CHECK(rv_db_create(&db, rv_test_path("q-bad2.rvf"), &o) == RV_OK);
	rv_db_close(db);
	o.pq_subspaces = 6; /* ceil(10 / 6) = 2, 2 * 5 = 10: the last is empty */
	CHECK(rv_db_create(&db, rv_test_path("q-bad3.rvf"), &o) == RV_EINVAL && strstr(rv_errmsg(db), "5 would"));
	rv_db_close(db);
	/* The default PQ sub-spaces: dim / 8, lowered to a valid count. */
	o.pq_subspaces = 0;
	o.dim = 100; /* 12 sub-spaces of 9 */
	CHECK(rv_db_create(&db, rv_test_path("q-pqdef.rvf"), &o) == RV_OK);
	rv_stats s;
	CHECK(stats_of(db, &s) && s.rerank == 10 && strcmp(s.quant, "pq") == 0);
	rv_db_close(db);
}

TEST(old_option_sizes)
{
	/* A 0.1.0 caller's rv_open_opts ends at progress_ctx: it creates an
	 * unquantized collection whatever lies beyond, and opens a quantized
	 * one with the file's settings. */
	size_t v1 = offsetof(rv_open_opts, progress_ctx) + sizeof(void *);
	CHECK(v1 < sizeof(rv_open_opts));
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.size = v1;
	o.dim = DIM;
	o.quant = RV_QUANT_PQ; /* beyond the old size: ignored */
	o.rerank = 99999;
	rv_db *db = NULL;
	const char *path = rv_test_path("q-oldsize.rvf");
	CHECK_OK(rv_db_create(&db, path, &o), db);
	rv_stats s;
	CHECK(stats_of(db, &s) && strcmp(s.quant, "none") == 0 && s.rerank == 0);
	rv_db_close(db);

	size_t n = 1500;
	float *v = rv_test_clustered_vectors(n, DIM, 30, 3);
	db = make_quant("q-oldsize2.rvf", DIM, RV_METRIC_L2, RV_QUANT_SQ8, 0, 0);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	rv_db_close(db);
	CHECK_OK(rv_db_open(&db, g_path, &o), db);
	CHECK(stats_of(db, &s) && strcmp(s.quant, "sq8") == 0 && s.quant_trained);
	/* A 0.1.0 rv_search_opts, its padding where rerank now sits full of
	 * garbage: the collection's rerank applies. */
	union {
		rv_search_opts so;
		unsigned char raw[sizeof(rv_search_opts)];
	} u;
	memset(u.raw, 0xff, sizeof u.raw);
	u.so.size = offsetof(rv_search_opts, flags) + sizeof(unsigned);
	u.so.size = (u.so.size + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *);
	u.so.k = 5;
	u.so.ef = 0;
	u.so.filter = NULL;
	u.so.flags = 0;
	CHECK(u.so.size < sizeof(rv_search_opts));
	rv_results *r = NULL;
	CHECK_OK(rv_db_search(&r, db, v, &u.so), db);
	CHECK(rv_results_count(r) == 5 && strcmp(rv_results_hits(r)[0].id, "0") == 0);
	rv_results_free(r);
	/* And a 0.1.0 rv_stats gets its prefix only. */
	rv_stats old;
	memset(&old, 0x5a, sizeof old);
	old.size = offsetof(rv_stats, learning) + sizeof(int);
	CHECK_OK(rv_db_stats(&old, db), db);
	CHECK(old.count == n && old.quant == (const char *)(uintptr_t)0x5a5a5a5a5a5a5a5aull);
	rv_db_close(db);
	free(v);
}

/* ======================================================================
 * Readers, allocation failures, learning hooks
 * ==================================================================== */

typedef struct reader_ctx {
	rv_db *db;
	const float *qs;
	const char *want; /* answers() of the same queries, serially */
	int ok;
} reader_ctx;

static void *reader(void *arg)
{
	reader_ctx *c = arg;
	char *got = answers(c->db, c->qs, NQ, DIM, 10);
	c->ok = got && strcmp(got, c->want) == 0;
	free(got);
	return NULL;
}

TEST(concurrent_readers_agree_with_serial)
{
	/* Each reader thread gets its own scratch (and query form): the
	 * answers must not depend on which one, even with Hamming ties. */
	size_t n = 3000;
	float *v = rv_test_clustered_vectors(n + NQ, DIM, 100, 17);
	for (rv_quant q = RV_QUANT_SQ8; q <= RV_QUANT_PQ; q++) {
		rv_db *db = make_quant("q-threads.rvf", DIM, RV_METRIC_COSINE, q, q == RV_QUANT_PQ ? 8 : 0, 0);
		CHECK(db);
		CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
		char *want = answers(db, v + n * DIM, NQ, DIM, 10);
		CHECK(want);
		pthread_t t[4];
		reader_ctx c[4];
		for (int i = 0; i < 4; i++) {
			c[i] = (reader_ctx){ db, v + n * DIM, want, 0 };
			pthread_create(&t[i], NULL, reader, &c[i]);
		}
		/* A writer meanwhile, taking the write lock without changing
		 * the graph (a changed graph may change answers): feedback on
		 * an earlier search. */
		rv_results *r = NULL;
		CHECK_OK(rv_db_search(&r, db, v, NULL), db);
		for (int i = 0; i < 20; i++)
			CHECK_OK(rv_db_feedback(db, rv_results_search_id(r), rv_results_hits(r)[i % 10].id, 0.5f), db);
		rv_results_free(r);
		for (int i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			CHECK_MSG(c[i].ok, "%s: reader %d answered differently", rv_quant_name(q), i);
		}
		free(want);
		rv_db_close(db);
	}
	free(v);
}

TEST(allocation_failures_while_training)
{
	/* The upsert that trains fails cleanly at each allocation (training,
	 * codes, the graph insert after it) and leaves the collection as it
	 * was: untrained, the batch absent. */
	size_t n = RV_QUANT_TRAIN_MIN + 100;
	float *v = rv_test_clustered_vectors(n, DIM, 20, 23);
	for (rv_quant q = RV_QUANT_SQ8; q <= RV_QUANT_BINARY; q++) {
		rv_test_alloc ta;
		rv_test_alloc_init(&ta);
		rv_open_opts o = RV_OPEN_OPTS_INIT;
		o.dim = DIM;
		o.quant = q;
		o.threads = 1;
		o.allocator = &ta.hooks;
		rv_db *db = NULL;
		CHECK_OK(rv_db_create(&db, rv_test_path("q-oom.rvf"), &o), db);
		CHECK_OK(put_range(db, v, 0, 900, DIM, NULL), db);
		int fails = 0;
		for (long nth = 1;; nth++) {
			ta.fail_at = nth;
			rv_status st = put_range(db, v, 900, n, DIM, NULL);
			ta.fail_at = 0;
			rv_stats s;
			CHECK(stats_of(db, &s));
			if (st == RV_OK) {
				CHECK(s.quant_trained && s.count == n);
				break;
			}
			CHECK_MSG(st == RV_ENOMEM, "failing allocation %ld: %s", nth, rv_status_str(st));
			CHECK_MSG(!s.quant_trained && s.count == 900, "failing allocation %ld: trained %d, %llu points",
				  nth, s.quant_trained, (unsigned long long)s.count);
			fails++;
		}
		fprintf(stderr, "   %s: %d failed upserts\n", rv_quant_name(q), fails);
		CHECK(fails > 3);
		/* Searching with the first query form made (also allocation). */
		for (long nth = 1;; nth++) {
			rv_results *r = NULL;
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			ta.fail_at = nth;
			rv_status st = rv_db_search(&r, db, v, &so);
			ta.fail_at = 0;
			if (st == RV_OK) {
				CHECK(rv_results_count(r) == 10 && strcmp(rv_results_hits(r)[0].id, "0") == 0);
				rv_results_free(r);
				break;
			}
			CHECK(st == RV_ENOMEM && r == NULL);
		}
		CHECK_OK(rv_db_commit(db), db);
		rv_db_close(db);
		CHECK_MSG(ta.live == 0, "%ld blocks leaked", ta.live);
	}
	free(v);
}

TEST(feedback_on_a_quantized_collection)
{
	/* The learning hooks around the search keep working: search ids,
	 * feedback by id, and the replay buffer across a reopen. */
	size_t n = 1200;
	float *v = rv_test_clustered_vectors(n, DIM, 30, 29);
	rv_db *db = make_quant("q-fb.rvf", DIM, RV_METRIC_COSINE, RV_QUANT_SQ8, 0, 0);
	CHECK(db);
	CHECK_OK(put_range(db, v, 0, n, DIM, NULL), db);
	rv_results *r = NULL;
	CHECK_OK(rv_db_search(&r, db, v + 5 * DIM, NULL), db);
	uint64_t sid = rv_results_search_id(r);
	CHECK(sid != 0 && rv_results_count(r) == 10);
	CHECK_OK(rv_db_feedback(db, sid, rv_results_hits(r)[1].id, 1.0f), db);
	rv_results_free(r);
	CHECK_OK(rv_db_commit(db), db);
	rv_db_close(db);
	CHECK((db = reopen(g_path, 0)) != NULL);
	rv_stats s;
	CHECK(stats_of(db, &s) && s.feedback_events == 1 && s.quant_trained);
	rv_db_close(db);
	free(v);
}

/* ======================================================================
 * A damaged QUANT segment
 * ==================================================================== */

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*n);
	if (fread(b, 1, *n, f) != *n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
}

/* Offsets of the headers of the segments of a type, in file order. */
static size_t find_segments(const uint8_t *b, size_t n, uint8_t type, size_t *out, size_t cap)
{
	size_t k = 0;
	for (size_t off = 64; off + 64 <= n && k < cap;) {
		uint64_t len = rv_get_u64(b + off + 16);
		if (b[off + 5] == type)
			out[k++] = off;
		off += 64 + ((len + 63) & ~(uint64_t)63);
	}
	return k;
}

/* Make a changed payload pass the store's checks again: its content hash
 * and the header's checksum. */
static void rehash(uint8_t *b, size_t hdr)
{
	uint64_t len = rv_get_u64(b + hdr + 16);
	XXH128_hash_t h = XXH3_128bits(b + hdr + 64, (size_t)len);
	rv_put_u64(b + hdr + 40, h.low64);
	rv_put_u64(b + hdr + 48, h.high64);
	rv_put_u32(b + hdr + 60, (uint32_t)XXH3_64bits(b + hdr, 60));
}

typedef struct findings {
	int bad;
	char first[512];
} findings;

static void collect(void *ctx, int ok, const char *msg)
{
	findings *f = ctx;
	if (!ok && f->bad++ == 0)
		snprintf(f->first, sizeof f->first, "%s", msg);
}

/* Write b as the collection, open it, expect RV_ECORRUPT with both
 * fragments in the message, and the same from verify unless verify_too
 * is false (a problem only the collection's rules see). */
static bool refused(const char *path, const uint8_t *b, size_t n, const char *frag1, const char *frag2,
		    bool verify_too)
{
	write_file(path, b, n);
	rv_db *db = NULL;
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	rv_status st = rv_db_open(&db, path, &o);
	bool ok = st == RV_ECORRUPT && strstr(rv_errmsg(db), frag1) && strstr(rv_errmsg(db), frag2);
	if (!ok)
		fprintf(stderr, "open: %s: %s (expected \"%s\" ... \"%s\")\n", rv_status_str(st), rv_errmsg(db), frag1,
			frag2);
	rv_db_close(db);
	findings f = { 0, "" };
	rv_status vs = rv_verify_file(path, collect, &f);
	if (verify_too && (vs != RV_ECORRUPT || !strstr(f.first, frag1))) {
		fprintf(stderr, "verify: %s, first finding: %s\n", rv_status_str(vs), f.first);
		ok = false;
	}
	return ok;
}

TEST(corrupt_quant_segment_is_named)
{
	size_t n = RV_QUANT_TRAIN_MIN_PQ + 40;
	float *v = rv_test_clustered_vectors(n, DIM, 40, 61);
	/* SQ8 (a quantizer segment) and PQ (quantizer and codes). */
	for (int kind = 0; kind < 2; kind++) {
		rv_quant q = kind ? RV_QUANT_PQ : RV_QUANT_SQ8;
		rv_db *db = make_quant(kind ? "q-bad-pq.rvf" : "q-bad-sq8.rvf", DIM, RV_METRIC_L2, q, kind ? 8 : 0, 0);
		CHECK(db);
		CHECK_OK(put_range(db, v, 0, n - 20, DIM, NULL), db);
		CHECK_OK(rv_db_commit(db), db);
		CHECK_OK(put_range(db, v, n - 20, n, DIM, NULL), db);
		CHECK_OK(rv_db_commit(db), db);
		rv_db_close(db);
		char path[1024];
		snprintf(path, sizeof path, "%s", g_path);
		findings good = { 0, "" };
		CHECK(rv_verify_file(path, collect, &good) == RV_OK && good.bad == 0);
		size_t len = 0;
		uint8_t *orig = read_file(path, &len), *b = malloc(len);
		CHECK(orig && b);
		size_t at[8];
		size_t nq = find_segments(orig, len, RV_SEG_QUANT, at, 8);
		/* The quantizer, then two runs of codes: all the slots of the
		 * first commit (which trained it), the new ones of the second. */
		CHECK_MSG(nq == 3, "%zu QUANT segments", nq);
		size_t qz = at[0];
		CHECK(rv_get_u32(orig + qz + 64) == RV_QSEG_QUANTIZER);

		/* A flipped byte: the content hash. */
		memcpy(b, orig, len);
		b[qz + 64 + 40] ^= 0x04;
		CHECK(refused(path, b, len, "(QUANT)", "content hash mismatch", true));

		/* Another kind in the header than the parameters hold (a valid
		 * hash: the payload's own checks catch it). */
		memcpy(b, orig, len);
		rv_put_u32(b + qz + 64 + 4, kind ? RV_QUANT_SQ8 : RV_QUANT_BINARY);
		rehash(b, qz);
		CHECK(refused(path, b, len, "(QUANT)", kind ? "do not fit sq8 of dim 32" : "do not fit binary of dim 32",
			      true));

		/* A parameter out of range, with the parameters' own checksum and
		 * the content hash both made to match: the decoder's checks. */
		memcpy(b, orig, len);
		uint8_t *blob = b + qz + 64 + RV_QSEG_QUANTIZER_HEADER;
		size_t blen = (size_t)rv_get_u64(b + qz + 64 + 24);
		rv_put_u32(blob + 12 + (kind ? 8 : 4 * DIM), 0x7fc00000u); /* a NaN centroid / scale */
		rv_put_u64(blob + blen - 8, XXH64(blob, blen - 8, 0));
		rehash(b, qz);
		CHECK(refused(path, b, len, "(QUANT)", kind ? "pq parameters" : "sq8 parameters", true));

		/* A parameter length that runs past the payload. */
		memcpy(b, orig, len);
		rv_put_u64(b + qz + 64 + 24, blen + 1);
		rehash(b, qz);
		CHECK(refused(path, b, len, "(QUANT)", "parameter bytes", true));

		{
			/* Codes that do not continue the previous run. */
			memcpy(b, orig, len);
			rv_put_u32(b + at[2] + 64 + 4, rv_get_u32(b + at[2] + 64 + 4) + 1);
			rehash(b, at[2]);
			CHECK(refused(path, b, len, "(QUANT)", "do not continue", false));
			/* A code count that does not match the length. */
			memcpy(b, orig, len);
			rv_put_u32(b + at[1] + 64 + 8, rv_get_u32(b + at[1] + 64 + 8) - 1);
			rehash(b, at[1]);
			CHECK(refused(path, b, len, "(QUANT)", "do not match", true));
		}
		/* The header's feature bit cleared: the state's quantizer has no
		 * flag for it. */
		memcpy(b, orig, len);
		rv_put_u64(b + 16, 0);
		rv_put_u32(b + 60, (uint32_t)XXH3_64bits(b, 60));
		CHECK(refused(path, b, len, "manifest state", "lacks the quantization feature bit", false));
		/* An unknown feature bit: a newer file, refused as such. */
		rv_put_u64(b + 16, RV_FEATURE_QUANT | 2);
		rv_put_u32(b + 60, (uint32_t)XXH3_64bits(b, 60));
		write_file(path, b, len);
		db = NULL;
		CHECK(rv_db_open(&db, path, NULL) == RV_EVERSION);
		rv_db_close(db);
		/* Untouched, it opens. */
		write_file(path, orig, len);
		CHECK((db = reopen(path, 0)) != NULL);
		rv_db_close(db);
		free(b);
		free(orig);
	}
	free(v);
}
