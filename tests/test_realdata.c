/*
 * test_realdata.c - the library on real embeddings, through the public API.
 *
 * fiori_*: the 778 SAP Fiori documentation chunks embedded with
 * all-MiniLM-L6-v2 (384-d, cosine), with their titles and categories as
 * payloads: recall against brute force, identical answers after a reopen,
 * filters by category.
 * slow_fashion_recall: Fashion-MNIST (60,000 x 784, L2) built in batches on
 * two threads, recall against the exact ground truth, after a reopen, and
 * after deleting every other point.
 *
 * The data come from scripts/data.sh (run by `make test` first). A missing
 * file fails the test with a message naming the script: these tests are
 * never skipped.
 */
#include "harness.h"

#include <cjson/cJSON.h>

#define FIORI_N 778
#define FIORI_DIM 384
#define K 10

typedef struct fiori {
	size_t n, dim;
	float *vectors;     /* from fiori.fvecs */
	char **ids;         /* from fiori.jsonl, same order */
	char **payloads;    /* JSON text */
	char **categories;
} fiori;

static void fiori_free(fiori *f)
{
	for (size_t i = 0; i < f->n && f->ids; i++) {
		free(f->ids[i]);
		free(f->payloads[i]);
		free(f->categories[i]);
	}
	free(f->ids);
	free(f->payloads);
	free(f->categories);
	free(f->vectors);
	memset(f, 0, sizeof *f);
}

/* Load fiori.fvecs and fiori.jsonl and check they agree; 0 on success,
 * otherwise a message on stderr. */
static int fiori_load(fiori *f)
{
	int rc = -1;
	char path[2048];
	FILE *in = NULL;
	char *line = NULL;
	size_t cap = 0, n = 0;

	memset(f, 0, sizeof *f);
	f->vectors = rv_test_load_fvecs("fiori/fiori.fvecs", &f->n, &f->dim);
	if (!f->vectors) {
		fprintf(stderr, "data/fiori/fiori.fvecs missing or unreadable: run "
			"./scripts/data.sh fiori\n");
		return -1;
	}
	if (f->n != FIORI_N || f->dim != FIORI_DIM) {
		fprintf(stderr, "fiori.fvecs holds %zu x %zu, expected %d x %d: rerun "
			"./scripts/data.sh fiori\n", f->n, f->dim, FIORI_N, FIORI_DIM);
		goto done;
	}
	f->ids = calloc(f->n, sizeof *f->ids);
	f->payloads = calloc(f->n, sizeof *f->payloads);
	f->categories = calloc(f->n, sizeof *f->categories);
	snprintf(path, sizeof path, "%s/fiori/fiori.jsonl", RV_DATA_DIR);
	in = fopen(path, "r");
	if (!in) {
		fprintf(stderr, "missing %s: run ./scripts/data.sh fiori\n", path);
		goto done;
	}
	while (getline(&line, &cap, in) > 1) {
		if (n == f->n) {
			fprintf(stderr, "%s has more lines than fiori.fvecs has vectors\n", path);
			goto done;
		}
		cJSON *rec = cJSON_Parse(line);
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
		const cJSON *vec = cJSON_GetObjectItemCaseSensitive(rec, "vector");
		const cJSON *pl = cJSON_GetObjectItemCaseSensitive(rec, "payload");
		const cJSON *cat = cJSON_GetObjectItemCaseSensitive(pl, "category");
		int ok = cJSON_IsString(id) && cJSON_IsArray(vec) && cJSON_IsString(cat) &&
			 (size_t)cJSON_GetArraySize(vec) == f->dim;
		/* The JSON vectors must be the same floats as the fvecs ones. */
		for (size_t j = 0; ok && j < f->dim; j++)
			ok = (float)cJSON_GetArrayItem(vec, (int)j)->valuedouble ==
			     f->vectors[n * f->dim + j];
		if (ok) {
			f->ids[n] = strdup(id->valuestring);
			f->payloads[n] = cJSON_PrintUnformatted(pl);
			f->categories[n] = strdup(cat->valuestring);
		}
		cJSON_Delete(rec);
		if (!ok) {
			fprintf(stderr, "%s line %zu does not match fiori.fvecs row %zu\n", path,
				n + 1, n);
			goto done;
		}
		n++;
	}
	if (n != f->n) {
		fprintf(stderr, "%s has %zu lines, fiori.fvecs %zu vectors\n", path, n, f->n);
		goto done;
	}
	rc = 0;
done:
	free(line);
	if (in)
		fclose(in);
	if (rc != 0)
		fiori_free(f);
	return rc;
}

