/*
 * qfilter.c - Qdrant filters -> the library's MongoDB-style filter
 * language, with has_id folded away by partial evaluation.
 *
 * Qdrant's {"must", "should", "must_not"} tree is translated into
 * the library's MongoDB-style filter (see rv_db_search in ruvector.h):
 *   must      -> $and            should -> $or        must_not -> $nor
 *   match {"value": v}           -> {"key": {"$eq": v}}
 *   match {"any": [..]}          -> {"key": {"$in": [..]}} (empty: false)
 *   match {"except": [..]}       -> {"key": {"$nin": [null, [], ..]}}
 *   range {gt, gte, lt, lte}     -> {"key": {"$gt": .., ...}}
 *   is_empty {"key"}             -> {"key": {"$in": [null, []]}}
 *   is_null {"key"}              -> {"key": {"$exists": true, "$eq": null}}
 *   a nested filter              -> its translation
 *   has_id [ids]                 -> partial evaluation, see rv_q_filter
 * Keys use Qdrant's path syntax: "a.b", "a[].b" (every element; the
 * library does this for arrays anyway) and "a[2]" (an index). Constant
 * parts (has_id, empty "any") are folded away, so the library never sees
 * them. A filter object with none of must/should/must_not is taken to be
 * in the library's own language and passed on unchanged.
 *
 * Differences that follow from the library's language (docs/SERVER.md
 * lists them): on a field holding an array, "except" holds when no element
 * is in the list (Qdrant: when some element is not), and the bounds of one
 * "range" may be met by different elements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

/* ======================================================================
 * Filters
 * ==================================================================== */

enum { T_FALSE = 0, T_TRUE = 1, T_EXPR = -1 };

typedef struct tctx {
	rv_q_filter *f;
	bool collect;  /* first pass: validate and gather the has_id lists */
	uint64_t mask; /* later passes: truth of each has_id */
	rv_err *err;
} tctx;

/* A junction being built: AND, OR or NOR of parts that may be constant. */
typedef enum jkind { J_AND, J_OR, J_NOR } jkind;

typedef struct junction {
	jkind kind;
	bool decided;  /* a constant part settled the result */
	int value;     /* the settled value */
	bool any_part; /* OR: some part was seen (an empty should is true) */
	cJSON *parts;  /* array of expressions, or NULL */
} junction;

static void j_init(junction *j, jkind kind)
{
	memset(j, 0, sizeof *j);
	j->kind = kind;
}

/* Add one part (truth, expr); takes ownership of expr. */
static rv_status j_add(junction *j, int truth, cJSON *expr, rv_err *err)
{
	j->any_part = true;
	if (truth != T_EXPR) {
		/* AND: false decides; OR: true decides; NOR: true decides (as false). */
		if (j->kind == J_AND && truth == T_FALSE)
			j->decided = true, j->value = T_FALSE;
		else if (j->kind == J_OR && truth == T_TRUE)
			j->decided = true, j->value = T_TRUE;
		else if (j->kind == J_NOR && truth == T_TRUE)
			j->decided = true, j->value = T_FALSE;
		return RV_OK;
	}
	if (!j->parts && !(j->parts = cJSON_CreateArray())) {
		cJSON_Delete(expr);
		return rv_err_nomem(err);
	}
	if (!cJSON_AddItemToArray(j->parts, expr)) {
		cJSON_Delete(expr);
		return rv_err_nomem(err);
	}
	return RV_OK;
}

/* The junction's result; consumes j. */
static rv_status j_finish(int *truth, cJSON **expr, junction *j, rv_err *err)
{
	*expr = NULL;
	int n = j->parts ? cJSON_GetArraySize(j->parts) : 0;
	if (j->decided || n == 0) {
		cJSON_Delete(j->parts);
		if (j->decided)
			*truth = j->value;
		else if (j->kind == J_OR)
			/* Every part was false (or there were none: Qdrant
			 * ignores an empty should). */
			*truth = j->any_part ? T_FALSE : T_TRUE;
		else
			*truth = T_TRUE; /* AND of trues; NOR of falses */
		return RV_OK;
	}
	*truth = T_EXPR;
	if (n == 1 && j->kind != J_NOR) {
		*expr = cJSON_DetachItemFromArray(j->parts, 0);
		cJSON_Delete(j->parts);
		return RV_OK;
	}
	cJSON *o = cJSON_CreateObject();
	const char *op = j->kind == J_AND ? "$and" : j->kind == J_OR ? "$or" : "$nor";
	if (!o || !cJSON_AddItemToObject(o, op, j->parts)) {
		cJSON_Delete(o);
		cJSON_Delete(j->parts);
		return rv_err_nomem(err);
	}
	*expr = o;
	return RV_OK;
}

