/*
 * ruhnsw_vacuum.c - VACUUM for ruhnsw: elements of dead heap rows leave
 * the graph and their space is reused.
 *
 * Four steps:
 *  1. mark: every element whose heap row VACUUM removes becomes deleted;
 *     scans and inserts walk through deleted elements (they still carry
 *     the graph's paths) but never return them or link to them.
 *  2. wait: take and drop the update lock once, so that an insert which
 *     read the graph before step 1 has finished; every later insert sees
 *     the marks.
 *  3. repair: a deleted entry point gives way to the live element of the
 *     highest level; then every live element with a link to a deleted one
 *     gets new lists on each layer where it had one, as if inserted anew:
 *     candidates are its nearest live elements (a search around the
 *     element, seeded by its old list, walking through the deleted ones)
 *     and the live elements its deleted neighbours led to (FreshDiskANN's
 *     repair, a few deleted elements deep); the paper's heuristic picks
 *     among them, a led-to element that no pick reaches takes a free slot,
 *     and the picks link back to the element where they have room. Done
 *     under the update lock a batch of elements at a time (inserts go on
 *     in between), each batch writing a changed page once. Last, layer 0
 *     is checked whole: an element cut off from the entry point, either
 *     way, is linked to the rest (deletes can take away every link
 *     between two clusters).
 *  4. free: with nothing linking to them any more, the deleted elements
 *     become free, and the meta page's free_page points at the first page
 *     holding one, where inserts look for space.
 *
 * A scan that read a list before step 3 may still arrive at a freed
 * element, or at a new one in its place: it sees a consistent element
 * either way (buffer locks), and a row inserted there is invisible to
 * the scan's MVCC snapshot.
 */
#include "ruhnsw.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Elements repaired per hold of the update lock. */
#define REPAIR_BATCH 64
/* Deleted elements a repair walks through to find where they led: past a
 * few, the led-to elements are the ones its search finds anyway. */
#define BRIDGE_BUDGET 8

typedef struct VacuumState {
	Relation index;
	BufferAccessStrategy strategy;
	MemoryContext ctx;
	int m, ef_construction;
	HTAB *deleted;     /* ElemRef set: elements whose rows are gone */
	ElemRef *repair;   /* live elements linking to deleted ones */
	int nrepair, caprepair;
} VacuumState;

static void ref_list_add(ElemRef **list, int *n, int *cap, ElemRef ref)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*list = *list ? repalloc_huge(*list, sizeof(ElemRef) * *cap)
			      : palloc_extended(sizeof(ElemRef) * *cap, MCXT_ALLOC_HUGE);
	}
	(*list)[(*n)++] = ref;
}

static int ref_cmp(const void *a, const void *b)
{
	ElemRef x = *(const ElemRef *)a, y = *(const ElemRef *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static bool is_deleted_ref(VacuumState *vs, ItemPointer tid)
{
	ElemRef ref;

	if (!ItemPointerIsValid(tid))
		return false;
	ref = ruhnsw_tid_ref(tid);
	return hash_search(vs->deleted, &ref, HASH_FIND, NULL) != NULL;
}

/* Step 1: marks the elements of dead rows deleted and collects every
 * deleted element (an earlier VACUUM that failed may have left some). */
static void mark_deleted(VacuumState *vs, IndexBulkDeleteResult *stats,
		IndexBulkDeleteCallback callback, void *callback_state)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf;
		GenericXLogState *state;
		Page page;
		bool changed = false;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blk, RBM_NORMAL, vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(vs->index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));
			ItemPointerData tid;
			ElemRef ref;

			if (et->type != RUHNSW_ELEMENT || et->deleted == RUHNSW_FREE)
				continue;
			if (et->deleted == RUHNSW_LIVE) {
				if (!ItemPointerIsValid(&et->heaptid) || !callback(&et->heaptid, callback_state)) {
					stats->num_index_tuples++;
					continue;
				}
				et->deleted = RUHNSW_DELETED;
				ItemPointerSetInvalid(&et->heaptid);
				stats->tuples_removed++;
				changed = true;
			}
			ItemPointerSet(&tid, blk, off);
			ref = ruhnsw_tid_ref(&tid);
			hash_search(vs->deleted, &ref, HASH_ENTER, NULL);
		}
		if (changed)
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
		UnlockReleaseBuffer(buf);
	}
}

