/*
 * import.c - the format-independent half of the import readers: choosing
 * the format, the byte source, line reading, batches and row bookkeeping.
 *
 * The source is read through one fixed 64 KiB buffer (or straight from
 * memory), so memory use is bounded by the batch and the longest line, never
 * by the file. Rows are appended to a batch in three arrays (vectors, a text
 * arena holding ids and payloads, per-row offsets); the rv_point array is
 * filled only when the batch is complete, because growing the arena moves
 * the text the points would point into.
 */
#include "import_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/strtof.h"

/* ======================================================================
 * Formats
 * ==================================================================== */

static const struct {
	const char *name;
	rv_import_format format;
} format_names[] = {
	{ "fvecs", RV_IMPORT_FVECS }, { "bvecs", RV_IMPORT_BVECS }, { "npy", RV_IMPORT_NPY },
	{ "csv", RV_IMPORT_CSV },     { "jsonl", RV_IMPORT_JSONL }, { "ndjson", RV_IMPORT_JSONL },
};

const char *rv_import_format_name(rv_import_format f)
{
	for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
		if (format_names[i].format == f)
			return format_names[i].name;
	return "auto";
}

bool rv_import_format_parse(const char *name, rv_import_format *out)
{
	for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
		if (strcasecmp(name, format_names[i].name) == 0) {
			*out = format_names[i].format;
			return true;
		}
	}
	return false;
}

rv_import_format rv_import_format_from_path(const char *path)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	rv_import_format f;
	if (!dot || (slash && dot < slash) || !rv_import_format_parse(dot + 1, &f))
		return RV_IMPORT_AUTO;
	return f;
}

/* ======================================================================
 * Byte source
 * ==================================================================== */

/* Refill the file buffer when it is empty; false at end of input. */
static bool src_fill(rv_import *r)
{
	if (r->buf_pos < r->buf_len)
		return true;
	if (r->src_eof || r->src_error)
		return false;
	size_t got = fread(r->buf, 1, RV_IMPORT_READ_BUF, r->f);
	/* fread only comes back short at end of input or on an error. */
	if (got < RV_IMPORT_READ_BUF) {
		if (ferror(r->f))
			r->src_error = true;
		else
			r->src_eof = true;
	}
	r->buf_pos = 0;
	r->buf_len = got;
	return got > 0;
}

static const uint8_t *src_peek(rv_import *r, size_t *avail)
{
	if (r->mem) {
		*avail = r->mem_len - (size_t)r->offset;
		return r->mem + r->offset;
	}
	if (!src_fill(r)) {
		*avail = 0;
		return NULL;
	}
	*avail = r->buf_len - r->buf_pos;
	return r->buf + r->buf_pos;
}

static void src_consume(rv_import *r, size_t n)
{
	r->offset += n;
	if (!r->mem)
		r->buf_pos += n;
}

size_t rv_import_read(rv_import *r, void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t done = 0;
	while (done < n) {
		size_t avail;
		const uint8_t *p = src_peek(r, &avail);
		if (!avail)
			break;
		size_t take = n - done < avail ? n - done : avail;
		memcpy(d + done, p, take);
		src_consume(r, take);
		done += take;
	}
	return done;
}