/* Qdrant key syntax ("a.b", "a[].b", "a[2]") -> the library's dotted path. */
static rv_status q_path(char **out, const cJSON *key, const char *field, rv_err *err)
{
	*out = NULL;
	if (!cJSON_IsString(key))
		return rv_err_set(err, RV_EINVAL, "%s.key: expected a string, got %s", field, rv_q_type_name(key));
	const char *k = key->valuestring;
	size_t n = strlen(k);
	if (n == 0 || n > 1024)
		return rv_err_set(err, RV_EINVAL, "%s.key: must be 1..1024 bytes, got %zu", field, n);
	if (k[0] == '$')
		return rv_err_set(err, RV_EINVAL, "%s.key: \"%.100s\" may not start with '$'", field, k);
	char *p = rv_malloc(NULL, n + 1);
	if (!p)
		return rv_err_nomem(err);
	size_t o = 0, seg = 0; /* seg: bytes in the current output segment */
	for (size_t i = 0; i < n;) {
		char ch = k[i];
		if (ch == '.') {
			if (seg == 0)
				goto bad;
			p[o++] = '.';
			seg = 0;
			i++;
		} else if (ch == '[') {
			if (seg == 0)
				goto bad;
			i++;
			if (k[i] == ']') {
				/* "a[]": every element, which the library does
				 * for arrays on its own. */
				i++;
			} else {
				size_t d = 0;
				p[o++] = '.';
				while (k[i] >= '0' && k[i] <= '9')
					p[o++] = k[i++], d++;
				if (d == 0 || k[i] != ']')
					goto bad;
				i++;
			}
			if (k[i] && k[i] != '.' && k[i] != '[')
				goto bad;
		} else if (ch == ']') {
			goto bad;
		} else {
			p[o++] = ch;
			seg++;
			i++;
		}
	}
	if (o == 0 || p[o - 1] == '.')
		goto bad;
	p[o] = 0;
	*out = p;
	return RV_OK;
bad:
	rv_dealloc(NULL, p);
	return rv_err_set(err, RV_EINVAL, "%s.key: \"%.100s\" is not a valid path", field, k);
}

/* {path: ops}; takes ownership of ops. */
static rv_status field_expr(cJSON **out, const char *path, cJSON *ops, rv_err *err)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToObject(o, path, ops)) {
		cJSON_Delete(o);
		cJSON_Delete(ops);
		return rv_err_nomem(err);
	}
	*out = o;
	return RV_OK;
}

static bool scalar_ok(const cJSON *v)
{
	return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v);
}

