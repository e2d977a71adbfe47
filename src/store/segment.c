/*
 * segment.c - codecs of the .rvf file: the 64-byte file header, the 64-byte
 * segment header with its checksums, and the MANIFEST payload.
 *
 * Everything here works on bytes and never does I/O. Layouts are in
 * format.h and docs/FORMAT.md; every integer is encoded field by field in
 * little-endian order, never by copying a struct. Decoders treat their
 * input as untrusted: each length is checked against what is left before
 * it is used, so a damaged file yields a reason, never an out-of-bounds
 * read.
 */
#include "store/rvf_int.h"

#include <xxhash.h>

#include "store/format.h"

/* ======================================================================
 * Names
 * ==================================================================== */

const char *rv_seg_type_name(unsigned type)
{
	switch (type) {
	case RV_SEG_VEC: return "VEC";
	case RV_SEG_INDEX: return "INDEX";
	case RV_SEG_OVERLAY: return "OVERLAY";
	case RV_SEG_JOURNAL: return "JOURNAL";
	case RV_SEG_MANIFEST: return "MANIFEST";
	case RV_SEG_QUANT: return "QUANT";
	case RV_SEG_META: return "META";
	case RV_SEG_HOT: return "HOT";
	case RV_SEG_SKETCH: return "SKETCH";
	case RV_SEG_WITNESS: return "WITNESS";
	case RV_SEG_PROFILE: return "PROFILE";
	case RV_SEG_CRYPTO: return "CRYPTO";
	case RV_SEG_META_IDX: return "META_IDX";
	case RV_SEG_KERNEL: return "KERNEL";
	case RV_SEG_EBPF: return "EBPF";
	case RV_SEG_WASM: return "WASM";
	case RV_SEG_COW_MAP: return "COW_MAP";
	case RV_SEG_REFCOUNT: return "REFCOUNT";
	case RV_SEG_MEMBERSHIP: return "MEMBERSHIP";
	case RV_SEG_DELTA: return "DELTA";
	}
	return "UNKNOWN";
}

const char *rv_probe_str(rv_probe p)
{
	switch (p) {
	case RV_PROBE_OK: return "valid";
	case RV_PROBE_END: return "end of file";
	case RV_PROBE_SHORT: return "cut-off segment header";
	case RV_PROBE_ZERO: return "unwritten (zero) segment header";
	case RV_PROBE_PAST_EOF: return "segment runs past the end of the file";
	case RV_PROBE_BAD_MAGIC: return "bad segment magic";
	case RV_PROBE_BAD_CHECKSUM: return "segment header checksum mismatch";
	case RV_PROBE_BAD_VERSION: return "unknown segment header version";
	}
	return "unknown";
}

/* ======================================================================
 * Checksums
 * ==================================================================== */

uint32_t rv_header_checksum(const uint8_t *hdr)
{
	return (uint32_t)XXH3_64bits(hdr, 60);
}

void rv_seg_hash(uint64_t *lo, uint64_t *hi, const void *p, size_t n)
{
	XXH128_hash_t h = XXH3_128bits(p, n);
	*lo = h.low64;
	*hi = h.high64;
}

/* ======================================================================
 * Segment header
 * ==================================================================== */

void rv_seg_hdr_encode(uint8_t out[RV_SEG_HEADER_SIZE], const rv_seg_hdr *h)
{
	memset(out, 0, RV_SEG_HEADER_SIZE);
	rv_put_u32(out + 0, RV_SEG_MAGIC);
	out[4] = h->version;
	out[5] = h->type;
	rv_put_u16(out + 6, h->flags);
	rv_put_u64(out + 8, h->seg_id);
	rv_put_u64(out + 16, h->length);
	rv_put_u64(out + 24, h->timestamp_ns);
	out[32] = h->csum_algo;
	out[33] = h->compression;
	rv_put_u32(out + 36, h->uncompressed_len);
	rv_put_u64(out + 40, h->hash_lo);
	rv_put_u64(out + 48, h->hash_hi);
	rv_put_u32(out + 60, rv_header_checksum(out));
}

void rv_seg_hdr_decode(rv_seg_hdr *h, const uint8_t in[RV_SEG_HEADER_SIZE])
{
	h->version = in[4];
	h->type = in[5];
	h->flags = rv_get_u16(in + 6);
	h->seg_id = rv_get_u64(in + 8);
	h->length = rv_get_u64(in + 16);
	h->timestamp_ns = rv_get_u64(in + 24);
	h->csum_algo = in[32];
	h->compression = in[33];
	h->uncompressed_len = rv_get_u32(in + 36);
	h->hash_lo = rv_get_u64(in + 40);
	h->hash_hi = rv_get_u64(in + 48);
}

