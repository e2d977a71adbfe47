/*
 * learn_data.c - the data sets of the learning benchmark, read from what
 * scripts/learndata.sh prepares (it runs scripts/data.sh and
 * scripts/textdata.sh first):
 *
 *   fashion  base: the first fashion_n images of data/fashion-mnist-train.fvecs;
 *            queries: a seeded choice of test images (data/fashion-mnist-test.fvecs);
 *            classes: data/learn/fashion-{train,test}.labels
 *   fiori    data/fiori/fiori.fvecs (778 MiniLM vectors): a seeded choice of
 *            rows are the queries, the others the base; titles from
 *            data/learn/fiori.tsv; a seeded LB_GOOD_SHARE of the base is good
 *   debian   data/text/base.fvecs + base.names (the base) and query.fvecs +
 *            query.names (the query pool), sections and relations from
 *            data/learn/debian.tsv
 *
 * Every vector is scaled to unit length here (the collections use cosine,
 * which would do the same on insert), so the truth and ruvector compare
 * the same vectors. The pool is ordered train queries first, then the
 * held-out ones, both drawn by one seeded permutation.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learn_bench.h"

#define SEED_FASHION 0x6661736831ull
#define SEED_FIORI 0x66696f7231ull
#define SEED_DEBIAN 0x64656231ull
#define SEED_GOOD 0x676f6f64ull

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fprintf(stderr, "learn_bench: out of memory (%zu x %zu bytes)\n", n, size);
		exit(1);
	}
	return p;
}

/* ---- files ----------------------------------------------------------- */

/* Rows [0, max_rows) of an .fvecs file (all when max_rows is 0). */
static float *read_fvecs(const char *path, size_t max_rows, size_t *n_out, uint32_t *dim_out)
{
	float *v = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot open %s: %s\n"
			"  run scripts/learndata.sh to prepare the data\n", path, strerror(errno));
		return NULL;
	}
	int32_t d = 0;
	long bytes = -1;
	if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > 16000 || fseek(f, 0, SEEK_END) != 0 ||
	    (bytes = ftell(f)) < 0 || (size_t)bytes % (4 + 4 * (size_t)d) != 0) {
		fprintf(stderr, "learn_bench: %s is not an .fvecs file\n", path);
		goto done;
	}
	size_t n = (size_t)bytes / (4 + 4 * (size_t)d);
	if (max_rows && max_rows < n)
		n = max_rows;
	v = xcalloc(n * (size_t)d, sizeof *v);
	rewind(f);
	for (size_t i = 0; i < n; i++) {
		int32_t di;
		if (fread(&di, 4, 1, f) != 1 || di != d || fread(v + i * (size_t)d, 4, (size_t)d, f) != (size_t)d) {
			fprintf(stderr, "learn_bench: %s: bad row %zu\n", path, i);
			free(v);
			v = NULL;
			goto done;
		}
	}
	*n_out = n;
	*dim_out = (uint32_t)d;
done:
	fclose(f);
	return v;
}

static void normalize(float *v, size_t n, uint32_t dim)
{
	for (size_t i = 0; i < n; i++) {
		float *x = v + i * dim;
		double s = sqrt(lb_dot(x, x, dim));
		if (s > 0)
			for (uint32_t j = 0; j < dim; j++)
				x[j] = (float)(x[j] / s);
	}
}

/* The whole file, NUL-terminated. */
static char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot open %s: %s\n"
			"  run scripts/learndata.sh to prepare the data\n", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	long bytes;
	if (fseek(f, 0, SEEK_END) != 0 || (bytes = ftell(f)) < 0) {
		fprintf(stderr, "learn_bench: cannot read %s\n", path);
		goto done;
	}
	rewind(f);
	buf = xcalloc((size_t)bytes + 1, 1);
	if (fread(buf, 1, (size_t)bytes, f) != (size_t)bytes) {
		fprintf(stderr, "learn_bench: cannot read %s\n", path);
		free(buf);
		buf = NULL;
		goto done;
	}
	if (len)
		*len = (size_t)bytes;
done:
	fclose(f);
	return buf;
}

/* Split text in place into lines; returns the line array (pointing into
 * text) and their number. */
