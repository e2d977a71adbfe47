/*
 * db_commit.c - turning the in-memory changes into segments: commit,
 * graph checkpoints, compaction. Payload layouts are in docs/FORMAT.md
 * ("VEC segment", "META segment", "JOURNAL segment", "Collection state").
 *
 * A commit appends, for the slots added since the last one, VEC segments
 * (vectors, at most ~64 MiB each so a writer never needs one huge buffer)
 * and META segments (ids + payload texts), then one JOURNAL segment listing
 * the slots that died, then the quantizer (a QUANT segment, once, by the
 * first commit after it was trained) and the codes of the new slots (QUANT
 * segments of kind 2), then - when enough has changed that
 * replaying it on the next open would be slow - an INDEX segment with the
 * whole graph, and finally the manifest. Nothing in memory changes until
 * the store reports the manifest durable, so a failed commit can simply be
 * retried.
 */
#include <stdio.h>
#include <unistd.h>

#include "db_int.h"

#define VEC_SEG_BYTES ((size_t)64 << 20)
#define META_SEG_BYTES ((size_t)16 << 20)

void rv_db_encode_state(const rv_db *db, rv_buf *b, uint32_t n_slots, uint64_t live,
			uint64_t index_seg_id, uint32_t index_covered)
{
	size_t start = b->len;
	/* Version 1 when there is no feedback in the file, so that older
	 * readers keep opening it. */
	bool feedback = db->fb_journals || db->n_fb_pending || db->fb_replay_n;
	rv_buf_u32(b, feedback ? RV_STATE_VERSION : 1);
	rv_buf_u32(b, db->dim);
	rv_buf_u8(b, (uint8_t)db->metric);
	/* Quantization lives in bytes that version 1 wrote as zero (no
	 * quantizer); the file header's RV_FEATURE_QUANT keeps older readers
	 * out of quantized files. */
	rv_buf_u8(b, (uint8_t)db->quant);
	rv_buf_u16(b, (uint16_t)db->pq_m);
	rv_buf_u32(b, db->m);
	rv_buf_u32(b, db->ef_construction);
	rv_buf_u32(b, db->ef_search);
	rv_buf_u64(b, db->seed);
	rv_buf_u32(b, n_slots);
	rv_buf_u32(b, db->rerank);
	rv_buf_u64(b, live);
	rv_buf_u64(b, index_seg_id);
	rv_buf_u32(b, index_covered);
	rv_buf_u32(b, db->learning ? RV_STATE_LEARNING : 0);
	(void)start;
}

/* Growable list of segment references. */
typedef struct seg_list {
	rv_seg_ref *v;
	size_t n, cap;
	const rv_alloc *a;
} seg_list;

static bool seg_push(seg_list *l, const rv_seg_ref *r)
{
	if (!rv_grow(l->a, (void **)&l->v, &l->cap, l->n + 1, sizeof *l->v))
		return false;
	l->v[l->n++] = *r;
	return true;
}

/* Source of slot data for the encoders: either the collection itself, or
 * (compaction) a renumbering of its live slots. */
typedef struct slot_src {
	const rv_db *db;
	const uint32_t *map; /* new slot -> old slot, or NULL for identity */
} slot_src;

static uint32_t src_slot(const slot_src *s, uint32_t i) { return s->map ? s->map[i] : i; }

static rv_status append_buf(rv_file *f, uint8_t type, rv_buf *b, seg_list *out, rv_err *e)
{
	if (b->failed)
		return rv_err_set(e, RV_ENOMEM, "out of memory encoding a %s segment", rv_seg_type_name(type));
	rv_seg_ref ref;
	rv_status st = rv_file_append(f, type, 0, b->data, b->len, &ref, e);
	if (st == RV_OK && !seg_push(out, &ref))
		st = rv_err_set(e, RV_ENOMEM, "out of memory");
	return st;
}

