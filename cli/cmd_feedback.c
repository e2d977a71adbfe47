/*
 * cmd_feedback.c - `ruvector feedback FILE ...`: record how search results
 * were used (clicks, skips, ratings) so that a learning collection adapts.
 *
 * Events come one per command (--id/--reward with --search-id or --vector)
 * or as JSON lines (--events FILE, '-' for standard input):
 *   {"search_id":"q1...","id":"doc-7","reward":1}
 *   {"vector":[0.1,0.2,...],"id":"doc-7","reward":-0.5}
 * Every line is checked before any is applied (syntax, reward range,
 * dimension, that the item exists), so a bad file changes nothing and the
 * message names its line. Then the events are applied in order and
 * committed, every RV_FEEDBACK_BATCH events and at the end, which keeps
 * the memory of a long file bounded.
 *
 * A search id printed by `ruvector search --json` carries its query
 * (output.c), so the event is feedback by query vector: the library takes
 * the current top 10 for the query as the results that were shown.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define RV_FEEDBACK_BATCH 10000

static const char usage[] =
	"usage: " RV_CLI_NAME " feedback FILE --events EVENTS.jsonl\n"
	"       " RV_CLI_NAME " feedback FILE (--search-id S | --vector V) --id ID --reward R\n"
	"\n"
	"Record feedback on search results and commit it. With learning on\n"
	"('ruvector learn FILE on') each event also trains the collection.\n"
	"\n"
	"  --events E     JSON lines, applied in order ('-' reads standard input):\n"
	"                 {\"search_id\":\"q1...\",\"id\":\"ID\",\"reward\":R} or\n"
	"                 {\"vector\":[...],\"id\":\"ID\",\"reward\":R}\n"
	"  --search-id S  a search id printed by 'ruvector search --json'\n"
	"  --vector V     the query instead of a search id: '[0.1, 0.2]' or '0.1,0.2'\n"
	"  --id ID        the item the feedback is about\n"
	"  --reward R     -1..1: > 0 good (click, purchase), < 0 bad (skip), 0 logged only\n"
	"\n"
	"Every event is checked before any is applied: a bad line changes nothing\n"
	"and the message names it.\n";

typedef struct event {
	float *query; /* rv_malloc */
	char *id;     /* rv_malloc */
	float reward;
} event;

typedef struct event_list {
	event *v;
	size_t n, cap;
} event_list;

static void events_free(event_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		rv_dealloc(NULL, l->v[i].query);
		rv_dealloc(NULL, l->v[i].id);
	}
	rv_dealloc(NULL, l->v);
	*l = (event_list){ 0 };
}

static bool events_push(event_list *l, event ev)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		event *v = rv_realloc(NULL, l->v, cap * sizeof *v);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = ev;
	return true;
}

static rv_status parse_reward(const char *text, float *out, rv_err *err)
{
	char *end = NULL;
	errno = 0;
	double r = strtod(text, &end);
	if (end == text || *end || errno == ERANGE || !isfinite(r) || r < -1.0 || r > 1.0)
		return rv_err_set(err, RV_EINVAL, "reward '%.40s' is not a number in -1..1", text);
	*out = (float)r;
	return RV_OK;
}

/* An item id as JSON: a string, or an integer (written in decimal, as the
 * server stores numeric ids). */
static rv_status json_id(const cJSON *j, char **out, rv_err *err)
{
	char num[32];
	const char *s = NULL;
	if (cJSON_IsString(j)) {
		s = j->valuestring;
	} else if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= 9007199254740991.0 &&
		   floor(j->valuedouble) == j->valuedouble) {
		snprintf(num, sizeof num, "%.0f", j->valuedouble);
		s = num;
	} else {
		return rv_err_set(err, RV_EINVAL, "\"id\" must be a string or a non-negative integer");
	}
	size_t len = strlen(s);
	if (len < 1 || len > RV_MAX_ID_LEN)
		return rv_err_set(err, RV_EINVAL, "\"id\" has %zu bytes, must be 1..%d", len, RV_MAX_ID_LEN);
	if (!(*out = rv_strndup(NULL, s, len)))
		return rv_err_set(err, RV_ENOMEM, "out of memory");
	return RV_OK;
}

