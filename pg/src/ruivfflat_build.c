/*
 * ruivfflat_build.c - CREATE INDEX for ruivfflat.
 *
 * Three passes, as pgvector builds its ivfflat:
 *   1. sample: up to 50 rows per list (at least 10,000) by ANALYZE's
 *      method, a random subset of the table's blocks and a reservoir over
 *      their rows, so a large table is not read in full;
 *   2. k-means over the sample gives the centres (ruivfflat_kmeans.c);
 *   3. a full scan files every row under its nearest centre into a
 *      tuplesort keyed by (list, heap TID), which stays within
 *      maintenance_work_mem by spilling to disk.
 * The scan also counts the rows of each list, and every entry has the
 * same size, so where each list's chain of pages starts is known before
 * the first page is written: the meta page, the centre pages and then the
 * lists' pages, in order, each written once as a whole page image through
 * generic WAL.
 *
 * The random choices (blocks, reservoir, k-means) use fixed seeds, so one
 * table always gives the same index.
 *
 * The init fork of an unlogged index (what the index becomes after a
 * crash) holds the meta page and the centres of the main fork with every
 * list empty.
 */
#include "ruivfflat.h"

#include "access/generic_xlog.h"
#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/pg_operator_d.h"
#include "catalog/pg_type_d.h"
#include "commands/progress.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/backend_progress.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/sampling.h"
#include "utils/tuplesort.h"

#define SAMPLE_SEED 0x52495646

typedef struct BuildState {
	Relation heap;
	Relation index;
	IndexInfo *info;
	RuivfflatDist dist;
	FmgrInfo *kmeans_norm; /* support function 3 or NULL */
	int dim;               /* 0 until the first row tells */
	int lists;
	MemoryContext tmp_ctx; /* one row's work */

	/* pass 1 */
	float *samples;
	int nsamples, cap, target;
	double seen;           /* rows offered to the reservoir */
	double skip;           /* rows the reservoir passes over before the next */
	ReservoirStateData rs;

	/* pass 2 */
	char *centers;         /* lists Ruvectors of RUVECTOR_SIZE(dim) */

	/* pass 3 */
	Tuplesortstate *sort;
	TupleDesc sort_desc;
	TupleTableSlot *slot;
	int64 *counts;
	double indexed;
} BuildState;

static inline Ruvector *center_at(BuildState *bs, int i)
{
	return (Ruvector *)(bs->centers + (Size)i * RUVECTOR_SIZE(bs->dim));
}

static void check_max_dim(int dim)
{
	if (dim > ruivfflat_max_dim())
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("ruvector with %d dimensions is too large for a ruivfflat index", dim),
				errdetail("An indexed ruvector must fit on a page by itself: at most %d dimensions.",
						ruivfflat_max_dim())));
}

/* The memory the sample and k-means need for n samples, which like
 * pgvector's must stay within maintenance_work_mem. With no more samples
 * than lists the samples are the centres and Lloyd's iterations (their
 * bounds and sums) do not run. */
static void check_memory(BuildState *bs, Size n)
{
	Size k = (Size)bs->lists, dim = (Size)bs->dim;
	Size total = (n + k) * sizeof(float) * dim;

	if (n > k)
		total += n * (sizeof(int) + 3 * sizeof(double) + sizeof(bool)) +
				k * ((sizeof(double) + sizeof(float)) * dim + 2 * sizeof(double) + sizeof(int));
	if (total > (Size)maintenance_work_mem * 1024)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("memory required is %zu MB, maintenance_work_mem is %d MB",
						total / (1024 * 1024) + 1, maintenance_work_mem / 1024)));
}

/* The first row fixes the dimension count of a column without one. */
static void learn_dim(BuildState *bs, int dim)
{
	if (bs->dim == 0) {
		check_max_dim(dim);
		bs->dim = dim;
	}
	ruivfflat_check_dim(bs->index, bs->dim, dim);
}

/*
 * The row as the index keeps it: a copy, normalised when the operator
 * class normalises; NULL when it is left out (no direction to normalise).
 */
static Ruvector *row_vector(BuildState *bs, Datum value)
{
	Ruvector *v = (Ruvector *)PG_DETOAST_DATUM_COPY(value);

	learn_dim(bs, v->dim);
	if (bs->dist.norm_proc && !ruivfflat_normalize(&bs->dist, v))
		return NULL;
	return v;
}

