/*
 * filter.c - compile and evaluate payload filters (MongoDB query syntax).
 *
 * A search compiles its filter text once (rv_filter_compile) and then
 * evaluates it for every candidate the graph traversal visits
 * (rv_filter_match), so the work is split accordingly: compilation parses
 * the text with cJSON, checks everything that can be wrong with it, and
 * copies it into a small tree whose paths are already split into segments
 * and whose operands are already converted; evaluation walks that tree and
 * the payload's cJSON tree without allocating and without parsing anything.
 *
 * Grammar (see rv_db_search in include/ruvector.h for the user's view):
 *
 *   filter   := { key: value, ... }            keys are ANDed; {} is true
 *   key      := "$and" | "$or" | "$nor"        non-empty arrays of filters
 *             | "$not"                          a filter (an extension)
 *             | dotted field path               "a.b.0.c"
 *   value    := operator object                {"$gt": 1, "$lt": 5} (ANDed)
 *             | any other JSON value            implicit $eq
 *   operator := $eq $ne  (any value)  $gt $gte $lt $lte (number or string)
 *             | $in $nin (array)      $exists (boolean)
 *             | $not (operator object, or a value meaning $eq)
 *
 * Path resolution turns one path into a set of "leaves": the values the
 * path reaches, plus a MISSING mark for each way it dead-ends. Starting at
 * the payload object, each segment
 *   - on an object, names a member (absent: MISSING);
 *   - on an array, indexes it when the segment is all digits (out of range:
 *     MISSING); otherwise it is applied to every element that is an object,
 *     as MongoDB does for "items.price" (no such element: MISSING);
 *   - on anything else: MISSING.
 * A NULL or non-object payload behaves as an empty object.
 *
 * The positive operators hold when ANY leaf satisfies them, and a leaf that
 * is an array also satisfies them when any of its elements does (one level,
 * as in MongoDB):
 *   $eq x     leaf deep-equals x, or an element does; MISSING and null
 *             satisfy $eq null
 *   $in [..]  $eq for some member
 *   $gt ...   leaf (or element) of the operand's type compares so; numbers
 *             as doubles, strings bytewise (strcmp: cJSON strings hold no
 *             NUL, so this is memcmp-then-length)
 *   $exists   some leaf is not MISSING
 * The negative ones are exact negations: $ne = not $eq, $nin = not $in,
 * $exists false = not $exists true, $not = not (its operators ANDed).
 * Each operator of a field resolves the path on its own, so
 * {"a": {"$gt": 1, "$lt": 5}} holds for a = [0, 10] (MongoDB does the same).
 * Object equality ignores member order: same member count, and each member
 * of the operand equals the payload's member of that name.
 *
 * Bounds that keep evaluation's recursion shallow: the text is at most
 * 1 MiB, JSON nesting at most 64 levels (checked on the raw text, before
 * cJSON recurses), a path at most 64 segments. Evaluation recursion is thus
 * bounded by the filter, whatever the payload.
 *
 * Memory: the compiled tree lives in a chain of arena chunks taken from the
 * caller's rv_alloc, so an allocation failure anywhere in compilation is
 * cleaned up by dropping the chunks, and the nodes sit close together for
 * the traversal's sake. cJSON's own allocations for the temporary parse tree
 * use cJSON's global hooks; that tree is deleted before returning.
 */
#include "db/filter.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RV_FILTER_MAX_TEXT ((size_t)1 << 20)
#define RV_FILTER_MAX_DEPTH 64
#define RV_FILTER_MAX_SEGMENTS 64

/* ======================================================================
 * Compiled form
 * ==================================================================== */

typedef enum fv_type { FV_NULL, FV_BOOL, FV_NUM, FV_STR, FV_ARR, FV_OBJ } fv_type;

/* A JSON value copied out of the filter text. */
typedef struct fval {
	fv_type type;
	bool b;
	double num;
	const char *str;        /* FV_STR */
	const char *key;        /* member name when this is an object member */
	struct fval *items;     /* FV_ARR elements / FV_OBJ members */
	size_t n;
} fval;

/* One path segment. index is meaningful only when is_index. */
typedef struct fseg {
	const char *name;       /* NUL-terminated, inside the arena */
	bool is_index;
	size_t index;           /* SIZE_MAX when the digits overflow: never in range */
} fseg;

