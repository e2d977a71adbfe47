/*
 * rvf_verify.c - check a whole .rvf file and report every finding.
 *
 * Open checks only what the newest commit needs; verify checks everything
 * the file holds: the file header, every segment header, every payload
 * hash (live or not), that padding is zero, every manifest (layout, link
 * to the previous manifest, generation chain, the segments it names), and
 * whether bytes follow the last complete commit (a torn tail). After a
 * damaged header it resynchronises at the next valid header so that one
 * flipped byte does not hide the rest of the file. Every byte of a file is
 * covered by some check: headers by their checksums, payloads by their
 * hashes, padding by the zero check.
 *
 * Verify takes no lock, so it can inspect a file a writer holds open; a
 * commit in progress then shows up as a torn tail. It never writes.
 */
#include "store/rvf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct verifier {
	rv_verify_fn fn;
	void *ctx;
	const char *path;
	rv_err *err;
	unsigned long problems;
	const uint8_t *map;
	uint64_t size;
	rv_seg_ref *segs; /* segments with valid headers, in file order */
	bool *good;       /* their payloads passed */
	size_t n, cap, cap_good;
} verifier;

#define SEG_FMT "segment %llu (%s) at offset %llu"
#define SEG_ARGS(id, type, off) (unsigned long long)(id), rv_seg_type_name(type), (unsigned long long)(off)

static void report(verifier *v, int ok, const char *fmt, ...) RV_PRINTF(3, 4);

static void report(verifier *v, int ok, const char *fmt, ...)
{
	char msg[RV_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!ok && v->problems++ == 0)
		rv_err_set(v->err, RV_ECORRUPT, "%s: %s", v->path, msg);
	if (v->fn)
		v->fn(v->ctx, ok, msg);
}

/* First offset >= from (64-aligned) holding a valid header whose segment
 * fits in the file; want_type 0 = any type. 0 when none. */
static uint64_t next_header(const verifier *v, uint64_t from, uint8_t want_type)
{
	for (uint64_t q = from; q < v->size && v->size - q >= RV_SEG_HEADER_SIZE; q += RV_SEG_ALIGN) {
		if (rv_get_u32(v->map + q) != RV_SEG_MAGIC)
			continue;
		rv_seg_hdr h;
		if (rv_seg_probe(&h, v->map, v->size, q) == RV_PROBE_OK &&
		    (!want_type || h.type == want_type))
			return q;
	}
	return 0;
}

/* The state of the manifest chain while walking. */
typedef struct chain {
	bool have_prev;           /* a MANIFEST header was passed */
	uint64_t prev_offset;
	bool prev_decoded;        /* and its payload decoded */
	uint64_t prev_generation;
	bool have_good;           /* a complete commit was found */
	uint64_t good_offset, good_end, good_generation, good_id;
	size_t good_segs;
} chain;

