/*
 * util.c - allocator hooks, error messages, byte buffers, random numbers,
 * hashing and thread helpers shared by every layer.
 */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ======================================================================
 * Allocation
 * ==================================================================== */

void *rv_malloc(const rv_alloc *a, size_t n)
{
	if (n == 0)
		n = 1;
	return a && a->malloc_fn ? a->malloc_fn(a->ctx, n) : malloc(n);
}

void *rv_calloc(const rv_alloc *a, size_t count, size_t size)
{
	size_t n;
	if (!rv_mul_ok(count, size, &n))
		return NULL;
	void *p = rv_malloc(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

void *rv_realloc(const rv_alloc *a, void *p, size_t n)
{
	if (n == 0)
		n = 1;
	return a && a->realloc_fn ? a->realloc_fn(a->ctx, p, n) : realloc(p, n);
}

void rv_dealloc(const rv_alloc *a, void *p)
{
	if (!p)
		return;
	if (a && a->free_fn)
		a->free_fn(a->ctx, p);
	else
		free(p);
}

char *rv_strndup(const rv_alloc *a, const char *s, size_t n)
{
	char *d = rv_malloc(a, n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

bool rv_grow(const rv_alloc *a, void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t ncap = *cap ? *cap : 8;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return false;
		ncap *= 2;
	}
	size_t bytes;
	if (!rv_mul_ok(ncap, elem, &bytes))
		return false;
	void *p = rv_realloc(a, *arr, bytes);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* ======================================================================
 * Errors
 * ==================================================================== */

rv_status rv_err_setv(rv_err *e, rv_status st, const char *fmt, va_list ap)
{
	if (e)
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	return st;
}

rv_status rv_err_set(rv_err *e, rv_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rv_err_setv(e, st, fmt, ap);
	va_end(ap);
	return st;
}

void rv_err_prefix(rv_err *e, const char *fmt, ...)
{
	if (!e)
		return;
	char pre[RV_ERR_MAX], old[RV_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	size_t n = strlen(pre);
	if (n > RV_ERR_MAX - 3)
		n = RV_ERR_MAX - 3;
	memcpy(e->msg, pre, n);
	memcpy(e->msg + n, ": ", 2);
	size_t rest = RV_ERR_MAX - n - 3;
	size_t olen = strnlen(old, rest);
	memcpy(e->msg + n + 2, old, olen);
	e->msg[n + 2 + olen] = 0;
}

/* ======================================================================
 * Byte buffer
 * ==================================================================== */

void rv_buf_init(rv_buf *b, const rv_alloc *a)
{
	memset(b, 0, sizeof *b);
	b->a = a;
}

void rv_buf_free(rv_buf *b)
{
	rv_dealloc(b->a, b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

bool rv_buf_reserve(rv_buf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (extra > SIZE_MAX - b->len) {
		b->failed = true;
		return false;
	}
	void *d = b->data;
	if (!rv_grow(b->a, &d, &b->cap, b->len + extra, 1)) {
		b->failed = true;
		return false;
	}
	b->data = d;
	return true;
}

void rv_buf_put(rv_buf *b, const void *p, size_t n)
{
	if (n && rv_buf_reserve(b, n)) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
}

void rv_buf_zero(rv_buf *b, size_t n)
{
	if (n && rv_buf_reserve(b, n)) {
		memset(b->data + b->len, 0, n);
		b->len += n;
	}
}

void rv_buf_u8(rv_buf *b, uint8_t v) { rv_buf_put(b, &v, 1); }

void rv_buf_u16(rv_buf *b, uint16_t v)
{
	uint8_t t[2];
	rv_put_u16(t, v);
	rv_buf_put(b, t, 2);
}

void rv_buf_u32(rv_buf *b, uint32_t v)
{
	uint8_t t[4];
	rv_put_u32(t, v);
	rv_buf_put(b, t, 4);
}

void rv_buf_u64(rv_buf *b, uint64_t v)
{
	uint8_t t[8];
	rv_put_u64(t, v);
	rv_buf_put(b, t, 8);
}

void rv_buf_f32(rv_buf *b, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	rv_buf_u32(b, u);
}

void rv_buf_align(rv_buf *b, size_t align)
{
	size_t r = b->len % align;
	if (r)
		rv_buf_zero(b, align - r);
}

/* ======================================================================
 * Reader over untrusted bytes
 * ==================================================================== */

const uint8_t *rv_reader_bytes(rv_reader *r, size_t n)
{
	if (r->bad || rv_reader_left(r) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

uint8_t rv_reader_u8(rv_reader *r)
{
	const uint8_t *p = rv_reader_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t rv_reader_u16(rv_reader *r)
{
	const uint8_t *p = rv_reader_bytes(r, 2);
	return p ? rv_get_u16(p) : 0;
}

uint32_t rv_reader_u32(rv_reader *r)
{
	const uint8_t *p = rv_reader_bytes(r, 4);
	return p ? rv_get_u32(p) : 0;
}

uint64_t rv_reader_u64(rv_reader *r)
{
	const uint8_t *p = rv_reader_bytes(r, 8);
	return p ? rv_get_u64(p) : 0;
}

float rv_reader_f32(rv_reader *r)
{
	uint32_t u = rv_reader_u32(r);
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ======================================================================
 * Random numbers
 * ==================================================================== */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rv_rng_seed(rv_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rv_rng_next(rv_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rv_rng_uniform(rv_rng *r) { return (double)(rv_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t rv_rng_below(rv_rng *r, uint64_t n)
{
	/* Rejection keeps the draw unbiased for any n. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rv_rng_next(r);
	while (x >= limit);
	return x % n;
}

float rv_rng_gauss(rv_rng *r)
{
	double u1 = rv_rng_uniform(r), u2 = rv_rng_uniform(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ======================================================================
 * Hashing
 * ==================================================================== */

uint64_t rv_hash64(const void *p, size_t n, uint64_t seed) { return XXH3_64bits_withSeed(p, n, seed); }

/* ======================================================================
 * Threads and time
 * ==================================================================== */

unsigned rv_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

typedef struct par_arg {
	void (*fn)(void *, unsigned);
	void *ctx;
	unsigned t;
} par_arg;

static void *par_main(void *p)
{
	par_arg *a = p;
	a->fn(a->ctx, a->t);
	return NULL;
}

void rv_parallel(unsigned threads, void (*fn)(void *ctx, unsigned t), void *ctx)
{
	enum { MAXT = 256 };
	if (threads < 1)
		threads = 1;
	if (threads > MAXT)
		threads = MAXT;
	pthread_t tid[MAXT];
	par_arg args[MAXT];
	unsigned started = 0;
	/* Workers take indices 1..; if a thread cannot start, the caller runs
	 * that index itself, so every index runs exactly once. */
	for (unsigned t = 1; t < threads; t++) {
		args[t] = (par_arg){ fn, ctx, t };
		if (pthread_create(&tid[started], NULL, par_main, &args[t]) != 0) {
			for (unsigned u = t; u < threads; u++)
				fn(ctx, u);
			break;
		}
		started++;
	}
	fn(ctx, 0);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

double rv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
