/*
 * hnsw_int.h - what the HNSW files share: the index structure, the search
 * scratch, the binary heaps and the few internal entry points.
 *
 * Memory layout (all through the rv_alloc given at creation):
 *
 *   l0     cap rows of l0_stride u32, one per slot: the level-0 list (a count
 *          followed by up to m0 = 2m neighbour slots, l0_list words), then,
 *          while codes are on, the slot's code (hnsw_codes.c), then padding.
 *          One contiguous array from a 64-byte boundary, so the hot level is
 *          a single indexed load away from a slot number, and a node's
 *          code and list share a row: scoring a neighbour by its code
 *          brings in the first words of its list, which the beam reads
 *          when it expands that node. Zeroed as it grows (see Locking).
 *          Enabling or dropping codes lays the rows out again (the lists
 *          are copied), under the collection's exclusive lock.
 *   upper  cap pointers; a node of level L > 0 owns one block of
 *          L * up_stride u32 (count + m slots per level 1..L), allocated
 *          before the node is linked and freed when it is deleted. NULL for
 *          level-0 nodes and absent slots.
 *   lv     cap bytes: 0 for an absent slot, else level + 1. One comparison
 *          "lv[n] > l" tells both that n is a node and that it has a list at
 *          level l, which is what makes edges to deleted (or deleted and
 *          re-inserted at a lower level) slots harmless. Atomic bytes because
 *          a batch insert sets them while other threads read them.
 *
 *          lv is also what publishes a node being inserted: it stays 0
 *          while the node searches for its neighbours, and rises to l + 1
 *          only once the node's lists at levels 0..l are written (levels
 *          are linked bottom-up). So no traversal ever lands on a node
 *          whose lists at its levels below are still empty, and a node
 *          only takes in-links at a level after writing its own list there.
 *
 * Invariants between calls: count = number of slots with lv != 0; entry is
 * a node of level max_level (entry = RV_HNSW_NONE and max_level = -1 for
 * an empty graph); lists may hold stale slots (lv too low) but never more
 * than the level's maximum, and every rewrite of a list drops stale slots.
 *
 * Locking. Two kinds of concurrency meet in the graph.
 *
 * Writers among themselves (a batch insert on threads): a striped array of
 * mutexes guards the lists of each node (stripe = slot & mask); every
 * write of a list holds its stripe (the read-modify-write of a neighbour's
 * list included), and so does every read of a list by an inserting
 * thread; a thread holds at most one stripe at a time, so stripes never
 * deadlock. `global` guards entry and max_level; an insert whose
 * level exceeds max_level holds it for its whole insertion (as hnswlib
 * does), so the entry point only ever moves to a fully linked node and two
 * new top levels never grow at once. `global` is taken before any stripe,
 * never while one is held. `recent_mu` guards the ring of recently linked
 * nodes and is never held with another lock.
 *
 * Searches against linking writers (rv_hnsw_batch_link runs while the
 * collection lets searches go on): searches take no lock (nor does the
 * search of a serial insert, the one writer). Each stripe
 * also has a sequence counter, `seq`; a writer rewriting or extending a
 * list (holding the stripe, or alone) makes it odd before the first store
 * and even again after the last, and stores the words of the list with
 * relaxed atomics. A search reads a list in place with relaxed atomic
 * loads between an acquire load of the counter and a second load after an
 * acquire fence, and reads it again when the counter was odd or moved
 * (rv_hnsw_read_begin/_retry; with the atomic loads, some 20 instructions
 * per list read, 2.4% of a search, measured with callgrind). A torn
 * read is harmless before it is thrown away: the l0 words are zeroed when
 * the array grows and upper blocks are calloc'd, so every word of a list
 * is a count within the maximum or a slot below cap. New nodes are
 * published by the release store of their lv byte (see lv above), which
 * searches load with acquire before they touch the node's code or lists.
 * The entry point and max_level are also published together in one
 * atomic word, `top` (release; searches acquire), once the new entry is
 * linked, so a search never pairs a new max_level with an old entry that
 * has no list at that level. `count` is atomic and grows before a node is
 * published, so a search's beam bound by it never cuts off a node it can
 * reach. Everything else a search reads (l0, upper, vecs,
 * cap, the quantizer) only changes under the collection's exclusive lock:
 * reserve, delete, load, codes on/off never run beside a search.
 */
