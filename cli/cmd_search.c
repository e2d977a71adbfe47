/*
 * cmd_search.c - `ruvector search FILE ...`: k nearest neighbours of one or
 * many query vectors.
 *
 * Queries come from --vector (each one query), from --query-file (any
 * import format; rows are read through the import readers, so a file of
 * queries is streamed like a data file), or as JSON lines on standard input
 * ("[...]" or {"vector": [...]}). They are answered in chunks: a chunk is
 * searched on --threads threads (the handle allows concurrent searches),
 * then printed in input order, so output order never depends on timing and
 * memory stays bounded by one chunk of results.
 */
#include "cli.h"
#include "import.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 256

static const char usage[] =
	"usage: " RV_CLI_NAME " search FILE [QUERIES] [-k K] [options]\n"
	"\n"
	"Print the K nearest points of each query, nearest first.\n"
	"\n"
	"Queries (one source):\n"
	"  --vector V          one query: a JSON array '[0.1, 0.2]' or '0.1,0.2';\n"
	"                      repeat for more\n"
	"  --query-file Q      many queries from Q (.fvecs .bvecs .npy .csv .jsonl;\n"
	"                      --format overrides)\n"
	"  -                   JSON lines on standard input, each [...] or\n"
	"                      {\"vector\": [...]} (the default without --vector or\n"
	"                      --query-file)\n"
	"\n"
	"  -k K                hits per query, 1..100000 (default 10)\n"
	"  --ef E              candidate list (default: the collection's ef_search)\n"
	"  --filter JSON       only points whose payload matches the filter, e.g.\n"
	"                      '{\"lang\": \"en\", \"year\": {\"$gte\": 2000}}'\n"
	"  --exact             exact scan instead of the graph\n"
	"  --threads N         answer queries on N threads (default 1); output stays\n"
	"                      in input order\n"
	"  --with-payload      include each hit's payload\n"
	"  --with-vector       include each hit's vector\n"
	"  --json              one JSON line per query:\n"
	"                      {\"search_id\":\"q1...\",\"hits\":[{\"id\":\"...\",\"score\":0.25}, ...]}\n"
	"                      (the search id is for 'ruvector feedback')\n"
	"  --no-learning       the unlearned ranking, even when the collection learns\n"
	"  --format F          format of --query-file when its name does not say\n"
	"\n"
	"Scores are distances (smaller is nearer): l2 distance, 1 - cosine, or\n"
	"the negative inner product.\n";

typedef struct query {
	const float *vector;
	rv_results *res;
	rv_status st;
	char *msg; /* error message (rv_malloc) */
} query;

typedef struct search_job {
	rv_db *db;
	const rv_search_opts *opts;
	query *q;
	size_t n;
	atomic_size_t next;
} search_job;

static void search_worker(void *ctx, unsigned t)
{
	search_job *job = ctx;
	for (;;) {
		size_t i = atomic_fetch_add(&job->next, 1);
		if (i >= job->n)
			break;
		query *q = &job->q[i];
		q->st = rv_db_search(&q->res, job->db, q->vector, job->opts);
		if (q->st != RV_OK)
			{
			const char *m = rv_cli_errmsg(job->db, q->st);
			q->msg = rv_strndup(NULL, m, strlen(m));
		}
	}
}

typedef struct printer {
	bool json, payload, vector, headers, tty;
	int width;
	uint32_t dim;
	size_t printed; /* queries printed so far */
} printer;

/* Terminal columns of UTF-8 text: one per character (continuation bytes
 * do not count). Wide characters are rare in ids; they count as one. */
static size_t columns(const char *s, size_t len)
{
	size_t c = 0;
	for (size_t i = 0; i < len; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

/* Print s, on a terminal cut to its width at a character boundary. */
static void put_line(const printer *p, const char *s, size_t len)
{
	size_t room = p->width > 4 ? (size_t)p->width - 1 : 79;
	if (p->tty && columns(s, len) > room) {
		size_t cut = 0, cols = 0;
		while (cut < len) {
			if (((unsigned char)s[cut] & 0xC0) != 0x80 && ++cols > room - 3)
				break;
			cut++;
		}
		fwrite(s, 1, cut, stdout);
		fputs("...\n", stdout);
		return;
	}
	fwrite(s, 1, len, stdout);
	fputc('\n', stdout);
}

/* s left-aligned in a field of `width` terminal columns. */
static void put_padded(FILE *f, const char *s, size_t width)
{
	size_t len = strlen(s);
	fputs(s, f);
	for (size_t c = columns(s, len); c < width; c++)
		fputc(' ', f);
}

static void print_json(const printer *p, const rv_results *res, const float *qv)
{
	const rv_hit *h = rv_results_hits(res);
	size_t n = rv_results_count(res);
	fputs("{\"search_id\":", stdout);
	rv_cli_search_id(stdout, qv, p->dim);
	fputs(",\"hits\":[", stdout);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"id\":" : "{\"id\":", stdout);
		rv_json_string(stdout, h[i].id);
		fputs(",\"score\":", stdout);
		rv_json_float(stdout, h[i].score);
		if (p->payload) {
			fputs(",\"payload\":", stdout);
			fputs(h[i].payload ? h[i].payload : "null", stdout);
		}
		if (p->vector) {
			fputs(",\"vector\":", stdout);
			if (h[i].vector)
				rv_json_floats(stdout, h[i].vector, p->dim);
			else
				fputs("null", stdout);
		}
		fputc('}', stdout);
	}
	fputs("]}\n", stdout);
}

