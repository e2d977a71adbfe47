/*
 * test_cli.c - the `ruvector` command, run as a program (RV_BIN_DIR
 * "/ruvector") in a temporary directory, the way a script would use it:
 * exit codes, the stable output lines, --json output parsed with cJSON and
 * compared with brute force on the same data.
 */
#include "harness.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util/util.h"

#define BIN RV_BIN_DIR "/ruvector"

/* ======================================================================
 * Running the command
 * ==================================================================== */

typedef struct run {
	int rc;
	char *out, *err;
} run;

static char dir[1024];

/* A fresh working directory for this case. */
static void setup(const char *name)
{
	snprintf(dir, sizeof dir, "%s", rv_test_path(name));
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot make %s\n", dir);
}

static const char *in_dir(const char *file)
{
	static char buf[4][1200];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, sizeof buf[0], "%s/%s", dir, file);
	return p;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	size_t got = fread(s, 1, (size_t)n, f);
	s[got] = 0;
	fclose(f);
	return s;
}

static void run_free(run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run "ruvector <args>" in the case's directory; args is a shell fragment
 * (it may chain more commands with && '<BIN>' ...); all their output is
 * captured. */
static run sh(const char *fmt, ...)
{
	char args[4096], cmd[6144];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "cd '%s' && { '%s' %s ; } >out.txt 2>err.txt", dir, BIN, args);
	int st = system(cmd);
	run r = { .rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 };
	r.out = slurp(in_dir("out.txt"));
	r.err = slurp(in_dir("err.txt"));
	return r;
}

#define CHECK_RUN(r, want)                                                                     \
	CHECK_MSG((r).rc == (want), "exit %d, want %d\nstdout: %s\nstderr: %s", (r).rc, (want), \
		  (r).out, (r).err)

/* ======================================================================
 * Data files
 * ==================================================================== */

static void write_fvecs(const char *name, const float *v, size_t n, size_t dim)
{
	FILE *f = fopen(in_dir(name), "wb");
	for (size_t i = 0; i < n; i++) {
		int32_t d = (int32_t)dim;
		fwrite(&d, 4, 1, f);
		fwrite(v + i * dim, 4, dim, f);
	}
	fclose(f);
}

/* JSON lines with ids "p<i>" and payload {"group": i % 5, "i": i}. */
static void write_jsonl(const char *name, const float *v, size_t n, size_t dim, bool payload)
{
	FILE *f = fopen(in_dir(name), "w");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "{\"id\":\"p%zu\",\"vector\":[", i);
		for (size_t d = 0; d < dim; d++)
			fprintf(f, "%s%.9g", d ? "," : "", (double)v[i * dim + d]);
		if (payload)
			fprintf(f, "],\"payload\":{\"group\":%zu,\"i\":%zu}}\n", i % 5, i);
		else
			fprintf(f, "]}\n");
	}
	fclose(f);
}

static double l2(const float *a, const float *b, size_t dim)
{
	double s = 0;
	for (size_t i = 0; i < dim; i++)
		s += (double)(a[i] - b[i]) * (a[i] - b[i]);
	return sqrt(s);
}

/* Parse --json search output: one object per line. Returns the number of
 * lines; lines[i] are cJSON trees (free with cJSON_Delete). */
static size_t parse_lines(const char *out, cJSON **lines, size_t max)
{
	size_t n = 0;
	const char *p = out;
	while (*p && n < max) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		lines[n++] = cJSON_ParseWithLength(p, len);
		p += len + (e ? 1 : 0);
	}
	return n;
}

/* Index of id "<prefix><number>" (or a bare number when prefix is ""). */
static long id_index(const cJSON *hit, const char *prefix)
{
	const cJSON *id = cJSON_GetObjectItem(hit, "id");
	if (!cJSON_IsString(id) || strncmp(id->valuestring, prefix, strlen(prefix)) != 0)
		return -1;
	return strtol(id->valuestring + strlen(prefix), NULL, 10);
}

/* ======================================================================
 * Cases
 * ==================================================================== */

