/*
 * fuzz_strtof.c - rv_strtof (src/util/strtof.h) on arbitrary bytes, read
 * as a list of numbers the way a text vector is (each parse starts where
 * the previous one ended, past one separator), against the C library's
 * strtof: any difference in the value's bits, the end pointer or errno
 * aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strtof.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	const char *p = s;
	while (*p) {
		char *e1, *e2;
		errno = 0;
		float a = rv_strtof(p, &e1);
		int err1 = errno;
		errno = 0;
		float b = strtof(p, &e2);
		int err2 = errno;
		uint32_t ba, bb;
		memcpy(&ba, &a, 4);
		memcpy(&bb, &b, 4);
		if (e1 != e2 || err1 != err2 || (ba != bb && !(a != a && b != b))) {
			fprintf(stderr, "rv_strtof differs from strtof at \"%.40s\"\n", p);
			abort();
		}
		/* Past the number and one more byte (a separator, or the byte
		 * that stopped the parse). */
		p = e1 + 1;
		if ((size_t)(p - s) > size)
			break;
	}
	free(s);
	return 0;
}
