/*
 * output.c - JSON writing and query-vector parsing for the commands.
 *
 * Floats are written with %.9g: nine significant digits are enough for any
 * float32 to read back bit for bit, which lets scripts compare scores and
 * vectors exactly.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

void rv_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

void rv_json_float(FILE *f, float v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", (double)v);
	else
		fputs("null", f);
}

void rv_json_floats(FILE *f, const float *v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		rv_json_float(f, v[i]);
	}
	fputc(']', f);
}

static bool finite_float(double d) { return isfinite(d) && fabs(d) <= 3.4028234663852886e38; }

static rv_status parse_json_vector(const char *text, float **out, size_t *n, rv_err *err)
{
	rv_status st = RV_OK;
	float *v = NULL;
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(text, strlen(text), &end, 0);
	if (!j) {
		st = rv_err_set(err, RV_EINVAL, "invalid JSON at byte %zu",
				end ? (size_t)(end - text) + 1 : (size_t)1);
		goto done;
	}
	while (end && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end && *end) {
		st = rv_err_set(err, RV_EINVAL, "unexpected text after the array at byte %zu",
				(size_t)(end - text) + 1);
		goto done;
	}
	if (!cJSON_IsArray(j)) {
		st = rv_err_set(err, RV_EINVAL, "expected a JSON array of numbers");
		goto done;
	}
	size_t count = (size_t)cJSON_GetArraySize(j);
	if (count == 0 || count > RV_MAX_DIM) {
		st = rv_err_set(err, RV_EINVAL, "%zu values; a vector has 1..%d", count, RV_MAX_DIM);
		goto done;
	}
	if (!(v = rv_malloc(NULL, count * sizeof(float)))) {
		st = rv_err_nomem(err);
		goto done;
	}
	size_t i = 0;
	for (const cJSON *e = j->child; e; e = e->next, i++) {
		if (!cJSON_IsNumber(e)) {
			st = rv_err_set(err, RV_EINVAL, "element %zu is not a number", i);
			goto done;
		}
		if (!finite_float(e->valuedouble)) {
			st = rv_err_set(err, RV_EINVAL, "element %zu (%g) is not a finite float", i,
					e->valuedouble);
			goto done;
		}
		v[i] = (float)e->valuedouble;
	}
	*out = v;
	*n = count;
	v = NULL;
done:
	rv_dealloc(NULL, v);
	cJSON_Delete(j);
	return st;
}

static rv_status parse_bare_vector(const char *text, float **out, size_t *n, rv_err *err)
{
	size_t cap = 1;
	for (const char *p = text; *p; p++)
		cap += *p == ',';
	if (cap > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "%zu values; a vector has 1..%d", cap, RV_MAX_DIM);
	float *v = rv_malloc(NULL, cap * sizeof(float));
	if (!v)
		return rv_err_nomem(err);
	size_t i = 0;
	const char *p = text;
	for (;;) {
		char *end;
		errno = 0;
		double d = strtod(p, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (end == p || (*end != ',' && *end)) {
			rv_dealloc(NULL, v);
			return rv_err_set(err, RV_EINVAL, "element %zu is not a number", i);
		}
		if (!finite_float(d)) {
			rv_dealloc(NULL, v);
			return rv_err_set(err, RV_EINVAL, "element %zu (%g) is not a finite float", i, d);
		}
		v[i++] = (float)d;
		if (!*end)
			break;
		p = end + 1;
	}
	*out = v;
	*n = i;
	return RV_OK;
}

rv_status rv_parse_vector(const char *text, float **out, size_t *n, rv_err *err)
{
	const char *p = text;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (!*p)
		return rv_err_set(err, RV_EINVAL, "empty vector");
	/* Anything that starts like JSON is parsed as JSON, so an object gets
	 * "expected a JSON array" rather than a complaint about its first
	 * character. */
	if (*p == '[' || *p == '{' || *p == '"')
		return parse_json_vector(p, out, n, err);
	return parse_bare_vector(p, out, n, err);
}

/* ======================================================================
 * Search ids of the command line
 *
 * A search id of the library names a search of one open handle, and every
 * `ruvector` command is its own process with its own handle. So the ids
 * `search --json` prints carry the query itself: "q1." then the query's
 * float32 values, little-endian, in unpadded base64url. `ruvector
 * feedback` turns such an id back into the query and gives feedback by
 * vector (the current top 10 for it stand for the results shown).
 * ==================================================================== */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void rv_cli_search_id(FILE *f, const float *q, size_t dim)
{
	fputs("\"" RV_CLI_SEARCH_ID_PREFIX, f);
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < dim; i++) {
		uint32_t u;
		memcpy(&u, &q[i], 4);
		for (int b = 0; b < 4; b++) {
			acc = (acc << 8) | ((u >> (8 * b)) & 0xFF);
			bits += 8;
			while (bits >= 6) {
				bits -= 6;
				fputc(b64url[(acc >> bits) & 63], f);
			}
		}
	}
	if (bits > 0)
		fputc(b64url[(acc << (6 - bits)) & 63], f);
	fputc('"', f);
}

rv_status rv_cli_parse_search_id(const char *s, float **out, size_t *n, rv_err *err)
{
	rv_status st = RV_OK;
	uint8_t *bytes = NULL;
	*out = NULL;
	*n = 0;
	size_t plen = strlen(RV_CLI_SEARCH_ID_PREFIX);
	if (strncmp(s, RV_CLI_SEARCH_ID_PREFIX, plen) != 0) {
		st = rv_err_set(err, RV_EINVAL,
				"search id '%.40s' was not printed by 'ruvector search --json' (those start "
				"with \"" RV_CLI_SEARCH_ID_PREFIX "\"; the ids of a library handle or a server "
				"name a search of that process)", s);
		goto done;
	}
	s += plen;
	size_t len = strlen(s);
	/* 4 bytes per value are 32 bits: whole values only, so the length
	 * of the text is 32 * count / 6 rounded up. */
	size_t count = len * 6 / 32;
	if (count == 0 || (count * 32 + 5) / 6 != len) {
		st = rv_err_set(err, RV_EINVAL, "search id: %zu characters after \"" RV_CLI_SEARCH_ID_PREFIX
				"\" do not encode whole float32 values", len);
		goto done;
	}
	if (!(bytes = rv_malloc(NULL, count * 4))) {
		st = rv_err_set(err, RV_ENOMEM, "out of memory");
		goto done;
	}
	uint32_t acc = 0;
	int bits = 0;
	size_t nb = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = memchr(b64url, s[i], 64);
		if (!p || !s[i]) {
			st = rv_err_set(err, RV_EINVAL, "search id: character %zu ('%c') is not base64url",
					plen + i + 1, s[i]);
			goto done;
		}
		acc = (acc << 6) | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (nb < count * 4)
				bytes[nb++] = (uint8_t)(acc >> bits);
		}
	}
	float *v = (float *)bytes;
	for (size_t i = 0; i < count; i++) {
		uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
			     (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
		memcpy(&v[i], &u, 4);
		if (!isfinite(v[i])) {
			st = rv_err_set(err, RV_EINVAL, "search id: value %zu is not finite", i);
			goto done;
		}
	}
	*out = v;
	*n = count;
	bytes = NULL;
done:
	rv_dealloc(NULL, bytes);
	return st;
}
