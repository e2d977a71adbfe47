/*
 * ruvector.h - the embeddable ruvector library.
 *
 * This header is the reference manual. One collection lives in one `.rvf`
 * file: float32 vectors of a fixed dimension, each with a string id and an
 * optional JSON payload, indexed by an HNSW graph that is saved in the file
 * and reloaded (never rebuilt) on open.
 *
 * Life of a collection:
 *
 *     rv_open_opts o = RV_OPEN_OPTS_INIT;
 *     o.dim = 384; o.metric = RV_METRIC_COSINE;
 *     rv_db *db;
 *     if (rv_db_create(&db, "docs.rvf", &o) != RV_OK) {
 *             fprintf(stderr, "%s\n", rv_errmsg(db));
 *             rv_db_close(db);
 *             return 1;
 *     }
 *     rv_point p = { .id = "a", .vector = v, .payload = "{\"lang\":\"en\"}" };
 *     rv_db_upsert(db, &p, 1);
 *     rv_db_commit(db);            // durable from here on
 *     rv_search_opts s = RV_SEARCH_OPTS_INIT;
 *     s.k = 10; s.filter = "{\"lang\":\"en\"}";
 *     rv_results *r;
 *     rv_db_search(&r, db, query, &s);
 *     for (size_t i = 0; i < rv_results_count(r); i++)
 *             printf("%s %g\n", rv_results_hits(r)[i].id,
 *                    rv_results_hits(r)[i].score);
 *     rv_results_free(r);
 *     rv_db_close(db);
 *
 * Durability: changes become durable at rv_db_commit(). rv_db_close() does
 * not commit; uncommitted changes are discarded, as in a database
 * transaction. A commit that returned RV_OK survives a crash or power loss.
 *
 * Threads: any number of threads may call the read functions (search, get,
 * count, stats, errmsg) on one handle at the same time; writers (upsert,
 * delete, commit, compact) are serialised with each other and with readers by
 * a reader-writer lock inside the handle. A batch upsert uses several threads
 * internally (rv_open_opts.threads).
 *
 * Scores: every score is a distance, smaller is nearer:
 *   RV_METRIC_L2      Euclidean distance  sqrt(sum (a_i - b_i)^2)
 *   RV_METRIC_COSINE  1 - cos(a, b), in [0, 2]; vectors are normalised on
 *                     insert, so rv_db_get() returns the unit vector
 *   RV_METRIC_IP      negative inner product  -sum a_i b_i
 *
 * Option and result structs (rv_open_opts, rv_search_opts, rv_stats) start
 * with a size field set by their _INIT macro. A program built against an
 * older header passes the smaller size of its day and gets defaults for the
 * fields added since (rv_stats: only its known prefix is filled); a size
 * the library does not know is RV_EINVAL with a message. The sizes this
 * library knows: rv_open_opts up to progress_ctx (0.1.0) or up to rerank
 * (0.2.0); rv_search_opts up to flags (0.1.0) or up to rerank (0.2.0);
 * rv_stats any size from one size_t up to sizeof(rv_stats).
 *
 * First version of everything here: 0.1.0.
 */
#ifndef RUVECTOR_H
#define RUVECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RV_VERSION_MAJOR 0
#define RV_VERSION_MINOR 1
#define RV_VERSION_PATCH 0
#define RV_VERSION_NUMBER (RV_VERSION_MAJOR * 10000 + RV_VERSION_MINOR * 100 + RV_VERSION_PATCH)
#define RV_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define RV_API
#elif defined(__GNUC__)
#define RV_API __attribute__((visibility("default")))
#else
#define RV_API
#endif

/* The library's RV_VERSION_NUMBER; compare with the header's to detect a
 * mismatched build. Thread-safe. */
RV_API int rv_libversion_number(void);

/* ------------------------------------------------------------------------
 * Status codes
 * ---------------------------------------------------------------------- */

