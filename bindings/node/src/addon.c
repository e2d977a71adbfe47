/*
 * addon.c - the Node-API (N-API 8) layer of the `ruvector` npm package.
 *
 * This file is a thin, ABI-stable bridge from JavaScript to the public C API
 * in include/ruvector.h; index.js builds the published package's VectorDB
 * class on top of the functions exported here:
 *
 *     open(path, dim, metric, m, efConstruction, efSearch)
 *                          -> Promise<{handle, dim, metric, m, ..., count}>
 *     upsert(handle, ids[], vectors: Float32Array(n * dim), payloads[], commit)
 *                          -> Promise<undefined>
 *     remove(handle, ids[], commit)           -> Promise<number deleted>
 *     get(handle, id)                         -> Promise<{vector, metadata?} | null>
 *     search(handle, query, k, ef, filter)    -> Promise<[{id, score, metadata?}]>
 *     commit(handle), count(handle), stats(handle) -> Promise<...>
 *     close(handle)                           -> undefined
 *
 * Threads. Everything that takes the collection's lock runs on the libuv
 * thread pool through napi_create_async_work, never on the JavaScript
 * thread: a batch insert holds the write lock for a long time, and even a
 * count() waiting behind it would freeze the event loop. The inputs are
 * copied into C memory on the JavaScript thread before the work is queued,
 * because JavaScript may change or collect its arrays while the work runs;
 * the results are turned into JavaScript values in the completion callback,
 * which runs on the JavaScript thread again. The library's reader-writer
 * lock makes any number of concurrent works on one handle safe.
 *
 * Handle life. A handle is a plain object wrapping a struct nb_db and
 * carrying a type tag, so a forged object is refused. Every queued work
 * holds a strong reference to the handle object (it cannot be collected
 * while the work runs) and counts itself in nb_db.inflight. rv_db_close()
 * must not run beside any other call, so close() on a handle with works in
 * flight only marks it; the last completion closes it. A handle collected
 * without close() is closed by its finalizer.
 *
 * Errors. A failed library call copies rv_errmsg() on the worker thread at
 * once (the message is only valid until the next call on the handle) and
 * rejects the promise with an Error carrying that message and a `code` such
 * as "RV_EINVAL". Bad arguments from JavaScript throw TypeError/RangeError
 * synchronously; index.js validates first, so these are a second guard.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <ruvector.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================
 * Handles
 * ==================================================================== */

typedef struct nb_db {
	rv_db *db;          /* NULL once closed */
	uint32_t dim;
	unsigned inflight;  /* works queued and not yet completed; JS thread only */
	bool close_requested; /* close() called: refuse new work, the last completion closes */
	bool collected;     /* the handle object was finalized while works were in flight */
} nb_db;

/* Marks handle objects made by this addon (napi_type_tag_object). */
static const napi_type_tag handle_tag = { 0x7275766563746f72ULL, 0x6e6f64652d763031ULL };

static void close_now(nb_db *h)
{
	rv_db_close(h->db);
	h->db = NULL;
}

static void finalize_handle(napi_env env, void *data, void *hint)
{
	nb_db *h = data;
	/* A work in flight holds a strong reference, so this only happens with
	 * work pending when the environment itself is torn down: the thread pool
	 * may still be inside a call on h->db, so it is left alone. */
	if (h->inflight > 0) {
		h->collected = true;
		return;
	}
	close_now(h);
	free(h);
}

/* ======================================================================
 * Small helpers
 * ==================================================================== */

/* Throw a generic error for a failed napi call unless one is pending. */
static void throw_napi_failure(napi_env env)
{
	bool pending = false;
	if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
		return;
	const napi_extended_error_info *info = NULL;
	napi_get_last_error_info(env, &info);
	napi_throw_error(env, NULL, info && info->error_message ? info->error_message
	                                                         : "Node-API call failed");
}

#define CHECK(env, call)                          \
	do {                                      \
		if ((call) != napi_ok) {          \
			throw_napi_failure(env);  \
			goto done;                \
		}                                 \
	} while (0)