#ifndef RV_HNSW_INT_H
#define RV_HNSW_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "index/hnsw.h"
#include "quant/quant.h"
#include "simd/simd.h"

#define RV_HNSW_NONE UINT32_MAX
#define RV_HNSW_M_MAX 128    /* largest m; level 0 then keeps 256 links */
#define RV_HNSW_MAX_LEVEL 31 /* levels beyond are clamped; lv then fits a byte */
#define RV_HNSW_STRIPES 1024 /* power of two */
#define RV_HNSW_RECENT 64    /* nodes a threaded insert may have missed (see rv_hnsw_link) */
#define RV_HNSW_MAGIC "RVHN"
#define RV_HNSW_VERSION 1
#define RV_HNSW_HEADER_BYTES 48

#if defined(__GNUC__)
#define RV_HNSW_PREFETCH(p) __builtin_prefetch(p)
#else
#define RV_HNSW_PREFETCH(p) ((void)(p))
#endif

/* A (distance, slot) pair: the element of every heap and candidate list. */
typedef struct rv_hnsw_cand {
	float dist;
	uint32_t slot;
} rv_hnsw_cand;

/* Per-thread working memory of a search, an insert or a delete. Taken from
 * the index's pool and given back, so a warm index searches without
 * allocating. */
typedef struct rv_hnsw_scratch {
	uint8_t *mark;     /* visited stamps, one byte per slot; == epoch means visited */
	size_t mark_cap;
	uint8_t epoch;     /* 0 only before the first traversal: zeroed stamps are unvisited */
	rv_hnsw_cand *cand; /* min-heap of nodes to expand */
	size_t cand_n, cand_cap;
	rv_hnsw_cand *res; /* max-heap of the best ef results, worst at [0] */
	size_t res_n, res_cap;
	rv_hnsw_cand *sel; /* sorted candidates: >= ef + 1, >= 4 (1 + m0), >= pool_max */
	size_t sel_cap;
	rv_hnsw_cand *pool; /* code traversal: max-heap of the best pool_max accepted nodes
			     * the results let go, worst at [0] (0 = off; rv_hnsw_search_v2) */
	size_t pool_n, pool_cap, pool_max;
	uint32_t *kept;    /* selection output: m0 slots */
	uint32_t *nbuf;    /* copy of one list: count + m0 slots */
	uint32_t *dbuf;    /* delete: the removed node's list at one level */
	uint32_t *picks;   /* insert: m chosen neighbours per level 0..RV_HNSW_MAX_LEVEL */
	uint32_t picks_n[RV_HNSW_MAX_LEVEL + 1]; /* how many of each level's m are used */
	/* The query in code form, made on the first code search of the
	 * scratch (one of the three, by the index's code kind): */
	rv_sq8_query *sq;  /* SQ8: int8 weights */
	uint8_t *qcode;    /* binary: the query's own code */
	float *tables;     /* PQ: m tables of 256 */
	bool approx;       /* this traversal ranks by code, not floats */
	size_t bytes;      /* heap held, for rv_hnsw_memory */
} rv_hnsw_scratch;

struct rv_hnsw {
	rv_hnsw_params p;
	const rv_vecs *vecs;
	const rv_alloc *a;
	rv_dist_fn l2sq, dot; /* cached from rv_simd() */
	bool is_l2;
	float dot_bias;       /* distance = dot_bias - dot for cosine (1) and ip (0) */
	uint32_t m, m0;       /* list maxima: levels >= 1, level 0 */
	size_t l0_list;       /* u32 of a level-0 list: 1 + m0 */
	size_t l0_stride;     /* u32 per row of l0: l0_list, the code, padding */
	size_t up_stride;     /* u32 per level in an upper block: 1 + m */
	double level_mult;    /* 1 / ln(m) */

	uint32_t cap;         /* slots covered by l0, lv and upper */
	uint8_t *l0_raw;      /* allocation; l0 is its first 64-byte boundary */
	uint32_t *l0;         /* list words read by searches through rv_hnsw_ld only */
	_Atomic uint8_t *lv;
	uint32_t **upper;
	_Atomic uint64_t count;
	/* Writers' view of the entry point, changed only through
	 * rv_hnsw_set_top, which also publishes both in `top` for searches. */
	uint32_t entry;
	int max_level;
	_Atomic uint64_t top; /* (max_level + 1) << 32 | entry; see Locking */
	uint64_t upper_bytes; /* bytes of all upper blocks */

