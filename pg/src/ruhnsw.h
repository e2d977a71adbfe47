/*
 * ruhnsw.h - the ruhnsw index access method: an HNSW graph kept in
 * PostgreSQL pages.
 *
 * Layout of the index relation:
 *   block 0      the meta page (RuhnswMeta in the page contents)
 *   blocks 1..k  an sq8 index only: its quantizer (per-dimension minimum
 *                and step) in quantizer tuples (type RUHNSW_QUANT), one a
 *                page, written by the build and never changed; every loop
 *                over the data pages skips them by their tuple type
 *   then         data pages; each holds element tuples, each directly
 *                followed by its neighbour tuple on the same page when the
 *                two fit together (a vector too wide for that has its
 *                neighbour tuple on another page)
 *
 * An element tuple holds one heap TID, the element's level, its state
 * (live, deleted, free) and a copy of the vector (with the index option
 * quantization = 'sq8', the vector's int8 code, RuhnswCode, in its place);
 * a neighbour tuple holds the element's neighbour lists as index TIDs, 2m
 * slots for layer 0 then m slots for each layer above, an invalid TID
 * ending a list that is not full. A neighbour tuple never changes size, so a list is rewritten in
 * place, and a free element (one VACUUM unlinked from the graph) is
 * overwritten in place by a later insert of the same or a lower level.
 *
 * Every page change is WAL-logged: builds write whole pages once and log
 * them with log_newpage_range, later changes go through generic WAL.
 * Inserts and the graph-changing phases of VACUUM take a heavyweight lock
 * on the meta page's block number (ExclusiveLock) so that only one changes
 * the graph at a time; scans take only buffer locks, one at a time.
 *
 * The module's files, by phase:
 *   ruhnsw.c         handler, options, settings, cost estimate
 *   ruhnsw_graph.c   the graph algorithms, page helpers, the graph on pages
 *   ruhnsw_build.c   CREATE INDEX: the graph in (shared) memory, serial or
 *                    with parallel workers, then written out page by page
 *   ruhnsw_insert.c  inserts after the build
 *   ruhnsw_scan.c    index scans, iterative scans
 *   ruhnsw_vacuum.c  VACUUM: unlink dead rows, repair, free their space
 *   ruhnsw_quant.c   sq8 codes: training, the quantizer pages, encoding,
 *                    distances on codes (the scan's exact re-check of
 *                    their candidates is in ruhnsw_scan.c)
 */
#ifndef RUHNSW_H
#define RUHNSW_H

#include "ruvector.h"

#include "access/amapi.h"
#include "access/genam.h"
#include "nodes/execnodes.h"
#include "storage/bufpage.h"
#include "storage/dsm.h"
#include "storage/itemptr.h"
#include "storage/shm_toc.h"
#include "utils/relcache.h"

#define RUHNSW_MAGIC 0x52484e57 /* "RHNW" */
#define RUHNSW_VERSION 1
#define RUHNSW_META_BLKNO 0

#define RUHNSW_DEFAULT_M 16
#define RUHNSW_MIN_M 2
#define RUHNSW_MAX_M 100
#define RUHNSW_DEFAULT_EF_CONSTRUCTION 64
#define RUHNSW_MIN_EF_CONSTRUCTION 4
#define RUHNSW_MAX_EF_CONSTRUCTION 1000
#define RUHNSW_DEFAULT_EF_SEARCH 40
#define RUHNSW_MIN_EF_SEARCH 1
#define RUHNSW_MAX_EF_SEARCH 1000
#define RUHNSW_DEFAULT_MAX_SCAN_TUPLES 20000
#define RUHNSW_DEFAULT_SCAN_MEM_MULTIPLIER 1.0
#define RUHNSW_MAX_SCAN_MEM_MULTIPLIER 1000.0
/* Levels above this are never drawn (with m = 2 the chance of one is
 * 2^-16 per element; larger m make it far rarer). */
#define RUHNSW_MAX_LEVEL 15

/* Values of the index option quantization. */
#define RUHNSW_QUANT_NONE 0
#define RUHNSW_QUANT_SQ8 1

/* Support functions of the operator classes. */
#define RUHNSW_DISTANCE_PROC 1 /* (ruvector, ruvector) -> float8, smaller is closer */
#define RUHNSW_NORM_PROC 2     /* optional: rows whose norm is 0 are not indexed */