static char **split_lines(char *text, size_t *n_out)
{
	size_t n = 0;
	for (char *p = text; *p; p++)
		n += *p == '\n';
	char **lines = xcalloc(n + 1, sizeof *lines);
	size_t i = 0;
	char *p = text;
	while (*p && i < n + 1) {
		lines[i++] = p;
		char *e = strchr(p, '\n');
		if (!e)
			break;
		*e = 0;
		p = e + 1;
	}
	*n_out = i;
	return lines;
}

static int read_bytes(const char *path, uint8_t *out, size_t n)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "learn_bench: cannot open %s: %s\n"
			"  run scripts/learndata.sh to prepare the data\n", path, strerror(errno));
		return -1;
	}
	int rc = fread(out, 1, n, f) == n ? 0 : -1;
	if (rc)
		fprintf(stderr, "learn_bench: %s is shorter than %zu bytes\n", path, n);
	fclose(f);
	return rc;
}

/* ---- a string -> index map (open addressing, FNV-1a) ----------------- */

typedef struct smap {
	const char **keys;
	uint32_t *vals;
	size_t cap;
} smap;

static uint64_t fnv(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

static void smap_init(smap *m, size_t n)
{
	m->cap = 16;
	while (m->cap < 2 * n)
		m->cap *= 2;
	m->keys = xcalloc(m->cap, sizeof *m->keys);
	m->vals = xcalloc(m->cap, sizeof *m->vals);
}

/* The value of key, inserting val when it is new. */
static uint32_t smap_put(smap *m, const char *key, uint32_t val)
{
	size_t i = fnv(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
		i = (i + 1) & (m->cap - 1);
	}
	m->keys[i] = key;
	m->vals[i] = val;
	return val;
}

static uint32_t smap_get(const smap *m, const char *key)
{
	size_t i = fnv(key) & (m->cap - 1);
	while (m->keys[i]) {
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
		i = (i + 1) & (m->cap - 1);
	}
	return UINT32_MAX;
}

static void smap_free(smap *m)
{
	free(m->keys);
	free(m->vals);
}

/* ---- helpers --------------------------------------------------------- */

static uint32_t *iota(size_t n)
{
	uint32_t *a = xcalloc(n, sizeof *a);
	for (size_t i = 0; i < n; i++)
		a[i] = (uint32_t)i;
	return a;
}

/* Copy the rows idx[0..n) of src (dim wide) into a new array. */
static float *gather(const float *src, const uint32_t *idx, size_t n, uint32_t dim)
{
	float *out = xcalloc(n * dim, sizeof *out);
	for (size_t i = 0; i < n; i++)
		memcpy(out + i * dim, src + (size_t)idx[i] * dim, dim * sizeof *out);
	return out;
}

static int pool_size(lb_set *s, size_t avail, size_t n_train, size_t n_held)
{
	if (n_train + n_held > avail) {
		fprintf(stderr, "learn_bench: %s: %zu train + %zu held-out queries asked, only %zu available\n",
			s->name, n_train, n_held, avail);
		return -1;
	}
	s->n_train = n_train;
	s->n_held = n_held;
	s->nq = n_train + n_held;
	return 0;
}

/* ======================================================================
 * Fashion-MNIST
 * ==================================================================== */

static void class_order(lb_set *s)
{
	int nc = s->n_classes;
	double *cent = xcalloc((size_t)nc * s->dim, sizeof *cent);
	size_t count[LB_MAX_CLASSES] = { 0 };
	for (size_t r = 0; r < s->n; r++) {
		int c = s->base_class[r];
		count[c]++;
		for (uint32_t j = 0; j < s->dim; j++)
			cent[(size_t)c * s->dim + j] += s->base[r * s->dim + j];
	}
	double sim[LB_MAX_CLASSES][LB_MAX_CLASSES];
	for (int a = 0; a < nc; a++)
		for (int b = 0; b < nc; b++) {
			double ab = 0, aa = 0, bb = 0;
			for (uint32_t j = 0; j < s->dim; j++) {
				double x = cent[(size_t)a * s->dim + j], y = cent[(size_t)b * s->dim + j];
				ab += x * y;
				aa += x * x;
				bb += y * y;
			}
			sim[a][b] = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : -1;
		}
	for (int a = 0; a < nc; a++) {
		int m = 0;
		for (int b = 0; b < nc; b++)
			if (b != a)
				s->class_order[a][m++] = b;
		/* Insertion sort by centroid similarity, most similar first. */
		for (int i = 1; i < m; i++)
			for (int j = i; j > 0 && sim[a][s->class_order[a][j]] > sim[a][s->class_order[a][j - 1]]; j--) {
				int t = s->class_order[a][j];
				s->class_order[a][j] = s->class_order[a][j - 1];
				s->class_order[a][j - 1] = t;
			}
	}
	free(cent);
}

static int load_fashion(lb_set *s, const lb_data_opts *o)
{
	char path[4096];
	size_t n_train_rows = 0, n_test = 0;
	uint32_t dim = 0, dim_q = 0;
	uint8_t *test_labels = NULL;
	uint32_t *perm = NULL;
	float *test = NULL;
	int rc = -1;
	s->variant = LB_TOPIC;
	s->n_classes = 10;
	snprintf(path, sizeof path, "%s/fashion-mnist-train.fvecs", o->data_dir);
	if (!(s->base = read_fvecs(path, o->fashion_n, &n_train_rows, &dim)))
		goto done;
	s->n = n_train_rows;
	s->dim = dim;
	snprintf(path, sizeof path, "%s/fashion-mnist-test.fvecs", o->data_dir);
	if (!(test = read_fvecs(path, 0, &n_test, &dim_q)))
		goto done;
	if (dim_q != dim) {
		fprintf(stderr, "learn_bench: Fashion-MNIST test has dimension %u, train %u\n", dim_q, dim);
		goto done;
	}
	s->base_class = xcalloc(s->n, 1);
	snprintf(path, sizeof path, "%s/learn/fashion-train.labels", o->data_dir);
	if (read_bytes(path, s->base_class, s->n))
		goto done;
	test_labels = xcalloc(n_test, 1);
	snprintf(path, sizeof path, "%s/learn/fashion-test.labels", o->data_dir);
	if (read_bytes(path, test_labels, n_test))
		goto done;
	for (size_t i = 0; i < s->n; i++)
		if (s->base_class[i] >= s->n_classes) {
			fprintf(stderr, "learn_bench: fashion-train.labels: label %u at row %zu\n", s->base_class[i], i);
			goto done;
		}
	if (pool_size(s, n_test, o->fashion_train, o->fashion_held))
		goto done;
	perm = iota(n_test);
	lb_rng rng = { o->seed ^ SEED_FASHION };
	lb_shuffle(perm, n_test, &rng);
	s->queries = gather(test, perm, s->nq, dim);
	s->query_class = xcalloc(s->nq, 1);
	for (size_t i = 0; i < s->nq; i++) {
		s->query_class[i] = test_labels[perm[i]];
		if (s->query_class[i] >= s->n_classes) {
			fprintf(stderr, "learn_bench: fashion-test.labels: label %u\n", s->query_class[i]);
			goto done;
		}
	}
	normalize(s->base, s->n, dim);
	normalize(s->queries, s->nq, dim);
	class_order(s);
	rc = 0;
done:
	free(test);
	free(test_labels);
	free(perm);
	return rc;
}

/* ======================================================================
 * Fiori
 * ==================================================================== */

static int load_fiori(lb_set *s, const lb_data_opts *o)
{
	char path[4096];
	size_t n_all = 0, n_lines = 0;
	uint32_t dim = 0;
	float *all = NULL;
	char *text = NULL;
	char **lines = NULL;
	uint32_t *perm = NULL, *order = NULL;
	int rc = -1;
	s->variant = LB_QUALITY;
	snprintf(path, sizeof path, "%s/fiori/fiori.fvecs", o->data_dir);
	if (!(all = read_fvecs(path, 0, &n_all, &dim)))
		goto done;
	snprintf(path, sizeof path, "%s/learn/fiori.tsv", o->data_dir);
	if (!(text = read_text(path, NULL)))
		goto done;
	lines = split_lines(text, &n_lines);
	if (n_lines != n_all) {
		fprintf(stderr, "learn_bench: %s has %zu lines for %zu vectors\n", path, n_lines, n_all);
		goto done;
	}
	if (pool_size(s, n_all, o->fiori_train, o->fiori_held))
		goto done;
	s->dim = dim;
	s->n = n_all - s->nq;
	perm = iota(n_all);
	lb_rng rng = { o->seed ^ SEED_FIORI };
	lb_shuffle(perm, n_all, &rng);
	s->queries = gather(all, perm, s->nq, dim);
	s->base = gather(all, perm + s->nq, s->n, dim);
	normalize(s->base, s->n, dim);
	normalize(s->queries, s->nq, dim);
	/* Titles: the third column (id, category, title). */
	s->base_title = xcalloc(s->n, sizeof *s->base_title);
	s->query_title = xcalloc(s->nq, sizeof *s->query_title);
	for (size_t i = 0; i < n_all; i++) {
		const char *t = lines[perm[i]];
		for (int tab = 0; tab < 2 && t; tab++)
			t = strchr(t, '\t') ? strchr(t, '\t') + 1 : NULL;
		char *copy = strdup(t ? t : "");
		if (!copy) {
			fprintf(stderr, "learn_bench: out of memory\n");
			goto done;
		}
		if (i < s->nq)
			s->query_title[i] = copy;
		else
			s->base_title[i - s->nq] = copy;
	}
	/* Good items: exactly round(share x n) of them, a seeded choice. */
	s->good = xcalloc(s->n, 1);
	order = iota(s->n);
	lb_rng grng = { o->seed ^ SEED_GOOD };
	lb_shuffle(order, s->n, &grng);
	size_t n_good = (size_t)lround(LB_GOOD_SHARE * (double)s->n);
	for (size_t i = 0; i < n_good; i++)
		s->good[order[i]] = 1;
	rc = 0;
done:
	free(all);
	free(text);
	free(lines);
	free(perm);
	free(order);
	return rc;
}

/* ======================================================================
 * Debian
 * ==================================================================== */

typedef struct pkg {
	const char *name;
	uint32_t section;
	char *rels; /* comma-separated names, in the tsv text */
} pkg;

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int load_debian(lb_set *s, const lb_data_opts *o)
{
	char path[4096];
	int rc = -1;
	float *qall = NULL;
	char *tsv = NULL, *bnames_txt = NULL, *qnames_txt = NULL;
	char **tsv_lines = NULL, **bnames = NULL, **qnames = NULL;
	pkg *pkgs = NULL;
	smap by_pkg = { 0 }, by_section = { 0 }, by_base = { 0 }, by_query = { 0 };
	size_t n_pkg = 0, n_bn = 0, n_qn = 0, nq_all = 0;
	uint32_t dim = 0, dim_q = 0;
	uint32_t *qsec = NULL, *keep = NULL;
	size_t *qoff = NULL, *qfill = NULL, *sec_count = NULL;
	uint32_t *qrel = NULL;
	s->variant = LB_DEPS;

	snprintf(path, sizeof path, "%s/text/base.fvecs", o->data_dir);
	if (!(s->base = read_fvecs(path, 0, &s->n, &dim)))
		goto done;
	s->dim = dim;
	snprintf(path, sizeof path, "%s/text/query.fvecs", o->data_dir);
	if (!(qall = read_fvecs(path, 0, &nq_all, &dim_q)))
		goto done;
	snprintf(path, sizeof path, "%s/text/base.names", o->data_dir);
	if (!(bnames_txt = read_text(path, NULL)))
		goto done;
	bnames = split_lines(bnames_txt, &n_bn);
	snprintf(path, sizeof path, "%s/text/query.names", o->data_dir);
	if (!(qnames_txt = read_text(path, NULL)))
		goto done;
	qnames = split_lines(qnames_txt, &n_qn);
	if (n_bn != s->n || n_qn != nq_all || dim_q != dim) {
		fprintf(stderr, "learn_bench: data/text: %zu base vectors, %zu names; %zu queries, %zu names\n",
			s->n, n_bn, nq_all, n_qn);
		goto done;
	}
	snprintf(path, sizeof path, "%s/learn/debian.tsv", o->data_dir);
	if (!(tsv = read_text(path, NULL)))
		goto done;
	tsv_lines = split_lines(tsv, &n_pkg);
	pkgs = xcalloc(n_pkg, sizeof *pkgs);
	smap_init(&by_pkg, n_pkg);
	smap_init(&by_section, 1024);
	s->section_names = xcalloc(n_pkg + 1, sizeof *s->section_names);
	for (size_t i = 0; i < n_pkg; i++) {
		char *name = tsv_lines[i];
		char *sec = strchr(name, '\t');
		char *rel = sec ? strchr(sec + 1, '\t') : NULL;
		if (!rel) {
			fprintf(stderr, "learn_bench: %s line %zu: not name<TAB>section<TAB>relations\n", path, i + 1);
			goto done;
		}
		*sec++ = 0;
		*rel++ = 0;
		pkgs[i].name = name;
		pkgs[i].rels = rel;
		if (strcmp(sec, "-") == 0) {
			pkgs[i].section = UINT32_MAX;
		} else {
			pkgs[i].section = smap_put(&by_section, sec, (uint32_t)s->n_sections);
			if (pkgs[i].section == s->n_sections) {
				if (!(s->section_names[s->n_sections++] = strdup(sec))) {
					fprintf(stderr, "learn_bench: out of memory\n");
					goto done;
				}
			}
		}
		smap_put(&by_pkg, name, (uint32_t)i);
	}
	smap_init(&by_base, s->n);
	smap_init(&by_query, nq_all);
	s->base_section = xcalloc(s->n, sizeof *s->base_section);
	sec_count = xcalloc(s->n_sections + 1, sizeof *sec_count);
	for (size_t r = 0; r < s->n; r++) {
		smap_put(&by_base, bnames[r], (uint32_t)r);
		uint32_t p = smap_get(&by_pkg, bnames[r]);
		s->base_section[r] = p == UINT32_MAX ? UINT32_MAX : pkgs[p].section;
		if (s->base_section[r] != UINT32_MAX)
			sec_count[s->base_section[r]]++;
	}
	qsec = xcalloc(nq_all, sizeof *qsec);
	for (size_t q = 0; q < nq_all; q++) {
		smap_put(&by_query, qnames[q], (uint32_t)q);
		uint32_t p = smap_get(&by_pkg, qnames[q]);
		qsec[q] = p == UINT32_MAX ? UINT32_MAX : pkgs[p].section;
	}

	/* Relations of each query, both directions, as base rows: count, then
	 * fill (duplicates removed after sorting). */
	qoff = xcalloc(nq_all + 1, sizeof *qoff);
	qfill = xcalloc(nq_all, sizeof *qfill);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			for (size_t q = 0; q < nq_all; q++)
				qoff[q + 1] += qoff[q];
			qrel = xcalloc(qoff[nq_all] + 1, sizeof *qrel);
		}
		/* query -> base: the query's own Depends/Recommends. */
		for (size_t q = 0; q < nq_all; q++) {
			uint32_t p = smap_get(&by_pkg, qnames[q]);
			if (p == UINT32_MAX || !*pkgs[p].rels)
				continue;
			const char *c = pkgs[p].rels;
			while (*c) {
				const char *e = strchr(c, ',');
				size_t len = e ? (size_t)(e - c) : strlen(c);
				char name[256];
				if (len > 0 && len < sizeof name) {
					memcpy(name, c, len);
					name[len] = 0;
					uint32_t r = smap_get(&by_base, name);
					if (r != UINT32_MAX) {
						if (pass == 0)
							qoff[q + 1]++;
						else
							qrel[qoff[q] + qfill[q]++] = r;
					}
				}
				c += len + (e ? 1 : 0);
			}
		}
		/* base -> query: base packages that name the query. */
		for (size_t r = 0; r < s->n; r++) {
			uint32_t p = smap_get(&by_pkg, bnames[r]);
			if (p == UINT32_MAX || !*pkgs[p].rels)
				continue;
			const char *c = pkgs[p].rels;
			while (*c) {
				const char *e = strchr(c, ',');
				size_t len = e ? (size_t)(e - c) : strlen(c);
				char name[256];
				if (len > 0 && len < sizeof name) {
					memcpy(name, c, len);
					name[len] = 0;
					uint32_t q = smap_get(&by_query, name);
					if (q != UINT32_MAX) {
						if (pass == 0)
							qoff[q + 1]++;
						else
							qrel[qoff[q] + qfill[q]++] = (uint32_t)r;
					}
				}
				c += len + (e ? 1 : 0);
			}
		}
	}

	/* Keep the queries with at least LB_K relevant items, in a seeded
	 * order; compact their relation lists. */
	keep = xcalloc(nq_all, sizeof *keep);
	size_t n_keep = 0;
	for (size_t q = 0; q < nq_all; q++) {
		uint32_t *l = qrel + qoff[q];
		size_t n = qfill[q], m = 0;
		qsort(l, n, sizeof *l, cmp_u32);
		for (size_t i = 0; i < n; i++)
			if (m == 0 || l[m - 1] != l[i])
				l[m++] = l[i];
		qfill[q] = m;
		size_t nrel = qsec[q] == UINT32_MAX ? 0 : sec_count[qsec[q]];
		for (size_t i = 0; i < m; i++)
			nrel += s->base_section[l[i]] != qsec[q] || qsec[q] == UINT32_MAX;
		if (nrel >= LB_K)
			keep[n_keep++] = (uint32_t)q;
	}
	s->dropped_queries = nq_all - n_keep;
	lb_rng rng = { o->seed ^ SEED_DEBIAN };
	lb_shuffle(keep, n_keep, &rng);
	if (pool_size(s, n_keep, o->debian_train, o->debian_held))
		goto done;
	s->queries = gather(qall, keep, s->nq, dim);
	s->query_section = xcalloc(s->nq, sizeof *s->query_section);
	s->rel_off = xcalloc(s->nq + 1, sizeof *s->rel_off);
	for (size_t i = 0; i < s->nq; i++)
		s->rel_off[i + 1] = s->rel_off[i] + qfill[keep[i]];
	s->rel = xcalloc(s->rel_off[s->nq] + 1, sizeof *s->rel);
	for (size_t i = 0; i < s->nq; i++) {
		s->query_section[i] = qsec[keep[i]];
		memcpy(s->rel + s->rel_off[i], qrel + qoff[keep[i]], qfill[keep[i]] * sizeof *s->rel);
	}
	normalize(s->base, s->n, dim);
	normalize(s->queries, s->nq, dim);
	rc = 0;
