/*
 * db.c - the collection handle: create, open (load + replay), close, get,
 * count, stats, and file verification.
 *
 * Opening reads the newest manifest's state blob (settings, slot count, the
 * graph checkpoint), then walks its live segments in commit order:
 *   VEC      vectors of a contiguous run of slots, used in place from the mmap
 *   META     ids and payload texts of the same slots (NUL-terminated in the
 *            file, so they are also used in place)
 *   JOURNAL  slots deleted by a commit (kind 1), or feedback events (kind 2,
 *            read by db_learn.c)
 *   OVERLAY  the learned query adapter (db_learn.c)
 *   INDEX    the graph checkpoint (only the one the state names)
 *   QUANT    the trained quantizer (kind 1, at most one), and the codes of
 *            runs of slots (kind 2, continuing each other)
 * then loads the checkpoint, gives the graph its codes (copied from the
 * file: cheaper at open than encoding every vector again) and replays:
 * live slots not in the graph are inserted (those committed after
 * the checkpoint), dead slots still in it are deleted. Everything read is
 * validated; a mismatch is RV_ECORRUPT naming the segment and offset.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "db_int.h"
#include "learn/learn.h"
#include "simd/simd.h"

/* ======================================================================
 * Errors
 * ==================================================================== */

/* The calling thread's message slot (taking one over if it has none). */
static rv_err *thread_slot(rv_db *db, bool take)
{
	pthread_t self = pthread_self();
	for (unsigned i = 0; i < RV_THREAD_ERRS; i++)
		if (db->thread_err[i].used && pthread_equal(db->thread_err[i].thread, self))
			return &db->thread_err[i].err;
	if (!take)
		return NULL;
	unsigned i = db->thread_err_next++ % RV_THREAD_ERRS;
	db->thread_err[i].used = true;
	db->thread_err[i].thread = self;
	return &db->thread_err[i].err;
}

rv_status rv_db_fail(rv_db *db, rv_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&db->err_lock);
	rv_err_setv(&db->err, st, fmt, ap);
	memcpy(thread_slot(db, true)->msg, db->err.msg, sizeof db->err.msg);
	pthread_mutex_unlock(&db->err_lock);
	va_end(ap);
	return st;
}

rv_status rv_db_fail_err(rv_db *db, rv_status st, const rv_err *e)
{
	return rv_db_fail(db, st, "%s", e->msg);
}

const char *rv_errmsg(const rv_db *db)
{
	if (!db)
		return "out of memory";
	rv_db *m = (rv_db *)db; /* the lock and the slot table are not the collection */
	pthread_mutex_lock(&m->err_lock);
	rv_err *e = thread_slot(m, false);
	const char *msg = e ? e->msg : db->err.msg;
	pthread_mutex_unlock(&m->err_lock);
	return msg;
}

void rv_free(void *ptr) { free(ptr); }

/* ======================================================================
 * Handle life
 * ==================================================================== */

bool rv_db_take_opts(void *dst, const void *user, size_t own_size, size_t min_size)
{
	if (!user)
		return true;
	size_t user_size = *(const size_t *)user;
	if (user_size < min_size || user_size > own_size)
		return false;
	memcpy(dst, user, user_size);
	*(size_t *)dst = own_size;
	return true;
}

/* The first rv_open_opts layout (0.1.0) ends with progress_ctx. */
#define OPEN_OPTS_V1 (offsetof(rv_open_opts, progress_ctx) + sizeof(void *))

/* The collection's reader-writer lock, preferring writers where the
 * platform lets us say so: searches run back to back on several threads,
 * and with readers preferred (glibc's default) their holds overlap, so a
 * writer waiting for the exclusive hold (an upsert's last step among them,
 * see Locking in db_int.h) could wait for as long as searches keep coming.
 * No thread takes the lock shared twice, which this kind forbids. */
static void init_lock(pthread_rwlock_t *lock)
{
#if defined(__GLIBC__)
	pthread_rwlockattr_t attr;
	if (pthread_rwlockattr_init(&attr) == 0) {
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		int rc = pthread_rwlock_init(lock, &attr);
		pthread_rwlockattr_destroy(&attr);
		if (rc == 0)
			return;
	}
#endif
	pthread_rwlock_init(lock, NULL);
}

/* A handle for path with the options in *o (the caller's, already over the
 * defaults); opts_ok false: the caller's size was unknown, and the handle
 * only carries that message. */
