/*
 * harness.h - the tests' small harness: named cases, CHECK macros, a
 * single-case runner, and helpers shared by tests (temporary paths, seeded
 * data, brute-force ground truth, a failing allocator).
 *
 *   TEST(recall) { CHECK(x > 0.95); }
 *   ./test_hnsw            runs every case
 *   ./test_hnsw recall     runs one
 * Case names starting with slow_ are labelled "slow" in CTest.
 */
#ifndef RV_TEST_HARNESS_H
#define RV_TEST_HARNESS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruvector.h"

typedef void (*rv_test_fn)(void);
void rv_test_register(const char *name, rv_test_fn fn);
extern int rv_test_failures;

#define TEST(name)                                                                   \
	static void test_##name(void);                                               \
	__attribute__((constructor)) static void reg_##name(void)                    \
	{                                                                            \
		rv_test_register(#name, test_##name);                                \
	}                                                                            \
	static void test_##name(void)

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			rv_test_failures++;                                          \
			return;                                                      \
		}                                                                    \
	} while (0)

#define CHECK_MSG(cond, ...)                                                         \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                \
			fputc('\n', stderr);                                         \
			rv_test_failures++;                                          \
			return;                                                      \
		}                                                                    \
	} while (0)

/* Status check that prints the handle's message. */
#define CHECK_OK(st, db)                                                             \
	do {                                                                         \
		rv_status st_ = (st);                                                \
		if (st_ != RV_OK) {                                                  \
			fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #st, \
				rv_status_str(st_), (db) ? rv_errmsg(db) : "");      \
			rv_test_failures++;                                          \
			return;                                                      \
		}                                                                    \
	} while (0)

/* A fresh path under the build's temporary directory, removed first. */
const char *rv_test_path(const char *name);

/* Deterministic data. */
float *rv_test_random_vectors(size_t n, size_t dim, uint64_t seed); /* uniform [-1,1) */
/* Gaussian clusters: more realistic neighbourhoods than uniform noise. */
float *rv_test_clustered_vectors(size_t n, size_t dim, size_t clusters, uint64_t seed);

/* Exact k nearest (indices into base, nearest first) of each query, L2 or
 * by -dot (ip), by brute force. Returns n_queries*k ints. accept may be
 * NULL. */
int *rv_test_ground_truth(const float *base, size_t n, const float *queries, size_t nq,
			  size_t dim, size_t k, rv_metric metric);

/* Real data sets, read from RV_DATA_DIR (scripts/data.sh). NULL when the
 * file is missing: the test then fails, saying how to get it. */
float *rv_test_load_fvecs(const char *file, size_t *n, size_t *dim);

/* An allocator that fails the Nth allocation (1-based; 0 = never) and
 * counts live blocks, for fault injection. */
typedef struct rv_test_alloc {
	rv_allocator hooks;
	long fail_at;   /* the Nth allocation from now fails */
	long count;     /* allocations seen */
	long live;      /* blocks currently allocated */
} rv_test_alloc;
void rv_test_alloc_init(rv_test_alloc *t);

#endif
