/*
 * hnsw_build.c - the index's life: creation and release, level draws,
 * capacity, the scratch pool, batch build on threads, and the saved form
 * (rv_hnsw_save / rv_hnsw_load).
 *
 * Levels are a pure function of (seed, slot): a hash of the slot gives the
 * uniform draw u and the level is floor(-ln(u) / ln(m)). The graph built
 * from the same seed and the same insert order is therefore the same, and a
 * batch build needs no shared random state between its threads.
 *
 * Batch build: everything that could fail (capacity, upper-level blocks,
 * one scratch per thread) is obtained serially before the threads start,
 * so a started build always completes. The two steps are separate calls
 * (rv_hnsw_batch_prepare, rv_hnsw_batch_link), so that the collection can
 * let searches run during the second. Threads take slots in order from a
 * shared counter, which keeps the insertion order close to the serial one
 * and the recall of a threaded build equal to a serial build's.
 *
 * Saved form: docs/format-index.md has the byte table. It is parsed in two
 * passes: the first checks the structure (bounds, counts, node slots in
 * ascending order, levels) and records which slots are nodes; the second
 * checks every neighbour against that record and copies the lists in. No
 * distance is computed, and no byte is trusted before it is checked.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "index/hnsw_int.h"

#define PROGRESS_EVERY 4096

/* ======================================================================
 * Creation and release
 * ==================================================================== */

static rv_status check_params(const rv_hnsw_params *p, const rv_vecs *vecs, rv_err *err)
{
	if (!p || !vecs)
		return rv_err_set(err, RV_EINVAL, "hnsw: NULL parameters or vector table");
	if (p->dim < 1 || p->dim > RV_MAX_DIM)
		return rv_err_set(err, RV_EINVAL, "hnsw: dimension %u out of range 1..%d", p->dim,
				  RV_MAX_DIM);
	if (vecs->dim != p->dim)
		return rv_err_set(err, RV_EINVAL, "hnsw: dimension mismatch: index has %u, vectors have %u",
				  p->dim, vecs->dim);
	if ((unsigned)p->metric > RV_METRIC_IP)
		return rv_err_set(err, RV_EINVAL, "hnsw: unknown metric %d", (int)p->metric);
	if (p->m < 2 || p->m > RV_HNSW_M_MAX)
		return rv_err_set(err, RV_EINVAL, "hnsw: m %u out of range 2..%d", p->m, RV_HNSW_M_MAX);
	if (p->ef_construction < 1 || p->ef_construction > 100000)
		return rv_err_set(err, RV_EINVAL, "hnsw: ef_construction %u out of range 1..100000",
				  p->ef_construction);
	return RV_OK;
}

rv_status rv_hnsw_new(rv_hnsw **out, const rv_hnsw_params *p, const rv_vecs *vecs,
		      const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_hnsw *h = NULL;
	if (!out)
		return rv_err_set(err, RV_EINVAL, "hnsw: NULL output");
	*out = NULL;
	st = check_params(p, vecs, err);
	if (st != RV_OK)
		goto done;

	h = rv_calloc(a, 1, sizeof *h);
	if (!h) {
		st = rv_err_nomem(err);
		goto done;
	}
	h->stripes = rv_malloc(a, RV_HNSW_STRIPES * sizeof *h->stripes);
	if (!h->stripes) {
		st = rv_err_nomem(err);
		goto done;
	}
	h->p = *p;
	h->vecs = vecs;
	h->a = a;
	const rv_simd_ops *ops = rv_simd();
	h->l2sq = ops->l2sq;
	h->dot = ops->dot;
	h->is_l2 = p->metric == RV_METRIC_L2;
	h->dot_bias = p->metric == RV_METRIC_COSINE ? 1.0f : 0.0f;
	h->m = p->m;
	h->m0 = 2 * p->m;
	h->l0_list = 1 + (size_t)h->m0;
	h->l0_stride = rv_hnsw_row_words(h->l0_list * sizeof(uint32_t));
	h->up_stride = 1 + (size_t)h->m;
	h->level_mult = 1.0 / log((double)p->m);
	rv_hnsw_set_top(h, RV_HNSW_NONE, -1);
	/* Default mutexes cannot fail to initialise on the platforms we
	 * build for (glibc and musl only store the attributes). */
	for (size_t i = 0; i < RV_HNSW_STRIPES; i++)
		pthread_mutex_init(&h->stripes[i], NULL);
	pthread_mutex_init(&h->global, NULL);
	pthread_mutex_init(&h->recent_mu, NULL);
	pthread_mutex_init(&h->pool_mu, NULL);
	*out = h;
	h = NULL;
done:
	if (h)
		rv_dealloc(a, h->stripes);
	rv_dealloc(a, h);
	return st;
}