static char *dup_string(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* Copy a JS string into new C memory (NUL-terminated). *len gets its UTF-8
 * length. Throws TypeError naming `what` when v is not a string. */
static bool get_string(napi_env env, napi_value v, const char *what, char **out, size_t *len)
{
	bool ok = false;
	size_t n = 0;
	char *s = NULL;
	napi_valuetype t;
	*out = NULL;
	CHECK(env, napi_typeof(env, v, &t));
	if (t != napi_string) {
		napi_throw_type_error(env, NULL, what);
		goto done;
	}
	CHECK(env, napi_get_value_string_utf8(env, v, NULL, 0, &n));
	if (!(s = malloc(n + 1))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory copying a string");
		goto done;
	}
	CHECK(env, napi_get_value_string_utf8(env, v, s, n + 1, &n));
	*out = s;
	s = NULL;
	if (len)
		*len = n;
	ok = true;
done:
	free(s);
	return ok;
}

static bool is_nullish(napi_env env, napi_value v)
{
	napi_valuetype t;
	return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

static bool get_u32(napi_env env, napi_value v, const char *what, uint32_t *out)
{
	napi_valuetype t;
	double d;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
	    napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= UINT32_MAX) ||
	    d != (double)(uint32_t)d) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s must be an integer from 0 to %u", what, UINT32_MAX);
		napi_throw_range_error(env, NULL, msg);
		return false;
	}
	*out = (uint32_t)d;
	return true;
}

/* The Float32Array in v, which must hold exactly `want` floats. */
static bool get_floats(napi_env env, napi_value v, const char *what, size_t want, const float **out)
{
	bool is_ta = false;
	napi_typedarray_type type;
	size_t length = 0;
	void *data = NULL;
	char msg[160];
	if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
	    napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok ||
	    type != napi_float32_array) {
		snprintf(msg, sizeof msg, "%s must be a Float32Array", what);
		napi_throw_type_error(env, NULL, msg);
		return false;
	}
	if (length != want) {
		snprintf(msg, sizeof msg, "%s has %zu values, expected %zu (dimension)", what, length, want);
		napi_throw_range_error(env, NULL, msg);
		return false;
	}
	*out = data;
	return true;
}

/* The wrapped handle in v; throws unless it is a live handle of this addon. */
static nb_db *get_handle(napi_env env, napi_value v)
{
	bool tagged = false;
	void *p = NULL;
	if (napi_check_object_type_tag(env, v, &handle_tag, &tagged) != napi_ok || !tagged ||
	    napi_unwrap(env, v, &p) != napi_ok || !p) {
		napi_throw_type_error(env, NULL, "expected a ruvector database handle");
		return NULL;
	}
	nb_db *h = p;
	if (!h->db || h->close_requested) {
		napi_throw_error(env, "RV_ECLOSED", "the database is closed");
		return NULL;
	}
	return h;
}

/* ======================================================================
 * Async works
 * ==================================================================== */

typedef enum op { OP_OPEN, OP_UPSERT, OP_REMOVE, OP_GET, OP_SEARCH, OP_COMMIT, OP_COUNT, OP_STATS, OP_FEEDBACK, OP_LEARNING } op;

typedef struct work {
	napi_async_work async;
	napi_deferred deferred;
	napi_ref ref;        /* strong reference to the handle object, or NULL (open) */
	nb_db *h;            /* NULL for open */
	op op;
	bool commit;         /* commit after a write (autoCommit) */
	rv_status st;
	char *msg;           /* rv_errmsg() copied on the worker thread, or NULL */

	/* inputs, owned copies */
	char *path;          /* OP_OPEN */
	rv_open_opts open_opts;
	size_t n;            /* OP_UPSERT, OP_REMOVE: number of ids */
	char **ids;          /* n ids; OP_GET uses ids[0] */
	size_t *id_lens;
	char **payloads;     /* OP_UPSERT: n JSON texts or NULLs */
	float *vectors;      /* OP_UPSERT: n * dim; OP_SEARCH: the query; OP_GET: output */
	char *filter;        /* OP_SEARCH */
	rv_search_opts search_opts;
	uint64_t search_id;  /* OP_FEEDBACK */
	float reward;        /* OP_FEEDBACK */
	bool on;             /* OP_LEARNING */

	/* outputs */
	rv_db *opened;       /* OP_OPEN */
	rv_stats stats;      /* OP_OPEN, OP_STATS */
	uint64_t count;      /* OP_COUNT */
	size_t deleted;      /* OP_REMOVE */
	bool found;          /* OP_GET */
	char *payload;       /* OP_GET: from rv_db_get(), released with rv_free() */
	rv_results *results; /* OP_SEARCH */
} work;