typedef enum rv_status {
	RV_OK        =  0,
	RV_ERROR     = -1, /* generic; details in rv_errmsg() */
	RV_ENOMEM    = -2, /* an allocation failed; the handle stays usable */
	RV_EINVAL    = -3, /* bad argument; the message names it */
	RV_ENOTFOUND = -4, /* no such id / file */
	RV_ECORRUPT  = -5, /* file failed validation; message names segment and offset */
	RV_EVERSION  = -6, /* file needs a newer ruvector */
	RV_EBUFS     = -7, /* caller buffer too small */
	RV_EIO       = -8, /* operating-system I/O error; message has errno text */
	RV_EBUSY     = -9, /* file is locked by another writer */
	RV_EREADONLY = -10 /* write on a handle opened read-only */
} rv_status;

/* Static name of a status ("RV_ECORRUPT: file is corrupt"), never NULL. */
RV_API const char *rv_status_str(rv_status st);

/* ------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------- */

typedef enum rv_metric {
	RV_METRIC_L2 = 0,
	RV_METRIC_COSINE = 1,
	RV_METRIC_IP = 2
} rv_metric;

/* "l2", "cosine", "ip". */
RV_API const char *rv_metric_name(rv_metric m);

/* Allocator hooks. All of the handle's memory goes through them (the JSON
 * payload trees excepted, which use the C library). A hook that returns NULL
 * makes the call fail with RV_ENOMEM and leave the handle usable. */
typedef struct rv_allocator {
	void *(*malloc_fn)(void *ctx, size_t size);
	void *(*realloc_fn)(void *ctx, void *ptr, size_t size);
	void (*free_fn)(void *ctx, void *ptr);
	void *ctx;
} rv_allocator;

/* Progress callback for long work (batch upsert, commit, compact, open):
 * done out of total units of `what` ("insert", "checkpoint", ...). Called
 * from the thread that made the call. Returning non-zero does nothing yet. */
typedef int (*rv_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);

enum {
	RV_OPEN_READONLY = 1u << 0 /* no writes; shared lock; a torn tail is ignored, not truncated */
};

/* Quantization of a collection (first version: 0.2.0). The graph search
 * then ranks candidates by compact codes of the vectors instead of the
 * float vectors, which cuts the bytes read per query, and re-ranks the
 * best max(rerank * k, ef / 2) of them with exact float distances, so the
 * hits and their scores are always exact:
 *
 *   kind    bytes per vector (codes)   traversal distance     default rerank
 *   SQ8     dim (+ 4 for L2)           int8 dot product       2
 *   BINARY  dim / 8, in 8-byte words   Hamming                16
 *   PQ      pq_subspaces               table lookups          10
 *
 * The quantizer is trained from a sample of the collection once it holds
 * RV_QUANT_TRAIN_MIN points (RV_QUANT_TRAIN_MIN_PQ for PQ): by the upsert
 * that reaches that count (before its points enter the graph, so a first
 * batch upsert is encoded as it is inserted), or else by the next commit;
 * until then searches use the float vectors. The trained quantizer is
 * saved in the file at the next commit and kept by compaction; new points
 * are encoded as they are inserted. docs/QUANT.md has the recall and
 * speed measured on real data. */
typedef enum rv_quant {
	RV_QUANT_NONE = 0,   /* float vectors only */
	RV_QUANT_SQ8 = 1,    /* 8-bit scalar, per-dimension range */
	RV_QUANT_BINARY = 2, /* 1 bit per dimension, around the per-dimension mean */
	RV_QUANT_PQ = 3      /* product quantization, 256 centroids per sub-space */
} rv_quant;

#define RV_QUANT_TRAIN_MIN 1000
#define RV_QUANT_TRAIN_MIN_PQ 2560 /* ten points per centroid */
#define RV_RERANK_MAX 1000

/* "none", "sq8", "binary", "pq"; "unknown" for other values. First
 * version: 0.2.0. */
RV_API const char *rv_quant_name(rv_quant q);

