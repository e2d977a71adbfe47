/*
 * ruhnsw_graph.c - the graph algorithms of the ruhnsw index (Malkov and
 * Yashunin's hierarchical navigable small world), the page helpers, and
 * the graph as it lies in the index's pages.
 *
 * The algorithms (layer search, neighbour selection by the paper's
 * heuristic, linking a new element) are written once against a small
 * interface (RuhnswGraph, ruhnsw.h) with two implementations: the graph a
 * build keeps in local or shared memory (ruhnsw_build.c) and the graph on
 * pages read through shared buffers (here), which inserts, scans and
 * VACUUM use.
 *
 * Distances come from the operator class's support function 1, so every
 * operator class shares one code path; for ruvector_l2_ops it is the
 * squared distance, which orders the same as <-> without the root.
 *
 * Deleted elements (their heap rows are gone, VACUUM has not unlinked
 * them yet) stay part of the graph's paths: a search walks through them,
 * and with live_only never returns them nor lets an insert link to them.
 */
#include "ruhnsw.h"

#include <math.h>

#include "access/generic_xlog.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "simd/simd.h"

/* The support functions whose arithmetic ruhnsw_distance repeats
 * (ruvector_ops.c). */
extern Datum ruvector_l2_squared_distance(PG_FUNCTION_ARGS);
extern Datum ruvector_negative_inner_product(PG_FUNCTION_ARGS);
extern Datum ruvector_cosine_distance(PG_FUNCTION_ARGS);

/* ---- distances ---- */

void ruhnsw_graph_init(RuhnswGraph *g, Relation index, int m)
{
	memset(g, 0, sizeof(*g));
	g->dist_proc = index_getprocinfo(index, 1, RUHNSW_DISTANCE_PROC);
	g->collation = index->rd_indcollation[0];
	g->m = m;
	if (g->dist_proc->fn_addr == ruvector_l2_squared_distance)
		g->dist_kind = RUHNSW_DIST_L2SQ;
	else if (g->dist_proc->fn_addr == ruvector_negative_inner_product)
		g->dist_kind = RUHNSW_DIST_NEG_IP;
	else if (g->dist_proc->fn_addr == ruvector_cosine_distance)
		g->dist_kind = RUHNSW_DIST_COSINE;
	else
		g->dist_kind = RUHNSW_DIST_FMGR;
}

/* The support function's value for (a, b); vectors of different lengths
 * go through the function itself, which says what is wrong. */
double ruhnsw_distance(const RuhnswGraph *g, const Ruvector *a, const Ruvector *b)
{
	if (g->dist_kind != RUHNSW_DIST_FMGR && a->dim == b->dim) {
		const rv_simd_ops *ops = rv_simd();
		double ab, aa, bb, sim;

		switch (g->dist_kind) {
		case RUHNSW_DIST_L2SQ:
			return (double)ops->l2sq(a->x, b->x, (size_t)a->dim);
		case RUHNSW_DIST_NEG_IP:
			return -(double)ops->dot(a->x, b->x, (size_t)a->dim);
		case RUHNSW_DIST_COSINE:
			/* As ruvector_cosine_distance computes it, step by step. */
			ab = ops->dot(a->x, b->x, (size_t)a->dim);
			aa = ops->dot(a->x, a->x, (size_t)a->dim);
			bb = ops->dot(b->x, b->x, (size_t)b->dim);
			sim = ab / sqrt(aa * bb);
			if (sim > 1)
				sim = 1;
			else if (sim < -1)
				sim = -1;
			return 1.0 - sim;
		case RUHNSW_DIST_FMGR:
			break;
		}
	}
	return DatumGetFloat8(FunctionCall2Coll(g->dist_proc, g->collation, PointerGetDatum(a),
			PointerGetDatum(b)));
}

/* ---- candidate heaps ---- */

static inline bool heap_above(const CandHeap *h, const Cand *x, const Cand *y)
{
	return h->max ? x->dist > y->dist : x->dist < y->dist;
}

void ruhnsw_heap_push(CandHeap *h, Cand c)
{
	int i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->a = h->a ? repalloc_huge(h->a, sizeof(Cand) * h->cap)
			    : palloc_extended(sizeof(Cand) * h->cap, MCXT_ALLOC_HUGE);
	}
	i = h->n++;
	while (i > 0) {
		int parent = (i - 1) / 2;

		if (!heap_above(h, &c, &h->a[parent]))
			break;
		h->a[i] = h->a[parent];
		i = parent;
	}
	h->a[i] = c;
}

Cand ruhnsw_heap_pop(CandHeap *h)
{
	Cand top = h->a[0], last = h->a[--h->n];
	int i = 0;

	for (;;) {
		int child = 2 * i + 1;

		if (child >= h->n)
			break;
		if (child + 1 < h->n && heap_above(h, &h->a[child + 1], &h->a[child]))
			child++;
		if (!heap_above(h, &h->a[child], &last))
			break;
		h->a[i] = h->a[child];
		i = child;
	}
	if (h->n > 0)
		h->a[i] = last;
	return top;
}

