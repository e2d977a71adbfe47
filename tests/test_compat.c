/*
 * test_compat.c - files written by released format versions keep opening.
 * tests/data/format-v1.rvf: cosine, dim 4, m 8, ef_construction 32; ids
 * p0..p11 with vector (i, 1, i % 3, -i/2) and payload {"i": i, "even": ...};
 * p4 and p7 deleted; two commits (the second after p5), so it has two VEC
 * runs, a JOURNAL and a graph checkpoint.
 */
#include <unistd.h>

#include "harness.h"

#define SAMPLE RV_SOURCE_DIR "/tests/data/format-v1.rvf"

static void expected(int i, float *v)
{
	v[0] = (float)i;
	v[1] = 1.0f;
	v[2] = (float)(i % 3);
	v[3] = -0.5f * (float)i;
	double n = 0;
	for (int d = 0; d < 4; d++)
		n += (double)v[d] * v[d];
	for (int d = 0; d < 4; d++)
		v[d] = (float)(v[d] / sqrt(n));
}

TEST(format_v1_opens)
{
	CHECK(rv_verify_file(SAMPLE, NULL, NULL) == RV_OK);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.flags = RV_OPEN_READONLY;
	rv_db *db = NULL;
	CHECK_OK(rv_db_open(&db, SAMPLE, &o), db);
	rv_stats s = RV_STATS_INIT;
	CHECK_OK(rv_db_stats(&s, db), db);
	CHECK(s.dim == 4 && s.metric == RV_METRIC_COSINE && s.m == 8 && s.ef_construction == 32);
	CHECK(s.count == 10 && s.slots == 12 && s.generation == 3 && s.graph_nodes == 10);
	for (int i = 0; i < 12; i++) {
		char id[8];
		snprintf(id, sizeof id, "p%d", i);
		float got[4], want[4];
		char *pay = NULL;
		rv_status st = rv_db_get(db, id, got, &pay);
		if (i == 4 || i == 7) {
			CHECK(st == RV_ENOTFOUND);
			continue;
		}
		CHECK_OK(st, db);
		expected(i, want);
		for (int d = 0; d < 4; d++)
			CHECK(fabsf(got[d] - want[d]) < 1e-6f);
		char w[64];
		snprintf(w, sizeof w, "{\"i\":%d,\"even\":%s}", i, i % 2 ? "false" : "true");
		CHECK(pay && strcmp(pay, w) == 0);
		rv_free(pay);
	}
	float q[4];
	expected(9, q);
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.k = 3;
	so.filter = "{\"even\":false}";
	rv_results *r;
	CHECK_OK(rv_db_search(&r, db, q, &so), db);
	CHECK(rv_results_count(r) == 3);
	CHECK(strcmp(rv_results_hits(r)[0].id, "p9") == 0 && rv_results_hits(r)[0].score < 1e-6);
	rv_results_free(r);
	rv_db_close(db);
}
