/*
 * test_hnsw.c - the HNSW index: recall against brute force for the three
 * metrics, threaded build (recall, and every node reachable), filtered
 * search, deletes with repair, save and load (round trip and corrupt
 * input), allocation failures, tiny graphs and concurrent searches; the
 * SQ8 traversal with exact re-rank (recall against float traversal for the
 * three metrics, inserts and deletes after enabling, concurrent searches,
 * allocation failures while enabling, bad options).
 *
 * The graph's internal checkers (rv_hnsw_verify, rv_hnsw_verify_reach) and
 * its entry point come from hnsw_int.h; everything else goes through
 * hnsw.h.
 */
#include "harness.h"

#include <stdatomic.h>

#include "index/hnsw.h"
#include "index/hnsw_int.h"
#include "util/util.h"

/* ---- fixtures --------------------------------------------------------- */

typedef struct table {
	float *data;   /* n + nq vectors: base then queries */
	size_t n, nq, dim;
	const float **ptr;
	rv_vecs vecs;
} table;

static void table_init_k(table *t, size_t n, size_t nq, size_t dim, size_t clusters, rv_metric metric,
			 uint64_t seed)
{
	t->n = n;
	t->nq = nq;
	t->dim = dim;
	/* One draw for base and queries, so both come from the same clusters. */
	t->data = rv_test_clustered_vectors(n + nq, dim, clusters, seed);
	if (metric == RV_METRIC_COSINE) {
		for (size_t i = 0; i < n + nq; i++) {
			float *v = t->data + i * dim, s = 0;
			for (size_t d = 0; d < dim; d++)
				s += v[d] * v[d];
			s = 1.0f / sqrtf(s);
			for (size_t d = 0; d < dim; d++)
				v[d] *= s;
		}
	}
	t->ptr = malloc(n * sizeof *t->ptr);
	for (size_t i = 0; i < n; i++)
		t->ptr[i] = t->data + i * dim;
	t->vecs = (rv_vecs){ t->ptr, (uint32_t)n, (uint32_t)dim };
}

/* Small clusters: easy neighbourhoods, for tests about other things. */
static void table_init(table *t, size_t n, size_t nq, size_t dim, rv_metric metric, uint64_t seed)
{
	table_init_k(t, n, nq, dim, 40, metric, seed);
}

static void table_free(table *t)
{
	free(t->data);
	free(t->ptr);
}

static const float *query(const table *t, size_t q) { return t->data + (t->n + q) * t->dim; }

static rv_hnsw_params params(const table *t, rv_metric metric, uint32_t m, uint32_t efc)
{
	return (rv_hnsw_params){ (uint32_t)t->dim, metric, m, efc, 7 };
}

static uint32_t *iota(size_t n)
{
	uint32_t *s = malloc(n * sizeof *s);
	for (size_t i = 0; i < n; i++)
		s[i] = (uint32_t)i;
	return s;
}

/* Insert slots [0, n) (those with a vector). */
static rv_status build(rv_hnsw **out, const table *t, rv_metric metric, uint32_t m, uint32_t efc,
		       unsigned threads)
{
	rv_hnsw_params p = params(t, metric, m, efc);
	rv_err e;
	rv_status st = rv_hnsw_new(out, &p, &t->vecs, NULL, &e);
	if (st != RV_OK)
		return st;
	uint32_t *slots = malloc(t->n * sizeof *slots);
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->ptr[i])
			slots[n++] = (uint32_t)i;
	st = rv_hnsw_insert_batch(*out, slots, n, threads, NULL, NULL, &e);
	if (st != RV_OK)
		fprintf(stderr, "build: %s\n", e.msg);
	free(slots);
	return st;
}

/* Exact top k over the slots with a vector for which keep(slot) holds;
 * returns slots (RV_HNSW_NONE pads when fewer exist). */
typedef bool (*keep_fn)(void *ctx, uint32_t slot);

static uint32_t *truth(const table *t, size_t k, rv_metric metric, keep_fn keep, void *ctx)
{
	float *sub = malloc(t->n * t->dim * sizeof *sub);
	uint32_t *map = malloc(t->n * sizeof *map);
	size_t m = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (!t->ptr[i] || (keep && !keep(ctx, (uint32_t)i)))
			continue;
		memcpy(sub + m * t->dim, t->ptr[i], t->dim * sizeof *sub);
		map[m++] = (uint32_t)i;
	}
	int *gt = rv_test_ground_truth(sub, m, query(t, 0), t->nq, t->dim, k, metric);
	uint32_t *out = malloc(t->nq * k * sizeof *out);
	for (size_t i = 0; i < t->nq * k; i++)
		out[i] = gt[i] < 0 ? RV_HNSW_NONE : map[gt[i]];
	free(gt);
	free(map);
	free(sub);
	return out;
}

/* recall@k of the index against gt; -1 when a hit breaks the contract
 * (unsorted, rejected by accept, or deleted). */
static double recall(const rv_hnsw *h, const table *t, const uint32_t *gt, size_t k, size_t ef,
		     rv_accept_fn accept, void *ctx)
{
	rv_hnsw_hit *hits = malloc(k * sizeof *hits);
	size_t found = 0, total = 0;
	for (size_t q = 0; q < t->nq; q++) {
		size_t n = 0;
		rv_err e;
		if (rv_hnsw_search(hits, k, &n, h, query(t, q), k, ef, accept, ctx, &e) != RV_OK) {
			fprintf(stderr, "search: %s\n", e.msg);
			free(hits);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if ((i && hits[i].dist < hits[i - 1].dist) || !rv_hnsw_contains(h, hits[i].slot) ||
			    (accept && !accept(ctx, hits[i].slot))) {
				free(hits);
				return -1;
			}
			for (size_t j = 0; j < k; j++)
				found += hits[i].slot == gt[q * k + j];
		}
		for (size_t j = 0; j < k; j++)
			total += gt[q * k + j] != RV_HNSW_NONE;
	}
	free(hits);
	return total ? (double)found / (double)total : 1.0;
}

static bool verify_ok(const rv_hnsw *h)
{
	rv_err e;
	if (rv_hnsw_verify(h, &e) == RV_OK)
		return true;
	fprintf(stderr, "verify: %s\n", e.msg);
	return false;
}

static void recall_case(rv_metric metric)
{
	table t;
	/* Few, large clusters: at ef 100 a sound graph is just above 0.95,
	 * so a weakened one shows. */
	table_init_k(&t, 12000, 200, 64, 5, metric, 11);
	rv_hnsw *h = NULL;
	double t0 = rv_now();
	CHECK(build(&h, &t, metric, 16, 100, 1) == RV_OK);
	double t1 = rv_now();
	uint32_t *gt = truth(&t, 10, metric, NULL, NULL);
	double r = recall(h, &t, gt, 10, 100, NULL, NULL);
	fprintf(stderr, "   %s: build %.2f s, recall@10 %.4f (ef 100), levels %u\n",
		rv_metric_name(metric), t1 - t0, r, rv_hnsw_levels(h));
	CHECK(rv_hnsw_count(h) == t.n);
	CHECK(verify_ok(h));
	CHECK_MSG(r >= 0.95, "recall %.4f", r);
	free(gt);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- recall ----------------------------------------------------------- */

TEST(recall_l2) { recall_case(RV_METRIC_L2); }
TEST(recall_cosine) { recall_case(RV_METRIC_COSINE); }
TEST(recall_ip) { recall_case(RV_METRIC_IP); }

typedef struct progress_log {
	uint64_t calls, last, total;
	bool monotonic;
} progress_log;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_log *p = ctx;
	if (done < p->last || done > total)
		p->monotonic = false;
	p->calls++;
	p->last = done;
	p->total = total;
}

TEST(threads_match_serial)
{
	table t;
	table_init(&t, 12000, 200, 48, RV_METRIC_L2, 12);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 16, 100);
	rv_hnsw *serial = NULL, *par = NULL;
	rv_err e;
	uint32_t *slots = iota(t.n);
	CHECK(rv_hnsw_new(&serial, &p, &t.vecs, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_new(&par, &p, &t.vecs, NULL, &e) == RV_OK);
	progress_log pl = { 0, 0, 0, true };
	double t0 = rv_now();
	CHECK(rv_hnsw_insert_batch(serial, slots, t.n, 1, NULL, NULL, &e) == RV_OK);
	double t1 = rv_now();
	CHECK(rv_hnsw_insert_batch(par, slots, t.n, 2, on_progress, &pl, &e) == RV_OK);
	double t2 = rv_now();
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, NULL, NULL);
	double rs = recall(serial, &t, gt, 10, 64, NULL, NULL);
	double rp = recall(par, &t, gt, 10, 64, NULL, NULL);
	fprintf(stderr, "   serial %.2f s recall %.4f; 2 threads %.2f s recall %.4f\n", t1 - t0, rs,
		t2 - t1, rp);
	CHECK(verify_ok(par));
	CHECK(rv_hnsw_count(par) == t.n);
	for (size_t i = 0; i < t.n; i++)
		CHECK(rv_hnsw_contains(par, (uint32_t)i));
	CHECK_MSG(rs >= 0.95 && rp >= 0.95, "recall serial %.4f, threads %.4f", rs, rp);
	CHECK_MSG(fabs(rs - rp) <= 0.02, "recall serial %.4f, threads %.4f", rs, rp);
	/* Progress: a few reports on the way and the final one. */
	CHECK(pl.monotonic && pl.calls >= 2 && pl.last == t.n && pl.total == t.n);
	free(gt);
	free(slots);
	rv_hnsw_free(serial);
	rv_hnsw_free(par);
	table_free(&t);
}

