/*
 * test_db.c - the collection through the public API: settings, the seed, upsert,
 * get, delete, search (recall against brute force, every metric), reopen,
 * graph checkpoints, compaction, filters against an exact reference,
 * read-only and locking, concurrent readers, allocation failures.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util/util.h"

#define DIM 24

static char g_path[1024]; /* path of the last collection made */

static rv_db *make_db(const char *name, uint32_t dim, rv_metric metric)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = dim;
	o.metric = metric;
	o.threads = 2;
	rv_db *db = NULL;
	snprintf(g_path, sizeof g_path, "%s", rv_test_path(name));
	if (rv_db_create(&db, g_path, &o) != RV_OK) {
		fprintf(stderr, "create: %s\n", rv_errmsg(db));
		rv_db_close(db);
		return NULL;
	}
	return db;
}

/* Upsert n vectors v[i*dim] with ids "<prefix><i>" and an optional payload
 * made by pay(i). */
static rv_status put_all(rv_db *db, const float *v, size_t n, uint32_t dim, const char *prefix,
			 void (*pay)(char *buf, size_t cap, size_t i))
{
	rv_point *p = calloc(n, sizeof *p);
	char (*ids)[32] = calloc(n, 32);
	char (*pays)[256] = pay ? calloc(n, 256) : NULL;
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], 32, "%s%zu", prefix, i);
		p[i].id = ids[i];
		p[i].vector = v + i * dim;
		if (pay) {
			pay(pays[i], 256, i);
			p[i].payload = pays[i];
		}
	}
	rv_status st = rv_db_upsert(db, p, n);
	free(p);
	free(ids);
	free(pays);
	return st;
}

/* Recall@k of the collection's answers against ground truth indices,
 * where point i has id "<prefix><i>". */
static double recall_of(rv_db *db, const float *queries, size_t nq, uint32_t dim, const int *gt, size_t k,
			uint32_t ef, const char *prefix)
{
	size_t found = 0, total = 0;
	for (size_t q = 0; q < nq; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = (uint32_t)k;
		s.ef = ef;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, queries + q * dim, &s) != RV_OK)
			return -1;
		for (size_t j = 0; j < k; j++) {
			if (gt[q * k + j] < 0)
				continue;
			total++;
			char want[32];
			snprintf(want, sizeof want, "%s%d", prefix, gt[q * k + j]);
			for (size_t h = 0; h < rv_results_count(r); h++)
				if (strcmp(rv_results_hits(r)[h].id, want) == 0) {
					found++;
					break;
				}
		}
		rv_results_free(r);
	}
	return total ? (double)found / total : 1.0;
}

static rv_db *open_path(const char *path, unsigned flags)
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

/* ====================================================================== */

TEST(version)
{
	CHECK(rv_libversion_number() == RV_VERSION_NUMBER);
	CHECK(strlen(rv_simd_name()) > 0);
	CHECK(strstr(rv_status_str(RV_ECORRUPT), "corrupt"));
	CHECK(strcmp(rv_metric_name(RV_METRIC_COSINE), "cosine") == 0);
}

TEST(create_rejects_bad_settings)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	rv_db *db = NULL;
	o.dim = 0;
	CHECK(rv_db_create(&db, rv_test_path("bad.rvf"), &o) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "dimension 0"));
	rv_db_close(db);
	o.dim = 16001;
	CHECK(rv_db_create(&db, rv_test_path("bad.rvf"), &o) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "16001"));
	rv_db_close(db);
	o.dim = 8;
	o.m = 1;
	CHECK(rv_db_create(&db, rv_test_path("bad.rvf"), &o) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "m 1"));
	rv_db_close(db);
	o.m = 16;
	o.metric = (rv_metric)7;
	CHECK(rv_db_create(&db, rv_test_path("bad.rvf"), &o) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "metric 7"));
	rv_db_close(db);
	/* An existing file is never overwritten. */
	o.metric = RV_METRIC_L2;
	const char *p = rv_test_path("exists.rvf");
	CHECK(rv_db_create(&db, p, &o) == RV_OK);
	rv_db_close(db);
	CHECK(rv_db_create(&db, p, &o) != RV_OK);
	CHECK(strlen(rv_errmsg(db)) > 0);
	rv_db_close(db);
	/* Opening what is not there. */
	CHECK(rv_db_open(&db, rv_test_path("missing.rvf"), NULL) == RV_ENOTFOUND);
	rv_db_close(db);
	/* A file that is not a collection. */
	const char *junk = rv_test_path("junk.rvf");
	FILE *f = fopen(junk, "wb");
	fputs("this is not a vector database file, just some text that is long enough to matter", f);
	fclose(f);
	CHECK(rv_db_open(&db, junk, NULL) == RV_ECORRUPT);
	rv_db_close(db);
}

static void pay_basic(char *b, size_t cap, size_t i)
{
	snprintf(b, cap, "{\"n\":%zu,\"cat\":\"c%zu\"}", i, i % 5);
}