/* ruhnsw.iterative_scan */
typedef enum RuhnswIterativeScan {
	RUHNSW_ITERATIVE_SCAN_OFF,
	RUHNSW_ITERATIVE_SCAN_RELAXED,
	RUHNSW_ITERATIVE_SCAN_STRICT
} RuhnswIterativeScan;

typedef struct RuhnswOptions {
	int32 vl_len_; /* varlena header */
	int m;
	int ef_construction;
	int quantization; /* RUHNSW_QUANT_NONE or RUHNSW_QUANT_SQ8 */
} RuhnswOptions;

typedef struct RuhnswMeta {
	uint32 magic;
	uint32 version;
	int32 dim;          /* 0 until the first vector */
	int32 m;
	int32 ef_construction;
	int32 entry_level;  /* -1 when the graph is empty */
	ItemPointerData entry;
	BlockNumber insert_page; /* last data page, InvalidBlockNumber if none */
	/* The first page that may hold a free element; 0 (the meta page's
	 * number, so an index from before free elements reads right) or
	 * InvalidBlockNumber when there is none. */
	BlockNumber free_page;
	/* The quantization the build chose (0, none, in an index from before
	 * the option). quant_npages quantizer pages from block quant_start
	 * hold the trained quantizer; 0 pages: untrained (the build saw no
	 * rows), and the elements hold vectors as without quantization. */
	int32 quantization;
	BlockNumber quant_start;
	uint32 quant_npages;
} RuhnswMeta;

#define RUHNSW_ELEMENT 1
#define RUHNSW_NEIGHBORS 2
#define RUHNSW_QUANT 3

/* States of an element tuple. */
#define RUHNSW_LIVE 0
#define RUHNSW_DELETED 1 /* its heap row is gone; it may still carry links */
#define RUHNSW_FREE 2    /* nothing links to it: its space can be reused */

typedef struct RuhnswElementTuple {
	uint8 type; /* RUHNSW_ELEMENT */
	uint8 level;
	uint8 deleted; /* RUHNSW_LIVE, RUHNSW_DELETED or RUHNSW_FREE */
	uint8 unused;
	ItemPointerData heaptid;  /* invalid unless live */
	ItemPointerData neighbortid;
	Ruvector vec;             /* varlena with its 4-byte header, 4-aligned */
} RuhnswElementTuple;

typedef struct RuhnswNeighborTuple {
	uint8 type; /* RUHNSW_NEIGHBORS */
	uint8 unused;
	uint16 nslots; /* at least RUHNSW_NSLOTS(m, level) of its element */
	ItemPointerData slots[FLEXIBLE_ARRAY_MEMBER];
} RuhnswNeighborTuple;

/*
 * An sq8 code in an element tuple, in the place of the vector and with
 * the same first fields: a Ruvector has 0 where a code has its kind.
 * Level v of dimension d stands for lo[d] + v * step[d] (the quantizer).
 */
#define RUHNSW_CODE_SQ8 1
typedef struct RuhnswCode {
	int32 vl_len_;  /* varlena header */
	int16 dim;
	int16 kind;     /* RUHNSW_CODE_SQ8 */
	float norm;     /* squared norm of the vector the code stands for */
	uint8 level[FLEXIBLE_ARRAY_MEMBER]; /* 0 .. 255 per dimension */
} RuhnswCode;

#define RUHNSW_CODE_SIZE(dim) (offsetof(RuhnswCode, level) + (Size)(dim))

/* A quantizer tuple: dimensions first .. first + n - 1, as (lo, step)
 * pairs. */
typedef struct RuhnswQuantTuple {
	uint8 type; /* RUHNSW_QUANT */
	uint8 unused[3];
	int32 first;
	int32 n;
	float pairs[FLEXIBLE_ARRAY_MEMBER];
} RuhnswQuantTuple;

#define RUHNSW_ELEMENT_SIZE(dim) (offsetof(RuhnswElementTuple, vec) + RUVECTOR_SIZE(dim))
#define RUHNSW_CODE_ELEMENT_SIZE(dim) (offsetof(RuhnswElementTuple, vec) + RUHNSW_CODE_SIZE(dim))
#define RUHNSW_NSLOTS(m, level) (2 * (m) + (level) * (m))
#define RUHNSW_NEIGHBOR_SIZE(m, level) \
	(offsetof(RuhnswNeighborTuple, slots) + sizeof(ItemPointerData) * RUHNSW_NSLOTS(m, level))

