/*
 * harness.c - runner and shared helpers for the tests (see harness.h).
 */
#include "harness.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define MAX_TESTS 256

struct test_case {
	const char *name;
	rv_test_fn fn;
};
static struct test_case tests[MAX_TESTS];
static int n_tests;
int rv_test_failures;

void rv_test_register(const char *name, rv_test_fn fn)
{
	if (n_tests < MAX_TESTS)
		tests[n_tests++] = (struct test_case){ name, fn };
}

const char *rv_test_path(const char *name)
{
	static char buf[8][1024];
	static int next;
	char *p = buf[next++ % 8];
	const char *dir = getenv("RV_TEST_TMP");
	if (!dir)
		dir = RV_BIN_DIR "/tmp";
	mkdir(dir, 0755);
	snprintf(p, 1024, "%s/%d-%s", dir, (int)getpid(), name);
	unlink(p);
	return p;
}

float *rv_test_random_vectors(size_t n, size_t dim, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	float *v = malloc(n * dim * sizeof(float));
	for (size_t i = 0; i < n * dim; i++)
		v[i] = (float)(rv_rng_uniform(&r) * 2.0 - 1.0);
	return v;
}

float *rv_test_clustered_vectors(size_t n, size_t dim, size_t clusters, uint64_t seed)
{
	rv_rng r;
	rv_rng_seed(&r, seed);
	float *c = malloc(clusters * dim * sizeof(float));
	for (size_t i = 0; i < clusters * dim; i++)
		c[i] = rv_rng_gauss(&r);
	float *v = malloc(n * dim * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		size_t k = rv_rng_below(&r, clusters);
		for (size_t d = 0; d < dim; d++)
			v[i * dim + d] = c[k * dim + d] + 0.35f * rv_rng_gauss(&r);
	}
	free(c);
	return v;
}

typedef struct gt_pair {
	float d;
	int i;
} gt_pair;

int *rv_test_ground_truth(const float *base, size_t n, const float *queries, size_t nq,
			  size_t dim, size_t k, rv_metric metric)
{
	int *out = malloc(nq * k * sizeof(int));
	gt_pair *best = malloc((k + 1) * sizeof(gt_pair));
	for (size_t q = 0; q < nq; q++) {
		const float *qv = queries + q * dim;
		size_t nb = 0;
		for (size_t i = 0; i < n; i++) {
			const float *x = base + i * dim;
			double d = 0;
			if (metric == RV_METRIC_L2) {
				for (size_t j = 0; j < dim; j++)
					d += (double)(qv[j] - x[j]) * (qv[j] - x[j]);
			} else {
				double dot = 0, nx = 0, nq2 = 0;
				for (size_t j = 0; j < dim; j++) {
					dot += (double)qv[j] * x[j];
					nx += (double)x[j] * x[j];
					nq2 += (double)qv[j] * qv[j];
				}
				d = metric == RV_METRIC_IP ? -dot : 1 - dot / (sqrt(nx) * sqrt(nq2) + 1e-30);
			}
			if (nb == k && d >= best[k - 1].d)
				continue;
			size_t pos = nb < k ? nb++ : k - 1;
			while (pos > 0 && best[pos - 1].d > d) {
				best[pos] = best[pos - 1];
				pos--;
			}
			best[pos] = (gt_pair){ (float)d, (int)i };
		}
		for (size_t j = 0; j < k; j++)
			out[q * k + j] = j < nb ? best[j].i : -1;
	}
	free(best);
	return out;
}

float *rv_test_load_fvecs(const char *file, size_t *n, size_t *dim)
{
	char path[2048];
	snprintf(path, sizeof path, "%s/%s", RV_DATA_DIR, file);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "missing %s (%s); run scripts/data.sh\n", path, strerror(errno));
		return NULL;
	}
	int32_t d;
	if (fread(&d, 4, 1, f) != 1 || d <= 0) {
		fclose(f);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long bytes = ftell(f);
	fseek(f, 0, SEEK_SET);
	size_t rows = (size_t)bytes / (4 + 4 * (size_t)d);
	float *v = malloc(rows * (size_t)d * sizeof(float));
	for (size_t i = 0; i < rows; i++) {
		int32_t dd;
		if (fread(&dd, 4, 1, f) != 1 || dd != d ||
		    fread(v + i * (size_t)d, 4, (size_t)d, f) != (size_t)d) {
			free(v);
			fclose(f);
			return NULL;
		}
	}
	fclose(f);
	*n = rows;
	*dim = (size_t)d;
	return v;
}

static void *ta_malloc(void *ctx, size_t n)
{
	rv_test_alloc *t = ctx;
	t->count++;
	if (t->fail_at > 0 && --t->fail_at == 0)
		return NULL;
	void *p = malloc(n);
	if (p)
		t->live++;
	return p;
}

static void *ta_realloc(void *ctx, void *p, size_t n)
{
	rv_test_alloc *t = ctx;
	t->count++;
	if (t->fail_at > 0 && --t->fail_at == 0)
		return NULL;
	void *q = realloc(p, n);
	if (q && !p)
		t->live++;
	return q;
}

static void ta_free(void *ctx, void *p)
{
	rv_test_alloc *t = ctx;
	if (p)
		t->live--;
	free(p);
}

void rv_test_alloc_init(rv_test_alloc *t)
{
	memset(t, 0, sizeof *t);
	t->hooks = (rv_allocator){ ta_malloc, ta_realloc, ta_free, t };
}

int main(int argc, char **argv)
{
	int ran = 0;
	for (int i = 0; i < n_tests; i++) {
		if (argc > 1) {
			int want = 0;
			for (int a = 1; a < argc; a++)
				want |= strcmp(argv[a], tests[i].name) == 0;
			if (!want)
				continue;
		}
		int before = rv_test_failures;
		fprintf(stderr, "-- %s\n", tests[i].name);
		tests[i].fn();
		fprintf(stderr, "   %s\n", rv_test_failures == before ? "ok" : "FAILED");
		ran++;
	}
	if (ran == 0) {
		fprintf(stderr, "no test matched\n");
		return 2;
	}
	return rv_test_failures ? 1 : 0;
}
