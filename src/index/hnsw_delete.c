/*
 * hnsw_delete.c - removing a node and repairing the graph around it.
 *
 * Marking a node deleted and leaving it in place (as hnswlib does) makes
 * every later search pay for the dead nodes; here the node really leaves
 * the graph, and the holes are mended so that recall does not decay.
 *
 * At each level of the removed node, the nodes that link to it are looked
 * for among its neighbours and their neighbours (HNSW links are mostly
 * reciprocal, so in-links come almost always from that two-hop ring). Each
 * one that links to it keeps its other links untouched and gets
 * replacements for the lost one from the removed node's own links: first
 * those the insert heuristic accepts next to the links it still has (they
 * cover the direction of the hole), then the nearest, up to the length its
 * list had. The nodes it newly links to get a link back, as after an
 * insert.
 *
 * Why not choose the whole list again with the heuristic: a list built by
 * inserts also holds links that were appended without pruning, among them
 * the long links between clusters made while the graph was small. Pruning
 * every repaired list removes them a few at a time, and after deleting the
 * oldest half of a clustered set (the hubs), searches from the entry point
 * no longer reach the other clusters at a useful ef. Keeping the list
 * length matters as much: lists chosen by the heuristic alone shrink to
 * about 60% of what inserts leave.
 *
 * An in-link the two-hop ring misses stays behind as a stale edge. Searches
 * never follow it (they check lv) and rv_hnsw_save never writes it. A later
 * repair that meets stale edges in a list replaces them too, using at
 * level 0 the removed slot's old list, which nothing writes after its
 * delete.
 *
 * When the entry point goes, a node of the same level replaces it (one of
 * its neighbours on the top level when it has any, else a scan), and the
 * graph loses its top level when that level empties.
 */
#include <string.h>

#include "index/hnsw_int.h"

/* Add node to the list of n at level, choosing n's list again when full. */
static void link_back(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t n, unsigned level, uint32_t node)
{
	uint32_t buf[2 * RV_HNSW_M_MAX + 1];
	uint32_t *list = rv_hnsw_links(h, n, level);
	uint32_t cnt = list[0];
	for (uint32_t j = 0; j < cnt; j++)
		if (list[1 + j] == node)
			return;
	if (cnt < rv_hnsw_maxdeg(h, level)) {
		list[1 + cnt] = node;
		list[0] = cnt + 1;
		return;
	}
	memcpy(buf, list + 1, cnt * sizeof *buf);
	buf[cnt] = node;
	rv_hnsw_reselect(h, s, n, level, buf, cnt + 1);
}

/* Whether x is among list[0..n). */
static bool has(const uint32_t *list, uint32_t n, uint32_t x)
{
	for (uint32_t i = 0; i < n; i++)
		if (list[i] == x)
			return true;
	return false;
}

/* Append to s->sel (holding ns) the slots of from[0..n) that may become
 * links of node at level: live, not node, not in have[0..nh). */
static size_t add_cands(const rv_hnsw *h, rv_hnsw_scratch *s, size_t ns, uint32_t node,
			unsigned level, const uint32_t *have, uint32_t nh, const uint32_t *from,
			uint32_t n)
{
	const float *const *vp = h->vecs->ptr;
	for (uint32_t i = 0; i < n && ns < s->sel_cap; i++) {
		uint32_t c = from[i];
		if (c == node || rv_hnsw_lv(h, c) <= level || has(have, nh, c))
			continue;
		s->sel[ns++] = (rv_hnsw_cand){ rv_hnsw_dist(h, vp[node], vp[c]), c };
	}
	return ns;
}

/* If node links to gone (or to any other absent slot) at level, replace
 * those links (see the top): candidates are gone's links (gn[0..gn_n))
 * and, at level 0, the frozen lists of the other absent slots it linked
 * to. */
