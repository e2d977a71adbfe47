/*
 * ruhnsw.c - the ruhnsw index access method: a hierarchical navigable
 * small world graph (Malkov and Yashunin) in PostgreSQL pages.
 *
 * The graph algorithms (layer search, neighbour selection by the paper's
 * heuristic, linking a new element) are written once against a small
 * interface (RuhnswGraph) with two implementations: an in-memory graph
 * that CREATE INDEX fills from the heap and then writes out page by page,
 * and the on-disk graph that inserts after the build and scans read
 * through shared buffers. ruhnsw.h describes the page layout and locking.
 *
 * Distances come from the operator class's support function 1, so every
 * operator class shares one code path; for ruvector_l2_ops it is the
 * squared distance, which orders the same as <-> without the root.
 *
 * VACUUM marks the elements of dead heap rows deleted and forgets their
 * heap TIDs; scans step through deleted elements (they still carry the
 * graph) but never return them. Their space is not reused.
 */
#include "ruhnsw.h"

#include <float.h>
#include <math.h>

#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xloginsert.h"
#include "commands/vacuum.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

int ruhnsw_ef_search = RUHNSW_DEFAULT_EF_SEARCH;
static relopt_kind ruhnsw_relopt_kind;

/* ---- the graph interface and the algorithms on it ---- */

/* An element: its index in the build's array, or its packed index TID. */
typedef uint64 ElemRef;

typedef struct Cand {
	ElemRef ref;
	double dist;
} Cand;

typedef struct RuhnswGraph RuhnswGraph;
struct RuhnswGraph {
	FmgrInfo *dist_proc;
	Oid collation;
	int m;
	Ruvector *(*vector)(RuhnswGraph *g, ElemRef e);
	/* The element's list on one layer into out (room for 2m); its length. */
	int (*neighbors)(RuhnswGraph *g, ElemRef e, int level, ElemRef *out);
	void (*set_neighbors)(RuhnswGraph *g, ElemRef e, int level, const ElemRef *refs, int n);
	void (*visit_reset)(RuhnswGraph *g);
	/* True the first time an element is seen since the last reset. */
	bool (*visit)(RuhnswGraph *g, ElemRef e);
};

static inline int max_links(int m, int level)
{
	return level == 0 ? 2 * m : m;
}

static inline int layer_start(int m, int level)
{
	return level == 0 ? 0 : 2 * m + (level - 1) * m;
}

static double graph_distance(RuhnswGraph *g, Ruvector *q, ElemRef e)
{
	Datum d = FunctionCall2Coll(g->dist_proc, g->collation, PointerGetDatum(q),
			PointerGetDatum(g->vector(g, e)));

	return DatumGetFloat8(d);
}

/* A binary heap of candidates: nearest on top (min) or farthest (max). */
typedef struct CandHeap {
	Cand *a;
	int n, cap;
	bool max;
} CandHeap;

static inline bool heap_above(const CandHeap *h, const Cand *x, const Cand *y)
{
	return h->max ? x->dist > y->dist : x->dist < y->dist;
}