/* Room one more tuple of this size takes on a page (its line pointer too). */
#define RUHNSW_TUPLE_SPACE(size) (MAXALIGN(size) + sizeof(ItemIdData))
#define RUHNSW_EMPTY_PAGE_SPACE (BLCKSZ - MAXALIGN(SizeOfPageHeaderData))

/* Settings (ruhnsw.c). */
extern int ruhnsw_ef_search;
extern int ruhnsw_iterative_scan;
extern int ruhnsw_max_scan_tuples;
extern double ruhnsw_scan_mem_multiplier;

void ruhnsw_init(void);

/* ---- the graph interface and the algorithms on it (ruhnsw_graph.c) ---- */

/* An element: its number in a build's graph, or its packed index TID. */
typedef uint64 ElemRef;

typedef struct Cand {
	ElemRef ref;
	double dist;
} Cand;

/* A binary heap of candidates: nearest on top (min) or farthest (max). */
typedef struct CandHeap {
	Cand *a;
	int n, cap;
	bool max;
} CandHeap;

void ruhnsw_heap_push(CandHeap *h, Cand c);
Cand ruhnsw_heap_pop(CandHeap *h);

/* How a graph computes distances: the operator class's support function
 * through fmgr, or (for the library's own functions) its kernel called
 * directly, the same arithmetic without the call's overhead. */
typedef enum RuhnswDistKind {
	RUHNSW_DIST_FMGR,
	RUHNSW_DIST_L2SQ,
	RUHNSW_DIST_NEG_IP,
	RUHNSW_DIST_COSINE
} RuhnswDistKind;

typedef struct RuhnswGraph RuhnswGraph;
struct RuhnswGraph {
	FmgrInfo *dist_proc;
	Oid collation;
	RuhnswDistKind dist_kind;
	int m;
	/* The distance from q to the element. */
	double (*distance)(RuhnswGraph *g, const Ruvector *q, ElemRef e);
	/* The element's vector; only graphs that keep vectors (builds,
	 * inserts, VACUUM) have this. Valid while the graph lives. */
	Ruvector *(*vector)(RuhnswGraph *g, ElemRef e);
	/* The element's list on one layer into out (room for 2m); its length. */
	int (*neighbors)(RuhnswGraph *g, ElemRef e, int level, ElemRef *out);
	void (*set_neighbors)(RuhnswGraph *g, ElemRef e, int level, const ElemRef *refs, int n);
	/* Optional: hold the element's lists for a read-modify-write, in a
	 * graph that other processes change at the same time. */
	void (*lock_links)(RuhnswGraph *g, ElemRef e);
	void (*unlock_links)(RuhnswGraph *g, ElemRef e);
	/* Optional: whether the element's row is gone (walked through, never
	 * linked to nor returned). NULL: no element is. */
	bool (*deleted)(RuhnswGraph *g, ElemRef e);
	void (*visit_reset)(RuhnswGraph *g);
	/* True the first time an element is seen since the last reset. */
	bool (*visit)(RuhnswGraph *g, ElemRef e);
};

/*
 * The state of a layer search that can go on where it stopped: an
 * iterative scan asks for more after the first ef results.
 */
typedef struct RuhnswSearch {
	bool live_only;  /* deleted elements are walked through, never returned */
	bool keep;       /* keep near and discarded for another round */
	bool resumed;    /* a later round: the visited set stays */
	CandHeap near;   /* min: still to expand */
	CandHeap discarded; /* min: seen, not returned, not in a result */
	int64 visits;    /* distances computed */
} RuhnswSearch;

static inline int ruhnsw_max_links(int m, int level)
{
	return level == 0 ? 2 * m : m;
}

static inline int ruhnsw_layer_start(int m, int level)
{
	return level == 0 ? 0 : 2 * m + (level - 1) * m;
}

void ruhnsw_graph_init(RuhnswGraph *g, Relation index, int m);
double ruhnsw_distance(const RuhnswGraph *g, const Ruvector *a, const Ruvector *b);
void ruhnsw_search_init(RuhnswSearch *s, bool live_only, bool keep);
Cand *ruhnsw_search_layer(RuhnswGraph *g, const Ruvector *q, const Cand *entries, int nentries,
		int ef, int level, RuhnswSearch *s, int *nout);
void ruhnsw_find_neighbors(RuhnswGraph *g, const Ruvector *q, int level, ElemRef entry,
		int entry_level, int ef_construction, Cand **lists, int *counts);
