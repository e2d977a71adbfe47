/*
 * hnsw_insert.c - adding one node: neighbour selection and linking.
 *
 * The insert follows Malkov & Yashunin: greedy descent from the entry point
 * through the levels above the node's own, then at each of its levels a
 * beam search of ef_construction, the heuristic selection of at most m
 * neighbours among the results, and links both ways. A neighbour whose
 * list overflows (m on upper levels, 2m on level 0) gets its list chosen
 * again with the same heuristic among its old links and the new node.
 *
 * The heuristic keeps a candidate only if it is closer to the base node
 * than to any neighbour already kept: it prefers links in different
 * directions over a clique of near-duplicates, which is what keeps the
 * graph navigable on clustered data.
 *
 * Failure: everything an insert can need (capacity, the upper-level block,
 * a scratch) is obtained before the first link is written; linking itself
 * never allocates, so RV_ENOMEM leaves the graph as it was.
 *
 * Threads (rv_hnsw_insert_batch): lists are read and written under their
 * node's stripe, one stripe at a time. A thread descending through a node
 * that is still being inserted may link to it at a level the node has not
 * filled yet; the node then merges those links with its own selection
 * instead of overwriting them.
 */
#include <stdlib.h>
#include <string.h>

#include "index/hnsw_int.h"

uint32_t rv_hnsw_select(const rv_hnsw *h, const rv_hnsw_cand *sel, size_t n, uint32_t max,
			uint32_t *kept)
{
	const float *const *vp = h->vecs->ptr;
	uint32_t nk = 0;
	for (size_t i = 0; i < n && nk < max; i++) {
		const float *cv = vp[sel[i].slot];
		bool good = true;
		for (uint32_t j = 0; j < nk; j++) {
			if (rv_hnsw_dist(h, cv, vp[kept[j]]) < sel[i].dist) {
				good = false;
				break;
			}
		}
		if (good)
			kept[nk++] = sel[i].slot;
	}
	return nk;
}