int ruhnsw_cand_cmp(const void *a, const void *b)
{
	double x = ((const Cand *)a)->dist, y = ((const Cand *)b)->dist;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* ---- searching and linking ---- */

static inline bool is_deleted(RuhnswGraph *g, ElemRef e)
{
	return g->deleted != NULL && g->deleted(g, e);
}

void ruhnsw_search_init(RuhnswSearch *s, bool live_only, bool keep)
{
	memset(s, 0, sizeof(*s));
	s->live_only = live_only;
	s->keep = keep;
	s->near.max = false;
	s->discarded.max = false;
}

/* Into the result set; what falls out of it is discarded, not lost, when
 * the search is to go on later. */
static void found_push(CandHeap *found, Cand c, int ef, RuhnswSearch *s)
{
	ruhnsw_heap_push(found, c);
	if (found->n > ef) {
		Cand out = ruhnsw_heap_pop(found);

		if (s->keep)
			ruhnsw_heap_push(&s->discarded, out);
	}
}

/*
 * The ef nearest elements to q on one layer, found by best-first search
 * from the entry candidates; returned nearest first, count in *nout.
 *
 * s may be NULL (a plain search). With s->keep, everything seen and not
 * returned stays in s: elements still to expand in s->near, the others in
 * s->discarded, so that a later round (s->resumed, its entries taken from
 * s->discarded) goes on with the same visited set where this one stopped.
 */
Cand *ruhnsw_search_layer(RuhnswGraph *g, const Ruvector *q, const Cand *entries, int nentries,
		int ef, int level, RuhnswSearch *s, int *nout)
{
	RuhnswSearch plain;
	CandHeap found = {NULL, 0, 0, true};
	ElemRef *links = palloc(sizeof(ElemRef) * 2 * g->m);
	Cand *result;

	if (s == NULL) {
		ruhnsw_search_init(&plain, false, false);
		s = &plain;
	}
	if (!s->resumed)
		g->visit_reset(g);
	for (int i = 0; i < nentries; i++) {
		/* A later round's entries come from the discarded: seen, live. */
		if (!s->resumed && !g->visit(g, entries[i].ref))
			continue;
		ruhnsw_heap_push(&s->near, entries[i]);
		if (!s->live_only || !is_deleted(g, entries[i].ref))
			found_push(&found, entries[i], ef, s);
	}
	while (s->near.n > 0) {
		Cand c = s->near.a[0];
		int nlinks;

		/* Nothing left nearer than the farthest kept: done. What is left
		 * stays in near for a later round. */
		if (found.n >= ef && c.dist > found.a[0].dist)
			break;
		ruhnsw_heap_pop(&s->near);
		nlinks = g->neighbors(g, c.ref, level, links);
		for (int i = 0; i < nlinks; i++) {
			Cand e;
			bool promising;

			if (!g->visit(g, links[i]))
				continue;
			e.ref = links[i];
			e.dist = g->distance(g, q, links[i]);
			s->visits++;
			promising = found.n < ef || e.dist < found.a[0].dist;
			if (s->live_only && is_deleted(g, e.ref)) {
				/* A way through, never a result. */
				if (promising || s->keep)
					ruhnsw_heap_push(&s->near, e);
				continue;
			}
			if (promising) {
				ruhnsw_heap_push(&s->near, e);
				found_push(&found, e, ef, s);
			} else if (s->keep) {
				ruhnsw_heap_push(&s->discarded, e);
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	result = palloc(sizeof(Cand) * Max(found.n, 1));
	*nout = found.n;
	for (int i = found.n - 1; i >= 0; i--)
		result[i] = ruhnsw_heap_pop(&found);
	if (!s->keep)
		s->near.n = 0;
	if (s == &plain && plain.near.a)
		pfree(plain.near.a);
	if (found.a)
		pfree(found.a);
	pfree(links);
	return result;
}

/*
 * The paper's neighbour heuristic: walking the candidates nearest first,
 * keep one only when it is nearer to the base than to every one kept, so
 * the links spread over directions instead of piling into one cluster.
 * cands must be sorted nearest first; returns the count written to out.
 */
int ruhnsw_select_neighbors(RuhnswGraph *g, const Cand *cands, int ncands, int max, Cand *out)
{
	int nout = 0;

	for (int i = 0; i < ncands && nout < max; i++) {
		Ruvector *cv = g->vector(g, cands[i].ref);
		bool keep = true;

		for (int j = 0; j < nout && keep; j++)
			if (g->distance(g, cv, out[j].ref) < cands[i].dist)
				keep = false;
		if (keep)
			out[nout++] = cands[i];
	}
	return nout;
}

/*
 * The new element's neighbours on layers level..0 (those it shares with
 * the graph), found from the entry point. lists[l] gets up to
 * max_links(l) live candidates with their distances, counts[l] their
 * number.
 */
void ruhnsw_find_neighbors(RuhnswGraph *g, const Ruvector *q, int level, ElemRef entry,
		int entry_level, int ef_construction, Cand **lists, int *counts)
{
	Cand first = {entry, g->distance(g, q, entry)};
	Cand *entries = &first;
	int nentries = 1;

	/* Above the new element's level only the way down matters: deleted
	 * elements serve as well as live ones. */
	for (int l = entry_level; l > level; l--)
		entries = ruhnsw_search_layer(g, q, entries, nentries, 1, l, NULL, &nentries);
	for (int l = level; l > entry_level; l--)
		counts[l] = 0;
	for (int l = Min(level, entry_level); l >= 0; l--) {
		RuhnswSearch s;
		int nfound;
		Cand *found;

		ruhnsw_search_init(&s, true, false);
		found = ruhnsw_search_layer(g, q, entries, nentries, ef_construction, l, &s, &nfound);
		lists[l] = palloc(sizeof(Cand) * ruhnsw_max_links(g->m, l));
		counts[l] = ruhnsw_select_neighbors(g, found, nfound, ruhnsw_max_links(g->m, l), lists[l]);
		/* A layer of deleted elements only: go down from where we were. */
		if (nfound > 0) {
			entries = found;
			nentries = nfound;
		}
	}
}

/*
 * Links target back to the new element on one layer. A full list first
 * gives up a deleted element's place; else, with prune, it is pruned by
 * the heuristic, and stays as it was when the heuristic drops the new
 * element at once (without prune a full list stays as it is).
 */
void ruhnsw_add_backlink(RuhnswGraph *g, ElemRef target, int level, Cand added, bool prune)
{
	int max = ruhnsw_max_links(g->m, level);
	ElemRef *links = palloc(sizeof(ElemRef) * (2 * g->m + 1));
	Cand *cands, *kept;
	Ruvector *tv;
	int n, nkept;
	bool has_added = false;

	if (g->lock_links)
		g->lock_links(g, target);
	n = g->neighbors(g, target, level, links);
	for (int i = 0; i < n; i++)
		if (links[i] == added.ref)
			goto done;
	if (n < max) {
		links[n] = added.ref;
		g->set_neighbors(g, target, level, links, n + 1);
		goto done;
	}
	for (int i = 0; i < n; i++)
		if (is_deleted(g, links[i])) {
			links[i] = added.ref;
			g->set_neighbors(g, target, level, links, n);
			goto done;
		}
	if (!prune)
		goto done;
	tv = g->vector(g, target);
	cands = palloc(sizeof(Cand) * (n + 1));
	for (int i = 0; i < n; i++) {
		cands[i].ref = links[i];
		cands[i].dist = g->distance(g, tv, links[i]);
	}
	cands[n] = added; /* the distances are symmetric */
	qsort(cands, n + 1, sizeof(Cand), ruhnsw_cand_cmp);
	kept = palloc(sizeof(Cand) * max);
	nkept = ruhnsw_select_neighbors(g, cands, n + 1, max, kept);
	for (int i = 0; i < nkept; i++) {
		links[i] = kept[i].ref;
		has_added |= kept[i].ref == added.ref;
	}
	if (has_added)
		g->set_neighbors(g, target, level, links, nkept);
	pfree(kept);
	pfree(cands);
done:
	if (g->unlock_links)
		g->unlock_links(g, target);
	pfree(links);
}

/* ---- levels, sizes, options ---- */

/* The highest level whose neighbour tuple fits on an empty page; -1 when
 * that fails for level 0 or the element tuple does not fit on its own.
 * The two share a page whenever they fit together. */
static int fitting_level(int dim, int m)
{
	if (RUHNSW_TUPLE_SPACE(RUHNSW_ELEMENT_SIZE(dim)) > RUHNSW_EMPTY_PAGE_SPACE)
		return -1;
	for (int l = RUHNSW_MAX_LEVEL; l >= 0; l--)
		if (RUHNSW_TUPLE_SPACE(RUHNSW_NEIGHBOR_SIZE(m, l)) <= RUHNSW_EMPTY_PAGE_SPACE)
			return l;
	return -1;
}

int ruhnsw_max_level_for(int dim, int m)
{
	int level = fitting_level(dim, m);

	/* The neighbour tuple of level 0 fits for every m the option allows,
	 * so only the vector can be too large. */
	if (level < 0)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("ruvector with %d dimensions is too large for a ruhnsw index", dim),
				errdetail("An indexed ruvector must fit on a page by itself: at most %d dimensions.",
						(int)(((RUHNSW_EMPTY_PAGE_SPACE - sizeof(ItemIdData)) & ~(MAXIMUM_ALIGNOF - 1)) -
								RUHNSW_ELEMENT_SIZE(0)) / (int)sizeof(float))));
	return level;
}

/*
 * The level of a new element: floor(-ln(U) / ln(m)), the paper's
 * distribution with mL = 1/ln(m). U comes from the heap TID, so a build
 * of the same table gives the same levels, serial or parallel.
 */
int ruhnsw_random_level(ItemPointer heaptid, int m, int max_level)
{
	pg_prng_state rng;
	uint64 seed = ((uint64)ItemPointerGetBlockNumber(heaptid) << 16) |
			ItemPointerGetOffsetNumber(heaptid);
	double u;
	int level;

	pg_prng_seed(&rng, seed ^ UINT64CONST(0x52484e5752484e57));
	u = 1.0 - pg_prng_double(&rng); /* (0, 1] */
	level = (int)floor(-log(u) / log((double)m));
	return Min(level, max_level);
}

void ruhnsw_check_dim(Relation index, int expected, int dim)
{
	if (expected != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", expected, dim),
				errdetail("Index \"%s\" holds ruvectors of %d dimensions.",
						RelationGetRelationName(index), expected)));
}

/* Whether a row is left out: the operator class's norm function (cosine)
 * says the vector has no direction. */
bool ruhnsw_skip_vector(FmgrInfo *norm_proc, Oid collation, const Ruvector *v)
{
	return norm_proc &&
		DatumGetFloat8(FunctionCall1Coll(norm_proc, collation, PointerGetDatum(v))) == 0;
}

FmgrInfo *ruhnsw_norm_proc(Relation index)
{
	if (!OidIsValid(index_getprocid(index, 1, RUHNSW_NORM_PROC)))
		return NULL;
	return index_getprocinfo(index, 1, RUHNSW_NORM_PROC);
}

void ruhnsw_options_of(Relation index, int *m, int *ef_construction)
{
	RuhnswOptions *opts = (RuhnswOptions *)index->rd_options;

	*m = opts ? opts->m : RUHNSW_DEFAULT_M;
	*ef_construction = opts ? opts->ef_construction : RUHNSW_DEFAULT_EF_CONSTRUCTION;
}

int ruhnsw_quantization_of(Relation index)
{
	RuhnswOptions *opts = (RuhnswOptions *)index->rd_options;

	return opts ? opts->quantization : RUHNSW_QUANT_NONE;
}

/* ---- reading pages ---- */

/*
 * Which shared buffer each block was last found in, per index relation
 * and backend, kept in rd_amcache (freed with the relcache entry). A scan
 * reads one page per element it computes a distance to, and ReadBuffer's
 * lookup in the shared buffer mapping table (a hash and a partition lock)
 * costs more than the distance itself; ReadRecentBuffer pins a buffer
 * named by a hint after checking under the buffer header's spinlock that
 * it still holds the block, so a stale hint (the page evicted, the index
 * rebuilt) costs only that check and a fallback to ReadBuffer. The table
 * is direct-mapped by block number: a collision is a miss, never a wrong
 * page. It grows with the index up to the number of shared buffers,
 * capped so that a backend spends at most 1 MB on it per index.
 */
#define RECENT_MAX_SLOTS (1 << 18)

typedef struct RecentBuffers {
	uint32 mask;  /* slots - 1, slots a power of two */
	Buffer buf[FLEXIBLE_ARRAY_MEMBER]; /* InvalidBuffer: no hint */
} RecentBuffers;

static RecentBuffers *recent_buffers(Relation index, BlockNumber blkno)
{
	RecentBuffers *rb = (RecentBuffers *)index->rd_amcache;
	uint32 limit = Min(RECENT_MAX_SLOTS, (uint32)NBuffers), slots = 64;

	/* Grown (and emptied) when the index has grown past the table while
	 * the table may still grow: each block has a slot of its own. */
	if (rb != NULL && (blkno <= rb->mask || rb->mask + 1 >= limit))
		return rb;
	while (slots <= blkno && slots < limit)
		slots *= 2;
	if (rb != NULL)
		pfree(rb);
	rb = MemoryContextAllocZero(index->rd_indexcxt, offsetof(RecentBuffers, buf) + sizeof(Buffer) * slots);
	rb->mask = slots - 1;
	index->rd_amcache = rb;
	return rb;
}

/*
 * ReadBuffer(index, blkno) for pages read under a share lock. Counts the
 * read in the index's statistics as ReadBuffer would. Temporary indexes
 * (local buffers) and VACUUM (whose cost accounting ReadBuffer does) take
 * the plain path.
 */
static Buffer read_page(Relation index, BlockNumber blkno)
{
	RecentBuffers *rb;
	Buffer buf;

	if (RelationUsesLocalBuffers(index) || VacuumCostActive || index->rd_indexcxt == NULL)
		return ReadBuffer(index, blkno);
	rb = recent_buffers(index, blkno);
	buf = rb->buf[blkno & rb->mask];
#if PG_VERSION_NUM >= 160000
	if (BufferIsValid(buf) && ReadRecentBuffer(index->rd_locator, MAIN_FORKNUM, blkno, buf)) {
#else
	if (BufferIsValid(buf) && ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blkno, buf)) {
#endif
		pgstat_count_buffer_read(index);
		pgstat_count_buffer_hit(index);
		return buf;
	}
	buf = ReadBuffer(index, blkno);
	/* Looked up again rather than kept across ReadBuffer: the table
	 * belongs to the relcache entry, which a relcache flush clears. */
	rb = recent_buffers(index, blkno);
	rb->buf[blkno & rb->mask] = buf;
	return buf;
}

/* ---- pages ---- */

void ruhnsw_meta_init(Page page, int dim, int m, int ef_construction)
{
	RuhnswMeta *meta;

	PageInit(page, BLCKSZ, 0);
	meta = (RuhnswMeta *)PageGetContents(page);
	meta->magic = RUHNSW_MAGIC;
	meta->version = RUHNSW_VERSION;
	meta->dim = dim;
	meta->m = m;
	meta->ef_construction = ef_construction;
	meta->entry_level = -1;
	ItemPointerSetInvalid(&meta->entry);
	meta->insert_page = InvalidBlockNumber;
	meta->free_page = InvalidBlockNumber;
	/* Generic WAL leaves out the hole between pd_lower and pd_upper. */
	((PageHeader)page)->pd_lower = ((char *)meta + sizeof(RuhnswMeta)) - (char *)page;
}

RuhnswMeta *ruhnsw_meta_of(Relation index, Page page)
{
	RuhnswMeta *meta = (RuhnswMeta *)PageGetContents(page);

	if (meta->magic != RUHNSW_MAGIC || meta->version != RUHNSW_VERSION)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" is not a ruhnsw index of version %d",
						RelationGetRelationName(index), RUHNSW_VERSION)));
	return meta;
}

