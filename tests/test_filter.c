/*
 * test_filter.c - the payload filter language: every operator on every
 * JSON type, paths through objects and arrays, missing fields and missing
 * payloads, logical combinations, error messages, allocation failures,
 * concurrent evaluation, and a randomized comparison against a separate,
 * deliberately plain reference evaluator.
 */
#include "harness.h"

#include <cjson/cJSON.h>

#include "db/filter.h"
#include "util/util.h"

/* Compile filter, match it against payload (NULL text = no payload).
 * Returns 1 / 0, or -1 when the filter does not compile (message in
 * last_err). */
static rv_err last_err;

static int fm(const char *filter, const char *payload)
{
	rv_filter *f = NULL;
	rv_status st = rv_filter_compile(&f, filter, strlen(filter), NULL, &last_err);
	if (st != RV_OK)
		return -1;
	cJSON *p = payload ? cJSON_Parse(payload) : NULL;
	if (payload && !p) {
		fprintf(stderr, "bad test payload: %s\n", payload);
		rv_filter_free(f);
		return -2;
	}
	int r = rv_filter_match(f, p) ? 1 : 0;
	cJSON_Delete(p);
	rv_filter_free(f);
	return r;
}

typedef struct mcase {
	const char *filter, *payload;
	int want;
} mcase;

static int run_cases(const mcase *cs, size_t n)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		int got = fm(cs[i].filter, cs[i].payload);
		if (got != cs[i].want) {
			fprintf(stderr, "  filter %s on %s: got %d, want %d%s%s\n", cs[i].filter,
				cs[i].payload ? cs[i].payload : "(no payload)", got, cs[i].want,
				got == -1 ? ": " : "", got == -1 ? last_err.msg : "");
			bad++;
		}
	}
	return bad;
}

#define RUN(cases) CHECK(run_cases(cases, sizeof(cases) / sizeof(cases[0])) == 0)

/* ======================================================================
 * Operators by type
 * ==================================================================== */

TEST(numbers)
{
	static const mcase cs[] = {
		{ "{\"y\": 2000}", "{\"y\": 2000}", 1 },
		{ "{\"y\": 2000}", "{\"y\": 2000.0}", 1 },
		{ "{\"y\": 2000}", "{\"y\": 2001}", 0 },
		{ "{\"y\": 2000}", "{\"y\": \"2000\"}", 0 },
		{ "{\"y\": {\"$eq\": 1.5}}", "{\"y\": 1.5}", 1 },
		{ "{\"y\": {\"$eq\": 1.5}}", "{\"y\": 1.25}", 0 },
		{ "{\"y\": {\"$ne\": 3}}", "{\"y\": 4}", 1 },
		{ "{\"y\": {\"$ne\": 3}}", "{\"y\": 3}", 0 },
		{ "{\"y\": {\"$ne\": 3}}", "{\"y\": \"3\"}", 1 },
		{ "{\"y\": {\"$gt\": 3}}", "{\"y\": 4}", 1 },
		{ "{\"y\": {\"$gt\": 3}}", "{\"y\": 3}", 0 },
		{ "{\"y\": {\"$gte\": 3}}", "{\"y\": 3}", 1 },
		{ "{\"y\": {\"$gte\": 3}}", "{\"y\": 2.999}", 0 },
		{ "{\"y\": {\"$lt\": 3}}", "{\"y\": 2.5}", 1 },
		{ "{\"y\": {\"$lt\": 3}}", "{\"y\": 3}", 0 },
		{ "{\"y\": {\"$lte\": 3}}", "{\"y\": 3}", 1 },
		{ "{\"y\": {\"$lte\": 3}}", "{\"y\": 3.5}", 0 },
		{ "{\"y\": {\"$lt\": -1e300}}", "{\"y\": -1e301}", 1 },
		{ "{\"y\": {\"$gte\": 2000, \"$lt\": 2010}}", "{\"y\": 2005}", 1 },
		{ "{\"y\": {\"$gte\": 2000, \"$lt\": 2010}}", "{\"y\": 2010}", 0 },
		{ "{\"y\": {\"$gte\": 2000, \"$lt\": 2010}}", "{\"y\": 1999}", 0 },
		/* Mixed types never order. */
		{ "{\"y\": {\"$gt\": 3}}", "{\"y\": \"9\"}", 0 },
		{ "{\"y\": {\"$lt\": 3}}", "{\"y\": true}", 0 },
		{ "{\"y\": {\"$lt\": 3}}", "{\"y\": null}", 0 },
		{ "{\"y\": {\"$lt\": 3}}", "{\"y\": {\"a\": 1}}", 0 },
		{ "{\"y\": {\"$in\": [1, 2, 3]}}", "{\"y\": 2}", 1 },
		{ "{\"y\": {\"$in\": [1, 2, 3]}}", "{\"y\": 4}", 0 },
		{ "{\"y\": {\"$in\": []}}", "{\"y\": 4}", 0 },
		{ "{\"y\": {\"$nin\": [1, 2, 3]}}", "{\"y\": 4}", 1 },
		{ "{\"y\": {\"$nin\": [1, 2, 3]}}", "{\"y\": 3}", 0 },
		{ "{\"y\": {\"$nin\": []}}", "{\"y\": 3}", 1 },
	};
	RUN(cs);
}

TEST(strings)
{
	static const mcase cs[] = {
		{ "{\"lang\": \"en\"}", "{\"lang\": \"en\"}", 1 },
		{ "{\"lang\": \"en\"}", "{\"lang\": \"EN\"}", 0 },
		{ "{\"lang\": \"en\"}", "{\"lang\": \"en \"}", 0 },
		{ "{\"lang\": \"\"}", "{\"lang\": \"\"}", 1 },
		{ "{\"lang\": {\"$ne\": \"en\"}}", "{\"lang\": \"de\"}", 1 },
		{ "{\"s\": {\"$gt\": \"b\"}}", "{\"s\": \"c\"}", 1 },
		{ "{\"s\": {\"$gt\": \"b\"}}", "{\"s\": \"ba\"}", 1 },
		{ "{\"s\": {\"$gt\": \"b\"}}", "{\"s\": \"b\"}", 0 },
		{ "{\"s\": {\"$gt\": \"b\"}}", "{\"s\": \"B\"}", 0 },
		{ "{\"s\": {\"$gte\": \"b\"}}", "{\"s\": \"b\"}", 1 },
		{ "{\"s\": {\"$lt\": \"ab\"}}", "{\"s\": \"a\"}", 1 },
		{ "{\"s\": {\"$lt\": \"ab\"}}", "{\"s\": \"\"}", 1 },
		{ "{\"s\": {\"$lt\": \"ab\"}}", "{\"s\": \"abc\"}", 0 },
		{ "{\"s\": {\"$lte\": \"ab\"}}", "{\"s\": \"ab\"}", 1 },
		/* Bytewise: UTF-8 bytes above 0x7f sort after ASCII. */
		{ "{\"s\": {\"$gt\": \"z\"}}", "{\"s\": \"\\u00e9\"}", 1 },
		{ "{\"s\": {\"$gt\": \"9\"}}", "{\"s\": 10}", 0 },
		{ "{\"s\": {\"$in\": [\"a\", \"b\"]}}", "{\"s\": \"b\"}", 1 },
		{ "{\"s\": {\"$in\": [\"a\", \"b\"]}}", "{\"s\": \"c\"}", 0 },
		{ "{\"s\": {\"$nin\": [\"a\", \"b\"]}}", "{\"s\": \"c\"}", 1 },
		{ "{\"s\": {\"$in\": [1, \"1\"]}}", "{\"s\": \"1\"}", 1 },
	};
	RUN(cs);
}