static rv_status tr_match(int *truth, cJSON **expr, const char *path, const cJSON *m, const char *field,
			  rv_err *err)
{
	if (!cJSON_IsObject(m))
		return rv_err_set(err, RV_EINVAL, "%s.match: expected an object, got %s", field, rv_q_type_name(m));
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(m, "value");
	const cJSON *any = cJSON_GetObjectItemCaseSensitive(m, "any");
	const cJSON *except = cJSON_GetObjectItemCaseSensitive(m, "except");
	const char *text_kinds[] = { "text", "text_any", "phrase" };
	for (size_t i = 0; i < 3; i++)
		if (cJSON_GetObjectItemCaseSensitive(m, text_kinds[i]))
			return rv_err_set(err, RV_EINVAL, "%s.match.%s: full-text matching is not supported", field,
					  text_kinds[i]);
	if (!!value + !!any + !!except != 1)
		return rv_err_set(err, RV_EINVAL, "%s.match: expected exactly one of value, any, except", field);
	cJSON *ops = cJSON_CreateObject();
	if (!ops)
		return rv_err_nomem(err);
	*truth = T_EXPR;
	if (value) {
		if (!scalar_ok(value)) {
			cJSON_Delete(ops);
			return rv_err_set(err, RV_EINVAL, "%s.match.value: expected a string, number or boolean, got %s",
					  field, rv_q_type_name(value));
		}
		if (!cJSON_AddItemToObject(ops, "$eq", cJSON_Duplicate(value, true)))
			goto nomem;
		return field_expr(expr, path, ops, err);
	}
	const cJSON *list = any ? any : except;
	const char *name = any ? "any" : "except";
	if (!cJSON_IsArray(list)) {
		cJSON_Delete(ops);
		return rv_err_set(err, RV_EINVAL, "%s.match.%s: expected an array, got %s", field, name,
				  rv_q_type_name(list));
	}
	cJSON *arr = cJSON_CreateArray();
	if (!arr || !cJSON_AddItemToObject(ops, any ? "$in" : "$nin", arr)) {
		cJSON_Delete(arr);
		goto nomem;
	}
	if (except) {
		/* Qdrant's except needs a value: a missing field, null or []
		 * does not match. */
		if (!cJSON_AddItemToArray(arr, cJSON_CreateNull()) || !cJSON_AddItemToArray(arr, cJSON_CreateArray()))
			goto nomem;
	}
	size_t i = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, list)
	{
		if (!scalar_ok(x)) {
			cJSON_Delete(ops);
			return rv_err_set(err, RV_EINVAL, "%s.match.%s[%zu]: expected a string, number or boolean, got %s",
					  field, name, i, rv_q_type_name(x));
		}
		if (!cJSON_AddItemToArray(arr, cJSON_Duplicate(x, true)))
			goto nomem;
		i++;
	}
	if (any && i == 0) {
		/* Nothing is in the empty set. */
		cJSON_Delete(ops);
		*truth = T_FALSE;
		*expr = NULL;
		return RV_OK;
	}
	return field_expr(expr, path, ops, err);
nomem:
	cJSON_Delete(ops);
	return rv_err_nomem(err);
}

static rv_status tr_range(cJSON **expr, const char *path, const cJSON *r, const char *field, rv_err *err)
{
	static const char *const names[] = { "gt", "gte", "lt", "lte" };
	static const char *const ops_names[] = { "$gt", "$gte", "$lt", "$lte" };
	if (!cJSON_IsObject(r))
		return rv_err_set(err, RV_EINVAL, "%s.range: expected an object, got %s", field, rv_q_type_name(r));
	cJSON *ops = cJSON_CreateObject();
	if (!ops)
		return rv_err_nomem(err);
	const cJSON *x;
	cJSON_ArrayForEach(x, r)
	{
		size_t i = 0;
		while (i < 4 && strcmp(x->string, names[i]) != 0)
			i++;
		if (i == 4) {
			cJSON_Delete(ops);
			return rv_err_set(err, RV_EINVAL, "%s.range: unknown bound \"%.64s\" (expected gt, gte, lt, lte)",
					  field, x->string);
		}
		if (cJSON_IsNull(x))
			continue; /* clients send unset bounds as null */
		if (!cJSON_IsNumber(x) && !cJSON_IsString(x)) {
			cJSON_Delete(ops);
			return rv_err_set(err, RV_EINVAL, "%s.range.%s: expected a number, got %s", field, names[i],
					  rv_q_type_name(x));
		}
		if (cJSON_GetObjectItemCaseSensitive(ops, ops_names[i])) {
			cJSON_Delete(ops);
			return rv_err_set(err, RV_EINVAL, "%s.range.%s: given twice", field, names[i]);
		}
		if (!cJSON_AddItemToObject(ops, ops_names[i], cJSON_Duplicate(x, true))) {
			cJSON_Delete(ops);
			return rv_err_nomem(err);
		}
	}
	if (!ops->child) {
		cJSON_Delete(ops);
		return rv_err_set(err, RV_EINVAL, "%s.range: needs at least one of gt, gte, lt, lte", field);
	}
	return field_expr(expr, path, ops, err);
}

/* {"$in": [null, []]} (is_empty) or {"$exists": true, "$eq": null} (is_null). */
static rv_status tr_empty_null(cJSON **expr, const char *path, bool is_null, rv_err *err)
{
	cJSON *ops = cJSON_CreateObject();
	if (!ops)
		return rv_err_nomem(err);
	bool ok;
	if (is_null) {
		ok = cJSON_AddItemToObject(ops, "$exists", cJSON_CreateTrue()) &&
		     cJSON_AddItemToObject(ops, "$eq", cJSON_CreateNull());
	} else {
		cJSON *arr = cJSON_CreateArray();
		ok = arr && cJSON_AddItemToObject(ops, "$in", arr);
		if (!ok)
			cJSON_Delete(arr);
		ok = ok && cJSON_AddItemToArray(arr, cJSON_CreateNull()) &&
		     cJSON_AddItemToArray(arr, cJSON_CreateArray());
	}
	if (!ok) {
		cJSON_Delete(ops);
		return rv_err_nomem(err);
	}
	return field_expr(expr, path, ops, err);
}