static void print_table(printer *p, const rv_results *res)
{
	const rv_hit *h = rv_results_hits(res);
	size_t n = rv_results_count(res);
	size_t idw = 2;
	for (size_t i = 0; i < n; i++) {
		size_t c = columns(h[i].id, strlen(h[i].id));
		if (c > idw)
			idw = c > 36 ? 36 : c;
	}
	/* Pad the score only when another column follows it. */
	bool more = p->payload || p->vector;
	if (p->headers)
		printf("%squery %zu: %zu hit%s\n", p->printed ? "\n" : "", p->printed + 1, n,
		       n == 1 ? "" : "s");
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (!f) {
		rv_cli_fail("out of memory");
		return;
	}
	fputs("rank  ", f);
	put_padded(f, "id", idw);
	fprintf(f, "  %-*s%s%s", more ? 15 : 0, "score", p->payload ? "  payload" : "",
		p->vector ? "  vector" : "");
	fflush(f);
	put_line(p, line, len);
	for (size_t i = 0; i < n; i++) {
		rewind(f);
		fprintf(f, "%4zu  ", i + 1);
		put_padded(f, h[i].id, idw);
		fprintf(f, "  %-*.9g", more ? 15 : 0, (double)h[i].score);
		if (p->payload)
			fprintf(f, "  %s", h[i].payload ? h[i].payload : "-");
		if (p->vector) {
			fputs("  ", f);
			if (h[i].vector)
				rv_json_floats(f, h[i].vector, p->dim);
			else
				fputs("-", f);
		}
		fflush(f);
		/* rewind does not shrink a memstream; the length is the write
		 * position. */
		put_line(p, line, (size_t)ftell(f));
	}
	fclose(f);
	free(line); /* open_memstream allocates with the C library */
}

/* Search q[0..n) and print them in order; false after the first failure
 * (reported). */
static bool run_chunk(rv_db *db, const rv_search_opts *so, unsigned threads, query *q, size_t n,
		      printer *p)
{
	search_job job = { .db = db, .opts = so, .q = q, .n = n };
	atomic_init(&job.next, 0);
	if (threads > n)
		threads = (unsigned)n;
	if (threads <= 1)
		search_worker(&job, 0);
	else
		rv_parallel(threads, search_worker, &job);
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		if (ok && q[i].st != RV_OK) {
			fflush(stdout);
			rv_cli_fail("query %zu: %s", p->printed + 1, q[i].msg ? q[i].msg : rv_status_str(q[i].st));
			ok = false;
		}
		if (ok) {
			if (p->json)
				print_json(p, q[i].res, q[i].vector);
			else
				print_table(p, q[i].res);
			p->printed++;
		}
		rv_results_free(q[i].res);
		rv_dealloc(NULL, q[i].msg);
		q[i] = (query){ 0 };
	}
	return ok;
}

