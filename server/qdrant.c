/*
 * qdrant.c - Qdrant's JSON shapes <-> the library: point ids, vectors,
 * upsert bodies, payload selection, and a small JSON writer for
 * responses.
 *
 * Ids. The library's ids are strings; Qdrant's are unsigned integers or
 * UUIDs. An integer id is stored as its decimal string, and on the way out
 * any id that is a canonical decimal u64 (no sign, no leading zero, at most
 * 2^64-1) is written as a JSON number, everything else as a string. So 7
 * and "7" name the same point, and ids written by other front ends that
 * happen to be decimal come back as numbers. cJSON reads numbers as
 * doubles, so integer ids above 2^53 are refused (send them as strings);
 * written ids are exact at any size because they are printed from the
 * stored string. UUID strings in the hyphenated form are lower-cased, as
 * Qdrant does, so clients that send upper case find their points again.
 *
 * Filters are translated in qfilter.c.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

/* ======================================================================
 * JSON writer
 * ==================================================================== */

void rv_jw_raw(rv_buf *b, const char *s)
{
	rv_buf_put(b, s, strlen(s));
}

void rv_jw_printf(rv_buf *b, const char *fmt, ...)
{
	char small[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof small) {
		rv_buf_put(b, small, (size_t)n);
		return;
	}
	if (!rv_buf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void rv_jw_str(rv_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	rv_buf_u8(b, '"');
	const char *run = s;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		rv_buf_put(b, run, (size_t)(s - run));
		run = s + 1;
		char esc[7] = { '\\', 0, 0, 0, 0, 0, 0 };
		size_t n = 2;
		switch (ch) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			n = 6;
		}
		rv_buf_put(b, esc, n);
	}
	rv_buf_put(b, run, (size_t)(s - run));
	rv_buf_u8(b, '"');
}

void rv_jw_float(rv_buf *b, float v)
{
	if (!isfinite(v))
		rv_jw_raw(b, "null");
	else
		rv_jw_printf(b, "%.9g", (double)v);
}

void rv_jw_double(rv_buf *b, double v)
{
	if (!isfinite(v))
		rv_jw_raw(b, "null");
	else
		rv_jw_printf(b, "%.17g", v);
}

void rv_jw_u64(rv_buf *b, uint64_t v)
{
	rv_jw_printf(b, "%llu", (unsigned long long)v);
}

void rv_jw_floats(rv_buf *b, const float *v, size_t n)
{
	rv_buf_u8(b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			rv_buf_u8(b, ',');
		rv_jw_float(b, v[i]);
	}
	rv_buf_u8(b, ']');
}

void rv_jw_json(rv_buf *b, const cJSON *x)
{
	char *s = cJSON_PrintUnformatted(x);
	if (!s) {
		b->failed = true;
		return;
	}
	rv_jw_raw(b, s);
	cJSON_free(s);
}

bool rv_q_id_is_u64(const char *s)
{
	static const char max[] = "18446744073709551615";
	size_t n = strlen(s);
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	/* Same length as the maximum: digit strings compare like numbers. */
	return n < 20 || strcmp(s, max) <= 0;
}

void rv_jw_id(rv_buf *b, const char *id)
{
	if (rv_q_id_is_u64(id))
		rv_jw_raw(b, id);
	else
		rv_jw_str(b, id);
}

/* ======================================================================
 * Small readers
 * ==================================================================== */

const char *rv_q_type_name(const cJSON *v)
{
	if (!v)
		return "nothing";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an unknown value";
}

rv_status rv_q_bool(bool *out, const cJSON *obj, const char *key, bool dflt, const char *field, rv_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return RV_OK;
	}
	if (!cJSON_IsBool(v))
		return rv_err_set(err, RV_EINVAL, "%s%s%s: expected true or false, got %s", field,
				  *field ? "." : "", key, rv_q_type_name(v));
	*out = cJSON_IsTrue(v);
	return RV_OK;
}

rv_status rv_q_uint(uint64_t *out, const cJSON *obj, const char *key, uint64_t dflt, uint64_t lo, uint64_t hi,
		    const char *field, rv_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *dot = *field ? "." : "";
	if (!v || cJSON_IsNull(v)) {
		*out = dflt;
		return RV_OK;
	}
	if (!cJSON_IsNumber(v))
		return rv_err_set(err, RV_EINVAL, "%s%s%s: expected an integer, got %s", field, dot, key,
				  rv_q_type_name(v));
	double d = v->valuedouble;
	if (!(d >= (double)lo && d <= (double)hi) || floor(d) != d)
		return rv_err_set(err, RV_EINVAL, "%s%s%s: expected an integer in %llu..%llu, got %g", field, dot,
				  key, (unsigned long long)lo, (unsigned long long)hi, d);
	*out = (uint64_t)d;
	return RV_OK;
}

