/*
 * cmd_import.c - `ruvector import FILE DATA`: stream a data file into a
 * collection.
 *
 * The data file is read in batches (cli/import.h), each batch is upserted
 * in one call (which inserts into the graph on several threads), and the
 * whole import is committed once at the end, so an import that fails half
 * way leaves the collection as it was (unless --commit-every made earlier
 * batches durable). Memory is bounded by one batch; the batch is shrunk
 * for very wide vectors so that it stays under BATCH_BYTES.
 *
 * A later row with the same id as an earlier one replaces it, as upsert
 * does across calls; within one batch the library refuses duplicate ids, so
 * they are resolved here first (the last row wins).
 */
#include "cli.h"
#include "import.h"

#include <string.h>

#define DEFAULT_BATCH 10000
#define BATCH_BYTES ((size_t)256 << 20)

static const char usage[] =
	"usage: " RV_CLI_NAME " import FILE DATA [options]\n"
	"\n"
	"Upsert the vectors in DATA ('-' = standard input) into the collection FILE.\n"
	"The format comes from DATA's extension (.fvecs .bvecs .npy .csv .jsonl\n"
	".ndjson) or from --format.\n"
	"\n"
	"  --format F         fvecs, bvecs, npy, csv or jsonl\n"
	"  --batch B          rows per upsert (default 10000)\n"
	"  --threads N        insert threads (default 0 = all cores)\n"
	"  --commit-every N   also commit after every N batches (default: only at the end)\n"
	"  --no-commit        dry run: read, check and insert, then discard\n"
	"  --id-offset N      ids of numbered rows start at N (default 0)\n"
	"  --header, --no-header          CSV: the first line is / is not a header\n"
	"                                 (default: a header when a cell after the\n"
	"                                 first is not a number)\n"
	"  --id-column, --no-id-column    CSV: the first column is / is not the id\n"
	"                                 (default: dim+1 columns mean it is)\n"
	"  -q, --quiet        no progress line (it is shown only on a terminal)\n"
	"\n"
	"Rows without ids (fvecs, bvecs, npy, CSV without an id column, JSON lines\n"
	"without \"id\") get the ids \"0\", \"1\", ... in file order, plus --id-offset.\n"
	"Prints one line: imported N points in T s (R/s)\n";

/* Drop all but the last row of each id in the batch; keeps the order. */
static void dedupe(rv_import_batch *b, uint32_t *table, size_t slots, bool *keep)
{
	memset(table, 0, slots * sizeof *table);
	size_t mask = slots - 1;
	bool any = false;
	for (size_t i = b->n; i-- > 0;) {
		const char *id = b->points[i].id;
		size_t len = strlen(id);
		size_t h = (size_t)rv_hash64(id, len, 0) & mask;
		keep[i] = true;
		while (table[h]) {
			if (strcmp(b->points[table[h] - 1].id, id) == 0) {
				keep[i] = false;
				any = true;
				break;
			}
			h = (h + 1) & mask;
		}
		if (keep[i])
			table[h] = (uint32_t)i + 1;
	}
	if (!any)
		return;
	size_t j = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (keep[i]) {
			b->points[j] = b->points[i];
			b->where[j] = b->where[i];
			j++;
		}
	}
	b->n = j;
}