int rv_cmd_search(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	rv_arg_list vectors = { 0 };
	const char *qfile = NULL, *k_s = NULL, *ef_s = NULL, *threads_s = NULL, *filter = NULL,
		   *format_s = NULL;
	bool exact = false, with_payload = false, with_vector = false, json = false, no_learning = false;
	const rv_arg_spec specs[] = {
		{ "--vector", NULL, RV_ARG_LIST, &vectors },
		{ "--query-file", NULL, RV_ARG_VALUE, &qfile },
		{ "--k", "-k", RV_ARG_VALUE, &k_s },
		{ "--ef", NULL, RV_ARG_VALUE, &ef_s },
		{ "--threads", NULL, RV_ARG_VALUE, &threads_s },
		{ "--filter", NULL, RV_ARG_VALUE, &filter },
		{ "--format", NULL, RV_ARG_VALUE, &format_s },
		{ "--exact", NULL, RV_ARG_FLAG, &exact },
		{ "--with-payload", NULL, RV_ARG_FLAG, &with_payload },
		{ "--with-vector", NULL, RV_ARG_FLAG, &with_vector },
		{ "--json", NULL, RV_ARG_FLAG, &json },
		{ "--no-learning", NULL, RV_ARG_FLAG, &no_learning },
	};
	const char *pos[2];
	size_t npos;
	rv_db *db = NULL;
	rv_import *r = NULL;
	rv_import_batch b;
	float **given = NULL;
	size_t *given_n = NULL;
	query *q = NULL;
	rv_import_batch_init(&b, CHUNK, NULL);

	int a = rv_cli_args("search", usage, argc, argv, specs, sizeof specs / sizeof specs[0], pos, 1, 2, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	bool from_stdin = npos == 2;
	if (from_stdin && strcmp(pos[1], "-") != 0) {
		rc = rv_cli_usage("search", "unexpected argument '%s' (queries come from --vector, "
					    "--query-file or '-')", pos[1]);
		goto done;
	}
	if ((vectors.n > 0) + (qfile != NULL) + from_stdin > 1) {
		rc = rv_cli_usage("search", "give queries one way: --vector, --query-file or '-'");
		goto done;
	}
	if (!vectors.n && !qfile)
		from_stdin = true;
	uint64_t k = 10, ef = 0, threads = 1;
	if (k_s && !rv_args_uint("search", "-k", k_s, 1, 100000, &k))
		goto done;
	if (ef_s && !rv_args_uint("search", "--ef", ef_s, 0, UINT32_MAX, &ef))
		goto done;
	if (threads_s && !rv_args_uint("search", "--threads", threads_s, 1, 1024, &threads))
		goto done;
	rv_import_opts io = RV_IMPORT_OPTS_INIT;
	if (format_s && !rv_import_format_parse(format_s, &io.format)) {
		rc = rv_cli_usage("search", "--format: '%s' is not fvecs, bvecs, npy, csv or jsonl",
				  format_s);
		goto done;
	}
	if (format_s && !qfile) {
		rc = rv_cli_usage("search", "--format applies to --query-file");
		goto done;
	}
	if (qfile && !format_s && rv_import_format_from_path(qfile) == RV_IMPORT_AUTO) {
		rc = rv_cli_usage("search", "cannot tell the format of '%s' from its name; use --format",
				  qfile);
		goto done;
	}
	/* Syntax of --vector is checked before touching the file. */
	if (vectors.n) {
		given = rv_calloc(NULL, vectors.n, sizeof *given);
		given_n = rv_calloc(NULL, vectors.n, sizeof *given_n);
		if (!given || !given_n) {
			rc = rv_cli_fail("out of memory");
			goto done;
		}
		for (size_t i = 0; i < vectors.n; i++) {
			rv_err err = { "" };
			if (rv_parse_vector(vectors.items[i], &given[i], &given_n[i], &err) != RV_OK) {
				rc = rv_cli_usage("search", "--vector '%.40s': %s", vectors.items[i], err.msg);
				goto done;
			}
		}
	}

	rc = RV_EXIT_ERROR;
	if (!(db = rv_cli_open(pos[0], RV_OPEN_READONLY, 0, NULL)))
		goto done;
	uint32_t dim = rv_db_dim(db);
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	so.k = (uint32_t)k;
	so.ef = (uint32_t)ef;
	so.filter = filter;
	so.flags = (exact ? RV_SEARCH_EXACT : 0) | (with_payload ? RV_SEARCH_PAYLOAD : 0) |
		   (with_vector ? RV_SEARCH_VECTOR : 0) | (no_learning ? RV_SEARCH_NO_LEARNING : 0);
	printer p = { .json = json, .payload = with_payload, .vector = with_vector,
		      .headers = !(vectors.n == 1), .tty = isatty(fileno(stdout)) != 0,
		      .width = rv_term_width(stdout), .dim = dim };
	if (!(q = rv_calloc(NULL, CHUNK, sizeof *q))) {
		rv_cli_fail("out of memory");
		goto done;
	}

	if (vectors.n) {
		for (size_t i = 0; i < vectors.n; i++) {
			if (given_n[i] != dim) {
				rv_cli_fail("query %zu (--vector): %zu values, the collection has dimension %u",
					    i + 1, given_n[i], dim);
				goto done;
			}
		}
		for (size_t i = 0; i < vectors.n; i += CHUNK) {
			size_t n = vectors.n - i < CHUNK ? vectors.n - i : CHUNK;
			for (size_t j = 0; j < n; j++)
				q[j].vector = given[i + j];
			if (!run_chunk(db, &so, (unsigned)threads, q, n, &p))
				goto done;
		}
	} else {
		const char *src = qfile ? qfile : "-";
		if (!qfile)
			io.format = RV_IMPORT_JSONL;
		io.dim = dim;
		rv_err err = { "" };
		if (rv_import_open(&r, src, &io, &err) != RV_OK) {
			rv_cli_fail("%s: %s", qfile ? qfile : "standard input", err.msg);
			goto done;
		}
		for (;;) {
			if (rv_import_next(r, &b, &err) != RV_OK) {
				fflush(stdout);
				rv_cli_fail("%s: %s", qfile ? qfile : "standard input", err.msg);
				goto done;
			}
			if (b.n == 0)
				break;
			for (size_t j = 0; j < b.n; j++)
				q[j].vector = b.points[j].vector;
			if (!run_chunk(db, &so, (unsigned)threads, q, b.n, &p))
				goto done;
		}
	}
	rc = RV_EXIT_OK;
done:
	if (given)
		for (size_t i = 0; i < vectors.n; i++)
			rv_dealloc(NULL, given[i]);
	rv_dealloc(NULL, given);
	rv_dealloc(NULL, given_n);
	rv_dealloc(NULL, q);
	rv_arg_list_free(&vectors);
	rv_import_batch_free(&b);
	rv_import_close(r);
	rv_db_close(db);
	return rc;
}