static void scratch_free(const rv_hnsw *h, rv_hnsw_scratch *s)
{
	const rv_alloc *a = h->a;
	if (!s)
		return;
	rv_hnsw_codes_scratch_clear(h, s);
	rv_dealloc(a, s->mark);
	rv_dealloc(a, s->cand);
	rv_dealloc(a, s->res);
	rv_dealloc(a, s->sel);
	rv_dealloc(a, s->pool);
	rv_dealloc(a, s->kept);
	rv_dealloc(a, s->nbuf);
	rv_dealloc(a, s->dbuf);
	rv_dealloc(a, s->picks);
	rv_dealloc(a, s);
}

void rv_hnsw_free(rv_hnsw *h)
{
	if (!h)
		return;
	const rv_alloc *a = h->a;
	/* Scratches first: their query forms use the quantizer. */
	for (size_t i = 0; i < h->pool_n; i++)
		scratch_free(h, h->pool[i]);
	rv_dealloc(a, h->pool);
	h->pool = NULL;
	h->pool_n = 0;
	rv_hnsw_disable_codes(h);
	if (h->upper)
		for (uint32_t s = 0; s < h->cap; s++)
			rv_dealloc(a, h->upper[s]);
	rv_dealloc(a, h->upper);
	rv_dealloc(a, (void *)h->lv);
	rv_dealloc(a, h->l0_raw);
	for (size_t i = 0; i < RV_HNSW_STRIPES; i++)
		pthread_mutex_destroy(&h->stripes[i]);
	rv_dealloc(a, h->stripes);
	pthread_mutex_destroy(&h->global);
	pthread_mutex_destroy(&h->recent_mu);
	pthread_mutex_destroy(&h->pool_mu);
	rv_dealloc(a, h);
}

/* ======================================================================
 * Levels and capacity
 * ==================================================================== */

unsigned rv_hnsw_draw_level(const rv_hnsw *h, uint32_t slot)
{
	uint8_t b[4];
	rv_put_u32(b, slot);
	uint64_t x = rv_hash64(b, sizeof b, h->p.seed);
	/* u in (0, 1]: never 0, so the logarithm stays finite. */
	double u = ((double)(x >> 11) + 1.0) * 0x1.0p-53;
	double level = -log(u) * h->level_mult;
	return level >= RV_HNSW_MAX_LEVEL ? RV_HNSW_MAX_LEVEL : (unsigned)level;
}

#define ROW_ALIGN 64

