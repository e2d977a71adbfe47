/*
 * ruivfflat_kmeans.c - the centres of a ruivfflat index: k-means over a
 * sample of the table.
 *
 * Initialisation is k-means++ (Arthur and Vassilvitskii): the first centre
 * a sample drawn uniformly, each further one a sample drawn with
 * probability proportional to its squared distance from the nearest
 * centre so far. Lloyd iterations follow, pruned with Hamerly's bounds
 * ("Making k-means even faster", 2010): per sample an upper bound on the
 * distance to its own centre and one lower bound on the distance to every
 * other, so most samples skip the distance computations once the centres
 * settle. The bounds need a metric, so the clustering always runs on the
 * Euclidean distance; for the inner product and cosine the samples are
 * unit vectors and the centres are normalised after every update
 * (spherical k-means), where the nearest centre by Euclidean distance is
 * the one of the largest inner product. It stops when no sample changes
 * its centre, or after RUIVFFLAT_KMEANS_MAX_ITERATIONS iterations.
 *
 * Fewer samples than centres (pgvector's quick path): the distinct
 * samples become centres and the rest are random points of [0,1)^dim,
 * normalised for spherical k-means. A centre that loses all its samples
 * moves to the sample farthest (by its bound) from its own centre.
 *
 * The random numbers come from a fixed seed, so one table gives one index.
 */
#include "ruivfflat.h"

#include <float.h>
#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "simd/simd.h"

#define KMEANS_SEED UINT64CONST(0x5249564633313431)

static inline double euclid(const float *a, const float *b, int dim)
{
	return sqrt((double)rv_simd()->l2sq(a, b, (size_t)dim));
}

/* Unit length; a zero vector stays as it is (false). */
static bool unit(float *v, int dim)
{
	double sum = 0;

	for (int i = 0; i < dim; i++)
		sum += (double)v[i] * v[i];
	if (!(sum > 0))
		return false;
	sum = sqrt(sum);
	for (int i = 0; i < dim; i++)
		v[i] = (float)(v[i] / sum);
	return true;
}

static void random_center(float *c, int dim, bool spherical, pg_prng_state *rng)
{
	for (int i = 0; i < dim; i++)
		c[i] = (float)pg_prng_double(rng);
	if (spherical && !unit(c, dim))
		c[0] = 1;
}