TEST(booleans_and_null)
{
	static const mcase cs[] = {
		{ "{\"b\": true}", "{\"b\": true}", 1 },
		{ "{\"b\": true}", "{\"b\": false}", 0 },
		{ "{\"b\": true}", "{\"b\": 1}", 0 },
		{ "{\"b\": false}", "{\"b\": 0}", 0 },
		{ "{\"b\": false}", "{\"b\": false}", 1 },
		{ "{\"b\": {\"$ne\": true}}", "{\"b\": false}", 1 },
		{ "{\"b\": {\"$ne\": true}}", "{}", 1 },
		{ "{\"b\": {\"$in\": [true]}}", "{\"b\": true}", 1 },
		{ "{\"b\": {\"$nin\": [false]}}", "{\"b\": true}", 1 },
		/* null matches null or missing, as in MongoDB. */
		{ "{\"n\": null}", "{\"n\": null}", 1 },
		{ "{\"n\": null}", "{}", 1 },
		{ "{\"n\": null}", "{\"n\": 0}", 0 },
		{ "{\"n\": null}", "{\"n\": false}", 0 },
		{ "{\"n\": null}", "{\"n\": []}", 0 },
		{ "{\"n\": null}", "{\"n\": [1, null]}", 1 },
		{ "{\"n\": null}", NULL, 1 },
		{ "{\"n\": {\"$eq\": null}}", "{\"m\": 1}", 1 },
		{ "{\"n\": {\"$ne\": null}}", "{\"n\": 0}", 1 },
		{ "{\"n\": {\"$ne\": null}}", "{\"n\": null}", 0 },
		{ "{\"n\": {\"$ne\": null}}", "{}", 0 },
		{ "{\"n\": {\"$in\": [null, 1]}}", "{}", 1 },
		{ "{\"n\": {\"$in\": [2, 1]}}", "{}", 0 },
		{ "{\"n\": {\"$nin\": [null]}}", "{}", 0 },
		{ "{\"n\": {\"$nin\": [null]}}", "{\"n\": \"x\"}", 1 },
	};
	RUN(cs);
}

TEST(exists_and_missing)
{
	static const mcase cs[] = {
		{ "{\"a\": {\"$exists\": true}}", "{\"a\": null}", 1 },
		{ "{\"a\": {\"$exists\": true}}", "{\"a\": 0}", 1 },
		{ "{\"a\": {\"$exists\": true}}", "{\"b\": 0}", 0 },
		{ "{\"a\": {\"$exists\": false}}", "{\"b\": 0}", 1 },
		{ "{\"a\": {\"$exists\": false}}", "{\"a\": []}", 0 },
		{ "{\"a.b\": {\"$exists\": true}}", "{\"a\": {\"b\": 1}}", 1 },
		{ "{\"a.b\": {\"$exists\": true}}", "{\"a\": {\"c\": 1}}", 0 },
		{ "{\"a.b\": {\"$exists\": true}}", "{\"a\": 5}", 0 },
		/* Missing: positive operators fail, negative ones hold. */
		{ "{\"a\": 1}", "{}", 0 },
		{ "{\"a\": {\"$gt\": 1}}", "{}", 0 },
		{ "{\"a\": {\"$lte\": 1}}", "{}", 0 },
		{ "{\"a\": {\"$in\": [1]}}", "{}", 0 },
		{ "{\"a\": {\"$ne\": 1}}", "{}", 1 },
		{ "{\"a\": {\"$nin\": [1]}}", "{}", 1 },
		{ "{\"a\": {\"$not\": {\"$gt\": 1}}}", "{}", 1 },
		/* No payload is an empty object. */
		{ "{}", NULL, 1 },
		{ "{\"a\": 1}", NULL, 0 },
		{ "{\"a\": {\"$gt\": 0}}", NULL, 0 },
		{ "{\"a\": {\"$ne\": 1}}", NULL, 1 },
		{ "{\"a\": {\"$nin\": [1]}}", NULL, 1 },
		{ "{\"a\": {\"$exists\": false}}", NULL, 1 },
		{ "{\"a\": {\"$exists\": true}}", NULL, 0 },
		{ "{\"$not\": {\"a\": 1}}", NULL, 1 },
		{ "{\"a.b.c\": {\"$not\": {\"$eq\": 1}}}", NULL, 1 },
		/* A payload that is not an object also has no fields. */
		{ "{\"0\": 1}", "[1]", 0 },
		{ "{\"a\": {\"$ne\": 1}}", "7", 1 },
		/* The empty filter matches everything. */
		{ "{}", "{\"a\": 1}", 1 },
	};
	RUN(cs);
}

