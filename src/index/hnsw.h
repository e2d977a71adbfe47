/*
 * hnsw.h - the HNSW graph index, as the collection layer (src/db) uses it.
 *
 * The index does not own vectors. It reads them through an rv_vecs table
 * (slot -> pointer) that the collection owns and grows; a slot is a dense
 * u32 the collection assigns. Vectors of the cosine metric are already
 * unit length when they reach the index, so the index only knows three
 * distance forms:
 *
 *   RV_METRIC_L2      squared Euclidean distance
 *   RV_METRIC_COSINE  1 - dot(a, b)
 *   RV_METRIC_IP      -dot(a, b)
 *
 * Thread-safety: rv_hnsw_search may run on any number of threads at once
 * as long as no insert/delete/load runs, with one exception: the linking
 * step of a batch, rv_hnsw_batch_link, may run beside searches (which
 * reach each new node once its lists are written, hnsw_int.h: Locking). The
 * collection's locks guarantee the rest. rv_hnsw_insert_batch uses threads
 * internally.
 *
 * Files: hnsw_int.h (private), hnsw_build.c (create, free, level draw,
 * batch build, save/load), hnsw_insert.c, hnsw_search.c, hnsw_delete.c,
 * hnsw_codes.c (traversal on quantized codes).
 */
#ifndef RV_HNSW_H
#define RV_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/quant.h"
#include "ruvector.h"
#include "util/util.h"

/* Slot -> vector table, owned by the collection. ptr[slot] is NULL for a
 * slot that has no vector (never stored, or freed). The index reads
 * ptr[slot] for slot < n only. The collection may realloc ptr between calls
 * (never during one). */
typedef struct rv_vecs {
	const float **ptr;
	uint32_t n;   /* slots in use: [0, n) */
	uint32_t dim;
} rv_vecs;

typedef struct rv_hnsw_params {
	uint32_t dim;
	rv_metric metric;
	uint32_t m;               /* links per node on levels >= 1; level 0 keeps 2m */
	uint32_t ef_construction;
	uint64_t seed;            /* level draws; same seed + same serial insert order = same graph */
} rv_hnsw_params;

typedef struct rv_hnsw rv_hnsw;

typedef struct rv_hnsw_hit {
	uint32_t slot;
	float dist; /* in the index's distance form (see top) */
} rv_hnsw_hit;

/* Filter callback used inside the traversal: return true when slot may be
 * returned as a result. Rejected nodes are still used as routes through the
 * graph. Called concurrently from searching threads; must be thread-safe. */
typedef bool (*rv_accept_fn)(void *ctx, uint32_t slot);