	pthread_mutex_t global;
	pthread_mutex_t *stripes;
	/* Per stripe: odd while a writer rewrites a list of the stripe. 4
	 * bytes each, packed: a search reads one per expanded node, and the
	 * array stays in cache; writers bump them rarely by comparison. */
	_Atomic uint32_t seq[RV_HNSW_STRIPES];

	/* Threaded batch only, under recent_mu: the last RV_HNSW_RECENT nodes
	 * that finished linking, a ring; recent_n counts every one added. */
	pthread_mutex_t recent_mu;
	uint64_t recent_n;
	uint32_t recent[RV_HNSW_RECENT];

	/* Codes (hnsw_codes.c), kind RV_QUANT_NONE while off: the index's own
	 * copy of the quantizer; slot's code sits in its l0 row after the
	 * list (rv_hnsw_code). Codes of absent slots are stale and never read
	 * (lv says absent). */
	rv_quantizer qz;
	size_t code_len;      /* bytes of a code in use */
	rv_hamming_fn hamming; /* binary codes: the kernel */
	rv_pq_adc_fn pq_adc;   /* PQ codes: the kernel */

	pthread_mutex_t pool_mu;
	rv_hnsw_scratch **pool; /* idle scratches; room for every one created */
	size_t pool_n, pool_cap, pool_total;
};

/* ---- small inline helpers ------------------------------------------- */

static inline float rv_hnsw_dist(const rv_hnsw *h, const float *a, const float *b)
{
	if (h->is_l2)
		return h->l2sq(a, b, h->p.dim);
	return h->dot_bias - h->dot(a, b, h->p.dim);
}

/* The code of slot: the bytes after its level-0 list. */
static inline uint8_t *rv_hnsw_code(const rv_hnsw *h, uint32_t slot)
{
	return (uint8_t *)(h->l0 + (size_t)slot * h->l0_stride + h->l0_list);
}

/* Distance from the scratch's query (in code form) to a code. */
static inline float rv_hnsw_code_dist(const rv_hnsw *h, const rv_hnsw_scratch *s, const uint8_t *code)
{
	switch (h->qz.kind) {
	case RV_QUANT_SQ8: return rv_sq8_distance_levels(s->sq, code);
	case RV_QUANT_BINARY: return (float)h->hamming(s->qcode, code, h->code_len);
	default: return h->pq_adc(s->tables, code, h->code_len);
	}
}

/* Distance from the traversal's query to node n: exact, or from its code
 * when the scratch's traversal is approximate (a well-predicted branch,
 * cheap beside the distance itself). */
static inline float rv_hnsw_node_dist(const rv_hnsw *h, const rv_hnsw_scratch *s, const float *q,
				      uint32_t n)
{
	if (s->approx)
		return rv_hnsw_code_dist(h, s, rv_hnsw_code(h, n));
	return rv_hnsw_dist(h, q, h->vecs->ptr[n]);
}

/* lv byte of a slot below cap: 0 absent, else level + 1. */
static inline unsigned rv_hnsw_lv(const rv_hnsw *h, uint32_t slot)
{
	return atomic_load_explicit(&h->lv[slot], memory_order_relaxed);
}

/* The same, for a traversal that may run beside a linking writer: acquire,
 * so the node's code and lists written before its publication are seen.
 * A plain load on x86. */
static inline unsigned rv_hnsw_lv_acq(const rv_hnsw *h, uint32_t slot)
{
	return atomic_load_explicit(&h->lv[slot], memory_order_acquire);
}

/* List words are plain uint32_t (memcpy, load, save and delete use them
 * without threads), accessed as atomics where a search may read one while
 * a writer stores it. The layouts are the same wherever u32 atomics are
 * lock-free, which the build requires. */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "atomic u32 has the size of u32");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "u32 atomics are lock-free");

static inline uint32_t rv_hnsw_ld(const uint32_t *p)
{
	return atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)p, memory_order_relaxed);
}

static inline void rv_hnsw_st(uint32_t *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)(uintptr_t)p, v, memory_order_relaxed);
}