TEST(usage_and_help)
{
	setup("cli-usage");
	run r = sh("");
	CHECK_RUN(r, 2);
	CHECK(strstr(r.err, "usage:"));
	run_free(&r);
	r = sh("frobnicate");
	CHECK_RUN(r, 2);
	CHECK(strstr(r.err, "unknown command 'frobnicate'"));
	run_free(&r);
	r = sh("--version");
	CHECK_RUN(r, 0);
	CHECK(strncmp(r.out, "ruvector " RV_VERSION_STRING, strlen("ruvector " RV_VERSION_STRING)) == 0);
	run_free(&r);
	r = sh("help");
	CHECK_RUN(r, 0);
	CHECK(strstr(r.out, "import") && strstr(r.out, "verify"));
	run_free(&r);
	r = sh("help search");
	CHECK_RUN(r, 0);
	CHECK(strstr(r.out, "--filter"));
	run_free(&r);

	const char *cmds[] = { "create", "import", "search", "get", "delete", "info", "compact", "verify" };
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		r = sh("%s --help", cmds[i]);
		CHECK_RUN(r, 0);
		CHECK_MSG(strstr(r.out, "usage: ruvector ") && strstr(r.out, cmds[i]), "%s", r.out);
		run_free(&r);
	}

	/* Usage errors: exit 2, the command named, a pointer to --help. */
	const char *bad[][2] = {
		{ "create c.rvf --metric l2", "--dim is required" },
		{ "create c.rvf --dim 4", "--metric is required" },
		{ "create c.rvf --dim abc --metric l2", "'abc' is not a non-negative integer" },
		{ "create c.rvf --dim 0 --metric l2", "outside 1..16000" },
		{ "create c.rvf --dim 4 --metric hamming", "'hamming' is not l2, cosine or ip" },
		{ "create --dim 4 --metric l2", "expected the collection FILE" },
		{ "create c.rvf --dim", "'--dim' needs a value" },
		{ "info c.rvf --bogus", "unknown option '--bogus'" },
		{ "info a.rvf b.rvf", "unexpected argument 'b.rvf'" },
		{ "import c.rvf data.txt", "cannot tell the format" },
		{ "import c.rvf - ", "needs --format" },
		{ "import c.rvf x.csv --format xml", "'xml' is not fvecs" },
		{ "import c.rvf x.csv --header --no-header", "contradict" },
		{ "search c.rvf --vector '[1]' --query-file q.fvecs", "one way" },
		{ "search c.rvf --vector '[1,' ", "invalid JSON" },
		{ "search c.rvf --vector '1,x'", "element 1 is not a number" },
		{ "search c.rvf -k 0 --vector '[1]'", "outside 1..100000" },
		{ "get c.rvf", "expected the collection FILE and an ID" },
		{ "delete c.rvf", "at least one ID" },
		{ "verify", "expected the collection FILE" },
		{ "get c.rvf x --json=yes", "takes no value" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = sh("%s", bad[i][0]);
		CHECK_MSG(r.rc == 2, "'%s': exit %d: %s", bad[i][0], r.rc, r.err);
		CHECK_MSG(strstr(r.err, bad[i][1]) && strstr(r.err, "--help'"), "'%s': %s", bad[i][0], r.err);
		CHECK_MSG(r.out[0] == 0, "'%s' wrote to stdout: %s", bad[i][0], r.out);
		run_free(&r);
	}
}

TEST(create_and_runtime_errors)
{
	setup("cli-create");
	run r = sh("create c.rvf --dim 8 --metric cosine --m 8 --ef-construction 64 --ef-search 32");
	CHECK_RUN(r, 0);
	CHECK(strcmp(r.out, "created c.rvf (dim 8, metric cosine, m 8, ef_construction 64, ef_search 32)\n") == 0);
	run_free(&r);
	r = sh("info c.rvf --json");
	CHECK_RUN(r, 0);
	cJSON *j = cJSON_Parse(r.out);
	CHECK(j);
	CHECK(cJSON_GetObjectItem(j, "dim")->valuedouble == 8);
	CHECK(strcmp(cJSON_GetObjectItem(j, "metric")->valuestring, "cosine") == 0);
	CHECK(cJSON_GetObjectItem(j, "m")->valuedouble == 8);
	CHECK(cJSON_GetObjectItem(j, "ef_search")->valuedouble == 32);
	CHECK(cJSON_GetObjectItem(j, "count")->valuedouble == 0);
	CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "simd")));
	cJSON_Delete(j);
	run_free(&r);

	/* Runtime errors: exit 1, one "ruvector: " line naming the problem. */
	r = sh("create c.rvf --dim 8 --metric l2");
	CHECK_RUN(r, 1);
	CHECK_MSG(strncmp(r.err, "ruvector: c.rvf: ", 17) == 0, "%s", r.err);
	run_free(&r);
	r = sh("create d.rvf --dim 8 --metric l2 --m 1");
	CHECK_RUN(r, 1);
	CHECK_MSG(strncmp(r.err, "ruvector: d.rvf: ", 17) == 0 && strstr(r.err, "m"), "%s", r.err);
	run_free(&r);
	r = sh("info missing.rvf");
	CHECK_RUN(r, 1);
	CHECK(strncmp(r.err, "ruvector: missing.rvf: ", 23) == 0);
	run_free(&r);
	r = sh("search c.rvf --vector '[1,2,3]'");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "3 values, the collection has dimension 8"), "%s", r.err);
	run_free(&r);
	r = sh("import c.rvf missing.jsonl");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "ruvector: missing.jsonl: cannot open"), "%s", r.err);
	run_free(&r);
}

/* Every format into its own collection; ids, vectors and payloads come
 * back through get. */
