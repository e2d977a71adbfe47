/*
 * db_write.c - upsert and delete.
 *
 * An upsert batch is validated whole before anything changes, then every
 * allocation it needs is made (the graph's too: rv_hnsw_batch_prepare),
 * then it is applied: new slots are assigned and ids mapped, all under the
 * exclusive lock. A batch that fails, RV_ENOMEM included, is rolled back
 * to exactly the state before it, since nothing fails after this point.
 * The new slots are then linked into the graph (on several threads for
 * large batches) with the lock held shared, so searches run meanwhile;
 * last, under the exclusive lock again, the points the batch replaced are
 * unlinked. db_int.h (Locking) has the steps and the lock order.
 *
 * A dead slot is unlinked from the graph with repair. If the repair itself
 * runs out of memory the node stays in the graph as a "zombie": searches
 * then skip dead slots through the accept callback until a later write
 * manages to unlink it.
 *
 * Quantization: the upsert that brings a quantized collection to
 * rv_db_train_min points trains its quantizer, after the batch's vectors
 * are in their slots and before they enter the graph, so the graph
 * encodes them as it links them (a first batch upsert is never encoded
 * twice). If the graph insert then fails, the training is undone with the
 * rest of the batch.
 */
#include <math.h>
#include <stdlib.h>

#include "db_int.h"

/* ======================================================================
 * Slot tables
 * ==================================================================== */

bool rv_db_reserve_slots(rv_db *db, size_t extra)
{
	size_t need = (size_t)db->vecs.n + extra;
	if (need > (size_t)UINT32_MAX - 1)
		return false;
	if (need <= db->slot_cap)
		return true;
	size_t cap = db->slot_cap ? db->slot_cap : 64;
	while (cap < need)
		cap = cap * 2 > (size_t)UINT32_MAX - 1 ? (size_t)UINT32_MAX - 1 : cap * 2;
	/* Grow all per-slot tables; each realloc keeps the old block valid on
	 * failure, so a partial failure leaves larger-but-consistent tables. */
	void *p;
	if (!(p = rv_realloc(db->a, db->vecs.ptr, cap * sizeof(float *))))
		return false;
	db->vecs.ptr = p;
	if (!(p = rv_realloc(db->a, db->ids, cap * sizeof(char *))))
		return false;
	db->ids = p;
	if (!(p = rv_realloc(db->a, db->payload_text, cap * sizeof(char *))))
		return false;
	db->payload_text = p;
	if (!(p = rv_realloc(db->a, db->payload, cap * sizeof(cJSON *))))
		return false;
	db->payload = p;
	if (!(p = rv_realloc(db->a, db->flags, cap)))
		return false;
	db->flags = p;
	size_t old = db->slot_cap;
	memset(db->vecs.ptr + old, 0, (cap - old) * sizeof(float *));
	memset(db->ids + old, 0, (cap - old) * sizeof(char *));
	memset(db->payload_text + old, 0, (cap - old) * sizeof(char *));
	memset(db->payload + old, 0, (cap - old) * sizeof(cJSON *));
	memset(db->flags + old, 0, cap - old);
	db->slot_cap = cap;
	return true;
}

void rv_db_forget_slot(rv_db *db, uint32_t slot)
{
	if (db->payload[slot]) {
		cJSON_Delete(db->payload[slot]);
		db->payload[slot] = NULL;
	}
	if (db->flags[slot] & RV_SLOT_HEAP_PAYLOAD)
		rv_dealloc(db->a, (void *)db->payload_text[slot]);
	db->payload_text[slot] = NULL;
	if (db->flags[slot] & RV_SLOT_HEAP_ID) {
		rv_dealloc(db->a, (void *)db->ids[slot]);
		db->ids[slot] = "";
	}
	db->flags[slot] &= (uint8_t)~(RV_SLOT_HEAP_ID | RV_SLOT_HEAP_PAYLOAD);
}

void rv_db_unlink_slot(rv_db *db, uint32_t slot)
{
	if (!rv_hnsw_contains(db->index, slot))
		return;
	rv_err e;
	bool was_zombie = db->flags[slot] & RV_SLOT_ZOMBIE;
	if (rv_hnsw_delete(db->index, slot, &e) == RV_OK) {
		if (was_zombie) {
			db->flags[slot] &= (uint8_t)~RV_SLOT_ZOMBIE;
			db->zombies--;
		}
	} else if (!was_zombie) {
		db->flags[slot] |= RV_SLOT_ZOMBIE;
		db->zombies++;
	}
}