/* Progress of a batch insert: done out of total. */
typedef void (*rv_hnsw_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* A new empty index. vecs stays borrowed for the index's life.
 * Errors: RV_EINVAL (params), RV_ENOMEM. */
rv_status rv_hnsw_new(rv_hnsw **out, const rv_hnsw_params *p, const rv_vecs *vecs,
		      const rv_alloc *a, rv_err *err);
void rv_hnsw_free(rv_hnsw *h); /* NULL is a no-op */

/* Insert one slot (its vector is at vecs->ptr[slot]). Inserting a slot that
 * is already in the graph is RV_EINVAL. On RV_ENOMEM the graph is unchanged
 * and usable. */
rv_status rv_hnsw_insert(rv_hnsw *h, uint32_t slot, rv_err *err);

/* Insert slots[0..n) using `threads` threads (0 or 1 = serial) with
 * fine-grained per-node locking. Recall matches a serial build. On failure
 * (RV_EINVAL for a bad slot, RV_ENOMEM) none of the slots is in the graph:
 * everything is obtained before the first is linked. */
rv_status rv_hnsw_insert_batch(rv_hnsw *h, const uint32_t *slots, size_t n, unsigned threads,
			       rv_hnsw_progress_fn progress, void *progress_ctx, rv_err *err);

/* The same in three steps, so that searches can run while the slots are
 * linked. rv_hnsw_batch_prepare checks the batch and obtains everything
 * linking needs (capacity, upper-level blocks, one scratch per thread);
 * it may fail (RV_EINVAL, RV_ENOMEM) and then changes nothing visible.
 * rv_hnsw_batch_link links every slot and never fails: it may run while
 * any number of rv_hnsw_search calls run on other threads (but nothing
 * else touches the index). rv_hnsw_batch_end frees the batch; ended
 * without linking, it undoes the preparation. slots must stay valid and
 * unchanged until then, and their vectors too. Prepare, link and end run
 * one after the other, never beside another writer. */
typedef struct rv_hnsw_batch rv_hnsw_batch;
rv_status rv_hnsw_batch_prepare(rv_hnsw_batch **out, rv_hnsw *h, const uint32_t *slots, size_t n,
				unsigned threads, rv_err *err);
void rv_hnsw_batch_link(rv_hnsw_batch *b, rv_hnsw_progress_fn progress, void *progress_ctx);
void rv_hnsw_batch_end(rv_hnsw_batch *b); /* NULL is a no-op */

/* Remove a slot from the graph and repair its neighbours' links (each
 * neighbour that lost a link gets new ones chosen among the removed node's
 * neighbours and its own, with the same heuristic as insert), moving the
 * entry point if needed, so that recall does not decay after many deletes.
 * Deleting a slot not in the graph is RV_ENOTFOUND. */
rv_status rv_hnsw_delete(rv_hnsw *h, uint32_t slot, rv_err *err);

/* Whether slot is a node of the graph. */
bool rv_hnsw_contains(const rv_hnsw *h, uint32_t slot);
/* Number of nodes; number of levels (0 for an empty graph). */
uint64_t rv_hnsw_count(const rv_hnsw *h);
uint32_t rv_hnsw_levels(const rv_hnsw *h);
/* Heap bytes held by the index: graph, codes, quantizer, search scratch. */
uint64_t rv_hnsw_memory(const rv_hnsw *h);

/* The k nearest accepted nodes to query (dim floats, already normalised
 * for cosine), nearest first, with a candidate list of max(ef, k). With
 * codes enabled the traversal runs on codes (see rv_hnsw_search_v2).
 * accept may be NULL (everything accepted).
 * [out] hits  caller array of cap >= k entries; *n = hits filled (< k only
 *             when fewer than k accepted nodes were reached).
 * No allocation on the hot path beyond a per-thread scratch that is reused
 * (visited set, heaps); Errors: RV_ENOMEM (scratch), RV_EINVAL (k = 0). */
rv_status rv_hnsw_search(rv_hnsw_hit *hits, size_t cap, size_t *n, const rv_hnsw *h,
			 const float *query, size_t k, size_t ef, rv_accept_fn accept, void *ctx,
			 rv_err *err);

/* ---- traversal on codes (hnsw_codes.c; first version 0.2.0) ----------
 *
 * With codes on, the index keeps one code per node in rows of its own (the
 * quantizer's code, SQ8 without the norm for IP and cosine, which do not
 * use it) and a search walks the graph on approximate distances from the
 * codes, then re-ranks the candidates it kept with exact float distances:
 *
 *   SQ8     int8 dot product against the query folded into int8 weights
 *   BINARY  Hamming distance to the query's own code
 *   PQ      sum of table lookups (the query's 256-entry table per sub-space)
 *
 * The graph itself is still built from exact distances, and the saved form
 * (rv_hnsw_save) is unchanged: codes are derived data, set again by
 * calling rv_hnsw_enable_codes after rv_hnsw_load. */

/* How rv_hnsw_search_v2 ranks nodes during the traversal. */
typedef enum rv_hnsw_traverse {
	RV_HNSW_TRAVERSE_AUTO = 0,  /* codes when enabled, else floats */
	RV_HNSW_TRAVERSE_FLOAT = 1,
	RV_HNSW_TRAVERSE_CODES = 2  /* RV_EINVAL when no codes are enabled */
} rv_hnsw_traverse;

#define RV_HNSW_TRAVERSE_SQ8 RV_HNSW_TRAVERSE_CODES /* the name of 0.2.0's first cut */
#define RV_HNSW_RERANK_DEFAULT 4
#define RV_HNSW_RERANK_MAX 1000

typedef struct rv_hnsw_search_opts {
	size_t size;               /* sizeof(rv_hnsw_search_opts) */
	size_t ef;                 /* candidate list; the search uses max(ef, k) */
	rv_accept_fn accept;       /* NULL: everything accepted */
	void *ctx;                 /* for accept */
	rv_hnsw_traverse traverse;
	unsigned rerank;           /* code traversal re-ranks the best max(k * rerank, ef / 2)
				    * nodes it scored (by code) exactly, from a pool beyond the
				    * beam when that is more than max(ef, k);
				    * 0 = RV_HNSW_RERANK_DEFAULT */
} rv_hnsw_search_opts;

#define RV_HNSW_SEARCH_OPTS_INIT { sizeof(rv_hnsw_search_opts), 0, NULL, NULL, RV_HNSW_TRAVERSE_AUTO, 0 }

/* A stored code for slot in the quantizer's own layout (what
 * rv_quantizer_encode writes), or NULL to have the index encode slot's
 * vector. Called from several threads at once. */
typedef const uint8_t *(*rv_hnsw_code_fn)(void *ctx, uint32_t slot);

/* Give every node a code from q (trained on this collection's vectors;
 * dim must match): from stored(ctx, slot) when that is not NULL, else by
 * encoding the node's vector; on `threads` threads for a large graph.
 * Every later insert encodes its node. The index keeps its own copy of q,
 * so q may be freed afterwards. Enabling again replaces the codes. Not
 * thread-safe with any other call on h (take the collection's write
 * lock). Errors: RV_EINVAL (NULL, empty quantizer, dimension mismatch),
 * RV_ENOMEM (then h is as before the call: still on with the old codes,
 * or off, and usable). */
rv_status rv_hnsw_enable_codes(rv_hnsw *h, const rv_quantizer *q, rv_hnsw_code_fn stored, void *ctx,
			       unsigned threads, rv_err *err);
/* Drop the codes; searches go back to floats. NULL or off: no-op. Not
 * thread-safe with any other call on h. */
void rv_hnsw_disable_codes(rv_hnsw *h);
/* The kind of the codes (RV_QUANT_NONE while off). */
rv_quant rv_hnsw_codes_kind(const rv_hnsw *h);
/* The index's copy of the quantizer, NULL while off. Valid until the next
 * enable or disable. */
const rv_quantizer *rv_hnsw_quantizer(const rv_hnsw *h);
/* Bytes one node's code adds to its level-0 row in memory (the code and
 * the row's padding; 0 while off): compare with dim * 4 for the float
 * vector. */
size_t rv_hnsw_code_bytes(const rv_hnsw *h);
/* The code of node slot: PQ and binary codes are the quantizer's; SQ8
 * codes are its dim int8 values, followed by the norm only for L2 (the
 * first bytes of rv_sq8_encode's code). Copies that many bytes into out
 * and returns how many (0 when codes are off or slot is not a node). */
size_t rv_hnsw_code_of(const rv_hnsw *h, uint32_t slot, uint8_t *out);
/* Heap bytes of the codes (their share of the level-0 rows) and the
 * quantizer copy (0 while off); part of rv_hnsw_memory. */
uint64_t rv_hnsw_codes_memory(const rv_hnsw *h);

/* The first cut's SQ8-only names: enable_codes with an SQ8 quantizer on
 * one thread, disable_codes, whether SQ8 codes are on, and their row
 * bytes (0 unless SQ8). */
rv_status rv_hnsw_enable_sq8(rv_hnsw *h, const rv_sq8 *q, rv_err *err);
void rv_hnsw_disable_sq8(rv_hnsw *h);
bool rv_hnsw_sq8_enabled(const rv_hnsw *h);
size_t rv_hnsw_sq8_code_bytes(const rv_hnsw *h);

/* rv_hnsw_search with options (opts NULL = defaults: ef 0, no filter,
 * AUTO traversal). Hits are nearest first with exact distances in the
 * index's form, whatever the traversal. Same thread-safety, scratch reuse
 * and errors as rv_hnsw_search, plus RV_EINVAL for a bad option and, with
 * code traversal, a non-finite query. rv_hnsw_search(.., ef, accept, ctx,
 * ..) is this with AUTO traversal. */
rv_status rv_hnsw_search_v2(rv_hnsw_hit *hits, size_t cap, size_t *n, const rv_hnsw *h,
			    const float *query, size_t k, const rv_hnsw_search_opts *opts, rv_err *err);

/* Distance between query and the vector of slot, in the index's form. */
float rv_hnsw_distance(const rv_hnsw *h, const float *query, uint32_t slot);

/* Sort hits nearest first, equal distances by slot (the order searches
 * return). Hits that come nearly in order (a re-ranked or re-scored pool)
 * take a few comparisons each. */
void rv_hnsw_sort_hits(rv_hnsw_hit *hits, size_t n);

/* Serialise the graph (parameters, entry point, levels, every node's
 * adjacency lists) into out, appending. Encoded field by field,
 * little-endian; the layout is in docs/FORMAT.md ("INDEX segment"). */
rv_status rv_hnsw_save(const rv_hnsw *h, rv_buf *out, rv_err *err);

/* Rebuild an index from rv_hnsw_save bytes without recomputing any
 * distance. Everything is validated (counts, levels, neighbour slots below
 * vecs->n and present in the graph, params equal to p): bad input gives
 * RV_ECORRUPT with a message saying what, never a crash. */
rv_status rv_hnsw_load(rv_hnsw **out, const rv_hnsw_params *p, const rv_vecs *vecs,
		       const uint8_t *data, size_t len, const rv_alloc *a, rv_err *err);

/* Make every node reachable from the entry point over level 0: each node
 * (or island of nodes) no search can reach gets an in-link from one of its
 * nearest reachable nodes. Pruning full lists leaves about 1 node in 1,000
 * unreachable in large graphs. [out] attached: how many links were added.
 * O(nodes * 2m) plus a search per island; not thread-safe with any other
 * call. (hnsw_orphans.c)
 * Errors: RV_ENOMEM (the graph is unchanged or partly repaired, valid). */
rv_status rv_hnsw_attach_orphans(rv_hnsw *h, uint64_t *attached, rv_err *err);

/* Renumber a saved graph (rv_hnsw_save bytes in[0..len)) into out:
 * slot s becomes map[s] (UINT32_MAX = dropped); the kept slots must keep
 * their order, and new slots are below new_bound. For compaction: no
 * distance is computed and the graph is link-for-link the same.
 * Errors: RV_EINVAL when a node or a link points at a dropped slot (the
 * caller then rebuilds), RV_ECORRUPT on malformed bytes, RV_ENOMEM.
 * (hnsw_remap.c) */
rv_status rv_hnsw_remap_saved(rv_buf *out, const uint8_t *in, size_t len, const uint32_t *map,
			      uint32_t map_len, uint32_t new_bound, rv_err *err);

#endif /* RV_HNSW_H */
