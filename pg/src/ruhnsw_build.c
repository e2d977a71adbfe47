/*
 * ruhnsw_build.c - CREATE INDEX for ruhnsw: the graph is built in memory
 * from the table, then laid out on pages and written once, each page
 * WAL-logged whole (log_newpage_range) instead of record by record.
 *
 * The graph in memory is one region of elements addressed by number (an
 * offset table maps numbers to places), so the same code serves two
 * homes: local memory that grows up to maintenance_work_mem (a serial
 * build), and a dynamic shared memory segment that the leader and the
 * parallel workers of a parallel build fill together (PostgreSQL's
 * parallel index build: a parallel heap scan, every participant inserting
 * the rows it reads). In shared memory every element carries an LWLock
 * over its neighbour lists; a search holds one element's lock at a time
 * while copying its list, and linking back to a new element holds the
 * target's lock across its read-modify-write. An insert whose level tops
 * the entry point's holds the entry lock to its end, so two new tops do
 * not race. Lock order: flush lock, entry lock, one element lock.
 *
 * When the graph outgrows its memory, it is written out there and then
 * (by whichever participant finds it full, with the flush lock held
 * exclusively, so no insert in memory is half done), and the remaining
 * rows go in one by one through the on-disk insert path, as pgvector's
 * builds do. A NOTICE says so.
 *
 * Levels come from the heap TIDs, so a parallel build draws the same
 * levels as a serial one; the links differ with the order the rows
 * arrive in, the recall does not.
 */
#include "ruhnsw.h"

#include "access/parallel.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "optimizer/plancat.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* ---- the graph in memory ---- */

/* The graph's header: in the shared segment of a parallel build, in
 * local memory otherwise. */
typedef struct GraphHeader {
	slock_t mutex;       /* the allocator: used, nelems; dim */
	Size size;           /* bytes of the element region */
	Size used;           /* bytes of it handed out */
	uint32 nelems;       /* elements allocated; the next element's number */
	uint32 maxelems;     /* room in the offset table */
	int32 dim;           /* 0 until the first vector */
	int32 max_level;
	bool flushed;        /* written out: the other rows go in on disk */
	LWLock flush_lock;   /* shared while inserting in memory, exclusive to write out */
	LWLock entry_lock;   /* entry, entry_level */
	int32 entry_level;   /* -1 while empty */
	uint32 entry;
} GraphHeader;

/*
 * An element: fixed fields, the list lengths of its layers, then (each
 * MAXALIGNed) its lists as element numbers, RUHNSW_NSLOTS(m, level) slots,
 * and its vector.
 */
typedef struct GraphElem {
	ItemPointerData heaptid;
	uint8 level;
	uint8 unused;
	ItemPointerData tid;   /* its element tuple's place, once laid out */
	ItemPointerData ntid;  /* its neighbour tuple's */
	LWLock lock;           /* its lists (shared memory only) */
	uint16 counts[FLEXIBLE_ARRAY_MEMBER]; /* list length of layers 0..level */
} GraphElem;

static inline Size elem_head_size(int level)
{
	return MAXALIGN(offsetof(GraphElem, counts) + sizeof(uint16) * (level + 1));
}

static inline Size elem_size(int level, int m, int dim)
{
	return elem_head_size(level) + MAXALIGN(sizeof(uint32) * RUHNSW_NSLOTS(m, level)) +
		MAXALIGN(RUVECTOR_SIZE(dim));
}

static inline uint32 *elem_slots(GraphElem *e)
{
	return (uint32 *)((char *)e + elem_head_size(e->level));
}

static inline Ruvector *elem_vec(GraphElem *e, int m)
{
	return (Ruvector *)((char *)elem_slots(e) + MAXALIGN(sizeof(uint32) * RUHNSW_NSLOTS(m, e->level)));
}

/* One participant's view of the graph and its own working state. */
typedef struct BuildState {
	RuhnswGraph g; /* first, so a RuhnswGraph * is a BuildState * */
	Relation heap;
	Relation index;
	FmgrInfo *norm_proc;
	int m, ef_construction;
	GraphHeader *hdr;
	char *base;        /* the element region */
	uint64 *offsets;   /* element number -> its offset in base */
	bool shared;
	Size limit;        /* local: maintenance_work_mem in bytes */
	Size cap;          /* local: bytes allocated for base */
	uint32 *marks;     /* visited: marks[i] == gen */
	uint32 nmarks, gen;
	uint32 held;       /* element whose lists we hold, or UINT32_MAX */
	double inserted;   /* rows this participant indexed */
	MemoryContext ctx;     /* the participant's, and a local graph's */
	MemoryContext tmp_ctx; /* one row's work */
} BuildState;

#define NO_ELEM PG_UINT32_MAX

static inline GraphElem *elem_at(BuildState *bs, ElemRef id)
{
	return (GraphElem *)(bs->base + bs->offsets[id]);
}