typedef enum cond_op {
	C_EQ,      /* val */
	C_IN,      /* val is an FV_ARR */
	C_GT,
	C_GTE,
	C_LT,
	C_LTE,
	C_EXISTS,
	C_ALL      /* kids ANDed; used for $not */
} cond_op;

/* A condition on the leaves of one path. */
typedef struct fcond {
	cond_op op;
	bool negate;            /* $ne, $nin, $exists false, $not */
	bool on_missing;        /* what a MISSING leaf gives the positive test */
	fval val;
	struct fcond *kids;     /* C_ALL */
	size_t nkids;
} fcond;

typedef enum expr_kind { E_AND, E_OR, E_NOR, E_NOT, E_FIELD } expr_kind;

typedef struct fexpr {
	expr_kind kind;
	struct fexpr *kids;     /* E_AND/E_OR/E_NOR: nkids; E_NOT: one */
	size_t nkids;
	fseg *segs;             /* E_FIELD */
	size_t nsegs;
	fcond cond;             /* E_FIELD: one condition (C_ALL for several) */
} fexpr;

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;       /* bytes of the data area after the header */
} chunk;

/* The data area starts after the header, rounded up so that every bump
 * allocation (a multiple of 16) stays aligned for doubles and pointers. */
#define CHUNK_HDR ((sizeof(chunk) + 15) & ~(size_t)15)

struct rv_filter {
	rv_alloc alloc;         /* a copy: the caller's struct may not outlive us */
	bool has_alloc;
	chunk *chunks;
	fexpr root;
};

static const rv_alloc *falloc(const rv_filter *f)
{
	return f->has_alloc ? &f->alloc : NULL;
}

/* Bump allocation from the arena; NULL on failure. Memory is zeroed. */
static void *arena_get(rv_filter *f, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - 16)
		return NULL;
	n = (n + 15) & ~(size_t)15;
	chunk *c = f->chunks;
	if (!c || c->cap - c->used < n) {
		size_t cap = 4096;
		/* Grow with the filter so large ones take few chunks. */
		if (c && c->cap < 256 * 1024)
			cap = c->cap * 2;
		if (cap < n)
			cap = n;
		if (cap > SIZE_MAX - CHUNK_HDR)
			return NULL;
		c = rv_malloc(falloc(f), CHUNK_HDR + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = f->chunks;
		f->chunks = c;
	}
	void *p = (unsigned char *)c + CHUNK_HDR + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static void *arena_array(rv_filter *f, size_t count, size_t size)
{
	size_t n;
	if (!rv_mul_ok(count, size, &n))
		return NULL;
	return arena_get(f, n);
}

static char *arena_strdup(rv_filter *f, const char *s, size_t n)
{
	char *d = arena_get(f, n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/* ======================================================================
 * Compilation
 * ==================================================================== */

typedef struct compiler {
	rv_filter *f;
	rv_err *err;
	/* Where we are among the logical operators ("$or[1].$and[0]"), for
	 * messages; empty at the top level. */
	char where[160];
} compiler;

static const char *type_name(const cJSON *j)
{
	if (cJSON_IsNumber(j))
		return "a number";
	if (cJSON_IsString(j))
		return "a string";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsNull(j))
		return "null";
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsObject(j))
		return "an object";
	return "an unknown value";
}

/* " in $or[1]" or "" - appended to messages about nested parts. */
static const char *where_suffix(const compiler *c, char *buf, size_t cap)
{
	if (!c->where[0])
		return "";
	snprintf(buf, cap, " in %s", c->where);
	return buf;
}

static rv_status nomem(compiler *c)
{
	return rv_err_set(c->err, RV_ENOMEM, "filter: out of memory");
}

static bool is_operator_key(const cJSON *member)
{
	return member->string && member->string[0] == '$';
}

/* Copy a JSON value into the arena. Depth is bounded by the pre-scan. */
static rv_status copy_value(compiler *c, fval *out, const cJSON *j)
{
	rv_status st = RV_OK;
	if (cJSON_IsNull(j)) {
		out->type = FV_NULL;
	} else if (cJSON_IsBool(j)) {
		out->type = FV_BOOL;
		out->b = cJSON_IsTrue(j);
	} else if (cJSON_IsNumber(j)) {
		out->type = FV_NUM;
		out->num = j->valuedouble;
	} else if (cJSON_IsString(j)) {
		out->type = FV_STR;
		const char *s = j->valuestring ? j->valuestring : "";
		out->str = arena_strdup(c->f, s, strlen(s));
		if (!out->str)
			return nomem(c);
	} else if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
		bool obj = cJSON_IsObject(j);
		out->type = obj ? FV_OBJ : FV_ARR;
		size_t n = 0;
		for (const cJSON *k = j->child; k; k = k->next)
			n++;
		out->n = n;
		if (n) {
			out->items = arena_array(c->f, n, sizeof(fval));
			if (!out->items)
				return nomem(c);
		}
		size_t i = 0;
		for (const cJSON *k = j->child; k; k = k->next, i++) {
			if (obj) {
				const char *key = k->string ? k->string : "";
				out->items[i].key = arena_strdup(c->f, key, strlen(key));
				if (!out->items[i].key)
					return nomem(c);
			}
			st = copy_value(c, &out->items[i], k);
			if (st != RV_OK)
				return st;
		}
	} else {
		/* cJSON_Parse never produces raw or invalid items. */
		return rv_err_set(c->err, RV_EINVAL, "filter: unsupported JSON value");
	}
	return st;
}