/* ---- pass 1: the sample ---- */

static void sample_add(BuildState *bs, const Ruvector *v)
{
	int slot;

	if (bs->nsamples < bs->target) {
		if (bs->nsamples == bs->cap) {
			bs->cap = Min(bs->target, bs->cap ? bs->cap * 2 : 1024);
			check_memory(bs, bs->cap);
			bs->samples = bs->samples
					? repalloc_huge(bs->samples, sizeof(float) * bs->dim * bs->cap)
					: MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * bs->dim * bs->cap);
		}
		slot = bs->nsamples++;
	} else {
		/* Vitter's algorithm Z, as ANALYZE samples: skip ahead by a random
		 * count, then replace a random member of the reservoir. */
		if (bs->skip < 0)
			bs->skip = reservoir_get_next_S(&bs->rs, bs->seen, bs->target);
		if (bs->skip > 0) {
			bs->skip -= 1;
			bs->seen += 1;
			return;
		}
		bs->skip = -1;
		slot = (int)(bs->target * sampler_random_fract(&bs->rs.randstate));
		slot = Min(slot, bs->target - 1);
	}
	memcpy(bs->samples + (Size)slot * bs->dim, v->x, sizeof(float) * bs->dim);
	bs->seen += 1;
}

static void sample_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		bool alive, void *state)
{
	BuildState *bs = state;
	MemoryContext old;
	Ruvector *v;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_ctx);
	v = row_vector(bs, values[0]);
	/* Spherical k-means clusters directions: unit samples, and a zero
	 * vector has none. */
	if (v && bs->kmeans_norm) {
		RuivfflatDist kd = bs->dist;

		kd.norm_proc = bs->kmeans_norm;
		if (!ruivfflat_normalize(&kd, v))
			v = NULL;
	}
	MemoryContextSwitchTo(old);
	if (v)
		sample_add(bs, v);
	MemoryContextReset(bs->tmp_ctx);
}

static void sample_rows(BuildState *bs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(bs->heap);
	BlockSamplerData sampler;

	bs->skip = -1;
	reservoir_init_selection_state(&bs->rs, bs->target);
	sampler_random_init_state(SAMPLE_SEED, &bs->rs.randstate);
	BlockSampler_Init(&sampler, nblocks, bs->target, SAMPLE_SEED);
	while (BlockSampler_HasMore(&sampler)) {
		BlockNumber blk = BlockSampler_Next(&sampler);

		table_index_build_range_scan(bs->heap, bs->index, bs->info, false, true, false, blk, 1,
				sample_callback, bs, NULL);
		CHECK_FOR_INTERRUPTS();
	}
}

/* ---- pass 2: the centres ---- */

static void compute_centers(BuildState *bs)
{
	float *centers;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, RUIVFFLAT_PHASE_KMEANS);
	if (bs->dim == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("column does not have dimensions"),
				errhint("Give the column a dimension count, as in ruvector(3), or create the index "
						"when the table has rows.")));
	if (bs->nsamples < bs->lists)
		ereport(NOTICE, (errmsg("ruivfflat index created with little data"),
				errdetail("This will cause low recall."),
				errhint("Drop the index until the table has more data.")));
	check_memory(bs, bs->nsamples);
	centers = palloc_extended(sizeof(float) * bs->dim * bs->lists, MCXT_ALLOC_HUGE);
	ruivfflat_kmeans(centers, bs->samples, bs->nsamples, bs->dim, bs->lists,
			bs->kmeans_norm != NULL);
	if (bs->samples)
		pfree(bs->samples);
	bs->samples = NULL;

	bs->centers = palloc_extended(RUVECTOR_SIZE(bs->dim) * bs->lists, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int i = 0; i < bs->lists; i++) {
		Ruvector *c = center_at(bs, i);

		SET_VARSIZE(c, RUVECTOR_SIZE(bs->dim));
		c->dim = bs->dim;
		memcpy(c->x, centers + (Size)i * bs->dim, sizeof(float) * bs->dim);
	}
	pfree(centers);
}

/* ---- pass 3: every row to its list ---- */