static work *new_work(napi_env env, op o, nb_db *h)
{
	work *w = calloc(1, sizeof *w);
	if (!w) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory");
		return NULL;
	}
	w->op = o;
	w->h = h;
	return w;
}

static void free_strings(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void free_work(work *w)
{
	if (!w)
		return;
	free(w->msg);
	free(w->path);
	free_strings(w->ids, w->n);
	free(w->id_lens);
	free_strings(w->payloads, w->n);
	free(w->vectors);
	free(w->filter);
	rv_free(w->payload);
	rv_results_free(w->results);
	free(w);
}

/* Keep the failure's message before another call on the handle replaces it. */
static void failed(work *w, rv_db *db)
{
	const char *m = db ? rv_errmsg(db) : "out of memory";
	w->msg = dup_string(m && *m ? m : rv_status_str(w->st));
}

static void execute(napi_env env, void *data)
{
	work *w = data;
	rv_db *db = w->h ? w->h->db : NULL;
	switch (w->op) {
	case OP_OPEN:
		/* Open when the file exists, create it when it does not. */
		w->st = rv_db_open(&w->opened, w->path, &w->open_opts);
		if (w->st == RV_ENOTFOUND) {
			rv_db_close(w->opened);
			w->opened = NULL;
			w->st = rv_db_create(&w->opened, w->path, &w->open_opts);
		}
		if (w->st == RV_OK) {
			rv_stats s = RV_STATS_INIT;
			w->stats = s;
			w->st = rv_db_stats(&w->stats, w->opened);
		}
		if (w->st != RV_OK) {
			failed(w, w->opened);
			rv_db_close(w->opened);
			w->opened = NULL;
		}
		return;
	case OP_UPSERT: {
		rv_point *pts = calloc(w->n, sizeof *pts);
		if (!pts) {
			w->st = RV_ENOMEM;
			w->msg = dup_string("out of memory for the batch");
			return;
		}
		for (size_t i = 0; i < w->n; i++) {
			pts[i].id = w->ids[i];
			pts[i].id_len = w->id_lens[i];
			pts[i].vector = w->vectors + i * w->h->dim;
			pts[i].payload = w->payloads[i];
		}
		w->st = rv_db_upsert(db, pts, w->n);
		free(pts);
		if (w->st == RV_OK && w->commit)
			w->st = rv_db_commit(db);
		break;
	}
	case OP_REMOVE:
		w->st = rv_db_delete(db, (const char *const *)w->ids, w->n, &w->deleted);
		if (w->st == RV_OK && w->commit && w->deleted > 0)
			w->st = rv_db_commit(db);
		break;
	case OP_GET:
		w->st = rv_db_get(db, w->ids[0], w->vectors, &w->payload);
		w->found = w->st == RV_OK;
		if (w->st == RV_ENOTFOUND)
			w->st = RV_OK;
		break;
	case OP_SEARCH:
		w->st = rv_db_search(&w->results, db, w->vectors, &w->search_opts);
		break;
	case OP_COMMIT:
		w->st = rv_db_commit(db);
		break;
	case OP_FEEDBACK:
		w->st = rv_db_feedback(db, w->search_id, w->ids[0], w->reward);
		if (w->st == RV_OK && w->commit)
			w->st = rv_db_commit(db);
		break;
	case OP_LEARNING:
		w->st = rv_db_set_learning(db, w->on);
		if (w->st == RV_OK && w->commit)
			w->st = rv_db_commit(db);
		break;
	case OP_COUNT:
		w->count = rv_db_count(db);
		w->st = RV_OK;
		break;
	case OP_STATS: {
		rv_stats s = RV_STATS_INIT;
		w->stats = s;
		w->st = rv_db_stats(&w->stats, db);
		break;
	}
	}
	if (w->st != RV_OK)
		failed(w, db);
}

/* Set obj[name] = value; false with an exception pending on failure. */
static bool set_double(napi_env env, napi_value obj, const char *name, double d)
{
	napi_value v;
	return napi_create_double(env, d, &v) == napi_ok &&
	       napi_set_named_property(env, obj, name, v) == napi_ok;
}

static bool set_bool(napi_env env, napi_value obj, const char *name, bool b)
{
	napi_value v;
	return napi_get_boolean(env, b, &v) == napi_ok &&
	       napi_set_named_property(env, obj, name, v) == napi_ok;
}

static bool set_string(napi_env env, napi_value obj, const char *name, const char *s)
{
	napi_value v;
	return napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok &&
	       napi_set_named_property(env, obj, name, v) == napi_ok;
}

static bool set_stats(napi_env env, napi_value obj, const rv_stats *s)
{
	return set_double(env, obj, "dim", s->dim) &&
	       set_string(env, obj, "metric", rv_metric_name(s->metric)) &&
	       set_double(env, obj, "m", s->m) &&
	       set_double(env, obj, "efConstruction", s->ef_construction) &&
	       set_double(env, obj, "efSearch", s->ef_search) &&
	       set_double(env, obj, "count", (double)s->count);
}

static napi_value make_error(napi_env env, rv_status st, const char *msg)
{
	napi_value err = NULL, code, text;
	char name[32];
	/* rv_status_str() reads "RV_EINVAL: bad argument"; the code is the name. */
	const char *full = rv_status_str(st);
	size_t n = strcspn(full, ":");
	if (n >= sizeof name)
		n = sizeof name - 1;
	memcpy(name, full, n);
	name[n] = '\0';
	if (napi_create_string_utf8(env, msg ? msg : full, NAPI_AUTO_LENGTH, &text) != napi_ok ||
	    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
	    napi_create_error(env, code, text, &err) != napi_ok)
		return NULL;
	return err;
}

/* Build the JS value a successful work resolves to; NULL on failure. */
static napi_value make_result(napi_env env, work *w)
{
	napi_value out = NULL, v, arr;
	switch (w->op) {
	case OP_OPEN: {
		nb_db *h = calloc(1, sizeof *h);
		napi_value obj;
		if (!h)
			return NULL;
		h->db = w->opened;
		h->dim = w->stats.dim;
		if (napi_create_object(env, &obj) != napi_ok ||
		    napi_wrap(env, obj, h, finalize_handle, NULL, NULL) != napi_ok) {
			free(h);
			return NULL;
		}
		/* From here the finalizer owns the database. */
		w->opened = NULL;
		if (napi_type_tag_object(env, obj, &handle_tag) != napi_ok ||
		    napi_create_object(env, &out) != napi_ok ||
		    napi_set_named_property(env, out, "handle", obj) != napi_ok ||
		    !set_stats(env, out, &w->stats))
			return NULL;
		return out;
	}
	case OP_UPSERT:
	case OP_COMMIT:
	case OP_FEEDBACK:
	case OP_LEARNING:
		napi_get_undefined(env, &out);
		return out;
	case OP_REMOVE:
		return napi_create_double(env, (double)w->deleted, &out) == napi_ok ? out : NULL;
	case OP_COUNT:
		return napi_create_double(env, (double)w->count, &out) == napi_ok ? out : NULL;
	case OP_GET: {
		void *buf;
		size_t bytes = (size_t)w->h->dim * sizeof(float);
		if (!w->found) {
			napi_get_null(env, &out);
			return out;
		}
		if (napi_create_object(env, &out) != napi_ok ||
		    napi_create_arraybuffer(env, bytes, &buf, &v) != napi_ok)
			return NULL;
		memcpy(buf, w->vectors, bytes);
		if (napi_create_typedarray(env, napi_float32_array, w->h->dim, v, 0, &arr) != napi_ok ||
		    napi_set_named_property(env, out, "vector", arr) != napi_ok)
			return NULL;
		if (w->payload && !set_string(env, out, "metadata", w->payload))
			return NULL;
		return out;
	}
	case OP_SEARCH: {
		size_t n = rv_results_count(w->results);
		const rv_hit *hits = rv_results_hits(w->results);
		if (napi_create_array_with_length(env, n, &out) != napi_ok)
			return NULL;
		for (size_t i = 0; i < n; i++) {
			if (napi_create_object(env, &v) != napi_ok ||
			    !set_string(env, v, "id", hits[i].id) ||
			    !set_double(env, v, "score", hits[i].score) ||
			    (hits[i].payload && !set_string(env, v, "metadata", hits[i].payload)) ||
			    napi_set_element(env, out, (uint32_t)i, v) != napi_ok)
				return NULL;
		}
		/* The search id, for feedback, as a decimal string (a u64 does not
		 * fit a JS number); not enumerable, so the array stays a plain
		 * list of hits to code that compares or serialises it. */
		char sid[24];
		snprintf(sid, sizeof sid, "%llu", (unsigned long long)rv_results_search_id(w->results));
		napi_property_descriptor d = { "searchId", NULL, NULL, NULL, NULL, NULL, napi_default, NULL };
		if (napi_create_string_utf8(env, sid, NAPI_AUTO_LENGTH, &d.value) != napi_ok ||
		    napi_define_properties(env, out, 1, &d) != napi_ok)
			return NULL;
		return out;
	}
	case OP_STATS: {
		const rv_stats *s = &w->stats;
		if (napi_create_object(env, &out) != napi_ok || !set_stats(env, out, s) ||
		    !set_double(env, out, "slots", (double)s->slots) ||
		    !set_double(env, out, "deleted", (double)s->deleted) ||
		    !set_double(env, out, "generation", (double)s->generation) ||
		    !set_double(env, out, "fileBytes", (double)s->file_bytes) ||
		    !set_double(env, out, "segments", s->segments) ||
		    !set_double(env, out, "graphLevels", s->graph_levels) ||
		    !set_double(env, out, "memoryBytes", (double)s->memory_bytes) ||
		    !set_bool(env, out, "dirty", s->dirty != 0) ||
		    !set_string(env, out, "simd", s->simd ? s->simd : rv_simd_name()))
			return NULL;
		return out;
	}
	}
	return NULL;
}

static void complete(napi_env env, napi_status status, void *data)
{
	work *w = data;
	nb_db *h = w->h;
	napi_value value = NULL;
	bool ok = false;

	if (status != napi_ok) {
		value = make_error(env, RV_ERROR, "the operation was cancelled");
	} else if (w->st != RV_OK) {
		value = make_error(env, w->st, w->msg);
	} else if ((value = make_result(env, w)) != NULL) {
		ok = true;
	} else {
		/* Building the result failed (out of memory, or the environment is
		 * going away): reject rather than leave the promise pending. */
		bool pending = false;
		if (napi_is_exception_pending(env, &pending) != napi_ok || !pending ||
		    napi_get_and_clear_last_exception(env, &value) != napi_ok)
			value = make_error(env, RV_ENOMEM, "out of memory building the result");
	}
	if (value && ok)
		napi_resolve_deferred(env, w->deferred, value);
	else if (value)
		napi_reject_deferred(env, w->deferred, value);
	/* A failed open may leave a database nobody owns. */
	if (w->opened) {
		rv_db_close(w->opened);
		w->opened = NULL;
	}

	if (w->ref)
		napi_delete_reference(env, w->ref);
	napi_delete_async_work(env, w->async);
	free_work(w);
	if (h && --h->inflight == 0) {
		if (h->close_requested || h->collected)
			close_now(h);
		if (h->collected)
			free(h);
	}
}

/* Queue w, holding handle_obj (may be NULL) alive until it completes.
 * Returns the promise, or NULL with an exception pending (w is freed). */
static napi_value queue_work(napi_env env, work *w, napi_value handle_obj)
{
	napi_value promise = NULL, name;
	CHECK(env, napi_create_string_utf8(env, "ruvector", NAPI_AUTO_LENGTH, &name));
	if (handle_obj)
		CHECK(env, napi_create_reference(env, handle_obj, 1, &w->ref));
	CHECK(env, napi_create_async_work(env, NULL, name, execute, complete, w, &w->async));
	CHECK(env, napi_create_promise(env, &w->deferred, &promise));
	if (napi_queue_async_work(env, w->async) != napi_ok) {
		/* The promise stays unsettled and unreachable: only the error counts. */
		promise = NULL;
		throw_napi_failure(env);
		goto done;
	}
	if (w->h)
		w->h->inflight++;
	return promise;
done:
	if (w->async)
		napi_delete_async_work(env, w->async);
	if (w->ref)
		napi_delete_reference(env, w->ref);
	free_work(w);
	return NULL;
}

/* Read argc arguments; throws unless exactly `want` were given. */
static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
		throw_napi_failure(env);
		return false;
	}
	if (argc != want) {
		char msg[64];
		snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, argc);
		napi_throw_type_error(env, NULL, msg);
		return false;
	}
	return true;
}