static void heap_push(CandHeap *h, Cand c)
{
	int i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->a = h->a ? repalloc(h->a, sizeof(Cand) * h->cap) : palloc(sizeof(Cand) * h->cap);
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

static Cand heap_pop(CandHeap *h)
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

/*
 * The ef nearest elements to q on one layer, found by best-first search
 * from the entry candidates; returned nearest first, count in *nout.
 */
static Cand *search_layer(RuhnswGraph *g, Ruvector *q, const Cand *entries, int nentries, int ef,
		int level, int *nout)
{
	CandHeap near = {NULL, 0, 0, false}, found = {NULL, 0, 0, true};
	ElemRef *links = palloc(sizeof(ElemRef) * 2 * g->m);
	Cand *result;

	g->visit_reset(g);
	for (int i = 0; i < nentries; i++) {
		if (!g->visit(g, entries[i].ref))
			continue;
		heap_push(&near, entries[i]);
		heap_push(&found, entries[i]);
		if (found.n > ef)
			heap_pop(&found);
	}
	while (near.n > 0) {
		Cand c = heap_pop(&near);
		int nlinks;

		/* Nothing left nearer than the farthest kept: done. */
		if (found.n >= ef && c.dist > found.a[0].dist)
			break;
		nlinks = g->neighbors(g, c.ref, level, links);
		for (int i = 0; i < nlinks; i++) {
			Cand e;

			if (!g->visit(g, links[i]))
				continue;
			e.ref = links[i];
			e.dist = graph_distance(g, q, links[i]);
			if (found.n < ef || e.dist < found.a[0].dist) {
				heap_push(&near, e);
				heap_push(&found, e);
				if (found.n > ef)
					heap_pop(&found);
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	result = palloc(sizeof(Cand) * Max(found.n, 1));
	*nout = found.n;
	for (int i = found.n - 1; i >= 0; i--)
		result[i] = heap_pop(&found);
	if (near.a)
		pfree(near.a);
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
static int select_neighbors(RuhnswGraph *g, const Cand *cands, int ncands, int max, Cand *out)
{
	int nout = 0;

	for (int i = 0; i < ncands && nout < max; i++) {
		Ruvector *cv = g->vector(g, cands[i].ref);
		bool keep = true;

		for (int j = 0; j < nout && keep; j++)
			if (graph_distance(g, cv, out[j].ref) < cands[i].dist)
				keep = false;
		if (keep)
			out[nout++] = cands[i];
	}
	return nout;
}

static int cand_cmp(const void *a, const void *b)
{
	double x = ((const Cand *)a)->dist, y = ((const Cand *)b)->dist;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The new element's neighbours on layers level..0 (those it shares with
 * the graph), found from the entry point. lists[l] gets up to
 * max_links(l) candidates with their distances, counts[l] their number.
 */
static void find_neighbors(RuhnswGraph *g, Ruvector *q, int level, ElemRef entry, int entry_level,
		int ef_construction, Cand **lists, int *counts)
{
	Cand first = {entry, graph_distance(g, q, entry)};
	Cand *entries = &first;
	int nentries = 1;

	for (int l = entry_level; l > level; l--)
		entries = search_layer(g, q, entries, nentries, 1, l, &nentries);
	for (int l = level; l > entry_level; l--)
		counts[l] = 0;
	for (int l = Min(level, entry_level); l >= 0; l--) {
		int nfound;
		Cand *found = search_layer(g, q, entries, nentries, ef_construction, l, &nfound);

		lists[l] = palloc(sizeof(Cand) * max_links(g->m, l));
		counts[l] = select_neighbors(g, found, nfound, max_links(g->m, l), lists[l]);
		entries = found;
		nentries = nfound;
	}
}

/* Link target back to the new element on one layer, pruning its list by
 * the heuristic when it is full. */
static void add_backlink(RuhnswGraph *g, ElemRef target, int level, Cand added)
{
	int max = max_links(g->m, level);
	ElemRef *links = palloc(sizeof(ElemRef) * (2 * g->m + 1));
	int n = g->neighbors(g, target, level, links);
	Ruvector *tv;
	Cand *cands, *kept;
	int nkept;
	bool has_added = false;

	for (int i = 0; i < n; i++)
		if (links[i] == added.ref)
			return;
	if (n < max) {
		links[n] = added.ref;
		g->set_neighbors(g, target, level, links, n + 1);
		return;
	}
	tv = g->vector(g, target);
	cands = palloc(sizeof(Cand) * (n + 1));
	for (int i = 0; i < n; i++) {
		cands[i].ref = links[i];
		cands[i].dist = graph_distance(g, tv, links[i]);
	}
	cands[n] = added; /* the distances are symmetric */
	qsort(cands, n + 1, sizeof(Cand), cand_cmp);
	kept = palloc(sizeof(Cand) * max);
	nkept = select_neighbors(g, cands, n + 1, max, kept);
	for (int i = 0; i < nkept; i++) {
		links[i] = kept[i].ref;
		has_added |= kept[i].ref == added.ref;
	}
	/* Dropped right away: the list stays as it was. */
	if (has_added)
		g->set_neighbors(g, target, level, links, nkept);
}

/* ---- levels and sizes ---- */

/* Room for one more tuple of this size on a page (its line pointer too). */
#define TUPLE_SPACE(size) (MAXALIGN(size) + sizeof(ItemIdData))
#define EMPTY_PAGE_SPACE (BLCKSZ - MAXALIGN(SizeOfPageHeaderData))

/* The highest level whose neighbour tuple fits on an empty page; -1 when
 * that fails for level 0 or the element tuple does not fit on its own.
 * The two share a page whenever they fit together. */
static int fitting_level(int dim, int m)
{
	if (TUPLE_SPACE(RUHNSW_ELEMENT_SIZE(dim)) > EMPTY_PAGE_SPACE)
		return -1;
	for (int l = RUHNSW_MAX_LEVEL; l >= 0; l--)
		if (TUPLE_SPACE(RUHNSW_NEIGHBOR_SIZE(m, l)) <= EMPTY_PAGE_SPACE)
			return l;
	return -1;
}

static inline bool page_has_room(Page page, Size need)
{
	return PageGetExactFreeSpace(page) >= need;
}

static int max_level_for(int dim, int m)
{
	int level = fitting_level(dim, m);

	/* The neighbour tuple of level 0 fits for every m the option allows,
	 * so only the vector can be too large. */
	if (level < 0)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("ruvector with %d dimensions is too large for a ruhnsw index", dim),
				errdetail("An indexed ruvector must fit on a page by itself: at most %d dimensions.",
						(int)(((EMPTY_PAGE_SPACE - sizeof(ItemIdData)) & ~(MAXIMUM_ALIGNOF - 1)) -
								RUHNSW_ELEMENT_SIZE(0)) / (int)sizeof(float))));
	return level;
}

/*
 * The level of a new element: floor(-ln(U) / ln(m)), the paper's
 * distribution with mL = 1/ln(m). U comes from the heap TID, so a build
 * of the same table gives the same graph.
 */
static int random_level(ItemPointer heaptid, int m, int max_level)
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

static void check_dim(Relation index, int expected, int dim)
{
	if (expected != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", expected, dim),
				errdetail("Index \"%s\" holds ruvectors of %d dimensions.",
						RelationGetRelationName(index), expected)));
}

/* Whether a row is left out: the operator class's norm function (cosine)
 * says the vector has no direction. */
static bool skip_vector(FmgrInfo *norm_proc, Oid collation, Ruvector *v)
{
	return norm_proc &&
		DatumGetFloat8(FunctionCall1Coll(norm_proc, collation, PointerGetDatum(v))) == 0;
}

static FmgrInfo *norm_proc_of(Relation index)
{
	if (!OidIsValid(index_getprocid(index, 1, RUHNSW_NORM_PROC)))
		return NULL;
	return index_getprocinfo(index, 1, RUHNSW_NORM_PROC);
}

static void options_of(Relation index, int *m, int *ef_construction)
{
	RuhnswOptions *opts = (RuhnswOptions *)index->rd_options;

	*m = opts ? opts->m : RUHNSW_DEFAULT_M;
	*ef_construction = opts ? opts->ef_construction : RUHNSW_DEFAULT_EF_CONSTRUCTION;
}

/* ---- pages ---- */

static inline ElemRef tid_ref(BlockNumber blk, OffsetNumber off)
{
	return ((uint64)blk << 16) | off;
}

static inline void ref_tid(ElemRef ref, ItemPointer tid)
{
	ItemPointerSet(tid, (BlockNumber)(ref >> 16), (OffsetNumber)(ref & 0xffff));
}

static void meta_init(Page page, int dim, int m, int ef_construction)
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
	/* Generic WAL leaves out the hole between pd_lower and pd_upper. */
	((PageHeader)page)->pd_lower = ((char *)meta + sizeof(RuhnswMeta)) - (char *)page;
}

static RuhnswMeta *meta_of(Relation index, Page page)
{
	RuhnswMeta *meta = (RuhnswMeta *)PageGetContents(page);

	if (meta->magic != RUHNSW_MAGIC || meta->version != RUHNSW_VERSION)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" is not a ruhnsw index of version %d",
						RelationGetRelationName(index), RUHNSW_VERSION)));
	return meta;
}

