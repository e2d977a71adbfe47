/*
 * rvf_write.c - writing a .rvf file: create, append, commit, rename over,
 * and the fault injection the crash tests use.
 *
 * The file only ever grows at its end, except that a failed write is cut
 * back off with ftruncate so the file is exactly as it was before the
 * call. If even that fails the handle is marked broken and refuses further
 * writes: its idea of where the file ends can no longer be trusted, and
 * the next open sorts the tail out.
 *
 * Commit point. A MANIFEST segment is written in two steps: first its
 * payload (and padding) behind a header slot of 64 zero bytes, then fsync,
 * then the 64-byte header into the slot, then fsync. The two fsyncs are
 * the ones the commit protocol needs anyway (data durable before the
 * manifest, manifest durable before returning); writing the header last
 * adds the guarantee that a MANIFEST with a valid header checksum was
 * preceded by a completed fsync of every byte before it, including its own
 * payload. A crash can therefore leave a zero or cut-off header, or data
 * segments that no manifest names, but never a valid manifest header in
 * front of a torn payload: rvf_open.c reports such a manifest as
 * corruption instead of guessing that it was a crash. A 64-byte header at a
 * 64-byte aligned offset never straddles a sector or page, so it reaches
 * the disk whole or not at all.
 */
#include "store/rvf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ======================================================================
 * I/O helpers
 * ==================================================================== */

/* Fault injection: true when this I/O call is the one chosen to fail. */
static bool inject_fault(rv_file *f)
{
	if (f->fail_after == 0)
		return false;
	return --f->fail_after == 0;
}

/* Write iov[0..cnt) contiguously at off, looping over short writes and
 * EINTR. cnt <= 4. 0 or an errno value. */
static int pwritev_all(rv_file *f, const struct iovec *iov_in, int cnt, uint64_t off)
{
	struct iovec iov[4];
	memcpy(iov, iov_in, (size_t)cnt * sizeof *iov);
	int first = 0;
	while (first < cnt && iov[first].iov_len == 0)
		first++;
	while (first < cnt) {
		if (inject_fault(f))
			return EIO;
		ssize_t w = pwritev(f->fd, iov + first, cnt - first, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO; /* no progress and no error: do not spin */
		off += (uint64_t)w;
		size_t done = (size_t)w;
		while (first < cnt && done >= iov[first].iov_len) {
			done -= iov[first].iov_len;
			first++;
		}
		if (first < cnt) {
			iov[first].iov_base = (uint8_t *)iov[first].iov_base + done;
			iov[first].iov_len -= done;
		}
		while (first < cnt && iov[first].iov_len == 0)
			first++;
	}
	return 0;
}

int rv_file_pwrite_all(rv_file *f, const void *buf, size_t n, uint64_t off)
{
	struct iovec iov = { (void *)buf, n };
	return pwritev_all(f, &iov, 1, off);
}

int rv_file_fsync(rv_file *f)
{
	if (inject_fault(f))
		return EIO;
	while (fsync(f->fd) != 0) {
		if (errno != EINTR)
			return errno;
	}
	return 0;
}

int rv_fsync_parent_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = 0;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int rc = 0;
	while (fsync(fd) != 0) {
		if (errno == EINTR)
			continue;
		/* Some file systems cannot fsync a directory; the rename or
		 * create is then as durable as that file system makes it. */
		if (errno != EINVAL && errno != EBADF)
			rc = errno;
		break;
	}
	close(fd);
	return rc;
}

uint64_t rv_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Cut the file back to end after a failed write. */
static void undo_to(rv_file *f, uint64_t end)
{
	while (ftruncate(f->fd, (off_t)end) != 0) {
		if (errno != EINTR) {
			f->broken = true;
			return;
		}
	}
}

static rv_status check_writable(const rv_file *f, rv_err *err)
{
	if (f->readonly)
		return rv_err_set(err, RV_EREADONLY, "%s: opened read-only", f->path);
	if (f->broken)
		return rv_err_set(err, RV_EIO,
				  "%s: an earlier write failed and could not be undone; close and reopen the file",
				  f->path);
	/* Ids must keep increasing along the file; after 2^64-1 there is no
	 * next one (only a crafted file gets here). */
	if (f->next_id == 0)
		return rv_err_set(err, RV_ECORRUPT, "%s: segment ids are exhausted (the last one is %llu)",
				  f->path, (unsigned long long)UINT64_MAX);
	return RV_OK;
}