/* VEC and META segments for new slots [first, end) of src. */
static rv_status write_slots(rv_file *f, const slot_src *src, uint32_t first, uint32_t end,
			     seg_list *out, rv_err *e)
{
	const rv_db *db = src->db;
	size_t vec_bytes = (size_t)db->dim * sizeof(float);
	size_t per_seg = VEC_SEG_BYTES / vec_bytes;
	if (per_seg < 1)
		per_seg = 1;
	rv_status st = RV_OK;
	rv_buf b;
	rv_buf_init(&b, db->a);
	for (uint32_t s = first; s < end && st == RV_OK;) {
		uint32_t count = (uint32_t)((end - s) < per_seg ? (end - s) : per_seg);
		b.len = 0;
		rv_buf_u32(&b, s);
		rv_buf_u32(&b, count);
		rv_buf_u32(&b, db->dim);
		rv_buf_zero(&b, 64 - 12);
		if (rv_buf_reserve(&b, (size_t)count * vec_bytes)) {
			for (uint32_t i = 0; i < count; i++) {
				const float *v = db->vecs.ptr[src_slot(src, s + i)];
				memcpy(b.data + b.len, v, vec_bytes); /* little-endian host */
				b.len += vec_bytes;
			}
		}
		st = append_buf(f, RV_SEG_VEC, &b, out, e);
		s += count;
	}
	for (uint32_t s = first; s < end && st == RV_OK;) {
		b.len = 0;
		rv_buf_u32(&b, s);
		rv_buf_u32(&b, 0); /* count, patched below */
		uint32_t count = 0;
		while (s + count < end && b.len < META_SEG_BYTES && !b.failed) {
			uint32_t o = src_slot(src, s + count);
			bool live = db->flags[o] & RV_SLOT_LIVE;
			/* A slot that died before its first commit keeps its place
			 * with an empty id; the JOURNAL marks it dead. */
			const char *id = live ? db->ids[o] : "";
			const char *text = live ? db->payload_text[o] : NULL;
			size_t id_len = strlen(id), plen = text ? strlen(text) : 0;
			rv_buf_u8(&b, (uint8_t)id_len);
			rv_buf_put(&b, id, id_len);
			rv_buf_u8(&b, 0);
			rv_buf_u32(&b, (uint32_t)plen);
			if (plen) {
				rv_buf_put(&b, text, plen);
				rv_buf_u8(&b, 0);
			}
			count++;
		}
		if (!b.failed)
			rv_put_u32(b.data + 4, count);
		st = append_buf(f, RV_SEG_META, &b, out, e);
		s += count;
	}
	rv_buf_free(&b);
	return st;
}

static rv_status write_journal(rv_file *f, const rv_db *db, seg_list *out, rv_err *e)
{
	uint32_t dead_new = 0;
	for (uint32_t s = db->committed_slots; s < db->vecs.n; s++)
		dead_new += !(db->flags[s] & RV_SLOT_LIVE);
	if (db->n_pending_deletes == 0 && dead_new == 0)
		return RV_OK;
	rv_buf b;
	rv_buf_init(&b, db->a);
	rv_buf_u32(&b, 1); /* kind: deleted slots */
	rv_buf_u32(&b, (uint32_t)(db->n_pending_deletes + dead_new));
	for (size_t i = 0; i < db->n_pending_deletes; i++)
		rv_buf_u32(&b, db->pending_deletes[i]);
	for (uint32_t s = db->committed_slots; s < db->vecs.n; s++)
		if (!(db->flags[s] & RV_SLOT_LIVE))
			rv_buf_u32(&b, s);
	rv_status st = append_buf(f, RV_SEG_JOURNAL, &b, out, e);
	rv_buf_free(&b);
	return st;
}

/* The feedback events (pending, or for compaction the replay buffer) as a
 * JOURNAL of kind 2, and the learning OVERLAY; *events / *overlay say
 * whether each was written. */
static rv_status write_learning(rv_file *f, const rv_db *db, bool replay, const uint32_t *old_to_new,
				seg_list *out, bool *events, bool *overlay, rv_err *e)
{
	rv_status st = RV_OK;
	rv_buf b;
	rv_buf_init(&b, db->a);
	*events = *overlay = false;
	if (rv_db_learn_encode_events(&b, db, replay, old_to_new)) {
		if ((st = append_buf(f, RV_SEG_JOURNAL, &b, out, e)) != RV_OK)
			goto done;
		*events = true;
	}
	b.len = 0;
	if (rv_db_learn_encode_overlay(&b, db, old_to_new)) {
		if ((st = append_buf(f, RV_SEG_OVERLAY, &b, out, e)) != RV_OK)
			goto done;
		*overlay = true;
	}
done:
	rv_buf_free(&b);
	return st;
}

/* The quantizer as a QUANT segment of kind 1 (when write_qz), and the
 * codes of slots [first, end) of src as QUANT segments of kind 2 (at most
 * ~64 MiB each), in the quantizer's own layout: the graph's row when it is
 * that (PQ, binary, SQ8 of L2), else encoded again from the vector (SQ8
 * without the norm in its row; cheap). A dead slot's code is written as
 * zeros: its row may never have been filled. *qz_id gets the kind-1
 * segment's id (0 when not written). */