/* ======================================================================
 * Ids
 * ==================================================================== */

static bool is_hyphenated_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

static rv_status id_string(char *out, const char *s, const char *field, rv_err *err)
{
	size_t n = strlen(s);
	if (n == 0)
		return rv_err_set(err, RV_EINVAL, "%s: the empty string is not an id", field);
	if (n > RV_Q_ID_MAX)
		return rv_err_set(err, RV_EINVAL, "%s: id of %zu bytes, at most %d", field, n, RV_Q_ID_MAX);
	memcpy(out, s, n + 1);
	if (is_hyphenated_uuid(out))
		for (size_t i = 0; i < n; i++)
			out[i] = (char)tolower((unsigned char)out[i]);
	return RV_OK;
}

rv_status rv_q_id(char *out, const cJSON *v, const char *field, rv_err *err)
{
	if (cJSON_IsString(v))
		return id_string(out, v->valuestring, field, err);
	if (!cJSON_IsNumber(v))
		return rv_err_set(err, RV_EINVAL, "%s: expected an unsigned integer or a string id, got %s", field,
				  rv_q_type_name(v));
	double d = v->valuedouble;
	/* 2^53: the largest range in which every integer is a double. */
	if (!(d >= 0) || floor(d) != d)
		return rv_err_set(err, RV_EINVAL, "%s: %g is not an unsigned integer", field, d);
	if (d > 9007199254740992.0)
		return rv_err_set(err, RV_EINVAL,
				  "%s: integer ids above 9007199254740992 are not exact in JSON numbers here; "
				  "send the id as a string",
				  field);
	snprintf(out, RV_Q_ID_MAX + 1, "%llu", (unsigned long long)d);
	return RV_OK;
}

rv_status rv_q_id_text(char *out, const char *text, const char *field, rv_err *err)
{
	return id_string(out, text, field, err);
}

/* ======================================================================
 * Vectors and metrics
 * ==================================================================== */

rv_status rv_q_vector(float *out, uint32_t dim, rv_metric metric, const cJSON *v, const char *field, rv_err *err)
{
	if (cJSON_IsObject(v))
		return rv_err_set(err, RV_EINVAL,
				  "%s: named vectors are not supported; expected an array of %u numbers", field, dim);
	if (!cJSON_IsArray(v))
		return rv_err_set(err, RV_EINVAL, "%s: expected an array of %u numbers, got %s", field, dim,
				  rv_q_type_name(v));
	size_t n = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, v) n++;
	if (n != dim)
		return rv_err_set(err, RV_EINVAL, "%s: expected %u numbers, got %zu", field, dim, n);
	size_t i = 0;
	bool nonzero = false;
	cJSON_ArrayForEach(x, v)
	{
		if (!cJSON_IsNumber(x))
			return rv_err_set(err, RV_EINVAL, "%s[%zu]: expected a number, got %s", field, i,
					  rv_q_type_name(x));
		float f = (float)x->valuedouble;
		if (!isfinite(f))
			return rv_err_set(err, RV_EINVAL, "%s[%zu]: %g is not a finite 32-bit float", field, i,
					  x->valuedouble);
		nonzero |= f != 0.0f;
		out[i++] = f;
	}
	if (metric == RV_METRIC_COSINE && !nonzero)
		return rv_err_set(err, RV_EINVAL, "%s: the zero vector has no cosine direction", field);
	return RV_OK;
}

bool rv_q_metric_parse(rv_metric *out, const char *name)
{
	if (!strcasecmp(name, "Cosine"))
		*out = RV_METRIC_COSINE;
	else if (!strcasecmp(name, "Euclid"))
		*out = RV_METRIC_L2;
	else if (!strcasecmp(name, "Dot"))
		*out = RV_METRIC_IP;
	else
		return false;
	return true;
}

const char *rv_q_metric_name(rv_metric m)
{
	switch (m) {
	case RV_METRIC_COSINE: return "Cosine";
	case RV_METRIC_IP: return "Dot";
	case RV_METRIC_L2: return "Euclid";
	}
	return "Euclid";
}