static inline _Atomic uint32_t *rv_hnsw_seq(const rv_hnsw *h, uint32_t slot)
{
	return (_Atomic uint32_t *)&h->seq[slot & (RV_HNSW_STRIPES - 1)];
}

/* Reader side of the stripe counter of slot: the value to check the read
 * against, waiting out a writer that is in the middle of a list. */
static inline uint32_t rv_hnsw_read_begin(const rv_hnsw *h, uint32_t slot)
{
	_Atomic uint32_t *q = rv_hnsw_seq(h, slot);
	uint32_t v;
	while ((v = atomic_load_explicit(q, memory_order_acquire)) & 1u)
		;
	return v;
}

/* Whether the read begun at v must be done again: a writer went through
 * the stripe meanwhile. The fence keeps the list loads before the second
 * counter load. */
static inline bool rv_hnsw_read_retry(const rv_hnsw *h, uint32_t slot, uint32_t v)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(rv_hnsw_seq(h, slot), memory_order_relaxed) != v;
}

/* Writer side, around every store to a list of slot that a search may be
 * reading: the caller holds slot's stripe, or is the only writer. */
static inline void rv_hnsw_write_begin(const rv_hnsw *h, uint32_t slot)
{
	_Atomic uint32_t *q = rv_hnsw_seq(h, slot);
	uint32_t v = atomic_load_explicit(q, memory_order_relaxed);
	atomic_store_explicit(q, v + 1, memory_order_relaxed);
	/* The odd value is visible before any word of the list changes. */
	atomic_thread_fence(memory_order_release);
}

static inline void rv_hnsw_write_end(const rv_hnsw *h, uint32_t slot)
{
	_Atomic uint32_t *q = rv_hnsw_seq(h, slot);
	uint32_t v = atomic_load_explicit(q, memory_order_relaxed);
	atomic_store_explicit(q, v + 1, memory_order_release);
}

/* Set the entry point and top level, for writers and searches both. */
static inline void rv_hnsw_set_top(rv_hnsw *h, uint32_t entry, int max_level)
{
	h->entry = entry;
	h->max_level = max_level;
	atomic_store_explicit(&h->top, (uint64_t)(uint32_t)(max_level + 1) << 32 | entry,
			      memory_order_release);
}

/* The entry point and top level as a search sees them. */
static inline void rv_hnsw_get_top(const rv_hnsw *h, uint32_t *entry, int *max_level)
{
	uint64_t t = atomic_load_explicit(&h->top, memory_order_acquire);
	*entry = (uint32_t)t;
	*max_level = (int)(uint32_t)(t >> 32) - 1;
}

/* The list (count, then slots) of slot at level. */
static inline uint32_t *rv_hnsw_links(const rv_hnsw *h, uint32_t slot, unsigned level)
{
	if (level == 0)
		return h->l0 + (size_t)slot * h->l0_stride;
	return h->upper[slot] + (size_t)(level - 1) * h->up_stride;
}

static inline uint32_t rv_hnsw_maxdeg(const rv_hnsw *h, unsigned level)
{
	return level == 0 ? h->m0 : h->m;
}

static inline pthread_mutex_t *rv_hnsw_stripe(const rv_hnsw *h, uint32_t slot)
{
	return &h->stripes[slot & (RV_HNSW_STRIPES - 1)];
}

/* ---- heaps over rv_hnsw_cand (arrays preallocated by the caller) ----- */

/* The order of the candidate heap: by distance, then by slot. Equal
 * distances are common with integer code distances (Hamming), and without
 * the slot the order among them would follow the heap's layout, which
 * depends on the scratch's history (its capacity decides when the heap is
 * compacted): the same query could then get other answers in another
 * thread or after a reopen. */
static inline bool rv_hnsw_cand_before(rv_hnsw_cand a, rv_hnsw_cand b)
{
	return a.dist < b.dist || (a.dist == b.dist && a.slot < b.slot);
}

static inline void rv_hnsw_minheap_push(rv_hnsw_cand *hp, size_t *n, rv_hnsw_cand c)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!rv_hnsw_cand_before(c, hp[parent]))
			break;
		hp[i] = hp[parent];
		i = parent;
	}
	hp[i] = c;
}