/* ======================================================================
 * Publishing a manifest (create and commit)
 * ==================================================================== */

/* Write manifest m (generation and timestamp already final) at the end of
 * the file by the two-step protocol above. On failure the file is cut back
 * to where it was. */
static rv_status publish(rv_file *f, const rv_manifest *m, rv_err *err)
{
	rv_status st = RV_OK;
	rv_buf b;
	rv_buf_init(&b, f->a);
	const uint64_t pos = f->size;

	rv_buf_zero(&b, RV_SEG_HEADER_SIZE); /* the header slot, filled last */
	rv_mf_encode(&b, m, f->man_offset);
	if (b.failed) {
		st = rv_err_nomem(err);
		goto done;
	}
	size_t payload_len = b.len - RV_SEG_HEADER_SIZE;
	rv_buf_align(&b, RV_SEG_ALIGN);
	if (b.failed) {
		st = rv_err_nomem(err);
		goto done;
	}

	rv_seg_hdr h = { 0 };
	h.version = RV_SEG_HEADER_VERSION;
	h.type = RV_SEG_MANIFEST;
	h.seg_id = f->next_id;
	h.length = payload_len;
	h.timestamp_ns = m->timestamp_ns;
	h.csum_algo = RV_CSUM_XXH3_128;
	rv_seg_hash(&h.hash_lo, &h.hash_hi, b.data + RV_SEG_HEADER_SIZE, payload_len);
	uint8_t hdr[RV_SEG_HEADER_SIZE];
	rv_seg_hdr_encode(hdr, &h);

	const char *step = "write manifest";
	int e = rv_file_pwrite_all(f, b.data, b.len, pos);
	if (!e) {
		/* Data segments and the manifest payload are durable before
		 * the header that makes them a commit exists. */
		step = "fsync before manifest header";
		e = rv_file_fsync(f);
	}
	if (!e) {
		step = "write manifest header";
		e = rv_file_pwrite_all(f, hdr, sizeof hdr, pos);
	}
	if (!e) {
		step = "fsync after manifest header";
		e = rv_file_fsync(f);
	}
	if (e) {
		undo_to(f, pos);
		st = rv_err_set(err, RV_EIO, "%s: commit of generation %llu failed (%s at offset %llu): %s",
				f->path, (unsigned long long)m->generation, step,
				(unsigned long long)pos, strerror(e));
		goto done;
	}
	f->man_offset = pos;
	f->next_id++;
	f->size = pos + b.len;
	f->committed_end = f->size;
done:
	rv_buf_free(&b);
	return st;
}

/* Replace the handle's manifest with copies of m (timestamp ts). The
 * copies are made before anything is written so that a durable commit can
 * never be followed by an allocation failure. */
static rv_status copy_manifest(rv_seg_ref **segs, uint8_t **state, const rv_manifest *m,
			       const rv_alloc *a, rv_err *err)
{
	*segs = rv_calloc(a, m->n_segs ? m->n_segs : 1, sizeof **segs);
	*state = rv_malloc(a, m->state_len ? m->state_len : 1);
	if (!*segs || !*state) {
		rv_dealloc(a, *segs);
		rv_dealloc(a, *state);
		*segs = NULL;
		*state = NULL;
		return rv_err_nomem(err);
	}
	if (m->n_segs)
		memcpy(*segs, m->segs, m->n_segs * sizeof **segs);
	if (m->state_len)
		memcpy(*state, m->state, m->state_len);
	return RV_OK;
}

static void install_manifest(rv_file *f, const rv_manifest *m, uint64_t ts, rv_seg_ref *segs,
			     uint8_t *state)
{
	rv_dealloc(f->a, f->man_segs);
	rv_dealloc(f->a, f->man_state);
	f->man_segs = segs;
	f->man_state = state;
	f->man.generation = m->generation;
	f->man.timestamp_ns = ts;
	f->man.state = state;
	f->man.state_len = m->state_len;
	f->man.segs = segs;
	f->man.n_segs = m->n_segs;
}