static int cand_cmp(const void *pa, const void *pb)
{
	const rv_hnsw_cand *a = pa, *b = pb;
	if (a->dist != b->dist)
		return a->dist < b->dist ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

/* Insertion sort for the short lists of a re-selection, qsort beyond. */
void rv_hnsw_sort_cands(rv_hnsw_cand *c, size_t n)
{
	if (n > 48) {
		qsort(c, n, sizeof *c, cand_cmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		rv_hnsw_cand x = c[i];
		size_t j = i;
		while (j > 0 && cand_cmp(&c[j - 1], &x) > 0) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = x;
	}
}

void rv_hnsw_reselect(const rv_hnsw *h, rv_hnsw_scratch *s, uint32_t node, unsigned level,
		      const uint32_t *cand, size_t n)
{
	const float *const *vp = h->vecs->ptr;
	const float *nv = vp[node];
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = cand[i];
		if (c == node || rv_hnsw_lv(h, c) <= level)
			continue;
		s->sel[ns++] = (rv_hnsw_cand){ rv_hnsw_dist(h, nv, vp[c]), c };
	}
	rv_hnsw_sort_cands(s->sel, ns);
	size_t uniq = 0;
	for (size_t i = 0; i < ns; i++)
		if (uniq == 0 || s->sel[uniq - 1].slot != s->sel[i].slot)
			s->sel[uniq++] = s->sel[i];
	uint32_t nk = rv_hnsw_select(h, s->sel, uniq, rv_hnsw_maxdeg(h, level), s->kept);
	uint32_t *list = rv_hnsw_links(h, node, level);
	memcpy(list + 1, s->kept, nk * sizeof *list);
	list[0] = nk;
}

static inline void lock_node(const rv_hnsw *h, uint32_t slot, bool locked)
{
	if (locked)
		pthread_mutex_lock(rv_hnsw_stripe(h, slot));
}

static inline void unlock_node(const rv_hnsw *h, uint32_t slot, bool locked)
{
	if (locked)
		pthread_mutex_unlock(rv_hnsw_stripe(h, slot));
}

/* Write slot's own list at level (the selection in mine[0..nk)), then add
 * slot to each selected neighbour's list. */
static void connect(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned level,
		    const uint32_t *mine, uint32_t nk, bool locked)
{
	uint32_t buf[3 * RV_HNSW_M_MAX + 1]; /* a full level-0 list plus m new links */
	uint32_t maxdeg = rv_hnsw_maxdeg(h, level);

	lock_node(h, slot, locked);
	uint32_t *own = rv_hnsw_links(h, slot, level);
	if (own[0] == 0) {
		memcpy(own + 1, mine, nk * sizeof *own);
		own[0] = nk;
	} else {
		/* Only under threads: others linked to slot first. */
		uint32_t cnt = own[0];
		memcpy(buf, own + 1, cnt * sizeof *buf);
		memcpy(buf + cnt, mine, nk * sizeof *buf);
		rv_hnsw_reselect(h, s, slot, level, buf, cnt + nk);
	}
	unlock_node(h, slot, locked);

	for (uint32_t i = 0; i < nk; i++) {
		uint32_t n = mine[i];
		lock_node(h, n, locked);
		uint32_t *list = rv_hnsw_links(h, n, level);
		uint32_t cnt = list[0];
		bool have = false;
		for (uint32_t j = 0; j < cnt && !have; j++)
			have = list[1 + j] == slot;
		if (!have) {
			if (cnt < maxdeg) {
				list[1 + cnt] = slot;
				list[0] = cnt + 1;
			} else {
				memcpy(buf, list + 1, cnt * sizeof *buf);
				buf[cnt] = slot;
				rv_hnsw_reselect(h, s, n, level, buf, cnt + 1);
			}
		}
		unlock_node(h, n, locked);
	}
}

void rv_hnsw_link(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned level, bool locked)
{
	const float *const *vp = h->vecs->ptr;
	const float *v = vp[slot];
	uint32_t mine[RV_HNSW_M_MAX];

	if (locked)
		pthread_mutex_lock(&h->global);
	uint32_t ep = h->entry;
	int top = h->max_level;
	if (ep == RV_HNSW_NONE) {
		h->entry = slot;
		h->max_level = (int)level;
	}
	if (locked)
		pthread_mutex_unlock(&h->global);
	if (ep == RV_HNSW_NONE)
		return;

	float ep_dist = rv_hnsw_dist(h, v, vp[ep]);
	for (int l = top; l > (int)level; l--)
		rv_hnsw_greedy(h, s, v, (unsigned)l, slot, &ep, &ep_dist, locked);

	for (int l = top < (int)level ? top : (int)level; l >= 0; l--) {
		rv_hnsw_scratch_reset(s);
		/* A stale edge from a deleted node may lead to this slot
		 * again: it must not become its own neighbour. */
		s->mark[slot] = s->epoch;
		rv_hnsw_seed(h, s, ep, ep_dist, NULL, NULL);
		rv_hnsw_search_layer(h, s, v, (unsigned)l, h->p.ef_construction, NULL, NULL, locked,
				     false);
		size_t nc = rv_hnsw_drain_sorted(s);
		ep = s->sel[0].slot;
		ep_dist = s->sel[0].dist;
		uint32_t nk = rv_hnsw_select(h, s->sel, nc, h->m, mine);
		connect(h, s, slot, (unsigned)l, mine, nk, locked);
	}

	if ((int)level > top) {
		if (locked)
			pthread_mutex_lock(&h->global);
		if ((int)level > h->max_level) {
			h->entry = slot;
			h->max_level = (int)level;
		}
		if (locked)
			pthread_mutex_unlock(&h->global);
	}
}

rv_status rv_hnsw_insert(rv_hnsw *h, uint32_t slot, rv_err *err)
{
	rv_status st = RV_OK;
	uint32_t *block = NULL;
	rv_hnsw_scratch *s = NULL;
	if (!h)
		return rv_err_set(err, RV_EINVAL, "hnsw insert: NULL index");
	if (slot >= h->vecs->n)
		return rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u out of range (%u slots)", slot,
				  h->vecs->n);
	if (!h->vecs->ptr[slot])
		return rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u has no vector", slot);
	if (slot < h->cap && rv_hnsw_lv(h, slot))
		return rv_err_set(err, RV_EINVAL, "hnsw insert: slot %u is already in the graph", slot);

	if (!rv_hnsw_reserve(h, slot + 1)) {
		st = rv_err_nomem(err);
		goto done;
	}
	unsigned level = rv_hnsw_draw_level(h, slot);
	size_t block_bytes = (size_t)level * h->up_stride * sizeof *block;
	if (level) {
		block = rv_calloc(h->a, (size_t)level * h->up_stride, sizeof *block);
		if (!block) {
			st = rv_err_nomem(err);
			goto done;
		}
	}
	s = rv_hnsw_acquire(h, h->p.ef_construction);
	if (!s) {
		st = rv_err_nomem(err);
		goto done;
	}

	/* From here on nothing can fail. */
	h->upper[slot] = block;
	h->upper_bytes += block_bytes;
	block = NULL;
	h->l0[(size_t)slot * h->l0_stride] = 0;
	atomic_store_explicit(&h->lv[slot], (uint8_t)(level + 1), memory_order_relaxed);
	rv_hnsw_link(h, s, slot, level, false);
	h->count++;
done:
	if (s)
		rv_hnsw_release(h, s);
	rv_dealloc(h->a, block);
	return st;
}