/* ---- threaded build: every node stays reachable ------------------------ */

/* Nodes whose own vector does not bring them back among the 5 nearest at
 * ef 64 (a hit at distance 0, an exact duplicate, counts as found). */
static size_t self_misses(const rv_hnsw *h, const table *t)
{
	size_t missed = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (!rv_hnsw_contains(h, (uint32_t)i))
			continue; /* deleted */
		rv_hnsw_hit hits[5];
		size_t n = 0;
		rv_err e;
		bool found = false;
		if (rv_hnsw_search(hits, 5, &n, h, t->ptr[i], 5, 64, NULL, NULL, &e) == RV_OK)
			for (size_t j = 0; j < n && !found; j++)
				found = hits[j].slot == (uint32_t)i || hits[j].dist == 0;
		missed += !found;
	}
	return missed;
}

/* Two threads insert clustered points, half of them in exact-duplicate
 * pairs that the two threads take at the same time, as one large batch and
 * then batches of 100 (a collection's later upserts). A thread that lands
 * on a node still being linked, or on a new top level not yet linked, must
 * not leave a node that nothing links to: each one must be reachable from
 * the entry point and found by its own vector, in every build, as after a
 * serial build. Several builds, because the timing that exposes a race
 * differs every time. */
TEST(threads_every_node_reachable)
{
	const size_t n = 3000, first = 2000, rounds = 8;
	size_t cut = 0, missed = 0, cut_serial = 0, missed_serial = 0;
	uint32_t *slots = iota(n);
	for (size_t round = 0; round < rounds; round++) {
		table t;
		table_init_k(&t, n, 0, 16, 20, RV_METRIC_L2, 40 + round);
		/* Slot 2k + 1 repeats slot 2k in the first half. */
		for (size_t i = 1; i < n / 2; i += 2)
			memcpy(t.data + i * t.dim, t.data + (i - 1) * t.dim, t.dim * sizeof *t.data);
		for (unsigned threads = 1; threads <= 2; threads++) {
			rv_hnsw_params p = params(&t, RV_METRIC_L2, 12, 100);
			p.seed = 100 + round;
			rv_hnsw *h = NULL;
			rv_err e;
			CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
			for (size_t at = 0; at < n;) {
				size_t len = at == 0 ? first : 100;
				rv_status st = rv_hnsw_insert_batch(h, slots + at, len, threads, NULL, NULL, &e);
				CHECK_MSG(st == RV_OK, "%s", e.msg);
				at += len;
			}
			CHECK(rv_hnsw_count(h) == n && verify_ok(h));
			size_t miss = self_misses(h, &t);
			bool reach = rv_hnsw_verify_reach(h, &e) == RV_OK;
			if (!reach)
				fprintf(stderr, "   round %zu, %u thread(s): %s\n", round, threads, e.msg);
			if (threads == 1) {
				cut_serial += !reach;
				missed_serial += miss;
			} else {
				cut += !reach;
				missed += miss;
			}
			rv_hnsw_free(h);
		}
		table_free(&t);
	}
	free(slots);
	fprintf(stderr, "   %zu builds each: serial %zu cut off, %zu self misses; 2 threads %zu, %zu\n",
		rounds, cut_serial, missed_serial, cut, missed);
	CHECK_MSG(cut_serial == 0 && missed_serial == 0,
		  "serial: %zu builds with unreachable nodes, %zu self misses", cut_serial, missed_serial);
	CHECK_MSG(cut == 0 && missed == 0, "2 threads: %zu builds with unreachable nodes, %zu self misses",
		  cut, missed);
}

TEST(same_seed_same_graph)
{
	table t;
	table_init(&t, 2000, 0, 16, RV_METRIC_L2, 13);
	rv_hnsw *g[4] = { 0 };
	rv_buf b[4];
	rv_err e;
	/* Batch (serial), batch again, one by one, one by one with another seed. */
	CHECK(build(&g[0], &t, RV_METRIC_L2, 8, 50, 1) == RV_OK);
	CHECK(build(&g[1], &t, RV_METRIC_L2, 8, 50, 1) == RV_OK);
	for (int i = 2; i < 4; i++) {
		rv_hnsw_params p = params(&t, RV_METRIC_L2, 8, 50);
		p.seed += (uint64_t)(i - 2);
		CHECK(rv_hnsw_new(&g[i], &p, &t.vecs, NULL, &e) == RV_OK);
		for (uint32_t s = 0; s < t.n; s++)
			CHECK(rv_hnsw_insert(g[i], s, &e) == RV_OK);
	}
	for (int i = 0; i < 4; i++) {
		rv_buf_init(&b[i], NULL);
		CHECK(rv_hnsw_save(g[i], &b[i], &e) == RV_OK);
	}
	for (int i = 1; i < 3; i++)
		CHECK(b[i].len == b[0].len && memcmp(b[i].data, b[0].data, b[0].len) == 0);
	/* Another seed draws other levels: another graph. */
	CHECK(b[3].len != b[0].len || memcmp(b[3].data + 32, b[0].data + 32, b[0].len - 32) != 0);
	for (int i = 0; i < 4; i++) {
		rv_buf_free(&b[i]);
		rv_hnsw_free(g[i]);
	}
	table_free(&t);
}

/* ---- filtered search ---------------------------------------------------- */

typedef struct mask {
	const uint8_t *ok;
	atomic_long calls;
} mask;

static bool accept_mask(void *ctx, uint32_t slot)
{
	mask *m = ctx;
	atomic_fetch_add_explicit(&m->calls, 1, memory_order_relaxed);
	return m->ok[slot] != 0;
}

static bool keep_mask(void *ctx, uint32_t slot) { return ((mask *)ctx)->ok[slot] != 0; }

TEST(filter)
{
	table t;
	table_init(&t, 10000, 200, 32, RV_METRIC_L2, 14);
	rv_hnsw *h = NULL;
	CHECK(build(&h, &t, RV_METRIC_L2, 16, 100, 1) == RV_OK);
	uint8_t *ok = calloc(t.n, 1);
	rv_rng r;
	rv_rng_seed(&r, 99);
	size_t accepted = 0;
	for (size_t i = 0; i < t.n; i++)
		if (rv_rng_below(&r, 10) == 0) {
			ok[i] = 1;
			accepted++;
		}
	mask mk = { ok, 0 };
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, keep_mask, &mk);
	double rf = recall(h, &t, gt, 10, 64, accept_mask, &mk);
	fprintf(stderr, "   10%% filter (%zu accepted): recall@10 %.4f\n", accepted, rf);
	CHECK_MSG(rf >= 0.9, "filtered recall %.4f", rf); /* -1: a rejected hit came back */
	CHECK(atomic_load(&mk.calls) > 0);

	/* Enough accepted nodes: exactly k hits. */
	rv_hnsw_hit hits[10];
	size_t n = 0;
	rv_err e;
	for (size_t q = 0; q < 20; q++) {
		CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, q), 10, 16, accept_mask, &mk, &e) ==
		      RV_OK);
		CHECK(n == 10);
	}

	/* Five accepted nodes: the traversal runs out of candidates before
	 * the results fill, so it reaches all of them. */
	memset(ok, 0, t.n);
	uint32_t five[5] = { 3, 777, 4242, 8000, 9999 };
	for (int i = 0; i < 5; i++)
		ok[five[i]] = 1;
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 16, accept_mask, &mk, &e) == RV_OK);
	CHECK_MSG(n == 5, "%zu hits", n);
	for (size_t i = 0; i < n; i++)
		CHECK(ok[hits[i].slot]);

	/* Nothing accepted: no hit. */
	memset(ok, 0, t.n);
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 16, accept_mask, &mk, &e) == RV_OK);
	CHECK(n == 0);
	free(gt);
	free(ok);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- deletes ---------------------------------------------------------- */

static bool keep_present(void *ctx, uint32_t slot) { return rv_hnsw_contains(ctx, slot); }

/* Delete half of 10k clustered points, at random or oldest first (the
 * oldest are the hubs: they collected links while the graph was small),
 * and compare with a fresh build of the other half. */