static rv_status check_manifest_arg(const rv_manifest *m, const char *path, rv_err *err)
{
	if (!m)
		return rv_err_set(err, RV_EINVAL, "%s: manifest is NULL", path);
	if (m->state_len && !m->state)
		return rv_err_set(err, RV_EINVAL, "%s: manifest state is NULL but state_len is %zu",
				  path, m->state_len);
	if (m->n_segs && !m->segs)
		return rv_err_set(err, RV_EINVAL, "%s: manifest segs is NULL but n_segs is %zu", path,
				  m->n_segs);
	if (m->generation == 0)
		return rv_err_set(err, RV_EINVAL, "%s: manifest generation 0 is invalid (starts at 1)",
				  path);
	return RV_OK;
}

/* ======================================================================
 * Create
 * ==================================================================== */

static void random_id(uint8_t id[16])
{
	ssize_t got = getrandom(id, 16, GRND_NONBLOCK);
	if (got == 16)
		return;
	/* No entropy yet (early boot): time and pid still make the id
	 * distinct between files in practice; it is not a secret. */
	rv_rng r;
	rv_rng_seed(&r, rv_wall_ns() ^ ((uint64_t)getpid() << 32));
	rv_put_u64(id, rv_rng_next(&r));
	rv_put_u64(id + 8, rv_rng_next(&r));
}

rv_status rv_file_create(rv_file **out, const char *path, const rv_manifest *m,
			 const rv_alloc *a, rv_err *err)
{
	return rv_file_create_v2(out, path, m, 0, a, err);
}

rv_status rv_file_create_v2(rv_file **out, const char *path, const rv_manifest *m,
			    uint64_t features_required, const rv_alloc *a, rv_err *err)
{
	rv_status st = RV_OK;
	rv_file *f = NULL;
	uint8_t *state = NULL;
	rv_seg_ref *segs = NULL;
	bool created = false;

	if (!out || !path)
		return rv_err_set(err, RV_EINVAL, "rv_file_create: out and path must not be NULL");
	*out = NULL;
	if (features_required & ~(uint64_t)RV_FEATURES_REQUIRED_KNOWN)
		return rv_err_set(err, RV_EINVAL, "%s: unknown required feature bits 0x%llx", path,
				  (unsigned long long)(features_required & ~(uint64_t)RV_FEATURES_REQUIRED_KNOWN));
	if ((st = check_manifest_arg(m, path, err)) != RV_OK)
		return st;
	if (m->n_segs != 0)
		return rv_err_set(err, RV_EINVAL,
				  "%s: the first manifest names no segments, got %zu", path, m->n_segs);

	f = rv_calloc(a, 1, sizeof *f);
	if (!f)
		return rv_err_nomem(err);
	f->a = a;
	f->fd = -1;
	f->path = rv_strndup(a, path, strlen(path));
	if (!f->path) {
		st = rv_err_nomem(err);
		goto done;
	}
	if ((st = copy_manifest(&segs, &state, m, a, err)) != RV_OK)
		goto done;

	f->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		st = rv_err_set(err, RV_EIO, "%s: cannot create: %s", path, strerror(errno));
		goto done;
	}
	created = true;
	if (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
		st = errno == EWOULDBLOCK
			     ? rv_err_set(err, RV_EBUSY, "%s is locked by another writer", path)
			     : rv_err_set(err, RV_EIO, "%s: cannot lock: %s", path, strerror(errno));
		goto done;
	}

	rv_file_hdr fh = { 0 };
	fh.read_version = RV_FORMAT_READ_VERSION;
	fh.write_version = RV_FORMAT_WRITE_VERSION;
	fh.header_len = RV_FILE_HEADER_SIZE;
	fh.features_required = features_required;
	fh.features_optional = 0;
	f->features = features_required;
	fh.created_ns = rv_wall_ns();
	random_id(fh.file_id);
	uint8_t hdr[RV_FILE_HEADER_SIZE];
	rv_file_hdr_encode(hdr, &fh);
	int e = rv_file_pwrite_all(f, hdr, sizeof hdr, 0);
	if (e) {
		st = rv_err_set(err, RV_EIO, "%s: cannot write the file header: %s", path,
				strerror(e));
		goto done;
	}
	f->size = RV_FILE_HEADER_SIZE;
	f->next_id = 1;
	f->man_offset = 0;

	uint64_t ts = m->timestamp_ns ? m->timestamp_ns : fh.created_ns;
	rv_manifest first = *m;
	first.timestamp_ns = ts;
	if ((st = publish(f, &first, err)) != RV_OK)
		goto done;
	install_manifest(f, &first, ts, segs, state);
	segs = NULL;
	state = NULL;
	/* The new name must survive a crash as well as the bytes. */
	e = rv_fsync_parent_dir(path);
	if (e) {
		st = rv_err_set(err, RV_EIO, "%s: cannot fsync its directory: %s", path, strerror(e));
		goto done;
	}
	*out = f;
	f = NULL;