size_t rv_hnsw_row_words(size_t bytes)
{
	/* Padding a row to whole lines means no row straddles one line more
	 * than it must (a 784-dim SQ8 row of 920 bytes becomes 960: 15
	 * lines, where unpadded rows would start at every offset and a
	 * third of them touch 16). A short row stays as it is: padding the
	 * 132-byte list of m = 16 to 192 would cost 45% more memory for the
	 * same lines touched on average. */
	size_t lines = (bytes + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
	if ((lines - bytes) * 8 <= bytes)
		return lines / sizeof(uint32_t);
	return (bytes + sizeof(uint32_t) - 1) / sizeof(uint32_t);
}

uint32_t *rv_hnsw_rows_alloc(const rv_hnsw *h, size_t rows, size_t stride, uint8_t **raw)
{
	size_t bytes;
	*raw = NULL;
	if (!rv_mul_ok(rows, stride * sizeof(uint32_t), &bytes) || bytes > SIZE_MAX - ROW_ALIGN)
		return NULL;
	*raw = rv_calloc(h->a, 1, bytes + ROW_ALIGN);
	if (!*raw)
		return NULL;
	uintptr_t p = (uintptr_t)*raw;
	return (uint32_t *)(void *)(*raw + (ROW_ALIGN - p % ROW_ALIGN) % ROW_ALIGN);
}

bool rv_hnsw_reserve(rv_hnsw *h, uint32_t need)
{
	if (need <= h->cap)
		return true;
	uint64_t ncap = (uint64_t)h->cap + h->cap / 2;
	if (ncap < need)
		ncap = need;
	if (ncap < 256)
		ncap = 256;
	if (ncap > UINT32_MAX)
		ncap = UINT32_MAX;
	size_t up_bytes;
	if (!rv_mul_ok((size_t)ncap, sizeof *h->upper, &up_bytes))
		return false;
	/* Each array is replaced as soon as it has grown, so a later failure
	 * leaves larger but still valid arrays and an unchanged cap. The rows
	 * are not a realloc: the aligned start may sit at another offset in
	 * a new block. Level-0 lists of absent slots are never followed (lv
	 * says absent), but a search that reads a list while a writer
	 * extends it may see words past the old count before it notices and
	 * reads again: zeroed, they are slots below cap (see Locking in
	 * hnsw_int.h). */
	uint8_t *raw;
	uint32_t *l0 = rv_hnsw_rows_alloc(h, (size_t)ncap, h->l0_stride, &raw);
	if (!l0)
		return false;
	if (h->cap)
		memcpy(l0, h->l0, (size_t)h->cap * h->l0_stride * sizeof *l0);
	rv_dealloc(h->a, h->l0_raw);
	h->l0_raw = raw;
	h->l0 = l0;
	_Atomic uint8_t *lv = rv_realloc(h->a, (void *)h->lv, (size_t)ncap);
	if (!lv)
		return false;
	h->lv = lv;
	uint32_t **upper = rv_realloc(h->a, h->upper, up_bytes);
	if (!upper)
		return false;
	h->upper = upper;
	memset((void *)(h->lv + h->cap), 0, (size_t)(ncap - h->cap));
	memset(h->upper + h->cap, 0, (size_t)(ncap - h->cap) * sizeof *h->upper);
	h->cap = (uint32_t)ncap;
	return true;
}

/* ======================================================================
 * Scratch pool
 * ==================================================================== */

/* Grow an array to exactly need elements (not doubling: the visited
 * stamps follow the graph's capacity). New elements are zeroed. */
static bool grow_exact(const rv_alloc *a, void **arr, size_t *cap, size_t need, size_t elem,
		       size_t *bytes)
{
	if (need <= *cap)
		return true;
	size_t n;
	if (!rv_mul_ok(need, elem, &n))
		return false;
	uint8_t *p = rv_realloc(a, *arr, n);
	if (!p)
		return false;
	memset(p + *cap * elem, 0, (need - *cap) * elem);
	*bytes += (need - *cap) * elem;
	*arr = p;
	*cap = need;
	return true;
}

static rv_hnsw_scratch *scratch_new(const rv_hnsw *h)
{
	const rv_alloc *a = h->a;
	rv_hnsw_scratch *s = rv_calloc(a, 1, sizeof *s);
	if (!s)
		return NULL;
	s->kept = rv_malloc(a, h->m0 * sizeof *s->kept);
	s->nbuf = rv_malloc(a, h->l0_list * sizeof *s->nbuf);
	s->dbuf = rv_malloc(a, h->l0_list * sizeof *s->dbuf);
	s->picks = rv_malloc(a, (RV_HNSW_MAX_LEVEL + 1) * (size_t)h->m * sizeof *s->picks);
	if (!s->kept || !s->nbuf || !s->dbuf || !s->picks) {
		scratch_free(h, s);
		return NULL;
	}
	s->bytes = sizeof *s + (h->m0 + 2 * h->l0_list + (RV_HNSW_MAX_LEVEL + 1) * (size_t)h->m) *
				       sizeof(uint32_t);
	return s;
}

rv_hnsw_scratch *rv_hnsw_acquire(const rv_hnsw *h, size_t ef)
{
	/* The pool is the one mutable part of an index that searches share. */
	rv_hnsw *hm = (rv_hnsw *)h;
	rv_hnsw_scratch *s = NULL;
	pthread_mutex_lock(&hm->pool_mu);
	if (hm->pool_n) {
		s = hm->pool[--hm->pool_n];
	} else {
		/* Room in the pool for every scratch in existence, so that
		 * giving one back never allocates. */
		void *p = hm->pool;
		if (rv_grow(h->a, &p, &hm->pool_cap, hm->pool_total + 1, sizeof *hm->pool)) {
			hm->pool = p;
			s = scratch_new(h);
			if (s)
				hm->pool_total++;
		}
	}
	pthread_mutex_unlock(&hm->pool_mu);
	if (!s)
		return NULL;

	size_t ef1 = ef + 1, sel_need = 4 * h->l0_list;
	if (sel_need < ef1)
		sel_need = ef1;
	if (!grow_exact(h->a, (void **)&s->mark, &s->mark_cap, h->cap, sizeof *s->mark, &s->bytes) ||
	    !grow_exact(h->a, (void **)&s->res, &s->res_cap, ef1, sizeof *s->res, &s->bytes) ||
	    !grow_exact(h->a, (void **)&s->cand, &s->cand_cap, ef1 + h->m0, sizeof *s->cand,
			&s->bytes) ||
	    !grow_exact(h->a, (void **)&s->sel, &s->sel_cap, sel_need, sizeof *s->sel, &s->bytes)) {
		rv_hnsw_release(h, s);
		return NULL;
	}
	return s;
}

bool rv_hnsw_scratch_pool(const rv_hnsw *h, rv_hnsw_scratch *s, size_t n)
{
	return grow_exact(h->a, (void **)&s->pool, &s->pool_cap, n + 1, sizeof *s->pool, &s->bytes) &&
	       grow_exact(h->a, (void **)&s->sel, &s->sel_cap, n + 1, sizeof *s->sel, &s->bytes);
}

void rv_hnsw_release(const rv_hnsw *h, rv_hnsw_scratch *s)
{
	rv_hnsw *hm = (rv_hnsw *)h;
	pthread_mutex_lock(&hm->pool_mu);
	hm->pool[hm->pool_n++] = s;
	pthread_mutex_unlock(&hm->pool_mu);
}

/* ======================================================================
 * Accessors
 * ==================================================================== */

bool rv_hnsw_contains(const rv_hnsw *h, uint32_t slot)
{
	return h && slot < h->cap && rv_hnsw_lv(h, slot) != 0;
}

uint64_t rv_hnsw_count(const rv_hnsw *h) { return h ? h->count : 0; }

uint32_t rv_hnsw_levels(const rv_hnsw *h)
{
	if (!h)
		return 0;
	uint32_t entry;
	int top;
	rv_hnsw_get_top(h, &entry, &top);
	return (uint32_t)(top + 1);
}

uint64_t rv_hnsw_memory(const rv_hnsw *h)
{
	if (!h)
		return 0;
	uint64_t bytes = sizeof *h + RV_HNSW_STRIPES * sizeof *h->stripes;
	/* The rows hold the codes: only the quantizer copy is on top. */
	bytes += (uint64_t)h->cap * (h->l0_stride * sizeof *h->l0 + 1 + sizeof *h->upper) + ROW_ALIGN;
	bytes += h->upper_bytes;
	bytes += rv_hnsw_quantizer_memory(h);
	rv_hnsw *hm = (rv_hnsw *)h;
	pthread_mutex_lock(&hm->pool_mu);
	bytes += hm->pool_cap * sizeof *hm->pool;
	for (size_t i = 0; i < hm->pool_n; i++)
		bytes += hm->pool[i]->bytes;
	pthread_mutex_unlock(&hm->pool_mu);
	return bytes;
}

rv_status rv_hnsw_verify(const rv_hnsw *h, rv_err *err)
{
	uint64_t count = 0;
	int top = -1;
	for (uint32_t s = 0; s < h->cap; s++) {
		unsigned lv = rv_hnsw_lv(h, s);
		if (!lv) {
			if (h->upper[s])
				return rv_err_set(err, RV_ERROR, "absent slot %u holds an upper block", s);
			continue;
		}
		count++;
		unsigned level = lv - 1;
		if ((int)level > top)
			top = (int)level;
		if ((level > 0) != (h->upper[s] != NULL))
			return rv_err_set(err, RV_ERROR, "node %u of level %u: upper block %s", s, level,
					  h->upper[s] ? "present" : "missing");
		for (unsigned l = 0; l <= level; l++) {
			const uint32_t *list = rv_hnsw_links(h, s, l);
			if (list[0] > rv_hnsw_maxdeg(h, l))
				return rv_err_set(err, RV_ERROR, "node %u level %u: %u links", s, l, list[0]);
			for (uint32_t j = 0; j < list[0]; j++) {
				if (list[1 + j] >= h->cap || list[1 + j] == s)
					return rv_err_set(err, RV_ERROR, "node %u level %u: link to %u", s, l,
							  list[1 + j]);
			}
		}
	}
	if (count != h->count)
		return rv_err_set(err, RV_ERROR, "count %llu, %llu nodes found",
				  (unsigned long long)h->count, (unsigned long long)count);
	if (top != h->max_level)
		return rv_err_set(err, RV_ERROR, "max level %d, highest node level %d", h->max_level, top);
	if (count == 0 ? h->entry != RV_HNSW_NONE
		       : h->entry >= h->cap || (int)rv_hnsw_lv(h, h->entry) != top + 1)
		return rv_err_set(err, RV_ERROR, "entry point %u is not a node of the top level",
				  h->entry);
	uint32_t pub_entry;
	int pub_top;
	rv_hnsw_get_top(h, &pub_entry, &pub_top);
	if (pub_entry != h->entry || pub_top != h->max_level)
		return rv_err_set(err, RV_ERROR, "published entry point %u level %d, expected %u level %d",
				  pub_entry, pub_top, h->entry, h->max_level);
	return RV_OK;
}

rv_status rv_hnsw_verify_reach(const rv_hnsw *h, rv_err *err)
{
	rv_status st = RV_OK;
	if (h->count == 0)
		return RV_OK;
	uint64_t *seen = rv_calloc(h->a, rv_bit_words(h->cap), sizeof *seen);
	uint32_t *queue = rv_malloc(h->a, (size_t)h->count * sizeof *queue);
	if (!seen || !queue) {
		st = rv_err_nomem(err);
		goto done;
	}
	size_t head = 0, tail = 0;
	rv_bit_set(seen, h->entry);
	queue[tail++] = h->entry;
	while (head < tail) {
		const uint32_t *list = rv_hnsw_links(h, queue[head++], 0);
		for (uint32_t j = 0; j < list[0]; j++) {
			uint32_t n = list[1 + j];
			/* tail < count holds when count is right (rv_hnsw_verify);
			 * checked anyway, so a wrong count cannot overrun. */
			if (n >= h->cap || rv_hnsw_lv(h, n) == 0 || rv_bit_get(seen, n) ||
			    tail == h->count)
				continue;
			rv_bit_set(seen, n);
			queue[tail++] = n;
		}
	}
	if (tail != h->count) {
		uint32_t first = 0;
		while (first < h->cap && (!rv_hnsw_lv(h, first) || rv_bit_get(seen, first)))
			first++;
		st = rv_err_set(err, RV_ERROR,
				"%llu of %llu nodes unreachable from entry point %u over level 0 (first: %u)",
				(unsigned long long)(h->count - tail), (unsigned long long)h->count,
				h->entry, first);
	}
done:
	rv_dealloc(h->a, queue);
	rv_dealloc(h->a, seen);
	return st;
}

/* ======================================================================
 * Batch insert
 * ==================================================================== */

#define BATCH_MAX_THREADS 256

/* A prepared batch (rv_hnsw_batch_prepare): what linking needs, obtained
 * before it starts. */
struct rv_hnsw_batch {
	rv_hnsw *h;
	const uint32_t *slots;      /* the caller's, valid until rv_hnsw_batch_end */
	size_t n;
	unsigned nt;                /* threads, one scratch each */
	bool linked;
	rv_hnsw_scratch *scratch[BATCH_MAX_THREADS];
	atomic_size_t next;         /* next index of slots to link */
	atomic_size_t done;
	rv_hnsw_progress_fn progress;
	void *progress_ctx;
};

static void batch_worker(void *arg, unsigned t)
{
	rv_hnsw_batch *b = arg;
	rv_hnsw *h = b->h;
	size_t report_at = PROGRESS_EVERY;
	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);
		if (i >= b->n)
			break;
		uint32_t slot = b->slots[i];
		rv_hnsw_link(h, b->scratch[t], slot, rv_hnsw_draw_level(h, slot), b->nt > 1);
		size_t done = atomic_fetch_add(&b->done, 1) + 1;
		/* The callback is the caller's: only the calling thread runs it. */
		if (t == 0 && b->progress && done >= report_at) {
			b->progress(b->progress_ctx, done, b->n);
			report_at = done + PROGRESS_EVERY;
		}
	}
}