TEST(upsert_get_replace)
{
	rv_db *db = make_db("basic.rvf", DIM, RV_METRIC_L2);
	CHECK(db);
	float *v = rv_test_random_vectors(200, DIM, 1);
	CHECK_OK(put_all(db, v, 200, DIM, "p", pay_basic), db);
	CHECK(rv_db_count(db) == 200);
	CHECK(rv_db_dim(db) == DIM);
	float got[DIM];
	char *pay = NULL;
	CHECK_OK(rv_db_get(db, "p17", got, &pay), db);
	CHECK(memcmp(got, v + 17 * DIM, sizeof got) == 0);
	CHECK(pay && strstr(pay, "\"n\":17"));
	rv_free(pay);
	CHECK(rv_db_get(db, "nope", got, NULL) == RV_ENOTFOUND);
	CHECK(strstr(rv_errmsg(db), "nope"));

	/* Replacing keeps the count and changes vector and payload. */
	rv_point p = { .id = "p17", .vector = v + 3 * DIM, .payload = "{\"replaced\":true}" };
	CHECK_OK(rv_db_upsert(db, &p, 1), db);
	CHECK(rv_db_count(db) == 200);
	CHECK_OK(rv_db_get(db, "p17", got, &pay), db);
	CHECK(memcmp(got, v + 3 * DIM, sizeof got) == 0);
	CHECK(pay && strcmp(pay, "{\"replaced\":true}") == 0);
	rv_free(pay);
	/* The exact nearest neighbour of v[3] is now both p3 and p17. */
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.k = 2;
	s.flags = RV_SEARCH_PAYLOAD | RV_SEARCH_VECTOR;
	rv_results *r;
	CHECK_OK(rv_db_search(&r, db, v + 3 * DIM, &s), db);
	CHECK(rv_results_count(r) == 2);
	const rv_hit *h = rv_results_hits(r);
	CHECK(h[0].score == 0 && h[1].score == 0);
	CHECK((strcmp(h[0].id, "p3") == 0 && strcmp(h[1].id, "p17") == 0) ||
	      (strcmp(h[0].id, "p17") == 0 && strcmp(h[1].id, "p3") == 0));
	CHECK(h[0].vector && memcmp(h[0].vector, v + 3 * DIM, sizeof got) == 0);
	CHECK(h[0].payload);
	rv_results_free(r);

	/* Survives commit + reopen; uncommitted changes do not. */
	CHECK_OK(rv_db_commit(db), db);
	rv_point p2 = { .id = "uncommitted", .vector = v };
	CHECK_OK(rv_db_upsert(db, &p2, 1), db);
	rv_db_close(db);
	db = open_path(g_path, 0);
	CHECK(db);
	CHECK(rv_db_count(db) == 200);
	CHECK(rv_db_get(db, "uncommitted", NULL, NULL) == RV_ENOTFOUND);
	CHECK_OK(rv_db_get(db, "p17", got, &pay), db);
	CHECK(memcmp(got, v + 3 * DIM, sizeof got) == 0);
	CHECK(pay && strcmp(pay, "{\"replaced\":true}") == 0);
	rv_free(pay);
	CHECK_OK(rv_db_get(db, "p18", got, NULL), db);
	CHECK(memcmp(got, v + 18 * DIM, sizeof got) == 0);
	rv_db_close(db);
	free(v);
}

TEST(upsert_validation_writes_nothing)
{
	rv_db *db = make_db("valid.rvf", 4, RV_METRIC_L2);
	CHECK(db);
	float good[4] = { 1, 2, 3, 4 }, bad[4] = { 1, 2, NAN, 4 };
	rv_point p[2] = { { .id = "a", .vector = good }, { .id = "b", .vector = bad } };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "point 1") && strstr(rv_errmsg(db), "vector[2]"));
	CHECK(rv_db_count(db) == 0);

	char longid[300];
	memset(longid, 'x', sizeof longid - 1);
	longid[299] = 0;
	p[1] = (rv_point){ .id = longid, .vector = good };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "299 bytes"));

	p[1] = (rv_point){ .id = "a", .vector = good };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "twice"));

	p[1] = (rv_point){ .id = "b", .vector = good, .payload = "[1,2]" };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "JSON object"));

	p[1] = (rv_point){ .id = "b", .vector = good, .payload = "{\"a\": }" };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "not valid JSON"));

	p[1] = (rv_point){ .id = "b", .vector = good, .payload = "{\"a\":1} x" };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);

	p[1] = (rv_point){ .id = "", .vector = good };
	CHECK(rv_db_upsert(db, p, 2) == RV_EINVAL);
	CHECK(rv_db_count(db) == 0);

	/* Cosine refuses the zero vector (no direction). */
	rv_db *c = make_db("valid-cos.rvf", 4, RV_METRIC_COSINE);
	float zero[4] = { 0 };
	rv_point z = { .id = "z", .vector = zero };
	CHECK(rv_db_upsert(c, &z, 1) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(c), "zero vector"));
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	rv_results *r = NULL;
	CHECK(rv_db_search(&r, c, zero, &s) == RV_EINVAL);
	CHECK(r == NULL);
	rv_db_close(c);

	/* Search argument checks. */
	s.k = 0;
	CHECK(rv_db_search(&r, db, good, &s) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "k 0"));
	s.k = 3;
	CHECK(rv_db_search(&r, db, bad, &s) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "query[2]"));
	/* Searching an empty collection gives no hits, not an error. */
	CHECK_OK(rv_db_search(&r, db, good, &s), db);
	CHECK(rv_results_count(r) == 0);
	rv_results_free(r);
	rv_db_close(db);
}

static void check_metric_recall(rv_metric metric, const char *name)
{
	size_t n = 4000, nq = 100, dim = 32, k = 10;
	float *v = rv_test_clustered_vectors(n + nq, dim, 40, 11);
	rv_db *db = make_db(name, (uint32_t)dim, metric);
	CHECK(db);
	CHECK_OK(put_all(db, v, n, (uint32_t)dim, "", NULL), db);
	const float *queries = v + n * dim;
	int *gt = rv_test_ground_truth(v, n, queries, nq, dim, k, metric);
	double rec = recall_of(db, queries, nq, (uint32_t)dim, gt, k, 100, "");
	fprintf(stderr, "   %s recall@10 = %.4f\n", rv_metric_name(metric), rec);
	CHECK(rec >= 0.95);

	/* Scores are distances in the documented form. */
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.k = 1;
	s.flags = RV_SEARCH_EXACT;
	rv_results *r;
	CHECK_OK(rv_db_search(&r, db, queries, &s), db);
	const float *x = v + (size_t)gt[0] * dim;
	double l2 = 0, dot = 0, nx = 0, nq2 = 0;
	for (size_t i = 0; i < dim; i++) {
		l2 += (double)(queries[i] - x[i]) * (queries[i] - x[i]);
		dot += (double)queries[i] * x[i];
		nx += (double)x[i] * x[i];
		nq2 += (double)queries[i] * queries[i];
	}
	double want = metric == RV_METRIC_L2 ? sqrt(l2) : metric == RV_METRIC_IP ? -dot : 1 - dot / sqrt(nx * nq2);
	CHECK_MSG(fabs(rv_results_hits(r)[0].score - want) < 1e-3 * (1 + fabs(want)), "score %g want %g",
		  rv_results_hits(r)[0].score, want);
	rv_results_free(r);

	/* The exact scan is exactly the brute force answer. */
	s.k = (uint32_t)k;
	for (size_t q = 0; q < 10; q++) {
		CHECK_OK(rv_db_search(&r, db, queries + q * dim, &s), db);
		CHECK(rv_results_count(r) == k);
		double prev = -INFINITY;
		for (size_t j = 0; j < k; j++) {
			CHECK(rv_results_hits(r)[j].score >= prev);
			prev = rv_results_hits(r)[j].score;
		}
		char want_id[32];
		snprintf(want_id, sizeof want_id, "%d", gt[q * k]);
		CHECK_MSG(strcmp(rv_results_hits(r)[0].id, want_id) == 0, "query %zu: %s vs %s", q,
			  rv_results_hits(r)[0].id, want_id);
		rv_results_free(r);
	}
	rv_db_close(db);
	free(gt);
	free(v);
}

