/*
 * idmap.c - string id -> slot, for the collection.
 *
 * Open addressing with linear probing keyed into the collection's own id
 * table (the map stores slots, not strings, so ids are held once). A 32-bit
 * hash tag beside each slot skips almost every string compare. Deletion
 * shifts the following cluster back instead of leaving tombstones, so
 * lookups never slow down after many deletes. Load factor <= 1/2.
 */
#include "db_int.h"

static uint64_t id_hash(const char *id, size_t len) { return rv_hash64(id, len, 0x9e3779b97f4a7c15ull); }

void rv_idmap_init(rv_idmap *m) { memset(m, 0, sizeof *m); }

void rv_idmap_free(rv_idmap *m, const rv_alloc *a)
{
	rv_dealloc(a, m->slots);
	rv_dealloc(a, m->tags);
	rv_idmap_init(m);
}

static void place(uint32_t *slots, uint32_t *tags, size_t cap, uint32_t slot, uint64_t h)
{
	size_t i = (size_t)(h >> 32) & (cap - 1);
	while (slots[i] != RV_NO_SLOT)
		i = (i + 1) & (cap - 1);
	slots[i] = slot;
	tags[i] = (uint32_t)h;
}

bool rv_idmap_reserve(rv_idmap *m, size_t extra, const char *const *ids, const rv_alloc *a)
{
	size_t need = m->count + extra;
	if (need < m->count)
		return false;
	if (need * 2 <= m->cap)
		return true;
	size_t cap = m->cap ? m->cap : 64;
	while (cap < need * 2) {
		if (cap > SIZE_MAX / 4)
			return false;
		cap *= 2;
	}
	uint32_t *slots = rv_calloc(a, cap, sizeof *slots);
	uint32_t *tags = rv_calloc(a, cap, sizeof *tags);
	if (!slots || !tags) {
		rv_dealloc(a, slots);
		rv_dealloc(a, tags);
		return false;
	}
	memset(slots, 0xff, cap * sizeof *slots);
	for (size_t i = 0; i < m->cap; i++) {
		uint32_t s = m->slots[i];
		if (s != RV_NO_SLOT)
			place(slots, tags, cap, s, id_hash(ids[s], strlen(ids[s])));
	}
	rv_dealloc(a, m->slots);
	rv_dealloc(a, m->tags);
	m->slots = slots;
	m->tags = tags;
	m->cap = cap;
	return true;
}

/* Index of the entry holding slot-or-id, or SIZE_MAX. */
static size_t find_pos(const rv_idmap *m, const char *id, size_t len, const char *const *ids)
{
	if (!m->cap)
		return SIZE_MAX;
	uint64_t h = id_hash(id, len);
	size_t i = (size_t)(h >> 32) & (m->cap - 1);
	for (;;) {
		uint32_t s = m->slots[i];
		if (s == RV_NO_SLOT)
			return SIZE_MAX;
		if (m->tags[i] == (uint32_t)h && strncmp(ids[s], id, len) == 0 && ids[s][len] == 0)
			return i;
		i = (i + 1) & (m->cap - 1);
	}
}

uint32_t rv_idmap_find(const rv_idmap *m, const char *id, size_t len, const char *const *ids)
{
	size_t i = find_pos(m, id, len, ids);
	return i == SIZE_MAX ? RV_NO_SLOT : m->slots[i];
}

void rv_idmap_insert(rv_idmap *m, uint32_t slot, const char *const *ids)
{
	place(m->slots, m->tags, m->cap, slot, id_hash(ids[slot], strlen(ids[slot])));
	m->count++;
}

void rv_idmap_replace(rv_idmap *m, uint32_t old_slot, uint32_t new_slot, const char *const *ids)
{
	const char *id = ids[new_slot];
	size_t i = find_pos(m, id, strlen(id), ids);
	if (i != SIZE_MAX && m->slots[i] == old_slot)
		m->slots[i] = new_slot;
}

void rv_idmap_remove(rv_idmap *m, uint32_t slot, const char *const *ids)
{
	const char *id = ids[slot];
	size_t i = find_pos(m, id, strlen(id), ids);
	if (i == SIZE_MAX || m->slots[i] != slot)
		return;
	/* Backward shift: move each later entry of the cluster into the hole
	 * if its home position does not lie cyclically in (hole, entry]. */
	size_t mask = m->cap - 1, hole = i, j = i;
	for (;;) {
		j = (j + 1) & mask;
		uint32_t s = m->slots[j];
		if (s == RV_NO_SLOT)
			break;
		size_t home = (size_t)(id_hash(ids[s], strlen(ids[s])) >> 32) & mask;
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		m->slots[hole] = s;
		m->tags[hole] = m->tags[j];
		hole = j;
	}
	m->slots[hole] = RV_NO_SLOT;
	m->count--;
}
