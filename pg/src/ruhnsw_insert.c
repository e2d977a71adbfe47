/*
 * ruhnsw_insert.c - rows inserted after CREATE INDEX (and the rows of a
 * build that outgrew its memory): each is linked into the graph on pages
 * under the update lock (see ruhnsw.h).
 *
 * A new element takes the place of a free one (an element VACUUM unlinked
 * from the graph) when one of the same or a higher level is left: its
 * tuples are overwritten in place, the neighbour tuple keeping its size.
 * The meta page's free_page says where the search for one starts; pages
 * before it hold none. Else the element goes after the last one, with its
 * neighbour tuple beside it when the two fit on a page.
 *
 * The element is on its page, with its own lists, before anything links
 * to it, so a scan never follows a link to nowhere.
 *
 * In an sq8 index the element tuple holds the vector's code (clamped into
 * the range trained at the build), which has the same size for every
 * element, so free elements are reused just the same.
 */
#include "ruhnsw.h"

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

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
		if (ruhnsw_page_has_room(ip->pages[i], RUHNSW_TUPLE_SPACE(size)))
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

static void meta_update(RuhnswMeta *meta, const RuhnswElementTuple *et, ItemPointer tid,
		bool new_entry)
{
	if (meta->dim == 0)
		meta->dim = et->vec.dim;
	if (new_entry) {
		meta->entry = *tid;
		meta->entry_level = et->level;
	}
}

/*
 * Appends the element and its neighbour tuple: together on the last page
 * when they fit there, else together on a new page, else (a vector too
 * wide for that) each where it fits.
 */
static ItemPointerData append_element(Relation index, const RuhnswMeta *peek,
		RuhnswElementTuple *et, Size esz, RuhnswNeighborTuple *nt, Size nsz, bool new_entry,
		BlockNumber free_page)
{
	Size both = RUHNSW_TUPLE_SPACE(esz) + RUHNSW_TUPLE_SPACE(nsz);
	InsertPages ip;
	Buffer meta_buf, last = InvalidBuffer;
	RuhnswMeta *meta;
	ItemPointerData tid, ntid;
	BlockNumber highest = 0;

	if (BlockNumberIsValid(peek->insert_page)) {
		last = ReadBuffer(index, peek->insert_page);
		LockBuffer(last, BUFFER_LOCK_EXCLUSIVE);
		if (!ruhnsw_page_has_room(BufferGetPage(last), both) &&
				(both <= RUHNSW_EMPTY_PAGE_SPACE ||
						!ruhnsw_page_has_room(BufferGetPage(last), RUHNSW_TUPLE_SPACE(esz)))) {
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
	meta = ruhnsw_meta_of(index, GenericXLogRegisterBuffer(ip.state, meta_buf, 0));
	meta->insert_page = highest;
	meta->free_page = free_page;
	meta_update(meta, et, &tid, new_entry);
	GenericXLogFinish(ip.state);
	for (int i = 0; i < ip.n; i++)
		UnlockReleaseBuffer(ip.bufs[i]);
	UnlockReleaseBuffer(meta_buf);
	return tid;
}

/*
 * Looks for a free element of at least the new one's level, from the
 * meta page's free_page on. Found: overwrites it and its neighbour tuple
 * and returns true with its TID. Either way *free_page becomes where the
 * next search starts (InvalidBlockNumber: no free element is left).
 */
static bool reuse_free(Relation index, const RuhnswMeta *peek, RuhnswElementTuple *et,
		RuhnswNeighborTuple *nt, bool new_entry, ItemPointer tid, BlockNumber *free_page)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	BlockNumber first_other = InvalidBlockNumber; /* first page keeping a free one */
	BlockNumber blk;
	OffsetNumber hit = InvalidOffsetNumber;
	GenericXLogState *state;
	Buffer ebuf, nbuf = InvalidBuffer, meta_buf;
	Page epage, npage;
	RuhnswElementTuple *old;
	RuhnswNeighborTuple *ntup;
	RuhnswMeta *meta;
	int nslots = RUHNSW_NSLOTS(peek->m, et->level);

	/* No other process changes free elements while we hold the update
	 * lock: what a share lock shows here still holds when we write. */
	for (blk = peek->free_page; blk < nblocks; blk++) {
		Buffer buf = ReadBuffer(index, blk);
		Page page;
		int others = 0;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuhnswElementTuple *e = (RuhnswElementTuple *)PageGetItem(page, PageGetItemId(page, off));

			if (e->type != RUHNSW_ELEMENT || e->deleted != RUHNSW_FREE)
				continue;
			if (hit == InvalidOffsetNumber && e->level >= et->level)
				hit = off;
			else
				others++;
		}
		UnlockReleaseBuffer(buf);
		if (others > 0 && !BlockNumberIsValid(first_other))
			first_other = blk;
		if (hit != InvalidOffsetNumber)
			break;
	}
	if (hit == InvalidOffsetNumber) {
		*free_page = first_other;
		return false;
	}
	if (BlockNumberIsValid(first_other))
		*free_page = first_other;
	else
		*free_page = blk + 1 < nblocks ? blk + 1 : InvalidBlockNumber;

	state = GenericXLogStart(index);
	ebuf = ReadBuffer(index, blk);
	LockBuffer(ebuf, BUFFER_LOCK_EXCLUSIVE);
	epage = GenericXLogRegisterBuffer(state, ebuf, 0);
	old = ruhnsw_element_at(index, epage, hit);
	if (VARSIZE(&old->vec) != VARSIZE(&et->vec))
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a free element of another size in block %u",
						RelationGetRelationName(index), blk)));
	npage = epage;
	if (ItemPointerGetBlockNumber(&old->neighbortid) != blk) {
		nbuf = ReadBuffer(index, ItemPointerGetBlockNumber(&old->neighbortid));
		LockBuffer(nbuf, BUFFER_LOCK_EXCLUSIVE);
		npage = GenericXLogRegisterBuffer(state, nbuf, 0);
	}
	ntup = ruhnsw_neighbors_at(index, npage, ItemPointerGetOffsetNumber(&old->neighbortid));
	if (ntup->nslots < nslots)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a neighbour tuple of %d slots for level %d",
						RelationGetRelationName(index), ntup->nslots, old->level)));
	old->level = et->level;
	old->heaptid = et->heaptid;
	memcpy(&old->vec, &et->vec, VARSIZE(&et->vec));
	old->deleted = RUHNSW_LIVE;
	memcpy(ntup->slots, nt->slots, sizeof(ItemPointerData) * nslots);
	for (int i = nslots; i < ntup->nslots; i++)
		ItemPointerSetInvalid(&ntup->slots[i]);
	ItemPointerSet(tid, blk, hit);

	meta_buf = ReadBuffer(index, RUHNSW_META_BLKNO);
	LockBuffer(meta_buf, BUFFER_LOCK_EXCLUSIVE);
	meta = ruhnsw_meta_of(index, GenericXLogRegisterBuffer(state, meta_buf, 0));
	meta->free_page = *free_page;
	meta_update(meta, et, tid, new_entry);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(ebuf);
	if (BufferIsValid(nbuf))
		UnlockReleaseBuffer(nbuf);
	UnlockReleaseBuffer(meta_buf);
	return true;
}

