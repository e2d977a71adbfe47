/*
 * filter.h - the JSON filter language (MongoDB query syntax) over point
 * payloads. The grammar and semantics are documented at rv_db_search in
 * include/ruvector.h; this is the compiled form the collection evaluates
 * inside the graph traversal.
 *
 * A filter is compiled once per search into a small tree of nodes with
 * pre-split dotted paths and pre-converted operands, then evaluated against
 * parsed payloads (cJSON trees) from many threads at once (evaluation only
 * reads).
 */
#ifndef RV_FILTER_H
#define RV_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "util/util.h"

typedef struct rv_filter rv_filter;

/* Compile the JSON text json[0..len). Errors (RV_EINVAL) say what and
 * where, for example:
 *   filter: invalid JSON at byte 17
 *   filter: unknown operator "$gtx" at "year"
 *   filter: $in needs an array, got a string, at "tags"
 *   filter: $and needs a non-empty array at "$and"
 *   filter: must be a JSON object
 * Nesting deeper than 64 levels is refused. */
rv_status rv_filter_compile(rv_filter **out, const char *json, size_t len, const rv_alloc *a,
			    rv_err *err);
void rv_filter_free(rv_filter *f); /* NULL is a no-op */

/* Whether a payload matches. payload may be NULL (point without payload).
 * Thread-safe (read-only). */
bool rv_filter_match(const rv_filter *f, const cJSON *payload);

#endif /* RV_FILTER_H */