static rv_status write_quant(rv_file *f, const slot_src *src, bool write_qz, uint32_t first, uint32_t end,
			     seg_list *out, uint64_t *qz_id, rv_err *e)
{
	const rv_db *db = src->db;
	const rv_quantizer *qz = rv_hnsw_quantizer(db->index);
	*qz_id = 0;
	if (!qz)
		return RV_OK;
	rv_status st = RV_OK;
	rv_buf b;
	rv_buf_init(&b, db->a);
	if (write_qz) {
		rv_qseg_put_quantizer(&b, qz, db->qz_sample);
		if ((st = append_buf(f, RV_SEG_QUANT, &b, out, e)) != RV_OK)
			goto done;
		*qz_id = out->v[out->n - 1].seg_id;
	}
	size_t cb = rv_quantizer_code_size(qz);
	size_t per_seg = VEC_SEG_BYTES / cb;
	for (uint32_t s = first; s < end && st == RV_OK;) {
		uint32_t count = (uint32_t)((end - s) < per_seg ? (end - s) : per_seg);
		b.len = 0;
		rv_qseg_put_codes_header(&b, s, count, (uint32_t)cb);
		if (rv_buf_reserve(&b, (size_t)count * cb)) {
			for (uint32_t i = 0; i < count; i++) {
				uint32_t o = src_slot(src, s + i);
				uint8_t *c = b.data + b.len;
				if (!(db->flags[o] & RV_SLOT_LIVE))
					memset(c, 0, cb);
				else if (rv_hnsw_code_of(db->index, o, c) != cb)
					rv_quantizer_encode(qz, db->vecs.ptr[o], c);
				b.len += cb;
			}
		}
		st = append_buf(f, RV_SEG_QUANT, &b, out, e);
		s += count;
	}
done:
	rv_buf_free(&b);
	return st;
}

static rv_status write_index(rv_file *f, const rv_hnsw *index, const rv_alloc *a, seg_list *out,
			     rv_err *e)
{
	rv_buf b;
	rv_buf_init(&b, a);
	rv_status st = rv_hnsw_save(index, &b, e);
	if (st == RV_OK)
		st = append_buf(f, RV_SEG_INDEX, &b, out, e);
	rv_buf_free(&b);
	return st;
}

/* Whether replaying the graph changes on the next open would cost enough
 * to be worth rewriting the graph now: small graphs always, big ones once
 * the changes reach 1/64 of the nodes or 16k operations. */
static bool want_checkpoint(const rv_db *db)
{
	uint64_t nodes = rv_hnsw_count(db->index);
	if (db->graph_ops == 0)
		return false;
	return nodes <= 8192 || db->graph_ops >= 16384 || db->graph_ops * 64 >= nodes;
}

static void report(const rv_db *db, const char *what, uint64_t done, uint64_t total)
{
	if (db->progress)
		db->progress(db->progress_ctx, what, done, total);
}

/* A trained quantizer that is not in the file yet (trained by an upsert,
 * or at open for a file whose training was never committed). */
static bool quant_unsaved(const rv_db *db)
{
	return rv_db_quant_trained(db) && db->quant_seg_id == 0;
}