static rv_status new_handle(rv_db **out, const char *path, const rv_open_opts *o, bool opts_ok,
			    size_t user_size)
{
	const rv_open_opts *opts = opts_ok ? o : NULL;
	const rv_allocator *user = opts ? opts->allocator : NULL;
	rv_db *db = user ? user->malloc_fn(user->ctx, sizeof *db) : malloc(sizeof *db);
	*out = db;
	if (!db)
		return RV_ENOMEM;
	memset(db, 0, sizeof *db);
	if (user) {
		db->alloc_copy = *user;
		db->a = &db->alloc_copy;
	}
	init_lock(&db->lock);
	pthread_mutex_init(&db->write_mu, NULL);
	pthread_mutex_init(&db->err_lock, NULL);
	rv_idmap_init(&db->idmap);
	rv_db_learn_init(db);
	if (!opts_ok)
		return rv_db_fail(db, RV_EINVAL, "rv_open_opts.size is %zu, this library knows up to %zu (use RV_OPEN_OPTS_INIT)",
				  user_size, sizeof(rv_open_opts));
	if (!path || !*path)
		return rv_db_fail(db, RV_EINVAL, "path is empty");
	db->path = rv_strndup(db->a, path, strlen(path));
	if (!db->path)
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	if (opts) {
		db->readonly = (opts->flags & RV_OPEN_READONLY) != 0;
		db->threads = opts->threads;
		db->progress = opts->progress;
		db->progress_ctx = opts->progress_ctx;
	}
	if (db->threads == 0)
		db->threads = rv_cpu_count();
	return RV_OK;
}

/* The 0.1.0 layout of rv_open_opts ends at progress_ctx: a caller of that
 * day gets no quantization (the defaults of the later fields). */
static rv_status check_quant_settings(rv_db *db, const rv_open_opts *o)
{
	if (o->quant != RV_QUANT_NONE && o->quant != RV_QUANT_SQ8 && o->quant != RV_QUANT_BINARY &&
	    o->quant != RV_QUANT_PQ)
		return rv_db_fail(db, RV_EINVAL, "unknown quant %d (none = 0, sq8 = 1, binary = 2, pq = 3)",
				  (int)o->quant);
	if (o->quant != RV_QUANT_PQ && o->pq_subspaces)
		return rv_db_fail(db, RV_EINVAL, "pq_subspaces %u given, but quant is %s, not pq", o->pq_subspaces,
				  rv_quant_name(o->quant));
	if (o->quant == RV_QUANT_PQ && o->pq_subspaces) {
		uint32_t m = o->pq_subspaces;
		if (m > o->dim || m > UINT16_MAX || rv_db_pq_subspaces(o->dim, m) != m)
			return rv_db_fail(db, RV_EINVAL,
					  "pq_subspaces %u does not fit dim %u: it must be 1..dim and leave no "
					  "sub-space empty (ceil(dim / m) * (m - 1) < dim; %u would)",
					  m, o->dim, rv_db_pq_subspaces(o->dim, m < o->dim ? m : o->dim));
	}
	if (o->quant == RV_QUANT_NONE && o->rerank)
		return rv_db_fail(db, RV_EINVAL, "rerank %u given, but there is no quantizer (quant none)", o->rerank);
	if (o->rerank > RV_RERANK_MAX)
		return rv_db_fail(db, RV_EINVAL, "rerank %u out of range 0..%d", o->rerank, RV_RERANK_MAX);
	return RV_OK;
}

static rv_status check_settings(rv_db *db, const rv_open_opts *o)
{
	if (o->dim < 1 || o->dim > RV_MAX_DIM)
		return rv_db_fail(db, RV_EINVAL, "dimension %u out of range 1..%d", o->dim, RV_MAX_DIM);
	if (o->metric != RV_METRIC_L2 && o->metric != RV_METRIC_COSINE && o->metric != RV_METRIC_IP)
		return rv_db_fail(db, RV_EINVAL, "unknown metric %d (l2 = 0, cosine = 1, ip = 2)", (int)o->metric);
	if (o->m < 2 || o->m > 128)
		return rv_db_fail(db, RV_EINVAL, "m %u out of range 2..128", o->m);
	if (o->ef_construction < o->m || o->ef_construction > 4096)
		return rv_db_fail(db, RV_EINVAL, "ef_construction %u out of range m (%u)..4096", o->ef_construction,
				  o->m);
	if (o->ef_search < 1 || o->ef_search > 100000)
		return rv_db_fail(db, RV_EINVAL, "ef_search %u out of range 1..100000", o->ef_search);
	return RV_OK;
}

void rv_db_hnsw_params(const rv_db *db, rv_hnsw_params *p)
{
	p->dim = db->dim;
	p->metric = db->metric;
	p->m = db->m;
	p->ef_construction = db->ef_construction;
	p->seed = db->seed;
}

