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
 * A scan reads the graph under buffer locks only and keeps neither vectors
 * nor lists (each distance is computed on the page, each list read when
 * its element is expanded), so its memory per element seen is small; it
 * requires an MVCC snapshot, as
 * the heap TIDs it holds between calls may be reused once VACUUM has
 * removed their rows (a snapshot that saw those rows never sees the
 * rows that replace them).
 */
#include "ruhnsw.h"

#include "access/relscan.h"
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
} ScanOpaque;

IndexScanDesc ruhnsw_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	ScanOpaque *so = palloc0(sizeof(ScanOpaque));

	/* Small blocks: the memory limit of an iterative scan counts what
	 * the context has allocated, and large blocks would reach it early. */
	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw scan", 0, 8 * 1024, 512 * 1024);
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
	MemoryContextReset(so->ctx);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
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
	}
done:
	MemoryContextSwitchTo(old);
	return found;
}

void ruhnsw_endscan(IndexScanDesc scan)
{
	ScanOpaque *so = scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
