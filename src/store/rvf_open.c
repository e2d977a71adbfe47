/*
 * rvf_open.c - opening a .rvf file: lock, map, find the newest complete
 * commit, verify everything it names, cut off a torn tail.
 *
 * The whole file is mapped read-only once; the header walk, the manifest
 * decode and the content hashes all read from that mapping, so each
 * payload is read exactly once at open (by the hash), and afterwards the
 * collection uses the verified bytes in place.
 *
 * Recovery rule (docs/FORMAT.md, "Opening and recovery"). Walk segment
 * headers forward from offset 64. The walk stops at the end of the file,
 * or at the first offset that does not hold a usable header:
 *   - a damaged header (bad magic, checksum or version) is corruption:
 *     the writer never leaves one behind (rvf_write.c, "Commit point");
 *   - a cut-off header, an all-zero header, or a valid header whose
 *     segment runs past the end of the file is what a crash leaves: the
 *     start of a torn tail, provided no complete MANIFEST header follows
 *     anywhere after it (one would prove that committed data lies beyond
 *     the break, so the break is damage, not a crash).
 * The newest commit is the last MANIFEST the walk passed. It must be
 * intact: its content hash, its payload layout, the link to the previous
 * manifest, and every segment it names (a walked header at the named
 * offset, before the manifest, with the named type, id and length, and a
 * matching content hash). Any failure there is RV_ECORRUPT; open never
 * falls back to an older manifest past a valid newer MANIFEST header,
 * because that header proves the newer commit completed (a fallback would
 * silently drop committed data). Everything after the newest manifest is
 * the torn tail: truncated on a writable open, ignored on a read-only one.
 */
#include "store/rvf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================
 * Handle basics
 * ==================================================================== */

void rv_file_free(rv_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap((void *)f->map, f->map_len);
	if (f->fd >= 0)
		close(f->fd); /* also drops the flock */
	rv_dealloc(f->a, f->app);
	rv_dealloc(f->a, f->open_segs);
	rv_dealloc(f->a, f->man_segs);
	rv_dealloc(f->a, f->man_state);
	rv_dealloc(f->a, f->path);
	rv_dealloc(f->a, f);
}

void rv_file_close(rv_file *f) { rv_file_free(f); }

const rv_manifest *rv_file_manifest(const rv_file *f) { return &f->man; }

uint64_t rv_file_size(const rv_file *f) { return f->size; }

const char *rv_file_path(const rv_file *f) { return f->path; }

bool rv_file_readonly(const rv_file *f) { return f->readonly; }

uint64_t rv_file_features(const rv_file *f) { return f->features; }

rv_status rv_file_segment_data(const uint8_t **payload, const rv_file *f, const rv_seg_ref *ref,
			       rv_err *err)
{
	if (!payload || !f || !ref)
		return rv_err_set(err, RV_EINVAL, "rv_file_segment_data: NULL argument");
	*payload = NULL;
	size_t k = rv_seg_find(f->open_segs, f->n_open, ref->offset);
	if (k != SIZE_MAX && rv_seg_same(&f->open_segs[k], ref)) {
		*payload = f->map + ref->offset + RV_SEG_HEADER_SIZE;
		return RV_OK;
	}
	/* Only fields fixed at open are read here (not the appended list,
	 * which a concurrent append may move), so this stays thread-safe. */
	if (ref->offset >= f->open_end)
		return rv_err_set(err, RV_EINVAL,
				  "%s: segment %llu (%s) at offset %llu lies after the commit found at open "
				  "(appended later?) and is not mapped",
				  f->path, (unsigned long long)ref->seg_id, rv_seg_type_name(ref->type),
				  (unsigned long long)ref->offset);
	return rv_err_set(err, RV_EINVAL,
			  "%s: segment %llu (%s) at offset %llu (%llu bytes) is not named by the manifest "
			  "found at open",
			  f->path, (unsigned long long)ref->seg_id, rv_seg_type_name(ref->type),
			  (unsigned long long)ref->offset, (unsigned long long)ref->length);
}

/* ======================================================================
 * Finding the newest commit
 * ==================================================================== */

/* Offset of the first complete MANIFEST header at a 64-byte aligned
 * offset in [from, size), or 0 when there is none. */