rv_probe rv_seg_classify(rv_seg_hdr *h, const uint8_t *p, uint64_t size, uint64_t pos)
{
	bool zero = true;
	for (int i = 0; i < RV_SEG_HEADER_SIZE && zero; i++)
		zero = p[i] == 0;
	if (zero)
		return RV_PROBE_ZERO;
	if (rv_get_u32(p) != RV_SEG_MAGIC)
		return RV_PROBE_BAD_MAGIC;
	if (rv_get_u32(p + 60) != rv_header_checksum(p))
		return RV_PROBE_BAD_CHECKSUM;
	rv_seg_hdr_decode(h, p);
	if (h->version != RV_SEG_HEADER_VERSION)
		return RV_PROBE_BAD_VERSION;
	/* Compare before rounding so a huge length cannot wrap around. */
	uint64_t room = size - pos - RV_SEG_HEADER_SIZE;
	if (h->length > room || rv_seg_padded(h->length) > room)
		return RV_PROBE_PAST_EOF;
	return RV_PROBE_OK;
}

rv_probe rv_seg_probe(rv_seg_hdr *h, const uint8_t *map, uint64_t size, uint64_t pos)
{
	if (pos >= size)
		return RV_PROBE_END;
	if (size - pos < RV_SEG_HEADER_SIZE)
		return RV_PROBE_SHORT;
	return rv_seg_classify(h, map + pos, size, pos);
}

const char *rv_seg_check_kind(const rv_seg_hdr *h)
{
	if (h->csum_algo != RV_CSUM_XXH3_128)
		return h->csum_algo == RV_CSUM_SHAKE256
			       ? "checksum algorithm SHAKE-256 is not supported by this build"
			       : "unknown checksum algorithm";
	if (h->compression != 0 || (h->flags & RV_SEGF_COMPRESSED))
		return "compressed payload, not supported by this build";
	return NULL;
}

const char *rv_seg_check_payload(const rv_seg_hdr *h, const uint8_t *payload)
{
	const char *why = rv_seg_check_kind(h);
	if (why)
		return why;
	uint64_t lo, hi;
	rv_seg_hash(&lo, &hi, payload, (size_t)h->length);
	if (lo != h->hash_lo || hi != h->hash_hi)
		return "content hash mismatch";
	return NULL;
}

/* ======================================================================
 * File header
 * ==================================================================== */

void rv_file_hdr_encode(uint8_t out[RV_FILE_HEADER_SIZE], const rv_file_hdr *h)
{
	memset(out, 0, RV_FILE_HEADER_SIZE);
	memcpy(out, RV_FILE_MAGIC, 8);
	rv_put_u16(out + 8, h->read_version);
	rv_put_u16(out + 10, h->write_version);
	rv_put_u32(out + 12, h->header_len);
	rv_put_u64(out + 16, h->features_required);
	rv_put_u64(out + 24, h->features_optional);
	rv_put_u64(out + 32, h->created_ns);
	memcpy(out + 40, h->file_id, 16);
	rv_put_u32(out + 60, rv_header_checksum(out));
}

rv_status rv_file_hdr_check(rv_file_hdr *h, const uint8_t *in, uint64_t size, bool writable,
			    const char *path, rv_err *err)
{
	if (size < RV_FILE_HEADER_SIZE)
		return rv_err_set(err, RV_ECORRUPT,
				  "%s: not a ruvector file: %llu bytes, shorter than the %d-byte file header",
				  path, (unsigned long long)size, RV_FILE_HEADER_SIZE);
	if (memcmp(in, RV_FILE_MAGIC, 8) != 0)
		return rv_err_set(err, RV_ECORRUPT, "%s: not a ruvector file (no \"%s\" at offset 0)", path,
				  RV_FILE_MAGIC);
	if (rv_get_u32(in + 60) != rv_header_checksum(in))
		return rv_err_set(err, RV_ECORRUPT, "%s: file header checksum mismatch at offset 0",
				  path);
	h->read_version = rv_get_u16(in + 8);
	h->write_version = rv_get_u16(in + 10);
	h->header_len = rv_get_u32(in + 12);
	h->features_required = rv_get_u64(in + 16);
	h->features_optional = rv_get_u64(in + 24);
	h->created_ns = rv_get_u64(in + 32);
	memcpy(h->file_id, in + 40, 16);
	if (h->read_version == 0 || h->write_version == 0)
		return rv_err_set(err, RV_ECORRUPT,
				  "%s: file header has read version %u, write version %u (0 is invalid)",
				  path, h->read_version, h->write_version);
	if (h->read_version > RV_FORMAT_READ_VERSION)
		return rv_err_set(err, RV_EVERSION,
				  "%s: file needs a newer ruvector (read version %u, this build reads %d)",
				  path, h->read_version, RV_FORMAT_READ_VERSION);
	uint64_t unknown = h->features_required & ~(uint64_t)RV_FEATURES_REQUIRED_KNOWN;
	if (unknown)
		return rv_err_set(err, RV_EVERSION,
				  "%s: file needs a newer ruvector (unknown required feature bits 0x%llx)",
				  path, (unsigned long long)unknown);
	if (h->header_len != RV_FILE_HEADER_SIZE)
		return rv_err_set(err, RV_ECORRUPT, "%s: file header length is %u, expected %d", path,
				  h->header_len, RV_FILE_HEADER_SIZE);
	if (writable && h->write_version > RV_FORMAT_WRITE_VERSION)
		return rv_err_set(err, RV_EVERSION,
				  "%s: file was written by a newer ruvector (write version %u, this build "
				  "writes %d); open it read-only",
				  path, h->write_version, RV_FORMAT_WRITE_VERSION);
	return RV_OK;
}

