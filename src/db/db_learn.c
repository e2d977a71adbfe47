/*
 * db_learn.c - feedback and the query adapter of a collection.
 *
 * Search ids: a handle draws a random base at creation; search number c
 * gets id base + c, and ring entry c % cap remembers its query (as
 * searched, before the adapter) and the slots shown. An id whose entry
 * has been overwritten has expired.
 *
 * Events: rv_db_feedback / rv_db_feedback_vector append to the pending log
 * (a JOURNAL of kind 2 at the next commit) and to the replay ring of the
 * last RV_FB_REPLAY events. With learning on, each event then steps the
 * query adapter (the learning core's rv_lora, MicroLoRA rank 2) on
 * pairwise events built from the results shown:
 *   reward > 0 at position p > 0:  chosen = the item, skipped = an item
 *                                  shown above it
 *   reward > 0 at position 0:      skipped = another item shown
 *   reward < 0:                    chosen = another item shown,
 *                                  skipped = the item
 * weighted |reward|; the other item is drawn pseudo-randomly (a hash of
 * the event), one pair per event. An item that was not shown at all
 * (feedback by vector) counts as below everything shown.
 *
 * Locks: feedback holds the write lock (it changes the adapter, which
 * searches read under the read lock); the search ring has its own mutex
 * because many searches record into it at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "db_int.h"
#include "learn/learn.h"

/* Adapter settings. The temperature is about the spread of score
 * differences among the top results of unit vectors (see
 * docs/LEARNING-CORE.md). The weight decay keeps feedback without a
 * consistent direction from moving the adapter (random rewards: +0.97%
 * NDCG in tests/test_feedback.c) while letting consistent preferences
 * through (+140%); at 1.0, as in the core's own test, the random start of
 * A decays away before one pair per event builds B up, and nothing is
 * learned. */
#define ADAPTER_RANK 2
#define ADAPTER_LR 2e-3f
#define ADAPTER_L2 0.1f
#define ADAPTER_TEMPERATURE 0.05f

static const uint64_t NS_PER_S = 1000000000ull;

void rv_db_learn_init(rv_db *db)
{
	pthread_mutex_init(&db->fb_lock, NULL);
	/* Random per handle, so ids of two handles (or two runs) rarely
	 * collide; the top bit is clear so that base + counter never wraps
	 * to 0. */
	uint64_t t = (uint64_t)(rv_now() * 1e9);
	db->fb_base = rv_hash64(&db, sizeof db, t) >> 1;
	if (db->fb_base == 0)
		db->fb_base = 1;
}

void rv_db_learn_unload(rv_db *db)
{
	rv_dealloc(db->a, db->fb_ring);
	rv_dealloc(db->a, db->fb_ring_q);
	rv_dealloc(db->a, db->fb_pending);
	rv_dealloc(db->a, db->fb_pending_q);
	rv_dealloc(db->a, db->fb_replay);
	rv_dealloc(db->a, db->fb_replay_q);
	rv_lora_free(db->adapter);
	db->fb_ring = NULL;
	db->fb_ring_q = NULL;
	db->fb_ring_cap = 0;
	db->fb_pending = NULL;
	db->fb_pending_q = NULL;
	db->n_fb_pending = db->fb_pending_cap = 0;
	db->fb_replay = NULL;
	db->fb_replay_q = NULL;
	db->fb_replay_n = db->fb_replay_next = 0;
	db->fb_total = 0;
	db->fb_journals = 0;
	db->adapter = NULL;
	db->adapter_version = 0;
	db->adapter_changed = db->learn_dirty = false;
	db->overlay_seg_id = 0;
	/* A reload (compaction) renumbers slots: remembered searches expire,
	 * but the counter goes on so their ids are never reused. */
}

/* ======================================================================
 * Search ring
 * ==================================================================== */