static int nearest_center(BuildState *bs, const Ruvector *v)
{
	double best = 0;
	int at = 0;

	for (int i = 0; i < bs->lists; i++) {
		double d = ruivfflat_distance(&bs->dist, v, center_at(bs, i));

		if (i == 0 || d < best) {
			best = d;
			at = i;
		}
	}
	return at;
}

static void assign_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
		bool alive, void *state)
{
	BuildState *bs = state;
	MemoryContext old;
	Ruvector *v;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmp_ctx);
	v = row_vector(bs, values[0]);
	if (v) {
		int list = nearest_center(bs, v);

		ExecClearTuple(bs->slot);
		bs->slot->tts_values[0] = Int32GetDatum(list);
		bs->slot->tts_isnull[0] = false;
		bs->slot->tts_values[1] = PointerGetDatum(tid);
		bs->slot->tts_isnull[1] = false;
		bs->slot->tts_values[2] = PointerGetDatum(v);
		bs->slot->tts_isnull[2] = false;
		ExecStoreVirtualTuple(bs->slot);
		/* The sort copies the tuple. */
		tuplesort_puttupleslot(bs->sort, bs->slot);
		bs->counts[list]++;
		bs->indexed += 1;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmp_ctx);
}

static void sort_begin(BuildState *bs)
{
	AttrNumber keys[] = {1, 2};
	Oid ops[] = {Int4LessOperator, TIDLessOperator};
	Oid collations[] = {InvalidOid, InvalidOid};
	bool nulls_first[] = {false, false};

	bs->sort_desc = CreateTemplateTupleDesc(3);
	TupleDescInitEntry(bs->sort_desc, 1, "list", INT4OID, -1, 0);
	TupleDescInitEntry(bs->sort_desc, 2, "tid", TIDOID, -1, 0);
	TupleDescInitEntry(bs->sort_desc, 3, "vector", TupleDescAttr(RelationGetDescr(bs->index), 0)->atttypid,
			-1, 0);
	bs->slot = MakeSingleTupleTableSlot(bs->sort_desc, &TTSOpsVirtual);
	bs->sort = tuplesort_begin_heap(bs->sort_desc, 2, keys, ops, collations, nulls_first,
			maintenance_work_mem, NULL, TUPLESORT_NONE);
	bs->counts = palloc0(sizeof(int64) * bs->lists);
}

/* ---- writing the pages ---- */

