/*
 * test_corrupt.c - damaged files. A collection is built over four commits
 * and its bytes kept; then copies are truncated and bit-flipped at every
 * segment boundary (and around it, and across payloads). Each copy must
 * either fail to open with RV_ECORRUPT (or RV_EVERSION for a damaged
 * version field) or open as exactly one of the committed states: never a
 * crash, never a wrong answer. A copy that lost data must not verify.
 * The same for a PQ-quantized collection, whose QUANT segments (the
 * quantizer, and runs of codes) are among the damaged ones.
 */
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "util/util.h"

#define DIM 8
#define NSTATES 4

static void vec_for(int i, int gen, float *v)
{
	rv_rng r;
	rv_rng_seed(&r, (uint64_t)i * 31 + (uint64_t)gen);
	for (int d = 0; d < DIM; d++)
		v[d] = (float)rv_rng_uniform(&r);
}

/* What each committed state holds: ids 0..99, alive[i] and the generation
 * whose vector it has. */
typedef struct state {
	bool alive[100];
	int gen[100];
	uint64_t count;
} state;

static state states[NSTATES];
static uint8_t *bytes;
static size_t n_bytes;
static char src_path[1024];

static int put(rv_db *db, int from, int to, int gen)
{
	for (int i = from; i < to; i++) {
		char id[16];
		float v[DIM];
		snprintf(id, sizeof id, "%d", i);
		vec_for(i, gen, v);
		rv_point p = { .id = id, .vector = v, .payload = "{\"a\":[1,2,3],\"b\":\"text\"}" };
		if (rv_db_upsert(db, &p, 1) != RV_OK)
			return -1;
	}
	return 0;
}

static bool build(void)
{
	if (bytes)
		return true;
	snprintf(src_path, sizeof src_path, "%s", rv_test_path("corrupt-src.rvf"));
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = DIM;
	o.threads = 1;
	rv_db *db = NULL;
	if (rv_db_create(&db, src_path, &o) != RV_OK)
		return false;
	state s = { { 0 }, { 0 }, 0 };
	/* state 0: empty (the manifest written by create) */
	states[0] = s;
	put(db, 0, 40, 1);
	for (int i = 0; i < 40; i++)
		s.alive[i] = true, s.gen[i] = 1;
	s.count = 40;
	rv_db_commit(db);
	states[1] = s;
	put(db, 40, 70, 1);
	for (int i = 40; i < 70; i++)
		s.alive[i] = true, s.gen[i] = 1;
	s.count = 70;
	rv_db_commit(db);
	states[2] = s;
	const char *del[5] = { "3", "7", "11", "45", "60" };
	rv_db_delete(db, del, 5, NULL);
	for (int i = 0; i < 5; i++)
		s.alive[atoi(del[i])] = false;
	put(db, 20, 25, 2); /* replace */
	for (int i = 20; i < 25; i++)
		s.gen[i] = 2;
	s.count = 65;
	if (rv_db_commit(db) != RV_OK)
		return false;
	states[3] = s;
	rv_db_close(db);
	FILE *f = fopen(src_path, "rb");
	fseek(f, 0, SEEK_END);
	n_bytes = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	bytes = malloc(n_bytes);
	size_t got = fread(bytes, 1, n_bytes, f);
	fclose(f);
	return got == n_bytes;
}

/* Which committed state the open collection is, or -1. */
static int which_state(rv_db *db)
{
	uint64_t count = rv_db_count(db);
	for (int s = NSTATES - 1; s >= 0; s--) {
		if (states[s].count != count)
			continue;
		bool same = true;
		for (int i = 0; i < 100 && same; i++) {
			char id[16];
			float got[DIM], want[DIM];
			snprintf(id, sizeof id, "%d", i);
			rv_status st = rv_db_get(db, id, got, NULL);
			if (!states[s].alive[i]) {
				same = st == RV_ENOTFOUND;
				continue;
			}
			vec_for(i, states[s].gen[i], want);
			same = st == RV_OK && memcmp(got, want, sizeof got) == 0;
		}
		if (!same)
			continue;
		/* Search agrees too: each live point finds itself. */
		for (int i = 0; i < 100 && same; i += 9) {
			if (!states[s].alive[i])
				continue;
			float q[DIM];
			vec_for(i, states[s].gen[i], q);
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			so.k = 1;
			rv_results *r;
			if (rv_db_search(&r, db, q, &so) != RV_OK)
				return -1;
			char id[16];
			snprintf(id, sizeof id, "%d", i);
			same = rv_results_count(r) == 1 && rv_results_hits(r)[0].score == 0;
			rv_results_free(r);
		}
		if (same)
			return s;
	}
	return -1;
}