/* Give back what a batch holds; blocks of slots [0, unprepare) are freed
 * (a batch that never linked). */
static void batch_free(rv_hnsw_batch *b, size_t unprepare)
{
	rv_hnsw *h = b->h;
	for (size_t i = 0; i < unprepare; i++) {
		uint32_t s = b->slots[i];
		if (h->upper[s]) {
			h->upper_bytes -= (size_t)rv_hnsw_draw_level(h, s) * h->up_stride * sizeof(uint32_t);
			rv_dealloc(h->a, h->upper[s]);
			h->upper[s] = NULL;
		}
	}
	for (unsigned t = 0; t < b->nt; t++)
		if (b->scratch[t])
			rv_hnsw_release(h, b->scratch[t]);
	rv_dealloc(h->a, b);
}

rv_status rv_hnsw_batch_prepare(rv_hnsw_batch **out, rv_hnsw *h, const uint32_t *slots, size_t n,
				unsigned threads, rv_err *err)
{
	rv_status st = RV_OK;
	uint64_t *seen = NULL;
	rv_hnsw_batch *b = NULL;
	size_t prepared = 0;
	if (!out)
		return rv_err_set(err, RV_EINVAL, "hnsw insert batch: NULL output");
	*out = NULL;
	if (!h || (!slots && n))
		return rv_err_set(err, RV_EINVAL, "hnsw insert batch: NULL argument");

	/* Check the whole batch first, so a bad slot inserts nothing. */
	uint32_t max_slot = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t s = slots[i];
		if (s >= h->vecs->n) {
			st = rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u out of range (%u slots)", s,
					h->vecs->n);
			goto done;
		}
		if (!h->vecs->ptr[s]) {
			st = rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u has no vector", s);
			goto done;
		}
		if (s < h->cap && rv_hnsw_lv(h, s)) {
			st = rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u is already in the graph", s);
			goto done;
		}
		if (s > max_slot)
			max_slot = s;
	}
	b = rv_calloc(h->a, 1, sizeof *b);
	if (!b) {
		st = rv_err_nomem(err);
		goto done;
	}
	b->h = h;
	b->slots = slots;
	b->n = n;
	atomic_init(&b->next, 0);
	atomic_init(&b->done, 0);
	if (n == 0)
		goto done;
	seen = rv_calloc(h->a, rv_bit_words((size_t)max_slot + 1), sizeof *seen);
	if (!seen) {
		st = rv_err_nomem(err);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		if (rv_bit_get(seen, slots[i])) {
			st = rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u appears twice in the batch",
					slots[i]);
			goto done;
		}
		rv_bit_set(seen, slots[i]);
	}

	if (!rv_hnsw_reserve(h, max_slot + 1)) {
		st = rv_err_nomem(err);
		goto done;
	}
	/* Empty lists and blocks are in place before linking starts; each
	 * node is published (lv) by rv_hnsw_link once its lists are written.
	 * The slots are absent, so no search reads these words yet. */
	for (; prepared < n; prepared++) {
		uint32_t s = slots[prepared];
		h->l0[(size_t)s * h->l0_stride] = 0;
		unsigned level = rv_hnsw_draw_level(h, s);
		if (!level)
			continue;
		h->upper[s] = rv_calloc(h->a, (size_t)level * h->up_stride, sizeof(uint32_t));
		if (!h->upper[s]) {
			st = rv_err_nomem(err);
			goto done;
		}
		h->upper_bytes += (size_t)level * h->up_stride * sizeof(uint32_t);
	}
	unsigned nt = threads <= 1 ? 1 : threads;
	if (nt > n)
		nt = (unsigned)n;
	if (nt > BATCH_MAX_THREADS)
		nt = BATCH_MAX_THREADS;
	for (b->nt = 0; b->nt < nt; b->nt++) {
		b->scratch[b->nt] = rv_hnsw_acquire(h, h->p.ef_construction);
		if (!b->scratch[b->nt]) {
			st = rv_err_nomem(err);
			goto done;
		}
	}