done:
	rv_dealloc(a, segs);
	rv_dealloc(a, state);
	if (f) {
		/* The file is ours (O_EXCL): a half-made one must not linger
		 * and block the retry. */
		if (created)
			unlink(path);
		rv_file_free(f);
	}
	return st;
}

/* ======================================================================
 * Append
 * ==================================================================== */

rv_status rv_file_append(rv_file *f, uint8_t type, uint16_t flags, const void *payload,
			 size_t len, rv_seg_ref *ref, rv_err *err)
{
	rv_status st;
	if (!f)
		return rv_err_set(err, RV_EINVAL, "rv_file_append: file handle is NULL");
	if ((st = check_writable(f, err)) != RV_OK)
		return st;
	if (type == RV_SEG_MANIFEST || type == 0)
		return rv_err_set(err, RV_EINVAL,
				  "%s: cannot append a segment of type %u (%s); manifests are written by commit",
				  f->path, type, type ? rv_seg_type_name(type) : "none");
	if (flags & RV_SEGF_COMPRESSED)
		return rv_err_set(err, RV_EINVAL,
				  "%s: flag RV_SEGF_COMPRESSED is not supported by this store", f->path);
	if ((uint64_t)len > RV_SEG_MAX_PAYLOAD)
		return rv_err_set(err, RV_EINVAL, "%s: payload of %zu bytes exceeds the limit of %llu",
				  f->path, len, (unsigned long long)RV_SEG_MAX_PAYLOAD);
	if (len && !payload)
		return rv_err_set(err, RV_EINVAL, "%s: payload is NULL but len is %zu", f->path, len);
	/* Room to remember the segment first: once it is written, the
	 * handle must know about it. */
	void *arr = f->app;
	if (!rv_grow(f->a, &arr, &f->cap_app, f->n_app + 1, sizeof *f->app))
		return rv_err_nomem(err);
	f->app = arr;

	rv_seg_hdr h = { 0 };
	h.version = RV_SEG_HEADER_VERSION;
	h.type = type;
	h.flags = flags;
	h.seg_id = f->next_id;
	h.length = len;
	h.timestamp_ns = rv_wall_ns();
	h.csum_algo = RV_CSUM_XXH3_128;
	rv_seg_hash(&h.hash_lo, &h.hash_hi, payload ? payload : "", len);
	uint8_t hdr[RV_SEG_HEADER_SIZE];
	rv_seg_hdr_encode(hdr, &h);
	static const uint8_t zeros[RV_SEG_ALIGN];
	size_t pad = (size_t)(rv_seg_padded(len) - len);

	struct iovec iov[3] = {
		{ hdr, sizeof hdr },
		{ (void *)(payload ? payload : zeros), len },
		{ (void *)zeros, pad },
	};
	const uint64_t pos = f->size;
	int e = pwritev_all(f, iov, 3, pos);
	if (e) {
		undo_to(f, pos);
		return rv_err_set(err, RV_EIO,
				  "%s: cannot append segment %llu (%s, %zu bytes) at offset %llu: %s",
				  f->path, (unsigned long long)h.seg_id, rv_seg_type_name(type), len,
				  (unsigned long long)pos, strerror(e));
	}
	rv_seg_ref r = { type, h.seg_id, pos, len };
	f->app[f->n_app++] = r;
	f->size = pos + RV_SEG_HEADER_SIZE + rv_seg_padded(len);
	f->next_id++;
	if (ref)
		*ref = r;
	return RV_OK;
}

/* ======================================================================
 * Commit
 * ==================================================================== */