static double mem_distance(RuhnswGraph *g, const Ruvector *q, ElemRef e)
{
	BuildState *bs = (BuildState *)g;

	return ruhnsw_distance(g, q, elem_vec(elem_at(bs, e), bs->m));
}

static Ruvector *mem_vector(RuhnswGraph *g, ElemRef e)
{
	BuildState *bs = (BuildState *)g;

	return elem_vec(elem_at(bs, e), bs->m);
}

static int mem_neighbors(RuhnswGraph *g, ElemRef ref, int level, ElemRef *out)
{
	BuildState *bs = (BuildState *)g;
	GraphElem *e = elem_at(bs, ref);
	bool lock = bs->shared && bs->held != ref;
	uint32 *slots;
	int n;

	if (level > e->level)
		return 0;
	if (lock)
		LWLockAcquire(&e->lock, LW_SHARED);
	slots = elem_slots(e) + ruhnsw_layer_start(bs->m, level);
	n = e->counts[level];
	for (int i = 0; i < n; i++)
		out[i] = slots[i];
	if (lock)
		LWLockRelease(&e->lock);
	return n;
}

static void mem_set_neighbors(RuhnswGraph *g, ElemRef ref, int level, const ElemRef *refs, int n)
{
	BuildState *bs = (BuildState *)g;
	GraphElem *e = elem_at(bs, ref);
	bool lock = bs->shared && bs->held != ref;
	uint32 *slots = elem_slots(e) + ruhnsw_layer_start(bs->m, level);

	if (lock)
		LWLockAcquire(&e->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
		slots[i] = (uint32)refs[i];
	e->counts[level] = n;
	if (lock)
		LWLockRelease(&e->lock);
}

static void mem_lock_links(RuhnswGraph *g, ElemRef ref)
{
	BuildState *bs = (BuildState *)g;

	if (bs->shared) {
		LWLockAcquire(&elem_at(bs, ref)->lock, LW_EXCLUSIVE);
		bs->held = (uint32)ref;
	}
}

static void mem_unlock_links(RuhnswGraph *g, ElemRef ref)
{
	BuildState *bs = (BuildState *)g;

	if (bs->shared) {
		bs->held = NO_ELEM;
		LWLockRelease(&elem_at(bs, ref)->lock);
	}
}

static void mem_visit_reset(RuhnswGraph *g)
{
	BuildState *bs = (BuildState *)g;

	/* On wrap-around old marks could match again: clear them. */
	if (++bs->gen == 0) {
		memset(bs->marks, 0, sizeof(uint32) * bs->nmarks);
		bs->gen = 1;
	}
}

static bool mem_visit(RuhnswGraph *g, ElemRef e)
{
	BuildState *bs = (BuildState *)g;

	/* Other participants add elements all the time: grow as they show. */
	if (e >= bs->nmarks) {
		uint32 n = Max(bs->nmarks * 2, (uint32)e + 1024);

		bs->marks = bs->marks ? repalloc_huge(bs->marks, sizeof(uint32) * n)
				      : MemoryContextAllocHuge(bs->ctx, sizeof(uint32) * n);
		memset(bs->marks + bs->nmarks, 0, sizeof(uint32) * (n - bs->nmarks));
		bs->nmarks = n;
	}
	if (bs->marks[e] == bs->gen)
		return false;
	bs->marks[e] = bs->gen;
	return true;
}

/*
 * Room for one element of this level, or NO_ELEM when the graph is full.
 * A local graph grows (doubling) up to maintenance_work_mem; a shared one
 * has the size the leader gave it.
 */
static uint32 elem_alloc(BuildState *bs, int level, int dim)
{
	GraphHeader *hdr = bs->hdr;
	Size sz = elem_size(level, bs->m, dim);
	uint32 id = NO_ELEM;

	if (bs->shared) {
		SpinLockAcquire(&hdr->mutex);
		if (hdr->used + sz <= hdr->size && hdr->nelems < hdr->maxelems) {
			id = hdr->nelems++;
			bs->offsets[id] = hdr->used;
			hdr->used += sz;
		}
		SpinLockRelease(&hdr->mutex);
		return id;
	}
	if (hdr->used + sz + sizeof(uint64) * ((Size)hdr->nelems + 1) > bs->limit ||
			hdr->nelems == PG_UINT32_MAX - 1)
		return NO_ELEM;
	if (hdr->used + sz > bs->cap) {
		Size cap = Min(Max(bs->cap * 2, hdr->used + sz), bs->limit);

		bs->base = bs->base ? repalloc_huge(bs->base, cap) : MemoryContextAllocHuge(bs->ctx, cap);
		bs->cap = cap;
	}
	if (hdr->nelems == hdr->maxelems) {
		uint32 n = Max(hdr->maxelems * 2, 1024);

		bs->offsets = bs->offsets ? repalloc_huge(bs->offsets, sizeof(uint64) * n)
					  : MemoryContextAllocHuge(bs->ctx, sizeof(uint64) * n);
		hdr->maxelems = n;
	}
	id = hdr->nelems++;
	bs->offsets[id] = hdr->used;
	hdr->used += sz;
	return id;
}

/*
 * Links one row into the graph in memory; false (and nothing changed)
 * when the graph has no room for it. The caller holds the flush lock
 * shared in a parallel build.
 */
static bool insert_in_memory(BuildState *bs, Ruvector *v, ItemPointer heaptid)
{
	GraphHeader *hdr = bs->hdr;
	int level = ruhnsw_random_level(heaptid, bs->m, hdr->max_level);
	uint32 id = elem_alloc(bs, level, v->dim);
	GraphElem *e;
	bool entry_held = false;
	uint32 entry;
	int entry_level;

	if (id == NO_ELEM)
		return false;
	e = elem_at(bs, id);
	e->heaptid = *heaptid;
	e->level = level;
	e->unused = 0;
	ItemPointerSetInvalid(&e->tid);
	ItemPointerSetInvalid(&e->ntid);
	if (bs->shared)
		LWLockInitialize(&e->lock, hdr->flush_lock.tranche);
	memset(e->counts, 0, sizeof(uint16) * (level + 1));
	memcpy(elem_vec(e, bs->m), v, VARSIZE(v));

	if (bs->shared)
		LWLockAcquire(&hdr->entry_lock, LW_SHARED);
	entry = hdr->entry;
	entry_level = hdr->entry_level;
	if (level > entry_level && bs->shared) {
		/* A new top: keep the entry to ourselves to the end. */
		LWLockRelease(&hdr->entry_lock);
		LWLockAcquire(&hdr->entry_lock, LW_EXCLUSIVE);
		entry = hdr->entry;
		entry_level = hdr->entry_level;
		entry_held = true;
	} else if (bs->shared) {
		LWLockRelease(&hdr->entry_lock);
	}

	if (entry_level >= 0) {
		Cand *lists[RUHNSW_MAX_LEVEL + 1];
		int counts[RUHNSW_MAX_LEVEL + 1];
		ElemRef refs[2 * RUHNSW_MAX_M];

		ruhnsw_find_neighbors(&bs->g, v, level, entry, entry_level, bs->ef_construction, lists,
				counts);
		for (int l = Min(level, entry_level); l >= 0; l--) {
			for (int i = 0; i < counts[l]; i++)
				refs[i] = lists[l][i].ref;
			mem_set_neighbors(&bs->g, id, l, refs, counts[l]);
		}
		for (int l = Min(level, entry_level); l >= 0; l--)
			for (int i = 0; i < counts[l]; i++) {
				Cand added = {id, lists[l][i].dist};

				ruhnsw_add_backlink(&bs->g, lists[l][i].ref, l, added, true);
			}
	}
	if (level > entry_level) {
		/* Only under the exclusive lock in shared memory (see above). */
		hdr->entry = id;
		hdr->entry_level = level;
	}
	if (entry_held)
		LWLockRelease(&hdr->entry_lock);
	return true;
}

/* ---- laying the graph out on pages ---- */

/* Where the tuples go: data pages 1..nblocks (block base + page - 1:
 * quantizer pages come first), each with its list of items (element i is
 * item 2i, its neighbour tuple item 2i + 1) in the order of their
 * offsets. */
typedef struct Layout {
	BlockNumber base;
	BlockNumber nblocks;
	BlockNumber cap;
	Size *space;          /* bytes left on page b, at [b - 1] */
	int32 *head, *tail;   /* first and last item of page b, at [b - 1] */
	OffsetNumber *count;  /* items on page b, at [b - 1] */
	int32 *next;          /* the next item on the same page */
} Layout;

static BlockNumber layout_new_page(Layout *lo)
{
	if (lo->nblocks == lo->cap) {
		lo->cap = lo->cap ? lo->cap * 2 : 256;
		lo->space = repalloc_huge(lo->space, sizeof(Size) * lo->cap);
		lo->head = repalloc_huge(lo->head, sizeof(int32) * lo->cap);
		lo->tail = repalloc_huge(lo->tail, sizeof(int32) * lo->cap);
		lo->count = repalloc_huge(lo->count, sizeof(OffsetNumber) * lo->cap);
	}
	lo->space[lo->nblocks] = RUHNSW_EMPTY_PAGE_SPACE;
	lo->head[lo->nblocks] = -1;
	lo->tail[lo->nblocks] = -1;
	lo->count[lo->nblocks] = 0;
	return ++lo->nblocks;
}

static inline bool layout_room(const Layout *lo, BlockNumber blk, Size size)
{
	return blk >= 1 && lo->space[blk - 1] >= RUHNSW_TUPLE_SPACE(size);
}

static void layout_add(Layout *lo, BlockNumber blk, int32 item, Size size, ItemPointer tid)
{
	lo->space[blk - 1] -= RUHNSW_TUPLE_SPACE(size);
	lo->next[item] = -1;
	if (lo->tail[blk - 1] < 0)
		lo->head[blk - 1] = item;
	else
		lo->next[lo->tail[blk - 1]] = item;
	lo->tail[blk - 1] = item;
	ItemPointerSet(tid, lo->base + blk - 1, ++lo->count[blk - 1]);
}

/* Every element's place: with its neighbour tuple on the last page when
 * both fit, else together on a new page, else (a vector too wide for
 * that) each where it fits, the wide vectors' neighbour tuples sharing
 * pages of their own. */
static void layout_graph(BuildState *bs, Layout *lo, BlockNumber base, Size esz)
{
	uint32 n = bs->hdr->nelems;
	BlockNumber nbpage = 0;

	memset(lo, 0, sizeof(*lo));
	lo->base = base;
	lo->cap = 256;
	lo->space = palloc_extended(sizeof(Size) * lo->cap, MCXT_ALLOC_HUGE);
	lo->head = palloc_extended(sizeof(int32) * lo->cap, MCXT_ALLOC_HUGE);
	lo->tail = palloc_extended(sizeof(int32) * lo->cap, MCXT_ALLOC_HUGE);
	lo->count = palloc_extended(sizeof(OffsetNumber) * lo->cap, MCXT_ALLOC_HUGE);
	lo->next = palloc_extended(sizeof(int32) * 2 * Max(n, 1), MCXT_ALLOC_HUGE);
	for (uint32 i = 0; i < n; i++) {
		GraphElem *e = elem_at(bs, i);
		Size nsz = RUHNSW_NEIGHBOR_SIZE(bs->m, e->level);
		Size both = RUHNSW_TUPLE_SPACE(esz) + RUHNSW_TUPLE_SPACE(nsz);
		BlockNumber last = lo->nblocks;

		if (last == 0 || lo->space[last - 1] < both) {
			if (both <= RUHNSW_EMPTY_PAGE_SPACE || !layout_room(lo, last, esz))
				last = layout_new_page(lo);
		}
		layout_add(lo, last, 2 * i, esz, &e->tid);
		if (!layout_room(lo, last, nsz)) {
			if (!layout_room(lo, nbpage, nsz))
				nbpage = layout_new_page(lo);
			last = nbpage;
		}
		layout_add(lo, last, 2 * i + 1, nsz, &e->ntid);
	}
}

/* Appends a page image as the next block of the fork. The caller
 * WAL-logs the pages afterwards. */
static void write_page(Relation index, ForkNumber fork, BlockNumber blkno, Page image)
{
	Buffer buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);

	if (BufferGetBlockNumber(buf) != blkno)
		elog(ERROR, "ruhnsw index \"%s\" got block %u while writing block %u",
				RelationGetRelationName(index), BufferGetBlockNumber(buf), blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	memcpy(BufferGetPage(buf), image, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

static void add_item(BuildState *bs, Page page, BlockNumber blk, void *item, Size size,
		OffsetNumber expected)
{
	OffsetNumber off = PageAddItem(page, (Item)item, size, InvalidOffsetNumber, false, false);

	if (off != expected)
		elog(ERROR, "ruhnsw index \"%s\": could not lay out block %u",
				RelationGetRelationName(bs->index), blk);
}

/* The build's vectors, for training the quantizer. */
static Ruvector *train_vector(void *arg, uint32 i)
{
	BuildState *bs = arg;

	return elem_vec(elem_at(bs, i), bs->m);
}

/*
 * Writes the graph: the meta page, the quantizer pages of an sq8 index
 * (trained here, on every vector the graph holds), then every data page
 * in order, built one at a time from the layout; then WAL-logs them all
 * as whole pages (an index nobody else sees yet needs no finer records).
 * Used for the init fork of an unlogged index too, which is always
 * logged.
 */
static void write_graph(BuildState *bs, ForkNumber fork)
{
	GraphHeader *hdr = bs->hdr;
	/* Its own context: the caller may be in the middle of a row. */
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw write",
			ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	Layout lo;
	Page page = palloc(BLCKSZ);
	RuhnswMeta *meta;
	int quantization = ruhnsw_quantization_of(bs->index);
	RuhnswQuant *quant = NULL;
	BlockNumber nquant, base;
	Size esz;
	RuhnswElementTuple *et;
	RuhnswNeighborTuple *nt = palloc0(RUHNSW_NEIGHBOR_SIZE(bs->m, RUHNSW_MAX_LEVEL));

	if (quantization == RUHNSW_QUANT_SQ8) {
		quant = ruhnsw_quant_train(train_vector, bs, hdr->nelems, hdr->dim);
		if (quant == NULL && fork == MAIN_FORKNUM)
			ereport(NOTICE, (errmsg("ruhnsw index \"%s\" has no rows to train its sq8 quantizer on",
							 RelationGetRelationName(bs->index)),
					errdetail("Its elements hold full vectors until REINDEX.")));
	}
	nquant = ruhnsw_quant_npages(quant);
	base = RUHNSW_META_BLKNO + 1 + nquant;
	esz = ruhnsw_element_size(quant, hdr->dim);
	et = palloc0(esz);
	layout_graph(bs, &lo, base, esz);
	ruhnsw_meta_init(page, hdr->dim, bs->m, bs->ef_construction);
	meta = (RuhnswMeta *)PageGetContents(page);
	if (hdr->entry_level >= 0) {
		meta->entry = elem_at(bs, hdr->entry)->tid;
		meta->entry_level = hdr->entry_level;
	}
	if (lo.nblocks > 0)
		meta->insert_page = base + lo.nblocks - 1;
	meta->quantization = quantization;
	if (quant != NULL) {
		meta->quant_start = RUHNSW_META_BLKNO + 1;
		meta->quant_npages = nquant;
	}
	write_page(bs->index, fork, RUHNSW_META_BLKNO, page);
	for (BlockNumber i = 0; i < nquant; i++) {
		ruhnsw_quant_page(quant, i, page);
		write_page(bs->index, fork, RUHNSW_META_BLKNO + 1 + i, page);
	}

	for (BlockNumber blk = 1; blk <= lo.nblocks; blk++) {
		OffsetNumber off = FirstOffsetNumber;

		PageInit(page, BLCKSZ, 0);
		for (int32 item = lo.head[blk - 1]; item >= 0; item = lo.next[item], off++) {
			GraphElem *e = elem_at(bs, item / 2);

			if (item % 2 == 0) {
				et->type = RUHNSW_ELEMENT;
				et->level = e->level;
				et->deleted = RUHNSW_LIVE;
				et->heaptid = e->heaptid;
				et->neighbortid = e->ntid;
				if (quant != NULL)
					ruhnsw_quant_encode(quant, elem_vec(e, bs->m), (RuhnswCode *)&et->vec);
				else
					memcpy(&et->vec, elem_vec(e, bs->m), RUVECTOR_SIZE(hdr->dim));
				add_item(bs, page, blk, et, esz, off);
			} else {
				uint32 *slots = elem_slots(e);

				nt->type = RUHNSW_NEIGHBORS;
				nt->unused = 0;
				nt->nslots = RUHNSW_NSLOTS(bs->m, e->level);
				for (int l = 0; l <= e->level; l++) {
					int start = ruhnsw_layer_start(bs->m, l);

					for (int j = 0; j < ruhnsw_max_links(bs->m, l); j++) {
						if (j < e->counts[l])
							nt->slots[start + j] = elem_at(bs, slots[start + j])->tid;
						else
							ItemPointerSetInvalid(&nt->slots[start + j]);
					}
				}
				add_item(bs, page, blk, nt, RUHNSW_NEIGHBOR_SIZE(bs->m, e->level), off);
			}
		}
		write_page(bs->index, fork, base + blk - 1, page);
		CHECK_FOR_INTERRUPTS();
	}
	if (fork == INIT_FORKNUM || RelationNeedsWAL(bs->index))
		log_newpage_range(bs->index, fork, 0, base + lo.nblocks, true);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
}

/* ---- the rows ---- */

static void build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		bool alive, void *state)
{
	BuildState *bs = state;
	GraphHeader *hdr = bs->hdr;
	MemoryContext old;
	Ruvector *v;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_ctx);
	v = (Ruvector *)PG_DETOAST_DATUM(values[0]);
	if (hdr->dim == 0) {
		/* Checked before the lock: it may throw. */
		int max_level = ruhnsw_max_level_for(v->dim, bs->m);

		if (bs->shared)
			SpinLockAcquire(&hdr->mutex);
		if (hdr->dim == 0) {
			hdr->max_level = max_level;
			hdr->dim = v->dim;
		}
		if (bs->shared)
			SpinLockRelease(&hdr->mutex);
	}
	ruhnsw_check_dim(index, hdr->dim, v->dim);
	if (ruhnsw_skip_vector(bs->norm_proc, bs->g.collation, v))
		goto done;

	if (bs->shared)
		LWLockAcquire(&hdr->flush_lock, LW_SHARED);
	if (!hdr->flushed && insert_in_memory(bs, v, tid)) {
		if (bs->shared)
			LWLockRelease(&hdr->flush_lock);
		bs->inserted++;
		goto done;
	}
	if (bs->shared) {
		LWLockRelease(&hdr->flush_lock);
		LWLockAcquire(&hdr->flush_lock, LW_EXCLUSIVE);
	}
	if (!hdr->flushed) {
		ereport(NOTICE,
				(errmsg("ruhnsw graph no longer fits into maintenance_work_mem after %u tuples",
						 hdr->nelems),
						errdetail("Building will take significantly more time."),
						errhint("Increase maintenance_work_mem to speed up builds.")));
		write_graph(bs, MAIN_FORKNUM);
		hdr->flushed = true;
	}
	if (bs->shared)
		LWLockRelease(&hdr->flush_lock);
	ruhnsw_insert_on_disk(index, v, tid);
	bs->inserted++;
done:
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_ctx);
}

