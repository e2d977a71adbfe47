/*
 * rbank.c - the ReasoningBank: k-means regions of query space, each with
 * its own running statistics (events, reward, the cheapest ef that met the
 * recall target, the mean gain of each learner).
 *
 * Clustering is k-means++ seeding (each next centre drawn with probability
 * proportional to its squared distance from the nearest centre so far)
 * followed by Lloyd rounds. All randomness comes from an rv_rng seeded with
 * the bank's seed, and sums are taken in a fixed order in double, so the
 * same input always gives bit-identical centroids. A cluster left empty by
 * a Lloyd round takes the point farthest from its own centre, which keeps
 * k regions alive without randomness.
 *
 * rv_rbank_fit works on fresh arrays and swaps them in only on success, so
 * an allocation failure leaves the previous model intact.
 */
#include <float.h>
#include <math.h>

#include "learn/learn.h"
#include "simd/simd.h"

#define RBANK_MAGIC "RVRB"
#define RBANK_VERSION 1
#define RBANK_MAX_K 65536

struct rv_rbank {
	const rv_alloc *a;
	rv_err err;
	uint32_t dim, k;
	uint64_t seed;
	bool fitted;
	float *centroids;      /* k * dim once fitted */
	rv_rbank_stats *stats; /* k */
};

rv_status rv_rbank_create(rv_rbank **out, uint32_t dim, uint32_t k, uint64_t seed,
			  const rv_alloc *a, rv_err *err)
{
	*out = NULL;
	if (dim < 1 || dim > RV_LEARN_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "reasoning bank dim %u out of range 1..%d", dim, RV_LEARN_MAX_DIM);
	if (k < 1 || k > RBANK_MAX_K)
		return rv_err_set(err, RV_EINVAL, "reasoning bank k %u out of range 1..%d", k, RBANK_MAX_K);
	rv_rbank *b = rv_calloc(a, 1, sizeof *b);
	if (!b)
		return rv_err_nomem(err);
	b->a = a;
	b->dim = dim;
	b->k = k;
	b->seed = seed;
	b->stats = rv_calloc(a, k, sizeof *b->stats);
	if (!b->stats) {
		rv_rbank_free(b);
		return rv_err_nomem(err);
	}
	*out = b;
	return RV_OK;
}

void rv_rbank_free(rv_rbank *b)
{
	if (!b)
		return;
	rv_dealloc(b->a, b->centroids);
	rv_dealloc(b->a, b->stats);
	rv_dealloc(b->a, b);
}

const char *rv_rbank_errmsg(const rv_rbank *b) { return b ? b->err.msg : "no reasoning bank"; }
bool rv_rbank_fitted(const rv_rbank *b) { return b->fitted; }
uint32_t rv_rbank_k(const rv_rbank *b) { return b->k; }
const float *rv_rbank_centroids(const rv_rbank *b) { return b->fitted ? b->centroids : NULL; }

/* Nearest of k centres c to x: index, squared distance in *d2. */
static uint32_t nearest(float *d2, const float *c, uint32_t k, uint32_t dim, const float *x)
{
	rv_dist_fn l2 = rv_simd()->l2sq;
	uint32_t best = 0;
	float bd = FLT_MAX;
	for (uint32_t j = 0; j < k; j++) {
		float d = l2(c + (size_t)j * dim, x, dim);
		if (d < bd) {
			bd = d;
			best = j;
		}
	}
	*d2 = bd;
	return best;
}