/* Check a MANIFEST whose header and payload hash are fine. */
static void check_manifest(verifier *v, chain *c, const rv_seg_ref *m)
{
	rv_mf mf;
	const char *why;
	const uint8_t *payload = v->map + m->offset + RV_SEG_HEADER_SIZE;
	bool ok = true;
	if (rv_mf_decode(&mf, payload, (size_t)m->length, &why) != RV_OK) {
		report(v, 0, SEG_FMT ": %s", SEG_ARGS(m->seg_id, m->type, m->offset), why);
		c->prev_decoded = false;
		return;
	}
	uint64_t want_prev = c->have_prev ? c->prev_offset : 0;
	if (mf.prev_offset != want_prev) {
		report(v, 0, SEG_FMT ": names the previous manifest at offset %llu, but the file has it at offset %llu",
		       SEG_ARGS(m->seg_id, m->type, m->offset), (unsigned long long)mf.prev_offset,
		       (unsigned long long)want_prev);
		ok = false;
	}
	if (c->have_prev && c->prev_decoded && mf.generation != c->prev_generation + 1) {
		report(v, 0, SEG_FMT ": generation %llu does not follow the previous manifest's %llu",
		       SEG_ARGS(m->seg_id, m->type, m->offset), (unsigned long long)mf.generation,
		       (unsigned long long)c->prev_generation);
		ok = false;
	}
	/* Named segments lie before the manifest: among v->segs[0..n-1). */
	size_t before = v->n - 1;
	for (size_t i = 0; i < mf.n_segs; i++) {
		rv_seg_ref e;
		rv_mf_entry(&e, &mf, i);
		size_t k = rv_seg_find(v->segs, before, e.offset);
		if (k == SIZE_MAX) {
			report(v, 0, SEG_FMT " named by the manifest (segment %llu at offset %llu) is missing: no valid segment starts there",
			       SEG_ARGS(e.seg_id, e.type, e.offset), (unsigned long long)m->seg_id,
			       (unsigned long long)m->offset);
			ok = false;
			continue;
		}
		if (!rv_seg_same(&v->segs[k], &e) || e.type == RV_SEG_MANIFEST) {
			report(v, 0, SEG_FMT " named by the manifest (segment %llu at offset %llu) does not match: the header says segment %llu (%s), %llu bytes; the manifest expects %llu bytes",
			       SEG_ARGS(e.seg_id, e.type, e.offset), (unsigned long long)m->seg_id,
			       (unsigned long long)m->offset, (unsigned long long)v->segs[k].seg_id,
			       rv_seg_type_name(v->segs[k].type), (unsigned long long)v->segs[k].length,
			       (unsigned long long)e.length);
			ok = false;
			continue;
		}
		if (!v->good[k]) {
			report(v, 0, SEG_FMT " named by the manifest (segment %llu at offset %llu) is damaged",
			       SEG_ARGS(e.seg_id, e.type, e.offset), (unsigned long long)m->seg_id,
			       (unsigned long long)m->offset);
			ok = false;
		}
	}
	/* Duplicates: entries are few next to the payload hashing, so a
	 * quadratic pass is fine up to a bound; beyond it, skip. */
	if (mf.n_segs <= 4096) {
		for (size_t i = 0; i < mf.n_segs; i++) {
			rv_seg_ref a;
			rv_mf_entry(&a, &mf, i);
			for (size_t j = i + 1; j < mf.n_segs; j++) {
				rv_seg_ref b;
				rv_mf_entry(&b, &mf, j);
				if (a.offset == b.offset) {
					report(v, 0, SEG_FMT " is named twice by the manifest (segment %llu at offset %llu)",
					       SEG_ARGS(a.seg_id, a.type, a.offset),
					       (unsigned long long)m->seg_id, (unsigned long long)m->offset);
					ok = false;
				}
			}
		}
	}
	c->prev_decoded = true;
	c->prev_generation = mf.generation;
	if (ok) {
		report(v, 1, SEG_FMT ": manifest, generation %llu, %zu segments, %llu bytes ok",
		       SEG_ARGS(m->seg_id, m->type, m->offset), (unsigned long long)mf.generation,
		       mf.n_segs, (unsigned long long)m->length);
		c->have_good = true;
		c->good_offset = m->offset;
		c->good_end = m->offset + RV_SEG_HEADER_SIZE + rv_seg_padded(m->length);
		c->good_generation = mf.generation;
		c->good_id = m->seg_id;
		c->good_segs = mf.n_segs;
	}
}

static rv_status walk(verifier *v)
{
	chain c = { 0 };
	uint64_t pos = RV_FILE_HEADER_SIZE;
	uint64_t last_id = 0;
	for (;;) {
		rv_seg_hdr h;
		rv_probe pr = rv_seg_probe(&h, v->map, v->size, pos);
		if (pr == RV_PROBE_END)
			break;
		if (pr != RV_PROBE_OK) {
			bool damaged = pr == RV_PROBE_BAD_MAGIC || pr == RV_PROBE_BAD_CHECKSUM ||
				       pr == RV_PROBE_BAD_VERSION;
			uint64_t q = next_header(v, pos + RV_SEG_ALIGN, 0);
			uint64_t mq = q ? next_header(v, q, RV_SEG_MANIFEST) : 0;
			if (damaged)
				report(v, 0, "segment header at offset %llu: %s", (unsigned long long)pos,
				       rv_probe_str(pr));
			else if (mq)
				report(v, 0, "%s at offset %llu, but a complete manifest follows at offset %llu",
				       rv_probe_str(pr), (unsigned long long)pos, (unsigned long long)mq);
			/* Without a later manifest this is the torn tail,
			 * reported below; otherwise keep checking the rest. */
			if (!q || (!damaged && !mq))
				break;
			report(v, 0, "%llu bytes from offset %llu to %llu skipped to the next valid segment header",
			       (unsigned long long)(q - pos), (unsigned long long)pos, (unsigned long long)q);
			pos = q;
			continue;
		}
		rv_seg_ref r = { h.type, h.seg_id, pos, h.length };
		void *arr = v->segs;
		if (!rv_grow(NULL, &arr, &v->cap, v->n + 1, sizeof *v->segs))
			return rv_err_nomem(v->err);
		v->segs = arr;
		arr = v->good;
		if (!rv_grow(NULL, &arr, &v->cap_good, v->n + 1, sizeof *v->good))
			return rv_err_nomem(v->err);
		v->good = arr;

		bool ok = true;
		if (h.seg_id <= last_id) {
			report(v, 0, SEG_FMT ": segment ids must increase (previous is %llu)",
			       SEG_ARGS(r.seg_id, r.type, r.offset), (unsigned long long)last_id);
			ok = false;
		}
		last_id = h.seg_id;
		const uint8_t *payload = v->map + pos + RV_SEG_HEADER_SIZE;
		const char *why = rv_seg_check_payload(&h, payload);
		if (why) {
			report(v, 0, SEG_FMT ": %s", SEG_ARGS(r.seg_id, r.type, r.offset), why);
			ok = false;
		}
		uint64_t pad = rv_seg_padded(h.length) - h.length;
		size_t nonzero = 0;
		for (uint64_t i = 0; i < pad; i++)
			nonzero += payload[h.length + i] != 0;
		if (nonzero) {
			report(v, 0, SEG_FMT ": %zu non-zero bytes in the padding after the payload",
			       SEG_ARGS(r.seg_id, r.type, r.offset), nonzero);
			ok = false;
		}
		v->segs[v->n] = r;
		v->good[v->n] = ok;
		v->n++;
		if (h.type == RV_SEG_MANIFEST) {
			if (ok)
				check_manifest(v, &c, &r);
			else
				c.prev_decoded = false;
			c.have_prev = true;
			c.prev_offset = pos;
		} else if (ok) {
			report(v, 1, SEG_FMT ": %llu bytes ok", SEG_ARGS(r.seg_id, r.type, r.offset),
			       (unsigned long long)h.length);
		}
		pos += RV_SEG_HEADER_SIZE + rv_seg_padded(h.length);
	}

	if (!c.have_good) {
		report(v, 0, "no complete commit: the file has no valid manifest");
		return RV_OK;
	}
	if (v->size > c.good_end)
		report(v, 0, "torn tail: %llu bytes at offset %llu after the last complete commit (generation %llu)",
		       (unsigned long long)(v->size - c.good_end), (unsigned long long)c.good_end,
		       (unsigned long long)c.good_generation);
	report(v, 1, "newest complete commit: generation %llu, segment %llu at offset %llu, %zu live segments",
	       (unsigned long long)c.good_generation, (unsigned long long)c.good_id,
	       (unsigned long long)c.good_offset, c.good_segs);
	return RV_OK;
}

