/*
 * ruhnsw_scan.c - index scans: the paper's search (algorithm 5) from the
 * entry point down to layer 0, then the ruhnsw.ef_search nearest elements
 * in order.
 *
 * Iterative scans (ruhnsw.iterative_scan, pgvector 0.8's meaning): when
 * the executor asks for more rows than the first search found (a WHERE
 * clause rejected them), the search goes on where it stopped instead of
 * ending. Everything the search saw and did not return is kept: the
 * elements still to expand, and the discarded ones (seen, but farther
 * than the ef_search kept). The next round takes the ef_search nearest of
 * the discarded as its result set to start from and expands from there,
 * the visited set unchanged, so no row comes back twice. relaxed_order
 * returns each round in order, so a later round may return a row nearer
 * than one already returned; strict_order skips such rows, so the rows
 * come out in exact order of distance.
 *
 * A scan stops expanding once it has computed ruhnsw.max_scan_tuples
 * distances on layer 0 (checked between rounds, so the first round always
 * runs in full) or its memory passes work_mem * ruhnsw.scan_mem_multiplier;
 * it then returns the discarded elements, nearest first, and ends.
 *
 * In an sq8 index (ruhnsw_quant.c) the graph walk ranks elements by their
 * codes, which can put a row before a nearer one. Each batch of results
 * (the ef_search of a round) is therefore re-checked before any of it is
 * returned: the scan reads each row's vector from its heap tuple (the
 * scan's own snapshot; rows it does not see leave the batch, as the
 * executor would skip them) and orders the batch by the exact distance of
 * the operator class. The rows returned are thus in exact order, as from
 * a float index; the codes only decide which rows are in the batch. This
 * is done inside the scan rather than with the executor's ORDER BY
 * re-check (xs_recheckorderby), which needs a lower bound of the distance
 * for every row: a code gives an estimate, not a bound, and a loose bound
 * would make an iterative scan read far more rows before the first one
 * comes back.
 *
 * A scan reads the graph under buffer locks only and keeps neither vectors
 * nor lists (each distance is computed on the page, each list read when
 * its element is expanded), so its memory per element seen is small; it
 * requires an MVCC snapshot, as
 * the heap TIDs it holds between calls may be reused once VACUUM has
 * removed their rows (a snapshot that saw those rows never sees the
 * rows that replace them).
 */
#include "ruhnsw.h"

#include <math.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

typedef struct ScanOpaque {
	MemoryContext ctx; /* one search: graph, heaps, results */
	bool first;
	bool done;
	int mode;          /* ruhnsw.iterative_scan when the search began */
	DiskGraph *dg;
	const Ruvector *q;
	RuhnswSearch search;
	Cand *results;
	int nresults, pos;
	double last;       /* the last distance returned */
	double max_memory; /* bytes */
	/* The exact re-check of an sq8 index; set up at its first search and
	 * kept across rescans, in outer_ctx. */
	bool recheck;
	MemoryContext outer_ctx;
	IndexInfo *info;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	EState *estate;    /* an expression index's: computes the key */
} ScanOpaque;

IndexScanDesc ruhnsw_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	ScanOpaque *so = palloc0(sizeof(ScanOpaque));

	/* Small blocks: the memory limit of an iterative scan counts what
	 * the context has allocated, and large blocks would reach it early. */
	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw scan", 0, 8 * 1024, 512 * 1024);
	so->outer_ctx = CurrentMemoryContext;
	so->max_memory = (double)work_mem * 1024.0 * ruhnsw_scan_mem_multiplier;
	so->first = true;
	so->last = -get_float8_infinity();
	scan->opaque = so;
	return scan;
}

void ruhnsw_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	ScanOpaque *so = scan->opaque;

	so->first = true;
	so->done = false;
	so->dg = NULL;
	so->q = NULL;
	so->results = NULL;
	so->nresults = so->pos = 0;
	so->last = -get_float8_infinity();
	so->recheck = false;
	if (so->fetch != NULL)
		table_index_fetch_reset(so->fetch);
	MemoryContextReset(so->ctx);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

/* ---- the exact re-check (sq8) ---- */

static void recheck_init(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->outer_ctx);

	so->info = BuildIndexInfo(scan->indexRelation);
	so->fetch = table_index_fetch_begin(scan->heapRelation);
	so->slot = table_slot_create(scan->heapRelation, NULL);
	if (so->info->ii_IndexAttrNumbers[0] == 0)
		so->estate = CreateExecutorState();
	MemoryContextSwitchTo(old);
}