rv_status rv_rbank_fit(rv_rbank *b, const float *x, size_t n, uint32_t iters)
{
	rv_status st = RV_OK;
	size_t dim = b->dim, k = b->k, nd;
	float *cent = NULL, *dmin = NULL;
	uint32_t *asg = NULL;
	double *sums = NULL;
	size_t *cnt = NULL;
	if (!x)
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank fit: no vectors");
	if (n < k)
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank fit: %zu vectors for k = %zu clusters", n, k);
	if (!rv_mul_ok(n, dim, &nd))
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank fit: %zu vectors is too many", n);
	for (size_t i = 0; i < nd; i++)
		if (!isfinite(x[i]))
			return rv_err_set(&b->err, RV_EINVAL, "reasoning bank fit: vector %zu has a non-finite value",
					  i / dim);
	cent = rv_malloc(b->a, k * dim * sizeof(float));
	dmin = rv_malloc(b->a, n * sizeof(float));
	asg = rv_malloc(b->a, n * sizeof(uint32_t));
	sums = rv_malloc(b->a, k * dim * sizeof(double));
	cnt = rv_malloc(b->a, k * sizeof(size_t));
	if (!cent || !dmin || !asg || !sums || !cnt) {
		st = rv_err_nomem(&b->err);
		goto done;
	}

	/* k-means++ seeding. */
	rv_rng rng;
	rv_rng_seed(&rng, b->seed);
	rv_dist_fn l2 = rv_simd()->l2sq;
	size_t first = (size_t)rv_rng_below(&rng, n);
	memcpy(cent, x + first * dim, dim * sizeof(float));
	for (size_t i = 0; i < n; i++)
		dmin[i] = l2(cent, x + i * dim, dim);
	for (size_t j = 1; j < k; j++) {
		double total = 0;
		for (size_t i = 0; i < n; i++)
			total += dmin[i];
		size_t pick = 0;
		if (total > 0) {
			double t = rv_rng_uniform(&rng) * total, acc = 0;
			pick = n - 1;
			for (size_t i = 0; i < n; i++) {
				acc += dmin[i];
				if (acc > t && dmin[i] > 0) {
					pick = i;
					break;
				}
			}
		} else {
			/* All points coincide with a centre: any choice is as good. */
			pick = (size_t)rv_rng_below(&rng, n);
		}
		float *c = cent + j * dim;
		memcpy(c, x + pick * dim, dim * sizeof(float));
		for (size_t i = 0; i < n; i++) {
			float d = l2(c, x + i * dim, dim);
			if (d < dmin[i])
				dmin[i] = d;
		}
	}

	/* Lloyd rounds; asg starts out of range so round one counts as a change. */
	for (size_t i = 0; i < n; i++)
		asg[i] = UINT32_MAX;
	for (uint32_t it = 0; it < (iters ? iters : 1); it++) {
		size_t changed = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t c = nearest(&dmin[i], cent, (uint32_t)k, (uint32_t)dim, x + i * dim);
			changed += c != asg[i];
			asg[i] = c;
		}
		if (!changed)
			break;
		memset(sums, 0, k * dim * sizeof(double));
		memset(cnt, 0, k * sizeof(size_t));
		for (size_t i = 0; i < n; i++) {
			double *s = sums + (size_t)asg[i] * dim;
			const float *xi = x + i * dim;
			for (size_t t = 0; t < dim; t++)
				s[t] += xi[t];
			cnt[asg[i]]++;
		}
		for (size_t j = 0; j < k; j++) {
			float *c = cent + j * dim;
			if (cnt[j]) {
				for (size_t t = 0; t < dim; t++)
					c[t] = (float)(sums[j * dim + t] / (double)cnt[j]);
				continue;
			}
			/* Empty: take the worst-served point, and stop it counting as
			 * worst for the next empty cluster. */
			size_t far = 0;
			for (size_t i = 1; i < n; i++)
				if (dmin[i] > dmin[far])
					far = i;
			memcpy(c, x + far * dim, dim * sizeof(float));
			dmin[far] = 0;
		}
	}
	rv_dealloc(b->a, b->centroids);
	b->centroids = cent;
	cent = NULL;
	b->fitted = true;
	memset(b->stats, 0, k * sizeof *b->stats);
done:
	rv_dealloc(b->a, cnt);
	rv_dealloc(b->a, sums);
	rv_dealloc(b->a, asg);
	rv_dealloc(b->a, dmin);
	rv_dealloc(b->a, cent);
	return st;
}

rv_status rv_rbank_assign(uint32_t *cluster, float *dist2, const rv_rbank *b, const float *q)
{
	if (!b->fitted || !q)
		return rv_err_set((rv_err *)&b->err, RV_EINVAL,
				  !q ? "reasoning bank assign: no query" : "reasoning bank assign: not fitted yet");
	float d;
	*cluster = nearest(&d, b->centroids, b->k, b->dim, q);
	if (dist2)
		*dist2 = d;
	return RV_OK;
}

