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