static void build_state_init(BuildState *bs, Relation heap, Relation index)
{
	memset(bs, 0, sizeof(*bs));
	bs->heap = heap;
	bs->index = index;
	ruhnsw_options_of(index, &bs->m, &bs->ef_construction);
	ruhnsw_graph_init(&bs->g, index, bs->m);
	bs->g.distance = mem_distance;
	bs->g.vector = mem_vector;
	bs->g.neighbors = mem_neighbors;
	bs->g.set_neighbors = mem_set_neighbors;
	bs->g.lock_links = mem_lock_links;
	bs->g.unlock_links = mem_unlock_links;
	bs->g.deleted = NULL;
	bs->g.visit_reset = mem_visit_reset;
	bs->g.visit = mem_visit;
	bs->norm_proc = ruhnsw_norm_proc(index);
	bs->held = NO_ELEM;
	bs->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw build", ALLOCSET_DEFAULT_SIZES);
	bs->tmp_ctx = AllocSetContextCreate(bs->ctx, "ruhnsw build row", ALLOCSET_DEFAULT_SIZES);
}

static void header_init(GraphHeader *hdr, Relation index, int m)
{
	int typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	memset(hdr, 0, sizeof(*hdr));
	SpinLockInit(&hdr->mutex);
	hdr->dim = typmod > 0 ? typmod : 0;
	if (hdr->dim > 0)
		hdr->max_level = ruhnsw_max_level_for(hdr->dim, m);
	hdr->entry_level = -1;
	hdr->entry = NO_ELEM;
}

