/*
 * test_import.c - the import readers of the command-line tool (cli/import.h)
 * and its progress line (cli/progress.h).
 *
 * Every format is read from small inputs written here, both from memory and
 * from a file, with batch sizes that split the input at awkward places; the
 * ids, vectors and payloads that come out are compared with what went in.
 * Each malformed input must fail with a message naming the row or line and
 * the problem. The command's option parser and JSON helpers, which live in
 * the same support library, are checked at the end.
 */
#include "harness.h"

#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "import.h"
#include "progress.h"
#include "util/util.h"

/* ======================================================================
 * Helpers
 * ==================================================================== */

typedef struct rows {
	size_t n, dim, batches;
	char **ids;
	char **payloads;
	float *vec;
	uint64_t total;
	bool total_known;
} rows;

static void rows_free(rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->ids[i]);
		free(r->payloads[i]);
	}
	free(r->ids);
	free(r->payloads);
	free(r->vec);
	memset(r, 0, sizeof *r);
}

/* Read everything from an open reader into out. */
static rv_status drain(rv_import *imp, size_t batch, rows *out, rv_err *err)
{
	rv_import_batch b;
	rv_status st;
	rv_import_batch_init(&b, batch, NULL);
	out->total_known = rv_import_total(imp, &out->total);
	while ((st = rv_import_next(imp, &b, err)) == RV_OK && b.n > 0) {
		out->batches++;
		out->dim = b.dim;
		out->ids = realloc(out->ids, (out->n + b.n) * sizeof(char *));
		out->payloads = realloc(out->payloads, (out->n + b.n) * sizeof(char *));
		out->vec = realloc(out->vec, (out->n + b.n) * b.dim * sizeof(float));
		for (size_t i = 0; i < b.n; i++) {
			out->ids[out->n] = strdup(b.points[i].id);
			out->payloads[out->n] = b.points[i].payload ? strdup(b.points[i].payload) : NULL;
			memcpy(out->vec + out->n * b.dim, b.points[i].vector, b.dim * sizeof(float));
			out->n++;
		}
	}
	rv_import_batch_free(&b);
	return st;
}

static rv_status read_mem(rv_import_format f, const void *data, size_t size, const rv_import_opts *o,
			  size_t batch, rows *out, rv_err *err)
{
	rv_import_opts opts = RV_IMPORT_OPTS_INIT;
	if (o)
		opts = *o;
	opts.format = f;
	rv_import *imp;
	memset(out, 0, sizeof *out);
	err->msg[0] = 0;
	rv_status st = rv_import_open_mem(&imp, data, size, &opts, err);
	if (st != RV_OK)
		return st;
	st = drain(imp, batch, out, err);
	rv_import_close(imp);
	return st;
}

static rv_status read_str(rv_import_format f, const char *text, const rv_import_opts *o, rows *out,
			  rv_err *err)
{
	return read_mem(f, text, strlen(text), o, 3, out, err);
}

static const char *write_file(const char *name, const void *data, size_t size)
{
	const char *path = rv_test_path(name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return NULL;
	fwrite(data, 1, size, f);
	fclose(f);
	return path;
}

static rv_status read_file(const char *path, const rv_import_opts *o, size_t batch, rows *out,
			   rv_err *err)
{
	rv_import *imp;
	memset(out, 0, sizeof *out);
	err->msg[0] = 0;
	rv_status st = rv_import_open(&imp, path, o, err);
	if (st != RV_OK)
		return st;
	st = drain(imp, batch, out, err);
	rv_import_close(imp);
	return st;
}

/* fvecs/bvecs bytes for n rows of dim values v[i] = i * 0.5 + row. */
static uint8_t *make_vecs(bool bytes, size_t n, uint32_t dim, size_t *size)
{
	size_t row = 4 + dim * (bytes ? 1 : 4);
	uint8_t *b = malloc(n * row + 1);
	for (size_t r = 0; r < n; r++) {
		uint8_t *p = b + r * row;
		rv_put_u32(p, dim);
		for (uint32_t i = 0; i < dim; i++) {
			if (bytes) {
				p[4 + i] = (uint8_t)((r * 7 + i * 31) & 0xff);
			} else {
				float v = (float)i * 0.5f + (float)r;
				uint32_t u;
				memcpy(&u, &v, 4);
				rv_put_u32(p + 4 + 4 * i, u);
			}
		}
	}
	*size = n * row;
	return b;
}

/* A .npy file: version major, dtype, fortran flag, shape text, data. */
static uint8_t *make_npy(int major, const char *descr, const char *fortran, const char *shape,
			 const void *data, size_t data_len, size_t *size)
{
	char h[512];
	int hl = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
			  fortran, shape);
	size_t pre = major == 1 ? 10 : 12;
	/* Pad with spaces and end in a newline so the total is a multiple of
	 * 64, like NumPy does. */
	size_t total_h = ((pre + (size_t)hl + 1 + 63) / 64) * 64 - pre;
	uint8_t *b = malloc(pre + total_h + data_len + 1);
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (uint8_t)major;
	b[7] = 0;
	if (major == 1)
		rv_put_u16(b + 8, (uint16_t)total_h);
	else
		rv_put_u32(b + 8, (uint32_t)total_h);
	memset(b + pre, ' ', total_h);
	memcpy(b + pre, h, (size_t)hl);
	b[pre + total_h - 1] = '\n';
	if (data_len)
		memcpy(b + pre + total_h, data, data_len);
	*size = pre + total_h + data_len;
	return b;
}