static void read_meta(Relation index, RuhnswMeta *out)
{
	Buffer buf = ReadBuffer(index, RUHNSW_META_BLKNO);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	*out = *meta_of(index, BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
}

/* Appends a page image built in memory as the next block of a fork. */
static void write_new_page(Relation index, ForkNumber fork, BlockNumber expected, Page image)
{
	Buffer buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	GenericXLogState *state;
	Page page;

	if (BufferGetBlockNumber(buf) != expected)
		elog(ERROR, "ruhnsw index \"%s\" got block %u while writing block %u",
				RelationGetRelationName(index), BufferGetBlockNumber(buf), expected);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	memcpy(page, image, BLCKSZ);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

static RuhnswElementTuple *element_at(Relation index, Page page, OffsetNumber off)
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

static RuhnswNeighborTuple *neighbors_at(Relation index, Page page, OffsetNumber off)
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

/* ---- the on-disk graph ---- */

typedef struct DiskElem {
	ElemRef key;
	Ruvector *vec;
	ItemPointerData heaptid;
	ItemPointerData ntid;
	int level;
	bool deleted;
	int nslots;
	ItemPointerData *slots;
} DiskElem;

typedef struct DiskGraph {
	RuhnswGraph g; /* first, so a RuhnswGraph * is a DiskGraph * */
	Relation index;
	MemoryContext ctx;
	HTAB *cache;   /* ElemRef -> DiskElem, read once per insert or scan */
	HTAB *visited; /* ElemRef set of the current layer search */
} DiskGraph;

static HTAB *ref_table(const char *name, Size entry, MemoryContext ctx)
{
	HASHCTL info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ElemRef);
	info.entrysize = entry;
	info.hcxt = ctx;
	return hash_create(name, 256, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* The element with its vector and neighbour lists, read from its page on
 * first use. The lists stay as read: only this backend's own insert
 * changes them while it holds the update lock, and it updates the copy. */
static DiskElem *disk_load(DiskGraph *dg, ElemRef ref)
{
	bool found;
	DiskElem *e = hash_search(dg->cache, &ref, HASH_ENTER, &found);
	ItemPointerData tid;
	Buffer buf;
	Page page;
	RuhnswElementTuple *et;
	RuhnswNeighborTuple *nt;

	if (found)
		return e;
	ref_tid(ref, &tid);
	buf = ReadBuffer(dg->index, ItemPointerGetBlockNumber(&tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	et = element_at(dg->index, page, ItemPointerGetOffsetNumber(&tid));
	e->vec = MemoryContextAlloc(dg->ctx, VARSIZE(&et->vec));
	memcpy(e->vec, &et->vec, VARSIZE(&et->vec));
	e->heaptid = et->heaptid;
	e->ntid = et->neighbortid;
	e->level = et->level;
	e->deleted = et->deleted != 0;
	/* Usually on the same page; a wide vector leaves no room for it. */
	if (ItemPointerGetBlockNumber(&e->ntid) != ItemPointerGetBlockNumber(&tid)) {
		UnlockReleaseBuffer(buf);
		buf = ReadBuffer(dg->index, ItemPointerGetBlockNumber(&e->ntid));
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
	}
	nt = neighbors_at(dg->index, page, ItemPointerGetOffsetNumber(&e->ntid));
	e->nslots = nt->nslots;
	if (e->nslots < RUHNSW_NSLOTS(dg->g.m, e->level))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a neighbour tuple of %d slots for level %d",
						RelationGetRelationName(dg->index), e->nslots, e->level)));
	e->slots = MemoryContextAlloc(dg->ctx, sizeof(ItemPointerData) * e->nslots);
	memcpy(e->slots, nt->slots, sizeof(ItemPointerData) * e->nslots);
	UnlockReleaseBuffer(buf);
	return e;
}

static Ruvector *disk_vector(RuhnswGraph *g, ElemRef e)
{
	return disk_load((DiskGraph *)g, e)->vec;
}

static int disk_neighbors(RuhnswGraph *g, ElemRef ref, int level, ElemRef *out)
{
	DiskElem *e = disk_load((DiskGraph *)g, ref);
	int start = layer_start(g->m, level), n = 0;

	if (level > e->level)
		return 0;
	for (int i = 0; i < max_links(g->m, level); i++) {
		ItemPointer tid = &e->slots[start + i];

		if (!ItemPointerIsValid(tid))
			break;
		out[n++] = tid_ref(ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
	}
	return n;
}

static void disk_set_neighbors(RuhnswGraph *g, ElemRef ref, int level, const ElemRef *refs, int n)
{
	DiskGraph *dg = (DiskGraph *)g;
	DiskElem *e = disk_load(dg, ref);
	int start = layer_start(g->m, level);
	Buffer buf;
	GenericXLogState *state;
	RuhnswNeighborTuple *nt;

	for (int i = 0; i < max_links(g->m, level); i++) {
		if (i < n)
			ref_tid(refs[i], &e->slots[start + i]);
		else
			ItemPointerSetInvalid(&e->slots[start + i]);
	}
	buf = ReadBuffer(dg->index, ItemPointerGetBlockNumber(&e->ntid));
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(dg->index);
	nt = neighbors_at(dg->index, GenericXLogRegisterBuffer(state, buf, 0),
			ItemPointerGetOffsetNumber(&e->ntid));
	memcpy(&nt->slots[start], &e->slots[start], sizeof(ItemPointerData) * max_links(g->m, level));
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

static void disk_visit_reset(RuhnswGraph *g)
{
	DiskGraph *dg = (DiskGraph *)g;

	if (dg->visited)
		hash_destroy(dg->visited);
	dg->visited = ref_table("ruhnsw visited", sizeof(ElemRef), dg->ctx);
}

static bool disk_visit(RuhnswGraph *g, ElemRef e)
{
	bool found;

	hash_search(((DiskGraph *)g)->visited, &e, HASH_ENTER, &found);
	return !found;
}

/* A graph over the index's pages; everything it allocates lives in the
 * current memory context. */
static DiskGraph *disk_graph(Relation index, int m)
{
	DiskGraph *dg = palloc0(sizeof(DiskGraph));

	dg->g.dist_proc = index_getprocinfo(index, 1, RUHNSW_DISTANCE_PROC);
	dg->g.collation = index->rd_indcollation[0];
	dg->g.m = m;
	dg->g.vector = disk_vector;
	dg->g.neighbors = disk_neighbors;
	dg->g.set_neighbors = disk_set_neighbors;
	dg->g.visit_reset = disk_visit_reset;
	dg->g.visit = disk_visit;
	dg->index = index;
	dg->ctx = CurrentMemoryContext;
	dg->cache = ref_table("ruhnsw elements", sizeof(DiskElem), dg->ctx);
	return dg;
}

/* ---- the in-memory graph of a build ---- */

typedef struct MemElem {
	Ruvector *vec;
	ItemPointerData heaptid;
	ItemPointerData tid; /* where it is written */
	int level;
	int *counts;       /* list length per layer */
	ElemRef *slots;    /* RUHNSW_NSLOTS(m, level) */
} MemElem;

typedef struct BuildState {
	RuhnswGraph g; /* first, so a RuhnswGraph * is a BuildState * */
	Relation index;
	FmgrInfo *norm_proc;
	MemoryContext ctx;     /* the graph */
	MemoryContext tmp_ctx; /* one row's work */
	int dim, m, ef_construction, max_level;
	MemElem *elems;
	int n, cap;
	uint32 *marks; /* visited: marks[i] == gen */
	uint32 gen;
	int entry, entry_level;
} BuildState;

static Ruvector *mem_vector(RuhnswGraph *g, ElemRef e)
{
	return ((BuildState *)g)->elems[e].vec;
}

static int mem_neighbors(RuhnswGraph *g, ElemRef ref, int level, ElemRef *out)
{
	MemElem *e = &((BuildState *)g)->elems[ref];

	if (level > e->level)
		return 0;
	memcpy(out, &e->slots[layer_start(g->m, level)], sizeof(ElemRef) * e->counts[level]);
	return e->counts[level];
}

static void mem_set_neighbors(RuhnswGraph *g, ElemRef ref, int level, const ElemRef *refs, int n)
{
	MemElem *e = &((BuildState *)g)->elems[ref];

	memcpy(&e->slots[layer_start(g->m, level)], refs, sizeof(ElemRef) * n);
	e->counts[level] = n;
}

static void mem_visit_reset(RuhnswGraph *g)
{
	BuildState *bs = (BuildState *)g;

	/* On wrap-around old marks could match again: clear them. */
	if (++bs->gen == 0) {
		memset(bs->marks, 0, sizeof(uint32) * bs->cap);
		bs->gen = 1;
	}
}

static bool mem_visit(RuhnswGraph *g, ElemRef e)
{
	BuildState *bs = (BuildState *)g;

	if (bs->marks[e] == bs->gen)
		return false;
	bs->marks[e] = bs->gen;
	return true;
}

static void build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		bool alive, void *state)
{
	BuildState *bs = state;
	MemoryContext old;
	Ruvector *v;
	MemElem *e;
	int id;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->ctx);
	v = (Ruvector *)PG_DETOAST_DATUM_COPY(values[0]);
	if (bs->dim == 0) {
		bs->dim = v->dim;
		bs->max_level = max_level_for(bs->dim, bs->m);
	}
	check_dim(index, bs->dim, v->dim);
	if (skip_vector(bs->norm_proc, bs->g.collation, v)) {
		pfree(v);
		MemoryContextSwitchTo(old);
		return;
	}
	if (bs->n == bs->cap) {
		bs->cap = bs->cap ? bs->cap * 2 : 1024;
		bs->elems = bs->elems ? repalloc_huge(bs->elems, sizeof(MemElem) * bs->cap)
				      : palloc_extended(sizeof(MemElem) * bs->cap, MCXT_ALLOC_HUGE);
		bs->marks = bs->marks ? repalloc_huge(bs->marks, sizeof(uint32) * bs->cap)
				      : palloc_extended(sizeof(uint32) * bs->cap, MCXT_ALLOC_HUGE);
		memset(bs->marks + bs->n, 0, sizeof(uint32) * (bs->cap - bs->n));
	}
	id = bs->n++;
	e = &bs->elems[id];
	e->vec = v;
	e->heaptid = *tid;
	ItemPointerSetInvalid(&e->tid);
	e->level = random_level(tid, bs->m, bs->max_level);
	e->counts = palloc0(sizeof(int) * (e->level + 1));
	e->slots = palloc(sizeof(ElemRef) * RUHNSW_NSLOTS(bs->m, e->level));

	MemoryContextSwitchTo(bs->tmp_ctx);
	if (bs->entry >= 0) {
		Cand *lists[RUHNSW_MAX_LEVEL + 1];
		int counts[RUHNSW_MAX_LEVEL + 1];
		ElemRef refs[2 * RUHNSW_MAX_M];

		find_neighbors(&bs->g, v, e->level, bs->entry, bs->entry_level, bs->ef_construction,
				lists, counts);
		for (int l = Min(e->level, bs->entry_level); l >= 0; l--) {
			for (int i = 0; i < counts[l]; i++)
				refs[i] = lists[l][i].ref;
			mem_set_neighbors(&bs->g, id, l, refs, counts[l]);
			for (int i = 0; i < counts[l]; i++) {
				Cand added = {id, lists[l][i].dist};

				add_backlink(&bs->g, lists[l][i].ref, l, added);
			}
		}
	}
	if (bs->entry < 0 || e->level > bs->entry_level) {
		bs->entry = id;
		bs->entry_level = e->level;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_ctx);
}

/* A new empty page image at the end of the list; the new count. */
static int add_image(Page **images, int n, int *cap)
{
	if (n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*images = *images ? repalloc(*images, sizeof(Page) * *cap) : palloc(sizeof(Page) * *cap);
	}
	(*images)[n] = palloc0(BLCKSZ);
	PageInit((*images)[n], BLCKSZ, 0);
	return n + 1;
}

static void image_add(Relation index, Page page, BlockNumber blk, void *item, Size size,
		ItemPointer tid)
{
	OffsetNumber off = PageAddItem(page, (Item)item, size, InvalidOffsetNumber, false, false);

	if (off == InvalidOffsetNumber)
		elog(ERROR, "ruhnsw index \"%s\": could not lay out block %u",
				RelationGetRelationName(index), blk);
	ItemPointerSet(tid, blk, off);
	pfree(item);
}

/* Lays the graph out on page images (an element and its neighbour tuple
 * side by side where they fit), then writes the meta page and the images. */
static void build_write(BuildState *bs, ForkNumber fork)
{
	Page *images = NULL;
	int nimages = 0, cap = 0;
	int nbpage = -1; /* where wide vectors' neighbour tuples collect */
	Page meta_page = palloc0(BLCKSZ);
	RuhnswMeta *meta;

	for (int i = 0; i < bs->n; i++) {
		MemElem *e = &bs->elems[i];
		Size esz = RUHNSW_ELEMENT_SIZE(bs->dim), nsz = RUHNSW_NEIGHBOR_SIZE(bs->m, e->level);
		Size both = TUPLE_SPACE(esz) + TUPLE_SPACE(nsz);
		RuhnswElementTuple *et;
		RuhnswNeighborTuple *nt;
		ItemPointerData ntid;

		/* Together on the last page, else together on a new one, else
		 * (too wide for that) each where it fits. */
		if (nimages == 0 || !page_has_room(images[nimages - 1], both)) {
			if (both <= EMPTY_PAGE_SPACE || nimages == 0 ||
					!page_has_room(images[nimages - 1], TUPLE_SPACE(esz)))
				nimages = add_image(&images, nimages, &cap);
		}
		et = palloc0(esz);
		et->type = RUHNSW_ELEMENT;
		et->level = e->level;
		et->heaptid = e->heaptid;
		memcpy(&et->vec, e->vec, VARSIZE(e->vec));
		nt = palloc0(nsz);
		nt->type = RUHNSW_NEIGHBORS;
		nt->nslots = RUHNSW_NSLOTS(bs->m, e->level);
		image_add(bs->index, images[nimages - 1], nimages, et, esz, &e->tid);
		if (page_has_room(images[nimages - 1], TUPLE_SPACE(nsz))) {
			image_add(bs->index, images[nimages - 1], nimages, nt, nsz, &ntid);
		} else {
			/* A page of its own per element would leave most of it empty:
			 * these share pages with each other. */
			if (nbpage < 0 || !page_has_room(images[nbpage], TUPLE_SPACE(nsz))) {
				nimages = add_image(&images, nimages, &cap);
				nbpage = nimages - 1;
			}
			image_add(bs->index, images[nbpage], nbpage + 1, nt, nsz, &ntid);
		}
		et = (RuhnswElementTuple *)PageGetItem(images[ItemPointerGetBlockNumber(&e->tid) - 1],
				PageGetItemId(images[ItemPointerGetBlockNumber(&e->tid) - 1],
						ItemPointerGetOffsetNumber(&e->tid)));
		et->neighbortid = ntid;
	}
	/* Now every element has its TID: fill in the lists. */
	for (int i = 0; i < bs->n; i++) {
		MemElem *e = &bs->elems[i];
		Page epage = images[ItemPointerGetBlockNumber(&e->tid) - 1];
		RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(epage,
				PageGetItemId(epage, ItemPointerGetOffsetNumber(&e->tid)));
		Page page = images[ItemPointerGetBlockNumber(&et->neighbortid) - 1];
		RuhnswNeighborTuple *nt = (RuhnswNeighborTuple *)PageGetItem(page,
				PageGetItemId(page, ItemPointerGetOffsetNumber(&et->neighbortid)));

		for (int l = 0; l <= e->level; l++) {
			int start = layer_start(bs->m, l);

			for (int j = 0; j < max_links(bs->m, l); j++) {
				if (j < e->counts[l])
					nt->slots[start + j] = bs->elems[e->slots[start + j]].tid;
				else
					ItemPointerSetInvalid(&nt->slots[start + j]);
			}
		}
	}
	meta_init(meta_page, bs->dim, bs->m, bs->ef_construction);
	meta = (RuhnswMeta *)PageGetContents(meta_page);
	if (bs->entry >= 0) {
		meta->entry = bs->elems[bs->entry].tid;
		meta->entry_level = bs->entry_level;
		meta->insert_page = nimages;
	}
	write_new_page(bs->index, fork, RUHNSW_META_BLKNO, meta_page);
	for (int i = 0; i < nimages; i++) {
		write_new_page(bs->index, fork, i + 1, images[i]);
		CHECK_FOR_INTERRUPTS();
	}
	/* Generic WAL skips an unlogged index; its init fork must be logged. */
	if (fork == INIT_FORKNUM)
		log_newpage_range(bs->index, fork, 0, nimages + 1, true);
}

static void build_init(BuildState *bs, Relation index)
{
	int typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	memset(bs, 0, sizeof(*bs));
	bs->index = index;
	options_of(index, &bs->m, &bs->ef_construction);
	if (bs->ef_construction < 2 * bs->m)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("ef_construction must be greater than or equal to 2 * m"),
				errdetail("m is %d and ef_construction is %d.", bs->m, bs->ef_construction)));
	bs->dim = typmod > 0 ? typmod : 0;
	if (bs->dim > 0)
		bs->max_level = max_level_for(bs->dim, bs->m);
	bs->g.dist_proc = index_getprocinfo(index, 1, RUHNSW_DISTANCE_PROC);
	bs->g.collation = index->rd_indcollation[0];
	bs->g.m = bs->m;
	bs->g.vector = mem_vector;
	bs->g.neighbors = mem_neighbors;
	bs->g.set_neighbors = mem_set_neighbors;
	bs->g.visit_reset = mem_visit_reset;
	bs->g.visit = mem_visit;
	bs->norm_proc = norm_proc_of(index);
	bs->entry = -1;
	bs->entry_level = -1;
	bs->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw build", ALLOCSET_DEFAULT_SIZES);
	bs->tmp_ctx = AllocSetContextCreate(bs->ctx, "ruhnsw build row", ALLOCSET_DEFAULT_SIZES);
}