static void check_options(Relation index)
{
	int m, ef_construction;

	ruhnsw_options_of(index, &m, &ef_construction);
	if (ef_construction < 2 * m)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("ef_construction must be greater than or equal to 2 * m"),
				errdetail("m is %d and ef_construction is %d.", m, ef_construction)));
	if (ruhnsw_quantization_of(index) == RUHNSW_QUANT_SQ8) {
		RuhnswGraph g;

		ruhnsw_graph_init(&g, index, m);
		ruhnsw_quant_check_opclass(index, g.dist_kind);
	}
}

/* ---- parallel builds ---- */

#define KEY_SHARED UINT64CONST(0x5248000000000001)
#define KEY_AREA UINT64CONST(0x5248000000000002)
#define KEY_QUERY_TEXT UINT64CONST(0x5248000000000003)
#define KEY_WAL_USAGE UINT64CONST(0x5248000000000004)
#define KEY_BUFFER_USAGE UINT64CONST(0x5248000000000005)

/* What the participants share, followed by the parallel heap scan's
 * descriptor at BUFFERALIGN(sizeof(ParallelShared)). */
typedef struct ParallelShared {
	Oid heaprelid;
	Oid indexrelid;
	bool isconcurrent;
	int tranche;
	Size table_bytes;      /* the offset table, at the start of the area */
	slock_t mutex;         /* the sums below */
	double reltuples;
	double indtuples;
	bool brokenhotchain;
	GraphHeader graph;
} ParallelShared;