/* {"$nor": [inner]}; takes ownership of inner. */
static rv_status negate(cJSON **out, cJSON *inner, rv_err *err)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr || !cJSON_AddItemToArray(arr, inner)) {
		cJSON_Delete(arr);
		cJSON_Delete(inner);
		return rv_err_nomem(err);
	}
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToObject(o, "$nor", arr)) {
		cJSON_Delete(o);
		cJSON_Delete(arr);
		return rv_err_nomem(err);
	}
	*out = o;
	return RV_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strs(char **s, size_t n)
{
	if (s)
		for (size_t i = 0; i < n; i++)
			rv_dealloc(NULL, s[i]);
	rv_dealloc(NULL, s);
}

/* Sort and remove repeats in place; returns the new count. */
static size_t sort_unique(char **s, size_t n)
{
	if (n == 0)
		return 0;
	qsort(s, n, sizeof *s, cmp_str);
	size_t o = 1;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(s[i], s[o - 1]) == 0)
			rv_dealloc(NULL, s[i]);
		else
			s[o++] = s[i];
	}
	return o;
}

static rv_status tr_has_id(int *truth, tctx *c, const cJSON *list, const char *field)
{
	rv_q_filter *f = c->f;
	if (!c->collect) {
		for (size_t i = 0; i < f->n_hasid; i++)
			if (f->hasid[i].node == list) {
				*truth = (c->mask >> i) & 1 ? T_TRUE : T_FALSE;
				return RV_OK;
			}
		return rv_err_set(c->err, RV_ERROR, "%s.has_id: internal error: condition not registered", field);
	}
	if (!cJSON_IsArray(list))
		return rv_err_set(c->err, RV_EINVAL, "%s.has_id: expected an array of ids, got %s", field,
				  rv_q_type_name(list));
	if (f->n_hasid >= RV_Q_MAX_HAS_ID_NODES)
		return rv_err_set(c->err, RV_EINVAL, "%s.has_id: at most %d has_id conditions in one filter", field,
				  RV_Q_MAX_HAS_ID_NODES);
	size_t n = (size_t)cJSON_GetArraySize(list);
	if (n > RV_Q_MAX_HAS_ID || f->n_ids + n > RV_Q_MAX_HAS_ID)
		return rv_err_set(c->err, RV_EINVAL, "%s.has_id: at most %d ids in the has_id conditions of one filter",
				  field, RV_Q_MAX_HAS_ID);
	rv_q_hasid *h = rv_realloc(NULL, f->hasid, (f->n_hasid + 1) * sizeof *h);
	if (!h)
		return rv_err_nomem(c->err);
	f->hasid = h;
	h = &f->hasid[f->n_hasid];
	h->node = list;
	h->n = 0;
	h->ids = n ? rv_calloc(NULL, n, sizeof(char *)) : NULL;
	if (n && !h->ids)
		return rv_err_nomem(c->err);
	f->n_hasid++;
	/* Also count them into the union now (sorted at the end). */
	char **u = rv_realloc(NULL, f->ids, (f->n_ids + n + 1) * sizeof(char *));
	if (!u)
		return rv_err_nomem(c->err);
	f->ids = u;
	const cJSON *x;
	size_t i = 0;
	cJSON_ArrayForEach(x, list)
	{
		char id[RV_Q_ID_MAX + 1], fld[96];
		snprintf(fld, sizeof fld, "%.80s.has_id[%zu]", field, i++);
		rv_status st = rv_q_id(id, x, fld, c->err);
		if (st != RV_OK)
			return st;
		char *a = rv_strndup(NULL, id, strlen(id));
		char *b = rv_strndup(NULL, id, strlen(id));
		if (!a || !b) {
			rv_dealloc(NULL, a);
			rv_dealloc(NULL, b);
			return rv_err_nomem(c->err);
		}
		h->ids[h->n++] = a;
		f->ids[f->n_ids++] = b;
	}
	h->n = sort_unique(h->ids, h->n);
	*truth = T_FALSE; /* for points outside every list */
	return RV_OK;
}