double rv_q_score(rv_metric m, float dist)
{
	/* Qdrant reports similarity for Cosine and Dot (higher is nearer)
	 * and the distance itself for Euclid. */
	switch (m) {
	case RV_METRIC_COSINE: return 1.0 - (double)dist;
	case RV_METRIC_IP: return -(double)dist;
	case RV_METRIC_L2: return (double)dist;
	}
	return (double)dist;
}

/* ======================================================================
 * Upsert bodies
 * ==================================================================== */

void rv_q_points_free(rv_q_points *p)
{
	if (p->payloads)
		for (size_t i = 0; i < p->n; i++)
			cJSON_free(p->payloads[i]);
	rv_dealloc(NULL, p->payloads);
	rv_dealloc(NULL, p->pts);
	rv_dealloc(NULL, p->ids);
	rv_dealloc(NULL, p->vecs);
	memset(p, 0, sizeof *p);
}

static rv_status payload_text(char **out, const cJSON *v, const char *field, rv_err *err)
{
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return RV_OK;
	if (!cJSON_IsObject(v))
		return rv_err_set(err, RV_EINVAL, "%s: expected an object, got %s", field, rv_q_type_name(v));
	char *s = cJSON_PrintUnformatted(v);
	if (!s)
		return rv_err_nomem(err);
	size_t n = strlen(s);
	if (n > RV_MAX_PAYLOAD_LEN) {
		cJSON_free(s);
		return rv_err_set(err, RV_EINVAL, "%s: %zu bytes of JSON, at most %u", field, n, RV_MAX_PAYLOAD_LEN);
	}
	*out = s;
	return RV_OK;
}

typedef struct id_ix {
	const char *id;
	size_t i;
} id_ix;