typedef struct rv_open_opts {
	size_t size;              /* sizeof(rv_open_opts), set by RV_OPEN_OPTS_INIT */
	unsigned flags;           /* RV_OPEN_* */
	/* Collection settings, used by rv_db_create only: */
	uint32_t dim;             /* 1..16000 */
	rv_metric metric;
	uint32_t m;               /* HNSW links per node on upper layers (2..128); layer 0 has 2m */
	uint32_t ef_construction; /* candidate list while building (>= m) */
	uint32_t ef_search;       /* default candidate list while searching (>= 1) */
	/* Per handle: */
	unsigned threads;         /* threads for batch inserts; 0 = all cores */
	const rv_allocator *allocator; /* NULL = C library */
	rv_progress_fn progress;  /* NULL = silent */
	void *progress_ctx;
	/* Since 0.2.0; collection settings, used by rv_db_create only (the
	 * file keeps them; rv_db_open uses the file's): */
	rv_quant quant;           /* RV_QUANT_NONE (default), _SQ8, _BINARY, _PQ */
	uint32_t pq_subspaces;    /* PQ: sub-spaces = code bytes per vector, 1..dim, and
				   * ceil(dim / pq_subspaces) * (pq_subspaces - 1) < dim;
				   * 0 = dim / 8 (lowered to the nearest valid value) */
	uint32_t rerank;          /* candidates re-ranked with exact distances, as a multiple
				   * of k, 1..RV_RERANK_MAX; 0 = the kind's default (above) */
	/* Since 0.3.0; used by rv_db_create only (the file keeps it): */
	uint64_t seed;            /* the collection's seed: HNSW level draws and the learners'
				   * initial weights, regions and sample order follow from it, so
				   * the same seed, inserts in the same order on one thread and
				   * the same feedback give the same graph and versions; 0 = drawn
				   * from the path and the clock */
} rv_open_opts;

#define RV_OPEN_OPTS_INIT                                                                          \
	{ sizeof(rv_open_opts), 0, 0, RV_METRIC_L2, 16, 200, 64, 0, NULL, NULL, NULL, RV_QUANT_NONE, 0, 0, 0 }

#define RV_MAX_DIM 16000
#define RV_MAX_ID_LEN 255
#define RV_MAX_PAYLOAD_LEN (16u << 20) /* 16 MiB of JSON per point */

/* ------------------------------------------------------------------------
 * Handles
 * ---------------------------------------------------------------------- */

typedef struct rv_db rv_db; /* opaque */

/* Create a new collection file at `path` (which must not exist) with the
 * settings in opts (opts->dim is required). The file is durable when this
 * returns RV_OK.
 * [out] out  the handle; on failure still a handle whose rv_errmsg() says
 *            why (NULL only on RV_ENOMEM); close it either way.
 * Errors: RV_EINVAL (bad setting, named), RV_EIO (exists, cannot write). */
RV_API rv_status rv_db_create(rv_db **out, const char *path, const rv_open_opts *opts);

/* Open an existing collection. Reads the newest valid manifest, verifies the
 * checksum of every live segment, memory-maps the vectors, loads the saved
 * graph and replays writes made after the last graph checkpoint. A torn tail
 * (a commit cut short by a crash) is cut back to the last complete commit.
 * The collection settings in opts are ignored (the file has its own);
 * flags, threads, allocator and progress apply.
 * Errors: RV_ENOTFOUND, RV_ECORRUPT (names the segment and offset),
 * RV_EVERSION (newer format), RV_EBUSY (another process writes it), RV_EIO. */
RV_API rv_status rv_db_open(rv_db **out, const char *path, const rv_open_opts *opts);

/* Close the handle and discard uncommitted changes. NULL is a no-op.
 * Not thread-safe: no other call on db may be running. */
RV_API void rv_db_close(rv_db *db);

/* Message of the calling thread's last failed call on db (a thread that
 * made none gets the latest failure of any thread). Valid until the
 * thread's next call on db; a handle remembers the messages of its 8 most
 * recently failing threads. Never NULL; "" when none. Thread-safe. */
RV_API const char *rv_errmsg(const rv_db *db);

/* ------------------------------------------------------------------------
 * Writes
 * ---------------------------------------------------------------------- */

typedef struct rv_point {
	const char *id;      /* 1..255 bytes, any bytes but NUL */
	size_t id_len;       /* 0 = strlen(id) */
	const float *vector; /* dim finite floats */
	const char *payload; /* JSON object, or NULL for none */
	size_t payload_len;  /* 0 = strlen(payload) */
} rv_point;