/* Expect failure with a message containing every given fragment. */
#define CHECK_ERR(st, err, ...)                                                                \
	do {                                                                                   \
		const char *frags_[] = { __VA_ARGS__ };                                        \
		CHECK_MSG((st) != RV_OK, "expected an error");                                 \
		for (size_t i_ = 0; i_ < sizeof frags_ / sizeof frags_[0]; i_++)               \
			CHECK_MSG(strstr((err).msg, frags_[i_]), "message \"%s\" lacks \"%s\"", \
				  (err).msg, frags_[i_]);                                      \
	} while (0)

/* ======================================================================
 * Formats and names
 * ==================================================================== */

TEST(format_names)
{
	rv_import_format f;
	CHECK(rv_import_format_from_path("a/b/base.fvecs") == RV_IMPORT_FVECS);
	CHECK(rv_import_format_from_path("x.BVECS") == RV_IMPORT_BVECS);
	CHECK(rv_import_format_from_path("x.npy") == RV_IMPORT_NPY);
	CHECK(rv_import_format_from_path("x.csv") == RV_IMPORT_CSV);
	CHECK(rv_import_format_from_path("x.jsonl") == RV_IMPORT_JSONL);
	CHECK(rv_import_format_from_path("x.ndjson") == RV_IMPORT_JSONL);
	CHECK(rv_import_format_from_path("x.txt") == RV_IMPORT_AUTO);
	CHECK(rv_import_format_from_path("dir.csv/data") == RV_IMPORT_AUTO);
	CHECK(rv_import_format_parse("npy", &f) && f == RV_IMPORT_NPY);
	CHECK(!rv_import_format_parse("ivecs", &f));
	CHECK(strcmp(rv_import_format_name(RV_IMPORT_JSONL), "jsonl") == 0);

	rv_import *imp;
	rv_err err = { "" };
	const char *p = write_file("data.txt", "1,2\n", 4);
	CHECK_ERR(rv_import_open(&imp, p, NULL, &err), err, "cannot tell the format", "--format");
	CHECK(imp == NULL);
	rv_status st = rv_import_open(&imp, rv_test_path("missing.csv"), NULL, &err);
	CHECK(st == RV_ENOTFOUND);
	CHECK_ERR(st, err, "cannot open", "missing.csv");
}

/* ======================================================================
 * fvecs / bvecs
 * ==================================================================== */

TEST(fvecs_rows)
{
	size_t size;
	uint8_t *data = make_vecs(false, 7, 5, &size);
	rows r;
	rv_err err;
	rv_status st = read_mem(RV_IMPORT_FVECS, data, size, NULL, 3, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.total_known && r.total == 7);
	CHECK(r.n == 7 && r.dim == 5 && r.batches == 3);
	for (size_t i = 0; i < 7; i++) {
		char want[16];
		snprintf(want, sizeof want, "%zu", i);
		CHECK(strcmp(r.ids[i], want) == 0);
		CHECK(r.payloads[i] == NULL);
		for (size_t d = 0; d < 5; d++)
			CHECK(r.vec[i * 5 + d] == (float)d * 0.5f + (float)i);
	}
	rows_free(&r);

	/* From a file, with an id offset and the collection's dimension. */
	const char *path = write_file("base.fvecs", data, size);
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.id_offset = 100;
	o.dim = 5;
	st = read_file(path, &o, 10, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 7 && r.batches == 1);
	CHECK(strcmp(r.ids[0], "100") == 0 && strcmp(r.ids[6], "106") == 0);
	rows_free(&r);

	/* Empty file: no rows. */
	st = read_mem(RV_IMPORT_FVECS, "", 0, NULL, 3, &r, &err);
	CHECK(st == RV_OK && r.n == 0 && r.total_known && r.total == 0);
	free(data);
}

TEST(fvecs_errors)
{
	size_t size;
	uint8_t *data = make_vecs(false, 4, 3, &size);
	rows r;
	rv_err err;
	rv_import_opts o = RV_IMPORT_OPTS_INIT;

	/* Collection dimension differs. */
	o.dim = 4;
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, data, size, &o, 2, &r, &err), err, "row 0",
		  "3 values", "dimension 4");
	rows_free(&r);

	/* Truncated: the size is not a whole number of rows. */
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, data, size - 2, NULL, 2, &r, &err), err,
		  "not a multiple of the row size 16");
	rows_free(&r);

	/* Dimension changes in row 2 (same size, so it passes the size test). */
	rv_put_u32(data + 2 * 16, 2);
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, data, size, NULL, 2, &r, &err), err, "row 2",
		  "dimension 2 differs from 3");
	rows_free(&r);
	rv_put_u32(data + 2 * 16, 3);

	/* A NaN in row 3, value 1. */
	uint32_t nan_bits = 0x7fc00000;
	rv_put_u32(data + 3 * 16 + 8, nan_bits);
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, data, size, NULL, 2, &r, &err), err, "row 3", "value 1",
		  "not finite");
	rows_free(&r);

	/* Absurd first dimensions are refused before any allocation. */
	uint8_t hdr[8] = { 0 };
	rv_put_u32(hdr, 0x7fffffff);
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, hdr, 8, NULL, 2, &r, &err), err, "dimension 2147483647",
		  "outside 1..16000");
	rv_put_u32(hdr, 0xffffffff);
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, hdr, 8, NULL, 2, &r, &err), err, "dimension -1");
	rv_put_u32(hdr, 0);
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, hdr, 8, NULL, 2, &r, &err), err, "dimension 0");
	CHECK_ERR(read_mem(RV_IMPORT_FVECS, hdr, 2, NULL, 2, &r, &err), err, "2 bytes", "too short");
	free(data);
}