uint64_t rv_db_learn_record(rv_db *db, const float *q, const rv_hnsw_hit *hits, size_t n)
{
	uint64_t id = 0;
	pthread_mutex_lock(&db->fb_lock);
	if (!db->fb_ring) {
		size_t per = (size_t)db->dim * sizeof(float) + sizeof(rv_fb_search);
		size_t cap = RV_FB_RING_BYTES / per;
		if (cap > RV_FB_SEARCHES)
			cap = RV_FB_SEARCHES;
		if (cap < 16)
			cap = 16;
		rv_fb_search *ring = rv_calloc(db->a, cap, sizeof *ring);
		float *qs = rv_malloc(db->a, cap * (size_t)db->dim * sizeof(float));
		if (!ring || !qs) {
			rv_dealloc(db->a, ring);
			rv_dealloc(db->a, qs);
			goto done;
		}
		db->fb_ring = ring;
		db->fb_ring_q = qs;
		db->fb_ring_cap = cap;
	}
	uint64_t c = ++db->fb_counter;
	id = db->fb_base + c;
	rv_fb_search *e = &db->fb_ring[c % db->fb_ring_cap];
	e->id = id;
	e->n = (uint32_t)(n < RV_FB_SHOWN ? n : RV_FB_SHOWN);
	for (uint32_t i = 0; i < e->n; i++)
		e->slots[i] = hits[i].slot;
	memcpy(db->fb_ring_q + (c % db->fb_ring_cap) * db->dim, q, (size_t)db->dim * sizeof(float));
done:
	pthread_mutex_unlock(&db->fb_lock);
	return id;
}

bool rv_db_learn_adapt(const rv_db *db, float *out, const float *q)
{
	if (!db->learning || !db->adapter)
		return false;
	rv_lora_apply(out, db->adapter, q);
	/* A cosine search compares with unit vectors; an adapted query that
	 * collapsed to zero keeps the plain one. */
	if (db->metric == RV_METRIC_COSINE && !rv_db_normalize(out, db->dim))
		return false;
	return true;
}

/* ======================================================================
 * Events
 * ==================================================================== */

static bool learnable(const rv_db *db) { return db->dim <= RV_LEARN_MAX_DIM; }

static rv_status ensure_adapter(rv_db *db)
{
	if (db->adapter)
		return RV_OK;
	rv_lora_opts o = RV_LORA_OPTS_INIT;
	o.dim = db->dim;
	o.rank = ADAPTER_RANK;
	o.lr = ADAPTER_LR;
	o.l2 = ADAPTER_L2;
	o.temperature = ADAPTER_TEMPERATURE;
	/* Rank by the metric the collection searches with: the adapted
	 * query's L2 distance, or its inner product (cosine: unit vectors). */
	o.score = db->metric == RV_METRIC_L2 ? RV_LEARN_SCORE_L2 : RV_LEARN_SCORE_DOT;
	o.seed = db->seed ^ 0x5eed;
	rv_err e = { { 0 } };
	rv_status st = rv_lora_create(&db->adapter, &o, db->a, &e);
	if (st != RV_OK)
		return rv_db_fail(db, st, "query adapter: %s", e.msg);
	return RV_OK;
}

/* Room for one more pending and replay event, allocated before anything
 * changes so that a failure leaves the handle as it was. */
static bool reserve_event(rv_db *db)
{
	size_t dim = db->dim;
	if (!db->fb_replay) {
		db->fb_replay = rv_malloc(db->a, RV_FB_REPLAY * sizeof *db->fb_replay);
		db->fb_replay_q = rv_malloc(db->a, RV_FB_REPLAY * dim * sizeof(float));
		if (!db->fb_replay || !db->fb_replay_q) {
			rv_dealloc(db->a, db->fb_replay);
			rv_dealloc(db->a, db->fb_replay_q);
			db->fb_replay = NULL;
			db->fb_replay_q = NULL;
			return false;
		}
	}
	if (db->n_fb_pending < db->fb_pending_cap)
		return true;
	size_t cap = db->fb_pending_cap ? db->fb_pending_cap * 2 : 64;
	rv_fb_event *ev = rv_realloc(db->a, db->fb_pending, cap * sizeof *ev);
	if (!ev)
		return false;
	db->fb_pending = ev;
	float *q = rv_realloc(db->a, db->fb_pending_q, cap * dim * sizeof(float));
	if (!q)
		return false; /* the larger event array is kept, harmless */
	db->fb_pending_q = q;
	db->fb_pending_cap = cap;
	return true;
}