TEST(import_formats)
{
	setup("cli-formats");
	const size_t n = 40, dim = 4;
	float *v = rv_test_random_vectors(n, dim, 11);
	run r;

	/* fvecs, with an id offset. */
	write_fvecs("d.fvecs", v, n, dim);
	r = sh("create f.rvf --dim 4 --metric l2 && '%s' import f.rvf d.fvecs --id-offset 100 --batch 7", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strncmp(r.out, "created f.rvf", 13) == 0 && strstr(r.out, "\nimported 40 points in "),
		  "%s", r.out);
	CHECK(strstr(r.out, " s (") && strstr(r.out, "/s)\n"));
	/* stderr is not a terminal here: no progress line, nothing at all. */
	CHECK_MSG(r.err[0] == 0, "%s", r.err);
	run_free(&r);
	r = sh("get f.rvf 139 --json");
	CHECK_RUN(r, 0);
	cJSON *j = cJSON_Parse(r.out);
	CHECK(j);
	cJSON *vec = cJSON_GetObjectItem(j, "vector");
	CHECK(cJSON_GetArraySize(vec) == 4);
	for (int d = 0; d < 4; d++)
		CHECK((float)cJSON_GetArrayItem(vec, d)->valuedouble == v[39 * dim + (size_t)d]);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "payload")));
	cJSON_Delete(j);
	run_free(&r);

	/* bvecs. */
	FILE *f = fopen(in_dir("d.bvecs"), "wb");
	for (int i = 0; i < 5; i++) {
		int32_t d = 4;
		uint8_t b[4] = { (uint8_t)i, 10, 200, 255 };
		fwrite(&d, 4, 1, f);
		fwrite(b, 1, 4, f);
	}
	fclose(f);
	r = sh("create b.rvf --dim 4 --metric l2 && '%s' import b.rvf d.bvecs && '%s' get b.rvf 3", BIN, BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 5 points") && strstr(r.out, "id: 3\nvector: [3,10,200,255]\npayload: null\n"),
		  "%s", r.out);
	run_free(&r);

	/* npy (float64). */
	f = fopen(in_dir("d.npy"), "wb");
	const char *hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
	char h[128];
	memset(h, ' ', sizeof h);
	memcpy(h, hdr, strlen(hdr));
	h[117] = '\n';
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	uint8_t hl[2] = { 118, 0 };
	fwrite(hl, 1, 2, f);
	fwrite(h, 1, 118, f);
	for (int i = 0; i < 12; i++) {
		double d = i * 0.25;
		fwrite(&d, 8, 1, f);
	}
	fclose(f);
	r = sh("create n.rvf --dim 4 --metric l2 && '%s' import n.rvf d.npy && '%s' get n.rvf 2", BIN, BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 3 points") && strstr(r.out, "vector: [2,2.25,2.5,2.75]"), "%s", r.out);
	run_free(&r);

	/* CSV with a header and ids. */
	f = fopen(in_dir("d.csv"), "w");
	fprintf(f, "id,a,b,c,d\n\"x,1\",1,2,3,4\ny2,5,6,7,8\n");
	fclose(f);
	r = sh("create c.rvf --dim 4 --metric l2 && '%s' import c.rvf d.csv && '%s' get c.rvf 'x,1'", BIN, BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 2 points") && strstr(r.out, "vector: [1,2,3,4]"), "%s", r.out);
	run_free(&r);
	/* CSV of bare vectors: ids are row numbers. */
	f = fopen(in_dir("bare.txt"), "w");
	fprintf(f, "1,2,3,4\n5,6,7,8\n");
	fclose(f);
	r = sh("import c.rvf bare.txt --format csv --id-offset 50 && '%s' get c.rvf 51", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 2 points") && strstr(r.out, "vector: [5,6,7,8]"), "%s", r.out);
	run_free(&r);

	/* JSON lines with payloads (and "metadata"), from standard input. */
	f = fopen(in_dir("d.ndjson"), "w");
	fprintf(f, "{\"id\":\"a\",\"vector\":[1,0,0,0],\"payload\":{\"t\":\"x\"}}\n"
		   "{\"id\":9,\"vector\":[0,1,0,0],\"metadata\":{\"t\":\"y\"}}\n");
	fclose(f);
	r = sh("create j.rvf --dim 4 --metric l2 && '%s' import j.rvf - --format jsonl < d.ndjson && "
	       "'%s' get j.rvf 9 --json",
	       BIN, BIN);
	CHECK_RUN(r, 0);
	const char *line2 = strchr(strchr(r.out, '\n') + 1, '\n') + 1;
	j = cJSON_Parse(line2);
	CHECK_MSG(j, "%s", r.out);
	CHECK(strcmp(cJSON_GetObjectItem(j, "id")->valuestring, "9") == 0);
	CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "payload"), "t")->valuestring, "y") == 0);
	cJSON_Delete(j);
	run_free(&r);
	free(v);
}

TEST(import_errors)
{
	setup("cli-import-errors");
	run r = sh("create e.rvf --dim 3 --metric l2");
	CHECK_RUN(r, 0);
	run_free(&r);
	FILE *f = fopen(in_dir("bad.jsonl"), "w");
	fprintf(f, "[1,2,3]\n[4,5,6]\n\n[7,8]\n");
	fclose(f);
	/* The error names the line; nothing was committed. */
	r = sh("import e.rvf bad.jsonl");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "ruvector: bad.jsonl: line 4: vector has 2 values, the collection has dimension 3"),
		  "%s", r.err);
	CHECK(r.out[0] == 0);
	run_free(&r);
	r = sh("info e.rvf --json");
	CHECK(strstr(r.out, "\"count\":0,"));
	run_free(&r);

	/* With --commit-every 1 and batches of 1 the rows before the bad
	 * line stay. */
	r = sh("import e.rvf bad.jsonl --batch 1 --commit-every 1");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "line 4") && strstr(r.err, "the first 2 rows were committed"), "%s", r.err);
	run_free(&r);
	r = sh("info e.rvf --json");
	CHECK_MSG(strstr(r.out, "\"count\":2,"), "%s", r.out);
	run_free(&r);

	/* Duplicate ids in one batch: the last row wins. */
	f = fopen(in_dir("dup.jsonl"), "w");
	fprintf(f, "{\"id\":\"d\",\"vector\":[1,1,1]}\n{\"id\":\"d\",\"vector\":[2,2,2]}\n"
		   "{\"id\":\"e\",\"vector\":[3,3,3]}\n");
	fclose(f);
	r = sh("import e.rvf dup.jsonl && '%s' get e.rvf d", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 3 points") && strstr(r.out, "vector: [2,2,2]"), "%s", r.out);
	run_free(&r);

	/* --no-commit: the summary is printed, the file is unchanged. */
	f = fopen(in_dir("more.csv"), "w");
	fprintf(f, "z1,1,2,3\nz2,4,5,6\n");
	fclose(f);
	r = sh("import e.rvf more.csv --no-commit");
	CHECK_RUN(r, 0);
	CHECK(strstr(r.out, "imported 2 points") && strstr(r.err, "--no-commit"));
	run_free(&r);
	r = sh("get e.rvf z1");
	CHECK_RUN(r, 1);
	run_free(&r);

	/* A payload that is not an object is refused by the reader. */
	f = fopen(in_dir("pl.jsonl"), "w");
	fprintf(f, "{\"id\":\"q\",\"vector\":[1,2,3],\"payload\":\"text\"}\n");
	fclose(f);
	r = sh("import e.rvf pl.jsonl");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "line 1: payload is a string"), "%s", r.err);
	run_free(&r);
}

