/*
 * import_npy.c - NumPy .npy arrays.
 *
 * Layout: the magic "\x93NUMPY", a major and minor version byte, the header
 * length (uint16 little-endian in version 1.0, uint32 in 2.0 and 3.0), then
 * the header: a Python dict literal such as
 *
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
 *
 * and then the raw array. Accepted: dtype '<f4' (float32) or '<f8' (float64,
 * narrowed to float32; values beyond the float range are an error), C order,
 * 2-D shape (rows, dim). The header length is capped (NumPy itself refuses
 * headers over 10000 bytes by default) before the header is read, and the
 * shape is checked against the data size when the size is known, so neither
 * can make the reader allocate or wait for data that is not there.
 */
#include "import_int.h"

#include <errno.h>
#include <math.h>

#define NPY_MAX_HEADER 65536

/* ======================================================================
 * The header dict
 * ==================================================================== */

typedef struct npy_header {
	char descr[16];
	bool has_descr, has_order, has_shape;
	bool fortran;
	uint64_t shape[3];
	int ndim; /* entries in the shape tuple (3 means "3 or more") */
} npy_header;

typedef struct npy_parser {
	const char *p, *end, *start;
	rv_err *err;
} npy_parser;

static void skip_ws(npy_parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static rv_status fail(npy_parser *ps, const char *what)
{
	return rv_err_set(ps->err, RV_EINVAL, "npy: bad header at byte %zu: %s",
			  (size_t)(ps->p - ps->start), what);
}

/* A quoted string (single or double quotes, no escapes: NumPy writes none
 * in the keys and dtypes it produces). */
static rv_status parse_str(npy_parser *ps, const char **s, size_t *n)
{
	if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
		return fail(ps, "expected a quoted string");
	char q = *ps->p++;
	*s = ps->p;
	while (ps->p < ps->end && *ps->p != q)
		ps->p++;
	if (ps->p >= ps->end)
		return fail(ps, "unterminated string");
	*n = (size_t)(ps->p - *s);
	ps->p++;
	return RV_OK;
}

static bool word(npy_parser *ps, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
		ps->p += n;
		return true;
	}
	return false;
}

static rv_status parse_shape(npy_parser *ps, npy_header *h)
{
	if (ps->p >= ps->end || *ps->p != '(')
		return fail(ps, "'shape' must be a tuple");
	ps->p++;
	h->ndim = 0;
	for (;;) {
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ')') {
			ps->p++;
			return RV_OK;
		}
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "shape entries must be non-negative integers");
		uint64_t v = 0;
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return fail(ps, "shape entry too large");
			v = v * 10 + (uint64_t)(*ps->p++ - '0');
		}
		/* Python 2 wrote longs as 1000L. */
		if (ps->p < ps->end && *ps->p == 'L')
			ps->p++;
		if (h->ndim < 3)
			h->shape[h->ndim++] = v;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
			ps->p++;
		else if (ps->p >= ps->end || *ps->p != ')')
			return fail(ps, "expected ',' or ')' in the shape");
	}
}

static rv_status parse_header(const char *text, size_t len, npy_header *h, rv_err *err)
{
	npy_parser ps = { text, text + len, text, err };
	rv_status st;
	memset(h, 0, sizeof *h);
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{')
		return fail(&ps, "expected '{'");
	ps.p++;
	for (;;) {
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == '}')
			break;
		const char *key;
		size_t kn;
		if ((st = parse_str(&ps, &key, &kn)) != RV_OK)
			return st;
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != ':')
			return fail(&ps, "expected ':'");
		ps.p++;
		skip_ws(&ps);
		if (kn == 5 && memcmp(key, "descr", 5) == 0) {
			const char *s;
			size_t n;
			if ((st = parse_str(&ps, &s, &n)) != RV_OK)
				return st;
			if (n >= sizeof h->descr)
				n = sizeof h->descr - 1;
			memcpy(h->descr, s, n);
			h->descr[n] = 0;
			h->has_descr = true;
		} else if (kn == 13 && memcmp(key, "fortran_order", 13) == 0) {
			if (word(&ps, "True"))
				h->fortran = true;
			else if (word(&ps, "False"))
				h->fortran = false;
			else
				return fail(&ps, "'fortran_order' must be True or False");
			h->has_order = true;
		} else if (kn == 5 && memcmp(key, "shape", 5) == 0) {
			if ((st = parse_shape(&ps, h)) != RV_OK)
				return st;
			h->has_shape = true;
		} else {
			return rv_err_set(err, RV_EINVAL, "npy: unexpected header key '%.*s'",
					  (int)(kn > 32 ? 32 : kn), key);
		}
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ',')
			ps.p++;
		else if (ps.p >= ps.end || *ps.p != '}')
			return fail(&ps, "expected ',' or '}'");
	}
	if (!h->has_descr || !h->has_order || !h->has_shape)
		return rv_err_set(err, RV_EINVAL, "npy: header lacks '%s'",
				  !h->has_descr ? "descr" : !h->has_order ? "fortran_order" : "shape");
	return RV_OK;
}

/* ======================================================================
 * Rows
 * ==================================================================== */

