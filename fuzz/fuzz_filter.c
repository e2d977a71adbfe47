/*
 * fuzz_filter.c - compile arbitrary bytes as a payload filter; when they
 * compile, evaluate the filter on a few fixed payloads and check that
 * {"$not": filter} gives the opposite answer on each. Failures must come
 * back as RV_EINVAL with a "filter: " message, never as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db/filter.h"
#include "util/util.h"

static const char *const payload_texts[] = {
	"{}",
	"{\"a\": 1, \"b\": \"x\", \"c\": true, \"d\": null, \"tags\": [\"a\", \"b\", 3],"
	" \"m\": {\"a\": {\"b\": [1, {\"c\": 2}]}, \"0\": \"zero\"}}",
	"{\"items\": [{\"p\": 1, \"q\": \"a\"}, {\"p\": 2.5}, 7, [1, 2], {\"q\": [\"b\", null]}],"
	" \"y\": -1e300, \"s\": \"\\u00e9t\\u00e9\", \"e\": [], \"o\": {}}",
	"[1, 2, 3]",
};
#define NPAY (sizeof payload_texts / sizeof payload_texts[0])

static cJSON *payloads[NPAY + 1]; /* the last one stays NULL: no payload */

static void setup(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	for (size_t i = 0; i < NPAY; i++) {
		payloads[i] = cJSON_Parse(payload_texts[i]);
		if (!payloads[i])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	rv_filter *f = NULL, *nf = NULL;
	rv_err err;
	rv_status st = rv_filter_compile(&f, (const char *)data, size, NULL, &err);
	if (st != RV_OK) {
		if (st != RV_EINVAL || f != NULL || strncmp(err.msg, "filter: ", 8) != 0)
			abort();
		return 0;
	}

	/* The same filter under $not must give the opposite answers. */
	char *text = malloc(size + 16);
	if (!text)
		abort();
	memcpy(text, "{\"$not\": ", 9);
	memcpy(text + 9, data, size);
	text[9 + size] = '}';
	st = rv_filter_compile(&nf, text, size + 10, NULL, &err);
	/* Only the nesting and size limits may refuse the wrapped form. */
	if (st != RV_OK && !strstr(err.msg, "nesting") && !strstr(err.msg, "1 MiB"))
		abort();
	for (size_t i = 0; i <= NPAY; i++) {
		bool m = rv_filter_match(f, payloads[i]);
		if (nf && rv_filter_match(nf, payloads[i]) == m)
			abort();
	}
	rv_filter_free(nf);
	rv_filter_free(f);
	free(text);
	return 0;
}
