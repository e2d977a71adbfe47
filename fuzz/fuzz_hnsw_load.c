/*
 * fuzz_hnsw_load.c - arbitrary bytes as a saved HNSW graph (rv_hnsw_load)
 * over a fixed table of 64 slots of 4-d vectors, the last one empty.
 *
 * Whatever loads must be a sound graph: it passes the internal checker,
 * answers searches, takes an insert and a delete, and saves to bytes that
 * load again. Anything else aborts, so the fuzzer reports it.
 *
 * The corpus in fuzz/corpus/hnsw_load/ holds small graphs saved with these
 * parameters (dim 4, l2, m 4, ef_construction 16, seed 1) over this table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/hnsw.h"
#include "index/hnsw_int.h"

#define SLOTS 64
#define DIM 4

static void fail(const char *what, const rv_err *e)
{
	fprintf(stderr, "fuzz_hnsw_load: %s: %s\n", what, e->msg);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static float store[SLOTS][DIM];
	const float *ptr[SLOTS];
	for (int i = 0; i < SLOTS; i++) {
		for (int d = 0; d < DIM; d++)
			store[i][d] = (float)((i * 7 + d * 13) % 17) - 8.0f;
		ptr[i] = i == SLOTS - 1 ? NULL : store[i];
	}
	rv_vecs vecs = { ptr, SLOTS, DIM };
	rv_hnsw_params p = { DIM, RV_METRIC_L2, 4, 16, 1 };
	rv_hnsw *h = NULL, *again = NULL;
	rv_err e;
	rv_buf b;
	rv_buf_init(&b, NULL);

	rv_status st = rv_hnsw_load(&h, &p, &vecs, data, size, NULL, &e);
	if (st != RV_OK) {
		if (st != RV_ECORRUPT && st != RV_EVERSION)
			fail("unexpected status", &e);
		if (h)
			fail("handle returned on failure", &e);
		return 0;
	}
	if (rv_hnsw_verify(h, &e) != RV_OK)
		fail("loaded graph fails the checker", &e);

	rv_hnsw_hit hits[8];
	size_t n;
	const float q[DIM] = { 0.5f, -1.0f, 2.0f, 0.0f };
	if (rv_hnsw_search(hits, 8, &n, h, q, 8, 16, NULL, NULL, &e) != RV_OK)
		fail("search", &e);
	if (n > rv_hnsw_count(h) || (rv_hnsw_count(h) && n == 0))
		fail("search hit count", &e);
	for (size_t i = 0; i < n; i++)
		if (!rv_hnsw_contains(h, hits[i].slot) || (i && hits[i].dist < hits[i - 1].dist))
			fail("search result", &e);

	if (rv_hnsw_save(h, &b, &e) != RV_OK)
		fail("save", &e);
	if (rv_hnsw_load(&again, &p, &vecs, b.data, b.len, NULL, &e) != RV_OK)
		fail("reload of a saved graph", &e);

	/* The graph stays usable through an insert and a delete. */
	for (uint32_t s = 0; s < SLOTS - 1; s++) {
		if (!rv_hnsw_contains(h, s)) {
			if (rv_hnsw_insert(h, s, &e) != RV_OK)
				fail("insert", &e);
			break;
		}
	}
	if (n && rv_hnsw_delete(h, hits[0].slot, &e) != RV_OK)
		fail("delete", &e);
	if (rv_hnsw_verify(h, &e) != RV_OK)
		fail("graph after insert and delete", &e);

	rv_buf_free(&b);
	rv_hnsw_free(again);
	rv_hnsw_free(h);
	return 0;
}
