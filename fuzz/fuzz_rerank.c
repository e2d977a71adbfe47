/*
 * fuzz_rerank.c - the GNN re-ranker's byte form (rv_reranker_decode) on
 * arbitrary bytes, checked against a small collection.
 *
 * Input: one flag byte, then the blob. With bit 0 of the flag set the
 * target rewrites the blob's trailing checksum, so mutations reach the
 * field checks behind it (else nearly every input stops at the checksum).
 * Decoding must give RV_OK, RV_ECORRUPT or RV_EVERSION, never a crash; a
 * blob that decodes must encode to bytes that decode and encode to the
 * same bytes again, and survive use: score, apply (which must keep the
 * best hits by score, best first), explain, clone, a remapped encode,
 * and going on training.
 *
 * The collection (48 points of dimension 8, two of them deleted, most
 * with a payload naming a category in field "c") is made
 * once per process in a temporary directory that is removed at once (the
 * handle keeps what it needs open or in memory).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_rerank.h"
#include "learn/learn.h"

#define FZ_DIM 8
#define FZ_POINTS 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rv_db *fuzz_db(void)
{
	static rv_db *db;
	static int tried;
	if (db || tried)
		return db;
	tried = 1;
	char dir[] = "/tmp/rv_fuzz_rerank_XXXXXX";
	if (!mkdtemp(dir))
		return NULL;
	char path[64];
	snprintf(path, sizeof path, "%s/c.rvf", dir);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = FZ_DIM;
	o.m = 4;
	o.threads = 1;
	rv_db *d = NULL;
	if (rv_db_create(&d, path, &o) != RV_OK) {
		rv_db_close(d);
		d = NULL;
	}
	rv_rng r;
	rv_rng_seed(&r, 1);
	float v[FZ_POINTS * FZ_DIM];
	char ids[FZ_POINTS][8];
	/* Payloads name a category (field "c") for the category term. */
	static const char *const pay[3] = { "{\"c\":\"a\"}", "{\"c\":\"b\"}", "{\"c\":7}" };
	rv_point p[FZ_POINTS];
	for (size_t i = 0; i < FZ_POINTS; i++) {
		for (size_t j = 0; j < FZ_DIM; j++)
			v[i * FZ_DIM + j] = rv_rng_gauss(&r);
		snprintf(ids[i], sizeof ids[i], "p%zu", i);
		p[i] = (rv_point){ ids[i], 0, v + i * FZ_DIM, i % 5 == 4 ? NULL : pay[i % 3], 0 };
	}
	const char *dead[2] = { "p3", "p7" };
	if (d && (rv_db_upsert(d, p, FZ_POINTS) != RV_OK || rv_db_delete(d, dead, 2, NULL) != RV_OK)) {
		rv_db_close(d);
		d = NULL;
	}
	unlink(path);
	rmdir(dir);
	db = d;
	return db;
}

/* A score as apply ranks it: anything not finite ranks last. */
static float rank_score(float s) { return isfinite(s) ? s : -INFINITY; }

/* Everything a decoded re-ranker must survive. */
static void use(rv_reranker *r, rv_db *db)
{
	rv_err e;
	float q[FZ_DIM];
	for (size_t j = 0; j < FZ_DIM; j++)
		q[j] = (float)((j * 5) % 7) / 7.0f - 0.4f;
	rv_hnsw_hit hits[16];
	size_t nh = 0;
	if (rv_db_knn_locked(db, q, 16, hits, &nh, &e) != RV_OK || nh < 4)
		return;
	uint32_t slots[16];
	float sc[16], w[64];
	for (size_t i = 0; i < nh; i++)
		slots[i] = hits[i].slot;
	bool scored = rv_reranker_score(sc, r, db, q, slots, nh, &e) == RV_OK;
	if (rv_reranker_apply(r, db, q, hits, nh, 5) != 5)
		abort();
	if (scored) {
		/* The kept five are the best by score, best first, and every
		 * hit is still there once. */
		float kept_min = INFINITY, rest_max = -INFINITY, prev = INFINITY;
		for (size_t i = 0; i < nh; i++) {
			size_t j = 0;
			while (j < nh && slots[j] != hits[i].slot)
				j++;
			if (j == nh)
				abort();
			float v = rank_score(sc[j]);
			if (i < 5) {
				if (v > prev)
					abort();
				prev = v;
				kept_min = v < kept_min ? v : kept_min;
			} else {
				rest_max = v > rest_max ? v : rest_max;
			}
			for (size_t m = 0; m < i; m++)
				if (hits[m].slot == hits[i].slot)
					abort();
		}
		if (rest_max > kept_min)
			abort();
	}
	uint32_t es[64];
	size_t ne;
	rv_reranker_explain(r, db, q, slots[0], es, w, 64, &ne, &e);
	rv_rerank_sample s = { q, slots, (uint32_t)nh, 2, slots[2], 1.0f };
	/* Going on training may fail (a model with absurd weights diverges)
	 * but must leave the clone as it was. */
	rv_reranker *c = NULL;
	if (rv_reranker_clone(&c, r, NULL, &e) == RV_OK) {
		rv_reranker *keep = c;
		if (rv_reranker_train(&c, db, rv_reranker_kind(r), &s, 1, 1.0f, "c", 1, &e) != RV_OK && c != keep)
			abort();
	}
	rv_reranker_free(c);
	/* A remap that drops every third slot. */
	uint32_t map[FZ_POINTS];
	uint32_t next = 0;
	for (uint32_t i = 0; i < FZ_POINTS; i++)
		map[i] = i % 3 == 0 ? RV_NO_SLOT : next++;
	rv_buf b;
	rv_buf_init(&b, NULL);
	rv_reranker_encode(&b, r, map);
	rv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rv_db *db = fuzz_db();
	if (!db || size < 1 || size > (1u << 20))
		return 0;
	size_t n = size - 1;
	uint8_t *blob = malloc(n ? n : 1);
	if (!blob)
		return 0;
	memcpy(blob, data + 1, n);
	if ((data[0] & 1) && n >= 8)
		rv_put_u64(blob + n - 8, rv_hash64(blob, n - 8, 0));
	rv_reranker *r = NULL;
	rv_err e;
	rv_status st = rv_reranker_decode(&r, db, blob, n, &e);
	if (st == RV_OK) {
		rv_buf b1, b2;
		rv_buf_init(&b1, NULL);
		rv_buf_init(&b2, NULL);
		rv_reranker *r2 = NULL;
		if (rv_reranker_encode(&b1, r, NULL) != RV_OK || rv_reranker_decode(&r2, db, b1.data, b1.len, &e) != RV_OK ||
		    rv_reranker_encode(&b2, r2, NULL) != RV_OK || b1.len != b2.len ||
		    memcmp(b1.data, b2.data, b1.len) != 0)
			abort();
		rv_reranker_free(r2);
		rv_buf_free(&b1);
		rv_buf_free(&b2);
		use(r, db);
		rv_reranker_free(r);
	} else if (st != RV_ECORRUPT && st != RV_EVERSION) {
		abort();
	}
	free(blob);
	return 0;
}
