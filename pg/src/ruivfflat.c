/*
 * ruivfflat.c - the ruivfflat index access method: its handler, options
 * and settings, the planner's cost estimate, and the pieces every phase
 * shares (distances, normalisation, the meta page, page checks).
 *
 * The phases live beside it: ruivfflat_build.c (sampling, k-means, the
 * pages of CREATE INDEX), ruivfflat_kmeans.c, ruivfflat_insert.c,
 * ruivfflat_scan.c and ruivfflat_vacuum.c; ruivfflat.h has the page
 * layout and the locking rules.
 *
 * Distances: the operator class's support function 1 orders the rows.
 * When it is one of the library's own distance functions (recognised by
 * the address the function manager resolved), the index calls the SIMD
 * kernel itself instead of going through the function manager for every
 * one of the many distances a build or scan computes.
 */
#include "ruivfflat.h"

#include <math.h>

#include "access/reloptions.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "simd/simd.h"

int ruivfflat_probes = RUIVFFLAT_DEFAULT_PROBES;
int ruivfflat_iterative_scan = RUIVFFLAT_ITERATIVE_OFF;
int ruivfflat_max_probes = RUIVFFLAT_MAX_LISTS;
static relopt_kind ruivfflat_relopt_kind;

/* ---- distances ---- */

void ruivfflat_dist_init(RuivfflatDist *d, Relation index)
{
	PGFunction fn;

	d->proc = index_getprocinfo(index, 1, RUIVFFLAT_DISTANCE_PROC);
	d->norm_proc = OidIsValid(index_getprocid(index, 1, RUIVFFLAT_NORM_PROC))
			? index_getprocinfo(index, 1, RUIVFFLAT_NORM_PROC)
			: NULL;
	d->collation = index->rd_indcollation[0];
	fn = d->proc->fn_addr;
	if (fn == ruvector_l2_squared_distance || fn == ruvector_l2_distance)
		d->metric = RUIVFFLAT_METRIC_L2SQ;
	else if (fn == ruvector_negative_inner_product)
		d->metric = RUIVFFLAT_METRIC_NEG_DOT;
	else if (fn == ruvector_l1_distance)
		d->metric = RUIVFFLAT_METRIC_L1;
	else
		d->metric = RUIVFFLAT_METRIC_FMGR;
}

/* The two vectors have the same dimension count (the callers check rows
 * and queries against the index's). */
double ruivfflat_distance(const RuivfflatDist *d, const Ruvector *a, const Ruvector *b)
{
	switch (d->metric) {
	case RUIVFFLAT_METRIC_L2SQ:
		return rv_simd()->l2sq(a->x, b->x, (size_t)a->dim);
	case RUIVFFLAT_METRIC_NEG_DOT:
		return -(double)rv_simd()->dot(a->x, b->x, (size_t)a->dim);
	case RUIVFFLAT_METRIC_L1: {
		float sum = 0;

		/* Summed in float32 as l1_distance() does, so the order is its. */
		for (int i = 0; i < a->dim; i++)
			sum += fabsf(a->x[i] - b->x[i]);
		return sum;
	}
	case RUIVFFLAT_METRIC_FMGR:
		break;
	}
	return DatumGetFloat8(FunctionCall2Coll(d->proc, d->collation, PointerGetDatum(a),
			PointerGetDatum(b)));
}

/*
 * Divides v by the operator class's norm in place; false (v unchanged)
 * when there is no norm function or the norm is 0, which for cosine means
 * the vector has no direction.
 */
bool ruivfflat_normalize(const RuivfflatDist *d, Ruvector *v)
{
	double norm;

	if (d->norm_proc == NULL)
		return false;
	norm = DatumGetFloat8(FunctionCall1Coll(d->norm_proc, d->collation, PointerGetDatum(v)));
	if (!(norm > 0) || isinf(norm))
		return false;
	for (int i = 0; i < v->dim; i++)
		v->x[i] = (float)(v->x[i] / norm);
	return true;
}

/* ---- pages ---- */

void ruivfflat_read_meta(Relation index, RuivfflatMeta *out)
{
	Buffer buf = ReadBuffer(index, RUIVFFLAT_META_BLKNO);
	RuivfflatMeta *meta;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	meta = (RuivfflatMeta *)PageGetContents(BufferGetPage(buf));
	*out = *meta;
	UnlockReleaseBuffer(buf);
	if (out->magic != RUIVFFLAT_MAGIC || out->version != RUIVFFLAT_VERSION)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" is not a ruivfflat index of version %d",
						RelationGetRelationName(index), RUIVFFLAT_VERSION)));
	if (out->dim < 1 || out->dim > ruivfflat_max_dim() || out->lists < RUIVFFLAT_MIN_LISTS ||
			out->lists > RUIVFFLAT_MAX_LISTS || out->list_pages < 1)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
				errmsg("index \"%s\" has a meta page with %d dimensions, %d lists and %d list pages",
						RelationGetRelationName(index), out->dim, out->lists, out->list_pages)));
}

