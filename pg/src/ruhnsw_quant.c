/*
 * ruhnsw_quant.c - scalar int8 (sq8) codes in the ruhnsw index, the
 * library's SQ8 scheme (src/quant/sq8.c) on PostgreSQL pages.
 *
 * With quantization = 'sq8' an element tuple holds, instead of the float
 * vector, one byte per dimension: level v in 0..255 standing for
 * lo[d] + v * step[d], plus the squared norm of that decoded vector. lo
 * and step come from the per-dimension minimum and maximum of the rows the
 * build holds in memory (all of them unless the build outgrew
 * maintenance_work_mem); a value outside the trained range later is
 * clamped to its end. The quantizer never changes after the build, so it
 * lies on pages of its own (quantizer tuples, right after the meta page),
 * read once per graph opened and never locked against writers.
 *
 * Codes replace the vectors rather than sit beside them: the point is an
 * index several times smaller (a 784-d vector takes 3,144 bytes, its
 * code 796), and the exact vector is in the heap row anyway, which is
 * where the scan's re-check (ruhnsw_scan.c) reads it.
 *
 * A scan computes its distances on the codes without decoding them, as
 * the library does: the query is folded once into weights w[d] = q[d] *
 * step[d] and k = sum q[d] lo[d], so dot(q, decoded) = k + sum w[d] v[d],
 * and the sum runs on the library's u8 x i8 dot-product kernel (u8i8dot,
 * src/simd/). The library rounds the weights to int8, a step of 1/127 of
 * the largest: too coarse when one dimension's range dwarfs the others'
 * (the others' weights all round to a few steps). Here each weight is a
 * 15-bit integer split into a high and a low int8 part, w = alpha * (128
 * wh + wl), two kernel calls per element, exact in int32, with an error
 * of 1/32512 of the largest weight. L2 adds |q|^2 and the stored norm,
 * cosine divides by the two norms. Inserts and VACUUM choose links by
 * distances between decoded vectors, exact for what the codes say.
 * Only the operator classes whose distance has that form take sq8: L1 has
 * none (a sum of absolute values does not expand into a dot product).
 */
#include "ruhnsw.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_opfamily.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "simd/simd.h"

/* Rounding to nearest (ties to even) of a float in [0, 255] without a
 * call: after adding 1.5 * 2^23 the fraction is gone (src/quant/sq8.c). */
#define ROUND_MAGIC 12582912.0f

void ruhnsw_quant_check_opclass(Relation index, RuhnswDistKind kind)
{
	HeapTuple tup;
	char *name = "unknown";

	if (kind != RUHNSW_DIST_FMGR)
		return;
	tup = SearchSysCache1(OPFAMILYOID, ObjectIdGetDatum(index->rd_opfamily[0]));
	if (HeapTupleIsValid(tup)) {
		name = pstrdup(NameStr(((Form_pg_opfamily)GETSTRUCT(tup))->opfname));
		ReleaseSysCache(tup);
	}
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			errmsg("ruhnsw quantization \"sq8\" does not support operator class %s", name),
			errhint("Use quantization = 'none', or one of ruvector_l2_ops, ruvector_ip_ops, "
					"ruvector_cosine_ops.")));
}

RuhnswQuant *ruhnsw_quant_train(Ruvector *(*vector_at)(void *arg, uint32 i), void *arg,
		uint32 n, int dim)
{
	RuhnswQuant *quant;
	float *hi;

	if (n == 0 || dim <= 0)
		return NULL;
	quant = palloc(sizeof(RuhnswQuant));
	quant->dim = dim;
	quant->lo = palloc(sizeof(float) * dim);
	quant->step = palloc(sizeof(float) * dim);
	/* step holds the running maximum until the end. */
	hi = quant->step;
	memcpy(quant->lo, vector_at(arg, 0)->x, sizeof(float) * dim);
	memcpy(hi, quant->lo, sizeof(float) * dim);
	for (uint32 i = 1; i < n; i++) {
		const float *x = vector_at(arg, i)->x;

		for (int d = 0; d < dim; d++) {
			quant->lo[d] = x[d] < quant->lo[d] ? x[d] : quant->lo[d];
			hi[d] = x[d] > hi[d] ? x[d] : hi[d];
		}
	}
	for (int d = 0; d < dim; d++) {
		/* In double: hi - lo of finite floats may overflow float. A
		 * constant dimension gets step 1: every trained value is level
		 * 0, and a later value a few units away still has a level. */
		double s = ((double)hi[d] - (double)quant->lo[d]) / 255.0;

		quant->step[d] = s > 0 && (float)s > 0 ? (float)s : 1.0f;
	}
	return quant;
}