/* 5,000 random 32-d vectors, default settings: recall@10 against brute
 * force through --json output, exact search equal to brute force, and the
 * same answers from every query source and thread count. */
TEST(search_recall)
{
	setup("cli-recall");
	const size_t n = 5000, dim = 32, nq = 50, k = 10;
	float *base = rv_test_random_vectors(n, dim, 21);
	float *qs = rv_test_random_vectors(nq, dim, 22);
	write_fvecs("base.fvecs", base, n, dim);
	write_fvecs("q.fvecs", qs, nq, dim);
	write_jsonl("q.jsonl", qs, nq, dim, false);
	int *gt = rv_test_ground_truth(base, n, qs, nq, dim, k, RV_METRIC_L2);

	run r = sh("create r.rvf --dim 32 --metric l2 && '%s' import r.rvf base.fvecs -q --threads 2", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "imported 5000 points"), "%s", r.out);
	run_free(&r);

	r = sh("search r.rvf --query-file q.fvecs -k 10 --json --threads 2");
	CHECK_RUN(r, 0);
	cJSON *lines[64];
	size_t nl = parse_lines(r.out, lines, 64);
	CHECK(nl == nq);
	size_t found = 0;
	for (size_t q = 0; q < nq; q++) {
		cJSON *hits = cJSON_GetObjectItem(lines[q], "hits");
		CHECK(cJSON_GetArraySize(hits) == (int)k);
		float prev = -1;
		for (size_t i = 0; i < k; i++) {
			cJSON *h = cJSON_GetArrayItem(hits, (int)i);
			long id = id_index(h, "");
			float score = (float)cJSON_GetObjectItem(h, "score")->valuedouble;
			CHECK(id >= 0 && id < (long)n);
			CHECK(score >= prev);
			prev = score;
			/* The printed score is the distance to that point. */
			CHECK(fabs(score - l2(qs + q * dim, base + (size_t)id * dim, dim)) < 1e-4);
			for (size_t g = 0; g < k; g++)
				found += gt[q * k + g] == id;
		}
	}
	double recall = (double)found / (double)(nq * k);
	fprintf(stderr, "   recall@10 = %.3f\n", recall);
	CHECK(recall >= 0.95);
	for (size_t i = 0; i < nl; i++)
		cJSON_Delete(lines[i]);
	run_free(&r);

	/* Exact search equals brute force, id for id, from stdin JSON lines. */
	r = sh("search r.rvf --exact -k 10 --json - < q.jsonl");
	CHECK_RUN(r, 0);
	nl = parse_lines(r.out, lines, 64);
	CHECK(nl == nq);
	for (size_t q = 0; q < nq; q++) {
		cJSON *hits = cJSON_GetObjectItem(lines[q], "hits");
		for (size_t i = 0; i < k; i++)
			CHECK_MSG(id_index(cJSON_GetArrayItem(hits, (int)i), "") == gt[q * k + i],
				  "query %zu rank %zu", q, i);
	}
	for (size_t i = 0; i < nl; i++)
		cJSON_Delete(lines[i]);
	run_free(&r);

	/* One thread and two give the same output, byte for byte, in order. */
	r = sh("search r.rvf --query-file q.jsonl --json --threads 1 > t1.txt && "
	       "'%s' search r.rvf --query-file q.fvecs --json --threads 2 > t2.txt && cmp t1.txt t2.txt",
	       BIN);
	CHECK_RUN(r, 0);
	run_free(&r);

	/* --vector, repeated; the table output. */
	char vec[1024];
	size_t o = 0;
	for (size_t d = 0; d < dim; d++)
		o += (size_t)snprintf(vec + o, sizeof vec - o, "%s%.9g", d ? "," : "", (double)qs[d]);
	r = sh("search r.rvf --exact -k 3 --vector '[%s]' --vector '%s'", vec, vec);
	CHECK_RUN(r, 0);
	char want[64];
	snprintf(want, sizeof want, "\n   1  %d ", gt[0]);
	CHECK_MSG(strstr(r.out, "query 1: 3 hits\nrank  id") && strstr(r.out, "\nquery 2: 3 hits\n") &&
			  strstr(r.out, want),
		  "%s", r.out);
	run_free(&r);
	free(gt);
	free(base);
	free(qs);
}