/* Insert or replace points[0..n). A point whose id exists replaces the old
 * vector and payload. The batch is validated first: if any point is bad
 * (wrong id length, non-finite value, payload not a JSON object, the same id
 * twice in one batch), nothing is written and the message names the point
 * by index and id. Large batches are inserted into the graph on
 * rv_open_opts.threads threads. Visible to searches on return; durable after
 * rv_db_commit().
 * Errors: RV_EINVAL, RV_ENOMEM, RV_EREADONLY. */
RV_API rv_status rv_db_upsert(rv_db *db, const rv_point *points, size_t n);

/* Delete the points with the given ids (NUL-terminated). Ids that do not
 * exist are skipped; [out] n_deleted (may be NULL) counts the rest. The
 * graph is repaired around each removed node.
 * Errors: RV_EINVAL, RV_ENOMEM, RV_EREADONLY. */
RV_API rv_status rv_db_delete(rv_db *db, const char *const *ids, size_t n, size_t *n_deleted);

/* Make every change so far durable: append the new segments, fsync, append
 * a new manifest, fsync. Also checkpoints the graph when enough has changed
 * since the last checkpoint that replaying it on open would be slow.
 * Errors: RV_EIO (the file is left as it was before the call), RV_ENOMEM. */
RV_API rv_status rv_db_commit(rv_db *db);

/* Commit, then rewrite the live data (vectors, ids, payloads, graph) into a
 * new file and rename it over the old one atomically. Reclaims the space of
 * deleted points, replaced graph checkpoints and old manifests. */
RV_API rv_status rv_db_compact(rv_db *db);

/* ------------------------------------------------------------------------
 * Reads
 * ---------------------------------------------------------------------- */

/* Number of live points. */
RV_API uint64_t rv_db_count(rv_db *db);

/* Dimension of the collection. */
RV_API uint32_t rv_db_dim(const rv_db *db);

/* Fetch the point with the given id.
 * [out] vector   dim floats, or NULL to skip
 * [out] payload  the JSON payload as a NUL-terminated string to release
 *                with rv_free(), or NULL when the point has none; pass NULL
 *                to skip
 * Errors: RV_ENOTFOUND, RV_ENOMEM. */
RV_API rv_status rv_db_get(rv_db *db, const char *id, float *vector, char **payload);

/* Release memory the library handed out (payload strings). */
RV_API void rv_free(void *ptr);

enum {
	RV_SEARCH_PAYLOAD = 1u << 0, /* fill rv_hit.payload */
	RV_SEARCH_VECTOR  = 1u << 1, /* fill rv_hit.vector */
	RV_SEARCH_EXACT   = 1u << 2, /* brute-force scan instead of the graph */
	RV_SEARCH_NO_LEARNING = 1u << 3 /* the unlearned ranking, even with learning on (0.2.0) */
};

typedef struct rv_search_opts {
	size_t size;        /* sizeof(rv_search_opts), set by RV_SEARCH_OPTS_INIT */
	uint32_t k;         /* hits wanted, 1..100000 */
	uint32_t ef;        /* candidate list; 0 = the collection's ef_search; raised to k */
	const char *filter; /* JSON filter on payloads, or NULL; see below */
	unsigned flags;     /* RV_SEARCH_* */
	/* Since 0.2.0: */
	uint32_t rerank;    /* quantized collections: re-rank at least rerank * k
			     * candidates exactly (0..RV_RERANK_MAX; 0 = the collection's) */
	uint32_t reserved;  /* 0. rerank fills what was padding in 0.1.0's layout;
			     * this keeps the sizes of the two apart */
} rv_search_opts;

#define RV_SEARCH_OPTS_INIT { sizeof(rv_search_opts), 10, 0, NULL, 0, 0, 0 }

typedef struct rv_hit {
	const char *id;       /* NUL-terminated */
	float score;          /* distance; see "Scores" above */
	const char *payload;  /* JSON text, or NULL (none, or not asked for) */
	const float *vector;  /* dim floats, or NULL (not asked for) */
} rv_hit;

typedef struct rv_results rv_results; /* opaque; owns the hits' memory */