#define SHARED_PSCAN(s) ((ParallelTableScanDesc)((char *)(s) + BUFFERALIGN(sizeof(ParallelShared))))

/* The tranche of the graph's LWLocks: one for the cluster, named in
 * every process that waits on them. */
static int build_tranche(void)
{
	static int tranche = 0;

	if (tranche == 0) {
		bool found;
		int *id;

		LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
		id = ShmemInitStruct("ruhnsw build LWLock tranche", sizeof(int), &found);
		if (!found)
			*id = LWLockNewTrancheId();
		tranche = *id;
		LWLockRelease(AddinShmemInitLock);
	}
	LWLockRegisterTranche(tranche, "ruhnsw build");
	return tranche;
}

/*
 * Bytes for the shared graph: what the table's rows need by the planner's
 * estimate, with room to spare, and never past maintenance_work_mem
 * (beyond that the build writes out and goes on on disk).
 */
static Size shared_area_size(Relation heap, int m, int dim)
{
	BlockNumber pages;
	double tuples, allvisfrac, bytes;
	Size limit = (Size)maintenance_work_mem * 1024;

	estimate_rel_size(heap, NULL, &pages, &tuples, &allvisfrac);
	/* Without a dimension count the vectors are in the heap's size. */
	bytes = dim > 0 ? tuples * (elem_size(0, m, dim) + 16)
			: tuples * (elem_size(0, m, 0) + 16) + (double)pages * BLCKSZ;
	bytes = bytes * 1.25 + 1024 * 1024;
	return (Size)Min(bytes, (double)limit);
}