rv_status rv_file_verify(const char *path, rv_verify_fn fn, void *ctx, rv_err *err)
{
	rv_status st = RV_OK;
	verifier v = { 0 };
	int fd = -1;
	void *map = NULL;
	size_t map_len = 0;

	if (!path)
		return rv_err_set(err, RV_EINVAL, "rv_file_verify: path is NULL");
	v.fn = fn;
	v.ctx = ctx;
	v.path = path;
	v.err = err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		st = e == ENOENT ? rv_err_set(err, RV_ENOTFOUND, "%s: no such file", path)
				 : rv_err_set(err, RV_EIO, "%s: cannot open: %s", path, strerror(e));
		goto done;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		st = rv_err_set(err, RV_EIO, "%s: cannot stat: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = rv_err_set(err, RV_EINVAL, "%s: not a regular file", path);
		goto done;
	}
	v.size = (uint64_t)sb.st_size;
	if (v.size < RV_FILE_HEADER_SIZE) {
		report(&v, 0, "not a ruvector file: %llu bytes, shorter than the %d-byte file header",
		       (unsigned long long)v.size, RV_FILE_HEADER_SIZE);
		st = RV_ECORRUPT;
		goto done;
	}
	if (v.size > SIZE_MAX) {
		st = rv_err_set(err, RV_EIO, "%s: %llu bytes is too large to map on this system", path,
				(unsigned long long)v.size);
		goto done;
	}
	map = mmap(NULL, (size_t)v.size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		map = NULL;
		st = rv_err_set(err, RV_EIO, "%s: cannot map %llu bytes: %s", path,
				(unsigned long long)v.size, strerror(errno));
		goto done;
	}
	map_len = (size_t)v.size;
	v.map = map;
	madvise(map, map_len, MADV_SEQUENTIAL);

	rv_file_hdr fh;
	rv_err herr;
	rv_status hs = rv_file_hdr_check(&fh, v.map, v.size, false, path, &herr);
	if (hs == RV_EVERSION) {
		/* The rest is in a layout this build does not know. */
		report(&v, 0, "%s", herr.msg);
		st = rv_err_set(err, RV_EVERSION, "%s", herr.msg);
		goto done;
	}
	if (hs != RV_OK) {
		report(&v, 0, "file header at offset 0: %s", strchr(herr.msg, ':') ? strchr(herr.msg, ':') + 2 : herr.msg);
		/* Without the magic this is not a ruvector file at all. */
		if (memcmp(v.map, RV_FILE_MAGIC, 8) != 0) {
			st = RV_ECORRUPT;
			goto done;
		}
	} else {
		report(&v, 1, "file header: read version %u, write version %u, features 0x%llx/0x%llx ok",
		       fh.read_version, fh.write_version, (unsigned long long)fh.features_required,
		       (unsigned long long)fh.features_optional);
	}
	if ((st = walk(&v)) != RV_OK)
		goto done;
	st = v.problems ? RV_ECORRUPT : RV_OK;
done:
	if (st == RV_ECORRUPT && v.problems > 1) {
		char first[RV_ERR_MAX];
		snprintf(first, sizeof first, "%s", err ? err->msg : "");
		rv_err_set(err, st, "%lu problems; first: %s", v.problems, first);
	}
	rv_dealloc(NULL, v.segs);
	rv_dealloc(NULL, v.good);
	if (map)
		munmap(map, map_len);
	if (fd >= 0)
		close(fd);
	return st;
}