void ruhnsw_read_meta(Relation index, RuhnswMeta *out)
{
	Buffer buf = read_page(index, RUHNSW_META_BLKNO);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	*out = *ruhnsw_meta_of(index, BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
}

RuhnswElementTuple *ruhnsw_element_at(Relation index, Page page, OffsetNumber off)
{
	RuhnswElementTuple *et;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		goto corrupt;
	et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));
	if (et->type != RUHNSW_ELEMENT)
		goto corrupt;
	return et;
corrupt:
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
			errmsg("index \"%s\" has no element tuple at offset %u",
					RelationGetRelationName(index), off)));
	return NULL;
}

RuhnswNeighborTuple *ruhnsw_neighbors_at(Relation index, Page page, OffsetNumber off)
{
	RuhnswNeighborTuple *nt;

	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		goto corrupt;
	nt = (RuhnswNeighborTuple *)PageGetItem(page, PageGetItemId(page, off));
	if (nt->type != RUHNSW_NEIGHBORS)
		goto corrupt;
	return nt;
corrupt:
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
			errmsg("index \"%s\" has no neighbour tuple at offset %u",
					RelationGetRelationName(index), off)));
	return NULL;
}

/* ---- the graph on pages ---- */

/* ---- element tables ---- */

static inline uint32 ref_hash(uint64 k)
{
	/* A 64-bit finaliser: block and offset bits spread over the index. */
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return (uint32)k;
}