TEST(objects_and_paths)
{
	static const mcase cs[] = {
		{ "{\"m.a\": \"x\"}", "{\"m\": {\"a\": \"x\"}}", 1 },
		{ "{\"m.a\": \"x\"}", "{\"m\": {\"a\": \"y\"}}", 0 },
		{ "{\"m.a.b.c\": 1}", "{\"m\": {\"a\": {\"b\": {\"c\": 1}}}}", 1 },
		{ "{\"m.a.b.c\": 1}", "{\"m\": {\"a\": {\"b\": 1}}}", 0 },
		{ "{\"m.a\": {\"$gt\": 1}}", "{\"m\": 5}", 0 },
		/* The dotted key is a path, not a member named "m.a". */
		{ "{\"m.a\": 1}", "{\"m.a\": 1}", 0 },
		/* Whole-object equality: deep, member order ignored. */
		{ "{\"m\": {\"a\": 1, \"b\": [1, 2]}}", "{\"m\": {\"b\": [1, 2], \"a\": 1}}", 1 },
		{ "{\"m\": {\"a\": 1, \"b\": [1, 2]}}", "{\"m\": {\"b\": [2, 1], \"a\": 1}}", 0 },
		{ "{\"m\": {\"a\": 1}}", "{\"m\": {\"a\": 1, \"b\": 2}}", 0 },
		{ "{\"m\": {\"a\": 1, \"b\": 2}}", "{\"m\": {\"a\": 1}}", 0 },
		{ "{\"m\": {\"a\": {\"c\": null}}}", "{\"m\": {\"a\": {\"c\": null}}}", 1 },
		{ "{\"m\": {\"a\": {\"c\": null}}}", "{\"m\": {\"a\": {}}}", 0 },
		{ "{\"m\": {}}", "{\"m\": {}}", 1 },
		{ "{\"m\": {}}", "{\"m\": {\"a\": 1}}", 0 },
		{ "{\"m\": {\"$eq\": {\"a\": 1}}}", "{\"m\": {\"a\": 1}}", 1 },
		{ "{\"m\": {\"$ne\": {\"a\": 1}}}", "{\"m\": {\"a\": 2}}", 1 },
		{ "{\"m\": {\"$in\": [{\"a\": 1}, 3]}}", "{\"m\": {\"a\": 1}}", 1 },
		{ "{\"m\": {\"$in\": [{\"a\": 1}, 3]}}", "{\"m\": 3}", 1 },
		{ "{\"m\": {\"$in\": [{\"a\": 1}, 3]}}", "{\"m\": {\"a\": 3}}", 0 },
		/* Numeric segments are member names on objects. */
		{ "{\"m.0\": 1}", "{\"m\": {\"0\": 1}}", 1 },
		/* Member names are case-sensitive. */
		{ "{\"M\": 1}", "{\"m\": 1}", 0 },
	};
	RUN(cs);
}

