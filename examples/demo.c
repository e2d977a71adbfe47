/*
 * demo.c - ruvector end to end on real embeddings: 778 chunks of the SAP
 * Fiori documentation embedded with all-MiniLM-L6-v2 (384 dimensions), as
 * converted by scripts/data.sh into data/fiori/fiori.jsonl.
 *
 *   demo [--data data/fiori/fiori.jsonl] [--db demo/fiori.rvf]
 *
 * It builds a cosine collection in one batch, commits, reopens the file (the
 * graph is loaded, not rebuilt), then shows what a user of the library sees:
 * the documents most similar to a few chosen ones, filtered searches on the
 * payloads, the recall of the graph search against an exact scan over every
 * document as a query, and the time each step took.
 *
 * Uses only the public header. Every result it prints is checked where a
 * check is possible (filtered hits really match, the reopened collection
 * holds every point), and the program exits non-zero when something is
 * wrong, so scripts/demo.sh doubles as a smoke test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ruvector.h"

#define K_SIMILAR 5
#define K_RECALL 10
#define TITLE_COLS 48
#define CATEGORY_COLS 28
#define FILTER_REPEAT 21
#define MIN_RECALL 0.90 /* below this the demo reports a failure */

/* Documents whose neighbours the demo shows: one from each of several
 * corners of the corpus (ids of @sap-ux/fiori-docs-embeddings 1.2.6). */
static const char *const demo_queries[] = {
	"local-btp-fiori-tools-0-chunk-0",          /* deploying an app */
	"local-btp-fiori-tools-108-chunk-0",        /* mock data */
	"local-sapui5-154-chunk-0",                 /* images in tables */
	"local-fiori_development_portal-8-chunk-0", /* chart with filter bar */
};

typedef struct corpus {
	size_t n, dim;
	char **ids;
	char **payloads;   /* JSON text of each point's payload */
	char **categories; /* payload.category, for checking filters */
	float *vectors;    /* n * dim */
} corpus;

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void corpus_free(corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->ids[i]);
		free(c->payloads[i]);
		free(c->categories[i]);
	}
	free(c->ids);
	free(c->payloads);
	free(c->categories);
	free(c->vectors);
	memset(c, 0, sizeof *c);
}

/* Append one parsed line to the corpus; the first line fixes the dimension. */
static int corpus_add(corpus *c, size_t *cap, const cJSON *rec, const char *path, size_t line)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	const cJSON *vec = cJSON_GetObjectItemCaseSensitive(rec, "vector");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(rec, "payload");
	const cJSON *cat = cJSON_GetObjectItemCaseSensitive(payload, "category");
	if (!cJSON_IsString(id) || !cJSON_IsArray(vec) || !cJSON_IsObject(payload) ||
	    !cJSON_IsString(cat)) {
		fprintf(stderr, "demo: %s:%zu: need \"id\" (string), \"vector\" (array) and "
			"\"payload\" (object with \"category\")\n", path, line);
		return -1;
	}
	size_t dim = (size_t)cJSON_GetArraySize(vec);
	if (c->n == 0)
		c->dim = dim;
	if (dim == 0 || dim != c->dim) {
		fprintf(stderr, "demo: %s:%zu: vector has %zu values, expected %zu\n", path, line,
			dim, c->dim);
		return -1;
	}
	if (c->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		char **ids = realloc(c->ids, ncap * sizeof *ids);
		if (ids)
			c->ids = ids;
		char **pl = realloc(c->payloads, ncap * sizeof *pl);
		if (pl)
			c->payloads = pl;
		char **cats = realloc(c->categories, ncap * sizeof *cats);
		if (cats)
			c->categories = cats;
		float *v = realloc(c->vectors, ncap * dim * sizeof *v);
		if (v)
			c->vectors = v;
		if (!ids || !pl || !cats || !v) {
			fprintf(stderr, "demo: out of memory reading %s\n", path);
			return -1;
		}
		*cap = ncap;
	}
	float *dst = c->vectors + c->n * dim;
	size_t j = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, vec) {
		if (!cJSON_IsNumber(x)) {
			fprintf(stderr, "demo: %s:%zu: vector[%zu] is not a number\n", path, line, j);
			return -1;
		}
		dst[j++] = (float)x->valuedouble;
	}
	char *ptext = cJSON_PrintUnformatted(payload);
	char *idc = strdup(id->valuestring);
	char *catc = strdup(cat->valuestring);
	if (!ptext || !idc || !catc) {
		free(ptext);
		free(idc);
		free(catc);
		fprintf(stderr, "demo: out of memory reading %s\n", path);
		return -1;
	}
	c->ids[c->n] = idc;
	c->payloads[c->n] = ptext;
	c->categories[c->n] = catc;
	c->n++;
	return 0;
}

