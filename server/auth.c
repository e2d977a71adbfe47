/*
 * auth.c - API keys: the key file and the per-request check.
 *
 * File format (--api-key-file), one key per line:
 *     rw KEY      reads and writes
 *     ro KEY      reads only (searches, retrievals, listings, metrics)
 * Blank lines and lines starting with '#' are skipped; KEY is one word of
 * printable characters. A request presents its key in Qdrant's header
 * "api-key: KEY", or as "Authorization: Bearer KEY".
 *
 * The check compares the presented key with every configured key, each
 * comparison in constant time, and never stops early, so response time
 * says nothing about how much of a key was right or which key matched.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server_int.h"

typedef struct auth_key {
	char *key;
	size_t len;
	rv_role role;
} auth_key;

struct rv_auth {
	auth_key *keys;
	size_t n, cap;
};

bool rv_ct_equal(const void *a, size_t an, const void *b, size_t bn)
{
	const unsigned char *pa = a, *pb = b;
	/* Walk the caller's string (its length is no secret). For b, read
	 * index min(i, bn - 1), chosen with masks rather than a branch, and
	 * let the length difference alone decide when the lengths differ. */
	uint64_t diff = (uint64_t)an ^ (uint64_t)bn;
	uint64_t last = bn ? (uint64_t)bn - 1 : 0;
	for (size_t i = 0; i < an; i++) {
		uint64_t in = ((uint64_t)i - (uint64_t)bn) >> 63; /* 1 when i < bn */
		uint64_t mask = (uint64_t)0 - in;
		size_t idx = (size_t)(((uint64_t)i & mask) | (last & ~mask));
		unsigned char cb = bn ? pb[idx] : 0;
		diff |= (uint64_t)(pa[i] ^ cb) & mask;
	}
	return diff == 0;
}

void rv_auth_free(rv_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		/* Keys are secrets: do not leave them in freed memory. */
		volatile char *p = a->keys[i].key;
		for (size_t k = 0; k < a->keys[i].len; k++)
			p[k] = 0;
		rv_dealloc(NULL, a->keys[i].key);
	}
	rv_dealloc(NULL, a->keys);
	rv_dealloc(NULL, a);
}

rv_status rv_auth_load(rv_auth **out, const char *path, rv_err *err)
{
	rv_status st = RV_OK;
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return rv_err_set(err, RV_EIO, "%s: cannot read the API key file: %s", path, strerror(errno));
	rv_auth *a = rv_calloc(NULL, 1, sizeof *a);
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	if (!a) {
		st = rv_err_nomem(err);
		goto done;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			line[--len] = 0;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		rv_role role;
		if (!strncmp(p, "rw", 2) && isspace((unsigned char)p[2]))
			role = RV_ROLE_RW;
		else if (!strncmp(p, "ro", 2) && isspace((unsigned char)p[2]))
			role = RV_ROLE_RO;
		else {
			st = rv_err_set(err, RV_EINVAL, "%s:%zu: expected \"rw KEY\" or \"ro KEY\"", path, lineno);
			goto done;
		}
		p += 2;
		while (isspace((unsigned char)*p))
			p++;
		size_t n = strlen(p);
		for (size_t i = 0; i < n; i++)
			if (!isgraph((unsigned char)p[i])) {
				st = rv_err_set(err, RV_EINVAL, "%s:%zu: a key is one word of printable characters",
						path, lineno);
				goto done;
			}
		if (n == 0) {
			st = rv_err_set(err, RV_EINVAL, "%s:%zu: expected \"rw KEY\" or \"ro KEY\"", path, lineno);
			goto done;
		}
		if (!rv_grow(NULL, (void **)&a->keys, &a->cap, a->n + 1, sizeof *a->keys) ||
		    !(a->keys[a->n].key = rv_strndup(NULL, p, n))) {
			st = rv_err_nomem(err);
			goto done;
		}
		a->keys[a->n].len = n;
		a->keys[a->n].role = role;
		a->n++;
	}
	if (ferror(f)) {
		st = rv_err_set(err, RV_EIO, "%s: read error: %s", path, strerror(errno));
		goto done;
	}
	if (a->n == 0) {
		st = rv_err_set(err, RV_EINVAL, "%s: no keys (expected lines \"rw KEY\" or \"ro KEY\")", path);
		goto done;
	}
	*out = a;
	a = NULL;
done:
	if (line) {
		/* getline()'s buffer held key text; it is the C library's. */
		memset(line, 0, cap);
		free(line);
	}
	fclose(f);
	rv_auth_free(a);
	return st;
}

rv_role rv_auth_check(const rv_auth *a, const char *api_key, const char *authorization)
{
	const char *tok = api_key;
	if (!tok && authorization) {
		const char *p = authorization;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "Bearer ", 7) != 0)
			return RV_ROLE_NONE;
		tok = p + 7;
		while (*tok == ' ')
			tok++;
	}
	if (!tok)
		return RV_ROLE_NONE;
	size_t n = strlen(tok);
	unsigned best = RV_ROLE_NONE;
	for (size_t i = 0; i < a->n; i++) {
		unsigned eq = rv_ct_equal(tok, n, a->keys[i].key, a->keys[i].len);
		unsigned r = eq * (unsigned)a->keys[i].role;
		best |= r; /* RO = 1, RW = 2: a key listed with both roles reads and writes */
	}
	return best & RV_ROLE_RW ? RV_ROLE_RW : best ? RV_ROLE_RO : RV_ROLE_NONE;
}