TEST(arrays)
{
	static const mcase cs[] = {
		/* Any element. */
		{ "{\"tags\": \"a\"}", "{\"tags\": [\"b\", \"a\"]}", 1 },
		{ "{\"tags\": \"a\"}", "{\"tags\": [\"b\", \"c\"]}", 0 },
		{ "{\"tags\": \"a\"}", "{\"tags\": []}", 0 },
		{ "{\"tags\": {\"$in\": [\"x\", \"c\"]}}", "{\"tags\": [\"b\", \"c\"]}", 1 },
		{ "{\"tags\": {\"$in\": [\"x\", \"y\"]}}", "{\"tags\": [\"b\", \"c\"]}", 0 },
		{ "{\"n\": {\"$gt\": 5}}", "{\"n\": [1, 7]}", 1 },
		{ "{\"n\": {\"$gt\": 5}}", "{\"n\": [1, 3]}", 0 },
		{ "{\"n\": {\"$gt\": 5}}", "{\"n\": [\"9\", 3]}", 0 },
		/* Each operator may be met by a different element (MongoDB). */
		{ "{\"n\": {\"$gt\": 5, \"$lt\": 2}}", "{\"n\": [1, 7]}", 1 },
		{ "{\"n\": {\"$gt\": 5, \"$lt\": 2}}", "{\"n\": [3, 7]}", 0 },
		/* $ne / $nin: no element equal. */
		{ "{\"tags\": {\"$ne\": \"a\"}}", "{\"tags\": [\"b\", \"a\"]}", 0 },
		{ "{\"tags\": {\"$ne\": \"a\"}}", "{\"tags\": [\"b\", \"c\"]}", 1 },
		{ "{\"tags\": {\"$ne\": \"a\"}}", "{\"tags\": []}", 1 },
		{ "{\"tags\": {\"$nin\": [\"a\", \"z\"]}}", "{\"tags\": [\"b\", \"z\"]}", 0 },
		{ "{\"tags\": {\"$nin\": [\"a\", \"z\"]}}", "{\"tags\": [\"b\", \"c\"]}", 1 },
		/* $eq with an array: the whole array, or an element that is one. */
		{ "{\"tags\": [\"a\", \"b\"]}", "{\"tags\": [\"a\", \"b\"]}", 1 },
		{ "{\"tags\": [\"a\", \"b\"]}", "{\"tags\": [\"b\", \"a\"]}", 0 },
		{ "{\"tags\": [\"a\", \"b\"]}", "{\"tags\": [\"a\", \"b\", \"c\"]}", 0 },
		{ "{\"tags\": [\"a\", \"b\"]}", "{\"tags\": [[\"a\", \"b\"], \"c\"]}", 1 },
		{ "{\"tags\": []}", "{\"tags\": []}", 1 },
		{ "{\"tags\": {\"$ne\": [\"a\"]}}", "{\"tags\": [\"a\"]}", 0 },
		/* Only one level: an element of an element is not searched. */
		{ "{\"tags\": \"a\"}", "{\"tags\": [[\"a\"]]}", 0 },
		/* Array index segments. */
		{ "{\"tags.0\": \"a\"}", "{\"tags\": [\"a\", \"b\"]}", 1 },
		{ "{\"tags.1\": \"a\"}", "{\"tags\": [\"a\", \"b\"]}", 0 },
		{ "{\"tags.1\": \"b\"}", "{\"tags\": [\"a\", \"b\"]}", 1 },
		{ "{\"tags.2\": {\"$exists\": true}}", "{\"tags\": [\"a\", \"b\"]}", 0 },
		{ "{\"tags.2\": {\"$exists\": false}}", "{\"tags\": [\"a\", \"b\"]}", 1 },
		{ "{\"tags.2\": null}", "{\"tags\": [\"a\", \"b\"]}", 1 },
		{ "{\"tags.99999999999999999999999\": null}", "{\"tags\": [\"a\"]}", 1 },
		{ "{\"m.1.0\": 4}", "{\"m\": [[1, 2], [4, 5]]}", 1 },
		{ "{\"m.1.1\": 4}", "{\"m\": [[1, 2], [4, 5]]}", 0 },
		{ "{\"items.0.p\": 3}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 1 },
		{ "{\"items.1.p\": 3}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 0 },
		/* Paths through arrays of objects: any element. */
		{ "{\"items.p\": 4}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 1 },
		{ "{\"items.p\": 5}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 0 },
		{ "{\"items.p\": {\"$gte\": 4}}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 1 },
		{ "{\"items.p\": {\"$ne\": 4}}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 0 },
		{ "{\"items.p\": {\"$ne\": 5}}", "{\"items\": [{\"p\": 3}, {\"p\": 4}]}", 1 },
		{ "{\"items.p\": \"x\"}", "{\"items\": [{\"p\": [\"y\", \"x\"]}]}", 1 },
		{ "{\"items.p.q\": 1}", "{\"items\": [{\"p\": [{\"q\": 2}, {\"q\": 1}]}]}", 1 },
		{ "{\"items.p\": 1}", "{\"items\": [1, {\"p\": 1}]}", 1 },
		{ "{\"items.p\": {\"$exists\": true}}", "{\"items\": [{\"q\": 1}, {\"p\": 1}]}", 1 },
		{ "{\"items.p\": {\"$exists\": true}}", "{\"items\": [{\"q\": 1}]}", 0 },
		{ "{\"items.p\": {\"$exists\": true}}", "{\"items\": [1, 2]}", 0 },
		{ "{\"items.p\": {\"$exists\": false}}", "{\"items\": []}", 1 },
		/* No object element to look into: the path ends there. */
		{ "{\"items.p\": null}", "{\"items\": [1, 2]}", 1 },
		{ "{\"items.p\": null}", "{\"items\": []}", 1 },
		{ "{\"items.p\": null}", "{\"items\": [[{\"p\": 1}]]}", 1 },
		{ "{\"items.p\": 1}", "{\"items\": [[{\"p\": 1}]]}", 0 },
		/* One element without the member is enough for null (MongoDB). */
		{ "{\"items.p\": null}", "{\"items\": [{\"p\": 1}, {}]}", 1 },
		{ "{\"items.p\": null}", "{\"items\": [{\"p\": 1}]}", 0 },
		{ "{\"items.p\": {\"$ne\": null}}", "{\"items\": [{\"p\": 1}]}", 1 },
	};
	RUN(cs);
}

TEST(logical)
{
	const char *p = "{\"a\": 1, \"b\": \"x\", \"c\": [1, 2]}";
	const mcase cs[] = {
		{ "{\"a\": 1, \"b\": \"x\"}", p, 1 },
		{ "{\"a\": 1, \"b\": \"y\"}", p, 0 },
		{ "{\"$and\": [{\"a\": 1}, {\"b\": \"x\"}]}", p, 1 },
		{ "{\"$and\": [{\"a\": 1}, {\"b\": \"y\"}]}", p, 0 },
		{ "{\"$and\": [{}]}", p, 1 },
		{ "{\"$or\": [{\"a\": 2}, {\"b\": \"x\"}]}", p, 1 },
		{ "{\"$or\": [{\"a\": 2}, {\"b\": \"y\"}]}", p, 0 },
		{ "{\"$or\": [{\"a\": 2}]}", p, 0 },
		{ "{\"$nor\": [{\"a\": 2}, {\"b\": \"y\"}]}", p, 1 },
		{ "{\"$nor\": [{\"a\": 1}, {\"b\": \"y\"}]}", p, 0 },
		{ "{\"$not\": {\"a\": 1}}", p, 0 },
		{ "{\"$not\": {\"a\": 2}}", p, 1 },
		{ "{\"$not\": {}}", p, 0 },
		{ "{\"$not\": {\"$not\": {\"a\": 1}}}", p, 1 },
		{ "{\"$not\": {\"a\": 1, \"b\": \"y\"}}", p, 1 },
		/* Field-level $not: operators or a plain value. */
		{ "{\"a\": {\"$not\": {\"$gt\": 3}}}", p, 1 },
		{ "{\"a\": {\"$not\": {\"$gt\": 0}}}", p, 0 },
		{ "{\"a\": {\"$not\": 1}}", p, 0 },
		{ "{\"a\": {\"$not\": 2}}", p, 1 },
		{ "{\"a\": {\"$not\": {\"$gt\": 0, \"$lt\": 0.5}}}", p, 1 },
		{ "{\"a\": {\"$not\": {\"$not\": {\"$eq\": 1}}}}", p, 1 },
		{ "{\"c\": {\"$not\": {\"$gt\": 1}}}", p, 0 },
		{ "{\"c\": {\"$not\": {\"x\": 1}}}", p, 1 },
		{ "{\"a\": {\"$gt\": 0, \"$not\": {\"$eq\": 1}}}", p, 0 },
		/* Mixed, nested. */
		{ "{\"a\": 1, \"$or\": [{\"c\": 9}, {\"c\": {\"$lt\": 2}}]}", p, 1 },
		{ "{\"$and\": [{\"$or\": [{\"a\": 2}, {\"z\": null}]}, {\"$nor\": [{\"c\": 3}]}]}", p, 1 },
		{ "{\"$or\": [{\"$and\": [{\"a\": 1}, {\"b\": \"y\"}]}, {\"$not\": {\"c\": 1}}]}", p, 0 },
	};
	RUN(cs);
}

/* ======================================================================
 * Errors
 * ==================================================================== */

typedef struct ecase {
	const char *filter;
	const char *must1, *must2; /* substrings the message must contain */
} ecase;

TEST(errors)
{
	static const ecase cs[] = {
		{ "", "invalid JSON", "byte 0" },
		{ "{\"a\": 1", "invalid JSON", "byte" },
		{ "{\"a\": tru}", "invalid JSON", "byte 6" },
		{ "{\"a\": 1} x", "invalid JSON", "byte 9" },
		{ "{\"a\": 1}{}", "invalid JSON", "byte 8" },
		{ "[1]", "must be a JSON object", "array" },
		{ "\"x\"", "must be a JSON object", "string" },
		{ "{\"year\": {\"$gtx\": 3}}", "\"$gtx\"", "\"year\"" },
		{ "{\"year\": {\"$gt\": 3, \"$foo\": 1}}", "\"$foo\"", "\"year\"" },
		{ "{\"$foo\": 1}", "unknown operator", "\"$foo\"" },
		{ "{\"$or\": [{\"$where\": 1}]}", "\"$where\"", "$or[0]" },
		{ "{\"tags\": {\"$in\": 3}}", "$in needs an array, got a number", "\"tags\"" },
		{ "{\"tags\": {\"$nin\": \"a\"}}", "$nin needs an array, got a string", "\"tags\"" },
		{ "{\"tags\": {\"$in\": {\"a\": 1}}}", "$in", "object" },
		{ "{\"$and\": []}", "$and needs a non-empty array", "\"$and\"" },
		{ "{\"$and\": {}}", "$and needs a non-empty array", "object" },
		{ "{\"$or\": 1}", "$or needs a non-empty array", "number" },
		{ "{\"$nor\": null}", "$nor needs a non-empty array", "null" },
		{ "{\"$or\": [{\"a\": 1}, 2]}", "$or elements must be JSON objects", "$or[1]" },
		{ "{\"$or\": [{\"$and\": []}]}", "$and needs a non-empty array", "$or[0].$and" },
		{ "{\"$not\": 1}", "$not needs a JSON object", "number" },
		{ "{\"$not\": [{\"a\": 1}]}", "$not needs a JSON object", "array" },
		{ "{\"y\": {\"$gt\": {\"a\": 1}}}", "$gt needs a number or a string", "object" },
		{ "{\"y\": {\"$gte\": [1]}}", "$gte needs a number or a string", "array" },
		{ "{\"y\": {\"$lt\": true}}", "$lt needs a number or a string", "boolean" },
		{ "{\"y\": {\"$lte\": null}}", "$lte needs a number or a string", "\"y\"" },
		{ "{\"y\": {\"$not\": {\"$lt\": null}}}", "$lt needs", "\"y\"" },
		{ "{\"y\": {\"$exists\": 1}}", "$exists needs true or false", "\"y\"" },
		{ "{\"y\": {\"$exists\": \"yes\"}}", "$exists", "string" },
		{ "{\"\": 1}", "empty field path", "" },
		{ "{\"a..b\": 1}", "empty segment", "\"a..b\"" },
		{ "{\".a\": 1}", "empty segment", "\".a\"" },
		{ "{\"a.\": 1}", "empty segment", "\"a.\"" },
		{ "{\"y\": {\"$gt\": 1, \"z\": 2}}", "mixes operators", "\"z\"" },
		{ "{\"y\": {\"z\": 2, \"$gt\": 1}}", "mixes operators", "\"$gt\"" },
		{ "{\"$or\": [{\"ok\": 1}, {\"y\": {\"$regex\": \"a\"}}]}", "\"$regex\"", "in $or[1]" },
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
		rv_filter *f = (rv_filter *)&bad; /* must be reset to NULL */
		rv_err e = { { 0 } };
		rv_status st = rv_filter_compile(&f, cs[i].filter, strlen(cs[i].filter), NULL, &e);
		if (st != RV_EINVAL || f != NULL || strncmp(e.msg, "filter: ", 8) != 0 ||
		    !strstr(e.msg, cs[i].must1) || !strstr(e.msg, cs[i].must2)) {
			fprintf(stderr, "  %s: status %d, message \"%s\"\n", cs[i].filter, st, e.msg);
			bad++;
			rv_filter_free(st == RV_OK ? f : NULL);
		}
	}
	CHECK(bad == 0);
}

TEST(limits)
{
	rv_err e;
	rv_filter *f = NULL;

	/* 64 levels compile, 65 do not. */
	char deep[1024];
	for (int levels = 63; levels <= 65; levels++) {
		/* {"$not": {"$not": ... {} ...}}: levels objects. */
		size_t n = 0;
		for (int i = 0; i < levels - 1; i++)
			n += (size_t)sprintf(deep + n, "{\"$not\":");
		n += (size_t)sprintf(deep + n, "{}");
		for (int i = 0; i < levels - 1; i++)
			deep[n++] = '}';
		deep[n] = 0;
		rv_status st = rv_filter_compile(&f, deep, n, NULL, &e);
		if (levels <= 64) {
			CHECK_MSG(st == RV_OK, "%d levels: %s", levels, e.msg);
			/* Odd number of $not over {} (true): false. */
			CHECK(rv_filter_match(f, NULL) == ((levels - 1) % 2 == 0));
			rv_filter_free(f);
		} else {
			CHECK(st == RV_EINVAL && strstr(e.msg, "nesting deeper than 64"));
		}
	}
	/* Brackets inside strings do not count as nesting. */
	char s[400];
	size_t n = (size_t)sprintf(s, "{\"a\": \"");
	for (int i = 0; i < 100; i++)
		s[n++] = '[';
	n += (size_t)sprintf(s + n, "\\\"{\"}");
	CHECK_MSG(rv_filter_compile(&f, s, n, NULL, &e) == RV_OK, "%s", e.msg);
	rv_filter_free(f);
	/* A deep value inside an operand counts too. */
	n = (size_t)sprintf(s, "{\"a\": ");
	for (int i = 0; i < 64; i++)
		s[n++] = '[';
	for (int i = 0; i < 64; i++)
		s[n++] = ']';
	s[n++] = '}';
	CHECK(rv_filter_compile(&f, s, n, NULL, &e) == RV_EINVAL && strstr(e.msg, "nesting"));

	/* Path segments: 64 fine, 65 refused. */
	char path[400];
	for (int segs = 64; segs <= 65; segs++) {
		n = (size_t)sprintf(path, "{\"a");
		for (int i = 1; i < segs; i++)
			n += (size_t)sprintf(path + n, ".a");
		n += (size_t)sprintf(path + n, "\": 1}");
		rv_status st = rv_filter_compile(&f, path, n, NULL, &e);
		if (segs == 64) {
			CHECK(st == RV_OK);
			rv_filter_free(f);
		} else {
			CHECK(st == RV_EINVAL && strstr(e.msg, "segments"));
		}
	}

	/* Text size: 1 MiB compiles (a big $in), one byte more does not. */
	size_t big = (size_t)1 << 20;
	char *t = malloc(big + 2);
	CHECK(t);
	n = (size_t)sprintf(t, "{\"a\": {\"$in\": [1");
	while (n + 2 + 16 < big)
		n += (size_t)sprintf(t + n, ",%zu", n);
	t[n++] = ']';
	t[n++] = '}';
	while (n < big - 1)
		t[n++] = ' ';
	t[n++] = '}';
	CHECK(n == big);
	rv_status st = rv_filter_compile(&f, t, n, NULL, &e);
	CHECK_MSG(st == RV_OK, "%s", e.msg);
	cJSON *p = cJSON_Parse("{\"a\": 1}");
	CHECK(rv_filter_match(f, p));
	cJSON_Delete(p);
	rv_filter_free(f);
	t[n++] = ' ';
	st = rv_filter_compile(&f, t, n, NULL, &e);
	free(t);
	CHECK(st == RV_EINVAL && strstr(e.msg, "1 MiB"));

	/* NULL text. */
	CHECK(rv_filter_compile(&f, NULL, 0, NULL, &e) == RV_EINVAL && f == NULL);
	/* The error pointer may be NULL. */
	CHECK(rv_filter_compile(&f, "{", 1, NULL, NULL) == RV_EINVAL);
	/* Only len bytes are read: a longer buffer's tail is ignored. */
	const char *two = "{\"a\": 1}{\"b\": 2}";
	CHECK(rv_filter_compile(&f, two, 8, NULL, &e) == RV_OK);
	p = cJSON_Parse("{\"a\": 1}");
	CHECK(rv_filter_match(f, p));
	cJSON_Delete(p);
	rv_filter_free(f);
	rv_filter_free(NULL);
}

/* ======================================================================
 * Allocation failures
 * ==================================================================== */

TEST(alloc_failure)
{
	/* Large enough that the arena needs several chunks. */
	char text[16384];
	size_t n = (size_t)sprintf(text, "{\"$or\": [");
	for (int i = 0; i < 60; i++)
		n += (size_t)sprintf(text + n,
				     "%s{\"items.%d.name\": {\"$in\": [\"a%d\", \"b\", {\"k\": [1, 2, %d]}]}, "
				     "\"n\": {\"$not\": {\"$gt\": %d, \"$lt\": 1000}}}",
				     i ? ", " : "", i, i, i, i);
	n += (size_t)sprintf(text + n, "], \"z\": {\"$exists\": false}}");
	CHECK(n < sizeof text);
	cJSON *hit = cJSON_Parse("{\"items\": [{}, {}, {}, {\"name\": \"a3\"}], \"n\": 1}");
	cJSON *miss = cJSON_Parse("{\"items\": [{}, {}, {}, {\"name\": \"a4\"}], \"n\": 1}");
	CHECK(hit && miss);

	int fails = 0;
	for (long fail_at = 1;; fail_at++) {
		rv_test_alloc t;
		rv_test_alloc_init(&t);
		t.fail_at = fail_at;
		rv_filter *f = NULL;
		rv_err e;
		rv_status st = rv_filter_compile(&f, text, n, &t.hooks, &e);
		if (st == RV_ENOMEM) {
			CHECK(f == NULL && t.live == 0 && strstr(e.msg, "out of memory"));
			fails++;
			CHECK(fail_at < 1000);
			continue;
		}
		CHECK_MSG(st == RV_OK, "%s", e.msg);
		CHECK(rv_filter_match(f, hit) && !rv_filter_match(f, miss));
		rv_filter_free(f);
		CHECK(t.live == 0);
		break;
	}
	/* Several chunks, and each failure point was seen. */
	CHECK(fails >= 3);
	fprintf(stderr, "   %d allocation failure points\n", fails);
	cJSON_Delete(hit);
	cJSON_Delete(miss);
}

/* ======================================================================
 * Reference evaluator: straightforward, over the filter's cJSON tree, by
 * first collecting the values a path reaches and then testing them.
 * ==================================================================== */

#define MAXLEAVES 256

/* A leaf list; NULL entries stand for "the path ends here without a
 * value". */
typedef struct leaves {
	const cJSON *v[MAXLEAVES];
	int n;
} leaves;

static void push(leaves *l, const cJSON *v)
{
	if (l->n < MAXLEAVES)
		l->v[l->n++] = v;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void resolve(const cJSON *payload, const char *path, leaves *out)
{
	static leaves a, b; /* single-threaded use only */
	leaves *cur = &a, *next = &b;
	cur->n = 0;
	push(cur, cJSON_IsObject(payload) ? payload : NULL);
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	char *save = NULL;
	for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
		next->n = 0;
		for (int i = 0; i < cur->n; i++) {
			const cJSON *v = cur->v[i];
			if (v == NULL) {
				push(next, NULL);
			} else if (cJSON_IsObject(v)) {
				push(next, cJSON_GetObjectItemCaseSensitive(v, seg));
			} else if (cJSON_IsArray(v) && all_digits(seg)) {
				push(next, cJSON_GetArrayItem(v, atoi(seg)));
			} else if (cJSON_IsArray(v)) {
				int objects = 0;
				const cJSON *e;
				cJSON_ArrayForEach(e, v) {
					if (cJSON_IsObject(e)) {
						objects++;
						push(next, cJSON_GetObjectItemCaseSensitive(e, seg));
					}
				}
				if (!objects)
					push(next, NULL);
			} else {
				push(next, NULL);
			}
		}
		leaves *t = cur;
		cur = next;
		next = t;
	}
	*out = *cur;
}

static bool ref_equal(const cJSON *x, const cJSON *y)
{
	return cJSON_Compare(x, y, 1);
}

static bool ref_eq(const leaves *l, const cJSON *x)
{
	for (int i = 0; i < l->n; i++) {
		const cJSON *v = l->v[i];
		if (!v) {
			if (cJSON_IsNull(x))
				return true;
			continue;
		}
		if (ref_equal(v, x))
			return true;
		if (cJSON_IsArray(v)) {
			const cJSON *e;
			cJSON_ArrayForEach(e, v) {
				if (ref_equal(e, x))
					return true;
			}
		}
	}
	return false;
}

static bool ref_order_one(const cJSON *v, const char *op, const cJSON *x)
{
	int cmp;
	if (cJSON_IsNumber(x) && cJSON_IsNumber(v))
		cmp = v->valuedouble < x->valuedouble ? -1 : v->valuedouble > x->valuedouble;
	else if (cJSON_IsString(x) && cJSON_IsString(v))
		cmp = strcmp(v->valuestring, x->valuestring);
	else
		return false;
	if (!strcmp(op, "$gt"))
		return cmp > 0;
	if (!strcmp(op, "$gte"))
		return cmp >= 0;
	if (!strcmp(op, "$lt"))
		return cmp < 0;
	return cmp <= 0;
}

static bool ref_order(const leaves *l, const char *op, const cJSON *x)
{
	for (int i = 0; i < l->n; i++) {
		const cJSON *v = l->v[i];
		if (!v)
			continue;
		if (cJSON_IsArray(v)) {
			const cJSON *e;
			cJSON_ArrayForEach(e, v) {
				if (ref_order_one(e, op, x))
					return true;
			}
		} else if (ref_order_one(v, op, x)) {
			return true;
		}
	}
	return false;
}

static bool ref_cond(const leaves *l, const cJSON *cond);

static bool ref_op(const leaves *l, const char *op, const cJSON *x)
{
	if (!strcmp(op, "$eq"))
		return ref_eq(l, x);
	if (!strcmp(op, "$ne"))
		return !ref_eq(l, x);
	if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
		bool any = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, x) {
			any = any || ref_eq(l, e);
		}
		return op[1] == 'i' ? any : !any;
	}
	if (!strcmp(op, "$exists")) {
		bool present = false;
		for (int i = 0; i < l->n; i++)
			present = present || l->v[i] != NULL;
		return present == (bool)cJSON_IsTrue(x);
	}
	if (!strcmp(op, "$not"))
		return !ref_cond(l, x);
	return ref_order(l, op, x);
}

static bool ref_cond(const leaves *l, const cJSON *cond)
{
	if (cJSON_IsObject(cond) && cond->child && cond->child->string[0] == '$') {
		const cJSON *op;
		cJSON_ArrayForEach(op, cond) {
			if (!ref_op(l, op->string, op))
				return false;
		}
		return true;
	}
	return ref_eq(l, cond);
}

static bool ref_match(const cJSON *filter, const cJSON *payload)
{
	const cJSON *k;
	cJSON_ArrayForEach(k, filter) {
		bool r;
		if (!strcmp(k->string, "$and") || !strcmp(k->string, "$or") ||
		    !strcmp(k->string, "$nor")) {
			int hits = 0, total = 0;
			const cJSON *e;
			cJSON_ArrayForEach(e, k) {
				total++;
				hits += ref_match(e, payload);
			}
			r = k->string[1] == 'a' ? hits == total : k->string[1] == 'o' ? hits > 0 : hits == 0;
		} else if (!strcmp(k->string, "$not")) {
			r = !ref_match(k, payload);
		} else {
			leaves l;
			resolve(payload, k->string, &l);
			r = ref_cond(&l, k);
		}
		if (!r)
			return false;
	}
	return true;
}

/* ======================================================================
 * Random payloads and filters
 * ==================================================================== */

static const char *const words[] = { "a", "b", "c", "ab", "", "zz" };
#define NWORDS (sizeof words / sizeof words[0])
static const double nums[] = { 0, 1, 2, 3, 5, 7.5, -1, 2.25 };
#define NNUMS (sizeof nums / sizeof nums[0])

static bool coin(rv_rng *r, int percent)
{
	return (int)rv_rng_below(r, 100) < percent;
}

static cJSON *rand_scalar(rv_rng *r)
{
	switch (rv_rng_below(r, 10)) {
	case 0:
		return cJSON_CreateNull();
	case 1:
		return cJSON_CreateBool(coin(r, 50));
	case 2:
	case 3:
	case 4:
		return cJSON_CreateString(words[rv_rng_below(r, NWORDS)]);
	default:
		return cJSON_CreateNumber(nums[rv_rng_below(r, NNUMS)]);
	}
}

static cJSON *rand_tags(rv_rng *r)
{
	cJSON *a = cJSON_CreateArray();
	int n = (int)rv_rng_below(r, 4);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, coin(r, 85) ? cJSON_CreateString(words[rv_rng_below(r, NWORDS)])
						    : rand_scalar(r));
	return a;
}

static cJSON *rand_payload(rv_rng *r)
{
	if (coin(r, 3))
		return NULL;
	cJSON *p = cJSON_CreateObject();
	if (coin(r, 85))
		cJSON_AddItemToObject(p, "i", coin(r, 90) ? cJSON_CreateNumber((double)rv_rng_below(r, 8))
							 : rand_scalar(r));
	if (coin(r, 80))
		cJSON_AddNumberToObject(p, "f", nums[rv_rng_below(r, NNUMS)] + 0.5);
	if (coin(r, 80))
		cJSON_AddItemToObject(p, "s", coin(r, 90) ? cJSON_CreateString(words[rv_rng_below(r, NWORDS)])
							 : rand_scalar(r));
	if (coin(r, 70))
		cJSON_AddBoolToObject(p, "b", coin(r, 50));
	if (coin(r, 75))
		cJSON_AddItemToObject(p, "tags", rand_tags(r));
	if (coin(r, 10))
		cJSON_AddNullToObject(p, "nul");
	if (coin(r, 70)) {
		cJSON *n = cJSON_CreateObject();
		if (coin(r, 80))
			cJSON_AddNumberToObject(n, "x", (double)rv_rng_below(r, 5));
		if (coin(r, 70))
			cJSON_AddStringToObject(n, "y", words[rv_rng_below(r, NWORDS)]);
		if (coin(r, 50)) {
			cJSON *z = cJSON_CreateObject();
			if (coin(r, 90))
				cJSON_AddNumberToObject(z, "w", (double)rv_rng_below(r, 3));
			if (coin(r, 30))
				cJSON_AddStringToObject(z, "v", words[rv_rng_below(r, 2)]);
			cJSON_AddItemToObject(n, "z", z);
		}
		cJSON_AddItemToObject(p, "n", n);
	}
	if (coin(r, 60)) {
		cJSON *items = cJSON_CreateArray();
		int k = (int)rv_rng_below(r, 4);
		for (int i = 0; i < k; i++) {
			if (coin(r, 25)) {
				cJSON_AddItemToArray(items, rand_scalar(r));
				continue;
			}
			cJSON *it = cJSON_CreateObject();
			if (coin(r, 85))
				cJSON_AddNumberToObject(it, "p", (double)rv_rng_below(r, 6));
			if (coin(r, 60))
				cJSON_AddItemToObject(it, "q", coin(r, 70) ? cJSON_CreateString(words[rv_rng_below(r, NWORDS)])
									: rand_tags(r));
			cJSON_AddItemToArray(items, it);
		}
		cJSON_AddItemToObject(p, "items", items);
	}
	return p;
}

/* Paths the filters use, with the kind of value the payloads mostly hold
 * there, so that most generated conditions can go either way: i integer,
 * f number, s string, b boolean, o object {"w": n}, x anything. */
static const struct {
	const char *path;
	char kind;
} paths[] = { { "i", 'i' },	   { "f", 'f' },	 { "s", 's' },	     { "b", 'b' },
	      { "tags", 's' },	   { "tags.0", 's' },	 { "tags.1", 's' },  { "nul", 'x' },
	      { "n", 'x' },	   { "n.x", 'i' },	 { "n.y", 's' },     { "n.z", 'o' },
	      { "n.z.w", 'i' },    { "items", 'x' },	 { "items.p", 'i' }, { "items.q", 's' },
	      { "items.0.p", 'i' }, { "items.1", 'x' },	 { "missing", 'x' }, { "i.x", 'x' },
	      { "n.x.y", 'x' },	   { "tags.q", 'x' } };
#define NPATHS (sizeof paths / sizeof paths[0])

/* An operand for $eq/$ne/$in members: mostly of the path's kind,
 * sometimes anything, including arrays and objects that can equal whole
 * payload values. */
static cJSON *rand_value(rv_rng *r, char kind)
{
	if (coin(r, 20))
		kind = 'x';
	switch (kind) {
	case 'i':
		return cJSON_CreateNumber((double)rv_rng_below(r, 8));
	case 'f':
		return cJSON_CreateNumber(nums[rv_rng_below(r, NNUMS)] + 0.5);
	case 's':
		return cJSON_CreateString(words[rv_rng_below(r, NWORDS)]);
	case 'b':
		return cJSON_CreateBool(coin(r, 50));
	case 'o': {
		cJSON *o = cJSON_CreateObject();
		if (coin(r, 90))
			cJSON_AddNumberToObject(o, "w", (double)rv_rng_below(r, 3));
		if (coin(r, 30))
			cJSON_AddStringToObject(o, "v", words[rv_rng_below(r, 2)]);
		return o;
	}
	default:
		break;
	}
	int k = (int)rv_rng_below(r, 20);
	if (k == 0) {
		cJSON *a = cJSON_CreateArray();
		int n = (int)rv_rng_below(r, 3);
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(words[rv_rng_below(r, 3)]));
		return a;
	}
	if (k == 1) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "w", (double)rv_rng_below(r, 3));
		return o;
	}
	if (k < 8)
		return cJSON_CreateNumber((double)rv_rng_below(r, 8));
	return rand_scalar(r);
}