/* k nearest neighbours of query (dim floats).
 *
 * Filters use the MongoDB query language over the JSON payload:
 *   {"lang": "en"}                         equality (implicit $eq)
 *   {"year": {"$gte": 2000, "$lt": 2010}}  $eq $ne $gt $gte $lt $lte
 *   {"tag": {"$in": ["a", "b"]}}           $in $nin (arrays of values)
 *   {"meta.author": {"$exists": true}}     $exists; dotted paths
 *   {"$or": [{...}, {...}]}                $and $or (non-empty arrays)
 *   {"$not": {...}}, {"f": {"$not": {"$gt": 3}}}
 * A field holding an array matches when any element matches ($ne and $nin
 * when none does). Numbers compare with numbers, strings with strings
 * (bytewise); other mixes never match. A point without a payload matches
 * only negative conditions ($ne, $nin, $exists false, $not).
 *
 * A filtered search returns min(k, number of matching points) hits: the
 * filter is applied inside the graph traversal, the traversal widens when
 * too few candidates pass, and a selective filter switches to an exact scan
 * of the matching points.
 *
 * [out] out  results to release with rv_results_free(); NULL on failure
 * Errors: RV_EINVAL (dimension, non-finite query, k, bad filter: the
 * message says what and where), RV_ENOMEM. Thread-safe with other reads. */
RV_API rv_status rv_db_search(rv_results **out, rv_db *db, const float *query,
                              const rv_search_opts *opts);

RV_API size_t rv_results_count(const rv_results *r);
/* Hits, nearest first; valid until rv_results_free(r). */
RV_API const rv_hit *rv_results_hits(const rv_results *r);
RV_API void rv_results_free(rv_results *r); /* NULL is a no-op */

/* The id of the search that produced r, for rv_db_feedback(): unique per
 * handle (a random base per handle plus a counter), never 0. The handle
 * remembers its last 4096 searches (fewer at dimensions above about 800:
 * the memory is capped at 16 MiB); an older id has expired. 0 for NULL.
 * First version: 0.2.0. */
RV_API uint64_t rv_results_search_id(const rv_results *r);

/* ------------------------------------------------------------------------
 * Feedback and learning (first version: 0.2.0)
 *
 * Searches can learn from how their results are used. Feedback events
 * (a click, a skip, a rating, a conversion: reward in [-1, 1]) are logged
 * in memory and written to the file at the next rv_db_commit(); the last
 * 10,000 form a replay buffer, reloaded on open. With learning on for the
 * collection (rv_db_set_learning; off by default) each event also trains a
 * small query adapter (a rank-2 low-rank residual on the query vector) and
 * every search applies it to the query, unless the search passes
 * RV_SEARCH_NO_LEARNING. A positive reward pulls the query towards the
 * item relative to the items shown above it (for the top hit: relative to
 * the others shown); a negative one pushes it away from the item relative
 * to the others shown. With learning off, events are still logged but the
 * adapter neither trains nor applies. The adapter is saved at commit and
 * loaded on open. Feedback is a write: it needs a writable handle and is
 * serialised with the other writers. Learning needs dim <= 4096.
 * ---------------------------------------------------------------------- */

/* Feedback on a hit of an earlier search of this handle.
 * search_id  from rv_results_search_id()
 * item_id    the id of one of that search's first 100 hits
 * reward     in [-1, 1]: > 0 good, < 0 bad, 0 logged only
 * Errors: RV_ENOTFOUND (unknown or expired search id), RV_EINVAL (reward
 * out of range or not finite, item not among the search's hits or deleted
 * since; the message names the value), RV_EREADONLY, RV_ENOMEM. */
RV_API rv_status rv_db_feedback(rv_db *db, uint64_t search_id, const char *item_id, float reward);

/* Feedback without a search id: query (dim finite floats, normalised for
 * cosine like a search's) and the item, which must exist. The current top
 * 10 for the query stand for the results that were shown.
 * Errors: RV_EINVAL (query, reward), RV_ENOTFOUND (no such item),
 * RV_EREADONLY, RV_ENOMEM. */
RV_API rv_status rv_db_feedback_vector(rv_db *db, const float *query, const char *item_id, float reward);