static uint64_t find_later_manifest(const uint8_t *map, uint64_t size, uint64_t from)
{
	for (uint64_t q = from; q < size && size - q >= RV_SEG_HEADER_SIZE; q += RV_SEG_ALIGN) {
		/* Cheap filter before the checksum: magic and type byte. */
		if (map[q + 5] != RV_SEG_MANIFEST || rv_get_u32(map + q) != RV_SEG_MAGIC)
			continue;
		rv_seg_hdr h;
		if (rv_seg_probe(&h, map, size, q) == RV_PROBE_OK)
			return q;
	}
	return 0;
}

typedef struct scan {
	rv_seg_ref *walk; /* every segment the walk passed, in file order */
	size_t n_walk, cap_walk;
	size_t mf;        /* index in walk of the newest manifest, or SIZE_MAX */
	size_t prev_mf;   /* index of the manifest before it, or SIZE_MAX */
} scan;

#define SEG_FMT "segment %llu (%s) at offset %llu"
#define SEG_ARGS(id, type, off) (unsigned long long)(id), rv_seg_type_name(type), (unsigned long long)(off)

static rv_status walk_file(scan *s, const uint8_t *map, uint64_t size, const rv_alloc *a,
			   const char *path, rv_err *err)
{
	uint64_t pos = RV_FILE_HEADER_SIZE;
	s->mf = s->prev_mf = SIZE_MAX;
	for (;;) {
		rv_seg_hdr h;
		rv_probe pr = rv_seg_probe(&h, map, size, pos);
		if (pr == RV_PROBE_END)
			return RV_OK;
		if (pr == RV_PROBE_BAD_MAGIC || pr == RV_PROBE_BAD_CHECKSUM ||
		    pr == RV_PROBE_BAD_VERSION)
			return rv_err_set(err, RV_ECORRUPT, "%s: segment header at offset %llu: %s", path,
					  (unsigned long long)pos, rv_probe_str(pr));
		if (pr != RV_PROBE_OK) {
			/* Looks like a crash; it is one only if no commit
			 * follows. */
			uint64_t q = find_later_manifest(map, size, pos + RV_SEG_ALIGN);
			if (q)
				return rv_err_set(err, RV_ECORRUPT,
						  "%s: %s at offset %llu, but a complete manifest follows at "
						  "offset %llu: the file is damaged, not cut short",
						  path, rv_probe_str(pr), (unsigned long long)pos,
						  (unsigned long long)q);
			return RV_OK;
		}
		uint64_t last_id = s->n_walk ? s->walk[s->n_walk - 1].seg_id : 0;
		if (h.seg_id <= last_id)
			return rv_err_set(err, RV_ECORRUPT,
					  "%s: " SEG_FMT ": segment ids must increase (previous is %llu)",
					  path, SEG_ARGS(h.seg_id, h.type, pos), (unsigned long long)last_id);
		void *arr = s->walk;
		if (!rv_grow(a, &arr, &s->cap_walk, s->n_walk + 1, sizeof *s->walk))
			return rv_err_nomem(err);
		s->walk = arr;
		s->walk[s->n_walk] = (rv_seg_ref){ h.type, h.seg_id, pos, h.length };
		if (h.type == RV_SEG_MANIFEST) {
			s->prev_mf = s->mf;
			s->mf = s->n_walk;
		}
		s->n_walk++;
		pos += RV_SEG_HEADER_SIZE + rv_seg_padded(h.length);
	}
}

/* Check a segment's payload in the mapping against its header; the
 * header itself passed the walk. */
static rv_status check_payload(const uint8_t *map, const rv_seg_ref *r, const char *path,
			       rv_err *err)
{
	rv_seg_hdr h;
	rv_seg_hdr_decode(&h, map + r->offset);
	const uint8_t *payload = map + r->offset + RV_SEG_HEADER_SIZE;
	/* Start reading the whole payload ahead of the hash. */
	if (h.length >= (1u << 20)) {
		uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
		uintptr_t beg = (uintptr_t)payload & ~(page - 1);
		madvise((void *)beg, (size_t)((uintptr_t)payload + h.length - beg), MADV_WILLNEED);
	}
	const char *why = rv_seg_check_payload(&h, payload);
	if (why)
		return rv_err_set(err, RV_ECORRUPT, "%s: " SEG_FMT ": %s", path,
				  SEG_ARGS(r->seg_id, r->type, r->offset), why);
	return RV_OK;
}

/* Verify the newest manifest and what it names; fill the handle's
 * manifest and verified set. */