done:
	free(qall);
	free(tsv);
	free(bnames_txt);
	free(qnames_txt);
	free(tsv_lines);
	free(bnames);
	free(qnames);
	free(pkgs);
	smap_free(&by_pkg);
	smap_free(&by_section);
	smap_free(&by_base);
	smap_free(&by_query);
	free(qsec);
	free(keep);
	free(qoff);
	free(qfill);
	free(qrel);
	free(sec_count);
	return rc;
}

int lb_load_set(lb_set *s, const char *name, const lb_data_opts *o)
{
	memset(s, 0, sizeof *s);
	s->name = name;
	int rc;
	if (strcmp(name, "fashion") == 0)
		rc = load_fashion(s, o);
	else if (strcmp(name, "fiori") == 0)
		rc = load_fiori(s, o);
	else if (strcmp(name, "debian") == 0)
		rc = load_debian(s, o);
	else {
		fprintf(stderr, "learn_bench: unknown data set '%s' (fashion, fiori, debian)\n", name);
		rc = -1;
	}
	if (rc)
		lb_free_set(s);
	return rc;
}

void lb_free_set(lb_set *s)
{
	free(s->base);
	free(s->queries);
	free(s->base_class);
	free(s->query_class);
	free(s->good);
	if (s->base_title)
		for (size_t i = 0; i < s->n; i++)
			free(s->base_title[i]);
	if (s->query_title)
		for (size_t i = 0; i < s->nq; i++)
			free(s->query_title[i]);
	free(s->base_title);
	free(s->query_title);
	free(s->base_section);
	free(s->query_section);
	free(s->rel_off);
	free(s->rel);
	if (s->section_names)
		for (size_t i = 0; i < s->n_sections; i++)
			free(s->section_names[i]);
	free(s->section_names);
	memset(s, 0, sizeof *s);
}
