/*
 * rvf_int.h - what the files of the .rvf store share: the handle, the
 * segment header and manifest codecs (segment.c), the write helpers with
 * fault injection (rvf_write.c) and the read-only mapping (rvf_open.c).
 *
 * Nothing here is exported; the collection uses store/rvf.h only.
 */
#ifndef RV_RVF_INT_H
#define RV_RVF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/rvf.h"

/* ------------------------------------------------------------------------
 * The handle
 * ---------------------------------------------------------------------- */

struct rv_file {
	const rv_alloc *a;
	char *path;
	int fd;
	bool readonly;
	bool broken;            /* a failed write could not be undone: refuse writes */
	const uint8_t *map;     /* read-only mapping of the file as it was at open */
	size_t map_len;         /* bytes mapped (the file size at open) */
	uint64_t size;          /* current end of the file (committed + appended) */
	uint64_t committed_end; /* end of the newest manifest's padding */
	uint64_t open_end;      /* committed_end as found at open (0 after create) */
	uint64_t man_offset;    /* file offset of the newest manifest's header */
	uint64_t next_id;       /* id the next appended segment gets */
	unsigned fail_after;    /* fault injection: the Nth write/fsync fails (0: off) */
	uint64_t features;      /* required feature bits of the file header */

	rv_manifest man;        /* newest manifest; segs = man_segs */
	rv_seg_ref *man_segs;
	uint8_t *man_state;     /* owned copy of the state, or NULL while man.state
				 * points into the mapping (as found at open) */

	rv_seg_ref *open_segs;  /* named by the manifest found at open, sorted by
				 * offset; their payloads were verified at open */
	size_t n_open;
	rv_seg_ref *app;        /* appended through this handle, in file order */
	size_t n_app, cap_app;
};

/* Index of the ref in arr[0..n) (sorted by offset) at the given offset,
 * or SIZE_MAX. */
static inline size_t rv_seg_find(const rv_seg_ref *arr, size_t n, uint64_t offset)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (arr[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && arr[lo].offset == offset ? lo : SIZE_MAX;
}

static inline bool rv_seg_same(const rv_seg_ref *a, const rv_seg_ref *b)
{
	return a->type == b->type && a->seg_id == b->seg_id && a->offset == b->offset &&
	       a->length == b->length;
}

/* ------------------------------------------------------------------------
 * Segment header (segment.c)
 * ---------------------------------------------------------------------- */

typedef struct rv_seg_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint64_t seg_id;
	uint64_t length;           /* payload bytes */
	uint64_t timestamp_ns;
	uint8_t csum_algo;         /* RV_CSUM_* */
	uint8_t compression;
	uint32_t uncompressed_len;
	uint64_t hash_lo, hash_hi; /* XXH3-128 of the payload */
} rv_seg_hdr;

/* What lies at a file offset where a segment header is expected. */
typedef enum rv_probe {
	RV_PROBE_OK = 0,       /* valid header; the segment fits in the file */
	RV_PROBE_END,          /* exactly at the end of the file */
	RV_PROBE_SHORT,        /* fewer than 64 bytes left: a cut-off header */
	RV_PROBE_ZERO,         /* 64 zero bytes: a header never written */
	RV_PROBE_PAST_EOF,     /* valid header, but payload + padding run past the end */
	RV_PROBE_BAD_MAGIC,    /* damaged: not "RVFS" */
	RV_PROBE_BAD_CHECKSUM, /* damaged: header checksum mismatch */
	RV_PROBE_BAD_VERSION   /* valid checksum, unknown header version */
} rv_probe;

/* Payload length rounded up to the segment alignment. len <= 2^62. */
static inline uint64_t rv_seg_padded(uint64_t len)
{
	return (len + (RV_SEG_ALIGN - 1)) & ~(uint64_t)(RV_SEG_ALIGN - 1);
}

void rv_seg_hdr_encode(uint8_t out[RV_SEG_HEADER_SIZE], const rv_seg_hdr *h);
/* Decode without judging anything but the layout. */
void rv_seg_hdr_decode(rv_seg_hdr *h, const uint8_t in[RV_SEG_HEADER_SIZE]);
/* Classify the bytes at map[pos..] of a file of size bytes (pos <= size);
 * on RV_PROBE_OK and RV_PROBE_PAST_EOF *h holds the header. */