void ruivfflat_check_dim(Relation index, int expected, int dim)
{
	if (expected != dim)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
				errmsg("expected %d dimensions, not %d", expected, dim),
				errdetail("Index \"%s\" holds ruvectors of %d dimensions.",
						RelationGetRelationName(index), expected)));
}

/* The widest vector whose entry (and centre) fits on a page by itself;
 * entries and centres are the same size. */
int ruivfflat_max_dim(void)
{
	Size room = ((RUIVFFLAT_PAGE_SPACE - sizeof(ItemIdData)) & ~(Size)(MAXIMUM_ALIGNOF - 1));

	StaticAssertStmt(RUIVFFLAT_ENTRY_SIZE(0) == RUIVFFLAT_LIST_SIZE(0),
			"entries and centres take the same room");
	return (int)((room - RUIVFFLAT_ENTRY_SIZE(0)) / sizeof(float));
}

void ruivfflat_page_init(Page page, uint16 flags)
{
	RuivfflatPageOpaque *opaque;

	PageInit(page, BLCKSZ, sizeof(RuivfflatPageOpaque));
	opaque = RuivfflatPageGetOpaque(page);
	opaque->next = InvalidBlockNumber;
	opaque->flags = flags;
	opaque->page_id = RUIVFFLAT_PAGE_ID;
}

void ruivfflat_check_page(Relation index, Page page, uint16 flags)
{
	RuivfflatPageOpaque *opaque;

	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(RuivfflatPageOpaque)))
		goto corrupt;
	opaque = RuivfflatPageGetOpaque(page);
	if (opaque->page_id != RUIVFFLAT_PAGE_ID || opaque->flags != flags)
		goto corrupt;
	return;
corrupt:
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
			errmsg("index \"%s\" has a page that is not a ruivfflat %s page",
					RelationGetRelationName(index),
					flags == RUIVFFLAT_LIST_PAGE ? "centre" : "posting")));
}

static void *item_at(Relation index, Page page, OffsetNumber off, uint16 flags)
{
	ItemId id;

	ruivfflat_check_page(index, page, flags);
	if (off < FirstOffsetNumber || off > PageGetMaxOffsetNumber(page))
		goto corrupt;
	id = PageGetItemId(page, off);
	if (!ItemIdIsNormal(id))
		goto corrupt;
	return PageGetItem(page, id);
corrupt:
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
			errmsg("index \"%s\" has no %s at offset %u", RelationGetRelationName(index),
					flags == RUIVFFLAT_LIST_PAGE ? "list" : "entry", off)));
	return NULL;
}

RuivfflatList *ruivfflat_list_at(Relation index, Page page, OffsetNumber off)
{
	return item_at(index, page, off, RUIVFFLAT_LIST_PAGE);
}

RuivfflatEntry *ruivfflat_entry_at(Relation index, Page page, OffsetNumber off)
{
	return item_at(index, page, off, RUIVFFLAT_ENTRY_PAGE);
}

/* A new page at the end of a fork, exclusively locked. */
Buffer ruivfflat_new_buffer(Relation index, ForkNumber fork)
{
	Buffer buf;

	LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

/* ---- planner, options, handler ---- */

/*
 * pgvector's estimate: the generic cost of reading the whole index, with
 * part of the page reads sequential (a list's pages are mostly adjacent),
 * and the startup cost (everything before the first row: all the probed
 * lists are read and sorted first) the share of the lists probed. Without
 * an ORDER BY distance the index is of no use.
 */
static void ruivfflat_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
		Cost *startup, Cost *total, Selectivity *selectivity, double *correlation, double *pages)
{
	GenericCosts costs;
	Relation index;
	RuivfflatMeta meta;
	double ratio, seq_page_cost, startup_pages;
	const double sequential = 0.5;

	if (path->indexorderbys == NIL) {
		*startup = *total = get_float8_infinity();
		*selectivity = 0;
		*correlation = 0;
		*pages = 0;
		return;
	}
	memset(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);

	index = index_open(path->indexinfo->indexoid, NoLock);
	ruivfflat_read_meta(index, &meta);
	index_close(index, NoLock);
	ratio = Min(1.0, (double)ruivfflat_probes / meta.lists);

	get_tablespace_page_costs(path->indexinfo->reltablespace, NULL, &seq_page_cost);
	costs.indexTotalCost -= sequential * costs.numIndexPages *
			(costs.spc_random_page_cost - seq_page_cost);
	costs.indexStartupCost = costs.indexTotalCost * ratio;
	/* An index wider than its table (few rows per page) would otherwise
	 * look dearer than the table scan it replaces. */
	startup_pages = costs.numIndexPages * ratio;
	if (startup_pages > path->indexinfo->rel->pages && ratio < 0.5) {
		costs.indexStartupCost -= (1 - sequential) * startup_pages *
				(costs.spc_random_page_cost - seq_page_cost);
		costs.indexStartupCost -= (startup_pages - path->indexinfo->rel->pages) * seq_page_cost;
	}
	*startup = costs.indexStartupCost;
	*total = costs.indexTotalCost;
	*selectivity = costs.indexSelectivity;
	*correlation = costs.indexCorrelation;
	*pages = costs.numIndexPages;
}