/* Copy a JS array of strings (ids) into w->ids / w->id_lens / w->n. */
static bool get_ids(napi_env env, napi_value arr, work *w)
{
	bool is_array = false;
	uint32_t n = 0;
	if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array) {
		napi_throw_type_error(env, NULL, "ids must be an array of strings");
		return false;
	}
	if (napi_get_array_length(env, arr, &n) != napi_ok) {
		throw_napi_failure(env);
		return false;
	}
	w->ids = calloc(n ? n : 1, sizeof *w->ids);
	w->id_lens = calloc(n ? n : 1, sizeof *w->id_lens);
	if (!w->ids || !w->id_lens) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory copying ids");
		return false;
	}
	w->n = n;
	for (uint32_t i = 0; i < n; i++) {
		napi_value v;
		if (napi_get_element(env, arr, i, &v) != napi_ok) {
			throw_napi_failure(env);
			return false;
		}
		if (!get_string(env, v, "every id must be a string", &w->ids[i], &w->id_lens[i]))
			return false;
		/* The library reads delete and get ids up to the first NUL: an id
		 * with one inside would name a different point. */
		if (strlen(w->ids[i]) != w->id_lens[i]) {
			napi_throw_range_error(env, NULL, "an id must not contain a NUL character");
			return false;
		}
	}
	return true;
}

