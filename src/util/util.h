/*
 * util.h - small shared pieces every layer uses: allocator hooks, error
 * messages, a growable byte buffer with little-endian encoders, a bitset,
 * a seeded random generator, thread helpers and overflow-checked sizes.
 *
 * Internal: nothing here is exported from the shared library.
 */
#ifndef RV_UTIL_H
#define RV_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ruvector.h"

#if defined(__GNUC__)
#define RV_HIDDEN __attribute__((visibility("hidden")))
#define RV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RV_LIKELY(x) __builtin_expect(!!(x), 1)
#define RV_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RV_HIDDEN
#define RV_PRINTF(a, b)
#define RV_LIKELY(x) (x)
#define RV_UNLIKELY(x) (x)
#endif

/* ------------------------------------------------------------------------
 * Allocation. Every allocation of a handle goes through its rv_alloc so
 * that tests can fail the Nth one. A NULL rv_alloc means the C library.
 * ---------------------------------------------------------------------- */

typedef rv_allocator rv_alloc;

void *rv_malloc(const rv_alloc *a, size_t n);
void *rv_calloc(const rv_alloc *a, size_t count, size_t size); /* zeroed; checks overflow */
void *rv_realloc(const rv_alloc *a, void *p, size_t n);
void rv_dealloc(const rv_alloc *a, void *p); /* NULL is a no-op */
char *rv_strndup(const rv_alloc *a, const char *s, size_t n);

/* Grow *arr (of elements of size elem) so it holds at least need
 * elements; *cap is updated. Doubles. Returns false on overflow / ENOMEM
 * (then *arr and *cap are unchanged). */
bool rv_grow(const rv_alloc *a, void **arr, size_t *cap, size_t need, size_t elem);

/* a * b without overflow, else false. */
static inline bool rv_mul_ok(size_t a, size_t b, size_t *out)
{
	if (b && a > SIZE_MAX / b)
		return false;
	*out = a * b;
	return true;
}

/* ------------------------------------------------------------------------
 * Errors: a fixed buffer inside each handle.
 * ---------------------------------------------------------------------- */

#define RV_ERR_MAX 512

typedef struct rv_err {
	char msg[RV_ERR_MAX];
} rv_err;

/* Format the message into e (if not NULL) and return st. */
rv_status rv_err_set(rv_err *e, rv_status st, const char *fmt, ...) RV_PRINTF(3, 4);
rv_status rv_err_setv(rv_err *e, rv_status st, const char *fmt, va_list ap) RV_PRINTF(3, 0);
/* Prefix the existing message: "ctx: old message". */
void rv_err_prefix(rv_err *e, const char *fmt, ...) RV_PRINTF(2, 3);
static inline rv_status rv_err_nomem(rv_err *e)
{
	return rv_err_set(e, RV_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------
 * Byte buffer with little-endian encoders. On allocation failure the
 * buffer remembers it (b->failed) and further puts do nothing, so a writer
 * can encode a whole structure and check once.
 * ---------------------------------------------------------------------- */

typedef struct rv_buf {
	uint8_t *data;
	size_t len, cap;
	bool failed;
	const rv_alloc *a;
} rv_buf;

void rv_buf_init(rv_buf *b, const rv_alloc *a);
void rv_buf_free(rv_buf *b);
bool rv_buf_reserve(rv_buf *b, size_t extra);
void rv_buf_put(rv_buf *b, const void *p, size_t n);
void rv_buf_zero(rv_buf *b, size_t n);
void rv_buf_u8(rv_buf *b, uint8_t v);
void rv_buf_u16(rv_buf *b, uint16_t v);
void rv_buf_u32(rv_buf *b, uint32_t v);
void rv_buf_u64(rv_buf *b, uint64_t v);
void rv_buf_f32(rv_buf *b, float v);
void rv_buf_align(rv_buf *b, size_t align); /* pad with zeros to a multiple */

static inline void rv_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void rv_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void rv_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t rv_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rv_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rv_get_u64(const uint8_t *p)
{
	return (uint64_t)rv_get_u32(p) | ((uint64_t)rv_get_u32(p + 4) << 32);
}

/* Bounds-checked reader over untrusted bytes: every get fails (sets
 * r->bad, returns 0) once the input runs out. */
typedef struct rv_reader {
	const uint8_t *p, *end;
	bool bad;
} rv_reader;

static inline void rv_reader_init(rv_reader *r, const void *p, size_t n)
{
	r->p = (const uint8_t *)p;
	r->end = r->p + n;
	r->bad = false;
}
static inline size_t rv_reader_left(const rv_reader *r) { return (size_t)(r->end - r->p); }
const uint8_t *rv_reader_bytes(rv_reader *r, size_t n); /* NULL when short */
uint8_t rv_reader_u8(rv_reader *r);
uint16_t rv_reader_u16(rv_reader *r);
uint32_t rv_reader_u32(rv_reader *r);
uint64_t rv_reader_u64(rv_reader *r);
float rv_reader_f32(rv_reader *r);

/* ------------------------------------------------------------------------
 * Bitset
 * ---------------------------------------------------------------------- */

static inline bool rv_bit_get(const uint64_t *bits, size_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }
static inline void rv_bit_set(uint64_t *bits, size_t i) { bits[i >> 6] |= (uint64_t)1 << (i & 63); }
static inline void rv_bit_clear(uint64_t *bits, size_t i) { bits[i >> 6] &= ~((uint64_t)1 << (i & 63)); }
static inline size_t rv_bit_words(size_t n) { return (n + 63) / 64; }

/* ------------------------------------------------------------------------
 * Random numbers: splitmix64-seeded xoshiro256**, one state per user.
 * ---------------------------------------------------------------------- */

typedef struct rv_rng {
	uint64_t s[4];
} rv_rng;

void rv_rng_seed(rv_rng *r, uint64_t seed);
uint64_t rv_rng_next(rv_rng *r);
double rv_rng_uniform(rv_rng *r); /* [0, 1) */
uint64_t rv_rng_below(rv_rng *r, uint64_t n); /* [0, n), n > 0 */
float rv_rng_gauss(rv_rng *r);

/* ------------------------------------------------------------------------
 * Hashing (xxHash, XXH3)
 * ---------------------------------------------------------------------- */

uint64_t rv_hash64(const void *p, size_t n, uint64_t seed);

/* ------------------------------------------------------------------------
 * Threads
 * ---------------------------------------------------------------------- */

/* Number of online CPUs (>= 1). */
unsigned rv_cpu_count(void);

/* Run fn(ctx, t) for t in [0, threads) on threads-1 new threads and the
 * calling one; returns when all are done. Falls back to fewer threads when
 * thread creation fails. */
void rv_parallel(unsigned threads, void (*fn)(void *ctx, unsigned t), void *ctx);

/* Monotonic clock in seconds. */
double rv_now(void);

/* ------------------------------------------------------------------------
 * Internal assertions: abort in debug builds, return RV_ERROR in release.
 * ---------------------------------------------------------------------- */

#ifdef NDEBUG
#define RV_ASSERT(cond, err)                                                                  \
	do {                                                                                  \
		if (RV_UNLIKELY(!(cond)))                                                     \
			return rv_err_set((err), RV_ERROR, "internal error: %s (%s:%d)", #cond, \
					  __FILE__, __LINE__);                                \
	} while (0)
#else
#include <assert.h>
#define RV_ASSERT(cond, err) assert(cond)
#endif

#endif /* RV_UTIL_H */
