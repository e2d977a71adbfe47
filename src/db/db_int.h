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
 * Quantization: a collection created with a quantizer (rv_open_opts.quant)
 * trains it once it holds enough points (rv_db_quant_train), the graph
 * then keeps a code per node (rv_hnsw_enable_codes) and searches traverse
 * on codes; the trained quantizer lives in the index (rv_hnsw_quantizer)
 * and in a QUANT segment from the next commit on, with the codes (QUANT
 * segments of kind 2, covering slots [0, codes_committed)), which open
 * copies into the graph instead of encoding every vector again.
 *
 * Locking. `lock` is a reader-writer lock: searches, get, count and stats
 * hold it shared; whatever changes the collection holds it exclusive. An
 * upsert holds it exclusive only around the parts that allocate or change
 * what readers index into, and links its new nodes into the graph (the
 * slow part) while searches go on:
 *
 *   1. write_mu, then lock exclusive: validate, copy, grow every table,
 *      store the vectors, train the quantizer, prepare the graph batch
 *      (capacity, upper blocks, scratches: rv_hnsw_batch_prepare), then
 *      make the batch the collection's content: ids mapped to the new
 *      slots, new slots live, replaced slots dead but still graph nodes
 *      (zombies, which searches skip through the accept callback). All
 *      that can fail happens in this step, so a failure rolls back to
 *      exactly the old state.
 *   2. lock shared (write_mu still held): rv_hnsw_batch_link, which never
 *      fails and publishes each node when it is linked (hnsw_int.h,
 *      Locking); searches run beside it and find new points as they are
 *      published, or by the exact scan, never a dead one.
 *   3. lock exclusive: unlink the replaced slots with repair, free their
 *      ids and payloads, counters; then lock and write_mu are released.
 *
 * write_mu serialises writers across the gaps between the steps, where
 * `lock` is not held: every writer (upsert, delete, commit, compaction,
 * learning installs) takes write_mu before `lock` exclusive, through
 * rv_db_write_lock / rv_db_write_unlock. Lock order: write_mu, then lock,
 * then fb_lock or err_lock; readers take only lock (shared), never
 * write_mu, so a search never waits for a linking writer. The shared hold
 * in step 2 also keeps out a writer that takes `lock` alone. `lock`
 * prefers writers (db.c): a writer waiting for it, such as an upsert
 * entering step 3, holds back new searches, which would otherwise overlap
 * without end on a busy handle and starve it; so no thread may take it
 * shared twice.
 *
 * Files: db.c (handle, open/load, close, get, stats), db_write.c (upsert,
 * delete, quantizer training), db_commit.c (segment encoding, commit,
 * checkpoints, compaction), db_search.c (search, filters, exact scan,
 * results), idmap.c (id -> slot), db_learn.c (search ids, feedback, the
 * query adapter).
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
	pthread_rwlock_t lock;      /* shared: search/get/stats and an upsert's linking;
				     * exclusive: the other writes (see Locking at the top) */
	pthread_mutex_t write_mu;   /* one writer at a time, across an upsert's steps */
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
	rv_quant quant;             /* RV_QUANT_NONE: not quantized */
	uint32_t pq_m;              /* PQ sub-spaces (0 for the other kinds) */
	uint32_t rerank;            /* default re-rank multiple of k (0 when not quantized) */

	/* quantization state (the quantizer itself is the index's) */
	uint64_t qz_sample;         /* vectors the quantizer was trained on; 0 = untrained */
	uint64_t quant_seg_id;      /* its QUANT segment among segs; 0 = not written yet */
	uint32_t codes_committed;   /* slots whose codes are in QUANT segments */

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

	/* learning from feedback (db_learn.c) */
	pthread_mutex_t fb_lock;    /* the search ring: searches record into it under the read lock */
	uint64_t fb_base;           /* search ids are fb_base + a counter (random per handle) */
	uint64_t fb_counter;        /* searches recorded so far */
	struct rv_fb_search *fb_ring; /* the last fb_ring_cap searches */
	float *fb_ring_q;           /* their queries, dim floats each */
	size_t fb_ring_cap;
	struct rv_fb_event *fb_pending; /* events since the last commit */
	float *fb_pending_q;
	size_t n_fb_pending, fb_pending_cap;
	struct rv_fb_event *fb_replay; /* ring of the last RV_FB_REPLAY events */
	float *fb_replay_q;
	size_t fb_replay_n, fb_replay_next;
	uint64_t fb_total;          /* events ever recorded, committed or not */
	uint32_t fb_journals;       /* live JOURNAL segments of kind 2 */
	struct rv_lora *adapter;    /* the query adapter, NULL until the first training step */
	uint64_t adapter_version;   /* OVERLAY saves of a changed adapter */
	bool adapter_changed;       /* trained since the last OVERLAY */
	bool learn_dirty;           /* the OVERLAY is out of date */
	bool learning;              /* apply and train the adapter (state flag) */
	uint64_t overlay_seg_id;    /* the live OVERLAY segment; 0 = none */
	struct rv_learn_state *ls;  /* consolidated learning: config, versions, regions, re-ranker (db_learn.h) */
};