static rv_status tr_filter(int *truth, cJSON **expr, tctx *c, const cJSON *f, const char *field, int depth);

static bool is_filter_key(const char *k)
{
	return !strcmp(k, "must") || !strcmp(k, "should") || !strcmp(k, "must_not") || !strcmp(k, "min_should");
}

static rv_status tr_cond(int *truth, cJSON **expr, tctx *c, const cJSON *cond, const char *field, int depth)
{
	rv_err *err = c->err;
	rv_status st = RV_OK;
	char *path = NULL;
	*expr = NULL;
	*truth = T_TRUE;
	if (!cJSON_IsObject(cond))
		return rv_err_set(err, RV_EINVAL, "%s: expected a condition object, got %s", field,
				  rv_q_type_name(cond));
	const cJSON *x;
	bool nested = false;
	cJSON_ArrayForEach(x, cond) nested |= is_filter_key(x->string);
	if (nested)
		return tr_filter(truth, expr, c, cond, field, depth + 1);
	const cJSON *has_id = cJSON_GetObjectItemCaseSensitive(cond, "has_id");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(cond, "key");
	const cJSON *is_empty = cJSON_GetObjectItemCaseSensitive(cond, "is_empty");
	const cJSON *is_null = cJSON_GetObjectItemCaseSensitive(cond, "is_null");
	if (has_id)
		return tr_has_id(truth, c, has_id, field);
	if (cJSON_GetObjectItemCaseSensitive(cond, "nested"))
		return rv_err_set(err, RV_EINVAL, "%s.nested: nested object filters are not supported", field);
	if (!key && (cJSON_IsObject(is_empty) || cJSON_IsObject(is_null))) {
		/* {"is_empty": {"key": K}} / {"is_null": {"key": K}} */
		const cJSON *inner = is_empty ? is_empty : is_null;
		char fld[160];
		snprintf(fld, sizeof fld, "%.120s.%s", field, is_empty ? "is_empty" : "is_null");
		if ((st = q_path(&path, cJSON_GetObjectItemCaseSensitive(inner, "key"), fld, err)) != RV_OK)
			return st;
		*truth = T_EXPR;
		st = tr_empty_null(expr, path, !is_empty, err);
		rv_dealloc(NULL, path);
		return st;
	}
	if (!key)
		return rv_err_set(err, RV_EINVAL,
				  "%s: unknown condition (expected key with match or range, is_empty, is_null, has_id, "
				  "or a filter with must/should/must_not)",
				  field);
	/* A field condition: {"key": K, "match" | "range" | "is_empty": true | "is_null": true}. */
	if ((st = q_path(&path, key, field, err)) != RV_OK)
		return st;
	junction j;
	j_init(&j, J_AND);
	bool any = false;
	cJSON_ArrayForEach(x, cond)
	{
		const char *k = x->string;
		int t = T_EXPR;
		cJSON *e = NULL;
		if (!strcmp(k, "key")) {
			continue;
		} else if (!strcmp(k, "match")) {
			st = tr_match(&t, &e, path, x, field, err);
		} else if (!strcmp(k, "range")) {
			st = tr_range(&e, path, x, field, err);
		} else if (!strcmp(k, "is_empty") || !strcmp(k, "is_null")) {
			if (cJSON_IsNull(x))
				continue;
			if (!cJSON_IsBool(x)) {
				st = rv_err_set(err, RV_EINVAL, "%s.%s: expected true or false, got %s", field, k,
						rv_q_type_name(x));
			} else if (cJSON_IsTrue(x)) {
				st = tr_empty_null(&e, path, k[3] == 'n', err);
			} else {
				/* "is_empty": false means "not empty". */
				cJSON *inner = NULL;
				st = tr_empty_null(&inner, path, k[3] == 'n', err);
				if (st == RV_OK)
					st = negate(&e, inner, err);
			}
		} else if (!strncmp(k, "geo_", 4) || !strcmp(k, "values_count") || !strcmp(k, "datetime_range")) {
			st = rv_err_set(err, RV_EINVAL, "%s.%s: not supported", field, k);
		} else {
			st = rv_err_set(err, RV_EINVAL, "%s: unknown member \"%.64s\" of a field condition", field, k);
		}
		if (st != RV_OK)
			break;
		any = true;
		if ((st = j_add(&j, t, e, err)) != RV_OK)
			break;
	}
	if (st == RV_OK && !any)
		st = rv_err_set(err, RV_EINVAL, "%s: condition on \"%.100s\" has no match, range, is_empty or is_null",
				field, key->valuestring);
	if (st != RV_OK) {
		cJSON_Delete(j.parts);
		rv_dealloc(NULL, path);
		return st;
	}
	rv_dealloc(NULL, path);
	return j_finish(truth, expr, &j, err);
}

