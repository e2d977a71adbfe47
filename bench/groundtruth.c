/*
 * groundtruth.c - exact k nearest neighbours of every query in a base set,
 * by brute force on all cores, written as .ivecs: the ground truth that
 * recall is measured against.
 *
 *   groundtruth BASE.fvecs QUERIES.fvecs K OUT.ivecs [--threads N] [--check N]
 *               [--metric l2|cosine|ip]
 *
 * --metric (default l2) is the order: l2 by Euclidean distance, cosine by
 * 1 - cos(a, b) (both sides are normalised once after loading, as the
 * engines do on insert), ip by the negative inner product.
 *
 * OUT.ivecs has one row per query: int32 K, then K int32 indices into BASE,
 * nearest first; equal distances are ordered by index, so the output is
 * deterministic.
 *
 * Speed: queries are taken in blocks of QBLOCK by the worker threads; each
 * base vector is read from memory once per block and compared with every
 * query of the block while the block stays in cache. The distance kernel
 * keeps LANES independent float partial sums so the compiler vectorises it
 * without -ffast-math (-O3 -march=native), and adds the partial sums in
 * double.
 *
 * Exactness: for data whose values are small integers (image pixels 0..255)
 * every partial sum is an integer below 2^24, hence exact in float, and the
 * double total is exact too. For other data the result is a float-precision
 * ranking. Either way --check N (default 3) recomputes N evenly spaced
 * queries entirely in double and fails unless every reported neighbour's
 * exact distance equals the exact distance at its rank (ties may swap ids).
 * For cosine and ip the tolerance is absolute (1e-6): those pass through 0.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LANES 16
#define QBLOCK 32

typedef struct fvecs {
	float *v;
	size_t n, dim;
} fvecs;

typedef enum gt_metric { GT_L2, GT_COSINE, GT_IP } gt_metric;

typedef struct cand {
	double d;
	int32_t i;
} cand;

typedef struct job {
	const fvecs *base, *queries;
	size_t k;
	gt_metric metric;
	int32_t *out;           /* queries->n * k */
	size_t next_block;      /* next query block to take, under lock */
	pthread_mutex_t lock;
} job;