/* ======================================================================
 * Exported functions
 * ==================================================================== */

/* open(path, dim, metric, m, efConstruction, efSearch) */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	uint32_t metric = 0;
	size_t len = 0;
	work *w = NULL;
	if (!get_args(env, info, 6, argv) || !(w = new_work(env, OP_OPEN, NULL)))
		goto fail;
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	w->open_opts = o;
	if (!get_string(env, argv[0], "storagePath must be a string", &w->path, &len) ||
	    !get_u32(env, argv[1], "dimensions", &w->open_opts.dim) ||
	    !get_u32(env, argv[2], "metric", &metric) ||
	    !get_u32(env, argv[3], "hnswConfig.m", &w->open_opts.m) ||
	    !get_u32(env, argv[4], "hnswConfig.efConstruction", &w->open_opts.ef_construction) ||
	    !get_u32(env, argv[5], "hnswConfig.efSearch", &w->open_opts.ef_search))
		goto fail;
	if (strlen(w->path) != len || len == 0) {
		napi_throw_type_error(env, NULL, "storagePath must be a non-empty string without NUL");
		goto fail;
	}
	if (metric > RV_METRIC_IP) {
		napi_throw_range_error(env, NULL, "metric must be 0 (l2), 1 (cosine) or 2 (ip)");
		goto fail;
	}
	w->open_opts.metric = (rv_metric)metric;
	return queue_work(env, w, NULL);