static rv_status npy_row(rv_import *r, rv_import_batch *b, bool *got, rv_err *err)
{
	uint64_t row = r->rows;
	if (row >= r->total) {
		*got = false;
		return RV_OK;
	}
	if (rv_import_read(r, r->row_buf, r->row_bytes) < r->row_bytes) {
		if (r->src_error)
			return rv_err_set(err, RV_EIO, "npy: row %llu: read error: %s",
					  (unsigned long long)row, strerror(errno));
		return rv_err_set(err, RV_EINVAL,
				  "npy: row %llu: truncated: the header says %llu rows but the data ends",
				  (unsigned long long)row, (unsigned long long)r->total);
	}
	float *v = rv_import_row_vector(b, r->dim);
	if (!v)
		return rv_err_nomem(err);
	for (uint32_t i = 0; i < r->dim; i++) {
		double d;
		if (r->npy_f64) {
			uint64_t u = rv_get_u64(r->row_buf + 8 * (size_t)i);
			memcpy(&d, &u, 8);
		} else {
			uint32_t u = rv_get_u32(r->row_buf + 4 * (size_t)i);
			float f;
			memcpy(&f, &u, 4);
			d = f;
		}
		if (!isfinite(d) || fabs(d) > 3.4028234663852886e38)
			return rv_err_set(err, RV_EINVAL, "npy: row %llu: value %u is not a finite float (%g)",
					  (unsigned long long)row, i, d);
		v[i] = (float)d;
	}
	*got = true;
	return rv_import_row_finish(r, b, NULL, 0, NULL, 0, row, err);
}

rv_status rv_import_npy_open(rv_import *r, rv_err *err)
{
	rv_status st = RV_OK;
	char *text = NULL;
	uint8_t pre[12];
	r->row = npy_row;
	size_t n = rv_import_read(r, pre, 10);
	if (n < 6 || memcmp(pre, "\x93NUMPY", 6) != 0) {
		st = rv_err_set(err, RV_EINVAL, "npy: bad magic: not a NumPy .npy file");
		goto done;
	}
	if (n < 10) {
		st = rv_err_set(err, RV_EINVAL, "npy: truncated header: %zu bytes", n);
		goto done;
	}
	uint8_t major = pre[6], minor = pre[7];
	uint64_t hlen;
	if (major == 1) {
		hlen = rv_get_u16(pre + 8);
	} else if (major == 2 || major == 3) {
		if (rv_import_read(r, pre + 10, 2) < 2) {
			st = rv_err_set(err, RV_EINVAL, "npy: truncated header length");
			goto done;
		}
		hlen = rv_get_u32(pre + 8);
	} else {
		st = rv_err_set(err, RV_EINVAL, "npy: unsupported format version %u.%u (need 1.0, 2.0 or 3.0)",
				major, minor);
		goto done;
	}
	if (hlen > NPY_MAX_HEADER) {
		st = rv_err_set(err, RV_EINVAL, "npy: header length %llu exceeds the limit %d",
				(unsigned long long)hlen, NPY_MAX_HEADER);
		goto done;
	}
	if (!(text = rv_malloc(r->a, (size_t)hlen + 1))) {
		st = rv_err_nomem(err);
		goto done;
	}
	if (rv_import_read(r, text, (size_t)hlen) < hlen) {
		st = rv_err_set(err, RV_EINVAL, "npy: truncated header: %llu bytes announced",
				(unsigned long long)hlen);
		goto done;
	}
	text[hlen] = 0;
	npy_header h;
	if ((st = parse_header(text, (size_t)hlen, &h, err)) != RV_OK)
		goto done;
	if (strcmp(h.descr, "<f4") == 0) {
		r->npy_f64 = false;
	} else if (strcmp(h.descr, "<f8") == 0) {
		r->npy_f64 = true;
	} else {
		st = rv_err_set(err, RV_EINVAL,
				"npy: unsupported dtype '%s': need '<f4' (float32) or '<f8' (float64)",
				h.descr);
		goto done;
	}
	if (h.fortran) {
		st = rv_err_set(err, RV_EINVAL,
				"npy: fortran_order is True: save the array in C order "
				"(numpy.ascontiguousarray)");
		goto done;
	}
	if (h.ndim != 2) {
		st = rv_err_set(err, RV_EINVAL, "npy: the array has %s%d dimensions; need 2 (rows, dim)",
				h.ndim >= 3 ? "at least " : "", h.ndim);
		goto done;
	}
	if (h.shape[1] == 0 || h.shape[1] > RV_MAX_DIM) {
		st = rv_err_set(err, RV_EINVAL, "npy: shape (%llu, %llu): dimension outside 1..%d",
				(unsigned long long)h.shape[0], (unsigned long long)h.shape[1], RV_MAX_DIM);
		goto done;
	}
	if ((st = rv_import_check_dim(r, (uint32_t)h.shape[1], "row", 0, err)) != RV_OK)
		goto done;
	r->row_bytes = (size_t)h.shape[1] * (r->npy_f64 ? 8 : 4);
	if (r->size_known) {
		uint64_t data = r->size - r->offset;
		/* Divide rather than multiply: the row count is untrusted. */
		if (data % r->row_bytes != 0 || data / r->row_bytes != h.shape[0]) {
			st = rv_err_set(err, RV_EINVAL,
					"npy: the header says shape (%llu, %llu) but the file has %llu "
					"data bytes (%llu rows of %zu bytes)",
					(unsigned long long)h.shape[0], (unsigned long long)h.shape[1],
					(unsigned long long)data,
					(unsigned long long)(data / r->row_bytes), r->row_bytes);
			goto done;
		}
	}
	r->total = h.shape[0];
	r->total_known = true;
	if (!(r->row_buf = rv_malloc(r->a, r->row_bytes)))
		st = rv_err_nomem(err);
done:
	rv_dealloc(r->a, text);
	return st;
}