static void replay_push(rv_db *db, const rv_fb_event *ev, const float *q)
{
	size_t i = db->fb_replay_next;
	db->fb_replay[i] = *ev;
	memcpy(db->fb_replay_q + i * db->dim, q, (size_t)db->dim * sizeof(float));
	db->fb_replay_next = (i + 1) % RV_FB_REPLAY;
	if (db->fb_replay_n < RV_FB_REPLAY)
		db->fb_replay_n++;
}

/* The adapter's steps for one event (see the file comment). */
static void train(rv_db *db, const float *q, const uint32_t *shown, uint32_t n_shown, uint32_t pos,
		  uint32_t slot, float reward)
{
	if (reward == 0 || n_shown == 0)
		return;
	const float *item = db->vecs.ptr[slot];
	uint32_t others[RV_FB_SHOWN];
	uint32_t n = 0;
	if (reward > 0 && pos != 0) {
		for (uint32_t j = 0; j < n_shown && j < pos; j++)
			if (shown[j] != slot)
				others[n++] = shown[j];
	} else {
		for (uint32_t j = 0; j < n_shown; j++)
			if (shown[j] != slot)
				others[n++] = shown[j];
	}
	if (n == 0)
		return;
	/* One pair per event, the other item drawn from the candidates: the
	 * adapter's weight decay acts once per step, so several steps per
	 * event would decay it faster than one event's evidence builds it. */
	uint64_t h = rv_hash64(q, (size_t)db->dim * sizeof(float), ((uint64_t)slot << 32) ^ db->fb_total);
	const float *other = db->vecs.ptr[others[h % n]];
	rv_lora_event ev = { q, reward > 0 ? item : other, reward > 0 ? other : item, NULL, fabsf(reward) };
	rv_lora_step(NULL, db->adapter, &ev);
	db->adapter_changed = true;
}

/* Record one validated event and learn from it. Caller holds the write
 * lock; q is the query as searched (dim floats). */
static rv_status add_event(rv_db *db, uint64_t search_id, const float *q, const uint32_t *shown, uint32_t n_shown,
			   uint32_t pos, uint32_t slot, const char *item_id, float reward)
{
	bool learn = db->learning && learnable(db) && reward != 0;
	rv_status st;
	if (learn && (st = ensure_adapter(db)) != RV_OK)
		return st;
	if (!reserve_event(db))
		return rv_db_fail(db, RV_ENOMEM, "out of memory for a feedback event");
	rv_fb_event ev;
	memset(&ev, 0, sizeof ev);
	ev.search_id = search_id;
	double now = rv_now();
	ev.time_ns = now > 0 ? (uint64_t)(now * (double)NS_PER_S) : 0;
	ev.reward = reward;
	ev.position = pos;
	ev.slot = slot;
	size_t len = strlen(item_id);
	ev.id_len = (uint8_t)len;
	memcpy(ev.id, item_id, len + 1);
	db->fb_pending[db->n_fb_pending] = ev;
	memcpy(db->fb_pending_q + db->n_fb_pending * db->dim, q, (size_t)db->dim * sizeof(float));
	db->n_fb_pending++;
	replay_push(db, &ev, q);
	db->fb_total++;
	if (learn)
		train(db, q, shown, n_shown, pos, slot, reward);
	db->learn_dirty = true;
	db->dirty = true;
	return RV_OK;
}

static rv_status check_common(rv_db *db, const char *item_id, float reward)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (!item_id)
		return rv_db_fail(db, RV_EINVAL, "item id is NULL");
	size_t len = strlen(item_id);
	if (len < 1 || len > RV_MAX_ID_LEN)
		return rv_db_fail(db, RV_EINVAL, "item id length %zu out of range 1..%d", len, RV_MAX_ID_LEN);
	if (!isfinite(reward) || reward < -1.0f || reward > 1.0f)
		return rv_db_fail(db, RV_EINVAL, "reward %g out of range [-1, 1]", (double)reward);
	return RV_OK;
}