static IndexBuildResult *ruhnsw_build(Relation heap, Relation index, IndexInfo *info)
{
	BuildState bs;
	IndexBuildResult *result;
	double reltuples;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	build_init(&bs, index);
	reltuples = table_index_build_scan(heap, index, info, true, true, build_callback, &bs, NULL);
	build_write(&bs, MAIN_FORKNUM);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = bs.n;
	MemoryContextDelete(bs.ctx);
	return result;
}

static void ruhnsw_buildempty(Relation index)
{
	BuildState bs;

	build_init(&bs, index);
	build_write(&bs, INIT_FORKNUM);
	MemoryContextDelete(bs.ctx);
}

/* ---- inserts after the build ---- */

/* Pages one insert writes, all in one WAL record with the meta page. */
typedef struct InsertPages {
	GenericXLogState *state;
	Buffer bufs[3];
	Page pages[3];
	int n;
} InsertPages;

static int insert_page_new(Relation index, InsertPages *ip)
{
	Buffer buf;

	LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBuffer(index, P_NEW);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	ip->bufs[ip->n] = buf;
	ip->pages[ip->n] = GenericXLogRegisterBuffer(ip->state, buf, GENERIC_XLOG_FULL_IMAGE);
	PageInit(ip->pages[ip->n], BLCKSZ, 0);
	return ip->n++;
}