static cJSON *rand_order_operand(rv_rng *r, char kind)
{
	bool num = kind == 'i' || kind == 'f' ? coin(r, 90) : kind == 's' ? coin(r, 10) : coin(r, 60);
	if (num)
		return cJSON_CreateNumber(nums[rv_rng_below(r, NNUMS)] + (coin(r, 50) ? 0.5 : 0));
	return cJSON_CreateString(words[rv_rng_below(r, NWORDS)]);
}

static cJSON *rand_ops(rv_rng *r, char kind, int depth);

static cJSON *rand_op_value(rv_rng *r, const char *op, char kind, int depth)
{
	if (!strcmp(op, "$eq") || !strcmp(op, "$ne"))
		return rand_value(r, kind);
	if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
		cJSON *a = cJSON_CreateArray();
		int n = (int)rv_rng_below(r, 4);
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(a, coin(r, 15) ? cJSON_CreateNull() : rand_value(r, kind));
		return a;
	}
	if (!strcmp(op, "$exists"))
		return cJSON_CreateBool(coin(r, 50));
	if (!strcmp(op, "$not"))
		return depth < 2 && coin(r, 70) ? rand_ops(r, kind, depth + 1) : rand_value(r, kind);
	return rand_order_operand(r, kind);
}

static const char *const ops[] = { "$eq", "$ne", "$gt", "$gte", "$lt", "$lte",
				   "$in", "$nin", "$exists", "$not" };