rv_status rv_db_create(rv_db **out, const char *path, const rv_open_opts *user_opts)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	bool ok = rv_db_take_opts(&o, user_opts, sizeof o, OPEN_OPTS_V1);
	rv_status st = new_handle(out, path, &o, ok, user_opts ? user_opts->size : 0);
	rv_db *db = *out;
	if (st != RV_OK)
		return st;
	const rv_open_opts *opts = &o;
	if ((st = check_settings(db, opts)) != RV_OK || (st = check_quant_settings(db, opts)) != RV_OK)
		return st;
	if (db->readonly)
		return rv_db_fail(db, RV_EINVAL, "cannot create %s read-only", path);
	db->dim = opts->dim;
	db->metric = opts->metric;
	db->m = opts->m;
	db->ef_construction = opts->ef_construction;
	db->ef_search = opts->ef_search;
	/* The defaults are resolved now and stored, so the file says what
	 * its searches do. */
	db->quant = opts->quant;
	db->pq_m = opts->quant == RV_QUANT_PQ ? rv_db_pq_subspaces(opts->dim, opts->pq_subspaces) : 0;
	db->rerank = opts->quant == RV_QUANT_NONE ? 0 : opts->rerank ? opts->rerank : rv_db_default_rerank(opts->quant);
	/* Graph level draws are seeded per file, so a rebuild of the same file
	 * in the same order gives the same graph; the caller may choose the
	 * seed to make a new file repeat another's. */
	db->seed = opts->seed ? opts->seed : rv_hash64(path, strlen(path), (uint64_t)(rv_now() * 1e9));

	rv_buf state;
	rv_buf_init(&state, db->a);
	rv_db_encode_state(db, &state, 0, 0, 0, 0);
	if (state.failed) {
		rv_buf_free(&state);
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	}
	rv_manifest m = { .generation = 1, .state = state.data, .state_len = state.len };
	rv_err e = { { 0 } };
	rv_file *f = NULL;
	st = rv_file_create_v2(&f, path, &m, db->quant != RV_QUANT_NONE ? RV_FEATURE_QUANT : 0, db->a, &e);
	rv_buf_free(&state);
	if (st != RV_OK)
		return rv_db_fail_err(db, st, &e);
	rv_file_close(f); /* reopen through the one load path */
	return rv_db_load(db);
}

rv_status rv_db_open(rv_db **out, const char *path, const rv_open_opts *user_opts)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	bool ok = rv_db_take_opts(&o, user_opts, sizeof o, OPEN_OPTS_V1);
	rv_status st = new_handle(out, path, &o, ok, user_opts ? user_opts->size : 0);
	if (st != RV_OK)
		return st;
	return rv_db_load(*out);
}

void rv_db_close(rv_db *db)
{
	if (!db)
		return;
	rv_db_unload(db);
	rv_dealloc(db->a, db->path);
	pthread_rwlock_destroy(&db->lock);
	pthread_mutex_destroy(&db->write_mu);
	pthread_mutex_destroy(&db->err_lock);
	pthread_mutex_destroy(&db->fb_lock);
	const rv_alloc *a = db->a;
	if (a) {
		rv_allocator hooks = *a;
		hooks.free_fn(hooks.ctx, db);
	} else {
		free(db);
	}
}

void rv_db_unload(rv_db *db)
{
	rv_db_learn_unload(db);
	rv_hnsw_free(db->index);
	db->index = NULL;
	for (uint32_t s = 0; s < db->vecs.n; s++) {
		if (db->payload && db->payload[s])
			cJSON_Delete(db->payload[s]);
		if (db->flags && (db->flags[s] & RV_SLOT_HEAP_ID))
			rv_dealloc(db->a, (void *)db->ids[s]);
		if (db->flags && (db->flags[s] & RV_SLOT_HEAP_PAYLOAD))
			rv_dealloc(db->a, (void *)db->payload_text[s]);
	}
	for (size_t i = 0; i < db->n_chunks; i++)
		rv_dealloc(db->a, db->chunks[i]);
	rv_dealloc(db->a, db->chunks);
	rv_dealloc(db->a, db->vecs.ptr);
	rv_dealloc(db->a, db->ids);
	rv_dealloc(db->a, db->payload_text);
	rv_dealloc(db->a, db->payload);
	rv_dealloc(db->a, db->flags);
	rv_dealloc(db->a, db->pending_deletes);
	rv_dealloc(db->a, db->segs);
	rv_idmap_free(&db->idmap, db->a);
	rv_file_close(db->file);
	db->file = NULL;
	db->chunks = NULL;
	db->n_chunks = db->chunks_cap = db->chunk_used = db->cur_chunk = 0;
	db->vecs.ptr = NULL;
	db->vecs.n = 0;
	db->slot_cap = 0;
	db->ids = db->payload_text = NULL;
	db->payload = NULL;
	db->flags = NULL;
	db->pending_deletes = NULL;
	db->n_pending_deletes = db->pending_cap = 0;
	db->segs = NULL;
	db->n_segs = db->segs_cap = 0;
	db->live = db->zombies = 0;
	db->graph_ops = 0;
	db->qz_sample = 0;
	db->quant_seg_id = 0;
	db->codes_committed = 0;
	db->dirty = false;
}

/* ======================================================================
 * Loading
 * ==================================================================== */

