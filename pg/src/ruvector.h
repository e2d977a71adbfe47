/*
 * ruvector.h - the ruvector SQL type as PostgreSQL stores it, and the
 * checks every function of the extension shares.
 *
 * The on-disk layout is a varlena header, the dimension count as int16,
 * an int16 that must be zero (room for a later element type without a
 * format change) and the float32 elements. It is pgvector's layout, so a
 * dump of one type's binary form reads as the other's.
 */
#ifndef RUVECTOR_PG_H
#define RUVECTOR_PG_H

#include "postgres.h"

#include "fmgr.h"

#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* The type's limit; also the limit of the library (RV_MAX_DIM). */
#define RUVECTOR_MAX_DIM 16000

typedef struct Ruvector {
	int32 vl_len_; /* varlena header, never touch directly */
	int16 dim;
	int16 unused;  /* always 0 */
	float x[FLEXIBLE_ARRAY_MEMBER];
} Ruvector;

#define RUVECTOR_SIZE(dim) (offsetof(Ruvector, x) + sizeof(float) * (dim))
#define DatumGetRuvector(d) ((Ruvector *)PG_DETOAST_DATUM(d))
#define PG_GETARG_RUVECTOR_P(n) DatumGetRuvector(PG_GETARG_DATUM(n))
#define PG_RETURN_RUVECTOR_P(v) PG_RETURN_POINTER(v)

Ruvector *ruvector_alloc(int dim);
void ruvector_check_dim(int dim);
void ruvector_check_expected_dim(int32 typmod, int dim);
void ruvector_check_element(float value);
void ruvector_check_same_dims(const Ruvector *a, const Ruvector *b);
int ruvector_cmp_internal(const Ruvector *a, const Ruvector *b);

#endif /* RUVECTOR_PG_H */