static int load_fvecs(fvecs *f, const char *path)
{
	int rc = -1;
	unsigned char *buf = NULL;
	FILE *in = fopen(path, "rb");
	if (!in) {
		fprintf(stderr, "groundtruth: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(in, 0, SEEK_END) != 0) {
		fprintf(stderr, "groundtruth: %s: %s\n", path, strerror(errno));
		goto done;
	}
	long bytes = ftell(in);
	rewind(in);
	int32_t d = 0;
	if (bytes < 4 || fread(&d, 4, 1, in) != 1 || d <= 0 || d > 16000) {
		fprintf(stderr, "groundtruth: %s: bad first dimension %d\n", path, (int)d);
		goto done;
	}
	size_t row = 4 + 4 * (size_t)d;
	if ((size_t)bytes % row != 0) {
		fprintf(stderr, "groundtruth: %s: %ld bytes is not a whole number of %zu-byte rows\n",
			path, bytes, row);
		goto done;
	}
	f->dim = (size_t)d;
	f->n = (size_t)bytes / row;
	f->v = malloc(f->n * f->dim * sizeof(float));
	buf = malloc(row);
	if (!f->v || !buf) {
		fprintf(stderr, "groundtruth: out of memory loading %s\n", path);
		goto done;
	}
	rewind(in);
	for (size_t i = 0; i < f->n; i++) {
		int32_t di;
		if (fread(buf, 1, row, in) != row) {
			fprintf(stderr, "groundtruth: %s: short read at row %zu\n", path, i);
			goto done;
		}
		memcpy(&di, buf, 4);
		if (di != d) {
			fprintf(stderr, "groundtruth: %s: row %zu has dimension %d, row 0 has %d\n",
				path, i, (int)di, (int)d);
			goto done;
		}
		memcpy(f->v + i * f->dim, buf + 4, 4 * f->dim);
	}
	rc = 0;
done:
	free(buf);
	fclose(in);
	if (rc != 0) {
		free(f->v);
		f->v = NULL;
	}
	return rc;
}

/* Squared L2 distance; see "Exactness" at the top. */
static double l2sq(const float *restrict a, const float *restrict b, size_t dim)
{
	float acc[LANES] = { 0 };
	size_t j = 0;
	for (; j + LANES <= dim; j += LANES)
		for (size_t t = 0; t < LANES; t++) {
			float e = a[j + t] - b[j + t];
			acc[t] += e * e;
		}
	double s = 0;
	for (size_t t = 0; t < LANES; t++)
		s += acc[t];
	for (; j < dim; j++) {
		double e = (double)a[j] - b[j];
		s += e * e;
	}
	return s;
}

/* Negative inner product, the same lane layout as l2sq. */
static double negdot(const float *restrict a, const float *restrict b, size_t dim)
{
	float acc[LANES] = { 0 };
	size_t j = 0;
	for (; j + LANES <= dim; j += LANES)
		for (size_t t = 0; t < LANES; t++)
			acc[t] += a[j + t] * b[j + t];
	double s = 0;
	for (size_t t = 0; t < LANES; t++)
		s += acc[t];
	for (; j < dim; j++)
		s += (double)a[j] * b[j];
	return -s;
}

static double negdot_exact(const float *a, const float *b, size_t dim)
{
	double s = 0;
	for (size_t j = 0; j < dim; j++)
		s += (double)a[j] * b[j];
	return -s;
}

/* Scale every row to unit length (norm taken in double). Cosine is
 * undefined for a zero row, so one is an error naming the file. */
static int normalise_rows(fvecs *f, const char *what)
{
	size_t zero = 0;
	for (size_t i = 0; i < f->n; i++) {
		float *x = f->v + i * f->dim;
		double s = 0;
		for (size_t j = 0; j < f->dim; j++)
			s += (double)x[j] * x[j];
		if (s == 0) {
			zero++;
			continue;
		}
		double inv = 1.0 / sqrt(s);
		for (size_t j = 0; j < f->dim; j++)
			x[j] = (float)(x[j] * inv);
	}
	if (zero)
		fprintf(stderr, "groundtruth: %s has %zu zero rows; cosine is undefined for them\n",
			what, zero);
	return zero ? -1 : 0;
}

static double l2sq_exact(const float *a, const float *b, size_t dim)
{
	double s = 0;
	for (size_t j = 0; j < dim; j++) {
		double e = (double)a[j] - b[j];
		s += e * e;
	}
	return s;
}

/* a is farther than b: larger distance, or equal distance and larger index. */
static int worse(const cand *a, const cand *b)
{
	return a->d > b->d || (a->d == b->d && a->i > b->i);
}

/* Max-heap of the k best so far, the worst at [0] so that a candidate that
 * cannot enter is rejected by one comparison. */
static void heap_push(cand *h, size_t *n, size_t k, cand c)
{
	if (*n < k) {
		size_t i = (*n)++;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (!worse(&c, &h[p]))
				break;
			h[i] = h[p];
			i = p;
		}
		h[i] = c;
		return;
	}
	if (!worse(&h[0], &c))
		return;
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const cand *mc = &c;
		if (l < k && worse(&h[l], mc)) {
			m = l;
			mc = &h[l];
		}
		if (r < k && worse(&h[r], mc))
			m = r;
		if (m == i)
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = c;
}