static rv_status check_cluster(rv_rbank *b, uint32_t cluster)
{
	if (!b->fitted)
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: not fitted yet");
	if (cluster >= b->k)
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: cluster %u out of range (k = %u)", cluster, b->k);
	return RV_OK;
}

rv_status rv_rbank_record(rv_rbank *b, uint32_t cluster, float reward)
{
	rv_status st = check_cluster(b, cluster);
	if (st != RV_OK)
		return st;
	if (!isfinite(reward))
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: reward %g is not finite", reward);
	b->stats[cluster].count++;
	b->stats[cluster].reward_sum += reward;
	return RV_OK;
}

rv_status rv_rbank_record_gain(rv_rbank *b, uint32_t cluster, rv_learner learner, float gain)
{
	rv_status st = check_cluster(b, cluster);
	if (st != RV_OK)
		return st;
	if ((unsigned)learner >= RV_LEARNER_COUNT)
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: learner %d unknown", (int)learner);
	if (!isfinite(gain))
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: gain %g is not finite", gain);
	rv_rbank_stats *s = &b->stats[cluster];
	/* Running mean: no sum to overflow or lose precision over long runs. */
	s->learner_n[learner]++;
	s->learner_gain[learner] += (gain - s->learner_gain[learner]) / (double)s->learner_n[learner];
	return RV_OK;
}

rv_status rv_rbank_record_ef(rv_rbank *b, uint32_t cluster, uint32_t ef, float recall, float target)
{
	rv_status st = check_cluster(b, cluster);
	if (st != RV_OK)
		return st;
	if (ef == 0 || !(recall >= 0 && recall <= 1) || !(target >= 0 && target <= 1))
		return rv_err_set(&b->err, RV_EINVAL, "reasoning bank: ef %u, recall %g, target %g (need ef > 0, "
				  "recall and target in [0, 1])", ef, recall, target);
	rv_rbank_stats *s = &b->stats[cluster];
	if (recall >= target && (s->best_ef == 0 || ef < s->best_ef)) {
		s->best_ef = ef;
		s->best_ef_recall = recall;
	}
	return RV_OK;
}

const rv_rbank_stats *rv_rbank_get_stats(const rv_rbank *b, uint32_t cluster)
{
	return cluster < b->k ? &b->stats[cluster] : NULL;
}

rv_learner rv_rbank_best_learner(const rv_rbank *b, uint32_t cluster, uint64_t min_n)
{
	if (cluster >= b->k)
		return RV_LEARNER_NONE;
	const rv_rbank_stats *s = &b->stats[cluster];
	rv_learner best = RV_LEARNER_NONE;
	double bg = 0;
	for (int j = 1; j < RV_LEARNER_COUNT; j++)
		if (s->learner_n[j] >= min_n && s->learner_n[j] > 0 && s->learner_gain[j] > bg) {
			bg = s->learner_gain[j];
			best = (rv_learner)j;
		}
	return best;
}

/* ------------------------------------------------------------------------
 * Byte form
 *
 *   magic "RVRB", u16 version, u16 flags (bit 0 fitted), u32 dim, u32 k,
 *   u64 seed, then if fitted f32 centroids[k * dim], then per cluster:
 *   u64 count, f64 reward_sum (as u64 bits), u32 best_ef, f32
 *   best_ef_recall, per learner u64 n and f64 gain; u64 XXH3.
 * ---------------------------------------------------------------------- */

#define RBANK_STATS_BYTES (8 + 8 + 4 + 4 + RV_LEARNER_COUNT * 16)

static void put_f64(rv_buf *o, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	rv_buf_u64(o, u);
}

static double get_f64(rv_reader *r)
{
	uint64_t u = rv_reader_u64(r);
	double v;
	memcpy(&v, &u, 8);
	return v;
}