rv_status rv_import_read_line(rv_import *r, size_t *len, bool *eof, rv_err *err)
{
	bool any = false;
	r->line.len = 0;
	*eof = false;
	for (;;) {
		size_t avail;
		const uint8_t *p = src_peek(r, &avail);
		if (!avail) {
			if (r->src_error)
				return rv_err_set(err, RV_EIO, "line %llu: read error: %s",
						  (unsigned long long)r->line_no + 1, strerror(errno));
			break;
		}
		any = true;
		const uint8_t *nl = memchr(p, '\n', avail);
		size_t take = nl ? (size_t)(nl - p) : avail;
		if (take > RV_IMPORT_MAX_LINE - r->line.len)
			return rv_err_set(err, RV_EINVAL, "line %llu: longer than %zu bytes",
					  (unsigned long long)r->line_no + 1, RV_IMPORT_MAX_LINE);
		rv_buf_put(&r->line, p, take);
		src_consume(r, take + (nl ? 1 : 0));
		if (nl)
			break;
	}
	if (!any) {
		*eof = true;
		*len = 0;
		return RV_OK;
	}
	r->line_no++;
	if (r->line.len && r->line.data[r->line.len - 1] == '\r')
		r->line.len--;
	/* Editors on some systems start UTF-8 text with a byte order mark. */
	if (r->line_no == 1 && r->line.len >= 3 && memcmp(r->line.data, "\xEF\xBB\xBF", 3) == 0) {
		memmove(r->line.data, r->line.data + 3, r->line.len - 3);
		r->line.len -= 3;
	}
	rv_buf_u8(&r->line, 0);
	if (r->line.failed)
		return rv_err_nomem(err);
	r->line.len--;
	*len = r->line.len;
	return RV_OK;
}

/* ======================================================================
 * Batches
 * ==================================================================== */

void rv_import_batch_init(rv_import_batch *b, size_t cap, const rv_allocator *alloc)
{
	memset(b, 0, sizeof *b);
	b->cap = cap ? cap : 1;
	b->alloc = alloc;
	rv_buf_init(&b->text, alloc);
}

void rv_import_batch_free(rv_import_batch *b)
{
	rv_dealloc(b->alloc, b->points);
	rv_dealloc(b->alloc, b->where);
	rv_dealloc(b->alloc, b->vectors);
	rv_dealloc(b->alloc, b->id_at);
	rv_dealloc(b->alloc, b->payload_at);
	rv_buf_free(&b->text);
	memset(b, 0, sizeof *b);
}

float *rv_import_row_vector(rv_import_batch *b, uint32_t dim)
{
	if (b->n == 0)
		b->dim = dim;
	size_t need;
	if (!rv_mul_ok(b->n + 1, dim, &need))
		return NULL;
	void *v = b->vectors;
	if (!rv_grow(b->alloc, &v, &b->vectors_cap, need, sizeof(float)))
		return NULL;
	b->vectors = v;
	return b->vectors + b->n * (size_t)dim;
}

/* Grow the per-row arrays together so they always have the same capacity. */
static bool grow_rows(rv_import_batch *b, size_t need)
{
	if (need <= b->rows_cap)
		return true;
	size_t cap = b->rows_cap ? b->rows_cap * 2 : 64;
	if (cap < need)
		cap = need;
	void *p;
	if (!(p = rv_realloc(b->alloc, b->points, cap * sizeof(rv_point))))
		return false;
	b->points = p;
	if (!(p = rv_realloc(b->alloc, b->where, cap * sizeof(uint64_t))))
		return false;
	b->where = p;
	if (!(p = rv_realloc(b->alloc, b->id_at, cap * sizeof(size_t))))
		return false;
	b->id_at = p;
	if (!(p = rv_realloc(b->alloc, b->payload_at, cap * sizeof(size_t))))
		return false;
	b->payload_at = p;
	b->rows_cap = cap;
	return true;
}