done:
	if (st != RV_OK && b) {
		/* Blocks of slots [0, prepared) were set; the failing
		 * one's allocation left its block NULL. */
		batch_free(b, prepared);
		b = NULL;
	}
	*out = b;
	rv_dealloc(h ? h->a : NULL, seen);
	return st;
}

void rv_hnsw_batch_link(rv_hnsw_batch *b, rv_hnsw_progress_fn progress, void *progress_ctx)
{
	if (!b || b->linked)
		return;
	b->progress = progress;
	b->progress_ctx = progress_ctx;
	if (b->nt > 1)
		rv_parallel(b->nt, batch_worker, b);
	else if (b->n)
		batch_worker(b, 0);
	b->linked = true;
	if (progress)
		progress(progress_ctx, b->n, b->n);
}

void rv_hnsw_batch_end(rv_hnsw_batch *b)
{
	if (b)
		batch_free(b, b->linked ? 0 : b->n);
}

rv_status rv_hnsw_insert_batch(rv_hnsw *h, const uint32_t *slots, size_t n, unsigned threads,
			       rv_hnsw_progress_fn progress, void *progress_ctx, rv_err *err)
{
	rv_hnsw_batch *b = NULL;
	rv_status st = rv_hnsw_batch_prepare(&b, h, slots, n, threads, err);
	if (st != RV_OK)
		return st;
	rv_hnsw_batch_link(b, progress, progress_ctx);
	rv_hnsw_batch_end(b);
	return RV_OK;
}