rv_probe rv_seg_probe(rv_seg_hdr *h, const uint8_t *map, uint64_t size, uint64_t pos);
/* The same for 64 header bytes hdr read from offset pos, where
 * pos + 64 <= size. */
rv_probe rv_seg_classify(rv_seg_hdr *h, const uint8_t *hdr, uint64_t size, uint64_t pos);
const char *rv_probe_str(rv_probe p);
/* Low 32 bits of XXH3-64 over bytes 0..59 of a 64-byte header. */
uint32_t rv_header_checksum(const uint8_t *hdr);
/* XXH3-128 of a payload. */
void rv_seg_hash(uint64_t *lo, uint64_t *hi, const void *p, size_t n);
/* Checksum algorithm and compression of a valid header are ones this
 * build reads: NULL, else a static reason. */
const char *rv_seg_check_kind(const rv_seg_hdr *h);
/* Check the payload of a segment with a valid header against it: checksum
 * algorithm, compression, content hash. NULL when fine, else a static
 * description ("content hash mismatch"). */
const char *rv_seg_check_payload(const rv_seg_hdr *h, const uint8_t *payload);

/* ------------------------------------------------------------------------
 * File header (segment.c)
 * ---------------------------------------------------------------------- */

typedef struct rv_file_hdr {
	uint16_t read_version, write_version;
	uint32_t header_len;
	uint64_t features_required, features_optional;
	uint64_t created_ns;
	uint8_t file_id[16];
} rv_file_hdr;

void rv_file_hdr_encode(uint8_t out[RV_FILE_HEADER_SIZE], const rv_file_hdr *h);
/* Validate the 64 bytes at the start of a file: magic, checksum, versions
 * and feature bits. writable: refuse a newer write version. Messages are
 * prefixed with path. RV_ECORRUPT or RV_EVERSION. */
rv_status rv_file_hdr_check(rv_file_hdr *h, const uint8_t *in, uint64_t size, bool writable,
			    const char *path, rv_err *err);

/* ------------------------------------------------------------------------
 * MANIFEST payload (segment.c); layout in format.h
 * ---------------------------------------------------------------------- */

typedef struct rv_mf {
	uint64_t generation;
	uint64_t timestamp_ns;
	uint64_t prev_offset;
	const uint8_t *state;   /* points into the payload */
	size_t state_len;
	size_t n_segs;
	const uint8_t *entries; /* n_segs raw entries; rv_mf_entry decodes one */
} rv_mf;

/* Append the payload of manifest m (whose previous manifest is at
 * prev_offset) to b; check b->failed afterwards. */
void rv_mf_encode(rv_buf *b, const rv_manifest *m, uint64_t prev_offset);
/* Parse a manifest payload (already hash-checked). On failure a static
 * reason is stored in *why and RV_ECORRUPT (or RV_EVERSION for an unknown
 * required extension) is returned. */
rv_status rv_mf_decode(rv_mf *mf, const uint8_t *p, size_t n, const char **why);
void rv_mf_entry(rv_seg_ref *ref, const rv_mf *mf, size_t i);

/* ------------------------------------------------------------------------
 * Writing (rvf_write.c)
 * ---------------------------------------------------------------------- */

/* Write all of buf at off, looping over short writes and EINTR; each
 * system call counts for fault injection. 0 or an errno value. */
int rv_file_pwrite_all(rv_file *f, const void *buf, size_t n, uint64_t off);
/* fsync, counted for fault injection. 0 or an errno value. */
int rv_file_fsync(rv_file *f);
/* fsync the directory holding path. 0 or an errno value. */
int rv_fsync_parent_dir(const char *path);
/* Wall clock in ns since the Unix epoch. */
uint64_t rv_wall_ns(void);

/* Free everything the handle owns (no locking or I/O besides close). */
void rv_file_free(rv_file *f);

#endif /* RV_RVF_INT_H */