static rv_status decode_state(rv_db *db, const rv_manifest *m, uint32_t *slots, uint64_t *live)
{
	rv_reader r;
	rv_reader_init(&r, m->state, m->state_len);
	uint32_t version = rv_reader_u32(&r);
	if (r.bad || m->state_len < RV_STATE_BYTES)
		return rv_db_fail(db, RV_ECORRUPT, "%s: manifest state is %zu bytes, expected %d", db->path,
				  m->state_len, RV_STATE_BYTES);
	if (version > RV_STATE_VERSION)
		return rv_db_fail(db, RV_EVERSION, "%s: collection state version %u needs a newer ruvector",
				  db->path, version);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = rv_reader_u32(&r);
	o.metric = (rv_metric)rv_reader_u8(&r);
	/* Zero in files without quantization (version 1 wrote them so). */
	o.quant = (rv_quant)rv_reader_u8(&r);
	o.pq_subspaces = rv_reader_u16(&r);
	o.m = rv_reader_u32(&r);
	o.ef_construction = rv_reader_u32(&r);
	o.ef_search = rv_reader_u32(&r);
	db->seed = rv_reader_u64(&r);
	*slots = rv_reader_u32(&r);
	o.rerank = rv_reader_u32(&r);
	*live = rv_reader_u64(&r);
	db->index_seg_id = rv_reader_u64(&r);
	db->index_covered = rv_reader_u32(&r);
	uint32_t state_flags = rv_reader_u32(&r);
	rv_status st = check_settings(db, &o);
	if (st == RV_OK)
		st = check_quant_settings(db, &o);
	if (st == RV_OK && o.quant != RV_QUANT_NONE && (o.rerank == 0 || (o.quant == RV_QUANT_PQ && !o.pq_subspaces)))
		st = rv_db_fail(db, RV_ECORRUPT, "quantizer %s without its rerank (%u) or sub-spaces (%u)",
				rv_quant_name(o.quant), o.rerank, o.pq_subspaces);
	if (st != RV_OK) {
		rv_err_prefix(&db->err, "%s: manifest state", db->path);
		return RV_ECORRUPT;
	}
	bool flagged = (rv_file_features(db->file) & RV_FEATURE_QUANT) != 0;
	if (flagged != (o.quant != RV_QUANT_NONE))
		return rv_db_fail(db, RV_ECORRUPT,
				  "%s: manifest state: quantizer %s, but the file header %s the quantization feature bit",
				  db->path, rv_quant_name(o.quant), flagged ? "sets" : "lacks");
	if (db->index_covered > *slots || *live > *slots)
		return rv_db_fail(db, RV_ECORRUPT, "%s: manifest state: counts out of range", db->path);
	db->dim = o.dim;
	db->metric = o.metric;
	db->m = o.m;
	db->ef_construction = o.ef_construction;
	db->ef_search = o.ef_search;
	db->quant = o.quant;
	db->pq_m = o.pq_subspaces;
	db->rerank = o.rerank;
	/* Version 1 wrote 0 there: learning off. */
	db->learning = (state_flags & RV_STATE_LEARNING) != 0;
	return RV_OK;
}

static rv_status seg_fail(rv_db *db, const rv_seg_ref *s, const char *what)
{
	return rv_db_fail(db, RV_ECORRUPT, "%s: segment %llu (%s) at offset %llu: %s", db->path,
			  (unsigned long long)s->seg_id, rv_seg_type_name(s->type),
			  (unsigned long long)s->offset, what);
}

static rv_status load_vec(rv_db *db, const rv_seg_ref *s, const uint8_t *p, uint32_t *next)
{
	if (s->length < 64)
		return seg_fail(db, s, "VEC payload shorter than its 64-byte header");
	uint32_t first = rv_get_u32(p), count = rv_get_u32(p + 4), dim = rv_get_u32(p + 8);
	if (first != *next)
		return seg_fail(db, s, "VEC slots do not continue the previous segment");
	if (dim != db->dim)
		return seg_fail(db, s, "VEC dimension differs from the collection's");
	if ((uint64_t)count > db->vecs.n - first || (s->length - 64) / 4 / dim != count ||
	    (s->length - 64) % ((uint64_t)4 * dim) != 0)
		return seg_fail(db, s, "VEC count does not match its length");
	const float *v = (const float *)(p + 64);
	for (uint32_t i = 0; i < count; i++)
		db->vecs.ptr[first + i] = v + (size_t)i * dim;
	*next = first + count;
	return RV_OK;
}