/* ======================================================================
 * Saved form
 * ==================================================================== */

rv_status rv_hnsw_save(const rv_hnsw *h, rv_buf *out, rv_err *err)
{
	if (!h || !out)
		return rv_err_set(err, RV_EINVAL, "hnsw save: NULL argument");
	/* Upper bound of the size (every list written in full), so the
	 * records are written straight into reserved space. */
	uint32_t bound = 0;
	size_t bytes = RV_HNSW_HEADER_BYTES;
	for (uint32_t s = 0; s < h->cap; s++) {
		unsigned lv = rv_hnsw_lv(h, s);
		if (!lv)
			continue;
		bound = s + 1;
		bytes += 5;
		for (unsigned l = 0; l < lv; l++)
			bytes += 2 + 4 * (size_t)rv_hnsw_links(h, s, l)[0];
	}
	if (!rv_buf_reserve(out, bytes))
		return rv_err_nomem(err);

	rv_buf_put(out, RV_HNSW_MAGIC, 4);
	rv_buf_u32(out, RV_HNSW_VERSION);
	rv_buf_u32(out, h->p.dim);
	rv_buf_u32(out, (uint32_t)h->p.metric);
	rv_buf_u32(out, h->p.m);
	rv_buf_u32(out, h->p.ef_construction);
	rv_buf_u64(out, h->p.seed);
	rv_buf_u32(out, bound);
	rv_buf_u32(out, (uint32_t)h->count);
	rv_buf_u32(out, (uint32_t)(h->max_level + 1));
	rv_buf_u32(out, h->entry);

	uint8_t *w = out->data + out->len;
	for (uint32_t s = 0; s < bound; s++) {
		unsigned lv = rv_hnsw_lv(h, s);
		if (!lv)
			continue;
		rv_put_u32(w, s);
		w[4] = (uint8_t)(lv - 1);
		w += 5;
		for (unsigned l = 0; l < lv; l++) {
			const uint32_t *list = rv_hnsw_links(h, s, l);
			uint8_t *cnt_at = w;
			uint16_t cnt = 0;
			w += 2;
			/* Edges to deleted slots are dropped, never saved. */
			for (uint32_t j = 0; j < list[0]; j++) {
				uint32_t nb = list[1 + j];
				if (rv_hnsw_lv(h, nb) <= l)
					continue;
				rv_put_u32(w, nb);
				w += 4;
				cnt++;
			}
			rv_put_u16(cnt_at, cnt);
		}
	}
	out->len = (size_t)(w - out->data);
	return RV_OK;
}