static rv_status commit_locked(rv_db *db)
{
	if (!db->dirty && !quant_unsaved(db))
		return RV_OK;
	rv_err e = { { 0 } };
	seg_list added = { .a = db->a };
	seg_list all = { .a = db->a };
	rv_buf state;
	rv_buf_init(&state, db->a);
	rv_status st;

	report(db, "commit", 0, 1);
	if ((st = write_slots(db->file, &(slot_src){ db, NULL }, db->committed_slots, db->vecs.n, &added, &e)) !=
		    RV_OK ||
	    (st = write_journal(db->file, db, &added, &e)) != RV_OK)
		goto done;
	bool wrote_events, wrote_overlay;
	if ((st = write_learning(db->file, db, false, NULL, &added, &wrote_events, &wrote_overlay, &e)) != RV_OK)
		goto done;
	uint64_t overlay_id = wrote_overlay ? added.v[added.n - 1].seg_id : 0;
	uint64_t qz_id;
	if ((st = write_quant(db->file, &(slot_src){ db, NULL }, quant_unsaved(db), db->codes_committed, db->vecs.n,
			      &added, &qz_id, &e)) != RV_OK)
		goto done;
	bool ckpt = want_checkpoint(db);
	if (ckpt) {
		report(db, "checkpoint", 0, 1);
		/* The graph is about to be saved: first make sure every node can
		 * be reached (pruning leaves a few that cannot). Only quality is at
		 * stake, so running out of memory here just skips it. */
		uint64_t attached;
		rv_err ignored;
		rv_hnsw_attach_orphans(db->index, &attached, &ignored);
		if ((st = write_index(db->file, db->index, db->a, &added, &e)) != RV_OK)
			goto done;
	}
	uint64_t index_id = ckpt ? added.v[added.n - 1].seg_id : db->index_seg_id;
	uint32_t covered = ckpt ? db->vecs.n : db->index_covered;

	/* Live segments: the old ones (minus a replaced checkpoint), then the
	 * new ones in the order written. */
	for (size_t i = 0; i < db->n_segs; i++) {
		if (ckpt && db->segs[i].type == RV_SEG_INDEX)
			continue;
		if (wrote_overlay && db->segs[i].type == RV_SEG_OVERLAY)
			continue;
		if (!seg_push(&all, &db->segs[i]))
			goto nomem;
	}
	for (size_t i = 0; i < added.n; i++)
		if (!seg_push(&all, &added.v[i]))
			goto nomem;
	rv_db_encode_state(db, &state, db->vecs.n, db->live, index_id, covered);
	if (state.failed)
		goto nomem;
	rv_manifest m = { .generation = db->generation + 1, .state = state.data, .state_len = state.len,
			  .segs = all.v, .n_segs = all.n };
	if ((st = rv_file_commit(db->file, &m, &e)) != RV_OK)
		goto done;

	/* Durable: now the in-memory bookkeeping moves on. */
	rv_dealloc(db->a, db->segs);
	db->segs = all.v;
	db->n_segs = all.n;
	db->segs_cap = all.cap;
	all.v = NULL;
	db->generation++;
	db->committed_slots = db->vecs.n;
	db->n_pending_deletes = 0;
	db->index_seg_id = index_id;
	db->index_covered = covered;
	if (qz_id)
		db->quant_seg_id = qz_id;
	if (rv_db_quant_trained(db))
		db->codes_committed = db->vecs.n;
	if (ckpt)
		db->graph_ops = 0;
	rv_db_learn_committed(db, wrote_events, overlay_id);
	db->dirty = false;
	report(db, "commit", 1, 1);
	goto done;
nomem:
	st = rv_err_set(&e, RV_ENOMEM, "out of memory in commit");
done:
	if (st != RV_OK)
		rv_db_fail(db, st, "commit of %s failed: %s", db->path, e.msg);
	rv_dealloc(db->a, added.v);
	rv_dealloc(db->a, all.v);
	rv_buf_free(&state);
	return st;
}

rv_status rv_db_commit(rv_db *db)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	rv_db_write_lock(db);
	rv_status st = commit_locked(db);
	rv_db_write_unlock(db);
	return st;
}

/* ======================================================================
 * Compaction
 * ==================================================================== */

/* The graph of the compacted file: the saved graph renumbered (link for
 * link the same, no distances), or - when dead nodes linger in it after an
 * out-of-memory repair - a fresh build over the live points. */
static rv_status compacted_graph(rv_buf *out, rv_db *db, const uint32_t *old_to_new,
				 const uint32_t *new_to_old, uint32_t n, rv_err *e)
{
	rv_status st = RV_OK;
	if (db->zombies == 0) {
		rv_buf saved;
		rv_buf_init(&saved, db->a);
		st = rv_hnsw_save(db->index, &saved, e);
		if (st == RV_OK)
			st = rv_hnsw_remap_saved(out, saved.data, saved.len, old_to_new, db->vecs.n, n, e);
		rv_buf_free(&saved);
		if (st != RV_EINVAL)
			return st;
		out->len = 0;
	}
	rv_vecs vecs = { NULL, n, db->dim };
	rv_hnsw *g = NULL;
	uint32_t *order = rv_malloc(db->a, ((size_t)n + 1) * sizeof *order);
	vecs.ptr = rv_malloc(db->a, ((size_t)n + 1) * sizeof *vecs.ptr);
	if (!order || !vecs.ptr) {
		st = rv_err_set(e, RV_ENOMEM, "out of memory in compaction");
		goto done;
	}
	for (uint32_t i = 0; i < n; i++) {
		order[i] = i;
		vecs.ptr[i] = db->vecs.ptr[new_to_old[i]];
	}
	rv_hnsw_params hp;
	rv_db_hnsw_params(db, &hp);
	if ((st = rv_hnsw_new(&g, &hp, &vecs, db->a, e)) == RV_OK &&
	    (n == 0 || (st = rv_hnsw_insert_batch(g, order, n, db->threads, NULL, NULL, e)) == RV_OK))
		st = rv_hnsw_save(g, out, e);
done:
	rv_hnsw_free(g);
	rv_dealloc(db->a, order);
	rv_dealloc(db->a, vecs.ptr);
	return st;
}