static rv_status load_meta(rv_db *db, const rv_seg_ref *s, const uint8_t *p, uint32_t *next)
{
	rv_reader r;
	rv_reader_init(&r, p, s->length);
	uint32_t first = rv_reader_u32(&r), count = rv_reader_u32(&r);
	if (r.bad || first != *next || (uint64_t)count > db->vecs.n - first)
		return seg_fail(db, s, "META slots do not continue the previous segment");
	for (uint32_t i = 0; i < count; i++) {
		uint32_t slot = first + i;
		uint8_t id_len = rv_reader_u8(&r);
		const uint8_t *id = rv_reader_bytes(&r, (size_t)id_len + 1);
		if (!id || id[id_len] != 0 || memchr(id, 0, id_len))
			return seg_fail(db, s, "META id malformed");
		uint32_t plen = rv_reader_u32(&r);
		const uint8_t *pay = plen ? rv_reader_bytes(&r, (size_t)plen + 1) : NULL;
		if (r.bad || (plen && pay[plen] != 0))
			return seg_fail(db, s, "META payload malformed");
		db->ids[slot] = (const char *)id;
		db->flags[slot] = RV_SLOT_LIVE;
		if (plen) {
			db->payload_text[slot] = (const char *)pay;
			db->payload[slot] = cJSON_ParseWithLength((const char *)pay, plen);
			if (!db->payload[slot] || !cJSON_IsObject(db->payload[slot]))
				return seg_fail(db, s, "META payload is not a JSON object");
		}
	}
	if (rv_reader_left(&r) != 0)
		return seg_fail(db, s, "META has trailing bytes");
	*next = first + count;
	return RV_OK;
}

static rv_status load_journal(rv_db *db, const rv_seg_ref *s, const uint8_t *p)
{
	rv_reader r;
	rv_reader_init(&r, p, s->length);
	uint32_t kind = rv_reader_u32(&r), count = rv_reader_u32(&r);
	if (!r.bad && kind == RV_JOURNAL_FEEDBACK)
		return RV_OK; /* feedback events: rv_db_learn_load */
	if (r.bad || kind != RV_JOURNAL_DELETES || (uint64_t)count * 4 != rv_reader_left(&r))
		return seg_fail(db, s, "JOURNAL header malformed");
	for (uint32_t i = 0; i < count; i++) {
		uint32_t slot = rv_reader_u32(&r);
		if (slot >= db->vecs.n)
			return seg_fail(db, s, "JOURNAL deletes a slot that does not exist");
		db->flags[slot] &= (uint8_t)~RV_SLOT_LIVE;
	}
	return RV_OK;
}

/* What the QUANT segments of the manifest hold, gathered while walking
 * them: the quantizer (kind 1) and the runs of stored codes (kind 2). */
typedef struct code_run {
	uint32_t first, count;
	const uint8_t *codes;
} code_run;

typedef struct quant_load {
	const rv_seg_ref *ref;  /* the kind-1 segment, or NULL */
	rv_qseg qseg;           /* its parse */
	code_run *runs;         /* kind 2, in slot order */
	size_t n_runs, cap_runs;
	uint32_t next_code;     /* slots covered by the runs so far */
	uint32_t code_bytes;    /* of the runs */
	const rv_seg_ref *first_run; /* for messages */
} quant_load;

static rv_status load_quant_seg(rv_db *db, const rv_seg_ref *s, const uint8_t *p, quant_load *ql)
{
	rv_err e = { { 0 } };
	rv_qseg q;
	if (rv_qseg_parse(&q, p, s->length, &e) != RV_OK)
		return seg_fail(db, s, e.msg);
	if (q.kind == RV_QSEG_QUANTIZER) {
		if (ql->ref)
			return seg_fail(db, s, "a second QUANT quantizer (the manifest may name one)");
		if (q.quant != db->quant)
			return rv_db_fail(db, RV_ECORRUPT,
					  "%s: segment %llu (QUANT) at offset %llu: a %s quantizer, the collection is %s",
					  db->path, (unsigned long long)s->seg_id, (unsigned long long)s->offset,
					  rv_quant_name(q.quant), rv_quant_name(db->quant));
		if (q.dim != db->dim)
			return seg_fail(db, s, "QUANT quantizer dimension differs from the collection's");
		ql->ref = s;
		ql->qseg = q;
		return RV_OK;
	}
	if (db->quant == RV_QUANT_NONE)
		return seg_fail(db, s, "QUANT codes in a collection without a quantizer");
	if (q.first != ql->next_code)
		return seg_fail(db, s, "QUANT codes do not continue the previous segment's slots");
	if ((uint64_t)q.count > db->vecs.n - q.first)
		return seg_fail(db, s, "QUANT codes run past the collection's slots");
	if (ql->n_runs && q.code_bytes != ql->code_bytes)
		return seg_fail(db, s, "QUANT code size differs from the previous segment's");
	if (!rv_grow(db->a, (void **)&ql->runs, &ql->cap_runs, ql->n_runs + 1, sizeof *ql->runs))
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	if (!ql->n_runs)
		ql->first_run = s;
	ql->runs[ql->n_runs++] = (code_run){ q.first, q.count, q.codes };
	ql->code_bytes = q.code_bytes;
	ql->next_code = q.first + q.count;
	return RV_OK;
}

/* The stored code of slot (rv_hnsw_code_fn): the run holding it, by
 * binary search over the runs (in slot order). */
