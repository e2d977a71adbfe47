/*
 * ruivfflat.h - the ruivfflat index access method: pgvector's IVFFlat
 * (an inverted file of flat vectors) in PostgreSQL pages.
 *
 * CREATE INDEX clusters a sample of the table with k-means into `lists`
 * centres and files every row under its nearest centre; a scan measures
 * the query against all centres, reads the rows of the `probes` nearest
 * lists and returns them nearest first.
 *
 * Layout of the index relation:
 *   block 0           the meta page (RuivfflatMeta in the page contents)
 *   blocks 1..C       the centre pages: one RuivfflatList item per list,
 *                     in list order, as many per page as fit
 *   blocks C+1..      posting pages; each list is a chain of them linked
 *                     through the special space (RuivfflatPageOpaque.next),
 *                     holding one RuivfflatEntry (heap TID and vector) per
 *                     indexed row
 *
 * A list without rows has no pages (start_page invalid); its first insert
 * creates one. insert_page is a hint where inserts start looking for room:
 * they walk the chain onwards from it and add a page at the end when none
 * has room. VACUUM removes the entries of dead rows from the pages and
 * moves the hint back to the first page it freed room on. Pages are never
 * unlinked or reused, so a block number once in a chain stays there.
 *
 * Every page change goes through generic WAL (whole page images for the
 * pages CREATE INDEX writes), so the index survives a crash and streams
 * to replicas. Scans copy what they need out of a page under a share lock
 * and keep no pin, so they need an MVCC snapshot: VACUUM may remove an
 * entry a scan has already collected, and a heap TID reused afterwards
 * holds a row the snapshot cannot see.
 */
#ifndef RUIVFFLAT_H
#define RUIVFFLAT_H

#include "ruvector.h"

#include "access/amapi.h"
#include "common/relpath.h"
#include "nodes/execnodes.h"
#include "storage/buf.h"
#include "storage/bufpage.h"
#include "storage/itemptr.h"

#define RUIVFFLAT_MAGIC 0x52495646 /* "RIVF" */
#define RUIVFFLAT_VERSION 1
#define RUIVFFLAT_META_BLKNO 0
#define RUIVFFLAT_FIRST_LIST_BLKNO 1
#define RUIVFFLAT_PAGE_ID 0xFF8A /* last two bytes of every non-meta page */

/* pgvector's bounds and defaults. */
#define RUIVFFLAT_DEFAULT_LISTS 100
#define RUIVFFLAT_MIN_LISTS 1
#define RUIVFFLAT_MAX_LISTS 32768
#define RUIVFFLAT_DEFAULT_PROBES 1

/* k-means: samples per list (at least RUIVFFLAT_MIN_SAMPLES) and the most
 * Lloyd iterations, as pgvector does. */
#define RUIVFFLAT_SAMPLES_PER_LIST 50
#define RUIVFFLAT_MIN_SAMPLES 10000
#define RUIVFFLAT_KMEANS_MAX_ITERATIONS 500

/* Support functions of the operator classes. */
#define RUIVFFLAT_DISTANCE_PROC 1    /* (ruvector, ruvector) -> float8, smaller is nearer */
#define RUIVFFLAT_NORM_PROC 2        /* optional: rows and queries are normalised by it
				      * (rows of norm 0 are not indexed) */
#define RUIVFFLAT_KMEANS_NORM_PROC 3 /* optional: spherical k-means (unit centres) */
#define RUIVFFLAT_NPROCS 3

/* Build phases as pg_stat_progress_create_index shows them (pgvector's
 * numbers and names; 1 is the server's "initializing"). */
#define RUIVFFLAT_PHASE_KMEANS 2
#define RUIVFFLAT_PHASE_ASSIGN 3
#define RUIVFFLAT_PHASE_LOAD 4

typedef enum RuivfflatIterative {
	RUIVFFLAT_ITERATIVE_OFF,
	RUIVFFLAT_ITERATIVE_RELAXED
} RuivfflatIterative;

typedef struct RuivfflatOptions {
	int32 vl_len_; /* varlena header */
	int lists;
} RuivfflatOptions;

typedef struct RuivfflatMeta {
	uint32 magic;
	uint32 version;
	int32 dim;
	int32 lists;
	int32 list_pages; /* C: the centre pages are blocks 1..C */
} RuivfflatMeta;

/* Special space of the centre and posting pages. */
typedef struct RuivfflatPageOpaque {
	BlockNumber next;  /* next page of the list's chain; invalid on the last
			    * and on centre pages */
	uint16 flags;      /* RUIVFFLAT_LIST_PAGE or RUIVFFLAT_ENTRY_PAGE */
	uint16 page_id;    /* RUIVFFLAT_PAGE_ID */
} RuivfflatPageOpaque;