static cJSON *rand_ops(rv_rng *r, char kind, int depth)
{
	cJSON *o = cJSON_CreateObject();
	int n = coin(r, 75) ? 1 : 2;
	for (int i = 0; i < n; i++) {
		const char *op = ops[rv_rng_below(r, sizeof ops / sizeof ops[0])];
		cJSON_AddItemToObject(o, op, rand_op_value(r, op, kind, depth));
	}
	return o;
}

static cJSON *rand_filter(rv_rng *r, int depth)
{
	cJSON *f = cJSON_CreateObject();
	int keys = coin(r, 70) ? 1 : 2;
	for (int k = 0; k < keys; k++) {
		int kind = (int)rv_rng_below(r, 10);
		if (depth < 2 && kind < 3) {
			static const char *const logic[] = { "$and", "$or", "$nor" };
			cJSON *a = cJSON_CreateArray();
			int n = 1 + (int)rv_rng_below(r, 3);
			for (int i = 0; i < n; i++)
				cJSON_AddItemToArray(a, rand_filter(r, depth + 1));
			cJSON_AddItemToObject(f, logic[kind], a);
		} else if (depth < 2 && kind == 3) {
			cJSON_AddItemToObject(f, "$not", rand_filter(r, depth + 1));
		} else {
			size_t pi = rv_rng_below(r, NPATHS);
			/* Fewer conditions on paths that mostly hold nothing. */
			if (paths[pi].kind == 'x' && coin(r, 60))
				pi = rv_rng_below(r, NPATHS);
			char pk = paths[pi].kind;
			cJSON_AddItemToObject(f, paths[pi].path,
					      coin(r, 30) ? rand_value(r, pk) : rand_ops(r, pk, 0));
		}
	}
	return f;
}

