/*
 * db_learn_store.c - the learning state in the file: feedback events as
 * JOURNAL segments of kind 2, and the OVERLAY segment (the MicroLoRA, the
 * configuration, every kept version with its BaseLoRA, regions and
 * re-ranker). Byte layouts in docs/FORMAT.md.
 *
 * OVERLAY layouts: 1 (0.2.0) holds the MicroLoRA alone; 2 (0.3.0) adds
 * the rest; 3 (0.4.0) adds each version's away regions (db_learn.h),
 * which layout 2 reads as none; 4 (0.5.0) adds the configuration's
 * category field (layouts before it read as none). All start with the same 32-byte header; layout 1 wrote zero
 * where layout 2 names its layout, so a zero there means layout 1, which
 * still loads (with the default configuration and no versions).
 *
 * Everything read is untrusted: counts, lengths, ranges and cross
 * references (active and candidate versions exist, version numbers
 * increase, blobs have the collection's dimension) are checked, and the
 * learning core's loaders check their own blobs (checksum first). A
 * decode builds everything aside and hands it over only on success, so a
 * corrupt segment leaves nothing half-loaded behind.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_learn.h"

/* Bytes of the OVERLAY header before the MicroLoRA. */
#define OVERLAY_HEAD 32
#define OVERLAY_MICRO 1u    /* flags: a MicroLoRA follows */
#define OVERLAY_STATE 2u    /* flags: configuration and versions follow (layout 2) */

/* ======================================================================
 * JOURNAL kind 2: feedback events
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

rv_status rv_learn_decode_events(rv_db *db, const uint8_t *p, size_t len, uint64_t *count, rv_err *e)
{
	rv_reader r;
	rv_reader_init(&r, p, len);
	uint32_t kind = rv_reader_u32(&r), n = rv_reader_u32(&r), dim = rv_reader_u32(&r);
	uint32_t reserved = rv_reader_u32(&r);
	if (r.bad || kind != RV_JOURNAL_FEEDBACK || dim != db->dim || reserved != 0)
		return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL header malformed or of another dimension (%u, "
				  "collection %u)", dim, db->dim);
	size_t fixed = 8 + 8 + 4 + 4 + 4 + 1 + (size_t)dim * 4;
	if ((uint64_t)n * (fixed + 1) > rv_reader_left(&r))
		return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL count %u does not match its length %zu", n, len);
	if (n && !db->fb_replay) {
		db->fb_replay = rv_malloc(db->a, RV_FB_REPLAY * sizeof *db->fb_replay);
		db->fb_replay_q = rv_malloc(db->a, RV_FB_REPLAY * (size_t)db->dim * sizeof(float));
		if (!db->fb_replay || !db->fb_replay_q) {
			rv_dealloc(db->a, db->fb_replay);
			rv_dealloc(db->a, db->fb_replay_q);
			db->fb_replay = NULL;
			db->fb_replay_q = NULL;
			return rv_err_set(e, RV_ENOMEM, "out of memory for the replay buffer");
		}
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
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u truncated", i);
		memcpy(ev.id, id, ev.id_len);
		/* Decoded into the next ring entry, which becomes part of the
		 * ring only once the event checks out. */
		size_t k = db->fb_replay_next;
		float *q = db->fb_replay_q + k * db->dim;
		for (uint32_t d = 0; d < dim; d++)
			q[d] = rv_reader_f32(&r);
		if (r.bad)
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u truncated", i);
		if (!isfinite(ev.reward) || ev.reward < -1.0f || ev.reward > 1.0f)
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u: reward %g out of range", i,
					  (double)ev.reward);
		if (ev.id_len == 0 || memchr(id, 0, ev.id_len))
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u: item id malformed", i);
		if (ev.slot != RV_NO_SLOT && ev.slot >= db->vecs.n)
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u names slot %u, the collection has %u",
					  i, ev.slot, db->vecs.n);
		if (ev.position != RV_FB_NOT_SHOWN && ev.position >= RV_FB_SHOWN)
			return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u: position %u out of range", i,
					  ev.position);
		for (uint32_t d = 0; d < dim; d++)
			if (!isfinite(q[d]))
				return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL event %u: query[%u] is not finite", i,
						  d);
		db->fb_replay[k] = ev;
		db->fb_replay_next = (k + 1) % RV_FB_REPLAY;
		if (db->fb_replay_n < RV_FB_REPLAY)
			db->fb_replay_n++;
	}
	if (rv_reader_left(&r) != 0)
		return rv_err_set(e, RV_ECORRUPT, "feedback JOURNAL has %zu trailing bytes", rv_reader_left(&r));
	*count += n;
	return RV_OK;
}