/* One clause (must, should or must_not): an array of conditions or a
 * single condition, folded into j. */
static rv_status tr_clause(junction *j, tctx *c, const cJSON *clause, const char *name, const char *field, int depth)
{
	char fld[200];
	if (!clause || cJSON_IsNull(clause))
		return RV_OK;
	if (cJSON_IsObject(clause)) {
		int t;
		cJSON *e;
		snprintf(fld, sizeof fld, "%.150s.%s", field, name);
		rv_status st = tr_cond(&t, &e, c, clause, fld, depth);
		return st != RV_OK ? st : j_add(j, t, e, c->err);
	}
	if (!cJSON_IsArray(clause))
		return rv_err_set(c->err, RV_EINVAL, "%s.%s: expected an array of conditions, got %s", field, name,
				  rv_q_type_name(clause));
	size_t i = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, clause)
	{
		int t;
		cJSON *e;
		snprintf(fld, sizeof fld, "%.150s.%s[%zu]", field, name, i++);
		rv_status st = tr_cond(&t, &e, c, x, fld, depth);
		if (st == RV_OK)
			st = j_add(j, t, e, c->err);
		if (st != RV_OK)
			return st;
	}
	return RV_OK;
}

static rv_status tr_filter(int *truth, cJSON **expr, tctx *c, const cJSON *f, const char *field, int depth)
{
	rv_status st = RV_OK;
	*truth = T_TRUE;
	*expr = NULL;
	if (depth > RV_Q_MAX_FILTER_DEPTH)
		return rv_err_set(c->err, RV_EINVAL, "%s: filters nested deeper than %d levels", field,
				  RV_Q_MAX_FILTER_DEPTH);
	const cJSON *x;
	cJSON_ArrayForEach(x, f)
	{
		if (!strcmp(x->string, "min_should"))
			return rv_err_set(c->err, RV_EINVAL, "%s.min_should: not supported", field);
		if (!is_filter_key(x->string))
			return rv_err_set(c->err, RV_EINVAL,
					  "%s: unknown member \"%.64s\" (expected must, should, must_not)", field,
					  x->string);
	}
	junction all, must, should, must_not;
	j_init(&all, J_AND);
	j_init(&must, J_AND);
	j_init(&should, J_OR);
	j_init(&must_not, J_NOR);
	int t;
	cJSON *e;
	/* Each clause is translated in full even when an earlier one
	 * decided the result, so that the first pass sees every has_id. */
	if ((st = tr_clause(&must, c, cJSON_GetObjectItemCaseSensitive(f, "must"), "must", field, depth)) != RV_OK)
		goto fail;
	if ((st = tr_clause(&should, c, cJSON_GetObjectItemCaseSensitive(f, "should"), "should", field, depth)) !=
	    RV_OK)
		goto fail;
	if ((st = tr_clause(&must_not, c, cJSON_GetObjectItemCaseSensitive(f, "must_not"), "must_not", field,
			    depth)) != RV_OK)
		goto fail;
	junction *parts[] = { &must, &should, &must_not };
	for (int i = 0; i < 3; i++) {
		st = j_finish(&t, &e, parts[i], c->err);
		parts[i]->parts = NULL;
		if (st == RV_OK)
			st = j_add(&all, t, e, c->err);
		if (st != RV_OK) {
			for (int k = i + 1; k < 3; k++)
				cJSON_Delete(parts[k]->parts);
			cJSON_Delete(all.parts);
			return st;
		}
	}
	return j_finish(truth, expr, &all, c->err);
fail:
	cJSON_Delete(must.parts);
	cJSON_Delete(should.parts);
	cJSON_Delete(must_not.parts);
	return st;
}