static int cmp_id_ix(const void *a, const void *b)
{
	const id_ix *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

rv_status rv_q_points_parse(rv_q_points *out, const cJSON *body, uint32_t dim, rv_metric metric, rv_err *err)
{
	rv_status st = RV_OK;
	id_ix *order = NULL;
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(body))
		return rv_err_set(err, RV_EINVAL, "body: expected an object with \"points\" or \"batch\", got %s",
				  rv_q_type_name(body));
	const cJSON *points = cJSON_GetObjectItemCaseSensitive(body, "points");
	const cJSON *batch = cJSON_GetObjectItemCaseSensitive(body, "batch");
	const cJSON *ids = NULL, *vectors = NULL, *payloads = NULL;
	size_t n = 0;
	if (points && batch)
		return rv_err_set(err, RV_EINVAL, "body: give \"points\" or \"batch\", not both");
	if (points) {
		if (!cJSON_IsArray(points))
			return rv_err_set(err, RV_EINVAL, "points: expected an array, got %s", rv_q_type_name(points));
		n = (size_t)cJSON_GetArraySize(points);
	} else if (batch) {
		if (!cJSON_IsObject(batch))
			return rv_err_set(err, RV_EINVAL, "batch: expected an object, got %s", rv_q_type_name(batch));
		ids = cJSON_GetObjectItemCaseSensitive(batch, "ids");
		vectors = cJSON_GetObjectItemCaseSensitive(batch, "vectors");
		payloads = cJSON_GetObjectItemCaseSensitive(batch, "payloads");
		if (!cJSON_IsArray(ids))
			return rv_err_set(err, RV_EINVAL, "batch.ids: expected an array, got %s", rv_q_type_name(ids));
		n = (size_t)cJSON_GetArraySize(ids);
		if (cJSON_IsObject(vectors))
			return rv_err_set(err, RV_EINVAL, "batch.vectors: named vectors are not supported");
		if (!cJSON_IsArray(vectors))
			return rv_err_set(err, RV_EINVAL, "batch.vectors: expected an array, got %s",
					  rv_q_type_name(vectors));
		if ((size_t)cJSON_GetArraySize(vectors) != n)
			return rv_err_set(err, RV_EINVAL, "batch.vectors: %d vectors for %zu ids",
					  cJSON_GetArraySize(vectors), n);
		if (payloads && !cJSON_IsNull(payloads)) {
			if (!cJSON_IsArray(payloads))
				return rv_err_set(err, RV_EINVAL, "batch.payloads: expected an array, got %s",
						  rv_q_type_name(payloads));
			if ((size_t)cJSON_GetArraySize(payloads) != n)
				return rv_err_set(err, RV_EINVAL, "batch.payloads: %d payloads for %zu ids",
						  cJSON_GetArraySize(payloads), n);
		} else {
			payloads = NULL;
		}
	} else {
		return rv_err_set(err, RV_EINVAL, "body: expected {\"points\": [...]} or {\"batch\": {...}}");
	}
	if (n == 0)
		return RV_OK;
	size_t vec_count;
	if (!rv_mul_ok(n, dim, &vec_count))
		return rv_err_nomem(err);
	out->pts = rv_calloc(NULL, n, sizeof *out->pts);
	out->ids = rv_calloc(NULL, n, RV_Q_ID_MAX + 1);
	out->vecs = rv_calloc(NULL, vec_count, sizeof(float));
	out->payloads = rv_calloc(NULL, n, sizeof(char *));
	order = rv_calloc(NULL, n, sizeof *order);
	if (!out->pts || !out->ids || !out->vecs || !out->payloads || !order) {
		st = rv_err_nomem(err);
		goto done;
	}
	out->n = n;
	/* Walk the arrays side by side (cJSON arrays are linked lists). */
	const cJSON *p = points ? points->child : NULL;
	const cJSON *bi = ids ? ids->child : NULL, *bv = vectors ? vectors->child : NULL;
	const cJSON *bp = payloads ? payloads->child : NULL;
	for (size_t i = 0; i < n; i++) {
		char field[64];
		const cJSON *idv, *vecv, *payv;
		char *id = out->ids + i * (RV_Q_ID_MAX + 1);
		if (points) {
			snprintf(field, sizeof field, "points[%zu]", i);
			if (!cJSON_IsObject(p)) {
				st = rv_err_set(err, RV_EINVAL, "%s: expected an object, got %s", field,
						rv_q_type_name(p));
				goto done;
			}
			idv = cJSON_GetObjectItemCaseSensitive(p, "id");
			vecv = cJSON_GetObjectItemCaseSensitive(p, "vector");
			payv = cJSON_GetObjectItemCaseSensitive(p, "payload");
			p = p->next;
		} else {
			snprintf(field, sizeof field, "batch");
			idv = bi;
			vecv = bv;
			payv = bp;
			bi = bi->next;
			bv = bv->next;
			bp = bp ? bp->next : NULL;
		}
		char f[96];
		snprintf(f, sizeof f, points ? "%s.id" : "%s.ids[%zu]", field, i);
		if ((st = rv_q_id(id, idv, f, err)) != RV_OK)
			goto done;
		snprintf(f, sizeof f, points ? "%s.vector" : "%s.vectors[%zu]", field, i);
		if (!vecv) {
			st = rv_err_set(err, RV_EINVAL, "%s: missing", f);
			goto done;
		}
		if ((st = rv_q_vector(out->vecs + i * (size_t)dim, dim, metric, vecv, f, err)) != RV_OK)
			goto done;
		snprintf(f, sizeof f, points ? "%s.payload" : "%s.payloads[%zu]", field, i);
		if ((st = payload_text(&out->payloads[i], payv, f, err)) != RV_OK)
			goto done;
		order[i] = (id_ix){ id, i };
	}
	/* Qdrant applies a batch in order, so a repeated id ends with its
	 * last value; the library refuses repeats, so drop the earlier ones.
	 * Sorting (id, position) puts each id's last occurrence last. */
	qsort(order, n, sizeof *order, cmp_id_ix);
	for (size_t i = 0; i < n; i++) {
		bool repeated = i + 1 < n && strcmp(order[i].id, order[i + 1].id) == 0;
		out->pts[order[i].i].id = repeated ? NULL : order[i].id;
	}
	/* Compact pts[] and payloads[] together, keeping request order. */
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		char *pay = out->payloads[i];
		out->payloads[i] = NULL;
		if (!out->pts[i].id) {
			cJSON_free(pay);
			continue;
		}
		out->payloads[kept] = pay;
		out->pts[kept++] = (rv_point){ out->ids + i * (RV_Q_ID_MAX + 1), 0, out->vecs + i * (size_t)dim, pay, 0 };
	}
	out->n = kept;
	goto keep;
done:
	rv_q_points_free(out);
keep:
	rv_dealloc(NULL, order);
	return st;
}

/* ======================================================================
 * Payload selection
 * ==================================================================== */

static rv_status paths_ok(const cJSON *arr, const char *field, rv_err *err)
{
	if (!cJSON_IsArray(arr))
		return rv_err_set(err, RV_EINVAL, "%s: expected an array of field names, got %s", field,
				  rv_q_type_name(arr));
	size_t i = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, arr)
	{
		if (!cJSON_IsString(x) || !x->valuestring[0])
			return rv_err_set(err, RV_EINVAL, "%s[%zu]: expected a field name, got %s", field, i,
					  rv_q_type_name(x));
		i++;
	}
	return RV_OK;
}