/* Whether the positive test of an equality against v holds for a MISSING
 * leaf: only null stands for "absent" (MongoDB's {"f": null}). */
static bool eq_on_missing(const fval *v)
{
	return v->type == FV_NULL;
}

static rv_status compile_path(compiler *c, fexpr *e, const char *path)
{
	char sfx[200];
	size_t len = strlen(path);
	if (len == 0)
		return rv_err_set(c->err, RV_EINVAL, "filter: empty field path%s",
				  where_suffix(c, sfx, sizeof sfx));
	size_t nsegs = 1;
	for (size_t i = 0; i < len; i++)
		nsegs += path[i] == '.';
	if (nsegs > RV_FILTER_MAX_SEGMENTS)
		return rv_err_set(c->err, RV_EINVAL,
				  "filter: field path \"%.100s\" has %zu segments, more than %d%s",
				  path, nsegs, RV_FILTER_MAX_SEGMENTS, where_suffix(c, sfx, sizeof sfx));
	char *buf = arena_strdup(c->f, path, len);
	e->segs = arena_array(c->f, nsegs, sizeof(fseg));
	if (!buf || !e->segs)
		return nomem(c);
	e->nsegs = nsegs;
	size_t s = 0;
	char *start = buf;
	for (size_t i = 0; i <= len; i++) {
		if (buf[i] != '.' && buf[i] != 0)
			continue;
		if (buf + i == start)
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: empty segment in field path \"%.200s\"%s", path,
					  where_suffix(c, sfx, sizeof sfx));
		buf[i] = 0;
		fseg *sg = &e->segs[s++];
		sg->name = start;
		sg->is_index = true;
		sg->index = 0;
		for (const char *p = start; *p; p++) {
			if (*p < '0' || *p > '9') {
				sg->is_index = false;
				break;
			}
			size_t d = (size_t)(*p - '0');
			/* Saturate: an index that large is out of range anyway. */
			if (sg->index > (SIZE_MAX - d) / 10)
				sg->index = SIZE_MAX;
			else
				sg->index = sg->index * 10 + d;
		}
		start = buf + i + 1;
	}
	return RV_OK;
}

static rv_status compile_ops(compiler *c, fcond *out, const cJSON *obj, const char *path);

/* The condition a field's value stands for: an operator object, or a value
 * for implicit equality. */
static rv_status compile_cond(compiler *c, fcond *out, const cJSON *v, const char *path)
{
	if (cJSON_IsObject(v) && v->child && is_operator_key(v->child))
		return compile_ops(c, out, v, path);
	if (cJSON_IsObject(v)) {
		/* A plain object must not hide operators further on: that is
		 * almost certainly a mistake, and MongoDB refuses it too. */
		for (const cJSON *k = v->child; k; k = k->next)
			if (is_operator_key(k)) {
				char sfx[200];
				return rv_err_set(c->err, RV_EINVAL,
						  "filter: object at \"%.200s\" mixes operators (\"%.50s\") "
						  "and plain fields%s",
						  path, k->string, where_suffix(c, sfx, sizeof sfx));
			}
	}
	out->op = C_EQ;
	rv_status st = copy_value(c, &out->val, v);
	out->on_missing = eq_on_missing(&out->val);
	return st;
}