int ruhnsw_select_neighbors(RuhnswGraph *g, const Cand *cands, int ncands, int max, Cand *out);
void ruhnsw_add_backlink(RuhnswGraph *g, ElemRef target, int level, Cand added, bool prune);
int ruhnsw_cand_cmp(const void *a, const void *b);

/* ---- levels, sizes, options ---- */

int ruhnsw_max_level_for(int dim, int m);
int ruhnsw_random_level(ItemPointer heaptid, int m, int max_level);
void ruhnsw_check_dim(Relation index, int expected, int dim);
bool ruhnsw_skip_vector(FmgrInfo *norm_proc, Oid collation, const Ruvector *v);
FmgrInfo *ruhnsw_norm_proc(Relation index);
void ruhnsw_options_of(Relation index, int *m, int *ef_construction);
int ruhnsw_quantization_of(Relation index);

/* ---- pages ---- */

static inline ElemRef ruhnsw_tid_ref(ItemPointer tid)
{
	return ((uint64)ItemPointerGetBlockNumber(tid) << 16) | ItemPointerGetOffsetNumber(tid);
}

static inline void ruhnsw_ref_tid(ElemRef ref, ItemPointer tid)
{
	ItemPointerSet(tid, (BlockNumber)(ref >> 16), (OffsetNumber)(ref & 0xffff));
}

static inline bool ruhnsw_page_has_room(Page page, Size need)
{
	return PageGetExactFreeSpace(page) >= need;
}

static inline bool ruhnsw_has_free_page(const RuhnswMeta *meta)
{
	return meta->free_page != 0 && BlockNumberIsValid(meta->free_page);
}

void ruhnsw_meta_init(Page page, int dim, int m, int ef_construction);
RuhnswMeta *ruhnsw_meta_of(Relation index, Page page);
void ruhnsw_read_meta(Relation index, RuhnswMeta *out);
RuhnswElementTuple *ruhnsw_element_at(Relation index, Page page, OffsetNumber off);
RuhnswNeighborTuple *ruhnsw_neighbors_at(Relation index, Page page, OffsetNumber off);

/* ---- the graph on pages ---- */

/* An open-addressing table keyed by ElemRef (never 0: block 0 is the
 * meta page), with a pointer per key, or a plain set when vals is NULL. */
typedef struct RefMap {
	uint64 *keys;  /* 0: empty */
	void **vals;   /* NULL for a set */
	bool has_vals;
	uint32 cap;    /* a power of two */
	uint32 n;
	MemoryContext ctx;
} RefMap;

void ruhnsw_refmap_init(RefMap *m, MemoryContext ctx, bool with_vals);
/* Finds or adds key; *val gets its value slot (NULL for a set); true when
 * the key is new. */
bool ruhnsw_refmap_add(RefMap *m, ElemRef key, void ***val);
void *ruhnsw_refmap_get(const RefMap *m, ElemRef key);
/* Makes room for n keys in all, so that adding them never rehashes. */
void ruhnsw_refmap_reserve(RefMap *m, uint32 n);
void ruhnsw_refmap_clear(RefMap *m);

typedef struct DiskElem {
	ElemRef key;
	bool loaded;  /* state, level and TIDs read from the page */
	uint8 state;  /* RUHNSW_LIVE, ... */
	uint8 level;
	ItemPointerData heaptid;
	ItemPointerData ntid;
	int nslots;
	ItemPointerData *slots; /* NULL until the lists are read (never in a scan) */
	Ruvector *vec;          /* NULL unless the graph keeps vectors */
	bool dirty;             /* lists changed, not yet written (deferred) */
	uint32 visit_gen;       /* visited by the search of this mark */
} DiskElem;

/* ---- sq8 codes (ruhnsw_quant.c) ---- */

/* A trained quantizer: per dimension the lowest value and the step of
 * one level (> 0). */
typedef struct RuhnswQuant {
	int dim;
	float *lo;
	float *step;
} RuhnswQuant;

/* A query folded for distances on codes: dot(q, decoded) is about
 * k + alpha * sum (128 wh[d] + wl[d]) level[d]. */
typedef struct RuhnswQuantQuery {
	const Ruvector *q;  /* the query it was folded from */
	int8 *wh;           /* high parts of q[d] * step[d] / alpha */
	int8 *wl;           /* low parts, -64 .. 63 */
	double alpha;
	double k;           /* sum q[d] lo[d] */
	double qnorm;       /* |q|^2 */
} RuhnswQuantQuery;