/* Segment start offsets, read from the pristine bytes. */
static size_t boundaries(size_t *out, size_t cap)
{
	size_t n = 0, off = 64;
	out[n++] = 0;
	while (off + 64 <= n_bytes && n < cap) {
		out[n++] = off;
		uint64_t len = rv_get_u64(bytes + off + 16);
		off += 64 + ((len + 63) & ~(uint64_t)63);
	}
	if (n < cap)
		out[n++] = n_bytes;
	return n;
}

static const char *write_copy(const uint8_t *b, size_t n)
{
	const char *p = rv_test_path("corrupt-copy.rvf");
	FILE *f = fopen(p, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
	return p;
}

/* Open a damaged copy; returns the state index, or -1 for a clean refusal,
 * or -2 for a wrong answer. */
static int try_copy(const uint8_t *b, size_t n, bool readonly, bool damaged, rv_status *st_out)
{
	char path[1024];
	snprintf(path, sizeof path, "%s", write_copy(b, n));
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.threads = 1;
	o.flags = readonly ? RV_OPEN_READONLY : 0;
	rv_db *db = NULL;
	rv_status st = rv_db_open(&db, path, &o);
	*st_out = st;
	int res = -1;
	if (st == RV_OK)
		res = which_state(db) >= 0 ? which_state(db) : -2;
	else if (st != RV_ECORRUPT && st != RV_EVERSION)
		res = -2;
	rv_db_close(db);
	if (damaged && (res == -1 || (readonly && res >= 0 && res < NSTATES - 1))) {
		/* Something was lost or refused (a writable open may have cut a
		 * torn tail, which legitimately leaves a clean file; a truncation
		 * right after a manifest is a clean older file): verify must say
		 * so. */
		if (rv_verify_file(path, NULL, NULL) == RV_OK && res != NSTATES - 1)
			res = -3;
	}
	return res;
}

TEST(truncation_recovers_or_refuses)
{
	CHECK(build());
	size_t b[256];
	size_t nb = boundaries(b, 256);
	CHECK(nb > 8);
	int recovered = 0, refused = 0;
	for (size_t i = 0; i < nb; i++) {
		long deltas[] = { -1, 0, 1, 17, 63, 64, 65 };
		for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
			long t = (long)b[i] + deltas[d];
			if (t < 0 || (size_t)t > n_bytes)
				continue;
			for (int ro = 0; ro < 2; ro++) {
				rv_status st;
				int res = try_copy(bytes, (size_t)t, ro, false, &st);
				CHECK_MSG(res >= -1, "truncated at %ld (readonly %d): %s, result %d", t, ro,
					  rv_status_str(st), res);
				if ((size_t)t == n_bytes)
					CHECK(res == NSTATES - 1);
				recovered += res >= 0;
				refused += res == -1;
			}
		}
	}
	fprintf(stderr, "   truncations: %d recovered to a commit, %d refused\n", recovered, refused);
	CHECK(recovered > 0);
}