static void refmap_alloc(RefMap *m, uint32 cap)
{
	m->cap = cap;
	m->keys = MemoryContextAllocExtended(m->ctx, sizeof(uint64) * cap, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	m->vals = m->has_vals ? MemoryContextAllocExtended(m->ctx, sizeof(void *) * cap, MCXT_ALLOC_HUGE)
			      : NULL;
}

void ruhnsw_refmap_init(RefMap *m, MemoryContext ctx, bool with_vals)
{
	m->ctx = ctx;
	m->n = 0;
	m->has_vals = with_vals;
	refmap_alloc(m, 256);
}

static uint32 refmap_slot(const RefMap *m, ElemRef key)
{
	uint32 mask = m->cap - 1, i = ref_hash(key) & mask;

	while (m->keys[i] != 0 && m->keys[i] != key)
		i = (i + 1) & mask;
	return i;
}

static void refmap_grow(RefMap *m, uint32 newcap)
{
	uint64 *keys = m->keys;
	void **vals = m->vals;
	uint32 cap = m->cap;

	refmap_alloc(m, newcap);
	for (uint32 j = 0; j < cap; j++)
		if (keys[j] != 0) {
			uint32 i = refmap_slot(m, keys[j]);

			m->keys[i] = keys[j];
			if (vals != NULL)
				m->vals[i] = vals[j];
		}
	pfree(keys);
	if (vals != NULL)
		pfree(vals);
}

void ruhnsw_refmap_reserve(RefMap *m, uint32 n)
{
	uint32 cap = m->cap;

	while ((uint64)n * 2 > cap && cap < PG_UINT32_MAX / 2 + 1)
		cap *= 2;
	if (cap != m->cap)
		refmap_grow(m, cap);
}

bool ruhnsw_refmap_add(RefMap *m, ElemRef key, void ***val)
{
	uint32 i;

	/* Half full at most: probes stay short. */
	if ((m->n + 1) * 2 > m->cap)
		refmap_grow(m, m->cap * 2);
	i = refmap_slot(m, key);
	if (val != NULL)
		*val = m->vals != NULL ? &m->vals[i] : NULL;
	if (m->keys[i] == key)
		return false;
	m->keys[i] = key;
	if (m->vals != NULL)
		m->vals[i] = NULL;
	m->n++;
	return true;
}

void *ruhnsw_refmap_get(const RefMap *m, ElemRef key)
{
	uint32 i = refmap_slot(m, key);

	return m->keys[i] == key && m->vals != NULL ? m->vals[i] : NULL;
}

void ruhnsw_refmap_clear(RefMap *m)
{
	memset(m->keys, 0, sizeof(uint64) * m->cap);
	m->n = 0;
}

static void copy_lists(DiskGraph *dg, DiskElem *e, RuhnswNeighborTuple *nt)
{
	if (nt->nslots < RUHNSW_NSLOTS(dg->g.m, e->level))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a neighbour tuple of %d slots for level %d",
						RelationGetRelationName(dg->index), nt->nslots, e->level)));
	e->nslots = nt->nslots;
	e->slots = MemoryContextAlloc(dg->ctx, sizeof(ItemPointerData) * e->nslots);
	memcpy(e->slots, nt->slots, sizeof(ItemPointerData) * e->nslots);
}

