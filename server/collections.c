/*
 * collections.c - the directory of collections: DIR/<name>.rvf, one file
 * per collection, each opened on first use and kept open.
 *
 * The table is a short list under one mutex. Opening a file can take a
 * while (checksums, graph load), so it happens outside the lock: the entry
 * is inserted first in state OPENING, and other requests for the same name
 * wait on the table's condition variable instead of opening it a second
 * time (the library also refuses two writers on one file). Requests hold a
 * reference while they use a collection; dropping one marks it DROPPING
 * (new requests then wait and find it gone), waits for the references to
 * go, closes it and removes the file.
 *
 * Writes are made durable before they are acknowledged. Commits on one
 * handle serialise anyway, so concurrent writers share them (group
 * commit): each write takes a ticket after its library call returns, and a
 * commit that starts after ticket t has been taken covers t.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_int.h"

enum { COLL_OPENING, COLL_OPEN, COLL_DROPPING };

struct rv_colls {
	char *dir;
	unsigned db_threads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	rv_coll *head;
};

bool rv_coll_name_ok(const char *name)
{
	size_t n = 0;
	for (; name[n]; n++) {
		char ch = name[n];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			  ch == '_' || ch == '-';
		if (!ok || n >= RV_COLL_NAME_MAX)
			return false;
	}
	return n > 0;
}

static void coll_path(char *buf, size_t cap, const rv_colls *t, const char *name)
{
	snprintf(buf, cap, "%s/%s.rvf", t->dir, name);
}

const char *rv_colls_dir(const rv_colls *t)
{
	return t->dir;
}

bool rv_colls_usable(const rv_colls *t)
{
	return access(t->dir, R_OK | W_OK | X_OK) == 0;
}

rv_status rv_colls_open(rv_colls **out, const char *dir, unsigned db_threads, rv_err *err)
{
	*out = NULL;
	if (!dir || !*dir)
		return rv_err_set(err, RV_EINVAL, "no data directory given");
	if (strlen(dir) > 3000)
		return rv_err_set(err, RV_EINVAL, "data directory path too long");
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return rv_err_set(err, RV_EIO, "%s: cannot create the data directory: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return rv_err_set(err, RV_EIO, "%s: not a directory", dir);
	if (access(dir, R_OK | W_OK | X_OK) != 0)
		return rv_err_set(err, RV_EIO, "%s: cannot read and write the data directory: %s", dir,
				  strerror(errno));
	rv_colls *t = rv_calloc(NULL, 1, sizeof *t);
	if (!t || !(t->dir = rv_strndup(NULL, dir, strlen(dir)))) {
		rv_dealloc(NULL, t);
		return rv_err_nomem(err);
	}
	t->db_threads = db_threads;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	*out = t;
	return RV_OK;
}

static rv_coll *find(rv_colls *t, const char *name)
{
	for (rv_coll *c = t->head; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void unlink_entry(rv_colls *t, rv_coll *c)
{
	for (rv_coll **p = &t->head; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static rv_coll *new_entry(rv_colls *t, const char *name)
{
	rv_coll *c = rv_calloc(NULL, 1, sizeof *c);
	if (!c)
		return NULL;
	snprintf(c->name, sizeof c->name, "%s", name);
	c->state = COLL_OPENING;
	c->refs = 1;
	atomic_init(&c->write_seq, 0);
	pthread_mutex_init(&c->commit_mu, NULL);
	c->next = t->head;
	t->head = c;
	return c;
}

static void free_entry(rv_coll *c)
{
	pthread_mutex_destroy(&c->commit_mu);
	rv_dealloc(NULL, c);
}

/* The handle's message without a leading "PATH: " (clients need not
 * learn where the server keeps its files). */
static const char *db_msg(const rv_db *db, const char *path, rv_status st)
{
	const char *m = db ? rv_errmsg(db) : "";
	size_t n = strlen(path);
	if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
		m += n + 2;
	return *m ? m : rv_status_str(st);
}