TEST(fvecs_truncated_stream)
{
	/* Through a pipe the size is unknown, so truncation shows up at the
	 * row that is cut short. */
	size_t size;
	uint8_t *data = make_vecs(false, 3, 4, &size);
	int fds[2];
	CHECK(pipe(fds) == 0);
	CHECK(write(fds[1], data, size - 3) == (ssize_t)(size - 3));
	close(fds[1]);
	int saved = dup(0);
	dup2(fds[0], 0);
	close(fds[0]);
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.format = RV_IMPORT_FVECS;
	rows r;
	rv_err err = { "" };
	rv_status st = read_file("-", &o, 10, &r, &err);
	dup2(saved, 0);
	close(saved);
	clearerr(stdin);
	CHECK(!r.total_known);
	CHECK_ERR(st, err, "row 2", "truncated");
	rows_free(&r);
	free(data);
}

TEST(bvecs_rows)
{
	size_t size;
	uint8_t *data = make_vecs(true, 5, 9, &size);
	rows r;
	rv_err err;
	rv_status st = read_mem(RV_IMPORT_BVECS, data, size, NULL, 2, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 5 && r.dim == 9 && r.total == 5);
	for (size_t i = 0; i < 5; i++)
		for (size_t d = 0; d < 9; d++)
			CHECK(r.vec[i * 9 + d] == (float)((i * 7 + d * 31) & 0xff));
	CHECK(strcmp(r.ids[4], "4") == 0);
	rows_free(&r);
	CHECK_ERR(read_mem(RV_IMPORT_BVECS, data, size - 1, NULL, 2, &r, &err), err,
		  "not a multiple of the row size 13");
	free(data);
}

/* ======================================================================
 * npy
 * ==================================================================== */

TEST(npy_rows)
{
	float f4[6] = { 1, 2, 3, 4, 5, 6.5f };
	size_t size;
	uint8_t *b = make_npy(1, "<f4", "False", "(3, 2)", f4, sizeof f4, &size);
	rows r;
	rv_err err;
	rv_status st = read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 3 && r.dim == 2 && r.total_known && r.total == 3);
	CHECK(memcmp(r.vec, f4, sizeof f4) == 0);
	CHECK(strcmp(r.ids[2], "2") == 0);
	rows_free(&r);
	free(b);

	/* Version 2.0 header, float64 data, read from a file. */
	double f8[8] = { 0.25, -1, 3e10, 4, 5, 6, 7, 1e-3 };
	b = make_npy(2, "<f8", "False", "(2, 4)", f8, sizeof f8, &size);
	const char *path = write_file("x.npy", b, size);
	st = read_file(path, NULL, 100, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 2 && r.dim == 4);
	for (int i = 0; i < 8; i++)
		CHECK(r.vec[i] == (float)f8[i]);
	rows_free(&r);
	free(b);

	/* Zero rows. */
	b = make_npy(1, "<f4", "False", "(0, 7)", NULL, 0, &size);
	st = read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err);
	CHECK(st == RV_OK && r.n == 0 && r.total == 0);
	free(b);
}

TEST(npy_errors)
{
	float f4[6] = { 1, 2, 3, 4, 5, 6 };
	size_t size;
	rows r;
	rv_err err;
	uint8_t *b;

	CHECK_ERR(read_str(RV_IMPORT_NPY, "PK\x03\x04 not numpy", NULL, &r, &err), err, "bad magic");

#define NPY_CASE(major, descr, fortran, shape, data, len, ...)                                 \
	do {                                                                                   \
		b = make_npy(major, descr, fortran, shape, data, len, &size);                  \
		rv_status st_ = read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err);           \
		free(b);                                                                       \
		rows_free(&r);                                                                 \
		CHECK_ERR(st_, err, __VA_ARGS__);                                              \
	} while (0)

	NPY_CASE(1, ">f4", "False", "(3, 2)", f4, sizeof f4, "unsupported dtype '>f4'");
	NPY_CASE(1, "<i4", "False", "(3, 2)", f4, sizeof f4, "unsupported dtype '<i4'");
	NPY_CASE(1, "<f4", "True", "(3, 2)", f4, sizeof f4, "fortran_order is True");
	NPY_CASE(1, "<f4", "False", "(6,)", f4, sizeof f4, "1 dimensions", "need 2");
	NPY_CASE(1, "<f4", "False", "(1, 3, 2)", f4, sizeof f4, "at least 3 dimensions");
	NPY_CASE(1, "<f4", "False", "(4, 2)", f4, sizeof f4, "shape (4, 2)", "24 data bytes");
	NPY_CASE(1, "<f4", "False", "(3, 2)", f4, sizeof f4 - 1, "23 data bytes");
	NPY_CASE(1, "<f4", "False", "(1, 20000)", f4, sizeof f4, "outside 1..16000");
	NPY_CASE(1, "<f4", "False", "(9223372036854775807, 2)", f4, sizeof f4, "data bytes");
	NPY_CASE(1, "<f4", "False", "(99999999999999999999, 2)", f4, sizeof f4, "too large");
	NPY_CASE(1, "<f4", "maybe", "(3, 2)", f4, sizeof f4, "True or False");
	NPY_CASE(1, "<f4", "False", "[3, 2]", f4, sizeof f4, "must be a tuple");
	double big[2] = { 1, 1e300 };
	NPY_CASE(1, "<f8", "False", "(1, 2)", big, sizeof big, "row 0", "value 1", "not a finite float");