/* The query of an event from its search id or vector text/JSON. */
static rv_status event_query(float **q, uint32_t dim, const char *search_id, const cJSON *vec_json,
			     const char *vec_text, rv_err *err)
{
	rv_status st = RV_OK;
	size_t n = 0;
	*q = NULL;
	if (search_id) {
		st = rv_cli_parse_search_id(search_id, q, &n, err);
	} else if (vec_text) {
		st = rv_parse_vector(vec_text, q, &n, err);
	} else {
		char *text = cJSON_PrintUnformatted(vec_json);
		if (!text)
			return rv_err_set(err, RV_ENOMEM, "out of memory");
		st = rv_parse_vector(text, q, &n, err);
		cJSON_free(text);
		if (st != RV_OK) {
			/* rv_parse_vector's message speaks of the text it was
			 * given; say which field. */
			rv_err inner = *err;
			st = rv_err_set(err, st, "\"vector\": %s", inner.msg);
		}
	}
	if (st == RV_OK && n != dim)
		st = rv_err_set(err, RV_EINVAL, "%s has %zu values, the collection has dimension %u",
				search_id ? "the search id's query" : "the vector", n, dim);
	if (st != RV_OK) {
		rv_dealloc(NULL, *q);
		*q = NULL;
	}
	return st;
}

static rv_status parse_line(event *ev, const char *line, uint32_t dim, rv_err *err)
{
	rv_status st = RV_OK;
	*ev = (event){ 0 };
	cJSON *j = cJSON_Parse(line);
	if (!j) {
		const char *at = cJSON_GetErrorPtr();
		st = rv_err_set(err, RV_EINVAL, "invalid JSON at byte %zu",
				at && at >= line ? (size_t)(at - line) + 1 : (size_t)1);
		goto done;
	}
	if (!cJSON_IsObject(j)) {
		st = rv_err_set(err, RV_EINVAL, "expected a JSON object");
		goto done;
	}
	const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "search_id");
	const cJSON *vec = cJSON_GetObjectItemCaseSensitive(j, "vector");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	const cJSON *rw = cJSON_GetObjectItemCaseSensitive(j, "reward");
	for (const cJSON *c = j->child; c; c = c->next)
		if (strcmp(c->string, "search_id") && strcmp(c->string, "vector") && strcmp(c->string, "id") &&
		    strcmp(c->string, "reward")) {
			st = rv_err_set(err, RV_EINVAL,
					"unknown field \"%.40s\" (fields: search_id or vector, id, reward)", c->string);
			goto done;
		}
	if ((sid != NULL) == (vec != NULL)) {
		st = rv_err_set(err, RV_EINVAL, "give exactly one of \"search_id\" and \"vector\"");
		goto done;
	}
	if (sid && !cJSON_IsString(sid)) {
		st = rv_err_set(err, RV_EINVAL, "\"search_id\" must be a string");
		goto done;
	}
	if (!id) {
		st = rv_err_set(err, RV_EINVAL, "missing \"id\"");
		goto done;
	}
	if (!cJSON_IsNumber(rw) || !isfinite(rw->valuedouble) || rw->valuedouble < -1.0 ||
	    rw->valuedouble > 1.0) {
		st = rv_err_set(err, RV_EINVAL, "\"reward\" must be a number in -1..1");
		goto done;
	}
	ev->reward = (float)rw->valuedouble;
	if ((st = json_id(id, &ev->id, err)) != RV_OK)
		goto done;
	st = event_query(&ev->query, dim, sid ? sid->valuestring : NULL, vec, NULL, err);
done:
	cJSON_Delete(j);
	if (st != RV_OK) {
		rv_dealloc(NULL, ev->id);
		ev->id = NULL;
	}
	return st;
}

/* Read and check every line of src ('-': standard input). */
static int read_events(event_list *out, const char *src, rv_db *db)
{
	int rc = RV_EXIT_ERROR;
	bool is_stdin = strcmp(src, "-") == 0;
	const char *name = is_stdin ? "standard input" : src;
	FILE *f = is_stdin ? stdin : fopen(src, "r");
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		return rv_cli_fail("%s: %s", src, strerror(errno));
	uint32_t dim = rv_db_dim(db);
	size_t lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		size_t sp = strspn(line, " \t");
		if (line[sp] == 0)
			continue;
		if (strlen(line) != (size_t)len) {
			rv_cli_fail("%s line %zu: contains a NUL byte", name, lineno);
			goto done;
		}
		event ev;
		rv_err err = { "" };
		if (parse_line(&ev, line, dim, &err) != RV_OK) {
			rv_cli_fail("%s line %zu: %s", name, lineno, err.msg);
			goto done;
		}
		rv_status st = rv_db_get(db, ev.id, NULL, NULL);
		if (st != RV_OK || !events_push(out, ev)) {
			if (st == RV_ENOTFOUND)
				rv_cli_fail("%s line %zu: no point with id '%s'", name, lineno, ev.id);
			else
				rv_cli_fail("%s line %zu: %s", name, lineno,
					    st == RV_OK ? "out of memory" : rv_cli_errmsg(db, st));
			rv_dealloc(NULL, ev.query);
			rv_dealloc(NULL, ev.id);
			goto done;
		}
	}
	if (ferror(f)) {
		rv_cli_fail("%s: read error: %s", name, strerror(errno));
		goto done;
	}
	rc = RV_EXIT_OK;