/* The exact distance from the query to the row's vector; false when the
 * scan's snapshot does not see the row (or its key is NULL). */
static bool row_distance(IndexScanDesc scan, ItemPointer heaptid, double *dist)
{
	ScanOpaque *so = scan->opaque;
	ItemPointerData tid = *heaptid; /* the fetch moves it along a HOT chain */
	bool call_again = false, all_dead = false, isnull;
	Datum value;
	Ruvector *v;

	if (!table_index_fetch_tuple(so->fetch, &tid, scan->xs_snapshot, so->slot, &call_again, &all_dead))
		return false;
	if (so->estate == NULL) {
		value = slot_getattr(so->slot, so->info->ii_IndexAttrNumbers[0], &isnull);
	} else {
		ExprContext *econtext = GetPerTupleExprContext(so->estate);
		Datum values[INDEX_MAX_KEYS];
		bool isnulls[INDEX_MAX_KEYS];

		ResetExprContext(econtext);
		econtext->ecxt_scantuple = so->slot;
		FormIndexDatum(so->info, so->slot, so->estate, values, isnulls);
		value = values[0];
		isnull = isnulls[0];
	}
	if (isnull) {
		ExecClearTuple(so->slot);
		return false;
	}
	v = DatumGetRuvector(value);
	*dist = ruhnsw_distance(&so->dg->g, so->q, v);
	ExecClearTuple(so->slot);
	return true;
}

/* Nearest first; equal distances in element order, so that a re-run
 * returns the same order. A NaN distance (cosine to a zero vector) goes
 * last: qsort needs a consistent order. */
static int exact_cmp(const void *a, const void *b)
{
	const Cand *x = a, *y = b;

	if (isnan(x->dist) || isnan(y->dist)) {
		if (isnan(x->dist) != isnan(y->dist))
			return isnan(x->dist) ? 1 : -1;
	} else if (x->dist != y->dist) {
		return x->dist < y->dist ? -1 : 1;
	}
	return x->ref < y->ref ? -1 : x->ref > y->ref ? 1 : 0;
}

/* Replaces the batch's code distances by the exact ones and sorts it;
 * deleted elements and rows the snapshot does not see leave it. */
static void recheck_batch(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	MemoryContext tmp = AllocSetContextCreate(so->ctx, "ruhnsw recheck", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	int kept = 0;

	for (int i = 0; i < so->nresults; i++) {
		Cand c = so->results[i];
		DiskElem *e;

		MemoryContextSwitchTo(so->ctx);
		e = ruhnsw_disk_load(so->dg, c.ref, false);
		MemoryContextSwitchTo(tmp);
		if (e->state != RUHNSW_LIVE || !ItemPointerIsValid(&e->heaptid))
			continue;
		if (!row_distance(scan, &e->heaptid, &c.dist))
			continue;
		so->results[kept++] = c;
		MemoryContextReset(tmp);
		CHECK_FOR_INTERRUPTS();
	}
	so->nresults = kept;
	if (kept > 1)
		qsort(so->results, kept, sizeof(Cand), exact_cmp);
	/* The executor reads the rows' pages itself: no pin held between. */
	table_index_fetch_reset(so->fetch);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

/* The first round: down the layers from the entry point, then the
 * ef_search nearest on layer 0. */
static void first_round(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	Relation index = scan->indexRelation;
	RuhnswMeta meta;
	Cand first, *entries;
	int nentries;

	if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				errmsg("a ruhnsw index only serves ORDER BY a distance to a ruvector")));
	if (!IsMVCCSnapshot(scan->xs_snapshot))
		elog(ERROR, "a ruhnsw index scan needs an MVCC snapshot");
	pgstat_count_index_scan(index);
	so->mode = ruhnsw_iterative_scan;
	ruhnsw_read_meta(index, &meta);
	if (meta.entry_level < 0) {
		so->done = true;
		return;
	}
	/* ORDER BY a distance to NULL: every row in some order, as with the
	 * zero vector. */
	if (scan->orderByData[0].sk_flags & SK_ISNULL) {
		Ruvector *zero = palloc0(RUVECTOR_SIZE(meta.dim));

		SET_VARSIZE(zero, RUVECTOR_SIZE(meta.dim));
		zero->dim = meta.dim;
		so->q = zero;
	} else {
		so->q = (Ruvector *)PG_DETOAST_DATUM(scan->orderByData[0].sk_argument);
	}
	so->dg = ruhnsw_disk_graph(index, meta.m, false);
	/* A first round sees about ef_search * m elements (ef_search 40,
	 * m 16: 400 to 600); room for them up front saves rehashing the
	 * element table as it fills. */
	ruhnsw_refmap_reserve(&so->dg->cache, (uint32)ruhnsw_ef_search * (uint32)meta.m);
	/* Without a heap relation (no caller of ours lacks one) the rows
	 * would come in the order of their codes. */
	if (so->dg->quant != NULL && scan->heapRelation != NULL) {
		if (so->fetch == NULL)
			recheck_init(scan);
		so->recheck = true;
	}
	first.ref = ruhnsw_tid_ref(&meta.entry);
	first.dist = so->dg->g.distance(&so->dg->g, so->q, first.ref);
	entries = &first;
	nentries = 1;
	for (int l = meta.entry_level; l > 0; l--)
		entries = ruhnsw_search_layer(&so->dg->g, so->q, entries, nentries, 1, l, NULL, &nentries);
	ruhnsw_search_init(&so->search, true, so->mode != RUHNSW_ITERATIVE_SCAN_OFF);
	so->results = ruhnsw_search_layer(&so->dg->g, so->q, entries, nentries, ruhnsw_ef_search, 0,
			&so->search, &so->nresults);
	so->search.resumed = true;
}