TEST(search_filter_and_payload)
{
	setup("cli-filter");
	const size_t n = 600, dim = 8;
	float *v = rv_test_random_vectors(n, dim, 31);
	write_jsonl("d.jsonl", v, n, dim, true);
	run r = sh("create f.rvf --dim 8 --metric l2 && '%s' import f.rvf d.jsonl", BIN);
	CHECK_RUN(r, 0);
	run_free(&r);

	char vec[512];
	size_t o = 0;
	for (size_t d = 0; d < dim; d++)
		o += (size_t)snprintf(vec + o, sizeof vec - o, "%s%.9g", d ? "," : "", (double)v[7 * dim + d]);
	r = sh("search f.rvf --vector '[%s]' -k 10 --json --with-payload --with-vector "
	       "--filter '{\"group\": 3, \"i\": {\"$gte\": 100}}'",
	       vec);
	CHECK_RUN(r, 0);
	cJSON *j = cJSON_Parse(r.out);
	CHECK_MSG(j, "%s", r.out);
	cJSON *hits = cJSON_GetObjectItem(j, "hits");
	CHECK(cJSON_GetArraySize(hits) == 10);
	for (int i = 0; i < 10; i++) {
		cJSON *h = cJSON_GetArrayItem(hits, i);
		long id = id_index(h, "p");
		cJSON *pl = cJSON_GetObjectItem(h, "payload");
		CHECK(id >= 100 && id % 5 == 3);
		CHECK(cJSON_GetObjectItem(pl, "group")->valuedouble == 3);
		CHECK(cJSON_GetObjectItem(pl, "i")->valuedouble == (double)id);
		cJSON *hv = cJSON_GetObjectItem(h, "vector");
		CHECK(cJSON_GetArraySize(hv) == (int)dim);
		for (size_t d = 0; d < dim; d++)
			CHECK((float)cJSON_GetArrayItem(hv, (int)d)->valuedouble == v[(size_t)id * dim + d]);
	}
	cJSON_Delete(j);
	run_free(&r);

	/* The same filter, exact: exactly the nearest matching points. */
	r = sh("search f.rvf --vector '[%s]' -k 5 --json --exact --filter '{\"group\": 3}'", vec);
	CHECK_RUN(r, 0);
	j = cJSON_Parse(r.out);
	hits = cJSON_GetObjectItem(j, "hits");
	CHECK(cJSON_GetArraySize(hits) == 5);
	double worst = 0;
	for (int i = 0; i < 5; i++) {
		long id = id_index(cJSON_GetArrayItem(hits, i), "p");
		double d = l2(v + 7 * dim, v + (size_t)id * dim, dim);
		if (d > worst)
			worst = d;
	}
	size_t closer = 0;
	for (size_t i = 3; i < n; i += 5)
		closer += l2(v + 7 * dim, v + i * dim, dim) < worst - 1e-6;
	CHECK(closer < 5); /* only the hits themselves (minus the worst) are closer */
	cJSON_Delete(j);
	run_free(&r);

	/* A bad filter: exit 1, the library's message naming the operator. */
	r = sh("search f.rvf --vector '[%s]' --filter '{\"group\": {\"$bogus\": 1}}'", vec);
	CHECK_RUN(r, 1);
	CHECK_MSG(strncmp(r.err, "ruvector: ", 10) == 0 && strstr(r.err, "$bogus"), "%s", r.err);
	run_free(&r);

	/* Table with payloads. */
	r = sh("search f.rvf --vector '[%s]' -k 1 --with-payload", vec);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "rank  id  score            payload\n   1  p7  0  ") &&
			  strstr(r.out, "{\"group\":2,\"i\":7}"),
		  "%s", r.out);
	run_free(&r);
	free(v);
}

TEST(get_delete)
{
	setup("cli-delete");
	const size_t n = 300, dim = 8;
	float *v = rv_test_random_vectors(n, dim, 41);
	write_jsonl("d.jsonl", v, n, dim, true);
	run r = sh("create g.rvf --dim 8 --metric l2 && '%s' import g.rvf d.jsonl", BIN);
	CHECK_RUN(r, 0);
	run_free(&r);

	r = sh("get g.rvf p42 --json");
	CHECK_RUN(r, 0);
	cJSON *j = cJSON_Parse(r.out);
	CHECK(j && strcmp(cJSON_GetObjectItem(j, "id")->valuestring, "p42") == 0);
	CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "payload"), "i")->valuedouble == 42);
	cJSON_Delete(j);
	run_free(&r);

	char vec[512];
	size_t o = 0;
	for (size_t d = 0; d < dim; d++)
		o += (size_t)snprintf(vec + o, sizeof vec - o, "%s%.9g", d ? "," : "", (double)v[42 * dim + d]);
	r = sh("search g.rvf --vector '[%s]' -k 1 --json", vec);
	CHECK(strstr(r.out, "\"id\":\"p42\""));
	run_free(&r);

	/* Two existing ids and a missing one: exit 0, the missing one named. */
	r = sh("delete g.rvf p42 p43 nope");
	CHECK_RUN(r, 0);
	CHECK(strcmp(r.out, "deleted 2 points\n") == 0);
	CHECK_MSG(strstr(r.err, "ruvector: no point with id 'nope'"), "%s", r.err);
	run_free(&r);
	r = sh("search g.rvf --vector '[%s]' -k 20 --json", vec);
	CHECK_RUN(r, 0);
	CHECK(!strstr(r.out, "\"p42\"") && !strstr(r.out, "\"p43\""));
	run_free(&r);
	r = sh("search g.rvf --vector '[%s]' -k 20 --json --exact", vec);
	CHECK_RUN(r, 0);
	cJSON *res = cJSON_Parse(r.out);
	CHECK(res && cJSON_GetArraySize(cJSON_GetObjectItem(res, "hits")) == 20);
	cJSON_Delete(res);
	CHECK(!strstr(r.out, "\"p42\"") && !strstr(r.out, "\"p43\""));
	run_free(&r);
	r = sh("get g.rvf p42");
	CHECK_RUN(r, 1);
	CHECK(strstr(r.err, "no point with id 'p42'"));
	run_free(&r);
	/* None exists: exit 1. */
	r = sh("delete g.rvf p42");
	CHECK_RUN(r, 1);
	CHECK(strcmp(r.out, "deleted 0 points\n") == 0);
	run_free(&r);
	r = sh("info g.rvf --json");
	CHECK_MSG(strstr(r.out, "\"count\":298,") && strstr(r.out, "\"deleted\":2,"), "%s", r.out);
	run_free(&r);
	free(v);
}

