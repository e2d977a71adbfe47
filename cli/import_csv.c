/*
 * import_csv.c - comma-separated vectors, one per line.
 *
 * Rules (also in docs/CLI.md):
 *   - Cells are separated by commas. A cell may be double-quoted; inside
 *     quotes a comma is literal and "" is one quote. A quoted cell cannot
 *     span lines. Blanks around unquoted cells are ignored. Lines may end
 *     in \n or \r\n; blank lines are skipped.
 *   - Header: with csv_header RV_CSV_AUTO, the first non-blank line is a
 *     header (and skipped) when any of its cells after the first is not a
 *     number, or when it is a single cell that is not a number. So
 *     "id,x0,x1" and "x0,x1" are headers, "a,0.5,1" and "0.5,1" are data.
 *   - Id column: with csv_id_column RV_CSV_AUTO the first data row
 *     decides: when the expected dimension D is known, D+1 cells mean the
 *     first cell is the id, D cells mean the row is only the vector and the
 *     id is the row number (id_offset + data row index, from 0). With no
 *     expected dimension the first cell is the id. The choice then holds
 *     for every row.
 *   - Every value must be a finite number (strtod syntax). CSV rows carry
 *     no payload; use JSON Lines for payloads.
 *
 * The line is split in place (quotes removed, each cell NUL-terminated) so
 * a row costs no allocation beyond the line buffer and the cell table, which
 * is capped at RV_MAX_DIM + 1 cells.
 */
#include "import_int.h"

#define CSV_MAX_CELLS (RV_MAX_DIM + 1)

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Split r->line into r->cells / r->cell_len; *ncells gets the count. */
static rv_status split(rv_import *r, size_t len, size_t *ncells, rv_err *err)
{
	char *s = (char *)r->line.data;
	char *end = s + len;
	char *p = s;
	size_t n = 0;
	for (;;) {
		if (n == CSV_MAX_CELLS)
			return rv_err_set(err, RV_EINVAL, "line %llu: more than %d columns",
					  (unsigned long long)r->line_no, CSV_MAX_CELLS);
		if (n == r->cells_cap) {
			size_t cap = r->cells_cap;
			void *c = r->cells;
			if (!rv_grow(r->a, &c, &cap, n + 1, sizeof(char *)))
				return rv_err_nomem(err);
			r->cells = c;
			cap = r->cells_cap;
			c = r->cell_len;
			if (!rv_grow(r->a, &c, &cap, n + 1, sizeof(size_t)))
				return rv_err_nomem(err);
			r->cell_len = c;
			r->cells_cap = cap;
		}
		while (p < end && is_blank(*p))
			p++;
		char *cell = p;
		size_t clen;
		if (p < end && *p == '"') {
			/* Quoted: copy the content down over the opening quote. */
			char *w = cell;
			p++;
			for (;;) {
				if (p >= end)
					return rv_err_set(err, RV_EINVAL,
							  "line %llu, column %zu: unterminated quoted cell "
							  "(a quoted cell cannot span lines)",
							  (unsigned long long)r->line_no, n + 1);
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						*w++ = '"';
						p += 2;
						continue;
					}
					p++;
					break;
				}
				*w++ = *p++;
			}
			clen = (size_t)(w - cell);
			while (p < end && is_blank(*p))
				p++;
			if (p < end && *p != ',')
				return rv_err_set(err, RV_EINVAL,
						  "line %llu, column %zu: text after the closing quote",
						  (unsigned long long)r->line_no, n + 1);
		} else {
			while (p < end && *p != ',')
				p++;
			char *e = p;
			while (e > cell && is_blank(e[-1]))
				e--;
			clen = (size_t)(e - cell);
		}
		r->cells[n] = cell;
		r->cell_len[n] = clen;
		n++;
		bool more = p < end; /* p is at a comma */
		cell[clen] = 0;      /* at or before the comma, never past it */
		if (!more)
			break;
		p++;
	}
	*ncells = n;
	return RV_OK;
}

static bool is_number(const char *s)
{
	float f;
	bool finite;
	return rv_import_parse_float(s, &f, &finite);
}

