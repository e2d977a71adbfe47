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
 * node's stripe, one stripe at a time. A node being inserted stays out of
 * reach (lv 0) while it searches; it is then linked bottom-up and
 * published one level at a time, each level as soon as its own list there
 * is written (hnsw_int.h, lv). So whoever reaches it finds its lists at
 * that level and below already filled, and nobody links to it before it
 * has written its own list. A node that raises the top level is inserted
 * under the global lock (see rv_hnsw_link). Last, a node checks the nodes
 * other threads linked while it searched, which its search could not see,
 * and links to those a serial build would have chosen (late_links).
 *
 * Searches beside the linking (rv_hnsw_batch_link): every store to a list
 * is an atomic word between rv_hnsw_write_begin and _end on the list
 * owner's stripe counter, made by the one thread that holds the stripe
 * (or the only writer), so a search reading the list in place can tell a
 * torn read and read again (Locking in hnsw_int.h).
 */
#include <math.h>
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
	/* Word by word: a search may be reading the list (see Locking). */
	for (uint32_t i = 0; i < nk; i++)
		rv_hnsw_st(list + 1 + i, s->kept[i]);
	rv_hnsw_st(list, nk);
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

/* Whether x is among list[0..n). */
static bool has(const uint32_t *list, uint32_t n, uint32_t x)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == x)
			return true;
	return false;
}

/* Add slot to the list of n at level: appended while there is room, else
 * n's list is chosen again among its links and slot. */
static void add_link(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t n, unsigned level, uint32_t slot,
		     bool locked)
{
	uint32_t buf[2 * RV_HNSW_M_MAX + 1]; /* a full level-0 list plus the new link */
	lock_node(h, n, locked);
	/* Plain reads: only writers store to lists, and they hold the stripe
	 * (or are alone). */
	uint32_t *list = rv_hnsw_links(h, n, level);
	uint32_t cnt = list[0];
	if (!has(list + 1, cnt, slot)) {
		rv_hnsw_write_begin(h, n);
		if (cnt < rv_hnsw_maxdeg(h, level)) {
			rv_hnsw_st(list + 1 + cnt, slot);
			rv_hnsw_st(list, cnt + 1);
		} else {
			memcpy(buf, list + 1, cnt * sizeof *buf);
			buf[cnt] = slot;
			rv_hnsw_reselect(h, s, n, level, buf, cnt + 1);
		}
		rv_hnsw_write_end(h, n);
	}
	unlock_node(h, n, locked);
}

/* Write slot's own list at level (the selection in mine[0..nk)), publish
 * slot at that level, then add slot to each selected neighbour's list.
 *
 * The order matters under threads. Until lv says slot has a list at this
 * level, no other thread follows an edge to it here nor keeps it in a list
 * it re-selects, so nothing else can have written slot's list: it is still
 * the empty one the insert started with, and writing it needs no merge.
 * Publishing before the back-links go in keeps them: a neighbour whose
 * list another thread re-selects meanwhile sees slot as live. */
static void connect(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned level,
		    const uint32_t *mine, uint32_t nk, bool locked)
{
	lock_node(h, slot, locked);
	uint32_t *own = rv_hnsw_links(h, slot, level);
	/* No search reads it yet (slot is not published at this level), but
	 * one may once lv rises, and it must find atomic words. */
	rv_hnsw_write_begin(h, slot);
	for (uint32_t i = 0; i < nk; i++)
		rv_hnsw_st(own + 1 + i, mine[i]);
	rv_hnsw_st(own, nk);
	rv_hnsw_write_end(h, slot);
	unlock_node(h, slot, locked);
	/* Release: a thread that sees the new lv and then takes slot's
	 * stripe reads the list just written. */
	atomic_store_explicit(&h->lv[slot], (uint8_t)(level + 1), memory_order_release);

	for (uint32_t i = 0; i < nk; i++)
		add_link(h, s, mine[i], level, slot, locked);
}

/* Position in the ring of recently linked nodes, taken before searching. */
static uint64_t recent_ticket(rv_hnsw *h)
{
	pthread_mutex_lock(&h->recent_mu);
	uint64_t t = h->recent_n;
	pthread_mutex_unlock(&h->recent_mu);
	return t;
}

/* Copy into late[] the nodes that finished linking since ticket (the last
 * RV_HNSW_RECENT of them at most), then add slot. Both in one critical
 * section: of two inserts that overlap in time, the one that gets here
 * second always finds the other. Returns the number copied. */
static size_t recent_swap(rv_hnsw *h, uint64_t ticket, uint32_t slot, uint32_t *late)
{
	size_t nl = 0;
	pthread_mutex_lock(&h->recent_mu);
	uint64_t from = h->recent_n - ticket > RV_HNSW_RECENT ? h->recent_n - RV_HNSW_RECENT : ticket;
	for (uint64_t i = from; i < h->recent_n; i++)
		late[nl++] = h->recent[i % RV_HNSW_RECENT];
	h->recent[h->recent_n % RV_HNSW_RECENT] = slot;
	h->recent_n++;
	pthread_mutex_unlock(&h->recent_mu);
	return nl;
}

/* Under threads, nodes that other threads linked while slot was searching
 * may be missing from its search results: a serial build would have found
 * them. Missing a near-duplicate is what hurts: the two never link to each
 * other, every other neighbour's list keeps only one of the pair when it
 * is chosen again (the other is closer to its twin than to the list's
 * owner), and the one dropped everywhere is cut off from the graph. So
 * each such node (late[0..nl)) gets the test the search would have given
 * it: at every level slot chose neighbours on, it joins that selection
 * when the heuristic keeps it next to slot's picks, and is then linked
 * both ways like a pick. Picks it would have displaced stay: slot's list
 * only gains links, as it does from other nodes' back-links. */