/* Take / release the exclusive hold of a writer: write_mu, then lock
 * (see Locking at the top). */
static inline void rv_db_write_lock(rv_db *db)
{
	pthread_mutex_lock(&db->write_mu);
	pthread_rwlock_wrlock(&db->lock);
}

static inline void rv_db_write_unlock(rv_db *db)
{
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_unlock(&db->write_mu);
}

/* Messages: set under err_lock so concurrent readers do not interleave. */
rv_status rv_db_fail(rv_db *db, rv_status st, const char *fmt, ...) RV_PRINTF(3, 4);
rv_status rv_db_fail_err(rv_db *db, rv_status st, const rv_err *e);

/* Copy the caller's option struct user (size field first) over the
 * defaults already in dst: a caller built against an older header passes a
 * smaller size and keeps the defaults of later fields. false when the size
 * is below min_size (the first layout) or above own_size. NULL: defaults. */
bool rv_db_take_opts(void *dst, const void *user, size_t own_size, size_t min_size);

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

/* ---- learning (db_learn.c) ----
 *
 * Every search is remembered (query as searched, the slots shown) in a
 * ring so that feedback can name it by id. Feedback events go to the
 * pending log (written at commit as a JOURNAL of kind 2) and to the replay
 * ring; when learning is on, each event also steps the query adapter,
 * which searches apply to the query. Layouts in docs/FORMAT.md. */

#define RV_FB_SEARCHES 4096           /* searches remembered, at most */
#define RV_FB_RING_BYTES ((size_t)16 << 20) /* ... and at most this much memory */
#define RV_FB_SHOWN 100               /* hits remembered per search */
#define RV_FB_REPLAY 10000            /* events in the replay ring */
#define RV_FB_VECTOR_SHOWN 10         /* hits that stand in for "shown" without a search id */
#define RV_FB_NOT_SHOWN UINT32_MAX    /* position of an item that was not shown */
#define RV_JOURNAL_DELETES 1u
#define RV_JOURNAL_FEEDBACK 2u
#define RV_OVERLAY_LEARNING 1u

typedef struct rv_fb_search {
	uint64_t id;                  /* 0 = empty */
	uint32_t n;                   /* slots shown, at most RV_FB_SHOWN */
	uint32_t slots[RV_FB_SHOWN];
} rv_fb_search;

typedef struct rv_fb_event {
	uint64_t search_id;           /* 0 = given with a query vector */
	uint64_t time_ns;             /* wall clock, ns since 1970 */
	float reward;                 /* [-1, 1] */
	uint32_t position;            /* among the hits shown, or RV_FB_NOT_SHOWN */
	uint32_t slot;                /* the item's slot when the event was recorded */
	uint8_t id_len;
	char id[RV_MAX_ID_LEN + 1];
} rv_fb_event;

void rv_db_learn_init(rv_db *db);   /* handle creation: lock, id base */
void rv_db_learn_unload(rv_db *db); /* frees what load and use built */
/* Decode the JOURNAL kind-2 and OVERLAY segments of the manifest. */
rv_status rv_db_learn_load(rv_db *db, const rv_manifest *m);
/* Remember a search; returns its id, or 0 when out of memory. Takes
 * fb_lock; the caller holds the read lock. */