void rv_q_filter_free(rv_q_filter *f)
{
	if (!f)
		return;
	cJSON_free(f->mongo);
	cJSON_Delete(f->qdrant);
	for (size_t i = 0; i < f->n_hasid; i++)
		free_strs(f->hasid[i].ids, f->hasid[i].n);
	rv_dealloc(NULL, f->hasid);
	free_strs(f->ids, f->n_ids);
	memset(f, 0, sizeof *f);
}

/* Check the text with the library's own compiler, so that a bad filter
 * is refused with its message before any search runs. */
static rv_status check_mongo(const char *text, const char *field, rv_err *err)
{
	rv_filter *cf = NULL;
	rv_err e = { "" };
	rv_status st = rv_filter_compile(&cf, text, strlen(text), NULL, &e);
	rv_filter_free(cf);
	if (st != RV_OK) {
		const char *m = e.msg;
		if (!strncmp(m, "filter: ", 8))
			m += 8;
		return rv_err_set(err, st, "%s: %s", field, m);
	}
	return RV_OK;
}

rv_status rv_q_filter_parse(rv_q_filter *out, const cJSON *filter, const char *field, rv_err *err)
{
	rv_status st = RV_OK;
	memset(out, 0, sizeof *out);
	if (!filter || cJSON_IsNull(filter))
		return RV_OK;
	if (!cJSON_IsObject(filter))
		return rv_err_set(err, RV_EINVAL, "%s: expected an object, got %s", field, rv_q_type_name(filter));
	if (!filter->child)
		return RV_OK;
	bool qdrant = false;
	const cJSON *x;
	cJSON_ArrayForEach(x, filter) qdrant |= is_filter_key(x->string);
	if (!qdrant) {
		/* The library's own language. */
		if (!(out->mongo = cJSON_PrintUnformatted(filter)))
			return rv_err_nomem(err);
		if ((st = check_mongo(out->mongo, field, err)) != RV_OK)
			rv_q_filter_free(out);
		return st;
	}
	/* Work on a private copy: has_id conditions are found again by node
	 * address in later passes. */
	if (!(out->qdrant = cJSON_Duplicate(filter, true)))
		return rv_err_nomem(err);
	tctx c = { out, true, 0, err };
	int truth;
	cJSON *expr = NULL;
	if ((st = tr_filter(&truth, &expr, &c, out->qdrant, field, 0)) != RV_OK)
		goto done;
	out->n_ids = sort_unique(out->ids, out->n_ids);
	out->none = truth == T_FALSE;
	if (truth == T_EXPR) {
		out->mongo = cJSON_PrintUnformatted(expr);
		if (!out->mongo) {
			st = rv_err_nomem(err);
			goto done;
		}
		if ((st = check_mongo(out->mongo, field, err)) != RV_OK)
			goto done;
	}
	if (out->n_hasid == 0) {
		cJSON_Delete(out->qdrant);
		out->qdrant = NULL;
	}
done:
	cJSON_Delete(expr);
	if (st != RV_OK)
		rv_q_filter_free(out);
	return st;
}

uint64_t rv_q_filter_mask(const rv_q_filter *f, const char *id)
{
	uint64_t mask = 0;
	for (size_t i = 0; i < f->n_hasid; i++)
		if (f->hasid[i].n && bsearch(&id, f->hasid[i].ids, f->hasid[i].n, sizeof(char *), cmp_str))
			mask |= (uint64_t)1 << i;
	return mask;
}

rv_status rv_q_filter_for_mask(char **mongo, int *truth, const rv_q_filter *f, uint64_t mask, rv_err *err)
{
	*mongo = NULL;
	if (!f->qdrant) {
		*truth = f->none ? 0 : f->mongo ? -1 : 1;
		if (*truth == -1 && !(*mongo = rv_strndup(NULL, f->mongo, strlen(f->mongo))))
			return rv_err_nomem(err);
		return RV_OK;
	}
	tctx c = { (rv_q_filter *)f, false, mask, err };
	cJSON *expr = NULL;
	rv_status st = tr_filter(truth, &expr, &c, f->qdrant, "filter", 0);
	if (st == RV_OK && *truth == T_EXPR) {
		char *s = cJSON_PrintUnformatted(expr);
		if (!s || !(*mongo = rv_strndup(NULL, s, strlen(s))))
			st = rv_err_nomem(err);
		cJSON_free(s);
	}
	cJSON_Delete(expr);
	return st;
}

