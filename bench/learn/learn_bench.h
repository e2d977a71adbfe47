/*
 * learn_bench.h - what the files of the learning benchmark share.
 *
 * learn_data.c   the three data sets and their side information
 * learn_sim.c    hidden relevance, the exact truth, the simulated users,
 *                NDCG@10 / recall@10
 * learn_bench.c  the experiments, timing and the report
 *
 * Rows of a data set are ruvector ids: base row r is stored under the id
 * "r" (decimal), so a hit's id gives its row back without a lookup table.
 * Every vector is unit length and every collection uses the cosine metric:
 * the learners' temperature is set for unit vectors (docs/LEARNING-CORE.md).
 */
#ifndef LEARN_BENCH_H
#define LEARN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_K 10            /* results shown, and the @10 of the metrics */
#define LB_MAX_CLASSES 16
#define LB_MAX_EVENTS 32   /* events one impression can produce */

/* ---- The simulated users (fixed before any result was seen; see
 * docs/LEARNING.md, "Simulation"). ------------------------------------ */
#define LB_EXAMINE_POWER 0.7   /* P(examine rank i, 0-based) = 1/(i+1)^0.7 */
#define LB_NOISE 0.10          /* share of examined items judged at random */
#define LB_NOISE_CLICK 0.5     /* ... which are then clicked with this probability */
#define LB_CONVERSION 0.2      /* P(conversion | click on a relevant item) */
#define LB_SKIP_RATING 0.25    /* P(negative rating | examined, not clicked) */
#define LB_SKIP_REWARD (-0.2f) /* ... and its reward */
#define LB_GOOD_SHARE 0.2      /* quality variant: share of good items */
#define LB_NEIGHBOUR_CLASSES 3 /* topic variant: m(c) is one of c's 3 nearest classes */

/* splitmix64: small, seedable, the same stream on every platform. */
typedef struct lb_rng {
	uint64_t s;
} lb_rng;

uint64_t lb_rng_next(lb_rng *r);
double lb_rng_unif(lb_rng *r);            /* [0, 1) */
uint32_t lb_rng_below(lb_rng *r, uint32_t n); /* [0, n), n > 0 */
void lb_shuffle(uint32_t *a, size_t n, lb_rng *r);

typedef enum lb_variant {
	LB_TOPIC = 0,   /* (a) users of class c want the near items of class m(c) */
	LB_QUALITY = 1, /* (b) users want the near items among the good ones */
	LB_DEPS = 2     /* (c) users want related packages: dependency graph or section */
} lb_variant;

typedef struct lb_set {
	const char *name;     /* "fashion", "fiori", "debian" */
	lb_variant variant;
	uint32_t dim;
	size_t n;             /* base rows */
	float *base;          /* n x dim, unit length */
	size_t nq;            /* the query pool: n_train train queries, then n_held held-out */
	size_t n_train, n_held;
	float *queries;       /* nq x dim, unit length */
	/* LB_TOPIC: class of every base row and query; */
	uint8_t *base_class, *query_class;
	int n_classes;
	int class_order[LB_MAX_CLASSES][LB_MAX_CLASSES]; /* other classes, nearest centroid first */
	/* LB_QUALITY: */
	uint8_t *good;        /* per base row */
	char **base_title, **query_title; /* for the example in the report (may be NULL) */
	/* LB_DEPS: section of every base row and query (UINT32_MAX: none), and
	 * per query the base rows related through the dependency graph,
	 * sorted: rel[rel_off[q] .. rel_off[q+1]). */
	uint32_t *base_section, *query_section;
	size_t *rel_off;
	uint32_t *rel;
	char **section_names;
	size_t n_sections;
	size_t dropped_queries; /* pool queries without 10 relevant items */
} lb_set;

typedef struct lb_data_opts {
	const char *data_dir;   /* the repository's data/ */
	size_t fashion_n;       /* base rows of Fashion-MNIST */
	size_t fashion_train, fashion_held;
	size_t fiori_train, fiori_held;
	size_t debian_train, debian_held;
	uint64_t seed;
} lb_data_opts;

/* Load one set ("fashion", "fiori", "debian"). Returns 0, or -1 after a
 * message on stderr. */
int lb_load_set(lb_set *s, const char *name, const lb_data_opts *o);
void lb_free_set(lb_set *s);

/* A workload: a set and, for LB_TOPIC, the class permutation m. */
typedef struct lb_workload {
	const lb_set *set;
	const char *label;     /* "A", "B", or the set's name */
	int perm[LB_MAX_CLASSES];
	const uint8_t *good;   /* LB_QUALITY: the good items, when not the set's */
	const uint8_t *qmask;  /* the pool queries this workload issues and is judged on (NULL: all) */
	uint32_t *truth;       /* per pool query LB_K base rows, best first */
} lb_workload;

/* A seeded permutation of the classes with m(c) != c, m(c) among c's
 * LB_NEIGHBOUR_CLASSES nearest classes and, when avoid is not NULL,
 * m(c) != avoid[c] (widening the neighbourhood only if no such permutation
 * exists). */
void lb_topic_perm(int *perm, const lb_set *s, uint64_t seed, const int *avoid);
/* Relevance of base row r to pool query q under w (0 or 1). */
int lb_relevant(const lb_workload *w, size_t q, uint32_t r);
/* Exact truth of every pool query (brute force over the base). Returns 0,
 * -1 on allocation failure. */
int lb_truth(lb_workload *w);
/* Metrics of one ranked list (rows[0..n)) against the truth of query q. */
double lb_ndcg(const lb_workload *w, size_t q, const uint32_t *rows, size_t n);
double lb_recall(const lb_workload *w, size_t q, const uint32_t *rows, size_t n);

typedef struct lb_event {
	uint32_t row;
	float reward;
	int kind; /* 0 click, 1 conversion, 2 skip rating, 3 random */
} lb_event;

/* What a simulated user does with the results rows[0..n) of query q:
 * fills ev, returns how many events. random_mode: one event on a uniformly
 * drawn shown item with a reward uniform in [-1, 1]. */
size_t lb_user(lb_event *ev, const lb_workload *w, size_t q, const uint32_t *rows, size_t n, bool random_mode,
	       lb_rng *rng);

double lb_dot(const float *a, const float *b, size_t d);
double lb_now(void);
/* CPU time of the calling thread, in seconds: what a timed loop costs on
 * a machine that other processes share (time spent descheduled is not
 * counted). */
double lb_cpu_now(void);

#endif /* LEARN_BENCH_H */