/* Dimensions one quantizer page holds: one tuple filling the page. */
static int dims_per_page(void)
{
	Size room = RUHNSW_EMPTY_PAGE_SPACE - sizeof(ItemIdData) - offsetof(RuhnswQuantTuple, pairs);

	return (int)(room / (2 * sizeof(float)));
}

BlockNumber ruhnsw_quant_npages(const RuhnswQuant *quant)
{
	int per = dims_per_page();

	return quant ? (BlockNumber)((quant->dim + per - 1) / per) : 0;
}

void ruhnsw_quant_page(const RuhnswQuant *quant, BlockNumber i, Page page)
{
	int per = dims_per_page();
	int first = (int)i * per, n = Min(per, quant->dim - first);
	Size size = offsetof(RuhnswQuantTuple, pairs) + sizeof(float) * 2 * n;
	RuhnswQuantTuple *qt = palloc0(size);

	qt->type = RUHNSW_QUANT;
	qt->first = first;
	qt->n = n;
	for (int d = 0; d < n; d++) {
		qt->pairs[2 * d] = quant->lo[first + d];
		qt->pairs[2 * d + 1] = quant->step[first + d];
	}
	PageInit(page, BLCKSZ, 0);
	if (PageAddItem(page, (Item)qt, size, InvalidOffsetNumber, false, false) != FirstOffsetNumber)
		elog(ERROR, "ruhnsw: a quantizer tuple of %d dimensions does not fit on a page", n);
	pfree(qt);
}

RuhnswQuant *ruhnsw_quant_load(Relation index, const RuhnswMeta *meta)
{
	RuhnswQuant *quant;
	int got = 0;

	if (meta->quantization != RUHNSW_QUANT_SQ8 || meta->quant_npages == 0)
		return NULL;
	if (meta->dim <= 0 || meta->quant_start == RUHNSW_META_BLKNO ||
			meta->quant_npages != (uint32)ruhnsw_quant_npages(&(RuhnswQuant){meta->dim, NULL, NULL}))
		goto corrupt;
	quant = palloc(sizeof(RuhnswQuant));
	quant->dim = meta->dim;
	quant->lo = palloc(sizeof(float) * meta->dim);
	quant->step = palloc(sizeof(float) * meta->dim);
	for (uint32 i = 0; i < meta->quant_npages; i++) {
		Buffer buf = ReadBuffer(index, meta->quant_start + i);
		Page page;
		RuhnswQuantTuple *qt;
		bool bad;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		qt = PageGetMaxOffsetNumber(page) == FirstOffsetNumber
				? (RuhnswQuantTuple *)PageGetItem(page, PageGetItemId(page, FirstOffsetNumber))
				: NULL;
		bad = qt == NULL || qt->type != RUHNSW_QUANT || qt->first != got || qt->n <= 0 ||
				qt->n > meta->dim - got;
		if (!bad) {
			for (int d = 0; d < qt->n; d++) {
				quant->lo[got + d] = qt->pairs[2 * d];
				quant->step[got + d] = qt->pairs[2 * d + 1];
				if (!isfinite(quant->lo[got + d]) || !(quant->step[got + d] > 0) ||
						!isfinite(quant->step[got + d]))
					bad = true;
			}
			got += qt->n;
		}
		UnlockReleaseBuffer(buf);
		if (bad)
			goto corrupt;
	}
	if (got != meta->dim)
		goto corrupt;
	return quant;
corrupt:
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
			errmsg("index \"%s\" has a damaged sq8 quantizer (%u pages from block %u for %d dimensions)",
					RelationGetRelationName(index), meta->quant_npages, meta->quant_start,
					meta->dim)));
	return NULL;
}