/* ======================================================================
 * OVERLAY: encoding
 * ==================================================================== */

/* A length-prefixed blob: u64 N, then N bytes (N = 0: none). */
static void blob_begin(rv_buf *b, size_t *at)
{
	*at = b->len;
	rv_buf_u64(b, 0);
}

static void blob_end(rv_buf *b, size_t at, rv_status st)
{
	if (st != RV_OK) {
		b->failed = true;
		return;
	}
	if (!b->failed)
		rv_put_u64(b->data + at, (uint64_t)(b->len - at - 8));
}

static void encode_config(rv_buf *b, const rv_learn_config *c)
{
	rv_buf_u32(b, c->learners);
	rv_buf_u32(b, (uint32_t)c->gnn);
	rv_buf_u32(b, c->base_rank);
	rv_buf_f32(b, c->ewc_lambda);
	rv_buf_u32(b, c->rerank_pool);
	rv_buf_u32(b, c->auto_consolidate);
	rv_buf_u32(b, c->regions);
	rv_buf_f32(b, c->recall_target);
	rv_buf_u32(b, c->away_regions); /* layout 3 */
	size_t cl = strlen(c->category); /* layout 4 */
	rv_buf_u16(b, (uint16_t)cl);
	rv_buf_put(b, c->category, cl);
}

static void encode_version(rv_buf *b, const rv_lversion *v, size_t dim, const uint32_t *old_to_new)
{
	const rv_learn_version *i = &v->info;
	rv_buf_u32(b, i->version);
	rv_buf_u32(b, i->parent);
	rv_buf_u64(b, i->created_ns);
	rv_buf_u64(b, i->events);
	rv_buf_u32(b, i->learners);
	rv_buf_f32(b, i->ndcg_before);
	rv_buf_f32(b, i->ndcg_after);
	rv_buf_u64(b, i->interleave_wins);
	rv_buf_u64(b, i->interleave_losses);
	rv_buf_u32(b, v->n_train);
	size_t at;
	blob_begin(b, &at);
	blob_end(b, at, v->base ? rv_lora_save(b, v->base) : RV_OK);
	blob_begin(b, &at);
	blob_end(b, at, v->regions ? rv_rbank_save(b, v->regions) : RV_OK);
	blob_begin(b, &at);
	blob_end(b, at, v->rerank ? rv_reranker_encode(b, v->rerank, old_to_new) : RV_OK);
	/* Layout 3: u32 n, then per away region u32 server, f32 centre[dim]. */
	rv_buf_u32(b, v->n_away);
	for (uint32_t a = 0; a < v->n_away; a++) {
		rv_buf_u32(b, v->away_v[a]);
		for (size_t d = 0; d < dim; d++)
			rv_buf_f32(b, v->away_c[a * dim + d]);
	}
}

bool rv_db_learn_encode_overlay(rv_buf *b, const rv_db *db, const uint32_t *old_to_new)
{
	const struct rv_learn_state *ls = db->ls;
	if (!db->learn_dirty && !db->adapter_changed)
		return false;
	rv_buf_u32(b, RV_OVERLAY_LEARNING);
	rv_buf_u32(b, (db->adapter ? OVERLAY_MICRO : 0) | (ls ? OVERLAY_STATE : 0));
	rv_buf_u64(b, db->adapter_version + (db->adapter_changed ? 1 : 0));
	rv_buf_u64(b, db->fb_total);
	rv_buf_u32(b, ls ? RV_OVERLAY_LAYOUT : 0);
	rv_buf_u32(b, 0);
	size_t at;
	if (db->adapter) {
		blob_begin(b, &at);
		blob_end(b, at, rv_lora_save(b, db->adapter));
	}
	if (!ls)
		return true;
	encode_config(b, &ls->cfg);
	rv_buf_u32(b, ls->active);
	rv_buf_u32(b, ls->candidate);
	rv_buf_u32(b, ls->next_version);
	rv_buf_u32(b, ls->n_versions);
	rv_buf_u64(b, ls->last_events);
	blob_begin(b, &at);
	blob_end(b, at, ls->live ? rv_reranker_encode(b, ls->live, old_to_new) : RV_OK);
	for (uint32_t i = 0; i < ls->n_versions; i++)
		encode_version(b, ls->v[i], db->dim, old_to_new);
	return true;
}

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