#undef NPY_CASE

	/* Collection dimension. */
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.dim = 3;
	b = make_npy(1, "<f4", "False", "(3, 2)", f4, sizeof f4, &size);
	CHECK_ERR(read_mem(RV_IMPORT_NPY, b, size, &o, 2, &r, &err), err, "2 values", "dimension 3");

	/* Unsupported version, huge and truncated header lengths. */
	b[6] = 4;
	CHECK_ERR(read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err), err, "version 4.0");
	b[6] = 2;
	rv_put_u32(b + 8, 0xfffffff0u);
	CHECK_ERR(read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err), err, "header length 4294967280",
		  "exceeds");
	b[6] = 1;
	rv_put_u16(b + 8, 60000);
	CHECK_ERR(read_mem(RV_IMPORT_NPY, b, size, NULL, 2, &r, &err), err, "truncated header");
	CHECK_ERR(read_mem(RV_IMPORT_NPY, b, 8, NULL, 2, &r, &err), err, "truncated header");
	free(b);

	/* Header dict problems. */
	const char *bad_dicts[][2] = {
		{ "{'descr': '<f4', 'shape': (1, 2), }", "lacks 'fortran_order'" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}", "unexpected header key 'x'" },
		{ "{'descr' '<f4'}", "expected ':'" },
		{ "'descr'", "expected '{'" },
		{ "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)", "expected ',' or '}'" },
		{ "{'descr: 1}", "unterminated string" },
	};
	for (size_t i = 0; i < sizeof bad_dicts / sizeof bad_dicts[0]; i++) {
		uint8_t raw[256];
		size_t hl = strlen(bad_dicts[i][0]);
		memcpy(raw, "\x93NUMPY\x01\x00", 8);
		rv_put_u16(raw + 8, (uint16_t)hl);
		memcpy(raw + 10, bad_dicts[i][0], hl);
		memcpy(raw + 10 + hl, f4, 8);
		CHECK_ERR(read_mem(RV_IMPORT_NPY, raw, 10 + hl + 8, NULL, 2, &r, &err), err,
			  bad_dicts[i][1]);
	}
}

/* ======================================================================
 * CSV
 * ==================================================================== */

TEST(csv_rows)
{
	rows r;
	rv_err err;
	rv_import_opts o = RV_IMPORT_OPTS_INIT;

	/* Header detected, ids in the first column, quoted ids, CRLF, blank
	 * lines, spaces around numbers. */
	const char *text = "\xEF\xBB\xBFid,x,y\r\n"
			   "a, 1.5 ,2\r\n"
			   "\r\n"
			   "\"b,c\",3,-4e2\n"
			   "   \n"
			   "\"say \"\"hi\"\"\",5,6\n"
			   "7,8,9";
	rv_status st = read_str(RV_IMPORT_CSV, text, NULL, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 4 && r.dim == 2);
	CHECK(strcmp(r.ids[0], "a") == 0 && r.vec[0] == 1.5f && r.vec[1] == 2);
	CHECK(strcmp(r.ids[1], "b,c") == 0 && r.vec[3] == -400);
	CHECK(strcmp(r.ids[2], "say \"hi\"") == 0);
	CHECK(strcmp(r.ids[3], "7") == 0 && r.vec[6] == 8 && r.vec[7] == 9);
	CHECK(!r.total_known);
	rows_free(&r);

	/* No header, no id column: the collection dimension says the rows are
	 * bare vectors, numbered from id_offset. */
	o.dim = 3;
	o.id_offset = 10;
	st = read_str(RV_IMPORT_CSV, "1,2,3\n4,5,6\n", &o, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 2 && r.dim == 3);
	CHECK(strcmp(r.ids[0], "10") == 0 && strcmp(r.ids[1], "11") == 0 && r.vec[5] == 6);
	rows_free(&r);

	/* Same dimension with an id column: 4 cells per row. Numeric ids. */
	st = read_str(RV_IMPORT_CSV, "id,x0,x1,x2\n42,1,2,3\n43,4,5,6\n", &o, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 2 && strcmp(r.ids[0], "42") == 0 && r.vec[3] == 4);
	rows_free(&r);

	/* Header with a single column and dimension 1. */
	o.dim = 1;
	o.id_offset = 0;
	st = read_str(RV_IMPORT_CSV, "value\n0.5\n0.25\n", &o, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 2 && r.vec[1] == 0.25f && strcmp(r.ids[1], "1") == 0);
	rows_free(&r);

	/* Forced settings: a numeric first line taken as a header; ids forced
	 * off. */
	o.dim = 0;
	o.csv_header = RV_CSV_YES;
	o.csv_id_column = RV_CSV_NO;
	st = read_str(RV_IMPORT_CSV, "1,2\n3,4\n", &o, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 1 && r.dim == 2 && r.vec[0] == 3 && strcmp(r.ids[0], "0") == 0);
	rows_free(&r);

	/* Header off: a header-looking first line is data and fails. */
	o.csv_header = RV_CSV_NO;
	o.csv_id_column = RV_CSV_AUTO;
	CHECK_ERR(read_str(RV_IMPORT_CSV, "id,x\na,1\n", &o, &r, &err), err, "line 1, column 2",
		  "'x' is not a number");
}