#define RUIVFFLAT_LIST_PAGE 1
#define RUIVFFLAT_ENTRY_PAGE 2

#define RuivfflatPageGetOpaque(page) ((RuivfflatPageOpaque *)PageGetSpecialPointer(page))

typedef struct RuivfflatList {
	BlockNumber start_page;  /* first posting page, invalid while empty */
	BlockNumber insert_page; /* where inserts start looking for room */
	Ruvector center;         /* varlena with its 4-byte header, 4-aligned */
} RuivfflatList;

typedef struct RuivfflatEntry {
	ItemPointerData heaptid;
	uint16 unused;
	Ruvector vec;            /* normalised when the opclass has a norm */
} RuivfflatEntry;

#define RUIVFFLAT_LIST_SIZE(dim) (offsetof(RuivfflatList, center) + RUVECTOR_SIZE(dim))
#define RUIVFFLAT_ENTRY_SIZE(dim) (offsetof(RuivfflatEntry, vec) + RUVECTOR_SIZE(dim))

/* Room on an empty centre or posting page, line pointers included. */
#define RUIVFFLAT_PAGE_SPACE \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(RuivfflatPageOpaque)))
#define RUIVFFLAT_ITEMS_PER_PAGE(size) \
	((int)(RUIVFFLAT_PAGE_SPACE / (MAXALIGN(size) + sizeof(ItemIdData))))

/*
 * How distances are computed. The operator class names a support
 * function; the library's own distance functions are recognised and run
 * on the SIMD kernels directly, any other goes through the function
 * manager.
 */
typedef enum RuivfflatMetric {
	RUIVFFLAT_METRIC_L2SQ,    /* squared L2 (also for l2_distance: same order) */
	RUIVFFLAT_METRIC_NEG_DOT, /* negative inner product */
	RUIVFFLAT_METRIC_L1,
	RUIVFFLAT_METRIC_FMGR     /* call the support function */
} RuivfflatMetric;

typedef struct RuivfflatDist {
	RuivfflatMetric metric;
	FmgrInfo *proc;      /* support function 1 */
	FmgrInfo *norm_proc; /* support function 2 or NULL */
	Oid collation;
} RuivfflatDist;

extern int ruivfflat_probes;
extern int ruivfflat_iterative_scan;
extern int ruivfflat_max_probes;

/* The ruvector distance functions the opclasses name (ruvector_ops.c). */
/* Declared as PG_FUNCTION_INFO_V1 declares them: a declaration without
 * PGDLLEXPORT would let the linker hide them where modules build with
 * -fvisibility=hidden. */
extern PGDLLEXPORT Datum ruvector_l2_squared_distance(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum ruvector_l2_distance(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum ruvector_negative_inner_product(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum ruvector_l1_distance(PG_FUNCTION_ARGS);

void ruivfflat_init(void);

/* ruivfflat.c: pieces every phase shares */
void ruivfflat_dist_init(RuivfflatDist *d, Relation index);
double ruivfflat_distance(const RuivfflatDist *d, const Ruvector *a, const Ruvector *b);
bool ruivfflat_normalize(const RuivfflatDist *d, Ruvector *v);
void ruivfflat_read_meta(Relation index, RuivfflatMeta *out);
void ruivfflat_check_dim(Relation index, int expected, int dim);
int ruivfflat_max_dim(void);
void ruivfflat_page_init(Page page, uint16 flags);
void ruivfflat_check_page(Relation index, Page page, uint16 flags);
RuivfflatList *ruivfflat_list_at(Relation index, Page page, OffsetNumber off);
RuivfflatEntry *ruivfflat_entry_at(Relation index, Page page, OffsetNumber off);
Buffer ruivfflat_new_buffer(Relation index, ForkNumber fork);

/* ruivfflat_kmeans.c */
void ruivfflat_kmeans(float *centers, const float *samples, int nsamples, int dim, int k,
		bool spherical);

/* the access method's callbacks */
IndexBuildResult *ruivfflat_build(Relation heap, Relation index, IndexInfo *info);
void ruivfflat_buildempty(Relation index);
bool ruivfflat_insert(Relation index, Datum *values, bool *isnull, ItemPointer heaptid,
		Relation heap, IndexUniqueCheck check, bool unchanged, IndexInfo *info);
IndexScanDesc ruivfflat_beginscan(Relation index, int nkeys, int norderbys);
void ruivfflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
		int norderbys);
bool ruivfflat_gettuple(IndexScanDesc scan, ScanDirection dir);
void ruivfflat_endscan(IndexScanDesc scan);
IndexBulkDeleteResult *ruivfflat_bulkdelete(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback, void *callback_state);
IndexBulkDeleteResult *ruivfflat_vacuumcleanup(IndexVacuumInfo *info,
		IndexBulkDeleteResult *stats);

#endif /* RUIVFFLAT_H */
