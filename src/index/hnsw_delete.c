/*
 * hnsw_delete.c - removing a node and repairing the graph around it.
 *
 * Marking a node deleted and leaving it in place (as hnswlib does) makes
 * every later search pay for the dead nodes and lets recall decay; here the
 * node really leaves the graph. At each of its levels, the nodes that link
 * to it are found among its neighbours and their neighbours (HNSW links are
 * mostly reciprocal, so in-links come almost always from that two-hop
 * ring), and each of them chooses its list again, with the insert
 * heuristic, among its remaining links and the removed node's links: the
 * hole is bridged by the removed node's own neighbourhood.
 *
 * The repaired node also gets back links from the nodes it newly chose,
 * as after an insert; without them every delete lowers the in-degree
 * around the hole and recall drifts down.
 *
 * An in-link the two-hop ring misses stays behind as a stale edge. It is
 * harmless to searches (they check lv before following an edge) and
 * rv_hnsw_save never writes it. A later repair that meets a list holding
 * stale edges treats them like the node being removed: they go, and at
 * level 0 the removed slot's old list, which nothing writes after its
 * delete, offers replacements. Without that, deleting hubs (nodes with
 * many in-links) left their in-neighbours short of links.
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

/* If node links to gone (or to any other absent slot) at level, choose
 * its list again among its other links, gone's links (gn[0..gn_n)) and,
 * at level 0, the frozen lists of the other absent slots; then link back
 * from the nodes it newly chose. */
static void repair(rv_hnsw *h, rv_hnsw_scratch *s, uint32_t node, unsigned level, uint32_t gone,
		   const uint32_t *gn, uint32_t gn_n)
{
	uint32_t buf[3 * 2 * RV_HNSW_M_MAX], added[2 * RV_HNSW_M_MAX];
	size_t room = 3 * (size_t)h->m0;
	uint32_t *list = rv_hnsw_links(h, node, level);
	uint32_t cnt = list[0], nb = 0;
	bool linked = false;
	for (uint32_t j = 0; j < cnt; j++) {
		uint32_t x = list[1 + j];
		if (x == gone || rv_hnsw_lv(h, x) <= level)
			linked = true;
		else
			buf[nb++] = x;
	}
	if (!linked)
		return;
	size_t nc = nb;
	for (uint32_t i = 0; i < gn_n && nc < room; i++)
		buf[nc++] = gn[i];
	if (level == 0) {
		for (uint32_t j = 0; j < cnt; j++) {
			uint32_t x = list[1 + j];
			if (x == gone || rv_hnsw_lv(h, x))
				continue;
			const uint32_t *xl = rv_hnsw_links(h, x, 0);
			for (uint32_t i = 0; i < xl[0] && nc < room; i++)
				buf[nc++] = xl[1 + i];
		}
	}
	rv_hnsw_reselect(h, s, node, level, buf, nc);

	/* The new links are those beyond the old list (buf[0..nb)). */
	uint32_t na = 0;
	for (uint32_t j = 0; j < list[0]; j++) {
		uint32_t x = list[1 + j];
		bool old = false;
		for (uint32_t i = 0; i < nb && !old; i++)
			old = buf[i] == x;
		if (!old)
			added[na++] = x;
	}
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
	h->entry = entry;
	h->max_level = (int)best - 1;
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

	for (unsigned l = 0; l <= level; l++) {
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

	if (h->count == 0) {
		h->entry = RV_HNSW_NONE;
		h->max_level = -1;
	} else if (slot == h->entry) {
		/* A top-level neighbour has the top level too. */
		const uint32_t *top = rv_hnsw_links(h, slot, level);
		uint32_t next = RV_HNSW_NONE;
		for (uint32_t j = 0; j < top[0] && next == RV_HNSW_NONE; j++)
			if (rv_hnsw_lv(h, top[1 + j]) == level + 1)
				next = top[1 + j];
		if (next != RV_HNSW_NONE)
			h->entry = next;
		else
			find_entry(h);
	}

	if (h->upper[slot]) {
		h->upper_bytes -= (size_t)level * h->up_stride * sizeof(uint32_t);
		rv_dealloc(h->a, h->upper[slot]);
		h->upper[slot] = NULL;
	}
	rv_hnsw_release(h, s);
	return RV_OK;
}