TEST(flipped_bytes_are_caught)
{
	CHECK(build());
	size_t b[256];
	size_t nb = boundaries(b, 256);
	uint8_t *copy = malloc(n_bytes);
	int cases = 0, recovered = 0, refused = 0, unharmed = 0;
	/* Header fields of every segment and the first payload bytes, plus a
	 * stride across everything. */
	size_t offs[] = { 0, 1, 4, 5, 6, 8, 16, 17, 24, 32, 33, 36, 40, 47, 56, 60, 63, 64, 65, 71, 100 };
	for (size_t i = 0; i + 1 < nb; i++) {
		for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
			size_t at = b[i] + offs[k];
			if (at >= n_bytes)
				continue;
			memcpy(copy, bytes, n_bytes);
			copy[at] ^= (uint8_t)(1u << (k % 8));
			rv_status st;
			int res = try_copy(copy, n_bytes, k % 2, true, &st);
			CHECK_MSG(res >= -1, "flip at %zu: %s, result %d", at, rv_status_str(st), res);
			cases++;
			recovered += res >= 0 && res < NSTATES - 1;
			unharmed += res == NSTATES - 1;
			refused += res == -1;
		}
	}
	for (size_t at = 3; at < n_bytes; at += 97) {
		memcpy(copy, bytes, n_bytes);
		copy[at] ^= 0x10;
		rv_status st;
		int res = try_copy(copy, n_bytes, false, true, &st);
		CHECK_MSG(res >= -1, "flip at %zu: %s, result %d", at, rv_status_str(st), res);
		cases++;
		recovered += res >= 0 && res < NSTATES - 1;
		unharmed += res == NSTATES - 1;
		refused += res == -1;
	}
	fprintf(stderr, "   %d flips: %d refused (RV_ECORRUPT), %d recovered to an earlier commit, %d harmless\n",
		cases, refused, recovered, unharmed);
	CHECK(refused > cases / 2);
	free(copy);
}

/* ---- a quantized collection (QUANT segments of both kinds) ------------- */

#define QN 2650 /* points: PQ trains at RV_QUANT_TRAIN_MIN_PQ */
#define QSTATES 4

static uint64_t qcounts[QSTATES];
static bool qdeleted[QN]; /* by the last commit */
static uint8_t *qbytes;
static size_t n_qbytes;

static int qput(rv_db *db, int from, int to)
{
	for (int i = from; i < to; i += 50) {
		rv_point p[50];
		char ids[50][16];
		float v[50][DIM];
		int n = to - i < 50 ? to - i : 50;
		for (int j = 0; j < n; j++) {
			snprintf(ids[j], 16, "%d", i + j);
			vec_for(i + j, 1, v[j]);
			p[j] = (rv_point){ .id = ids[j], .vector = v[j] };
		}
		if (rv_db_upsert(db, p, (size_t)n) != RV_OK)
			return -1;
	}
	return 0;
}

/* Four commits: empty, 2000 points (untrained), 2600 (PQ trained: the
 * quantizer and the codes of every slot), 2650 with 20 deleted (more
 * codes). */
static bool qbuild(void)
{
	if (qbytes)
		return true;
	char path[1024];
	snprintf(path, sizeof path, "%s", rv_test_path("corrupt-quant.rvf"));
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = DIM;
	o.threads = 1;
	o.quant = RV_QUANT_PQ;
	o.pq_subspaces = 4;
	rv_db *db = NULL;
	if (rv_db_create(&db, path, &o) != RV_OK)
		return false;
	qcounts[0] = 0;
	bool ok = qput(db, 0, 2000) == 0 && rv_db_commit(db) == RV_OK;
	qcounts[1] = 2000;
	ok = ok && qput(db, 2000, 2600) == 0 && rv_db_commit(db) == RV_OK;
	qcounts[2] = 2600;
	ok = ok && qput(db, 2600, QN) == 0;
	for (int i = 0; ok && i < 20; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i * 97);
		const char *ids[1] = { id };
		ok = rv_db_delete(db, ids, 1, NULL) == RV_OK;
		qdeleted[i * 97] = true;
	}
	ok = ok && rv_db_commit(db) == RV_OK;
	qcounts[3] = QN - 20;
	rv_stats s = RV_STATS_INIT;
	ok = ok && rv_db_stats(&s, db) == RV_OK && s.quant_trained;
	rv_db_close(db);
	if (!ok)
		return false;
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	n_qbytes = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	qbytes = malloc(n_qbytes);
	ok = fread(qbytes, 1, n_qbytes, f) == n_qbytes;
	fclose(f);
	return ok;
}