/*
 * The cache entry of an element, added (not yet loaded) when missing. The
 * search asks for one element several times in a row (visited, distance,
 * deleted), so the last one answers without a look-up.
 */
static DiskElem *disk_elem(DiskGraph *dg, ElemRef ref)
{
	void **slot;
	DiskElem *e;

	if (dg->last != NULL && dg->last->key == ref)
		return dg->last;
	if (ruhnsw_refmap_add(&dg->cache, ref, &slot)) {
		/* Elements come in blocks: a scan may hold tens of thousands,
		 * each counting against its memory limit. */
		if (dg->nfree == 0) {
			dg->free_elems = MemoryContextAlloc(dg->ctx, sizeof(DiskElem) * 256);
			dg->nfree = 256;
		}
		e = &dg->free_elems[--dg->nfree];
		e->key = ref;
		e->loaded = false;
		e->visit_gen = 0;
		e->slots = NULL;
		e->vec = NULL;
		e->dirty = false;
		*slot = e;
	} else {
		e = *slot;
	}
	dg->last = e;
	return e;
}

/*
 * Reads what the element's page says of it: its state and TIDs the first
 * time, the vector when the graph keeps vectors, the lists when asked for
 * (or, when the graph keeps vectors, whenever they share the page). With q,
 * returns the distance from q, computed on the page itself. The lists stay
 * as read: only the process holding the update lock changes them, and it
 * updates its copy.
 */