/* Learning on (non-zero) or off for the collection; saved in the file at
 * the next commit. Errors: RV_EINVAL (dimension above 4096), RV_EREADONLY. */
RV_API rv_status rv_db_set_learning(rv_db *db, int on);

/* ------------------------------------------------------------------------
 * Statistics and checking
 * ---------------------------------------------------------------------- */

typedef struct rv_stats {
	size_t size;                /* sizeof(rv_stats); set by the caller */
	uint32_t dim;
	rv_metric metric;
	uint32_t m, ef_construction, ef_search;
	uint64_t count;             /* live points */
	uint64_t slots;             /* points ever stored since the last compaction */
	uint64_t deleted;           /* slots - count: space compaction would reclaim */
	uint64_t generation;        /* commits since creation */
	uint64_t file_bytes;        /* size of the file at the last commit */
	uint64_t live_segment_bytes;/* bytes of segments the last manifest names */
	uint32_t segments;          /* segments the last manifest names */
	uint64_t graph_nodes;       /* nodes in the HNSW graph */
	uint32_t graph_levels;      /* levels in the HNSW graph */
	uint64_t unsaved_graph_ops; /* inserts/deletes since the last graph checkpoint */
	uint64_t memory_bytes;      /* heap held by the handle (mapped file excluded) */
	int dirty;                  /* uncommitted changes exist */
	const char *simd;           /* distance kernels in use: "avx512", "avx2", "scalar" */
	/* Since 0.2.0: */
	uint64_t feedback_events;   /* feedback events recorded, committed or not */
	uint64_t replay_events;     /* of those, in the replay buffer (at most 10000) */
	uint64_t adapter_version;   /* saves of a changed query adapter; 0 = none yet */
	uint64_t adapter_steps;     /* training steps the query adapter has taken */
	int learning;               /* learning on for the collection */
	/* Since 0.2.0 (quantization): */
	const char *quant;          /* the collection's quantizer: "none", "sq8", "binary", "pq" */
	int quant_trained;          /* the quantizer is trained and searches traverse on codes */
	uint32_t rerank;            /* default re-rank multiple of k (0 without quantization) */
	uint32_t pq_subspaces;      /* PQ sub-spaces (0 for the other quantizers) */
	uint32_t code_bytes;        /* bytes per vector the codes take in memory (0 until trained) */
	uint64_t index_bytes;       /* heap of the index: graph, codes, quantizer, search
				     * scratch (part of memory_bytes; the mapped vectors excluded) */
} rv_stats;

#define RV_STATS_INIT                                                                              \
	{ sizeof(rv_stats), 0, RV_METRIC_L2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0 }

RV_API rv_status rv_db_stats(rv_stats *out, rv_db *db);

/* One finding of rv_verify_file(): `ok` is 1 for a good segment, 0 for a
 * problem; msg describes it ("segment 12 (VEC) at offset 4096: content hash
 * mismatch"). */
typedef void (*rv_verify_fn)(void *ctx, int ok, const char *msg);

/* Check every segment header and checksum in the file, the manifests and
 * the segments they name, without opening the collection. Returns RV_OK when
 * all is well, RV_ECORRUPT (or RV_EVERSION, RV_EIO, RV_ENOTFOUND) otherwise;
 * each finding goes to fn (may be NULL). A torn tail after the last complete
 * commit is reported (ok = 0) and makes the result RV_ECORRUPT. */
RV_API rv_status rv_verify_file(const char *path, rv_verify_fn fn, void *ctx);

/* Name of the distance kernels chosen for this CPU ("avx512", "avx2",
 * "scalar"). Environment variable RUVECTOR_SIMD=scalar|avx2|avx512 forces
 * one (if the CPU has it). Thread-safe. */
RV_API const char *rv_simd_name(void);

/* The CPU extensions the chosen kernels use, space-separated (for example
 * "avx512f avx512bw avx512vl avx512vnni avx512vpopcntdq"; "" for scalar).
 * Thread-safe. First version: 0.2.0. */
RV_API const char *rv_simd_features(void);

#ifdef __cplusplus
}
#endif

#endif /* RUVECTOR_H */
