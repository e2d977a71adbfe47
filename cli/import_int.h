/*
 * import_int.h - what the import readers share: the reader state, the byte
 * source (a file read through a fixed buffer, or memory), line reading with
 * a length cap, and the helpers that append a row to a batch.
 *
 * Each format provides an open function (reads and checks any header) and a
 * row function that appends one row to the batch or reports the end.
 */
#ifndef RV_CLI_IMPORT_INT_H
#define RV_CLI_IMPORT_INT_H

#include <stdio.h>

#include "import.h"

#define RV_IMPORT_READ_BUF ((size_t)1 << 16)

typedef rv_status (*rv_import_row_fn)(rv_import *r, rv_import_batch *b, bool *got, rv_err *err);

struct rv_import {
	const rv_alloc *a;
	rv_import_opts opts;
	rv_import_format format;
	rv_import_row_fn row;

	/* Byte source: either f (through buf) or mem. */
	FILE *f;
	bool close_f;
	const uint8_t *mem;
	size_t mem_len;
	uint8_t *buf;
	size_t buf_pos, buf_len;
	bool src_eof;      /* the file returned end of input */
	bool src_error;    /* the file returned a read error */
	uint64_t size;     /* bytes in the input, when size_known */
	bool size_known;
	uint64_t offset;   /* bytes consumed so far */

	/* Rows. */
	uint32_t dim;      /* 0 until known */
	uint64_t rows;     /* data rows returned so far */
	uint64_t total;    /* rows in the input, when total_known */
	bool total_known;
	bool failed;
	bool done;

	/* Text formats. */
	rv_buf line;       /* the current line, NUL-terminated */
	uint64_t line_no;  /* 1-based number of the current line */

	/* Format state. */
	uint8_t *row_buf;  /* binary formats: one raw row */
	size_t row_bytes;  /* bytes of values per row (after the vecs dimension field) */
	bool dim_read;     /* vecs: the next row's dimension field was read by open */
	bool npy_f64;
	int csv_header;    /* resolved RV_CSV_YES/NO once the first line is seen */
	int csv_id_column;
	char **cells;      /* csv: start of each cell of the current line */
	size_t *cell_len;
	size_t cells_cap;
};

/* Source. */
/* Up to n bytes into dst; fewer only at end of input or on a read error
 * (then r->src_error). */
size_t rv_import_read(rv_import *r, void *dst, size_t n);
/* The next line without its "\n" or "\r\n" into r->line (NUL-terminated;
 * the line may contain NUL bytes, *len counts them). *eof when no line is
 * left. Lines longer than RV_IMPORT_MAX_LINE are an error. */
rv_status rv_import_read_line(rv_import *r, size_t *len, bool *eof, rv_err *err);

/* Batch building: start a row of dim values (returns where to write them,
 * NULL when out of memory), then give it an id and optional payload. */
float *rv_import_row_vector(rv_import_batch *b, uint32_t dim);
/* Add the row started by rv_import_row_vector: id (checked: 1..255 bytes,
 * no NUL) or, when id is NULL, the number id_offset + r->rows; payload may
 * be NULL. `where` names the row in messages ("line" or "row"). */
rv_status rv_import_row_finish(rv_import *r, rv_import_batch *b, const char *id, size_t id_len,
			       const char *payload, size_t payload_len, uint64_t where,
			       rv_err *err);

/* Check a row's dimension against opts.dim or the earlier rows; fixes
 * r->dim on the first row. what/where name the row in the message. */
rv_status rv_import_check_dim(rv_import *r, uint32_t n, const char *what, uint64_t where,
			      rv_err *err);

/* Format entry points. */
rv_status rv_import_vecs_open(rv_import *r, rv_err *err);
rv_status rv_import_npy_open(rv_import *r, rv_err *err);
rv_status rv_import_csv_open(rv_import *r, rv_err *err);
rv_status rv_import_jsonl_open(rv_import *r, rv_err *err);

/* Text helpers shared by csv and jsonl. */
/* Parse the NUL-terminated s as one number (blanks around it allowed).
 * false when it is not a number; *finite is false for nan/inf and for
 * values beyond the float range. */
bool rv_import_parse_float(const char *s, float *out, bool *finite);

#endif /* RV_CLI_IMPORT_INT_H */
