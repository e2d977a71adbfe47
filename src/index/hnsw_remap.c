/*
 * hnsw_remap.c - renumber the slots of a saved graph (the INDEX payload of
 * docs/FORMAT.md) without loading it, for compaction: the collection packs
 * its live slots densely and the graph follows, link for link, so a
 * compacted file answers exactly as before and no distance is computed.
 *
 * Works on the documented bytes only (not on the in-memory graph), so it
 * depends on the format, not on the index's internals. The map must be
 * increasing on the slots it keeps (compaction keeps slot order), which
 * keeps the node records in ascending order as the format requires.
 */
#include "index/hnsw.h"

#define HDR 48

rv_status rv_hnsw_remap_saved(rv_buf *out, const uint8_t *in, size_t len, const uint32_t *map,
			      uint32_t map_len, uint32_t new_bound, rv_err *err)
{
	rv_reader r;
	rv_reader_init(&r, in, len);
	const uint8_t *hdr = rv_reader_bytes(&r, HDR);
	if (!hdr || memcmp(hdr, "RVHN", 4) != 0)
		return rv_err_set(err, RV_ECORRUPT, "remap: not a saved graph");
	uint32_t bound = rv_get_u32(hdr + 32), nodes = rv_get_u32(hdr + 36), entry = rv_get_u32(hdr + 44);
	if (bound > map_len)
		return rv_err_set(err, RV_EINVAL, "remap: graph has slots up to %u, map covers %u", bound, map_len);
	size_t start = out->len;
	rv_buf_put(out, hdr, HDR);
	uint32_t last = UINT32_MAX;
	for (uint32_t i = 0; i < nodes; i++) {
		uint32_t slot = rv_reader_u32(&r);
		uint8_t level = rv_reader_u8(&r);
		if (r.bad || slot >= bound)
			return rv_err_set(err, RV_ECORRUPT, "remap: node record %u malformed", i);
		uint32_t ns = map[slot];
		if (ns == UINT32_MAX || ns >= new_bound || (last != UINT32_MAX && ns <= last))
			return rv_err_set(err, RV_EINVAL, "remap: node %u has no place in the new numbering", slot);
		last = ns;
		rv_buf_u32(out, ns);
		rv_buf_u8(out, level);
		for (unsigned l = 0; l <= level; l++) {
			uint16_t cnt = rv_reader_u16(&r);
			rv_buf_u16(out, cnt);
			for (uint16_t j = 0; j < cnt; j++) {
				uint32_t nb = rv_reader_u32(&r);
				if (r.bad || nb >= bound || map[nb] == UINT32_MAX)
					return rv_err_set(err, RV_EINVAL, "remap: node %u links to slot %u, which is dropped",
							  slot, nb);
				rv_buf_u32(out, map[nb]);
			}
		}
	}
	if (r.bad || rv_reader_left(&r) != 0)
		return rv_err_set(err, RV_ECORRUPT, "remap: saved graph has a bad length");
	if (out->failed)
		return rv_err_set(err, RV_ENOMEM, "out of memory");
	uint8_t *h = out->data + start;
	rv_put_u32(h + 32, nodes ? last + 1 : 0);
	if (entry != UINT32_MAX) {
		if (entry >= bound || map[entry] == UINT32_MAX)
			return rv_err_set(err, RV_EINVAL, "remap: entry point %u is dropped", entry);
		rv_put_u32(h + 44, map[entry]);
	}
	return RV_OK;
}