/* ======================================================================
 * OVERLAY: decoding
 * ==================================================================== */

void rv_learn_overlay_clear(rv_learn_overlay *o, const rv_alloc *a)
{
	rv_lora_free(o->micro);
	rv_learn_state_free(o->ls, a);
	memset(o, 0, sizeof *o);
}

/* The next length-prefixed blob: *p, *n (n = 0: none). */
static bool get_blob(rv_reader *r, const uint8_t **p, size_t *n)
{
	uint64_t len = rv_reader_u64(r);
	if (r->bad || len > rv_reader_left(r))
		return false;
	*n = (size_t)len;
	*p = rv_reader_bytes(r, (size_t)len);
	return *p != NULL || len == 0;
}

/* Wraps a learning-core loader's message with what was being read. */
static rv_status blob_fail(rv_err *e, rv_status st, const rv_err *inner, const char *what, uint32_t version)
{
	char name[64];
	if (version)
		snprintf(name, sizeof name, "%s of version %u", what, version);
	else
		snprintf(name, sizeof name, "%s", what);
	if (st == RV_ENOMEM)
		return rv_err_set(e, st, "out of memory loading the %s", name);
	return rv_err_set(e, st == RV_EVERSION ? RV_EVERSION : RV_ECORRUPT, "%s: %s", name, inner->msg);
}

static rv_status decode_lora(rv_lora **out, const rv_db *db, const uint8_t *p, size_t n, const char *what,
			     uint32_t version, rv_err *e)
{
	rv_err inner = { { 0 } };
	rv_status st = rv_lora_load(out, p, n, db->a, &inner);
	if (st != RV_OK)
		return blob_fail(e, st, &inner, what, version);
	if (rv_lora_get_opts(*out)->dim != db->dim)
		return rv_err_set(e, RV_ECORRUPT, "%s (version %u) has dimension %u, the collection %u", what, version,
				  rv_lora_get_opts(*out)->dim, db->dim);
	return RV_OK;
}