/* Retry unlinking zombies (after an earlier out-of-memory). */
static void reap_zombies(rv_db *db)
{
	for (uint32_t s = 0; db->zombies && s < db->vecs.n; s++)
		if (db->flags[s] & RV_SLOT_ZOMBIE)
			rv_db_unlink_slot(db, s);
}

/* The heap arena: fixed-size chunks that are never moved or freed before
 * unload, so vector pointers handed out stay valid. arena_reserve makes sure
 * n more vectors fit without allocating; arena_take then hands them out. */
static size_t arena_free(const rv_db *db)
{
	if (db->cur_chunk >= db->n_chunks)
		return db->n_chunks * db->chunk_vectors;
	return (db->n_chunks - db->cur_chunk) * db->chunk_vectors - db->chunk_used;
}

static bool arena_reserve(rv_db *db, size_t n)
{
	while (arena_free(db) < n) {
		if (!rv_grow(db->a, (void **)&db->chunks, &db->chunks_cap, db->n_chunks + 1, sizeof(float *)))
			return false;
		float *c = rv_malloc(db->a, db->chunk_vectors * db->dim * sizeof(float));
		if (!c)
			return false;
		db->chunks[db->n_chunks++] = c;
	}
	return true;
}

static float *arena_take(rv_db *db)
{
	if (db->cur_chunk >= db->n_chunks) {
		db->cur_chunk = 0;
		db->chunk_used = 0;
	} else if (db->chunk_used == db->chunk_vectors) {
		db->cur_chunk++;
		db->chunk_used = 0;
	}
	return db->chunks[db->cur_chunk] + db->chunk_used++ * db->dim;
}

/* ======================================================================
 * Quantizer training
 * ==================================================================== */

size_t rv_db_train_min(rv_quant q)
{
	return q == RV_QUANT_PQ ? RV_QUANT_TRAIN_MIN_PQ : RV_QUANT_TRAIN_MIN;
}

uint32_t rv_db_default_rerank(rv_quant q)
{
	switch (q) {
	case RV_QUANT_SQ8: return RV_RERANK_SQ8;
	case RV_QUANT_BINARY: return RV_RERANK_BINARY;
	case RV_QUANT_PQ: return RV_RERANK_PQ;
	default: return 0;
	}
}

uint32_t rv_db_pq_subspaces(uint32_t dim, uint32_t want)
{
	uint32_t m = want ? want : dim / 8;
	if (m < 1)
		m = 1;
	if (m > dim)
		m = dim;
	/* ceil(dim / m) * (m - 1) < dim: no sub-space may be left empty. */
	while (m > 1 && (uint64_t)((dim + m - 1) / m) * (m - 1) >= dim)
		m--;
	return m;
}

bool rv_db_quant_trained(const rv_db *db) { return rv_hnsw_codes_kind(db->index) != RV_QUANT_NONE; }

rv_status rv_db_quant_train(rv_db *db, bool *trained, rv_err *e)
{
	*trained = false;
	if (db->quant == RV_QUANT_NONE || rv_db_quant_trained(db) || db->vecs.n < rv_db_train_min(db->quant))
		return RV_OK;
	uint64_t live = 0;
	for (uint32_t s = 0; s < db->vecs.n; s++)
		live += (db->flags[s] & RV_SLOT_LIVE) != 0;
	if (live < rv_db_train_min(db->quant))
		return RV_OK;
	/* SQ8 ranges and binary means come from every point (one cheap pass;
	 * a sample would miss extremes that later clamp); PQ's k-means from
	 * an evenly spread sample of the live slots. */
	size_t n = db->quant == RV_QUANT_PQ && live > RV_QUANT_SAMPLE_PQ ? RV_QUANT_SAMPLE_PQ : (size_t)live;
	const float **rows = rv_malloc(db->a, n * sizeof *rows);
	if (!rows)
		return rv_err_set(e, RV_ENOMEM, "out of memory training the %s quantizer", rv_quant_name(db->quant));
	/* Systematic sample: the i-th pick is live slot number
	 * floor(i * live / n), so picks spread over the whole slot range. */
	size_t got = 0;
	uint64_t seen = 0;
	for (uint32_t s = 0; s < db->vecs.n && got < n; s++) {
		if (!(db->flags[s] & RV_SLOT_LIVE))
			continue;
		if (seen == (uint64_t)got * live / n)
			rows[got++] = db->vecs.ptr[s];
		seen++;
	}
	rv_quantizer qz;
	rv_status st = rv_quantizer_train_rows(&qz, db->quant, rows, got, db->dim, db->pq_m, db->threads, db->a, e);
	rv_dealloc(db->a, rows);
	if (st != RV_OK)
		return st;
	st = rv_hnsw_enable_codes(db->index, &qz, NULL, NULL, db->threads, e);
	rv_quantizer_free(&qz);
	if (st != RV_OK)
		return st;
	db->qz_sample = got;
	db->quant_seg_id = 0;
	db->codes_committed = 0;
	*trained = true;
	return RV_OK;
}