uint64_t rv_db_learn_record(rv_db *db, const float *q, const rv_hnsw_hit *hits, size_t n);
/* What learning does to one search, decided once per search
 * (rv_db_learn_route) and passed to the hooks below. */
struct rv_lversion;
typedef struct rv_search_route {
	bool on;                        /* learning applies to this search */
	const struct rv_lversion *away; /* the earlier version serving the query's away region
	                                   (db_learn.h), or NULL: the active ranking */
} rv_search_route;
/* The route of a search of q (as searched) with these flags. Caller holds
 * the read lock. */
rv_search_route rv_db_learn_route(const rv_db *db, const float *q, unsigned flags);
/* out = the adapted query when learning applies (returns true), else
 * nothing is written. Caller holds the lock. */
bool rv_db_learn_adapt(const rv_db *db, const rv_search_route *rt, float *out, const float *q);
/* Segment payloads: the pending events (or, for compaction, the replay
 * ring with slots renumbered by old_to_new) as a kind-2 JOURNAL, and the
 * OVERLAY. Return false when there is nothing to write. */
bool rv_db_learn_encode_events(rv_buf *b, const rv_db *db, bool replay, const uint32_t *old_to_new);
bool rv_db_learn_encode_overlay(rv_buf *b, const rv_db *db, const uint32_t *old_to_new);
/* After a durable commit that wrote them. */
void rv_db_learn_committed(rv_db *db, bool wrote_events, uint64_t overlay_seg_id);

/* Candidates a search of k hits gathers for the learned re-ranker (k
 * when nothing re-ranks), and the re-ranking itself: reorders hits[0..n)
 * for the query q (as searched) / sq (adapted) and returns how many of
 * them to keep (at most k). Caller holds the read lock. */
size_t rv_db_learn_pool(const rv_db *db, const rv_search_route *rt, size_t k);
/* The ef a search of q (as searched) uses when its opts.ef is 0: the
 * region's ef in the version that ranks it when one was measured, else
 * the collection's ef_search. Caller holds the read lock. */
size_t rv_db_learn_ef(const rv_db *db, const rv_search_route *rt, const float *q);
size_t rv_db_learn_rerank(const rv_db *db, const rv_search_route *rt, const float *q, const float *sq,
			  rv_hnsw_hit *hits, size_t n, size_t k);

/* ---- quantization (db_write.c) ---- */

#define RV_RERANK_SQ8 2
#define RV_RERANK_BINARY 16
#define RV_RERANK_PQ 10
#define RV_QUANT_SAMPLE_PQ 8192 /* PQ trains on at most this many (k-means costs
				   iters * n * 256 * dim); SQ8 and binary on every point */

/* Points a quantizer of kind q needs before it is trained. */
size_t rv_db_train_min(rv_quant q);
/* The default re-rank multiple of a kind; the default (and nearest valid)
 * PQ sub-space count for dim at or below want (0: dim / 8). */
uint32_t rv_db_default_rerank(rv_quant q);
uint32_t rv_db_pq_subspaces(uint32_t dim, uint32_t want);
/* Whether the collection's quantizer is trained (its codes in the graph). */
bool rv_db_quant_trained(const rv_db *db);
/* Train the quantizer from the live slots when it is due (quantized,
 * untrained, at least rv_db_train_min live slots) and give the graph its
 * codes; *trained says whether it did. RV_ENOMEM leaves it untrained. */
rv_status rv_db_quant_train(rv_db *db, bool *trained, rv_err *e);
/* Undo a training (an upsert that failed after it). */
void rv_db_quant_untrain(rv_db *db);

/* Nearest neighbours of q without a filter (caller holds the lock). */
rv_status rv_db_knn_locked(const rv_db *db, const float *q, size_t k, rv_hnsw_hit *hits, size_t *n, rv_err *e);

/* State version 2 marks a file that holds feedback (JOURNAL kind 2), which
 * version-1 readers would reject as malformed. */
#define RV_STATE_VERSION 2
#define RV_STATE_BYTES 64
#define RV_STATE_LEARNING 1u /* state flags: learning on */

#endif /* RV_DB_INT_H */
