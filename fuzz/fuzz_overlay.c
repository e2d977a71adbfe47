/*
 * fuzz_overlay.c - the learning state's segment payloads on arbitrary
 * bytes, through the decoders open uses: OVERLAY (rv_learn_decode_overlay,
 * layouts 1 to 4: MicroLoRA, configuration (layout 4 adds its category
 * field), versions with their BaseLoRA, regions, re-ranker and away
 * regions) and JOURNAL kind 2 (feedback events, rv_learn_decode_events).
 *
 * Input: one selector byte (bit 0: 0 = OVERLAY, 1 = JOURNAL), then the
 * payload. Both decode against one collection made at the first call: 64
 * points of dimension 8 (cosine) from a fixed formula; the corpus in
 * fuzz/corpus/overlay/ was saved from a collection with the same points.
 *
 * Whatever decodes must be usable and stable: an OVERLAY that decodes is
 * installed in the collection, encodes to bytes that decode and encode to
 * the same bytes again, and then serves a search, a feedback event, the
 * status and every version's regions; events that decode are judged by
 * rv_db_learn_eval. Anything else aborts, so the fuzzer reports it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_learn.h"

#define POINTS 64
#define DIM 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rv_db *db;

static void point(float *v, int i)
{
	for (int d = 0; d < DIM; d++)
		v[d] = sinf((float)i * 1.3f + (float)d * 0.7f) + 0.1f * cosf((float)(i * d));
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_overlay: %s: %s\n", what, db ? rv_errmsg(db) : "");
	abort();
}

static void setup(void)
{
	char path[512];
	const char *dir = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/rv_fuzz_overlay_%d.rvf", dir ? dir : "/tmp", (int)getpid());
	unlink(path);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = DIM;
	o.metric = RV_METRIC_COSINE;
	o.threads = 1;
	if (rv_db_create(&db, path, &o) != RV_OK)
		die("create");
	/* The file is only the collection's home while the process runs. */
	unlink(path);
	static float v[POINTS][DIM];
	static char ids[POINTS][8];
	rv_point p[POINTS];
	for (int i = 0; i < POINTS; i++) {
		point(v[i], i);
		snprintf(ids[i], sizeof ids[i], "p%d", i);
		p[i] = (rv_point){ .id = ids[i], .vector = v[i] };
	}
	if (rv_db_upsert(db, p, POINTS) != RV_OK)
		die("upsert");
}

/* Encode the collection's learning state. */
static void encode(rv_buf *b)
{
	rv_buf_init(b, NULL);
	db->learn_dirty = true;
	if (!rv_db_learn_encode_overlay(b, db, NULL) || b->failed)
		die("encode");
}

static void overlay(const uint8_t *p, size_t n)
{
	rv_learn_overlay o;
	rv_err e;
	if (rv_learn_decode_overlay(&o, db, p, n, &e) != RV_OK)
		return;
	if (o.layout < 1 || o.layout > RV_OVERLAY_LAYOUT)
		die("layout");
	/* Install it in place of the collection's own state. */
	struct rv_learn_state *own = db->ls;
	if (!o.ls && rv_learn_state_new(&o.ls, db, &e) != RV_OK)
		die("state");
	o.ls->cfg.auto_consolidate = 0; /* no background thread here */
	/* As open does: the overlay's count of events ever recorded. */
	uint64_t total = db->fb_total;
	db->fb_total = o.events;
	db->ls = o.ls;
	db->adapter = o.micro;
	db->learning = true;

	rv_buf b1, b2;
	encode(&b1);
	rv_learn_overlay o2;
	if (rv_learn_decode_overlay(&o2, db, b1.data, b1.len, &e) != RV_OK) {
		fprintf(stderr, "%s\n", e.msg);
		die("decode of an encoding");
	}
	db->ls = o2.ls;
	db->adapter = o2.micro;
	encode(&b2);
	if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		die("encoding is not stable");
	rv_buf_free(&b1);
	rv_buf_free(&b2);
	rv_learn_overlay_clear(&o2, NULL);
	db->ls = o.ls;
	db->adapter = o.micro;

	float q[DIM];
	point(q, 5);
	q[0] += 0.5f;
	rv_results *r = NULL;
	if (rv_db_search(&r, db, q, NULL) != RV_OK || rv_results_count(r) != 10)
		die("search");
	if (rv_db_feedback(db, rv_results_search_id(r), rv_results_hits(r)[3].id, 1.0f) != RV_OK)
		die("feedback");
	rv_results_free(r);
	rv_learn_status s = RV_LEARN_STATUS_INIT;
	if (rv_db_learn_status(&s, db) != RV_OK)
		die("status");
	for (uint32_t i = 0; i < s.n_versions; i++) {
		rv_learn_region reg[256];
		size_t k;
		if (rv_db_learn_regions(reg, 256, &k, db, s.versions[i].version) != RV_OK)
			die("regions");
	}

	/* The decoded state may have been changed by the feedback: free what
	 * the collection holds now. */
	o.ls = db->ls;
	o.micro = db->adapter;
	rv_learn_overlay_clear(&o, NULL);
	db->ls = own;
	db->adapter = NULL;
	db->learning = false;
	db->fb_total = total;
	db->n_fb_pending = 0;
	db->fb_replay_n = db->fb_replay_next = 0;
}

static void events(const uint8_t *p, size_t n)
{
	uint64_t count = 0;
	rv_err e;
	if (rv_learn_decode_events(db, p, n, &count, &e) == RV_OK && count) {
		rv_learn_eval ev = RV_LEARN_EVAL_INIT;
		rv_status st = rv_db_learn_eval(&ev, db);
		if (st != RV_OK && st != RV_EINVAL)
			die("eval");
		if (st == RV_OK && (!(ev.ndcg_plain >= 0 && ev.ndcg_plain <= 1) || ev.searches == 0))
			die("eval figures");
	}
	/* Empty the replay ring for the next input. */
	db->fb_replay_n = db->fb_replay_next = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!db)
		setup();
	if (size < 1 || size > (1u << 20))
		return 0;
	if (data[0] & 1)
		events(data + 1, size - 1);
	else
		overlay(data + 1, size - 1);
	return 0;
}