void rv_db_quant_untrain(rv_db *db)
{
	rv_hnsw_disable_codes(db->index);
	db->qz_sample = 0;
	db->quant_seg_id = 0;
	db->codes_committed = 0;
}

/* ======================================================================
 * Upsert
 * ==================================================================== */

typedef struct prepared {
	char *id;       /* heap copy */
	char *text;     /* heap copy of the payload, or NULL */
	cJSON *tree;    /* parsed payload, or NULL */
	uint32_t old;   /* slot this point replaces, or RV_NO_SLOT */
} prepared;

static void free_prepared(rv_db *db, prepared *pp, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rv_dealloc(db->a, pp[i].id);
		rv_dealloc(db->a, pp[i].text);
		if (pp[i].tree)
			cJSON_Delete(pp[i].tree);
	}
	rv_dealloc(db->a, pp);
}

static rv_status check_point(rv_db *db, const rv_point *p, size_t i, size_t *id_len, size_t *pay_len)
{
	if (!p->id)
		return rv_db_fail(db, RV_EINVAL, "point %zu: id is NULL", i);
	size_t n = p->id_len ? p->id_len : strlen(p->id);
	if (n < 1 || n > RV_MAX_ID_LEN)
		return rv_db_fail(db, RV_EINVAL, "point %zu: id is %zu bytes, must be 1..%d", i, n, RV_MAX_ID_LEN);
	if (memchr(p->id, 0, n))
		return rv_db_fail(db, RV_EINVAL, "point %zu: id contains a NUL byte", i);
	*id_len = n;
	if (!p->vector)
		return rv_db_fail(db, RV_EINVAL, "point %zu (id \"%.*s\"): vector is NULL", i, (int)n, p->id);
	for (uint32_t d = 0; d < db->dim; d++)
		if (!isfinite(p->vector[d]))
			return rv_db_fail(db, RV_EINVAL, "point %zu (id \"%.*s\"): vector[%u] is %g, must be finite",
					  i, (int)n, p->id, d, (double)p->vector[d]);
	*pay_len = 0;
	if (p->payload) {
		size_t pl = p->payload_len ? p->payload_len : strlen(p->payload);
		if (pl > RV_MAX_PAYLOAD_LEN)
			return rv_db_fail(db, RV_EINVAL, "point %zu (id \"%.*s\"): payload is %zu bytes, limit %u", i,
					  (int)n, p->id, pl, RV_MAX_PAYLOAD_LEN);
		if (memchr(p->payload, 0, pl))
			return rv_db_fail(db, RV_EINVAL, "point %zu (id \"%.*s\"): payload contains a NUL byte", i,
					  (int)n, p->id);
		*pay_len = pl;
	}
	return RV_OK;
}