static rv_status decode_version(rv_lversion **out, const rv_db *db, rv_reader *r, uint32_t prev, uint32_t layout,
			       rv_err *e)
{
	rv_status st = RV_OK;
	rv_lversion *v = rv_calloc(db->a, 1, sizeof *v);
	*out = NULL;
	if (!v)
		return rv_err_nomem(e);
	rv_learn_version *i = &v->info;
	i->version = rv_reader_u32(r);
	i->parent = rv_reader_u32(r);
	i->created_ns = rv_reader_u64(r);
	i->events = rv_reader_u64(r);
	i->learners = rv_reader_u32(r);
	i->ndcg_before = rv_reader_f32(r);
	i->ndcg_after = rv_reader_f32(r);
	i->interleave_wins = rv_reader_u64(r);
	i->interleave_losses = rv_reader_u64(r);
	v->n_train = rv_reader_u32(r);
	const uint8_t *bp, *gp, *rp;
	size_t bn, gn, rn;
	if (r->bad || !get_blob(r, &bp, &bn) || !get_blob(r, &gp, &gn) || !get_blob(r, &rp, &rn)) {
		st = rv_err_set(e, RV_ECORRUPT, "version record truncated");
		goto done;
	}
	if (i->version <= prev || i->parent >= i->version || (i->learners & ~(unsigned)RV_LEARN_ALL) ||
	    !(i->ndcg_before >= 0 && i->ndcg_before <= 1) || !(i->ndcg_after >= 0 && i->ndcg_after <= 1)) {
		st = rv_err_set(e, RV_ECORRUPT, "version %u (after %u): number, parent %u, learners 0x%x or NDCG out of "
				"range", i->version, prev, i->parent, i->learners);
		goto done;
	}
	if (bn && (st = decode_lora(&v->base, db, bp, bn, "BaseLoRA", i->version, e)) != RV_OK)
		goto done;
	if (gn) {
		rv_err inner = { { 0 } };
		if ((st = rv_rbank_load(&v->regions, gp, gn, db->a, &inner)) != RV_OK) {
			st = blob_fail(e, st, &inner, "regions", i->version);
			goto done;
		}
		if (!rv_rbank_fitted(v->regions) || rv_rbank_centroids(v->regions) == NULL) {
			st = rv_err_set(e, RV_ECORRUPT, "regions of version %u were never fitted", i->version);
			goto done;
		}
		if (rv_rbank_dim(v->regions) != db->dim) {
			st = rv_err_set(e, RV_ECORRUPT, "regions of version %u have dimension %u, the collection %u",
					i->version, rv_rbank_dim(v->regions), db->dim);
			goto done;
		}
	}
	if (rn) {
		rv_err inner = { { 0 } };
		if ((st = rv_reranker_decode(&v->rerank, db, rp, rn, &inner)) != RV_OK) {
			st = blob_fail(e, st, &inner, "re-ranker", i->version);
			goto done;
		}
	}
	uint32_t n_away = layout >= 3 ? rv_reader_u32(r) : 0;
	if (r->bad || n_away > RV_LEARN_MAX_AWAY ||
	    rv_reader_left(r) / (4 + 4 * (size_t)db->dim) < n_away) {
		st = rv_err_set(e, RV_ECORRUPT, "version %u: %u away regions (at most %d) or truncated", i->version, n_away,
				RV_LEARN_MAX_AWAY);
		goto done;
	}
	if (n_away) {
		v->away_v = rv_malloc(db->a, n_away * sizeof *v->away_v);
		v->away_c = rv_malloc(db->a, (size_t)n_away * db->dim * sizeof(float));
		if (!v->away_v || !v->away_c) {
			st = rv_err_nomem(e);
			goto done;
		}
		for (uint32_t a = 0; a < n_away; a++) {
			v->away_v[a] = rv_reader_u32(r);
			bool finite = true;
			for (size_t d = 0; d < db->dim; d++) {
				float x = rv_reader_f32(r);
				finite &= isfinite(x) != 0;
				v->away_c[(size_t)a * db->dim + d] = x;
			}
			/* A region is served by an older version (which may have
			 * been dropped since: its queries take this version). */
			if (!finite || v->away_v[a] == 0 || v->away_v[a] >= i->version) {
				st = rv_err_set(e, RV_ECORRUPT, "version %u: away region %u names version %u or has a "
						"centre that is not finite", i->version, a, v->away_v[a]);
				goto done;
			}
		}
		v->n_away = n_away;
	}
	*out = v;
	v = NULL;
done:
	rv_lversion_free(v, db->a);
	return st;
}