TEST(csv_errors)
{
	rows r;
	rv_err err;
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\nb,1,zz\n", NULL, &r, &err), err, "line 2, column 3",
		  "'zz' is not a number");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\nb,1,\n", NULL, &r, &err), err, "line 2, column 3",
		  "empty cell");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\nb,nan,1\n", NULL, &r, &err), err, "line 2, column 2",
		  "not a finite float");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\nb,1e39,1\n", NULL, &r, &err), err, "line 2",
		  "not a finite float");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\nb,1,2,3\n", NULL, &r, &err), err, "line 2",
		  "3 values, earlier rows have 2");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1,2\n\"b,1,2\n", NULL, &r, &err), err, "line 2, column 1",
		  "unterminated quoted cell");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "\"a\"x,1,2\n", NULL, &r, &err), err, "line 1, column 1",
		  "after the closing quote");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "a,1\nb\n", NULL, &r, &err), err, "line 2",
		  "an id but no vector");
	rows_free(&r);
	CHECK_ERR(read_str(RV_IMPORT_CSV, "\"\",1,2\n", NULL, &r, &err), err, "line 1", "empty id");
	rows_free(&r);
	o.dim = 2;
	CHECK_ERR(read_str(RV_IMPORT_CSV, "1,2,3,4\n", &o, &r, &err), err, "line 1", "4 columns",
		  "expected 2", "or 3");
	rows_free(&r);

	/* Ids longer than 255 bytes. */
	char line[400];
	memset(line, 'x', 300);
	strcpy(line + 300, ",1,2\n");
	CHECK_ERR(read_str(RV_IMPORT_CSV, line, NULL, &r, &err), err, "line 1",
		  "id is 300 bytes, longer than 255");
	rows_free(&r);

	/* More columns than any dimension allows. */
	size_t n = 2 * (RV_MAX_DIM + 10);
	char *wide = malloc(n + 2);
	for (size_t i = 0; i < n; i += 2)
		memcpy(wide + i, "1,", 2);
	wide[n - 1] = '\n';
	wide[n] = 0;
	CHECK_ERR(read_str(RV_IMPORT_CSV, wide, NULL, &r, &err), err, "line 1", "more than 16001 columns");
	free(wide);
	rows_free(&r);
}

/* ======================================================================
 * JSON Lines
 * ==================================================================== */

TEST(jsonl_rows)
{
	rows r;
	rv_err err;
	const char *text = "{\"id\": \"doc-1\", \"vector\": [0.5, 1, 2], \"payload\": {\"lang\": \"en\", \"n\": 3}}\n"
			   "\n"
			   "{\"vector\": [3, 4, 5], \"id\": 7, \"metadata\": {\"tags\": [\"a\", \"b\"]}}\r\n"
			   "  [6, 7, 8.25]  \n"
			   "{\"id\": -12, \"vector\": [0, 0, 1e-3], \"payload\": null, \"other\": true}\n"
			   "{\"vector\": [9, 9, 9]}";
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.id_offset = 1000;
	rv_status st = read_str(RV_IMPORT_JSONL, text, &o, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == 5 && r.dim == 3);
	CHECK(strcmp(r.ids[0], "doc-1") == 0);
	CHECK(strcmp(r.ids[1], "7") == 0);
	CHECK(strcmp(r.ids[2], "1002") == 0); /* third data row */
	CHECK(strcmp(r.ids[3], "-12") == 0);
	CHECK(strcmp(r.ids[4], "1004") == 0);
	CHECK(r.vec[0] == 0.5f && r.vec[8] == 8.25f && r.vec[11] == 1e-3f);
	/* Payloads come back as compact JSON objects equal to the input. */
	cJSON *p0 = cJSON_Parse(r.payloads[0]);
	CHECK(p0 && strcmp(cJSON_GetObjectItem(p0, "lang")->valuestring, "en") == 0);
	CHECK(cJSON_GetObjectItem(p0, "n")->valuedouble == 3);
	cJSON_Delete(p0);
	CHECK(strcmp(r.payloads[1], "{\"tags\":[\"a\",\"b\"]}") == 0);
	CHECK(r.payloads[2] == NULL && r.payloads[3] == NULL && r.payloads[4] == NULL);
	rows_free(&r);
}

