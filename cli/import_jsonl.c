/*
 * import_jsonl.c - JSON Lines (also called NDJSON): one JSON value per line.
 *
 *   {"id": "doc-1", "vector": [0.1, 0.2], "payload": {"lang": "en"}}
 *   {"id": 7, "vector": [0.3, 0.4], "metadata": {"lang": "de"}}
 *   [0.5, 0.6]
 *
 * An object needs "vector" (an array of numbers). "id" is a string or an
 * integer (|id| <= 2^53, written in decimal); without it the row is
 * numbered like the binary formats. "payload" (or its synonym "metadata")
 * is an object or null; giving both is an error. Other keys are ignored. A
 * bare array is a vector with a numbered id and no payload. Blank lines are
 * skipped.
 *
 * Lines are parsed one at a time with cJSON; an invalid line is reported
 * with its line and column (1-based, in bytes) and the text there.
 */
#include "import_int.h"

#include <math.h>

#include <cjson/cJSON.h>

static const char *type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	return "an unknown value";
}

/* Up to 24 bytes of text at p for a message, non-printable bytes as '?'. */
static void excerpt(char *out, size_t cap, const char *p, const char *end)
{
	size_t n = 0;
	while (p < end && n + 1 < cap && n < 24) {
		unsigned char c = (unsigned char)*p++;
		out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = 0;
}

static rv_status jsonl_row(rv_import *r, rv_import_batch *b, bool *got, rv_err *err)
{
	rv_status st = RV_OK;
	cJSON *root = NULL;
	char *payload = NULL;
	size_t len;
	bool eof;
	const char *s;
	unsigned long long ln;
	for (;;) {
		if ((st = rv_import_read_line(r, &len, &eof, err)) != RV_OK)
			goto done;
		if (eof) {
			*got = false;
			goto done;
		}
		s = (const char *)r->line.data;
		size_t i = 0;
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i < len)
			break;
	}
	ln = (unsigned long long)r->line_no;
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (!root) {
		char near[32];
		size_t col = end && end >= s && end <= s + len ? (size_t)(end - s) : 0;
		excerpt(near, sizeof near, s + col, s + len);
		st = rv_err_set(err, RV_EINVAL, "line %llu, column %zu: invalid JSON%s%s%s", ln, col + 1,
				*near ? " near '" : " (unexpected end)", near, *near ? "'" : "");
		goto done;
	}
	/* cJSON stops after the first value; only blanks may follow it. */
	while (end < s + len && (*end == ' ' || *end == '\t'))
		end++;
	if (end < s + len) {
		st = rv_err_set(err, RV_EINVAL, "line %llu, column %zu: unexpected text after the JSON value",
				ln, (size_t)(end - s) + 1);
		goto done;
	}

	const cJSON *vec = NULL, *id = NULL, *pl = NULL;
	if (cJSON_IsArray(root)) {
		vec = root;
	} else if (cJSON_IsObject(root)) {
		vec = cJSON_GetObjectItemCaseSensitive(root, "vector");
		id = cJSON_GetObjectItemCaseSensitive(root, "id");
		pl = cJSON_GetObjectItemCaseSensitive(root, "payload");
		const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
		if (pl && meta) {
			st = rv_err_set(err, RV_EINVAL,
					"line %llu: both \"payload\" and \"metadata\"; give one", ln);
			goto done;
		}
		if (!pl)
			pl = meta;
		if (!vec) {
			st = rv_err_set(err, RV_EINVAL, "line %llu: no \"vector\" key", ln);
			goto done;
		}
		if (!cJSON_IsArray(vec)) {
			st = rv_err_set(err, RV_EINVAL, "line %llu: \"vector\" is %s, not an array", ln,
					type_name(vec));
			goto done;
		}
	} else {
		st = rv_err_set(err, RV_EINVAL, "line %llu: expected a JSON object or array, got %s", ln,
				type_name(root));
		goto done;
	}

	int n = cJSON_GetArraySize(vec);
	if ((st = rv_import_check_dim(r, (uint32_t)n, "line", r->line_no, err)) != RV_OK)
		goto done;
	float *v = rv_import_row_vector(b, r->dim);
	if (!v) {
		st = rv_err_nomem(err);
		goto done;
	}
	int i = 0;
	for (const cJSON *e = vec->child; e; e = e->next, i++) {
		if (!cJSON_IsNumber(e)) {
			st = rv_err_set(err, RV_EINVAL, "line %llu: vector[%d] is %s, not a number", ln, i,
					type_name(e));
			goto done;
		}
		double d = e->valuedouble;
		if (!isfinite(d) || fabs(d) > 3.4028234663852886e38) {
			st = rv_err_set(err, RV_EINVAL, "line %llu: vector[%d] = %g is not a finite float", ln,
					i, d);
			goto done;
		}
		v[i] = (float)d;
	}

	char num[32];
	const char *idp = NULL;
	size_t id_len = 0;
	if (id && cJSON_IsString(id)) {
		idp = id->valuestring;
		id_len = strlen(idp);
	} else if (id && cJSON_IsNumber(id)) {
		double d = id->valuedouble;
		/* Beyond 2^53 a double no longer holds every integer, so the id
		 * written back would not be the one in the file. */
		if (d != floor(d) || fabs(d) > 9007199254740992.0) {
			st = rv_err_set(err, RV_EINVAL,
					"line %llu: id %.17g is not an integer up to 2^53; quote it as a "
					"string",
					ln, d);
			goto done;
		}
		id_len = (size_t)snprintf(num, sizeof num, "%lld", (long long)d);
		idp = num;
	} else if (id && !cJSON_IsNull(id)) {
		st = rv_err_set(err, RV_EINVAL, "line %llu: id is %s; need a string or an integer", ln,
				type_name(id));
		goto done;
	}

	size_t payload_len = 0;
	if (pl && !cJSON_IsNull(pl)) {
		if (!cJSON_IsObject(pl)) {
			st = rv_err_set(err, RV_EINVAL, "line %llu: payload is %s, not a JSON object", ln,
					type_name(pl));
			goto done;
		}
		if (!(payload = cJSON_PrintUnformatted(pl))) {
			st = rv_err_nomem(err);
			goto done;
		}
		payload_len = strlen(payload);
	}
	*got = true;
	st = rv_import_row_finish(r, b, idp, id_len, payload, payload_len, r->line_no, err);
done:
	cJSON_free(payload);
	cJSON_Delete(root);
	return st;
}

rv_status rv_import_jsonl_open(rv_import *r, rv_err *err)
{
	r->row = jsonl_row;
	return RV_OK;
}