static rv_status decode_state(struct rv_learn_state *ls, const rv_db *db, rv_reader *r, uint64_t events,
			      uint32_t layout, rv_err *e)
{
	rv_learn_config c = RV_LEARN_CONFIG_INIT;
	c.learners = rv_reader_u32(r);
	c.gnn = (rv_gnn_kind)rv_reader_u32(r);
	c.base_rank = rv_reader_u32(r);
	c.ewc_lambda = rv_reader_f32(r);
	c.rerank_pool = rv_reader_u32(r);
	c.auto_consolidate = rv_reader_u32(r);
	c.regions = rv_reader_u32(r);
	c.recall_target = rv_reader_f32(r);
	if (layout >= 3)
		c.away_regions = rv_reader_u32(r);
	if (layout >= 4) {
		uint16_t cl = rv_reader_u16(r);
		const uint8_t *cb = cl ? rv_reader_bytes(r, cl) : NULL;
		if (r->bad || cl >= RV_LEARN_CATEGORY_MAX || (cl && !cb))
			return rv_err_set(e, RV_ECORRUPT, "learning configuration: category field of %u bytes", cl);
		if (cl)
			memcpy(c.category, cb, cl);
		c.category[cl] = 0;
	}
	uint32_t active = rv_reader_u32(r), candidate = rv_reader_u32(r);
	uint32_t next = rv_reader_u32(r), n = rv_reader_u32(r);
	uint64_t last = rv_reader_u64(r);
	if (r->bad)
		return rv_err_set(e, RV_ECORRUPT, "learning state truncated");
	rv_err inner = { { 0 } };
	if (rv_learn_check_config(&c, &inner) != RV_OK)
		return rv_err_set(e, RV_ECORRUPT, "learning configuration: %s", inner.msg);
	if (n > RV_LEARN_MAX_VERSIONS || last > events)
		return rv_err_set(e, RV_ECORRUPT, "%u versions (at most %d), or %llu events at the last consolidation "
				  "of %llu", n, RV_LEARN_MAX_VERSIONS, (unsigned long long)last,
				  (unsigned long long)events);
	ls->cfg = c;
	ls->last_events = last;
	const uint8_t *lp;
	size_t ln;
	if (!get_blob(r, &lp, &ln))
		return rv_err_set(e, RV_ECORRUPT, "live re-ranker truncated");
	if (ln) {
		rv_status st = rv_reranker_decode(&ls->live, db, lp, ln, &inner);
		if (st != RV_OK)
			return blob_fail(e, st, &inner, "live re-ranker", active);
	}
	uint32_t prev = 0;
	for (uint32_t i = 0; i < n; i++) {
		rv_status st = decode_version(&ls->v[i], db, r, prev, layout, e);
		if (st != RV_OK)
			return st;
		ls->n_versions = i + 1;
		prev = ls->v[i]->info.version;
		if (ls->v[i]->info.events > events)
			return rv_err_set(e, RV_ECORRUPT, "version %u was made after %llu events, the file has %llu", prev,
					  (unsigned long long)ls->v[i]->info.events, (unsigned long long)events);
	}
	if (rv_reader_left(r) != 0)
		return rv_err_set(e, RV_ECORRUPT, "learning state has %zu trailing bytes", rv_reader_left(r));
	if (next <= prev || (active && !rv_learn_find(ls, active)) || (candidate && !rv_learn_find(ls, candidate)) ||
	    (candidate && candidate == active))
		return rv_err_set(e, RV_ECORRUPT, "active version %u, candidate %u or next version %u do not match the "
				  "%u versions kept", active, candidate, next, n);
	if (ls->live && !active)
		return rv_err_set(e, RV_ECORRUPT, "a live re-ranker without an active version");
	ls->active = active;
	ls->candidate = candidate;
	ls->next_version = next;
	return RV_OK;
}