rv_status rv_file_commit(rv_file *f, const rv_manifest *m, rv_err *err)
{
	rv_status st;
	bool *seen = NULL;
	rv_seg_ref *segs = NULL;
	uint8_t *state = NULL;

	if (!f)
		return rv_err_set(err, RV_EINVAL, "rv_file_commit: file handle is NULL");
	if ((st = check_writable(f, err)) != RV_OK)
		return st;
	if ((st = check_manifest_arg(m, f->path, err)) != RV_OK)
		return st;
	if (m->generation != f->man.generation + 1)
		return rv_err_set(err, RV_EINVAL,
				  "%s: manifest generation must be %llu (current %llu + 1), got %llu",
				  f->path, (unsigned long long)(f->man.generation + 1),
				  (unsigned long long)f->man.generation,
				  (unsigned long long)m->generation);

	/* Every named segment must be one this handle knows to be intact:
	 * verified at open or written by it. Each may be named once. */
	seen = rv_calloc(f->a, f->n_open + f->n_app + 1, sizeof *seen);
	if (!seen) {
		st = rv_err_nomem(err);
		goto done;
	}
	for (size_t i = 0; i < m->n_segs; i++) {
		const rv_seg_ref *s = &m->segs[i];
		size_t k = rv_seg_find(f->open_segs, f->n_open, s->offset);
		size_t slot = SIZE_MAX;
		if (k != SIZE_MAX && rv_seg_same(&f->open_segs[k], s)) {
			slot = k;
		} else {
			k = rv_seg_find(f->app, f->n_app, s->offset);
			if (k != SIZE_MAX && rv_seg_same(&f->app[k], s))
				slot = f->n_open + k;
		}
		if (slot == SIZE_MAX) {
			st = rv_err_set(err, RV_EINVAL,
					"%s: manifest entry %zu, segment %llu (%s) at offset %llu (%llu bytes), "
					"is neither named by the manifest found at open nor appended through "
					"this handle",
					f->path, i, (unsigned long long)s->seg_id,
					rv_seg_type_name(s->type), (unsigned long long)s->offset,
					(unsigned long long)s->length);
			goto done;
		}
		if (seen[slot]) {
			st = rv_err_set(err, RV_EINVAL,
					"%s: manifest names segment %llu (%s) at offset %llu twice", f->path,
					(unsigned long long)s->seg_id, rv_seg_type_name(s->type),
					(unsigned long long)s->offset);
			goto done;
		}
		seen[slot] = true;
	}

	if ((st = copy_manifest(&segs, &state, m, f->a, err)) != RV_OK)
		goto done;
	uint64_t ts = m->timestamp_ns ? m->timestamp_ns : rv_wall_ns();
	rv_manifest next = *m;
	next.timestamp_ns = ts;
	if ((st = publish(f, &next, err)) != RV_OK)
		goto done;
	install_manifest(f, &next, ts, segs, state);
	segs = NULL;
	state = NULL;
done:
	rv_dealloc(f->a, state);
	rv_dealloc(f->a, segs);
	rv_dealloc(f->a, seen);
	return st;
}

/* ======================================================================
 * Rename over, fault injection
 * ==================================================================== */

rv_status rv_file_rename_over(const char *tmp_path, const char *final_path, rv_err *err)
{
	if (!tmp_path || !final_path)
		return rv_err_set(err, RV_EINVAL, "rv_file_rename_over: paths must not be NULL");
	if (rename(tmp_path, final_path) != 0)
		return rv_err_set(err, RV_EIO, "cannot rename %s over %s: %s", tmp_path, final_path,
				  strerror(errno));
	int e = rv_fsync_parent_dir(final_path);
	if (e)
		return rv_err_set(err, RV_EIO, "%s: renamed, but cannot fsync its directory: %s",
				  final_path, strerror(e));
	/* A rename across directories also removed an entry from the
	 * source directory; make that durable too. */
	const char *a = strrchr(tmp_path, '/'), *b = strrchr(final_path, '/');
	size_t la = a ? (size_t)(a - tmp_path) : 0, lb = b ? (size_t)(b - final_path) : 0;
	if (la != lb || memcmp(tmp_path, final_path, la) != 0) {
		e = rv_fsync_parent_dir(tmp_path);
		if (e)
			return rv_err_set(err, RV_EIO, "%s: renamed, but cannot fsync the directory of %s: %s",
					  final_path, tmp_path, strerror(e));
	}
	return RV_OK;
}

void rv_file_fail_io_after(rv_file *f, unsigned n)
{
	if (f)
		f->fail_after = n;
}