static void delete_half_case(bool oldest_first)
{
	table t;
	table_init_k(&t, 10000, 200, 32, 4, RV_METRIC_L2, 15);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(build(&h, &t, RV_METRIC_L2, 16, 100, 1) == RV_OK);
	uint32_t *order = iota(t.n);
	rv_rng r;
	rv_rng_seed(&r, 5);
	for (size_t i = t.n - 1; i > 0 && !oldest_first; i--) {
		size_t j = rv_rng_below(&r, i + 1);
		uint32_t x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	double t0 = rv_now();
	for (size_t i = 0; i < t.n / 2; i++)
		CHECK(rv_hnsw_delete(h, order[i], &e) == RV_OK);
	double t1 = rv_now();
	CHECK(rv_hnsw_count(h) == t.n / 2);
	CHECK(!rv_hnsw_contains(h, order[0]) && rv_hnsw_contains(h, order[t.n - 1]));
	CHECK(rv_hnsw_delete(h, order[0], &e) == RV_ENOTFOUND);
	CHECK(verify_ok(h));

	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, keep_present, h);
	double rd = recall(h, &t, gt, 10, 64, NULL, NULL);

	/* A fresh build of the remaining half, for comparison. */
	for (size_t i = 0; i < t.n / 2; i++)
		t.ptr[order[i]] = NULL;
	rv_hnsw *fresh = NULL;
	CHECK(build(&fresh, &t, RV_METRIC_L2, 16, 100, 1) == RV_OK);
	double rf = recall(fresh, &t, gt, 10, 64, NULL, NULL);
	fprintf(stderr, "   %zu deletes in %.2f s; recall@10 after %.4f, fresh build %.4f\n", t.n / 2,
		t1 - t0, rd, rf);
	CHECK_MSG(rd >= 0.95, "recall after deletes %.4f", rd);
	CHECK_MSG(rd >= rf - 0.02, "recall after deletes %.4f, fresh %.4f", rd, rf);
	free(gt);
	free(order);
	rv_hnsw_free(fresh);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(delete_half) { delete_half_case(false); }
TEST(delete_oldest_half) { delete_half_case(true); }

TEST(delete_all_then_insert)
{
	table t;
	table_init(&t, 3000, 100, 16, RV_METRIC_L2, 16);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(build(&h, &t, RV_METRIC_L2, 4, 32, 1) == RV_OK);
	for (uint32_t s = 0; s < t.n; s++)
		CHECK(rv_hnsw_delete(h, (s * 7919u) % (uint32_t)t.n, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == 0 && rv_hnsw_levels(h) == 0);
	CHECK(verify_ok(h));
	rv_hnsw_hit hits[10];
	size_t n = 1;
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 32, NULL, NULL, &e) == RV_OK);
	CHECK(n == 0);
	uint32_t *slots = iota(t.n);
	CHECK(rv_hnsw_insert_batch(h, slots, t.n, 2, NULL, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == t.n && verify_ok(h));
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, NULL, NULL);
	double r = recall(h, &t, gt, 10, 64, NULL, NULL);
	CHECK_MSG(r >= 0.95, "recall %.4f", r);
	free(gt);
	free(slots);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(delete_entry_repeatedly)
{
	table t;
	table_init_k(&t, 3000, 100, 16, 4, RV_METRIC_L2, 17);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(build(&h, &t, RV_METRIC_L2, 6, 64, 1) == RV_OK);
	uint32_t levels0 = rv_hnsw_levels(h);
	for (int i = 0; i < 1000; i++) {
		uint32_t entry = h->entry;
		CHECK(rv_hnsw_delete(h, entry, &e) == RV_OK);
		CHECK(!rv_hnsw_contains(h, entry) && h->entry != entry);
		if (i % 100 == 0)
			CHECK(verify_ok(h));
	}
	/* The top levels emptied one by one. */
	CHECK(rv_hnsw_levels(h) < levels0);
	CHECK(verify_ok(h) && rv_hnsw_count(h) == t.n - 1000);
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, keep_present, h);
	double r = recall(h, &t, gt, 10, 64, NULL, NULL);
	fprintf(stderr, "   levels %u -> %u, recall@10 %.4f\n", levels0, rv_hnsw_levels(h), r);
	CHECK_MSG(r >= 0.95, "recall %.4f", r);
	free(gt);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- save and load ---------------------------------------------------- */

static bool same_results(const rv_hnsw *a, const rv_hnsw *b, const table *t, size_t nq)
{
	rv_hnsw_hit ha[10], hb[10];
	size_t na, nb;
	rv_err e;
	for (size_t q = 0; q < nq; q++) {
		if (rv_hnsw_search(ha, 10, &na, a, query(t, q % t->nq), 10, 40, NULL, NULL, &e) != RV_OK ||
		    rv_hnsw_search(hb, 10, &nb, b, query(t, q % t->nq), 10, 40, NULL, NULL, &e) != RV_OK)
			return false;
		if (na != nb)
			return false;
		for (size_t i = 0; i < na; i++)
			if (ha[i].slot != hb[i].slot || ha[i].dist != hb[i].dist)
				return false;
	}
	return true;
}

TEST(save_load_roundtrip)
{
	table t;
	table_init(&t, 5000, 100, 24, RV_METRIC_COSINE, 18);
	rv_hnsw *h = NULL, *l = NULL;
	rv_err e;
	CHECK(build(&h, &t, RV_METRIC_COSINE, 12, 80, 1) == RV_OK);
	/* Deletes leave stale edges behind in memory; save drops them. */
	for (uint32_t s = 0; s < t.n; s += 3)
		CHECK(rv_hnsw_delete(h, s, &e) == RV_OK);
	rv_buf b1, b2;
	rv_buf_init(&b1, NULL);
	rv_buf_init(&b2, NULL);
	rv_buf_u32(&b1, 0xabcdef); /* save appends */
	CHECK(rv_hnsw_save(h, &b1, &e) == RV_OK);
	CHECK(rv_get_u32(b1.data) == 0xabcdef && memcmp(b1.data + 4, "RVHN", 4) == 0);
	rv_hnsw_params p = params(&t, RV_METRIC_COSINE, 12, 80);
	double t0 = rv_now();
	CHECK_MSG(rv_hnsw_load(&l, &p, &t.vecs, b1.data + 4, b1.len - 4, NULL, &e) == RV_OK, "%s", e.msg);
	double t1 = rv_now();
	fprintf(stderr, "   %zu bytes for %llu nodes, loaded in %.1f ms\n", b1.len - 4,
		(unsigned long long)rv_hnsw_count(l), (t1 - t0) * 1e3);
	CHECK(rv_hnsw_count(l) == rv_hnsw_count(h) && rv_hnsw_levels(l) == rv_hnsw_levels(h));
	CHECK(verify_ok(l));
	for (uint32_t s = 0; s < t.n; s++)
		CHECK(rv_hnsw_contains(l, s) == rv_hnsw_contains(h, s));
	CHECK(same_results(h, l, &t, 100));
	CHECK(rv_hnsw_save(l, &b2, &e) == RV_OK);
	CHECK(b2.len == b1.len - 4 && memcmp(b2.data, b1.data + 4, b2.len) == 0);

	/* The loaded graph keeps working: inserts and deletes, and both
	 * indexes evolve the same way. */
	for (uint32_t s = 0; s < t.n; s += 3) {
		CHECK(rv_hnsw_insert(h, s, &e) == RV_OK);
		CHECK(rv_hnsw_insert(l, s, &e) == RV_OK);
	}
	for (uint32_t s = 1; s < t.n; s += 5) {
		CHECK(rv_hnsw_delete(h, s, &e) == RV_OK);
		CHECK(rv_hnsw_delete(l, s, &e) == RV_OK);
	}
	CHECK(verify_ok(l));
	CHECK(same_results(h, l, &t, 100));

	/* An empty graph round-trips too. */
	rv_hnsw *empty = NULL, *empty2 = NULL;
	rv_buf_free(&b2);
	rv_buf_init(&b2, NULL);
	CHECK(rv_hnsw_new(&empty, &p, &t.vecs, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_save(empty, &b2, &e) == RV_OK && b2.len == 48);
	CHECK(rv_hnsw_load(&empty2, &p, &t.vecs, b2.data, b2.len, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_count(empty2) == 0 && rv_hnsw_levels(empty2) == 0);
	CHECK(rv_hnsw_insert(empty2, 5, &e) == RV_OK && rv_hnsw_count(empty2) == 1);
	rv_hnsw_free(empty);
	rv_hnsw_free(empty2);
	rv_buf_free(&b1);
	rv_buf_free(&b2);
	rv_hnsw_free(h);
	rv_hnsw_free(l);
	table_free(&t);
}

/* A small saved graph over t, for the corruption tests. */
static void small_saved(table *t, rv_hnsw **h, rv_buf *b)
{
	table_init(t, 300, 10, 8, RV_METRIC_L2, 19);
	rv_err e;
	build(h, t, RV_METRIC_L2, 4, 32, 1);
	for (uint32_t s = 0; s < 300; s += 7)
		rv_hnsw_delete(*h, s, &e);
	rv_buf_init(b, NULL);
	rv_hnsw_save(*h, b, &e);
}

static rv_status try_load(const table *t, const uint8_t *d, size_t len, rv_err *e)
{
	rv_hnsw_params p = params(t, RV_METRIC_L2, 4, 32);
	rv_hnsw *l = NULL;
	rv_status st = rv_hnsw_load(&l, &p, &t->vecs, d, len, NULL, e);
	if (st == RV_OK) {
		/* Whatever loads must be a usable graph. */
		rv_hnsw_hit hits[5];
		size_t n;
		rv_err e2;
		if (rv_hnsw_verify(l, &e2) != RV_OK ||
		    rv_hnsw_search(hits, 5, &n, l, query(t, 0), 5, 10, NULL, NULL, &e2) != RV_OK)
			st = RV_ERROR;
	}
	rv_hnsw_free(l);
	return st;
}

TEST(load_corrupt)
{
	table t;
	rv_hnsw *h = NULL;
	rv_buf b;
	small_saved(&t, &h, &b);
	rv_err e;
	CHECK(b.len > 1000);
	CHECK(try_load(&t, b.data, b.len, &e) == RV_OK);

	/* Every truncation. */
	for (size_t len = 0; len < b.len; len++) {
		rv_status st = try_load(&t, b.data, len, &e);
		CHECK_MSG(st == RV_ECORRUPT, "length %zu: %s", len, rv_status_str(st));
	}
	/* A flip of every bit of the header and of many body bytes: either a
	 * clean refusal or a graph that checks out. */
	uint8_t *c = malloc(b.len);
	size_t refused = 0;
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			if (i >= 48 && bit != (int)(i % 8) && bit != 7)
				continue;
			memcpy(c, b.data, b.len);
			c[i] ^= (uint8_t)(1u << bit);
			rv_status st = try_load(&t, c, b.len, &e);
			CHECK_MSG(st == RV_OK || st == RV_ECORRUPT || (st == RV_EVERSION && i >= 4 && i < 8),
				  "flip byte %zu bit %d: %s", i, bit, rv_status_str(st));
			refused += st != RV_OK;
		}
	}
	CHECK(refused > b.len);
	/* Garbage, and garbage after a valid header. */
	rv_rng r;
	rv_rng_seed(&r, 3);
	for (int i = 0; i < 300; i++) {
		size_t len = rv_rng_below(&r, b.len + 100);
		uint8_t *g = malloc(len + 1);
		for (size_t j = 0; j < len; j++)
			g[j] = (uint8_t)rv_rng_next(&r);
		if (i % 2 && len > 48)
			memcpy(g, b.data, 48);
		rv_status st = try_load(&t, g, len, &e);
		CHECK_MSG(st == RV_ECORRUPT, "garbage %d: %s", i, rv_status_str(st));
		free(g);
	}
	free(c);
	rv_buf_free(&b);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(load_rejects_mismatch)
{
	table t;
	rv_hnsw *h = NULL, *l = NULL;
	rv_buf b;
	small_saved(&t, &h, &b);
	rv_err e;
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 4, 32);
	struct {
		const char *field;
		rv_hnsw_params p;
	} cases[] = {
		{ "metric", { p.dim, RV_METRIC_IP, 4, 32, 7 } },
		{ "m", { p.dim, RV_METRIC_L2, 5, 32, 7 } },
		{ "ef_construction", { p.dim, RV_METRIC_L2, 4, 33, 7 } },
		{ "seed", { p.dim, RV_METRIC_L2, 4, 32, 8 } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK(rv_hnsw_load(&l, &cases[i].p, &t.vecs, b.data, b.len, NULL, &e) == RV_ECORRUPT);
		CHECK_MSG(strstr(e.msg, cases[i].field) != NULL, "%s", e.msg);
		CHECK(l == NULL);
	}
	/* Other dimension: the header's dim is checked (a table of that
	 * dimension, so the parameters themselves are valid). */
	rv_vecs v9 = t.vecs;
	v9.dim = 9;
	rv_hnsw_params p9 = p;
	p9.dim = 9;
	CHECK(rv_hnsw_load(&l, &p9, &v9, b.data, b.len, NULL, &e) == RV_ECORRUPT);
	CHECK_MSG(strstr(e.msg, "dim") != NULL, "%s", e.msg);

	/* Fewer vector slots than the graph uses. */
	rv_vecs shortv = t.vecs;
	shortv.n = 100;
	CHECK(rv_hnsw_load(&l, &p, &shortv, b.data, b.len, NULL, &e) == RV_ECORRUPT);
	/* A node whose vector is gone. */
	uint32_t victim = 1;
	const float *saved = t.ptr[victim];
	t.ptr[victim] = NULL;
	CHECK(rv_hnsw_load(&l, &p, &t.vecs, b.data, b.len, NULL, &e) == RV_ECORRUPT);
	CHECK_MSG(strstr(e.msg, "no vector") != NULL, "%s", e.msg);
	t.ptr[victim] = saved;

	/* Hand-made graphs of two level-0 nodes, slots 0 and 2 (bound 3),
	 * each with one thing wrong. */
	struct {
		const char *what;   /* expected in the message */
		uint32_t entry;
		uint32_t slot[2];
		uint16_t cnt[2];
		uint32_t nb[2][2];
		bool stray;
	} hand[] = {
		{ "itself", 0, { 0, 2 }, { 1, 1 }, { { 0 }, { 0 } }, false },
		{ "twice", 0, { 0, 2 }, { 2, 1 }, { { 2, 2 }, { 0 } }, false },
		{ "not a node", 0, { 0, 2 }, { 1, 1 }, { { 1 }, { 0 } }, false },
		{ "out of order", 0, { 2, 0 }, { 1, 1 }, { { 0 }, { 2 } }, false },
		{ "links", 0, { 0, 2 }, { 9, 1 }, { { 2 }, { 0 } }, false },
		{ "entry point", 1, { 0, 2 }, { 1, 1 }, { { 2 }, { 0 } }, false },
		{ "stray", 0, { 0, 2 }, { 1, 1 }, { { 2 }, { 0 } }, true },
		{ NULL, 0, { 0, 2 }, { 1, 1 }, { { 2 }, { 0 } }, false }, /* valid */
	};
	uint8_t hdr[48];
	memcpy(hdr, b.data, 48);
	rv_put_u32(hdr + 32, 3);
	rv_put_u32(hdr + 36, 2);
	rv_put_u32(hdr + 40, 1);
	for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++) {
		rv_buf m;
		rv_buf_init(&m, NULL);
		rv_put_u32(hdr + 44, hand[i].entry);
		rv_buf_put(&m, hdr, 48);
		for (int j = 0; j < 2; j++) {
			rv_buf_u32(&m, hand[i].slot[j]);
			rv_buf_u8(&m, 0);
			rv_buf_u16(&m, hand[i].cnt[j]);
			for (int k = 0; k < hand[i].cnt[j] && k < 2; k++)
				rv_buf_u32(&m, hand[i].nb[j][k]);
		}
		if (hand[i].stray)
			rv_buf_u8(&m, 0);
		rv_status st = rv_hnsw_load(&l, &p, &t.vecs, m.data, m.len, NULL, &e);
		rv_buf_free(&m);
		if (!hand[i].what) {
			CHECK_MSG(st == RV_OK, "%s", e.msg);
			CHECK(rv_hnsw_count(l) == 2 && rv_hnsw_contains(l, 2) && !rv_hnsw_contains(l, 1));
			CHECK(verify_ok(l));
			rv_hnsw_free(l);
			continue;
		}
		CHECK_MSG(st == RV_ECORRUPT && l == NULL, "%s: %s", hand[i].what, rv_status_str(st));
		CHECK_MSG(strstr(e.msg, hand[i].what) != NULL, "want \"%s\" in: %s", hand[i].what, e.msg);
	}
	/* A newer version is not corruption. */
	rv_buf m;
	rv_buf_init(&m, NULL);
	rv_buf_put(&m, b.data, b.len);
	rv_put_u32(m.data + 4, 2);
	CHECK(rv_hnsw_load(&l, &p, &t.vecs, m.data, m.len, NULL, &e) == RV_EVERSION);
	rv_buf_free(&m);
	rv_buf_free(&b);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- allocation failures ---------------------------------------------- */

TEST(alloc_fail_insert)
{
	table t;
	table_init(&t, 400, 20, 8, RV_METRIC_L2, 20);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 4, 32);
	uint32_t *gt_slots = NULL;
	int failures = 0;
	for (long fail = 1;; fail++) {
		rv_test_alloc ta;
		rv_test_alloc_init(&ta);
		rv_hnsw *h = NULL;
		rv_err e;
		ta.fail_at = fail;
		rv_status st = rv_hnsw_new(&h, &p, &t.vecs, &ta.hooks, &e);
		bool failed = st == RV_ENOMEM;
		if (failed) {
			CHECK(h == NULL && ta.live == 0);
			failures++;
			continue;
		}
		CHECK(st == RV_OK);
		/* One at a time: the insert that fails leaves the graph as it
		 * was; the others then go in. */
		for (uint32_t s = 0; s < 300; s++) {
			uint64_t before = rv_hnsw_count(h);
			st = rv_hnsw_insert(h, s, &e);
			if (st == RV_ENOMEM) {
				failed = true;
				CHECK(rv_hnsw_count(h) == before && !rv_hnsw_contains(h, s));
				CHECK(verify_ok(h));
				st = rv_hnsw_insert(h, s, &e);
			}
			CHECK_MSG(st == RV_OK, "fail at %ld, slot %u: %s", fail, s, e.msg);
		}
		/* Then a batch. */
		uint32_t batch[100];
		for (uint32_t i = 0; i < 100; i++)
			batch[i] = 300 + i;
		ta.fail_at = fail > 30 ? 0 : fail;
		st = rv_hnsw_insert_batch(h, batch, 100, 1, NULL, NULL, &e);
		if (st == RV_ENOMEM) {
			failed = true;
			for (uint32_t i = 0; i < 100; i++)
				CHECK(!rv_hnsw_contains(h, batch[i]));
			CHECK(rv_hnsw_count(h) == 300 && verify_ok(h));
			st = rv_hnsw_insert_batch(h, batch, 100, 1, NULL, NULL, &e);
		}
		CHECK(st == RV_OK && rv_hnsw_count(h) == 400 && verify_ok(h));
		if (!gt_slots)
			gt_slots = truth(&t, 5, RV_METRIC_L2, NULL, NULL);
		double r = recall(h, &t, gt_slots, 5, 32, NULL, NULL);
		CHECK_MSG(r >= 0.9, "recall %.3f after failure at %ld", r, fail);
		rv_hnsw_free(h);
		CHECK_MSG(ta.live == 0, "%ld blocks leaked (fail at %ld)", ta.live, fail);
		if (failed)
			failures++;
		else
			break;
	}
	fprintf(stderr, "   %d injected failures\n", failures);
	CHECK(failures > 10);
	free(gt_slots);
	table_free(&t);
}

TEST(alloc_fail_load_and_delete)
{
	table t;
	rv_hnsw *h = NULL;
	rv_buf b;
	small_saved(&t, &h, &b);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 4, 32);
	int failures = 0;
	for (long fail = 1;; fail++) {
		rv_test_alloc ta;
		rv_test_alloc_init(&ta);
		rv_hnsw *l = NULL;
		rv_err e;
		ta.fail_at = fail;
		rv_status st = rv_hnsw_load(&l, &p, &t.vecs, b.data, b.len, &ta.hooks, &e);
		if (st == RV_ENOMEM) {
			CHECK(l == NULL);
			CHECK_MSG(ta.live == 0, "%ld blocks leaked (fail at %ld)", ta.live, fail);
			failures++;
			continue;
		}
		CHECK(st == RV_OK);
		/* A loaded index has no scratch yet: deletes and searches
		 * allocate one, and fail cleanly. */
		ta.fail_at = 1;
		CHECK(rv_hnsw_delete(l, 1, &e) == RV_ENOMEM && rv_hnsw_contains(l, 1));
		rv_hnsw_hit hits[5];
		size_t n;
		ta.fail_at = 1;
		CHECK(rv_hnsw_search(hits, 5, &n, l, query(&t, 0), 5, 10, NULL, NULL, &e) == RV_ENOMEM);
		CHECK(rv_hnsw_delete(l, 1, &e) == RV_OK && !rv_hnsw_contains(l, 1));
		CHECK(rv_hnsw_search(hits, 5, &n, l, query(&t, 0), 5, 10, NULL, NULL, &e) == RV_OK && n == 5);
		rv_hnsw_free(l);
		CHECK_MSG(ta.live == 0, "%ld blocks leaked", ta.live);
		break;
	}
	fprintf(stderr, "   %d injected failures\n", failures);
	CHECK(failures >= 5);
	rv_buf_free(&b);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- small graphs and arguments --------------------------------------- */

TEST(tiny_graphs)
{
	table t;
	table_init(&t, 3, 1, 4, RV_METRIC_L2, 21);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 2, 1);
	rv_hnsw *h = NULL;
	rv_err e;
	rv_hnsw_hit hits[10];
	size_t n = 99;
	CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == 0 && rv_hnsw_levels(h) == 0 && !rv_hnsw_contains(h, 0));
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 10, NULL, NULL, &e) == RV_OK && n == 0);

	CHECK(rv_hnsw_insert(h, 1, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == 1 && rv_hnsw_levels(h) >= 1);
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 1, NULL, NULL, &e) == RV_OK && n == 1);
	CHECK(hits[0].slot == 1 && hits[0].dist == rv_hnsw_distance(h, query(&t, 0), 1));

	CHECK(rv_hnsw_insert(h, 0, &e) == RV_OK);
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 1, NULL, NULL, &e) == RV_OK && n == 2);
	CHECK(hits[0].dist <= hits[1].dist && hits[0].slot != hits[1].slot);
	/* k = 1 with ef = 1 still finds the nearer of two. */
	uint32_t nearer = hits[0].slot;
	CHECK(rv_hnsw_search(hits, 1, &n, h, query(&t, 0), 1, 1, NULL, NULL, &e) == RV_OK && n == 1);
	CHECK(hits[0].slot == nearer);
	CHECK(verify_ok(h));

	CHECK(rv_hnsw_delete(h, 1, &e) == RV_OK);
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 10, NULL, NULL, &e) == RV_OK && n == 1);
	CHECK(hits[0].slot == 0);
	CHECK(rv_hnsw_delete(h, 0, &e) == RV_OK && rv_hnsw_count(h) == 0 && rv_hnsw_levels(h) == 0);
	CHECK(rv_hnsw_search(hits, 10, &n, h, query(&t, 0), 10, 10, NULL, NULL, &e) == RV_OK && n == 0);
	CHECK(rv_hnsw_insert(h, 2, &e) == RV_OK && rv_hnsw_count(h) == 1 && verify_ok(h));
	rv_hnsw_free(h);
	rv_hnsw_free(NULL);
	table_free(&t);
}