static int cand_cmp(const void *pa, const void *pb)
{
	const cand *a = pa, *b = pb;
	return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

static void *worker(void *arg)
{
	job *jb = arg;
	const fvecs *base = jb->base, *qs = jb->queries;
	size_t k = jb->k, dim = base->dim;
	cand *heaps = malloc(QBLOCK * k * sizeof(cand));
	size_t fill[QBLOCK];
	if (!heaps) {
		fprintf(stderr, "groundtruth: out of memory in a worker\n");
		return (void *)1;
	}
	for (;;) {
		pthread_mutex_lock(&jb->lock);
		size_t q0 = jb->next_block;
		jb->next_block += QBLOCK;
		pthread_mutex_unlock(&jb->lock);
		if (q0 >= qs->n)
			break;
		size_t nq = qs->n - q0 < QBLOCK ? qs->n - q0 : QBLOCK;
		memset(fill, 0, sizeof fill);
		for (size_t i = 0; i < base->n; i++) {
			const float *x = base->v + i * dim;
			for (size_t q = 0; q < nq; q++) {
				const float *qv = qs->v + (q0 + q) * dim;
				cand c = { jb->metric == GT_L2 ? l2sq(qv, x, dim) : negdot(qv, x, dim),
					   (int32_t)i };
				heap_push(heaps + q * k, &fill[q], k, c);
			}
		}
		for (size_t q = 0; q < nq; q++) {
			cand *h = heaps + q * k;
			qsort(h, fill[q], sizeof(cand), cand_cmp);
			for (size_t r = 0; r < k; r++)
				jb->out[(q0 + q) * k + r] = r < fill[q] ? h[r].i : -1;
		}
	}
	free(heaps);
	return NULL;
}

/* Recompute query q in double over the whole base and compare rank by rank. */
static int check_query(const fvecs *base, const fvecs *qs, size_t q, size_t k, const int32_t *row,
		       gt_metric metric)
{
	double (*dist)(const float *, const float *, size_t) =
		metric == GT_L2 ? l2sq_exact : negdot_exact;
	int rc = -1;
	cand *all = malloc(base->n * sizeof(cand));
	if (!all) {
		fprintf(stderr, "groundtruth: out of memory in the check\n");
		return -1;
	}
	const float *qv = qs->v + q * qs->dim;
	for (size_t i = 0; i < base->n; i++)
		all[i] = (cand){ dist(qv, base->v + i * base->dim, base->dim), (int32_t)i };
	qsort(all, base->n, sizeof(cand), cand_cmp);
	for (size_t r = 0; r < k && r < base->n; r++) {
		if (row[r] < 0 || (size_t)row[r] >= base->n) {
			fprintf(stderr, "groundtruth: check: query %zu rank %zu has index %d\n", q, r,
				(int)row[r]);
			goto done;
		}
		double got = dist(qv, base->v + (size_t)row[r] * base->dim, base->dim);
		double want = all[r].d;
		double tol = metric == GT_L2 ? 1e-6 * (want > 1 ? want : 1) : 1e-6;
		if (fabs(got - want) > tol) {
			fprintf(stderr, "groundtruth: check: query %zu rank %zu: index %d at squared "
				"distance %.9g, exact answer %d at %.9g\n", q, r, (int)row[r], got,
				(int)all[r].i, want);
			goto done;
		}
	}
	rc = 0;
done:
	free(all);
	return rc;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int rc = 1;
	fvecs base = { 0 }, qs = { 0 };
	int32_t *out = NULL;
	pthread_t *tids = NULL;
	FILE *f = NULL;
	char tmp[4096];
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	long check = 3;
	gt_metric metric = GT_L2;
	const char *metric_name = "l2";
	const char *pos[4];
	int npos = 0;

	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc)
			threads = strtol(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--check") == 0 && a + 1 < argc)
			check = strtol(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--metric") == 0 && a + 1 < argc) {
			metric_name = argv[++a];
			if (strcmp(metric_name, "l2") == 0)
				metric = GT_L2;
			else if (strcmp(metric_name, "cosine") == 0)
				metric = GT_COSINE;
			else if (strcmp(metric_name, "ip") == 0)
				metric = GT_IP;
			else {
				fprintf(stderr, "groundtruth: --metric must be l2, cosine or ip, got "
					"\"%s\"\n", metric_name);
				return 2;
			}
		} else if (npos < 4 && argv[a][0] != '-')
			pos[npos++] = argv[a];
		else {
			npos = -1;
			break;
		}
	}
	if (npos != 4) {
		fprintf(stderr, "usage: groundtruth BASE.fvecs QUERIES.fvecs K OUT.ivecs "
			"[--threads N] [--check N] [--metric l2|cosine|ip]\n");
		return 2;
	}
	char *end;
	long k = strtol(pos[2], &end, 10);
	if (*end || k < 1 || k > 10000) {
		fprintf(stderr, "groundtruth: K must be 1..10000, got %s\n", pos[2]);
		return 2;
	}
	if (threads < 1 || threads > 256) {
		fprintf(stderr, "groundtruth: --threads must be 1..256, got %ld\n", threads);
		return 2;
	}
	if (check < 0) {
		fprintf(stderr, "groundtruth: --check must be >= 0, got %ld\n", check);
		return 2;
	}
	if (snprintf(tmp, sizeof tmp, "%s.tmp", pos[3]) >= (int)sizeof tmp) {
		fprintf(stderr, "groundtruth: output path too long\n");
		return 2;
	}
	if (load_fvecs(&base, pos[0]) != 0 || load_fvecs(&qs, pos[1]) != 0)
		goto done;
	if (base.dim != qs.dim) {
		fprintf(stderr, "groundtruth: dimension mismatch: base has %zu, queries have %zu\n",
			base.dim, qs.dim);
		goto done;
	}
	if (metric == GT_COSINE &&
	    (normalise_rows(&base, pos[0]) != 0 || normalise_rows(&qs, pos[1]) != 0))
		goto done;
	if ((size_t)k > base.n) {
		fprintf(stderr, "groundtruth: K = %ld exceeds the %zu base vectors\n", k, base.n);
		goto done;
	}

	double t0 = now_sec();
	out = malloc(qs.n * (size_t)k * sizeof(int32_t));
	tids = malloc((size_t)threads * sizeof(pthread_t));
	if (!out || !tids) {
		fprintf(stderr, "groundtruth: out of memory\n");
		goto done;
	}
	job jb = { &base, &qs, (size_t)k, metric, out, 0, PTHREAD_MUTEX_INITIALIZER };
	long started = 0;
	int failed = 0;
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, worker, &jb) != 0) {
			fprintf(stderr, "groundtruth: cannot start thread %ld\n", started);
			failed = 1;
			break;
		}
	for (long t = 0; t < started; t++) {
		void *ret;
		pthread_join(tids[t], &ret);
		failed |= ret != NULL;
	}
	if (failed || started == 0)
		goto done;
	double t1 = now_sec();

	size_t nc = (size_t)check < qs.n ? (size_t)check : qs.n;
	for (size_t c = 0; c < nc; c++) {
		size_t q = nc == 1 ? 0 : c * (qs.n - 1) / (nc - 1);
		if (check_query(&base, &qs, q, (size_t)k, out + q * (size_t)k, metric) != 0)
			goto done;
	}

	f = fopen(tmp, "wb");
	if (!f) {
		fprintf(stderr, "groundtruth: cannot create %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	int32_t k32 = (int32_t)k;
	for (size_t q = 0; q < qs.n; q++)
		if (fwrite(&k32, 4, 1, f) != 1 ||
		    fwrite(out + q * (size_t)k, 4, (size_t)k, f) != (size_t)k) {
			fprintf(stderr, "groundtruth: write %s: %s\n", tmp, strerror(errno));
			goto done;
		}
	int close_rc = fclose(f);
	f = NULL;
	if (close_rc != 0 || rename(tmp, pos[3]) != 0) {
		fprintf(stderr, "groundtruth: cannot finish %s: %s\n", pos[3], strerror(errno));
		goto done;
	}
	printf("groundtruth: %zu queries x %zu base (dim %zu, %s), k = %ld, %ld threads: %.1f s; "
	       "%zu rows checked in double\n", qs.n, base.n, base.dim, metric_name, k, started,
	       t1 - t0, nc);
	rc = 0;
done:
	if (f)
		fclose(f);
	if (rc != 0)
		remove(tmp);
	free(tids);
	free(out);
	free(qs.v);
	free(base.v);
	return rc;
}