rv_status rv_db_feedback(rv_db *db, uint64_t search_id, const char *item_id, float reward)
{
	rv_status st = check_common(db, item_id, reward);
	if (st != RV_OK)
		return st;
	float *q = rv_malloc(db->a, (size_t)db->dim * sizeof(float));
	if (!q)
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	uint32_t shown[RV_FB_SHOWN], n_shown = 0;
	pthread_rwlock_wrlock(&db->lock);
	pthread_mutex_lock(&db->fb_lock);
	uint64_t c = search_id - db->fb_base;
	const rv_fb_search *e = NULL;
	if (db->fb_ring && search_id > db->fb_base && c <= db->fb_counter)
		e = &db->fb_ring[c % db->fb_ring_cap];
	if (e && e->id == search_id) {
		n_shown = e->n;
		memcpy(shown, e->slots, n_shown * sizeof *shown);
		memcpy(q, db->fb_ring_q + (c % db->fb_ring_cap) * db->dim, (size_t)db->dim * sizeof(float));
	} else {
		e = NULL;
	}
	pthread_mutex_unlock(&db->fb_lock);
	if (!e) {
		st = rv_db_fail(db, RV_ENOTFOUND,
				"search id %llu is unknown or expired (this handle remembers its last %zu searches)",
				(unsigned long long)search_id, db->fb_ring_cap ? db->fb_ring_cap : (size_t)RV_FB_SEARCHES);
		goto done;
	}
	uint32_t slot = rv_idmap_find(&db->idmap, item_id, strlen(item_id), db->ids);
	uint32_t pos = RV_FB_NOT_SHOWN;
	for (uint32_t i = 0; slot != RV_NO_SLOT && i < n_shown; i++)
		if (shown[i] == slot)
			pos = i;
	if (slot == RV_NO_SLOT || pos == RV_FB_NOT_SHOWN) {
		st = rv_db_fail(db, RV_EINVAL, "item \"%s\" is not among the %u hits of search %llu%s", item_id,
				n_shown, (unsigned long long)search_id,
				slot == RV_NO_SLOT ? " (no live point has that id)" : "");
		goto done;
	}
	st = add_event(db, search_id, q, shown, n_shown, pos, slot, item_id, reward);
done:
	pthread_rwlock_unlock(&db->lock);
	rv_dealloc(db->a, q);
	return st;
}

rv_status rv_db_feedback_vector(rv_db *db, const float *query, const char *item_id, float reward)
{
	rv_status st = check_common(db, item_id, reward);
	if (st != RV_OK)
		return st;
	if (!query)
		return rv_db_fail(db, RV_EINVAL, "query is NULL");
	for (uint32_t d = 0; d < db->dim; d++)
		if (!isfinite(query[d]))
			return rv_db_fail(db, RV_EINVAL, "query[%u] is %g, must be finite", d, (double)query[d]);
	rv_err e = { { 0 } };
	float *q = rv_malloc(db->a, (size_t)db->dim * sizeof(float) * 2);
	if (!q)
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	float *qa = q + db->dim;
	memcpy(q, query, (size_t)db->dim * sizeof(float));
	if (db->metric == RV_METRIC_COSINE && !rv_db_normalize(q, db->dim)) {
		rv_dealloc(db->a, q);
		return rv_db_fail(db, RV_EINVAL, "query is the zero vector, which has no cosine direction");
	}
	rv_hnsw_hit hits[RV_FB_VECTOR_SHOWN];
	uint32_t shown[RV_FB_VECTOR_SHOWN], n_shown = 0;
	size_t n = 0;
	pthread_rwlock_wrlock(&db->lock);
	uint32_t slot = rv_idmap_find(&db->idmap, item_id, strlen(item_id), db->ids);
	if (slot == RV_NO_SLOT) {
		st = rv_db_fail(db, RV_ENOTFOUND, "no point with id \"%s\"", item_id);
		goto done;
	}
	/* What a search would show now stands in for what was shown. */
	const float *sq = rv_db_learn_adapt(db, qa, q) ? qa : q;
	if ((st = rv_db_knn_locked(db, sq, RV_FB_VECTOR_SHOWN, hits, &n, &e)) != RV_OK) {
		rv_db_fail_err(db, st, &e);
		goto done;
	}
	uint32_t pos = RV_FB_NOT_SHOWN;
	for (size_t i = 0; i < n; i++) {
		shown[n_shown] = hits[i].slot;
		if (hits[i].slot == slot)
			pos = n_shown;
		n_shown++;
	}
	st = add_event(db, 0, q, shown, n_shown, pos, slot, item_id, reward);
done:
	pthread_rwlock_unlock(&db->lock);
	rv_dealloc(db->a, q);
	return st;
}

