/*
 * hnsw_orphans.c - make every level-0 node reachable from the entry point.
 *
 * When an insert or a delete repair re-selects a full neighbour list with
 * the heuristic, the node it drops may lose its last in-link, and a group
 * of nodes may end up linking only among themselves; no search can then
 * reach them, whatever ef, not even with their own vectors. This is rare
 * (about 1 node in 1,000 in large builds, in hnswlib as here) but it caps
 * recall. The repair walks level 0 from the entry point; each node the walk
 * missed is added to the list of one of its nearest reached nodes
 * (appended when the list has room, else in place of that list's farthest
 * member that has other in-links), and the walk continues from it, so its
 * whole island joins.
 *
 * O(nodes * 2m) for the walk plus one search per island. The collection
 * runs it when it checkpoints the graph. Not thread-safe with anything.
 */
#include "hnsw_int.h"

/* Try to attach x to y's level-0 list; true when done. Without force, only
 * a member with other in-links is given up for x; with force, the farthest
 * one is (the next pass re-attaches it if that cut it off). */
static bool attach(rv_hnsw *h, uint32_t *indeg, uint32_t y, uint32_t x, bool force)
{
	uint32_t *list = rv_hnsw_links(h, y, 0);
	uint32_t cnt = list[0];
	for (uint32_t j = 0; j < cnt; j++)
		if (list[1 + j] == x)
			return true;
	if (cnt < h->m0) {
		list[1 + cnt] = x;
		list[0] = cnt + 1;
		indeg[x]++;
		return true;
	}
	const float *const *vp = h->vecs->ptr;
	uint32_t worst = UINT32_MAX;
	float worst_d = -1;
	for (uint32_t j = 0; j < cnt; j++) {
		uint32_t z = list[1 + j];
		if (indeg[z] < 2 && !force)
			continue;
		float d = rv_hnsw_dist(h, vp[y], vp[z]);
		if (d > worst_d) {
			worst_d = d;
			worst = j;
		}
	}
	if (worst == UINT32_MAX)
		return false;
	indeg[list[1 + worst]]--;
	list[1 + worst] = x;
	indeg[x]++;
	return true;
}

/* Mark everything reachable from start over level 0 (iterative, queue in
 * the caller's array). */
static void walk(const rv_hnsw *h, uint8_t *seen, uint32_t *queue, uint32_t start)
{
	size_t head = 0, tail = 0;
	if (seen[start])
		return;
	seen[start] = 1;
	queue[tail++] = start;
	while (head < tail) {
		const uint32_t *list = rv_hnsw_links(h, queue[head++], 0);
		for (uint32_t j = 0; j < list[0]; j++) {
			uint32_t v = list[1 + j];
			if (rv_hnsw_lv(h, v) && !seen[v]) {
				seen[v] = 1;
				queue[tail++] = v;
			}
		}
	}
}

static size_t nearest_reached(const rv_hnsw *h, const uint8_t *seen, uint32_t x, rv_hnsw_hit *out)
{
	const float *v = h->vecs->ptr[x];
	size_t n = 0;
	for (uint32_t u = 0; u < h->cap; u++) {
		if (!seen[u] || !rv_hnsw_lv(h, u))
			continue;
		float d = rv_hnsw_dist(h, v, h->vecs->ptr[u]);
		if (n == 0 || d < out[0].dist) {
			out[0] = (rv_hnsw_hit){ u, d };
			n = 1;
		}
	}
	return n;
}

typedef struct reached {
	const uint8_t *seen;
} reached;

static bool accept_reached(void *ctx, uint32_t slot) { return ((const reached *)ctx)->seen[slot] != 0; }

rv_status rv_hnsw_attach_orphans(rv_hnsw *h, uint64_t *attached, rv_err *err)
{
	*attached = 0;
	if (h->count < 2)
		return RV_OK;
	rv_status st = RV_OK;
	uint32_t *indeg = rv_calloc(h->a, h->cap, sizeof *indeg);
	uint32_t *queue = rv_malloc(h->a, (size_t)h->cap * sizeof *queue);
	uint8_t *seen = rv_calloc(h->a, h->cap, 1);
	rv_hnsw_hit *near = rv_malloc(h->a, 16 * sizeof *near);
	if (!indeg || !queue || !seen || !near) {
		st = rv_err_nomem(err);
		goto done;
	}
	/* A replaced link can, rarely, cut off the node it pointed to (its other
	 * in-links may come from unreached nodes): a few passes settle it. */
	for (int pass = 0; pass < 4; pass++) {
		uint64_t before = *attached;
		memset(indeg, 0, (size_t)h->cap * sizeof *indeg);
		memset(seen, 0, h->cap);
		for (uint32_t u = 0; u < h->cap; u++) {
			if (!rv_hnsw_lv(h, u))
				continue;
			const uint32_t *list = rv_hnsw_links(h, u, 0);
			for (uint32_t j = 0; j < list[0]; j++)
				if (rv_hnsw_lv(h, list[1 + j]))
					indeg[list[1 + j]]++;
		}
		walk(h, seen, queue, h->entry);
		/* Each node the walk missed joins the reached part through one of
		 * its nearest reached nodes, and brings its island with it. */
		reached rc = { seen };
		/* Exact distances even with codes on: codes never shape the graph. */
		rv_hnsw_search_opts so = RV_HNSW_SEARCH_OPTS_INIT;
		so.ef = 64;
		so.accept = accept_reached;
		so.ctx = &rc;
		so.traverse = RV_HNSW_TRAVERSE_FLOAT;
		for (uint32_t x = 0; x < h->cap; x++) {
			if (!rv_hnsw_lv(h, x) || seen[x])
				continue;
			size_t n = 0;
			st = rv_hnsw_search_v2(near, 16, &n, h, h->vecs->ptr[x], 16, &so, err);
			if (st != RV_OK)
				goto done;
			/* An island that holds an upper-level node can catch the
			 * greedy descent, and the search then meets no reached node:
			 * take the nearest reached node by a scan. */
			if (n == 0)
				n = nearest_reached(h, seen, x, near);
			bool done_x = false;
			for (size_t i = 0; i < n && !done_x; i++)
				done_x = attach(h, indeg, near[i].slot, x, false);
			if (!done_x && n > 0)
				done_x = attach(h, indeg, near[0].slot, x, true);
			if (done_x) {
				(*attached)++;
				walk(h, seen, queue, x);
			}
		}
		if (*attached == before)
			break;
	}
done:
	rv_dealloc(h->a, indeg);
	rv_dealloc(h->a, queue);
	rv_dealloc(h->a, seen);
	rv_dealloc(h->a, near);
	return st;
}