/* Adds a tuple to the first page of the record with room, or a new one. */
static ItemPointerData insert_tuple(Relation index, InsertPages *ip, void *item, Size size)
{
	ItemPointerData tid;
	OffsetNumber off;
	int i;

	for (i = 0; i < ip->n; i++)
		if (page_has_room(ip->pages[i], TUPLE_SPACE(size)))
			break;
	if (i == ip->n)
		i = insert_page_new(index, ip);
	off = PageAddItem(ip->pages[i], (Item)item, size, InvalidOffsetNumber, false, false);
	if (off == InvalidOffsetNumber)
		elog(ERROR, "ruhnsw index \"%s\": could not add a tuple to block %u",
				RelationGetRelationName(index), BufferGetBlockNumber(ip->bufs[i]));
	ItemPointerSet(&tid, BufferGetBlockNumber(ip->bufs[i]), off);
	return tid;
}

/*
 * Writes the element and its neighbour tuple: together on the last page
 * when they fit there, else together on a new page, else (a vector too
 * wide for that) each where it fits. The meta page (last page, entry
 * point) changes in the same WAL record.
 */
static ItemPointerData write_element(Relation index, RuhnswElementTuple *et, Size esz,
		RuhnswNeighborTuple *nt, Size nsz, bool new_entry)
{
	Size both = TUPLE_SPACE(esz) + TUPLE_SPACE(nsz);
	InsertPages ip;
	Buffer meta_buf, last = InvalidBuffer;
	RuhnswMeta *meta, peek;
	ItemPointerData tid, ntid;
	BlockNumber highest = 0;

	read_meta(index, &peek);
	if (BlockNumberIsValid(peek.insert_page)) {
		last = ReadBuffer(index, peek.insert_page);
		LockBuffer(last, BUFFER_LOCK_EXCLUSIVE);
		if (!page_has_room(BufferGetPage(last), both) &&
				(both <= EMPTY_PAGE_SPACE || !page_has_room(BufferGetPage(last), TUPLE_SPACE(esz)))) {
			UnlockReleaseBuffer(last);
			last = InvalidBuffer;
		}
	}
	memset(&ip, 0, sizeof(ip));
	ip.state = GenericXLogStart(index);
	if (BufferIsValid(last)) {
		ip.bufs[0] = last;
		ip.pages[0] = GenericXLogRegisterBuffer(ip.state, last, 0);
		ip.n = 1;
	}
	tid = insert_tuple(index, &ip, et, esz);
	ntid = insert_tuple(index, &ip, nt, nsz);
	/* The copy on the page learns where its neighbours went. */
	for (int i = 0; i < ip.n; i++)
		if (BufferGetBlockNumber(ip.bufs[i]) == ItemPointerGetBlockNumber(&tid))
			((RuhnswElementTuple *)PageGetItem(ip.pages[i],
					 PageGetItemId(ip.pages[i], ItemPointerGetOffsetNumber(&tid))))
					->neighbortid = ntid;
	for (int i = 0; i < ip.n; i++)
		highest = Max(highest, BufferGetBlockNumber(ip.bufs[i]));

	meta_buf = ReadBuffer(index, RUHNSW_META_BLKNO);
	LockBuffer(meta_buf, BUFFER_LOCK_EXCLUSIVE);
	meta = meta_of(index, GenericXLogRegisterBuffer(ip.state, meta_buf, 0));
	meta->insert_page = highest;
	if (meta->dim == 0)
		meta->dim = et->vec.dim;
	if (new_entry) {
		meta->entry = tid;
		meta->entry_level = et->level;
	}
	GenericXLogFinish(ip.state);
	for (int i = 0; i < ip.n; i++)
		UnlockReleaseBuffer(ip.bufs[i]);
	UnlockReleaseBuffer(meta_buf);
	return tid;
}