static void late_links(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned low,
		       const uint32_t *late, size_t nl)
{
	const float *const *vp = h->vecs->ptr;
	const float *v = vp[slot];
	uint32_t add[RV_HNSW_M_MAX];
	for (unsigned l = 0; l <= low; l++) {
		const uint32_t *picks = s->picks + (size_t)l * h->m;
		uint32_t np = s->picks_n[l];
		/* A full selection keeps none beyond its farthest pick. */
		float far = np == h->m ? rv_hnsw_dist(h, v, vp[picks[np - 1]]) : INFINITY;
		size_t ns = 0;
		for (size_t i = 0; i < nl && ns + np < s->sel_cap; i++) {
			uint32_t c = late[i];
			if (rv_hnsw_lv(h, c) <= l || has(picks, np, c))
				continue;
			float d = rv_hnsw_dist(h, v, vp[c]);
			if (d <= far)
				s->sel[ns++] = (rv_hnsw_cand){ d, c };
		}
		if (ns == 0)
			continue;
		for (uint32_t i = 0; i < np; i++)
			s->sel[ns++] = (rv_hnsw_cand){ rv_hnsw_dist(h, v, vp[picks[i]]), picks[i] };
		rv_hnsw_sort_cands(s->sel, ns);
		uint32_t nk = rv_hnsw_select(h, s->sel, ns, h->m, s->kept);
		/* Copied out: linking may choose lists again, which reuses
		 * s->sel and s->kept. */
		uint32_t na = 0;
		for (uint32_t i = 0; i < nk; i++)
			if (!has(picks, np, s->kept[i]))
				add[na++] = s->kept[i];
		for (uint32_t i = 0; i < na; i++) {
			add_link(h, s, slot, l, add[i], true);
			add_link(h, s, add[i], l, slot, true);
		}
	}
}

void rv_hnsw_link(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t slot, unsigned level, bool locked)
{
	const float *const *vp = h->vecs->ptr;
	const float *v = vp[slot];
	uint64_t ticket = locked ? recent_ticket(h) : 0;

	/* The code must be in place before lv publishes the node. */
	rv_hnsw_codes_encode_slot(h, slot);
	/* Counted before it is reachable: a search bounds its beam by the
	 * count, which must never be below the nodes it can reach. */
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);

	if (locked)
		pthread_mutex_lock(&h->global);
	uint32_t ep = h->entry;
	int top = h->max_level;
	/* A node that raises the top level keeps `global` until it is linked
	 * and has become the entry point: searches then never start from a
	 * node whose lists are not written yet, and a second new top level
	 * cannot grow meanwhile from the old entry point, out of reach of
	 * this one. Such nodes are a handful per build (level > max_level),
	 * so the other threads rarely wait. */
	bool new_top = (int)level > top;
	if (locked && !new_top)
		pthread_mutex_unlock(&h->global);

	/* The levels this node shares with the graph (none when empty). */
	int low = new_top ? top : (int)level;
	if (ep != RV_HNSW_NONE) {
		float ep_dist = rv_hnsw_dist(h, v, vp[ep]);
		for (int l = top; l > low; l--)
			rv_hnsw_greedy(h, s, v, (unsigned)l, slot, &ep, &ep_dist, locked);

		/* Choose the neighbours at every level first, top-down (each
		 * level's search starts from the nearest node of the one
		 * above), then link bottom-up, so that the node is never
		 * reachable at a level before its lists below are written
		 * (see the top of hnsw_int.h). A thread that could land on it
		 * at level l with an empty list at l - 1 would search that
		 * level from a dead end, find this node alone, link to it and
		 * nothing else, and stay unreachable once this node's own
		 * selection prunes it. Searching one level never reads the
		 * lists of another, so a serial build gives the same graph as
		 * linking level by level. */
		for (int l = low; l >= 0; l--) {
			rv_hnsw_scratch_reset(s);
			/* A stale edge from a deleted node may lead to this
			 * slot again: it must not become its own neighbour. */
			s->mark[slot] = s->epoch;
			rv_hnsw_seed(h, s, ep, ep_dist, NULL, NULL);
			rv_hnsw_search_layer(h, s, v, (unsigned)l, h->p.ef_construction, NULL, NULL,
					     locked, false);
			size_t nc = rv_hnsw_drain_sorted(s);
			ep = s->sel[0].slot;
			ep_dist = s->sel[0].dist;
			s->picks_n[l] = rv_hnsw_select(h, s->sel, nc, h->m, s->picks + (size_t)l * h->m);
		}
		for (int l = 0; l <= low; l++)
			connect(h, s, slot, (unsigned)l, s->picks + (size_t)l * h->m, s->picks_n[l],
				locked);
	}

	/* Levels above the graph's top have no neighbours yet: published
	 * with empty lists, and reached through the entry point below. */
	atomic_store_explicit(&h->lv[slot], (uint8_t)(level + 1), memory_order_release);
	if (new_top) {
		/* Published after every list of the node is written: a search
		 * that starts here finds them all (see Locking). */
		rv_hnsw_set_top(h, slot, (int)level);
		if (locked)
			pthread_mutex_unlock(&h->global);
	}

	if (locked) {
		uint32_t late[RV_HNSW_RECENT];
		size_t nl = recent_swap(h, ticket, slot, late);
		if (low >= 0 && nl)
			late_links(h, s, slot, (unsigned)low, late, nl);
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
	rv_hnsw_link(h, s, slot, level, false);
done:
	if (s)
		rv_hnsw_release(h, s);
	rv_dealloc(h->a, block);
	return st;
}