TEST(bad_arguments)
{
	table t;
	table_init(&t, 50, 1, 4, RV_METRIC_L2, 22);
	rv_hnsw *h = NULL;
	rv_err e;
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 4, 16);
	rv_hnsw_params bad[] = {
		{ 0, RV_METRIC_L2, 4, 16, 1 },  { 4, (rv_metric)7, 4, 16, 1 },
		{ 4, RV_METRIC_L2, 1, 16, 1 },  { 4, RV_METRIC_L2, 129, 16, 1 },
		{ 4, RV_METRIC_L2, 4, 0, 1 },   { 5, RV_METRIC_L2, 4, 16, 1 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(rv_hnsw_new(&h, &bad[i], &t.vecs, NULL, &e) == RV_EINVAL && h == NULL);
		CHECK(e.msg[0] != 0);
	}
	CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_insert(h, 50, &e) == RV_EINVAL);
	CHECK(strstr(e.msg, "50") != NULL);
	t.ptr[3] = NULL;
	CHECK(rv_hnsw_insert(h, 3, &e) == RV_EINVAL);
	CHECK(rv_hnsw_insert(h, 4, &e) == RV_OK);
	CHECK(rv_hnsw_insert(h, 4, &e) == RV_EINVAL);
	uint32_t dup[] = { 5, 6, 5 }, gone[] = { 7, 3 }, in[] = { 8, 4 };
	CHECK(rv_hnsw_insert_batch(h, dup, 3, 2, NULL, NULL, &e) == RV_EINVAL);
	CHECK(rv_hnsw_insert_batch(h, gone, 2, 1, NULL, NULL, &e) == RV_EINVAL);
	CHECK(rv_hnsw_insert_batch(h, in, 2, 1, NULL, NULL, &e) == RV_EINVAL);
	CHECK(rv_hnsw_count(h) == 1 && !rv_hnsw_contains(h, 5) && !rv_hnsw_contains(h, 7));
	CHECK(rv_hnsw_insert_batch(h, dup, 0, 2, NULL, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_delete(h, 9, &e) == RV_ENOTFOUND);
	CHECK(rv_hnsw_delete(h, 100000, &e) == RV_ENOTFOUND);
	rv_hnsw_hit hits[4];
	size_t n;
	CHECK(rv_hnsw_search(hits, 4, &n, h, query(&t, 0), 0, 10, NULL, NULL, &e) == RV_EINVAL);
	CHECK(rv_hnsw_search(hits, 4, &n, h, query(&t, 0), 5, 10, NULL, NULL, &e) == RV_EBUFS && n == 5);
	CHECK(verify_ok(h));
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(distance_forms)
{
	float a[4] = { 1, 2, 3, 4 }, b[4] = { 0.5f, -1, 2, 0 };
	const float *ptr[1] = { b };
	rv_vecs v = { ptr, 1, 4 };
	rv_metric ms[3] = { RV_METRIC_L2, RV_METRIC_COSINE, RV_METRIC_IP };
	float want[3] = { 0.25f + 9 + 1 + 16, 1 - 4.5f, -4.5f };
	for (int i = 0; i < 3; i++) {
		rv_hnsw_params p = { 4, ms[i], 4, 8, 1 };
		rv_hnsw *h = NULL;
		rv_err e;
		CHECK(rv_hnsw_new(&h, &p, &v, NULL, &e) == RV_OK);
		CHECK(fabsf(rv_hnsw_distance(h, a, 0) - want[i]) < 1e-5f);
		rv_hnsw_free(h);
	}
}

TEST(memory_grows)
{
	table t;
	table_init(&t, 2000, 0, 16, RV_METRIC_L2, 23);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 8, 32);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
	uint64_t m0 = rv_hnsw_memory(h);
	for (uint32_t s = 0; s < 1000; s++)
		CHECK(rv_hnsw_insert(h, s, &e) == RV_OK);
	uint64_t m1 = rv_hnsw_memory(h);
	/* At least the level-0 lists: (1 + 2m) u32 per node. */
	CHECK(m1 > m0 + 1000 * 17 * 4);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- concurrent searches ---------------------------------------------- */

typedef struct conc {
	const rv_hnsw *h;
	const table *t;
	const rv_hnsw_hit *want; /* nq * 10, serial results */
	const size_t *want_n;
	atomic_int mismatches;
	mask *mk;
} conc;

static void conc_worker(void *arg, unsigned th)
{
	conc *c = arg;
	rv_hnsw_hit hits[10];
	size_t n;
	rv_err e;
	for (size_t r = 0; r < 3; r++) {
		for (size_t i = 0; i < c->t->nq; i++) {
			size_t q = (i + th * 37) % c->t->nq;
			rv_accept_fn acc = q % 2 ? accept_mask : NULL;
			if (rv_hnsw_search(hits, 10, &n, c->h, query(c->t, q), 10, 50, acc, c->mk, &e) !=
				    RV_OK ||
			    n != c->want_n[q] || memcmp(hits, c->want + q * 10, n * sizeof *hits) != 0)
				atomic_fetch_add(&c->mismatches, 1);
		}
	}
}

/* Searches (half of them filtered) on 2, 3 and 4 threads give exactly the
 * serial results; false (after reporting) when any differs. */
static bool searches_match_serial(const rv_hnsw *h, const table *t)
{
	uint8_t *ok = calloc(t->n, 1);
	for (size_t i = 0; i < t->n; i += 3)
		ok[i] = 1;
	mask mk = { ok, 0 };
	rv_hnsw_hit *want = calloc(t->nq * 10, sizeof *want);
	size_t *want_n = calloc(t->nq, sizeof *want_n);
	rv_err e;
	bool good = true;
	for (size_t q = 0; q < t->nq && good; q++)
		good = rv_hnsw_search(want + q * 10, 10, &want_n[q], h, query(t, q), 10, 50,
				      q % 2 ? accept_mask : NULL, &mk, &e) == RV_OK;
	for (unsigned threads = 2; threads <= 4 && good; threads++) {
		conc c = { h, t, want, want_n, 0, &mk };
		rv_parallel(threads, conc_worker, &c);
		if (atomic_load(&c.mismatches) != 0) {
			fprintf(stderr, "%d searches differ with %u threads\n", atomic_load(&c.mismatches), threads);
			good = false;
		}
	}
	free(want);
	free(want_n);
	free(ok);
	return good;
}

TEST(concurrent_search)
{
	table t;
	table_init(&t, 8000, 100, 24, RV_METRIC_L2, 24);
	rv_hnsw *h = NULL;
	CHECK(build(&h, &t, RV_METRIC_L2, 12, 64, 2) == RV_OK);
	CHECK(searches_match_serial(h, &t));
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- searches while a batch links ------------------------------------- */

typedef struct linking {
	rv_hnsw *h;
	rv_hnsw_batch *b;
	const table *t;
	uint32_t first_new;    /* slots from here on are the batch's */
	atomic_int phase;      /* 0 before linking, 1 during, 2 after */
	atomic_int bad;        /* searches that failed a check */
	atomic_long during;    /* searches begun and ended while linking ran */
	atomic_long saw_new;   /* ... of which returned a node of the batch */
} linking;

static void linking_worker(void *arg, unsigned th)
{
	linking *c = arg;
	if (th == 0) {
		atomic_store(&c->phase, 1);
		rv_hnsw_batch_link(c->b, NULL, NULL);
		atomic_store(&c->phase, 2);
		return;
	}
	rv_hnsw_hit hits[10];
	for (size_t i = 0; atomic_load(&c->phase) < 2; i++) {
		size_t q = (i * 7 + th * 13) % c->t->nq;
		const float *qv = query(c->t, q);
		int began = atomic_load(&c->phase);
		size_t n = 0;
		rv_err e;
		rv_status st = rv_hnsw_search(hits, 10, &n, c->h, qv, 10, 40, NULL, NULL, &e);
		bool ok = st == RV_OK && n == 10, fresh = false;
		for (size_t j = 0; ok && j < n; j++) {
			uint32_t s = hits[j].slot;
			/* A node that exists, at its exact distance, in order, once. */
			ok = s < c->t->n && rv_hnsw_contains(c->h, s) &&
			     hits[j].dist == rv_hnsw_distance(c->h, qv, s) &&
			     (j == 0 || hits[j].dist >= hits[j - 1].dist);
			for (size_t i2 = 0; ok && i2 < j; i2++)
				ok = hits[i2].slot != s;
			fresh |= s >= c->first_new;
		}
		if (!ok) {
			if (atomic_fetch_add(&c->bad, 1) == 0)
				fprintf(stderr, "   search during linking: status %d, %zu hits\n", (int)st, n);
		}
		if (began == 1 && atomic_load(&c->phase) == 1) {
			atomic_fetch_add(&c->during, 1);
			if (fresh)
				atomic_fetch_add(&c->saw_new, 1);
		}
	}
}

/* Build slots [0, first) serially, then link [first, n) with `threads`,
 * optionally with three threads searching meanwhile (c filled in). */
static rv_status build_in_two(rv_hnsw **out, const table *t, uint32_t first, unsigned threads,
			      linking *c)
{
	rv_hnsw_params p = params(t, RV_METRIC_L2, 12, 64);
	rv_err e;
	rv_status st = rv_hnsw_new(out, &p, &t->vecs, NULL, &e);
	uint32_t *slots = iota(t->n);
	if (st == RV_OK)
		st = rv_hnsw_insert_batch(*out, slots, first, 1, NULL, NULL, &e);
	rv_hnsw_batch *b = NULL;
	if (st == RV_OK)
		st = rv_hnsw_batch_prepare(&b, *out, slots + first, t->n - first, threads, &e);
	if (st == RV_OK) {
		if (c) {
			c->h = *out;
			c->b = b;
			c->t = t;
			c->first_new = first;
			rv_parallel(4, linking_worker, c);
		} else {
			rv_hnsw_batch_link(b, NULL, NULL);
		}
	}
	rv_hnsw_batch_end(b);
	free(slots);
	return st;
}

/* Searches run while a large batch links: each gets its k hits, all live
 * nodes at their exact distances; they complete during the linking (no
 * lock keeps them waiting) and find new nodes as they are published; the
 * graph is then as good as one linked without readers. */
TEST(concurrent_search_while_linking)
{
	table t;
	table_init_k(&t, 6000, 200, 16, 200, RV_METRIC_L2, 31);
	linking c = { 0 };
	rv_hnsw *h = NULL, *ref = NULL;
	CHECK(build_in_two(&h, &t, 500, 2, &c) == RV_OK);
	long during = atomic_load(&c.during), fresh = atomic_load(&c.saw_new);
	printf("   %ld searches completed during linking, %ld of them found new nodes\n", during, fresh);
	CHECK(atomic_load(&c.bad) == 0);
	CHECK(during >= 10);
	CHECK(fresh >= 1);
	CHECK(rv_hnsw_count(h) == t.n);
	rv_err e;
	CHECK_MSG(rv_hnsw_verify(h, &e) == RV_OK, "%s", e.msg);

	CHECK(build_in_two(&ref, &t, 500, 2, NULL) == RV_OK);
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, NULL, NULL);
	/* ef = k, where recall is below 1 and a damaged graph shows. */
	double r = recall(h, &t, gt, 10, 10, NULL, NULL), r_ref = recall(ref, &t, gt, 10, 10, NULL, NULL);
	printf("   recall@10 at ef 10: %.4f with searches during linking, %.4f without\n", r, r_ref);
	CHECK(r >= 0 && r_ref >= 0.8);
	CHECK(fabs(r - r_ref) <= 0.02);
	free(gt);
	rv_hnsw_free(ref);
	rv_hnsw_free(h);
	table_free(&t);
}

/* A prepared batch that is ended without linking leaves the graph as it
 * was, and the same slots can be inserted afterwards. */
TEST(batch_prepare_then_end_undoes)
{
	table t;
	table_init(&t, 800, 20, 8, RV_METRIC_L2, 32);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 8, 32);
	rv_err e;
	rv_hnsw *h = NULL;
	CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
	uint32_t *slots = iota(t.n);
	CHECK(rv_hnsw_insert_batch(h, slots, 400, 1, NULL, NULL, &e) == RV_OK);
	uint64_t mem = rv_hnsw_memory(h);
	rv_hnsw_batch *b = NULL;
	CHECK(rv_hnsw_batch_prepare(&b, h, slots + 400, 400, 2, &e) == RV_OK);
	CHECK(rv_hnsw_memory(h) > mem);
	rv_hnsw_batch_end(b);
	CHECK(rv_hnsw_count(h) == 400);
	CHECK(!rv_hnsw_contains(h, 400));
	CHECK_MSG(rv_hnsw_verify(h, &e) == RV_OK, "%s", e.msg);
	CHECK(rv_hnsw_batch_prepare(&b, h, slots + 399, 2, 1, &e) == RV_EINVAL && b == NULL);
	CHECK(strstr(e.msg, "399") != NULL);
	CHECK(rv_hnsw_insert_batch(h, slots + 400, 400, 2, NULL, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == 800);
	CHECK_MSG(rv_hnsw_verify(h, &e) == RV_OK, "%s", e.msg);
	free(slots);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- orphans: nodes nothing links to get an in-link back ---------------- */

TEST(attach_orphans_makes_every_node_reachable)
{
	/* A sparse graph (m = 4) over 200 clusters, a third deleted: hundreds
	 * of nodes end up unreachable from the entry point over level 0. */
	table t;
	table_init_k(&t, 20000, 0, 64, 200, RV_METRIC_L2, 21);
	rv_hnsw *h = NULL;
	CHECK(build(&h, &t, RV_METRIC_L2, 4, 32, 1) == RV_OK);
	rv_err e;
	for (uint32_t s = 0; s < t.n; s += 3)
		CHECK(rv_hnsw_delete(h, s, &e) == RV_OK);
	CHECK(rv_hnsw_verify_reach(h, &e) != RV_OK);
	fprintf(stderr, "   before: %s\n", e.msg);
	size_t missed_before = self_misses(h, &t);
	uint64_t attached = 0;
	CHECK(rv_hnsw_attach_orphans(h, &attached, &e) == RV_OK);
	size_t missed_after = self_misses(h, &t);
	fprintf(stderr, "   attached %llu; nodes not finding themselves: %zu -> %zu\n",
		(unsigned long long)attached, missed_before, missed_after);
	CHECK(attached > 0);
	CHECK(verify_ok(h));
	CHECK_MSG(rv_hnsw_verify_reach(h, &e) == RV_OK, "%s", e.msg);
	CHECK(missed_after < missed_before);
	/* A second pass has nothing left to do. */
	CHECK(rv_hnsw_attach_orphans(h, &attached, &e) == RV_OK && attached == 0);
	rv_hnsw_free(h);
	table_free(&t);

	/* A sound graph (m = 16) is left exactly as it is. */
	table_init(&t, 3000, 0, 16, RV_METRIC_L2, 22);
	CHECK(build(&h, &t, RV_METRIC_L2, 16, 100, 1) == RV_OK);
	rv_buf a, b;
	rv_buf_init(&a, NULL);
	rv_buf_init(&b, NULL);
	CHECK(rv_hnsw_save(h, &a, &e) == RV_OK);
	CHECK(rv_hnsw_attach_orphans(h, &attached, &e) == RV_OK && attached == 0);
	CHECK(rv_hnsw_save(h, &b, &e) == RV_OK);
	CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	rv_buf_free(&a);
	rv_buf_free(&b);
	rv_hnsw_free(h);
	table_free(&t);
}

/* ---- SQ8 traversal with exact re-rank ------------------------------------ */

/* A quantizer trained on the table's base vectors. */
static rv_sq8 *train_sq8(const table *t)
{
	rv_sq8 *q = NULL;
	rv_err e;
	if (rv_sq8_train(&q, t->data, t->n, t->dim, NULL, &e) != RV_OK)
		fprintf(stderr, "sq8 train: %s\n", e.msg);
	return q;
}

static rv_status enable_sq8(rv_hnsw *h, const table *t)
{
	rv_sq8 *q = train_sq8(t);
	if (!q)
		return RV_ERROR;
	rv_err e;
	rv_status st = rv_hnsw_enable_sq8(h, q, &e);
	if (st != RV_OK)
		fprintf(stderr, "enable sq8: %s\n", e.msg);
	/* The index keeps its own copy. */
	rv_sq8_free(q);
	return st;
}

/* recall like recall(), with a traversal mode; -1 also when a hit's
 * distance is not the exact one (the re-rank must replace the codes'). */
static double recall_mode(const rv_hnsw *h, const table *t, const uint32_t *gt, size_t k, size_t ef,
			  rv_hnsw_traverse mode)
{
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	o.ef = ef;
	o.traverse = mode;
	rv_hnsw_hit *hits = malloc(k * sizeof *hits);
	size_t found = 0, total = 0;
	double bad = 0;
	for (size_t q = 0; q < t->nq && !bad; q++) {
		size_t n = 0;
		rv_err e;
		if (rv_hnsw_search_v2(hits, k, &n, h, query(t, q), k, &o, &e) != RV_OK) {
			fprintf(stderr, "search: %s\n", e.msg);
			bad = -1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			float exact = rv_hnsw_distance(h, query(t, q), hits[i].slot);
			if ((i && hits[i].dist < hits[i - 1].dist) || !rv_hnsw_contains(h, hits[i].slot) ||
			    hits[i].dist != exact) {
				bad = -1;
				break;
			}
			for (size_t j = 0; j < k; j++)
				found += hits[i].slot == gt[q * k + j];
		}
		for (size_t j = 0; j < k; j++)
			total += gt[q * k + j] != RV_HNSW_NONE;
	}
	free(hits);
	if (bad)
		return bad;
	return total ? (double)found / (double)total : 1.0;
}

/* Every node's code row is its vector's code under the index's quantizer
 * (SQ8 rows keep the norm only for L2: compare the bytes the row holds). */
static bool codes_match(const rv_hnsw *h)
{
	const rv_quantizer *q = rv_hnsw_quantizer(h);
	if (!q)
		return false;
	uint8_t *c = malloc(rv_quantizer_code_size(q)), *row = malloc(rv_quantizer_code_size(q));
	bool ok = true;
	for (uint32_t s = 0; s < h->cap && ok; s++)
		if (rv_hnsw_lv(h, s)) {
			rv_quantizer_encode(q, h->vecs->ptr[s], c);
			size_t n = rv_hnsw_code_of(h, s, row);
			ok = n == h->code_len && memcmp(c, row, n) == 0;
			/* The row itself holds SQ8 codes as levels: code + 128. */
			const uint8_t *raw = rv_hnsw_code(h, s);
			for (size_t d = 0; ok && d < n; d++)
				ok = raw[d] == (q->kind == RV_QUANT_SQ8 && d < h->p.dim ? c[d] ^ 0x80 : c[d]);
			if (!ok)
				fprintf(stderr, "code of slot %u differs\n", s);
		}
	free(c);
	free(row);
	return ok;
}

static void sq8_recall_case(rv_metric metric)
{
	table t;
	/* The data of recall_case: a weakened traversal shows at ef 100. */
	table_init_k(&t, 12000, 200, 64, 5, metric, 11);
	rv_hnsw *h = NULL;
	CHECK(build(&h, &t, metric, 16, 100, 2) == RV_OK);
	uint32_t *gt = truth(&t, 10, metric, NULL, NULL);
	double rf = recall_mode(h, &t, gt, 10, 100, RV_HNSW_TRAVERSE_FLOAT);
	CHECK(!rv_hnsw_sq8_enabled(h) && rv_hnsw_sq8_code_bytes(h) == 0);
	uint64_t mem = rv_hnsw_memory(h);
	CHECK(enable_sq8(h, &t) == RV_OK);
	CHECK(rv_hnsw_sq8_enabled(h) && codes_match(h));
	/* 64 dims: 64 int8 values, plus the norm for L2 only, after the
	 * 132-byte list of m = 16; padding the row of 200 (196) bytes to
	 * whole lines would waste 56 (60) bytes, so it stays as it is. */
	size_t row = metric == RV_METRIC_L2 ? 68 : 64;
	CHECK(rv_hnsw_sq8_code_bytes(h) == row && ((uintptr_t)h->l0 & 63) == 0);
	CHECK(rv_hnsw_memory(h) >= mem + t.n * row);
	double rs = recall_mode(h, &t, gt, 10, 100, RV_HNSW_TRAVERSE_SQ8);
	/* AUTO is SQ8 once enabled, and rv_hnsw_search is AUTO. */
	double ra = recall(h, &t, gt, 10, 100, NULL, NULL);
	double rf2 = recall_mode(h, &t, gt, 10, 100, RV_HNSW_TRAVERSE_FLOAT);
	fprintf(stderr, "   %s: recall@10 at ef 100: float %.4f, sq8 + re-rank %.4f\n",
		rv_metric_name(metric), rf, rs);
	CHECK_MSG(rs >= 0.95 && rs >= rf - 0.01, "sq8 recall %.4f, float %.4f", rs, rf);
	CHECK(ra == rs && rf2 == rf);
	/* Disabled: floats again, same results as before enabling. */
	rv_hnsw_disable_sq8(h);
	CHECK(!rv_hnsw_sq8_enabled(h) && recall(h, &t, gt, 10, 100, NULL, NULL) == rf);
	free(gt);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(sq8_recall_l2) { sq8_recall_case(RV_METRIC_L2); }
TEST(sq8_recall_cosine) { sq8_recall_case(RV_METRIC_COSINE); }
TEST(sq8_recall_ip) { sq8_recall_case(RV_METRIC_IP); }

TEST(sq8_insert_after_enable)
{
	table t;
	table_init(&t, 6000, 100, 32, RV_METRIC_L2, 31);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 12, 64);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(rv_hnsw_new(&h, &p, &t.vecs, NULL, &e) == RV_OK);
	/* Enabled on an empty graph: every node arrives later, serially, then
	 * in a threaded batch that also grows the code rows. */
	CHECK(enable_sq8(h, &t) == RV_OK);
	for (uint32_t s = 0; s < 200; s++)
		CHECK(rv_hnsw_insert(h, s, &e) == RV_OK);
	uint32_t *slots = iota(t.n);
	CHECK(rv_hnsw_insert_batch(h, slots + 200, t.n - 200, 2, NULL, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_count(h) == t.n && verify_ok(h) && codes_match(h));
	/* The rows grew with the codes in them: 25 list words (m = 12), 32
	 * levels and the norm. */
	CHECK(h->l0_stride == h->l0_list + 9 && ((uintptr_t)h->l0 & 63) == 0);
	uint32_t *gt = truth(&t, 10, RV_METRIC_L2, NULL, NULL);
	double rs = recall_mode(h, &t, gt, 10, 64, RV_HNSW_TRAVERSE_SQ8);
	double rf = recall_mode(h, &t, gt, 10, 64, RV_HNSW_TRAVERSE_FLOAT);
	fprintf(stderr, "   recall@10 at ef 64: float %.4f, sq8 %.4f\n", rf, rs);
	CHECK_MSG(rs >= 0.95 && rs >= rf - 0.01, "sq8 recall %.4f, float %.4f", rs, rf);
	free(gt);
	free(slots);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(sq8_delete)
{
	table t;
	table_init(&t, 5000, 100, 32, RV_METRIC_COSINE, 32);
	rv_hnsw *h = NULL;
	rv_err e;
	CHECK(build(&h, &t, RV_METRIC_COSINE, 12, 64, 1) == RV_OK);
	CHECK(enable_sq8(h, &t) == RV_OK);
	/* Delete every other slot; then re-insert a tenth of them, whose rows
	 * are rewritten (with the same vectors, the same codes). */
	for (uint32_t s = 0; s < t.n; s += 2)
		CHECK(rv_hnsw_delete(h, s, &e) == RV_OK);
	for (uint32_t s = 0; s < t.n; s += 20)
		CHECK(rv_hnsw_insert(h, s, &e) == RV_OK);
	CHECK(verify_ok(h) && codes_match(h));
	uint32_t *gt = truth(&t, 10, RV_METRIC_COSINE, keep_present, h);
	/* recall_mode fails any hit that is not in the graph. */
	double rs = recall_mode(h, &t, gt, 10, 64, RV_HNSW_TRAVERSE_SQ8);
	double rf = recall_mode(h, &t, gt, 10, 64, RV_HNSW_TRAVERSE_FLOAT);
	fprintf(stderr, "   after deletes, recall@10 at ef 64: float %.4f, sq8 %.4f\n", rf, rs);
	CHECK_MSG(rs >= 0.95 && rs >= rf - 0.01, "sq8 recall %.4f, float %.4f", rs, rf);
	free(gt);
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(sq8_concurrent_search)
{
	table t;
	table_init(&t, 6000, 100, 24, RV_METRIC_L2, 33);
	rv_hnsw *h = NULL;
	CHECK(build(&h, &t, RV_METRIC_L2, 12, 64, 2) == RV_OK);
	CHECK(enable_sq8(h, &t) == RV_OK);
	/* rv_hnsw_search is in AUTO mode, so these run on the codes. */
	CHECK(searches_match_serial(h, &t));
	rv_hnsw_free(h);
	table_free(&t);
}

TEST(sq8_alloc_fail_enable)
{
	table t;
	table_init(&t, 600, 20, 16, RV_METRIC_L2, 34);
	rv_hnsw_params p = params(&t, RV_METRIC_L2, 6, 32);
	rv_sq8 *q = train_sq8(&t);
	CHECK(q != NULL);
	int failures = 0;
	for (long fail = 1;; fail++) {
		rv_test_alloc ta;
		rv_test_alloc_init(&ta);
		rv_hnsw *h = NULL;
		rv_err e;
		rv_hnsw_hit before[5], after[5];
		size_t nb = 0, na = 0;
		CHECK(rv_hnsw_new(&h, &p, &t.vecs, &ta.hooks, &e) == RV_OK);
		uint32_t *slots = iota(500);
		CHECK(rv_hnsw_insert_batch(h, slots, 500, 1, NULL, NULL, &e) == RV_OK);
		free(slots);
		CHECK(rv_hnsw_search(before, 5, &nb, h, query(&t, 0), 5, 32, NULL, NULL, &e) == RV_OK);

		/* The Nth allocation from here fails (the countdown runs on
		 * through the calls): enabling, the first SQ8 search (its
		 * query object), inserts that grow the code rows. A failed
		 * call is retried once the countdown has fired. */
		ta.fail_at = fail;
		rv_status st = rv_hnsw_enable_sq8(h, q, &e);
		bool failed = st == RV_ENOMEM;
		if (failed) {
			/* Still in float mode, with the same answers. */
			CHECK(!rv_hnsw_sq8_enabled(h));
			CHECK(rv_hnsw_search(after, 5, &na, h, query(&t, 0), 5, 32, NULL, NULL, &e) == RV_OK);
			CHECK(na == nb && memcmp(after, before, nb * sizeof *after) == 0);
			st = rv_hnsw_enable_sq8(h, q, &e);
		}
		CHECK_MSG(st == RV_OK, "fail at %ld: %s", fail, e.msg);
		CHECK(rv_hnsw_sq8_enabled(h) && codes_match(h));
		st = rv_hnsw_search(after, 5, &na, h, query(&t, 0), 5, 32, NULL, NULL, &e);
		if (st == RV_ENOMEM) {
			failed = true;
			st = rv_hnsw_search(after, 5, &na, h, query(&t, 0), 5, 32, NULL, NULL, &e);
		}
		CHECK(st == RV_OK && na == 5);
		/* Inserts after enabling grow the rows past the first capacity. */
		for (uint32_t s = 500; s < 600; s++) {
			st = rv_hnsw_insert(h, s, &e);
			if (st == RV_ENOMEM) {
				failed = true;
				CHECK(!rv_hnsw_contains(h, s) && verify_ok(h));
				st = rv_hnsw_insert(h, s, &e);
			}
			CHECK(st == RV_OK);
		}
		CHECK(rv_hnsw_count(h) == 600 && codes_match(h));
		CHECK(rv_hnsw_search(after, 5, &na, h, query(&t, 0), 5, 32, NULL, NULL, &e) == RV_OK && na == 5);
		/* Dropping the codes lays the rows back out at the lists' width;
		 * without the memory for that the wide rows stay. Either way the
		 * graph answers as its float traversal did. */
		rv_hnsw_search_opts fo = RV_HNSW_SEARCH_OPTS_INIT;
		fo.ef = 32;
		fo.traverse = RV_HNSW_TRAVERSE_FLOAT;
		rv_hnsw_hit fl[5];
		size_t nf = 0;
		CHECK(rv_hnsw_search_v2(fl, 5, &nf, h, query(&t, 0), 5, &fo, &e) == RV_OK && nf == 5);
		size_t wide = h->l0_stride;
		rv_hnsw_disable_sq8(h);
		if (h->l0_stride == wide)
			failed = true;
		else
			CHECK(h->l0_stride == h->l0_list);
		CHECK(!rv_hnsw_sq8_enabled(h) && rv_hnsw_code_bytes(h) == 0 && verify_ok(h));
		CHECK(rv_hnsw_search(after, 5, &na, h, query(&t, 0), 5, 32, NULL, NULL, &e) == RV_OK);
		CHECK(na == nf && memcmp(after, fl, nf * sizeof *fl) == 0);
		rv_hnsw_free(h);
		CHECK_MSG(ta.live == 0, "%ld blocks leaked (fail at %ld)", ta.live, fail);
		if (failed)
			failures++;
		else
			break;
	}
	fprintf(stderr, "   %d injected failures\n", failures);
	CHECK(failures >= 4);
	rv_sq8_free(q);
	table_free(&t);
}

TEST(sq8_bad_arguments)
{
	table t;
	table_init(&t, 300, 4, 8, RV_METRIC_L2, 35);
	rv_hnsw *h = NULL;
	rv_err e;
	rv_hnsw_hit hits[5];
	size_t n = 0;
	CHECK(build(&h, &t, RV_METRIC_L2, 4, 16, 1) == RV_OK);
	rv_hnsw_search_opts o = RV_HNSW_SEARCH_OPTS_INIT;
	o.traverse = RV_HNSW_TRAVERSE_SQ8;
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 0), 5, &o, &e) == RV_EINVAL);
	CHECK(strstr(e.msg, "no codes are enabled") != NULL);
	CHECK(rv_hnsw_enable_sq8(h, NULL, &e) == RV_EINVAL);
	/* A quantizer of another dimension. */
	rv_sq8 *q = NULL;
	CHECK(rv_sq8_train(&q, t.data, 10, 4, NULL, &e) == RV_OK);
	CHECK(rv_hnsw_enable_sq8(h, q, &e) == RV_EINVAL && strstr(e.msg, "dimension mismatch"));
	rv_sq8_free(q);
	CHECK(!rv_hnsw_sq8_enabled(h));
	CHECK(enable_sq8(h, &t) == RV_OK);
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 0), 5, &o, &e) == RV_OK && n == 5);
	o.traverse = (rv_hnsw_traverse)7;
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 0), 5, &o, &e) == RV_EINVAL);
	o.traverse = RV_HNSW_TRAVERSE_AUTO;
	o.rerank = RV_HNSW_RERANK_MAX + 1;
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 0), 5, &o, &e) == RV_EINVAL);
	o.rerank = 0;
	o.size = 3 * sizeof(size_t) + 1000;
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 0), 5, &o, &e) == RV_EINVAL);
	/* A non-finite query cannot be put in SQ8 form. */
	float bad[8];
	memcpy(bad, query(&t, 0), sizeof bad);
	bad[3] = NAN;
	CHECK(rv_hnsw_search(hits, 5, &n, h, bad, 5, 16, NULL, NULL, &e) == RV_EINVAL && n == 0);
	/* NULL options = defaults; saving ignores the codes. */
	CHECK(rv_hnsw_search_v2(hits, 5, &n, h, query(&t, 1), 5, NULL, &e) == RV_OK && n == 5);
	rv_buf b1, b2;
	rv_buf_init(&b1, NULL);
	rv_buf_init(&b2, NULL);
	CHECK(rv_hnsw_save(h, &b1, &e) == RV_OK);
	rv_hnsw_disable_sq8(h);
	rv_hnsw_disable_sq8(h);
	CHECK(rv_hnsw_save(h, &b2, &e) == RV_OK);
	CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
	rv_buf_free(&b1);
	rv_buf_free(&b2);
	rv_hnsw_free(h);
	table_free(&t);
}