TEST(recall_l2) { check_metric_recall(RV_METRIC_L2, "rec-l2.rvf"); }
TEST(recall_cosine) { check_metric_recall(RV_METRIC_COSINE, "rec-cos.rvf"); }
TEST(recall_ip) { check_metric_recall(RV_METRIC_IP, "rec-ip.rvf"); }

TEST(delete_reopen_and_recall_after_half_deleted)
{
	size_t n = 4000, nq = 100, dim = 32, k = 10;
	float *v = rv_test_clustered_vectors(n + nq, dim, 40, 12);
	rv_db *db = make_db("del.rvf", (uint32_t)dim, RV_METRIC_L2);
	CHECK(db);
	CHECK_OK(put_all(db, v, n, (uint32_t)dim, "", NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	/* Delete every odd id, in a few batches, committing in between. */
	char (*ids)[16] = calloc(n, 16);
	const char **ptrs = calloc(n, sizeof *ptrs);
	size_t nd = 0;
	for (size_t i = 1; i < n; i += 2) {
		snprintf(ids[nd], 16, "%zu", i);
		ptrs[nd] = ids[nd];
		nd++;
	}
	size_t got = 0, total = 0;
	for (size_t b = 0; b < nd; b += 500) {
		size_t m = nd - b < 500 ? nd - b : 500;
		CHECK_OK(rv_db_delete(db, ptrs + b, m, &got), db);
		total += got;
		CHECK_OK(rv_db_commit(db), db);
	}
	CHECK(total == nd);
	CHECK_OK(rv_db_delete(db, ptrs, 3, &got), db); /* already gone */
	CHECK(got == 0);
	CHECK(rv_db_count(db) == n - nd);
	CHECK(rv_db_get(db, "1", NULL, NULL) == RV_ENOTFOUND);

	/* Ground truth over the remaining (even) points. */
	size_t nr = n - nd;
	float *rem = malloc(nr * dim * sizeof(float));
	for (size_t i = 0; i < nr; i++)
		memcpy(rem + i * dim, v + 2 * i * dim, dim * sizeof(float));
	int *gt = rv_test_ground_truth(rem, nr, v + n * dim, nq, dim, k, RV_METRIC_L2);
	for (size_t i = 0; i < nq * k; i++)
		gt[i] *= 2; /* remaining index i is id 2i */
	double rec = recall_of(db, v + n * dim, nq, (uint32_t)dim, gt, k, 100, "");
	fprintf(stderr, "   recall@10 after deleting half: %.4f\n", rec);
	CHECK(rec >= 0.95);
	/* No deleted id ever comes back. */
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.k = 50;
	for (size_t q = 0; q < 20; q++) {
		rv_results *r;
		CHECK_OK(rv_db_search(&r, db, v + (n + q) * dim, &s), db);
		CHECK(rv_results_count(r) == 50);
		for (size_t j = 0; j < rv_results_count(r); j++)
			CHECK(atoi(rv_results_hits(r)[j].id) % 2 == 0);
		rv_results_free(r);
	}
	rv_db_close(db);
	db = open_path(g_path, 0);
	CHECK(db);
	CHECK(rv_db_count(db) == nr);
	double rec2 = recall_of(db, v + n * dim, nq, (uint32_t)dim, gt, k, 100, "");
	CHECK(fabs(rec2 - rec) < 0.02);

	/* Compaction keeps every answer and shrinks the file. */
	rv_stats before = RV_STATS_INIT, after = RV_STATS_INIT;
	CHECK_OK(rv_db_stats(&before, db), db);
	CHECK_OK(rv_db_compact(db), db);
	CHECK_OK(rv_db_stats(&after, db), db);
	fprintf(stderr, "   compact: %llu -> %llu bytes\n", (unsigned long long)before.file_bytes,
		(unsigned long long)after.file_bytes);
	CHECK(after.file_bytes < before.file_bytes);
	CHECK(after.count == nr && after.deleted == 0);
	CHECK(rv_db_count(db) == nr);
	float vec[32];
	CHECK_OK(rv_db_get(db, "10", vec, NULL), db);
	CHECK(memcmp(vec, v + 10 * dim, sizeof vec) == 0);
	double rec3 = recall_of(db, v + n * dim, nq, (uint32_t)dim, gt, k, 100, "");
	CHECK(rec3 >= 0.95);
	rv_db_close(db);
	db = open_path(g_path, 0);
	CHECK(db);
	CHECK(rv_db_count(db) == nr);
	CHECK(rv_verify_file(g_path, NULL, NULL) == RV_OK);
	rv_db_close(db);
	free(ids);
	free(ptrs);
	free(rem);
	free(gt);
	free(v);
}

/* Hits of nq searches (k = 10, ef 10) as "id score" lines. */
static char *hits_text(rv_db *db, const float *queries, size_t nq)
{
	size_t cap = nq * 10 * 48 + 1, len = 0;
	char *out = malloc(cap);
	out[0] = 0;
	for (size_t q = 0; q < nq; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = 10;
		s.ef = 10;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, queries + q * DIM, &s) != RV_OK)
			break;
		for (size_t h = 0; h < rv_results_count(r); h++)
			len += (size_t)snprintf(out + len, cap - len, "%s %.9g\n", rv_results_hits(r)[h].id,
						(double)rv_results_hits(r)[h].score);
		rv_results_free(r);
	}
	return out;
}

