/*
 * import.h - streaming readers for the data files `ruvector import` loads:
 * fvecs, bvecs, NumPy .npy, CSV and JSON Lines.
 *
 * A reader hands out rows in batches of at most B rows, so a file of any
 * size is imported in bounded memory:
 *
 *     rv_import_opts o = RV_IMPORT_OPTS_INIT;
 *     o.dim = rv_db_dim(db);          // rows must have this dimension
 *     rv_import *r;
 *     rv_err err = { "" };
 *     if (rv_import_open(&r, "base.fvecs", &o, &err) != RV_OK) ...
 *     rv_import_batch b;
 *     rv_import_batch_init(&b, 10000, NULL);
 *     while ((st = rv_import_next(r, &b, &err)) == RV_OK && b.n > 0)
 *             rv_db_upsert(db, b.points, b.n);
 *     rv_import_batch_free(&b);
 *     rv_import_close(r);
 *
 * Every malformed input ends in RV_EINVAL (or RV_EIO for a read error) with
 * a message that names the row or line and what was wrong; no length field
 * read from the input is trusted for an allocation. Rows that were returned
 * before an error are valid.
 *
 * Rows without ids of their own (fvecs, bvecs, npy, CSV without an id
 * column, JSON lines without "id") are numbered id_offset + i, where i is
 * the 0-based index of the row among the file's data rows.
 *
 * Not thread-safe: one reader per thread.
 */
#ifndef RV_CLI_IMPORT_H
#define RV_CLI_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ruvector.h"
#include "util/util.h"

typedef enum rv_import_format {
	RV_IMPORT_AUTO = 0, /* from the file name's extension */
	RV_IMPORT_FVECS,
	RV_IMPORT_BVECS,
	RV_IMPORT_NPY,
	RV_IMPORT_CSV,
	RV_IMPORT_JSONL
} rv_import_format;

/* "fvecs", "bvecs", "npy", "csv", "jsonl"; "auto" for RV_IMPORT_AUTO. */
const char *rv_import_format_name(rv_import_format f);
/* Parse a format name (also "ndjson" for JSON Lines). false if unknown. */
bool rv_import_format_parse(const char *name, rv_import_format *out);
/* Format for a path's extension (.fvecs .bvecs .npy .csv .jsonl .ndjson,
 * case-insensitive), RV_IMPORT_AUTO when none fits. */
rv_import_format rv_import_format_from_path(const char *path);

enum {
	RV_CSV_AUTO = -1, /* csv_header / csv_id_column: decide from the data */
	RV_CSV_NO = 0,
	RV_CSV_YES = 1
};

typedef struct rv_import_opts {
	rv_import_format format; /* RV_IMPORT_AUTO: from the path */
	uint32_t dim;            /* rows must have this many values; 0 = any, fixed by the first row */
	uint64_t id_offset;      /* first id of numbered rows */
	int csv_header;          /* RV_CSV_AUTO: the first line is a header when a cell after the first is not a number */
	int csv_id_column;       /* RV_CSV_AUTO: from the first data row's cell count (see import_csv.c) */
	const rv_allocator *allocator; /* NULL = C library */
} rv_import_opts;

#define RV_IMPORT_OPTS_INIT { RV_IMPORT_AUTO, 0, 0, RV_CSV_AUTO, RV_CSV_AUTO, NULL }

/* Largest line a text format accepts: one JSON line holds at most a
 * 16 MiB payload and 16000 numbers. */
#define RV_IMPORT_MAX_LINE ((size_t)RV_MAX_PAYLOAD_LEN + (size_t)4 * 1024 * 1024)

/* One batch of rows. The reader fills it; `points` are ready for
 * rv_db_upsert() and stay valid until the next rv_import_next() on this
 * batch. */
typedef struct rv_import_batch {
	size_t cap;        /* most rows per rv_import_next() */
	size_t n;          /* rows in this batch; 0 at end of input */
	uint32_t dim;      /* values per vector */
	rv_point *points;  /* [n]: id, vector, payload (NULL or a JSON object) */
	uint64_t *where;   /* [n]: line number (text formats, 1-based) or row index (binary) */
	/* Storage behind points: */
	float *vectors;
	size_t vectors_cap; /* floats */
	rv_buf text;        /* ids and payloads, NUL-terminated */
	size_t *id_at, *payload_at; /* offsets into text; SIZE_MAX = no payload */
	size_t rows_cap;
	const rv_allocator *alloc;
} rv_import_batch;

void rv_import_batch_init(rv_import_batch *b, size_t cap, const rv_allocator *alloc);
void rv_import_batch_free(rv_import_batch *b);

typedef struct rv_import rv_import; /* opaque reader */

/* Open `path` ("-" = standard input, which needs an explicit format).
 * Reads and checks the header (vecs: first dimension; npy: the header;
 * csv/jsonl: nothing yet).
 * Errors: RV_EINVAL (unknown format, bad header, dimension mismatch),
 * RV_EIO (cannot open or read), RV_ENOMEM. */
rv_status rv_import_open(rv_import **out, const char *path, const rv_import_opts *opts, rv_err *err);

/* The same over data[0..size) in memory (borrowed until close); opts->format
 * must be set. Used by tests and the fuzz target. */
rv_status rv_import_open_mem(rv_import **out, const void *data, size_t size,
			     const rv_import_opts *opts, rv_err *err);

/* Fill b with up to b->cap rows. RV_OK with b->n == 0 means end of input.
 * After an error the reader stays failed. */
rv_status rv_import_next(rv_import *r, rv_import_batch *b, rv_err *err);

/* Rows in the whole input when known before reading it (fvecs, bvecs and
 * npy with a known size), else false. */
bool rv_import_total(const rv_import *r, uint64_t *total);
/* Rows returned so far. */
uint64_t rv_import_rows(const rv_import *r);
/* Dimension of the rows: known after open for binary formats, after the
 * first row for text; 0 until then. */
uint32_t rv_import_dim(const rv_import *r);
rv_import_format rv_import_format_of(const rv_import *r);

void rv_import_close(rv_import *r); /* NULL is a no-op */

#endif /* RV_CLI_IMPORT_H */