void ruhnsw_quant_encode(const RuhnswQuant *quant, const Ruvector *v, RuhnswCode *code)
{
	double norm = 0;

	SET_VARSIZE(code, RUHNSW_CODE_SIZE(quant->dim));
	code->dim = quant->dim;
	code->kind = RUHNSW_CODE_SQ8;
	for (int d = 0; d < quant->dim; d++) {
		float l = (v->x[d] - quant->lo[d]) / quant->step[d];
		float back;

		/* !(l > 0) catches NaN too; values past the range clamp. */
		l = !(l > 0) ? 0.0f : l > 255.0f ? 255.0f : l;
		l = (l + ROUND_MAGIC) - ROUND_MAGIC;
		code->level[d] = (uint8)l;
		back = quant->lo[d] + quant->step[d] * l;
		norm += (double)back * back;
	}
	code->norm = (float)norm;
}

void ruhnsw_quant_decode(const RuhnswQuant *quant, const RuhnswCode *code, Ruvector *out)
{
	SET_VARSIZE(out, RUVECTOR_SIZE(quant->dim));
	out->dim = quant->dim;
	out->unused = 0;
	for (int d = 0; d < quant->dim; d++)
		out->x[d] = quant->lo[d] + quant->step[d] * (float)code->level[d];
}

/* The largest scaled weight: 127 * 128 + 127 would overflow the low
 * part's rounding, so the high part stays within -127 .. 127. */
#define WEIGHT_MAX (127.0 * 128.0)

void ruhnsw_quant_fold(const RuhnswQuant *quant, const Ruvector *q, RuhnswQuantQuery *out)
{
	double wmax = 0, k = 0, qnorm = 0;
	double inv;

	if (out->wh == NULL) {
		out->wh = palloc(quant->dim);
		out->wl = palloc(quant->dim);
	}
	for (int d = 0; d < quant->dim; d++) {
		double w = fabs((double)q->x[d] * quant->step[d]);

		wmax = w > wmax ? w : wmax;
		k += (double)q->x[d] * quant->lo[d];
		qnorm += (double)q->x[d] * q->x[d];
	}
	/* A zero query has no weights: every dot product is k = 0. */
	out->alpha = wmax > 0 ? wmax / WEIGHT_MAX : 1.0;
	inv = 1.0 / out->alpha;
	for (int d = 0; d < quant->dim; d++) {
		double w = rint((double)q->x[d] * quant->step[d] * inv);
		int wi = (int)(w > WEIGHT_MAX ? WEIGHT_MAX : w < -WEIGHT_MAX ? -WEIGHT_MAX : w);
		/* wi = 128 wh + wl with wl in -64 .. 63; floor division by 128
		 * written as a shift of a positive number. */
		int wh = ((wi + 64 + 128 * 128) >> 7) - 128;

		out->wh[d] = (int8)wh;
		out->wl[d] = (int8)(wi - 128 * wh);
	}
	out->q = q;
	out->k = k;
	out->qnorm = qnorm;
}

double ruhnsw_quant_distance(RuhnswDistKind kind, const RuhnswQuantQuery *qq,
		const RuhnswCode *code)
{
	const rv_simd_ops *ops = rv_simd();
	int32 hi = ops->u8i8dot(code->level, qq->wh, (size_t)code->dim);
	int32 lo = ops->u8i8dot(code->level, qq->wl, (size_t)code->dim);
	double dot = qq->k + qq->alpha * (128.0 * hi + lo);
	double denom, sim;

	switch (kind) {
	case RUHNSW_DIST_L2SQ:
		/* Never below 0, which a rounded expansion could give. */
		return Max(qq->qnorm - 2 * dot + (double)code->norm, 0.0);
	case RUHNSW_DIST_NEG_IP:
		return -dot;
	case RUHNSW_DIST_COSINE:
		denom = sqrt(qq->qnorm * (double)code->norm);
		/* A code that decodes to zero has no direction: as far as any. */
		if (!(denom > 0))
			return 1.0;
		sim = dot / denom;
		sim = sim > 1 ? 1 : sim < -1 ? -1 : sim;
		return 1.0 - sim;
	case RUHNSW_DIST_FMGR:
		break;
	}
	elog(ERROR, "ruhnsw: no distance on sq8 codes for this operator class");
	return 0;
}