static int corpus_load(corpus *c, const char *path)
{
	int rc = -1;
	size_t cap = 0, line = 0, len = 0;
	char *buf = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "demo: cannot open %s: %s\n"
			"      (run ./scripts/data.sh fiori to fetch the data set)\n", path,
			strerror(errno));
		return -1;
	}
	ssize_t got;
	while ((got = getline(&buf, &len, f)) != -1) {
		line++;
		if (got <= 1)
			continue;
		cJSON *rec = cJSON_ParseWithLength(buf, (size_t)got);
		if (!rec) {
			fprintf(stderr, "demo: %s:%zu: invalid JSON\n", path, line);
			goto done;
		}
		int st = corpus_add(c, &cap, rec, path, line);
		cJSON_Delete(rec);
		if (st != 0)
			goto done;
	}
	if (ferror(f)) {
		fprintf(stderr, "demo: reading %s: %s\n", path, strerror(errno));
		goto done;
	}
	if (c->n == 0) {
		fprintf(stderr, "demo: %s holds no points\n", path);
		goto done;
	}
	rc = 0;
done:
	free(buf);
	fclose(f);
	return rc;
}

static size_t corpus_find(const corpus *c, const char *id)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->ids[i], id) == 0)
			return i;
	return (size_t)-1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* A string field of a payload's JSON text, or "" (the caller frees). */
static char *payload_field(const char *json, const char *key)
{
	char *out = NULL;
	cJSON *p = json ? cJSON_Parse(json) : NULL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
	out = strdup(cJSON_IsString(v) ? v->valuestring : "");
	cJSON_Delete(p);
	return out;
}

/* Print s in at most `cols` columns (exactly `cols` when pad), counting
 * UTF-8 code points, cut with "..." when longer, so that the tables stay
 * aligned with titles that hold dashes and arrows. */
static void put_cols(const char *s, int cols, int pad)
{
	int total = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		total += (*p & 0xC0) != 0x80;
	int keep = total <= cols ? total : cols - 3;
	int used = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if ((*p & 0xC0) != 0x80) {
			if (used == keep)
				break;
			used++;
		}
		putchar(*p++);
	}
	if (total > cols) {
		fputs("...", stdout);
		used += 3;
	}
	for (; pad && used < cols; used++)
		putchar(' ');
}

static void rule(void)
{
	for (int i = 0; i < 98; i++)
		putchar('-');
	putchar('\n');
}

static void heading(const char *s)
{
	printf("\n%s\n", s);
	rule();
}

static void hits_header(void)
{
	printf("  %4s  %10s  ", "rank", "similarity");
	put_cols("title", TITLE_COLS, 1);
	printf("  category\n");
}

/* One row of hits: similarity is 1 - the cosine distance the library returns. */
static void hit_row(size_t rank, const rv_hit *h)
{
	char *title = payload_field(h->payload, "title");
	char *cat = payload_field(h->payload, "category");
	printf("  %4zu  %10.4f  ", rank, 1.0 - h->score);
	put_cols(title ? title : "", TITLE_COLS, 1);
	printf("  ");
	put_cols(cat ? cat : "", CATEGORY_COLS, 0);
	printf("\n");
	free(title);
	free(cat);
}

static const char *fmt_bytes(uint64_t b, char *buf, size_t cap)
{
	if (b >= (1u << 20))
		snprintf(buf, cap, "%.2f MiB", (double)b / (1u << 20));
	else if (b >= 1024)
		snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
	else
		snprintf(buf, cap, "%llu B", (unsigned long long)b);
	return buf;
}