/* Checks that an operator class can take the option (refuses those whose
 * distance has no form on codes, such as ruvector_l1_ops). */
void ruhnsw_quant_check_opclass(Relation index, RuhnswDistKind kind);
/* The per-dimension range of n vectors; NULL when n is 0. */
RuhnswQuant *ruhnsw_quant_train(Ruvector *(*vector_at)(void *arg, uint32 i), void *arg,
		uint32 n, int dim);
/* Quantizer pages that quant takes (written from block 1 on). */
BlockNumber ruhnsw_quant_npages(const RuhnswQuant *quant);
/* Fills page with quantizer page number i (0-based) of quant. */
void ruhnsw_quant_page(const RuhnswQuant *quant, BlockNumber i, Page page);
/* The trained quantizer of the index (read from its pages), or NULL when
 * its elements hold vectors. */
RuhnswQuant *ruhnsw_quant_load(Relation index, const RuhnswMeta *meta);
/* Writes the code of v (clamped into the trained range) to code. */
void ruhnsw_quant_encode(const RuhnswQuant *quant, const Ruvector *v, RuhnswCode *code);
/* The vector a code stands for, into out (room for quant->dim). */
void ruhnsw_quant_decode(const RuhnswQuant *quant, const RuhnswCode *code, Ruvector *out);
void ruhnsw_quant_fold(const RuhnswQuant *quant, const Ruvector *q, RuhnswQuantQuery *out);
/* The distance of the graph's kind from a folded query to a code. */
double ruhnsw_quant_distance(RuhnswDistKind kind, const RuhnswQuantQuery *qq,
		const RuhnswCode *code);
/* Element tuple bytes for a vector of dim dimensions in this index. */
static inline Size ruhnsw_element_size(const RuhnswQuant *quant, int dim)
{
	return quant ? RUHNSW_CODE_ELEMENT_SIZE(dim) : RUHNSW_ELEMENT_SIZE(dim);
}

typedef struct DiskGraph {
	RuhnswGraph g; /* first, so a RuhnswGraph * is a DiskGraph * */
	Relation index;
	RuhnswQuant *quant;   /* NULL: the elements hold vectors */
	RuhnswQuantQuery qq;  /* the scan's query, folded at its first distance */
	MemoryContext ctx;
	bool keep_vectors;
	bool defer_writes;  /* lists are written by ruhnsw_disk_flush */
	RefMap cache;       /* ElemRef -> DiskElem *, every element seen */
	uint32 visit_gen;   /* the current search's mark (DiskElem.visit_gen) */
	DiskElem **dirty;   /* changed lists, with defer_writes */
	int ndirty, capdirty;
	DiskElem *free_elems; /* the block new elements come from */
	int nfree;
	DiskElem *last;     /* the element disk_elem returned last, or NULL */
} DiskGraph;

DiskGraph *ruhnsw_disk_graph(Relation index, int m, bool keep_vectors);
DiskElem *ruhnsw_disk_load(DiskGraph *dg, ElemRef ref, bool with_lists);
/* Writes the lists changed since the last flush, one WAL record per
 * page; for graphs with defer_writes, whose caller holds the update lock
 * until this is done. */
void ruhnsw_disk_flush(DiskGraph *dg);

/* ---- the access method's entry points ---- */

IndexBuildResult *ruhnsw_build(Relation heap, Relation index, IndexInfo *info);
void ruhnsw_buildempty(Relation index);
bool ruhnsw_insert(Relation index, Datum *values, bool *isnull, ItemPointer heaptid,
		Relation heap, IndexUniqueCheck check, bool unchanged, IndexInfo *info);
/* One vector into the graph on pages (inserts, builds past their memory). */
void ruhnsw_insert_on_disk(Relation index, Ruvector *v, ItemPointer heaptid);
IndexScanDesc ruhnsw_beginscan(Relation index, int nkeys, int norderbys);
void ruhnsw_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
bool ruhnsw_gettuple(IndexScanDesc scan, ScanDirection dir);
void ruhnsw_endscan(IndexScanDesc scan);
IndexBulkDeleteResult *ruhnsw_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
		IndexBulkDeleteCallback callback, void *callback_state);
IndexBulkDeleteResult *ruhnsw_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);

/* The entry point of a parallel build's workers. */
PGDLLEXPORT void ruhnsw_parallel_build_main(dsm_segment *seg, shm_toc *toc);

#endif /* RUHNSW_H */