done:
	free(line); /* getline allocates with the C library */
	if (!is_stdin)
		fclose(f);
	return rc;
}

int rv_cmd_feedback(int argc, char **argv)
{
	int rc = RV_EXIT_USAGE;
	const char *events_s = NULL, *search_id = NULL, *vector_s = NULL, *id_s = NULL, *reward_s = NULL;
	const rv_arg_spec specs[] = {
		{ "--events", NULL, RV_ARG_VALUE, &events_s },
		{ "--search-id", NULL, RV_ARG_VALUE, &search_id },
		{ "--vector", NULL, RV_ARG_VALUE, &vector_s },
		{ "--id", NULL, RV_ARG_VALUE, &id_s },
		{ "--reward", NULL, RV_ARG_VALUE, &reward_s },
	};
	const char *pos[1];
	size_t npos;
	rv_db *db = NULL;
	event_list list = { 0 };
	int a = rv_cli_args("feedback", usage, argc, argv, specs, sizeof specs / sizeof specs[0], pos, 1, 1, &npos,
			    "the collection FILE");
	if (a != RV_CLI_GO)
		return a;
	bool single = search_id || vector_s || id_s || reward_s;
	if (events_s && single)
		return rv_cli_usage("feedback", "--events cannot be combined with --search-id, --vector, --id "
						"or --reward");
	if (!events_s && !single)
		return rv_cli_usage("feedback", "give --events, or --id and --reward with --search-id or --vector");
	event one = { 0 };
	if (single) {
		rv_err err = { "" };
		if (!id_s || !reward_s)
			return rv_cli_usage("feedback", "a single event needs --id and --reward");
		if (!!search_id == !!vector_s)
			return rv_cli_usage("feedback", "give exactly one of --search-id and --vector");
		size_t idlen = strlen(id_s);
		if (idlen < 1 || idlen > RV_MAX_ID_LEN)
			return rv_cli_usage("feedback", "--id has %zu bytes, must be 1..%d", idlen, RV_MAX_ID_LEN);
		if (parse_reward(reward_s, &one.reward, &err) != RV_OK)
			return rv_cli_usage("feedback", "--reward: %s", err.msg);
	}

	rc = RV_EXIT_ERROR;
	if (!(db = rv_cli_open(pos[0], 0, 0, NULL)))
		goto done;
	if (single) {
		rv_err err = { "" };
		if (event_query(&one.query, rv_db_dim(db), search_id, NULL, vector_s, &err) != RV_OK) {
			rv_cli_fail("%s: %s", search_id ? "--search-id" : "--vector", err.msg);
			goto done;
		}
		if (!(one.id = rv_strndup(NULL, id_s, strlen(id_s))) || !events_push(&list, one)) {
			rv_dealloc(NULL, one.query);
			rv_dealloc(NULL, one.id);
			rv_cli_fail("out of memory");
			goto done;
		}
		rv_status st = rv_db_get(db, id_s, NULL, NULL);
		if (st != RV_OK) {
			rv_cli_fail_db(pos[0], db, st);
			goto done;
		}
	} else if ((rc = read_events(&list, events_s, db)) != RV_EXIT_OK) {
		goto done;
	}
	rc = RV_EXIT_ERROR;
	size_t committed = 0;
	for (size_t i = 0; i < list.n; i++) {
		rv_status st = rv_db_feedback_vector(db, list.v[i].query, list.v[i].id, list.v[i].reward);
		if (st == RV_OK && (i + 1 - committed == RV_FEEDBACK_BATCH || i + 1 == list.n)) {
			st = rv_db_commit(db);
			if (st == RV_OK)
				committed = i + 1;
		}
		if (st != RV_OK) {
			rv_cli_fail("event %zu: %s (%zu event%s before it committed)", i + 1, rv_cli_errmsg(db, st),
				    committed, committed == 1 ? "" : "s");
			goto done;
		}
	}
	printf("%zu event%s committed\n", list.n, list.n == 1 ? "" : "s");
	rc = RV_EXIT_OK;
done:
	events_free(&list);
	rv_db_close(db);
	return rc;
}