TEST(seed_repeats_the_graph)
{
	/* Two files created with the same seed and the same inserts on one
	 * thread have the same graph (the same hits at a small ef on a sparse
	 * graph); another seed gives another graph. */
	enum { N = 1500, NQ = 100 };
	float *v = malloc(sizeof(float) * N * DIM), *qs = malloc(sizeof(float) * NQ * DIM);
	rv_rng rng;
	rv_rng_seed(&rng, 3);
	for (size_t i = 0; i < (size_t)N * DIM; i++)
		v[i] = rv_rng_gauss(&rng);
	for (size_t i = 0; i < (size_t)NQ * DIM; i++)
		qs[i] = rv_rng_gauss(&rng);
	char *text[3] = { NULL, NULL, NULL };
	const uint64_t seeds[3] = { 7, 7, 8 };
	for (int k = 0; k < 3; k++) {
		rv_open_opts o = RV_OPEN_OPTS_INIT;
		o.dim = DIM;
		o.m = 4;
		o.ef_construction = 16;
		o.threads = 1;
		o.seed = seeds[k];
		char name[32];
		snprintf(name, sizeof name, "seed%d.rvf", k);
		rv_db *db = NULL;
		CHECK_OK(rv_db_create(&db, rv_test_path(name), &o), db);
		CHECK_OK(put_all(db, v, N, DIM, "p", NULL), db);
		text[k] = hits_text(db, qs, NQ);
		rv_db_close(db);
	}
	CHECK(strlen(text[0]) > (size_t)NQ * 10 * 4);
	CHECK(strcmp(text[0], text[1]) == 0);
	CHECK(strcmp(text[0], text[2]) != 0);
	for (int k = 0; k < 3; k++)
		free(text[k]);
	free(v);
	free(qs);
}

TEST(checkpoint_and_replay)
{
	/* Many small commits: the graph is replayed on open from what came
	 * after the last checkpoint, and answers do not change. */
	size_t dim = 16, n = 12000;
	float *v = rv_test_clustered_vectors(n, dim, 30, 13);
	rv_db *db = make_db("ckpt.rvf", (uint32_t)dim, RV_METRIC_L2);
	CHECK(db);
	CHECK_OK(put_all(db, v, 10000, (uint32_t)dim, "", NULL), db);
	CHECK_OK(rv_db_commit(db), db);
	rv_stats st = RV_STATS_INIT;
	CHECK_OK(rv_db_stats(&st, db), db);
	CHECK(st.unsaved_graph_ops == 0); /* first commit checkpoints */
	for (size_t b = 0; b < 10; b++) {
		rv_point p[10];
		char ids[10][16];
		for (size_t i = 0; i < 10; i++) {
			size_t j = 10000 + b * 10 + i;
			snprintf(ids[i], 16, "%zu", j);
			p[i] = (rv_point){ .id = ids[i], .vector = v + j * dim };
		}
		CHECK_OK(rv_db_upsert(db, p, 10), db);
		CHECK_OK(rv_db_commit(db), db);
	}
	CHECK_OK(rv_db_stats(&st, db), db);
	CHECK(st.unsaved_graph_ops == 100); /* 10000 nodes: 100 ops are below the checkpoint threshold */
	CHECK(st.generation == 12);
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.k = 10;
	rv_results *before[5];
	for (int q = 0; q < 5; q++)
		CHECK_OK(rv_db_search(&before[q], db, v + (10050 + q) * dim, &s), db);
	rv_db_close(db);
	db = open_path(g_path, RV_OPEN_READONLY);
	CHECK(db);
	CHECK_OK(rv_db_stats(&st, db), db);
	CHECK(st.graph_nodes == 10100 && st.count == 10100);
	for (int q = 0; q < 5; q++) {
		rv_results *r;
		CHECK_OK(rv_db_search(&r, db, v + (10050 + q) * dim, &s), db);
		/* The point itself is first, both times. */
		char want[16];
		snprintf(want, sizeof want, "%d", 10050 + q);
		CHECK(strcmp(rv_results_hits(r)[0].id, want) == 0);
		CHECK(strcmp(rv_results_hits(before[q])[0].id, want) == 0);
		rv_results_free(r);
		rv_results_free(before[q]);
	}
	/* Read-only handles refuse writes. */
	rv_point p = { .id = "x", .vector = v };
	CHECK(rv_db_upsert(db, &p, 1) == RV_EREADONLY);
	CHECK(rv_db_commit(db) == RV_EREADONLY);
	rv_db_close(db);
	free(v);
}

TEST(second_writer_is_refused)
{
	rv_db *a = make_db("lock.rvf", 4, RV_METRIC_L2);
	CHECK(a);
	rv_db *b = NULL;
	CHECK(rv_db_open(&b, g_path, NULL) == RV_EBUSY);
	CHECK(strstr(rv_errmsg(b), "lock"));
	rv_db_close(b);
	rv_db_close(a);
	/* After close the file opens again. */
	CHECK(rv_db_open(&b, g_path, NULL) == RV_OK);
	rv_db_close(b);
}

/* ---- filters against an exact reference ---- */

static void pay_rich(char *b, size_t cap, size_t i)
{
	static const char *colors[] = { "red", "green", "blue" };
	if (i % 11 == 0) {
		snprintf(b, cap, "{\"n\":%zu}", i); /* sparse: no cat, no tags */
		return;
	}
	snprintf(b, cap,
		 "{\"n\":%zu,\"cat\":\"c%zu\",\"price\":%.1f,\"ok\":%s,\"tags\":[\"%s\",\"t%zu\"],"
		 "\"meta\":{\"year\":%zu}}",
		 i, i % 7, (double)(i % 100) / 2, i % 3 ? "true" : "false", colors[i % 3], i % 4, 1990 + i % 30);
}

typedef struct ref_filter {
	const char *json;
	bool (*match)(size_t i);
} ref_filter;