/* ======================================================================
 * MANIFEST payload
 * ==================================================================== */

void rv_mf_encode(rv_buf *b, const rv_manifest *m, uint64_t prev_offset)
{
	rv_buf_u32(b, RV_MANIFEST_MAGIC);
	rv_buf_u16(b, RV_MANIFEST_VERSION);
	rv_buf_u16(b, 0);
	rv_buf_u64(b, m->generation);
	rv_buf_u64(b, m->timestamp_ns);
	rv_buf_u64(b, prev_offset);
	rv_buf_u64(b, (uint64_t)m->state_len);
	rv_buf_put(b, m->state, m->state_len);
	rv_buf_u64(b, (uint64_t)m->n_segs);
	for (size_t i = 0; i < m->n_segs; i++) {
		const rv_seg_ref *s = &m->segs[i];
		rv_buf_u8(b, s->type);
		rv_buf_zero(b, 7);
		rv_buf_u64(b, s->seg_id);
		rv_buf_u64(b, s->offset);
		rv_buf_u64(b, s->length);
	}
	rv_buf_u32(b, 0); /* no extensions in this version */
}

rv_status rv_mf_decode(rv_mf *mf, const uint8_t *p, size_t n, const char **why)
{
	rv_reader r;
	rv_reader_init(&r, p, n);
	memset(mf, 0, sizeof *mf);
	*why = NULL;
	if (rv_reader_u32(&r) != RV_MANIFEST_MAGIC || r.bad) {
		*why = "bad manifest magic";
		return RV_ECORRUPT;
	}
	if (rv_reader_u16(&r) != RV_MANIFEST_VERSION || r.bad) {
		*why = "unknown manifest layout version";
		return RV_ECORRUPT;
	}
	(void)rv_reader_u16(&r);
	mf->generation = rv_reader_u64(&r);
	mf->timestamp_ns = rv_reader_u64(&r);
	mf->prev_offset = rv_reader_u64(&r);
	uint64_t state_len = rv_reader_u64(&r);
	if (r.bad) {
		*why = "manifest is shorter than its fixed fields";
		return RV_ECORRUPT;
	}
	if (mf->generation == 0) {
		*why = "manifest generation is 0";
		return RV_ECORRUPT;
	}
	if (state_len > rv_reader_left(&r)) {
		*why = "manifest state length runs past the payload";
		return RV_ECORRUPT;
	}
	mf->state_len = (size_t)state_len;
	mf->state = rv_reader_bytes(&r, mf->state_len);
	uint64_t count = rv_reader_u64(&r);
	if (r.bad || count > rv_reader_left(&r) / RV_MANIFEST_ENTRY_SIZE) {
		*why = "manifest segment count runs past the payload";
		return RV_ECORRUPT;
	}
	mf->n_segs = (size_t)count;
	mf->entries = rv_reader_bytes(&r, mf->n_segs * RV_MANIFEST_ENTRY_SIZE);
	uint32_t n_ext = rv_reader_u32(&r);
	if (r.bad) {
		*why = "manifest is cut off before its extension count";
		return RV_ECORRUPT;
	}
	for (uint32_t i = 0; i < n_ext; i++) {
		(void)rv_reader_u32(&r); /* tag: none is known in this version */
		uint32_t flags = rv_reader_u32(&r);
		uint64_t len = rv_reader_u64(&r);
		if (r.bad || len > rv_reader_left(&r)) {
			*why = "manifest extension runs past the payload";
			return RV_ECORRUPT;
		}
		if (flags & RV_MANIFEST_EXT_REQUIRED) {
			*why = "manifest has an unknown required extension (needs a newer ruvector)";
			return RV_EVERSION;
		}
		(void)rv_reader_bytes(&r, (size_t)len);
	}
	if (rv_reader_left(&r) != 0) {
		*why = "trailing bytes after the manifest";
		return RV_ECORRUPT;
	}
	return RV_OK;
}

void rv_mf_entry(rv_seg_ref *ref, const rv_mf *mf, size_t i)
{
	const uint8_t *e = mf->entries + i * RV_MANIFEST_ENTRY_SIZE;
	ref->type = e[0];
	ref->seg_id = rv_get_u64(e + 8);
	ref->offset = rv_get_u64(e + 16);
	ref->length = rv_get_u64(e + 24);
}