/* Whether a neighbour tuple links to a deleted element. */
static bool links_deleted(VacuumState *vs, RuhnswNeighborTuple *nt)
{
	for (int i = 0; i < nt->nslots; i++)
		if (is_deleted_ref(vs, &nt->slots[i]))
			return true;
	return false;
}

/* Step 3's list: the live elements with a link to a deleted one. One
 * buffer lock at a time: an element whose neighbour tuple lies on another
 * page is checked after its own page is let go. */
static void find_damaged(VacuumState *vs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);
	ElemRef *apart = NULL;
	ItemPointerData *apart_ntid = NULL;
	int napart = 0, capapart = 0;

	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf;
		Page page;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blk, RBM_NORMAL, vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));
			ItemPointerData tid;

			if (et->type != RUHNSW_ELEMENT || et->deleted != RUHNSW_LIVE)
				continue;
			ItemPointerSet(&tid, blk, off);
			if (ItemPointerGetBlockNumber(&et->neighbortid) != blk) {
				int cap = capapart;

				ref_list_add(&apart, &napart, &capapart, ruhnsw_tid_ref(&tid));
				if (capapart != cap)
					apart_ntid = apart_ntid ? repalloc_huge(apart_ntid, sizeof(ItemPointerData) * capapart)
							: palloc_extended(sizeof(ItemPointerData) * capapart, MCXT_ALLOC_HUGE);
				apart_ntid[napart - 1] = et->neighbortid;
				continue;
			}
			if (links_deleted(vs, ruhnsw_neighbors_at(vs->index, page,
					ItemPointerGetOffsetNumber(&et->neighbortid))))
				ref_list_add(&vs->repair, &vs->nrepair, &vs->caprepair, ruhnsw_tid_ref(&tid));
		}
		UnlockReleaseBuffer(buf);
	}
	for (int i = 0; i < napart; i++) {
		Buffer buf = ReadBufferExtended(vs->index, MAIN_FORKNUM,
				ItemPointerGetBlockNumber(&apart_ntid[i]), RBM_NORMAL, vs->strategy);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		if (links_deleted(vs, ruhnsw_neighbors_at(vs->index, BufferGetPage(buf),
				ItemPointerGetOffsetNumber(&apart_ntid[i]))))
			ref_list_add(&vs->repair, &vs->nrepair, &vs->caprepair, apart[i]);
		UnlockReleaseBuffer(buf);
	}
}

/* The live element of the highest level (the first found of it); false
 * when none is left. Under the update lock, so none appears meanwhile. */
static bool highest_live(VacuumState *vs, ItemPointer out, int *level)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(vs->index);

	*level = -1;
	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blk, RBM_NORMAL, vs->strategy);
		Page page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));

			if (et->type == RUHNSW_ELEMENT && et->deleted == RUHNSW_LIVE && et->level > *level) {
				*level = et->level;
				ItemPointerSet(out, blk, off);
			}
		}
		UnlockReleaseBuffer(buf);
	}
	return *level >= 0;
}

/* Step 3, first part: a deleted entry point gives way. Under the update
 * lock. */