/* Open a damaged copy of the quantized file: -1 refused cleanly, the
 * state index when it opened as one of the commits (count, sampled
 * vectors, and a search that finds each sampled point itself at
 * distance 0), -2 otherwise. */
static int qtry(const uint8_t *b, size_t n, bool readonly)
{
	char path[1024];
	snprintf(path, sizeof path, "%s", write_copy(b, n));
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.threads = 1;
	o.flags = readonly ? RV_OPEN_READONLY : 0;
	rv_db *db = NULL;
	rv_status st = rv_db_open(&db, path, &o);
	int res = st == RV_ECORRUPT || st == RV_EVERSION ? -1 : -2;
	if (st == RV_OK) {
		uint64_t count = rv_db_count(db);
		for (int s = 0; s < QSTATES && res == -2; s++)
			if (qcounts[s] == count)
				res = s;
		for (int i = 0; res >= 0 && i < (int)count; i += 131) {
			char id[16];
			float got[DIM], want[DIM];
			snprintf(id, sizeof id, "%d", i);
			vec_for(i, 1, want);
			if (res == 3 && qdeleted[i])
				continue;
			rv_results *r = NULL;
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			so.k = 1;
			if (rv_db_get(db, id, got, NULL) != RV_OK || memcmp(got, want, sizeof got) != 0 ||
			    rv_db_search(&r, db, want, &so) != RV_OK || rv_results_count(r) != 1 ||
			    rv_results_hits(r)[0].score != 0)
				res = -2;
			rv_results_free(r);
		}
	}
	rv_db_close(db);
	return res;
}

TEST(quantized_file_flips_and_truncations)
{
	CHECK(qbuild());
	/* Segment starts of the pristine file, QUANT ones counted. */
	size_t b[512], nb = 0, nquant = 0;
	for (size_t off = 64; off + 64 <= n_qbytes && nb < 511;) {
		b[nb++] = off;
		nquant += qbytes[off + 5] == 0x06;
		off += 64 + ((rv_get_u64(qbytes + off + 16) + 63) & ~(uint64_t)63);
	}
	b[nb++] = n_qbytes;
	CHECK_MSG(nquant == 3, "%zu QUANT segments", nquant);
	uint8_t *copy = malloc(n_qbytes);
	int cases = 0, refused = 0, opened = 0;
	size_t offs[] = { 5, 8, 16, 40, 60, 64, 65, 68, 72, 76, 80, 96, 100 };
	for (size_t i = 0; i + 1 < nb; i++) {
		for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
			size_t at = b[i] + offs[k];
			if (at >= b[i + 1])
				continue;
			memcpy(copy, qbytes, n_qbytes);
			copy[at] ^= (uint8_t)(1u << (k % 8));
			int res = qtry(copy, n_qbytes, k % 2);
			CHECK_MSG(res >= -1, "flip at %zu (segment type %u at %zu): result %d", at, qbytes[b[i] + 5], b[i],
				  res);
			cases++;
			refused += res == -1;
			opened += res >= 0;
		}
		/* Cut right after the segment's header and in its payload. */
		for (size_t cut = b[i] + 64; cut < b[i + 1]; cut += (b[i + 1] - b[i]) / 2 + 1) {
			int res = qtry(qbytes, cut, false);
			CHECK_MSG(res >= -1, "cut at %zu: result %d", cut, res);
			cases++;
		}
	}
	for (size_t at = 11; at < n_qbytes; at += 1499) {
		memcpy(copy, qbytes, n_qbytes);
		copy[at] ^= 0x20;
		int res = qtry(copy, n_qbytes, false);
		CHECK_MSG(res >= -1, "flip at %zu: result %d", at, res);
		cases++;
		refused += res == -1;
	}
	CHECK(qtry(qbytes, n_qbytes, true) == QSTATES - 1);
	fprintf(stderr, "   quantized file: %d damaged copies, %d refused, %d opened as a commit\n", cases, refused,
		opened);
	CHECK(refused > 0 && opened > 0);
	free(copy);
}