static rv_status load_manifest(rv_file *f, const scan *s, rv_err *err)
{
	rv_status st = RV_OK;
	bool *named = NULL;
	const rv_seg_ref *m = &s->walk[s->mf];
	const char *path = f->path;

	if ((st = check_payload(f->map, m, path, err)) != RV_OK)
		goto done;
	rv_mf mf;
	const char *why;
	st = rv_mf_decode(&mf, f->map + m->offset + RV_SEG_HEADER_SIZE, (size_t)m->length, &why);
	if (st != RV_OK) {
		rv_err_set(err, st, "%s: " SEG_FMT ": %s", path, SEG_ARGS(m->seg_id, m->type, m->offset),
			   why);
		goto done;
	}
	uint64_t want_prev = s->prev_mf == SIZE_MAX ? 0 : s->walk[s->prev_mf].offset;
	if (mf.prev_offset != want_prev) {
		st = rv_err_set(err, RV_ECORRUPT,
				"%s: " SEG_FMT ": names the previous manifest at offset %llu, but the file "
				"has it at offset %llu",
				path, SEG_ARGS(m->seg_id, m->type, m->offset),
				(unsigned long long)mf.prev_offset, (unsigned long long)want_prev);
		goto done;
	}

	named = rv_calloc(f->a, s->mf + 1, sizeof *named);
	f->man_segs = rv_calloc(f->a, mf.n_segs ? mf.n_segs : 1, sizeof *f->man_segs);
	f->open_segs = rv_calloc(f->a, mf.n_segs ? mf.n_segs : 1, sizeof *f->open_segs);
	if (!named || !f->man_segs || !f->open_segs) {
		st = rv_err_nomem(err);
		goto done;
	}
	for (size_t i = 0; i < mf.n_segs; i++) {
		rv_seg_ref e;
		rv_mf_entry(&e, &mf, i);
		if (e.type == RV_SEG_MANIFEST) {
			st = rv_err_set(err, RV_ECORRUPT,
					"%s: " SEG_FMT ": entry %zu names a MANIFEST segment (segment %llu at "
					"offset %llu)",
					path, SEG_ARGS(m->seg_id, m->type, m->offset), i,
					(unsigned long long)e.seg_id, (unsigned long long)e.offset);
			goto done;
		}
		/* Only segments before the manifest count: the walk found
		 * them, in offset order. */
		size_t k = rv_seg_find(s->walk, s->mf, e.offset);
		if (k == SIZE_MAX) {
			st = rv_err_set(err, RV_ECORRUPT,
					"%s: " SEG_FMT " named by the manifest (segment %llu at offset %llu) is "
					"missing: no segment starts there",
					path, SEG_ARGS(e.seg_id, e.type, e.offset),
					(unsigned long long)m->seg_id, (unsigned long long)m->offset);
			goto done;
		}
		const rv_seg_ref *w = &s->walk[k];
		if (!rv_seg_same(w, &e)) {
			st = rv_err_set(err, RV_ECORRUPT,
					"%s: " SEG_FMT ": the manifest (segment %llu at offset %llu) expects "
					"segment %llu (%s), %llu bytes; the header says segment %llu (%s), "
					"%llu bytes",
					path, SEG_ARGS(w->seg_id, w->type, w->offset),
					(unsigned long long)m->seg_id, (unsigned long long)m->offset,
					(unsigned long long)e.seg_id, rv_seg_type_name(e.type),
					(unsigned long long)e.length, (unsigned long long)w->seg_id,
					rv_seg_type_name(w->type), (unsigned long long)w->length);
			goto done;
		}
		if (named[k]) {
			st = rv_err_set(err, RV_ECORRUPT, "%s: " SEG_FMT ": named twice by the manifest",
					path, SEG_ARGS(w->seg_id, w->type, w->offset));
			goto done;
		}
		named[k] = true;
		f->man_segs[i] = e;
	}
	/* Hash in file order: sequential reads of the mapping. */
	for (size_t k = 0; k < s->mf; k++) {
		if (!named[k])
			continue;
		if ((st = check_payload(f->map, &s->walk[k], path, err)) != RV_OK)
			goto done;
		f->open_segs[f->n_open++] = s->walk[k];
	}

	f->man.generation = mf.generation;
	f->man.timestamp_ns = mf.timestamp_ns;
	f->man.state = mf.state; /* verified bytes in the mapping */
	f->man.state_len = mf.state_len;
	f->man.segs = f->man_segs;
	f->man.n_segs = mf.n_segs;
	f->man_offset = m->offset;
	f->committed_end = m->offset + RV_SEG_HEADER_SIZE + rv_seg_padded(m->length);
	f->open_end = f->committed_end;
	f->next_id = m->seg_id + 1;
done:
	rv_dealloc(f->a, named);
	return st;
}