static rv_status corrupt(rv_err *err, const char *fmt, ...) RV_PRINTF(2, 3);
static rv_status corrupt(rv_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rv_err_setv(err, RV_ECORRUPT, fmt, ap);
	va_end(ap);
	return RV_ECORRUPT;
}

/* Header field that must equal a parameter. */
#define EXPECT_PARAM(name, got, want, off)                                                   \
	do {                                                                                  \
		if ((uint64_t)(got) != (uint64_t)(want)) {                                    \
			st = corrupt(err, "index header: %s is %llu at byte %d, expected %llu", \
				     name, (unsigned long long)(got), off,                    \
				     (unsigned long long)(want));                             \
			goto done;                                                            \
		}                                                                             \
	} while (0)

rv_status rv_hnsw_load(rv_hnsw **out, const rv_hnsw_params *p, const rv_vecs *vecs,
		       const uint8_t *data, size_t len, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_hnsw *h = NULL;
	uint32_t *stamp = NULL;
	if (!out)
		return rv_err_set(err, RV_EINVAL, "hnsw load: NULL output");
	*out = NULL;
	if (!data && len)
		return rv_err_set(err, RV_EINVAL, "hnsw load: NULL data");
	st = rv_hnsw_new(&h, p, vecs, a, err);
	if (st != RV_OK)
		return st;

	if (len < RV_HNSW_HEADER_BYTES) {
		st = corrupt(err, "index: %zu bytes, shorter than the %d-byte header", len,
			     RV_HNSW_HEADER_BYTES);
		goto done;
	}
	if (memcmp(data, RV_HNSW_MAGIC, 4) != 0) {
		st = corrupt(err, "index header: bad magic at byte 0");
		goto done;
	}
	uint32_t version = rv_get_u32(data + 4);
	if (version == 0) {
		st = corrupt(err, "index header: version 0 at byte 4");
		goto done;
	}
	if (version > RV_HNSW_VERSION) {
		st = rv_err_set(err, RV_EVERSION, "index: version %u needs a newer ruvector (this one reads %d)",
				version, RV_HNSW_VERSION);
		goto done;
	}
	EXPECT_PARAM("dim", rv_get_u32(data + 8), p->dim, 8);
	EXPECT_PARAM("metric", rv_get_u32(data + 12), (uint32_t)p->metric, 12);
	EXPECT_PARAM("m", rv_get_u32(data + 16), p->m, 16);
	EXPECT_PARAM("ef_construction", rv_get_u32(data + 20), p->ef_construction, 20);
	EXPECT_PARAM("seed", rv_get_u64(data + 24), p->seed, 24);
	uint32_t bound = rv_get_u32(data + 32);
	uint32_t count = rv_get_u32(data + 36);
	uint32_t levels = rv_get_u32(data + 40);
	uint32_t entry = rv_get_u32(data + 44);
	if (bound > vecs->n) {
		st = corrupt(err, "index header: slot bound %u at byte 32 exceeds the %u vector slots",
			     bound, vecs->n);
		goto done;
	}
	if (count > bound) {
		st = corrupt(err, "index header: %u nodes at byte 36 in a slot bound of %u", count, bound);
		goto done;
	}
	if (levels > RV_HNSW_MAX_LEVEL + 1 || (levels == 0) != (count == 0)) {
		st = corrupt(err, "index header: %u levels at byte 40 for %u nodes", levels, count);
		goto done;
	}
	if (count == 0 ? entry != RV_HNSW_NONE : entry >= bound) {
		st = corrupt(err, "index header: entry point %u at byte 44 out of range", entry);
		goto done;
	}
	size_t body = len - RV_HNSW_HEADER_BYTES;
	if ((uint64_t)count * 7 > body) {
		st = corrupt(err, "index: %u nodes cannot fit in %zu bytes", count, body);
		goto done;
	}
	if (count == 0) {
		if (bound != 0 || body != 0) {
			st = corrupt(err, "index: empty graph with slot bound %u and %zu record bytes",
				     bound, body);
			goto done;
		}
		goto done;
	}
	if (!rv_hnsw_reserve(h, bound)) {
		st = rv_err_nomem(err);
		goto done;
	}

	/* Pass 1: structure. Records which slots are nodes, and their levels. */
	const uint8_t *p0 = data + RV_HNSW_HEADER_BYTES, *end = data + len, *q = p0;
	uint32_t last = 0;
	for (uint32_t i = 0; i < count; i++) {
		size_t at = (size_t)(q - data);
		if (end - q < 5) {
			st = corrupt(err, "index: node record %u at byte %zu is truncated", i, at);
			goto done;
		}
		uint32_t s = rv_get_u32(q);
		unsigned level = q[4];
		q += 5;
		if (s >= bound || (i > 0 && s <= last)) {
			st = corrupt(err, "index: node slot %u at byte %zu out of order or beyond bound %u",
				     s, at, bound);
			goto done;
		}
		if (!vecs->ptr[s]) {
			st = corrupt(err, "index: node slot %u at byte %zu has no vector", s, at);
			goto done;
		}
		if (level >= levels) {
			st = corrupt(err, "index: node %u at byte %zu has level %u, graph has %u levels", s,
				     at + 4, level, levels);
			goto done;
		}
		for (unsigned l = 0; l <= level; l++) {
			if (end - q < 2) {
				st = corrupt(err, "index: node %u level %u at byte %zu is truncated", s, l,
					     (size_t)(q - data));
				goto done;
			}
			uint32_t cnt = rv_get_u16(q);
			if (cnt > rv_hnsw_maxdeg(h, l)) {
				st = corrupt(err, "index: node %u level %u at byte %zu has %u links, at most %u",
					     s, l, (size_t)(q - data), cnt, rv_hnsw_maxdeg(h, l));
				goto done;
			}
			q += 2;
			if ((size_t)(end - q) < 4 * (size_t)cnt) {
				st = corrupt(err, "index: node %u level %u at byte %zu is truncated", s, l,
					     (size_t)(q - data));
				goto done;
			}
			q += 4 * (size_t)cnt;
		}
		if (level) {
			h->upper[s] = rv_calloc(h->a, (size_t)level * h->up_stride, sizeof(uint32_t));
			if (!h->upper[s]) {
				st = rv_err_nomem(err);
				goto done;
			}
			h->upper_bytes += (size_t)level * h->up_stride * sizeof(uint32_t);
		}
		atomic_store_explicit(&h->lv[s], (uint8_t)(level + 1), memory_order_relaxed);
		last = s;
	}
	if (q != end) {
		st = corrupt(err, "index: %zu stray bytes after the last node record at byte %zu",
			     (size_t)(end - q), (size_t)(q - data));
		goto done;
	}
	if (last + 1 != bound) {
		st = corrupt(err, "index header: slot bound %u at byte 32, last node is %u", bound, last);
		goto done;
	}
	if (rv_hnsw_lv(h, entry) != levels) {
		st = corrupt(err, "index header: entry point %u at byte 44 is not a node of level %u",
			     entry, levels - 1);
		goto done;
	}

	/* Pass 2: every link goes to a node that has a list at that level,
	 * not to itself, at most once per list. */
	stamp = rv_calloc(h->a, bound, sizeof *stamp);
	if (!stamp) {
		st = rv_err_nomem(err);
		goto done;
	}
	uint32_t tick = 0;
	q = p0;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t s = rv_get_u32(q);
		unsigned level = q[4];
		q += 5;
		for (unsigned l = 0; l <= level; l++) {
			uint32_t cnt = rv_get_u16(q);
			q += 2;
			if (++tick == 0) {
				memset(stamp, 0, (size_t)bound * sizeof *stamp);
				tick = 1;
			}
			uint32_t *list = rv_hnsw_links(h, s, l);
			for (uint32_t j = 0; j < cnt; j++, q += 4) {
				uint32_t nb = rv_get_u32(q);
				const char *why = NULL;
				if (nb >= bound || !rv_hnsw_lv(h, nb))
					why = "is not a node";
				else if (rv_hnsw_lv(h, nb) <= l)
					why = "has no list at that level";
				else if (nb == s)
					why = "is the node itself";
				else if (stamp[nb] == tick)
					why = "appears twice";
				if (why) {
					st = corrupt(err, "index: node %u level %u: neighbour %u at byte %zu %s",
						     s, l, nb, (size_t)(q - data), why);
					goto done;
				}
				stamp[nb] = tick;
				list[1 + j] = nb;
			}
			list[0] = cnt;
		}
	}
	h->count = count;
	rv_hnsw_set_top(h, entry, (int)levels - 1);

done:
	rv_dealloc(h ? h->a : a, stamp);
	if (st != RV_OK) {
		rv_hnsw_free(h);
		return st;
	}
	*out = h;
	return RV_OK;
}