rv_status rv_db_upsert(rv_db *db, const rv_point *points, size_t n)
{
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (n == 0)
		return RV_OK;
	if (!points)
		return rv_db_fail(db, RV_EINVAL, "points is NULL");

	rv_status st = RV_OK;
	prepared *pp = NULL;
	uint32_t *new_slots = NULL;
	float *scratch = NULL;
	rv_idmap batch;
	rv_idmap_init(&batch);
	const char **batch_ids = NULL;
	rv_hnsw_batch *gb = NULL; /* the graph side of the batch */

	rv_db_write_lock(db);
	if ((uint64_t)db->vecs.n + n >= UINT32_MAX) {
		st = rv_db_fail(db, RV_EINVAL, "collection full: %u slots + %zu new exceed 2^32 - 1 (compact first)",
				db->vecs.n, n);
		goto done;
	}
	pp = rv_calloc(db->a, n, sizeof *pp);
	new_slots = rv_malloc(db->a, n * sizeof *new_slots);
	batch_ids = rv_calloc(db->a, n, sizeof *batch_ids);
	if (!pp || !new_slots || !batch_ids || !rv_idmap_reserve(&batch, n, batch_ids, db->a))
		goto nomem;

	/* 1. Validate everything and make private copies. */
	for (size_t i = 0; i < n; i++) {
		size_t id_len = 0, pay_len = 0;
		if ((st = check_point(db, &points[i], i, &id_len, &pay_len)) != RV_OK)
			goto done;
		if (!(pp[i].id = rv_strndup(db->a, points[i].id, id_len)))
			goto nomem;
		batch_ids[i] = pp[i].id;
		if (rv_idmap_find(&batch, pp[i].id, id_len, batch_ids) != RV_NO_SLOT) {
			st = rv_db_fail(db, RV_EINVAL, "point %zu: id \"%s\" appears twice in the batch", i, pp[i].id);
			goto done;
		}
		rv_idmap_insert(&batch, (uint32_t)i, batch_ids);
		if (points[i].payload) {
			const char *end = NULL;
			pp[i].tree = cJSON_ParseWithLengthOpts(points[i].payload, pay_len, &end, 0);
			if (!pp[i].tree || !cJSON_IsObject(pp[i].tree)) {
				size_t at = end && !pp[i].tree ? (size_t)(end - points[i].payload) : 0;
				st = pp[i].tree
					     ? rv_db_fail(db, RV_EINVAL, "point %zu (id \"%s\"): payload must be a JSON object", i,
							  pp[i].id)
					     : rv_db_fail(db, RV_EINVAL, "point %zu (id \"%s\"): payload is not valid JSON (at byte %zu)",
							  i, pp[i].id, at);
				goto done;
			}
			for (const char *q = end; q < points[i].payload + pay_len; q++) {
				if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
					st = rv_db_fail(db, RV_EINVAL, "point %zu (id \"%s\"): payload has bytes after the JSON object (at byte %zu)",
							i, pp[i].id, (size_t)(q - points[i].payload));
					goto done;
				}
			}
			if (!(pp[i].text = rv_strndup(db->a, points[i].payload, pay_len)))
				goto nomem;
		}
		pp[i].old = rv_idmap_find(&db->idmap, pp[i].id, id_len, db->ids);
	}
	if (db->metric == RV_METRIC_COSINE) {
		if (!(scratch = rv_malloc(db->a, (size_t)db->dim * sizeof(float))))
			goto nomem;
		for (size_t i = 0; i < n; i++) {
			memcpy(scratch, points[i].vector, (size_t)db->dim * sizeof(float));
			if (!rv_db_normalize(scratch, db->dim)) {
				st = rv_db_fail(db, RV_EINVAL, "point %zu (id \"%s\"): zero vector has no cosine direction", i,
						pp[i].id);
				goto done;
			}
		}
	}

	/* 2. Reserve: after this nothing in the apply step allocates. */
	size_t replaced = 0;
	for (size_t i = 0; i < n; i++)
		replaced += pp[i].old != RV_NO_SLOT;
	if (!rv_db_reserve_slots(db, n) || !rv_idmap_reserve(&db->idmap, n, db->ids, db->a) ||
	    !arena_reserve(db, n) ||
	    !rv_grow(db->a, (void **)&db->pending_deletes, &db->pending_cap, db->n_pending_deletes + replaced,
		     sizeof *db->pending_deletes))
		goto nomem;

	/* 3. Apply. */
	uint32_t first = db->vecs.n;
	size_t arena_chunk = db->cur_chunk, arena_used = db->chunk_used;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = first + (uint32_t)i;
		float *v = arena_take(db);
		memcpy(v, points[i].vector, (size_t)db->dim * sizeof(float));
		if (db->metric == RV_METRIC_COSINE)
			rv_db_normalize(v, db->dim);
		db->vecs.ptr[s] = v;
		db->ids[s] = pp[i].id;
		db->payload_text[s] = pp[i].text;
		db->payload[s] = pp[i].tree;
		db->flags[s] = RV_SLOT_LIVE | RV_SLOT_HEAP_ID | (pp[i].text ? RV_SLOT_HEAP_PAYLOAD : 0);
		new_slots[i] = s;
	}
	db->vecs.n = first + (uint32_t)n;

	rv_err e;
	bool trained = false;
	st = rv_db_quant_train(db, &trained, &e);
	if (st == RV_OK)
		st = rv_hnsw_batch_prepare(&gb, db->index, new_slots, n, n >= 64 ? db->threads : 1, &e);
	if (st != RV_OK) {
		if (trained)
			rv_db_quant_untrain(db);
		/* Roll back: nothing of the batch is in the graph yet; the
		 * slots leave the table. pp still owns the copies and frees
		 * them below. */
		for (size_t i = 0; i < n; i++) {
			uint32_t s = new_slots[i];
			db->ids[s] = NULL;
			db->payload_text[s] = NULL;
			db->payload[s] = NULL;
			db->flags[s] = 0;
		}
		db->vecs.n = first;
		db->cur_chunk = arena_chunk;
		db->chunk_used = arena_used;
		st = rv_db_fail_err(db, st, &e);
		goto done;
	}

	/* 4. Nothing can fail from here on: the batch becomes the
	 * collection's content before its nodes are linked. Ids map to the
	 * new slots; a replaced point dies now, but stays a graph node until
	 * step 6 unlinks it: a zombie, which searches skip. A search during
	 * the linking thus finds each id once, new or not yet in the graph
	 * (then the exact scan finds it), never the dead version. */
	for (size_t i = 0; i < n; i++) {
		uint32_t s = new_slots[i], old = pp[i].old;
		if (old == RV_NO_SLOT) {
			rv_idmap_insert(&db->idmap, s, db->ids);
			db->live++;
		} else {
			rv_idmap_replace(&db->idmap, old, s, db->ids);
			db->flags[old] &= (uint8_t)~RV_SLOT_LIVE;
			if (rv_hnsw_contains(db->index, old) && !(db->flags[old] & RV_SLOT_ZOMBIE)) {
				db->flags[old] |= RV_SLOT_ZOMBIE;
				db->zombies++;
			}
		}
		pp[i].id = pp[i].text = NULL;
		pp[i].tree = NULL;
	}

	/* 5. Link, with searches running: the lock is held shared, which
	 * keeps out a writer that takes it alone; write_mu keeps out the
	 * others (see Locking in db_int.h). */
	pthread_rwlock_unlock(&db->lock);
	pthread_rwlock_rdlock(&db->lock);
	rv_hnsw_batch_link(gb, NULL, NULL);
	pthread_rwlock_unlock(&db->lock);
	pthread_rwlock_wrlock(&db->lock);

	/* 6. Retire the points the batch replaced. */
	for (size_t i = 0; i < n; i++) {
		uint32_t old = pp[i].old;
		if (old == RV_NO_SLOT)
			continue;
		rv_db_unlink_slot(db, old);
		rv_db_forget_slot(db, old);
		if (old < db->committed_slots)
			db->pending_deletes[db->n_pending_deletes++] = old; /* room reserved in step 2 */
		db->graph_ops++;
	}
	db->graph_ops += n;
	db->dirty = true;
	reap_zombies(db);
	goto done;