static double disk_read(DiskGraph *dg, ElemRef ref, bool with_lists, const Ruvector *q,
		DiskElem **out)
{
	DiskElem *e = disk_elem(dg, ref);
	bool found = e->loaded;
	ItemPointerData tid;
	Buffer buf;
	Page page;
	RuhnswElementTuple *et;
	double dist = 0;

	*out = e;
	ruhnsw_ref_tid(ref, &tid);
	buf = read_page(dg->index, ItemPointerGetBlockNumber(&tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	et = ruhnsw_element_at(dg->index, page, ItemPointerGetOffsetNumber(&tid));
	if (!found) {
		e->state = et->deleted;
		e->level = et->level;
		e->heaptid = et->heaptid;
		e->ntid = et->neighbortid;
		e->nslots = 0;
		e->loaded = true;
		if (e->level > RUHNSW_MAX_LEVEL || et->vec.dim <= 0 ||
				(et->vec.unused == RUHNSW_CODE_SQ8
						? dg->quant == NULL || et->vec.dim != dg->quant->dim ||
								VARSIZE(&et->vec) != RUHNSW_CODE_SIZE(et->vec.dim)
						: et->vec.unused != 0))
			ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
					errmsg("index \"%s\" has a damaged element tuple in block %u",
							RelationGetRelationName(dg->index), ItemPointerGetBlockNumber(&tid))));
	}
	if (et->vec.unused == RUHNSW_CODE_SQ8) {
		RuhnswCode *code = (RuhnswCode *)&et->vec;

		/* Inserts and VACUUM work on the decoded vector; a scan folds
		 * its query once and reads the code as it is. */
		if (dg->keep_vectors && e->vec == NULL) {
			e->vec = MemoryContextAlloc(dg->ctx, RUVECTOR_SIZE(code->dim));
			ruhnsw_quant_decode(dg->quant, code, e->vec);
		}
		if (q != NULL && e->vec != NULL) {
			dist = ruhnsw_distance(&dg->g, q, e->vec);
		} else if (q != NULL) {
			if (dg->qq.q != q)
				ruhnsw_quant_fold(dg->quant, q, &dg->qq);
			dist = ruhnsw_quant_distance(dg->g.dist_kind, &dg->qq, code);
		}
	} else {
		if (q != NULL)
			dist = ruhnsw_distance(&dg->g, q, &et->vec);
		if (dg->keep_vectors && e->vec == NULL) {
			e->vec = MemoryContextAlloc(dg->ctx, VARSIZE(&et->vec));
			memcpy(e->vec, &et->vec, VARSIZE(&et->vec));
		}
	}
	if (e->slots == NULL && (with_lists || dg->keep_vectors)) {
		/* Usually on the same page; a wide vector leaves no room for it. */
		if (ItemPointerGetBlockNumber(&e->ntid) != ItemPointerGetBlockNumber(&tid)) {
			if (!with_lists)
				goto done;
			UnlockReleaseBuffer(buf);
			buf = read_page(dg->index, ItemPointerGetBlockNumber(&e->ntid));
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
		}
		copy_lists(dg, e, ruhnsw_neighbors_at(dg->index, page, ItemPointerGetOffsetNumber(&e->ntid)));
	}
done:
	UnlockReleaseBuffer(buf);
	return dist;
}

