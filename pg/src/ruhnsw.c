/*
 * ruhnsw.c - the ruhnsw index access method: a hierarchical navigable
 * small world graph (Malkov and Yashunin) in PostgreSQL pages. This file
 * holds the handler, the index options, the settings and the planner's
 * cost estimate; ruhnsw.h lists the files of the other phases and
 * describes the page layout and the locking.
 */
#include "ruhnsw.h"
#include "ruivfflat.h"

#include <float.h>
#include <limits.h>

#include "access/reloptions.h"
#include "commands/vacuum.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

int ruhnsw_ef_search = RUHNSW_DEFAULT_EF_SEARCH;
int ruhnsw_iterative_scan = RUHNSW_ITERATIVE_SCAN_OFF;
int ruhnsw_max_scan_tuples = RUHNSW_DEFAULT_MAX_SCAN_TUPLES;
double ruhnsw_scan_mem_multiplier = RUHNSW_DEFAULT_SCAN_MEM_MULTIPLIER;
static relopt_kind ruhnsw_relopt_kind;

/* The index option quantization: what an element tuple keeps of its
 * vector (ruhnsw_quant.c). */
static relopt_enum_elt_def quantization_options[] = {
	{"none", RUHNSW_QUANT_NONE},
	{"sq8", RUHNSW_QUANT_SQ8},
	{NULL, 0}
};

static const struct config_enum_entry iterative_scan_options[] = {
	{"off", RUHNSW_ITERATIVE_SCAN_OFF, false},
	{"relaxed_order", RUHNSW_ITERATIVE_SCAN_RELAXED, false},
	{"strict_order", RUHNSW_ITERATIVE_SCAN_STRICT, false},
	{NULL, 0, false}
};

/* ---- planner, options, handler ---- */

/*
 * A search reads about ef_search * 2m elements, all before the first row
 * comes back; without an ORDER BY distance the index is of no use.
 */
static void ruhnsw_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
		Cost *startup, Cost *total, Selectivity *selectivity, double *correlation, double *pages)
{
	GenericCosts costs;
	Relation index;
	RuhnswMeta meta;
	RelOptInfo *heap;
	int m, ef_construction;
	double tuples;

	if (path->indexorderbys == NIL) {
		*startup = *total = get_float8_infinity();
		*selectivity = 0;
		*correlation = 0;
		*pages = 0;
		return;
	}
	index = index_open(path->indexinfo->indexoid, NoLock);
	ruhnsw_options_of(index, &m, &ef_construction);
	ruhnsw_read_meta(index, &meta);
	index_close(index, NoLock);
	tuples = Max(path->indexinfo->tuples, 1);
	memset(&costs, 0, sizeof(costs));
	costs.numIndexTuples = Min(tuples, (double)ruhnsw_ef_search * 2 * m);
	genericcostestimate(root, path, loop_count, &costs);

	/*
	 * A table whose pages are too few to hold its vectors keeps them in
	 * TOAST (784 floats are 3 kB), and the cost of a sequential scan
	 * counts only the table's own pages, not the TOAST pages every row's
	 * vector is read from: against it, the index's reads priced as random
	 * pages made the planner prefer reading every vector. The element
	 * pages the scan reads stand in for vectors the sequential scan reads
	 * as well, so there they are priced as sequential reads, and no more
	 * of them than the table has pages (pgvector adjusts its HNSW cost
	 * the same way). A single scan only: a repeated one reuses its pages,
	 * which genericcostestimate has already priced.
	 */
	heap = path->indexinfo->rel;
	if (loop_count <= 1 && meta.dim > 0 && heap->pages > 0 && heap->tuples > 0 &&
			(double)heap->pages * BLCKSZ < heap->tuples * RUVECTOR_SIZE(meta.dim) &&
			costs.numIndexPages > heap->pages) {
		double random_page_cost, seq_page_cost;

		get_tablespace_page_costs(path->indexinfo->reltablespace, &random_page_cost, &seq_page_cost);
		costs.indexTotalCost -= costs.numIndexPages * random_page_cost;
		costs.indexTotalCost += (double)heap->pages * seq_page_cost;
	}
	*startup = costs.indexTotalCost;
	*total = costs.indexTotalCost;
	*selectivity = costs.indexSelectivity;
	*correlation = costs.indexCorrelation;
	*pages = costs.numIndexPages;
}

static bytea *ruhnsw_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt table[] = {
		{"m", RELOPT_TYPE_INT, offsetof(RuhnswOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(RuhnswOptions, ef_construction)},
		{"quantization", RELOPT_TYPE_ENUM, offsetof(RuhnswOptions, quantization)},
	};

	return (bytea *)build_reloptions(reloptions, validate, ruhnsw_relopt_kind,
			sizeof(RuhnswOptions), table, lengthof(table));
}