nomem:
	st = rv_db_fail(db, RV_ENOMEM, "out of memory in upsert of %zu points", n);
done:
	if (pp)
		free_prepared(db, pp, n);
	rv_dealloc(db->a, new_slots);
	rv_dealloc(db->a, batch_ids);
	rv_dealloc(db->a, scratch);
	rv_idmap_free(&batch, db->a);
	rv_hnsw_batch_end(gb);
	rv_db_write_unlock(db);
	return st;
}

/* ======================================================================
 * Delete
 * ==================================================================== */

rv_status rv_db_delete(rv_db *db, const char *const *ids, size_t n, size_t *n_deleted)
{
	if (n_deleted)
		*n_deleted = 0;
	if (db->readonly)
		return rv_db_fail(db, RV_EREADONLY, "%s is open read-only", db->path);
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	if (n && !ids)
		return rv_db_fail(db, RV_EINVAL, "ids is NULL");
	for (size_t i = 0; i < n; i++)
		if (!ids[i])
			return rv_db_fail(db, RV_EINVAL, "ids[%zu] is NULL", i);
	rv_status st = RV_OK;
	rv_db_write_lock(db);
	if (!rv_grow(db->a, (void **)&db->pending_deletes, &db->pending_cap, db->n_pending_deletes + n,
		     sizeof *db->pending_deletes)) {
		st = rv_db_fail(db, RV_ENOMEM, "out of memory in delete of %zu ids", n);
		goto done;
	}
	size_t deleted = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = rv_idmap_find(&db->idmap, ids[i], strlen(ids[i]), db->ids);
		if (s == RV_NO_SLOT)
			continue;
		rv_idmap_remove(&db->idmap, s, db->ids);
		db->flags[s] &= (uint8_t)~RV_SLOT_LIVE;
		db->live--;
		rv_db_unlink_slot(db, s);
		rv_db_forget_slot(db, s);
		if (s < db->committed_slots)
			db->pending_deletes[db->n_pending_deletes++] = s;
		db->graph_ops++;
		deleted++;
	}
	if (deleted)
		db->dirty = true;
	reap_zombies(db);
	if (n_deleted)
		*n_deleted = deleted;
done:
	rv_db_write_unlock(db);
	return st;
}