/* A fresh cosine collection at path holding all of f, committed. */
static rv_status fiori_build(rv_db **db, const char *path, const fiori *f)
{
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.dim = (uint32_t)f->dim;
	o.metric = RV_METRIC_COSINE;
	o.threads = 2;
	rv_point *p = calloc(f->n, sizeof *p);
	for (size_t i = 0; i < f->n; i++)
		p[i] = (rv_point){ .id = f->ids[i], .vector = f->vectors + i * f->dim,
				   .payload = f->payloads[i] };
	rv_status st = rv_db_create(db, path, &o);
	if (st == RV_OK)
		st = rv_db_upsert(*db, p, f->n);
	if (st == RV_OK)
		st = rv_db_commit(*db);
	if (st != RV_OK)
		fprintf(stderr, "fiori build: %s: %s\n", rv_status_str(st),
			*db ? rv_errmsg(*db) : "");
	free(p);
	return st;
}

static size_t fiori_index(const fiori *f, const char *id)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->ids[i], id) == 0)
			return i;
	return (size_t)-1;
}

TEST(fiori_recall)
{
	fiori f;
	CHECK_MSG(fiori_load(&f) == 0, "real data missing: run ./scripts/data.sh fiori");
	rv_db *db = NULL;
	rv_status st = fiori_build(&db, rv_test_path("fiori_recall.rvf"), &f);
	int *gt = rv_test_ground_truth(f.vectors, f.n, f.vectors, f.n, f.dim, K,
				       RV_METRIC_COSINE);
	size_t found = 0, total = 0;
	int ok = st == RV_OK && rv_db_count(db) == f.n;
	for (size_t q = 0; ok && q < f.n; q++) {
		rv_results *r = NULL;
		rv_search_opts so = RV_SEARCH_OPTS_INIT;
		so.k = K;
		if (rv_db_search(&r, db, f.vectors + q * f.dim, &so) != RV_OK) {
			fprintf(stderr, "search %zu: %s\n", q, rv_errmsg(db));
			ok = 0;
			break;
		}
		const rv_hit *h = rv_results_hits(r);
		ok = rv_results_count(r) == K;
		for (size_t i = 0; ok && i < K; i++) {
			size_t idx = fiori_index(&f, h[i].id);
			/* Scores are cosine distances, sorted, in [0, 2]. */
			ok = idx != (size_t)-1 && h[i].score >= -1e-5f && h[i].score <= 2.00001f &&
			     (i == 0 || h[i].score >= h[i - 1].score);
			for (size_t j = 0; ok && j < K; j++)
				if (gt[q * K + j] == (int)idx) {
					found++;
					break;
				}
		}
		total += K;
		rv_results_free(r);
	}
	double recall = total ? (double)found / (double)total : 0;
	fprintf(stderr, "   fiori recall@10 = %.4f over %zu queries\n", recall, f.n);
	free(gt);
	rv_db_close(db);
	fiori_free(&f);
	CHECK_MSG(ok, "build or search failed, or a hit was malformed");
	CHECK_MSG(recall >= 0.95, "recall@10 %.4f < 0.95", recall);
}