static const uint8_t *stored_code(void *ctx, uint32_t slot)
{
	const quant_load *ql = ctx;
	size_t lo = 0, hi = ql->n_runs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ql->runs[mid].first + ql->runs[mid].count <= slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == ql->n_runs || slot < ql->runs[lo].first)
		return NULL;
	return ql->runs[lo].codes + (size_t)(slot - ql->runs[lo].first) * ql->code_bytes;
}

/* Decode the quantizer the QUANT segments hold, check the codes cover
 * every slot, and give the graph its codes. Untrained: nothing. */
static rv_status apply_quant(rv_db *db, quant_load *ql, uint32_t slots)
{
	if (!ql->ref) {
		if (ql->n_runs)
			return seg_fail(db, ql->first_run, "QUANT codes without a quantizer");
		return RV_OK;
	}
	rv_err e = { { 0 } };
	rv_quantizer qz;
	rv_status st = rv_qseg_load(&qz, &ql->qseg, db->a, &e);
	if (st == RV_ECORRUPT)
		return seg_fail(db, ql->ref, e.msg);
	if (st != RV_OK)
		return rv_db_fail_err(db, st, &e);
	if (qz.kind == RV_QUANT_PQ && rv_pq_m(qz.pq) != db->pq_m)
		st = seg_fail(db, ql->ref, "QUANT quantizer's sub-spaces differ from the collection's");
	else if (ql->next_code != slots || (ql->n_runs && ql->code_bytes != ql->qseg.code_bytes))
		st = rv_db_fail(db, RV_ECORRUPT,
				"%s: QUANT codes cover %u slots of %u bytes, the collection has %u slots and its "
				"quantizer %u-byte codes",
				db->path, ql->next_code, ql->code_bytes, slots, ql->qseg.code_bytes);
	if (st == RV_OK) {
		st = rv_hnsw_enable_codes(db->index, &qz, stored_code, ql, db->threads, &e);
		if (st != RV_OK)
			rv_db_fail_err(db, st, &e);
	}
	rv_quantizer_free(&qz);
	if (st != RV_OK)
		return st;
	db->qz_sample = ql->qseg.sample;
	db->quant_seg_id = ql->ref->seg_id;
	db->codes_committed = slots;
	return RV_OK;
}

static void replay_progress(void *ctx, uint64_t done, uint64_t total)
{
	rv_db *db = ctx;
	if (db->progress)
		db->progress(db->progress_ctx, "replay", done, total);
}