/* Take back an entry whose open or create failed. */
static void drop_entry(rv_colls *t, rv_coll *c)
{
	pthread_mutex_lock(&t->mu);
	unlink_entry(t, c);
	free_entry(c);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* Finish an open or create begun by new_entry: called without the lock. */
static rv_status finish_open(rv_coll **out, rv_colls *t, rv_coll *c, rv_db *db, const char *path, rv_err *err)
{
	rv_stats s = RV_STATS_INIT;
	rv_status st = rv_db_stats(&s, db);
	if (st != RV_OK) {
		rv_err_set(err, st, "cannot read the settings of collection `%s`: %s", c->name, db_msg(db, path, st));
		rv_db_close(db);
		drop_entry(t, c);
		return st;
	}
	pthread_mutex_lock(&t->mu);
	c->db = db;
	c->dim = s.dim;
	c->metric = s.metric;
	c->state = COLL_OPEN;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	*out = c;
	return RV_OK;
}

rv_status rv_colls_acquire(rv_coll **out, rv_colls *t, const char *name, rv_err *err)
{
	char path[4096];
	*out = NULL;
	if (!rv_coll_name_ok(name))
		return rv_err_set(err, RV_ENOTFOUND, "Not found: Collection `%.80s` doesn't exist!", name);
	coll_path(path, sizeof path, t, name);
	pthread_mutex_lock(&t->mu);
	rv_coll *c;
	while ((c = find(t, name)) && c->state != COLL_OPEN)
		pthread_cond_wait(&t->cv, &t->mu);
	if (c) {
		c->refs++;
		pthread_mutex_unlock(&t->mu);
		*out = c;
		return RV_OK;
	}
	if (access(path, F_OK) != 0) {
		pthread_mutex_unlock(&t->mu);
		return rv_err_set(err, RV_ENOTFOUND, "Not found: Collection `%s` doesn't exist!", name);
	}
	c = new_entry(t, name);
	pthread_mutex_unlock(&t->mu);
	if (!c)
		return rv_err_nomem(err);
	rv_open_opts o = RV_OPEN_OPTS_INIT;
	o.threads = t->db_threads;
	rv_db *db = NULL;
	rv_status st = rv_db_open(&db, path, &o);
	if (st != RV_OK) {
		rv_err_set(err, st, "cannot open collection `%s`: %s", name, db_msg(db, path, st));
		rv_db_close(db);
		drop_entry(t, c);
		return st;
	}
	return finish_open(out, t, c, db, path, err);
}

void rv_colls_release(rv_colls *t, rv_coll *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->mu);
	if (--c->refs == 0)
		pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

rv_status rv_colls_create(rv_coll **out, bool *exists, rv_colls *t, const char *name, const rv_open_opts *opts,
			  rv_err *err)
{
	char path[4096];
	*out = NULL;
	*exists = false;
	if (!rv_coll_name_ok(name))
		return rv_err_set(err, RV_EINVAL,
				  "collection name: expected 1..%d characters of A-Z a-z 0-9 _ -, got \"%.80s\"",
				  RV_COLL_NAME_MAX, name);
	coll_path(path, sizeof path, t, name);
	pthread_mutex_lock(&t->mu);
	rv_coll *c;
	while ((c = find(t, name)) && c->state != COLL_OPEN)
		pthread_cond_wait(&t->cv, &t->mu);
	if (c || access(path, F_OK) == 0) {
		pthread_mutex_unlock(&t->mu);
		*exists = true;
		return rv_err_set(err, RV_EINVAL, "Wrong input: Collection `%s` already exists!", name);
	}
	c = new_entry(t, name);
	pthread_mutex_unlock(&t->mu);
	if (!c)
		return rv_err_nomem(err);
	rv_db *db = NULL;
	rv_status st = rv_db_create(&db, path, opts);
	if (st != RV_OK) {
		rv_err_set(err, st, "cannot create collection `%s`: %s", name, db_msg(db, path, st));
		rv_db_close(db);
		/* The name is ours (the entry keeps others away), so a file
		 * left half-made by the failure can go. */
		unlink(path);
		drop_entry(t, c);
		return st;
	}
	return finish_open(out, t, c, db, path, err);
}

rv_status rv_colls_drop(bool *existed, rv_colls *t, const char *name, rv_err *err)
{
	char path[4096];
	*existed = false;
	if (!rv_coll_name_ok(name))
		return RV_OK;
	coll_path(path, sizeof path, t, name);
	pthread_mutex_lock(&t->mu);
	rv_coll *c;
	while ((c = find(t, name)) && c->state != COLL_OPEN)
		pthread_cond_wait(&t->cv, &t->mu);
	if (c) {
		c->state = COLL_DROPPING;
		while (c->refs > 0)
			pthread_cond_wait(&t->cv, &t->mu);
		rv_db_close(c->db);
		c->db = NULL;
	}
	rv_status st = RV_OK;
	/* Removing the file under the lock keeps a concurrent acquire from
	 * opening it halfway through. */
	if (unlink(path) == 0)
		*existed = true;
	else if (errno != ENOENT)
		st = rv_err_set(err, RV_EIO, "cannot remove collection `%s`: %s", name, strerror(errno));
	if (c) {
		*existed = true;
		unlink_entry(t, c);
		free_entry(c);
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->mu);
	return st;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void rv_colls_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rv_dealloc(NULL, names[i]);
	rv_dealloc(NULL, names);
}

rv_status rv_colls_list(char ***names, size_t *n, rv_colls *t, rv_err *err)
{
	*names = NULL;
	*n = 0;
	DIR *d = opendir(t->dir);
	if (!d)
		return rv_err_set(err, RV_EIO, "%s: %s", t->dir, strerror(errno));
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	rv_status st = RV_OK;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".rvf") != 0)
			continue;
		char base[RV_COLL_NAME_MAX + 2];
		if (len - 4 > RV_COLL_NAME_MAX)
			continue;
		memcpy(base, e->d_name, len - 4);
		base[len - 4] = 0;
		if (!rv_coll_name_ok(base))
			continue;
		char *s = rv_strndup(NULL, base, len - 4);
		if (!s || !rv_grow(NULL, (void **)&v, &cap, cnt + 1, sizeof *v)) {
			rv_dealloc(NULL, s);
			st = rv_err_nomem(err);
			break;
		}
		v[cnt++] = s;
	}
	closedir(d);
	if (st != RV_OK) {
		rv_colls_names_free(v, cnt);
		return st;
	}
	if (cnt)
		qsort(v, cnt, sizeof *v, cmp_name);
	*names = v;
	*n = cnt;
	return RV_OK;
}