TEST(jsonl_errors)
{
	rows r;
	rv_err err;
	const struct {
		const char *text;
		const char *frag[3];
	} cases[] = {
		{ "[1,2]\n{\"vector\": [1, 2,, 3]}\n", { "line 2, column 18", "invalid JSON", "near ', 3]}'" } },
		{ "{\"vector\": [1, 2]", { "line 1, column 17", "invalid JSON" } },
		{ "[1,2] [3,4]\n", { "line 1, column 7", "unexpected text after" } },
		{ "{\"id\": \"a\"}\n", { "line 1", "no \"vector\" key" } },
		{ "{\"vector\": {\"x\": 1}}\n", { "line 1", "\"vector\" is an object" } },
		{ "[1, \"2\"]\n", { "line 1", "vector[1] is a string" } },
		{ "[1, 1e999]\n", { "line 1", "vector[1]", "not a finite float" } },
		{ "[1, 1e39]\n", { "line 1", "vector[1]", "not a finite float" } },
		{ "{\"id\": 1.5, \"vector\": [1]}\n", { "line 1", "id 1.5 is not an integer" } },
		{ "{\"id\": 1e17, \"vector\": [1]}\n", { "line 1", "not an integer up to 2^53" } },
		{ "{\"id\": true, \"vector\": [1]}\n", { "line 1", "id is a boolean" } },
		{ "{\"id\": \"\", \"vector\": [1]}\n", { "line 1", "empty id" } },
		{ "{\"vector\": [1], \"payload\": [1]}\n", { "line 1", "payload is an array" } },
		{ "{\"vector\": [1], \"payload\": {}, \"metadata\": {}}\n", { "line 1", "both" } },
		{ "[1, 2]\n\n[1, 2, 3]\n", { "line 3", "3 values, earlier rows have 2" } },
		{ "[]\n", { "line 1", "empty vector" } },
		{ "\"text\"\n", { "line 1", "expected a JSON object or array, got a string" } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		rv_status st = read_str(RV_IMPORT_JSONL, cases[i].text, NULL, &r, &err);
		rows_free(&r);
		CHECK_MSG(st == RV_EINVAL, "case %zu: status %d", i, (int)st);
		for (int k = 0; k < 3 && cases[i].frag[k]; k++)
			CHECK_MSG(strstr(err.msg, cases[i].frag[k]), "case %zu: \"%s\" lacks \"%s\"", i,
				  err.msg, cases[i].frag[k]);
	}

	/* Id of 256 bytes; the dimension of the collection. */
	char line[400];
	int n = snprintf(line, sizeof line, "{\"id\": \"%0256d\", \"vector\": [1]}\n", 5);
	CHECK(n > 256);
	CHECK_ERR(read_str(RV_IMPORT_JSONL, line, NULL, &r, &err), err, "id is 256 bytes");
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.dim = 4;
	CHECK_ERR(read_str(RV_IMPORT_JSONL, "\n\n[1,2]\n", &o, &r, &err), err, "line 3",
		  "2 values, the collection has dimension 4");

	/* A line beyond the cap is refused without reading it all into a
	 * parser. */
	size_t big = RV_IMPORT_MAX_LINE + 10;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	huge[0] = '[';
	CHECK_ERR(read_mem(RV_IMPORT_JSONL, huge, big, NULL, 2, &r, &err), err, "line 1", "longer than");
	free(huge);
}

/* Rows and lines that straddle the 64 KiB read buffer, from a file, with
 * a batch size that does not divide the row count. */
TEST(jsonl_large_file)
{
	const size_t n = 3001, dim = 16;
	float *v = rv_test_random_vectors(n, dim, 7);
	const char *path = rv_test_path("big.jsonl");
	FILE *f = fopen(path, "w");
	CHECK(f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "{\"id\":\"p%zu\",\"vector\":[", i);
		for (size_t d = 0; d < dim; d++)
			fprintf(f, "%s%.9g", d ? "," : "", (double)v[i * dim + d]);
		/* Every 1000th row carries a payload longer than the buffer. */
		if (i % 1000 == 1) {
			fprintf(f, "],\"payload\":{\"blob\":\"");
			for (int k = 0; k < 70000; k++)
				fputc('a' + k % 26, f);
			fprintf(f, "\"}}\n");
		} else {
			fprintf(f, "],\"payload\":{\"i\":%zu}}\n", i);
		}
	}
	fclose(f);
	rows r;
	rv_err err;
	rv_status st = read_file(path, NULL, 128, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == n && r.dim == dim && r.batches == (n + 127) / 128);
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof want, "p%zu", i);
		CHECK_MSG(strcmp(r.ids[i], want) == 0, "row %zu id %s", i, r.ids[i]);
		if (i % 1000 == 1) {
			CHECK(strlen(r.payloads[i]) == 70000 + 11);
		} else {
			snprintf(want, sizeof want, "{\"i\":%zu}", i);
			CHECK(strcmp(r.payloads[i], want) == 0);
		}
	}
	CHECK(memcmp(r.vec, v, n * dim * sizeof(float)) == 0);
	rows_free(&r);
	free(v);
}

TEST(csv_large_file)
{
	const size_t n = 5000, dim = 12;
	float *v = rv_test_random_vectors(n, dim, 8);
	const char *path = rv_test_path("big.csv");
	FILE *f = fopen(path, "w");
	CHECK(f);
	fprintf(f, "id");
	for (size_t d = 0; d < dim; d++)
		fprintf(f, ",x%zu", d);
	fprintf(f, "\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "\"id %zu\"", i);
		for (size_t d = 0; d < dim; d++)
			fprintf(f, ",%.9g", (double)v[i * dim + d]);
		fprintf(f, "\n");
	}
	fclose(f);
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.dim = (uint32_t)dim;
	rows r;
	rv_err err;
	rv_status st = read_file(path, &o, 999, &r, &err);
	CHECK_MSG(st == RV_OK, "%s", err.msg);
	CHECK(r.n == n);
	CHECK(strcmp(r.ids[4999], "id 4999") == 0);
	CHECK(memcmp(r.vec, v, n * dim * sizeof(float)) == 0);
	rows_free(&r);
	free(v);
}

/* Every allocation failing in turn: each run either succeeds or reports
 * out of memory, and nothing leaks. */
TEST(alloc_failures)
{
	size_t size;
	float f4[6] = { 1, 2, 3, 4, 5, 6 };
	uint8_t *npy = make_npy(1, "<f4", "False", "(3, 2)", f4, sizeof f4, &size);
	const char *jsonl = "{\"id\":\"a\",\"vector\":[1,2],\"payload\":{\"k\":1}}\n[3,4]\n[5,6]\n";
	const char *csv = "id,a,b\nx,1,2\ny,3,4\nz,5,6\n";
	struct {
		rv_import_format f;
		const void *data;
		size_t size;
	} inputs[] = {
		{ RV_IMPORT_NPY, npy, size },
		{ RV_IMPORT_JSONL, jsonl, strlen(jsonl) },
		{ RV_IMPORT_CSV, csv, strlen(csv) },
	};
	for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
		bool succeeded = false;
		for (long fail = 1; fail < 200 && !succeeded; fail++) {
			rv_test_alloc ta;
			rv_test_alloc_init(&ta);
			ta.fail_at = fail;
			rv_import_opts o = RV_IMPORT_OPTS_INIT;
			o.format = inputs[k].f;
			o.allocator = &ta.hooks;
			rv_err err = { "" };
			rv_import *imp = NULL;
			size_t got = 0;
			rv_status st = rv_import_open_mem(&imp, inputs[k].data, inputs[k].size, &o, &err);
			if (st == RV_OK) {
				rv_import_batch b;
				rv_import_batch_init(&b, 2, &ta.hooks);
				while ((st = rv_import_next(imp, &b, &err)) == RV_OK && b.n > 0)
					got += b.n;
				rv_import_batch_free(&b);
				rv_import_close(imp);
			}
			CHECK_MSG(st == RV_OK || st == RV_ENOMEM, "format %zu fail %ld: %s", k, fail, err.msg);
			CHECK_MSG(ta.live == 0, "format %zu fail %ld: %ld blocks leaked", k, fail, ta.live);
			if (st == RV_OK) {
				CHECK(got == 3);
				succeeded = true;
			}
		}
		CHECK_MSG(succeeded, "format %zu never succeeded", k);
	}
	free(npy);
}