TEST(compact_and_verify)
{
	setup("cli-compact");
	const size_t n = 1000, dim = 16, nq = 20, k = 5;
	float *v = rv_test_random_vectors(n, dim, 51);
	write_fvecs("d.fvecs", v, n, dim);
	run r = sh("create c.rvf --dim 16 --metric l2 && '%s' import c.rvf d.fvecs", BIN);
	CHECK_RUN(r, 0);
	run_free(&r);

	/* Delete every id below 500, in a few commands. */
	for (int start = 0; start < 500; start += 100) {
		char ids[2048];
		size_t o = 0;
		for (int i = start; i < start + 100; i++)
			o += (size_t)snprintf(ids + o, sizeof ids - o, " %d", i);
		r = sh("delete c.rvf%s", ids);
		CHECK_RUN(r, 0);
		CHECK(strcmp(r.out, "deleted 100 points\n") == 0);
		run_free(&r);
	}
	r = sh("compact c.rvf");
	CHECK_RUN(r, 0);
	unsigned long long before, after;
	CHECK_MSG(sscanf(r.out, "compacted c.rvf: %llu -> %llu bytes", &before, &after) == 2, "%s", r.out);
	CHECK_MSG(after < before, "%llu -> %llu", before, after);
	struct stat sb;
	CHECK(stat(in_dir("c.rvf"), &sb) == 0 && (unsigned long long)sb.st_size == after);
	run_free(&r);

	/* Still right: exact search over the remaining half. */
	float *qs = rv_test_random_vectors(nq, dim, 52);
	write_fvecs("q.fvecs", qs, nq, dim);
	int *gt = rv_test_ground_truth(v + 500 * dim, n - 500, qs, nq, dim, k, RV_METRIC_L2);
	r = sh("search c.rvf --query-file q.fvecs --exact -k 5 --json");
	CHECK_RUN(r, 0);
	cJSON *lines[32];
	size_t nl = parse_lines(r.out, lines, 32);
	CHECK(nl == nq);
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < k; i++)
			CHECK(id_index(cJSON_GetArrayItem(cJSON_GetObjectItem(lines[q], "hits"), (int)i), "") ==
			      gt[q * k + i] + 500);
	for (size_t i = 0; i < nl; i++)
		cJSON_Delete(lines[i]);
	run_free(&r);
	r = sh("info c.rvf --json");
	CHECK_MSG(strstr(r.out, "\"count\":500,") && strstr(r.out, "\"deleted\":0,"), "%s", r.out);
	run_free(&r);

	r = sh("verify c.rvf");
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "c.rvf: ok (") && !strstr(r.out, "problem:"), "%s", r.out);
	run_free(&r);
	r = sh("verify c.rvf -v");
	CHECK_RUN(r, 0);
	CHECK(strncmp(r.out, "ok: ", 4) == 0);
	run_free(&r);

	/* One flipped byte in the middle of the file. */
	int fd = open(in_dir("c.rvf"), O_RDWR);
	CHECK(fd >= 0);
	off_t mid = sb.st_size / 2;
	unsigned char byte;
	CHECK(pread(fd, &byte, 1, mid) == 1);
	byte ^= 0x5a;
	CHECK(pwrite(fd, &byte, 1, mid) == 1);
	close(fd);
	r = sh("verify c.rvf");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.out, "problem: ") && strstr(r.out, "c.rvf: ") && strstr(r.out, "problem"), "%s", r.out);
	run_free(&r);
	r = sh("verify missing.rvf");
	CHECK_RUN(r, 1);
	run_free(&r);
	free(gt);
	free(qs);
	free(v);
}

/* Search ids from `search --json` feed `feedback`; the events are checked
 * before any is applied; with learning on, feedback moves the ranking and
 * --no-learning still gives the unlearned one. */