static bool ruhnsw_insert(Relation index, Datum *values, bool *isnull, ItemPointer heaptid,
		Relation heap, IndexUniqueCheck check, bool unchanged, IndexInfo *info)
{
	MemoryContext ctx, old;
	RuhnswMeta meta;
	Ruvector *v;
	DiskGraph *dg;
	RuhnswElementTuple *et;
	RuhnswNeighborTuple *nt;
	Size esz, nsz;
	int level, dim;
	Cand *lists[RUHNSW_MAX_LEVEL + 1];
	int counts[RUHNSW_MAX_LEVEL + 1];
	ItemPointerData tid;

	if (isnull[0])
		return false;
	ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw insert", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);
	v = (Ruvector *)PG_DETOAST_DATUM(values[0]);
	if (skip_vector(norm_proc_of(index), index->rd_indcollation[0], v))
		goto done;

	/* One insert changes the graph at a time (see ruhnsw.h). */
	LockPage(index, RUHNSW_META_BLKNO, ExclusiveLock);
	read_meta(index, &meta);
	dim = meta.dim > 0 ? meta.dim : v->dim;
	check_dim(index, dim, v->dim);
	level = random_level(heaptid, meta.m, max_level_for(dim, meta.m));
	dg = disk_graph(index, meta.m);

	memset(counts, 0, sizeof(counts));
	if (meta.entry_level >= 0)
		find_neighbors(&dg->g, v, level,
				tid_ref(ItemPointerGetBlockNumber(&meta.entry),
						ItemPointerGetOffsetNumber(&meta.entry)),
				meta.entry_level, meta.ef_construction, lists, counts);

	esz = RUHNSW_ELEMENT_SIZE(dim);
	nsz = RUHNSW_NEIGHBOR_SIZE(meta.m, level);
	et = palloc0(esz);
	et->type = RUHNSW_ELEMENT;
	et->level = level;
	et->heaptid = *heaptid;
	memcpy(&et->vec, v, VARSIZE(v));
	nt = palloc0(nsz);
	nt->type = RUHNSW_NEIGHBORS;
	nt->nslots = RUHNSW_NSLOTS(meta.m, level);
	for (int l = 0; l <= level; l++)
		for (int i = 0; i < max_links(meta.m, l); i++) {
			ItemPointer slot = &nt->slots[layer_start(meta.m, l) + i];

			if (i < counts[l])
				ref_tid(lists[l][i].ref, slot);
			else
				ItemPointerSetInvalid(slot);
		}
	tid = write_element(index, et, esz, nt, nsz, level > meta.entry_level);

	/* The element is on its page before anything links to it, so a scan
	 * never follows a link to nowhere. */
	for (int l = Min(level, meta.entry_level); l >= 0; l--)
		for (int i = 0; i < counts[l]; i++) {
			Cand added = {tid_ref(ItemPointerGetBlockNumber(&tid), ItemPointerGetOffsetNumber(&tid)),
					lists[l][i].dist};

			add_backlink(&dg->g, lists[l][i].ref, l, added);
		}
	UnlockPage(index, RUHNSW_META_BLKNO, ExclusiveLock);
done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}