TEST(reader_stays_failed)
{
	rv_import_opts o = RV_IMPORT_OPTS_INIT;
	o.format = RV_IMPORT_JSONL;
	const char *t = "[1]\n[x]\n[2]\n";
	rv_import *imp;
	rv_err err = { "" };
	CHECK(rv_import_open_mem(&imp, t, strlen(t), &o, &err) == RV_OK);
	rv_import_batch b;
	rv_import_batch_init(&b, 1, NULL);
	CHECK(rv_import_next(imp, &b, &err) == RV_OK && b.n == 1);
	CHECK(rv_import_next(imp, &b, &err) == RV_EINVAL && b.n == 0);
	CHECK(strstr(err.msg, "line 2"));
	CHECK(rv_import_next(imp, &b, &err) != RV_OK);
	CHECK(rv_import_rows(imp) == 1);
	rv_import_batch_free(&b);
	rv_import_close(imp);
}

/* ======================================================================
 * Progress line
 * ==================================================================== */

TEST(progress_format)
{
	char buf[512], s[32];
	rv_format_duration(s, sizeof s, 7.2);
	CHECK(strcmp(s, "0:07") == 0);
	rv_format_duration(s, sizeof s, 3723);
	CHECK(strcmp(s, "1:02:03") == 0);
	rv_format_duration(s, sizeof s, -1);
	CHECK(strcmp(s, "-") == 0);
	rv_format_rate(s, sizeof s, 950);
	CHECK(strcmp(s, "950") == 0);
	rv_format_rate(s, sizeof s, 81300);
	CHECK(strcmp(s, "81.3k") == 0);
	rv_format_rate(s, sizeof s, 2500000);
	CHECK(strcmp(s, "2.50M") == 0);

	rv_progress p;
	rv_progress_init(&p, stderr, false, "import");
	rv_progress_set_total(&p, 1000);
	rv_progress_update(&p, 250);
	rv_progress_format(buf, sizeof buf, &p, 10.0, 120);
	CHECK_MSG(strstr(buf, "import [") && strstr(buf, " 25.0% 250/1000 rows") &&
			  strstr(buf, "25 rows/s") && strstr(buf, "0:10 elapsed") && strstr(buf, "ETA 0:30"),
		  "%s", buf);
	/* The bar is a quarter full. */
	const char *bar = strchr(buf, '[');
	size_t hashes = strspn(bar + 1, "#");
	size_t width = strcspn(bar + 1, "]");
	CHECK_MSG(hashes * 4 >= width - 1 && hashes * 4 <= width + 3, "%s", buf);
	CHECK(strlen(buf) <= 119);

	/* Narrow terminals drop the bar, then cut the line. */
	rv_progress_format(buf, sizeof buf, &p, 10.0, 60);
	CHECK_MSG(!strchr(buf, '[') && strlen(buf) <= 59, "%s", buf);

	/* Unknown total: count and rate only; a library phase is appended. */
	rv_progress_init(&p, stderr, false, "import");
	rv_progress_update(&p, 5000);
	rv_progress_phase(&p, "insert", 30, 40);
	rv_progress_format(buf, sizeof buf, &p, 2.0, 200);
	CHECK_MSG(strstr(buf, "5000 rows") && strstr(buf, "2.50k rows/s") && !strstr(buf, "ETA") &&
			  strstr(buf, "| insert 75%"),
		  "%s", buf);
	/* The next row count ends the phase. */
	rv_progress_update(&p, 6000);
	rv_progress_format(buf, sizeof buf, &p, 2.0, 200);
	CHECK(!strstr(buf, "insert"));

	/* A phase alone (compact, open). */
	rv_progress_init(&p, stderr, false, "compact");
	rv_progress_library(&p, "checkpoint", 3, 0);
	rv_progress_format(buf, sizeof buf, &p, 1.0, 80);
	CHECK_MSG(strcmp(buf, "compact: checkpoint 3") == 0, "%s", buf);
}

/* When drawing is on, the line goes to the stream and finish erases it. */
TEST(progress_draw)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	CHECK(f);
	rv_progress p;
	rv_progress_init(&p, f, true, "import");
	rv_progress_set_total(&p, 10);
	rv_progress_update(&p, 5);
	rv_progress_finish(&p);
	fclose(f);
	CHECK_MSG(text && strncmp(text, "\r", 1) == 0 && strstr(text, "5/10 rows"), "%s", text);
	CHECK(len >= 4 && strcmp(text + len - 4, "\r\x1b[K") == 0);
	free(text);

	/* Disabled: nothing is written. */
	text = NULL;
	f = open_memstream(&text, &len);
	rv_progress_init(&p, f, false, "import");
	rv_progress_update(&p, 5);
	rv_progress_finish(&p);
	fclose(f);
	CHECK(len == 0);
	free(text);
}

