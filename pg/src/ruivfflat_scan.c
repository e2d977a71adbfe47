/*
 * ruivfflat_scan.c - index scans: ORDER BY column <op> query.
 *
 * The first call measures the query against every centre and orders the
 * lists nearest first. It then reads the rows of the first
 * ruivfflat.probes lists, measures each, and hands them out nearest first
 * from a binary heap (built in linear time, so a LIMIT 10 over thousands
 * of candidates does not pay for a full sort).
 *
 * With ruivfflat.iterative_scan = relaxed_order, a scan whose rows run out
 * while the executor still asks for more (a WHERE clause rejected them)
 * reads the next ruivfflat.probes lists, up to ruivfflat.max_probes lists
 * in all (never fewer than ruivfflat.probes), as pgvector 0.8 does. Each
 * batch comes out in order, but a row of a later batch may be nearer than
 * one already returned: hence "relaxed".
 *
 * Everything a scan needs is copied out of the pages under a share lock,
 * so it holds no pin between calls (see ruivfflat.h for why that needs an
 * MVCC snapshot).
 */
#include "ruivfflat.h"

#include "access/relscan.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

typedef struct ScanList {
	double dist;
	int list; /* position among the centres: breaks ties the same way each time */
	BlockNumber start_page;
} ScanList;

typedef struct ScanItem {
	double dist;
	ItemPointerData tid;
} ScanItem;

typedef struct ScanOpaque {
	MemoryContext ctx;  /* one search: reset by rescan */
	bool started;
	RuivfflatDist dist;
	Ruvector *query;
	ScanList *lists;    /* nearest first, max_probes of them */
	int probes;         /* lists per batch */
	int max_probes;
	int next_list;      /* the next list to read */
	ScanItem *heap;     /* candidates of the lists read, nearest on top */
	int nheap, cap;
} ScanOpaque;

/* ---- the candidate heap ---- */

static inline bool item_above(const ScanItem *a, const ScanItem *b)
{
	if (a->dist != b->dist)
		return a->dist < b->dist;
	/* Equal distances come out in TID order, the same on every run. */
	return ItemPointerCompare((ItemPointer)&a->tid, (ItemPointer)&b->tid) < 0;
}

static void sift_down(ScanItem *h, int n, int i)
{
	ScanItem x = h[i];

	for (;;) {
		int child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && item_above(&h[child + 1], &h[child]))
			child++;
		if (!item_above(&h[child], &x))
			break;
		h[i] = h[child];
		i = child;
	}
	h[i] = x;
}

static void heapify(ScanItem *h, int n)
{
	for (int i = n / 2 - 1; i >= 0; i--)
		sift_down(h, n, i);
}

static ScanItem heap_pop(ScanOpaque *so)
{
	ScanItem top = so->heap[0];

	so->heap[0] = so->heap[--so->nheap];
	if (so->nheap > 0)
		sift_down(so->heap, so->nheap, 0);
	return top;
}

static void push_item(ScanOpaque *so, double dist, ItemPointer tid)
{
	if (so->nheap == so->cap) {
		so->cap = so->cap ? so->cap * 2 : 1024;
		so->heap = so->heap ? repalloc_huge(so->heap, sizeof(ScanItem) * so->cap)
				    : MemoryContextAllocHuge(so->ctx, sizeof(ScanItem) * so->cap);
	}
	so->heap[so->nheap].dist = dist;
	so->heap[so->nheap].tid = *tid;
	so->nheap++;
}

/* ---- reading the index ---- */

static int list_cmp(const void *a, const void *b)
{
	const ScanList *x = a, *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return x->list - y->list;
}