static bool has_rich(size_t i) { return i % 11 != 0; }
static bool f_cat3(size_t i) { return has_rich(i) && i % 7 == 3; }
static bool f_price(size_t i) { return has_rich(i) && (double)(i % 100) / 2 >= 10 && (double)(i % 100) / 2 < 12.5; }
static bool f_ne(size_t i) { return !(has_rich(i) && i % 7 == 3); }
static bool f_in(size_t i) { return has_rich(i) && (i % 7 == 1 || i % 7 == 2); }
static bool f_nin(size_t i) { return !(has_rich(i) && (i % 7 == 1 || i % 7 == 2)); }
static bool f_exists(size_t i) { return has_rich(i); }
static bool f_not_exists(size_t i) { return !has_rich(i); }
static bool f_tags(size_t i) { return has_rich(i) && i % 3 == 2; }
static bool f_year(size_t i) { return has_rich(i) && 1990 + i % 30 > 2015; }
static bool f_or(size_t i) { return f_cat3(i) || f_not_exists(i); }
static bool f_and(size_t i) { return has_rich(i) && i % 3 != 0 && i % 7 == 5; }
static bool f_not(size_t i) { return !(has_rich(i) && i % 3 != 0); }
static bool f_lt(size_t i) { return i < 40; }
static bool f_one(size_t i) { return i == 1234; }
static bool f_none(size_t i) { return false; }

static const ref_filter filters[] = {
	{ "{\"cat\":\"c3\"}", f_cat3 },
	{ "{\"price\":{\"$gte\":10,\"$lt\":12.5}}", f_price },
	{ "{\"cat\":{\"$ne\":\"c3\"}}", f_ne },
	{ "{\"cat\":{\"$in\":[\"c1\",\"c2\"]}}", f_in },
	{ "{\"cat\":{\"$nin\":[\"c1\",\"c2\"]}}", f_nin },
	{ "{\"tags\":{\"$exists\":true}}", f_exists },
	{ "{\"tags\":{\"$exists\":false}}", f_not_exists },
	{ "{\"tags\":\"blue\"}", f_tags },
	{ "{\"meta.year\":{\"$gt\":2015}}", f_year },
	{ "{\"$or\":[{\"cat\":\"c3\"},{\"cat\":{\"$exists\":false}}]}", f_or },
	{ "{\"$and\":[{\"ok\":true},{\"cat\":{\"$eq\":\"c5\"}}]}", f_and },
	{ "{\"$not\":{\"ok\":true}}", f_not },
	{ "{\"n\":{\"$lt\":40}}", f_lt },
	{ "{\"n\":1234}", f_one },
	{ "{\"n\":{\"$lt\":-1}}", f_none },
};

TEST(filters_match_exact_reference)
{
	size_t n = 3000, dim = 16, nq = 10;
	float *v = rv_test_clustered_vectors(n + nq, dim, 20, 14);
	rv_db *db = make_db("filter.rvf", (uint32_t)dim, RV_METRIC_L2);
	CHECK(db);
	CHECK_OK(put_all(db, v, n, (uint32_t)dim, "", pay_rich), db);
	float *sub = malloc(n * dim * sizeof(float));
	size_t *idx = malloc(n * sizeof *idx);
	for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (filters[f].match(i)) {
				memcpy(sub + m * dim, v + i * dim, dim * sizeof(float));
				idx[m++] = i;
			}
		size_t k = 10, want = m < k ? m : k;
		int *gt = m ? rv_test_ground_truth(sub, m, v + n * dim, nq, dim, k, RV_METRIC_L2) : NULL;
		size_t found = 0, total = 0;
		for (int exact = 0; exact < 2; exact++) {
			for (size_t q = 0; q < nq; q++) {
				rv_search_opts s = RV_SEARCH_OPTS_INIT;
				s.k = (uint32_t)k;
				s.filter = filters[f].json;
				s.flags = exact ? RV_SEARCH_EXACT : 0;
				rv_results *r;
				CHECK_OK(rv_db_search(&r, db, v + (n + q) * dim, &s), db);
				CHECK_MSG(rv_results_count(r) == want, "filter %s: %zu hits, want %zu", filters[f].json,
					  rv_results_count(r), want);
				for (size_t j = 0; j < rv_results_count(r); j++) {
					size_t id = (size_t)atoi(rv_results_hits(r)[j].id);
					CHECK_MSG(filters[f].match(id), "filter %s returned %zu", filters[f].json, id);
					for (size_t g = 0; g < want; g++)
						if (idx[gt[q * k + g]] == id) {
							found++;
							break;
						}
				}
				total += want;
				rv_results_free(r);
			}
		}
		double rec = total ? (double)found / total : 1;
		CHECK_MSG(rec >= 0.95, "filter %s: recall %.3f", filters[f].json, rec);
		free(gt);
	}
	/* A bad filter says what and where. */
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.filter = "{\"price\":{\"$gtx\":3}}";
	rv_results *r = NULL;
	CHECK(rv_db_search(&r, db, v, &s) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "$gtx"));
	s.filter = "{\"price\":";
	CHECK(rv_db_search(&r, db, v, &s) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "JSON"));
	rv_db_close(db);
	free(sub);
	free(idx);
	free(v);
}

/* ---- concurrency: readers while a writer writes ---- */

typedef struct conc {
	rv_db *db;
	const float *v;
	size_t dim, n;
	int bad;
} conc;

static void conc_fn(void *p, unsigned t)
{
	conc *c = p;
	if (t == 0) {
		for (size_t i = c->n / 2; i < c->n; i += 50) {
			rv_point pts[50];
			char ids[50][16];
			for (size_t j = 0; j < 50; j++) {
				snprintf(ids[j], 16, "%zu", i + j);
				pts[j] = (rv_point){ .id = ids[j], .vector = c->v + (i + j) * c->dim };
			}
			if (rv_db_upsert(c->db, pts, 50) != RV_OK) {
				fprintf(stderr, "   upsert: %s\n", rv_errmsg(c->db));
				c->bad++;
			}
		}
		return;
	}
	for (size_t q = 0; q < 300; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = 5;
		rv_results *r;
		size_t i = (q * 7 + t) % (c->n / 2);
		if (rv_db_search(&r, c->db, c->v + i * c->dim, &s) != RV_OK) {
			c->bad++;
			continue;
		}
		char want[16];
		snprintf(want, sizeof want, "%zu", i);
		if (rv_results_count(r) != 5 || strcmp(rv_results_hits(r)[0].id, want) != 0) {
			fprintf(stderr, "   query %zu: %zu hits, first %s\n", i, rv_results_count(r),
				rv_results_count(r) ? rv_results_hits(r)[0].id : "-");
			c->bad++;
		}
		rv_results_free(r);
	}
}