/* Appends a page image built in memory as the next block of a fork. */
static void write_page(Relation index, ForkNumber fork, BlockNumber expected, Page image)
{
	Buffer buf = ruivfflat_new_buffer(index, fork);
	GenericXLogState *state;
	Page page;

	if (BufferGetBlockNumber(buf) != expected)
		elog(ERROR, "ruivfflat index \"%s\" got block %u while writing block %u",
				RelationGetRelationName(index), BufferGetBlockNumber(buf), expected);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	memcpy(page, image, BLCKSZ);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

static void add_item(Relation index, Page page, BlockNumber blk, void *item, Size size)
{
	if (PageAddItem(page, (Item)item, size, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
		elog(ERROR, "ruivfflat index \"%s\": could not lay out block %u",
				RelationGetRelationName(index), blk);
}

/*
 * The meta page and the centre pages, blocks 0..C; starts[i] and ends[i]
 * are list i's first and last posting page (invalid when it has none).
 * Returns the next block number.
 */
static BlockNumber write_head(Relation index, ForkNumber fork, int dim, int lists,
		const char *centers, const BlockNumber *starts, const BlockNumber *ends)
{
	Page image = palloc(BLCKSZ);
	RuivfflatMeta *meta;
	Size lsz = RUIVFFLAT_LIST_SIZE(dim);
	int per_page = RUIVFFLAT_ITEMS_PER_PAGE(lsz);
	int npages = (lists + per_page - 1) / per_page;
	RuivfflatList *item = palloc0(lsz);
	BlockNumber blk = RUIVFFLAT_FIRST_LIST_BLKNO;

	PageInit(image, BLCKSZ, 0);
	meta = (RuivfflatMeta *)PageGetContents(image);
	meta->magic = RUIVFFLAT_MAGIC;
	meta->version = RUIVFFLAT_VERSION;
	meta->dim = dim;
	meta->lists = lists;
	meta->list_pages = npages;
	/* Generic WAL leaves out the hole between pd_lower and pd_upper. */
	((PageHeader)image)->pd_lower = ((char *)meta + sizeof(RuivfflatMeta)) - (char *)image;
	write_page(index, fork, RUIVFFLAT_META_BLKNO, image);

	for (int i = 0; i < lists; i++) {
		if (i % per_page == 0)
			ruivfflat_page_init(image, RUIVFFLAT_LIST_PAGE);
		item->start_page = starts[i];
		item->insert_page = ends[i];
		memcpy(&item->center, centers + (Size)i * RUVECTOR_SIZE(dim), RUVECTOR_SIZE(dim));
		add_item(index, image, blk, item, lsz);
		if (i % per_page == per_page - 1 || i == lists - 1)
			write_page(index, fork, blk++, image);
	}
	pfree(item);
	pfree(image);
	return blk;
}

/* The lists' pages, list after list, in the order write_head promised. */
static void write_lists(BuildState *bs, BlockNumber blk)
{
	Size esz = RUIVFFLAT_ENTRY_SIZE(bs->dim);
	RuivfflatEntry *entry = palloc0(esz);
	Page image = palloc(BLCKSZ);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(bs->sort_desc, &TTSOpsMinimalTuple);
	int per_page = RUIVFFLAT_ITEMS_PER_PAGE(esz);
	int64 done = 0;

	for (int list = 0; list < bs->lists; list++) {
		for (int64 i = 0; i < bs->counts[list]; i++) {
			bool isnull;
			Ruvector *v;
			MemoryContext old;

			if (!tuplesort_gettupleslot(bs->sort, true, false, slot, NULL) ||
					DatumGetInt32(slot_getattr(slot, 1, &isnull)) != list)
				elog(ERROR, "ruivfflat index \"%s\": list %d lost rows while sorting",
						RelationGetRelationName(bs->index), list);
			if (i % per_page == 0)
				ruivfflat_page_init(image, RUIVFFLAT_ENTRY_PAGE);
			entry->heaptid = *(ItemPointer)DatumGetPointer(slot_getattr(slot, 2, &isnull));
			/* The sort's tuples give short varlena headers to small vectors:
			 * back to the 4-byte header the entry keeps. */
			old = MemoryContextSwitchTo(bs->tmp_ctx);
			v = (Ruvector *)PG_DETOAST_DATUM(slot_getattr(slot, 3, &isnull));
			memcpy(&entry->vec, v, RUVECTOR_SIZE(bs->dim));
			MemoryContextSwitchTo(old);
			MemoryContextReset(bs->tmp_ctx);
			add_item(bs->index, image, blk, entry, esz);
			if (i % per_page == per_page - 1 || i == bs->counts[list] - 1) {
				/* The chain goes on to the next block unless the list ends. */
				if (i < bs->counts[list] - 1)
					RuivfflatPageGetOpaque(image)->next = blk + 1;
				write_page(bs->index, MAIN_FORKNUM, blk++, image);
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, done + i + 1);
				CHECK_FOR_INTERRUPTS();
			}
		}
		done += bs->counts[list];
	}
	ExecDropSingleTupleTableSlot(slot);
	pfree(image);
	pfree(entry);
}

static void layout(BuildState *bs, BlockNumber *starts, BlockNumber *ends)
{
	int per_page = RUIVFFLAT_ITEMS_PER_PAGE(RUIVFFLAT_ENTRY_SIZE(bs->dim));
	int list_pages = (bs->lists + RUIVFFLAT_ITEMS_PER_PAGE(RUIVFFLAT_LIST_SIZE(bs->dim)) - 1) /
			RUIVFFLAT_ITEMS_PER_PAGE(RUIVFFLAT_LIST_SIZE(bs->dim));
	uint64 blk = RUIVFFLAT_FIRST_LIST_BLKNO + list_pages;

	for (int i = 0; i < bs->lists; i++) {
		uint64 pages = (bs->counts[i] + per_page - 1) / per_page;

		if (pages == 0) {
			starts[i] = ends[i] = InvalidBlockNumber;
			continue;
		}
		if (blk + pages >= MaxBlockNumber)
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					errmsg("ruivfflat index \"%s\" would need more than %u blocks",
							RelationGetRelationName(bs->index), MaxBlockNumber)));
		starts[i] = (BlockNumber)blk;
		ends[i] = (BlockNumber)(blk + pages - 1);
		blk += pages;
	}
}