fail:
	free_work(w);
	return NULL;
}

/* The trailing commit flag of a write: w->commit. false (thrown) when v
 * is not a boolean. */
static bool get_commit(napi_env env, napi_value v, work *w)
{
	if (napi_get_value_bool(env, v, &w->commit) != napi_ok) {
		napi_throw_type_error(env, NULL, "commit must be a boolean");
		return false;
	}
	return true;
}

/* One id argument into w->ids[0] (w->n = 1). false (thrown) when v is not
 * a string or holds a NUL. */
static bool get_one_id(napi_env env, napi_value v, work *w)
{
	size_t len = 0;
	if (!(w->ids = calloc(1, sizeof *w->ids))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory");
		return false;
	}
	w->n = 1;
	if (!get_string(env, v, "id must be a string", &w->ids[0], &len))
		return false;
	if (strlen(w->ids[0]) != len) {
		napi_throw_range_error(env, NULL, "an id must not contain a NUL character");
		return false;
	}
	return true;
}

/* upsert(handle, ids, vectors, payloads, commit) */
static napi_value js_upsert(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	work *w = NULL;
	nb_db *h;
	const float *vec;
	bool is_array = false;
	uint32_t np = 0;
	if (!get_args(env, info, 5, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_UPSERT, h)) || !get_ids(env, argv[1], w))
		goto fail;
	if (w->n == 0) {
		napi_throw_range_error(env, NULL, "upsert needs at least one point");
		goto fail;
	}
	/* n * dim cannot overflow: n < 2^32 and dim <= RV_MAX_DIM. */
	if (!get_floats(env, argv[2], "vectors", w->n * h->dim, &vec))
		goto fail;
	if (!(w->vectors = malloc(w->n * h->dim * sizeof(float)))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory copying vectors");
		goto fail;
	}
	memcpy(w->vectors, vec, w->n * h->dim * sizeof(float));
	if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
	    napi_get_array_length(env, argv[3], &np) != napi_ok || np != w->n) {
		napi_throw_type_error(env, NULL, "payloads must be an array with one entry per id");
		goto fail;
	}
	if (!(w->payloads = calloc(w->n, sizeof *w->payloads))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory copying payloads");
		goto fail;
	}
	for (uint32_t i = 0; i < np; i++) {
		napi_value v;
		if (napi_get_element(env, argv[3], i, &v) != napi_ok) {
			throw_napi_failure(env);
			goto fail;
		}
		if (!is_nullish(env, v) &&
		    !get_string(env, v, "every payload must be a JSON string or null", &w->payloads[i], NULL))
			goto fail;
	}
	if (!get_commit(env, argv[4], w))
		goto fail;
	return queue_work(env, w, argv[0]);