/* The next round of an iterative scan; false when the scan is over. */
static bool next_round(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;
	RuhnswSearch *s = &so->search;
	bool over_tuples = s->visits >= ruhnsw_max_scan_tuples;
	bool over_memory = !over_tuples && (double)MemoryContextMemAllocated(so->ctx, true) >= so->max_memory;
	Cand *entries;
	int nentries;

	pfree(so->results);
	so->results = NULL;
	so->nresults = so->pos = 0;
	if (over_tuples || over_memory) {
		/* No more expanding: what was seen, nearest first. */
		if (s->discarded.n == 0) {
			if (over_memory)
				ereport(DEBUG1, (errmsg("ruhnsw index scan reached its memory limit after " INT64_FORMAT
							" tuples", s->visits),
						errhint("Increase ruhnsw.scan_mem_multiplier to scan more tuples.")));
			return false;
		}
		so->results = palloc(sizeof(Cand));
		so->results[0] = ruhnsw_heap_pop(&s->discarded);
		so->nresults = 1;
		return true;
	}
	if (s->discarded.n == 0 && s->near.n == 0)
		return false;
	nentries = Min(s->discarded.n, ruhnsw_ef_search);
	entries = palloc(sizeof(Cand) * Max(nentries, 1));
	for (int i = 0; i < nentries; i++)
		entries[i] = ruhnsw_heap_pop(&s->discarded);
	so->results = ruhnsw_search_layer(&so->dg->g, so->q, entries, nentries, ruhnsw_ef_search, 0, s,
			&so->nresults);
	pfree(entries);
	return so->nresults > 0;
}

bool ruhnsw_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	ScanOpaque *so = scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(so->ctx);
	bool found = false;

	if (so->first) {
		first_round(scan);
		so->first = false;
		if (so->recheck)
			recheck_batch(scan);
	}
	while (!so->done) {
		while (so->pos < so->nresults) {
			Cand c = so->results[so->pos++];
			DiskElem *e = ruhnsw_disk_load(so->dg, c.ref, false);

			if (e->state != RUHNSW_LIVE || !ItemPointerIsValid(&e->heaptid))
				continue;
			/* A later round found something nearer than a row already
			 * returned: strict order leaves it out. */
			if (so->mode == RUHNSW_ITERATIVE_SCAN_STRICT && c.dist < so->last)
				continue;
			so->last = c.dist;
			scan->xs_heaptid = e->heaptid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			found = true;
			goto done;
		}
		if (so->mode == RUHNSW_ITERATIVE_SCAN_OFF || !next_round(scan))
			so->done = true;
		else if (so->recheck)
			recheck_batch(scan);
	}
done:
	MemoryContextSwitchTo(old);
	return found;
}

void ruhnsw_endscan(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;

	if (so->fetch != NULL) {
		table_index_fetch_end(so->fetch);
		ExecDropSingleTupleTableSlot(so->slot);
		if (so->estate != NULL)
			FreeExecutorState(so->estate);
	}
	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
