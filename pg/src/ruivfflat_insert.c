/*
 * ruivfflat_insert.c - rows inserted after CREATE INDEX: each goes to the
 * list of its nearest centre (the centres never move after the build).
 *
 * The entry goes on the first page with room from the list's insert page
 * onwards along the chain; when none has room a new page is linked after
 * the last one, in the same WAL record, and the insert page hint moves to
 * it afterwards (a stale hint only costs a walk along the chain). A list
 * without pages gets its first one under the exclusive lock of its centre
 * page, which is then re-read, so two inserts never both create it.
 *
 * Lock order: a centre page before a page this backend has just added
 * (which nobody else can have locked yet); a posting page before the
 * relation extension lock. Nobody waits for a posting page while holding
 * a centre page, so no cycle.
 */
#include "ruivfflat.h"

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Where list i's item is, and what it said. */
typedef struct ListRef {
	BlockNumber blk;
	OffsetNumber off;
	BlockNumber start_page;
	BlockNumber insert_page;
} ListRef;

static ListRef nearest_list(Relation index, const RuivfflatMeta *meta, const RuivfflatDist *dist,
		const Ruvector *v)
{
	ListRef best;
	double best_dist = 0;
	bool found = false;

	memset(&best, 0, sizeof(best));
	for (int p = 0; p < meta->list_pages; p++) {
		BlockNumber blk = RUIVFFLAT_FIRST_LIST_BLKNO + p;
		Buffer buf = ReadBuffer(index, blk);
		Page page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
			RuivfflatList *item = ruivfflat_list_at(index, page, off);
			double d;

			ruivfflat_check_dim(index, meta->dim, item->center.dim);
			d = ruivfflat_distance(dist, v, &item->center);
			if (!found || d < best_dist) {
				found = true;
				best_dist = d;
				best.blk = blk;
				best.off = off;
				best.start_page = item->start_page;
				best.insert_page = item->insert_page;
			}
		}
		UnlockReleaseBuffer(buf);
	}
	if (!found)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has no lists", RelationGetRelationName(index))));
	return best;
}