static void attach_shared(BuildState *bs, ParallelShared *sh, char *area)
{
	bs->shared = true;
	bs->hdr = &sh->graph;
	bs->offsets = (uint64 *)area;
	bs->base = area + sh->table_bytes;
}

/* One participant's share: the heap pages the parallel scan hands it. */
static void participate(ParallelShared *sh, char *area, Relation heap, Relation index,
		IndexInfo *info, bool progress)
{
	BuildState bs;
	TableScanDesc scan;
	double reltuples;

	build_state_init(&bs, heap, index);
	attach_shared(&bs, sh, area);
	scan = table_beginscan_parallel(heap, SHARED_PSCAN(sh));
	reltuples = table_index_build_scan(heap, index, info, true, progress, build_callback, &bs, scan);
	SpinLockAcquire(&sh->mutex);
	sh->reltuples += reltuples;
	sh->indtuples += bs.inserted;
	if (info->ii_BrokenHotChain)
		sh->brokenhotchain = true;
	SpinLockRelease(&sh->mutex);
	MemoryContextDelete(bs.ctx);
}

void ruhnsw_parallel_build_main(dsm_segment *seg, shm_toc *toc)
{
	ParallelShared *sh;
	char *area;
	Relation heap, index;
	LOCKMODE heap_lockmode, index_lockmode;
	IndexInfo *info;
	WalUsage *walusage;
	BufferUsage *bufferusage;

	debug_query_string = shm_toc_lookup(toc, KEY_QUERY_TEXT, true);
	pgstat_report_activity(STATE_RUNNING, debug_query_string);
	sh = shm_toc_lookup(toc, KEY_SHARED, false);
	area = shm_toc_lookup(toc, KEY_AREA, false);
	LWLockRegisterTranche(sh->tranche, "ruhnsw build");

	/* The leader holds these already (index.c's lock modes). */
	if (!sh->isconcurrent) {
		heap_lockmode = ShareLock;
		index_lockmode = AccessExclusiveLock;
	} else {
		heap_lockmode = ShareUpdateExclusiveLock;
		index_lockmode = RowExclusiveLock;
	}
	heap = table_open(sh->heaprelid, heap_lockmode);
	index = index_open(sh->indexrelid, index_lockmode);
	info = BuildIndexInfo(index);
	info->ii_Concurrent = sh->isconcurrent;

	InstrStartParallelQuery();
	participate(sh, area, heap, index, info, false);
	walusage = shm_toc_lookup(toc, KEY_WAL_USAGE, false);
	bufferusage = shm_toc_lookup(toc, KEY_BUFFER_USAGE, false);
	InstrEndParallelQuery(&bufferusage[ParallelWorkerNumber], &walusage[ParallelWorkerNumber]);

	index_close(index, index_lockmode);
	table_close(heap, heap_lockmode);
}