DiskElem *ruhnsw_disk_load(DiskGraph *dg, ElemRef ref, bool with_lists)
{
	DiskElem *e = disk_elem(dg, ref);

	if (!e->loaded || (with_lists && e->slots == NULL) || (dg->keep_vectors && e->vec == NULL))
		disk_read(dg, ref, with_lists, NULL, &e);
	return e;
}

static double disk_distance(RuhnswGraph *g, const Ruvector *q, ElemRef ref)
{
	DiskGraph *dg = (DiskGraph *)g;
	DiskElem *e;

	/* Only a graph that keeps vectors can answer from memory. */
	if (dg->keep_vectors) {
		e = disk_elem(dg, ref);
		if (e->vec != NULL)
			return ruhnsw_distance(g, q, e->vec);
	}
	return disk_read(dg, ref, false, q, &e);
}

static Ruvector *disk_vector(RuhnswGraph *g, ElemRef ref)
{
	DiskGraph *dg = (DiskGraph *)g;

	if (!dg->keep_vectors)
		elog(ERROR, "ruhnsw: this graph keeps no vectors");
	return ruhnsw_disk_load(dg, ref, false)->vec;
}

/* A scan's lists: read from the page at each expansion, never kept (a
 * search expands an element once, and its memory is the scan's limit). */
static int disk_read_neighbors(DiskGraph *dg, DiskElem *e, int level, ElemRef *out)
{
	int start = ruhnsw_layer_start(dg->g.m, level), n = 0;
	Buffer buf = read_page(dg->index, ItemPointerGetBlockNumber(&e->ntid));
	RuhnswNeighborTuple *nt;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	nt = ruhnsw_neighbors_at(dg->index, BufferGetPage(buf), ItemPointerGetOffsetNumber(&e->ntid));
	if (nt->nslots < RUHNSW_NSLOTS(dg->g.m, e->level))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a neighbour tuple of %d slots for level %d",
						RelationGetRelationName(dg->index), nt->nslots, e->level)));
	for (int i = 0; i < ruhnsw_max_links(dg->g.m, level); i++) {
		ItemPointer tid = &nt->slots[start + i];

		if (!ItemPointerIsValid(tid))
			break;
		out[n++] = ruhnsw_tid_ref(tid);
	}
	UnlockReleaseBuffer(buf);
	return n;
}

static int disk_neighbors(RuhnswGraph *g, ElemRef ref, int level, ElemRef *out)
{
	DiskGraph *dg = (DiskGraph *)g;
	DiskElem *e;
	int start = ruhnsw_layer_start(g->m, level), n = 0;

	if (!dg->keep_vectors) {
		e = ruhnsw_disk_load(dg, ref, false);
		return level > e->level ? 0 : disk_read_neighbors(dg, e, level, out);
	}
	e = ruhnsw_disk_load(dg, ref, true);
	if (level > e->level)
		return 0;
	for (int i = 0; i < ruhnsw_max_links(g->m, level); i++) {
		ItemPointer tid = &e->slots[start + i];

		if (!ItemPointerIsValid(tid))
			break;
		out[n++] = ruhnsw_tid_ref(tid);
	}
	return n;
}