TEST(random_reference)
{
	enum { NPAY = 2000, NFILT = 300 };
	rv_rng r;
	rv_rng_seed(&r, 20240611);
	cJSON **pay = calloc(NPAY, sizeof *pay);
	CHECK(pay);
	for (int i = 0; i < NPAY; i++)
		pay[i] = rand_payload(&r);

	long total = 0, matched = 0, mixed = 0, mismatches = 0;
	double t_match = 0;
	for (int fi = 0; fi < NFILT; fi++) {
		cJSON *ft = rand_filter(&r, 0);
		char *text = cJSON_PrintUnformatted(ft);
		rv_filter *f = NULL;
		rv_err e;
		rv_status st = rv_filter_compile(&f, text, strlen(text), NULL, &e);
		if (st != RV_OK) {
			fprintf(stderr, "  %s: %s\n", text, e.msg);
			mismatches++;
			goto next;
		}
		long hits = 0;
		double t0 = rv_now();
		bool got[NPAY];
		for (int i = 0; i < NPAY; i++)
			got[i] = rv_filter_match(f, pay[i]);
		t_match += rv_now() - t0;
		for (int i = 0; i < NPAY; i++) {
			bool want = ref_match(ft, pay[i]);
			hits += got[i];
			if (got[i] != want) {
				if (mismatches < 5) {
					char *ps = pay[i] ? cJSON_PrintUnformatted(pay[i]) : NULL;
					fprintf(stderr, "  mismatch: filter %s payload %s: got %d want %d\n",
						text, ps ? ps : "(none)", got[i], want);
					cJSON_free(ps);
				}
				mismatches++;
			}
		}
		total += NPAY;
		matched += hits;
		mixed += hits > 0 && hits < NPAY;
		rv_filter_free(f);
	next:
		cJSON_free(text);
		cJSON_Delete(ft);
	}
	fprintf(stderr, "   %ld evaluations, %.1f%% matched, %ld/%d filters with mixed results, %.0f ns/match\n",
		total, 100.0 * (double)matched / (double)(total ? total : 1), mixed, NFILT,
		1e9 * t_match / (double)(total ? total : 1));
	for (int i = 0; i < NPAY; i++)
		cJSON_Delete(pay[i]);
	free(pay);
	CHECK(mismatches == 0);
	CHECK(total == (long)NPAY * NFILT);
	/* The generator must produce discriminating filters, else the
	 * comparison proves little. */
	CHECK(mixed >= NFILT / 2);
	CHECK(matched > total / 20 && matched < total - total / 20);
}