/* ---- scans ---- */

typedef struct ScanOpaque {
	MemoryContext ctx; /* one search's graph and results */
	bool searched;
	DiskGraph *dg;
	Cand *results;
	int nresults, pos;
} ScanOpaque;

static IndexScanDesc ruhnsw_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	ScanOpaque *so = palloc0(sizeof(ScanOpaque));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

static void ruhnsw_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
		int norderbys)
{
	ScanOpaque *so = scan->opaque;

	so->searched = false;
	so->dg = NULL;
	so->results = NULL;
	so->nresults = so->pos = 0;
	MemoryContextReset(so->ctx);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

static void scan_search(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	Relation index = scan->indexRelation;
	RuhnswMeta meta;
	Ruvector *q;
	Cand first, *entries;
	int nentries;

	if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("a ruhnsw index only serves ORDER BY a distance to a ruvector")));
	read_meta(index, &meta);
	if (meta.entry_level < 0)
		return;
	/* ORDER BY a distance to NULL: every row in some order, as with the
	 * zero vector. */
	if (scan->orderByData[0].sk_flags & SK_ISNULL) {
		q = palloc0(RUVECTOR_SIZE(meta.dim));
		SET_VARSIZE(q, RUVECTOR_SIZE(meta.dim));
		q->dim = meta.dim;
	} else {
		q = (Ruvector *)PG_DETOAST_DATUM(scan->orderByData[0].sk_argument);
	}
	so->dg = disk_graph(index, meta.m);
	first.ref = tid_ref(ItemPointerGetBlockNumber(&meta.entry), ItemPointerGetOffsetNumber(&meta.entry));
	first.dist = graph_distance(&so->dg->g, q, first.ref);
	entries = &first;
	nentries = 1;
	for (int l = meta.entry_level; l > 0; l--)
		entries = search_layer(&so->dg->g, q, entries, nentries, 1, l, &nentries);
	so->results = search_layer(&so->dg->g, q, entries, nentries, ruhnsw_ef_search, 0, &so->nresults);
}