rv_status rv_db_set_learning(rv_db *db, int on)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (on && !learnable(db))
		return rv_db_fail(db, RV_EINVAL, "learning needs dimension <= %d, the collection has %u",
				  RV_LEARN_MAX_DIM, db->dim);
	pthread_rwlock_wrlock(&db->lock);
	if (db->learning != (on != 0)) {
		db->learning = on != 0;
		db->dirty = true;
	}
	pthread_rwlock_unlock(&db->lock);
	return RV_OK;
}

/* ======================================================================
 * Segments
 * ==================================================================== */

static void encode_event(rv_buf *b, const rv_db *db, const rv_fb_event *ev, const float *q, uint32_t slot)
{
	rv_buf_u64(b, ev->search_id);
	rv_buf_u64(b, ev->time_ns);
	rv_buf_f32(b, ev->reward);
	rv_buf_u32(b, ev->position);
	rv_buf_u32(b, slot);
	rv_buf_u8(b, ev->id_len);
	rv_buf_put(b, ev->id, ev->id_len);
	for (uint32_t d = 0; d < db->dim; d++)
		rv_buf_f32(b, q[d]);
}

bool rv_db_learn_encode_events(rv_buf *b, const rv_db *db, bool replay, const uint32_t *old_to_new)
{
	size_t n = replay ? db->fb_replay_n : db->n_fb_pending;
	if (n == 0)
		return false;
	rv_buf_u32(b, RV_JOURNAL_FEEDBACK);
	rv_buf_u32(b, (uint32_t)n);
	rv_buf_u32(b, db->dim);
	rv_buf_u32(b, 0);
	for (size_t i = 0; i < n; i++) {
		if (!replay) {
			const rv_fb_event *ev = &db->fb_pending[i];
			encode_event(b, db, ev, db->fb_pending_q + i * db->dim, ev->slot);
			continue;
		}
		/* Oldest first, so a reload rebuilds the ring in the same order. */
		size_t k = (db->fb_replay_next + RV_FB_REPLAY - db->fb_replay_n + i) % RV_FB_REPLAY;
		const rv_fb_event *ev = &db->fb_replay[k];
		uint32_t slot = ev->slot;
		if (old_to_new)
			slot = slot < db->vecs.n ? old_to_new[slot] : RV_NO_SLOT;
		encode_event(b, db, ev, db->fb_replay_q + k * db->dim, slot);
	}
	return true;
}

bool rv_db_learn_encode_overlay(rv_buf *b, const rv_db *db, const uint32_t *old_to_new)
{
	(void)old_to_new; /* the adapter holds no slots */
	if (!db->learn_dirty && !db->adapter_changed)
		return false;
	rv_buf_u32(b, RV_OVERLAY_LEARNING);
	rv_buf_u32(b, db->adapter ? 1u : 0u);
	rv_buf_u64(b, db->adapter_version + (db->adapter_changed ? 1 : 0));
	rv_buf_u64(b, db->fb_total);
	rv_buf_u64(b, 0);
	if (db->adapter) {
		size_t at = b->len;
		rv_buf_u64(b, 0); /* length, patched below */
		if (rv_lora_save(b, db->adapter) == RV_OK && !b->failed)
			rv_put_u64(b->data + at, (uint64_t)(b->len - at - 8));
	}
	return true;
}