/* ---- the callbacks ---- */

static void build_init(BuildState *bs, Relation heap, Relation index, IndexInfo *info)
{
	RuivfflatOptions *opts = (RuivfflatOptions *)index->rd_options;
	int typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	memset(bs, 0, sizeof(*bs));
	bs->heap = heap;
	bs->index = index;
	bs->info = info;
	bs->lists = opts ? opts->lists : RUIVFFLAT_DEFAULT_LISTS;
	ruivfflat_dist_init(&bs->dist, index);
	bs->kmeans_norm = OidIsValid(index_getprocid(index, 1, RUIVFFLAT_KMEANS_NORM_PROC))
			? index_getprocinfo(index, 1, RUIVFFLAT_KMEANS_NORM_PROC)
			: NULL;
	if (typmod > 0) {
		check_max_dim(typmod);
		bs->dim = typmod;
	}
	bs->target = Max(bs->lists * RUIVFFLAT_SAMPLES_PER_LIST, RUIVFFLAT_MIN_SAMPLES);
	bs->tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "ruivfflat build row",
			ALLOCSET_DEFAULT_SIZES);
}

IndexBuildResult *ruivfflat_build(Relation heap, Relation index, IndexInfo *info)
{
	BuildState bs;
	IndexBuildResult *result;
	double reltuples;
	BlockNumber *starts, *ends, blk;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	build_init(&bs, heap, index, info);
	sample_rows(&bs);
	compute_centers(&bs);

	sort_begin(&bs);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, RUIVFFLAT_PHASE_ASSIGN);
	reltuples = table_index_build_scan(heap, index, info, true, true, assign_callback, &bs, NULL);
	tuplesort_performsort(bs.sort);

	starts = palloc(sizeof(BlockNumber) * bs.lists);
	ends = palloc(sizeof(BlockNumber) * bs.lists);
	layout(&bs, starts, ends);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, RUIVFFLAT_PHASE_LOAD);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, (int64)bs.indexed);
	blk = write_head(index, MAIN_FORKNUM, bs.dim, bs.lists, bs.centers, starts, ends);
	write_lists(&bs, blk);
	tuplesort_end(bs.sort);
	ExecDropSingleTupleTableSlot(bs.slot);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = reltuples;
	result->index_tuples = bs.indexed;
	MemoryContextDelete(bs.tmp_ctx);
	return result;
}

/*
 * The init fork: the main fork's meta page and centres (ambuild has just
 * written them) with every list empty, so the index after a crash files
 * new rows under the same centres.
 */
void ruivfflat_buildempty(Relation index)
{
	RuivfflatMeta meta;
	char *centers;
	BlockNumber *none;
	Size csz;
	int at = 0;

	ruivfflat_read_meta(index, &meta);
	csz = RUVECTOR_SIZE(meta.dim);
	centers = palloc_extended(csz * meta.lists, MCXT_ALLOC_HUGE);
	none = palloc(sizeof(BlockNumber) * meta.lists);
	for (int i = 0; i < meta.lists; i++)
		none[i] = InvalidBlockNumber;
	for (int p = 0; p < meta.list_pages; p++) {
		Buffer buf = ReadBuffer(index, RUIVFFLAT_FIRST_LIST_BLKNO + p);
		Page page;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		for (OffsetNumber off = FirstOffsetNumber; off <= PageGetMaxOffsetNumber(page) && at < meta.lists;
				off++) {
			RuivfflatList *item = ruivfflat_list_at(index, page, off);

			ruivfflat_check_dim(index, meta.dim, item->center.dim);
			memcpy(centers + (Size)at++ * csz, &item->center, csz);
		}
		UnlockReleaseBuffer(buf);
	}
	if (at != meta.lists)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has %d centres, its meta page says %d",
						RelationGetRelationName(index), at, meta.lists)));
	write_head(index, INIT_FORKNUM, meta.dim, meta.lists, centers, none, none);
	/* Generic WAL skips an unlogged index; its init fork must be logged. */
	log_newpage_range(index, INIT_FORKNUM, 0, RUIVFFLAT_FIRST_LIST_BLKNO + meta.list_pages, true);
	pfree(none);
	pfree(centers);
}