static void replace_entry(VacuumState *vs)
{
	RuhnswMeta meta;
	ItemPointerData entry;
	int level;
	Buffer buf;
	GenericXLogState *state;
	RuhnswMeta *m;

	ruhnsw_read_meta(vs->index, &meta);
	if (meta.entry_level < 0 || !is_deleted_ref(vs, &meta.entry))
		return;
	if (!highest_live(vs, &entry, &level)) {
		ItemPointerSetInvalid(&entry);
		level = -1;
	}
	buf = ReadBuffer(vs->index, RUHNSW_META_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(vs->index);
	m = ruhnsw_meta_of(vs->index, GenericXLogRegisterBuffer(state, buf, 0));
	m->entry = entry;
	m->entry_level = level;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* Drops the element itself from a candidate list; the new count. */
static int drop_self(Cand *cands, int n, ElemRef self)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		if (cands[i].ref != self)
			cands[k++] = cands[i];
	return k;
}

/*
 * The live elements the element reached through deleted ones on this
 * layer: a best-first walk from its deleted neighbours that expands only
 * deleted elements (at most BRIDGE_BUDGET of them), collecting the live
 * elements at the far ends, nearest first. These are the element's paths
 * through what is going away (FreshDiskANN repairs with the one-hop
 * part of them).
 */
static Cand *bridged(VacuumState *vs, DiskGraph *dg, const Ruvector *vec, ElemRef self,
		const ElemRef *links, int nlinks, int level, int *nout)
{
	RuhnswGraph *g = &dg->g;
	ElemRef *next = palloc(sizeof(ElemRef) * 2 * vs->m);
	CandHeap frontier = {NULL, 0, 0, false};
	Cand *out = NULL;
	int n = 0, cap = 0, expanded = 0;

	g->visit_reset(g);
	g->visit(g, self);
	for (int i = 0; i < nlinks; i++) {
		Cand c;

		if (!g->visit(g, links[i]) || !g->deleted(g, links[i]))
			continue;
		c.ref = links[i];
		c.dist = g->distance(g, vec, links[i]);
		ruhnsw_heap_push(&frontier, c);
	}
	while (frontier.n > 0 && expanded++ < BRIDGE_BUDGET) {
		Cand d = ruhnsw_heap_pop(&frontier);
		int nnext = g->neighbors(g, d.ref, level, next);

		for (int j = 0; j < nnext; j++) {
			Cand c;

			if (!g->visit(g, next[j]))
				continue;
			c.ref = next[j];
			c.dist = g->distance(g, vec, next[j]);
			if (g->deleted(g, next[j])) {
				ruhnsw_heap_push(&frontier, c);
				continue;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				out = out ? repalloc(out, sizeof(Cand) * cap) : palloc(sizeof(Cand) * cap);
			}
			out[n++] = c;
		}
	}
	if (n > 1)
		qsort(out, n, sizeof(Cand), ruhnsw_cand_cmp);
	*nout = n;
	pfree(next);
	if (frontier.a)
		pfree(frontier.a);
	return out;
}

/* The candidates and the bridged elements in one sorted list, each once. */
static Cand *merge_cands(const Cand *a, int na, const Cand *b, int nb, int *nout)
{
	Cand *all = palloc(sizeof(Cand) * Max(na + nb, 1));
	int n = na;

	memcpy(all, a, sizeof(Cand) * na);
	for (int i = 0; i < nb; i++) {
		bool seen = false;

		for (int k = 0; k < na && !seen; k++)
			seen = a[k].ref == b[i].ref;
		if (!seen)
			all[n++] = b[i];
	}
	qsort(all, n, sizeof(Cand), ruhnsw_cand_cmp);
	*nout = n;
	return all;
}

/* Whether ref is among the kept or one link away from one of them. */
static bool covered(RuhnswGraph *g, const Cand *kept, int nkept, ElemRef ref, int level,
		ElemRef *buf)
{
	for (int i = 0; i < nkept; i++) {
		int n;

		if (kept[i].ref == ref)
			return true;
		n = g->neighbors(g, kept[i].ref, level, buf);
		for (int j = 0; j < n; j++)
			if (buf[j] == ref)
				return true;
	}
	return false;
}

/* Step 3, second part: new lists for one element, on each layer where it
 * links to a deleted element. */
static void repair_element(VacuumState *vs, DiskGraph *dg, const RuhnswMeta *meta, ElemRef ref)
{
	RuhnswGraph *g = &dg->g;
	DiskElem *e = ruhnsw_disk_load(dg, ref, true);
	ElemRef *links = palloc(sizeof(ElemRef) * 2 * vs->m);
	ElemRef *cover_buf = palloc(sizeof(ElemRef) * 2 * vs->m);
	Cand *from_entry[RUHNSW_MAX_LEVEL + 1];
	int from_entry_counts[RUHNSW_MAX_LEVEL + 1];
	bool searched_from_entry = false;

	if (e->state != RUHNSW_LIVE)
		return;
	for (int l = 0; l <= e->level; l++) {
		int n = g->neighbors(g, ref, l, links);
		bool damaged = false;
		Cand *entries, *found, *kept, *bridges;
		int nfound, nkept, nbridges;
		RuhnswSearch s;

		for (int i = 0; i < n && !damaged; i++)
			damaged = g->deleted(g, links[i]);
		if (!damaged)
			continue;
		entries = palloc(sizeof(Cand) * n);
		for (int i = 0; i < n; i++) {
			entries[i].ref = links[i];
			entries[i].dist = g->distance(g, e->vec, links[i]);
		}
		ruhnsw_search_init(&s, true, false);
		found = ruhnsw_search_layer(g, e->vec, entries, n, vs->ef_construction, l, &s, &nfound);
		bridges = bridged(vs, dg, e->vec, ref, links, n, l, &nbridges);
		found = merge_cands(found, nfound, bridges, nbridges, &nfound);
		nfound = drop_self(found, nfound, ref);
		if (nfound == 0 && meta->entry_level >= l) {
			/* Nothing live around it on this layer: look from the top. */
			if (!searched_from_entry) {
				memset(from_entry_counts, 0, sizeof(from_entry_counts));
				ruhnsw_find_neighbors(g, e->vec, Min(e->level, meta->entry_level),
						ruhnsw_tid_ref((ItemPointer)&meta->entry), meta->entry_level,
						vs->ef_construction, from_entry, from_entry_counts);
				searched_from_entry = true;
			}
			found = from_entry[l];
			nfound = drop_self(found, from_entry_counts[l], ref);
		}
		kept = palloc(sizeof(Cand) * ruhnsw_max_links(vs->m, l));
		nkept = ruhnsw_select_neighbors(g, found, nfound, ruhnsw_max_links(vs->m, l), kept);
		/*
		 * The heuristic drops a far candidate that is nearer to a kept one
		 * than to the element, trusting the kept one to lead there; after
		 * deletes it often does not (whole clusters may be gone, and with
		 * them the links between the others). A bridged element no kept
		 * link reaches in one step takes a free slot, nearest first, so
		 * the paths through the deleted elements live on.
		 */
		for (int i = 0; i < nbridges && nkept < ruhnsw_max_links(vs->m, l); i++)
			if (bridges[i].ref != ref && !covered(g, kept, nkept, bridges[i].ref, l, cover_buf))
				kept[nkept++] = bridges[i];
		for (int i = 0; i < nkept; i++)
			links[i] = kept[i].ref;
		g->set_neighbors(g, ref, l, links, nkept);
		/* Linked back where a pick has room (or a deleted link to give
		 * up): the repair would otherwise only ever take links away from
		 * elements far from the others, until nothing leads to them.
		 * Pruning full lists as an insert does costs much and buys no
		 * recall here. */
		for (int i = 0; i < nkept; i++) {
			Cand self = {ref, kept[i].dist};

			ruhnsw_add_backlink(g, kept[i].ref, l, self, false);
		}
	}
}

static void repair(VacuumState *vs)
{
	MemoryContext batch_ctx = AllocSetContextCreate(vs->ctx, "ruhnsw vacuum batch",
			ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < vs->nrepair; i += REPAIR_BATCH) {
		MemoryContext old;
		DiskGraph *dg;
		RuhnswMeta meta;

		vacuum_delay_point();
		LockPage(vs->index, RUHNSW_META_BLKNO, ExclusiveLock);
		old = MemoryContextSwitchTo(batch_ctx);
		ruhnsw_read_meta(vs->index, &meta);
		dg = ruhnsw_disk_graph(vs->index, vs->m, true);
		/* A batch changes many lists on the same pages: one WAL record
		 * per page at its end. */
		dg->defer_writes = true;
		for (int j = i; j < Min(i + REPAIR_BATCH, vs->nrepair); j++)
			repair_element(vs, dg, &meta, vs->repair[j]);
		ruhnsw_disk_flush(dg);
		MemoryContextSwitchTo(old);
		UnlockPage(vs->index, RUHNSW_META_BLKNO, ExclusiveLock);
		MemoryContextReset(batch_ctx);
	}
}

/* ---- step 3, last part: every live element reachable on layer 0 ---- */

/* The live element's layer-0 list, read straight from its pages (one
 * buffer lock at a time); false when the element is not live. */
static bool read_links0(VacuumState *vs, ElemRef ref, ElemRef *out, int *n)
{
	ItemPointerData tid, ntid;
	Buffer buf;
	Page page;
	RuhnswElementTuple *et;
	RuhnswNeighborTuple *nt;

	*n = 0;
	ruhnsw_ref_tid(ref, &tid);
	buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, ItemPointerGetBlockNumber(&tid), RBM_NORMAL,
			vs->strategy);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	et = ruhnsw_element_at(vs->index, page, ItemPointerGetOffsetNumber(&tid));
	if (et->deleted != RUHNSW_LIVE) {
		UnlockReleaseBuffer(buf);
		return false;
	}
	ntid = et->neighbortid;
	if (ItemPointerGetBlockNumber(&ntid) != ItemPointerGetBlockNumber(&tid)) {
		UnlockReleaseBuffer(buf);
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, ItemPointerGetBlockNumber(&ntid),
				RBM_NORMAL, vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
	}
	nt = ruhnsw_neighbors_at(vs->index, page, ItemPointerGetOffsetNumber(&ntid));
	for (int i = 0; i < 2 * vs->m && i < nt->nslots; i++) {
		if (!ItemPointerIsValid(&nt->slots[i]))
			break;
		out[(*n)++] = ruhnsw_tid_ref(&nt->slots[i]);
	}
	UnlockReleaseBuffer(buf);
	return true;
}