TEST(fiori_reopen)
{
	fiori f;
	CHECK_MSG(fiori_load(&f) == 0, "real data missing: run ./scripts/data.sh fiori");
	const char *path = rv_test_path("fiori_reopen.rvf");
	rv_db *db = NULL;
	int ok = fiori_build(&db, path, &f) == RV_OK;
	/* Before the reopen: each query's top 10 ids and scores. */
	char (*ids)[RV_MAX_ID_LEN + 1] = calloc(f.n * K, sizeof *ids);
	float *scores = calloc(f.n * K, sizeof *scores);
	size_t mismatches = 0, first_bad = 0;
	for (int pass = 0; ok && pass < 2; pass++) {
		if (pass == 1) {
			rv_db_close(db);
			db = NULL;
			rv_open_opts o = RV_OPEN_OPTS_INIT;
			rv_status st = rv_db_open(&db, path, &o);
			if (st != RV_OK) {
				fprintf(stderr, "reopen: %s\n", db ? rv_errmsg(db) : "");
				ok = 0;
				break;
			}
			ok = rv_db_count(db) == f.n && rv_db_dim(db) == f.dim;
		}
		for (size_t q = 0; ok && q < f.n; q++) {
			rv_results *r = NULL;
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			so.k = K;
			if (rv_db_search(&r, db, f.vectors + q * f.dim, &so) != RV_OK ||
			    rv_results_count(r) != K) {
				ok = 0;
				rv_results_free(r);
				break;
			}
			const rv_hit *h = rv_results_hits(r);
			for (size_t i = 0; i < K; i++) {
				if (pass == 0) {
					snprintf(ids[q * K + i], sizeof ids[0], "%s", h[i].id);
					scores[q * K + i] = h[i].score;
				} else if (strcmp(ids[q * K + i], h[i].id) != 0 ||
					   scores[q * K + i] != h[i].score) {
					if (mismatches++ == 0)
						first_bad = q;
				}
			}
			rv_results_free(r);
		}
	}
	/* A point read back from the file: the unit vector and the payload. */
	float v[FIORI_DIM];
	char *payload = NULL;
	int got = ok && rv_db_get(db, f.ids[123], v, &payload) == RV_OK;
	float maxdiff = 0;
	for (size_t j = 0; got && j < f.dim; j++) {
		float d = fabsf(v[j] - f.vectors[123 * f.dim + j]);
		maxdiff = d > maxdiff ? d : maxdiff;
	}
	cJSON *p1 = payload ? cJSON_Parse(payload) : NULL;
	cJSON *p2 = cJSON_Parse(f.payloads[123]);
	int same_payload = p1 && p2 && cJSON_Compare(p1, p2, 1);
	cJSON_Delete(p1);
	cJSON_Delete(p2);
	rv_free(payload);
	rv_db_close(db);
	free(ids);
	free(scores);
	fiori_free(&f);
	CHECK_MSG(ok, "build, reopen or search failed");
	CHECK_MSG(mismatches == 0, "%zu of %d hits differ after the reopen (first: query %zu)",
		  mismatches, FIORI_N * K, first_bad);
	CHECK_MSG(got && maxdiff < 1e-5f, "rv_db_get after reopen: vector differs by %g", maxdiff);
	CHECK_MSG(same_payload, "rv_db_get after reopen: payload differs");
}

/* Every category as a filter, for several queries: min(k, members) hits,
 * all from the category, nearly the exact filtered top k; then $in over
 * two categories. */
