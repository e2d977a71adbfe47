/*
 * ruhnsw.h - the ruhnsw index access method: an HNSW graph kept in
 * PostgreSQL pages.
 *
 * Layout of the index relation:
 *   block 0      the meta page (RuhnswMeta in the page contents)
 *   blocks 1..   data pages, filled in order; each holds element tuples,
 *                each directly followed by its neighbour tuple on the same
 *                page when the two fit together (a vector too wide for
 *                that has its neighbour tuple on the next page)
 *
 * An element tuple holds one heap TID, the element's level, a deleted
 * flag and a copy of the vector; a neighbour tuple holds the element's
 * neighbour lists as index TIDs, 2m slots for layer 0 then m slots for
 * each layer above, an invalid TID ending a list that is not full. A
 * neighbour tuple never changes size, so a list is rewritten in place.
 *
 * Every page change goes through generic WAL, so the index survives a
 * crash and streams to replicas. Inserts take a heavyweight lock on the
 * meta page's block number (ExclusiveLock) so that only one changes the
 * graph at a time; scans and VACUUM take only buffer locks.
 */
#ifndef RUHNSW_H
#define RUHNSW_H

#include "ruvector.h"

#include "access/amapi.h"
#include "storage/itemptr.h"

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
/* Levels above this are never drawn (with m = 2 the chance of one is
 * 2^-16 per element; larger m make it far rarer). */
#define RUHNSW_MAX_LEVEL 15

/* Support functions of the operator classes. */
#define RUHNSW_DISTANCE_PROC 1 /* (ruvector, ruvector) -> float8, smaller is closer */
#define RUHNSW_NORM_PROC 2     /* optional: rows whose norm is 0 are not indexed */

typedef struct RuhnswOptions {
	int32 vl_len_; /* varlena header */
	int m;
	int ef_construction;
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
} RuhnswMeta;

#define RUHNSW_ELEMENT 1
#define RUHNSW_NEIGHBORS 2

typedef struct RuhnswElementTuple {
	uint8 type; /* RUHNSW_ELEMENT */
	uint8 level;
	uint8 deleted;
	uint8 unused;
	ItemPointerData heaptid;  /* invalid once deleted */
	ItemPointerData neighbortid;
	Ruvector vec;             /* varlena with its 4-byte header, 4-aligned */
} RuhnswElementTuple;

typedef struct RuhnswNeighborTuple {
	uint8 type; /* RUHNSW_NEIGHBORS */
	uint8 unused;
	uint16 nslots;
	ItemPointerData slots[FLEXIBLE_ARRAY_MEMBER];
} RuhnswNeighborTuple;

#define RUHNSW_ELEMENT_SIZE(dim) (offsetof(RuhnswElementTuple, vec) + RUVECTOR_SIZE(dim))
#define RUHNSW_NSLOTS(m, level) (2 * (m) + (level) * (m))
#define RUHNSW_NEIGHBOR_SIZE(m, level) \
	(offsetof(RuhnswNeighborTuple, slots) + sizeof(ItemPointerData) * RUHNSW_NSLOTS(m, level))

extern int ruhnsw_ef_search;

void ruhnsw_init(void);

#endif /* RUHNSW_H */