static rv_status compile_op(compiler *c, fcond *out, const cJSON *k, const char *path)
{
	char sfx[200];
	const char *name = k->string;
	const char *ws = where_suffix(c, sfx, sizeof sfx);
	rv_status st = RV_OK;
	if (!strcmp(name, "$eq") || !strcmp(name, "$ne")) {
		out->op = C_EQ;
		out->negate = name[1] == 'n';
		st = copy_value(c, &out->val, k);
		out->on_missing = eq_on_missing(&out->val);
	} else if (!strcmp(name, "$gt") || !strcmp(name, "$gte") || !strcmp(name, "$lt") ||
		   !strcmp(name, "$lte")) {
		if (!cJSON_IsNumber(k) && !cJSON_IsString(k))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: %s needs a number or a string, got %s, at \"%.200s\"%s",
					  name, type_name(k), path, ws);
		bool gt = name[1] == 'g', eq = name[3] == 'e';
		out->op = gt ? (eq ? C_GTE : C_GT) : (eq ? C_LTE : C_LT);
		st = copy_value(c, &out->val, k);
	} else if (!strcmp(name, "$in") || !strcmp(name, "$nin")) {
		if (!cJSON_IsArray(k))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: %s needs an array, got %s, at \"%.200s\"%s", name,
					  type_name(k), path, ws);
		out->op = C_IN;
		out->negate = name[1] == 'n';
		st = copy_value(c, &out->val, k);
		for (size_t i = 0; i < out->val.n; i++)
			out->on_missing |= eq_on_missing(&out->val.items[i]);
	} else if (!strcmp(name, "$exists")) {
		if (!cJSON_IsBool(k))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: $exists needs true or false, got %s, at \"%.200s\"%s",
					  type_name(k), path, ws);
		out->op = C_EXISTS;
		out->negate = !cJSON_IsTrue(k);
	} else if (!strcmp(name, "$not")) {
		/* Negate the inner condition; wrapping it in C_ALL keeps the
		 * negation separate from the inner one's own flag. */
		out->op = C_ALL;
		out->negate = true;
		out->kids = arena_get(c->f, sizeof(fcond));
		if (!out->kids)
			return nomem(c);
		out->nkids = 1;
		st = compile_cond(c, out->kids, k, path);
	} else {
		return rv_err_set(c->err, RV_EINVAL, "filter: unknown operator \"%.50s\" at \"%.200s\"%s",
				  name, path, ws);
	}
	return st;
}

/* An operator object: every key starts with '$'; several are ANDed. */
static rv_status compile_ops(compiler *c, fcond *out, const cJSON *obj, const char *path)
{
	char sfx[200];
	size_t n = 0;
	for (const cJSON *k = obj->child; k; k = k->next) {
		if (!is_operator_key(k))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: operator object at \"%.200s\" mixes operators and the "
					  "plain field \"%.50s\"%s",
					  path, k->string ? k->string : "", where_suffix(c, sfx, sizeof sfx));
		n++;
	}
	if (n == 1)
		return compile_op(c, out, obj->child, path);
	out->op = C_ALL;
	out->kids = arena_array(c->f, n, sizeof(fcond));
	if (!out->kids)
		return nomem(c);
	out->nkids = n;
	size_t i = 0;
	for (const cJSON *k = obj->child; k; k = k->next, i++) {
		rv_status st = compile_op(c, &out->kids[i], k, path);
		if (st != RV_OK)
			return st;
	}
	return RV_OK;
}

static rv_status compile_filter(compiler *c, fexpr *e, const cJSON *obj);