/*
 * The build with nworkers parallel workers and the leader taking part;
 * false when no shared memory could be had (the caller builds serially).
 */
static bool build_parallel(Relation heap, Relation index, IndexInfo *info, int nworkers,
		double *reltuples, double *indtuples)
{
	ParallelContext *pcxt;
	Snapshot snapshot;
	Size shared_bytes, area_bytes, table_bytes, min_elem;
	ParallelShared *sh;
	char *area;
	WalUsage *walusage;
	BufferUsage *bufferusage;
	int querylen = 0;
	int m, ef_construction, tranche;
	BuildState bs;

	ruhnsw_options_of(index, &m, &ef_construction);
	tranche = build_tranche();
	EnterParallelMode();
	pcxt = CreateParallelContext("ruvector", "ruhnsw_parallel_build_main", nworkers);

	/* A concurrent build sees an MVCC snapshot; else every tuple. */
	snapshot = info->ii_Concurrent ? RegisterSnapshot(GetTransactionSnapshot()) : SnapshotAny;

	shared_bytes = add_size(BUFFERALIGN(sizeof(ParallelShared)), table_parallelscan_estimate(heap, snapshot));
	shm_toc_estimate_chunk(&pcxt->estimator, shared_bytes);
	area_bytes = shared_area_size(heap, m, TupleDescAttr(RelationGetDescr(index), 0)->atttypmod);
	shm_toc_estimate_chunk(&pcxt->estimator, area_bytes);
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(sizeof(WalUsage), pcxt->nworkers));
	shm_toc_estimate_chunk(&pcxt->estimator, mul_size(sizeof(BufferUsage), pcxt->nworkers));
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	if (debug_query_string) {
		querylen = strlen(debug_query_string);
		shm_toc_estimate_chunk(&pcxt->estimator, querylen + 1);
		shm_toc_estimate_keys(&pcxt->estimator, 1);
	}

	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL) {
		if (IsMVCCSnapshot(snapshot))
			UnregisterSnapshot(snapshot);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return false;
	}

	sh = shm_toc_allocate(pcxt->toc, shared_bytes);
	memset(sh, 0, sizeof(ParallelShared));
	sh->heaprelid = RelationGetRelid(heap);
	sh->indexrelid = RelationGetRelid(index);
	sh->isconcurrent = info->ii_Concurrent;
	sh->tranche = tranche;
	SpinLockInit(&sh->mutex);
	header_init(&sh->graph, index, m);
	LWLockInitialize(&sh->graph.flush_lock, tranche);
	LWLockInitialize(&sh->graph.entry_lock, tranche);
	/* The offset table takes what the smallest elements would need. */
	min_elem = elem_size(0, m, Max(sh->graph.dim, 1));
	sh->graph.maxelems = (uint32)Min(area_bytes / (min_elem + sizeof(uint64)), (Size)PG_UINT32_MAX - 1);
	table_bytes = MAXALIGN(sizeof(uint64) * (Size)sh->graph.maxelems);
	sh->table_bytes = table_bytes;
	sh->graph.size = area_bytes - table_bytes;
	table_parallelscan_initialize(heap, SHARED_PSCAN(sh), snapshot);
	area = shm_toc_allocate(pcxt->toc, area_bytes);
	shm_toc_insert(pcxt->toc, KEY_SHARED, sh);
	shm_toc_insert(pcxt->toc, KEY_AREA, area);
	walusage = shm_toc_allocate(pcxt->toc, mul_size(sizeof(WalUsage), pcxt->nworkers));
	shm_toc_insert(pcxt->toc, KEY_WAL_USAGE, walusage);
	bufferusage = shm_toc_allocate(pcxt->toc, mul_size(sizeof(BufferUsage), pcxt->nworkers));
	shm_toc_insert(pcxt->toc, KEY_BUFFER_USAGE, bufferusage);
	if (debug_query_string) {
		char *query = shm_toc_allocate(pcxt->toc, querylen + 1);

		memcpy(query, debug_query_string, querylen + 1);
		shm_toc_insert(pcxt->toc, KEY_QUERY_TEXT, query);
	}

	ereport(DEBUG1, (errmsg_internal("ruhnsw build of \"%s\": %d parallel workers planned",
			RelationGetRelationName(index), nworkers)));
	LaunchParallelWorkers(pcxt);
	elog(DEBUG2, "ruhnsw build of \"%s\": %d parallel workers launched",
			RelationGetRelationName(index), pcxt->nworkers_launched);

	/* The leader takes its share, then waits for the workers'. */
	participate(sh, area, heap, index, info, true);
	WaitForParallelWorkersToFinish(pcxt);
	for (int i = 0; i < pcxt->nworkers_launched; i++)
		InstrAccumParallelQuery(&bufferusage[i], &walusage[i]);

	if (!sh->graph.flushed) {
		build_state_init(&bs, heap, index);
		attach_shared(&bs, sh, area);
		/* Alone now: no locks needed. */
		bs.shared = false;
		write_graph(&bs, MAIN_FORKNUM);
		MemoryContextDelete(bs.ctx);
	}
	*reltuples = sh->reltuples;
	*indtuples = sh->indtuples;
	if (sh->brokenhotchain)
		info->ii_BrokenHotChain = true;

	if (IsMVCCSnapshot(snapshot))
		UnregisterSnapshot(snapshot);
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	return true;
}