TEST(concurrent_readers_and_writer)
{
	size_t dim = 16, n = 6000;
	float *v = rv_test_clustered_vectors(n, dim, 30, 15);
	rv_db *db = make_db("conc.rvf", (uint32_t)dim, RV_METRIC_L2);
	CHECK(db);
	CHECK_OK(put_all(db, v, n / 2, (uint32_t)dim, "", NULL), db);
	conc c = { db, v, dim, n, 0 };
	rv_parallel(4, conc_fn, &c);
	CHECK(c.bad == 0);
	CHECK(rv_db_count(db) == n);
	rv_db_close(db);
	free(v);
}

/* ---- searches while one large upsert links its points ---- */

#define UP_PRE 600   /* points before the upsert: "p<i>" */
#define UP_REPL 200  /* of which the upsert replaces "p0".."p199" */
#define UP_NEW 4000  /* and adds "n<i>" */

typedef struct upconc {
	rv_db *db;
	size_t dim;
	const float *pre, *repl, *fresh, *queries; /* UP_PRE, UP_REPL, UP_NEW, nq vectors */
	size_t nq;
	atomic_int phase;    /* 1 while rv_db_upsert runs, 2 after */
	atomic_int bad;
	atomic_long during;  /* searches begun and ended inside the upsert call */
	atomic_long saw_new; /* ... of which returned a point of the batch */
} upconc;

/* Whether hit h is a point the collection holds now or held before the
 * upsert, with the vector of that id's version, and whether it is new. */
static bool known_hit(const upconc *c, const rv_hit *h, bool *is_new)
{
	size_t dim = c->dim, i;
	char *end;
	if (h->id[0] != 'p' && h->id[0] != 'n')
		return false;
	i = strtoul(h->id + 1, &end, 10);
	if (*end || !h->vector)
		return false;
	*is_new = h->id[0] == 'n';
	if (*is_new)
		return i < UP_NEW && memcmp(h->vector, c->fresh + i * dim, dim * sizeof(float)) == 0;
	if (i >= UP_PRE)
		return false;
	if (memcmp(h->vector, c->pre + i * dim, dim * sizeof(float)) == 0)
		return true;
	*is_new = i < UP_REPL;
	return i < UP_REPL && memcmp(h->vector, c->repl + i * dim, dim * sizeof(float)) == 0;
}

static void upconc_fn(void *p, unsigned t)
{
	upconc *c = p;
	if (t == 0) {
		rv_point *pts = calloc(UP_REPL + UP_NEW, sizeof *pts);
		char (*ids)[16] = calloc(UP_REPL + UP_NEW, 16);
		for (size_t i = 0; i < UP_REPL + UP_NEW; i++) {
			bool r = i < UP_REPL;
			snprintf(ids[i], 16, "%c%zu", r ? 'p' : 'n', r ? i : i - UP_REPL);
			pts[i] = (rv_point){ .id = ids[i],
					     .vector = r ? c->repl + i * c->dim : c->fresh + (i - UP_REPL) * c->dim };
		}
		atomic_store(&c->phase, 1);
		if (rv_db_upsert(c->db, pts, UP_REPL + UP_NEW) != RV_OK) {
			fprintf(stderr, "   upsert: %s\n", rv_errmsg(c->db));
			atomic_fetch_add(&c->bad, 1);
		}
		atomic_store(&c->phase, 2);
		free(pts);
		free(ids);
		return;
	}
	while (atomic_load(&c->phase) == 0)
		sched_yield();
	for (size_t q = t; atomic_load(&c->phase) < 2; q += 3) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = 10;
		s.flags = RV_SEARCH_VECTOR;
		rv_results *r = NULL;
		int began = atomic_load(&c->phase);
		rv_status st = rv_db_search(&r, c->db, c->queries + (q % c->nq) * c->dim, &s);
		/* k hits (there are always more than k points), each a known
		 * point with the vector of a version of its id, no id twice:
		 * a replaced point is never found beside its successor. */
		bool ok = st == RV_OK && rv_results_count(r) == 10, fresh = false;
		for (size_t j = 0; ok && j < 10; j++) {
			const rv_hit *h = &rv_results_hits(r)[j];
			bool is_new = false;
			ok = known_hit(c, h, &is_new);
			fresh |= is_new;
			for (size_t i = 0; ok && i < j; i++)
				ok = strcmp(rv_results_hits(r)[i].id, h->id) != 0;
		}
		if (!ok && atomic_fetch_add(&c->bad, 1) == 0)
			fprintf(stderr, "   search during upsert: %s, %zu hits\n", rv_status_str(st),
				r ? rv_results_count(r) : 0);
		if (began == 1 && atomic_load(&c->phase) == 1) {
			atomic_fetch_add(&c->during, 1);
			if (fresh)
				atomic_fetch_add(&c->saw_new, 1);
		}
		rv_results_free(r);
	}
}

/* The collection of the test after the upsert, with or without searches
 * running during it; returns its recall@10 at ef 10 against brute force. */