static bool ruhnsw_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	ScanOpaque *so = scan->opaque;

	if (!so->searched) {
		MemoryContext old = MemoryContextSwitchTo(so->ctx);

		scan_search(scan);
		so->searched = true;
		MemoryContextSwitchTo(old);
	}
	while (so->pos < so->nresults) {
		DiskElem *e = disk_load(so->dg, so->results[so->pos++].ref);

		if (e->deleted || !ItemPointerIsValid(&e->heaptid))
			continue;
		scan->xs_heaptid = e->heaptid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		return true;
	}
	return false;
}

static void ruhnsw_endscan(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

/* ---- VACUUM ---- */

/* Marks the elements of dead heap rows deleted; counts the live ones. */
static IndexBulkDeleteResult *ruhnsw_bulkdelete(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation index = info->index;
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	stats->num_index_tuples = 0;
	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf;
		GenericXLogState *state;
		Page page;
		bool changed = false;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));

			if (et->type != RUHNSW_ELEMENT || et->deleted)
				continue;
			if (ItemPointerIsValid(&et->heaptid) && callback(&et->heaptid, callback_state)) {
				et->deleted = 1;
				ItemPointerSetInvalid(&et->heaptid);
				stats->tuples_removed++;
				changed = true;
			} else {
				stats->num_index_tuples++;
			}
		}
		if (changed)
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	return stats;
}

static IndexBulkDeleteResult *ruhnsw_vacuumcleanup(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats)
{
	Relation index = info->index;
	BlockNumber nblocks;

	if (info->analyze_only)
		return stats;
	if (stats != NULL)
		return stats;
	/* No bulk delete ran: count the live elements for the statistics. */
	stats = palloc0(sizeof(IndexBulkDeleteResult));
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf;
		Page page;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));

			if (et->type == RUHNSW_ELEMENT && !et->deleted)
				stats->num_index_tuples++;
		}
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	return stats;
}

/* ---- planner, options, handler ---- */

/*
 * A search reads about ef_search * 2m elements, all before the first row
 * comes back; without an ORDER BY distance the index is of no use.
 */
static void ruhnsw_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
		Cost *startup, Cost *total, Selectivity *selectivity, double *correlation, double *pages)
{
	GenericCosts costs;
	Relation index;
	int m, ef_construction;
	double tuples;

	if (path->indexorderbys == NIL) {
		*startup = *total = get_float8_infinity();
		*selectivity = 0;
		*correlation = 0;
		*pages = 0;
		return;
	}
	index = index_open(path->indexinfo->indexoid, NoLock);
	options_of(index, &m, &ef_construction);
	index_close(index, NoLock);
	tuples = Max(path->indexinfo->tuples, 1);
	memset(&costs, 0, sizeof(costs));
	costs.numIndexTuples = Min(tuples, (double)ruhnsw_ef_search * 2 * m);
	genericcostestimate(root, path, loop_count, &costs);
	*startup = costs.indexTotalCost;
	*total = costs.indexTotalCost;
	*selectivity = costs.indexSelectivity;
	*correlation = costs.indexCorrelation;
	*pages = costs.numIndexPages;
}

static bytea *ruhnsw_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt table[] = {
		{"m", RELOPT_TYPE_INT, offsetof(RuhnswOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(RuhnswOptions, ef_construction)},
	};

	return (bytea *)build_reloptions(reloptions, validate, ruhnsw_relopt_kind,
			sizeof(RuhnswOptions), table, lengthof(table));
}

static bool ruhnsw_validate(Oid opclassoid)
{
	return true;
}

void ruhnsw_init(void)
{
	ruhnsw_relopt_kind = add_reloption_kind();
	add_int_reloption(ruhnsw_relopt_kind, "m", "Most links an element keeps per layer (2m on layer 0)",
			RUHNSW_DEFAULT_M, RUHNSW_MIN_M, RUHNSW_MAX_M, AccessExclusiveLock);
	add_int_reloption(ruhnsw_relopt_kind, "ef_construction",
			"Candidate list size while building the graph", RUHNSW_DEFAULT_EF_CONSTRUCTION,
			RUHNSW_MIN_EF_CONSTRUCTION, RUHNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	DefineCustomIntVariable("ruhnsw.ef_search", "Candidate list size of a ruhnsw index scan.",
			"A scan returns at most this many rows; larger finds more of the true nearest.",
			&ruhnsw_ef_search, RUHNSW_DEFAULT_EF_SEARCH, RUHNSW_MIN_EF_SEARCH, RUHNSW_MAX_EF_SEARCH,
			PGC_USERSET, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("ruhnsw");
#endif
}

/* The module's load hook: the index's options and settings exist from
 * the moment the library is in the server. */
PGDLLEXPORT void _PG_init(void);
void _PG_init(void)
{
	ruhnsw_init();
}

PG_FUNCTION_INFO_V1(ruhnsw_handler);
Datum ruhnsw_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = 2;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;

	am->ambuild = ruhnsw_build;
	am->ambuildempty = ruhnsw_buildempty;
	am->aminsert = ruhnsw_insert;
	am->ambulkdelete = ruhnsw_bulkdelete;
	am->amvacuumcleanup = ruhnsw_vacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = ruhnsw_costestimate;
	am->amoptions = ruhnsw_options;
	am->amproperty = NULL;
	am->ambuildphasename = NULL;
	am->amvalidate = ruhnsw_validate;
	am->amadjustmembers = NULL;
	am->ambeginscan = ruhnsw_beginscan;
	am->amrescan = ruhnsw_rescan;
	am->amgettuple = ruhnsw_gettuple;
	am->amgetbitmap = NULL;
	am->amendscan = ruhnsw_endscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}