TEST(feedback_and_no_learning)
{
	setup("cli-feedback");
	const size_t n = 600, dim = 16, nq = 20;
	float *base = rv_test_clustered_vectors(n, dim, 12, 31);
	float *qs = rv_test_clustered_vectors(nq, dim, 12, 32);
	write_jsonl("base.jsonl", base, n, dim, false);
	write_jsonl("q.jsonl", qs, nq, dim, false);
	run r = sh("create f.rvf --dim 16 --metric cosine && '%s' import f.rvf base.jsonl -q", BIN);
	CHECK_RUN(r, 0);
	run_free(&r);

	r = sh("search f.rvf --query-file q.jsonl -k 10 --json");
	CHECK_RUN(r, 0);
	char *plain = strdup(r.out);
	cJSON *lines[32];
	size_t nl = parse_lines(r.out, lines, 32);
	CHECK(nl == nq);
	/* The id carries the query: "q1." and 16 floats in base64url. */
	const cJSON *sid0 = cJSON_GetObjectItem(lines[0], "search_id");
	CHECK(cJSON_IsString(sid0) && strncmp(sid0->valuestring, "q1.", 3) == 0);
	CHECK(strlen(sid0->valuestring) == 3 + (dim * 32 + 5) / 6);

	/* Events: the hit at rank 8 of every query is the one people want. */
	FILE *f = fopen(in_dir("events.jsonl"), "w");
	for (int rep = 0; rep < 60; rep++)
		for (size_t q = 0; q < nl; q++) {
			const cJSON *hits = cJSON_GetObjectItem(lines[q], "hits");
			const char *want = cJSON_GetObjectItem(cJSON_GetArrayItem(hits, 7), "id")->valuestring;
			const char *top = cJSON_GetObjectItem(cJSON_GetArrayItem(hits, 0), "id")->valuestring;
			const char *sid = cJSON_GetObjectItem(lines[q], "search_id")->valuestring;
			fprintf(f, "{\"search_id\":\"%s\",\"id\":\"%s\",\"reward\":1}\n", sid, want);
			fprintf(f, "{\"search_id\":\"%s\",\"id\":\"%s\",\"reward\":-0.5}\n", sid, top);
		}
	fclose(f);
	size_t n_events = 60 * nl * 2;
	run_free(&r);

	/* A bad line anywhere: nothing is applied, the line is named. */
	f = fopen(in_dir("bad.jsonl"), "w");
	fprintf(f, "{\"vector\":[");
	for (size_t d = 0; d < dim; d++)
		fprintf(f, "%s0.5", d ? "," : "");
	fprintf(f, "],\"id\":\"p1\",\"reward\":1}\n\n{\"search_id\":\"%s\",\"id\":\"p2\",\"reward\":2}\n",
		sid0->valuestring);
	fclose(f);
	r = sh("feedback f.rvf --events bad.jsonl");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "bad.jsonl line 3") && strstr(r.err, "reward"), "%s", r.err);
	run_free(&r);
	r = sh("feedback f.rvf --vector '[1,2]' --id p1 --reward 1");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "dimension 16"), "%s", r.err);
	run_free(&r);
	r = sh("feedback f.rvf --search-id 12345 --id p1 --reward 1");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "q1."), "%s", r.err);
	run_free(&r);
	r = sh("feedback f.rvf --events events.jsonl --id p1");
	CHECK_RUN(r, 2);
	run_free(&r);
	rv_db *db = NULL;
	rv_stats s = RV_STATS_INIT;
	CHECK(rv_db_open(&db, in_dir("f.rvf"), NULL) == RV_OK);
	CHECK(rv_db_stats(&s, db) == RV_OK && s.feedback_events == 0);
	CHECK(rv_db_set_learning(db, 1) == RV_OK && rv_db_commit(db) == RV_OK);
	rv_db_close(db);

	r = sh("feedback f.rvf --events events.jsonl");
	CHECK_RUN(r, 0);
	char want_msg[64];
	snprintf(want_msg, sizeof want_msg, "%zu events committed", n_events);
	CHECK_MSG(strstr(r.out, want_msg), "%s", r.out);
	run_free(&r);
	db = NULL;
	CHECK(rv_db_open(&db, in_dir("f.rvf"), NULL) == RV_OK);
	CHECK(rv_db_stats(&s, db) == RV_OK && s.feedback_events == n_events && s.adapter_steps > 0);
	rv_db_close(db);

	/* --no-learning: exactly the first answers; learned: some moved. */
	r = sh("search f.rvf --query-file q.jsonl -k 10 --json --no-learning");
	CHECK_RUN(r, 0);
	CHECK(strcmp(r.out, plain) == 0);
	run_free(&r);
	r = sh("search f.rvf --query-file q.jsonl -k 10 --json");
	CHECK_RUN(r, 0);
	cJSON *learned[32];
	CHECK(parse_lines(r.out, learned, 32) == nq);
	size_t moved_up = 0;
	for (size_t q = 0; q < nq; q++) {
		const cJSON *h0 = cJSON_GetObjectItem(lines[q], "hits");
		const cJSON *h1 = cJSON_GetObjectItem(learned[q], "hits");
		const char *want = cJSON_GetObjectItem(cJSON_GetArrayItem(h0, 7), "id")->valuestring;
		for (int i = 0; i < 7; i++)
			if (strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(h1, i), "id")->valuestring, want) == 0)
				moved_up++;
		cJSON_Delete(learned[q]);
	}
	CHECK_MSG(moved_up > 0, "no wanted item moved up in %zu queries", nq);
	run_free(&r);
	for (size_t q = 0; q < nl; q++)
		cJSON_Delete(lines[q]);
	free(plain);
	free(base);
	free(qs);
}

/* `learn`: on, consolidate into a version, status (--json), rollback to
 * the plain ranking, eval, and the errors. */