static void repair(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t node, unsigned level, uint32_t gone,
		   const uint32_t *gn, uint32_t gn_n)
{
	const float *const *vp = h->vecs->ptr;
	uint32_t old[2 * RV_HNSW_M_MAX], added[2 * RV_HNSW_M_MAX];
	uint32_t *list = rv_hnsw_links(h, node, level);
	uint32_t cnt = list[0], keep = 0;
	memcpy(old, list + 1, cnt * sizeof *old);
	for (uint32_t j = 0; j < cnt; j++)
		if (old[j] != gone && rv_hnsw_lv(h, old[j]) > level)
			list[1 + keep++] = old[j];
	if (keep == cnt)
		return;
	list[0] = keep;

	/* Candidates with their distance to node, nearest first. */
	size_t ns = add_cands(h, s, 0, node, level, list + 1, keep, gn, gn_n);
	for (uint32_t j = 0; j < cnt && level == 0; j++) {
		/* The list of an absent slot stays as it was at its delete:
		 * nothing writes it since. */
		if (old[j] == gone || rv_hnsw_lv(h, old[j]))
			continue;
		const uint32_t *fl = rv_hnsw_links(h, old[j], 0);
		ns = add_cands(h, s, ns, node, 0, list + 1, keep, fl + 1, fl[0]);
	}
	rv_hnsw_sort_cands(s->sel, ns);

	uint32_t na = 0, n = keep;
	for (size_t i = 0; i < ns && n < cnt; i++) {
		rv_hnsw_cand c = s->sel[i];
		if (i && c.slot == s->sel[i - 1].slot)
			continue;
		bool good = true;
		for (uint32_t j = 0; j < n && good; j++)
			good = rv_hnsw_dist(h, vp[c.slot], vp[list[1 + j]]) >= c.dist;
		if (good)
			list[1 + n++] = added[na++] = c.slot;
	}
	for (size_t i = 0; i < ns && n < cnt; i++) {
		uint32_t c = s->sel[i].slot;
		if (!has(list + 1, n, c))
			list[1 + n++] = added[na++] = c;
	}
	list[0] = n;
	for (uint32_t i = 0; i < na; i++)
		link_back(h, s, added[i], level, node);
}

/* The node of the highest level, scanning every slot. */
static void find_entry(rv_hnsw *h)
{
	unsigned best = 0;
	uint32_t entry = RV_HNSW_NONE;
	for (uint32_t s = 0; s < h->cap; s++) {
		unsigned lv = rv_hnsw_lv(h, s);
		if (lv > best) {
			best = lv;
			entry = s;
		}
	}
	rv_hnsw_set_top(h, entry, (int)best - 1);
}

rv_status rv_hnsw_delete(rv_hnsw *h, uint32_t slot, rv_err *err)
{
	if (!h)
		return rv_err_set(err, RV_EINVAL, "hnsw delete: NULL index");
	if (slot >= h->cap || !rv_hnsw_lv(h, slot))
		return rv_err_set(err, RV_ENOTFOUND, "hnsw delete: slot %u is not in the graph", slot);
	rv_hnsw_scratch *s = rv_hnsw_acquire(h, 1);
	if (!s)
		return rv_err_nomem(err);

	/* From here on nothing can fail. Absent first, so no rewritten list
	 * can keep the removed node. */
	unsigned level = rv_hnsw_lv(h, slot) - 1;
	atomic_store_explicit(&h->lv[slot], 0, memory_order_relaxed);
	h->count--;

	/* A new entry point first: the repairs search from it. */
	if (h->count == 0) {
		rv_hnsw_set_top(h, RV_HNSW_NONE, -1);
	} else if (slot == h->entry) {
		/* A top-level neighbour has the top level too. */
		const uint32_t *top = rv_hnsw_links(h, slot, level);
		uint32_t next = RV_HNSW_NONE;
		for (uint32_t j = 0; j < top[0] && next == RV_HNSW_NONE; j++)
			if (rv_hnsw_lv(h, top[1 + j]) == level + 1)
				next = top[1 + j];
		if (next != RV_HNSW_NONE)
			rv_hnsw_set_top(h, next, h->max_level);
		else
			find_entry(h);
	}

	for (unsigned l = 0; l <= level && h->count; l++) {
		const uint32_t *own = rv_hnsw_links(h, slot, l);
		uint32_t gn_n = 0;
		for (uint32_t j = 0; j < own[0]; j++)
			if (rv_hnsw_lv(h, own[1 + j]) > l)
				s->dbuf[gn_n++] = own[1 + j];

		rv_hnsw_scratch_reset(s);
		for (uint32_t i = 0; i < gn_n; i++) {
			uint32_t n = s->dbuf[i];
			if (s->mark[n] != s->epoch) {
				s->mark[n] = s->epoch;
				repair(h, s, n, l, slot, s->dbuf, gn_n);
			}
			/* Its neighbours (after its own repair): the rest of the
			 * two-hop ring that may link to the removed node. */
			const uint32_t *list = rv_hnsw_links(h, n, l);
			memcpy(s->nbuf, list, (size_t)(list[0] + 1) * sizeof *list);
			for (uint32_t j = 0; j < s->nbuf[0]; j++) {
				uint32_t nn = s->nbuf[1 + j];
				if (s->mark[nn] == s->epoch || rv_hnsw_lv(h, nn) <= l)
					continue;
				s->mark[nn] = s->epoch;
				repair(h, s, nn, l, slot, s->dbuf, gn_n);
			}
		}
	}

	if (h->upper[slot]) {
		h->upper_bytes -= (size_t)level * h->up_stride * sizeof(uint32_t);
		rv_dealloc(h->a, h->upper[slot]);
		h->upper[slot] = NULL;
	}
	rv_hnsw_release(h, s);
	return RV_OK;
}
