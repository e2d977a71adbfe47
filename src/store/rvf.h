/*
 * rvf.h - the .rvf file: an append-only log of typed, checksummed segments
 * whose newest complete MANIFEST says which segments are live.
 *
 * The store knows segments and manifests, not what is in them: the
 * collection (src/db) encodes VEC / META / JOURNAL / INDEX payloads and an
 * opaque "state" blob that travels inside each manifest. The byte layout is
 * docs/FORMAT.md; the constants are in format.h.
 *
 *   file     = file header (64 bytes) , { segment }
 *   segment  = header (64 bytes) , payload , zero padding to 64 bytes
 *
 * Commit protocol (rv_file_commit): every segment appended since the last
 * commit is already written; write the MANIFEST payload behind a zeroed
 * 64-byte header slot; fsync(file); write the MANIFEST header; fsync(file).
 * A valid MANIFEST header therefore implies that every byte before it is
 * durable. A manifest is valid only when its header and payload
 * checksums match and every segment it names lies before it with a valid
 * header and matching content hash.
 *
 * Open: find the newest valid manifest (the last segment of the file in
 * the normal case). Bytes after it that do not form a valid manifest are a
 * torn tail: a writable open truncates them away, a read-only open ignores
 * them. A segment that is named by the newest manifest but fails its
 * checksum is RV_ECORRUPT ("segment 7 (VEC) at offset 8192: content hash
 * mismatch"). A file header whose read version is newer than this build is
 * RV_EVERSION; a newer write version opens read-only only.
 *
 * Thread-safety: one thread at a time per rv_file, except
 * rv_file_segment_data on a mapped segment, which is safe from any thread.
 */
#ifndef RV_RVF_H
#define RV_RVF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ruvector.h"
#include "store/format.h"
#include "util/util.h"

/* A segment named by a manifest. */
typedef struct rv_seg_ref {
	uint8_t type;        /* RV_SEG_* */
	uint64_t seg_id;     /* unique, increasing within a file */
	uint64_t offset;     /* file offset of its 64-byte header */
	uint64_t length;     /* payload bytes (without header and padding) */
} rv_seg_ref;

/* The content of a manifest. */
typedef struct rv_manifest {
	uint64_t generation;   /* 1 for the manifest written by create (a rewrite may
				  start at any value >= 1), +1 per commit */
	uint64_t timestamp_ns; /* wall clock at commit (0: the store fills it in) */
	const uint8_t *state;  /* opaque collection state (owned by whoever filled it) */
	size_t state_len;
	const rv_seg_ref *segs;/* live segments, in the order the collection appended them */
	size_t n_segs;
} rv_manifest;

typedef struct rv_file rv_file;

/* Create path (O_EXCL: fails if it exists), write the file header and a
 * first manifest m (no segments), fsync the file and its directory.
 * Takes an exclusive lock (flock) held until rv_file_close. */
rv_status rv_file_create(rv_file **out, const char *path, const rv_manifest *m,
			 const rv_alloc *a, rv_err *err);
/* The same, with required feature bits (RV_FEATURE_*, all known to this
 * build, else RV_EINVAL) set in the file header. */
rv_status rv_file_create_v2(rv_file **out, const char *path, const rv_manifest *m,
			    uint64_t features_required, const rv_alloc *a, rv_err *err);
/* The required feature bits of the file header (as found at open, or as
 * written by create). */
uint64_t rv_file_features(const rv_file *f);

/* Open path, lock it (shared when readonly, exclusive otherwise: another
 * writer gives RV_EBUSY), find the newest valid manifest, verify the
 * content hash of every segment it names, and memory-map the file
 * read-only. */
rv_status rv_file_open(rv_file **out, const char *path, bool readonly, const rv_alloc *a,
		       rv_err *err);

/* Unmap, unlock, close. Appended but uncommitted segments are left as a
 * torn tail that the next open removes. NULL is a no-op. */
void rv_file_close(rv_file *f);

/* The manifest found by open, or the last one committed through this
 * handle. Valid until the next commit or close. */
const rv_manifest *rv_file_manifest(const rv_file *f);

/* Pointer to the payload of a segment named by the manifest found at open
 * (it lies in the read-only mapping; 64-byte aligned). Valid until close.
 * Segments appended through this handle are not mapped: RV_EINVAL. */
rv_status rv_file_segment_data(const uint8_t **payload, const rv_file *f, const rv_seg_ref *ref,
			       rv_err *err);

/* Append a segment (header + payload + padding) at the end of the file.
 * Not durable until rv_file_commit. Payloads up to 2^40 bytes.
 * [out] ref  filled with the new segment's id, offset and length.
 * Errors: RV_EIO (the file is truncated back to where it was). */
rv_status rv_file_append(rv_file *f, uint8_t type, uint16_t flags, const void *payload,
			 size_t len, rv_seg_ref *ref, rv_err *err);

/* Make every appended segment durable and publish m as the newest
 * manifest: fsync, append MANIFEST, fsync. m->generation must be the
 * current generation + 1. On error nothing is published; the caller may
 * retry. */
rv_status rv_file_commit(rv_file *f, const rv_manifest *m, rv_err *err);

/* Bytes in the file (committed and appended). */
uint64_t rv_file_size(const rv_file *f);
const char *rv_file_path(const rv_file *f);
bool rv_file_readonly(const rv_file *f);

/* Fault injection for crash tests: when set > 0, the Nth write() or
 * fsync() from now on fails with EIO. 0 disables. Per handle. */
void rv_file_fail_io_after(rv_file *f, unsigned n);

/* Check every segment header and checksum, every manifest and the segments
 * the newest one names (takes no lock; reads with pread); report each
 * finding to fn (see rv_verify_file in
 * ruvector.h, which calls this). */
rv_status rv_file_verify(const char *path, rv_verify_fn fn, void *ctx, rv_err *err);

/* A check of the payloads of some segment types, which the store cannot
 * judge itself (the collection knows their layout). */
typedef struct rv_payload_check {
	uint64_t types; /* bit t set: check the payloads of segment type t (t < 64) */
	/* true when the payload is fine; else false with a description in
	 * why (NUL-terminated, at most why_len bytes). Called only for
	 * payloads whose content hash matched. */
	bool (*check)(void *ctx, uint8_t type, const uint8_t *payload, uint64_t len, char *why,
		      size_t why_len);
	void *ctx;
} rv_payload_check;

/* rv_file_verify, plus check (may be NULL) on every segment of the types
 * it names, live or dead; a failed check is a finding (ok = 0) naming the
 * segment and offset. Payloads checked are read whole into memory. */
rv_status rv_file_verify_v2(const char *path, rv_verify_fn fn, void *ctx, const rv_payload_check *check,
			    rv_err *err);

/* Rewrite: create a fresh file at tmp_path holding just the given segments
 * and manifest is done by the collection with rv_file_create/append/commit;
 * this renames it over final_path and fsyncs the directory. */
rv_status rv_file_rename_over(const char *tmp_path, const char *final_path, rv_err *err);

#endif /* RV_RVF_H */