rv_status rv_learn_decode_overlay(rv_learn_overlay *out, const rv_db *db, const uint8_t *p, size_t n, rv_err *e)
{
	rv_status st = RV_OK;
	rv_learn_overlay o;
	memset(&o, 0, sizeof o);
	memset(out, 0, sizeof *out);
	rv_reader r;
	rv_reader_init(&r, p, n);
	uint32_t kind = rv_reader_u32(&r), flags = rv_reader_u32(&r);
	o.adapter_version = rv_reader_u64(&r);
	o.events = rv_reader_u64(&r);
	uint32_t layout = rv_reader_u32(&r), reserved = rv_reader_u32(&r);
	if (r.bad || kind != RV_OVERLAY_LEARNING || reserved != 0)
		return rv_err_set(e, RV_ECORRUPT, "OVERLAY header malformed (kind %u)", kind);
	if (layout > RV_OVERLAY_LAYOUT)
		return rv_err_set(e, RV_EVERSION, "OVERLAY layout %u needs a newer ruvector (this one reads up to %u)",
				  layout, RV_OVERLAY_LAYOUT);
	/* Layout 1 wrote a zero here and knew only the MicroLoRA flag. */
	o.layout = layout ? layout : 1;
	if (layout == 1 || (o.layout == 1 && flags > OVERLAY_MICRO) ||
	    (o.layout >= 2 && flags != (flags & OVERLAY_MICRO) + OVERLAY_STATE))
		return rv_err_set(e, RV_ECORRUPT, "OVERLAY flags 0x%x do not match layout %u", flags, o.layout);
	if (flags & OVERLAY_MICRO) {
		const uint8_t *mp;
		size_t mn;
		if (!get_blob(&r, &mp, &mn) || mn == 0 || (o.layout == 1 && rv_reader_left(&r) != 0)) {
			st = rv_err_set(e, RV_ECORRUPT, "OVERLAY adapter length does not match");
			goto done;
		}
		if ((st = decode_lora(&o.micro, db, mp, mn, "MicroLoRA", 0, e)) != RV_OK)
			goto done;
	}
	if (o.layout == 1) {
		if (rv_reader_left(&r) != 0)
			st = rv_err_set(e, RV_ECORRUPT, "OVERLAY has %zu trailing bytes", rv_reader_left(&r));
		goto done;
	}
	if ((st = rv_learn_state_new(&o.ls, db, e)) != RV_OK)
		goto done;
	st = decode_state(o.ls, db, &r, o.events, o.layout, e);
done:
	if (st != RV_OK)
		rv_learn_overlay_clear(&o, db->a);
	else
		*out = o;
	return st;
}

/* ======================================================================
 * Load
 * ==================================================================== */

static rv_status seg_fail(rv_db *db, const rv_seg_ref *s, rv_status st, const rv_err *e)
{
	if (st == RV_ENOMEM)
		return rv_db_fail(db, st, "%s: %s", db->path, e->msg);
	return rv_db_fail(db, st, "%s: segment %llu (%s) at offset %llu: %s", db->path, (unsigned long long)s->seg_id,
			  rv_seg_type_name(s->type), (unsigned long long)s->offset, e->msg);
}

rv_status rv_db_learn_load(rv_db *db, const rv_manifest *m)
{
	rv_err e = { { 0 } };
	uint64_t events = 0;
	rv_learn_overlay o;
	memset(&o, 0, sizeof o);
	const rv_seg_ref *overlay = NULL;
	rv_status st = RV_OK;
	for (size_t i = 0; i < m->n_segs; i++) {
		const rv_seg_ref *s = &m->segs[i];
		if (s->type != RV_SEG_JOURNAL && s->type != RV_SEG_OVERLAY)
			continue;
		const uint8_t *p;
		if ((st = rv_file_segment_data(&p, db->file, s, &e)) != RV_OK)
			return rv_db_fail_err(db, st, &e);
		if (s->type == RV_SEG_JOURNAL) {
			if (s->length < 4 || rv_get_u32(p) != RV_JOURNAL_FEEDBACK)
				continue;
			if ((st = rv_learn_decode_events(db, p, s->length, &events, &e)) != RV_OK)
				return seg_fail(db, s, st, &e);
			db->fb_journals++;
			continue;
		}
		/* The commit that writes an OVERLAY drops the previous one. */
		if (overlay) {
			rv_err_set(&e, RV_ECORRUPT, "a second OVERLAY segment in the manifest");
			return seg_fail(db, s, RV_ECORRUPT, &e);
		}
		overlay = s;
		if ((st = rv_learn_decode_overlay(&o, db, p, s->length, &e)) != RV_OK)
			return seg_fail(db, s, st, &e);
	}
	if (!o.ls && (st = rv_learn_state_new(&o.ls, db, &e)) != RV_OK) {
		rv_learn_overlay_clear(&o, db->a);
		return rv_db_fail_err(db, st, &e);
	}
	db->adapter = o.micro;
	db->adapter_version = o.adapter_version;
	db->overlay_seg_id = overlay ? overlay->seg_id : 0;
	db->ls = o.ls;
	/* Compaction keeps only the replay buffer's events; the overlay keeps
	 * the count of all. */
	db->fb_total = events > o.events ? events : o.events;
	if (db->ls->last_events > db->fb_total)
		db->ls->last_events = db->fb_total;
	return RV_OK;
}