/* $and / $or / $nor: a non-empty array of filter objects. */
static rv_status compile_logical(compiler *c, fexpr *e, const cJSON *k, expr_kind kind)
{
	const char *name = k->string;
	size_t saved = strlen(c->where), n = 0;
	if (cJSON_IsArray(k))
		for (const cJSON *x = k->child; x; x = x->next)
			n++;
	if (n == 0)
		return rv_err_set(c->err, RV_EINVAL,
				  "filter: %s needs a non-empty array, got %s, at \"%s%s%s\"", name,
				  cJSON_IsArray(k) ? "an empty one" : type_name(k), c->where,
				  saved ? "." : "", name);
	e->kind = kind;
	e->kids = arena_array(c->f, n, sizeof(fexpr));
	if (!e->kids)
		return nomem(c);
	e->nkids = n;
	size_t i = 0;
	for (const cJSON *x = k->child; x; x = x->next, i++) {
		snprintf(c->where + saved, sizeof c->where - saved, "%s%s[%zu]", saved ? "." : "",
			 name, i);
		if (!cJSON_IsObject(x))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: %s elements must be JSON objects, got %s, at \"%s\"",
					  name, type_name(x), c->where);
		rv_status st = compile_filter(c, &e->kids[i], x);
		if (st != RV_OK)
			return st;
	}
	c->where[saved] = 0;
	return RV_OK;
}

/* One key of a filter object. */
static rv_status compile_key(compiler *c, fexpr *e, const cJSON *k)
{
	const char *name = k->string ? k->string : "";
	if (!strcmp(name, "$and"))
		return compile_logical(c, e, k, E_AND);
	if (!strcmp(name, "$or"))
		return compile_logical(c, e, k, E_OR);
	if (!strcmp(name, "$nor"))
		return compile_logical(c, e, k, E_NOR);
	if (!strcmp(name, "$not")) {
		if (!cJSON_IsObject(k))
			return rv_err_set(c->err, RV_EINVAL,
					  "filter: $not needs a JSON object, got %s, at \"%s%s$not\"",
					  type_name(k), c->where, c->where[0] ? "." : "");
		e->kind = E_NOT;
		e->kids = arena_get(c->f, sizeof(fexpr));
		if (!e->kids)
			return nomem(c);
		e->nkids = 1;
		size_t saved = strlen(c->where);
		snprintf(c->where + saved, sizeof c->where - saved, "%s$not", saved ? "." : "");
		rv_status st = compile_filter(c, e->kids, k);
		c->where[saved] = 0;
		return st;
	}
	if (name[0] == '$')
		return rv_err_set(c->err, RV_EINVAL,
				  "filter: unknown operator \"%.50s\" at %s%s%s (a field path "
				  "cannot start with '$')",
				  name, c->where[0] ? "\"" : "the top level", c->where,
				  c->where[0] ? "\"" : "");
	e->kind = E_FIELD;
	rv_status st = compile_path(c, e, name);
	if (st != RV_OK)
		return st;
	return compile_cond(c, &e->cond, k, name);
}

static rv_status compile_filter(compiler *c, fexpr *e, const cJSON *obj)
{
	size_t n = 0;
	for (const cJSON *k = obj->child; k; k = k->next)
		n++;
	if (n == 1)
		return compile_key(c, e, obj->child);
	/* {} is an AND of nothing: true. */
	e->kind = E_AND;
	e->nkids = n;
	if (n) {
		e->kids = arena_array(c->f, n, sizeof(fexpr));
		if (!e->kids)
			return nomem(c);
	}
	size_t i = 0;
	for (const cJSON *k = obj->child; k; k = k->next, i++) {
		rv_status st = compile_key(c, &e->kids[i], k);
		if (st != RV_OK)
			return st;
	}
	return RV_OK;
}

/* Refuse nesting deeper than the limit before cJSON recurses into it.
 * Brackets inside strings do not count; the text need not be valid JSON
 * here (cJSON judges that next). Returns the offending byte or SIZE_MAX. */
static size_t too_deep_at(const char *s, size_t len)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > RV_FILTER_MAX_DEPTH)
				return i;
		} else if ((ch == '}' || ch == ']') && depth > 0) {
			depth--;
		}
	}
	return SIZE_MAX;
}

static bool is_json_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