/* Links from to to on layer 0, giving up from's farthest link when its
 * list is full. */
static void force_link(RuhnswGraph *g, ElemRef from, ElemRef to)
{
	ElemRef *links = palloc(sizeof(ElemRef) * 2 * g->m);
	int n = g->neighbors(g, from, 0, links);
	Ruvector *fv;
	int far = 0;
	double far_dist = -1;

	for (int i = 0; i < n; i++)
		if (links[i] == to)
			return;
	if (n < 2 * g->m) {
		links[n++] = to;
	} else {
		fv = g->vector(g, from);
		for (int i = 0; i < n; i++) {
			double d = g->distance(g, fv, links[i]);

			if (d > far_dist) {
				far_dist = d;
				far = i;
			}
		}
		links[far] = to;
	}
	g->set_neighbors(g, from, 0, links, n);
}

/* Layer 0 of the live elements in memory, by number: refs sorted (they
 * are read in page order), out-links and in-links as numbers. */
typedef struct Layer0 {
	ElemRef *refs;
	int n;
	int width;       /* 2m: out-links per element, -1 ending a short list */
	int32 *out;
	int32 *in_start; /* in-links of i: in[in_start[i] .. in_start[i + 1]) */
	int32 *in;
	bool *from_entry; /* reached from the entry point */
	bool *to_entry;   /* reaches the entry point */
} Layer0;