rv_status rv_coll_commit(uint64_t *op, rv_coll *c, rv_err *err)
{
	uint64_t mine = atomic_fetch_add(&c->write_seq, 1) + 1;
	rv_status st = RV_OK;
	if (op)
		*op = mine;
	pthread_mutex_lock(&c->commit_mu);
	if (c->committed_seq < mine) {
		/* Every ticket up to target was taken after its write
		 * returned, so this commit covers them all. */
		uint64_t target = atomic_load(&c->write_seq);
		st = rv_db_commit(c->db);
		if (st == RV_OK)
			c->committed_seq = target;
		else
			rv_err_set(err, st, "commit of collection `%s` failed: %s", c->name, rv_errmsg(c->db));
	}
	pthread_mutex_unlock(&c->commit_mu);
	return st;
}

void rv_colls_foreach(rv_colls *t, void (*fn)(void *ctx, rv_coll *c), void *ctx)
{
	rv_coll **v = NULL;
	size_t n = 0, cap = 0;
	pthread_mutex_lock(&t->mu);
	for (rv_coll *c = t->head; c; c = c->next) {
		if (c->state != COLL_OPEN)
			continue;
		if (!rv_grow(NULL, (void **)&v, &cap, n + 1, sizeof *v))
			break;
		c->refs++;
		v[n++] = c;
	}
	pthread_mutex_unlock(&t->mu);
	for (size_t i = 0; i < n; i++) {
		fn(ctx, v[i]);
		rv_colls_release(t, v[i]);
	}
	rv_dealloc(NULL, v);
}

rv_status rv_colls_close(rv_colls *t, rv_err *err)
{
	rv_status first = RV_OK;
	if (!t)
		return RV_OK;
	pthread_mutex_lock(&t->mu);
	rv_coll *c = t->head;
	t->head = NULL;
	pthread_mutex_unlock(&t->mu);
	while (c) {
		rv_coll *next = c->next;
		rv_stats s = RV_STATS_INIT;
		/* Writes are committed before they are acknowledged; this
		 * catches anything a failed commit left behind. */
		if (c->db && rv_db_stats(&s, c->db) == RV_OK && s.dirty) {
			rv_status st = rv_db_commit(c->db);
			if (st != RV_OK && first == RV_OK)
				first = rv_err_set(err, st, "commit of collection `%s` failed: %s", c->name,
						   rv_errmsg(c->db));
		}
		rv_db_close(c->db);
		free_entry(c);
		c = next;
	}
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	rv_dealloc(NULL, t->dir);
	rv_dealloc(NULL, t);
	return first;
}
