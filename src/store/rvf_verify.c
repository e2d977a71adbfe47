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
 * commit in progress then shows up as a torn tail. It never writes. For
 * the same reason it reads with pread rather than a mapping: a writer may
 * cut its file back (a torn tail at open, a failed write), and a mapping
 * would then fault on the missing pages, where pread just returns short.
 * Payloads are hashed in chunks with the streaming XXH3 interface, so
 * memory stays bounded (one chunk, plus a manifest's payload) whatever the
 * segment sizes.
 */
#include "store/rvf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#define CHUNK (1u << 20) /* bytes per read while hashing or scanning */

typedef struct verifier {
	rv_verify_fn fn;
	void *ctx;
	const char *path;
	rv_err *err;
	unsigned long problems;
	int fd;
	uint64_t size;       /* file size when verification started */
	uint8_t *buf;        /* chunk bytes */
	size_t chunk;        /* CHUNK, or less for a small file; a multiple of 64 */
	XXH3_state_t *hash;
	rv_status io;        /* RV_EIO once a read failed: stop */
	rv_seg_ref *segs;    /* segments with valid headers, in file order */
	bool *good;          /* their payloads passed */
	size_t n, cap, cap_good;
	const rv_payload_check *check; /* payloads the caller judges, or NULL */
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

/* Read exactly n bytes at off; false (with v->io set) when the read
 * fails or the file has become shorter. */
static bool read_at(verifier *v, void *dst, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(v->fd, (uint8_t *)dst + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			v->io = r < 0 ? rv_err_set(v->err, RV_EIO, "%s: cannot read %zu bytes at offset %llu: %s",
						   v->path, n - done, (unsigned long long)(off + done),
						   strerror(errno))
				      : rv_err_set(v->err, RV_EIO,
						   "%s: the file became shorter while being verified (no data at "
						   "offset %llu)",
						   v->path, (unsigned long long)(off + done));
			return false;
		}
		done += (size_t)r;
	}
	return true;
}

static rv_probe probe(verifier *v, rv_seg_hdr *h, uint64_t pos)
{
	if (pos >= v->size)
		return RV_PROBE_END;
	if (v->size - pos < RV_SEG_HEADER_SIZE)
		return RV_PROBE_SHORT;
	uint8_t hdr[RV_SEG_HEADER_SIZE];
	if (!read_at(v, hdr, sizeof hdr, pos))
		return RV_PROBE_END;
	return rv_seg_classify(h, hdr, v->size, pos);
}

/* First offset >= from (64-aligned) holding a valid header whose segment
 * fits in the file; want_type 0 = any type. 0 when none. */
static uint64_t next_header(verifier *v, uint64_t from, uint8_t want_type)
{
	uint64_t q = from;
	while (q < v->size && v->size - q >= RV_SEG_HEADER_SIZE) {
		uint64_t left = (v->size - q) & ~(uint64_t)(RV_SEG_ALIGN - 1);
		size_t n = left < v->chunk ? (size_t)left : v->chunk;
		if (!read_at(v, v->buf, n, q))
			return 0;
		for (size_t i = 0; i < n; i += RV_SEG_ALIGN) {
			const uint8_t *p = v->buf + i;
			if (rv_get_u32(p) != RV_SEG_MAGIC)
				continue;
			rv_seg_hdr h;
			if (rv_seg_classify(&h, p, v->size, q + i) == RV_PROBE_OK &&
			    (!want_type || h.type == want_type))
				return q + i;
		}
		q += n;
	}
	return 0;
}

/* Hash the payload of a segment with a valid header and count non-zero
 * padding bytes. When keep is not NULL the payload (and padding) is read
 * into it in one piece, else in chunks through v->buf. NULL when the
 * payload matches, else a static reason. */
static const char *check_content(verifier *v, const rv_seg_hdr *h, uint64_t pos, uint8_t *keep,
				 size_t *nonzero_pad)
{
	uint64_t total = rv_seg_padded(h->length);
	uint64_t off = pos + RV_SEG_HEADER_SIZE;
	*nonzero_pad = 0;
	XXH3_128bits_reset(v->hash);
	for (uint64_t done = 0; done < total;) {
		size_t n = total - done < v->chunk ? (size_t)(total - done) : v->chunk;
		uint8_t *dst = keep ? keep + done : v->buf;
		if (keep)
			n = (size_t)(total - done);
		if (!read_at(v, dst, n, off + done))
			return "unreadable";
		size_t in_payload = 0; /* the rest of the chunk is padding */
		if (done < h->length)
			in_payload = h->length - done < n ? (size_t)(h->length - done) : n;
		XXH3_128bits_update(v->hash, dst, in_payload);
		for (size_t i = in_payload; i < n; i++)
			*nonzero_pad += dst[i] != 0;
		done += n;
	}
	const char *why = rv_seg_check_kind(h);
	if (why)
		return why;
	XXH128_hash_t x = XXH3_128bits_digest(v->hash);
	if (x.low64 != h->hash_lo || x.high64 != h->hash_hi)
		return "content hash mismatch";
	return NULL;
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
static void check_manifest(verifier *v, chain *c, const rv_seg_ref *m, const uint8_t *payload)
{
	rv_mf mf;
	const char *why;
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
		if (e.type == RV_SEG_MANIFEST) {
			report(v, 0, SEG_FMT ": entry %zu names a MANIFEST segment (segment %llu at offset %llu)",
			       SEG_ARGS(m->seg_id, m->type, m->offset), i, (unsigned long long)e.seg_id,
			       (unsigned long long)e.offset);
			ok = false;
			continue;
		}
		size_t k = rv_seg_find(v->segs, before, e.offset);
		if (k == SIZE_MAX) {
			report(v, 0, SEG_FMT " named by the manifest (segment %llu at offset %llu) is missing: no valid segment starts there",
			       SEG_ARGS(e.seg_id, e.type, e.offset), (unsigned long long)m->seg_id,
			       (unsigned long long)m->offset);
			ok = false;
			continue;
		}
		if (!rv_seg_same(&v->segs[k], &e)) {
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
	rv_status st = RV_OK;
	chain c = { 0 };
	uint64_t pos = RV_FILE_HEADER_SIZE;
	uint64_t last_id = 0;
	uint8_t *mbuf = NULL;
	for (;;) {
		rv_seg_hdr h;
		rv_probe pr = probe(v, &h, pos);
		if (v->io != RV_OK)
			goto done;
		if (pr == RV_PROBE_END)
			break;
		if (pr != RV_PROBE_OK) {
			bool damaged = pr == RV_PROBE_BAD_MAGIC || pr == RV_PROBE_BAD_CHECKSUM ||
				       pr == RV_PROBE_BAD_VERSION;
			uint64_t q = next_header(v, pos + RV_SEG_ALIGN, 0);
			uint64_t mq = q ? next_header(v, q, RV_SEG_MANIFEST) : 0;
			if (v->io != RV_OK)
				goto done;
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
		if (!rv_grow(NULL, &arr, &v->cap, v->n + 1, sizeof *v->segs)) {
			st = rv_err_nomem(v->err);
			goto done;
		}
		v->segs = arr;
		arr = v->good;
		if (!rv_grow(NULL, &arr, &v->cap_good, v->n + 1, sizeof *v->good)) {
			st = rv_err_nomem(v->err);
			goto done;
		}
		v->good = arr;

		bool ok = true;
		if (h.seg_id <= last_id) {
			report(v, 0, SEG_FMT ": segment ids must increase (previous is %llu)",
			       SEG_ARGS(r.seg_id, r.type, r.offset), (unsigned long long)last_id);
			ok = false;
		}
		last_id = h.seg_id;
		/* A manifest is decoded after hashing, so keep its payload;
		 * its length was checked against the file size. So is a
		 * payload the caller checks. */
		bool is_mf = h.type == RV_SEG_MANIFEST;
		bool judge = !is_mf && v->check && h.type < 64 && (v->check->types >> h.type & 1);
		if (is_mf || judge) {
			/* + 1: an empty payload still gets a buffer. */
			mbuf = rv_malloc(NULL, (size_t)rv_seg_padded(h.length) + 1);
			if (!mbuf) {
				st = rv_err_nomem(v->err);
				goto done;
			}
		}
		size_t nonzero;
		const char *why = check_content(v, &h, pos, mbuf, &nonzero);
		if (v->io != RV_OK)
			goto done;
		if (why) {
			report(v, 0, SEG_FMT ": %s", SEG_ARGS(r.seg_id, r.type, r.offset), why);
			ok = false;
		}
		if (nonzero) {
			report(v, 0, SEG_FMT ": %zu non-zero bytes in the padding after the payload",
			       SEG_ARGS(r.seg_id, r.type, r.offset), nonzero);
			ok = false;
		}
		if (judge && !why) {
			char reason[RV_ERR_MAX];
			reason[0] = 0;
			if (!v->check->check(v->check->ctx, h.type, mbuf, h.length, reason, sizeof reason)) {
				report(v, 0, SEG_FMT ": %s", SEG_ARGS(r.seg_id, r.type, r.offset),
				       reason[0] ? reason : "payload malformed");
				ok = false;
			}
		}
		if (judge) {
			rv_dealloc(NULL, mbuf);
			mbuf = NULL;
		}
		v->segs[v->n] = r;
		v->good[v->n] = ok;
		v->n++;
		if (is_mf) {
			if (ok)
				check_manifest(v, &c, &r, mbuf);
			else
				c.prev_decoded = false;
			c.have_prev = true;
			c.prev_offset = pos;
			rv_dealloc(NULL, mbuf);
			mbuf = NULL;
		} else if (ok) {
			report(v, 1, SEG_FMT ": %llu bytes ok", SEG_ARGS(r.seg_id, r.type, r.offset),
			       (unsigned long long)h.length);
		}
		pos += RV_SEG_HEADER_SIZE + rv_seg_padded(h.length);
	}

	if (!c.have_good) {
		report(v, 0, "no complete commit: the file has no valid manifest");
		goto done;
	}
	if (v->size > c.good_end)
		report(v, 0, "torn tail: %llu bytes at offset %llu after the last complete commit (generation %llu)",
		       (unsigned long long)(v->size - c.good_end), (unsigned long long)c.good_end,
		       (unsigned long long)c.good_generation);
	report(v, 1, "newest complete commit: generation %llu, segment %llu at offset %llu, %zu live segments",
	       (unsigned long long)c.good_generation, (unsigned long long)c.good_id,
	       (unsigned long long)c.good_offset, c.good_segs);
done:
	rv_dealloc(NULL, mbuf);
	return st != RV_OK ? st : v->io;
}

rv_status rv_file_verify(const char *path, rv_verify_fn fn, void *ctx, rv_err *err)
{
	return rv_file_verify_v2(path, fn, ctx, NULL, err);
}

rv_status rv_file_verify_v2(const char *path, rv_verify_fn fn, void *ctx, const rv_payload_check *check,
			    rv_err *err)
{
	rv_status st = RV_OK;
	verifier v = { 0 };

	if (!path)
		return rv_err_set(err, RV_EINVAL, "rv_file_verify: path is NULL");
	v.check = check && check->check ? check : NULL;
	v.fn = fn;
	v.ctx = ctx;
	v.path = path;
	v.err = err;
	v.io = RV_OK;
	v.fd = -1;

	v.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang */
	if (v.fd < 0) {
		int e = errno;
		st = e == ENOENT ? rv_err_set(err, RV_ENOTFOUND, "%s: no such file", path)
				 : rv_err_set(err, RV_EIO, "%s: cannot open: %s", path, strerror(e));
		goto done;
	}
	struct stat sb;
	if (fstat(v.fd, &sb) != 0) {
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
	/* Small files need only a small buffer. */
	v.chunk = v.size < CHUNK ? (size_t)rv_seg_padded(v.size) : CHUNK;
	v.buf = rv_malloc(NULL, v.chunk);
	v.hash = XXH3_createState();
	if (!v.buf || !v.hash) {
		st = rv_err_nomem(err);
		goto done;
	}
	posix_fadvise(v.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

	uint8_t hdr[RV_FILE_HEADER_SIZE];
	if (!read_at(&v, hdr, sizeof hdr, 0)) {
		st = v.io;
		goto done;
	}
	rv_file_hdr fh;
	rv_err herr;
	rv_status hs = rv_file_hdr_check(&fh, hdr, v.size, false, path, &herr);
	if (hs == RV_EVERSION) {
		/* The rest is in a layout this build does not know. */
		report(&v, 0, "%s", herr.msg);
		st = rv_err_set(err, RV_EVERSION, "%s", herr.msg);
		goto done;
	}
	if (hs != RV_OK) {
		const char *colon = strstr(herr.msg, ": ");
		report(&v, 0, "file header at offset 0: %s", colon ? colon + 2 : herr.msg);
		/* Without the magic this is not a ruvector file at all. */
		if (memcmp(hdr, RV_FILE_MAGIC, 8) != 0) {
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
	if (st == RV_ECORRUPT && v.problems > 1 && err) {
		char first[RV_ERR_MAX];
		snprintf(first, sizeof first, "%s", err->msg);
		rv_err_set(err, st, "%lu problems; first: %s", v.problems, first);
	}
	XXH3_freeState(v.hash);
	rv_dealloc(NULL, v.buf);
	rv_dealloc(NULL, v.segs);
	rv_dealloc(NULL, v.good);
	if (v.fd >= 0)
		close(v.fd);
	return st;
}