rv_status rv_filter_compile(rv_filter **out, const char *json, size_t len, const rv_alloc *a,
			    rv_err *err)
{
	rv_status st = RV_OK;
	rv_filter *f = NULL;
	cJSON *doc = NULL;
	*out = NULL;

	if (!json)
		return rv_err_set(err, RV_EINVAL, "filter: the filter text is NULL");
	if (len > RV_FILTER_MAX_TEXT)
		return rv_err_set(err, RV_EINVAL, "filter: %zu bytes, longer than the 1 MiB limit",
				  len);
	size_t deep = too_deep_at(json, len);
	if (deep != SIZE_MAX)
		return rv_err_set(err, RV_EINVAL, "filter: nesting deeper than %d levels at byte %zu",
				  RV_FILTER_MAX_DEPTH, deep);

	const char *end = NULL;
	doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!doc) {
		size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
		st = rv_err_set(err, RV_EINVAL, "filter: invalid JSON at byte %zu", at);
		goto done;
	}
	/* cJSON stops after the first value; anything but spaces after it
	 * means the text is not one JSON value. */
	size_t pos = end ? (size_t)(end - json) : len;
	while (pos < len && is_json_space(json[pos]))
		pos++;
	if (pos < len) {
		st = rv_err_set(err, RV_EINVAL,
				"filter: invalid JSON at byte %zu: text after the end of the filter",
				pos);
		goto done;
	}
	if (!cJSON_IsObject(doc)) {
		st = rv_err_set(err, RV_EINVAL, "filter: must be a JSON object, got %s",
				type_name(doc));
		goto done;
	}

	f = rv_malloc(a, sizeof *f);
	if (!f) {
		st = rv_err_set(err, RV_ENOMEM, "filter: out of memory");
		goto done;
	}
	memset(f, 0, sizeof *f);
	if (a) {
		f->alloc = *a;
		f->has_alloc = true;
	}
	compiler c = { .f = f, .err = err };
	st = compile_filter(&c, &f->root, doc);
	if (st != RV_OK)
		goto done;
	*out = f;
	f = NULL;
done:
	rv_filter_free(f);
	cJSON_Delete(doc);
	return st;
}

void rv_filter_free(rv_filter *f)
{
	if (!f)
		return;
	const rv_alloc *a = falloc(f);
	chunk *c = f->chunks;
	while (c) {
		chunk *next = c->next;
		rv_dealloc(a, c);
		c = next;
	}
	rv_dealloc(a, f);
}

/* ======================================================================
 * Evaluation: read-only, no allocation, recursion bounded by the filter.
 * ==================================================================== */

/* First member of an object with the given name; NULL when absent. */
static const cJSON *member(const cJSON *obj, const char *name)
{
	for (const cJSON *k = obj->child; k; k = k->next)
		if (k->string && !strcmp(k->string, name))
			return k;
	return NULL;
}

static bool deep_equal(const cJSON *j, const fval *v)
{
	switch (v->type) {
	case FV_NULL:
		return cJSON_IsNull(j);
	case FV_BOOL:
		return cJSON_IsBool(j) && (bool)cJSON_IsTrue(j) == v->b;
	case FV_NUM:
		return cJSON_IsNumber(j) && j->valuedouble == v->num;
	case FV_STR:
		return cJSON_IsString(j) && j->valuestring && !strcmp(j->valuestring, v->str);
	case FV_ARR: {
		if (!cJSON_IsArray(j))
			return false;
		const cJSON *k = j->child;
		for (size_t i = 0; i < v->n; i++, k = k->next)
			if (!k || !deep_equal(k, &v->items[i]))
				return false;
		return k == NULL;
	}
	case FV_OBJ: {
		if (!cJSON_IsObject(j))
			return false;
		size_t n = 0;
		for (const cJSON *k = j->child; k; k = k->next)
			n++;
		if (n != v->n)
			return false;
		for (size_t i = 0; i < v->n; i++) {
			const cJSON *m = member(j, v->items[i].key);
			if (!m || !deep_equal(m, &v->items[i]))
				return false;
		}
		return true;
	}
	}
	return false;
}

/* $eq on one present leaf: the whole value, or one element of an array. */
static bool eq_leaf(const cJSON *j, const fval *v)
{
	if (deep_equal(j, v))
		return true;
	if (cJSON_IsArray(j))
		for (const cJSON *k = j->child; k; k = k->next)
			if (deep_equal(k, v))
				return true;
	return false;
}