rv_status rv_db_load(rv_db *db)
{
	rv_err e = { { 0 } };
	rv_status st = rv_file_open(&db->file, db->path, db->readonly, db->a, &e);
	if (st != RV_OK)
		return rv_db_fail_err(db, st, &e);
	const rv_manifest *m = rv_file_manifest(db->file);
	uint32_t slots = 0;
	uint64_t live_expected = 0;
	if ((st = decode_state(db, m, &slots, &live_expected)) != RV_OK)
		return st;
	db->generation = m->generation;
	db->chunk_vectors = ((size_t)1 << 20) / ((size_t)db->dim * 4);
	if (db->chunk_vectors < 16)
		db->chunk_vectors = 16;
	db->vecs.dim = db->dim;
	if (!rv_db_reserve_slots(db, slots))
		return rv_db_fail(db, RV_ENOMEM, "out of memory for %u slots", slots);
	db->vecs.n = slots;
	db->committed_slots = slots;
	if (!rv_grow(db->a, (void **)&db->segs, &db->segs_cap, m->n_segs, sizeof *db->segs))
		return rv_db_fail(db, RV_ENOMEM, "out of memory");
	if (m->n_segs)
		memcpy(db->segs, m->segs, m->n_segs * sizeof *db->segs);
	db->n_segs = m->n_segs;

	uint32_t next_vec = 0, next_meta = 0;
	const rv_seg_ref *index_ref = NULL;
	quant_load ql;
	memset(&ql, 0, sizeof ql);
	for (size_t i = 0; i < m->n_segs; i++) {
		const rv_seg_ref *s = &m->segs[i];
		const uint8_t *p;
		if ((st = rv_file_segment_data(&p, db->file, s, &e)) != RV_OK) {
			rv_db_fail_err(db, st, &e);
			goto done;
		}
		switch (s->type) {
		case RV_SEG_VEC: st = load_vec(db, s, p, &next_vec); break;
		case RV_SEG_META: st = load_meta(db, s, p, &next_meta); break;
		case RV_SEG_JOURNAL: break; /* after all slots exist */
		case RV_SEG_QUANT: st = load_quant_seg(db, s, p, &ql); break;
		case RV_SEG_INDEX:
			if (s->seg_id == db->index_seg_id)
				index_ref = s;
			break;
		default: break; /* segments of later features: skipped */
		}
		if (st != RV_OK)
			goto done;
	}
	if (next_vec != slots || next_meta != slots) {
		st = rv_db_fail(db, RV_ECORRUPT, "%s: segments hold %u vectors and %u ids, manifest says %u slots",
				db->path, next_vec, next_meta, slots);
		goto done;
	}
	for (size_t i = 0; i < m->n_segs; i++) {
		const uint8_t *p;
		if (m->segs[i].type != RV_SEG_JOURNAL)
			continue;
		rv_file_segment_data(&p, db->file, &m->segs[i], &e);
		if ((st = load_journal(db, &m->segs[i], p)) != RV_OK)
			goto done;
	}
	if ((st = rv_db_learn_load(db, m)) != RV_OK)
		goto done;
	if (db->index_seg_id && !index_ref) {
		st = rv_db_fail(db, RV_ECORRUPT, "%s: graph checkpoint segment %llu is not in the manifest", db->path,
				(unsigned long long)db->index_seg_id);
		goto done;
	}

	/* Ids of live slots, checked unique; dead slots lose their payload. */
	if (!rv_idmap_reserve(&db->idmap, live_expected, db->ids, db->a)) {
		st = rv_db_fail(db, RV_ENOMEM, "out of memory");
		goto done;
	}
	for (uint32_t s = 0; s < slots; s++) {
		if (!(db->flags[s] & RV_SLOT_LIVE)) {
			rv_db_forget_slot(db, s);
			continue;
		}
		if (db->ids[s][0] == 0 || db->live == live_expected ||
		    rv_idmap_find(&db->idmap, db->ids[s], strlen(db->ids[s]), db->ids) != RV_NO_SLOT) {
			st = rv_db_fail(db, RV_ECORRUPT, "%s: id \"%s\" of slot %u is empty or not unique", db->path,
					db->ids[s], s);
			goto done;
		}
		rv_idmap_insert(&db->idmap, s, db->ids);
		db->live++;
	}
	if (db->live != live_expected) {
		st = rv_db_fail(db, RV_ECORRUPT, "%s: %llu live points, manifest says %llu", db->path,
				(unsigned long long)db->live, (unsigned long long)live_expected);
		goto done;
	}

	/* The graph: checkpoint, codes, then replay what came after it (the
	 * replayed nodes are encoded as they are linked). */
	rv_hnsw_params hp;
	rv_db_hnsw_params(db, &hp);
	if (index_ref) {
		const uint8_t *p;
		rv_file_segment_data(&p, db->file, index_ref, &e);
		st = rv_hnsw_load(&db->index, &hp, &db->vecs, p, index_ref->length, db->a, &e);
		if (st == RV_ECORRUPT) {
			st = rv_db_fail(db, st, "%s: segment %llu (INDEX) at offset %llu: %s", db->path,
					(unsigned long long)index_ref->seg_id, (unsigned long long)index_ref->offset,
					e.msg);
			goto done;
		}
	} else {
		st = rv_hnsw_new(&db->index, &hp, &db->vecs, db->a, &e);
	}
	if (st != RV_OK) {
		rv_db_fail_err(db, st, &e);
		goto done;
	}
	if ((st = apply_quant(db, &ql, slots)) != RV_OK)
		goto done;

	uint32_t *missing = NULL;
	size_t n_missing = 0;
	if (slots) {
		missing = rv_malloc(db->a, (size_t)slots * sizeof *missing);
		if (!missing) {
			st = rv_db_fail(db, RV_ENOMEM, "out of memory");
			goto done;
		}
	}
	for (uint32_t s = 0; s < slots; s++) {
		bool in_graph = rv_hnsw_contains(db->index, s);
		if ((db->flags[s] & RV_SLOT_LIVE) && !in_graph) {
			missing[n_missing++] = s;
		} else if (!(db->flags[s] & RV_SLOT_LIVE) && in_graph) {
			rv_db_unlink_slot(db, s);
			db->graph_ops++;
		}
	}
	if (n_missing) {
		st = rv_hnsw_insert_batch(db->index, missing, n_missing, db->threads, replay_progress, db, &e);
		db->graph_ops += n_missing;
	}
	rv_dealloc(db->a, missing);
	if (st != RV_OK) {
		rv_db_fail_err(db, st, &e);
		goto done;
	}
	/* A file that holds enough points but no quantizer (its training was
	 * never committed): train now, so searches use codes; the next commit
	 * saves it. */
	bool trained;
	if ((st = rv_db_quant_train(db, &trained, &e)) != RV_OK)
		rv_db_fail_err(db, st, &e);
done:
	rv_dealloc(db->a, ql.runs);
	return st;
}

/* ======================================================================
 * Reads
 * ==================================================================== */

uint64_t rv_db_count(rv_db *db)
{
	pthread_rwlock_rdlock(&db->lock);
	uint64_t n = db->live;
	pthread_rwlock_unlock(&db->lock);
	return n;
}

uint32_t rv_db_dim(const rv_db *db) { return db->dim; }