rv_status rv_import_row_finish(rv_import *r, rv_import_batch *b, const char *id, size_t id_len,
			       const char *payload, size_t payload_len, uint64_t where,
			       rv_err *err)
{
	const char *unit = r->format == RV_IMPORT_CSV || r->format == RV_IMPORT_JSONL ? "line" : "row";
	char num[32];
	if (!id) {
		id_len = (size_t)snprintf(num, sizeof num, "%llu",
					  (unsigned long long)(r->opts.id_offset + r->rows));
		id = num;
	}
	if (id_len == 0)
		return rv_err_set(err, RV_EINVAL, "%s %llu: empty id", unit, (unsigned long long)where);
	if (id_len > RV_MAX_ID_LEN)
		return rv_err_set(err, RV_EINVAL, "%s %llu: id is %zu bytes, longer than %d", unit,
				  (unsigned long long)where, id_len, RV_MAX_ID_LEN);
	if (memchr(id, 0, id_len))
		return rv_err_set(err, RV_EINVAL, "%s %llu: id contains a NUL byte", unit,
				  (unsigned long long)where);
	if (payload && payload_len > RV_MAX_PAYLOAD_LEN)
		return rv_err_set(err, RV_EINVAL, "%s %llu: payload is %zu bytes, more than %u", unit,
				  (unsigned long long)where, payload_len, RV_MAX_PAYLOAD_LEN);
	if (!grow_rows(b, b->n + 1))
		return rv_err_nomem(err);
	b->id_at[b->n] = b->text.len;
	rv_buf_put(&b->text, id, id_len);
	rv_buf_u8(&b->text, 0);
	b->payload_at[b->n] = SIZE_MAX;
	if (payload) {
		b->payload_at[b->n] = b->text.len;
		rv_buf_put(&b->text, payload, payload_len);
		rv_buf_u8(&b->text, 0);
	}
	if (b->text.failed) {
		/* Let the next batch start from a clean arena. */
		b->text.failed = false;
		return rv_err_nomem(err);
	}
	b->where[b->n] = where;
	b->n++;
	r->rows++;
	return RV_OK;
}

rv_status rv_import_check_dim(rv_import *r, uint32_t n, const char *what, uint64_t where,
			      rv_err *err)
{
	if (n == 0)
		return rv_err_set(err, RV_EINVAL, "%s %llu: empty vector", what,
				  (unsigned long long)where);
	if (n > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "%s %llu: %u values, more than the maximum %d", what,
				  (unsigned long long)where, n, RV_MAX_DIM);
	if (r->opts.dim && n != r->opts.dim)
		return rv_err_set(err, RV_EINVAL,
				  "%s %llu: vector has %u values, the collection has dimension %u",
				  what, (unsigned long long)where, n, r->opts.dim);
	if (r->dim && n != r->dim)
		return rv_err_set(err, RV_EINVAL,
				  "%s %llu: vector has %u values, earlier rows have %u", what,
				  (unsigned long long)where, n, r->dim);
	r->dim = n;
	return RV_OK;
}

bool rv_import_parse_float(const char *s, float *out, bool *finite)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return false;
	char *end;
	/* Rounded once, to float (strtod then a cast would round twice). */
	float f = rv_strtof(s, &end);
	if (end == s)
		return false;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end)
		return false;
	/* Out of float range (inf after the overflow) counts as non-finite:
	 * storing inf would poison every distance computed against it. */
	*finite = isfinite(f);
	*out = *finite ? f : 0.0f;
	return true;
}

/* ======================================================================
 * Readers
 * ==================================================================== */

static rv_status open_format(rv_import *r, rv_err *err)
{
	switch (r->format) {
	case RV_IMPORT_FVECS:
	case RV_IMPORT_BVECS:
		return rv_import_vecs_open(r, err);
	case RV_IMPORT_NPY:
		return rv_import_npy_open(r, err);
	case RV_IMPORT_CSV:
		return rv_import_csv_open(r, err);
	case RV_IMPORT_JSONL:
		return rv_import_jsonl_open(r, err);
	case RV_IMPORT_AUTO:
		break;
	}
	return rv_err_set(err, RV_EINVAL, "unknown import format %d", (int)r->format);
}

static rv_import *reader_new(const rv_import_opts *opts)
{
	rv_import_opts def = RV_IMPORT_OPTS_INIT;
	if (!opts)
		opts = &def;
	rv_import *r = rv_calloc(opts->allocator, 1, sizeof *r);
	if (!r)
		return NULL;
	r->a = opts->allocator;
	r->opts = *opts;
	r->format = opts->format;
	rv_buf_init(&r->line, r->a);
	return r;
}