fail:
	free_work(w);
	return NULL;
}

/* remove(handle, ids, commit) */
static napi_value js_remove(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	work *w = NULL;
	nb_db *h;
	if (!get_args(env, info, 3, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_REMOVE, h)) || !get_ids(env, argv[1], w))
		goto fail;
	if (!get_commit(env, argv[2], w))
		goto fail;
	return queue_work(env, w, argv[0]);
fail:
	free_work(w);
	return NULL;
}

/* get(handle, id) */
static napi_value js_get(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	work *w = NULL;
	nb_db *h;
	if (!get_args(env, info, 2, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_GET, h)) || !get_one_id(env, argv[1], w))
		goto fail;
	if (!(w->vectors = malloc((size_t)h->dim * sizeof(float)))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory");
		goto fail;
	}
	return queue_work(env, w, argv[0]);
fail:
	free_work(w);
	return NULL;
}

/* search(handle, query, k, ef, filter) */
static napi_value js_search(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	work *w = NULL;
	nb_db *h;
	const float *q;
	if (!get_args(env, info, 5, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_SEARCH, h)) ||
	    !get_floats(env, argv[1], "query vector", h->dim, &q))
		goto fail;
	rv_search_opts so = RV_SEARCH_OPTS_INIT;
	w->search_opts = so;
	w->search_opts.flags = RV_SEARCH_PAYLOAD;
	if (!get_u32(env, argv[2], "k", &w->search_opts.k) ||
	    !get_u32(env, argv[3], "efSearch", &w->search_opts.ef))
		goto fail;
	if (!is_nullish(env, argv[4])) {
		size_t len = 0;
		if (!get_string(env, argv[4], "filter must be a JSON string or null", &w->filter, &len))
			goto fail;
		if (strlen(w->filter) != len) {
			napi_throw_range_error(env, NULL, "filter must not contain a NUL character");
			goto fail;
		}
		w->search_opts.filter = w->filter;
	}
	if (!(w->vectors = malloc((size_t)h->dim * sizeof(float)))) {
		napi_throw_error(env, "RV_ENOMEM", "out of memory");
		goto fail;
	}
	memcpy(w->vectors, q, (size_t)h->dim * sizeof(float));
	return queue_work(env, w, argv[0]);
fail:
	free_work(w);
	return NULL;
}