rv_status rv_db_get(rv_db *db, const char *id, float *vector, char **payload)
{
	if (payload)
		*payload = NULL;
	if (!id)
		return rv_db_fail(db, RV_EINVAL, "id is NULL");
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	rv_status st = RV_OK;
	pthread_rwlock_rdlock(&db->lock);
	uint32_t s = rv_idmap_find(&db->idmap, id, strlen(id), db->ids);
	if (s == RV_NO_SLOT) {
		st = rv_db_fail(db, RV_ENOTFOUND, "no point with id \"%.255s\"", id);
		goto done;
	}
	if (vector)
		memcpy(vector, db->vecs.ptr[s], (size_t)db->dim * sizeof(float));
	if (payload && db->payload_text[s]) {
		size_t n = strlen(db->payload_text[s]);
		*payload = malloc(n + 1);
		if (!*payload) {
			st = rv_db_fail(db, RV_ENOMEM, "out of memory");
			goto done;
		}
		memcpy(*payload, db->payload_text[s], n + 1);
	}
done:
	pthread_rwlock_unlock(&db->lock);
	return st;
}

rv_status rv_db_stats(rv_stats *out, rv_db *db)
{
	if (!out || out->size < sizeof(size_t))
		return rv_db_fail(db, RV_EINVAL, "stats: set size with RV_STATS_INIT");
	if (!db->file)
		return rv_db_fail(db, RV_EINVAL, "handle is not open");
	rv_stats s;
	memset(&s, 0, sizeof s);
	s.size = out->size;
	pthread_rwlock_rdlock(&db->lock);
	s.dim = db->dim;
	s.metric = db->metric;
	s.m = db->m;
	s.ef_construction = db->ef_construction;
	s.ef_search = db->ef_search;
	s.count = db->live;
	s.slots = db->vecs.n;
	s.deleted = db->vecs.n - db->live;
	s.generation = db->generation;
	s.file_bytes = rv_file_size(db->file);
	for (size_t i = 0; i < db->n_segs; i++)
		s.live_segment_bytes += RV_SEG_HEADER_SIZE + ((db->segs[i].length + 63) & ~(uint64_t)63);
	s.segments = (uint32_t)db->n_segs;
	s.graph_nodes = rv_hnsw_count(db->index);
	s.graph_levels = rv_hnsw_levels(db->index);
	s.unsaved_graph_ops = db->graph_ops;
	s.memory_bytes = rv_hnsw_memory(db->index) + db->slot_cap * (sizeof(void *) * 4 + 1) +
			 db->idmap.cap * 8 + db->n_chunks * db->chunk_vectors * db->dim * sizeof(float);
	s.dirty = db->dirty;
	s.simd = rv_simd_name();
	s.feedback_events = db->fb_total;
	s.replay_events = db->fb_replay_n;
	s.adapter_version = db->adapter_version;
	s.adapter_steps = db->adapter ? rv_lora_steps(db->adapter) : 0;
	s.learning = db->learning;
	s.quant = rv_quant_name(db->quant);
	s.quant_trained = rv_db_quant_trained(db);
	s.rerank = db->rerank;
	s.pq_subspaces = db->pq_m;
	s.code_bytes = (uint32_t)rv_hnsw_code_bytes(db->index);
	s.index_bytes = rv_hnsw_memory(db->index);
	pthread_rwlock_unlock(&db->lock);
	size_t n = out->size < sizeof s ? out->size : sizeof s;
	memcpy(out, &s, n);
	return RV_OK;
}

/* Verify's check of QUANT payloads: the layout, and for the quantizer
 * its parameters, decoded as open would. */
static bool check_quant_payload(void *ctx, uint8_t type, const uint8_t *payload, uint64_t len, char *why,
				size_t why_len)
{
	rv_err e = { { 0 } };
	rv_qseg q;
	rv_status st = rv_qseg_parse(&q, payload, (size_t)len, &e);
	if (st == RV_OK && q.kind == RV_QSEG_QUANTIZER) {
		rv_quantizer qz;
		st = rv_qseg_load(&qz, &q, NULL, &e);
		rv_quantizer_free(&qz);
		/* Out of memory says nothing about the file. */
		if (st == RV_ENOMEM)
			st = RV_OK;
	}
	if (st != RV_OK)
		snprintf(why, why_len, "%s", e.msg);
	return st == RV_OK;
}

rv_status rv_verify_file(const char *path, rv_verify_fn fn, void *ctx)
{
	rv_err e = { { 0 } };
	if (!path)
		return RV_EINVAL;
	rv_payload_check check = { (uint64_t)1 << RV_SEG_QUANT, check_quant_payload, NULL };
	return rv_file_verify_v2(path, fn, ctx, &check, &e);
}

bool rv_db_normalize(float *v, size_t dim)
{
	double n = 0;
	for (size_t i = 0; i < dim; i++)
		n += (double)v[i] * v[i];
	if (!(n > 0) || !isfinite(n))
		return false;
	float inv = (float)(1.0 / sqrt(n));
	for (size_t i = 0; i < dim; i++)
		v[i] *= inv;
	return true;
}