/* Ordering of one scalar against the operand; false for mixed types. */
static bool order_scalar(const cJSON *j, cond_op op, const fval *v)
{
	int cmp;
	if (v->type == FV_NUM) {
		if (!cJSON_IsNumber(j))
			return false;
		double x = j->valuedouble;
		/* NaN cannot come out of JSON text, but a payload built in
		 * memory may hold one: it is ordered against nothing. */
		if (x != x)
			return false;
		cmp = x < v->num ? -1 : x > v->num ? 1 : 0;
	} else {
		if (!cJSON_IsString(j) || !j->valuestring)
			return false;
		cmp = strcmp(j->valuestring, v->str);
	}
	switch (op) {
	case C_GT:
		return cmp > 0;
	case C_GTE:
		return cmp >= 0;
	case C_LT:
		return cmp < 0;
	case C_LTE:
		return cmp <= 0;
	default:
		return false;
	}
}

/* The positive test of a leaf condition on one leaf (NULL = MISSING). */
static bool test_leaf(const cJSON *j, const fcond *c)
{
	if (!j)
		return c->on_missing;
	switch (c->op) {
	case C_EQ:
		return eq_leaf(j, &c->val);
	case C_IN:
		for (size_t i = 0; i < c->val.n; i++)
			if (eq_leaf(j, &c->val.items[i]))
				return true;
		return false;
	case C_GT:
	case C_GTE:
	case C_LT:
	case C_LTE:
		if (cJSON_IsArray(j)) {
			for (const cJSON *k = j->child; k; k = k->next)
				if (order_scalar(k, c->op, &c->val))
					return true;
			return false;
		}
		return order_scalar(j, c->op, &c->val);
	case C_EXISTS:
		return true;
	case C_ALL:
		break;
	}
	return false;
}

/* Whether any leaf the path reaches from j passes the condition. */
static bool any_leaf(const cJSON *j, const fseg *s, size_t n, const fcond *c)
{
	if (n == 0)
		return test_leaf(j, c);
	if (cJSON_IsObject(j)) {
		const cJSON *m = member(j, s->name);
		return m ? any_leaf(m, s + 1, n - 1, c) : test_leaf(NULL, c);
	}
	if (cJSON_IsArray(j)) {
		if (s->is_index) {
			const cJSON *k = j->child;
			for (size_t i = 0; k && i < s->index; i++)
				k = k->next;
			return k ? any_leaf(k, s + 1, n - 1, c) : test_leaf(NULL, c);
		}
		bool any_object = false;
		for (const cJSON *k = j->child; k; k = k->next) {
			if (!cJSON_IsObject(k))
				continue;
			any_object = true;
			if (any_leaf(k, s, n, c))
				return true;
		}
		return any_object ? false : test_leaf(NULL, c);
	}
	return test_leaf(NULL, c);
}

static bool eval_cond(const cJSON *root, const fexpr *e, const fcond *c)
{
	bool r;
	if (c->op == C_ALL) {
		r = true;
		for (size_t i = 0; i < c->nkids && r; i++)
			r = eval_cond(root, e, &c->kids[i]);
	} else if (root) {
		r = any_leaf(root, e->segs, e->nsegs, c);
	} else {
		r = c->on_missing;
	}
	return r != c->negate;
}

static bool eval(const cJSON *root, const fexpr *e)
{
	switch (e->kind) {
	case E_AND:
		for (size_t i = 0; i < e->nkids; i++)
			if (!eval(root, &e->kids[i]))
				return false;
		return true;
	case E_OR:
		for (size_t i = 0; i < e->nkids; i++)
			if (eval(root, &e->kids[i]))
				return true;
		return false;
	case E_NOR:
		for (size_t i = 0; i < e->nkids; i++)
			if (eval(root, &e->kids[i]))
				return false;
		return true;
	case E_NOT:
		return !eval(root, e->kids);
	case E_FIELD:
		return eval_cond(root, e, &e->cond);
	}
	return false;
}

bool rv_filter_match(const rv_filter *f, const cJSON *payload)
{
	/* A missing or non-object payload is an empty object: every path is
	 * MISSING from the first segment on. */
	const cJSON *root = cJSON_IsObject(payload) ? payload : NULL;
	return eval(root, &f->root);
}
