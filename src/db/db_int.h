/*
 * db_int.h - what the files of the collection layer share.
 *
 * A collection maps string ids to dense u32 slots. Slots are never reused
 * until compaction renumbers them; a replaced or deleted point's slot just
 * becomes dead. Per slot the handle keeps: the vector (pointer into the
 * file mapping for committed slots, into a heap arena for new ones), the id
 * and payload text (same: mapping or heap), the parsed payload (a cJSON
 * tree, for filters), and flag bits.
 *
 * Slots [0, committed_slots) are in the file's VEC and META segments; the
 * rest were added since the last commit. Dead slots below committed_slots
 * that died in this session are in `pending_deletes` until the next commit
 * writes them into a JOURNAL segment.
 *
 * Files: db.c (handle, open/load, close, get, stats), db_write.c (upsert,
 * delete), db_commit.c (segment encoding, commit, checkpoints, compaction),
 * db_search.c (search, filters, exact scan, results), idmap.c (id -> slot).
 */
#ifndef RV_DB_INT_H
#define RV_DB_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "index/hnsw.h"
#include "store/rvf.h"
#include "util/util.h"

/* ---- id map: open addressing, linear probing, backward-shift delete ---- */

typedef struct rv_idmap {
	uint32_t *slots; /* UINT32_MAX = empty */
	uint32_t *tags;  /* low 32 bits of the id's hash, to skip most strcmp */
	size_t cap;      /* power of two */
	size_t count;
} rv_idmap;

#define RV_NO_SLOT UINT32_MAX

void rv_idmap_init(rv_idmap *m);
void rv_idmap_free(rv_idmap *m, const rv_alloc *a);
/* Make room for `extra` more entries without allocating later. */
bool rv_idmap_reserve(rv_idmap *m, size_t extra, const char *const *ids, const rv_alloc *a);
/* Look up id; ids[] is the slot -> id table the map keys into. */
uint32_t rv_idmap_find(const rv_idmap *m, const char *id, size_t len, const char *const *ids);
/* Insert (id must be absent; room must be reserved). */
void rv_idmap_insert(rv_idmap *m, uint32_t slot, const char *const *ids);
/* Point an existing id at a new slot (ids[new_slot] must equal the id). */
void rv_idmap_replace(rv_idmap *m, uint32_t old_slot, uint32_t new_slot, const char *const *ids);
void rv_idmap_remove(rv_idmap *m, uint32_t slot, const char *const *ids);

/* Threads whose last message a handle remembers separately, so that
 * readers failing at the same moment each read their own message. */
#define RV_THREAD_ERRS 8

/* ---- per-slot flags ---- */

enum {
	RV_SLOT_LIVE = 1u << 0,
	RV_SLOT_HEAP_ID = 1u << 1,      /* ids[slot] is ours to free */
	RV_SLOT_HEAP_PAYLOAD = 1u << 2, /* payload_text[slot] is ours to free */
	RV_SLOT_ZOMBIE = 1u << 3        /* dead but still a graph node (repair failed) */
};

struct rv_db {
	rv_allocator alloc_copy;
	const rv_alloc *a;          /* &alloc_copy or NULL */
	pthread_rwlock_t lock;      /* readers: search/get/stats; writers: the rest */
	pthread_mutex_t err_lock;
	rv_err err;                 /* the latest failure of any thread */
	struct {
		pthread_t thread;
		bool used;
		rv_err err;
	} thread_err[RV_THREAD_ERRS];  /* the latest failure of each recent thread */
	unsigned thread_err_next;   /* round-robin victim when all are used */
	char *path;
	bool readonly;
	unsigned threads;
	rv_progress_fn progress;
	void *progress_ctx;

	rv_file *file;

	/* settings (from the file) */
	uint32_t dim;
	rv_metric metric;
	uint32_t m, ef_construction, ef_search;
	uint64_t seed;

	/* slots */
	rv_vecs vecs;               /* vecs.n = number of slots */
	size_t slot_cap;
	const char **ids;           /* NUL-terminated; "" for a dead uncommitted slot */
	const char **payload_text;  /* NUL-terminated JSON or NULL */
	cJSON **payload;            /* parsed payload or NULL */
	uint8_t *flags;             /* RV_SLOT_* */
	rv_idmap idmap;
	uint64_t live;
	uint64_t zombies;

	/* heap arena for vectors added since open */
	float **chunks;
	size_t n_chunks, chunks_cap;/* chunks allocated (some may be reserved, unused) */
	size_t chunk_vectors;       /* vectors per chunk */
	size_t cur_chunk;           /* chunk being filled (== n_chunks: none yet) */
	size_t chunk_used;          /* vectors used in chunks[cur_chunk] */

	rv_hnsw *index;

	/* commit state */
	uint64_t generation;
	uint32_t committed_slots;
	uint32_t *pending_deletes;
	size_t n_pending_deletes, pending_cap;
	rv_seg_ref *segs;           /* live segments named by the last manifest */
	size_t n_segs, segs_cap;
	uint64_t index_seg_id;      /* the graph checkpoint among segs; 0 = none */
	uint32_t index_covered;     /* slots the checkpoint was taken over */
	uint64_t graph_ops;         /* graph inserts + deletes since the checkpoint */
	bool dirty;
};

/* Messages: set under err_lock so concurrent readers do not interleave. */
rv_status rv_db_fail(rv_db *db, rv_status st, const char *fmt, ...) RV_PRINTF(3, 4);
rv_status rv_db_fail_err(rv_db *db, rv_status st, const rv_err *e);

/* Load the collection from db->path into an empty handle (db.c); unload
 * frees everything load built. */
rv_status rv_db_load(rv_db *db);
void rv_db_unload(rv_db *db);

/* Index parameters of the collection. */
void rv_db_hnsw_params(const rv_db *db, rv_hnsw_params *p);

/* Encode the manifest state blob (db_commit.c) / decode it (db.c). */
void rv_db_encode_state(const rv_db *db, rv_buf *b, uint32_t n_slots, uint64_t live,
			uint64_t index_seg_id, uint32_t index_covered);

/* Normalise v in place for cosine; false when its norm is zero. */
bool rv_db_normalize(float *v, size_t dim);

/* Write-path helpers shared by upsert/delete and load (db_write.c). */
bool rv_db_reserve_slots(rv_db *db, size_t extra);
void rv_db_forget_slot(rv_db *db, uint32_t slot); /* free heap id/payload of a dead slot */
/* Remove a dead slot from the graph; on failure it stays a zombie. */
void rv_db_unlink_slot(rv_db *db, uint32_t slot);

#define RV_STATE_VERSION 1
#define RV_STATE_BYTES 64

#endif /* RV_DB_INT_H */