rv_status rv_rbank_save(rv_buf *out, const rv_rbank *b)
{
	size_t start = out->len;
	rv_buf_put(out, RBANK_MAGIC, 4);
	rv_buf_u16(out, RBANK_VERSION);
	rv_buf_u16(out, b->fitted ? 1 : 0);
	rv_buf_u32(out, b->dim);
	rv_buf_u32(out, b->k);
	rv_buf_u64(out, b->seed);
	if (b->fitted)
		for (size_t i = 0; i < (size_t)b->k * b->dim; i++)
			rv_buf_f32(out, b->centroids[i]);
	for (uint32_t j = 0; j < b->k; j++) {
		const rv_rbank_stats *s = &b->stats[j];
		rv_buf_u64(out, s->count);
		put_f64(out, s->reward_sum);
		rv_buf_u32(out, s->best_ef);
		rv_buf_f32(out, s->best_ef_recall);
		for (int t = 0; t < RV_LEARNER_COUNT; t++) {
			rv_buf_u64(out, s->learner_n[t]);
			put_f64(out, s->learner_gain[t]);
		}
	}
	rv_learn_seal(out, start);
	if (out->failed) {
		out->len = start;
		return RV_ENOMEM;
	}
	return RV_OK;
}

rv_status rv_rbank_load(rv_rbank **out, const void *bytes, size_t n, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_rbank *b = NULL;
	rv_reader r;
	*out = NULL;
	if (!bytes || !rv_learn_check_seal(bytes, n))
		return rv_err_set(err, RV_ECORRUPT, "reasoning bank: checksum mismatch or truncated (%zu bytes)", n);
	rv_reader_init(&r, bytes, n - 8);
	const uint8_t *magic = rv_reader_bytes(&r, 4);
	if (!magic || memcmp(magic, RBANK_MAGIC, 4) != 0)
		return rv_err_set(err, RV_ECORRUPT, "reasoning bank: bad magic");
	uint16_t version = rv_reader_u16(&r);
	if (version > RBANK_VERSION)
		return rv_err_set(err, RV_EVERSION, "reasoning bank has format version %u, this build reads up to %d",
				  version, RBANK_VERSION);
	uint16_t flags = rv_reader_u16(&r);
	uint32_t dim = rv_reader_u32(&r), k = rv_reader_u32(&r);
	uint64_t seed = rv_reader_u64(&r);
	if (r.bad || version == 0 || (flags & ~1u) || dim < 1 || dim > RV_LEARN_MAX_DIM || k < 1 || k > RBANK_MAX_K)
		return rv_err_set(err, RV_ECORRUPT, "reasoning bank: bad header (version %u, flags 0x%x, dim %u, k %u)",
				  version, flags, dim, k);
	size_t need = (size_t)k * RBANK_STATS_BYTES + ((flags & 1) ? (size_t)k * dim * 4 : 0);
	if (rv_reader_left(&r) != need)
		return rv_err_set(err, RV_ECORRUPT, "reasoning bank: %zu bytes of body, expected %zu",
				  rv_reader_left(&r), need);
	if ((st = rv_rbank_create(&b, dim, k, seed, a, err)) != RV_OK)
		return st;
	if (flags & 1) {
		b->centroids = rv_malloc(a, (size_t)k * dim * sizeof(float));
		if (!b->centroids) {
			st = rv_err_nomem(err);
			goto done;
		}
		for (size_t i = 0; i < (size_t)k * dim; i++) {
			b->centroids[i] = rv_reader_f32(&r);
			if (!isfinite(b->centroids[i])) {
				st = rv_err_set(err, RV_ECORRUPT, "reasoning bank: centroid value %zu is not finite", i);
				goto done;
			}
		}
		b->fitted = true;
	}
	for (uint32_t j = 0; j < k; j++) {
		rv_rbank_stats *s = &b->stats[j];
		s->count = rv_reader_u64(&r);
		s->reward_sum = get_f64(&r);
		s->best_ef = rv_reader_u32(&r);
		s->best_ef_recall = rv_reader_f32(&r);
		bool ok = isfinite(s->reward_sum) && s->best_ef_recall >= 0 && s->best_ef_recall <= 1;
		for (int t = 0; t < RV_LEARNER_COUNT; t++) {
			s->learner_n[t] = rv_reader_u64(&r);
			s->learner_gain[t] = get_f64(&r);
			ok = ok && isfinite(s->learner_gain[t]);
		}
		if (!ok) {
			st = rv_err_set(err, RV_ECORRUPT, "reasoning bank: statistics of cluster %u out of range", j);
			goto done;
		}
	}
	*out = b;
	b = NULL;
done:
	rv_rbank_free(b);
	return st;
}

uint32_t rv_rbank_dim(const rv_rbank *b) { return b->dim; }