/* commit(handle), count(handle), stats(handle): no inputs besides the handle. */
static napi_value simple_op(napi_env env, napi_callback_info info, op o)
{
	napi_value argv[1];
	work *w;
	nb_db *h;
	if (!get_args(env, info, 1, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, o, h)))
		return NULL;
	return queue_work(env, w, argv[0]);
}

static napi_value js_commit(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_COMMIT); }

/* feedback(handle, searchId (decimal string), id, reward, commit) */
static napi_value js_feedback(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	work *w = NULL;
	nb_db *h;
	char *sid = NULL;
	size_t len = 0;
	double reward;
	if (!get_args(env, info, 5, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_FEEDBACK, h)))
		goto fail;
	if (!get_string(env, argv[1], "searchId must be a string", &sid, &len))
		goto fail;
	char *end = NULL;
	unsigned long long id = strtoull(sid, &end, 10);
	if (len == 0 || *end || sid[0] == '-') {
		napi_throw_range_error(env, NULL, "searchId must be the decimal string a search returned");
		goto fail;
	}
	w->search_id = (uint64_t)id;
	if (!get_one_id(env, argv[2], w))
		goto fail;
	if (napi_get_value_double(env, argv[3], &reward) != napi_ok) {
		napi_throw_type_error(env, NULL, "reward must be a number");
		goto fail;
	}
	w->reward = (float)reward;
	if (!get_commit(env, argv[4], w))
		goto fail;
	free(sid);
	return queue_work(env, w, argv[0]);
fail:
	free(sid);
	free_work(w);
	return NULL;
}

/* setLearning(handle, on, commit) */
static napi_value js_learning(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	work *w = NULL;
	nb_db *h;
	bool on = false;
	if (!get_args(env, info, 3, argv) || !(h = get_handle(env, argv[0])) ||
	    !(w = new_work(env, OP_LEARNING, h)))
		goto fail;
	if (napi_get_value_bool(env, argv[1], &on) != napi_ok) {
		napi_throw_type_error(env, NULL, "on must be a boolean");
		goto fail;
	}
	w->on = on;
	if (!get_commit(env, argv[2], w))
		goto fail;
	return queue_work(env, w, argv[0]);
fail:
	free_work(w);
	return NULL;
}
static napi_value js_count(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_COUNT); }
static napi_value js_stats(napi_env env, napi_callback_info info) { return simple_op(env, info, OP_STATS); }

/* close(handle): discards uncommitted changes, as rv_db_close() does. A
 * handle that is already closed is left as it is. */
static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	bool tagged = false;
	void *p = NULL;
	if (!get_args(env, info, 1, argv))
		return NULL;
	if (napi_check_object_type_tag(env, argv[0], &handle_tag, &tagged) != napi_ok || !tagged ||
	    napi_unwrap(env, argv[0], &p) != napi_ok || !p) {
		napi_throw_type_error(env, NULL, "expected a ruvector database handle");
		return NULL;
	}
	nb_db *h = p;
	h->close_requested = true;
	if (h->inflight == 0)
		close_now(h);
	return NULL;
}

/* The library's version and distance kernels, for diagnostics. */
static napi_value js_version(napi_env env, napi_callback_info info)
{
	napi_value out = NULL;
	if (napi_create_object(env, &out) != napi_ok ||
	    !set_string(env, out, "version", RV_VERSION_STRING) ||
	    !set_double(env, out, "libraryVersion", rv_libversion_number()) ||
	    !set_string(env, out, "simd", rv_simd_name())) {
		throw_napi_failure(env);
		return NULL;
	}
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	const napi_property_descriptor fns[] = {
		{ "open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "upsert", NULL, js_upsert, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "remove", NULL, js_remove, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "get", NULL, js_get, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "search", NULL, js_search, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "commit", NULL, js_commit, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "feedback", NULL, js_feedback, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "setLearning", NULL, js_learning, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "count", NULL, js_count, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "version", NULL, js_version, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	/* A library built from a different header would misread the option
	 * structs: refuse to load rather than corrupt memory. */
	if (rv_libversion_number() != RV_VERSION_NUMBER) {
		napi_throw_error(env, NULL, "libruvector does not match the ruvector.h this addon was built with");
		return NULL;
	}
	if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) {
		throw_napi_failure(env);
		return NULL;
	}
	return exports;
}

NAPI_MODULE(ruvector, init)