/* The documents nearest to document q, itself left out. */
static int show_similar(rv_db *db, const corpus *c, size_t q)
{
	int rc = -1;
	rv_results *r = NULL;
	float *v = malloc(c->dim * sizeof *v);
	char *payload = NULL;
	if (!v) {
		fprintf(stderr, "demo: out of memory\n");
		return -1;
	}
	/* Read the point back from the file: the stored, normalised vector. */
	rv_status st = rv_db_get(db, c->ids[q], v, &payload);
	if (st != RV_OK) {
		fprintf(stderr, "demo: get %s: %s\n", c->ids[q], rv_errmsg(db));
		goto done;
	}
	char *title = payload_field(payload, "title");
	char *cat = payload_field(payload, "category");
	printf("\n  \"");
	put_cols(title ? title : "", 64, 0);
	printf("\"  [");
	put_cols(cat ? cat : "", CATEGORY_COLS, 0);
	printf("]\n");
	free(title);
	free(cat);

	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.k = K_SIMILAR + 1;
	so.flags = RV_SEARCH_PAYLOAD;
	st = rv_db_search(&r, db, v, &so);
	if (st != RV_OK) {
		fprintf(stderr, "demo: search: %s\n", rv_errmsg(db));
		goto done;
	}
	hits_header();
	const rv_hit *h = rv_results_hits(r);
	size_t shown = 0;
	for (size_t i = 0; i < rv_results_count(r) && shown < K_SIMILAR; i++) {
		if (strcmp(h[i].id, c->ids[q]) == 0)
			continue;
		hit_row(++shown, &h[i]);
	}
	if (shown < K_SIMILAR) {
		fprintf(stderr, "demo: only %zu neighbours of %s found\n", shown, c->ids[q]);
		goto done;
	}
	rc = 0;
done:
	rv_results_free(r);
	rv_free(payload);
	free(v);
	return rc;
}

/* A filtered search, checked: k hits (or all members when fewer), every
 * one of them in one of the allowed categories. */
static int show_filtered(rv_db *db, const corpus *c, size_t q, const char *filter,
			 const char *const *cats, size_t ncats, uint32_t k)
{
	int rc = -1;
	rv_results *r = NULL;
	size_t members = 0;
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = 0; j < ncats; j++)
			members += strcmp(c->categories[i], cats[j]) == 0;

	printf("\n  filter %s\n  (%zu document%s match%s)\n", filter, members,
	       members == 1 ? "" : "s", members == 1 ? "es" : "");
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.k = k;
	so.filter = filter;
	so.flags = RV_SEARCH_PAYLOAD;
	double t0 = now_sec();
	rv_status st = rv_db_search(&r, db, c->vectors + q * c->dim, &so);
	double us = (now_sec() - t0) * 1e6;
	if (st != RV_OK) {
		fprintf(stderr, "demo: filtered search %s: %s\n", filter, rv_errmsg(db));
		goto done;
	}
	/* The first call may pay for work done once per handle; time a few
	 * more to show the steady state. */
	double again[FILTER_REPEAT];
	for (int i = 0; i < FILTER_REPEAT; i++) {
		rv_results *r2 = NULL;
		double t1 = now_sec();
		st = rv_db_search(&r2, db, c->vectors + q * c->dim, &so);
		again[i] = (now_sec() - t1) * 1e6;
		rv_results_free(r2);
		if (st != RV_OK) {
			fprintf(stderr, "demo: filtered search %s: %s\n", filter, rv_errmsg(db));
			goto done;
		}
	}
	qsort(again, FILTER_REPEAT, sizeof *again, cmp_double);
	hits_header();
	const rv_hit *h = rv_results_hits(r);
	size_t n = rv_results_count(r);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		hit_row(i + 1, &h[i]);
		char *cat = payload_field(h[i].payload, "category");
		int ok = 0;
		for (size_t j = 0; cat && j < ncats; j++)
			ok |= strcmp(cat, cats[j]) == 0;
		bad += !ok;
		free(cat);
	}
	size_t want = members < k ? members : k;
	printf("  -> %zu hit%s (expected %zu), %zu outside the filter; %.0f us, then %.0f us "
	       "(median of %d)\n", n, n == 1 ? "" : "s", want, bad, us, again[FILTER_REPEAT / 2],
	       FILTER_REPEAT);
	if (n != want || bad != 0) {
		fprintf(stderr, "demo: filtered search %s returned %zu hits (%zu not matching), "
			"expected %zu matching\n", filter, n, bad, want);
		goto done;
	}
	rc = 0;
done:
	rv_results_free(r);
	return rc;
}

/* Recall@K of the graph search against the exact scan, every document as
 * a query; also the mean latency of each. */