static int row_cmp(const void *a, const void *b, void *arg)
{
	const float *x = *(const float *const *)a, *y = *(const float *const *)b;
	int dim = *(const int *)arg;

	for (int i = 0; i < dim; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

static void quick_centers(float *centers, const float *samples, int n, int dim, int k,
		bool spherical, pg_prng_state *rng)
{
	const float **rows = palloc(sizeof(float *) * Max(n, 1));
	int nc = 0;

	for (int i = 0; i < n; i++)
		rows[i] = samples + (Size)i * dim;
	qsort_arg(rows, n, sizeof(float *), row_cmp, &dim);
	for (int i = 0; i < n; i++)
		if (i == 0 || row_cmp(&rows[i], &rows[i - 1], &dim) != 0)
			memcpy(centers + (Size)nc++ * dim, rows[i], sizeof(float) * dim);
	while (nc < k)
		random_center(centers + (Size)nc++ * dim, dim, spherical, rng);
	pfree(rows);
}

/* A uniform pick of [0, n). */
static int random_index(pg_prng_state *rng, int n)
{
	return (int)pg_prng_uint64_range(rng, 0, (uint64)n - 1);
}

/*
 * k-means++: fills centers and, since every sample meets every centre on
 * the way, the exact nearest centre, distance to it and distance to the
 * second nearest of each sample.
 */
static void init_centers(float *centers, const float *samples, int n, int dim, int k,
		bool spherical, pg_prng_state *rng, int *assign, double *upper, double *lower)
{
	double *weight = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);

	for (int j = 0; j < n; j++) {
		weight[j] = DBL_MAX;
		upper[j] = DBL_MAX;
		lower[j] = DBL_MAX;
		assign[j] = 0;
	}
	memcpy(centers, samples + (Size)random_index(rng, n) * dim, sizeof(float) * dim);
	for (int i = 0; i < k; i++) {
		const float *c = centers + (Size)i * dim;
		double sum = 0, choice;
		int pick = -1;

		CHECK_FOR_INTERRUPTS();
		for (int j = 0; j < n; j++) {
			double d2 = rv_simd()->l2sq(samples + (Size)j * dim, c, (size_t)dim);
			double d = sqrt(d2);

			if (d < upper[j]) {
				lower[j] = upper[j];
				upper[j] = d;
				assign[j] = i;
			} else if (d < lower[j]) {
				lower[j] = d;
			}
			if (d2 < weight[j])
				weight[j] = d2;
			sum += weight[j];
		}
		if (i + 1 == k)
			break;
		/* The next centre by weight; samples already centres weigh 0 and
		 * are never drawn again. All at 0: fewer distinct samples than
		 * lists, and the rest of the centres are random. */
		choice = sum * pg_prng_double(rng);
		for (int j = 0; j < n && sum > 0; j++) {
			if (!(weight[j] > 0))
				continue;
			pick = j;
			choice -= weight[j];
			if (choice <= 0)
				break;
		}
		if (pick >= 0)
			memcpy(centers + (Size)(i + 1) * dim, samples + (Size)pick * dim, sizeof(float) * dim);
		else
			random_center(centers + (Size)(i + 1) * dim, dim, spherical, rng);
	}
	pfree(weight);
}

/* Half the distance from each centre to its nearest other centre: a
 * sample nearer to its centre than that has no nearer one. */
static void half_gaps(double *s, const float *centers, int k, int dim)
{
	for (int j = 0; j < k; j++)
		s[j] = DBL_MAX;
	for (int j = 0; j < k; j++) {
		for (int i = j + 1; i < k; i++) {
			double d = 0.5 * euclid(centers + (Size)j * dim, centers + (Size)i * dim, dim);

			if (d < s[j])
				s[j] = d;
			if (d < s[i])
				s[i] = d;
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Moves every centre to the mean of its samples; a centre without samples
 * to the sample with the largest upper bound among centres that keep at
 * least one other. delta gets how far each centre moved.
 */
static void update_centers(float *centers, const float *samples, int n, int dim, int k,
		bool spherical, const int *assign, const double *upper, double *sums, int *counts,
		float *next, double *delta, bool *taken)
{
	memset(sums, 0, sizeof(double) * k * dim);
	memset(counts, 0, sizeof(int) * k);
	for (int j = 0; j < n; j++) {
		const float *x = samples + (Size)j * dim;
		double *sum = sums + (Size)assign[j] * dim;

		for (int d = 0; d < dim; d++)
			sum[d] += x[d];
		counts[assign[j]]++;
		taken[j] = false;
	}
	for (int i = 0; i < k; i++) {
		float *c = next + (Size)i * dim;

		memcpy(c, centers + (Size)i * dim, sizeof(float) * dim);
		if (counts[i] > 0) {
			for (int d = 0; d < dim; d++)
				c[d] = (float)(sums[(Size)i * dim + d] / counts[i]);
			/* Opposite unit vectors can average to 0: keep the old centre. */
			if (spherical && !unit(c, dim))
				memcpy(c, centers + (Size)i * dim, sizeof(float) * dim);
		} else {
			int far = -1;

			for (int j = 0; j < n; j++)
				if (!taken[j] && counts[assign[j]] > 1 && upper[j] > 0 &&
						(far < 0 || upper[j] > upper[far]))
					far = j;
			if (far >= 0) {
				taken[far] = true;
				counts[assign[far]]--;
				memcpy(c, samples + (Size)far * dim, sizeof(float) * dim);
			}
		}
	}
	for (int i = 0; i < k; i++) {
		delta[i] = euclid(centers + (Size)i * dim, next + (Size)i * dim, dim);
		memcpy(centers + (Size)i * dim, next + (Size)i * dim, sizeof(float) * dim);
	}
}

/*
 * centers (k x dim floats, the caller's) gets k centres for the n samples
 * (n x dim, unit vectors when spherical). Everything else it allocates is
 * freed before it returns.
 */
void ruivfflat_kmeans(float *centers, const float *samples, int n, int dim, int k, bool spherical)
{
	MemoryContext ctx, old;
	pg_prng_state rng;
	int *assign, *counts;
	double *upper, *lower, *s, *delta, *sums;
	float *next;
	bool *taken;

	pg_prng_seed(&rng, KMEANS_SEED);
	ctx = AllocSetContextCreate(CurrentMemoryContext, "ruivfflat k-means", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(ctx);
	if (n <= k) {
		quick_centers(centers, samples, n, dim, k, spherical, &rng);
		goto done;
	}

	assign = palloc_extended(sizeof(int) * n, MCXT_ALLOC_HUGE);
	upper = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);
	lower = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);
	taken = palloc_extended(sizeof(bool) * n, MCXT_ALLOC_HUGE);
	s = palloc(sizeof(double) * k);
	delta = palloc(sizeof(double) * k);
	counts = palloc(sizeof(int) * k);
	sums = palloc_extended(sizeof(double) * k * dim, MCXT_ALLOC_HUGE);
	next = palloc_extended(sizeof(float) * k * dim, MCXT_ALLOC_HUGE);

	init_centers(centers, samples, n, dim, k, spherical, &rng, assign, upper, lower);
	for (int iteration = 0; iteration < RUIVFFLAT_KMEANS_MAX_ITERATIONS; iteration++) {
		double max1 = 0, max2 = 0;
		int max1_at = -1;
		int changes = 0;

		update_centers(centers, samples, n, dim, k, spherical, assign, upper, sums, counts, next,
				delta, taken);
		/* A sample's bounds loosen by how far the centres moved: its own
		 * centre's move for the upper bound, the farthest move of any other
		 * centre for the lower one. */
		for (int i = 0; i < k; i++) {
			if (delta[i] > max1) {
				max2 = max1;
				max1 = delta[i];
				max1_at = i;
			} else if (delta[i] > max2) {
				max2 = delta[i];
			}
		}
		for (int j = 0; j < n; j++) {
			upper[j] += delta[assign[j]];
			lower[j] -= assign[j] == max1_at ? max2 : max1;
		}
		half_gaps(s, centers, k, dim);

		for (int j = 0; j < n; j++) {
			const float *x = samples + (Size)j * dim;
			double bound = Max(s[assign[j]], lower[j]);
			double d1 = DBL_MAX, d2 = DBL_MAX;
			int best = assign[j];

			if (upper[j] <= bound)
				continue;
			upper[j] = euclid(x, centers + (Size)assign[j] * dim, dim);
			if (upper[j] <= bound)
				continue;
			for (int i = 0; i < k; i++) {
				double d = euclid(x, centers + (Size)i * dim, dim);

				/* Ties stay with the current centre. */
				if (d < d1 || (d == d1 && i == assign[j])) {
					d2 = d1;
					d1 = d;
					best = i;
				} else if (d < d2) {
					d2 = d;
				}
			}
			if (best != assign[j]) {
				assign[j] = best;
				changes++;
			}
			upper[j] = d1;
			lower[j] = d2;
			if ((j & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		if (changes == 0)
			break;
	}
done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
}