rv_status rv_q_select_parse(rv_q_select *out, const cJSON *v, bool dflt, const char *field, rv_err *err)
{
	char fld[160];
	out->paths = NULL;
	if (!v || cJSON_IsNull(v)) {
		out->mode = dflt ? RV_SEL_ALL : RV_SEL_NONE;
		return RV_OK;
	}
	if (cJSON_IsBool(v)) {
		out->mode = cJSON_IsTrue(v) ? RV_SEL_ALL : RV_SEL_NONE;
		return RV_OK;
	}
	if (cJSON_IsArray(v)) {
		out->mode = RV_SEL_INCLUDE;
		out->paths = v;
		return paths_ok(v, field, err);
	}
	if (cJSON_IsObject(v)) {
		const cJSON *inc = cJSON_GetObjectItemCaseSensitive(v, "include");
		const cJSON *exc = cJSON_GetObjectItemCaseSensitive(v, "exclude");
		if (!!inc == !!exc)
			return rv_err_set(err, RV_EINVAL, "%s: expected {\"include\": [...]} or {\"exclude\": [...]}",
					  field);
		out->mode = inc ? RV_SEL_INCLUDE : RV_SEL_EXCLUDE;
		out->paths = inc ? inc : exc;
		snprintf(fld, sizeof fld, "%.140s.%s", field, inc ? "include" : "exclude");
		return paths_ok(out->paths, fld, err);
	}
	return rv_err_set(err, RV_EINVAL, "%s: expected true, false or a list of fields, got %s", field,
			  rv_q_type_name(v));
}

/* Copy the value at a dotted path of src (objects only) into dst,
 * creating the objects on the way. */
static bool include_path(cJSON *dst, const cJSON *src, const char *path)
{
	char seg[256];
	const char *p = path;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof seg)
			return true;
		memcpy(seg, p, n);
		seg[n] = 0;
		const cJSON *v = cJSON_IsObject(src) ? cJSON_GetObjectItemCaseSensitive(src, seg) : NULL;
		if (!v)
			return true;
		cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, seg);
		if (!dot) {
			if (d)
				cJSON_DeleteItemFromObjectCaseSensitive(dst, seg);
			return cJSON_AddItemToObject(dst, seg, cJSON_Duplicate(v, true));
		}
		if (!cJSON_IsObject(v))
			return true;
		if (!d) {
			d = cJSON_CreateObject();
			if (!d || !cJSON_AddItemToObject(dst, seg, d)) {
				cJSON_Delete(d);
				return false;
			}
		} else if (!cJSON_IsObject(d)) {
			return true; /* already included whole */
		}
		dst = d;
		src = v;
		p = dot + 1;
	}
}

static void exclude_path(cJSON *obj, const char *path)
{
	char seg[256];
	const char *p = path;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof seg || !cJSON_IsObject(obj))
			return;
		memcpy(seg, p, n);
		seg[n] = 0;
		if (!dot) {
			cJSON_DeleteItemFromObjectCaseSensitive(obj, seg);
			return;
		}
		obj = cJSON_GetObjectItemCaseSensitive(obj, seg);
		p = dot + 1;
	}
}

void rv_q_write_payload(rv_buf *b, const rv_q_select *sel, const char *payload)
{
	if (sel->mode == RV_SEL_NONE) {
		rv_jw_raw(b, "null");
		return;
	}
	if (!payload) {
		rv_jw_raw(b, "{}");
		return;
	}
	if (sel->mode == RV_SEL_ALL) {
		rv_jw_raw(b, payload);
		return;
	}
	cJSON *src = cJSON_Parse(payload);
	if (!src) {
		b->failed = true;
		return;
	}
	const cJSON *x;
	if (sel->mode == RV_SEL_EXCLUDE) {
		cJSON_ArrayForEach(x, sel->paths) exclude_path(src, x->valuestring);
		rv_jw_json(b, src);
		cJSON_Delete(src);
		return;
	}
	cJSON *dst = cJSON_CreateObject();
	bool ok = dst != NULL;
	cJSON_ArrayForEach(x, sel->paths)
	{
		if (!ok)
			break;
		ok = include_path(dst, src, x->valuestring);
	}
	if (ok)
		rv_jw_json(b, dst);
	else
		b->failed = true;
	cJSON_Delete(dst);
	cJSON_Delete(src);
}