static int measure_recall(rv_db *db, const corpus *c, double *recall, double *us_graph,
			  double *us_exact)
{
	size_t found = 0;
	double t_graph = 0, t_exact = 0;
	for (size_t q = 0; q < c->n; q++) {
		rv_results *exact = NULL, *approx = NULL;
		rv_search_opts so = RV_SEARCH_OPTS_INIT;
		so.k = K_RECALL;
		so.flags = RV_SEARCH_EXACT;
		const float *v = c->vectors + q * c->dim;
		double t0 = now_sec();
		rv_status st = rv_db_search(&exact, db, v, &so);
		double t1 = now_sec();
		so.flags = 0;
		if (st == RV_OK)
			st = rv_db_search(&approx, db, v, &so);
		double t2 = now_sec();
		if (st != RV_OK) {
			fprintf(stderr, "demo: search for %s: %s\n", c->ids[q], rv_errmsg(db));
			rv_results_free(exact);
			rv_results_free(approx);
			return -1;
		}
		t_exact += t1 - t0;
		t_graph += t2 - t1;
		const rv_hit *e = rv_results_hits(exact), *a = rv_results_hits(approx);
		for (size_t i = 0; i < rv_results_count(exact); i++)
			for (size_t j = 0; j < rv_results_count(approx); j++)
				if (strcmp(e[i].id, a[j].id) == 0) {
					found++;
					break;
				}
		rv_results_free(exact);
		rv_results_free(approx);
	}
	*recall = (double)found / (double)(c->n * K_RECALL);
	*us_graph = t_graph / (double)c->n * 1e6;
	*us_exact = t_exact / (double)c->n * 1e6;
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 1;
	const char *data = "data/fiori/fiori.jsonl";
	const char *path = "demo/fiori.rvf";
	corpus c = { 0 };
	rv_db *db = NULL;
	rv_point *pts = NULL;
	char b1[32];

	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--data") == 0 && a + 1 < argc)
			data = argv[++a];
		else if (strcmp(argv[a], "--db") == 0 && a + 1 < argc)
			path = argv[++a];
		else {
			fprintf(stderr, "usage: demo [--data FILE.jsonl] [--db FILE.rvf]\n");
			return 2;
		}
	}
	if (rv_libversion_number() != RV_VERSION_NUMBER) {
		fprintf(stderr, "demo: built against ruvector %s (%d) but linked with %d\n",
			RV_VERSION_STRING, RV_VERSION_NUMBER, rv_libversion_number());
		return 1;
	}

	printf("ruvector %s demo: SAP Fiori documentation, all-MiniLM-L6-v2 embeddings\n",
	       RV_VERSION_STRING);
	rule();
	double t0 = now_sec();
	if (corpus_load(&c, data) != 0)
		goto done;
	double t_load = now_sec() - t0;
	printf("  %-28s %s\n", "data", data);
	printf("  %-28s %zu documents, dimension %zu (read in %.0f ms)\n", "", c.n, c.dim,
	       t_load * 1e3);

	/* ---- build, commit, close ---- */
	if (unlink(path) != 0 && errno != ENOENT) {
		fprintf(stderr, "demo: cannot remove the old %s: %s\n", path, strerror(errno));
		goto done;
	}
	pts = calloc(c.n, sizeof *pts);
	if (!pts) {
		fprintf(stderr, "demo: out of memory\n");
		goto done;
	}
	for (size_t i = 0; i < c.n; i++)
		pts[i] = (rv_point){ .id = c.ids[i], .vector = c.vectors + i * c.dim,
				     .payload = c.payloads[i] };

	rv_open_opts oo = RV_OPEN_OPTS_INIT;
	oo.dim = (uint32_t)c.dim;
	oo.metric = RV_METRIC_COSINE;
	t0 = now_sec();
	rv_status st = rv_db_create(&db, path, &oo);
	if (st != RV_OK) {
		fprintf(stderr, "demo: create %s: %s: %s\n", path, rv_status_str(st),
			db ? rv_errmsg(db) : "out of memory");
		goto done;
	}
	st = rv_db_upsert(db, pts, c.n);
	double t_build = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "demo: upsert: %s\n", rv_errmsg(db));
		goto done;
	}
	t0 = now_sec();
	st = rv_db_commit(db);
	double t_commit = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "demo: commit: %s\n", rv_errmsg(db));
		goto done;
	}
	rv_db_close(db);
	db = NULL;

	/* ---- reopen: the graph comes from the file ---- */
	t0 = now_sec();
	st = rv_db_open(&db, path, &oo);
	double t_open = now_sec() - t0;
	if (st != RV_OK) {
		fprintf(stderr, "demo: open %s: %s: %s\n", path, rv_status_str(st),
			db ? rv_errmsg(db) : "out of memory");
		goto done;
	}
	rv_stats s;
	memset(&s, 0, sizeof s); /* RV_STATS_INIT, without -Wextra's missing-field warning */
	s.size = sizeof s;
	if (rv_db_stats(&s, db) != RV_OK) {
		fprintf(stderr, "demo: stats: %s\n", rv_errmsg(db));
		goto done;
	}
	st = rv_verify_file(path, NULL, NULL);

	printf("  %-28s %s\n", "file", path);
	printf("  %-28s %llu points, dimension %u, metric %s\n", "collection",
	       (unsigned long long)s.count, s.dim, rv_metric_name(s.metric));
	printf("  %-28s m = %u, ef_construction = %u, ef_search = %u, %u levels\n", "graph",
	       s.m, s.ef_construction, s.ef_search, s.graph_levels);
	printf("  %-28s %s in %u segments, generation %llu\n", "file size",
	       fmt_bytes(s.file_bytes, b1, sizeof b1), s.segments,
	       (unsigned long long)s.generation);
	printf("  %-28s %s\n", "memory held by the handle", fmt_bytes(s.memory_bytes, b1, sizeof b1));
	printf("  %-28s %s\n", "distance kernels", s.simd ? s.simd : rv_simd_name());
	printf("  %-28s %s\n", "checksums (rv_verify_file)", st == RV_OK ? "all good" : "FAILED");
	if (st != RV_OK || s.count != c.n || s.dim != c.dim) {
		fprintf(stderr, "demo: the reopened file holds %llu points of dimension %u "
			"(expected %zu of %zu), verify: %s\n", (unsigned long long)s.count, s.dim,
			c.n, c.dim, rv_status_str(st));
		goto done;
	}

	/* ---- similar documents ---- */
	heading("Documents most similar to ... (similarity = cosine, the document itself left out)");
	for (size_t i = 0; i < sizeof demo_queries / sizeof *demo_queries; i++) {
		size_t q = corpus_find(&c, demo_queries[i]);
		if (q == (size_t)-1) {
			fprintf(stderr, "demo: document %s is not in %s\n", demo_queries[i], data);
			goto done;
		}
		if (show_similar(db, &c, q) != 0)
			goto done;
	}

	/* ---- filtered search ---- */
	size_t fq = corpus_find(&c, demo_queries[3]);
	heading("Filtered search: the \"Chart with Filter Bar\" query, restricted by payload");
	static const char *const one[] = { "Sapui5" };
	static const char *const two[] = { "Sap Fe Test Api", "Fiori Extension Instructions" };
	static const char *const rare[] = { "Opa5 Docu" };
	if (show_filtered(db, &c, fq, "{\"category\": \"Sapui5\"}", one, 1, K_SIMILAR) != 0 ||
	    show_filtered(db, &c, fq,
			  "{\"category\": {\"$in\": [\"Sap Fe Test Api\", "
			  "\"Fiori Extension Instructions\"]}}",
			  two, 2, K_SIMILAR) != 0 ||
	    show_filtered(db, &c, fq, "{\"category\": {\"$in\": [\"Opa5 Docu\", \"Nowhere\"]}}",
			  rare, 1, K_SIMILAR) != 0)
		goto done;

	/* ---- recall ---- */
	heading("Graph search against exact scan, every document as a query");
	double recall, us_graph, us_exact;
	if (measure_recall(db, &c, &recall, &us_graph, &us_exact) != 0)
		goto done;
	printf("  %-28s %.4f over %zu queries (k = %d, ef = %u)\n", "recall@10", recall, c.n,
	       K_RECALL, s.ef_search);

	heading("Timings");
	printf("  %-28s %9.1f ms  (%zu points in one batch, %.1f us per point)\n",
	       "build (create + upsert)", t_build * 1e3, c.n, t_build * 1e6 / (double)c.n);
	printf("  %-28s %9.1f ms\n", "commit", t_commit * 1e3);
	printf("  %-28s %9.1f ms\n", "open (graph loaded)", t_open * 1e3);
	printf("  %-28s %9.1f us  (exact scan: %.1f us)\n", "mean search latency, k=10",
	       us_graph, us_exact);
	rule();
	if (recall < MIN_RECALL) {
		fprintf(stderr, "demo: recall@10 %.4f is below %.2f\n", recall, MIN_RECALL);
		goto done;
	}
	printf("demo: ok\n");
	rc = 0;
done:
	rv_db_close(db);
	free(pts);
	corpus_free(&c);
	return rc;
}