static bytea *ruivfflat_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt table[] = {
		{"lists", RELOPT_TYPE_INT, offsetof(RuivfflatOptions, lists)},
	};

	return (bytea *)build_reloptions(reloptions, validate, ruivfflat_relopt_kind,
			sizeof(RuivfflatOptions), table, lengthof(table));
}

static char *ruivfflat_buildphasename(int64 phase)
{
	switch (phase) {
	case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
		return "initializing";
	case RUIVFFLAT_PHASE_KMEANS:
		return "performing k-means";
	case RUIVFFLAT_PHASE_ASSIGN:
		return "assigning tuples";
	case RUIVFFLAT_PHASE_LOAD:
		return "loading tuples";
	default:
		return NULL;
	}
}

static bool ruivfflat_validate(Oid opclassoid)
{
	return true;
}

static const struct config_enum_entry iterative_scan_options[] = {
	{"off", RUIVFFLAT_ITERATIVE_OFF, false},
	{"relaxed_order", RUIVFFLAT_ITERATIVE_RELAXED, false},
	{NULL, 0, false},
};

/*
 * Called from the module's _PG_init: the options and settings exist from
 * the moment the library is in the server. _PG_init lives in another
 * phase's file, so the handler calls this too: should that call ever go
 * missing, the first use of the access method still registers them (a
 * value SET before then is checked when they appear). Runs once.
 */
void ruivfflat_init(void)
{
	static bool done = false;

	if (done)
		return;
	done = true;
	ruivfflat_relopt_kind = add_reloption_kind();
	add_int_reloption(ruivfflat_relopt_kind, "lists", "Number of inverted lists",
			RUIVFFLAT_DEFAULT_LISTS, RUIVFFLAT_MIN_LISTS, RUIVFFLAT_MAX_LISTS, AccessExclusiveLock);
	DefineCustomIntVariable("ruivfflat.probes", "Number of lists a ruivfflat index scan reads.",
			"More lists find more of the true nearest rows and take longer; at most the index's lists.",
			&ruivfflat_probes, RUIVFFLAT_DEFAULT_PROBES, RUIVFFLAT_MIN_LISTS, RUIVFFLAT_MAX_LISTS,
			PGC_USERSET, GUC_EXPLAIN, NULL, NULL, NULL);
	DefineCustomEnumVariable("ruivfflat.iterative_scan",
			"Whether a ruivfflat index scan reads more lists when the rows run out.",
			"relaxed_order reads ruivfflat.probes more lists at a time, up to ruivfflat.max_probes; "
			"rows of a later batch may be nearer than rows already returned.",
			&ruivfflat_iterative_scan, RUIVFFLAT_ITERATIVE_OFF, iterative_scan_options, PGC_USERSET,
			GUC_EXPLAIN, NULL, NULL, NULL);
	/* Below ruivfflat.probes, probes wins. */
	DefineCustomIntVariable("ruivfflat.max_probes",
			"Most lists an iterative ruivfflat index scan reads.", NULL, &ruivfflat_max_probes,
			RUIVFFLAT_MAX_LISTS, RUIVFFLAT_MIN_LISTS, RUIVFFLAT_MAX_LISTS, PGC_USERSET, GUC_EXPLAIN,
			NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("ruivfflat");
#else
	EmitWarningsOnPlaceholders("ruivfflat");
#endif
}

PG_FUNCTION_INFO_V1(ruivfflat_handler);
Datum ruivfflat_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	ruivfflat_init();

	am->amstrategies = 0;
	am->amsupport = RUIVFFLAT_NPROCS;
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
#if PG_VERSION_NUM >= 170000
	am->amcanbuildparallel = false;
#endif
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
#if PG_VERSION_NUM >= 160000
	am->amsummarizing = false;
#endif
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;

	am->ambuild = ruivfflat_build;
	am->ambuildempty = ruivfflat_buildempty;
	am->aminsert = ruivfflat_insert;
#if PG_VERSION_NUM >= 170000
	am->aminsertcleanup = NULL;
#endif
	am->ambulkdelete = ruivfflat_bulkdelete;
	am->amvacuumcleanup = ruivfflat_vacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = ruivfflat_costestimate;
	am->amoptions = ruivfflat_options;
	am->amproperty = NULL;
	am->ambuildphasename = ruivfflat_buildphasename;
	am->amvalidate = ruivfflat_validate;
	am->amadjustmembers = NULL;
	am->ambeginscan = ruivfflat_beginscan;
	am->amrescan = ruivfflat_rescan;
	am->amgettuple = ruivfflat_gettuple;
	am->amgetbitmap = NULL;
	am->amendscan = ruivfflat_endscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}