TEST(learn_commands)
{
	setup("cli-learn");
	const size_t n = 800, dim = 16, nq = 40;
	float *base = rv_test_clustered_vectors(n, dim, 8, 41);
	float *qs = rv_test_clustered_vectors(nq, dim, 8, 42);
	write_jsonl("base.jsonl", base, n, dim, false);
	write_jsonl("q.jsonl", qs, nq, dim, false);
	run r = sh("create l.rvf --dim 16 --metric cosine && '%s' import l.rvf base.jsonl -q && '%s' learn on l.rvf",
		   BIN, BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "learning on"), "%s", r.out);
	run_free(&r);

	/* Too few events to consolidate: a clear error, nothing made. */
	r = sh("learn consolidate l.rvf");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "100"), "%s", r.err);
	run_free(&r);

	r = sh("search l.rvf --query-file q.jsonl -k 10 --json --no-learning");
	CHECK_RUN(r, 0);
	char *plain = strdup(r.out);
	cJSON *lines[64];
	size_t nl = parse_lines(r.out, lines, 64);
	CHECK(nl == nq);
	FILE *f = fopen(in_dir("events.jsonl"), "w");
	for (int rep = 0; rep < 5; rep++)
		for (size_t q = 0; q < nl; q++) {
			const cJSON *hits = cJSON_GetObjectItem(lines[q], "hits");
			const char *sid = cJSON_GetObjectItem(lines[q], "search_id")->valuestring;
			/* People want the odd-numbered items. */
			for (int i = 0; i < cJSON_GetArraySize(hits); i++) {
				const char *id = cJSON_GetObjectItem(cJSON_GetArrayItem(hits, i), "id")->valuestring;
				if (strtol(id + 1, NULL, 10) % 2 == 1) {
					fprintf(f, "{\"search_id\":\"%s\",\"id\":\"%s\",\"reward\":1}\n", sid, id);
					break;
				}
			}
		}
	fclose(f);
	for (size_t q = 0; q < nl; q++)
		cJSON_Delete(lines[q]);
	run_free(&r);
	r = sh("feedback l.rvf --events events.jsonl && '%s' learn consolidate l.rvf", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "\nversion 1") && strstr(r.out, ": held-out ndcg@10"), "%s", r.out);
	/* A held-out gain short of 2 standard errors makes version 1 the
	 * candidate for interleaving instead (the held-out searches are few
	 * here); rollback then makes it active. */
	bool cand = strstr(r.out, "(candidate)") != NULL;
	run_free(&r);
	r = sh("learn status l.rvf --json");
	CHECK_RUN(r, 0);
	cJSON *st = cJSON_Parse(r.out);
	CHECK(st != NULL);
	CHECK(cJSON_GetObjectItem(st, "active_version")->valueint == (cand ? 0 : 1));
	cJSON_Delete(st);
	run_free(&r);
	if (cand) {
		r = sh("learn rollback l.rvf 1");
		CHECK_RUN(r, 0);
		run_free(&r);
	}
	r = sh("learn status l.rvf --json");
	CHECK_RUN(r, 0);
	st = cJSON_Parse(r.out);
	CHECK(st != NULL);
	CHECK(cJSON_GetObjectItem(st, "active_version")->valueint == 1);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(st, "learning")));
	cJSON *vs = cJSON_GetObjectItem(st, "versions");
	CHECK(cJSON_GetArraySize(vs) == 1);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, 0), "active")));
	CHECK(cJSON_GetObjectItem(st, "events")->valuedouble >= 100);
	cJSON_Delete(st);
	run_free(&r);
	r = sh("learn status l.rvf");
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "active version    1") && strstr(r.out, "learning          on"), "%s", r.out);
	run_free(&r);
	r = sh("learn eval l.rvf --json");
	CHECK_RUN(r, 0);
	cJSON *ev = cJSON_Parse(r.out);
	CHECK(ev && cJSON_GetObjectItem(ev, "events")->valuedouble > 0);
	CHECK(cJSON_GetObjectItem(ev, "ndcg_plain")->valuedouble >= 0);
	cJSON_Delete(ev);
	run_free(&r);

	/* Version 0: the plain ranking again, byte for byte. */
	r = sh("learn rollback l.rvf 0 && '%s' search l.rvf --query-file q.jsonl -k 10 --json", BIN);
	CHECK_RUN(r, 0);
	CHECK(strstr(r.out, "active version 0") == r.out);
	CHECK(strcmp(r.out + strlen("active version 0\n"), plain) == 0);
	run_free(&r);

	r = sh("learn rollback l.rvf 7");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "version 7"), "%s", r.err);
	run_free(&r);
	r = sh("learn config l.rvf --base-rank 4");
	CHECK_RUN(r, 2);
	run_free(&r);
	r = sh("learn config l.rvf --gnn gat --ewc 0.5 && '%s' learn status l.rvf --json", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "\"gnn\":\"gat\"") && strstr(r.out, "\"ewc_lambda\":0.5") &&
		  strstr(r.out, "\"away_regions\":true"), "%s", r.out);
	run_free(&r);
	r = sh("learn config l.rvf --away off && '%s' learn status l.rvf --json", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "away regions off") && strstr(r.out, "\"away_regions\":false") &&
		  strstr(r.out, "\"gnn\":\"gat\""), "%s", r.out);
	run_free(&r);
	r = sh("learn config l.rvf --away maybe");
	CHECK_RUN(r, 2);
	run_free(&r);
	r = sh("learn config l.rvf --category meta.kind && '%s' learn status l.rvf --json", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "category meta.kind") && strstr(r.out, "\"category\":\"meta.kind\"") &&
		  strstr(r.out, "\"away_regions\":false"), "%s", r.out);
	run_free(&r);
	r = sh("learn config l.rvf --category 'a..b'");
	CHECK_RUN(r, 1);
	CHECK_MSG(strstr(r.err, "empty path segment"), "%s", r.err);
	run_free(&r);
	r = sh("learn config l.rvf --category '' && '%s' learn status l.rvf --json", BIN);
	CHECK_RUN(r, 0);
	CHECK_MSG(strstr(r.out, "category none") && strstr(r.out, "\"category\":\"\""), "%s", r.out);
	run_free(&r);
	r = sh("learn consolidate l.rvf --category x");
	CHECK_RUN(r, 2);
	run_free(&r);
	r = sh("learn frobnicate l.rvf");
	CHECK_RUN(r, 2);
	run_free(&r);
	r = sh("learn status l.rvf --candidate");
	CHECK_RUN(r, 2);
	run_free(&r);
	free(plain);
	free(base);
	free(qs);
}