void ruhnsw_insert_on_disk(Relation index, Ruvector *v, ItemPointer heaptid)
{
	MemoryContext ctx, old;
	RuhnswMeta meta;
	DiskGraph *dg;
	RuhnswElementTuple *et;
	RuhnswNeighborTuple *nt;
	Size esz, nsz;
	int level, dim;
	Cand *lists[RUHNSW_MAX_LEVEL + 1];
	int counts[RUHNSW_MAX_LEVEL + 1];
	ItemPointerData tid;
	BlockNumber free_page = InvalidBlockNumber;
	bool new_entry;

	ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw insert", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);

	/* One insert changes the graph at a time (see ruhnsw.h). */
	LockPage(index, RUHNSW_META_BLKNO, ExclusiveLock);
	ruhnsw_read_meta(index, &meta);
	dim = meta.dim > 0 ? meta.dim : v->dim;
	ruhnsw_check_dim(index, dim, v->dim);
	level = ruhnsw_random_level(heaptid, meta.m, ruhnsw_max_level_for(dim, meta.m));
	dg = ruhnsw_disk_graph(index, meta.m, true);

	memset(counts, 0, sizeof(counts));
	if (meta.entry_level >= 0)
		ruhnsw_find_neighbors(&dg->g, v, level, ruhnsw_tid_ref(&meta.entry), meta.entry_level,
				meta.ef_construction, lists, counts);
	/* A top level over the entry's makes a new entry point; so does a
	 * graph whose every element is deleted (VACUUM has yet to unlink
	 * them): nothing live would lead to the new one. */
	new_entry = level > meta.entry_level || counts[0] == 0;

	esz = ruhnsw_element_size(dg->quant, dim);
	nsz = RUHNSW_NEIGHBOR_SIZE(meta.m, level);
	et = palloc0(esz);
	et->type = RUHNSW_ELEMENT;
	et->level = level;
	et->deleted = RUHNSW_LIVE;
	et->heaptid = *heaptid;
	if (dg->quant != NULL)
		ruhnsw_quant_encode(dg->quant, v, (RuhnswCode *)&et->vec);
	else
		memcpy(&et->vec, v, VARSIZE(v));
	nt = palloc0(nsz);
	nt->type = RUHNSW_NEIGHBORS;
	nt->nslots = RUHNSW_NSLOTS(meta.m, level);
	for (int l = 0; l <= level; l++)
		for (int i = 0; i < ruhnsw_max_links(meta.m, l); i++) {
			ItemPointer slot = &nt->slots[ruhnsw_layer_start(meta.m, l) + i];

			if (i < counts[l])
				ruhnsw_ref_tid(lists[l][i].ref, slot);
			else
				ItemPointerSetInvalid(slot);
		}
	if (!ruhnsw_has_free_page(&meta) ||
			!reuse_free(index, &meta, et, nt, new_entry, &tid, &free_page))
		tid = append_element(index, &meta, et, esz, nt, nsz, new_entry, free_page);

	for (int l = Min(level, meta.entry_level); l >= 0; l--)
		for (int i = 0; i < counts[l]; i++) {
			Cand added = {ruhnsw_tid_ref(&tid), lists[l][i].dist};

			ruhnsw_add_backlink(&dg->g, lists[l][i].ref, l, added, true);
		}
	UnlockPage(index, RUHNSW_META_BLKNO, ExclusiveLock);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
}

bool ruhnsw_insert(Relation index, Datum *values, bool *isnull, ItemPointer heaptid,
		Relation heap, IndexUniqueCheck check, bool unchanged, IndexInfo *info)
{
	MemoryContext ctx, old;
	Ruvector *v;

	if (isnull[0])
		return false;
	ctx = AllocSetContextCreate(CurrentMemoryContext, "ruhnsw insert row", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(ctx);
	v = (Ruvector *)PG_DETOAST_DATUM(values[0]);
	if (!ruhnsw_skip_vector(ruhnsw_norm_proc(index), index->rd_indcollation[0], v))
		ruhnsw_insert_on_disk(index, v, heaptid);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}