/* Header of the OVERLAY before the adapter blob. */
#define OVERLAY_HEAD 32

void rv_db_learn_committed(rv_db *db, bool wrote_events, uint64_t overlay_seg_id)
{
	if (wrote_events) {
		db->fb_journals++;
		db->n_fb_pending = 0;
	}
	if (overlay_seg_id) {
		db->overlay_seg_id = overlay_seg_id;
		if (db->adapter_changed)
			db->adapter_version++;
		db->adapter_changed = false;
		db->learn_dirty = false;
	}
}

static rv_status seg_bad(rv_db *db, const rv_seg_ref *s, const char *what)
{
	return rv_db_fail(db, RV_ECORRUPT, "%s: segment %llu (%s) at offset %llu: %s", db->path,
			  (unsigned long long)s->seg_id, rv_seg_type_name(s->type), (unsigned long long)s->offset,
			  what);
}

static rv_status load_events(rv_db *db, const rv_seg_ref *s, const uint8_t *p, uint64_t *count)
{
	rv_reader r;
	rv_reader_init(&r, p, s->length);
	rv_reader_u32(&r); /* kind, checked by the caller */
	uint32_t n = rv_reader_u32(&r), dim = rv_reader_u32(&r);
	rv_reader_u32(&r);
	if (r.bad || dim != db->dim)
		return seg_bad(db, s, "feedback JOURNAL header malformed or of another dimension");
	size_t fixed = 8 + 8 + 4 + 4 + 4 + 1 + (size_t)dim * 4;
	if ((uint64_t)n * (fixed + 1) > rv_reader_left(&r))
		return seg_bad(db, s, "feedback JOURNAL count does not match its length");
	if (n && !db->fb_replay) {
		db->fb_replay = rv_malloc(db->a, RV_FB_REPLAY * sizeof *db->fb_replay);
		db->fb_replay_q = rv_malloc(db->a, RV_FB_REPLAY * (size_t)db->dim * sizeof(float));
		if (!db->fb_replay || !db->fb_replay_q)
			return rv_db_fail(db, RV_ENOMEM, "out of memory for the replay buffer");
	}
	for (uint32_t i = 0; i < n; i++) {
		rv_fb_event ev;
		memset(&ev, 0, sizeof ev);
		ev.search_id = rv_reader_u64(&r);
		ev.time_ns = rv_reader_u64(&r);
		ev.reward = rv_reader_f32(&r);
		ev.position = rv_reader_u32(&r);
		ev.slot = rv_reader_u32(&r);
		ev.id_len = rv_reader_u8(&r);
		const uint8_t *id = rv_reader_bytes(&r, ev.id_len);
		if (!id)
			return seg_bad(db, s, "feedback JOURNAL event truncated");
		memcpy(ev.id, id, ev.id_len);
		size_t k = db->fb_replay_next;
		float *q = db->fb_replay_q + k * db->dim;
		for (uint32_t d = 0; d < dim; d++)
			q[d] = rv_reader_f32(&r);
		if (r.bad)
			return seg_bad(db, s, "feedback JOURNAL event truncated");
		if (!isfinite(ev.reward) || ev.reward < -1.0f || ev.reward > 1.0f)
			return seg_bad(db, s, "feedback JOURNAL reward out of range");
		if (ev.id_len == 0 || memchr(id, 0, ev.id_len))
			return seg_bad(db, s, "feedback JOURNAL item id malformed");
		if (ev.slot != RV_NO_SLOT && ev.slot >= db->vecs.n)
			return seg_bad(db, s, "feedback JOURNAL names a slot that does not exist");
		if (ev.position != RV_FB_NOT_SHOWN && ev.position >= RV_FB_SHOWN)
			return seg_bad(db, s, "feedback JOURNAL position out of range");
		for (uint32_t d = 0; d < dim; d++)
			if (!isfinite(q[d]))
				return seg_bad(db, s, "feedback JOURNAL query is not finite");
		db->fb_replay[k] = ev;
		db->fb_replay_next = (k + 1) % RV_FB_REPLAY;
		if (db->fb_replay_n < RV_FB_REPLAY)
			db->fb_replay_n++;
	}
	if (rv_reader_left(&r) != 0)
		return seg_bad(db, s, "feedback JOURNAL has trailing bytes");
	*count += n;
	return RV_OK;
}