static inline rv_hnsw_cand rv_hnsw_minheap_pop(rv_hnsw_cand *hp, size_t *n)
{
	rv_hnsw_cand top = hp[0], last = hp[--(*n)];
	size_t len = *n, i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && rv_hnsw_cand_before(hp[c + 1], hp[c]))
			c++;
		if (!rv_hnsw_cand_before(hp[c], last))
			break;
		hp[i] = hp[c];
		i = c;
	}
	if (len)
		hp[i] = last;
	return top;
}

static inline void rv_hnsw_maxheap_push(rv_hnsw_cand *hp, size_t *n, rv_hnsw_cand c)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (hp[parent].dist >= c.dist)
			break;
		hp[i] = hp[parent];
		i = parent;
	}
	hp[i] = c;
}

static inline rv_hnsw_cand rv_hnsw_maxheap_pop(rv_hnsw_cand *hp, size_t *n)
{
	rv_hnsw_cand top = hp[0], last = hp[--(*n)];
	size_t len = *n, i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && hp[c + 1].dist > hp[c].dist)
			c++;
		if (last.dist >= hp[c].dist)
			break;
		hp[i] = hp[c];
		i = c;
	}
	if (len)
		hp[i] = last;
	return top;
}

/* ---- hnsw_build.c ---------------------------------------------------- */

/* The level of slot: a pure function of (seed, slot), geometric with
 * ratio 1/m (floor(-ln(u) / ln(m))), clamped to RV_HNSW_MAX_LEVEL. */
RV_HIDDEN unsigned rv_hnsw_draw_level(const rv_hnsw *h, uint32_t slot);

/* Make the arrays cover slots [0, need). On failure nothing changes. */
RV_HIDDEN bool rv_hnsw_reserve(rv_hnsw *h, uint32_t need);

/* Zeroed l0 rows of `stride` u32 for `rows` slots, from a 64-byte
 * boundary inside *raw (the allocation to free). NULL on overflow or
 * ENOMEM. */
RV_HIDDEN uint32_t *rv_hnsw_rows_alloc(const rv_hnsw *h, size_t rows, size_t stride, uint8_t **raw);

/* The row stride, in u32, for rows of `bytes` used bytes: whole 64-byte
 * lines when that wastes at most an eighth of the row, else whole words
 * (hnsw_build.c says why). */
RV_HIDDEN size_t rv_hnsw_row_words(size_t bytes);

/* A scratch sized for the current capacity and a candidate list of ef;
 * NULL on ENOMEM. rv_hnsw_release gives it back to the pool. */
RV_HIDDEN rv_hnsw_scratch *rv_hnsw_acquire(const rv_hnsw *h, size_t ef);
/* Room in s for a re-rank depth of n (s->pool and s->sel). false on ENOMEM. */
RV_HIDDEN bool rv_hnsw_scratch_pool(const rv_hnsw *h, rv_hnsw_scratch *s, size_t n);
RV_HIDDEN void rv_hnsw_release(const rv_hnsw *h, rv_hnsw_scratch *s);

/* Check the in-memory invariants listed at the top (for tests): RV_OK or
 * RV_ERROR with what is wrong. */
RV_HIDDEN rv_status rv_hnsw_verify(const rv_hnsw *h, rv_err *err);

/* Check that every node is reachable from the entry point over level-0
 * links, by a breadth-first walk (for tests). A node nothing links to is
 * never returned by a search, whatever ef, even for its own vector. Not
 * an invariant: a loaded file may hold any valid lists, and the pruning of
 * full lists can, rarely, drop a node's last in-link even in a serial
 * build; but a threaded build must keep it wherever a serial build of the
 * same data does. Meaningful once rv_hnsw_verify passed. RV_OK, RV_ERROR
 * naming how many nodes are cut off and the first of them, or RV_ENOMEM. */
RV_HIDDEN rv_status rv_hnsw_verify_reach(const rv_hnsw *h, rv_err *err);

/* ---- hnsw_search.c --------------------------------------------------- */

/* Begin a traversal: a fresh visited epoch, empty heaps. */
RV_HIDDEN void rv_hnsw_scratch_reset(rv_hnsw_scratch *s);