static bool looks_like_header(const rv_import *r, size_t n)
{
	if (n == 1)
		return !is_number(r->cells[0]);
	for (size_t i = 1; i < n; i++)
		if (!is_number(r->cells[i]))
			return true;
	return false;
}

static rv_status csv_row(rv_import *r, rv_import_batch *b, bool *got, rv_err *err)
{
	rv_status st;
	size_t len, n = 0;
	bool eof;
	for (;;) {
		if ((st = rv_import_read_line(r, &len, &eof, err)) != RV_OK)
			return st;
		if (eof) {
			*got = false;
			return RV_OK;
		}
		const char *s = (const char *)r->line.data;
		size_t i = 0;
		while (i < len && (is_blank(s[i])))
			i++;
		if (i == len)
			continue; /* blank line */
		if ((st = split(r, len, &n, err)) != RV_OK)
			return st;
		if (r->csv_header == RV_CSV_AUTO)
			r->csv_header = looks_like_header(r, n) ? RV_CSV_YES : RV_CSV_NO;
		if (r->csv_header == RV_CSV_YES) {
			/* Only the first line can be the header. */
			r->csv_header = RV_CSV_NO;
			continue;
		}
		break;
	}
	if (r->csv_id_column == RV_CSV_AUTO) {
		uint32_t d = r->opts.dim ? r->opts.dim : r->dim;
		if (!d)
			r->csv_id_column = RV_CSV_YES;
		else if (n == (size_t)d + 1)
			r->csv_id_column = RV_CSV_YES;
		else if (n == d)
			r->csv_id_column = RV_CSV_NO;
		else
			return rv_err_set(err, RV_EINVAL,
					  "line %llu: %zu columns; expected %u (the vector) or %u (id, "
					  "then the vector)",
					  (unsigned long long)r->line_no, n, d, d + 1);
	}
	size_t first = r->csv_id_column == RV_CSV_YES ? 1 : 0;
	if (n <= first)
		return rv_err_set(err, RV_EINVAL, "line %llu: an id but no vector values",
				  (unsigned long long)r->line_no);
	if ((st = rv_import_check_dim(r, (uint32_t)(n - first), "line", r->line_no, err)) != RV_OK)
		return st;
	float *v = rv_import_row_vector(b, r->dim);
	if (!v)
		return rv_err_nomem(err);
	for (size_t i = first; i < n; i++) {
		bool finite;
		if (r->cell_len[i] == 0)
			return rv_err_set(err, RV_EINVAL, "line %llu, column %zu: empty cell",
					  (unsigned long long)r->line_no, i + 1);
		if (!rv_import_parse_float(r->cells[i], &v[i - first], &finite))
			return rv_err_set(err, RV_EINVAL, "line %llu, column %zu: '%.40s' is not a number",
					  (unsigned long long)r->line_no, i + 1, r->cells[i]);
		if (!finite)
			return rv_err_set(err, RV_EINVAL, "line %llu, column %zu: '%.40s' is not a finite float",
					  (unsigned long long)r->line_no, i + 1, r->cells[i]);
	}
	*got = true;
	if (first)
		return rv_import_row_finish(r, b, r->cells[0], r->cell_len[0], NULL, 0, r->line_no, err);
	return rv_import_row_finish(r, b, NULL, 0, NULL, 0, r->line_no, err);
}

rv_status rv_import_csv_open(rv_import *r, rv_err *err)
{
	r->row = csv_row;
	r->csv_header = r->opts.csv_header;
	r->csv_id_column = r->opts.csv_id_column;
	if (r->csv_header != RV_CSV_AUTO && r->csv_header != RV_CSV_YES && r->csv_header != RV_CSV_NO)
		return rv_err_set(err, RV_EINVAL, "csv_header must be -1, 0 or 1, not %d", r->csv_header);
	if (r->csv_id_column != RV_CSV_AUTO && r->csv_id_column != RV_CSV_YES &&
	    r->csv_id_column != RV_CSV_NO)
		return rv_err_set(err, RV_EINVAL, "csv_id_column must be -1, 0 or 1, not %d",
				  r->csv_id_column);
	return RV_OK;
}