rv_status rv_import_open(rv_import **out, const char *path, const rv_import_opts *opts, rv_err *err)
{
	rv_status st = RV_OK;
	*out = NULL;
	rv_import *r = reader_new(opts);
	if (!r)
		return rv_err_nomem(err);
	bool is_stdin = strcmp(path, "-") == 0;
	if (r->format == RV_IMPORT_AUTO) {
		r->format = is_stdin ? RV_IMPORT_AUTO : rv_import_format_from_path(path);
		if (r->format == RV_IMPORT_AUTO) {
			st = rv_err_set(err, RV_EINVAL,
					"%s: cannot tell the format from the name; use --format "
					"fvecs|bvecs|npy|csv|jsonl",
					path);
			goto done;
		}
	}
	if (!(r->buf = rv_malloc(r->a, RV_IMPORT_READ_BUF))) {
		st = rv_err_nomem(err);
		goto done;
	}
	if (is_stdin) {
		r->f = stdin;
	} else {
		r->f = fopen(path, "rb");
		if (!r->f) {
			st = rv_err_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO,
					"cannot open %s: %s", path, strerror(errno));
			goto done;
		}
		r->close_f = true;
	}
	struct stat sb;
	if (fstat(fileno(r->f), &sb) == 0) {
		if (S_ISDIR(sb.st_mode)) {
			st = rv_err_set(err, RV_EIO, "%s is a directory", path);
			goto done;
		}
		if (S_ISREG(sb.st_mode)) {
			r->size = (uint64_t)sb.st_size;
			r->size_known = true;
		}
	}
	st = open_format(r, err);
done:
	if (st != RV_OK) {
		rv_import_close(r);
		r = NULL;
	}
	*out = r;
	return st;
}

rv_status rv_import_open_mem(rv_import **out, const void *data, size_t size,
			     const rv_import_opts *opts, rv_err *err)
{
	*out = NULL;
	if (!opts || opts->format == RV_IMPORT_AUTO)
		return rv_err_set(err, RV_EINVAL, "in-memory import needs an explicit format");
	rv_import *r = reader_new(opts);
	if (!r)
		return rv_err_nomem(err);
	/* A non-NULL pointer marks the memory source even for empty input. */
	r->mem = data ? data : (const uint8_t *)"";
	r->mem_len = size;
	r->size = size;
	r->size_known = true;
	rv_status st = open_format(r, err);
	if (st != RV_OK) {
		rv_import_close(r);
		return st;
	}
	*out = r;
	return RV_OK;
}

rv_status rv_import_next(rv_import *r, rv_import_batch *b, rv_err *err)
{
	rv_status st = RV_OK;
	b->n = 0;
	b->text.len = 0;
	b->dim = r->dim;
	if (r->failed) {
		st = rv_err_set(err, RV_EINVAL, "the reader failed earlier");
		goto done;
	}
	while (!r->done && b->n < b->cap) {
		bool got = false;
		st = r->row(r, b, &got, err);
		if (st != RV_OK) {
			r->failed = true;
			b->n = 0;
			goto done;
		}
		if (!got)
			r->done = true;
	}
	for (size_t i = 0; i < b->n; i++) {
		b->points[i] = (rv_point){
			.id = (const char *)b->text.data + b->id_at[i],
			.vector = b->vectors + i * (size_t)b->dim,
			.payload = b->payload_at[i] == SIZE_MAX
					   ? NULL
					   : (const char *)b->text.data + b->payload_at[i],
		};
	}
done:
	return st;
}

bool rv_import_total(const rv_import *r, uint64_t *total)
{
	if (r->total_known)
		*total = r->total;
	return r->total_known;
}

uint64_t rv_import_rows(const rv_import *r) { return r->rows; }

uint32_t rv_import_dim(const rv_import *r) { return r->dim; }

rv_import_format rv_import_format_of(const rv_import *r) { return r->format; }

void rv_import_close(rv_import *r)
{
	if (!r)
		return;
	if (r->close_f)
		fclose(r->f);
	rv_dealloc(r->a, r->buf);
	rv_dealloc(r->a, r->row_buf);
	rv_dealloc(r->a, r->cells);
	rv_dealloc(r->a, r->cell_len);
	rv_buf_free(&r->line);
	rv_dealloc(r->a, r);
}