static double upsert_case(const char *name, upconc *c, bool readers)
{
	size_t dim = c->dim, total = UP_PRE + UP_NEW;
	rv_db *db = make_db(name, (uint32_t)dim, RV_METRIC_L2);
	if (!db || put_all(db, c->pre, UP_PRE, (uint32_t)dim, "p", NULL) != RV_OK)
		return -1;
	c->db = db;
	atomic_store(&c->phase, 0);
	if (readers) {
		rv_parallel(4, upconc_fn, c);
	} else {
		atomic_store(&c->phase, 2); /* the worker of thread 0 alone */
		upconc_fn(c, 0);
	}
	/* Final content: p0..p199 replaced, p200..p599 as they were, n*. */
	float *all = malloc(total * dim * sizeof *all);
	memcpy(all, c->repl, UP_REPL * dim * sizeof *all);
	memcpy(all + UP_REPL * dim, c->pre + UP_REPL * dim, (UP_PRE - UP_REPL) * dim * sizeof *all);
	memcpy(all + UP_PRE * dim, c->fresh, UP_NEW * dim * sizeof *all);
	int *gt = rv_test_ground_truth(all, total, c->queries, c->nq, dim, 10, RV_METRIC_L2);
	size_t found = 0;
	for (size_t q = 0; q < c->nq && rv_db_count(db) == total; q++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = 10;
		s.ef = 10;
		rv_results *r = NULL;
		if (rv_db_search(&r, db, c->queries + q * dim, &s) != RV_OK)
			break;
		for (size_t j = 0; j < 10; j++) {
			char want[16];
			int g = gt[q * 10 + j];
			snprintf(want, sizeof want, "%c%d", g < UP_PRE ? 'p' : 'n', g < UP_PRE ? g : g - UP_PRE);
			for (size_t h = 0; h < rv_results_count(r); h++)
				found += strcmp(rv_results_hits(r)[h].id, want) == 0;
		}
		rv_results_free(r);
	}
	free(gt);
	free(all);
	rv_db_close(db);
	return (double)found / (double)(c->nq * 10);
}

/* One upsert of 4200 points (200 replacing) while three threads search:
 * the searches complete during the upsert (it holds the lock exclusive
 * only around its short steps), find the new points as they are linked,
 * never a replaced version beside its successor nor anything unknown, and
 * the result is as good as an upsert without readers. */
TEST(concurrent_search_during_upsert)
{
	size_t dim = 16, nq = 200;
	float *v = rv_test_clustered_vectors(UP_PRE + UP_REPL + UP_NEW + nq, dim, 200, 41);
	upconc c = { .dim = dim, .pre = v, .repl = v + UP_PRE * dim, .fresh = v + (UP_PRE + UP_REPL) * dim,
		     .queries = v + (UP_PRE + UP_REPL + UP_NEW) * dim, .nq = nq };
	double r = upsert_case("upconc.rvf", &c, true);
	long during = atomic_load(&c.during), fresh = atomic_load(&c.saw_new);
	printf("   %ld searches completed during the upsert, %ld of them found new points\n", during, fresh);
	CHECK(atomic_load(&c.bad) == 0);
	CHECK(during >= 10);
	CHECK(fresh >= 1);
	double r_ref = upsert_case("upconc_ref.rvf", &c, false);
	printf("   recall@10 at ef 10: %.4f with searches during the upsert, %.4f without\n", r, r_ref);
	CHECK(atomic_load(&c.bad) == 0);
	CHECK(r_ref >= 0.8);
	CHECK(fabs(r - r_ref) <= 0.02);
	free(v);
}

/* ---- allocation failures ---- */

TEST(allocation_failures_leave_handle_usable)
{
	size_t dim = 8, n = 300;
	float *v = rv_test_random_vectors(n + 50, dim, 16);
	rv_test_alloc ta;
	rv_test_alloc_init(&ta);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = (uint32_t)dim;
	o.allocator = &ta.hooks;
	o.threads = 1;
	const char *path = rv_test_path("oom.rvf");
	snprintf(g_path, sizeof g_path, "%s", path);

	/* Create fails cleanly at every allocation. */
	int fails = 0;
	for (long nth = 1;; nth++) {
		unlink(g_path);
		ta.fail_at = nth;
		rv_db *db = NULL;
		rv_status st = rv_db_create(&db, g_path, &o);
		ta.fail_at = 0;
		rv_db_close(db);
		CHECK_MSG(ta.live == 0, "create, failing allocation %ld: %ld blocks leaked", nth, ta.live);
		if (st == RV_OK)
			break;
		CHECK_MSG(st == RV_ENOMEM, "create, failing allocation %ld: %s", nth, rv_status_str(st));
		fails++;
	}
	CHECK(fails > 3);

	rv_db *db = NULL;
	CHECK_OK(rv_db_open(&db, g_path, &o), db);
	CHECK_OK(put_all(db, v, n, (uint32_t)dim, "", pay_basic), db);
	CHECK_OK(rv_db_commit(db), db);

	/* Upsert of a batch (some new, some replacing): each failure leaves
	 * the collection exactly as it was. */
	for (long nth = 1;; nth++) {
		rv_point p[20];
		char ids[20][16];
		for (size_t j = 0; j < 20; j++) {
			snprintf(ids[j], 16, "%zu", n - 10 + j);
			p[j] = (rv_point){ .id = ids[j], .vector = v + (n + j) * dim, .payload = "{\"x\":1}" };
		}
		ta.fail_at = nth;
		rv_status st = rv_db_upsert(db, p, 20);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK_MSG(st == RV_ENOMEM, "upsert, failing allocation %ld: %s", nth, rv_status_str(st));
		CHECK(rv_db_count(db) == n);
		CHECK(rv_db_get(db, "305", NULL, NULL) == RV_ENOTFOUND);
		float got[8];
		CHECK_OK(rv_db_get(db, "295", got, NULL), db);
		CHECK(memcmp(got, v + 295 * dim, sizeof got) == 0);
	}
	CHECK(rv_db_count(db) == n + 10);

	/* Search and commit. */
	for (long nth = 1;; nth++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.filter = "{\"cat\":\"c1\"}";
		s.flags = RV_SEARCH_PAYLOAD;
		rv_results *r = NULL;
		ta.fail_at = nth;
		rv_status st = rv_db_search(&r, db, v, &s);
		ta.fail_at = 0;
		if (st == RV_OK) {
			CHECK(rv_results_count(r) == 10);
			rv_results_free(r);
			break;
		}
		CHECK(st == RV_ENOMEM && r == NULL);
	}
	for (long nth = 1;; nth++) {
		ta.fail_at = nth;
		rv_status st = rv_db_commit(db);
		ta.fail_at = 0;
		if (st == RV_OK)
			break;
		CHECK_MSG(st == RV_ENOMEM, "commit: %s", rv_errmsg(db));
	}
	rv_db_close(db);
	CHECK(ta.live == 0);

	/* Open fails cleanly at every allocation, then works. */
	for (long nth = 1;; nth++) {
		ta.fail_at = nth;
		db = NULL;
		rv_status st = rv_db_open(&db, g_path, &o);
		ta.fail_at = 0;
		if (st == RV_OK) {
			CHECK(rv_db_count(db) == n + 10);
			rv_db_close(db);
			break;
		}
		rv_db_close(db);
		CHECK_MSG(st == RV_ENOMEM, "open, failing allocation %ld: %s", nth, rv_status_str(st));
		CHECK_MSG(ta.live == 0, "open, failing allocation %ld: %ld blocks leaked", nth, ta.live);
	}
	CHECK(ta.live == 0);
	free(v);
}