/* ======================================================================
 * Open
 * ==================================================================== */

rv_status rv_file_open(rv_file **out, const char *path, bool readonly, const rv_alloc *a,
		       rv_err *err)
{
	rv_status st = RV_OK;
	rv_file *f = NULL;
	scan s = { 0 };

	if (!out || !path)
		return rv_err_set(err, RV_EINVAL, "rv_file_open: out and path must not be NULL");
	*out = NULL;
	f = rv_calloc(a, 1, sizeof *f);
	if (!f)
		return rv_err_nomem(err);
	f->a = a;
	f->fd = -1;
	f->readonly = readonly;
	f->path = rv_strndup(a, path, strlen(path));
	if (!f->path) {
		st = rv_err_nomem(err);
		goto done;
	}

	/* O_NONBLOCK: a FIFO at path must not hang the open (it is refused
	 * below as not a regular file); regular files ignore the flag. */
	f->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0) {
		int e = errno;
		st = e == ENOENT ? rv_err_set(err, RV_ENOTFOUND, "%s: no such file", path)
				 : rv_err_set(err, RV_EIO, "%s: cannot open: %s", path, strerror(e));
		goto done;
	}
	/* flock: a writer excludes everyone, readers share. A read-only open
	 * while a writer has the file is refused rather than shown a commit
	 * in progress. */
	if (flock(f->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
		int e = errno;
		if (e == EWOULDBLOCK)
			st = readonly ? rv_err_set(err, RV_EBUSY,
						   "%s is locked by a writer (a read-only open waits for it "
						   "to close)",
						   path)
				      : rv_err_set(err, RV_EBUSY, "%s is locked by another writer", path);
		else
			st = rv_err_set(err, RV_EIO, "%s: cannot lock: %s", path, strerror(e));
		goto done;
	}
	struct stat sb;
	if (fstat(f->fd, &sb) != 0) {
		st = rv_err_set(err, RV_EIO, "%s: cannot stat: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = rv_err_set(err, RV_EINVAL, "%s: not a regular file", path);
		goto done;
	}
	uint64_t size = (uint64_t)sb.st_size;
	rv_file_hdr fh;
	if (size < RV_FILE_HEADER_SIZE) {
		/* Checked before mmap, which refuses a zero length. */
		st = rv_file_hdr_check(&fh, NULL, size, !readonly, path, err);
		goto done;
	}
	if (size > SIZE_MAX) {
		st = rv_err_set(err, RV_EIO, "%s: %llu bytes is too large to map on this system", path,
				(unsigned long long)size);
		goto done;
	}
	void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (map == MAP_FAILED) {
		st = rv_err_set(err, RV_EIO, "%s: cannot map %llu bytes: %s", path,
				(unsigned long long)size, strerror(errno));
		goto done;
	}
	f->map = map;
	f->map_len = (size_t)size;

	if ((st = rv_file_hdr_check(&fh, f->map, size, !readonly, path, err)) != RV_OK)
		goto done;
	f->features = fh.features_required;
	if ((st = walk_file(&s, f->map, size, a, path, err)) != RV_OK)
		goto done;
	if (s.mf == SIZE_MAX) {
		st = rv_err_set(err, RV_ECORRUPT, "%s: no complete commit: the file has no valid manifest",
				path);
		goto done;
	}
	if ((st = load_manifest(f, &s, err)) != RV_OK)
		goto done;

	f->size = size;
	if (!readonly && f->committed_end < size) {
		/* A torn tail: bytes of a commit that never completed. Cut
		 * it off so appends continue right after the last commit. */
		while (ftruncate(f->fd, (off_t)f->committed_end) != 0) {
			if (errno != EINTR) {
				st = rv_err_set(err, RV_EIO,
						"%s: cannot cut off the torn tail of %llu bytes at offset %llu: %s",
						path, (unsigned long long)(size - f->committed_end),
						(unsigned long long)f->committed_end, strerror(errno));
				goto done;
			}
		}
		int e = rv_file_fsync(f);
		if (e) {
			st = rv_err_set(err, RV_EIO, "%s: cannot fsync after cutting off the torn tail: %s",
					path, strerror(e));
			goto done;
		}
		f->size = f->committed_end;
	}
	*out = f;
	f = NULL;
done:
	rv_dealloc(a, s.walk);
	rv_file_free(f);
	return st;
}