/* All the lists by distance from the query; keeps the nearest max_probes. */
static void order_lists(IndexScanDesc scan, const RuivfflatMeta *meta)
{
	ScanOpaque *so = scan->opaque;
	Relation index = scan->indexRelation;
	ScanList *all = palloc(sizeof(ScanList) * meta->lists);
	int n = 0;

	for (int p = 0; p < meta->list_pages; p++) {
		Buffer buf = ReadBuffer(index, RUIVFFLAT_FIRST_LIST_BLKNO + p);
		Page page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuivfflatList *item = ruivfflat_list_at(index, page, off);

			if (n == meta->lists)
				ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("index \"%s\" has more centres than the %d its meta page says",
								RelationGetRelationName(index), meta->lists)));
			ruivfflat_check_dim(index, meta->dim, item->center.dim);
			all[n].dist = ruivfflat_distance(&so->dist, so->query, &item->center);
			all[n].list = n;
			all[n].start_page = item->start_page;
			n++;
		}
		UnlockReleaseBuffer(buf);
	}
	qsort(all, n, sizeof(ScanList), list_cmp);
	so->lists = all;
	so->max_probes = Min(so->max_probes, n);
	so->next_list = 0;
}

/* Reads the next batch of lists into the (empty) heap. */
static void read_batch(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	Relation index = scan->indexRelation;
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	int end = Min(so->next_list + so->probes, so->max_probes);

	so->nheap = 0;
	for (; so->next_list < end; so->next_list++) {
		BlockNumber blk = so->lists[so->next_list].start_page;

		while (BlockNumberIsValid(blk)) {
			Buffer buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, strategy);
			Page page;

			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
				RuivfflatEntry *e = ruivfflat_entry_at(index, page, off);

				if (e->vec.dim != so->query->dim)
					ruivfflat_check_dim(index, so->query->dim, e->vec.dim);
				push_item(so, ruivfflat_distance(&so->dist, so->query, &e->vec), &e->heaptid);
			}
			blk = RuivfflatPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
			CHECK_FOR_INTERRUPTS();
		}
	}
	FreeAccessStrategy(strategy);
	heapify(so->heap, so->nheap);
}

/* The query as the index compares it: normalised like the rows (a zero
 * query stays zero: every row is as near as every other). */
static void start_search(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	Relation index = scan->indexRelation;
	RuivfflatMeta meta;

	if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("a ruivfflat index only serves ORDER BY a distance to a ruvector")));
	if (!IsMVCCSnapshot(scan->xs_snapshot))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("non-MVCC snapshots are not supported with ruivfflat")));
	ruivfflat_read_meta(index, &meta);
	ruivfflat_dist_init(&so->dist, index);
	if (scan->orderByData[0].sk_flags & SK_ISNULL) {
		so->query = ruvector_alloc(meta.dim);
	} else {
		so->query = (Ruvector *)PG_DETOAST_DATUM_COPY(scan->orderByData[0].sk_argument);
		ruivfflat_check_dim(index, meta.dim, so->query->dim);
		(void)ruivfflat_normalize(&so->dist, so->query);
	}
	so->probes = Min(ruivfflat_probes, meta.lists);
	so->max_probes = ruivfflat_iterative_scan == RUIVFFLAT_ITERATIVE_OFF
			? so->probes
			: Max(ruivfflat_max_probes, so->probes);
	order_lists(scan, &meta);
	read_batch(scan);
}

/* ---- the callbacks ---- */

IndexScanDesc ruivfflat_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	ScanOpaque *so = palloc0(sizeof(ScanOpaque));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruivfflat scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void ruivfflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
		int norderbys)
{
	ScanOpaque *so = scan->opaque;

	so->started = false;
	so->query = NULL;
	so->lists = NULL;
	so->heap = NULL;
	so->nheap = so->cap = 0;
	so->next_list = so->probes = so->max_probes = 0;
	MemoryContextReset(so->ctx);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

bool ruivfflat_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	ScanOpaque *so = scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->ctx);
	bool found = false;

	if (!so->started) {
		pgstat_count_index_scan(scan->indexRelation);
		start_search(scan);
		so->started = true;
	}
	/* Out of rows: the next batch of lists, while an iterative scan may
	 * read more (max_probes is probes otherwise). */
	while (so->nheap == 0 && so->next_list < so->max_probes)
		read_batch(scan);
	if (so->nheap > 0) {
		ScanItem item = heap_pop(so);

		scan->xs_heaptid = item.tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		found = true;
	}
	MemoryContextSwitchTo(old);
	return found;
}

void ruivfflat_endscan(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