TEST(fiori_filter)
{
	fiori f;
	CHECK_MSG(fiori_load(&f) == 0, "real data missing: run ./scripts/data.sh fiori");
	rv_db *db = NULL;
	int ok = fiori_build(&db, rv_test_path("fiori_filter.rvf"), &f) == RV_OK;
	static const size_t queries[] = { 0, 211, 300, 349, 512, 777 };
	const size_t nqs = sizeof queries / sizeof *queries;
	size_t found = 0, wanted = 0, searches = 0;
	char msg[512] = "";
	for (size_t c = 0; ok && c < f.n; c++) {
		/* Each category once, at its first member. */
		int seen = 0;
		for (size_t i = 0; i < c && !seen; i++)
			seen = strcmp(f.categories[i], f.categories[c]) == 0;
		if (seen)
			continue;
		const char *cat = f.categories[c];
		size_t members = 0;
		for (size_t i = 0; i < f.n; i++)
			members += strcmp(f.categories[i], cat) == 0;
		cJSON *fj = cJSON_CreateObject();
		cJSON_AddStringToObject(fj, "category", cat);
		char *filter = cJSON_PrintUnformatted(fj);
		cJSON_Delete(fj);
		/* The matching points alone, for the exact filtered answer. */
		float *sub = malloc(members * f.dim * sizeof *sub);
		size_t *map = malloc(members * sizeof *map);
		for (size_t i = 0, m = 0; i < f.n; i++)
			if (strcmp(f.categories[i], cat) == 0) {
				memcpy(sub + m * f.dim, f.vectors + i * f.dim, f.dim * sizeof *sub);
				map[m++] = i;
			}
		for (size_t qi = 0; ok && qi < nqs; qi++) {
			const float *qv = f.vectors + queries[qi] * f.dim;
			size_t want = members < K ? members : K;
			int *gt = rv_test_ground_truth(sub, members, qv, 1, f.dim, want,
						       RV_METRIC_COSINE);
			rv_results *r = NULL;
			rv_search_opts so = RV_SEARCH_OPTS_INIT;
			so.k = K;
			so.filter = filter;
			so.flags = RV_SEARCH_PAYLOAD;
			if (rv_db_search(&r, db, qv, &so) != RV_OK) {
				snprintf(msg, sizeof msg, "search %s: %s", filter, rv_errmsg(db));
				ok = 0;
			} else if (rv_results_count(r) != want) {
				snprintf(msg, sizeof msg, "%s from query %zu: %zu hits, expected "
					 "min(%d, %zu members)", filter, queries[qi],
					 rv_results_count(r), K, members);
				ok = 0;
			}
			for (size_t i = 0; ok && i < rv_results_count(r); i++) {
				const rv_hit *h = &rv_results_hits(r)[i];
				size_t idx = fiori_index(&f, h->id);
				cJSON *p = h->payload ? cJSON_Parse(h->payload) : NULL;
				const cJSON *pc = cJSON_GetObjectItemCaseSensitive(p, "category");
				if (idx == (size_t)-1 || strcmp(f.categories[idx], cat) != 0 ||
				    !cJSON_IsString(pc) || strcmp(pc->valuestring, cat) != 0) {
					snprintf(msg, sizeof msg, "%s returned %s (category %s)", filter,
						 h->id, idx == (size_t)-1 ? "?" : f.categories[idx]);
					ok = 0;
				}
				cJSON_Delete(p);
				for (size_t j = 0; ok && j < want; j++)
					if (map[gt[j]] == idx) {
						found++;
						break;
					}
			}
			wanted += want;
			searches++;
			rv_results_free(r);
			free(gt);
		}
		free(map);
		free(sub);
		cJSON_free(filter);
	}

	/* $in over two categories: every hit from one of them. */
	const char *in2 = "{\"category\": {\"$in\": [\"Fiori Samples\", \"Sap Fe Test Api\"]}}";
	size_t in_members = 0;
	for (size_t i = 0; i < f.n; i++)
		in_members += strcmp(f.categories[i], "Fiori Samples") == 0 ||
			      strcmp(f.categories[i], "Sap Fe Test Api") == 0;
	for (size_t qi = 0; ok && qi < nqs; qi++) {
		rv_results *r = NULL;
		rv_search_opts so = RV_SEARCH_OPTS_INIT;
		so.k = K;
		so.filter = in2;
		if (rv_db_search(&r, db, f.vectors + queries[qi] * f.dim, &so) != RV_OK ||
		    rv_results_count(r) != K) {
			snprintf(msg, sizeof msg, "$in search from query %zu failed or short",
				 queries[qi]);
			ok = 0;
		}
		for (size_t i = 0; ok && i < K; i++) {
			size_t idx = fiori_index(&f, rv_results_hits(r)[i].id);
			if (idx == (size_t)-1 || (strcmp(f.categories[idx], "Fiori Samples") != 0 &&
						  strcmp(f.categories[idx], "Sap Fe Test Api") != 0)) {
				snprintf(msg, sizeof msg, "$in returned %s", rv_results_hits(r)[i].id);
				ok = 0;
			}
		}
		rv_results_free(r);
	}
	rv_db_close(db);
	fiori_free(&f);
	double recall = wanted ? (double)found / (double)wanted : 0;
	fprintf(stderr, "   %zu filtered searches, filtered recall %.4f; $in over %zu members\n",
		searches, recall, in_members);
	CHECK_MSG(ok, "%s", msg[0] ? msg : "build failed");
	CHECK(searches >= 10 * nqs); /* the data set has 13 categories */
	CHECK_MSG(recall >= 0.95, "filtered recall %.4f < 0.95", recall);
}

/* ------------------------------------------------------------------------
 * Fashion-MNIST
 * ---------------------------------------------------------------------- */

#define FASHION_QUERIES 200
#define FASHION_DELETE_QUERIES 100
#define FASHION_BATCH 10000