/* ======================================================================
 * Option parser and output helpers (cli/args.c, cli/output.c)
 * ==================================================================== */

TEST(args_parse)
{
	const char *dim = NULL, *k = NULL;
	bool json = false;
	rv_arg_list vec = { 0 };
	const rv_arg_spec specs[] = {
		{ "--dim", NULL, RV_ARG_VALUE, &dim },
		{ "--k", "-k", RV_ARG_VALUE, &k },
		{ "--json", NULL, RV_ARG_FLAG, &json },
		{ "--vector", NULL, RV_ARG_LIST, &vec },
	};
	const char *pos[3];
	size_t npos;
	char *argv1[] = { "t", "a.rvf", "--dim=7", "-k12", "--vector", "[1]", "-", "--json",
			  "--vector=[2]", "--", "--dim", NULL };
	int rc = rv_args_parse("t", 11, argv1, specs, 4, pos, 3, &npos);
	CHECK(rc == RV_ARGS_OK);
	CHECK(npos == 3 && strcmp(pos[0], "a.rvf") == 0 && strcmp(pos[1], "-") == 0 &&
	      strcmp(pos[2], "--dim") == 0);
	CHECK(strcmp(dim, "7") == 0 && strcmp(k, "12") == 0 && json);
	CHECK(vec.n == 2 && strcmp(vec.items[0], "[1]") == 0 && strcmp(vec.items[1], "[2]") == 0);
	rv_arg_list_free(&vec);

	char *argv2[] = { "t", "-k", "3", "--dim", "5", NULL };
	CHECK(rv_args_parse("t", 5, argv2, specs, 4, pos, 3, &npos) == RV_ARGS_OK);
	CHECK(strcmp(k, "3") == 0 && strcmp(dim, "5") == 0 && npos == 0);
	char *argv3[] = { "t", "x", "--help", NULL };
	CHECK(rv_args_parse("t", 3, argv3, specs, 4, pos, 3, &npos) == RV_ARGS_HELP);
	char *argv4[] = { "t", "--nope", NULL };
	CHECK(rv_args_parse("t", 2, argv4, specs, 4, pos, 3, &npos) == RV_ARGS_USAGE);
	char *argv5[] = { "t", "--dim", NULL };
	CHECK(rv_args_parse("t", 2, argv5, specs, 4, pos, 3, &npos) == RV_ARGS_USAGE);
	char *argv6[] = { "t", "--json=1", NULL };
	CHECK(rv_args_parse("t", 2, argv6, specs, 4, pos, 3, &npos) == RV_ARGS_USAGE);
	char *argv7[] = { "t", "a", "b", NULL };
	CHECK(rv_args_parse("t", 3, argv7, specs, 4, pos, 1, &npos) == RV_ARGS_USAGE);

	uint64_t v;
	CHECK(rv_args_uint("t", "--n", "42", 1, 100, &v) && v == 42);
	CHECK(!rv_args_uint("t", "--n", "-1", 0, 100, &v));
	CHECK(!rv_args_uint("t", "--n", "1e3", 0, 10000, &v));
	CHECK(!rv_args_uint("t", "--n", "101", 0, 100, &v));
	CHECK(!rv_args_uint("t", "--n", "99999999999999999999999", 0, UINT64_MAX, &v));
	CHECK(!rv_args_uint("t", "--n", "", 0, 100, &v));
}

TEST(parse_vector)
{
	float *v = NULL;
	size_t n = 0;
	rv_err err = { "" };
	CHECK(rv_parse_vector(" [1, -2.5, 3e-2] ", &v, &n, &err) == RV_OK);
	CHECK(n == 3 && v[0] == 1 && v[1] == -2.5f && v[2] == 3e-2f);
	rv_dealloc(NULL, v);
	CHECK(rv_parse_vector("0.5, 1,2", &v, &n, &err) == RV_OK);
	CHECK(n == 3 && v[0] == 0.5f && v[2] == 2);
	rv_dealloc(NULL, v);
	const char *bad[][2] = {
		{ "", "empty" },
		{ "[1, 2", "invalid JSON" },
		{ "[1, \"a\"]", "element 1 is not a number" },
		{ "[1] x", "unexpected text after the array" },
		{ "[]", "0 values" },
		{ "{\"v\": 1}", "expected a JSON array" },
		{ "1,,2", "element 1 is not a number" },
		{ "1,2,", "element 2 is not a number" },
		{ "[1e39]", "not a finite float" },
		{ "1,inf", "not a finite float" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = NULL;
		rv_status st = rv_parse_vector(bad[i][0], &v, &n, &err);
		CHECK_MSG(st == RV_EINVAL && v == NULL, "'%s' accepted", bad[i][0]);
		CHECK_MSG(strstr(err.msg, bad[i][1]), "'%s': %s", bad[i][0], err.msg);
	}
}

TEST(json_output)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	CHECK(f);
	rv_json_string(f, "a\"b\\c\n\t\x01\xc3\xa9");
	fputc(' ', f);
	float vals[3] = { 0.1f, -3, 16777217.0f };
	rv_json_floats(f, vals, 3);
	fputc(' ', f);
	rv_json_float(f, NAN);
	fclose(f);
	CHECK_MSG(strcmp(text, "\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\" [0.100000001,-3,16777216] null") == 0,
		  "%s", text);
	/* %.9g reads back as the same float. */
	float back = strtof("0.100000001", NULL);
	CHECK(back == 0.1f);
	free(text);
}