static rv_status load_overlay(rv_db *db, const rv_seg_ref *s, const uint8_t *p, uint64_t *total)
{
	rv_reader r;
	rv_reader_init(&r, p, s->length);
	uint32_t kind = rv_reader_u32(&r), flags = rv_reader_u32(&r);
	uint64_t version = rv_reader_u64(&r);
	*total = rv_reader_u64(&r);
	rv_reader_u64(&r);
	if (r.bad || kind != RV_OVERLAY_LEARNING || flags > 1)
		return seg_bad(db, s, "OVERLAY header malformed");
	if (flags & 1) {
		uint64_t len = rv_reader_u64(&r);
		if (r.bad || len != rv_reader_left(&r))
			return seg_bad(db, s, "OVERLAY adapter length does not match");
		rv_err e = { { 0 } };
		rv_status st = rv_lora_load(&db->adapter, r.p, (size_t)len, db->a, &e);
		if (st == RV_ENOMEM)
			return rv_db_fail(db, st, "out of memory loading the query adapter");
		if (st != RV_OK) {
			rv_db_fail(db, st, "%s: segment %llu (OVERLAY) at offset %llu: query adapter: %s", db->path,
				   (unsigned long long)s->seg_id, (unsigned long long)s->offset, e.msg);
			return st;
		}
		if (rv_lora_get_opts(db->adapter)->dim != db->dim)
			return seg_bad(db, s, "OVERLAY adapter has another dimension");
	} else if (rv_reader_left(&r) != 0) {
		return seg_bad(db, s, "OVERLAY has trailing bytes");
	}
	db->adapter_version = version;
	db->overlay_seg_id = s->seg_id;
	return RV_OK;
}

rv_status rv_db_learn_load(rv_db *db, const rv_manifest *m)
{
	rv_err e = { { 0 } };
	uint64_t events = 0, total = 0;
	bool overlay = false;
	for (size_t i = 0; i < m->n_segs; i++) {
		const rv_seg_ref *s = &m->segs[i];
		if (s->type != RV_SEG_JOURNAL && s->type != RV_SEG_OVERLAY)
			continue;
		const uint8_t *p;
		rv_status st = rv_file_segment_data(&p, db->file, s, &e);
		if (st != RV_OK)
			return rv_db_fail_err(db, st, &e);
		if (s->type == RV_SEG_JOURNAL) {
			if (s->length < 4 || rv_get_u32(p) != RV_JOURNAL_FEEDBACK)
				continue;
			if ((st = load_events(db, s, p, &events)) != RV_OK)
				return st;
			db->fb_journals++;
			continue;
		}
		/* The commit that writes an OVERLAY drops the previous one. */
		if (overlay)
			return seg_bad(db, s, "a second OVERLAY segment in the manifest");
		overlay = true;
		if ((st = load_overlay(db, s, p, &total)) != RV_OK)
			return st;
	}
	/* Compaction keeps only the replay buffer's events; the overlay keeps
	 * the count of all. */
	db->fb_total = events > total ? events : total;
	return RV_OK;
}

/* ======================================================================
 * Re-ranking hooks of the search path
 * ==================================================================== */

size_t rv_db_learn_pool(const rv_db *db, size_t k, unsigned flags)
{
	(void)db;
	(void)flags;
	return k; /* no re-ranker in this version of the learning state */
}

size_t rv_db_learn_rerank(const rv_db *db, const float *q, const float *sq, rv_hnsw_hit *hits, size_t n,
			  size_t k, unsigned flags)
{
	(void)db, (void)q, (void)sq, (void)hits, (void)flags;
	return n < k ? n : k;
}