int rv_cmd_import(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	const char *threads_s = NULL, *batch_s = NULL, *format_s = NULL, *every_s = NULL,
		   *offset_s = NULL;
	bool no_commit = false, header = false, no_header = false, id_col = false, no_id_col = false,
	     quiet = false;
	const rv_arg_spec specs[] = {
		{ "--threads", NULL, RV_ARG_VALUE, &threads_s },
		{ "--batch", NULL, RV_ARG_VALUE, &batch_s },
		{ "--format", NULL, RV_ARG_VALUE, &format_s },
		{ "--commit-every", NULL, RV_ARG_VALUE, &every_s },
		{ "--id-offset", NULL, RV_ARG_VALUE, &offset_s },
		{ "--no-commit", NULL, RV_ARG_FLAG, &no_commit },
		{ "--header", NULL, RV_ARG_FLAG, &header },
		{ "--no-header", NULL, RV_ARG_FLAG, &no_header },
		{ "--id-column", NULL, RV_ARG_FLAG, &id_col },
		{ "--no-id-column", NULL, RV_ARG_FLAG, &no_id_col },
		{ "--quiet", "-q", RV_ARG_FLAG, &quiet },
	};
	const char *pos[2];
	size_t npos;
	rv_db *db = NULL;
	rv_import *r = NULL;
	rv_import_batch b;
	uint32_t *table = NULL;
	bool *keep = NULL;
	rv_progress prog;
	rv_import_batch_init(&b, 1, NULL);
	rv_progress_init(&prog, stderr, false, "import");

	int a = rv_cli_args("import", usage, argc, argv, specs, sizeof specs / sizeof specs[0], pos, 2, 2, &npos,
			    "the collection FILE and the DATA file");
	if (a != RV_CLI_GO) {
		rc = a;
		goto done;
	}
	rv_import_opts io = RV_IMPORT_OPTS_INIT;
	uint64_t threads = 0, batch = DEFAULT_BATCH, every = 0, v;
	if (threads_s && !rv_args_uint("import", "--threads", threads_s, 0, 1024, &threads))
		goto done;
	if (batch_s && !rv_args_uint("import", "--batch", batch_s, 1, 10000000, &batch))
		goto done;
	if (every_s && !rv_args_uint("import", "--commit-every", every_s, 1, UINT64_MAX, &every))
		goto done;
	if (offset_s) {
		if (!rv_args_uint("import", "--id-offset", offset_s, 0, UINT64_MAX, &v))
			goto done;
		io.id_offset = v;
	}
	if (format_s && !rv_import_format_parse(format_s, &io.format)) {
		rc = rv_cli_usage("import", "--format: '%s' is not fvecs, bvecs, npy, csv or jsonl",
				  format_s);
		goto done;
	}
	if (header && no_header) {
		rc = rv_cli_usage("import", "--header and --no-header contradict each other");
		goto done;
	}
	if (id_col && no_id_col) {
		rc = rv_cli_usage("import", "--id-column and --no-id-column contradict each other");
		goto done;
	}
	io.csv_header = header ? RV_CSV_YES : no_header ? RV_CSV_NO : RV_CSV_AUTO;
	io.csv_id_column = id_col ? RV_CSV_YES : no_id_col ? RV_CSV_NO : RV_CSV_AUTO;
	if (io.format == RV_IMPORT_AUTO && strcmp(pos[1], "-") == 0) {
		rc = rv_cli_usage("import", "reading standard input needs --format");
		goto done;
	}
	if (io.format == RV_IMPORT_AUTO && rv_import_format_from_path(pos[1]) == RV_IMPORT_AUTO) {
		rc = rv_cli_usage("import",
				  "cannot tell the format of '%s' from its name; use --format "
				  "fvecs|bvecs|npy|csv|jsonl",
				  pos[1]);
		goto done;
	}

	rc = RV_EXIT_ERROR;
	rv_progress_init(&prog, stderr, rv_progress_wanted(stderr, quiet), "import");
	if (!(db = rv_cli_open(pos[0], 0, (unsigned)threads, &prog)))
		goto done;
	io.dim = rv_db_dim(db);
	rv_err err = { "" };
	if (rv_import_open(&r, pos[1], &io, &err) != RV_OK) {
		rv_cli_fail("%s: %s", pos[1], err.msg);
		goto done;
	}
	uint64_t total;
	if (rv_import_total(r, &total))
		rv_progress_set_total(&prog, total);
	size_t max_rows = BATCH_BYTES / ((size_t)io.dim * sizeof(float));
	if (max_rows < 1)
		max_rows = 1;
	if (batch > max_rows)
		batch = max_rows;
	rv_import_batch_free(&b);
	rv_import_batch_init(&b, (size_t)batch, NULL);
	size_t slots = 1;
	while (slots < 2 * (size_t)batch)
		slots *= 2;
	table = rv_malloc(NULL, slots * sizeof *table);
	keep = rv_malloc(NULL, (size_t)batch * sizeof *keep);
	if (!table || !keep) {
		rv_cli_fail("out of memory for a batch of %llu rows", (unsigned long long)batch);
		goto done;
	}

	rv_import_format fmt = rv_import_format_of(r);
	const char *unit = fmt == RV_IMPORT_CSV || fmt == RV_IMPORT_JSONL ? "lines" : "rows";
	double t0 = rv_now();
	uint64_t rows = 0, committed = 0, batches = 0;
	rv_status st;
	for (;;) {
		if ((st = rv_import_next(r, &b, &err)) != RV_OK) {
			rv_progress_finish(&prog);
			if (committed)
				rv_cli_fail("%s: %s (the first %llu rows were committed)", pos[1], err.msg,
					    (unsigned long long)committed);
			else
				rv_cli_fail("%s: %s", pos[1], err.msg);
			goto done;
		}
		if (b.n == 0)
			break;
		size_t read = b.n;
		uint64_t first = b.where[0], last = b.where[b.n - 1];
		dedupe(&b, table, slots, keep);
		if ((st = rv_db_upsert(db, b.points, b.n)) != RV_OK) {
			rv_progress_finish(&prog);
			rv_cli_fail("%s: %s %llu..%llu: %s%s", pos[1], unit, (unsigned long long)first,
				    (unsigned long long)last, rv_cli_db_msg(pos[1], db, st),
				    committed ? " (earlier rows were committed)" : "");
			goto done;
		}
		rows += read;
		batches++;
		if (every && batches % every == 0 && !no_commit) {
			if ((st = rv_db_commit(db)) != RV_OK) {
				rv_progress_finish(&prog);
				rv_cli_fail("%s: commit failed: %s", pos[0], rv_cli_db_msg(pos[0], db, st));
				goto done;
			}
			committed = rows;
		}
		rv_progress_update(&prog, rows);
	}
	if (!no_commit && (st = rv_db_commit(db)) != RV_OK) {
		rv_progress_finish(&prog);
		rv_cli_fail("%s: commit failed: %s", pos[0], rv_cli_db_msg(pos[0], db, st));
		goto done;
	}
	rv_progress_finish(&prog);
	double secs = rv_now() - t0;
	printf("imported %llu points in %.2f s (%.0f/s)\n", (unsigned long long)rows, secs,
	       secs > 0 ? (double)rows / secs : 0.0);
	if (no_commit)
		fprintf(stderr, RV_CLI_NAME ": --no-commit: nothing was written to %s\n", pos[0]);
	rc = RV_EXIT_OK;
done:
	rv_dealloc(NULL, table);
	rv_dealloc(NULL, keep);
	rv_import_batch_free(&b);
	rv_import_close(r);
	rv_db_close(db);
	return rc;
}