static void add_entry(Relation index, Page page, RuivfflatEntry *entry, Size size)
{
	if (PageAddItem(page, (Item)entry, size, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
		elog(ERROR, "ruivfflat index \"%s\": could not add an entry to a page with room",
				RelationGetRelationName(index));
}

/*
 * An empty list's first page, holding the entry. False when another
 * insert created it meanwhile; ref then has the list's pages.
 */
static bool create_first_page(Relation index, ListRef *ref, RuivfflatEntry *entry, Size size)
{
	Buffer cbuf = ReadBuffer(index, ref->blk), buf;
	GenericXLogState *state;
	RuivfflatList *item;
	Page page;

	LockBuffer(cbuf, BUFFER_LOCK_EXCLUSIVE);
	item = ruivfflat_list_at(index, BufferGetPage(cbuf), ref->off);
	if (BlockNumberIsValid(item->start_page)) {
		ref->start_page = item->start_page;
		ref->insert_page = item->insert_page;
		UnlockReleaseBuffer(cbuf);
		return false;
	}
	buf = ruivfflat_new_buffer(index, MAIN_FORKNUM);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	ruivfflat_page_init(page, RUIVFFLAT_ENTRY_PAGE);
	add_entry(index, page, entry, size);
	item = ruivfflat_list_at(index, GenericXLogRegisterBuffer(state, cbuf, 0), ref->off);
	item->start_page = item->insert_page = BufferGetBlockNumber(buf);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
	UnlockReleaseBuffer(cbuf);
	return true;
}

/* Moves the list's insert page hint forward to blk, unless VACUUM or
 * another insert has set it elsewhere since it was read as from. */
static void move_hint(Relation index, const ListRef *ref, BlockNumber from, BlockNumber blk)
{
	Buffer cbuf = ReadBuffer(index, ref->blk);
	GenericXLogState *state;
	RuivfflatList *item;

	LockBuffer(cbuf, BUFFER_LOCK_EXCLUSIVE);
	item = ruivfflat_list_at(index, BufferGetPage(cbuf), ref->off);
	if (item->insert_page == from) {
		state = GenericXLogStart(index);
		item = ruivfflat_list_at(index, GenericXLogRegisterBuffer(state, cbuf, 0), ref->off);
		item->insert_page = blk;
		GenericXLogFinish(state);
	}
	UnlockReleaseBuffer(cbuf);
}

/* The entry onto the list's chain, from its insert page onwards. */
static void add_to_chain(Relation index, const ListRef *ref, RuivfflatEntry *entry, Size size)
{
	BlockNumber blk = BlockNumberIsValid(ref->insert_page) ? ref->insert_page : ref->start_page;
	Size need = MAXALIGN(size) + sizeof(ItemIdData);

	for (;;) {
		Buffer buf = ReadBuffer(index, blk), nbuf;
		GenericXLogState *state;
		Page page, npage;
		BlockNumber next;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		ruivfflat_check_page(index, page, RUIVFFLAT_ENTRY_PAGE);
		if (PageGetExactFreeSpace(page) >= need) {
			state = GenericXLogStart(index);
			add_entry(index, GenericXLogRegisterBuffer(state, buf, 0), entry, size);
			GenericXLogFinish(state);
			UnlockReleaseBuffer(buf);
			if (blk != ref->insert_page && BlockNumberIsValid(ref->insert_page))
				move_hint(index, ref, ref->insert_page, blk);
			return;
		}
		next = RuivfflatPageGetOpaque(page)->next;
		if (BlockNumberIsValid(next)) {
			UnlockReleaseBuffer(buf);
			blk = next;
			continue;
		}
		/* The last page is full: a new one after it, linked in the same
		 * record, so a crash never leaves a page outside the chain with
		 * rows on it. */
		nbuf = ruivfflat_new_buffer(index, MAIN_FORKNUM);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		npage = GenericXLogRegisterBuffer(state, nbuf, GENERIC_XLOG_FULL_IMAGE);
		ruivfflat_page_init(npage, RUIVFFLAT_ENTRY_PAGE);
		add_entry(index, npage, entry, size);
		RuivfflatPageGetOpaque(page)->next = BufferGetBlockNumber(nbuf);
		GenericXLogFinish(state);
		blk = BufferGetBlockNumber(nbuf);
		UnlockReleaseBuffer(nbuf);
		UnlockReleaseBuffer(buf);
		move_hint(index, ref, ref->insert_page, blk);
		return;
	}
}

bool ruivfflat_insert(Relation index, Datum *values, bool *isnull, ItemPointer heaptid,
		Relation heap, IndexUniqueCheck check, bool unchanged, IndexInfo *info)
{
	MemoryContext ctx, old;
	RuivfflatMeta meta;
	RuivfflatDist dist;
	RuivfflatEntry *entry;
	Ruvector *v;
	ListRef ref;
	Size size;

	if (isnull[0])
		return false;
	ctx = AllocSetContextCreate(CurrentMemoryContext, "ruivfflat insert", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(ctx);
	v = (Ruvector *)PG_DETOAST_DATUM(values[0]);
	ruivfflat_read_meta(index, &meta);
	ruivfflat_check_dim(index, meta.dim, v->dim);
	ruivfflat_dist_init(&dist, index);

	size = RUIVFFLAT_ENTRY_SIZE(meta.dim);
	entry = palloc0(size);
	entry->heaptid = *heaptid;
	memcpy(&entry->vec, v, RUVECTOR_SIZE(meta.dim));
	/* Normalised as the build keeps rows; no direction: not indexed. */
	if (dist.norm_proc && !ruivfflat_normalize(&dist, &entry->vec))
		goto done;

	ref = nearest_list(index, &meta, &dist, &entry->vec);
	if (!BlockNumberIsValid(ref.start_page) && create_first_page(index, &ref, entry, size))
		goto done;
	add_to_chain(index, &ref, entry, size);
done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	return false;
}