static bool ruhnsw_validate(Oid opclassoid)
{
	return true;
}

void ruhnsw_init(void)
{
	ruhnsw_relopt_kind = add_reloption_kind();
	add_int_reloption(ruhnsw_relopt_kind, "m", "Most links an element keeps per layer (2m on layer 0)",
			RUHNSW_DEFAULT_M, RUHNSW_MIN_M, RUHNSW_MAX_M, AccessExclusiveLock);
	add_int_reloption(ruhnsw_relopt_kind, "ef_construction",
			"Candidate list size while building the graph", RUHNSW_DEFAULT_EF_CONSTRUCTION,
			RUHNSW_MIN_EF_CONSTRUCTION, RUHNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	add_enum_reloption(ruhnsw_relopt_kind, "quantization",
			"What the index keeps of each vector: none (the vector) or sq8 (an int8 code)",
			quantization_options, RUHNSW_QUANT_NONE, "Valid values are \"none\" and \"sq8\".",
			AccessExclusiveLock);
	DefineCustomIntVariable("ruhnsw.ef_search", "Candidate list size of a ruhnsw index scan.",
			"A scan returns at most this many rows; larger finds more of the true nearest.",
			&ruhnsw_ef_search, RUHNSW_DEFAULT_EF_SEARCH, RUHNSW_MIN_EF_SEARCH, RUHNSW_MAX_EF_SEARCH,
			PGC_USERSET, 0, NULL, NULL, NULL);
	/* pgvector 0.8's hnsw.iterative_scan, hnsw.max_scan_tuples and
	 * hnsw.scan_mem_multiplier: the same values, defaults and bounds. */
	DefineCustomEnumVariable("ruhnsw.iterative_scan", "Mode of iterative ruhnsw index scans.",
			"off: a scan returns at most ruhnsw.ef_search rows; relaxed_order: it goes on while "
			"rows are asked for, a row may come after a farther one; strict_order: it goes on, "
			"in exact order of distance.",
			&ruhnsw_iterative_scan, RUHNSW_ITERATIVE_SCAN_OFF, iterative_scan_options, PGC_USERSET,
			0, NULL, NULL, NULL);
	DefineCustomIntVariable("ruhnsw.max_scan_tuples",
			"Most tuples an iterative ruhnsw index scan visits.",
			"Checked between rounds: the first ruhnsw.ef_search rows are always searched in full.",
			&ruhnsw_max_scan_tuples, RUHNSW_DEFAULT_MAX_SCAN_TUPLES, 1, INT_MAX, PGC_USERSET, 0,
			NULL, NULL, NULL);
	DefineCustomRealVariable("ruhnsw.scan_mem_multiplier",
			"Multiple of work_mem an iterative ruhnsw index scan may use.", NULL,
			&ruhnsw_scan_mem_multiplier, RUHNSW_DEFAULT_SCAN_MEM_MULTIPLIER, 1,
			RUHNSW_MAX_SCAN_MEM_MULTIPLIER, PGC_USERSET, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("ruhnsw");
#endif
}

/* The module's load hook: the index access methods' options and settings
 * exist from the moment the library is in the server. */
PGDLLEXPORT void _PG_init(void);
void _PG_init(void)
{
	ruhnsw_init();
	ruivfflat_init();
}

PG_FUNCTION_INFO_V1(ruhnsw_handler);
Datum ruhnsw_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = 2;
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
	am->amcanbuildparallel = true;
#endif
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = true; /* VACUUM sizes its layer-0 check by it */
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;

	am->ambuild = ruhnsw_build;
	am->ambuildempty = ruhnsw_buildempty;
	am->aminsert = ruhnsw_insert;
	am->ambulkdelete = ruhnsw_bulkdelete;
	am->amvacuumcleanup = ruhnsw_vacuumcleanup;
	am->amcanreturn = NULL;
	am->amcostestimate = ruhnsw_costestimate;
	am->amoptions = ruhnsw_options;
	am->amproperty = NULL;
	am->ambuildphasename = NULL;
	am->amvalidate = ruhnsw_validate;
	am->amadjustmembers = NULL;
	am->ambeginscan = ruhnsw_beginscan;
	am->amrescan = ruhnsw_rescan;
	am->amgettuple = ruhnsw_gettuple;
	am->amgetbitmap = NULL;
	am->amendscan = ruhnsw_endscan;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;

	PG_RETURN_POINTER(am);
}