static int32 layer0_find(const Layer0 *g0, ElemRef ref)
{
	int lo = 0, hi = g0->n - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (g0->refs[mid] == ref)
			return mid;
		if (g0->refs[mid] < ref)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Marks what start reaches (forward) or what reaches start (backward). */
static void layer0_walk(Layer0 *g0, int32 start, bool forward, int32 *queue)
{
	bool *mark = forward ? g0->from_entry : g0->to_entry;
	int head = 0, tail = 0;

	mark[start] = true;
	queue[tail++] = start;
	while (head < tail) {
		int32 u = queue[head++];
		int32 *next = forward ? &g0->out[(Size)u * g0->width] : &g0->in[g0->in_start[u]];
		int nnext = forward ? g0->width : g0->in_start[u + 1] - g0->in_start[u];

		for (int i = 0; i < nnext && next[i] >= 0; i++)
			if (!mark[next[i]]) {
				mark[next[i]] = true;
				queue[tail++] = next[i];
			}
	}
}

/* Links an element cut off from the entry point (either way), both ways,
 * with the two nearest live elements a search from the entry point finds
 * on layer 0 that reach and are reached from it. Under the update lock. */
static void link_island(VacuumState *vs, Layer0 *g0, int32 u, int32 *linked, int *nlinked)
{
	RuhnswMeta meta;
	DiskGraph *dg;
	DiskElem *e;
	RuhnswSearch s;
	Cand entry, *found;
	int nfound;
	ElemRef ref = g0->refs[u];

	*nlinked = 0;
	ruhnsw_read_meta(vs->index, &meta);
	if (meta.entry_level < 0)
		return;
	dg = ruhnsw_disk_graph(vs->index, vs->m, true);
	e = ruhnsw_disk_load(dg, ref, true);
	if (e->state != RUHNSW_LIVE)
		return;
	entry.ref = ruhnsw_tid_ref(&meta.entry);
	entry.dist = dg->g.distance(&dg->g, e->vec, entry.ref);
	ruhnsw_search_init(&s, true, false);
	found = ruhnsw_search_layer(&dg->g, e->vec, &entry, 1, vs->ef_construction, 0, &s, &nfound);
	for (int i = 0; i < nfound && *nlinked < 2; i++) {
		int32 x = layer0_find(g0, found[i].ref);

		if (x < 0 || x == u || !g0->from_entry[x] || !g0->to_entry[x])
			continue;
		force_link(&dg->g, ref, found[i].ref);
		force_link(&dg->g, found[i].ref, ref);
		linked[(*nlinked)++] = x;
	}
}

/*
 * Deletes can cut layer 0 apart: when whole clusters go, so may the only
 * links between the clusters left (a fresh graph has them from the order
 * rows came in; a repair only sees near neighbours). Searches still get
 * everywhere through the upper layers, but an iterative scan walks layer
 * 0 alone. So layer 0 goes into memory, and every live element that the
 * entry point does not reach, or that does not reach the entry point, is
 * linked both ways with elements that do; whatever that connects counts
 * as connected before the next one is looked at. Skipped (with a DEBUG
 * message) when the copy would not fit in maintenance_work_mem.
 */
static void connect_layer0(VacuumState *vs, double live)
{
	Layer0 g0;
	RuhnswMeta meta;
	BlockNumber nblocks;
	int cap = 0, nin = 0;
	int32 entry, *queue, *count;
	ElemRef *links;
	double bytes_per = sizeof(ElemRef) + 2 * sizeof(int32) * 2 * vs->m + 3 * sizeof(int32) + 2;

	if (live * bytes_per * 1.5 > (double)maintenance_work_mem * 1024) {
		ereport(DEBUG1, (errmsg("ruhnsw vacuum of \"%s\" leaves out the check of layer 0: "
					"%.0f elements need more than maintenance_work_mem",
				RelationGetRelationName(vs->index), live)));
		return;
	}
	ruhnsw_read_meta(vs->index, &meta);
	if (meta.entry_level < 0)
		return;

	/* The live elements, in page order. */
	memset(&g0, 0, sizeof(g0));
	g0.width = 2 * vs->m;
	nblocks = RelationGetNumberOfBlocks(vs->index);
	for (BlockNumber blk = RUHNSW_META_BLKNO + 1; blk < nblocks; blk++) {
		Buffer buf;
		Page page;

		vacuum_delay_point();
		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blk, RBM_NORMAL, vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *et = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));
			ItemPointerData tid;

			if (et->type != RUHNSW_ELEMENT || et->deleted != RUHNSW_LIVE)
				continue;
			ItemPointerSet(&tid, blk, off);
			ref_list_add(&g0.refs, &g0.n, &cap, ruhnsw_tid_ref(&tid));
		}
		UnlockReleaseBuffer(buf);
	}
	entry = layer0_find(&g0, ruhnsw_tid_ref(&meta.entry));
	if (entry < 0)
		return;

	/* Their links, out and in. */
	g0.out = palloc_extended(sizeof(int32) * (Size)g0.n * g0.width, MCXT_ALLOC_HUGE);
	count = palloc_extended(sizeof(int32) * ((Size)g0.n + 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	links = palloc(sizeof(ElemRef) * g0.width);
	for (int32 u = 0; u < g0.n; u++) {
		int n = 0, k = 0;
		int32 *out = &g0.out[(Size)u * g0.width];

		if ((u & 1023) == 0)
			vacuum_delay_point();
		if (read_links0(vs, g0.refs[u], links, &n))
			for (int i = 0; i < n; i++) {
				int32 t = layer0_find(&g0, links[i]);

				if (t >= 0) {
					out[k++] = t;
					count[t + 1]++;
					nin++;
				}
			}
		while (k < g0.width)
			out[k++] = -1;
	}
	g0.in_start = count;
	for (int32 u = 0; u < g0.n; u++)
		g0.in_start[u + 1] += g0.in_start[u];
	g0.in = palloc_extended(sizeof(int32) * Max(nin, 1), MCXT_ALLOC_HUGE);
	{
		int32 *fill = palloc_extended(sizeof(int32) * g0.n, MCXT_ALLOC_HUGE);

		memcpy(fill, g0.in_start, sizeof(int32) * g0.n);
		for (int32 u = 0; u < g0.n; u++)
			for (int i = 0; i < g0.width && g0.out[(Size)u * g0.width + i] >= 0; i++)
				g0.in[fill[g0.out[(Size)u * g0.width + i]]++] = u;
		pfree(fill);
	}

	/* Who is cut off, and the links that end it. */
	g0.from_entry = palloc0(sizeof(bool) * g0.n);
	g0.to_entry = palloc0(sizeof(bool) * g0.n);
	queue = palloc_extended(sizeof(int32) * g0.n, MCXT_ALLOC_HUGE);
	layer0_walk(&g0, entry, true, queue);
	layer0_walk(&g0, entry, false, queue);
	for (int32 u = 0; u < g0.n; u++) {
		MemoryContext ctx, old;
		int32 linked[2];
		int nlinked;

		if (g0.from_entry[u] && g0.to_entry[u])
			continue;
		ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw vacuum link", ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(ctx);
		LockPage(vs->index, RUHNSW_META_BLKNO, ExclusiveLock);
		link_island(vs, &g0, u, linked, &nlinked);
		UnlockPage(vs->index, RUHNSW_META_BLKNO, ExclusiveLock);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(ctx);
		/* u now reaches and is reached from the connected part: so does
		 * everything u reaches, and everything that reaches u. */
		if (nlinked > 0) {
			if (!g0.from_entry[u])
				layer0_walk(&g0, u, true, queue);
			if (!g0.to_entry[u])
				layer0_walk(&g0, u, false, queue);
		}
		vacuum_delay_point();
	}
}

/* Step 4: the deleted elements become free; free_page learns the first
 * page holding one. Under the update lock. */
static void free_deleted(VacuumState *vs)
{
	long n = hash_get_num_entries(vs->deleted);
	ElemRef *refs = palloc_extended(sizeof(ElemRef) * Max(n, 1), MCXT_ALLOC_HUGE);
	HASH_SEQ_STATUS seq;
	ElemRef *r;
	long k = 0;
	Buffer buf;
	GenericXLogState *state;
	RuhnswMeta *meta;

	hash_seq_init(&seq, vs->deleted);
	while ((r = hash_seq_search(&seq)) != NULL)
		refs[k++] = *r;
	qsort(refs, n, sizeof(ElemRef), ref_cmp);
	for (long i = 0; i < n;) {
		BlockNumber blk = (BlockNumber)(refs[i] >> 16);
		Page page;

		buf = ReadBufferExtended(vs->index, MAIN_FORKNUM, blk, RBM_NORMAL, vs->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(vs->index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		for (; i < n && (BlockNumber)(refs[i] >> 16) == blk; i++) {
			RuhnswElementTuple *et = ruhnsw_element_at(vs->index, page, (OffsetNumber)(refs[i] & 0xffff));

			if (et->deleted == RUHNSW_DELETED)
				et->deleted = RUHNSW_FREE;
		}
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
	}
	if (n > 0) {
		BlockNumber first = (BlockNumber)(refs[0] >> 16);

		buf = ReadBuffer(vs->index, RUHNSW_META_BLKNO);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(vs->index);
		meta = ruhnsw_meta_of(vs->index, GenericXLogRegisterBuffer(state, buf, 0));
		if (!ruhnsw_has_free_page(meta) || first < meta->free_page)
			meta->free_page = first;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
	}
	pfree(refs);
}

IndexBulkDeleteResult *ruhnsw_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
		IndexBulkDeleteCallback callback, void *callback_state)
{
	VacuumState vs;
	HASHCTL hinfo;
	MemoryContext old;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	stats->num_index_tuples = 0;

	memset(&vs, 0, sizeof(vs));
	vs.index = info->index;
	vs.strategy = info->strategy;
	vs.ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw vacuum", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(vs.ctx);
	memset(&hinfo, 0, sizeof(hinfo));
	hinfo.keysize = sizeof(ElemRef);
	hinfo.entrysize = sizeof(ElemRef);
	hinfo.hcxt = vs.ctx;
	vs.deleted = hash_create("ruhnsw deleted", 1024, &hinfo, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	if (RelationGetNumberOfBlocks(vs.index) > RUHNSW_META_BLKNO) {
		RuhnswMeta meta;

		ruhnsw_read_meta(vs.index, &meta);
		vs.m = meta.m;
		vs.ef_construction = meta.ef_construction;
		mark_deleted(&vs, stats, callback, callback_state);
	}
	if (hash_get_num_entries(vs.deleted) > 0) {
		/* Step 2, then the entry point. */
		LockPage(vs.index, RUHNSW_META_BLKNO, ExclusiveLock);
		replace_entry(&vs);
		UnlockPage(vs.index, RUHNSW_META_BLKNO, ExclusiveLock);
		find_damaged(&vs);
		repair(&vs);
		connect_layer0(&vs, stats->num_index_tuples);
		LockPage(vs.index, RUHNSW_META_BLKNO, ExclusiveLock);
		free_deleted(&vs);
		UnlockPage(vs.index, RUHNSW_META_BLKNO, ExclusiveLock);
	}
	stats->num_pages = RelationGetNumberOfBlocks(vs.index);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(vs.ctx);
	return stats;
}

IndexBulkDeleteResult *ruhnsw_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
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

			if (et->type == RUHNSW_ELEMENT && et->deleted == RUHNSW_LIVE)
				stats->num_index_tuples++;
		}
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	return stats;
}