/* Greedy walk at `level` from *ep (distance *ep_dist) to a local minimum
 * for q, never stepping on `skip` (RV_HNSW_NONE for none). locked: copy
 * each list under its stripe (threaded batch insert); else read it in
 * place under the stripe's sequence counter (see Locking), which a search
 * may do beside a linking writer. */
RV_HIDDEN void rv_hnsw_greedy(const rv_hnsw *h, rv_hnsw_scratch *s, const float *q, unsigned level,
			      uint32_t skip, uint32_t *ep, float *ep_dist, bool locked);

/* Put the entry node of a beam search into s: visited, a candidate, and a
 * result when accepted. */
RV_HIDDEN void rv_hnsw_seed(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t ep, float ep_dist,
			    rv_accept_fn accept, void *ctx);

/* Beam search at `level` from what rv_hnsw_seed put in s: on return s->res
 * holds the best ef accepted nodes reached (max-heap). Rejected nodes are
 * expanded but never enter res. When the candidate heap must grow and
 * cannot: with must_grow, stop and return false; without, drop that
 * candidate (the insert path, which must not fail once linking began).
 * locked: as for rv_hnsw_greedy. */
RV_HIDDEN bool rv_hnsw_search_layer(const rv_hnsw *h, rv_hnsw_scratch *s, const float *q,
				    unsigned level, size_t ef, rv_accept_fn accept, void *ctx,
				    bool locked, bool must_grow);

/* Empty s->res into s->sel, nearest first; returns the number moved. */
RV_HIDDEN size_t rv_hnsw_drain_sorted(rv_hnsw_scratch *s);

/* ---- hnsw_codes.c ---------------------------------------------------- */

/* Encode slot's vector into its row, when codes are on (before the node
 * is published, so a search never reads a missing code). */
RV_HIDDEN void rv_hnsw_codes_encode_slot(rv_hnsw *h, uint32_t slot);

/* Load the query into the scratch's code form (made on first use) and
 * switch its traversal to codes. Errors: RV_ENOMEM, RV_EINVAL
 * (non-finite query). */
RV_HIDDEN rv_status rv_hnsw_codes_begin(const rv_hnsw *h, rv_hnsw_scratch *s, const float *query,
					rv_err *err);

/* Heap bytes of the index's quantizer copy (0 while off). */
RV_HIDDEN uint64_t rv_hnsw_quantizer_memory(const rv_hnsw *h);

/* Free what the code side of a scratch holds (rv_hnsw_free, re-enable). */
RV_HIDDEN void rv_hnsw_codes_scratch_clear(const rv_hnsw *h, rv_hnsw_scratch *s);

/* Prefetch the whole code of slot: every line of it. */
static inline void rv_hnsw_code_prefetch(const rv_hnsw *h, uint32_t slot)
{
	const uint8_t *row = rv_hnsw_code(h, slot);
	for (size_t off = 0; off < h->code_len; off += 64)
		RV_HNSW_PREFETCH(row + off);
	RV_HNSW_PREFETCH(row + h->code_len - 1);
}

/* ---- hnsw_insert.c --------------------------------------------------- */

/* The heuristic neighbour selection: from sel[0..n) sorted by distance to
 * the base node, keep a candidate only if it is closer to the base than to
 * every neighbour kept so far; at most max. Writes kept[], returns count. */
RV_HIDDEN uint32_t rv_hnsw_select(const rv_hnsw *h, const rv_hnsw_cand *sel, size_t n,
				  uint32_t max, uint32_t *kept);

/* Sort by (distance, slot), so that repeats of a slot are adjacent. */
RV_HIDDEN void rv_hnsw_sort_cands(rv_hnsw_cand *c, size_t n);

/* Replace the list of `node` at `level` by the selection among cand[0..n)
 * (slots; stale ones, node itself and repeats are skipped). Uses s->sel.
 * The caller holds the node's stripe when other threads insert, and
 * brackets the call with rv_hnsw_write_begin/_end when searches may run. */
RV_HIDDEN void rv_hnsw_reselect(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t node, unsigned level,
				const uint32_t *cand, size_t n);

/* Link slot (of level `level`; lv still 0, upper block in place, lists
 * empty) into the graph and publish it (lv = level + 1, see the top).
 * Never fails. locked: other threads insert at the same time. */
RV_HIDDEN void rv_hnsw_link(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned level,
			    bool locked);

#endif /* RV_HNSW_INT_H */