TEST(compact_keeps_every_answer)
{
	/* The compacted graph is the old one renumbered: every search gives
	 * the same ids and scores, and the file verifies. */
	size_t n = 3000, dim = 16;
	float *v = rv_test_clustered_vectors(n, dim, 20, 17);
	rv_db *db = make_db("compact.rvf", (uint32_t)dim, RV_METRIC_L2);
	CHECK(db);
	CHECK_OK(put_all(db, v, n, (uint32_t)dim, "", pay_basic), db);
	const char *del[600];
	char ids[600][16];
	for (int i = 0; i < 600; i++) {
		snprintf(ids[i], 16, "%d", i * 5 + 1);
		del[i] = ids[i];
	}
	CHECK_OK(rv_db_delete(db, del, 600, NULL), db);
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	s.k = 20;
	s.ef = 40;
	s.flags = RV_SEARCH_PAYLOAD;
	rv_results *before[30];
	for (int q = 0; q < 30; q++)
		CHECK_OK(rv_db_search(&before[q], db, v + (size_t)(q * 97) * dim, &s), db);
	CHECK_OK(rv_db_compact(db), db);
	rv_stats st = RV_STATS_INIT;
	CHECK_OK(rv_db_stats(&st, db), db);
	CHECK(st.count == n - 600 && st.slots == n - 600 && st.graph_nodes == n - 600);
	CHECK(st.unsaved_graph_ops == 0 && st.dirty == 0);
	for (int q = 0; q < 30; q++) {
		rv_results *r;
		CHECK_OK(rv_db_search(&r, db, v + (size_t)(q * 97) * dim, &s), db);
		CHECK(rv_results_count(r) == rv_results_count(before[q]));
		for (size_t j = 0; j < rv_results_count(r); j++) {
			CHECK(strcmp(rv_results_hits(r)[j].id, rv_results_hits(before[q])[j].id) == 0);
			CHECK(rv_results_hits(r)[j].score == rv_results_hits(before[q])[j].score);
			CHECK(strcmp(rv_results_hits(r)[j].payload, rv_results_hits(before[q])[j].payload) == 0);
		}
		rv_results_free(r);
		rv_results_free(before[q]);
	}
	rv_db_close(db);
	CHECK(rv_verify_file(g_path, NULL, NULL) == RV_OK);
	free(v);
}

/* ---- error messages per thread ---- */

typedef struct errs {
	rv_db *db;
	int wrong;
} errs;

static void err_fn(void *p, unsigned t)
{
	errs *c = p;
	float q[4] = { 1, 2, 3, 4 };
	for (int i = 0; i < 2000; i++) {
		rv_search_opts s = RV_SEARCH_OPTS_INIT;
		s.k = 1;
		char f[64];
		/* Each thread fails with its own operator name. */
		snprintf(f, sizeof f, "{\"a\":{\"$bad%u\":1}}", t);
		s.filter = f;
		rv_results *r = NULL;
		if (rv_db_search(&r, c->db, q, &s) != RV_EINVAL)
			c->wrong++;
		char want[16];
		snprintf(want, sizeof want, "$bad%u", t);
		if (!strstr(rv_errmsg(c->db), want))
			__atomic_add_fetch(&c->wrong, 1, __ATOMIC_RELAXED);
	}
}

TEST(errmsg_is_per_thread)
{
	rv_db *db = make_db("errs.rvf", 4, RV_METRIC_L2);
	CHECK(db);
	float v[4] = { 1, 1, 1, 1 };
	rv_point p = { .id = "a", .vector = v };
	CHECK_OK(rv_db_upsert(db, &p, 1), db);
	errs c = { db, 0 };
	rv_parallel(4, err_fn, &c);
	CHECK_MSG(c.wrong == 0, "%d messages belonged to another thread", c.wrong);
	rv_db_close(db);
}

TEST(option_struct_sizes)
{
	/* A caller from an older header passes a smaller size (defaults fill
	 * the rest); nonsense sizes are refused with a message. */
	rv_db *db = make_db("sizes.rvf", 4, RV_METRIC_L2);
	CHECK(db);
	float v[4] = { 1, 2, 3, 4 };
	rv_point p = { .id = "a", .vector = v };
	CHECK_OK(rv_db_upsert(db, &p, 1), db);
	rv_search_opts s = RV_SEARCH_OPTS_INIT;
	rv_results *r = NULL;
	s.size = sizeof s + 8;
	CHECK(rv_db_search(&r, db, v, &s) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "rv_search_opts.size"));
	s.size = 3;
	CHECK(rv_db_search(&r, db, v, &s) == RV_EINVAL);
	s.size = sizeof s;
	CHECK_OK(rv_db_search(&r, db, v, &s), db);
	CHECK(rv_results_count(r) == 1);
	rv_results_free(r);
	CHECK_OK(rv_db_search(&r, db, v, NULL), db); /* NULL: all defaults */
	CHECK(rv_results_count(r) == 1);
	rv_results_free(r);
	rv_db_close(db);

	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.size = 7;
	CHECK(rv_db_open(&db, g_path, &o) == RV_EINVAL);
	CHECK(strstr(rv_errmsg(db), "rv_open_opts.size is 7"));
	rv_db_close(db);
	CHECK(rv_db_open(&db, g_path, NULL) == RV_OK);
	rv_db_close(db);
}