/* .ivecs ground truth: n rows of k int32. */
static int *load_ivecs(const char *file, size_t *n, size_t *k)
{
	char path[2048];
	snprintf(path, sizeof path, "%s/%s", RV_DATA_DIR, file);
	FILE *in = fopen(path, "rb");
	if (!in)
		return NULL;
	int32_t d = 0;
	int *out = NULL;
	if (fread(&d, 4, 1, in) == 1 && d > 0 && fseek(in, 0, SEEK_END) == 0) {
		long bytes = ftell(in);
		size_t rows = (size_t)bytes / (4 + 4 * (size_t)d);
		out = malloc(rows * (size_t)d * sizeof *out);
		rewind(in);
		for (size_t i = 0; out && i < rows; i++) {
			int32_t dd;
			if (fread(&dd, 4, 1, in) != 1 || dd != d ||
			    fread(out + i * (size_t)d, 4, (size_t)d, in) != (size_t)d) {
				free(out);
				out = NULL;
			}
		}
		*n = rows;
		*k = (size_t)d;
	}
	fclose(in);
	return out;
}

/* recall@K of queries[0..nq) against truth (row stride tk, ids are
 * decimal indices); also whether any hit has an odd/even id that `banned`
 * rejects (banned < 0: none). */
static double fashion_recall(rv_db *db, const float *queries, size_t nq, size_t dim,
			     const int *truth, size_t tk, uint32_t ef, long *ids_out, int banned_parity,
			     int *saw_banned)
{
	size_t found = 0;
	for (size_t q = 0; q < nq; q++) {
		rv_results *r = NULL;
		rv_search_opts so = RV_SEARCH_OPTS_INIT;
		so.k = K;
		so.ef = ef;
		if (rv_db_search(&r, db, queries + q * dim, &so) != RV_OK) {
			fprintf(stderr, "fashion search %zu: %s\n", q, rv_errmsg(db));
			return -1;
		}
		for (size_t i = 0; i < rv_results_count(r); i++) {
			long id = strtol(rv_results_hits(r)[i].id, NULL, 10);
			if (ids_out)
				ids_out[q * K + i] = id;
			if (banned_parity >= 0 && id % 2 == banned_parity)
				*saw_banned = 1;
			for (size_t j = 0; j < K; j++)
				if (truth[q * tk + j] == id) {
					found++;
					break;
				}
		}
		rv_results_free(r);
	}
	return (double)found / (double)(nq * K);
}