static void disk_set_neighbors(RuhnswGraph *g, ElemRef ref, int level, const ElemRef *refs, int n)
{
	DiskGraph *dg = (DiskGraph *)g;
	DiskElem *e = ruhnsw_disk_load(dg, ref, true);
	int start = ruhnsw_layer_start(g->m, level);
	Buffer buf;
	GenericXLogState *state;
	RuhnswNeighborTuple *nt;

	for (int i = 0; i < ruhnsw_max_links(g->m, level); i++) {
		if (i < n)
			ruhnsw_ref_tid(refs[i], &e->slots[start + i]);
		else
			ItemPointerSetInvalid(&e->slots[start + i]);
	}
	if (dg->defer_writes) {
		if (!e->dirty) {
			if (dg->ndirty == dg->capdirty) {
				dg->capdirty = dg->capdirty ? dg->capdirty * 2 : 64;
				dg->dirty = dg->dirty ? repalloc(dg->dirty, sizeof(DiskElem *) * dg->capdirty)
						      : MemoryContextAlloc(dg->ctx, sizeof(DiskElem *) * dg->capdirty);
			}
			dg->dirty[dg->ndirty++] = e;
			e->dirty = true;
		}
		return;
	}
	buf = ReadBuffer(dg->index, ItemPointerGetBlockNumber(&e->ntid));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(dg->index);
	nt = ruhnsw_neighbors_at(dg->index, GenericXLogRegisterBuffer(state, buf, 0),
			ItemPointerGetOffsetNumber(&e->ntid));
	memcpy(&nt->slots[start], &e->slots[start],
			sizeof(ItemPointerData) * ruhnsw_max_links(g->m, level));
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

static int dirty_cmp(const void *a, const void *b)
{
	BlockNumber x = ItemPointerGetBlockNumber(&(*(DiskElem *const *)a)->ntid);
	BlockNumber y = ItemPointerGetBlockNumber(&(*(DiskElem *const *)b)->ntid);

	return x < y ? -1 : x > y ? 1 : 0;
}

void ruhnsw_disk_flush(DiskGraph *dg)
{
	if (dg->ndirty > 1)
		qsort(dg->dirty, dg->ndirty, sizeof(DiskElem *), dirty_cmp);
	for (int i = 0; i < dg->ndirty;) {
		BlockNumber blk = ItemPointerGetBlockNumber(&dg->dirty[i]->ntid);
		Buffer buf = ReadBuffer(dg->index, blk);
		GenericXLogState *state;
		Page page;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(dg->index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		for (; i < dg->ndirty && ItemPointerGetBlockNumber(&dg->dirty[i]->ntid) == blk; i++) {
			DiskElem *e = dg->dirty[i];
			RuhnswNeighborTuple *nt = ruhnsw_neighbors_at(dg->index, page,
					ItemPointerGetOffsetNumber(&e->ntid));

			memcpy(nt->slots, e->slots, sizeof(ItemPointerData) * RUHNSW_NSLOTS(dg->g.m, e->level));
			e->dirty = false;
		}
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
	}
	dg->ndirty = 0;
}

static bool disk_deleted(RuhnswGraph *g, ElemRef ref)
{
	return ruhnsw_disk_load((DiskGraph *)g, ref, false)->state != RUHNSW_LIVE;
}

/* The visited set is a mark on the cache entries: a search visits an
 * element to read it next, so one look-up serves both. */
static void disk_visit_reset(RuhnswGraph *g)
{
	((DiskGraph *)g)->visit_gen++;
}

static bool disk_visit(RuhnswGraph *g, ElemRef ref)
{
	DiskGraph *dg = (DiskGraph *)g;
	DiskElem *e = disk_elem(dg, ref);

	if (e->visit_gen == dg->visit_gen)
		return false;
	e->visit_gen = dg->visit_gen;
	return true;
}

/*
 * A graph over the index's pages; everything it allocates lives in the
 * current memory context. keep_vectors: the elements' vectors are copied
 * (sq8 codes decoded) as they are read (inserts and VACUUM need them to
 * choose links); a scan only needs distances, computed on the pages.
 */
DiskGraph *ruhnsw_disk_graph(Relation index, int m, bool keep_vectors)
{
	DiskGraph *dg = palloc0(sizeof(DiskGraph));
	RuhnswMeta meta;

	ruhnsw_graph_init(&dg->g, index, m);
	dg->g.distance = disk_distance;
	dg->g.vector = disk_vector;
	dg->g.neighbors = disk_neighbors;
	dg->g.set_neighbors = disk_set_neighbors;
	dg->g.deleted = disk_deleted;
	dg->g.visit_reset = disk_visit_reset;
	dg->g.visit = disk_visit;
	dg->index = index;
	dg->ctx = CurrentMemoryContext;
	dg->keep_vectors = keep_vectors;
	ruhnsw_read_meta(index, &meta);
	dg->quant = ruhnsw_quant_load(index, &meta);
	ruhnsw_refmap_init(&dg->cache, dg->ctx, true);
	dg->visit_gen = 1;
	return dg;
}