/* ---- the access method's build entry points ---- */

static void build_serial(Relation heap, Relation index, IndexInfo *info, double *reltuples,
		double *indtuples)
{
	BuildState bs;

	build_state_init(&bs, heap, index);
	bs.hdr = MemoryContextAlloc(bs.ctx, sizeof(GraphHeader));
	header_init(bs.hdr, index, bs.m);
	bs.limit = (Size)maintenance_work_mem * 1024;
	*reltuples = table_index_build_scan(heap, index, info, true, true, build_callback, &bs, NULL);
	if (!bs.hdr->flushed)
		write_graph(&bs, MAIN_FORKNUM);
	*indtuples = bs.inserted;
	MemoryContextDelete(bs.ctx);
}

IndexBuildResult *ruhnsw_build(Relation heap, Relation index, IndexInfo *info)
{
	IndexBuildResult *result;
	double reltuples = 0, indtuples = 0;
	int nworkers;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	check_options(index);

	/* From PostgreSQL 17 the server plans the workers of any access method
	 * that can use them; before, only those of btree. */
#if PG_VERSION_NUM >= 170000
	nworkers = info->ii_ParallelWorkers;
#else
	nworkers = plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));
#endif
	if (nworkers <= 0 || !build_parallel(heap, index, info, nworkers, &reltuples, &indtuples))
		build_serial(heap, index, info, &reltuples, &indtuples);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = indtuples;
	return result;
}

void ruhnsw_buildempty(Relation index)
{
	BuildState bs;

	check_options(index);
	build_state_init(&bs, NULL, index);
	bs.hdr = MemoryContextAlloc(bs.ctx, sizeof(GraphHeader));
	header_init(bs.hdr, index, bs.m);
	write_graph(&bs, INIT_FORKNUM);
	MemoryContextDelete(bs.ctx);
}