TEST(slow_fashion_recall)
{
	size_t n = 0, dim = 0, nt = 0, tdim = 0, ng = 0, gk = 0;
	float *train = rv_test_load_fvecs("fashion-mnist-train.fvecs", &n, &dim);
	float *test = rv_test_load_fvecs("fashion-mnist-test.fvecs", &nt, &tdim);
	int *gt = load_ivecs("fashion-mnist-gt100.ivecs", &ng, &gk);
	if (!train || !test || !gt) {
		free(train);
		free(test);
		free(gt);
		CHECK_MSG(0, "data/fashion-mnist-*.fvecs / -gt100.ivecs missing: run "
			  "./scripts/data.sh fashion");
	}
	int shape_ok = n == 60000 && dim == 784 && tdim == dim && nt >= FASHION_QUERIES &&
		       ng == nt && gk >= K;
	const char *path = rv_test_path("slow_fashion.rvf");
	rv_db *db = NULL;
	rv_status st = RV_ERROR;
	char (*ids)[24] = calloc(n, sizeof *ids);
	rv_point *pts = calloc(FASHION_BATCH, sizeof *pts);
	long *before = calloc(FASHION_QUERIES * K, sizeof *before);
	long *after = calloc(FASHION_QUERIES * K, sizeof *after);
	double r_built = -1, r_reopen = -1, r_deleted = -1;
	size_t n_deleted = 0, identical = 0;
	int saw_deleted = 0;
	uint64_t count_after_delete = 0, count_reopen2 = 0;

	if (shape_ok) {
		rv_open_opts o = RV_OPEN_OPTS_INIT;
		o.dim = (uint32_t)dim;
		o.metric = RV_METRIC_L2;
		o.m = 16;
		o.ef_construction = 100;
		o.threads = 2;
		st = rv_db_create(&db, path, &o);
		for (size_t b = 0; st == RV_OK && b < n; b += FASHION_BATCH) {
			size_t nb = n - b < FASHION_BATCH ? n - b : FASHION_BATCH;
			for (size_t i = 0; i < nb; i++) {
				snprintf(ids[b + i], sizeof ids[0], "%zu", b + i);
				pts[i] = (rv_point){ .id = ids[b + i],
						     .vector = train + (b + i) * dim };
			}
			st = rv_db_upsert(db, pts, nb);
		}
		if (st == RV_OK)
			st = rv_db_commit(db);
		if (st == RV_OK)
			r_built = fashion_recall(db, test, FASHION_QUERIES, dim, gt, gk, 100, before,
						 -1, NULL);
		/* Reopen: the saved graph answers the same. */
		rv_db_close(db);
		db = NULL;
		if (st == RV_OK)
			st = rv_db_open(&db, path, &o);
		if (st == RV_OK)
			r_reopen = fashion_recall(db, test, FASHION_QUERIES, dim, gt, gk, 100, after,
						  -1, NULL);
		for (size_t i = 0; i < FASHION_QUERIES * K; i++)
			identical += before[i] == after[i];

		/* Delete every other point (the even ids), then measure against
		 * brute force over the odd ones that remain. */
		const char **del = calloc(n / 2, sizeof *del);
		for (size_t i = 0; i < n / 2; i++)
			del[i] = ids[2 * i];
		if (st == RV_OK)
			st = rv_db_delete(db, del, n / 2, &n_deleted);
		free(del);
		if (st == RV_OK) {
			count_after_delete = rv_db_count(db);
			size_t left = n - n / 2;
			float *rest = malloc(left * dim * sizeof *rest);
			for (size_t i = 0; i < left; i++)
				memcpy(rest + i * dim, train + (2 * i + 1) * dim, dim * sizeof *rest);
			int *gt2 = rv_test_ground_truth(rest, left, test, FASHION_DELETE_QUERIES, dim,
							K, RV_METRIC_L2);
			/* Back from positions in `rest` to ids. */
			for (size_t i = 0; i < FASHION_DELETE_QUERIES * K; i++)
				gt2[i] = 2 * gt2[i] + 1;
			r_deleted = fashion_recall(db, test, FASHION_DELETE_QUERIES, dim, gt2, K, 100,
						   NULL, 0, &saw_deleted);
			free(gt2);
			free(rest);
			st = rv_db_commit(db);
		}
		if (st == RV_OK) {
			rv_db_close(db);
			db = NULL;
			st = rv_db_open(&db, path, &o);
			if (st == RV_OK)
				count_reopen2 = rv_db_count(db);
		}
		if (st != RV_OK)
			fprintf(stderr, "fashion: %s: %s\n", rv_status_str(st),
				db ? rv_errmsg(db) : "");
	}
	fprintf(stderr, "   fashion recall@10 (ef=100, %d queries): built %.4f, reopened %.4f "
		"(%zu/%d hits identical); after deleting %zu: %.4f (%d queries)\n",
		FASHION_QUERIES, r_built, r_reopen, identical, FASHION_QUERIES * K, n_deleted,
		r_deleted, FASHION_DELETE_QUERIES);
	rv_db_close(db);
	free(after);
	free(before);
	free(pts);
	free(ids);
	free(gt);
	free(test);
	free(train);
	CHECK_MSG(shape_ok, "fashion data has an unexpected shape: rerun ./scripts/data.sh fashion");
	CHECK_MSG(st == RV_OK, "a call failed (see above)");
	CHECK_MSG(r_built >= 0.95, "recall@10 after the build %.4f < 0.95", r_built);
	CHECK_MSG(r_reopen == r_built, "recall changed on reopen: %.4f -> %.4f", r_built,
		  r_reopen);
	CHECK(identical == FASHION_QUERIES * K);
	CHECK(n_deleted == n / 2);
	CHECK(count_after_delete == n - n / 2);
	CHECK_MSG(!saw_deleted, "a deleted point was returned");
	CHECK_MSG(r_deleted >= 0.95, "recall@10 after deleting half %.4f < 0.95", r_deleted);
	CHECK(count_reopen2 == n - n / 2);
}