/* Write the live points of db, renumbered densely, into a new file at
 * tmp with a fresh graph checkpoint. */
static rv_status write_compacted(rv_db *db, const char *tmp, rv_err *e)
{
	rv_status st;
	uint32_t *map = NULL, *old_to_new = NULL;
	rv_file *f = NULL;
	seg_list segs = { .a = db->a };
	rv_buf state, graph;
	rv_buf_init(&state, db->a);
	rv_buf_init(&graph, db->a);

	uint32_t n = (uint32_t)db->live;
	map = rv_malloc(db->a, ((size_t)n + 1) * sizeof *map);
	old_to_new = rv_malloc(db->a, ((size_t)db->vecs.n + 1) * sizeof *old_to_new);
	if (!map || !old_to_new)
		goto nomem;
	uint32_t j = 0;
	for (uint32_t s = 0; s < db->vecs.n; s++) {
		old_to_new[s] = UINT32_MAX;
		if (db->flags[s] & RV_SLOT_LIVE) {
			map[j] = s;
			old_to_new[s] = j++;
		}
	}
	report(db, "compact", 0, n);
	if ((st = compacted_graph(&graph, db, old_to_new, map, n, e)) != RV_OK)
		goto done;

	rv_db_encode_state(db, &state, 0, 0, 0, 0);
	if (state.failed)
		goto nomem;
	rv_manifest m0 = { .generation = db->generation + 1, .state = state.data, .state_len = state.len };
	if ((st = rv_file_create_v2(&f, tmp, &m0, rv_file_features(db->file), db->a, e)) != RV_OK)
		goto done;
	/* Feedback survives compaction as one JOURNAL holding the replay
	 * buffer (slots renumbered; items gone since have no slot) and a
	 * fresh OVERLAY, which keeps the count of all events ever. */
	bool wrote_events, wrote_overlay;
	bool dirty_before = db->learn_dirty;
	db->learn_dirty = true;
	st = write_slots(f, &(slot_src){ db, map }, 0, n, &segs, e);
	if (st == RV_OK)
		st = write_learning(f, db, true, old_to_new, &segs, &wrote_events, &wrote_overlay, e);
	db->learn_dirty = dirty_before;
	/* The quantizer carries over unchanged (no retraining: the codes of
	 * the points stay what they were), the codes renumbered with the
	 * slots. The checkpoint stays the last segment: the state names it. */
	uint64_t qz_id;
	if (st == RV_OK)
		st = write_quant(f, &(slot_src){ db, map }, true, 0, n, &segs, &qz_id, e);
	if (st != RV_OK || (st = append_buf(f, RV_SEG_INDEX, &graph, &segs, e)) != RV_OK)
		goto done;
	state.len = 0;
	rv_db_encode_state(db, &state, n, n, segs.v[segs.n - 1].seg_id, n);
	if (state.failed)
		goto nomem;
	rv_manifest m = { .generation = db->generation + 2, .state = state.data, .state_len = state.len,
			  .segs = segs.v, .n_segs = segs.n };
	st = rv_file_commit(f, &m, e);
	goto done;
nomem:
	st = rv_err_set(e, RV_ENOMEM, "out of memory in compaction");
done:
	rv_file_close(f);
	rv_dealloc(db->a, map);
	rv_dealloc(db->a, old_to_new);
	rv_dealloc(db->a, segs.v);
	rv_buf_free(&state);
	rv_buf_free(&graph);
	return st;
}

rv_status rv_db_compact(rv_db *db)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	rv_err e = { { 0 } };
	char *tmp = NULL;
	rv_db_write_lock(db);
	rv_status st = commit_locked(db);
	if (st != RV_OK)
		goto done;
	size_t plen = strlen(db->path);
	if (!(tmp = rv_malloc(db->a, plen + 16))) {
		st = rv_db_fail(db, RV_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(tmp, plen + 16, "%s.compact", db->path);
	unlink(tmp);
	if ((st = write_compacted(db, tmp, &e)) != RV_OK) {
		unlink(tmp);
		rv_db_fail(db, st, "compaction of %s failed: %s", db->path, e.msg);
		goto done;
	}
	if ((st = rv_file_rename_over(tmp, db->path, &e)) != RV_OK) {
		unlink(tmp);
		rv_db_fail_err(db, st, &e);
		goto done;
	}
	/* The old file is gone from the directory; drop it and load the new. */
	rv_db_unload(db);
	st = rv_db_load(db);
	if (st == RV_OK)
		report(db, "compact", db->live, db->live);
done:
	rv_dealloc(db->a, tmp);
	rv_db_write_unlock(db);
	return st;
}
