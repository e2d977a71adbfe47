/*
 * ruivfflat_vacuum.c - VACUUM: the entries of dead heap rows leave their
 * pages.
 *
 * Each list's chain is walked page by page under an exclusive lock; the
 * dead entries go (PageIndexMultiDelete compacts the page) in one generic
 * WAL record per page. When room opened on a page before the list's
 * insert page, the hint moves back to the first such page, so inserts
 * fill it before the chain grows. Pages stay in their chains, empty or
 * not; REINDEX gives a compact index (and centres fitted to the rows the
 * table has now).
 */
#include "ruivfflat.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

typedef struct VacList {
	BlockNumber blk; /* the list's item */
	OffsetNumber off;
	BlockNumber start_page;
	BlockNumber insert_page;
} VacList;

static VacList *read_lists(Relation index, const RuivfflatMeta *meta,
		BufferAccessStrategy strategy, int *n)
{
	VacList *lists = palloc(sizeof(VacList) * meta->lists);

	*n = 0;
	for (int p = 0; p < meta->list_pages; p++) {
		BlockNumber blk = RUIVFFLAT_FIRST_LIST_BLKNO + p;
		Buffer buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, strategy);
		Page page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber;
				off <= PageGetMaxOffsetNumber(page) && *n < meta->lists; off++) {
			RuivfflatList *item = ruivfflat_list_at(index, page, off);

			lists[*n].blk = blk;
			lists[*n].off = off;
			lists[*n].start_page = item->start_page;
			lists[*n].insert_page = item->insert_page;
			(*n)++;
		}
		UnlockReleaseBuffer(buf);
	}
	return lists;
}

static void set_insert_page(Relation index, const VacList *list, BlockNumber blk)
{
	Buffer buf = ReadBuffer(index, list->blk);
	GenericXLogState *state;
	RuivfflatList *item;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	item = ruivfflat_list_at(index, GenericXLogRegisterBuffer(state, buf, 0), list->off);
	item->insert_page = blk;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

IndexBulkDeleteResult *ruivfflat_bulkdelete(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation index = info->index;
	RuivfflatMeta meta;
	VacList *lists;
	int nlists;
	OffsetNumber dead[MaxOffsetNumber];

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	ruivfflat_read_meta(index, &meta);
	lists = read_lists(index, &meta, info->strategy, &nlists);
	stats->num_index_tuples = 0;
	for (int i = 0; i < nlists; i++) {
		BlockNumber blk = lists[i].start_page, first_freed = InvalidBlockNumber;
		bool hint_passed = false; /* the walk has reached the insert page */

		while (BlockNumberIsValid(blk)) {
			Buffer buf;
			Page page;
			int ndead = 0;
			BlockNumber next;

			vacuum_delay_point();
			buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			page = BufferGetPage(buf);
			for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page); off++) {
				RuivfflatEntry *e = ruivfflat_entry_at(index, page, off);

				if (callback(&e->heaptid, callback_state))
					dead[ndead++] = off;
				else
					stats->num_index_tuples++;
			}
			if (ndead > 0) {
				GenericXLogState *state = GenericXLogStart(index);

				PageIndexMultiDelete(GenericXLogRegisterBuffer(state, buf, 0), dead, ndead);
				GenericXLogFinish(state);
				stats->tuples_removed += ndead;
				if (!hint_passed && !BlockNumberIsValid(first_freed))
					first_freed = blk;
			}
			if (blk == lists[i].insert_page)
				hint_passed = true;
			next = RuivfflatPageGetOpaque(page)->next;
			UnlockReleaseBuffer(buf);
			blk = next;
		}
		/* Room before the insert page: inserts start there from now on.
		 * (An insert that moved the hint meanwhile went past this page
		 * too, and the earlier page is still the better start.) */
		if (BlockNumberIsValid(first_freed) && first_freed != lists[i].insert_page)
			set_insert_page(index, &lists[i], first_freed);
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);
	return stats;
}

IndexBulkDeleteResult *ruivfflat_vacuumcleanup(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats)
{
	Relation index = info->index;
	RuivfflatMeta meta;
	BlockNumber nblocks;

	if (info->analyze_only)
		return stats;
	if (stats != NULL)
		return stats;
	/* No bulk delete ran: count the entries for the statistics. Every
	 * page after the centre pages is a posting page. */
	stats = palloc0(sizeof(IndexBulkDeleteResult));
	ruivfflat_read_meta(index, &meta);
	nblocks = RelationGetNumberOfBlocks(index);
	for (BlockNumber blk = RUIVFFLAT_FIRST_LIST_BLKNO + meta.list_pages; blk < nblocks; blk++) {
		Buffer buf;
		Page page;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		/* A page an insert added but had not yet written is all zeros. */
		if (!PageIsNew(page)) {
			ruivfflat_check_page(index, page, RUIVFFLAT_ENTRY_PAGE);
			stats->num_index_tuples += PageGetMaxOffsetNumber(page);
		}
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	return stats;
}