/* ======================================================================
 * Concurrent evaluation
 * ==================================================================== */

typedef struct par_ctx {
	const rv_filter *f;
	cJSON **pay;
	int n;
	long counts[4];
} par_ctx;

static void par_fn(void *ctx, unsigned t)
{
	par_ctx *c = ctx;
	long hits = 0;
	for (int rep = 0; rep < 50; rep++)
		for (int i = 0; i < c->n; i++)
			hits += rv_filter_match(c->f, c->pay[i]);
	c->counts[t] = hits;
}

TEST(concurrent_match)
{
	enum { N = 500 };
	rv_rng r;
	rv_rng_seed(&r, 99);
	cJSON *pay[N];
	for (int i = 0; i < N; i++)
		pay[i] = rand_payload(&r);
	const char *text = "{\"$or\": [{\"tags\": {\"$in\": [\"a\", \"b\"]}}, {\"items.p\": {\"$gte\": 3}}],"
			   " \"i\": {\"$ne\": 2}}";
	rv_filter *f;
	rv_err e;
	CHECK(rv_filter_compile(&f, text, strlen(text), NULL, &e) == RV_OK);
	long serial = 0;
	for (int i = 0; i < N; i++)
		serial += rv_filter_match(f, pay[i]);
	par_ctx c = { .f = f, .pay = pay, .n = N };
	rv_parallel(4, par_fn, &c);
	for (int t = 0; t < 4; t++)
		CHECK(c.counts[t] == serial * 50);
	CHECK(serial > 0 && serial < N);
	rv_filter_free(f);
	for (int i = 0; i < N; i++)
		cJSON_Delete(pay[i]);
}
